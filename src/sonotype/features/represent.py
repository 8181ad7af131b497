"""From frame features to what a model eats: stats vectors, frames, windows, log-mel patches.

Column selection (:func:`select_columns`) works by feature-group name or index range, so
the seeds' feature-subset study (``"mfcc"``, ``"0-4,25-36"``) is one config string.
"""

from __future__ import annotations

import re

import numpy as np

from sonotype.audio import check_length, resample
from sonotype.errors import ConfigError
from sonotype.features.config import PERCENTILE, FeatureConfig, RepresentationConfig, check_stats
from sonotype.features.frames import FrameFeatures, compute_frames, frame_layout
from sonotype.utils.checks import mono_signal, positive_int, sample_rate

__all__ = ["featurize", "represent", "represent_names", "select_columns", "window_frames"]



def select_columns(groups: dict[str, tuple[int, int]], spec: str | None) -> np.ndarray:
    """Column indices named by ``spec``.

    Parameters
    ----------
    groups : dict
        Feature name -> ``(start, stop)`` column range, as in :attr:`FrameFeatures.groups`.
    spec : str or None
        Comma-separated feature names and/or inclusive index ranges (``"mfcc"``,
        ``"rms,chroma"``, ``"0-4,25-36"``, ``"7"``); ``None`` or ``""`` selects every column.

    Returns
    -------
    np.ndarray [shape=(k,)], int64, in the order given, without duplicates.

    Examples
    --------
    >>> select_columns({"rms": (0, 1), "mfcc": (1, 21)}, "rms,3-4").tolist()
    [0, 3, 4]
    """
    n = max((stop for _, stop in groups.values()), default=0)
    if spec is None or not spec.strip():
        return np.arange(n, dtype=np.int64)
    out: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in groups:
            a, b = groups[part]
            out.extend(range(a, b))
            continue
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ConfigError(f"select: {part!r} is neither a feature name ({', '.join(groups)}) nor an index range like 0-4")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a or b >= n:
            raise ConfigError(f"select: range {part!r} is out of bounds for {n} feature columns (0-{n - 1})")
        out.extend(range(a, b + 1))
    if not out:
        raise ConfigError(f"select: {spec!r} selects no columns")
    return np.asarray(list(dict.fromkeys(out)), dtype=np.int64)


def _stat(x: np.ndarray, name: str) -> np.ndarray:
    if name == "mean":
        return x.mean(axis=0, dtype=np.float64)
    if name == "std":
        return x.std(axis=0, dtype=np.float64)
    if name == "min":
        return x.min(axis=0)
    if name == "max":
        return x.max(axis=0)
    if name == "median":
        return np.median(x, axis=0)
    return np.percentile(x, float(PERCENTILE.match(name).group(1)), axis=0)  # type: ignore[union-attr]


