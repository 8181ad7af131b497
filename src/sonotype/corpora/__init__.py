"""Corpus loaders: a root folder in, a :class:`Manifest` of labelled, grouped clips out.

One module per corpus, each registering a ``prepare(root, **options)`` function under its
name. ``load_corpus("ravdess", root)`` picks the loader from the registry.
"""

from __future__ import annotations

import importlib

from sonotype.corpora.base import (
    CORPORA,
    Clip,
    Manifest,
    Skipped,
    get_loader,
    group_name,
    load_corpus,
    register,
)

__all__ = ["CORPORA", "Clip", "Manifest", "Skipped", "get_loader", "group_name", "load_corpus", "register"]

# Corpus modules register themselves on import; imported lazily so `import sonotype` stays fast.
_MODULES = ("folder", "gtzan", "ravdess", "tess", "savee", "cremad", "emodb", "dusha", "fsdd", "esc50", "demo")


def _ensure_registered() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
