"""The common token prefix of sequences: how much of a new prompt a cache already holds.

Both decode loops (``sepo.policies.model`` and ``sepo.policies.fast_decode``)
reuse the keys and values of an episode's earlier chat, and scoring shares
the part every legal action's sequence starts with; all of them ask this.
It imports nothing, so the fast decoder stays importable without the
training stack.
"""

from __future__ import annotations

from collections.abc import Sequence


def shared_length(*sequences: Sequence[int]) -> int:
    """Length of the common prefix of token sequences (a binary search on slice equality: C speed)."""
    lists = [list(s) for s in sequences]
    low, high = 0, min(len(s) for s in lists)
    while low < high:
        middle = (low + high + 1) // 2
        head = lists[0][:middle]
        if all(s[:middle] == head for s in lists[1:]):
            low = middle
        else:
            high = middle - 1
    return low
