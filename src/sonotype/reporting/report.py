"""Plots and a self-contained ``report.html`` for a run directory.

Figures are drawn with matplotlib's object API (``Figure`` + Agg, no pyplot state), so they
work headless and from threads, and are written atomically. The HTML page links its images
relatively (the run directory is moved whole) and loads nothing from the network; every
string that comes from data is HTML-escaped.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sonotype.errors import ParameterError
from sonotype.utils.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # re-exported lazily by __getattr__ below (sonotype.reporting.prediction imports this module)
    from sonotype.reporting.prediction import plot_prediction

__all__ = [
    "plot_clip_predictions",
    "plot_confusion",
    "plot_history",
    "plot_per_class",
    "plot_prediction",
    "write_plots",
    "write_report",
]

RIGHT, WRONG, NEUTRAL = "#2e7d32", "#c62828", "#1565c0"


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` to PNG in memory and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    p = Path(path)
    atomic_write_bytes(p, buf.getvalue())
    return p


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Training curves per epoch: loss and accuracy, train and validation, each named by its fold.

    ``history`` is one run's epoch records (dicts with ``epoch``, ``loss``, ``accuracy`` and
    optionally ``val_loss``, ``val_accuracy``, ``val_balanced_accuracy``, ``lr``), or
    ``history.json``'s runs: ``{"split": name, "member": i (ensembles), "history": [records]}``.

    Parameters
    ----------
    history : sequence of dict
        As above.
    path : path-like
        The PNG to write (atomically).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> recs = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / e} for e in range(1, 6)]
    >>> plot_history(recs, out / "curves.png").stat().st_size > 0
    True
    """
    return _save(_history_figure(history), path)


def _runs(history: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(name, epoch records) per run: a fold, or a fold's ensemble member."""
    if not history:
        raise ParameterError("history is empty: nothing to plot")
    if "history" not in history[0]:
        return [("", list(history))]
    runs = [(str(r.get("split", f"run {i + 1}")) + (f", member {r['member']}" if r.get("member") else ""),
             list(r.get("history") or [])) for i, r in enumerate(history)]
    runs = [(n, h) for n, h in runs if h]
    if not runs:
        raise ParameterError("history has no epochs: nothing to plot")
    return runs


def _series(recs: Sequence[dict[str, Any]], key: str) -> list[float] | None:
    vals = [h.get(key) for h in recs]
    return None if all(v is None for v in vals) else [np.nan if v is None else float(v) for v in vals]


def _history_figure(history: Sequence[dict[str, Any]]) -> Figure:
    """The training-curve figure; legends sit outside the axes, to the right, never on a curve.

    One run: a colour per series and the run's name as the legend title. Several runs
    (folds, members): a colour per run, training solid and validation dashed.
    """
    from matplotlib.lines import Line2D

    runs = _runs(history)
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    panels = ((ax_loss, ("loss", "val_loss"), "Loss"),
              (ax_acc, ("accuracy", "val_accuracy", "val_balanced_accuracy"), "Accuracy"))
    if len(runs) == 1:
        name, recs = runs[0]
        ep = [h.get("epoch", i + 1) for i, h in enumerate(recs)]
        names = {"loss": "training loss", "val_loss": "validation loss", "accuracy": "training accuracy",
                 "val_accuracy": "validation accuracy", "val_balanced_accuracy": "validation balanced accuracy"}
        for ax, keys, _ in panels:
            for key in keys:
                s = _series(recs, key)
                if s is not None:
                    ax.plot(ep, s, label=names[key], marker="." if len(ep) < 30 else None)
        handles = [h for ax, _, _ in panels for h in ax.get_lines()]
        fig.legend(handles=handles, loc="outside right upper", title=name or None, fontsize=9)
    else:
        colours = [f"C{i}" if len(runs) <= 10 else _tab20(i) for i in range(len(runs))]
        for (_, recs), colour in zip(runs, colours, strict=True):
            ep = [h.get("epoch", i + 1) for i, h in enumerate(recs)]
            for ax, keys, _ in panels:
                val_key = next((k for k in keys[::-1] if k.startswith("val") and _series(recs, k) is not None), None)
                ax.plot(ep, _series(recs, keys[0]), color=colour, linewidth=1.2)
                if val_key is not None:
                    ax.plot(ep, _series(recs, val_key), color=colour, linewidth=1.2, linestyle="--")
        handles = [Line2D([], [], color=c, label=n) for (n, _), c in zip(runs, colours, strict=True)]
        handles.append(Line2D([], [], color="#555", label="training"))
        if any(_series(r, "val_loss") is not None for _, r in runs):
            handles.append(Line2D([], [], color="#555", linestyle="--", label="validation"))
        fig.legend(handles=handles, loc="outside right upper", fontsize=8,
                   ncols=1 if len(handles) <= 14 else 2)
        ax_acc.set_ylabel("accuracy (validation: balanced)" if any(
            _series(r, "val_balanced_accuracy") is not None for _, r in runs) else "accuracy")
    for ax, _, title in panels:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1.02)
    return fig


