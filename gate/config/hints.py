"""Hints that make schema errors actionable: "did you mean" for unknown keys, quoting for strings.

The hints are computed from the pydantic model, so a field added to the schema
is suggested without any change here.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from gate.config.model import GateConfig

SIMILARITY_CUTOFF = 0.6
"""Minimum ``difflib`` ratio for a known key to be suggested in place of an unknown one."""


def describe_error(error_type: str, message: str, location: Sequence[str | int], value: Any = None) -> str:
    """Turn one pydantic error into a message that names what was expected."""
    if error_type == "missing":
        return "required key is missing"
    if error_type == "extra_forbidden":
        return unknown_key_message(location)
    if error_type == "string_type" and isinstance(value, bool | int | float):
        return "expected a string, not a number or boolean. Quote the value if it is meant as text."
    if error_type == "string_type" and value is None:
        return "expected a string, but the value is empty or null. Write a value, or quote it."
    return message.removeprefix("Value error, ")


def unknown_key_message(location: Sequence[str | int]) -> str:
    """Describe the unknown key at the end of ``location``, with the closest known key."""
    *parent, key = location
    known = known_keys(parent)
    if not known or not isinstance(key, str):
        return "unknown key"

    close = difflib.get_close_matches(key, known, n=1, cutoff=SIMILARITY_CUTOFF)
    if close:
        return f"unknown key. Did you mean {close[0]!r}?"
    return "unknown key. Expected one of: " + ", ".join(sorted(known))


def known_keys(path: Sequence[str | int]) -> list[str]:
    """Return the field names of the model at ``path`` in the config, or [] if it is not a model."""
    model: type[BaseModel] | None = GateConfig
    for element in path:
        if model is None:
            return []
        if isinstance(element, int):
            continue
        field = model.model_fields.get(element)
        model = _model_in(field.annotation) if field is not None else None

    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """Find the model inside an annotation such as ``list[RouteConfig]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    if origin is dict:
        return _model_in(typing.get_args(annotation)[1])
    return None
