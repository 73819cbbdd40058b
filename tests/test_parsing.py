"""The action parser of SPEC section 2: never raises, never guesses between two actions."""

import pytest
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


# -- SPEC section 2: the last Action line decides, strictly -----------------------

def test_an_illegal_final_action_is_invalid_whatever_the_reasoning_says():
    assert parse_action("I would bet here.\nAction: CALL", ("CHECK", "BET")) is None
    assert parse_action("DEFECT is best.\nAction:", IPD) is None


def test_negations_and_synonyms_are_not_coerced():
    assert parse_action("Action: NOT DEFECT", IPD) is None
    assert parse_action("Action: don't cooperate", IPD) is None
    assert parse_action("Action: defection", IPD) is None


def test_signs_and_decimals_are_not_coerced():
    assert parse_action("Action: -5", NEG) is None
    assert parse_action("Action: 5.5", NEG) is None
    assert parse_action("Action: +5", NEG) is None


def test_an_earlier_valid_action_line_does_not_rescue_an_invalid_last_one():
    assert parse_action("Action: DEFECT\nAction: RAISE", IPD) is None


def test_markdown_emphasis_around_the_action_word_is_an_action_line():
    assert parse_action("**Action:** DEFECT", IPD) == "DEFECT"
    assert parse_action("**Action**: maybe", IPD) is None


def test_the_keyword_fallback_applies_only_without_an_action_line():
    assert parse_action("I DEFECT", IPD) == "DEFECT"
    assert parse_action("I DEFECT\nAction: nothing", IPD) is None
    assert parse_action("My action plan: DEFECT", IPD) == "DEFECT"  # not an Action line: its first word is "my"


def _parse_seconds(reply: str, legal, repeats: int = 3) -> float:
    import time

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parse_action(reply, legal)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("shape", [
    lambda n: " " * n + "x",                      # one long line of spaces (was quadratic)
    lambda n: "." * n + "x",                      # a long run of punctuation not at the end
    lambda n: "Action:" + " " * n + "x",          # an Action line with a long value
    lambda n: "maybe\n" * (n // 6),               # many short lines, no action anywhere
    lambda n: "books=1 " * (n // 8),              # one long line full of candidate tokens
])
def test_parsing_time_grows_linearly_with_length(shape):
    """Quadrupling the reply at most ~quadruples the time (a quadratic parser would take 16x)."""
    legal = ITEMS + IPD
    small, large = shape(64_000), shape(256_000)
    ratio = _parse_seconds(large, legal) / max(_parse_seconds(small, legal), 1e-6)
    assert ratio < 8, ratio


def test_a_megabyte_reply_parses():
    for reply in (" " * 1_000_000 + "DEFECT", "thinking\n" * 110_000 + "Action: DEFECT"):
        assert parse_action(reply, IPD) == "DEFECT"
        assert _parse_seconds(reply, IPD, repeats=1) < 1
