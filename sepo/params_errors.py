"""One line for a pydantic validation error: the key, what is wrong, what is allowed, what was given.

Pydantic's own message is several lines and says "Extra inputs are not
permitted" for a misspelt key without listing the right ones.  Every params
error goes through ``first_error_line`` so that each says the same three
things: the dotted key, the rule (allowed values or range), and the input.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

#: inputs longer than this are not quoted back
_MAX_QUOTED = 60


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``, ``dict[str, X]``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _container_item(annotation: Any) -> Any:
    """The item type of ``dict[str, X]`` / ``list[X]`` (through Optional and Annotated), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            item = _container_item(arg)
            if item is not None:
                return item
        return None
    if origin in (dict, list, tuple) and typing.get_args(annotation):
        return typing.get_args(annotation)[-1]
    return None


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names (aliases where set) of the model that holds the key at ``loc``; None if unknown."""
    annotation: Any = model
    for part in loc[:-1]:
        current = _model_of(annotation)
        if current is not None and isinstance(part, str):
            field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part), None)
            if field is None:
                return None
            annotation = field.annotation
        else:  # a dict key or list index: step into the item type
            annotation = _container_item(annotation)
            if annotation is None:
                return None
    holder = _model_of(annotation)
    if holder is None:
        return None
    return [f.alias or name for name, f in holder.model_fields.items()]


def _quoted(value: Any) -> str | None:
    if isinstance(value, (dict, list)) or value is None:
        return None
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else None


def first_error_line(error: ValidationError, model: type[BaseModel] | None = None, prefix: str = "") -> str:
    """``key: message`` for the first error of ``error``, its key under ``prefix``.

    ``model`` (the validated model) lets a wrong key list the right ones.
    """
    errors = error.errors()
    # a misspelt key also makes the right one "missing": name the misspelling, which explains both
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # pydantic names the member of a union it tried (``list[str]``, ``function-after[...]``): not a key
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join([prefix, *(str(p) for p in loc)] if prefix else [str(p) for p in loc]) or "params"
    if first["type"] == "extra_forbidden":
        valid = allowed_keys(model, loc) if model is not None else None
        if valid is not None:
            return f"{key}: unknown key; valid: {', '.join(valid) if valid else 'none (leave it empty)'}"
        return f"{key}: unknown key"
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith(key + ":"):
        return message
    given = _quoted(first.get("input"))
    if first["type"] not in ("value_error", "missing") and given is not None:
        message = f"{message} (got {given})"
    return f"{key}: {message}"
