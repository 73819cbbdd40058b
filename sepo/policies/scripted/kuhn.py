"""Scripted Kuhn poker strategies: the four pools' opponents and the demonstrators.

Every strategy here is a behavioural policy table: the probability of the
aggressive action (BET or CALL) at each of the 12 information sets of
``sepo.games.kuhn.INFOSETS``.  ``policy_table()`` exposes it (exact
exploitability needs it), and ``act`` samples from it, so what a strategy
does and what is measured about it cannot drift apart.

``BestResponse`` (SPEC section 8) is the one strategy whose table is not
fixed: it is OpenSpiel's exact best response to the agent's own table, so
it only plays once ``bind_to_agent`` has given it that table (evaluation
and SEPO training do, see ``sepo.games.protocol.AdaptiveStrategy``).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from sepo.exploitability import best_response_table, nash_conv, nash_table, table_advantage, validate_table
from sepo.games.kuhn import EQUILIBRIUM_ALPHA, INFOSETS, aggressive_action, infoset_key, passive_action
from sepo.games.protocol import SeatView

#: infosets where the player faces a bet (it may call); at the others it may bet
CALL_INFOSETS = tuple(key for key in INFOSETS if key.endswith("b"))


def card_table(bet: Mapping[str, float], call: Mapping[str, float]) -> dict[str, float]:
    """A table that depends only on the card: ``bet[card]`` whenever it may bet, ``call[card]``
    whenever it faces a bet."""
    return {key: (call if key in CALL_INFOSETS else bet)[key[0]] for key in INFOSETS}


class TableStrategy(ABC):
    """Plays its ``policy_table``: the aggressive action with the table's probability."""

    name: str

    @abstractmethod
    def policy_table(self) -> dict[str, float]:
        """Probability of BET or CALL at each of the 12 information sets."""

    def act(self, view: SeatView, rng: random.Random) -> str:
        aggressive = rng.random() < self.policy_table()[infoset_key(view)]
        return aggressive_action(view.legal_actions) if aggressive else passive_action(view.legal_actions)


@dataclass(frozen=True)
class NashApprox(TableStrategy):
    """The alpha member of Kuhn's equilibrium family (``EQUILIBRIUM_ALPHA`` = 1/3 by default, as SPEC asks)."""

    name: str = "NashApprox"
    alpha: float = EQUILIBRIUM_ALPHA

    def __post_init__(self) -> None:
        nash_table(self.alpha)  # rejects an alpha outside [0, 1/3] when the strategy is built

    def policy_table(self) -> dict[str, float]:
        return nash_table(self.alpha)


@dataclass(frozen=True)
class TightPassive(TableStrategy):
    """Bets and calls only with K."""

    name: str = "TightPassive"

    def policy_table(self) -> dict[str, float]:
        only_king = {"J": 0.0, "Q": 0.0, "K": 1.0}
        return card_table(bet=only_king, call=only_king)


@dataclass(frozen=True)
class LooseAggressive(TableStrategy):
    """Bets and calls with Q or K, passes with J."""

    name: str = "LooseAggressive"

    def policy_table(self) -> dict[str, float]:
        queen_or_king = {"J": 0.0, "Q": 1.0, "K": 1.0}
        return card_table(bet=queen_or_king, call=queen_or_king)


@dataclass(frozen=True)
class AlwaysBet(TableStrategy):
    """Bets or calls with every card."""

    name: str = "AlwaysBet"

    def policy_table(self) -> dict[str, float]:
        return dict.fromkeys(INFOSETS, 1.0)


@dataclass(frozen=True)
class MaxExploiter(TableStrategy):
    """Value-bets Q and K (never bluffs J) and calls only with K."""

    name: str = "MaxExploiter"

    def policy_table(self) -> dict[str, float]:
        return card_table(bet={"J": 0.0, "Q": 1.0, "K": 1.0}, call={"J": 0.0, "Q": 0.0, "K": 1.0})


@dataclass(frozen=True)
class AlwaysPass(TableStrategy):
    """Checks or folds with every card."""

    name: str = "AlwaysPass"

    def policy_table(self) -> dict[str, float]:
        return dict.fromkeys(INFOSETS, 0.0)


@dataclass(frozen=True)
class RandomLegal(TableStrategy):
    """Picks each of its two legal actions with probability 1/2."""

    name: str = "RandomLegal"

    def policy_table(self) -> dict[str, float]:
        return dict.fromkeys(INFOSETS, 0.5)


@dataclass(frozen=True)
class TightValue(TableStrategy):
    """Never bluffs; bets K always and Q only as a thin value bet after a check; calls with Q or K.

    A demonstrator of plausible, unbluffed human play rather than of an
    equilibrium: it never puts chips in without a Q or K.
    """

    name: str = "TightValue"

    def policy_table(self) -> dict[str, float]:
        table = card_table(bet={"J": 0.0, "Q": 0.0, "K": 1.0}, call={"J": 0.0, "Q": 1.0, "K": 1.0})
        table["Qp"] = 1.0
        return table


