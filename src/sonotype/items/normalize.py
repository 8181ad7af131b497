"""Standardise features or embeddings per speaker or per corpus, with that group's own clips.

Speaker and recording conditions shift every feature of a clip: a deep voice, a far
microphone, another corpus's level. The standard unsupervised adaptation in speech emotion
work removes the shift by standardising each speaker's (or corpus's) items with the mean and
standard deviation of that speaker's own clips. No label is used, so the test speakers'
clips may give their own statistics: that is what a deployed model can do too, given a few
clips of the new speaker (:meth:`sonotype.inference.predict.Classifier.predict_group`) or a running
estimate (:meth:`Normalizer.start_running`).

``normalize: {by: speaker}`` (or ``corpus``) in a run config applies it to every item
before the usual training-side :class:`~sonotype.features.Standardizer`; the saved model
carries a :class:`Normalizer` (JSON in ``model.json``, no pickle) whose fallback statistics
(the training speakers' average mean and standard deviation) serve a clip whose speaker has
given fewer than ``min_clips`` clips.

Statistics are per feature over a group's items and, for sequence items, over time as well:
``(N, F)`` vectors and ``(N, L, D)`` backbone embeddings per element, ``(N, T, F)`` windows
per feature ``F``, ``(N, F, T)`` log-mel patches per band ``F``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sonotype.errors import ConfigError, ModelError, ParameterError

__all__ = ["BY", "NormalizeConfig", "Normalizer", "describe", "group_keys", "normalize_copies", "normalize_dataset", "reduce_axes"]

BY = ("none", "speaker", "corpus")


@dataclass
class NormalizeConfig:
    """``by``: ``none`` | ``speaker`` (a clip's group) | ``corpus``; ``min_clips``: fewest clips a
    group needs for its own statistics (fewer: the training speakers' average statistics)."""

    by: str = "none"
    min_clips: int = 2

    def __post_init__(self) -> None:
        if self.by not in BY:
            raise ConfigError(f"normalize.by must be one of {', '.join(BY)}, got {self.by!r}")
        if isinstance(self.min_clips, bool) or not isinstance(self.min_clips, int) or self.min_clips < 1:
            raise ConfigError(f"normalize.min_clips must be an integer >= 1, got {self.min_clips!r}")

    @property
    def enabled(self) -> bool:
        return self.by != "none"

    @classmethod
    def parse(cls, value: Any) -> NormalizeConfig:
        """A config, a mapping or a bare ``by`` string (``"speaker"``)."""
        if value is None:
            return cls()
        if isinstance(value, NormalizeConfig):
            return value
        if isinstance(value, str):
            return cls(by=value)
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"by", "min_clips"})
            if unknown:
                raise ConfigError(f"normalize: unknown key(s) {unknown}; known: by, min_clips")
            return cls(**value)
        raise ConfigError(f"normalize must be none, speaker, corpus or a mapping, got {value!r}")


def reduce_axes(kind: str, ndim: int) -> tuple[int, ...]:
    """Axes a group's statistics are taken over: the items, plus time for windows and log-mel patches."""
    if ndim == 3 and kind == "windows":
        return (0, 1)
    if ndim == 3 and kind == "logmel":
        return (0, 2)
    return (0,)


def group_keys(clips: Sequence[Any], by: str) -> list[str]:
    """Each clip's normalisation group: its speaker group, or its corpus."""
    from sonotype.splits.split import corpus_of

    if by == "speaker":
        return [str(c.group) for c in clips]
    if by == "corpus":
        return [str(c.corpus or corpus_of(c.group)) for c in clips]
    raise ParameterError(f"group_keys: by must be 'speaker' or 'corpus', got {by!r}")


def _stats(X: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=axes, dtype=np.float64, keepdims=True)
    std = np.sqrt(X.var(axis=axes, dtype=np.float64, keepdims=True))
    std[~(std > 1e-8 * np.maximum(1.0, np.abs(mean)))] = 1.0  # a constant feature: centred only
    return mean, std



def describe(by: str, own: int | None = None, fallback: int = 0, min_clips: int = 2) -> str:
    """The sentence reports and protocols use for ``normalize: {by: ...}``.

    ``own`` / ``fallback``: how many groups had their own statistics and how many had fewer
    than ``min_clips`` clips and got the training average (unknown when ``own`` is None). A
    run where no group had its own statistics says so, since the step then did nothing a
    scaler does not (a folder corpus without ``group_regex``: every file its own group).

    Parameters
    ----------
    by : {"speaker", "corpus"}
    own, fallback, min_clips : int, optional

    Returns
    -------
    str

    Examples
    --------
    >>> describe("speaker")[:40]
    'items standardised per speaker with the '
    >>> describe("speaker", own=0, fallback=30)[:60]
    'no per-speaker standardisation: none of 30 speaker groups ha'
    """
    if own == 0:
        return (f"no per-{by} standardisation: none of {fallback} {by} groups has {min_clips} or more clips "
                f"(name the groups, e.g. group_regex for a folder corpus)")
    tail = ""
    if own is not None and fallback:
        tail = f" ({fallback} of {own + fallback} {by} groups with fewer than {min_clips} clips: the training average)"
    return (f"items standardised per {by} with the statistics of its own clips (no label used), "
            f"then by the training side's scaler{tail}")


