"""From what a user typed to one run config: the corpus, the default or recipe, the encoder, overrides.

``sonotype train`` and ``sonotype run`` parse their options and call :func:`plan_train` /
:func:`plan_recipe`; the :class:`Plan` says what configuration was chosen and why (saved as
``config_source`` beside the figures) and carries the notes to show.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonotype.errors import ConfigError
from sonotype.pipeline.config import RunConfig, load_config
from sonotype.pipeline.defaults import CORPUS_KINDS, resolve_backbone, switch_to_backbone
from sonotype.pipeline.kind import default_for_corpus
from sonotype.pipeline.mixed import parse_corpus_args, recipe_root_sets
from sonotype.recipes import RECIPES_DIR, recipe_path

__all__ = ["Plan", "plan_recipe", "plan_train"]


@dataclass
class Plan:
    """A run config, what produced it (``config_source``) and the notes to show before the run."""

    cfg: RunConfig
    source: str
    notes: list[str] = field(default_factory=list)


def _corpus_sets(corpus: list[str], root: str | os.PathLike | None) -> tuple[list[str], str, str | None]:
    """Overrides for ``--corpus NAME --root ROOT`` or repeated ``--corpus NAME=ROOT``, the corpus name
    the defaults go by, and for several corpora of one kind (all speech) that kind."""
    if len(corpus) == 1 and "=" not in corpus[0]:
        if root is None:
            raise ConfigError(f"--corpus {corpus[0]} needs --root (or write --corpus {corpus[0]}=ROOT)")
        return [f"corpus.name={corpus[0]}", f"corpus.root={root}"], corpus[0], None
    if root is not None:
        raise ConfigError("--root goes with a single --corpus NAME; with several corpora give each as NAME=ROOT")
    entries = parse_corpus_args(corpus)
    if len(entries) == 1:
        return [f"corpus.name={entries[0]['name']}", f"corpus.root={entries[0]['root']}"], entries[0]["name"], None
    entries = [{**e, "root": str(Path(e["root"]).expanduser())} for e in entries]
    kinds = {CORPUS_KINDS.get(e["name"]) for e in entries}
    return [f"corpus={json.dumps(entries)}"], "mixed", kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _with_backbone(config: str | os.PathLike | None, backbone: str, source: str) -> tuple[dict[str, Any], str, list[str]]:
    """The config file as a plain dict switched to the frozen encoder (before overrides), and the notes."""
    plain = load_config(config).to_dict() if config else {}
    refs: str | list[str] = [b.strip() for b in backbone.split(",")] if "," in backbone else backbone
    switched, notes = switch_to_backbone(plain, resolve_backbone(refs))
    return switched, f"{source}, switched to backbone {backbone}", [f"--backbone: {n}" for n in notes]


def plan_train(*, corpus: list[str], root: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
               features: str | None = None, representation: str | None = None, model: str | None = None,
               ensemble: int | None = None, protocol: str | None = None, jobs: int | None = None,
               kind: str | None = None, scratch: bool = False, backbone: str | None = None,
               overrides: list[str] | tuple[str, ...] = ()) -> Plan:
    """The run config of ``sonotype train``.

    Without ``config`` and ``model`` the configuration measured best for the corpus is used
    (:func:`sonotype.pipeline.kind.default_for_corpus`: a folder corpus of unknown kind is
    listened to first); ``backbone`` (a name, a folder, or several joined by commas: a
    fusion) switches any configuration to frozen-encoder embeddings.

    Returns
    -------
    Plan
    """
    corpus_sets, name, mixed_kind = _corpus_sets(list(corpus), root)
    base, source = None, f"config {config}" if config else "built-in defaults"
    if config is None and model is None:
        # An explicit --backbone starts from the encoder recipe too (its measured head settings).
        path, source = default_for_corpus(name, root, kind or mixed_kind, scratch=scratch, encoder=backbone is not None)
        config = path
    else:
        if kind is not None:
            raise ConfigError("--kind chooses a default configuration; it does not combine with --config or --model")
        if scratch:
            raise ConfigError("--scratch chooses a default configuration; it does not combine with --config or --model")
    if scratch and backbone is not None:
        raise ConfigError("--scratch and --backbone contradict each other: choose one")
    if model and not config:
        source = f"built-in defaults with --model {model}"
    sets = list(corpus_sets)
    for flag, value in (("features.features", f"[{features}]" if features else None),
                        ("representation.kind", representation), ("model.name", model), ("model.ensemble", ensemble),
                        ("protocol", protocol), ("jobs", jobs)):
        if value is not None and value != "":
            sets.append(f"{flag}={value}")
    notes: list[str] = []
    if backbone is not None:
        base, source, notes = _with_backbone(config, backbone, source)
        config = None
    return Plan(load_config(config, [*sets, *overrides], base=base), source, notes)


def plan_recipe(recipe: str, *, root: str | os.PathLike | None = None, corpus_roots: list[str] | tuple[str, ...] = (),
                backbone: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Plan:
    """The run config of ``sonotype run RECIPE``: the recipe with its corpus roots and overrides."""
    path = recipe_path(recipe)
    source = f"recipe {path.stem}" if path.resolve().parent == RECIPES_DIR else f"config {path}"
    sets = [f"corpus.root={root}"] if root else []
    if corpus_roots:
        sets += recipe_root_sets(path, list(corpus_roots), root)
    base, notes = None, []
    if backbone is not None:
        base, source, notes = _with_backbone(path, backbone, source)
    return Plan(load_config(None if base is not None else path, [*sets, *overrides], base=base), source, notes)
