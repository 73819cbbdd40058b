"""Lockstep rollouts vs one episode at a time: decisions per second with the same model and decoding.

Plays the same mixed-domain episodes (every domain, cycling through its
training-pool opponents) twice with ``params.generation``'s sampling: all at
once through the lockstep engine, then one episode at a time through the
same engine.  Target (issue 4): lockstep at least 10x faster with the tiny
model on the 2-core CPU machine.

Run: python benchmarks/rollout.py [--model data/models/sft] [--episodes-per-domain 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from sepo.config import load_params
from sepo.games import GAME_NAMES
from sepo.policies.model import load_model_policy
from sepo.rollout import EpisodeSpec, PlayedEpisode, play_episodes


def mixed_specs(params, per_domain: int) -> list[EpisodeSpec]:
    specs = []
    for game in GAME_NAMES:
        opponents = params.pool(game, "train")
        specs += [EpisodeSpec(params.game(game), opponents[i % len(opponents)], "train", 1000 + i)
                  for i in range(per_domain)]
    return specs


def summary(played: list[PlayedEpisode], seconds: float) -> tuple[int, float, str]:
    replies = [r for p in played for r in p.replies]
    tokens = sum(len(r.extras["token_ids"]) for r in replies)
    invalid = sum(not r.valid for r in replies)
    return len(replies), len(replies) / seconds, (f"{len(replies)} decisions in {seconds:.1f} s, "
                                                  f"{tokens / len(replies):.1f} tokens/reply, "
                                                  f"invalid {invalid / len(replies):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="data/models/sft", help="model directory (default: the SFT model)")
    parser.add_argument("--episodes-per-domain", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of the params' sampling")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    specs = mixed_specs(params, args.episodes_per_domain)
    greedy = True if args.greedy else None
    print(f"{len(specs)} episodes ({args.episodes_per_domain} per domain), model {args.model}, "
          f"{args.threads} thread(s), batch cap {params.generation.batch_size}")

    start = time.perf_counter()
    lockstep = play_episodes(specs, load_model_policy(args.model, params, greedy),
                             batch_size=params.generation.batch_size)
    _, lockstep_rate, text = summary(lockstep, time.perf_counter() - start)
    print(f"lockstep:            {lockstep_rate:7.2f} decisions/s  ({text})")

    policy = load_model_policy(args.model, params, greedy)
    start = time.perf_counter()
    alone = [play_episodes([spec], policy)[0] for spec in specs]
    _, alone_rate, text = summary(alone, time.perf_counter() - start)
    print(f"one episode at once: {alone_rate:7.2f} decisions/s  ({text})")
    ratio = lockstep_rate / alone_rate
    print(f"ratio: {ratio:.1f}x; target >= 10x: {'met' if ratio >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
