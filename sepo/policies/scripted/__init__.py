"""Scripted strategies of every domain, selectable by name from params."""

from __future__ import annotations

import importlib
from typing import Any

from sepo.errors import unknown_name
from sepo.games import GAME_NAMES
from sepo.games.protocol import Strategy


def _table(game: str) -> dict[str, Any]:
    if game not in GAME_NAMES:
        raise unknown_name("game", game, GAME_NAMES)
    return importlib.import_module(f"sepo.policies.scripted.{game}").STRATEGIES


def strategy_names(game: str) -> tuple[str, ...]:
    """Every strategy name of a domain (opponents and demonstrators)."""
    return tuple(_table(game))


def make_strategy(game: str, name: str, **settings: Any) -> Strategy:
    """A named strategy of ``game``; ``settings`` override its knobs (e.g. probabilities)."""
    table = _table(game)
    if name not in table:
        raise unknown_name(f"{game} strategy", name, table)
    return table[name](**settings)
