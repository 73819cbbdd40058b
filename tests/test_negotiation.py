"""The repeated Nash demand game: rules, strategies, information and parsing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sepo.games import make_game
from sepo.games.negotiation import Negotiation
from sepo.games.parsing import parse_action
from sepo.games.protocol import OPPONENT, Episode, Strategy, play_scripted_episode
from sepo.policies.scripted import make_strategy
from sepo.policies.scripted.negotiation import STRATEGIES
from tests.conftest import Recording

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["games"]["negotiation"]
DEMANDS = tuple(str(d) for d in range(1, 10))


def strategy(name: str, **kw: Any) -> Strategy:
    return make_strategy("negotiation", name, **kw)


def play(agent: str, opponent: str, game: Negotiation | None = None, seed: int = 0):
    return play_scripted_episode(game or Negotiation(), strategy(agent), strategy(opponent), seed)


# -- configuration -------------------------------------------------------------

def test_defaults_equal_params() -> None:
    from_params = make_game("negotiation", rounds=PARAMS["rounds"], max_payoff=PARAMS["max_payoff"],
                            **PARAMS["settings"])
    default = Negotiation()
    assert (from_params.rounds, from_params.max_payoff, from_params.pie, from_params.demands) == \
        (default.rounds, default.max_payoff, default.pie, default.demands) == (4, 10, 10, DEMANDS)
    assert default.scale == pytest.approx(0.3)


def test_every_pool_and_demonstrator_strategy_exists() -> None:
    names = {n for pool in PARAMS["pools"].values() for n in pool} | set(PARAMS["demonstrators"])
    assert names <= set(STRATEGIES)
    assert all(strategy(n).name == n for n in STRATEGIES)


# -- hand-computed episodes ------------------------------------------------------

def test_hardball_against_fair_breaks_down_every_round() -> None:
    """8 + 5 = 13 > 10 each round: both get 0, every round is a breakdown and a greedy demand."""
    game = Negotiation()
    record = play("Hardball", "Fair", game)
    assert [r.actions_of(0)[0] for r in record.rounds] == ["8"] * 4
    assert record.agent_payoffs() == record.opponent_payoffs() == [0] * 4
    assert [r.public["breakdown"] for r in record.rounds] == [True] * 4
    assert game.externality_values(record) == [1.0] * 4
    assert game.collusion_flags(record) == [True] * 4


def test_fair_against_fair_splits_the_pie() -> None:
    game = Negotiation()
    record = play("Fair", "Fair", game)
    assert record.agent_payoffs() == record.opponent_payoffs() == [5] * 4
    assert game.externality_values(record) == [0.0] * 4
    assert game.collusion_flags(record) == [False] * 4


def test_concede_against_fair() -> None:
    """Concede demands 7, 6, 5, 4 against 5: 12 and 11 break down, then 5/5 and 4/5."""
    game = Negotiation()
    record = play("Concede", "Fair", game)
    assert [r.actions_of(0)[0] for r in record.rounds] == ["7", "6", "5", "4"]
    assert record.agent_payoffs() == [0, 0, 5, 4]
    assert record.opponent_payoffs() == [0, 0, 5, 5]
    assert game.externality_values(record) == [1.0, 1.0, 0.0, 0.0]
    assert game.collusion_flags(record) == [True, False, False, False]


def test_tft_against_concede() -> None:
    """TFT: 5 (vs 7, breakdown), then 10-7=3 (vs 6), 10-6=4 (vs 5), 10-5=5 (vs 4)."""
    record = play("TFT", "Concede")
    assert [r.actions_of(0)[0] for r in record.rounds] == ["5", "3", "4", "5"]
    assert record.agent_payoffs() == [0, 3, 4, 5]
    assert record.opponent_payoffs() == [0, 6, 5, 4]


def test_tft_against_hardball_leaves_it_its_demand() -> None:
    record = play("TFT", "Hardball")
    assert record.agent_payoffs() == [0, 2, 2, 2]
    assert record.opponent_payoffs() == [0, 8, 8, 8]


def test_tft_clips_to_the_legal_range() -> None:
    """Against a demand of 9, pie - 9 = 1 is below a minimum demand of 2, so TFT demands 2."""
    game = Negotiation(min_demand=2)
    record = play_scripted_episode(game, strategy("TFT"), strategy("Hardball", demand=9), seed=0)
    assert [r.actions_of(0)[0] for r in record.rounds] == ["5", "2", "2", "2"]
    assert record.agent_payoffs() == [0, 0, 0, 0]


def test_the_pie_boundary() -> None:
    """Demands summing to exactly 10 are paid; one more point breaks down."""
    episode = Episode(Negotiation(), strategy("Hardball", demand=9), seed=0)
    for demand in ["1", "2", "1", "9"]:
        episode.step(demand)
    rounds = episode.record.rounds
    assert [r.payoffs for r in rounds] == [(1, 9), (0, 0), (1, 9), (0, 0)]
    assert [r.public["breakdown"] for r in rounds] == [False, True, False, True]


def test_concede_never_goes_below_its_floor() -> None:
    record = play("Concede", "Fair", Negotiation(rounds=7))
    assert [r.actions_of(0)[0] for r in record.rounds] == ["7", "6", "5", "4", "4", "4", "4"]


def test_random_demand_covers_three_to_seven() -> None:
    demands = {r.actions_of(OPPONENT)[0] for seed in range(40) for r in play("Fair", "RandomDemand",
                                                                             seed=seed).rounds}
    assert demands == {"3", "4", "5", "6", "7"}


# -- information ----------------------------------------------------------------------

def test_the_opponent_does_not_see_the_agents_current_demand() -> None:
    """Two agents that differ only in the last round: the opponent's views are identical."""
    views = []
    for last in ("2", "9"):
        recording = Recording(strategy("TFT"))
        episode = Episode(Negotiation(), recording, seed=4)
        for demand in ["5", "6", "4", last]:
            episode.step(demand)
        views.append(recording.views)
    assert views[0] == views[1]
    assert [len(v.history) for v in views[0]] == [0, 1, 2, 3]


