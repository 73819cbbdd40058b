"""Reading an action out of a free-text reply (SPEC section 2).

Rules, in order:

1. Only the text after the last ``</think>`` counts (reasoning models think
   first).
2. The last line of the form ``Action: X`` wins when ``X`` normalises to
   exactly one legal action.
3. Otherwise the last line that mentions any legal action keyword decides,
   but only when it names exactly one distinct legal action: a line such as
   ``Action: COOPERATE or DEFECT`` is ambiguous and is never read as either.
4. Anything else is invalid (``None``); the caller then applies the
   constrained fallback and counts the decision as invalid.

Matching is case-insensitive, collapses runs of whitespace and ignores
trailing punctuation.  The parser never raises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ACTION_PREFIX = "Action: "
#: the last line of every state text: the answer format of SPEC section 2
REPLY_INSTRUCTION = f"Reply with your reasoning, then a last line '{ACTION_PREFIX}<ACTION>'."

_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_ACTION_LINE = re.compile(r"^\s*\**\s*action\s*\**\s*[:=]\s*(.*)$", re.IGNORECASE)
_TRAILING = re.compile(r"[\s.,;:!?*`'\"\)\]]+$")
_LEADING = re.compile(r"^[\s*`'\"\(\[]+")


def normalise(text: str) -> str:
    """Lowercase, collapse whitespace, strip surrounding punctuation and quotes."""
    text = " ".join(text.split()).lower()
    return _LEADING.sub("", _TRAILING.sub("", text))


def _keyword_pattern(action: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in normalise(action).split(" "))
    return re.compile(rf"(?<![\w=]){body}(?![\w=])")


def _actions_named(line: str, legal: Sequence[str]) -> set[str]:
    text = " ".join(line.split()).lower()
    found = {a for a in legal if _keyword_pattern(a).search(text)}
    # "books=2 hats=1 balls=0" also contains no shorter legal action, but a
    # numeric action "1" would match inside "10"; the lookarounds prevent it.
    return found


def parse_action(reply: str, legal_actions: Sequence[str]) -> str | None:
    """The legal action a reply names, or None when it names none unambiguously."""
    try:
        legal = list(legal_actions)
        by_norm = {normalise(a): a for a in legal}
        parts = _THINK_END.split(reply)
        text = parts[-1]
        lines = text.splitlines()
        for line in reversed(lines):
            match = _ACTION_LINE.match(line)
            if match:
                choice = by_norm.get(normalise(match.group(1)))
                if choice is not None:
                    return choice
                break  # the last Action line decides; an unreadable one falls through
        for line in reversed(lines):
            named = _actions_named(line, legal)
            if len(named) == 1:
                return named.pop()
            if len(named) > 1:
                return None
        return None
    except Exception:
        return None
