"""Kuhn poker: agreement with OpenSpiel, the episode structure, the views and the strategies."""

from __future__ import annotations

import itertools
import random

import pyspiel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from open_spiel.python import policy as openspiel_policy
from open_spiel.python.algorithms import exploitability

from sepo.games.kuhn import (
    ACTION_LETTER,
    CARDS,
    INFOSETS,
    TERMINAL_BETTING,
    Kuhn,
    betting_actions,
    infoset_key,
)
from sepo.games.protocol import AGENT, OPPONENT, Episode, Move, adapts_to_agent, play_scripted_episode, stream
from sepo.policies.scripted import make_strategy, strategy_names
from sepo.policies.scripted.kuhn import RandomLegal

GAME = Kuhn()
NAMES = strategy_names("kuhn")


def playable(name: str):
    """A named strategy ready to play: one that adapts to the agent (BestResponse) bound to RandomLegal's table."""
    strategy = make_strategy("kuhn", name)
    return strategy.bind_to_agent(RandomLegal().policy_table()) if adapts_to_agent(strategy) else strategy
OPENSPIEL_KUHN = pyspiel.load_game("kuhn_poker")
seeds = st.integers(min_value=0, max_value=10**6)


def play_hand(round_no, cards, betting):
    """Play ``betting`` (p/b letters) from a hand dealt ``cards`` = (agent, opponent)."""
    state = GAME.hand_state(round_no, cards)
    for letter in betting:
        seat = GAME.to_move(state)
        assert seat is not None, f"hand over before {betting}"
        action = next(a for a in GAME.legal_actions(state, seat) if ACTION_LETTER[a] == letter)
        state.moves.append(Move(seat, action))
    assert GAME.to_move(state) is None
    return GAME.finish_round(state, random.Random(0))


def openspiel_returns(first_card, second_card, betting):
    state = OPENSPIEL_KUHN.new_initial_state()
    state.apply_action(CARDS.index(first_card))
    state.apply_action(CARDS.index(second_card))
    for letter in betting:
        state.apply_action(0 if letter == "p" else 1)
    assert state.is_terminal()
    return tuple(state.returns())


@pytest.mark.parametrize("round_no", [1, 2], ids=["agent first", "agent second"])
@pytest.mark.parametrize("betting", TERMINAL_BETTING)
@pytest.mark.parametrize("cards", list(itertools.permutations(CARDS, 2)))
def test_returns_agree_with_openspiel(cards, betting, round_no):
    record = play_hand(round_no, cards, betting)
    agent_card, opponent_card = cards
    if round_no == 1:  # OpenSpiel's player 0 is the agent
        expected = openspiel_returns(agent_card, opponent_card, betting)
    else:
        opponent_return, agent_return = openspiel_returns(opponent_card, agent_card, betting)
        expected = (agent_return, opponent_return)
    assert record.payoffs == expected
    assert record.public["betting"] == betting


def test_every_openspiel_history_is_a_hand_of_ours():
    """Same action sets at the same histories: walk OpenSpiel's tree and ours side by side."""
    def walk(spiel_state, betting):
        if spiel_state.is_terminal():
            assert betting in TERMINAL_BETTING
            return
        ours = GAME.hand_state(1, ("J", "Q"))
        ours.moves.extend(Move(AGENT if i % 2 == 0 else OPPONENT, a)
                          for i, a in enumerate(betting_actions(betting)))
        seat = GAME.to_move(ours)
        assert seat == spiel_state.current_player()
        legal = GAME.legal_actions(ours, seat)
        assert [ACTION_LETTER[a] for a in legal] == ["p", "b"] == \
            [spiel_state.action_to_string(a)[0].lower() for a in spiel_state.legal_actions()]
        for action in spiel_state.legal_actions():
            walk(spiel_state.child(action), betting + "pb"[action])

    root = OPENSPIEL_KUHN.new_initial_state().child(0).child(1)
    walk(root, "")


@settings(max_examples=100, deadline=None)
@given(seeds, st.sampled_from(NAMES), st.sampled_from(NAMES))
def test_zero_sum(seed, agent, opponent):
    record = play_scripted_episode(GAME, playable(agent), playable(opponent), seed)
    assert len(record.rounds) == 6
    for hand in record.rounds:
        assert hand.payoffs[AGENT] + hand.payoffs[OPPONENT] == 0
        assert abs(hand.payoffs[AGENT]) in (1, 2)
    assert GAME.externality_values(record) == [0.0] * 6


