"""Does a model read numbers from its context?  ``sepo.copy_probe`` on any model folder.

    python scripts/context_copy_probe.py data/models/sft [--examples 40]

The `sft_validity` stage records the same probe for the SFT model in
``metrics/sft_validity.json``.
"""

from __future__ import annotations

import argparse

from transformers import AutoModelForCausalLM, AutoTokenizer

from sepo.copy_probe import copy_probe, probe_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder (full checkpoint)")
    parser.add_argument("--data", default="data/sft/neg_items/valid.parquet")
    parser.add_argument("--examples", type=int, default=40, help="round-4 examples to score")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    for name, r in copy_probe(model, tokenizer, probe_rows(args.data, args.examples)).items():
        print(f"{name:14s} first mention {r['first_nats']:.3f} nats ({r['first_tokens']} digits), "
              f"repeated {r['repeated_nats']:.3f} nats ({r['repeated_tokens']} digits)")


if __name__ == "__main__":
    main()
