"""Typed manifests: a corpus root becomes a list of :class:`Clip` plus the files skipped.

Every loader returns a :class:`Manifest`. A clip's ``group`` is whatever must never sit on
both sides of a split (speaker, actor, track). Files that do not fit the corpus naming are
recorded in ``Manifest.skipped`` with a reason - never silently dropped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import CorpusError

__all__ = ["CORPORA", "Clip", "CorpusLoader", "Manifest", "Skipped", "get_loader", "load_corpus", "register"]


@dataclass(frozen=True)
class Clip:
    """One labelled piece of audio.

    ``start``/``duration`` (seconds) select a part of the file; ``duration=None`` reads to
    the end. ``meta`` holds corpus-specific facts (gender, intensity, statement, split...).
    """

    path: str
    label: str
    group: str
    corpus: str = ""
    start: float = 0.0
    duration: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def clip_id(self) -> str:
        """Stable identifier: the path, plus the part when the clip is a cut of a file."""
        if self.start == 0.0 and self.duration is None:
            return self.path
        return f"{self.path}@{self.start:.3f}+{self.duration if self.duration is not None else 'end'}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Clip:
        return cls(**{k: d[k] for k in ("path", "label", "group", "corpus", "start", "duration", "meta") if k in d})

    def with_label(self, label: str) -> Clip:
        return replace(self, label=label)


@dataclass(frozen=True)
class Skipped:
    """A file the loader could not use, and why."""

    path: str
    reason: str


@dataclass
class Manifest:
    """The clips of a corpus (after any label operations) and the files skipped on the way."""

    corpus: str
    root: str
    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted({c.label for c in self.clips})

    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c.label for c in self.clips).items()))

    def group_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c.group for c in self.clips).items()))

    def replace_clips(self, clips: Iterable[Clip], skipped: Iterable[Skipped] = ()) -> Manifest:
        """A new manifest with other clips, keeping the skipped list (plus ``skipped``)."""
        return Manifest(self.corpus, self.root, list(clips), [*self.skipped, *skipped])

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """Write one JSON object per clip (atomic)."""
        from ..io import atomic_write_text

        lines = [json.dumps(c.to_dict(), sort_keys=True) for c in self.clips]
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, *, corpus: str = "", root: str = "") -> Manifest:
        clips = []
        for i, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                try:
                    clips.append(Clip.from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError, KeyError) as exc:
                    raise CorpusError(f"{path}:{i}: not a clip record ({exc})") from None
        return cls(corpus, root, clips)


CorpusLoader = Callable[..., Manifest]
CORPORA: dict[str, CorpusLoader] = {}


def register(name: str) -> Callable[[CorpusLoader], CorpusLoader]:
    """Class-free registry: ``@register("tess")`` on a ``prepare(root, **options)`` function."""

    def deco(fn: CorpusLoader) -> CorpusLoader:
        CORPORA[name] = fn
        return fn

    return deco


def get_loader(name: str) -> CorpusLoader:
    from . import _ensure_registered

    _ensure_registered()
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}") from None


def load_corpus(name: str, root: str | os.PathLike, **options: Any) -> Manifest:
    """Turn a corpus root folder into a :class:`Manifest` with the named loader."""
    p = Path(root)
    if not p.exists():
        raise CorpusError(f"corpus root not found: {p}")
    if not p.is_dir():
        raise CorpusError(f"corpus root is not a folder: {p}")
    return get_loader(name)(p, **options)
