"""Multi-issue negotiation: the draw, the settlement, the metrics and the scripted strategies."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepo.errors import ConfigError
from sepo.games.negotiation_items import (
    NegotiationItems,
    demands_fit,
    parse_demand,
    value_vectors,
)
from sepo.games.parsing import parse_action
from sepo.games.protocol import (
    AGENT,
    OPPONENT,
    Decision,
    Episode,
    EpisodeRecord,
    Move,
    SeatRound,
    SeatView,
    play_scripted_episode,
    stream,
)
from sepo.policies.scripted import make_strategy, strategy_names

GAME = NegotiationItems()
NAMES = strategy_names("negotiation_items")
seeds = st.integers(min_value=0, max_value=10**6)


def settle(pool, values, agent_action, opponent_action):
    """Play one round with fixed pool and valuations; the finished record."""
    context = {"pool": pool, "values": values}
    state = GAME.start_round(context, 1, random.Random(0), [])
    state.moves.extend([Move(AGENT, agent_action), Move(OPPONENT, opponent_action)])
    return GAME.finish_round(state, random.Random(0))


def make_view(pool, values, past=(), round_no=None):
    """A seat's view with ``past`` = [(own demand, other demand), ...]."""
    history = tuple(
        SeatRound(round=i + 1, moves=((True, own), (False, other)), own_payoff=0.0, own_private=values,
                  public={"pool": pool, "breakdown": not demands_fit(parse_demand(own), parse_demand(other),
                                                                     pool)})
        for i, (own, other) in enumerate(past))
    round_no = round_no or len(past) + 1
    return SeatView(game="negotiation_items", round=round_no, rounds=4, private=values,
                    public={"pool": pool}, history=history,
                    legal_actions=GAME.actions({"pool": pool}, values))


POOL = {"books": 2, "hats": 1, "balls": 3}
AGENT_VALUES = {"books": 2, "hats": 0, "balls": 2}
OPPONENT_VALUES = {"books": 1, "hats": 5, "balls": 1}


# -- the draw -------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(seeds)
def test_drawn_values_make_the_pool_worth_ten(seed):
    context = GAME.start_episode(stream(seed, "env"))
    pool = context["pool"]
    assert list(pool) == ["books", "hats", "balls"]
    assert all(1 <= count <= 4 for count in pool.values())
    for values in context["values"]:
        assert all(isinstance(v, int) and v >= 0 for v in values.values())
        assert sum(pool[item] * values[item] for item in pool) == 10


def test_value_vectors_enumerates_every_valuation():
    assert value_vectors({"books": 3, "hats": 3, "balls": 3}, 10) == []
    # one of each item: the compositions of 10 into three non-negative parts
    assert len(value_vectors({"books": 1, "hats": 1, "balls": 1}, 10)) == 66
    assert value_vectors({"books": 4, "hats": 2}, 10) == [
        {"books": 0, "hats": 5}, {"books": 1, "hats": 3}, {"books": 2, "hats": 1}]


def test_pools_without_a_valuation_are_redrawn():
    # 3a + 3b = 10 and 4a + 4b = 10 have no solution; only 3/4 and 4/3 pools remain
    game = NegotiationItems(items=("books", "hats"), min_count=3, max_count=4)
    pools = {tuple(game.start_episode(stream(seed, "env"))["pool"].values()) for seed in range(60)}
    assert pools == {(3, 4), (4, 3)}


def test_a_range_no_pool_of_which_can_be_worth_the_total_is_rejected():
    with pytest.raises(ConfigError, match="no pool"):
        NegotiationItems(min_count=3, max_count=3)


def test_both_values_are_drawn_uniformly_from_all_valuations():
    game = NegotiationItems(items=("books", "hats"), min_count=4, max_count=4, total_value=8)
    seen = [tuple(game.start_episode(stream(seed, "env"))["values"][0].values()) for seed in range(900)]
    # 4a + 4b = 8: (0, 2), (1, 1), (2, 0), each about a third of the time
    assert set(seen) == {(0, 2), (1, 1), (2, 0)}
    assert all(240 < seen.count(v) < 360 for v in set(seen))


# -- settlement -----------------------------------------------------------------
def test_demands_that_fit_pay_each_its_own_value():
    record = settle(POOL, [AGENT_VALUES, OPPONENT_VALUES],
                    "books=1 hats=0 balls=3", "books=1 hats=1 balls=0")
    assert record.payoffs == (8.0, 6.0)  # 1·2 + 3·2 and 1·1 + 1·5
    assert record.public == {"pool": POOL, "breakdown": False}


