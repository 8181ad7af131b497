"""The schema of a recipe's ``protocol`` entry: :class:`ProtocolConfig` and the protocol names.

:mod:`sonotype.splits.split` turns a protocol into train/validation/test splits; both names stay
importable from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from sonotype.config.parse import check_fields
from sonotype.errors import ConfigError

__all__ = ["PROTOCOLS", "ProtocolConfig"]

PROTOCOLS = ("auto", "holdout", "kfold", "logo", "locos", "official", "predefined", "groups", "random")
_ALIASES = {
    "leave-one-group-out": "logo",
    "leave-one-corpus-out": "locos",
    "loso": "logo",
    "group-kfold": "kfold",
    "cv": "kfold",
    "split": "official",
    "fixed": "predefined",
}


def _protocol_hint(name: str) -> str:
    """``kfold4`` -> ``; did you mean 'kfold:4'?``; a near miss -> the closest protocol name."""
    import difflib
    import re

    m = re.fullmatch(r"([a-z-]+?)[-_ =]?(\d+(?:\.\d+)?)", name.strip().lower())
    if m and _ALIASES.get(m.group(1), m.group(1)) in ("kfold", "holdout", "random"):
        return f"; did you mean '{m.group(1)}:{m.group(2)}'?"
    close = difflib.get_close_matches(name.strip().lower(), [*PROTOCOLS, *_ALIASES], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class ProtocolConfig:
    """How to split: the schema of the ``protocol`` entry of a recipe.

    Parse a short string (``"kfold:4"``, ``"logo"``, ``"holdout:0.25"``, ``"groups:YAF"``,
    ``"predefined:fold"``, ``"random"``) or a YAML mapping with :meth:`parse`.

    Parameters
    ----------
    name : str
        One of :data:`PROTOCOLS` (``auto``, ``kfold``, ``logo``, ``holdout``, ``groups``,
        ``official``, ``locos``, ``random``, ...); aliases such as ``loso`` are accepted.
    k : int
        Folds of ``kfold`` (>= 2).
    test_size, val_size : float
        Test share of ``holdout``; validation share carved by group from each training side.
    seed : int
        Shuffling of groups.
    field : str
        The clip metadata field a predefined split reads.
    test_groups, train_groups : list of str, optional
        The groups of a ``groups`` split.

    Examples
    --------
    >>> p = ProtocolConfig.parse("kfold:4")
    >>> p.name, p.k
    ('kfold', 4)
    """

    name: str = "auto"
    k: int = 5
    test_size: float = 0.2
    val_size: float = 0.1
    seed: int = 0
    field: str = "split"
    test_groups: list[str] | None = None
    train_groups: list[str] | None = None

    def __post_init__(self) -> None:
        check_fields(self, skip=frozenset({"test_groups", "train_groups"}))  # a single group may be a string
        name = _ALIASES.get(self.name, self.name)
        if name not in PROTOCOLS:
            raise ConfigError(
                f"protocol name must be one of {', '.join(PROTOCOLS)}; got {self.name!r}{_protocol_hint(str(self.name))}"
            )
        object.__setattr__(self, "name", name)
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 2:
            raise ConfigError(f"protocol k (folds) must be an integer >= 2, got {self.k!r}")
        if not 0.0 < float(self.test_size) < 1.0:
            raise ConfigError(f"protocol test_size must be in (0, 1), got {self.test_size!r}")
        if not 0.0 <= float(self.val_size) < 1.0:
            raise ConfigError(f"protocol val_size must be in [0, 1), got {self.val_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ConfigError(f"protocol seed must be an integer, got {self.seed!r}")
        for attr in ("test_groups", "train_groups"):
            value = getattr(self, attr)
            if isinstance(value, str):
                value = [value]
            if value is not None:
                object.__setattr__(self, attr, [str(g) for g in value])
        if self.name == "groups" and not self.test_groups:
            raise ConfigError("protocol 'groups' needs test_groups (e.g. 'groups:YAF' or test_groups: [YAF])")
        if self.test_groups and self.train_groups:
            both = sorted(set(self.test_groups) & set(self.train_groups))
            if both:
                raise ConfigError(f"groups {both} are listed in both test_groups and train_groups")

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | ProtocolConfig | None) -> ProtocolConfig:
        """Build a config from ``"name[:arg]"``, a mapping, or an existing config.

        The optional argument is the protocol's main setting: folds for ``kfold``, the test
        share for ``holdout``/``random``, comma-separated test groups for ``groups``, the
        meta field for ``predefined``.
        """
        if spec is None:
            return cls()
        if isinstance(spec, ProtocolConfig):
            return spec
        if isinstance(spec, dict):
            known = {f.name for f in fields(cls)}
            d = dict(spec)
            if "protocol" in d and "name" not in d:
                d["name"] = d.pop("protocol")
            unknown = sorted(set(d) - known)
            if unknown:
                raise ConfigError(f"unknown protocol settings {unknown}; known: {sorted(known)}")
            try:
                return cls(**d)
            except TypeError as exc:
                raise ConfigError(f"invalid protocol settings {spec!r}: {exc}") from None
        if not isinstance(spec, str):
            raise ConfigError(
                f"protocol must be a string, mapping or ProtocolConfig, got {type(spec).__name__}"
            )
        name, _, arg = spec.strip().partition(":")
        name = _ALIASES.get(name.strip().lower(), name.strip().lower())
        arg = arg.strip()
        if not arg:
            return cls(name=name)
        try:
            if name == "kfold":
                return cls(name=name, k=int(arg))
            if name in ("holdout", "random"):
                return cls(name=name, test_size=float(arg))
            if name == "groups":
                return cls(name=name, test_groups=[g.strip() for g in arg.split(",") if g.strip()])
            if name == "predefined":
                return cls(name=name, field=arg)
        except ValueError:
            raise ConfigError(f"protocol {spec!r}: cannot read {arg!r} as the setting of {name!r}") from None
        raise ConfigError(f"protocol {spec!r}: {name!r} takes no ':' argument")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
