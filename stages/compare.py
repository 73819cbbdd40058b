"""DVC stage `compare`: paired SEPO − SFT differences per domain (SPEC section 4).

    python stages/compare.py --params params.yaml --eval metrics/eval --out metrics/comparisons.json

Reads each domain's ``<row>/<game>.json`` and episode log of both rows (they
are evaluated on the same seeds) and writes, per domain, treated − control
of exploit, collusion, externality and safety, and of the domain's audit
scalars (Kuhn NashConv), each with its paired-bootstrap interval
(``sepo.comparison``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import write_json_atomic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--eval", default="metrics/eval", help="folder of the evaluate stages' outputs")
    parser.add_argument("--treated", default="sepo", help="row compared (default: sepo)")
    parser.add_argument("--control", default="sft", help="row compared against (default: sft)")
    parser.add_argument("--out", default="metrics/comparisons.json", help="metrics JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
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
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    from sepo.comparison import row_difference
    from sepo.episode_log import read_episodes

    differences = {}
    for game in params.games:
        (treated, treated_log), (control, control_log) = rows[args.treated, game], rows[args.control, game]
        differences[game] = row_difference(
            params.game(game), (treated, read_episodes(treated_log)), (control, read_episodes(control_log)),
            bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence,
            seed=params.eval.seed)
    out = {"treated": args.treated, "control": args.control, "confidence": params.eval.confidence,
           "differences": differences, "wall_time_s": round(time.perf_counter() - start, 1)}
    write_json_atomic(args.out, out)
    for game, d in differences.items():
        print(f"{game:18s} " + "  ".join(f"{k}={v['value']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"
                                         for k, v in d.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
