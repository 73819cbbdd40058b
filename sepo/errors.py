"""Errors that reach the user as one clear line (the CLI maps them to exit 2)."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A wrong name, key or value in user input; the message is the whole story."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """'unknown game 'x'; valid: a, b, c' — the one-line message for a bad name."""
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
