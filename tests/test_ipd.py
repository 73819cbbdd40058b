"""IPD rules and strategies, checked against hand-derived episodes."""

from hypothesis import given
from hypothesis import strategies as st

from sepo.games.ipd import COOPERATE, DEFECT, IPD
from sepo.games.protocol import Episode, play_scripted_episode
from sepo.policies.scripted import make_strategy, strategy_names

C, D = COOPERATE, DEFECT


def _play(agent: str, opponent: str, seed: int = 0, **opponent_settings):
    game = IPD()
    return play_scripted_episode(game, make_strategy("ipd", agent),
                                 make_strategy("ipd", opponent, **opponent_settings), seed)


def test_tit_for_tat_against_always_defect_by_hand():
    record = _play("TitForTat", "AlwaysDefect")
    assert [r.actions_of(0)[0] for r in record.rounds] == [C] + [D] * 7
    assert record.agent_payoffs() == [0] + [1] * 7
    assert record.opponent_payoffs() == [5] + [1] * 7
    # joint means 2.5 then 1: externality (3 - 2.5)/3 = 1/6 once, (3 - 1)/3 = 2/3 seven times
    assert IPD().externality_values(record) == [1 / 6] + [2 / 3] * 7


def test_payoff_matrix():
    game = IPD()
    for (a, o), expected in {(C, C): (3, 3), (C, D): (0, 5), (D, C): (5, 0), (D, D): (1, 1)}.items():
        episode = Episode(game, make_strategy("ipd", "AlwaysCooperate" if o == C else "AlwaysDefect"), 0)
        episode.step(a)
        assert episode.record.rounds[0].payoffs == expected


def test_grim_never_forgives_and_alternating_defects_in_odd_rounds():
    grim = _play("AlternatingDefect", "Grim")
    assert [r.actions_of(1)[0] for r in grim.rounds] == [C] + [D] * 7
    assert [r.actions_of(0)[0] for r in grim.rounds] == [D, C] * 4


def test_pavlov_win_stay_lose_shift():
    record = _play("AlternatingDefect", "Pavlov")
    # agent: D C D C ...; Pavlov: C, then (agent D -> shift) D, (agent C -> stay) D, (D -> shift) C, ...
    assert [r.actions_of(1)[0] for r in record.rounds] == [C, D, D, C, C, D, D, C]


def test_suspicious_tft_opens_with_defection():
    record = _play("AlwaysCooperate", "SuspiciousTFT")
    assert [r.actions_of(1)[0] for r in record.rounds] == [D] + [C] * 7


def test_generous_tft_forgives_at_its_rate():
    forgiven = total = 0
    for seed in range(300):
        record = _play("AlwaysDefect", "GenerousTFT", seed)
        moves = [r.actions_of(1)[0] for r in record.rounds][1:]
        forgiven += moves.count(C)
        total += len(moves)
    # 2100 Bernoulli(0.25) draws: 4 standard deviations is about 0.038
    assert abs(forgiven / total - 0.25) < 0.04


def test_collusion_flags_count_defections():
    record = _play("Pavlov", "AlwaysCooperate")
    flags = IPD().collusion_flags(record)
    assert flags == [r.actions_of(0)[0] == D for r in record.rounds]


@given(st.sampled_from(strategy_names("ipd")), st.sampled_from(strategy_names("ipd")),
       st.integers(0, 2**32))
def test_episode_properties(agent, opponent, seed):
    game = IPD()
    first = _play(agent, opponent, seed)
    assert first == _play(agent, opponent, seed)  # same seed, same episode
    assert len(first.rounds) == game.rounds == len(first.decisions)
    for rec in first.rounds:
        assert all(0 <= p <= 5 for p in rec.payoffs)
    episode = Episode(game, make_strategy("ipd", opponent), seed)
    while not episode.is_terminal:
        assert episode.legal_actions()
        episode.step(episode.legal_actions()[0])
