"""Scoring the played policy (Kuhn's audit): kept per-episode prefixes against whole contexts, side by side.

``sepo.policies.action_scores.scored_records`` scores every decision of an
episode after its own reply.  Decision k's context is a prefix of decision
k + 1's, so it scores decision k of every episode together, keeps each
episode's keys/values and runs only the new tokens of the next one.  This
script times that against scoring every context whole (the previous
method) on the same played episodes, checks that the probabilities agree,
and prints the ratio.

Run: python benchmarks/played_scores.py [--model data/models/sft] [--game kuhn] [--episodes 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from sepo.config import load_params
from sepo.evaluation import evaluation_specs
from sepo.games.parsing import reply_before_action
from sepo.policies.action_scores import probabilities_from_scores, scored_records
from sepo.policies.model import load_model_policy
from sepo.rollout import play_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/sft")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--game", default="kuhn")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per opponent")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    policy = load_model_policy(args.model, params)
    played = play_episodes(evaluation_specs(params, args.game, args.episodes, params.eval.seed), policy,
                           batch_size=params.generation.batch_size)

    start = time.perf_counter()
    kept = scored_records(policy, played)
    kept_s = time.perf_counter() - start

    start = time.perf_counter()
    contexts, legal, where = [], [], []
    for e, episode in enumerate(played):
        for k, decision in enumerate(episode.record.decisions):
            head = reply_before_action(decision.reply)
            if head is not None:
                contexts.append(policy.render(episode.messages[:2 * k + 2]) + head)
                legal.append(decision.legal_actions)
                where.append((e, k))
    whole = policy.action_log_scores(contexts, legal)
    whole_s = time.perf_counter() - start

    s = policy.sampling
    worst = max((abs(p - kept[e].decisions[k].probabilities[a])
                 for (e, k), scores in zip(where, whole, strict=True)
                 for a, p in probabilities_from_scores(scores, s.temperature, s.greedy, s.top_p, s.top_k).items()),
                default=0.0)
    print(f"{args.game}: {len(contexts)} scored decisions in {len(played)} episodes")
    print(f"  kept prefixes  {kept_s:7.1f} s")
    print(f"  whole contexts {whole_s:7.1f} s")
    print(f"  ratio (whole / kept) {whole_s / kept_s:.2f}; largest probability difference {worst:.1e}")


if __name__ == "__main__":
    main()
