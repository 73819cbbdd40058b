"""Reading an action out of a free-text reply (SPEC section 2).

Rules, in order:

1. Only the text after the last ``</think>`` counts (reasoning models think
   first).
2. When that text has an ``Action:`` line, the **last** one decides, strictly:
   the decision is valid only if what follows ``Action:`` normalises to
   exactly one legal action.  Nothing is coerced: ``Action: -5``,
   ``Action: 5.5``, ``Action: NOT DEFECT`` and ``Action: CALL`` when CALL is
   illegal are invalid whatever the reasoning above them says.
3. Only a reply with no ``Action:`` line at all falls back to the last line
   that mentions any legal action keyword, and only when that line names
   exactly one distinct legal action (``maybe fold, maybe call`` is never
   read as either).
4. Anything else is invalid (``None``); the caller then applies the
   constrained fallback and counts the decision as invalid.

An ``Action:`` line is a line whose first word is ``action`` (any case,
markdown emphasis such as ``**Action:**`` allowed) followed by ``:`` (or
``=``).  Matching is case-insensitive, collapses runs of whitespace and
ignores surrounding punctuation and quotes.  The parser never raises, and it
runs in time linear in the reply's length: no regular expression here can
backtrack (stripping is done with ``str`` methods, keyword lookup through a
token index), so a 1 MB reply parses in well under a second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ACTION_PREFIX = "Action: "
#: the last line of every state text: the answer format of SPEC section 2
REPLY_INSTRUCTION = f"Reply with your reasoning, then a last line '{ACTION_PREFIX}<ACTION>'."

_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_ACTION_WORD = "action"
_LEADING = " *`'\"(["
_TRAILING = " .,;:!?*`'\")]"
#: the pieces a keyword must match whole: "1" never matches inside "10" or "books=1"
_TOKEN = re.compile(r"[\w=]+")


def normalise(text: str) -> str:
    """Lowercase, collapse whitespace, strip surrounding punctuation and quotes."""
    return " ".join(text.split()).lower().rstrip(_TRAILING).lstrip(_LEADING)


def action_line_value(line: str) -> str | None:
    """What follows ``Action:`` when ``line`` is an action line, else None (see the module doc)."""
    text = line.lstrip().lstrip("*").lstrip()
    if text[:len(_ACTION_WORD)].lower() != _ACTION_WORD:
        return None
    rest = text[len(_ACTION_WORD):].lstrip().lstrip("*").lstrip()
    if not rest or rest[0] not in ":=":
        return None
    return rest[1:]


def reply_before_action(reply: str) -> str | None:
    """The reply up to the start of its deciding ``Action:`` line, or None when it has none.

    This is the text after which the action itself is written: what an
    action is scored after when a played policy is measured (SPEC section 4).
    Any ``<think>`` block stays in it.
    """
    think_ends = [m.end() for m in _THINK_END.finditer(reply)]
    head = think_ends[-1] if think_ends else 0
    lines = reply[head:].splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        if action_line_value(lines[index]) is not None:
            return reply[:head] + "".join(lines[:index])
    return None


class _KeywordIndex:
    """The legal actions by their first token, so a line is scanned once, not once per action."""

    def __init__(self, legal: Sequence[str]) -> None:
        self._by_first: dict[str, list[tuple[str, str]]] = {}
        self._irregular: list[tuple[str, str]] = []  # actions that are not runs of tokens (none today)
        for action in legal:
            norm = normalise(action)
            words = norm.split(" ")
            if norm and all(_TOKEN.fullmatch(w) for w in words):
                self._by_first.setdefault(words[0], []).append((action, norm))
            elif norm:
                self._irregular.append((action, norm))

    def named(self, line: str) -> set[str]:
        """The distinct legal actions ``line`` mentions as whole tokens."""
        text = " ".join(line.split()).lower()
        found = set()
        for token in set(_TOKEN.findall(text)):
            for action, norm in self._by_first.get(token, ()):
                if " " not in norm or _mentions(text, norm):
                    found.add(action)
        found.update(action for action, norm in self._irregular if _mentions(text, norm))
        return found


def _mentions(text: str, norm: str) -> bool:
    """``norm`` occurs in ``text`` with no token character on either side (a literal search: linear)."""
    return re.search(rf"(?<![\w=]){re.escape(norm)}(?![\w=])", text) is not None


def parse_action(reply: str, legal_actions: Sequence[str]) -> str | None:
    """The legal action a reply names, or None when it names none unambiguously."""
    try:
        legal = list(legal_actions)
        text = _THINK_END.split(reply)[-1]
        lines = text.splitlines()
        for line in reversed(lines):
            value = action_line_value(line)
            if value is not None:  # the last Action line decides, strictly
                by_norm = {normalise(a): a for a in legal}
                return by_norm.get(normalise(value))
        index = _KeywordIndex(legal)
        for line in reversed(lines):
            named = index.named(line)
            if named:
                return named.pop() if len(named) == 1 else None
        return None
    except Exception:
        return None