@dataclass(frozen=True)
class PotControl(TableStrategy):
    """Keeps the pot small without K: bets only K, calls with K, calls with Q with ``call_with_queen``.

    A demonstrator of cautious play that still catches some bluffs.
    """

    name: str = "PotControl"
    call_with_queen: float = 0.5

    def policy_table(self) -> dict[str, float]:
        return card_table(bet={"J": 0.0, "Q": 0.0, "K": 1.0},
                          call={"J": 0.0, "Q": self.call_with_queen, "K": 1.0})


@dataclass(frozen=True)
class AlwaysPassQ(TableStrategy):
    """NashApprox with J and K, but always checks or folds with Q.

    A small share of over-tight demonstrations, so the data also shows
    giving up the middle card.
    """

    name: str = "AlwaysPassQ"
    alpha: float = EQUILIBRIUM_ALPHA

    def __post_init__(self) -> None:
        nash_table(self.alpha)

    def policy_table(self) -> dict[str, float]:
        table = nash_table(self.alpha)
        table.update({key: 0.0 for key in INFOSETS if key.startswith("Q")})
        return table


@dataclass(frozen=True)
class BestResponse(TableStrategy):
    """OpenSpiel's exact best response to a target table: the agent's true worst case (SPEC section 8).

    Built from params it has no target, because its target is the agent's
    own behavioural table, which only exists once the agent has played:
    evaluation binds it to the evaluated policy's played table, SEPO training
    to the current model's table, every ``sepo.best_response_refresh_steps``
    steps (with ``sepo.best_response_mixture: average``, each episode one of
    the best responses of every refresh so far, ``sepo.training.adaptive``).
    Playing it unbound is an error, so a pool entry can never silently fall
    back to some other table.  One table plays both seats:
    first-mover sets from player 0's best response, second-mover sets from
    player 1's (``sepo.exploitability.best_response_table``).
    """

    name: str = "BestResponse"
    #: the agent's table it responds to, in ``INFOSETS`` order; None until bound.  Not a params
    #: knob (``metadata``): only ``bind_to_agent`` sets it, from the agent's measured play
    target: tuple[float, ...] | None = field(default=None, metadata={"params": False})
    _table: dict[str, float] | None = field(default=None, init=False, repr=False, compare=False,
                                            metadata={"params": False})

    def __post_init__(self) -> None:
        if self.target is not None:
            target = dict(zip(INFOSETS, self.target, strict=True))
            object.__setattr__(self, "_table", best_response_table(target))  # once, not at every decision

    def bind_to_agent(self, agent_policy: Mapping[str, float]) -> BestResponse:
        """This strategy responding to ``agent_policy``, a 12-set table (``KuhnAudit.played_policy``)."""
        clean = validate_table(agent_policy)
        return BestResponse(name=self.name, target=tuple(clean[key] for key in INFOSETS))

    def target_table(self) -> dict[str, float]:
        """The table it responds to."""
        return dict(zip(INFOSETS, self._require_target(), strict=True))

    def expected_advantage(self) -> float:
        """Its exact expected ū_opp − ū_agent per hand over both seats: the target's NashConv.

        Kuhn is zero-sum and an episode's hands alternate seats, so the best
        response's mean per-hand gain is the exploitability and the gap between
        the two players' per-hand payoffs twice that.
        """
        return nash_conv(self.target_table())

    def advantage_against(self, agent_policy: Mapping[str, float]) -> float:
        """Its exact expected ū_opp − ū_agent per hand over both seats against ``agent_policy``.

        Against its own target this is ``expected_advantage``; against a later
        table it is what this older best response still wins (SEPO training's
        fictitious-play mixture, ``sepo.training.adaptive``, averages it).
        """
        return table_advantage(self.policy_table(), agent_policy)

    def policy_table(self) -> dict[str, float]:
        self._require_target()
        return dict(self._table)

    def _require_target(self) -> tuple[float, ...]:
        if self.target is None:
            raise ValueError(f"{self.name} has no target table: it plays the best response to the agent's "
                             "policy and must be bound to it first (evaluation and SEPO training do; "
                             "it cannot be an evaluated agent or a demonstrator)")
        return self.target


STRATEGIES = {
    "NashApprox": NashApprox,
    "TightPassive": TightPassive,
    "LooseAggressive": LooseAggressive,
    "AlwaysBet": AlwaysBet,
    "MaxExploiter": MaxExploiter,
    "AlwaysPass": AlwaysPass,
    "RandomLegal": RandomLegal,
    "TightValue": TightValue,
    "PotControl": PotControl,
    "AlwaysPassQ": AlwaysPassQ,
    "BestResponse": BestResponse,
}
