"""Lockstep rollouts vs one episode at a time: decisions per second with the same model and decoding.

Plays the same mixed-domain episodes (every domain, cycling through its
training-pool opponents) three times with ``params.generation``'s sampling:

1. all at once through the lockstep engine (``ModelPolicy``: batched decode
   loop, rows stop at their ``Action:`` line, per-episode KV prefix reuse);
2. one episode at a time through the same engine and policy, which isolates
   what batching alone buys;
3. one episode at a time with a plain loop: ``model.generate`` on each
   decision's whole chat (no cache kept between decisions), the naive way.

Target (issue 4): lockstep at least 10x faster than the one-at-a-time loop
with the tiny model on the 2-core CPU machine.  The default set is 320
episodes (64 per domain) on both cores: the lockstep arm's batch grows with
the episodes while a one-at-a-time loop's rate cannot, which is the point of
the engine (at 16 per domain the lockstep rate is about 25% lower).  The two
one-at-a-time arms take most of the ~9 minutes.

Run: python benchmarks/rollout.py [--model data/models/sft] [--episodes-per-domain 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from sepo.config import load_params
from sepo.games import GAME_NAMES
from sepo.policies.model import ModelPolicy, load_model_policy
from sepo.rollout import EpisodeSpec, PlayedEpisode, play_episodes


class PlainGenerate(ModelPolicy):
    """The naive per-decision loop: ``generate`` on the whole chat, one prompt at a time.

    Parsing and the constrained fallback are ``ModelPolicy``'s; only the
    sampling differs (transformers' own, stopping at end-of-turn tokens).
    """

    def generate(self, prompts, cache_keys=None, heads=None):
        out = []
        for prompt in prompts:
            ids = torch.tensor([self._encode(prompt)], device=self.device)
            s = self.sampling
            sampled = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=not s.greedy, temperature=s.temperature,
                top_p=s.top_p, top_k=s.top_k, max_new_tokens=s.max_new_tokens,
                eos_token_id=sorted(self.stop_ids), pad_token_id=self.tokenizer.pad_token_id)
            out.append((sampled[0, ids.shape[1]:].tolist(), []))
        return out


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
    parser.add_argument("--episodes-per-domain", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, every arm (default 2)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of the params' sampling")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    specs = mixed_specs(params, args.episodes_per_domain)
    greedy = True if args.greedy else None
    print(f"{len(specs)} episodes ({args.episodes_per_domain} per domain), model {args.model}, "
          f"{args.threads} thread(s), batch cap {params.generation.batch_size}")

    loaded = load_model_policy(args.model, params, greedy)

    def fresh(kind: type[ModelPolicy] = ModelPolicy) -> ModelPolicy:
        """A policy on the loaded model with nothing cached: every loop starts cold, none pays the loading."""
        return kind(loaded.model, loaded.tokenizer, loaded.sampling, seed=params.generation.seed)

    play_episodes(specs[:1], fresh())  # warm-up: the first forward passes pay one-time setup

    start = time.perf_counter()
    lockstep = play_episodes(specs, fresh(), batch_size=params.generation.batch_size)
    _, lockstep_rate, text = summary(lockstep, time.perf_counter() - start)
    print(f"lockstep:                      {lockstep_rate:7.2f} decisions/s  ({text})")

    policy = fresh()
    start = time.perf_counter()
    alone = [play_episodes([spec], policy)[0] for spec in specs]
    _, alone_rate, text = summary(alone, time.perf_counter() - start)
    print(f"one at a time, same engine:   {alone_rate:7.2f} decisions/s  ({text})")

    plain = fresh(PlainGenerate)
    start = time.perf_counter()
    naive = [play_episodes([spec], plain)[0] for spec in specs]
    _, naive_rate, text = summary(naive, time.perf_counter() - start)
    print(f"one at a time, plain generate: {naive_rate:7.2f} decisions/s  ({text})")
    for name, rate in (("same engine", alone_rate), ("plain generate", naive_rate)):
        ratio = lockstep_rate / rate
        print(f"lockstep vs one at a time ({name}): {ratio:.1f}x; target >= 10x: "
              f"{'met' if ratio >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