class Normalizer:
    """Per-group standardisation, with fallback statistics for a group with too few clips.

    Never pickled: :meth:`to_dict` / :meth:`from_dict` are plain JSON (shape + flat lists).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [2.0], [10.0], [14.0]])
    >>> n = Normalizer("speaker", (0,)).fit(X, np.arange(4), ["a", "a", "b", "b"])
    >>> n.transform_groups(X, np.arange(4), ["a", "a", "b", "b"]).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    def __init__(self, by: str, axes: Sequence[int], *, min_clips: int = 2) -> None:
        if by not in ("speaker", "corpus"):
            raise ParameterError(f"Normalizer: by must be 'speaker' or 'corpus', got {by!r}")
        self.by = by
        self.axes = tuple(int(a) for a in axes)
        self.min_clips = int(min_clips)
        self.running = False
        self.reset()

    # ------------------------------------------------------------------ fitting
    def _groups(self, item_clip: np.ndarray, keys: Sequence[str]) -> dict[str, tuple[np.ndarray, int]]:
        """group -> (its item indices, its clip count)."""
        keys_arr = np.asarray([str(k) for k in keys], dtype=object)
        item_keys = keys_arr[np.asarray(item_clip, dtype=np.int64)]
        out = {}
        for k in sorted(set(keys_arr.tolist())):
            items = np.flatnonzero(item_keys == k)
            if len(items):
                out[k] = (items, int(np.sum(keys_arr == k)))
        return out

    def fit(self, X: np.ndarray, item_clip: np.ndarray, keys: Sequence[str]) -> Normalizer:
        """Fallback statistics: the mean over groups (with ``min_clips`` clips) of their means and
        the root mean of their variances. ``keys`` has one group name per clip."""
        X = np.asarray(X)
        groups = self._groups(item_clip, keys)
        full = [items for items, n in groups.values() if n >= self.min_clips] or [items for items, _ in groups.values()]
        if not full:
            raise ParameterError("Normalizer.fit got no items")
        means, variances = zip(*[(m, s**2) for m, s in (_stats(X[items], self.axes) for items in full)])
        self.mean_ = np.mean(means, axis=0)
        std = np.sqrt(np.mean(variances, axis=0))
        std[~(std > 0)] = 1.0
        self.std_ = std
        self.n_groups_ = len(full)
        return self

    def _check(self, X: np.ndarray) -> None:
        if not hasattr(self, "mean_"):
            raise ModelError("Normalizer is not fitted")
        want = tuple(d for i, d in enumerate(self.mean_.shape) if i not in self.axes)
        got = tuple(d for i, d in enumerate(X.shape) if i not in self.axes)
        if X.ndim != self.mean_.ndim or want != got:
            raise ParameterError(f"Normalizer was fitted on items of shape {self.mean_.shape[1:]} "
                                 f"(statistics over axes {self.axes}), got {X.shape}")

    def transform_groups(self, X: np.ndarray, item_clip: np.ndarray, keys: Sequence[str]) -> np.ndarray:
        """Each group's items standardised by that group's own statistics (from ``X``), float32.

        A group with fewer than ``min_clips`` clips gets the fallback statistics.
        """
        X = np.asarray(X)
        self._check(X)
        out = np.empty(X.shape, np.float32)
        self.group_stats_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.n_own_ = self.n_fallback_ = 0  # groups with their own statistics / with the fallback (reports)
        for key, (items, n) in self._groups(item_clip, keys).items():
            own = n >= self.min_clips
            mean, std = _stats(X[items], self.axes) if own else (self.mean_, self.std_)
            self.n_own_ += own
            self.n_fallback_ += not own
            self.group_stats_[key] = (mean, std)
            out[items] = (X[items] - mean) / std
        return out

    def transform_known(self, X: np.ndarray, keys: Sequence[str]) -> np.ndarray:
        """Items (one group name each) standardised by their group's statistics from the last
        :meth:`transform_groups` (augmented copies of training clips: their originals' statistics)."""
        X = np.asarray(X)
        out = np.empty(X.shape, np.float32)
        for k in sorted(set(keys)):
            sel = np.asarray([x == k for x in keys])
            mean, std = self.group_stats_.get(k, (self.mean_, self.std_))
            out[sel] = (X[sel] - mean) / std
        return out

    # ------------------------------------------------------------------ prediction
    def reset(self) -> None:
        """Forget the running statistics (a new speaker starts)."""
        self._n = 0
        self._count = 0
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None

    def start_running(self) -> None:
        """From now on every clip the model featurises updates the statistics it is normalised by."""
        self.reset()
        self.running = True

    def stop_running(self) -> None:
        self.running = False
        self.reset()

    def observe(self, X: np.ndarray) -> None:
        """Add one clip's items to the running statistics."""
        X = np.asarray(X, dtype=np.float64)
        self._check(X)
        s = X.sum(axis=self.axes, keepdims=True)
        q = (X**2).sum(axis=self.axes, keepdims=True)
        count = int(np.prod([X.shape[a] for a in self.axes]))
        self._sum = s if self._sum is None else self._sum + s
        self._sumsq = q if self._sumsq is None else self._sumsq + q
        self._count += count
        self._n += 1

    def current(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The statistics :meth:`transform` uses now, and which (``running`` or ``fallback``)."""
        if self._sum is not None and self._n >= self.min_clips:
            mean = self._sum / self._count
            var = np.maximum(self._sumsq / self._count - mean**2, 0.0)
            std = np.sqrt(var)
            std[~(std > 1e-8 * np.maximum(1.0, np.abs(mean)))] = 1.0
            return mean, std, "running"
        return self.mean_, self.std_, "fallback"

    def stats_of(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A group's own statistics from all its items (e.g. every clip of one speaker)."""
        X = np.asarray(X)
        self._check(X)
        return _stats(X, self.axes)

    def transform(self, X: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Standardise items by ``stats``, else by the running statistics, else the fallback."""
        X = np.asarray(X)
        self._check(X)
        mean, std = stats if stats is not None else self.current()[:2]
        return ((X - mean) / std).astype(np.float32)

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (shape and flat lists of the fallback statistics)."""
        if not hasattr(self, "mean_"):
            raise ModelError("Normalizer is not fitted")
        return {"by": self.by, "axes": list(self.axes), "min_clips": self.min_clips, "n_groups": self.n_groups_,
                "shape": list(self.mean_.shape), "mean": self.mean_.ravel().tolist(), "std": self.std_.ravel().tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        try:
            n = cls(str(d["by"]), d["axes"], min_clips=int(d.get("min_clips", 2)))
            shape = tuple(int(s) for s in d["shape"])
            n.mean_ = np.asarray(d["mean"], dtype=np.float64).reshape(shape)
            n.std_ = np.asarray(d["std"], dtype=np.float64).reshape(shape)
            n.n_groups_ = int(d.get("n_groups", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a Normalizer state ({exc})") from None
        if not np.all(np.isfinite(n.mean_)) or not np.all(n.std_ > 0):
            raise ModelError("Normalizer state holds non-finite means or non-positive deviations")
        return n

    def __repr__(self) -> str:
        return f"Normalizer(by={self.by!r}, axes={self.axes}, min_clips={self.min_clips})"


def normalize_dataset(ds: Any, cfg: NormalizeConfig | None, kind: str) -> tuple[Any, Normalizer | None]:
    """A dataset whose items are standardised per speaker or corpus, and the fitted :class:`Normalizer`.

    ``kind`` is the representation (``stats``, ``frames``, ``windows``, ``logmel``, ``backbone``).
    With ``by: none`` (or no config) the dataset comes back unchanged with None.
    """
    cfg = NormalizeConfig.parse(cfg)
    if not cfg.enabled or not len(ds.X):
        return ds, None
    if kind == "waveform":
        raise ConfigError("normalize: a fine-tuned backbone reads waveforms, which are not normalised per speaker; "
                          "use a frozen backbone (embeddings) or frame features")
    keys = group_keys(ds.clips, cfg.by)
    norm = Normalizer(cfg.by, reduce_axes(kind, ds.X.ndim), min_clips=cfg.min_clips).fit(ds.X, ds.item_clip, keys)
    out = replace(ds, X=norm.transform_groups(ds.X, ds.item_clip, keys))
    out.normalizer = norm  # type: ignore[attr-defined]  # for augmented copies (normalize_copies)
    return out, norm


def normalize_copies(ds: Any, X: np.ndarray, clip_ids: np.ndarray) -> np.ndarray:
    """Augmented copies of ``ds``'s clips, standardised as their originals were (no-op without normalisation)."""
    norm = getattr(ds, "normalizer", None)
    if norm is None or not len(X):
        return X
    keys = group_keys([ds.clips[int(i)] for i in clip_ids], norm.by)
    return norm.transform_known(X, keys)


def normalize_items(norm: Normalizer, X: np.ndarray, item_clip: np.ndarray, clips: Sequence[Any]) -> np.ndarray:
    """Items of another corpus standardised by the saved normaliser's rule (its own groups' statistics)."""
    return norm.transform_groups(X, item_clip, group_keys(clips, norm.by))
