"""DVC stage `generate`: play the demonstrator episodes and write the SFT datasets.

    python stages/generate.py --params params.yaml --out data/sft

Writes ``<out>/<dataset>/{train,valid}.parquet``, ``<out>/manifest.json`` and
the dataset card ``<out>/README.md`` (see ``sepo.data``).  The params are
validated before anything is played or written: a bad key is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from sepo.config import load_params
from sepo.data.files import output_files
from sepo.data.sft import generate_datasets, plan_quotas
from sepo.errors import ConfigError
from sepo.io import write_bytes_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("generate", __doc__)
    parser = stage.parser
    parser.add_argument("--out", default="data/sft", help="output folder (default: data/sft)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
    except ConfigError as exc:
        return stage.input_error(exc)

    total = sum(q.examples for q in plan_quotas(params))
    with tqdm(total=total, unit="example", desc="generate", disable=None) as bar:
        data = generate_datasets(params, on_quota=lambda _quota, n: bar.update(n))
    for relative, content in output_files(data, params).items():
        write_bytes_atomic(Path(args.out) / relative, content)
    for dataset, info in data.manifest["datasets"].items():
        sizes = ", ".join(f"{split} {s['examples']:,}" for split, s in info["splits"].items())
        print(f"{dataset}: {sizes} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
