"""Values checked against type hints, so the Python API and recipes refuse a wrong type in the same
one line (``epochs: expected int, got str '3'``) instead of a comparison failing deep inside."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from edgekd.errors import ConfigError


def typed(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it fits ``annotation`` (ints accepted as floats), else a ConfigError naming ``where``."""
    if fits(value, annotation):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            return tuple(value)
        return value
    raise ConfigError(f"{where}: expected {describe(annotation)}, got {type(value).__name__} {value!r}")


def check_fields(instance: Any, prefix: str = "") -> None:
    """Every field of a dataclass instance checked against its annotation, in place (ints become floats)."""
    try:
        hints = typing.get_type_hints(type(instance))
    except (NameError, TypeError):  # an annotation that cannot be resolved here is checked where it is used
        return
    for field in dataclasses.fields(instance):
        if field.name in hints:
            value = typed(getattr(instance, field.name), hints[field.name], f"{prefix}{field.name}")
            object.__setattr__(instance, field.name, value)


def fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation``; an annotation this cannot read counts as fitting."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if annotation is dict or origin is dict:
        return (
            isinstance(value, dict) and all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
            if args
            else isinstance(value, dict)
        )
    if origin in (list, tuple, Sequence) or annotation is list:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
        return all(fits(v, args[0]) for v in value) if args else True
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation we cannot check (e.g. a callable) is left to the code that uses it


def describe(annotation: Any) -> str:
    """An annotation as a user reads it: ``int``, ``list[str]``, ``float | None``."""
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")
