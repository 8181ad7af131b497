"""What a folder of unknown audio holds, speech, music or other sounds, from a quick listen.

The defaults differ by kind (docs/results.md), and a ``folder`` corpus does not say which it
is. EfficientAT mn04, trained on AudioSet, gives every clip a probability of its "Speech" and
"Music" classes; averaged over a sample of clips spread through the corpus they decide the
kind, and the reason is printed and recorded beside the figures. Without mn04 on the machine
the kind stays "sounds" (the most general default) and the reason says so; ``--kind``
(``kind=`` in Python) overrides both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sonotype.audio import load as load_audio
from sonotype.backbones.native import load_native
from sonotype.corpora.registry import load_corpus
from sonotype.errors import ParameterError, SonotypeError
from sonotype.pipeline.defaults import KINDS, default_recipe, local_backbone

__all__ = ["DETECTOR", "MIN_SHARE", "default_for_corpus", "detect_kind", "resolve_kind"]

DETECTOR = "efficientat-mn04"
# Below this mean probability of both Speech and Music, the audio is "other sounds". Measured on
# ../shared/data: ESC-50 0.04 / 0.06, FSDD (spoken digits, 8 kHz) 0.23 speech, TESS 0.59, RAVDESS
# 0.81, EmoDB 0.79 speech, GTZAN 0.83 music.
MIN_SHARE = 0.2
_SECONDS = 10.0  # of each sampled clip: enough to hear what it is


def detect_kind(sources: Sequence[str | os.PathLike | tuple[np.ndarray, int]], *, sample: int = 12
                ) -> tuple[str, str] | None:
    """``("speech" | "music" | "sounds", reason)`` from mn04's AudioSet probabilities, or None.

    Parameters
    ----------
    sources : sequence of path-like or (array, sr)
        The corpus's clips; ``sample`` of them, evenly spread, are heard (first 10 s each).
    sample : int

    Returns
    -------
    tuple of str, or None
        None when mn04 is not on this machine or no sampled clip could be read.
    """
    folder = local_backbone(DETECTOR)
    if folder is None or not sources:
        return None
    fam, encoder, _ = load_native(folder)
    labels = list(encoder.labels)
    speech, music = labels.index("Speech"), labels.index("Music")
    picks = np.unique(np.linspace(0, len(sources) - 1, num=min(sample, len(sources))).round().astype(int))
    shares = []
    for i in picks:
        src = sources[int(i)]
        try:
            if isinstance(src, tuple):
                y, sr = np.asarray(src[0], dtype=np.float32), int(src[1])
                y = y.mean(axis=0) if y.ndim > 1 else y
                y = y[: int(_SECONDS * sr)]
            else:
                y, sr = load_audio(src, sr=fam.sample_rate, duration=_SECONDS)
        except SonotypeError:
            continue  # an unreadable clip is reported where the corpus is read
        p = encoder.embed(y, sr)[fam.tags_output]
        shares.append((float(p[speech]), float(p[music])))
    if not shares:
        return None
    s, m = np.mean(shares, axis=0)
    heard = f"{DETECTOR} heard {len(shares)} clips: AudioSet 'Speech' {s:.2f}, 'Music' {m:.2f} on average"
    if max(s, m) < MIN_SHARE:
        return "sounds", f"{heard} (both under {MIN_SHARE}: other sounds)"
    return ("speech", heard) if s >= m else ("music", heard)


def resolve_kind(kind: str | None, sources: Sequence[str | os.PathLike | tuple[np.ndarray, int]]
                 ) -> tuple[str, str]:
    """The kind to use and why: ``kind`` when given, else :func:`detect_kind`, else "sounds"."""
    if kind is not None and kind != "auto":
        if kind not in KINDS:
            raise ParameterError(f"kind must be auto, {', '.join(KINDS)}, got {kind!r}")
        return kind, "given"
    found = detect_kind(sources)
    if found is None:
        return "sounds", f"{DETECTOR} is not on this machine to tell the kind (`sonotype backbone fetch {DETECTOR}`); " \
                         "the default for other sounds, the most general one (--kind chooses)"
    return found


def default_for_corpus(corpus: str, root: str | os.PathLike | None, kind: str | None = None, *,
                       scratch: bool = False, encoder: bool = False) -> tuple[Path, str]:
    """The default recipe for a corpus, as :func:`~sonotype.pipeline.defaults.default_recipe`; a
    ``folder`` corpus of unknown kind is first listened to (:func:`resolve_kind`), and the
    returned source text says which kind and why."""
    if corpus != "folder" or kind is not None or root is None:
        return default_recipe(corpus, kind, scratch=scratch, encoder=encoder)
    clips = load_corpus("folder", root).clips
    found, why = resolve_kind(None, [c.path for c in clips])
    path, source = default_recipe(corpus, found, scratch=scratch, encoder=encoder)
    return path, f"{source}; kind {found}: {why}"
