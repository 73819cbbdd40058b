"""Time a full scripted evaluation: five domains x four pools, 16 episodes per opponent.

Target (issue 2): under 10 s on the 2-core CPU machine, bootstrap CIs included.
Run: python benchmarks/evaluate_scripted.py [--episodes 16]
"""

from __future__ import annotations

import argparse
import time

from sepo.config import load_params
from sepo.evaluation import evaluate_policy
from sepo.games import GAME_NAMES
from sepo.rollout import ScriptedAgent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--episodes", type=int, default=16)
    args = parser.parse_args()
    params = load_params(args.params)
    total_start = time.perf_counter()
    decisions = 0
    for game in GAME_NAMES:
        # the first demonstrator of the mixture plays the agent's seat
        name = next(iter(params.games[game].demonstrators))
        start = time.perf_counter()
        _, played = evaluate_policy(params, game, ScriptedAgent(params.strategy(game, name)),
                                    episodes=args.episodes)
        n = sum(len(p.record.decisions) for p in played)
        decisions += n
        print(f"{game:18s} agent={name:14s} episodes={len(played):4d} decisions={n:5d} "
              f"seconds={time.perf_counter() - start:6.2f}")
    elapsed = time.perf_counter() - total_start
    print(f"total: {decisions} decisions in {elapsed:.2f} s ({decisions / elapsed:.0f} decisions/s); "
          f"target < 10 s: {'met' if elapsed < 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
