"""Shared test helpers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sepo.games.protocol import SeatView, Strategy


@dataclass
class Recording:
    """Plays ``inner`` and keeps every view it was shown (to audit what a seat sees)."""

    inner: Strategy
    views: list[SeatView] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def act(self, view: SeatView, rng: random.Random) -> str:
        self.views.append(view)
        return self.inner.act(view, rng)
