"""DVC stage `base_model`: the policy's starting point (SPEC section 7).

    python stages/base_model.py --params params.yaml --data data/sft --out data/models/base

``model.base: tiny`` trains a byte-level BPE tokenizer on the SFT corpus (the
rows the ``sft`` stage trains on) and builds a randomly initialised Qwen3 of
``model.tiny``'s sizes; both are saved with ``save_pretrained``
(safetensors), with a model card (``sepo.cards.base_model_card``).  The
folder is built beside ``--out`` and swapped in whole.  A Hub id is only recorded (``hub_model.json``: id, revision,
trust_remote_code): nothing is downloaded here.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import partial_folder, replace_folder
from sepo.stage import Stage

TINY = "tiny"


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("base_model", __doc__)
    parser = stage.parser
    parser.add_argument("--data", default="data/sft", help="SFT datasets folder (default: data/sft)")
    parser.add_argument("--out", default="data/models/base", help="output folder (default: data/models/base)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        out = Path(args.out)
        building = partial_folder(out)  # built beside --out and swapped in whole
        shutil.rmtree(building, ignore_errors=True)
        if params.model.base == TINY:
            from sepo.cards import base_model_card, write_model_card
            from sepo.models.tiny import build_tiny_model, chat_texts, train_tokenizer
            from sepo.sft import corpus_conversations, sft_examples

            examples = sft_examples(args.data, params, "train")
            tokenizer = train_tokenizer(chat_texts(corpus_conversations(examples)), params.model.tiny.vocab_size,
                                        params.model.tiny.max_token_length)
            model = build_tiny_model(tokenizer, params.model.tiny, params.model.seed)
            size = sum(p.numel() for p in model.parameters())
            tokenizer.save_pretrained(building)
            model.save_pretrained(building)
            write_model_card(building, base_model_card(
                params.model.tiny.model_dump(), parameters=size, vocabulary=len(tokenizer),
                examples=len(examples), seed=params.model.seed))
            summary = (f"tiny Qwen3: {size:,} parameters, vocabulary {len(tokenizer)}, "
                       f"tokenizer trained on {len(examples):,} examples")
        else:
            from sepo.models.loading import HubReference, looks_like_hub_id, resolve_hub_commit

            if not looks_like_hub_id(params.model.base):
                raise ConfigError(f"model.base: expected 'tiny' or a Hub id 'owner/name', got {params.model.base!r}")
            commit, note = resolve_hub_commit(params.model.base, params.model.revision)
            building.mkdir(parents=True)
            HubReference(params.model.base, params.model.revision, params.model.trust_remote_code,
                         commit, note).write(building)
            summary = (f"recorded {params.model.base}@{params.model.revision} "
                       f"(commit {commit or 'unresolved'}: {note})")
        replace_folder(building, out)
        print(f"{summary} -> {out}")
    except ConfigError as exc:
        return stage.input_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
