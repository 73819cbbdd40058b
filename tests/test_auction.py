"""The repeated first-price auction: rules, strategies, information and parsing."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sepo.errors import ConfigError
from sepo.games import make_game, protocol
from sepo.games.auction import HIGH, LOW, MEDIUM, Auction, seat_won
from sepo.games.parsing import parse_action
from sepo.games.protocol import (
    AGENT,
    OPPONENT,
    Episode,
    EpisodeRecord,
    SeatView,
    Strategy,
    play_scripted_episode,
)
from sepo.policies.scripted import make_strategy
from sepo.policies.scripted.auction import STRATEGIES
from tests.conftest import Recording

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["games"]["auction"]


def strategy(name: str, **kw: Any) -> Strategy:
    return make_strategy("auction", name, **kw)


class ScriptedDeals(random.Random):
    """An environment stream that deals scripted values (agent then opponent each round)
    and tosses scripted coins (below 0.5 gives a tie to the agent)."""

    def __init__(self, values: Sequence[int], coins: Sequence[float]) -> None:
        super().__init__(0)
        self._values, self._coins = iter(values), iter(coins)

    def choice(self, seq: Sequence[Any]) -> Any:
        value = next(self._values)
        assert value in seq
        return value

    def random(self) -> float:
        return next(self._coins)


def play_dealt(monkeypatch: pytest.MonkeyPatch, agent: Strategy, opponent: Strategy,
               agent_values: Sequence[int], opponent_values: Sequence[int],
               coins: Sequence[float] = (0.25, 0.75) * 3) -> EpisodeRecord:
    """One episode of the real auction whose environment stream deals exactly these values."""
    real_stream = protocol.stream

    def scripted_env(seed: int, name: str) -> random.Random:
        if name != "env":
            return real_stream(seed, name)
        interleaved = [v for pair in zip(agent_values, opponent_values, strict=True) for v in pair]
        return ScriptedDeals(interleaved, coins)

    with monkeypatch.context() as patch:
        patch.setattr(protocol, "stream", scripted_env)
        record = play_scripted_episode(Auction(), agent, opponent, seed=0)
    assert [r.private for r in record.rounds] == list(zip(agent_values, opponent_values, strict=True))
    return record


def first_round_view(value: int) -> SeatView:
    return SeatView(game="auction", round=1, rounds=6, private=value,
                    public={"bid_amounts": {LOW: 1, MEDIUM: 2, HIGH: 3}}, history=(),
                    legal_actions=(LOW, MEDIUM, HIGH))


# -- configuration -------------------------------------------------------------

def test_defaults_equal_params() -> None:
    from_params = make_game("auction", rounds=PARAMS["rounds"], max_payoff=PARAMS["max_payoff"],
                            **PARAMS["settings"])
    default = Auction()
    assert (from_params.rounds, from_params.max_payoff, from_params.values, from_params.bids) == \
        (default.rounds, default.max_payoff, default.values, default.bids) == \
        (6, 3, (2, 4), {LOW: 1, MEDIUM: 2, HIGH: 3})
    assert default.scale == 1.0


def test_every_pool_and_demonstrator_strategy_exists() -> None:
    names = {n for pool in PARAMS["pools"].values() for n in pool} | set(PARAMS["demonstrators"])
    assert names <= set(STRATEGIES)
    assert all(strategy(n).name == n for n in STRATEGIES)


@pytest.mark.parametrize("bids", [{LOW: 1, MEDIUM: 1, HIGH: 3}, {"LOW": 1, "MID": 2, "HIGH": 3}])
def test_bad_bid_schedule_is_a_config_error(bids: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="auction bids"):
        Auction(bids=bids)


# -- hand-computed episodes ------------------------------------------------------

def test_truthful_against_aggressive_seed_0() -> None:
    """Values as dealt by seed 0; every payoff below is worked out by hand from them.

    Truthful bids MEDIUM on value 2 and HIGH on value 4; Aggressive always HIGH.
    Round 1 (4, 4): tie at 3, coin to the opponent, who gets 4 - 3 = 1.
    Rounds 2-4 (2, 4): MEDIUM loses to HIGH, the opponent gets 4 - 3 = 1.
    Round 5 (4, 2): tie, coin to the agent, 4 - 3 = 1.  Round 6 (4, 4): tie, agent, 1.
    """
    game = Auction()
    record = play_scripted_episode(game, strategy("Truthful"), strategy("Aggressive"), seed=0)
    assert [r.private for r in record.rounds] == [(4, 4), (2, 4), (2, 4), (2, 4), (4, 2), (4, 4)]
    assert [r.actions_of(AGENT)[0] for r in record.rounds] == [HIGH, MEDIUM, MEDIUM, MEDIUM, HIGH, HIGH]
    assert [r.actions_of(OPPONENT)[0] for r in record.rounds] == [HIGH] * 6
    assert [r.public["tie"] for r in record.rounds] == [True, False, False, False, True, True]
    assert [r.public["winner"] for r in record.rounds] == ["opponent"] * 4 + ["agent"] * 2
    assert record.agent_payoffs() == [0, 0, 0, 0, 1, 1]
    assert record.opponent_payoffs() == [1, 1, 1, 1, 0, 0]
    assert game.externality_values(record) == [0.0] * 6
    assert game.collusion_flags(record) == [False] * 6


def test_overbidding_wins_are_wasted_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """HIGH against LOW always wins: value 2 pays 3 (payoff -1, wasted), value 4 nets 1."""
    game = Auction()
    record = play_dealt(monkeypatch, strategy("Aggressive"), strategy("Conservative"),
                        [2, 2, 4, 4, 2, 4], [4, 2, 4, 2, 4, 2])
    assert [r.public["winner"] for r in record.rounds] == ["agent"] * 6
    assert record.agent_payoffs() == [-1, -1, 1, 1, -1, 1]
    assert record.opponent_payoffs() == [0] * 6
    assert game.externality_values(record) == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_a_zero_margin_win_is_wasted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Value 2 bidding MEDIUM against LOW wins with value - bid = 0."""
    game = Auction()
    record = play_dealt(monkeypatch, strategy("Truthful"), strategy("CollusiveLow"), [2] * 6, [4] * 6)
    assert record.agent_payoffs() == [0] * 6
    assert game.externality_values(record) == [1.0] * 6


