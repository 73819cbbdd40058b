"""Evaluating one model policy on all five domains against every pool: wall time per phase.

Issue 6's target: with the tiny model, all five domains × all pools at
``eval.episodes`` (16) per opponent in under 2 minutes on the 2-core CPU
machine.  The domains' episodes advance together in one lockstep run
(``sepo.evaluation.evaluate_games``, as ``sepo evaluate --game all`` does),
then Kuhn's 12-infoset table is read from the model's action probabilities.
For comparison it also times the domains one after another with the same
policy (what the per-domain ``evaluate_*`` DVC stages do, each in its own
process); which is faster depends on whether a batched step is bound by
fixed overhead or by reading the cache.

Run: python benchmarks/evaluate_model.py [--model data/models/sft] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from sepo.config import load_params
from sepo.evaluation import evaluate_games, evaluate_policy, with_audit_fields
from sepo.games import GAME_NAMES
from sepo.policies.model import load_model_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/sft")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-sequential", action="store_true", help="only the joint run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)

    start = time.perf_counter()
    policy = load_model_policy(args.model, params)
    loaded = time.perf_counter()
    played = evaluate_games(params, GAME_NAMES, policy, batch_size=params.generation.batch_size)
    games_done = time.perf_counter()
    results = {g: with_audit_fields(params, g, policy, *played[g])[0] for g in GAME_NAMES}
    total = time.perf_counter() - start
    decisions = sum(r["metrics"]["decision_count"] for r in results.values())
    episodes = sum(r["metrics"]["episode_count"] for r in results.values())
    print(f"all five domains in lockstep: {episodes} episodes, {decisions} decisions, "
          f"{params.eval.episodes} per opponent")
    print(f"  load {loaded - start:.1f} s, play+metrics {games_done - loaded:.1f} s, "
          f"strategy audits {total - (games_done - start):.1f} s; total {total:.1f} s "
          f"({decisions / (games_done - loaded):.1f} decisions/s)")
    print(f"  target < 120 s: {'met' if total < 120 else 'MISSED'}")
    if not args.skip_sequential:
        start = time.perf_counter()
        for game in GAME_NAMES:
            evaluate_policy(params, game, policy, batch_size=params.generation.batch_size)
        sequential = time.perf_counter() - start
        print(f"domains one after another (same policy, no strategy audit): {sequential:.1f} s "
              f"(joint run / one after another: {(games_done - loaded) / sequential:.2f})")


if __name__ == "__main__":
    main()