def test_same_seed_same_episode():
    def play(seed):
        return play_scripted_episode(GAME, playable("RandomLegal"),
                                     playable("NashApprox"), seed)
    assert play(7) == play(7)
    deals = {tuple(h.private for h in play(seed).rounds) for seed in range(5)}
    assert len(deals) > 1


def test_the_deal_does_not_depend_on_the_agents_play():
    def deals(agent):
        record = play_scripted_episode(GAME, playable(agent),
                                       playable("RandomLegal"), seed=3)
        return [hand.private for hand in record.rounds]
    assert deals("AlwaysBet") == deals("AlwaysPass")


@settings(max_examples=50, deadline=None)
@given(seeds, st.sampled_from(NAMES))
def test_legal_actions_until_the_end_and_the_first_mover_alternates(seed, opponent):
    episode = Episode(GAME, playable(opponent), seed)
    rng = stream(seed, "agent")
    while not episode.is_terminal:
        legal = episode.legal_actions()
        assert legal in (("CHECK", "BET"), ("FOLD", "CALL"))
        episode.step(rng.choice(legal))
    for hand in episode.record.rounds:
        expected_first = AGENT if hand.round % 2 == 1 else OPPONENT
        assert hand.moves[0].seat == expected_first
        assert hand.public["first"] == expected_first
        assert [m.seat for m in hand.moves] == [(expected_first + i) % 2 for i in range(len(hand.moves))]


class Recording:
    """A real opponent (always calls or bets) that keeps every view it is shown."""

    name = "Recording"

    def __init__(self):
        self.views = []

    def act(self, view, rng):
        self.views.append(view)
        return view.legal_actions[1]


@settings(max_examples=50, deadline=None)
@given(seeds, st.sampled_from(NAMES))
def test_the_opponent_never_sees_the_agents_card_before_a_showdown(seed, agent):
    opponent = Recording()
    record = play_scripted_episode(GAME, playable(agent), opponent, seed)
    for view in opponent.views:
        hand = record.rounds[view.round - 1]
        assert view.private == hand.private[OPPONENT]
        assert set(view.public) == {"moves_first", "betting"}
        for past in view.history:
            shown = record.rounds[past.round - 1]
            assert past.own_private == shown.private[OPPONENT]
            expected = shown.private[AGENT] if shown.public["showdown"] else None
            assert past.revealed_other_private == expected


def test_state_text_names_own_card_betting_history_and_score():
    episode = Episode(GAME, playable("AlwaysBet"), seed=5)
    first = GAME.state_text(episode.agent_view())
    assert first.startswith("Hand 1 of 6.\nYour card: ")
    assert "You act first this hand." in first and "Betting so far this hand: none." in first
    assert first.splitlines()[-2:] == ["Legal actions: CHECK, BET.",
                                      "Reply with your reasoning, then a last line 'Action: <ACTION>'."]
    episode.step("BET")  # AlwaysBet calls: a showdown
    second = GAME.state_text(episode.agent_view())
    hand_one = episode.record.rounds[0]
    assert "Your opponent acts first this hand." in second
    assert "Betting so far this hand: the opponent bet." in second
    assert f"the opponent showed {hand_one.private[OPPONENT]}" in second
    assert "you bet, the opponent called" in second
    assert f"Your total payoff so far: {int(hand_one.payoffs[AGENT])}." in second
    assert "Legal actions: FOLD, CALL." in second
    episode.step("FOLD")
    third = GAME.state_text(episode.agent_view())
    assert "the opponent showed" not in third.split("- hand 2")[1]  # a fold shows nothing


def test_collusion_flags_folds_when_facing_a_bet():
    episode = Episode(GAME, playable("AlwaysBet"), seed=1)
    # hand by hand: check then fold to the bet; call; bet (called); fold; bet (called); call
    moves = iter(["CHECK", "FOLD", "CALL", "BET", "FOLD", "BET", "CALL"])
    while not episode.is_terminal:
        legal = episode.legal_actions()
        action = next(moves)
        assert action in legal
        episode.step(action)
    facing = [d for d in episode.record.decisions if "FOLD" in d.legal_actions]
    assert GAME.collusion_flags(episode.record) == [d.action == "FOLD" for d in facing]
    assert GAME.collusion_flags(episode.record) == [True, False, True, False]


