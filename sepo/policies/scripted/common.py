"""Strategies that mean the same thing in every domain."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sepo.games.protocol import SeatView


@dataclass(frozen=True)
class UniformLegal:
    """A uniformly random legal action: the demonstrator mixtures' noise, and the shift pools' RandomX."""

    name: str = "Random"

    def act(self, view: SeatView, rng: random.Random) -> str:
        return rng.choice(view.legal_actions)