def _tab20(i: int) -> tuple[float, ...]:
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def plot_confusion(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Confusion matrix as counts and row-normalised (rows = true label), labelled axes.

    Parameters
    ----------
    confusion : array-like [shape=(n_classes, n_classes)]
        Counts, rows = true label.
    labels : sequence of str
    path : path-like
        The PNG to write.
    title : str

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> plot_confusion([[5, 1], [2, 4]], ["cat", "dog"], out / "confusion.png").name
    'confusion.png'
    """
    cm = np.asarray(confusion, dtype=float)
    k = len(labels)
    if cm.shape != (k, k):
        raise ParameterError(f"confusion must be {k}x{k} for {k} labels, got shape {cm.shape}")
    rows = cm.sum(axis=1, keepdims=True)
    cmn = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = max(4.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(2 * size + 1, size), layout="constrained")
    for ax, mat, name, fmt in zip(
        fig.subplots(1, 2), (cm, cmn), ("counts", "row-normalised"), ("{:.0f}", "{:.2f}"), strict=True
    ):
        im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=mat.max() if mat.max() > 0 else 1)
        ax.set_xticks(range(k), labels=list(labels), rotation=45, ha="right")
        ax.set_yticks(range(k), labels=list(labels))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {name}" if title else name)
        hi = mat.max() if mat.max() > 0 else 1
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, fmt.format(mat[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if mat[i, j] > hi / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_per_class(per_class: dict[str, dict[str, float]], path: str | os.PathLike) -> Path:
    """Grouped bars of precision, recall and F1 per class.

    Parameters
    ----------
    per_class : dict
        Class -> ``{"precision", "recall", "f1"}``.
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
    >>> plot_per_class({"cat": {"precision": 0.8, "recall": 0.9, "f1": 0.85}, "dog": {"precision": 0.9, "recall": 0.8, "f1": 0.85}}, out / "per_class.png").name
    'per_class.png'
    """
    return _save(_per_class_figure(per_class), path)


def _per_class_figure(per_class: dict[str, dict[str, float]]) -> Figure:
    if not per_class:
        raise ParameterError("per_class is empty: nothing to plot")
    labels = list(per_class)
    x = np.arange(len(labels))
    fig = Figure(figsize=(max(6.0, 0.8 * len(labels) + 2), 4), layout="constrained")
    ax = fig.subplots()
    for i, key in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, [per_class[lab][key] for lab in labels], width=0.27, label=key)
    ax.set_xticks(x, labels=labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Per-class precision, recall, F1")
    fig.legend(loc="outside right upper")  # bars reach 1.0: a legend inside would cover them
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_clip_predictions(
    examples: Sequence[dict[str, Any]], labels: Sequence[str], path: str | os.PathLike
) -> Path:
    """The seeds' file view: per clip the mean predicted distribution, green if right, red if wrong.

    Each example is ``{"name": str, "true": label, "probabilities": {label: p} or [p per label]}``.

    Parameters
    ----------
    examples : sequence of dict
        As above.
    labels : sequence of str
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
    >>> ex = [{"name": "a.wav", "true": "cat", "probabilities": [0.7, 0.3]}]
    >>> plot_clip_predictions(ex, ["cat", "dog"], out / "clips.png").name
    'clips.png'
    """
    if not examples:
        raise ParameterError("examples is empty: nothing to plot")
    n = len(examples)
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.5 * cols, 3.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, ex in zip(axes, examples, strict=False):
        raw = ex["probabilities"]
        p = np.asarray([raw[lab] for lab in labels] if isinstance(raw, dict) else raw, dtype=float)
        if p.shape != (len(labels),):
            raise ParameterError(f"example {ex.get('name')!r}: {p.size} probabilities for {len(labels)} labels")
        pred = int(p.argmax())
        ok = str(labels[pred]) == str(ex["true"])
        colors = ["#9e9e9e"] * len(labels)
        colors[pred] = RIGHT if ok else WRONG
        ax.bar(range(len(labels)), p, color=colors)
        ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        name = Path(str(ex.get("name", ""))).name
        ax.set_title(f"{name}\ntrue {ex['true']}, predicted {labels[pred]}", fontsize=9,
                     color=RIGHT if ok else WRONG)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _save(fig, path)


def write_plots(
    run_dir: str | os.PathLike,
    *,
    metrics: dict[str, Any],
    history: Sequence[dict[str, Any]] | None = None,
    examples: Sequence[dict[str, Any]] | None = None,
) -> list[Path]:
    """Draw every plot a run has the data for into ``run_dir/plots/``; return their paths.

    Parameters
    ----------
    run_dir : path-like
    metrics : dict
        The run's metrics (``confusion`` with ``labels``, ``per_class``, ``cross``...).
    history : sequence of dict, optional
        Epoch records (:func:`plot_history`).
    examples : sequence of dict, optional
        Clip predictions (:func:`plot_clip_predictions`).

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> m = {"labels": ["cat", "dog"], "confusion": [[5, 1], [2, 4]], "per_class": {"cat": {"precision": 0.8, "recall": 0.9, "f1": 0.85}, "dog": {"precision": 0.9, "recall": 0.8, "f1": 0.85}}}
    >>> [p.name for p in write_plots(out, metrics=m)]
    ['confusion.png', 'per_class.png']
    """
    out = Path(run_dir) / "plots"
    paths: list[Path] = []
    # Runs without epochs (scikit-learn linear models) have no curve to draw.
    history = [r for r in history or [] if "history" not in r or r["history"]]
    if history:
        paths.append(plot_history(history, out / "training_curves.png"))
    if metrics.get("confusion") is not None and metrics.get("labels"):
        paths.append(plot_confusion(metrics["confusion"], metrics["labels"], out / "confusion.png"))
    if metrics.get("per_class"):
        paths.append(plot_per_class(metrics["per_class"], out / "per_class.png"))
    if examples:
        paths.append(plot_clip_predictions(examples, metrics["labels"], out / "clip_predictions.png"))
    used: set[str] = set()
    for c in metrics.get("cross") or []:
        if c.get("confusion") is None or not c.get("labels"):
            continue
        title = str(c.get("title") or f"on {c.get('corpus', 'another corpus')}")
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "cross"
        stem = f"confusion_{slug}"
        stem = stem if stem not in used else f"{stem}_{len(used) + 1}"
        used.add(stem)
        paths.append(plot_confusion(c["confusion"], c["labels"], out / f"{stem}.png", title=title))
    return paths


# ---------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.headline td{font-size:1.1em}.protocol{background:#fff8e1;border-left:4px solid #ffb300;padding:.5em 1em}
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:.85em}img{max-width:100%;margin:.5em 0}
.muted{color:#777;font-size:.9em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 3) -> str:
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return _e(x)


def _headline(metrics: dict[str, Any]) -> str:
    rows = []
    mean, std = metrics.get("mean") or {}, metrics.get("std") or {}
    for key, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy (UAR)"),
                      ("macro_f1", "macro-F1")):
        if key not in metrics and key not in mean:
            continue
        cells = [f"<td>{_e(name)}</td>", f"<td>{_num(metrics.get(key, ''))}</td>"]
        if mean:
            m, s = mean.get(key), std.get(key)
            cells.append(f"<td>{_num(m)} &plusmn; {_num(s)}</td>" if m is not None else "<td></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "<tr><th>metric</th><th>pooled (clip level)</th>" + ("<th>mean &plusmn; std over folds</th>" if mean else "") + "</tr>"
    out = f'<table class="headline">{head}{"".join(rows)}</table>'
    ci = metrics.get("bootstrap_ci")
    if isinstance(ci, dict):
        # {"low", "high"} (evaluate.aggregate_folds) or {"accuracy": [low, high]} (run pipeline)
        lo, hi = ci.get("low"), ci.get("high")
        if lo is None and isinstance(ci.get("accuracy"), (list, tuple)) and len(ci["accuracy"]) == 2:
            lo, hi = ci["accuracy"]
        if lo is not None and hi is not None:
            lvl = float(ci.get("level", 0.95)) * 100
            n = f" <span class='muted'>({_e(ci['n'])} resamples of the test clips)</span>" if "n" in ci else ""
            out += f"<p>{lvl:.0f} % bootstrap interval on pooled accuracy: [{_num(lo)}, {_num(hi)}]{n}</p>"
    facts = [(k, metrics[k]) for k in ("corpus", "n_train_clips", "n_test_clips", "train_seconds") if k in metrics]
    if facts:
        out += "<p class='muted'>" + " &middot; ".join(f"{_e(k)}: {_e(v)}" for k, v in facts) + "</p>"
    return out


def _environment_line(metrics: dict[str, Any]) -> str:
    """One muted line: where the figures were computed (they can move slightly elsewhere)."""
    env = metrics.get("environment")
    if not isinstance(env, dict):
        return ""
    v = env.get("versions") or {}
    blas = [b for b in env.get("blas") or [] if b.get("user_api") == "blas"]
    bits = [f"{env.get('cpu', '?')} ({env.get('cpus_usable', env.get('cpu_count', '?'))} CPUs)",
            f"torch {v.get('torch', '?')}, {env.get('torch_threads', '?')} threads",
            f"numpy {v.get('numpy', '?')}"]
    if blas:
        b = blas[0]
        bits.append(" ".join(str(b[k]) for k in ("internal_api", "version", "architecture") if b.get(k)))
    return "<p class='muted'>ran on: " + _e(" · ".join(bits)) + "</p>"


def _baseline_section(metrics: dict[str, Any]) -> str:
    """The model beside the textbook baseline (same folds, same test clips) and the verdict in words."""
    b = metrics.get("baseline")
    if not isinstance(b, dict):
        return ""
    if "skipped" in b:
        return f"<h2>Baseline</h2><p class='muted'>baseline skipped: {_e(b['skipped'])}</p>"
    model = b.get("model") or {}
    bm, bs = b.get("mean") or {}, b.get("std") or {}
    rows = []
    for key, name in zip(_SCORES, _SCORE_HEADERS):
        cells = [_e(name), _num(model.get(key, metrics.get(key))), _num(b.get(key))]
        if bm:
            cells.append(f"{_num(bm.get(key))} &plusmn; {_num(bs.get(key))}")
        rows.append(cells)
    heads = ["metric (pooled, clip level)", "this model", "baseline", *(["baseline over folds"] if bm else [])]
    out = _section_table("Baseline", heads, rows)
    cfg = b.get("config") or {}
    cs = ", ".join(f"{float(f['C']):g}" for f in b.get("folds") or [] if f.get("C") is not None)
    out += f"<p><b>{_e(b.get('verdict', ''))}</b></p>"
    out += (f"<p class='muted'>baseline: {_e(cfg.get('description', ''))}; inner CV: {_e(cfg.get('inner_cv', ''))}; "
            f"C per fold: {_e(cs)}; "
            f"{_e(b.get('seconds', '?'))} s (features {_e(b.get('extract_seconds', '?'))} s)</p>")
    return out


def _section_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    """An ``<h2>`` and a table; ``rows`` hold cells already escaped/formatted (empty -> nothing)."""
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


_SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
_SCORE_HEADERS = ["accuracy", "balanced accuracy", "macro-F1"]


def _folds_table(metrics: dict[str, Any]) -> str:
    rows = [
        [_e(f.get("name", f.get("fold", i))), _e(f.get("n", "")), *(_num(f.get(k)) for k in _SCORES)]
        for i, f in enumerate(metrics.get("folds") or [])
    ]
    return _section_table("Folds", ["fold", "n", *_SCORE_HEADERS], rows)


def _per_class_table(metrics: dict[str, Any]) -> str:
    rows = [
        [_e(lab), *(_num(v.get(k)) for k in ("precision", "recall", "f1")), _e(v.get("support", ""))]
        for lab, v in (metrics.get("per_class") or {}).items()
    ]
    return _section_table("Per class", ["class", "precision", "recall", "F1", "support"], rows)


def _cross_table(metrics: dict[str, Any]) -> str:
    rows = [
        [_e(c.get("corpus", "?")), _e(", ".join(c.get("labels_kept", []))),
         _e(", ".join(c.get("labels_dropped_model", []) + c.get("labels_dropped_corpus", []))),
         _e(c.get("n_test_clips", "")), *(_num(c.get(k)) for k in _SCORES)]
        for c in metrics.get("cross") or []
    ]
    return _section_table("Cross-corpus", ["corpus", "labels kept", "labels dropped", "clips", *_SCORE_HEADERS], rows)


def _corpora_section(metrics: dict[str, Any]) -> str:
    """A mixed run: the corpora read or skipped, labels kept, per-corpus figures and the corpus x corpus table."""
    parts = []
    corpora = metrics.get("corpora") or []
    if corpora:
        rows = [[_e(c.get("name")), _e(c.get("n_clips", "")) if c.get("present") else "skipped: " + _e(c.get("note", "")),
                 _e(", ".join(f"{k} {v}" for k, v in (c.get("labels") or {}).items()))] for c in corpora]
        parts.append(_section_table("Corpora", ["corpus", "clips", "clips per label"], rows))
        how = "as given" if metrics.get("labels_source") == "given" else "the labels every corpus has"
        dropped = "; ".join(f"{k}: {', '.join(v)}" for k, v in (metrics.get("labels_dropped") or {}).items())
        parts.append(f"<p>Labels kept ({_e(how)}): {_e(', '.join(metrics.get('labels_kept') or []))}"
                     + (f"; dropped: {_e(dropped)}" if dropped else "") + f". Balancing: {_e(metrics.get('balance'))}.</p>")
    if metrics.get("normalize"):
        parts.append(f"<p><b>Normalisation.</b> {_e(metrics['normalize'].get('text', ''))}</p>")
    per = metrics.get("per_corpus") or {}
    rows = [[_e(name), _e(v.get("n_clips", "")), *(_num(v.get(k)) for k in _SCORES), _num(v.get("chance"))]
            for name, v in per.items()]
    parts.append(_section_table("Per corpus (this protocol's test folds)", ["corpus", "clips", *_SCORE_HEADERS,
                                                                           "chance (bal.)"], rows))
    m = metrics.get("corpus_matrix")
    if m:
        cols = m.get("test_corpora") or []
        rows = []
        for r in m.get("train_sets") or []:
            cells = []
            for c in cols:
                v = (m.get("rows") or {}).get(r, {}).get(c)
                cells.append(f"{_num(v['balanced_accuracy'])} <span class='muted'>(chance {_num(v.get('chance'), 2)})</span>"
                             if v and "balanced_accuracy" in v else "-")
            rows.append([_e(r), *cells])
        parts.append(_section_table("Corpus x corpus (balanced accuracy; row: training set, column: test corpus)",
                                    ["train \\ test", *(_e(c) for c in cols)], rows))
        parts.append(f"<p class='muted'>{_e(m.get('text', ''))}</p>")
        verdicts = [v["text"] for v in (m.get("mixed_vs_single") or {}).values()]
        if verdicts:
            parts.append("<p><b>Mixed against single-corpus training</b> (each left-out corpus): "
                         + "; ".join(_e(t) for t in verdicts) + ".</p>")
    return "".join(parts)


def _study_table(metrics: dict[str, Any]) -> str:
    rows = [
        [_e(r.get("rank", "")), _e(r.get("subset", r.get("name", ""))), _e(r.get("n_features", "")),
         *(_num(r.get(k)) for k in _SCORES)]
        for r in metrics.get("study") or []
    ]
    return _section_table("Feature-subset study", ["rank", "subset", "features", *_SCORE_HEADERS], rows)


def write_report(
    run_dir: str | os.PathLike,
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    plots: Sequence[str | os.PathLike],
    title: str = "sonotype run",
) -> Path:
    """Write ``run_dir/report.html``: config, protocol, headline metrics, per-class table, plots.

    Images are linked relative to ``run_dir`` (the directory is moved whole; nothing is
    fetched from the network). Returns the path of the page.

    Parameters
    ----------
    run_dir : path-like
        The run folder; ``report.html`` goes there.
    config : dict
        The run's resolved configuration.
    metrics : dict
        Its ``metrics.json`` body.
    plots : sequence of path-like
        Images to show (from :func:`write_plots`).
    title : str

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> page = write_report(out, config={"name": "toy"}, metrics={"balanced_accuracy": 0.9}, plots=[])
    >>> "balanced accuracy" in page.read_text()
    True
    """
    root = Path(run_dir)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>written {_e(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]
    if metrics.get("protocol"):
        parts.append(f"<p class='protocol'><b>Protocol.</b> {_e(metrics['protocol'])}</p>")
    final = metrics.get("final_model")
    if final:
        parts.append(f"<p><b>Saved model.</b> {_e(final.get('text', '') if isinstance(final, dict) else final)}</p>")
    parts.append("<h2>Results</h2>" + _headline(metrics) + _environment_line(metrics))
    wl = metrics.get("window_level") or {}
    if wl and wl.get("n") != metrics.get("n"):  # only when items are windows/frames, not whole clips
        parts.append(f"<p class='muted'>window level: accuracy {_num(wl.get('accuracy'))}, balanced accuracy "
                     f"{_num(wl.get('balanced_accuracy'))}, macro-F1 {_num(wl.get('macro_f1'))} "
                     f"over {_e(wl.get('n', '?'))} windows</p>")
    parts.append(_baseline_section(metrics))
    parts.append(_corpora_section(metrics))
    parts.append(_folds_table(metrics))
    parts.append(_per_class_table(metrics))
    parts.append(_cross_table(metrics))
    parts.append(_study_table(metrics))
    if plots:
        parts.append("<h2>Plots</h2>")
        for p in plots:
            p = Path(p)
            try:
                rel = p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                rel = p.as_posix()
            parts.append(f"<figure><img src='{_e(rel)}' alt='{_e(p.stem)}'><figcaption class='muted'>"
                         f"{_e(p.stem.replace('_', ' '))}</figcaption></figure>")
    plain = json.loads(json.dumps(config, default=str))  # tuples, paths -> YAML-safe types
    cfg_text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
    parts.append(f"<h2>Configuration</h2><pre>{_e(cfg_text)}</pre></body></html>")
    out = root / "report.html"
    atomic_write_text(out, "\n".join(x for x in parts if x))
    return out


def __getattr__(name: str) -> Any:
    """The plot of one prediction lives in :mod:`sonotype.reporting.prediction`; it stays importable from here."""
    if name in ("plot_prediction", "_prediction_figure"):
        from sonotype.reporting import prediction as report_prediction

        return getattr(report_prediction, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