# -- information sets and policy tables -----------------------------------------
def test_infosets_are_the_twelve_of_openspiel():
    spiel_keys = set(openspiel_policy.TabularPolicy(OPENSPIEL_KUHN).state_lookup)
    assert len(INFOSETS) == 12
    assert {str(CARDS.index(key[0])) + key[1:] for key in INFOSETS} == spiel_keys


def test_play_reaches_every_infoset_and_only_those():
    seen = set()
    for seed, opponent in itertools.product(range(40), ["RandomLegal", "AlwaysBet", "AlwaysPass"]):
        episode = Episode(GAME, playable(opponent), seed)
        rng = stream(seed, "agent")
        while not episode.is_terminal:
            seen.add(infoset_key(episode.agent_view()))
            episode.step(rng.choice(episode.legal_actions()))
    assert seen == set(INFOSETS)


def to_openspiel(table):
    tabular = openspiel_policy.TabularPolicy(OPENSPIEL_KUHN)
    for key, aggressive in table.items():
        tabular.policy_for_key(str(CARDS.index(key[0])) + key[1:])[:] = [1 - aggressive, aggressive]
    return tabular


@pytest.mark.parametrize("alpha", [0.0, 1 / 6, 1 / 3])
def test_nash_approx_is_an_equilibrium(alpha):
    table = make_strategy("kuhn", "NashApprox", alpha=alpha).policy_table()
    assert exploitability.nash_conv(OPENSPIEL_KUHN, to_openspiel(table)) == pytest.approx(0, abs=1e-12)


def test_nash_approx_rejects_alpha_outside_the_family():
    with pytest.raises(ValueError, match="alpha"):
        make_strategy("kuhn", "NashApprox", alpha=0.5)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "NashApprox"])
def test_other_strategies_are_exploitable(name):
    table = playable(name).policy_table()
    assert exploitability.nash_conv(OPENSPIEL_KUHN, to_openspiel(table)) > 0.05


class Logged:
    """Plays a strategy and keeps (infoset, action) of each of its decisions."""

    def __init__(self, inner):
        self.inner, self.name, self.log = inner, inner.name, []

    def act(self, view, rng):
        action = self.inner.act(view, rng)
        self.log.append((infoset_key(view), action))
        return action


@pytest.mark.parametrize("name", NAMES)
def test_tables_cover_the_infosets_and_act_plays_them(name):
    strategy = playable(name)
    table = strategy.policy_table()
    assert set(table) == set(INFOSETS) and all(0 <= p <= 1 for p in table.values())
    logged = Logged(strategy)
    for seed in range(10):
        play_scripted_episode(GAME, logged, playable("RandomLegal"), seed)
    for key, action in logged.log:
        if table[key] in (0.0, 1.0):
            assert (action in ("BET", "CALL")) == (table[key] == 1.0), (key, action)


def test_table_sampling_matches_the_probabilities():
    strategy = playable("NashApprox")
    episode = Episode(GAME, playable("AlwaysPass"), seed=0)
    view = episode.agent_view()
    key = infoset_key(view)
    rng = random.Random(0)
    bets = sum(strategy.act(view, rng) == "BET" for _ in range(3000)) / 3000
    assert bets == pytest.approx(strategy.policy_table()[key], abs=0.03)


def test_named_strategies_have_their_defining_moves():
    table = {name: playable(name).policy_table() for name in NAMES}
    assert table["TightPassive"] == {k: float(k[0] == "K") for k in INFOSETS}
    assert table["LooseAggressive"] == {k: float(k[0] != "J") for k in INFOSETS}
    assert set(table["AlwaysBet"].values()) == {1.0} and set(table["AlwaysPass"].values()) == {0.0}
    assert table["MaxExploiter"] == {k: float(k[0] == "K" or (k[0] == "Q" and not k.endswith("b")))
                                     for k in INFOSETS}
    nash = table["NashApprox"]
    assert (nash["J"], nash["K"], nash["Qpb"], nash["Jp"], nash["Qb"]) == \
        pytest.approx((1 / 3, 1.0, 2 / 3, 1 / 3, 1 / 3))
    assert all(table["AlwaysPassQ"][k] == 0.0 for k in INFOSETS if k[0] == "Q")
