"""Manifest operations: pure functions ``Manifest -> Manifest`` for recipes.

Each returns a new manifest and records every clip it removes in ``skipped`` with the
operation's name and reason, so a report can say exactly what a recipe left out.
:func:`apply_ops` runs a YAML-able list of them::

    - keep: [happy, neutral, sad]          # keep_labels
    - merge: {positive: happy}             # merge_labels
    - min_count: 10
    - balance: {seed: 0}
    - cut: {window: 5.0, hop: 1.0, last: drop}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from sonotype.corpora.base import Clip, Manifest, Skipped, load_corpus
from sonotype.errors import AudioError, ConfigError, CorpusError, ParameterError

__all__ = ["OPS", "apply_ops", "balance", "cut", "drop_labels", "keep_labels", "load_manifest", "merge_labels",
           "min_count"]


def _labels(labels: Iterable[str] | str, what: str) -> set[str]:
    if isinstance(labels, str):
        labels = [labels]
    out = {str(x) for x in labels}
    if not out:
        raise ParameterError(f"{what}: give at least one label")
    return out


def keep_labels(manifest: Manifest, labels: Iterable[str]) -> Manifest:
    """Keep only clips whose label is in ``labels`` (e.g. CREMA-D happy/neutral/sad).

    A requested label absent from the manifest raises :class:`ParameterError`: a typo would
    otherwise silently train a model with a class missing.

    Parameters
    ----------
    manifest : Manifest
    labels : iterable of str

    Returns
    -------
    Manifest

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> keep_labels(m, ["a", "c"]).class_counts()
    {'a': 2, 'c': 1}
    """
    wanted = _labels(labels, "keep_labels")
    absent = wanted - set(manifest.labels)
    if absent:
        raise ParameterError(
            f"keep_labels: {sorted(absent)} not in the manifest; its labels: {manifest.labels}"
        )
    kept = [c for c in manifest if c.label in wanted]
    gone = [
        Skipped(c.clip_id, f"keep_labels: label {c.label!r} not kept")
        for c in manifest
        if c.label not in wanted
    ]
    return manifest.replace_clips(kept, gone)


def drop_labels(manifest: Manifest, labels: Iterable[str]) -> Manifest:
    """Remove clips whose label is in ``labels`` (labels not present are ignored).

    Parameters
    ----------
    manifest : Manifest
    labels : iterable of str

    Returns
    -------
    Manifest

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> drop_labels(m, ["b", "zzz"]).labels
    ['a', 'c']
    """
    unwanted = _labels(labels, "drop_labels")
    kept = [c for c in manifest if c.label not in unwanted]
    gone = [
        Skipped(c.clip_id, f"drop_labels: label {c.label!r} dropped") for c in manifest if c.label in unwanted
    ]
    return manifest.replace_clips(kept, gone)


def merge_labels(manifest: Manifest, mapping: Mapping[str, str]) -> Manifest:
    """Rename labels by ``mapping`` (several old labels may map to one new label).

    The former label is kept in ``meta["original_label"]``; nothing is removed.

    Parameters
    ----------
    manifest : Manifest
    mapping : dict
        Old label -> new label.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> merged = merge_labels(m, {"a": "ac", "c": "ac"})
    >>> merged.class_counts(), merged.clips[0].meta["original_label"]
    ({'ac': 3, 'b': 3}, 'a')
    """
    if not mapping:
        raise ParameterError("merge_labels: the mapping is empty")
    clips = []
    for c in manifest:
        if c.label in mapping:
            meta = {**c.meta, "original_label": c.meta.get("original_label", c.label)}
            c = replace(c, label=str(mapping[c.label]), meta=meta)
        clips.append(c)
    return manifest.replace_clips(clips)


def min_count(manifest: Manifest, n: int) -> Manifest:
    """Drop every class with fewer than ``n`` clips.

    Parameters
    ----------
    manifest : Manifest
    n : int

    Returns
    -------
    Manifest

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> min_count(m, 2).labels
    ['a', 'b']
    """
    if int(n) < 1:
        raise ParameterError(f"min_count: n must be >= 1, got {n}")
    counts = manifest.class_counts()
    rare = {k for k, v in counts.items() if v < n}
    kept = [c for c in manifest if c.label not in rare]
    gone = [
        Skipped(c.clip_id, f"min_count: class {c.label!r} has {counts[c.label]} < {n} clips")
        for c in manifest
        if c.label in rare
    ]
    return manifest.replace_clips(kept, gone)


def balance(manifest: Manifest, *, seed: int | np.random.Generator = 0) -> Manifest:
    """Undersample every class to the size of the smallest one (seeded, order preserved).

    Parameters
    ----------
    manifest : Manifest
    seed : int or np.random.Generator

    Returns
    -------
    Manifest

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> balance(m).class_counts()
    {'a': 1, 'b': 1, 'c': 1}
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(manifest.clips):
        by_label[c.label].append(i)
    if not by_label:
        return manifest.replace_clips([])
    smallest = min(len(v) for v in by_label.values())
    keep: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        keep.update(idx if len(idx) == smallest else rng.choice(idx, size=smallest, replace=False).tolist())
    kept = [c for i, c in enumerate(manifest.clips) if i in keep]
    gone = [
        Skipped(c.clip_id, f"balance: class {c.label!r} undersampled to {smallest}")
        for i, c in enumerate(manifest.clips)
        if i not in keep
    ]
    return manifest.replace_clips(kept, gone)


