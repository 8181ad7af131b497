"""Encoder families sonotype runs natively: a converted folder in, pooled embeddings and tags out.

A family is one module (its front end, its network, how its released weights are converted
to ``model.safetensors`` + ``config.json`` with a tensor digest) plus one line in
:data:`FAMILIES`. Its folder's ``config.json`` names the family, so a folder found by name
(``musicnn-msd`` under ``$SONOTYPE_BACKBONES``) or by path loads the right code. The
transformers-style encoders (Whisper, wav2vec2, HuBERT, AST) go through
:mod:`sonotype.backbones.checkpoint` instead.

Every family gives, per clip, named pooled vectors (``embed(wave, sr) -> {name: (D,)}``) and
tag probabilities with the encoder's own label names; ``backbone.outputs`` picks which
vectors are concatenated into the clip's embedding (None: the family's measured default).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sonotype.errors import ConfigError, ModelError

__all__ = ["FAMILIES", "Family", "embed_native", "family_of", "load_native", "native_outputs", "pooled_widths",
           "read_native_config"]


@dataclass(frozen=True)
class Family:
    """A natively run encoder family.

    Parameters
    ----------
    name : str
        The ``family`` value of its folders' ``config.json``.
    module_name : str
        Its module: ``load(folder)`` -> an encoder with ``embed(wave, sr) -> dict``,
        ``tag(wave, sr, top)``, ``labels`` and ``model`` (the torch module); ``SAMPLE_RATE``.
        Imported on first use, so listing the families costs no torch import.
    default_outputs : tuple of str
        The vectors concatenated when ``backbone.outputs`` is not set (chosen by measurement,
        docs/results.md).
    tags_output : str
        The output holding the tag probabilities. (Licences: :func:`sonotype.utils.licences.encoder_licence`.)
    """

    name: str
    module_name: str
    default_outputs: tuple[str, ...]
    tags_output: str

    @property
    def module(self) -> ModuleType:
        """The family's module (imported now: it loads torch)."""
        return importlib.import_module(self.module_name)  # the stub table's one lazy import: torch on use

    @property
    def sample_rate(self) -> int:
        return int(self.module.SAMPLE_RATE)


# One line per family.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("musicnn", "sonotype.backbones.musicnn", ("pooled", "penultimate"), "tags"),
    Family("efficientat", "sonotype.backbones.efficientat", ("pooled",), "probabilities"),
)}


def read_native_config(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``config.json`` when it names a native family, else None (another kind of encoder)."""
    f = Path(folder) / "config.json"
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return cfg if isinstance(cfg, dict) and cfg.get("family") in FAMILIES else None


def family_of(folder: str | Path) -> Family | None:
    """The native family of an encoder folder, or None."""
    cfg = read_native_config(folder)
    return None if cfg is None else FAMILIES[cfg["family"]]


def pooled_widths(config: dict[str, Any]) -> dict[str, int]:
    """Every pooled vector a folder's encoder gives, with its width.

    ``config.json``'s ``outputs`` lists widths: ``[w]`` or ``w`` for a clip-level vector,
    ``[w, "T"]`` for a sequence over time, pooled as ``<name>_max`` and ``<name>_mean``.
    """
    outputs = config.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise ModelError(f"{config.get('family')} folder config.json has no 'outputs' table")
    widths: dict[str, int] = {}
    for name, spec in outputs.items():
        shape = spec if isinstance(spec, list) else [spec]
        if not shape or not isinstance(shape[0], int) or isinstance(shape[0], bool) or shape[0] < 1:
            raise ModelError(f"config.json output {name!r} has no width: {spec!r}")
        if len(shape) > 1 and shape[-1] == "T":
            widths[f"{name}_max"] = widths[f"{name}_mean"] = int(shape[0])
        else:
            widths[name] = int(shape[0])
    return widths


def native_outputs(family: Family, config: dict[str, Any], wanted: Sequence[str] | None) -> list[tuple[str, int]]:
    """The (name, width) of the vectors an embedding concatenates, checked against the folder's outputs."""
    widths = pooled_widths(config)
    names = list(wanted if wanted else family.default_outputs)
    unknown = [n for n in names if n not in widths]
    if unknown:
        raise ConfigError(f"backbone.outputs {unknown} are not outputs of {family.name}; it has {', '.join(widths)}")
    return [(n, widths[n]) for n in names]


def load_native(folder: str | Path) -> tuple[Family, Any, dict[str, Any]]:
    """Load a native encoder folder: (family, encoder, config); the tensor digest is checked by the family."""
    cfg = read_native_config(folder)
    if cfg is None:
        raise ModelError(f"{folder}: config.json names no known encoder family ({', '.join(FAMILIES)})")
    fam = FAMILIES[cfg["family"]]
    return fam, fam.module.load(folder), cfg


def embed_native(encoder: Any, waves: Sequence[np.ndarray], sr: int, outputs: Sequence[tuple[str, int]]) -> np.ndarray:
    """Clip embeddings (N, D): the chosen pooled outputs of every wave, concatenated in order (width 0: unchecked)."""
    batch = getattr(encoder, "embed_batch", None)
    per_clip = batch(list(waves), sr) if batch is not None else [encoder.embed(w, sr) for w in waves]
    rows = []
    for d in per_clip:
        parts = [np.asarray(d[name], dtype=np.float32).reshape(-1) for name, _ in outputs]
        for (name, width), p in zip(outputs, parts, strict=True):
            if width and p.size != width:
                raise ModelError(f"encoder output {name!r} has {p.size} values, its config says {width}")
        rows.append(np.concatenate(parts))
    return np.stack(rows) if rows else np.zeros((0, sum(w for _, w in outputs)), np.float32)
