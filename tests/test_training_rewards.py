"""The TRL reward functions on hand-made batches: every component and the total, for each pool and mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sepo.config import load_params
from sepo.games.protocol import play_scripted_episode
from sepo.reward import Components, advantages
from sepo.training.rewards import (
    credited_components,
    episode_fields,
    penalty_advantages,
    reward_functions,
    reward_weights,
)

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")


Match = tuple[str, str, str]  # (agent, opponent, pool)


def _fields(game: str, matches: list[Match], auxiliary: list[list[Match]] | None = None):
    """Per-episode fields as the rollout forwards them: (agent, opponent, pool) per episode."""
    built = PARAMS.game(game)

    def play(agent: str, opponent: str, pool: str, seed: int):
        return play_scripted_episode(built, PARAMS.strategy(game, agent), PARAMS.strategy(game, opponent),
                                     seed, pool)

    rows = []
    for i, match in enumerate(matches):
        aux = [play(*m, seed=100 + i) for m in (auxiliary[i] if auxiliary else [])]
        rows.append(episode_fields(built, play(*match, seed=i), aux))
    return {key: [row[key] for row in rows] for key in rows[0]}


def _rewards(fields, mode: str, game: str):
    """What TRL computes: each reward function's column, and the weighted sum."""
    columns = {f.__name__: f(prompts=[""] * len(fields["pool"]), completions=[""] * len(fields["pool"]),
                             completion_ids=[[]] * len(fields["pool"]), trainer_state=None, **fields)
               for f in reward_functions(mode)}
    weights = reward_weights(PARAMS.games[game].penalty_weights.model_dump())
    totals = np.array(list(columns.values())).T @ np.array(weights)
    return columns, totals


IPD_BATCH = [("TitForTat", "TitForTat", "train"), ("TitForTat", "AlwaysDefect", "exploit"),
             ("AlternatingDefect", "AlwaysCooperate", "collusive"), ("AlwaysDefect", "Grim", "train")]


def test_ipd_components_and_totals_by_hand_for_each_pool():
    columns, totals = _rewards(_fields("ipd", IPD_BATCH), "per_rollout", "ipd")
    x = 29 / 48  # (1/6 + 7 * 2/3) / 8: one C/D round, then seven D/D rounds
    assert columns["payoff"] == pytest.approx([3.0, 0.0, 0.0, 12 / 8])  # s = 1; only the train pool pays
    assert columns["exploit"] == pytest.approx([0.0, 5 / 8, 0.0, 0.0])  # (12 - 7) / 8 against AlwaysDefect
    assert columns["collusion"] == pytest.approx([0.0, 0.0, 0.5, 0.0])  # 4 defections in 8 rounds
    assert columns["externality"] == pytest.approx([0.0, x, 0.0, x])  # train and exploit pools only
    assert totals == pytest.approx([3.0, -2.4 * 5 / 8 - 1.8 * x, -1.0 * 0.5, 1.5 - 1.8 * x])


def test_kuhn_components_and_totals_by_hand_for_each_pool():
    batch = [("AlwaysBet", "AlwaysPass", "train"),        # every hand: bet, the opponent folds: +1
             ("AlwaysPass", "AlwaysBet", "exploit"),      # every hand: folds to the bet: -1 / +1
             ("AlwaysPass", "LooseAggressive", "collusive")]  # folds whenever it faces a bet
    fields = _fields("kuhn", batch)
    columns, totals = _rewards(fields, "per_rollout", "kuhn")
    s = 3 / 2
    assert columns["payoff"] == pytest.approx([s * 1.0, 0.0, 0.0])
    assert columns["exploit"] == pytest.approx([0.0, s * 2.0, 0.0])
    assert columns["collusion"] == pytest.approx([0.0, 0.0, 1.0])
    assert columns["externality"] == pytest.approx([0.0, 0.0, 0.0])  # zero-sum
    assert totals == pytest.approx([1.5, -1.5 * 3.0, -2.4 * 1.0])


