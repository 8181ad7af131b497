"""Tagging without training: a pretrained encoder's own classes for a file, an array or its windows.

A user with no labelled data gets an answer in one call: EfficientAT mn04 names the 527
AudioSet classes ("Speech", "Dog", "Church bell", "Heavy metal"...), musicnn the 50 Million
Song Dataset tags ("rock", "female vocalists", "jazz"...). The same :class:`Tagger` serves
``sonotype tag``, ``POST /v1/tag`` (``sonotype serve --tagger``) and Python.

Examples
--------
>>> tagger = Tagger.load("efficientat-mn04")  # doctest: +SKIP
>>> tagger.tag("dog.wav", top=3).tags  # doctest: +SKIP
[('Dog', 0.81), ('Animal', 0.81), ('Domestic animals, pets', 0.75)]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonotype import audio
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.load import resolve
from sonotype.backbones.native import Family, load_native
from sonotype.errors import AudioError, ModelError, ParameterError
from sonotype.utils.checks import finite, mono_signal, sample_rate
from sonotype.utils.licences import encoder_licence

__all__ = ["DEFAULT_TAGGER", "TagResult", "Tagger", "WindowTags"]

DEFAULT_TAGGER = "efficientat-mn04"
MAX_TOP = 100


@dataclass
class WindowTags:
    """The top tags of one window: seconds from the start, then (label, probability) pairs."""

    start: float
    end: float
    tags: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 6), "end": round(self.end, 6),
                "tags": [{"label": lab, "probability": round(p, 6)} for lab, p in self.tags]}


@dataclass
class TagResult:
    """The top tags of a whole clip (``tags``) and, with a window, of each window."""

    path: str | None
    duration: float
    tags: list[tuple[str, float]]
    windows: list[WindowTags] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "duration": round(self.duration, 6),
                             "tags": [{"label": lab, "probability": round(p, 6)} for lab, p in self.tags]}
        if self.windows:
            d["windows"] = [w.to_dict() for w in self.windows]
        return d


class Tagger:
    """A pretrained tagging encoder and its label names.

    Parameters
    ----------
    family : Family
        The encoder family (:data:`sonotype.backbones.native.FAMILIES`).
    encoder : object
        Its loaded encoder (``embed(wave, sr)``).
    name : str
        What it is called (``efficientat-mn04``).
    """

    def __init__(self, family: Family, encoder: Any, name: str) -> None:
        self.family = family
        self.encoder = encoder
        self.name = name
        self.labels = list(encoder.labels)

    @classmethod
    def load(cls, encoder: str = DEFAULT_TAGGER, *, search: tuple[str | os.PathLike, ...] = ()) -> Tagger:
        """Find an encoder by name or folder (as ``backbone.model`` is found) and load it.

        Raises
        ------
        ModelError
            Not on this machine (the message names ``sonotype backbone fetch``), or a folder of
            an encoder that does not tag (a hidden-state encoder such as Whisper).
        """
        src = resolve(BackboneConfig(model=encoder), search=search)
        try:
            fam, enc, _ = load_native(src.folder)
        except ModelError:
            raise ModelError(f"{encoder}: not a tagging encoder (tagging needs efficientat-mn04 or musicnn-msd, "
                             "whose outputs are named classes)") from None
        return cls(fam, enc, Path(str(encoder)).name)

    @property
    def sample_rate(self) -> int:
        return self.family.sample_rate

    def info(self) -> dict[str, Any]:
        """JSON-ready: the encoder, its family, sample rate, licence and labels."""
        return {"encoder": self.name, "family": self.family.name, "sample_rate": self.sample_rate,
                "licence": encoder_licence(self.family.name).id, "labels": list(self.labels)}

    def probabilities(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Tag probabilities of a mono signal, shape (n_labels,)."""
        return np.asarray(self.encoder.embed(y, sr)[self.family.tags_output], dtype=np.float64)

    def top(self, p: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable (label, probability) pairs, most probable first (ties by label order)."""
        order = np.argsort(-p, kind="stable")[:k]
        return [(self.labels[i], float(p[i])) for i in order]

    def tag(self, source: str | os.PathLike | np.ndarray, sr: int | None = None, *, top: int = 5,
            window: float | None = None, hop: float | None = None, max_windows: int = 5000) -> TagResult:
        """The top tags of a file or an array, and of each window when ``window`` (seconds) is set.

        Parameters
        ----------
        source : path-like or np.ndarray [shape=(n,) or (channels, n)]
        sr : int, optional
            Required for an array.
        top : int
            How many tags (1 .. 100).
        window, hop : float, optional
            Window length and step in seconds (``hop`` defaults to ``window``); the clip's tags
            are then the mean over the windows' probabilities.
        max_windows : int
            Refuse a window/hop that would cut the clip into more windows than this.

        Returns
        -------
        TagResult
        """
        if isinstance(top, bool) or not isinstance(top, int | np.integer) or not 1 <= int(top) <= MAX_TOP:
            raise ParameterError(f"top must be an integer from 1 to {MAX_TOP}, got {top!r}")
        if isinstance(source, str | os.PathLike):
            y, sr = audio.load(source, sr=self.sample_rate, min_samples=1)
            path: str | None = str(source)
        else:
            if sr is None:
                raise ParameterError("tagging an array needs its sample rate: tag(y, sr)")
            sr = sample_rate(sr, "sample rate (sr)")
            y, path = mono_signal(source), None
        duration = len(y) / sr
        if len(y) == 0:
            raise AudioError(path, "no audio samples to tag")
        if window is None:
            if hop is not None:
                raise ParameterError(f"hop={hop} given without window")
            return TagResult(path, duration, self.top(self.probabilities(y, sr), int(top)))
        window = finite("window (s)", window, low=0.0, low_open=True)
        hop = window if hop is None else finite("hop (s)", hop, low=0.0, low_open=True)
        n_win, n_hop = max(1, int(round(window * sr))), max(1, int(round(hop * sr)))
        starts = list(range(0, max(1, len(y) - n_win + 1), n_hop)) if len(y) >= n_win else [0]
        if len(starts) > max_windows:
            raise ParameterError(f"window={window} s, hop={hop} s cut {duration:.1f} s into {len(starts)} windows; "
                                 f"at most {max_windows}: use a longer hop")
        probs, wins = [], []
        for s in starts:
            p = self.probabilities(y[s : s + n_win], sr)
            probs.append(p)
            wins.append(WindowTags(s / sr, min(s + n_win, len(y)) / sr, self.top(p, int(top))))
        return TagResult(path, duration, self.top(np.mean(probs, axis=0), int(top)), wins)