def test_one_item_over_the_pool_breaks_down_the_round():
    record = settle(POOL, [AGENT_VALUES, OPPONENT_VALUES],
                    "books=2 hats=0 balls=0", "books=1 hats=1 balls=0")
    assert record.payoffs == (0.0, 0.0)
    assert record.public["breakdown"] is True


def test_demanding_the_whole_pool_against_nothing_is_worth_the_total():
    record = settle(POOL, [AGENT_VALUES, OPPONENT_VALUES],
                    "books=2 hats=1 balls=3", "books=0 hats=0 balls=0")
    assert record.payoffs == (10.0, 0.0)
    assert record.public["breakdown"] is False


def test_legal_actions_are_every_demand_within_the_pool():
    legal = GAME.actions({"pool": POOL}, AGENT_VALUES)
    assert len(legal) == 3 * 2 * 4
    assert "books=2 hats=1 balls=3" in legal and "books=0 hats=0 balls=0" in legal
    assert all(parse_demand(a)["hats"] <= 1 for a in legal)


def test_the_parser_reads_a_demand_out_of_a_reply():
    legal = GAME.actions({"pool": POOL}, AGENT_VALUES)
    reply = "I value balls most.\nAction: Books=1  hats=0 balls=3."
    assert parse_action(reply, legal) == "books=1 hats=0 balls=3"


# -- the seat views and texts ---------------------------------------------------
def test_the_state_text_describes_the_action_space_compactly():
    episode = Episode(GAME, make_strategy("negotiation_items", "FairNeg"), seed=4)
    episode.step(episode.legal_actions()[0])
    text = GAME.state_text(episode.agent_view())
    pool = episode.context["pool"]
    legal_line = next(line for line in text.splitlines() if line.startswith("Legal actions:"))
    assert legal_line.count("books=") == 1
    assert f"books=<0..{pool['books']}>" in legal_line
    assert "Opponent's demands so far: " in text
    assert text.splitlines()[-1] == "Reply with your reasoning, then a last line 'Action: <ACTION>'."


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_the_opponent_sees_its_own_values_never_the_agents(seed):
    views = []

    class Recording:
        name = "Recording"

        def act(self, view, rng):
            views.append(view)
            return view.legal_actions[0]

    record = play_scripted_episode(GAME, make_strategy("negotiation_items", "RandomNeg"), Recording(), seed)
    opponent_values = record.context["values"][OPPONENT]
    for view in views:
        assert view.private == opponent_values
        assert all(past.own_private == opponent_values and past.revealed_other_private is None
                   for past in view.history)
        assert set(view.public) == {"pool"}


# -- metrics --------------------------------------------------------------------
def test_collusion_flags_demands_over_half_rounded_up():
    pool = {"books": 3, "hats": 1, "balls": 4}
    record = EpisodeRecord(game="negotiation_items", pool="collusive", opponent="FairNeg", seed=0,
                           context={"pool": pool})
    for round_no, action in enumerate(["books=2 hats=1 balls=2", "books=3 hats=0 balls=0",
                                       "books=0 hats=0 balls=3", "books=2 hats=0 balls=2"], start=1):
        record.decisions.append(Decision(round_no, (), action, "", True))
    assert GAME.collusion_flags(record) == [False, True, True, False]


@settings(max_examples=40, deadline=None)
@given(seeds, st.sampled_from(NAMES), st.sampled_from(NAMES))
def test_externality_is_the_breakdown_of_each_round(seed, agent, opponent):
    record = play_scripted_episode(GAME, make_strategy("negotiation_items", agent),
                                   make_strategy("negotiation_items", opponent), seed)
    pool = record.context["pool"]
    assert len(record.rounds) == 4
    expected = [0.0 if demands_fit(parse_demand(r.moves[0].action), parse_demand(r.moves[1].action), pool)
                else 1.0 for r in record.rounds]
    assert GAME.externality_values(record) == expected
    assert all(r.payoffs == (0.0, 0.0) for r in record.rounds if r.public["breakdown"])


def test_same_seed_same_episode():
    def play():
        return play_scripted_episode(GAME, make_strategy("negotiation_items", "RandomNeg"),
                                     make_strategy("negotiation_items", "RandomNeg"), seed=11)
    assert play() == play()


# -- scripted strategies --------------------------------------------------------
def act(name, view, seed=0):
    return make_strategy("negotiation_items", name).act(view, random.Random(seed))


