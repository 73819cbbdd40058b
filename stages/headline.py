"""DVC stage `headline`: the small metrics file DVC's views show (issue 18).

    python stages/headline.py --params params.yaml --eval metrics/eval --out metrics/headline.json

Reads every domain's evaluation of the base, SFT and SEPO rows, SEPO's
replicate seeds where they were evaluated, and the scripted reference rows
(``eval.references``), and writes per domain and row pay, exploit, safety,
NRA, invalid-action rate and (Kuhn) NashConv, values only
(``sepo.headline``).  A missing or malformed evaluation is one line, exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sepo.config import MODEL_ROWS, load_params
from sepo.errors import ConfigError
from sepo.headline import headline
from sepo.io import write_json_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("headline", __doc__)
    parser = stage.parser
    parser.add_argument("--eval", default="metrics/eval", help="folder of the evaluate stages' outputs")
    parser.add_argument("--out", default="metrics/headline.json", help="headline metrics JSON")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        rows = {game: [*MODEL_ROWS, *sorted(params.eval.references.get(game, {}))] for game in params.games}
        table = headline(args.eval, rows)
    except ConfigError as exc:
        return stage.input_error(exc)
    write_json_atomic(args.out, table)
    for game, game_rows in table.items():
        for row, values in game_rows.items():
            print(f"{game:18s} {row:12s} " + "  ".join(f"{k}={v:+.3f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