def _selected_groups(groups: dict[str, tuple[int, int]], cols: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Selected columns split by the feature group they belong to, groups in their own order."""
    out = []
    for name, (a, b) in groups.items():
        mine = cols[(cols >= a) & (cols < b)]
        if mine.size:
            out.append((name, mine))
    return out


def represent_names(
    ff_or_groups: FrameFeatures | FeatureConfig | tuple[list[str], dict[str, tuple[int, int]]],
    rcfg: RepresentationConfig,
) -> list[str]:
    """Names of the feature columns :func:`represent` returns.

    Takes the clip's :class:`FrameFeatures`, the :class:`FeatureConfig` (no audio needed) or
    a ``(names, groups)`` pair. ``stats`` columns are named ``"<column>_<stat>"``
    (``"mfcc_01_mean"``); the other kinds keep the frame column names.

    Parameters
    ----------
    ff_or_groups : FrameFeatures, FeatureConfig or (list of str, dict)
        Where the frame columns come from.
    rcfg : RepresentationConfig

    Returns
    -------
    list of str

    Examples
    --------
    >>> represent_names(FeatureConfig(features=["rms", "zcr"]), RepresentationConfig(stats=["mean", "std"]))
    ['rms_mean', 'rms_std', 'zcr_mean', 'zcr_std']
    """
    if isinstance(ff_or_groups, FrameFeatures):
        names, groups = ff_or_groups.names, ff_or_groups.groups
    elif isinstance(ff_or_groups, FeatureConfig):
        names, groups = frame_layout(ff_or_groups)
    else:
        names, groups = ff_or_groups
    cols = _columns(groups, rcfg)
    if rcfg.kind != "stats":
        return [names[i] for i in cols]
    check_stats(rcfg.stats)
    return [f"{names[i]}_{s}" for _, mine in _selected_groups(groups, cols) for s in rcfg.stats for i in mine]


def _columns(groups: dict[str, tuple[int, int]], rcfg: RepresentationConfig) -> np.ndarray:
    if rcfg.kind == "logmel" and not rcfg.select and "logmel" in groups:
        return select_columns(groups, "logmel")
    return select_columns(groups, rcfg.select)


def window_frames(n_frames: int, sr: int, hop_length: int, rcfg: RepresentationConfig) -> tuple[int, list[int]]:
    """Frames per window and the first frame of each window.

    A window of ``W`` s spans ``1 + W*sr // hop_length`` frames (what centred analysis of a
    ``W`` s segment gives: 5 s at 22,050 Hz, hop 512 -> 216) and windows start every
    ``round(H*sr / hop_length)`` frames. ``last``: ``drop`` discards a final partial window,
    ``pad`` zero-pads it, ``keep`` moves it back to end on the last frame (full length).

    Parameters
    ----------
    n_frames : int
        Frames in the clip.
    sr, hop_length : int
        The frame grid.
    rcfg : RepresentationConfig
        ``window``, ``hop`` (seconds) and ``last``.

    Returns
    -------
    frames_per_window : int
    starts : list of int
        First frame of each window.

    Examples
    --------
    >>> window_frames(300, 22050, 512, RepresentationConfig(kind="windows", window=5.0, hop=1.0, last="drop"))
    (216, [0, 43])
    """
    if rcfg.window is None:
        raise ConfigError(f"representation {rcfg.kind!r} needs window > 0 seconds")
    sample_rate(sr)
    positive_int("hop_length", hop_length)
    positive_int("n_frames", n_frames, minimum=0)
    tw = 1 + int(round(rcfg.window * sr)) // hop_length
    step = max(1, int(round((rcfg.hop if rcfg.hop else rcfg.window) * sr / hop_length)))
    starts = list(range(0, n_frames - tw + 1, step)) if n_frames >= tw else []
    tail = starts[-1] + step if starts else 0
    if (not starts or starts[-1] + tw < n_frames) and tail < n_frames:
        if rcfg.last == "pad":
            starts.append(tail)
        elif rcfg.last == "keep":
            starts.append(max(0, n_frames - tw))
    return tw, starts


def represent(ff: FrameFeatures, rcfg: RepresentationConfig) -> np.ndarray:
    """Turn one clip's frame features into model items.

    Returns
    -------
    np.ndarray, float32
        ``stats`` -> (1, D) (per feature group, each statistic over its selected columns);
        ``frames`` -> (T, F); ``windows`` -> (n_windows, Tw, F);
        ``logmel`` -> (n_windows, F, Tw) (the ``logmel`` group unless ``select`` says otherwise;
        padding uses the clip's quietest value, not 0 dB).

    Parameters
    ----------
    ff : FrameFeatures
        One clip's frames (:func:`~sonotype.features.frames.compute_frames`).
    rcfg : RepresentationConfig

    Examples
    --------
    >>> ff = compute_frames(np.zeros(22050, np.float32), FeatureConfig())
    >>> represent(ff, RepresentationConfig(stats=["mean", "std"])).shape
    (1, 74)
    """
    cols = _columns(ff.groups, rcfg)
    x = ff.values[:, cols]
    if rcfg.kind == "stats":
        check_stats(rcfg.stats)
        parts = [
            np.asarray(_stat(ff.values[:, mine], s), dtype=np.float64)
            for _, mine in _selected_groups(ff.groups, cols)
            for s in rcfg.stats
        ]
        return np.concatenate(parts).astype(np.float32)[None, :]
    if rcfg.kind == "frames":
        return np.ascontiguousarray(x, dtype=np.float32)
    tw, starts = window_frames(ff.n_frames, ff.sr, ff.hop_length, rcfg)
    fill = float(x.min()) if rcfg.kind == "logmel" and x.size else 0.0
    out = np.full((len(starts), tw, x.shape[1]), fill, dtype=np.float32)
    for i, s in enumerate(starts):  # a loop over windows (tens), each a block copy
        seg = x[s : s + tw]
        out[i, : seg.shape[0]] = seg
    return np.ascontiguousarray(out.transpose(0, 2, 1)) if rcfg.kind == "logmel" else out


def featurize(
    y: np.ndarray, sr: int, fcfg: FeatureConfig, rcfg: RepresentationConfig, *, path: object = None
) -> np.ndarray:
    """Signal in, model items out: resample, cut to ``max_duration``, frame features, represent.

    ``y`` is read as :meth:`Classifier.predict <sonotype.inference.predict.Classifier.predict>` reads an
    array (:func:`sonotype.utils.checks.mono_signal`), so the same bad input raises the same error
    from both: :class:`~sonotype.errors.ParameterError` for a shape or dtype that is not a
    signal, :class:`~sonotype.errors.AudioError` (naming ``path``) for samples that are not
    finite or fewer than one analysis frame (``n_fft`` samples).

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
        Audio at rate ``sr`` (channels are averaged).
    sr : int
        Its sample rate; resampled to ``fcfg.sr`` when different.
    fcfg : FeatureConfig
        Frame features.
    rcfg : RepresentationConfig
        How frames become items.
    path : object, optional
        Named in errors.

    Returns
    -------
    np.ndarray [shape=(n_items, ...)], float32
        As :func:`represent`.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> featurize(y, 16000, FeatureConfig(), RepresentationConfig()).shape
    (1, 37)
    """
    y = mono_signal(y, path=path)
    sr = sample_rate(sr)
    y = prepare_signal(y, sr, fcfg, path=path)
    return represent(compute_frames(y, fcfg), rcfg)


def prepare_signal(y: np.ndarray, sr: int, fcfg: FeatureConfig, *, path: object = None) -> np.ndarray:
    """Keep the first ``max_duration`` s of mono ``y``, resample it to ``fcfg.sr``, check its length.

    Cut first, at the input's own rate, as a file is read for training
    (:func:`sonotype.audio.load` with ``duration``): the resampler then sees the same samples
    on every path, so a clip's features are the same whether it was a file or an array.
    """
    if fcfg.max_duration is not None and sr != fcfg.sr:
        y = y[: max(1, int(round(fcfg.max_duration * sr)))]
    if sr != fcfg.sr:
        y = resample(y, sr, fcfg.sr)
    if fcfg.max_samples is not None:
        y = y[: fcfg.max_samples]
    check_length(y, int(fcfg.n_fft), path=path)
    return np.ascontiguousarray(y, dtype=np.float32)
