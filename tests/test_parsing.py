"""The action parser of SPEC section 2: never raises, never guesses between two actions."""

from hypothesis import given
from hypothesis import strategies as st

from sepo.games.parsing import parse_action

IPD = ("COOPERATE", "DEFECT")
KUHN = ("FOLD", "CALL")
NEG = tuple(str(d) for d in range(1, 10))
ITEMS = ("books=1 hats=0 balls=2", "books=1 hats=1 balls=2", "books=0 hats=0 balls=0")


@given(st.text())
def test_arbitrary_unicode_never_raises_and_returns_legal_or_none(text):
    for legal in (IPD, KUHN, NEG, ITEMS):
        assert parse_action(text, legal) in (*legal, None)


@given(st.text(), st.sampled_from(IPD))
def test_a_final_action_line_wins_over_any_preamble(preamble, action):
    assert parse_action(f"{preamble}\nAction: {action}", IPD) == action


def test_last_action_line_wins():
    assert parse_action("Action: COOPERATE\nthinking again\nAction: DEFECT", IPD) == "DEFECT"


def test_case_spaces_and_trailing_punctuation_are_accepted():
    assert parse_action("action:   defect.", IPD) == "DEFECT"
    assert parse_action("ACTION :Cooperate!", IPD) == "COOPERATE"
    assert parse_action("Action: **call**", KUHN) == "CALL"
    assert parse_action("Action: 5.", NEG) == "5"
    assert parse_action("Action: Books=1  hats=0 balls=2", ITEMS) == "books=1 hats=0 balls=2"


def test_only_text_after_think_counts():
    reply = "<think>Action: DEFECT</think>\nI will cooperate.\nAction: COOPERATE"
    assert parse_action(reply, IPD) == "COOPERATE"
    assert parse_action("<think>Action: DEFECT</think> nothing here", IPD) is None


def test_keyword_fallback_uses_the_last_line_naming_an_action():
    assert parse_action("I considered DEFECT.\nIn the end I COOPERATE", IPD) == "COOPERATE"


def test_a_line_naming_two_actions_is_not_read_as_either():
    assert parse_action("Action: COOPERATE or DEFECT", IPD) is None
    assert parse_action("Action: DEFECT\nfinal: COOPERATE/DEFECT", IPD) == "DEFECT"
    assert parse_action("maybe fold, maybe call", KUHN) is None


def test_numbers_do_not_match_inside_other_numbers():
    assert parse_action("Action: 10", NEG) is None
    # "3" and "4" are both legal demands, so the line is ambiguous
    assert parse_action("Round 3 of 4: I demand 10", NEG) is None
    assert parse_action("Action: 15", NEG) is None


def test_nothing_legal_is_invalid():
    assert parse_action("", IPD) is None
    assert parse_action("Action: RAISE", KUHN) is None
