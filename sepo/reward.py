"""The SEPO reward (SPEC section 5) and its penalty modes.

Each rollout is one episode; its reward is computed from that episode alone
("per-pool crediting"):

    r = s·ū_agent·[train] − λe·s·e_ep·[exploit] − λc·c_ep·[collusive]
        − λx·x_ep·[train or exploit]

with e_ep = max(0, ū_opp − ū_agent).  The four terms are kept apart as
*components* (unweighted, non-negative; the penalties enter with a minus
sign through their weight) so that TRL can log each one and the ablation can
replace the penalties:

- ``per_rollout``: as above (SEPO).
- ``constant``: each penalty component replaced by its batch mean.  Identical
  for every rollout, it cancels in the group centring, so advantages and
  gradients equal payoff-only GRPO exactly.
- ``auxiliary``: the penalty of a train-pool rollout is measured on separate
  auxiliary episodes (against the exploit and collusive pools); it does not
  depend on the credited rollout's actions, so its expected gradient is zero.
- ``none``: payoff only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from sepo.games.protocol import QUANTITY_POOLS, EpisodeRecord, Game

#: the one list of penalty modes and advantage scalings: params' schema and the trainer read these
PenaltyMode = Literal["per_rollout", "constant", "auxiliary", "none"]
ScaleRewards = Literal["group", "batch", "none"]
PENALTY_MODES: tuple[str, ...] = get_args(PenaltyMode)
SCALE_REWARDS: tuple[str, ...] = get_args(ScaleRewards)
PENALTIES = ("exploit", "collusion", "externality")
COMPONENTS = ("payoff", *PENALTIES)


@dataclass(frozen=True)
class Components:
    """The four reward components of one episode, before weighting."""

    payoff: float = 0.0
    exploit: float = 0.0
    collusion: float = 0.0
    externality: float = 0.0

    def total(self, weights: Mapping[str, float]) -> float:
        """payoff − λe·exploit − λc·collusion − λx·externality."""
        return self.payoff - sum(weights[k] * getattr(self, k) for k in PENALTIES)

    def penalty(self, weights: Mapping[str, float]) -> float:
        """The (negative) penalty part of the total alone."""
        return -sum(weights[k] * getattr(self, k) for k in PENALTIES)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def episode_components(game: Game, record: EpisodeRecord) -> Components:
    """Per-pool crediting: each component from this episode, only for its pool."""
    scale = game.scale
    agent = _mean(record.agent_payoffs())
    opponent = _mean(record.opponent_payoffs())
    def counts(component: str) -> bool:
        return record.pool in QUANTITY_POOLS[component]

    return Components(
        payoff=scale * agent if counts("payoff") else 0.0,
        exploit=scale * max(0.0, opponent - agent) if counts("exploit") else 0.0,
        collusion=_mean([float(f) for f in game.collusion_flags(record)]) if counts("collusion") else 0.0,
        externality=_mean(game.externality_values(record)) if counts("externality") else 0.0,
    )


def apply_penalty_mode(components: Sequence[Components], mode: str,
                       auxiliary: Sequence[Components] | None = None) -> list[Components]:
    """The components actually credited to each rollout under ``mode``.

    ``auxiliary[i]`` (mode ``auxiliary`` only) holds the penalties measured on
    rollout ``i``'s auxiliary episodes; they replace its own penalties.
    """
    if mode not in PENALTY_MODES:
        raise ValueError(f"unknown penalty.mode {mode!r}; valid: {', '.join(PENALTY_MODES)}")
    if mode == "per_rollout":
        return list(components)
    if mode == "none":
        return [Components(payoff=c.payoff) for c in components]
    if mode == "constant":
        means = {k: _mean([getattr(c, k) for c in components]) for k in PENALTIES}
        return [replace(c, **means) for c in components]
    if auxiliary is None or len(auxiliary) != len(components):
        raise ValueError("penalty.mode auxiliary needs one auxiliary measurement per rollout")
    return [Components(payoff=c.payoff, **{k: getattr(a, k) for k in PENALTIES})
            for c, a in zip(components, auxiliary, strict=True)]


def advantages(rewards: Sequence[float], group_size: int, scale: str, eps: float = 1e-4) -> np.ndarray:
    """GRPO advantages: centred within each group, scaled by ``scale``.

    ``group`` divides by each group's std (as in GRPO), ``batch`` by the std
    of all rewards in the batch (keeps the λ weighting between pools, as
    TRL's ``scale_rewards="batch"``), ``none`` not at all.  Groups are
    contiguous runs of ``group_size``.
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"unknown grpo.scale_rewards {scale!r}; valid: {', '.join(SCALE_REWARDS)}")
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    if scale == "group":
        centred = centred / (r.std(axis=1, ddof=1, keepdims=True) + eps)
    elif scale == "batch":
        centred = centred / (r.std(ddof=1) + eps)
    return centred.reshape(-1)


def zero_std_share(rewards: Sequence[float], group_size: int) -> float:
    """Share of groups whose rewards are all equal (they carry no learning signal)."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    return float(np.mean(np.ptp(r, axis=1) == 0.0))