def _starts(n: int, sr: int, window: float, hop: float, last: str) -> list[tuple[int, int, int]]:
    """(start, length, padding) in samples, same arithmetic as :func:`sonotype.audio.segment`."""
    w = max(1, int(round(window * sr)))
    h = max(1, int(round(hop * sr)))
    starts = list(range(0, n - w + 1, h)) if n >= w else []
    out = [(s, w, 0) for s in starts]
    tail = 0 if not starts else starts[-1] + h
    if (not starts or starts[-1] + w < n) and tail < n and last != "drop":
        out.append((tail, n - tail, tail + w - n if last == "pad" else 0))
    return out


def cut(
    manifest: Manifest,
    window: float,
    hop: float | None = None,
    *,
    last: Literal["drop", "pad", "keep"] = "drop",
) -> Manifest:
    """Cut every clip into windows of ``window`` s every ``hop`` s (default: no overlap).

    Each part keeps the label and group of its file (so windows of one track never straddle a
    split) and gets ``start``/``duration``; ``meta["part"]`` numbers the windows and
    ``meta["pad"]`` (seconds) tells readers to zero-pad a final window that runs past the
    end (``last="pad"``). ``last="keep"`` keeps a shorter final window, ``"drop"`` drops it.
    Durations are read from the headers; unreadable files and clips shorter than one window
    (with ``"drop"``) are reported in ``skipped``.

    Parameters
    ----------
    manifest : Manifest
    window : float
        Seconds.
    hop : float, optional
        Seconds between window starts (None: ``window``).
    last : {"drop", "pad", "keep"}
        The final partial window.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/track.wav"
    >>> sf.write(path, np.zeros(25000, np.float32), 10000)  # 2.5 s
    >>> parts = cut(Manifest("toy", "/", [Clip(path, "rock", "t1")]), 1.0)
    >>> [(c.start, c.duration, c.group) for c in parts.clips]
    [(0.0, 1.0, 't1'), (1.0, 1.0, 't1')]
    """
    from sonotype.audio import info

    hop = window if hop is None else hop
    if window <= 0 or hop <= 0:
        raise ParameterError(f"cut: window and hop must be > 0 s, got window={window}, hop={hop}")
    if last not in ("drop", "pad", "keep"):
        raise ParameterError(f"cut: last must be 'drop', 'pad' or 'keep', got {last!r}")
    headers: dict[str, tuple[int, int]] = {}
    clips: list[Clip] = []
    gone: list[Skipped] = []
    for c in manifest:
        if c.path not in headers:
            try:
                meta = info(c.path)
                headers[c.path] = (meta.samplerate, meta.frames)
            except AudioError as exc:
                gone.append(Skipped(c.clip_id, f"cut: {exc.reason}"))
                headers[c.path] = (0, 0)
                continue
        sr, frames = headers[c.path]
        if sr == 0:
            gone.append(Skipped(c.clip_id, "cut: unreadable file (see above)"))
            continue
        first = int(round(c.start * sr))
        end = frames if c.duration is None else min(frames, first + int(round(c.duration * sr)))
        parts = _starts(max(0, end - first), sr, window, hop, last)
        if not parts:
            gone.append(
                Skipped(
                    c.clip_id, f"cut: {max(0, end - first) / sr:.3f} s is shorter than one {window} s window"
                )
            )
            continue
        for k, (s, length, pad) in enumerate(parts):
            meta = {**c.meta, "part": k, "source": c.clip_id}
            if pad:
                meta["pad"] = pad / sr
            clips.append(replace(c, start=(first + s) / sr, duration=length / sr, meta=meta))
    return manifest.replace_clips(clips, gone)


def _call_keep(m: Manifest, arg: Any) -> Manifest:
    return keep_labels(m, arg)


def _call_drop(m: Manifest, arg: Any) -> Manifest:
    return drop_labels(m, arg)


