"""The files of the SFT output folder: deterministic Parquet bytes, written atomically.

The bytes of a Parquet file depend only on the table, the writer version and
the options fixed here, so regenerating a dataset with the same params gives
byte-identical files (the md5s in ``dvc.lock``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sepo.config import Params
from sepo.data.card import dataset_card
from sepo.data.schema import COLUMNS
from sepo.data.sft import GeneratedData
from sepo.io import read_parquet

#: rows per row group: small enough to stream, large enough for zstd to find the repetition
ROW_GROUP_SIZE = 8192


def parquet_bytes(table: pa.Table, zstd_level: int) -> bytes:
    """The table as a zstd-compressed Parquet file, in memory."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=zstd_level,
                   row_group_size=ROW_GROUP_SIZE)
    return sink.getvalue().to_pybytes()


def read_split(folder: str | Path, relative_path: str) -> pa.Table:
    """One split file of an output folder; unreadable or missing a column of the schema: one ConfigError line."""
    return read_parquet(Path(folder) / relative_path, required=COLUMNS)


def output_files(data: GeneratedData, params: Params) -> dict[str, bytes]:
    """Every file of the ``generate`` output folder (relative path -> bytes): the Parquet
    splits, ``manifest.json`` and the dataset card ``README.md``."""
    files = {
        info["file"]: parquet_bytes(data.tables[dataset][split], params.data.zstd_level)
        for dataset, dataset_info in data.manifest["datasets"].items()
        for split, info in dataset_info["splits"].items()
    }
    files["manifest.json"] = (json.dumps(data.manifest, indent=2, sort_keys=True) + "\n").encode()
    mixtures = {game: spec.demonstrators for game, spec in params.games.items()}
    files["README.md"] = dataset_card(data.manifest, mixtures).encode()
    return files