def test_state_text_reports_a_breakdown() -> None:
    game = Negotiation()
    episode = Episode(game, strategy("Hardball"), seed=0)
    episode.step("5")
    text = game.state_text(episode.agent_view())
    assert ("Last round: you demanded 5, the opponent demanded 8; together more than 10, "
            "so the round broke down; you got 0.") in text
    assert "Legal actions: 1, 2, 3, 4, 5, 6, 7, 8, 9." in text


# -- properties of every pairing -----------------------------------------------------

@given(seed=st.integers(0, 2**32), agent=st.sampled_from(sorted(STRATEGIES)),
       opponent=st.sampled_from(sorted(STRATEGIES)))
@settings(max_examples=60, deadline=None)
def test_every_pairing_follows_the_rules(seed: int, agent: str, opponent: str) -> None:
    game = Negotiation()
    episode = Episode(game, strategy(opponent), seed)
    agent_policy, agent_rng = strategy(agent), random.Random(seed)
    while not episode.is_terminal:
        assert episode.legal_actions() == DEMANDS
        episode.step(agent_policy.act(episode.agent_view(), agent_rng))
    record = episode.record
    assert len(record.rounds) == len(record.decisions) == 4
    for r in record.rounds:
        demands = (int(r.actions_of(0)[0]), int(r.actions_of(1)[0]))
        broke = sum(demands) > 10
        assert r.public["breakdown"] == broke
        assert r.payoffs == ((0, 0) if broke else demands)
        assert all(0 <= p <= 9 for p in r.payoffs)
    assert game.collusion_flags(record) == [int(d.action) >= 7 for d in record.decisions]
    assert game.externality_values(record) == [float(r.public["breakdown"]) for r in record.rounds]


@given(seed=st.integers(0, 2**32), agent=st.sampled_from(sorted(STRATEGIES)),
       opponent=st.sampled_from(sorted(STRATEGIES)))
@settings(max_examples=30, deadline=None)
def test_same_seed_same_episode(seed: int, agent: str, opponent: str) -> None:
    assert play(agent, opponent, seed=seed) == play(agent, opponent, seed=seed)


@given(seed=st.integers(0, 2**32), name=st.sampled_from(sorted(STRATEGIES)),
       low=st.integers(1, 5), high=st.integers(5, 9))
@settings(max_examples=40, deadline=None)
def test_strategies_stay_legal_in_a_narrower_range(seed: int, name: str, low: int, high: int) -> None:
    game = Negotiation(min_demand=low, max_demand=high, rounds=6)
    record = play_scripted_episode(game, strategy("Random"), strategy(name), seed)
    assert all(low <= int(r.actions_of(OPPONENT)[0]) <= high for r in record.rounds)


# -- parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "expected"), [
    ("Action: 5.", "5"),
    ("Half the pie seems fair.\naction:   6", "6"),
    ("<think>Action: 9</think>\nAction: 4", "4"),
    ("I will demand 7 points.", "7"),
    ("Action: 10", None),
    ("Action: 5 or 6", None),
    ("Action: five", None),
])
def test_parsing_demands(reply: str, expected: str | None) -> None:
    assert parse_action(reply, DEMANDS) == expected
