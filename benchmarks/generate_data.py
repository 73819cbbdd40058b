"""Time generating and validating the paper-sized SFT datasets (the `generate` and `validate` stages).

Targets (issue 3) on the 2-core CPU machine: generation under 30 s, validation
under 60 s. Also prints the size of every file (what the release remote holds).
Run: python benchmarks/generate_data.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sepo.config import load_params
from sepo.data.files import output_files
from sepo.data.sft import generate_datasets
from sepo.io import write_bytes_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        data = generate_datasets(params)
        played = time.perf_counter() - start
        files = output_files(data, params)
        for relative, content in files.items():
            write_bytes_atomic(Path(folder) / relative, content)
        generated = time.perf_counter() - start
        examples = sum(s["examples"] for d in data.manifest["datasets"].values() for s in d["splits"].values())
        print(f"generate: {examples} examples in {generated:.1f} s (episodes {played:.1f} s, "
              f"Parquet and card {generated - played:.1f} s); target < 30 s: "
              f"{'met' if generated < 30 else 'MISSED'}")
        for relative, content in sorted(files.items()):
            print(f"  {relative:28s} {len(content) / 1e6:7.3f} MB")
        print(f"  {'total':28s} {sum(len(c) for c in files.values()) / 1e6:7.3f} MB")

        start = time.perf_counter()
        from sepo.data.validation import validate_datasets  # the import is part of the stage's cost

        report = validate_datasets(params, folder)
        validated = time.perf_counter() - start
        checks = sum(len(d["checks"]) for d in report["datasets"].values())
        print(f"validate: {checks} expectations over {examples} examples in {validated:.1f} s "
              f"(success: {report['success']}); target < 60 s: {'met' if validated < 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
