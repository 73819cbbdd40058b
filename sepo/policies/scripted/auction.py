"""Scripted auction strategies: every opponent of the four pools and every demonstrator.

Strategies read their value from ``view.private`` and the bid schedule from
``view.public["bid_amounts"]``; legal actions come ordered LOW < MEDIUM <
HIGH.  Value-based rules bid the highest amount not above a target and fall
back to LOW when every bid is above it.

Opponents (SPEC section 3): Truthful bids its value capped at HIGH,
min(value, 3); Shaded bids half its value (2 -> LOW, 4 -> MEDIUM);
Conservative and CollusiveLow always bid LOW; Aggressive always bids HIGH;
Adaptive bids one step above the other player's last bid (MEDIUM in round 1);
RandomBid bids uniformly.

Demonstrators (SPEC section 6 names them but does not define them):

- ValueBid bids half its value (value 2 -> LOW, value 4 -> MEDIUM), the
  risk-neutral equilibrium shading of a two-bidder first-price auction with
  uniform values; it never wins at a loss.
- AggressiveValue bids one step above ValueBid, but never more than
  value - 1 (value 2 -> LOW, value 4 -> HIGH): it competes harder for the
  item while still never making a wasted win.
- Adaptive is the exploit-pool opponent; Random bids uniformly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sepo.games.auction import HIGH, LOW, MEDIUM
from sepo.games.protocol import SeatView
from sepo.policies.scripted.common import UniformLegal


def _highest_bid_within(view: SeatView, budget: float) -> int:
    """Index (in legal order) of the highest bid whose amount is at most ``budget``; 0 if none."""
    amounts = view.public["bid_amounts"]
    affordable = [i for i, action in enumerate(view.legal_actions) if amounts[action] <= budget]
    return affordable[-1] if affordable else 0


@dataclass(frozen=True)
class ValueShare:
    """Bids the highest amount not above ``share`` times its value."""

    name: str
    share: float

    def act(self, view: SeatView, rng: random.Random) -> str:
        return view.legal_actions[_highest_bid_within(view, self.share * view.private)]


@dataclass(frozen=True)
class AggressiveValue:
    """One bid step above ``share`` of its value, never above value - ``margin``.

    It never bids below the shaded bid, so with a value too small for any
    margin it bids like ValueBid.
    """

    name: str = "AggressiveValue"
    share: float = 0.5
    margin: float = 1.0

    def act(self, view: SeatView, rng: random.Random) -> str:
        shaded = _highest_bid_within(view, self.share * view.private)
        safe = _highest_bid_within(view, view.private - self.margin)
        return view.legal_actions[max(shaded, min(shaded + 1, safe))]


@dataclass(frozen=True)
class Fixed:
    """Always the same bid."""

    name: str
    bid: str

    def act(self, view: SeatView, rng: random.Random) -> str:
        return self.bid


@dataclass(frozen=True)
class Adaptive:
    """Bids one step above the other player's last bid, capped at HIGH; ``opening`` in round 1."""

    name: str = "Adaptive"
    opening: str = MEDIUM

    def act(self, view: SeatView, rng: random.Random) -> str:
        if not view.history:
            return self.opening
        last = view.legal_actions.index(view.history[-1].other_actions[0])
        return view.legal_actions[min(last + 1, len(view.legal_actions) - 1)]


STRATEGIES = {
    "Truthful": lambda **kw: ValueShare(**{"name": "Truthful", "share": 1.0, **kw}),
    "Conservative": lambda **kw: Fixed(**{"name": "Conservative", "bid": LOW, **kw}),
    "Shaded": lambda **kw: ValueShare(**{"name": "Shaded", "share": 0.5, **kw}),
    "Aggressive": lambda **kw: Fixed(**{"name": "Aggressive", "bid": HIGH, **kw}),
    "Adaptive": Adaptive,
    "CollusiveLow": lambda **kw: Fixed(**{"name": "CollusiveLow", "bid": LOW, **kw}),
    "RandomBid": lambda **kw: UniformLegal(**{"name": "RandomBid", **kw}),
    "ValueBid": lambda **kw: ValueShare(**{"name": "ValueBid", "share": 0.5, **kw}),
    "AggressiveValue": AggressiveValue,
    "Random": UniformLegal,
}
