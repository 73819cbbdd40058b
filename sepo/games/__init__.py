"""The five domains, selectable by name.

Modules are imported lazily so that importing one domain does not pay for
the others (Kuhn pulls in OpenSpiel only for its cross-check tests).
"""

from __future__ import annotations

import importlib
from typing import Any

from sepo.errors import unknown_name
from sepo.games.protocol import Game

#: game name -> "module:Class"
_GAMES = {
    "ipd": "sepo.games.ipd:IPD",
    "auction": "sepo.games.auction:Auction",
    "negotiation": "sepo.games.negotiation:Negotiation",
    "negotiation_items": "sepo.games.negotiation_items:NegotiationItems",
    "kuhn": "sepo.games.kuhn:Kuhn",
}
GAME_NAMES: tuple[str, ...] = tuple(_GAMES)


def game_class(name: str) -> type[Game]:
    if name not in _GAMES:
        raise unknown_name("game", name, GAME_NAMES)
    module, cls = _GAMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_game(name: str, **settings: Any) -> Game:
    """Build a domain from its params (rounds, max_payoff, ...)."""
    return game_class(name)(**settings)