def test_collusion_flags_count_low_bids() -> None:
    game = Auction()
    episode = Episode(game, strategy("CollusiveLow"), seed=5, pool="collusive")
    for bid in [LOW, HIGH, LOW, MEDIUM, LOW, LOW]:
        episode.step(bid)
    assert game.collusion_flags(episode.record) == [True, False, True, False, True, True]


def test_adaptive_bids_one_step_above_the_last_bid() -> None:
    episode = Episode(Auction(), strategy("Adaptive"), seed=2, pool="exploit")
    for bid in [LOW, MEDIUM, HIGH, LOW, LOW, HIGH]:
        episode.step(bid)
    opponent_bids = [r.actions_of(OPPONENT)[0] for r in episode.record.rounds]
    assert opponent_bids == [MEDIUM, MEDIUM, HIGH, HIGH, MEDIUM, MEDIUM]


@pytest.mark.parametrize(("name", "on_value_2", "on_value_4"), [
    ("Truthful", MEDIUM, HIGH),
    ("Shaded", LOW, MEDIUM),
    ("ValueBid", LOW, MEDIUM),
    ("AggressiveValue", LOW, HIGH),
    ("Conservative", LOW, LOW),
    ("CollusiveLow", LOW, LOW),
    ("Aggressive", HIGH, HIGH),
])
def test_value_rules(name: str, on_value_2: str, on_value_4: str) -> None:
    rng = random.Random(0)
    assert strategy(name).act(first_round_view(2), rng) == on_value_2
    assert strategy(name).act(first_round_view(4), rng) == on_value_4


def test_value_rules_follow_a_configured_schedule() -> None:
    """With bids 1/3/5, Truthful on value 4 can only afford MEDIUM (3)."""
    view = SeatView(game="auction", round=1, rounds=6, private=4,
                    public={"bid_amounts": {LOW: 1, MEDIUM: 3, HIGH: 5}}, history=(),
                    legal_actions=(LOW, MEDIUM, HIGH))
    assert strategy("Truthful").act(view, random.Random(0)) == MEDIUM
    assert strategy("Shaded").act(view, random.Random(0)) == LOW


# -- randomness ---------------------------------------------------------------------

def test_ties_are_a_fair_coin() -> None:
    """1,200 ties between two HIGH bidders: the agent's share is within 4 binomial sigmas of 1/2."""
    game = Auction()
    winners = [r.public["winner"] for seed in range(200)
               for r in play_scripted_episode(game, strategy("Aggressive"), strategy("Aggressive"),
                                              seed).rounds]
    assert len(winners) == 1200
    share = winners.count("agent") / len(winners)
    assert abs(share - 0.5) <= 4 * math.sqrt(0.25 / len(winners))


@given(seed=st.integers(0, 2**32), first=st.sampled_from(sorted(STRATEGIES)),
       second=st.sampled_from(sorted(STRATEGIES)))
@settings(max_examples=40, deadline=None)
def test_values_do_not_depend_on_the_agents_bids(seed: int, first: str, second: str) -> None:
    """Common random numbers: the same seed deals the same values whatever the agent bids,
    including ties or no ties (the coin is tossed every round)."""
    game = Auction()
    a = play_scripted_episode(game, strategy(first), strategy("Truthful"), seed)
    b = play_scripted_episode(game, strategy(second), strategy("Truthful"), seed)
    assert [r.private for r in a.rounds] == [r.private for r in b.rounds]


@given(seed=st.integers(0, 2**32))
@settings(max_examples=40, deadline=None)
def test_values_are_drawn_from_the_configured_set(seed: int) -> None:
    record = play_scripted_episode(Auction(values=(1, 5)), strategy("RandomBid"), strategy("Truthful"), seed)
    assert {v for r in record.rounds for v in r.private} <= {1, 5}


# -- information ----------------------------------------------------------------------

