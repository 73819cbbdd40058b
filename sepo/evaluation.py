"""Evaluate one policy on one domain against every opponent of every pool.

The same function serves scripted and model policies: episodes are played by
the lockstep engine and scored by ``sepo.metrics``.  Seeds are derived from
(base seed, domain, pool, opponent, index) by hashing, so adding an opponent
never changes another opponent's episodes and a run is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sepo.config import Params
from sepo.games.protocol import POOLS
from sepo.metrics import evaluate_episodes
from sepo.rollout import AgentPolicy, EpisodeSpec, PlayedEpisode, play_episodes


def episode_seed(base: int, game: str, pool: str, opponent: str, index: int) -> int:
    """A stable 63-bit seed for one evaluation episode."""
    digest = hashlib.sha256(f"{base}/{game}/{pool}/{opponent}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def evaluation_specs(params: Params, game_name: str, episodes: int, seed: int) -> list[EpisodeSpec]:
    """Every (pool, opponent, episode) of a domain's evaluation, in a fixed order."""
    game = params.game(game_name)
    specs = []
    for pool in POOLS:
        for opponent in params.pool(game_name, pool):
            for index in range(episodes):
                specs.append(EpisodeSpec(game, opponent, pool,
                                         episode_seed(seed, game_name, pool, opponent.name, index)))
    return specs


def evaluate_policy(params: Params, game_name: str, policy: AgentPolicy, *, episodes: int | None = None,
                    seed: int | None = None, batch_size: int | None = None,
                    on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[PlayedEpisode]]:
    """All metrics of SPEC section 4 with bootstrap CIs, and the played episodes."""
    episodes = params.eval.episodes if episodes is None else episodes
    seed = params.eval.seed if seed is None else seed
    specs = evaluation_specs(params, game_name, episodes, seed)
    played = play_episodes(specs, policy, batch_size=batch_size, on_step=on_step)
    game = specs[0].game
    metrics = evaluate_episodes(
        game, [p.record for p in played], params.games[game_name].report_weights.model_dump(),
        bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence, seed=seed)
    result: dict[str, Any] = {
        "game": game_name,
        "episodes_per_opponent": episodes,
        "seed": seed,
        "metrics": metrics,
    }
    return result, played


def kuhn_strategy_report(policy_table: dict[str, float], alpha: float) -> dict[str, Any]:
    """The exact Kuhn numbers for a policy table: NashConv, exploitability, key frequencies."""
    from sepo.exploitability import (
        equilibrium_frequencies,
        exploitability,
        nash_conv,
        strategy_frequencies,
    )

    return {
        "policy_table": dict(sorted(policy_table.items())),
        "nash_conv": nash_conv(policy_table),
        "exploitability": exploitability(policy_table),
        "frequencies": strategy_frequencies(policy_table),
        "equilibrium_frequencies": equilibrium_frequencies(alpha),
    }
