"""DVC stage `params`: validate params.yaml before any stage that reads it runs.

    python stages/check_params.py --params params.yaml --out reports/params_ok.txt

Every other stage depends on ``--out``.  ``dvc repro`` removes a stage's
outputs before running its command, so a bad value caught only by the stage
itself (exit 2) would already have cost that stage's previous outputs.  This
stage runs first, on every change of params.yaml, and fails with the same
one-line error while every earlier output is still in place.  Its output is
the same line for any valid params, so it never makes another stage stale.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import write_text_atomic
from sepo.stage import Stage

#: the whole content of the output for valid params (constant, so downstream stages stay cached)
VALID = "params valid\n"


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("params", __doc__)
    stage.parser.add_argument("--out", default="reports/params_ok.txt", help="stamp written when params are valid")
    args = stage.parse(argv)
    try:
        load_params(args.params)
    except ConfigError as exc:
        return stage.input_error(exc)
    write_text_atomic(args.out, VALID)
    return 0


if __name__ == "__main__":
    sys.exit(main())
