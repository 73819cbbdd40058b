"""Demonstrator episodes turned into the SFT example tables (SPEC section 6).

One example is one decision of a demonstrator: the prompt is the episode's
chat up to that decision (system rules, earlier states and the
demonstrator's earlier replies, the current state last), the completion is
its reply (templated reasoning ending in ``Action: X``).  Episodes are played
by the lockstep engine with the same chat the models see in training and
evaluation.

How the sizes come out exact:

- a dataset's examples of a split are shared equally between its domains,
  and a domain's between its demonstrators by the params mixture, both with
  largest-remainder rounding, so every count is an integer, the totals are
  exact and a demonstrator's share of its domain misses the mixture by less
  than one example;
- the episodes of one (split, domain, demonstrator) are played until that
  quota of examples is reached; the last one used may be cut short (its
  final decisions dropped, every kept example still has its whole prefix),
  and episodes played beyond the quota are discarded.  Kuhn hands have one or
  two agent decisions, so only this rule makes Kuhn's counts exact;
- opponents cycle through the domain's training pool in its params order.

Train and valid are split by episode: every episode is played for exactly one
split, from a seed hashed from (data.seed, dataset, split, domain,
demonstrator, index), so the splits share no episode and the same params give
the same rows.  Rows are then shuffled with a seeded permutation so that any
prefix of a file mixes domains and demonstrators.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sepo.config import Params
from sepo.data.reasoning import DemonstratorAgent
from sepo.data.schema import GENERATOR_VERSION, SCHEMA, SPLITS, split_path
from sepo.rollout import EpisodeSpec, PlayedEpisode, play_episodes

TRAIN_POOL = "train"


def largest_remainder(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total`` in proportion to ``shares`` (Hamilton's method).

    Leftover units go to the largest fractional parts, ties to the earlier
    name, so the result is deterministic.
    """
    weight = sum(shares.values())
    exact = {name: total * share / weight for name, share in shares.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(shares, key=lambda name: (-(exact[name] - counts[name]), list(shares).index(name)))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


@dataclass(frozen=True)
class Quota:
    """How many examples one demonstrator contributes to one domain of one split of a dataset."""

    dataset: str
    split: str
    game: str
    demonstrator: str
    examples: int


def plan_quotas(params: Params) -> list[Quota]:
    """Every (dataset, split, domain, demonstrator) quota, in a fixed order."""
    quotas = []
    for dataset, spec in params.data.datasets.items():
        for split in SPLITS:
            total = spec.train_examples if split == "train" else spec.valid_examples
            per_game = largest_remainder(total, dict.fromkeys(spec.games, 1.0))
            for game, game_examples in per_game.items():
                mixture = params.games[game].demonstrators
                for demonstrator, n in largest_remainder(game_examples, mixture).items():
                    if n:
                        quotas.append(Quota(dataset, split, game, demonstrator, n))
    return quotas


def episode_seed(base: int, quota: Quota, index: int) -> int:
    """A stable 63-bit seed for one demonstration episode."""
    key = f"{base}/{quota.dataset}/{quota.split}/{quota.game}/{quota.demonstrator}/{index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def episode_examples(played: PlayedEpisode, quota: Quota, episode_id: str, seed: int) -> Iterator[dict[str, Any]]:
    """One row per decision of a played episode, in decision order."""
    messages = played.messages
    for k, decision in enumerate(played.record.decisions):
        reply = messages[2 * k + 2]
        if reply["role"] != "assistant":
            raise AssertionError(f"episode {episode_id}: message {2 * k + 2} is not the reply to decision {k}")
        yield {
            "id": f"{episode_id}/{k}",
            "episode_id": episode_id,
            "episode_seed": seed,
            "dataset": quota.dataset,
            "game": quota.game,
            "demonstrator": quota.demonstrator,
            "opponent": played.record.opponent,
            "round": decision.round,
            "prompt": messages[: 2 * k + 2],
            "completion": [reply],
            "action": decision.action,
            "legal_actions": list(decision.legal_actions),
        }


def quota_examples(params: Params, quota: Quota) -> tuple[list[dict[str, Any]], int]:
    """Play a quota's episodes; its rows and the number of episodes they come from.

    Every round has at least one agent decision, so ``ceil(missing / rounds)``
    more episodes always suffice; the loop only guards that assumption.
    """
    game = params.game(quota.game)
    opponents = params.pool(quota.game, TRAIN_POOL)
    agent = DemonstratorAgent(params.strategy(quota.game, quota.demonstrator))
    rows: list[dict[str, Any]] = []
    episodes_used = 0
    next_index = 0
    while len(rows) < quota.examples:
        batch = range(next_index, next_index + math.ceil((quota.examples - len(rows)) / game.rounds))
        seeds = [episode_seed(params.data.seed, quota, i) for i in batch]
        specs = [EpisodeSpec(game, opponents[i % len(opponents)], TRAIN_POOL, seed)
                 for i, seed in zip(batch, seeds, strict=True)]
        for index, seed, played in zip(batch, seeds, play_episodes(specs, agent), strict=True):
            if len(rows) == quota.examples:
                break
            episode_id = f"{quota.dataset}/{quota.split}/{quota.game}/{quota.demonstrator}/{index:05d}"
            examples = list(episode_examples(played, quota, episode_id, seed))
            rows.extend(examples[: quota.examples - len(rows)])
            episodes_used += 1
        next_index = batch.stop
    return rows, episodes_used


@dataclass
class GeneratedData:
    """The example tables (dataset -> split -> table) and the manifest describing them."""

    tables: dict[str, dict[str, pa.Table]]
    manifest: dict[str, Any]


def _counts(rows: list[dict[str, Any]], episodes: Counter, game: str) -> dict[str, Any]:
    game_rows = [r for r in rows if r["game"] == game]
    by_demonstrator = Counter(r["demonstrator"] for r in game_rows)
    by_opponent = Counter(r["opponent"] for r in game_rows)
    return {
        "examples": len(game_rows),
        "episodes": sum(n for (g, _), n in episodes.items() if g == game),
        "demonstrators": {d: {"examples": by_demonstrator[d], "episodes": episodes[(game, d)]}
                          for d in sorted(by_demonstrator)},
        "opponents": {o: by_opponent[o] for o in sorted(by_opponent)},
    }


def generate_datasets(params: Params, on_quota: Callable[[Quota, int], None] | None = None) -> GeneratedData:
    """Play every quota of ``params.data`` and build the tables and the manifest.

    ``on_quota(quota, examples)`` is told after each quota (progress bars).
    """
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    episodes: dict[tuple[str, str], Counter] = {}
    for quota in plan_quotas(params):
        quota_rows, used = quota_examples(params, quota)
        rows.setdefault((quota.dataset, quota.split), []).extend(quota_rows)
        episodes.setdefault((quota.dataset, quota.split), Counter())[(quota.game, quota.demonstrator)] += used
        if on_quota is not None:
            on_quota(quota, len(quota_rows))

    tables: dict[str, dict[str, pa.Table]] = {}
    manifest_datasets: dict[str, Any] = {}
    for dataset, spec in params.data.datasets.items():
        tables[dataset] = {}
        splits = {}
        for split in SPLITS:
            split_rows = rows.get((dataset, split), [])
            random.Random(f"{params.data.seed}/{dataset}/{split}/order").shuffle(split_rows)
            tables[dataset][split] = pa.Table.from_pylist(split_rows, schema=SCHEMA)
            split_episodes = episodes.get((dataset, split), Counter())
            splits[split] = {
                "file": split_path(dataset, split),
                "examples": len(split_rows),
                "num_bytes": tables[dataset][split].nbytes,  # in memory, as the Hub's split info counts
                "episodes": sum(split_episodes.values()),
                "games": {g: _counts(split_rows, split_episodes, g) for g in spec.games},
            }
        manifest_datasets[dataset] = {"games": list(spec.games), "splits": splits}
    manifest = {
        "generator": "sepo.data.sft",
        "generator_version": GENERATOR_VERSION,
        "seed": params.data.seed,
        "opponent_pool": TRAIN_POOL,
        "datasets": manifest_datasets,
    }
    return GeneratedData(tables, manifest)
