"""Scripted multi-issue negotiation strategies: the four pools' opponents and the demonstrators.

A strategy sees the public pool (``view.public["pool"]``), its own private
values (``view.private``) and the past demands, and returns a demand string.
Demands are built item by item, so every strategy works for any item list.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from sepo.games.negotiation_items import Counts, format_demand, parse_demand
from sepo.games.protocol import SeatView


def _demand(view: SeatView, count_of: Callable[[str, int], int]) -> str:
    """The action demanding ``count_of(item, pool count)`` of every item, in the pool's order."""
    pool = view.public["pool"]
    return format_demand({item: count_of(item, count) for item, count in pool.items()}, list(pool))


def _last_demands(view: SeatView) -> tuple[Counts, Counts] | None:
    """(own, other) demands of the last round, None in round 1."""
    if not view.history:
        return None
    last = view.history[-1]
    return parse_demand(last.own_actions[0]), parse_demand(last.other_actions[0])


def _fair(count: int) -> int:
    return count // 2


@dataclass(frozen=True)
class FairNeg:
    """Demands ⌊count/2⌋ of every item, whatever happens."""

    name: str = "FairNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _demand(view, lambda item, count: _fair(count))


@dataclass(frozen=True)
class TFTNeg:
    """Fair in round 1, then leaves the other player what it was left last round.

    The other left it ``count − d`` of an item when the other demanded ``d``;
    leaving the other that much means demanding ``count − (count − d) = d``,
    so from round 2 on it mirrors the other's last demand item by item.
    """

    name: str = "TFTNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        last = _last_demands(view)
        if last is None:
            return _demand(view, lambda item, count: _fair(count))
        _, other = last
        return _demand(view, lambda item, count: other[item])


@dataclass(frozen=True)
class ConcedeNeg:
    """Starts at count − 1 of every item and lowers each by 1 a round, never below ⌊count/2⌋."""

    name: str = "ConcedeNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        step = view.round - 1
        return _demand(view, lambda item, count: max(count - 1 - step, _fair(count)))


@dataclass(frozen=True)
class GreedyNeg:
    """Demands ⌈3·count/4⌉ of every item."""

    name: str = "GreedyNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _demand(view, lambda item, count: math.ceil(3 * count / 4))


@dataclass(frozen=True)
class HardballNeg:
    """All of its highest-valued item (the first in item order on ties), count − 1 of the others."""

    name: str = "HardballNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        pool = view.public["pool"]
        best = max(pool, key=lambda item: view.private[item])  # max keeps the first of equals
        return _demand(view, lambda item, count: count if item == best else count - 1)


@dataclass(frozen=True)
class RandomNeg:
    """Demands a uniformly random count in 0..count of every item."""

    name: str = "RandomNeg"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _demand(view, lambda item, count: rng.randint(0, count))


@dataclass(frozen=True)
class Proportional:
    """Claims each item in proportion to what that item is worth to it.

    With ``share`` the item's share of its valuation of the whole pool
    (count · value / total) and ``n`` the number of items, it claims the
    fraction min(1, n/2 · share) of the item, rounded down.  Equal shares give
    ⌊count/2⌋ of everything; a valuation concentrated on one item claims all
    of it and none of the rest, leaving the other player what it does not need.
    """

    name: str = "Proportional"

    def act(self, view: SeatView, rng: random.Random) -> str:
        pool = view.public["pool"]
        total = sum(count * view.private[item] for item, count in pool.items())
        half_items = len(pool) / 2

        def claim(item: str, count: int) -> int:
            share = count * view.private[item] / total
            return math.floor(count * min(1.0, half_items * share))

        return _demand(view, claim)


@dataclass(frozen=True)
class Conservative:
    """Demands ⌊count/2⌋ of every item it values and nothing of the items worth 0 to it.

    It never asks for more than half of anything, so it never causes a
    breakdown against a fair player.
    """

    name: str = "Conservative"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _demand(view, lambda item, count: _fair(count) if view.private[item] > 0 else 0)


@dataclass(frozen=True)
class Adaptive:
    """Starts fair; after a breakdown concedes one unit of every item that overflowed the pool.

    After a round that fit it repeats its last demand, so it settles on the
    first demand the other player accepts.
    """

    name: str = "Adaptive"

    def act(self, view: SeatView, rng: random.Random) -> str:
        last = _last_demands(view)
        if last is None:
            return _demand(view, lambda item, count: _fair(count))
        own, other = last
        return _demand(view, lambda item, count:
                       own[item] - 1 if own[item] + other[item] > count else own[item])


@dataclass(frozen=True)
class Defensive:
    """Never risks a breakdown against the other player's last demand.

    Round 1: ⌊count/2⌋ of every item.  Then exactly what the other's last
    demand left of each item, the most that still fits if the other repeats.
    """

    name: str = "Defensive"

    def act(self, view: SeatView, rng: random.Random) -> str:
        last = _last_demands(view)
        if last is None:
            return _demand(view, lambda item, count: _fair(count))
        _, other = last
        return _demand(view, lambda item, count: count - other[item])


STRATEGIES = {
    "FairNeg": FairNeg,
    "TFTNeg": TFTNeg,
    "ConcedeNeg": ConcedeNeg,
    "GreedyNeg": GreedyNeg,
    "HardballNeg": HardballNeg,
    "RandomNeg": RandomNeg,
    "Proportional": Proportional,
    "Conservative": Conservative,
    "Adaptive": Adaptive,
    "Defensive": Defensive,
}
