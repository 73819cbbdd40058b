"""DVC stage `compare`: paired SEPO − SFT differences per domain (SPEC section 4).

    python stages/compare.py --params params.yaml --eval metrics/eval --out metrics/comparisons.json

Reads each domain's ``<row>/<game>.json`` and episode log of both rows (they
are evaluated on the same seeds) and writes, per domain, treated − control
of exploit, collusion, externality and safety, and of the domain's audit
scalars (Kuhn NashConv), each with its paired-bootstrap interval
(``sepo.comparison``).  Where replicate SEPO runs were evaluated (rows
``<treated>-seed<k>``, stage ``evaluate_sepo_replicate``), it also writes
each replicate's difference and the mean over all seeds with a joint paired
bootstrap (``pooled``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import write_json_atomic
from sepo.replicates import replicate_rows
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("compare", __doc__)
    parser = stage.parser
    parser.add_argument("--eval", default="metrics/eval", help="folder of the evaluate stages' outputs")
    parser.add_argument("--treated", default="sepo", help="row compared (default: sepo)")
    parser.add_argument("--control", default="sft", help="row compared against (default: sft)")
    parser.add_argument("--out", default="metrics/comparisons.json", help="metrics JSON")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        rows = {}
        for row in (args.treated, args.control):
            for game in params.games:
                path = Path(args.eval) / row / f"{game}.json"
                if not path.is_file():
                    raise ConfigError(f"{path}: no evaluation result; run the evaluate stages first")
                rows[row, game] = (json.loads(path.read_text()), path.with_suffix(".episodes.jsonl.gz"))
    except ConfigError as exc:
        return stage.input_error(exc)
    from sepo.comparison import pooled_difference, row_difference
    from sepo.episode_log import read_episodes

    settings = {"bootstrap_samples": params.eval.bootstrap_samples, "confidence": params.eval.confidence,
                "seed": params.eval.seed}
    differences, replicates, pooled = {}, {}, {}
    for game in params.games:
        (treated, treated_log), (control, control_log) = rows[args.treated, game], rows[args.control, game]
        control_row = (control, read_episodes(control_log))
        seeds = {args.treated: (treated, read_episodes(treated_log))}
        for name in replicate_rows(args.eval, args.treated, game):
            path = Path(args.eval) / name / f"{game}.json"
            seeds[name] = (json.loads(path.read_text()), read_episodes(path.with_suffix(".episodes.jsonl.gz")))
        differences[game] = row_difference(params.game(game), seeds[args.treated], control_row, **settings)
        if len(seeds) > 1:
            replicates[game] = {name: row_difference(params.game(game), row, control_row, **settings)
                                for name, row in seeds.items() if name != args.treated}
            pooled[game] = {"rows": sorted(seeds), **pooled_difference(params.game(game), list(seeds.values()),
                                                                       control_row, **settings)}
    out = {"treated": args.treated, "control": args.control, "confidence": params.eval.confidence,
           "differences": differences, "replicates": replicates, "pooled": pooled,
           "wall_time_s": stage.wall_time_s()}
    write_json_atomic(args.out, out)
    for game, d in differences.items():
        print(f"{game:18s} " + "  ".join(f"{k}={v['value']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"
                                         for k, v in d.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
