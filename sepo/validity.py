"""Invalid-action rate per domain inside full episodes (the SFT acceptance check).

The format a model has learned shows in how often its replies fail to name a
legal action.  Measured where it matters: whole multi-turn episodes against
every pool's opponents, with the policy's own sampling settings (the
evaluation temperature), all domains advancing together in one lockstep run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sepo.config import Params
from sepo.evaluation import evaluation_specs
from sepo.games import GAME_NAMES
from sepo.games.protocol import POOLS
from sepo.rollout import AgentPolicy, EpisodeSpec, PlayedEpisode, play_episodes


def validity_specs(params: Params, min_decisions: int, seed: int) -> list[EpisodeSpec]:
    """Evaluation episodes of every domain, enough for ``min_decisions`` agent decisions each.

    Every opponent of every pool plays the same number of episodes; a round
    holds at least one agent decision, so rounds bound the count from below.
    """
    specs = []
    for game in GAME_NAMES:
        spec = params.games[game]
        opponents = sum(len(spec.pools.of(pool)) for pool in POOLS)
        specs += evaluation_specs(params, game, math.ceil(min_decisions / (opponents * spec.rounds)), seed)
    return specs


def invalid_rates(played: list[PlayedEpisode]) -> dict[str, dict[str, Any]]:
    """game -> decisions, invalid decisions and their share."""
    out: dict[str, dict[str, Any]] = {}
    for episode in played:
        counts = out.setdefault(episode.record.game, {"decisions": 0, "invalid": 0})
        counts["decisions"] += len(episode.record.decisions)
        counts["invalid"] += sum(not d.valid for d in episode.record.decisions)
    for counts in out.values():
        counts["invalid_rate"] = counts["invalid"] / counts["decisions"]
    return out


def measure_validity(params: Params, policy: AgentPolicy,
                     on_step: Callable[[int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Invalid-action rates of ``policy`` per domain over ``sft_validity`` episodes."""
    specs = validity_specs(params, params.sft_validity.min_decisions, params.sft_validity.seed)
    return invalid_rates(play_episodes(specs, policy, batch_size=params.generation.batch_size, on_step=on_step))
