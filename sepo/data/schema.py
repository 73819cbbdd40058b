"""The columns of every SFT dataset, in file order.

``prompt`` and ``completion`` follow TRL's conversational prompt-completion
format: lists of ``{"role", "content"}`` messages; the prompt is the
episode's chat up to the decision (system message first, a user message
last), the completion the one assistant reply.
"""

from __future__ import annotations

import pyarrow as pa

#: bump when the rows a given set of params produces change (format, template, seeds)
GENERATOR_VERSION = "1"

SPLITS = ("train", "valid")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

SCHEMA = pa.schema([
    ("id", pa.string()),               # "<episode_id>/<decision index>"
    ("episode_id", pa.string()),       # "<dataset>/<split>/<game>/<demonstrator>/<index>"
    ("episode_seed", pa.int64()),      # replays the episode: same deals and opponent dice
    ("dataset", pa.string()),
    ("game", pa.string()),
    ("demonstrator", pa.string()),
    ("opponent", pa.string()),
    ("round", pa.int64()),             # 1-based round (hand) of the decision
    ("prompt", pa.list_(MESSAGE)),
    ("completion", pa.list_(MESSAGE)),
    ("action", pa.string()),
    ("legal_actions", pa.list_(pa.string())),
])

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)


def split_path(dataset: str, split: str) -> str:
    """Where a split lives, relative to the output folder."""
    return f"{dataset}/{split}.parquet"
