"""Does a model read numbers from its context?  Loss on negotiation-items numbers at first vs repeated mention.

Every user turn of a negotiation-items chat restates the pool ("The pool: 1
books, 3 hats, 4 balls.") and the agent's private values, so from round 2 on
those digits are predictable by looking back at round 1.  A model that can
copy from its context pays much less for a repeated mention than for the
first one; a model that can't pays the same (ln 4 = 1.39 nats for a pool
count drawn from 1..4).  Legal item demands need exactly this lookup, so the
probe is a metric of the SFT model (stage ``sft_validity``).

The score of a mention is the mean per-token loss of its digits' tokens
(tokens lying wholly inside a digit group), over the round-4 examples of the
validation split, whose chats hold four mentions each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

PATTERNS = {
    "pool_count": r"The pool: (\d) books, (\d) hats, (\d) balls",
    "private_value": r"Your private values: books (\d+) each, hats (\d+) each, balls (\d+) each",
}
PROBE_ROUND = 4


def probe_rows(data: str | Path, examples: int) -> list[dict[str, Any]]:
    """The first ``examples`` round-4 examples of a negotiation-items split."""
    return [r for r in pq.read_table(data, columns=["round", "prompt", "completion"]).to_pylist()
            if r["round"] == PROBE_ROUND][:examples]


def copy_probe(model, tokenizer, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per pattern, the mean digit loss (nats) at its first and at its repeated mentions, and their counts."""
    import torch

    losses: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        text = tokenizer.apply_chat_template([*row["prompt"], *row["completion"]], tokenize=False)
        encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False, return_tensors="pt")
        ids, offsets = encoded.input_ids.to(model.device), encoded.offset_mapping[0].tolist()
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
    out = {}
    for name in PATTERNS:
        first, repeated = (losses.get((name, m), []) for m in ("first", "repeated"))
        out[name] = {"first_nats": sum(first) / len(first) if first else float("nan"),
                     "repeated_nats": sum(repeated) / len(repeated) if repeated else float("nan"),
                     "first_tokens": len(first), "repeated_tokens": len(repeated)}
    return out