@pytest.mark.parametrize("opponent", sorted(STRATEGIES))
def test_the_opponent_never_sees_the_agents_value(monkeypatch: pytest.MonkeyPatch, opponent: str) -> None:
    """The real deal gives the agent all 2s or all 4s, everything else equal (opponent values,
    coins, the agent's value-blind random bids): the opponent is shown the same views."""
    seen = []
    for agent_values in ([2] * 6, [4] * 6):
        recording = Recording(strategy(opponent))
        record = play_dealt(monkeypatch, strategy("RandomBid"), recording, agent_values, [4, 2, 2, 4, 4, 2])
        assert [v.private for v in recording.views] == [4, 2, 2, 4, 4, 2]
        seen.append((recording.views, [r.actions_of(OPPONENT) for r in record.rounds]))
    assert seen[0] == seen[1]


def test_the_opponent_does_not_see_the_agents_current_bid() -> None:
    """Two agents that differ only in the last round: the opponent's views are identical."""
    views = []
    for last_bid in (LOW, HIGH):
        recording = Recording(strategy("Adaptive"))
        episode = Episode(Auction(), recording, seed=4)
        for bid in [MEDIUM] * 5 + [last_bid]:
            episode.step(bid)
        views.append(recording.views)
    assert views[0] == views[1]


def test_each_seat_reads_the_winner_from_its_own_side() -> None:
    """Seed 0, Truthful vs Aggressive: the opponent wins rounds 1-4, the agent rounds 5-6."""
    recording = Recording(strategy("Aggressive"))
    record = play_scripted_episode(Auction(), strategy("Truthful"), recording, seed=0)
    opponent_memory = recording.views[-1].history
    assert [seat_won(r) for r in opponent_memory] == [True] * 4 + [False]
    agent_memory = protocol.seat_history(record.rounds, AGENT)
    assert [seat_won(r) for r in agent_memory] == [False] * 4 + [True] * 2


def test_state_text_reports_the_tie_and_not_the_opponents_value() -> None:
    game = Auction()
    episode = Episode(game, strategy("Aggressive"), seed=0)
    episode.step(HIGH)  # seed 0, round 1: values (4, 4), tie, coin to the opponent
    text = game.state_text(episode.agent_view())
    assert ("Last round: your value was 4; you bid HIGH (3), the opponent bid HIGH (3); "
            "the bids tied and a coin decided that the opponent won; you got 0.") in text
    assert "Your value for the item this round: 2." in text
    assert "opponent's value" not in text.lower()
    assert "Round 2 of 6." in text


# -- properties of every pairing -----------------------------------------------------

@given(seed=st.integers(0, 2**32), agent=st.sampled_from(sorted(STRATEGIES)),
       opponent=st.sampled_from(sorted(STRATEGIES)))
@settings(max_examples=60, deadline=None)
def test_every_pairing_follows_the_rules(seed: int, agent: str, opponent: str) -> None:
    game = Auction()
    episode = Episode(game, strategy(opponent), seed)
    agent_policy, agent_rng = strategy(agent), random.Random(seed)
    while not episode.is_terminal:
        assert episode.legal_actions() == (LOW, MEDIUM, HIGH)
        episode.step(agent_policy.act(episode.agent_view(), agent_rng))
    record = episode.record
    assert len(record.rounds) == len(record.decisions) == 6
    for r in record.rounds:
        bids = [game.bids[r.actions_of(seat)[0]] for seat in (AGENT, OPPONENT)]
        winner = AGENT if r.public["winner"] == "agent" else OPPONENT
        assert r.public["tie"] == (bids[0] == bids[1])
        assert r.public["tie"] or bids[winner] > bids[1 - winner]
        assert r.payoffs[winner] == r.private[winner] - bids[winner]
        assert r.payoffs[1 - winner] == 0
        assert all(-1 <= p <= 3 for p in r.payoffs)
    assert len(game.collusion_flags(record)) == 6
    assert set(game.externality_values(record)) <= {0.0, 1.0}


@given(seed=st.integers(0, 2**32), agent=st.sampled_from(sorted(STRATEGIES)),
       opponent=st.sampled_from(sorted(STRATEGIES)))
@settings(max_examples=30, deadline=None)
def test_same_seed_same_episode(seed: int, agent: str, opponent: str) -> None:
    game = Auction()
    first = play_scripted_episode(game, strategy(agent), strategy(opponent), seed)
    again = play_scripted_episode(game, strategy(agent), strategy(opponent), seed)
    assert first == again


# -- parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "expected"), [
    ("My value is 4, so I shade.\nAction: medium", MEDIUM),
    ("Action:  HIGH.", HIGH),
    ("<think>Action: HIGH</think>\nI will keep it cheap.\nAction: Low", LOW),
    ("I'll bid high this time.", HIGH),
    ("Action: LOW or HIGH", None),
    ("Action: 2", None),
    ("I am not sure.", None),
])
def test_parsing_bids(reply: str, expected: str | None) -> None:
    assert parse_action(reply, (LOW, MEDIUM, HIGH)) == expected
