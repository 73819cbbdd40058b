"""Where a paired difference's spread comes from: each (pool, opponent) stratum's share of its bootstrap variance.

    python scripts/difference_variance.py ipd [--treated sepo --control sft] [--metric safety]

The paired SEPO − SFT interval of a domain (``metrics/comparisons.json``) is
a bootstrap over episodes, resampled within each (pool, opponent) stratum
(``sepo.bootstrap``).  This resamples one stratum at a time, all others held
at their observed episodes, and prints each stratum's variance of the
difference beside the variance with every stratum resampled.  The strata
are independent, so the parts add up to about the whole; a width that one
opponent's episodes carry can be bought with that opponent's episodes
(issue 16: 91% of IPD's is AlwaysDefect's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sepo.bootstrap import Strata
from sepo.config import load_params
from sepo.episode_log import read_episodes
from sepo.games.protocol import EpisodeRecord, Game
from sepo.metrics import PAIRED_METRICS, metric_samples


def stratum_variances(game: Game, treated: list[EpisodeRecord], control: list[EpisodeRecord],
                      weights: dict[str, float], metric: str, samples: int,
                      seed: int) -> tuple[float, dict[tuple[str, str], float]]:
    """(variance of treated − control with every stratum resampled, the variance with only each one resampled)."""
    strata = Strata.of(control)
    strata.require_aligned(Strata.of(treated))
    rng = np.random.default_rng(seed)
    observed = np.arange(len(strata.order))  # bootstrap indices are positions in the strata's order

    def variance(indices: np.ndarray) -> float:
        _, t = metric_samples(game, treated, weights, indices)
        _, c = metric_samples(game, control, weights, indices)
        return float(np.var(t[metric] - c[metric]))

    whole = variance(strata.sample_indices(samples, rng))
    parts = {}
    for stratum, start, size in zip(strata.strata, strata.starts, strata.sizes, strict=True):
        indices = np.tile(observed, (samples, 1))
        indices[:, start:start + size] = observed[start + rng.integers(0, size, size=(samples, size))]
        parts[stratum] = variance(indices)
    return whole, parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("game")
    parser.add_argument("--treated", default="sepo", help="row (folder of metrics/eval) of the treated policy")
    parser.add_argument("--control", default="sft", help="row of the control policy")
    parser.add_argument("--metric", default="safety", choices=PAIRED_METRICS)
    parser.add_argument("--eval", default="metrics/eval", help="evaluation results folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    logs = {row: Path(args.eval) / row / f"{args.game}.episodes.jsonl.gz" for row in (args.treated, args.control)}
    missing = [str(p) for p in logs.values() if not p.is_file()]
    if missing:
        print(f"difference_variance: no episode log {', '.join(missing)} (dvc pull, or run the evaluate stages)",
              file=sys.stderr)
        return 2
    params = load_params(args.params)
    weights = params.games[args.game].report_weights.model_dump()
    whole, parts = stratum_variances(params.game(args.game), read_episodes(logs[args.treated]),
                                     read_episodes(logs[args.control]), weights, args.metric, args.samples, seed=0)
    print(f"{args.game}: {args.treated} − {args.control} {args.metric}, bootstrap variance {whole:.4f} "
          f"(sd {whole ** 0.5:.3f}, about ±{1.96 * whole ** 0.5:.3f}); each stratum resampled alone:")
    for (pool, opponent), part in sorted(parts.items(), key=lambda kv: -kv[1]):
        share = f"  ({part / whole:.0%})" if whole else ""
        print(f"  {pool:>9} {opponent:<20} {part:.4f}{share}")
    print(f"  sum of the parts {sum(parts.values()):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