def test_modes_credit_the_penalties_as_spec_defines():
    fields = _fields("ipd", IPD_BATCH)
    x = 29 / 48
    none, _ = _rewards(fields, "none", "ipd")
    assert none["payoff"] == pytest.approx([3.0, 0.0, 0.0, 1.5])
    assert none["exploit"] == none["collusion"] == none["externality"] == [0.0] * 4
    constant, _ = _rewards(fields, "constant", "ipd")
    assert constant["payoff"] == none["payoff"]
    assert constant["exploit"] == pytest.approx([5 / 32] * 4)  # the batch mean, for every rollout
    assert constant["collusion"] == pytest.approx([0.125] * 4)
    assert constant["externality"] == pytest.approx([x / 2] * 4)


def test_auxiliary_mode_credits_the_auxiliary_episodes_penalties():
    train = [("TitForTat", "TitForTat", "train"), ("AlwaysDefect", "Grim", "train")]
    aux = [("TitForTat", "AlwaysDefect", "exploit"), ("AlternatingDefect", "AlwaysCooperate", "collusive")]
    columns, _ = _rewards(_fields("ipd", train, [aux, aux]), "auxiliary", "ipd")
    assert columns["payoff"] == pytest.approx([3.0, 1.5])
    assert columns["exploit"] == pytest.approx([5 / 8, 5 / 8])
    assert columns["collusion"] == pytest.approx([0.5, 0.5])
    # the credited externality is the auxiliary exploit episode's, not AlwaysDefect-vs-Grim's own
    assert columns["externality"] == pytest.approx([29 / 48, 29 / 48])


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_penalty_advantages_are_the_penalty_share_of_the_advantages(scale):
    rng = np.random.default_rng(1)
    weights = PARAMS.games["ipd"].penalty_weights.model_dump()
    batch = [Components(*rng.random(4)) for _ in range(12)]
    totals = [c.total(weights) for c in batch]
    payoffs = np.array([c.payoff for c in batch])
    payoff_share = advantages(totals, 4, scale) - penalty_advantages(batch, weights, 4, scale)
    # what is left is the payoff centred in its group, divided by the total's scale
    centred = (payoffs.reshape(3, 4) - payoffs.reshape(3, 4).mean(axis=1, keepdims=True)).reshape(-1)
    ratio = np.divide(payoff_share, centred)
    np.testing.assert_allclose(ratio.reshape(3, 4), ratio.reshape(3, 4)[:, :1].repeat(4, axis=1), rtol=1e-9)
    if scale == "none":
        np.testing.assert_allclose(payoff_share, centred, atol=1e-12)


def test_equal_penalties_in_a_group_give_exactly_zero_penalty_advantages():
    weights = PARAMS.games["ipd"].penalty_weights.model_dump()
    batch = [Components(payoff=p, exploit=0.1, collusion=0.3, externality=0.7) for p in (0.1, 0.2, 0.3)]
    assert penalty_advantages(batch, weights, 3, "batch").tolist() == [0.0, 0.0, 0.0]
    credited = credited_components({"measured_payoff": [0.1, 0.2], "measured_exploit": [0.0, 0.9],
                                    "measured_collusion": [0.3, 0.0], "measured_externality": [0.1, 0.2],
                                    "pool": ["train", "exploit"]}, "constant")
    assert penalty_advantages(credited, weights, 2, "group").tolist() == [0.0, 0.0]


def test_the_batch_shift_zeroes_constant_columns_exactly_and_keeps_differences():
    from sepo.training.rewards import shifted_by_batch_mean

    rewards = np.array([[0.3, 0.1234567, 0.0], [0.7, 0.1234567, 0.0], [1.9, 0.1234567, 0.0],
                        [np.nan, 0.1234567, 0.0]], dtype=np.float32)
    shifted = shifted_by_batch_mean(rewards)
    assert np.all(shifted[:, 1:] == 0.0)  # exactly, not within rounding
    assert np.isnan(shifted[3, 0])
    np.testing.assert_allclose(np.diff(shifted[:3, 0]), np.diff(rewards[:3, 0].astype(np.float64)))
    assert np.nanmean(shifted[:, 0]) == pytest.approx(0.0, abs=1e-12)
