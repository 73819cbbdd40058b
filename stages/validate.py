"""DVC stage `validate`: Great Expectations suites over the SFT datasets.

    python stages/validate.py --params params.yaml --data data/sft \
        --report reports/sft_validation.json --metrics metrics/sft_validation.json

Writes the JSON report (per dataset and expectation: success, unexpected
count, a few unexpected values and ids) and its summary for ``dvc metrics``;
when any expectation fails it prints one line per failure and exits 1, so
``dvc repro`` stops before training.  Bad params: one line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.data.schema import SPLITS, split_path
from sepo.errors import ConfigError
from sepo.io import write_json_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("validate", __doc__)
    parser = stage.parser
    parser.add_argument("--data", default="data/sft", help="output folder of `generate` (default: data/sft)")
    parser.add_argument("--report", default="reports/sft_validation.json", help="full JSON report to write")
    parser.add_argument("--metrics", default="metrics/sft_validation.json", help="summary for `dvc metrics`")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        missing = [split_path(d, s) for d in params.data.datasets for s in SPLITS
                   if not (Path(args.data) / split_path(d, s)).is_file()]
        if missing:
            raise ConfigError(f"--data {args.data}: missing {', '.join(missing)}; run the generate stage first")
        from sepo.data.validation import failure_lines, metrics_summary, validate_datasets  # GX loads slowly

        report = validate_datasets(params, args.data)  # an unreadable file or a missing column: ConfigError
    except ConfigError as exc:
        return stage.input_error(exc)
    write_json_atomic(args.report, report)
    write_json_atomic(args.metrics, {**metrics_summary(report), "wall_time_s": stage.wall_time_s()})
    for dataset, result in report["datasets"].items():
        print(f"{dataset}: {len(result['checks']) - len(result['failed'])}/{len(result['checks'])} expectations met")
    if not report["success"]:
        for line in failure_lines(report):
            print(line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
