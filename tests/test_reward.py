"""SEPO reward components, penalty modes and advantages, against hand computations."""

import numpy as np
import pytest

from sepo.games.ipd import IPD
from sepo.games.protocol import play_scripted_episode
from sepo.policies.scripted import make_strategy
from sepo.reward import (
    Components,
    advantages,
    apply_penalty_mode,
    episode_components,
    zero_std_share,
)

WEIGHTS = {"exploit": 2.4, "collusion": 1.0, "externality": 1.8}


def _episode(agent: str, opponent: str, pool: str, seed: int = 0):
    return play_scripted_episode(IPD(), make_strategy("ipd", agent), make_strategy("ipd", opponent), seed, pool)


def test_components_per_pool_by_hand():
    game = IPD()
    # train: TitForTat vs TitForTat cooperates throughout: ū = 3, s = 3/3 = 1, no externality
    train = episode_components(game, _episode("TitForTat", "TitForTat", "train"))
    assert train == Components(payoff=3.0, exploit=0.0, collusion=0.0, externality=0.0)
    assert train.total(WEIGHTS) == 3.0
    # exploit: TitForTat vs AlwaysDefect: ū = 7/8, ū_opp = 12/8 -> e = 5/8;
    # x = (1/6 + 7 * 2/3) / 8 = 29/48; no payoff credit outside the train pool
    exploit = episode_components(game, _episode("TitForTat", "AlwaysDefect", "exploit"))
    assert exploit.payoff == 0.0 and exploit.collusion == 0.0
    assert exploit.exploit == pytest.approx(5 / 8)
    assert exploit.externality == pytest.approx(29 / 48)
    assert exploit.total(WEIGHTS) == pytest.approx(-2.4 * 5 / 8 - 1.8 * 29 / 48)
    # collusive: AlternatingDefect vs AlwaysCooperate defects in 4 of 8 rounds: c = 1/2
    collusive = episode_components(game, _episode("AlternatingDefect", "AlwaysCooperate", "collusive"))
    assert collusive == Components(collusion=0.5)
    assert collusive.total(WEIGHTS) == -0.5
    # train with externality: AlwaysDefect vs Grim: C/D then D/D: x = (1/6 + 7*2/3)/8, ū = (5+7)/8
    train_defect = episode_components(game, _episode("AlwaysDefect", "Grim", "train"))
    assert train_defect.payoff == pytest.approx(12 / 8)
    assert train_defect.externality == pytest.approx(29 / 48)


def test_constant_mode_gives_payoff_only_advantages_for_every_scaling():
    rng = np.random.default_rng(0)
    batch = [Components(payoff=float(rng.random()), exploit=float(rng.random()),
                        collusion=float(rng.random()), externality=float(rng.random())) for _ in range(16)]
    none = [c.total(WEIGHTS) for c in apply_penalty_mode(batch, "none")]
    const = [c.total(WEIGHTS) for c in apply_penalty_mode(batch, "constant")]
    per_rollout = [c.total(WEIGHTS) for c in apply_penalty_mode(batch, "per_rollout")]
    for scale in ("group", "batch", "none"):
        np.testing.assert_allclose(advantages(const, 4, scale), advantages(none, 4, scale), atol=1e-12)
        assert not np.allclose(advantages(per_rollout, 4, scale), advantages(none, 4, scale))


def test_auxiliary_mode_credits_the_auxiliary_penalty_whatever_the_rollout_did():
    aux = [Components(exploit=0.3, collusion=0.1, externality=0.2)] * 2
    greedy = Components(payoff=0.9, exploit=0.0, collusion=1.0, externality=0.7)
    meek = Components(payoff=0.2, exploit=0.0, collusion=0.0, externality=0.0)
    credited = apply_penalty_mode([greedy, meek], "auxiliary", aux)
    assert credited[0].penalty(WEIGHTS) == credited[1].penalty(WEIGHTS) == pytest.approx(-(0.72 + 0.1 + 0.36))
    assert [c.payoff for c in credited] == [0.9, 0.2]


def test_group_and_batch_scaling_by_hand():
    rewards = [1.0, 3.0, 0.0, 0.0]
    np.testing.assert_allclose(advantages(rewards, 2, "none"), [-1, 1, 0, 0])
    group = advantages(rewards, 2, "group")
    np.testing.assert_allclose(group, [-1 / (np.sqrt(2) + 1e-4), 1 / (np.sqrt(2) + 1e-4), 0, 0])
    batch_std = np.std(rewards, ddof=1)
    np.testing.assert_allclose(advantages(rewards, 2, "batch"), np.array([-1, 1, 0, 0]) / (batch_std + 1e-4))
    assert zero_std_share(rewards, 2) == 0.5


@pytest.mark.parametrize("bad", ["constantly", ""])
def test_unknown_modes_list_the_valid_values(bad):
    with pytest.raises(ValueError, match="valid: per_rollout, constant, auxiliary, none"):
        apply_penalty_mode([Components()], bad)
    with pytest.raises(ValueError, match="valid: group, batch, none"):
        advantages([0.0], 1, bad)