def _call_merge(m: Manifest, arg: Any) -> Manifest:
    if not isinstance(arg, Mapping):
        raise ConfigError(f"merge: expected a mapping old -> new label, got {arg!r}")
    return merge_labels(m, arg)


def _call_min_count(m: Manifest, arg: Any) -> Manifest:
    n = arg.get("n") if isinstance(arg, Mapping) else arg
    if isinstance(n, bool) or not isinstance(n, int):
        raise ConfigError(f"min_count: expected an integer, got {arg!r}")
    return min_count(m, n)


def _call_balance(m: Manifest, arg: Any) -> Manifest:
    if arg is None or arg is True:
        return balance(m)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return balance(m, seed=arg)
    if isinstance(arg, Mapping) and set(arg) <= {"seed"}:
        return balance(m, seed=arg.get("seed", 0))
    raise ConfigError(f"balance: expected {{seed: N}}, got {arg!r}")


def _call_cut(m: Manifest, arg: Any) -> Manifest:
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return cut(m, float(arg))
    if isinstance(arg, Mapping) and "window" in arg and set(arg) <= {"window", "hop", "last"}:
        return cut(
            m,
            float(arg["window"]),
            None if arg.get("hop") is None else float(arg["hop"]),
            last=arg.get("last", "drop"),
        )
    raise ConfigError(f"cut: expected {{window: S, hop: S, last: drop|pad|keep}}, got {arg!r}")


OPS: dict[str, Callable[[Manifest, Any], Manifest]] = {
    "keep": _call_keep,
    "keep_labels": _call_keep,
    "drop": _call_drop,
    "drop_labels": _call_drop,
    "merge": _call_merge,
    "merge_labels": _call_merge,
    "min_count": _call_min_count,
    "balance": _call_balance,
    "cut": _call_cut,
}


def apply_ops(manifest: Manifest, ops: Iterable[Mapping[str, Any]] | None) -> Manifest:
    """Run a list of one-key mappings (``[{keep: [...]}, {min_count: 10}, ...]``) in order.

    Parameters
    ----------
    manifest : Manifest
    ops : iterable of dict, optional
        Operations: ``keep``, ``drop``, ``merge``, ``min_count``, ``balance``, ``cut``
        (None or empty: the manifest unchanged).

    Returns
    -------
    Manifest

    Raises
    ------
    ConfigError
        An entry that is not a one-key mapping, or an unknown operation name.

    Examples
    --------
    >>> m = Manifest("toy", "/", [Clip(f"{i}.wav", lab, f"s{i % 2}") for i, lab in enumerate("aabbbc")])
    >>> apply_ops(m, [{"drop": ["c"]}, {"merge": {"a": "x", "b": "x"}}]).class_counts()
    {'x': 5}
    """
    for i, op in enumerate(ops or [], 1):
        if not isinstance(op, Mapping) or len(op) != 1:
            raise ConfigError(f"corpus operation #{i} must be a mapping with one key, got {op!r}")
        ((name, arg),) = op.items()
        if name not in OPS:
            raise ConfigError(
                f"corpus operation #{i}: unknown {name!r}; known: {', '.join(sorted(set(OPS)))}"
            )
        try:
            manifest = OPS[name](manifest, arg)
        except ParameterError as exc:
            raise ConfigError(f"corpus operation #{i} ({name}): {exc}") from None
    return manifest


def load_manifest(cc: Any) -> Manifest:
    """Load the corpus a :class:`~sonotype.pipeline.config.CorpusConfig` names and apply its label operations.

    Parameters
    ----------
    cc : CorpusConfig
        ``name``, ``root``, loader ``options`` and label ``ops``.

    Returns
    -------
    Manifest
        Never empty: a corpus with no usable clip raises :class:`~sonotype.errors.CorpusError`.

    Examples
    --------
    >>> import tempfile
    >>> from sonotype.pipeline.config import CorpusConfig
    >>> from sonotype.corpora.demo import generate_demo
    >>> root = generate_demo(tempfile.mkdtemp() + "/demo", seed=0, n_speakers=2, takes=1, seconds=0.5)
    >>> m = load_manifest(CorpusConfig(name="demo", root=str(root), ops=[{"keep": ["tone", "sweep"]}]))
    >>> m.labels, len(m.clips)
    (['sweep', 'tone'], 4)
    """
    if not cc.root:
        raise ConfigError(f"corpus {cc.name!r} needs a root folder (corpus.root or --root)")
    manifest = load_corpus(cc.name, cc.root, **cc.options)
    if cc.ops:
        manifest = apply_ops(manifest, cc.ops)
    if not manifest.clips:
        raise CorpusError(f"corpus {cc.name!r} at {cc.root} has no usable clips ({len(manifest.skipped)} skipped)")
    return manifest
