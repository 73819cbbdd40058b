"""Scripted Nash-demand strategies: every opponent of the four pools and every demonstrator.

Opponents (SPEC section 3): Fair demands 5, Balanced 6, Selfish 7, Hardball
8; Concede starts at 7 and lowers its demand by 1 a round, never below 4;
RandomDemand demands uniformly from 3 to 7.

Demonstrators (SPEC section 6): Fair, Balanced and Concede as above; TFT
demands 5 in round 1, then the pie minus the other player's last demand
(leaving it exactly what it asked for), clipped to the legal range; Random
demands uniformly over every legal demand.

Demands are clipped to the legal range so that a configured narrower range
never makes a strategy play an illegal action.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sepo.games.protocol import SeatView
from sepo.policies.scripted.common import UniformLegal


def _legal_demand(view: SeatView, demand: int) -> str:
    """``demand`` clipped to the legal range, as an action string."""
    low, high = int(view.legal_actions[0]), int(view.legal_actions[-1])
    return str(min(max(demand, low), high))


@dataclass(frozen=True)
class FixedDemand:
    """Always the same demand."""

    name: str
    demand: int

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _legal_demand(view, self.demand)


@dataclass(frozen=True)
class Concede:
    """Starts at ``start`` and lowers its demand by ``step`` each round, never below ``floor``."""

    name: str = "Concede"
    start: int = 7
    step: int = 1
    floor: int = 4

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _legal_demand(view, max(self.floor, self.start - self.step * (view.round - 1)))


@dataclass(frozen=True)
class TitForTatDemand:
    """Opens with ``opening``, then leaves the other player exactly its last demand."""

    name: str = "TFT"
    opening: int = 5

    def act(self, view: SeatView, rng: random.Random) -> str:
        if not view.history:
            return _legal_demand(view, self.opening)
        last = view.history[-1]
        return _legal_demand(view, last.public["pie"] - int(last.other_actions[0]))


@dataclass(frozen=True)
class RandomDemand:
    """Uniform demand from ``low`` to ``high`` (clipped to the legal range)."""

    name: str = "RandomDemand"
    low: int = 3
    high: int = 7

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _legal_demand(view, rng.randint(self.low, self.high))


STRATEGIES = {
    "Fair": lambda **kw: FixedDemand(**{"name": "Fair", "demand": 5, **kw}),
    "Balanced": lambda **kw: FixedDemand(**{"name": "Balanced", "demand": 6, **kw}),
    "Selfish": lambda **kw: FixedDemand(**{"name": "Selfish", "demand": 7, **kw}),
    "Hardball": lambda **kw: FixedDemand(**{"name": "Hardball", "demand": 8, **kw}),
    "Concede": Concede,
    "RandomDemand": RandomDemand,
    "TFT": TitForTatDemand,
    "Random": UniformLegal,
}
