"""Strict construction of config dataclasses from plain dicts (YAML/JSON), in one place."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any]) -> T:
    """``cls(**d)``, but an unknown key is a :class:`ConfigError` listing the known ones.

    A typo in a recipe must fail loudly rather than fall back to a default silently.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(d).__name__} {d!r}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; known: {', '.join(sorted(names))}")
    return cls(**d)
