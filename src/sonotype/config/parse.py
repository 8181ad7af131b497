"""Strict construction of config dataclasses from plain dicts (YAML/JSON), in one place."""

from __future__ import annotations

import numbers
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from sonotype.errors import ConfigError

T = TypeVar("T")

__all__ = ["check_field_types", "check_fields", "section_of", "strict_from_dict", "type_name"]


# The run-config section each settings class fills, for messages such as `train.lr: expected a number`.
_SECTIONS = {"FeatureConfig": "features", "RepresentationConfig": "representation", "TrainConfig": "train",
             "AugmentConfig": "augment", "BackboneConfig": "backbone", "ProtocolConfig": "protocol",
             "ModelConfig": "model", "EvalConfig": "evaluate", "StudyConfig": "study", "CorpusConfig": "corpus",
             "RunConfig": ""}


def section_of(cls: type) -> str:
    """The run-config key a settings class fills (``train`` for TrainConfig), for error messages."""
    return _SECTIONS.get(cls.__name__, cls.__name__)


def check_fields(obj: Any, *, where: str | None = None, skip: frozenset[str] = frozenset()) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation (from ``__post_init__``).

    A config built in Python (``TrainConfig(lr="fast")``) is refused as a YAML one is, with a
    :class:`ConfigError` naming the dotted key (``train.lr``), so no wrong type travels on into
    the library. ``skip`` names fields the class converts itself before checking.
    """
    cls = type(obj)
    values = {f.name: getattr(obj, f.name) for f in fields(cls) if f.name not in skip}
    check_field_types(cls, values, where=section_of(cls) if where is None else where)


def strict_from_dict(cls: type[T], d: dict[str, Any], *, where: str = "", skip: frozenset[str] = frozenset()) -> T:
    """``cls(**d)``, but an unknown key or a value of the wrong type is a :class:`ConfigError`.

    The one strict parser of every config section (a run config's sections too). A typo in a
    recipe must fail loudly rather than fall back to a default silently, and a value of the
    wrong type (``lr: fast``) must be named here rather than surface later as a comparison
    error deep inside the library.

    Parameters
    ----------
    cls : dataclass type
    d : dict
        Plain values (YAML, JSON).
    where : str
        The dotted place named in errors (default: the section's name).
    skip : frozenset of str
        Fields that are sub-sections, built and checked by the class itself.

    Returns
    -------
    cls
    """
    if not isinstance(d, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(d).__name__} {d!r}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    if unknown:
        head = f"{where}: unknown key(s)" if where else f"unknown {cls.__name__} key(s)"
        raise ConfigError(f"{head} {unknown}; known: {', '.join(sorted(names))}")
    check_field_types(cls, d, where="" if where == "config" else (where or _SECTIONS.get(cls.__name__, cls.__name__)),
                      skip=skip)
    try:
        return cls(**d)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def check_field_types(cls: type, d: dict[str, Any], *, where: str = "", skip: frozenset[str] = frozenset()) -> None:
    """Check every value of ``d`` against the annotation of the field of ``cls`` it sets.

    Raises a :class:`ConfigError` naming the dotted key, the expected type and the value.
    Integers are accepted where a float is expected (YAML reads ``1`` as an int); booleans
    are never accepted as numbers. Fields in ``skip`` (nested sections built separately) and
    fields without a usable annotation are not checked.
    """
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved: leave it to the class
        return
    for key, value in d.items():
        if key in skip or key not in hints:
            continue
        tp = hints[key]
        if not _matches(value, tp):
            raise ConfigError(
                f"{f'{where}.{key}' if where else key}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"
            )


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` (as YAML/JSON would give it) fits the annotation ``tp``."""
    if tp is Any or tp is object:
        return True
    if tp is type(None) or tp is None:
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return all(_item_matches(v, args[0]) for v in value)
            return len(value) == len(args) and all(_item_matches(v, a) for v, a in zip(value, args))
        return not args or all(_item_matches(v, args[0]) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return False
        if args:
            return all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and is_dataclass(tp):
        return isinstance(value, (tp, dict))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation this checker does not model: the class checks it


def _item_matches(value: Any, tp: Any) -> bool:
    # Names inside lists (labels, groups, speakers) are often numbers in YAML (`[1001, 1002]`);
    # the classes turn them into strings themselves.
    if tp is str and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return True
    return _matches(value, tp)


_PLURAL: dict[Any, str] = {float: "numbers", int: "integers", str: "strings", bool: "booleans"}


def type_name(tp: Any) -> str:
    """A short human name for an annotation: ``float``, ``int or null``, ``list of str``."""
    if tp is Any:
        return "any value"
    if tp is type(None) or tp is None:
        return "null"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_PLURAL.get(args[0], type_name(args[0]))}" if args else "a list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_PLURAL.get(args[0], type_name(args[0]))}"
        if args and len(set(args)) == 1:
            return f"a list of {len(args)} {_PLURAL.get(args[0], type_name(args[0]))}"
        return f"a list of {len(args)} ({', '.join(type_name(a) for a in args)})" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if isinstance(tp, type) and is_dataclass(tp):
        return f"a mapping of {tp.__name__} settings"
    return getattr(tp, "__name__", str(tp))
