"""Does a model read numbers from its context?  Loss on negotiation-items counts at first vs repeated mention.

Every user turn of a negotiation-items chat restates the pool ("The pool: 1
books, 3 hats, 4 balls.") and the agent's private values, so from round 2 on
those digits are predictable by looking back at round 1.  A model that can
copy from its context pays much less for a repeated mention than for the
first one; a model that can't pays the same (ln 4 = 1.39 nats for a pool
count drawn from 1..4).  This is what keeps the tiny model's
negotiation-items demands from respecting the pool (issue 4).

    python scripts/context_copy_probe.py data/models/sft [--examples 40]
"""

from __future__ import annotations

import argparse
import re

import pyarrow.parquet as pq
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PATTERNS = {
    "pool count": r"The pool: (\d) books, (\d) hats, (\d) balls",
    "private value": r"Your private values: books (\d+) each, hats (\d+) each, balls (\d+) each",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder (full checkpoint)")
    parser.add_argument("--data", default="data/sft/neg_items/valid.parquet")
    parser.add_argument("--examples", type=int, default=40, help="round-4 examples to score")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    rows = [r for r in pq.read_table(args.data).to_pylist() if r["round"] == 4][:args.examples]
    losses: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        text = tokenizer.apply_chat_template([*row["prompt"], *row["completion"]], tokenize=False)
        encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False, return_tensors="pt")
        ids, offsets = encoded.input_ids, encoded.offset_mapping[0].tolist()
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        token_loss = -logprobs.gather(1, ids[0, 1:, None])[:, 0]
        for name, pattern in PATTERNS.items():
            for occurrence, match in enumerate(re.finditer(pattern, text)):
                mention = "first" if occurrence == 0 else "repeated"
                for group in range(1, 4):
                    start, end = match.span(group)
                    for i, (a, b) in enumerate(offsets):
                        if i and b > a and a >= start and b <= end:
                            losses.setdefault((name, mention), []).append(token_loss[i - 1].item())
    for name in PATTERNS:
        first, repeated = (losses[(name, m)] for m in ("first", "repeated"))
        print(f"{name:14s} first mention {sum(first) / len(first):.3f} nats ({len(first)} digits), "
              f"repeated {sum(repeated) / len(repeated):.3f} nats ({len(repeated)} digits)")


if __name__ == "__main__":
    main()
