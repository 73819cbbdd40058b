"""The demonstrators' templated reasoning (SPEC section 6).

A demonstrator's reply at a decision is two short lines, then the action:

1. the state restated: the round line of the prompt, the private
   information (card, value, item values) and the legal actions: the list
   when it is short, else the domain's compact form of it
   (``Game.legal_actions_form``: an item demand's range per item, so the
   pool's counts are copied right before the demand that must respect them);
2. the history cited: what the opponent played in the previous round (and
   any card it showed), what that round paid the demonstrator and its total;
3. ``Action: X``.

Everything is read through the protocol (``SeatView`` and the first line of
``Game.state_text``, which names the round in every domain), so no domain is
special-cased here.  The reply stays short on purpose: it must fit the
models' generation budget (``generation.max_new_tokens``), every earlier
reply is part of each later prompt, and tiny models must learn it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sepo.games.parsing import ACTION_PREFIX
from sepo.games.protocol import Game, SeatView, Strategy
from sepo.games.simultaneous import format_number
from sepo.rollout import AgentReply, DecisionRequest, ScriptedAgent

#: legal actions are listed only when the list is this short; longer lists are restated by the
#: domain's form of them, where it has one (item demands: 8 to 125 of them)
MAX_LISTED_CHARS = 60


def _private_text(private: Any) -> str:
    if isinstance(private, Mapping):
        return ", ".join(f"{key} {value}" for key, value in private.items())
    return str(private)


def state_restatement(game: Game, view: SeatView) -> str:
    """Round, private information and legal actions, on one line."""
    round_line = game.state_text(dataclasses.replace(view, history=())).splitlines()[0].strip()
    parts = [round_line]
    if view.private is not None:
        parts.append(f"Private: {_private_text(view.private)}.")
    listed = ", ".join(view.legal_actions)
    if len(listed) <= MAX_LISTED_CHARS:
        parts.append(f"Legal: {listed}.")
    elif (form := game.legal_actions_form(view)) is not None:
        parts.append(f"Legal: {form}.")
    return " ".join(parts)


def history_citation(view: SeatView) -> str:
    """What the opponent did in the previous round, what it paid and the total so far."""
    if not view.history:
        return "No earlier rounds."
    last = view.history[-1]
    moves = " then ".join(last.other_actions) or "nothing"
    if last.revealed_other_private is not None:
        moves += f" (showed {_private_text(last.revealed_other_private)})"
    total = sum(past.own_payoff for past in view.history)
    return (f"Previous round: opponent played {moves}; I got {format_number(last.own_payoff)}, "
            f"total {format_number(total)}.")


def demonstration_reply(game: Game, view: SeatView, action: str) -> str:
    """The full reply: restated state, cited history, then the ``Action:`` line."""
    return "\n".join([state_restatement(game, view), history_citation(view), ACTION_PREFIX + action])


class DemonstratorAgent:
    """A scripted demonstrator whose replies carry the templated reasoning.

    The action comes from ``ScriptedAgent`` (the strategy with the episode's
    agent dice), so a demonstrator plays exactly as the same strategy does in
    evaluation; only the reply text differs.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.scripted = ScriptedAgent(strategy)
        self.name = strategy.name

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        return [AgentReply(text=demonstration_reply(request.game, request.view, reply.action),
                           action=reply.action)
                for request, reply in zip(requests, self.scripted.decide(requests), strict=True)]
