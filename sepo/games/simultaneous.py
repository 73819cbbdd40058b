"""Shared machinery for the four simultaneous-move domains.

IPD, the auction and both negotiations have the same round shape: each seat
makes exactly one move, neither sees the other's move before making its own,
then the referee settles the round.  Subclasses provide the deal, the legal
actions, the settlement and the domain's sentences; this module provides the
turn order, the seat views and the layout of the state text, once.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from sepo.games.parsing import REPLY_INSTRUCTION
from sepo.games.protocol import (
    AGENT,
    OPPONENT,
    Game,
    RoundRecord,
    RoundState,
    SeatView,
    seat_history,
)


class SimultaneousGame(Game):
    """A domain whose rounds are one simultaneous move per seat."""

    # -- hooks for subclasses ------------------------------------------------
    def deal(self, context: Mapping[str, Any], round_no: int,
             rng: random.Random) -> tuple[tuple[Any, Any], dict[str, Any]]:
        """Private information of (agent, opponent) and public facts for a round."""
        return (None, None), {}

    @abstractmethod
    def actions(self, public: Mapping[str, Any], private: Any) -> tuple[str, ...]:
        """Legal actions of a seat given the round's public facts and its private info."""

    @abstractmethod
    def settle(self, state: RoundState, agent_action: str, opponent_action: str,
               rng: random.Random) -> tuple[tuple[float, float], dict[str, Any]]:
        """Payoffs (agent, opponent) and extra public facts of a finished round."""

    @abstractmethod
    def private_text(self, view: SeatView) -> str:
        """One line stating the seat's private information ('' when there is none)."""

    @abstractmethod
    def round_text(self, past: Any) -> str:
        """One sentence describing a past round (a ``SeatRound``) to its seat."""

    def moves_so_far_text(self, view: SeatView) -> str:
        """The compact public history: the other seat's past moves."""
        return f"Opponent's moves so far: {' '.join(r.other_actions[0] for r in view.history)}."

    def legal_actions_text(self, view: SeatView) -> str:
        """The legal-actions line; domains with large action spaces describe them instead."""
        return f"Legal actions: {', '.join(view.legal_actions)}."

    # -- protocol ---------------------------------------------------------------
    def start_round(self, context: Mapping[str, Any], round_no: int, rng: random.Random,
                    history: Sequence[RoundRecord]) -> RoundState:
        private, public = self.deal(context, round_no, rng)
        return RoundState(round=round_no, private=private, public=dict(public))

    def to_move(self, state: RoundState) -> int | None:
        return (AGENT, OPPONENT, None)[min(len(state.moves), 2)]

    def legal_actions(self, state: RoundState, seat: int) -> tuple[str, ...]:
        return self.actions(state.public, state.private[seat])

    def finish_round(self, state: RoundState, rng: random.Random) -> RoundRecord:
        agent_action, opponent_action = state.moves[0].action, state.moves[1].action
        payoffs, extra = self.settle(state, agent_action, opponent_action, rng)
        return RoundRecord(round=state.round, moves=tuple(state.moves), payoffs=payoffs,
                           private=state.private, public={**state.public, **extra})

    def view(self, context: Mapping[str, Any], state: RoundState, seat: int,
             history: Sequence[RoundRecord]) -> SeatView:
        return SeatView(game=self.name, round=state.round, rounds=self.rounds,
                        private=state.private[seat], public=dict(state.public),
                        history=seat_history(history, seat),
                        legal_actions=self.actions(state.public, state.private[seat]))

    # -- text -------------------------------------------------------------------
    def state_text(self, view: SeatView) -> str:
        lines = [f"Round {view.round} of {view.rounds}."]
        if view.history:
            lines.append("Last round: " + self.round_text(view.history[-1]))
            lines.append(self.moves_so_far_text(view))
            total = sum(r.own_payoff for r in view.history)
            lines.append(f"Your total payoff so far: {format_number(total)}.")
        private = self.private_text(view)
        if private:
            lines.append(private)
        lines.append(self.legal_actions_text(view))
        lines.append(REPLY_INSTRUCTION)
        return "\n".join(lines)


def format_number(x: float) -> str:
    """Payoffs print as integers when they are whole (they almost always are)."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"