BIG_POOL = {"books": 4, "hats": 1, "balls": 3}  # 4·1 + 1·3 + 3·1 = 10 for the values below
BIG_VALUES = {"books": 1, "hats": 3, "balls": 1}


def test_fixed_demands():
    view = make_view(BIG_POOL, BIG_VALUES)
    assert act("FairNeg", view) == "books=2 hats=0 balls=1"
    assert act("GreedyNeg", view) == "books=3 hats=1 balls=3"  # ⌈3·count/4⌉
    assert act("HardballNeg", view) == "books=3 hats=1 balls=2"  # hats are worth most


def test_hardball_breaks_value_ties_by_item_order():
    tied = make_view({"books": 2, "hats": 2, "balls": 1}, {"books": 2, "hats": 2, "balls": 2})
    assert act("HardballNeg", tied) == "books=2 hats=1 balls=0"


def test_concede_lowers_one_a_round_down_to_half():
    demands = [act("ConcedeNeg", make_view(BIG_POOL, BIG_VALUES, round_no=r)) for r in range(1, 5)]
    assert demands == ["books=3 hats=0 balls=2", "books=2 hats=0 balls=1",
                       "books=2 hats=0 balls=1", "books=2 hats=0 balls=1"]


def test_tft_is_fair_then_leaves_the_other_what_it_was_left():
    assert act("TFTNeg", make_view(BIG_POOL, BIG_VALUES)) == "books=2 hats=0 balls=1"
    # the other demanded 3 of 4 books (left 1), no hat (left 1), 1 of 3 balls (left 2)
    view = make_view(BIG_POOL, BIG_VALUES, past=[("books=2 hats=0 balls=1", "books=3 hats=0 balls=1")])
    demand = parse_demand(act("TFTNeg", view))
    left_to_other = {item: BIG_POOL[item] - demand[item] for item in BIG_POOL}
    assert left_to_other == {"books": 1, "hats": 1, "balls": 2}


def test_random_demands_cover_every_count():
    view = make_view(BIG_POOL, BIG_VALUES)
    demands = [parse_demand(act("RandomNeg", view, seed)) for seed in range(200)]
    assert {d["books"] for d in demands} == set(range(5))
    assert {d["hats"] for d in demands} == {0, 1}


def test_proportional_claims_what_it_values():
    pool = {"books": 2, "hats": 1, "balls": 3}
    # shares 0.4, 0, 0.6 -> fractions 0.6, 0, 0.9 of each item
    assert act("Proportional", make_view(pool, AGENT_VALUES)) == "books=1 hats=0 balls=2"
    assert act("Proportional", make_view(pool, {"books": 0, "hats": 10, "balls": 0})) == \
        "books=0 hats=1 balls=0"


def test_conservative_asks_half_of_what_it_values_and_nothing_else():
    assert act("Conservative", make_view(BIG_POOL, {"books": 0, "hats": 4, "balls": 2})) == \
        "books=0 hats=0 balls=1"


def test_adaptive_concedes_only_the_items_that_overflowed():
    view = make_view(BIG_POOL, BIG_VALUES, past=[("books=2 hats=1 balls=1", "books=3 hats=0 balls=1")])
    assert act("Adaptive", view) == "books=1 hats=1 balls=1"
    settled = make_view(BIG_POOL, BIG_VALUES, past=[("books=1 hats=1 balls=1", "books=3 hats=0 balls=1")])
    assert act("Adaptive", settled) == "books=1 hats=1 balls=1"


@settings(max_examples=30, deadline=None)
@given(seeds, st.sampled_from(["FairNeg", "GreedyNeg", "HardballNeg"]))
def test_defensive_never_breaks_down_after_round_one_against_a_fixed_demand(seed, opponent):
    record = play_scripted_episode(GAME, make_strategy("negotiation_items", "Defensive"),
                                   make_strategy("negotiation_items", opponent), seed)
    assert not any(r.public["breakdown"] for r in record.rounds[1:])


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_fair_players_never_break_down(seed):
    record = play_scripted_episode(GAME, make_strategy("negotiation_items", "FairNeg"),
                                   make_strategy("negotiation_items", "FairNeg"), seed)
    assert GAME.externality_values(record) == [0.0] * 4


def test_every_strategy_plays_legally_in_either_seat():
    for agent, opponent in itertools.product(NAMES, NAMES):
        for seed in range(3):
            # the episode raises on any illegal action of either seat
            record = play_scripted_episode(GAME, make_strategy("negotiation_items", agent),
                                           make_strategy("negotiation_items", opponent), seed)
            assert len(record.rounds) == 4
