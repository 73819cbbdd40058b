"""The typed rule settings and strategy knobs of each domain's section in ``params.yaml``.

``games.<domain>.settings`` are keyword arguments of the domain's engine and
``games.<domain>.strategies.<name>`` those of a scripted strategy.  Passed
through untyped, a misspelt knob (``forgiv``) or an impossible value (an
empty value list, ``min_demand`` above ``max_demand``) only failed deep in a
stage with a traceback.  Here each is a strict model with ranges, checked by
``sepo.config`` before any stage starts; the engines still receive the
params exactly as written, so valid params build exactly what they did.

The defaults below are the engines' defaults (a test holds them equal); they
only matter for the cross-field checks of a partly given section.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from sepo.errors import ConfigError
from sepo.params_errors import first_error_line


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Probability = Annotated[float, Field(ge=0, le=1, description="a probability, in [0, 1]")]
Bid = Literal["LOW", "MEDIUM", "HIGH"]
Payoff = tuple[float, float]


def _unique(values: list[Any]) -> list[Any]:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"{repeated[0]!r} is listed twice; each entry may appear once")
    return values


# -- rule settings --------------------------------------------------------------------------
class IPDPayoffs(_Strict):
    """(agent, opponent) payoffs per outcome: C/D of the agent, then of the opponent."""

    CC: Payoff
    CD: Payoff
    DC: Payoff
    DD: Payoff

    @model_validator(mode="after")
    def _cooperation_pays(self) -> IPDPayoffs:
        if self.CC[0] <= 0:
            raise ValueError("CC's agent payoff must be > 0: the externality is measured relative to it")
        return self


class IPDSettings(_Strict):
    payoffs: IPDPayoffs | None = Field(default=None, description="all four outcomes CC, CD, DC, DD")


class AuctionBids(_Strict):
    LOW: NonNegativeInt
    MEDIUM: NonNegativeInt
    HIGH: NonNegativeInt

    @model_validator(mode="after")
    def _increasing(self) -> AuctionBids:
        if not self.LOW < self.MEDIUM < self.HIGH:
            raise ValueError(f"bids must give LOW < MEDIUM < HIGH, got {self.LOW}, {self.MEDIUM}, {self.HIGH}")
        return self


class AuctionSettings(_Strict):
    values: list[PositiveInt] = Field(default=[2, 4], min_length=1,
                                      description="private values, drawn uniformly each round")
    bids: AuctionBids | None = None


class NegotiationSettings(_Strict):
    pie: PositiveInt = 10
    min_demand: NonNegativeInt = 1
    max_demand: NonNegativeInt = 9
    greedy_demand: NonNegativeInt = 7

    @model_validator(mode="after")
    def _ordered(self) -> NegotiationSettings:
        if not self.min_demand <= self.max_demand <= self.pie:
            raise ValueError(f"need min_demand <= max_demand <= pie, got {self.min_demand}, {self.max_demand}, "
                             f"{self.pie}")
        if not self.min_demand <= self.greedy_demand <= self.max_demand:
            raise ValueError(f"greedy_demand must lie in min_demand..max_demand ({self.min_demand}.."
                             f"{self.max_demand}), got {self.greedy_demand}")
        return self


ItemName = Annotated[str, Field(pattern=r"^[a-z]+$", description="a lowercase word")]


class NegotiationItemsSettings(_Strict):
    items: Annotated[list[ItemName], Field(min_length=1)] = ["books", "hats", "balls"]
    min_count: PositiveInt = 1
    max_count: PositiveInt = 4
    total_value: PositiveInt = 10

    @model_validator(mode="after")
    def _ordered(self) -> NegotiationItemsSettings:
        _unique(list(self.items))
        if self.min_count > self.max_count:
            raise ValueError(f"need min_count <= max_count, got {self.min_count} and {self.max_count}")
        return self


class KuhnSettings(_Strict):
    """Kuhn poker has fixed rules (three cards, ante 1, bet 1): no settings."""


SETTINGS: dict[str, type[_Strict]] = {
    "ipd": IPDSettings, "auction": AuctionSettings, "negotiation": NegotiationSettings,
    "negotiation_items": NegotiationItemsSettings, "kuhn": KuhnSettings,
}


# -- strategy knobs ------------------------------------------------------------------------
class NoKnobs(_Strict):
    """A strategy without settings."""


# A knob left out keeps the strategy's own default; ``None`` defaults (never validated, and not
# accepted from the file since the type excludes None) stand for a default that differs per strategy.
class ForgiveKnobs(_Strict):
    forgive: Probability = 0.25


class CooperateKnobs(_Strict):
    cooperate: Probability = 0.5


class ShareKnobs(_Strict):
    share: float = Field(default=None, ge=0, description="bid the highest amount not above share x value")


class FixedBidKnobs(_Strict):
    bid: Bid = None


class OpeningBidKnobs(_Strict):
    opening: Bid = "MEDIUM"


class AggressiveValueKnobs(_Strict):
    share: float = Field(default=0.5, ge=0)
    margin: float = Field(default=1.0, ge=0, description="never bid above value - margin")


class FixedDemandKnobs(_Strict):
    demand: NonNegativeInt = None


class ConcedeKnobs(_Strict):
    start: NonNegativeInt = 7
    step: NonNegativeInt = 1
    floor: NonNegativeInt = 4

    @model_validator(mode="after")
    def _floor_below_start(self) -> ConcedeKnobs:
        if self.floor > self.start:
            raise ValueError(f"floor must be <= start, got floor {self.floor} and start {self.start}")
        return self


class RandomDemandKnobs(_Strict):
    low: NonNegativeInt = 3
    high: NonNegativeInt = 7

    @model_validator(mode="after")
    def _low_below_high(self) -> RandomDemandKnobs:
        if self.low > self.high:
            raise ValueError(f"need low <= high, got {self.low} and {self.high}")
        return self


class OpeningDemandKnobs(_Strict):
    opening: NonNegativeInt = 5


class NashAlphaKnobs(_Strict):
    alpha: float = Field(default=1 / 3, ge=0, le=1 / 3, description="Kuhn's equilibrium family parameter")


class CallWithQueenKnobs(_Strict):
    call_with_queen: Probability = 0.5


#: domain -> strategy -> its knobs; a strategy not listed has none
KNOBS: dict[str, dict[str, type[_Strict]]] = {
    "ipd": {"GenerousTFT": ForgiveKnobs, "Mixed": CooperateKnobs},
    "auction": {"Truthful": ShareKnobs, "Shaded": ShareKnobs, "ValueBid": ShareKnobs,
                "Conservative": FixedBidKnobs, "Aggressive": FixedBidKnobs, "CollusiveLow": FixedBidKnobs,
                "Adaptive": OpeningBidKnobs, "AggressiveValue": AggressiveValueKnobs},
    "negotiation": {"Fair": FixedDemandKnobs, "Balanced": FixedDemandKnobs, "Selfish": FixedDemandKnobs,
                    "Hardball": FixedDemandKnobs, "Concede": ConcedeKnobs, "RandomDemand": RandomDemandKnobs,
                    "TFT": OpeningDemandKnobs},
    "negotiation_items": {},
    # BestResponse has none: its target is the agent's measured table, bound in code, never written in params
    "kuhn": {"NashApprox": NashAlphaKnobs, "AlwaysPassQ": NashAlphaKnobs, "PotControl": CallWithQueenKnobs,
             "BestResponse": NoKnobs},
}


def knobs_model(game: str, strategy: str) -> type[_Strict]:
    return KNOBS.get(game, {}).get(strategy, NoKnobs)


def _check(model: type[_Strict], raw: Any, key: str) -> None:
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(first_error_line(exc, model, key)) from None


def check_game_section(game: str, settings: dict[str, Any], strategies: dict[str, Any]) -> None:
    """Raise one ``ConfigError`` line naming ``games.<game>...`` for the first bad setting or knob."""
    _check(SETTINGS[game], settings, f"games.{game}.settings")
    for name, knobs in strategies.items():
        _check(knobs_model(game, name), knobs, f"games.{game}.strategies.{name}")
