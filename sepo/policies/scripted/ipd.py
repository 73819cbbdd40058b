"""Scripted IPD strategies: every opponent of the four pools and every demonstrator.

Each strategy is a pure function of its seat's view and its own dice, so the
same object can sit in either seat.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sepo.games.ipd import COOPERATE, DEFECT
from sepo.games.protocol import SeatView
from sepo.policies.scripted.common import UniformLegal


def _last_other(view: SeatView) -> str | None:
    return view.history[-1].other_actions[0] if view.history else None


@dataclass(frozen=True)
class TitForTat:
    """Cooperates first, then copies the other player's last move."""

    name: str = "TitForTat"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _last_other(view) or COOPERATE


@dataclass(frozen=True)
class GenerousTFT:
    """Tit-for-tat that forgives a defection with probability ``forgive``."""

    name: str = "GenerousTFT"
    forgive: float = 0.25

    def act(self, view: SeatView, rng: random.Random) -> str:
        if _last_other(view) == DEFECT:
            return COOPERATE if rng.random() < self.forgive else DEFECT
        return COOPERATE


@dataclass(frozen=True)
class Mixed:
    """Cooperates with probability ``cooperate`` each round, ignoring history."""

    name: str = "Mixed"
    cooperate: float = 0.5

    def act(self, view: SeatView, rng: random.Random) -> str:
        return COOPERATE if rng.random() < self.cooperate else DEFECT


@dataclass(frozen=True)
class Grim:
    """Cooperates until the other player defects once, then defects forever."""

    name: str = "Grim"

    def act(self, view: SeatView, rng: random.Random) -> str:
        betrayed = any(DEFECT in r.other_actions for r in view.history)
        return DEFECT if betrayed else COOPERATE


@dataclass(frozen=True)
class AlwaysDefect:
    name: str = "AlwaysDefect"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return DEFECT


@dataclass(frozen=True)
class AlwaysCooperate:
    name: str = "AlwaysCooperate"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return COOPERATE


@dataclass(frozen=True)
class AlternatingDefect:
    """Defects in odd rounds (1, 3, 5, ...), cooperates in even rounds."""

    name: str = "AlternatingDefect"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return DEFECT if view.round % 2 == 1 else COOPERATE


@dataclass(frozen=True)
class SuspiciousTFT:
    """Opens with DEFECT, then copies the other player's last move."""

    name: str = "SuspiciousTFT"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return _last_other(view) or DEFECT


@dataclass(frozen=True)
class Pavlov:
    """Win-stay, lose-shift: repeat its move after the other cooperated, switch otherwise.

    In the prisoner's dilemma "the other cooperated" is exactly "I got R or T",
    the winning outcomes.
    """

    name: str = "Pavlov"

    def act(self, view: SeatView, rng: random.Random) -> str:
        if not view.history:
            return COOPERATE
        last = view.history[-1]
        own = last.own_actions[0]
        if last.other_actions[0] == COOPERATE:
            return own
        return DEFECT if own == COOPERATE else COOPERATE


STRATEGIES = {
    "TitForTat": TitForTat,
    "TFT": lambda **kw: TitForTat(name="TFT", **kw),
    "GenerousTFT": GenerousTFT,
    "Mixed": Mixed,
    "Grim": Grim,
    "AlwaysDefect": AlwaysDefect,
    "AlwaysCooperate": AlwaysCooperate,
    "AlternatingDefect": AlternatingDefect,
    "SuspiciousTFT": SuspiciousTFT,
    "Pavlov": Pavlov,
    "Random": UniformLegal,
}
