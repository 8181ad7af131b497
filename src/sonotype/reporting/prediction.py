"""The plot of one prediction: events over the waveform, the probability timeline and the
mean probabilities (``sonotype predict --plot``); importable from :mod:`sonotype.reporting.report` too.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sonotype.reporting.report import NEUTRAL, _save

__all__ = ["plot_prediction"]


def plot_prediction(prediction: Any, path: str | os.PathLike) -> Path:
    """One file's prediction: the segment timeline and the mean-probability bars.

    ``prediction`` is a :class:`sonotype.inference.predict.Prediction` or its ``to_dict()``.

    Parameters
    ----------
    prediction : Prediction or dict
    path : path-like
        The PNG to write.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> seg = {"start": 0.0, "end": 1.0, "label": "dog", "probabilities": {"cat": 0.2, "dog": 0.8}}
    >>> pred = {"path": None, "label": "dog", "probabilities": {"cat": 0.2, "dog": 0.8}, "duration": 1.0,
    ...         "segments": [seg], "events": []}
    >>> plot_prediction(pred, out / "prediction.png").name
    'prediction.png'
    """
    return _save(_prediction_figure(prediction), path)


def _prediction_figure(prediction: Any) -> Figure:
    """The timeline (with its probability colour bar) beside the mean-probability bars."""
    d = prediction.to_dict() if hasattr(prediction, "to_dict") else dict(prediction)
    labels = list(d["probabilities"])
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    axes = fig.subplot_mosaic([["wave", "wave"], ["time", "bars"]], width_ratios=[3, 1], height_ratios=[1, 1])
    ax_t, ax_b = axes["time"], axes["bars"]
    _draw_events(axes["wave"], d, labels)
    segs = d.get("segments") or []
    if segs:
        mat = np.array([[s["probabilities"][lab] for lab in labels] for s in segs]).T
        edges = [s["start"] for s in segs]
        if len(segs) > 1:
            # overlapping windows: draw each from its start to the next start
            widths = [b - a for a, b in itertools.pairwise(edges)] + [segs[-1]["end"] - segs[-1]["start"]]
        else:
            widths = [segs[0]["end"] - segs[0]["start"]]
        for j, (x0, w) in enumerate(zip(edges, widths, strict=True)):
            img = ax_t.imshow(mat[:, j : j + 1], aspect="auto", cmap="viridis", vmin=0, vmax=1,
                              extent=(x0, x0 + w, len(labels) - 0.5, -0.5))
        fig.colorbar(img, ax=ax_t, label="probability", fraction=0.05, pad=0.02)
        ax_t.set_xlim(0, max(d.get("duration") or 0, segs[-1]["end"]))
        ax_t.set_yticks(range(len(labels)), labels=labels)
        ax_t.set_xlabel("time (s)")
        ax_t.set_title("probability per segment")
    else:
        ax_t.set_visible(False)
    p = [d["probabilities"][lab] for lab in labels]
    colors = [NEUTRAL if lab == d["label"] else "#9e9e9e" for lab in labels]
    ax_b.barh(range(len(labels)), p, color=colors)
    ax_b.set_yticks(range(len(labels)), labels=labels)
    ax_b.invert_yaxis()
    ax_b.set_xlim(0, 1)
    ax_b.set_title(f"mean: {d['label']}")
    fig.suptitle(Path(str(d.get("path") or "array")).name)
    return fig


def _envelope(path: str, n_bins: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Min/max of the mono signal in ``n_bins`` bins, read in blocks (bounded memory for any
    length); ``None`` when the file cannot be read again."""
    from sonotype import audio
    from sonotype.errors import SonotypeError

    try:
        inf = audio.info(path)
        per = max(1, -(-inf.frames // n_bins))
        lo, hi, rest = [], [], np.zeros(0, np.float32)
        for chunk in audio.stream(path):
            y = np.concatenate([rest, chunk]) if rest.size else chunk
            k = y.size // per * per
            if k:
                b = y[:k].reshape(-1, per)
                lo.append(b.min(axis=1))
                hi.append(b.max(axis=1))
            rest = y[k:]
        if rest.size:
            lo.append(rest.min(keepdims=True))
            hi.append(rest.max(keepdims=True))
    except (SonotypeError, OSError):
        return None
    if not lo:
        return None
    mn, mx = np.concatenate(lo), np.concatenate(hi)
    return (np.arange(mn.size) + 0.5) * per / inf.samplerate, mn, mx


def _draw_events(ax: Any, d: dict[str, Any], labels: list[str]) -> None:
    """The waveform (when the file can be read) with each event as a coloured, named span."""
    env = _envelope(str(d["path"])) if d.get("path") else None
    if env is not None:
        t, mn, mx = env
        ax.fill_between(t, mn, mx, color="#424242", alpha=0.75, linewidth=0, zorder=2)
        peak = max(1e-6, float(np.abs(mn).max()), float(np.abs(mx).max()))
        ax.set_ylim(-1.05 * peak, 1.35 * peak)  # headroom for the band of event names
    ax.set_yticks([])
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    colour = {lab: cmap(i % 10) for i, lab in enumerate(labels)}
    for e in d.get("events") or []:
        c = colour.get(e["label"], "#9e9e9e")
        ax.axvspan(e["start"], e["end"], color=c, alpha=0.25, zorder=1, linewidth=0)
        ax.axvspan(e["start"], e["end"], ymin=0.88, ymax=1.0, facecolor=c, alpha=0.9, zorder=3, linewidth=0.5,
                   edgecolor="white")
        ax.text((e["start"] + e["end"]) / 2, 0.94, e["label"], transform=ax.get_xaxis_transform(), ha="center",
                va="center", fontsize=8, clip_on=True, zorder=4)
    ax.set_xlim(0, max(d.get("duration") or 0, *(e["end"] for e in d.get("events") or [{"end": 0}])) or 1)
    ax.set_xlabel("time (s)")
    ax.set_title(f"events ({len(d.get('events') or [])})" + ("" if env is not None else " (no waveform)"))
