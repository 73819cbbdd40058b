"""The SEPO reward as four TRL reward functions, their weights and the penalty-only advantages.

The rollout forwards, per episode, the four *measured* components of that
episode (``measured_payoff`` ... ``measured_externality``, see
``sepo.reward.episode_components``) and, under ``penalty.mode=auxiliary``,
the penalties of its auxiliary episodes (``auxiliary_exploit`` ...).  Each
reward function returns one component *as credited* under the penalty mode
(``sepo.reward.apply_penalty_mode``), so TRL logs every component under its
own name (``rewards/exploit/mean``).

Sign convention: components are non-negative rates and advantages and the
weights carry the sign, ``reward_weights = [1, -λe, -λc, -λx]``, so TRL's
weighted sum is exactly ``Components.total`` and its logs read as the
penalties' sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sepo.games.protocol import QUANTITY_POOLS, EpisodeRecord, Game
from sepo.reward import (
    COMPONENTS,
    PENALTIES,
    SCALE_REWARDS,
    Components,
    apply_penalty_mode,
    episode_components,
)

#: the scale TRL adds to a standard deviation before dividing by it
STD_EPSILON = 1e-4


def episode_fields(game: Game, record: EpisodeRecord,
                   auxiliary: Sequence[EpisodeRecord] = ()) -> dict[str, Any]:
    """The per-episode values the rollout forwards to the reward functions and diagnostics."""
    measured = episode_components(game, record)
    fields: dict[str, Any] = {f"measured_{k}": getattr(measured, k) for k in COMPONENTS}
    aux = [episode_components(game, a) for a in auxiliary]
    fields.update({f"auxiliary_{k}": float(sum(getattr(a, k) for a in aux)) for k in PENALTIES})
    fields["pool"] = record.pool
    fields["invalid_decisions"] = sum(not d.valid for d in record.decisions)
    fields["decisions"] = len(record.decisions)
    return fields


def credited_components(fields: Mapping[str, Sequence[Any]], mode: str) -> list[Components]:
    """Each rollout's components as credited under ``mode`` (the whole batch: ``constant`` needs its mean)."""
    def column(prefix: str, names: Sequence[str]) -> list[Components]:
        count = len(fields["measured_payoff"])
        return [Components(**{k: float(fields[f"{prefix}_{k}"][i]) for k in names}) for i in range(count)]

    auxiliary = column("auxiliary", PENALTIES) if mode == "auxiliary" else None
    measured = column("measured", COMPONENTS)
    return apply_penalty_mode(measured, mode, auxiliary)


class ComponentReward:
    """A TRL reward function: one reward component of every rollout, credited under the penalty mode."""

    def __init__(self, component: str, mode: str) -> None:
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; valid: {', '.join(COMPONENTS)}")
        self.component = component
        self.mode = mode
        self.__name__ = component  # the name TRL logs it under

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **fields: Any) -> list[float]:
        return [getattr(c, self.component) for c in credited_components(fields, self.mode)]


def reward_functions(mode: str) -> list[ComponentReward]:
    """payoff, exploit, collusion, externality: in the order of ``reward_weights``."""
    return [ComponentReward(component, mode) for component in COMPONENTS]


def reward_weights(penalty_weights: Mapping[str, float]) -> list[float]:
    """TRL's ``reward_weights`` for ``reward_functions``: payoff +1, each penalty −λ."""
    return [1.0, *(-float(penalty_weights[k]) for k in PENALTIES)]


def penalty_advantages(credited: Sequence[Components], penalty_weights: Mapping[str, float], group_size: int,
                       scale: str) -> np.ndarray:
    """The penalty's share of each rollout's GRPO advantage.

    The penalty part of the reward is centred within its group and divided
    by the same scale as the total (TRL's group or batch std of the total
    reward), so the advantage of the total is the payoff's plus this.  A
    group whose penalties are all equal (every group under ``constant`` and
    ``none``) gets exactly 0, not a rounding residue, so the penalty-gradient
    norm of those modes is exactly 0.
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"unknown grpo.scale_rewards {scale!r}; valid: {', '.join(SCALE_REWARDS)}")
    totals = np.array([c.total(penalty_weights) for c in credited]).reshape(-1, group_size)
    penalties = np.array([c.penalty(penalty_weights) for c in credited]).reshape(-1, group_size)
    centred = penalties - penalties.mean(axis=1, keepdims=True)
    centred[np.ptp(penalties, axis=1) == 0.0] = 0.0
    if scale == "group":
        centred = centred / (totals.std(axis=1, ddof=1, keepdims=True) + STD_EPSILON)
    elif scale == "batch":
        centred = centred / (totals.std(ddof=1) + STD_EPSILON)
    return centred.reshape(-1)


def shifted_by_batch_mean(rewards_per_func: np.ndarray) -> np.ndarray:
    """Each component (column) minus its mean over the batch; a column equal on every row becomes exactly 0.

    TRL sums the weighted components in float32 and then centres within
    groups.  A shift common to the whole batch changes neither the centred
    advantages nor the group or batch std, but without it a component that is
    the same for every rollout (each penalty under ``constant``) still enters
    the float32 sum and moves its rounding, so ``constant`` and ``none`` would
    take updates that differ in the last bits and drift apart.  Shifted, that
    component is exactly 0 and the two modes' rewards, advantages and updates
    are bit-identical (SPEC section 5: the same update exactly).  NaN entries
    (unscorable rows) stay NaN and are left out of the means.
    """
    values = np.asarray(rewards_per_func, dtype=np.float64)
    shifted = values - np.nanmean(values, axis=0, keepdims=True)
    constant = np.nanmax(values, axis=0) == np.nanmin(values, axis=0)
    shifted[:, constant] = np.where(np.isnan(values[:, constant]), np.nan, 0.0)
    return shifted


def credited_statistics(credited: Sequence[Components], penalty_weights: Mapping[str, float]) -> dict[str, float]:
    """Mean and std (ddof 1, as TRL's) of each credited component and of the total reward over the batch.

    These are the step log's reward columns: TRL's own ``rewards/<name>``
    logs see the components after ``shifted_by_batch_mean``, so their means
    are 0 by construction.
    """
    out = {}
    columns = {c: [getattr(row, c) for row in credited] for c in COMPONENTS}
    columns["total"] = [row.total(penalty_weights) for row in credited]
    for name, values in columns.items():
        array = np.asarray(values, dtype=np.float64)
        out[f"credited/{name}/mean"] = float(array.mean())
        out[f"credited/{name}/std"] = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return out


def measured_means(fields: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """Each measured component's mean over the episodes of its pools (NaN when the batch has none)."""
    out = {}
    for component in COMPONENTS:
        pools = QUANTITY_POOLS[component]
        values = [value for value, pool in zip(fields[f"measured_{component}"], fields["pool"], strict=True)
                  if pool in pools]
        out[component] = float(np.mean(values)) if values else float("nan")
    return out
