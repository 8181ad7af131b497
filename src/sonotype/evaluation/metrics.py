"""Honest evaluation: metrics, clip voting, fold aggregation, bootstrap, cross-corpus labels.

Everything returned is JSON-safe (plain ``int``/``float``/``str``/``list``/``dict``) so it can
be written to ``metrics.json`` as is. Window-level models are scored per clip: a clip's
prediction is the mean probability over its items (windows or frames), as in the seeds,
and the clip-level figures are the headline ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from sonotype.errors import ParameterError

__all__ = [
    "HEADLINE",
    "aggregate_folds",
    "bootstrap_ci",
    "bootstrap_scores",
    "cross_corpus_labels",
    "evaluate_items",
    "label_case_map",
    "metrics",
    "rank_subsets",
    "restrict_proba",
    "vote",
]

#: The figures aggregated over folds and shown first in reports.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


def _to_index(y: Sequence | np.ndarray, labels: Sequence[str], name: str) -> np.ndarray:
    """Turn label names or integer indices into indices into ``labels``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and np.issubdtype(arr.dtype, np.integer):
        bad = arr[(arr < 0) | (arr >= len(labels))]
        if bad.size:
            raise ParameterError(f"{name} holds index {int(bad[0])}, outside 0..{len(labels) - 1} ({len(labels)} labels)")
        return arr.astype(np.int64)
    pos = {str(lab): i for i, lab in enumerate(labels)}
    out = np.empty(arr.size, dtype=np.int64)
    for i, v in enumerate(arr.tolist()):
        if str(v) not in pos:
            raise ParameterError(f"{name} holds label {v!r}, not one of {list(labels)}")
        out[i] = pos[str(v)]
    return out


def metrics(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    labels: Sequence[str],
    *,
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy (UAR), macro-F1, per-class figures and confusion matrices.

    Parameters
    ----------
    y_true, y_pred : array [shape=(n,)]
        Label names or integer indices into ``labels``.
    labels : list of str
        All class names, in the model's order; fixes the confusion-matrix layout.
    proba : np.ndarray [shape=(n, len(labels))], optional
        Class probabilities; adds ``log_loss``.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present in
        ``y_true``), ``macro_f1`` (over the classes present in ``y_true`` or ``y_pred``, so an
        absent class does not count as a zero), ``per_class`` {label: precision, recall, f1,
        support}, ``confusion`` (counts, rows = true), ``confusion_normalized`` (rows sum to 1;
        a row without support is all zeros), ``labels``, ``n``.

    Examples
    --------
    >>> m = metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    >>> m["accuracy"], m["confusion"]
    (0.6666666666666666, [[1, 1], [0, 1]])
    """
    labels = [str(lab) for lab in labels]
    if not labels:
        raise ParameterError("labels must list at least one class")
    t = _to_index(y_true, labels, "y_true")
    p = _to_index(y_pred, labels, "y_pred")
    if t.size != p.size:
        raise ParameterError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ParameterError("cannot compute metrics on zero samples")
    k = len(labels)
    idx = list(range(k))
    present = sorted(set(t.tolist()) | set(p.tolist()))
    with warnings.catch_warnings():
        # balanced_accuracy warns when y_pred holds a class absent from y_true; that is fine.
        warnings.simplefilter("ignore")
        bal = balanced_accuracy_score(t, p)
        prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=idx, zero_division=0)
        macro = f1_score(t, p, labels=present, average="macro", zero_division=0)
    cm = confusion_matrix(t, p, labels=idx)
    rows = cm.sum(axis=1, keepdims=True)
    cmn = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    out: dict[str, Any] = {
        "n": int(t.size),
        "labels": labels,
        "accuracy": float(accuracy_score(t, p)),
        "balanced_accuracy": float(bal),
        "macro_f1": float(macro),
        "per_class": {
            lab: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(sup[i]),
            }
            for i, lab in enumerate(labels)
        },
        "confusion": cm.astype(int).tolist(),
        "confusion_normalized": [[float(v) for v in row] for row in cmn],
    }
    if proba is not None:
        pr = np.asarray(proba, dtype=np.float64)
        if pr.shape != (t.size, k):
            raise ParameterError(f"proba must have shape ({t.size}, {k}), got {pr.shape}")
        # float32 softmax rows sum to 1 only within ~1e-7: renormalise in float64 for sklearn.
        pr = np.clip(pr, 1e-12, 1.0)
        out["log_loss"] = float(log_loss(t, pr / pr.sum(axis=1, keepdims=True), labels=idx))
    return out


def vote(proba_items: np.ndarray, item_clip: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability over each clip's items (windows or frames): the seeds' file voting.

    Parameters
    ----------
    proba_items : np.ndarray [shape=(n_items, n_classes)]
    item_clip : array [shape=(n_items,)]
        The clip each item belongs to (any hashable ids: paths, integers).

    Returns
    -------
    clip_ids : np.ndarray [shape=(n_clips,)]
        Clip ids in order of first appearance.
    clip_proba : np.ndarray [shape=(n_clips, n_classes)]

    Examples
    --------
    >>> ids, p = vote(np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]]), ["x", "x", "y"])
    >>> ids.tolist(), p.tolist()
    (['x', 'y'], [[0.5, 0.5], [0.2, 0.8]])
    """
    pr = np.asarray(proba_items, dtype=np.float64)
    clips = np.asarray(item_clip)
    if pr.ndim != 2:
        raise ParameterError(f"proba_items must be (n_items, n_classes), got shape {pr.shape}")
    if clips.shape != (pr.shape[0],):
        raise ParameterError(f"item_clip must have shape ({pr.shape[0]},), got {clips.shape}")
    uniq, first, inverse = np.unique(clips, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[inverse.reshape(-1)]
    sums = np.zeros((uniq.size, pr.shape[1]))
    np.add.at(sums, group, pr)
    counts = np.bincount(group, minlength=uniq.size)[:, None]
    return uniq[order], sums / counts


def evaluate_items(
    proba_items: np.ndarray,
    y_items: Sequence | np.ndarray,
    item_clip: Sequence | np.ndarray,
    labels: Sequence[str],
) -> dict[str, Any]:
    """Score item-level predictions both per item and per clip (clip = mean over its items).

    Parameters
    ----------
    proba_items : np.ndarray [shape=(n_items, n_classes)]
    y_items : array [shape=(n_items,)]
        True label (name or index) of every item.
    item_clip : array [shape=(n_items,)]
        The clip each item belongs to.
    labels : sequence of str

    Returns
    -------
    dict
        ``{"clip_level": metrics(...), "window_level": metrics(...), "clip_ids": [...],
        "clip_true": [...], "clip_proba": [[...]]}``; the clip-level figures are the headline
        ones. Every clip's items must share one true label.

    Examples
    --------
    >>> P = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    >>> out = evaluate_items(P, ["a", "a", "b"], ["c1", "c1", "c2"], ["a", "b"])
    >>> out["clip_level"]["accuracy"], out["window_level"]["accuracy"]
    (1.0, 0.6666666666666666)
    """
    labels = [str(lab) for lab in labels]
    pr = np.asarray(proba_items, dtype=np.float64)
    y = _to_index(y_items, labels, "y_items")
    if pr.ndim != 2 or pr.shape != (y.size, len(labels)):
        raise ParameterError(f"proba_items must have shape ({y.size}, {len(labels)}), got {pr.shape}")
    clip_ids, clip_proba = vote(pr, item_clip)
    pos = {c: i for i, c in enumerate(clip_ids.tolist())}
    clip_true = np.full(clip_ids.size, -1, dtype=np.int64)
    for c, lab in zip(np.asarray(item_clip).tolist(), y.tolist(), strict=True):
        i = pos[c]
        if clip_true[i] not in (-1, lab):
            raise ParameterError(f"clip {c!r} has items with different labels ({labels[clip_true[i]]!r}, {labels[lab]!r})")
        clip_true[i] = lab
    return {
        "clip_level": metrics(clip_true, clip_proba.argmax(axis=1), labels, proba=clip_proba),
        "window_level": metrics(y, pr.argmax(axis=1), labels, proba=pr),
        "clip_ids": [str(c) for c in clip_ids.tolist()],
        "clip_true": clip_true.tolist(),
        "clip_proba": clip_proba.tolist(),
    }


def bootstrap_ci(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    *,
    n: int = 1000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy: resample the clips with replacement ``n`` times.

    Clips are the resampling unit (pass clip-level predictions), so the interval reflects
    how many independent test clips there are, not how many windows.

    Parameters
    ----------
    y_true, y_pred : array [shape=(n_clips,)]
    n : int
        Resamples.
    seed : int or np.random.Generator
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    low, high : float

    Examples
    --------
    >>> lo, hi = bootstrap_ci([0, 1, 1, 0] * 25, [0, 1, 0, 0] * 25, seed=1)
    >>> lo < 0.75 < hi
    True
    """
    lo, hi = _bootstrap(y_true, y_pred, n=n, seed=seed, level=level,
                        scores=lambda tr, pr: {"accuracy": (tr == pr).mean(axis=1)})["accuracy"]
    return lo, hi


def bootstrap_scores(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    *,
    n: int = 1000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of balanced accuracy and macro-F1, resampling clips as :func:`bootstrap_ci`.

    Parameters
    ----------
    y_true, y_pred : array [shape=(n_clips,)]
    n : int
        Resamples.
    seed : int or np.random.Generator
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    dict
        ``{"balanced_accuracy": [low, high], "macro_f1": [low, high]}``; a resample's scores
        are over the classes present in it (truth for recall, truth or prediction for F1).

    Examples
    --------
    >>> ci = bootstrap_scores([0, 1, 1, 0] * 25, [0, 1, 0, 0] * 25, seed=1)
    >>> ci["balanced_accuracy"][0] < 0.75 < ci["balanced_accuracy"][1]
    True
    """
    _, codes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]), return_inverse=True)
    k = int(codes.max()) + 1
    m = len(codes) // 2

    def scores(tr: np.ndarray, pr: np.ndarray) -> dict[str, np.ndarray]:
        ba, f1 = _resample_scores(tr, pr, k)
        return {"balanced_accuracy": ba, "macro_f1": f1}

    out = _bootstrap(codes[:m], codes[m:], n=n, seed=seed, level=level, scores=scores)
    return {name: list(interval) for name, interval in out.items()}


def _bootstrap(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, *, n: int,
               seed: int | np.random.Generator, level: float,
               scores: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Percentile intervals of ``scores`` over ``n`` resamples of the clips (rows of resampled labels in, one
    value per row out): the one resampling loop of :func:`bootstrap_ci` and :func:`bootstrap_scores`."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1 or t.size == 0:
        raise ParameterError(f"y_true and y_pred must be equal-length non-empty 1-D arrays, got {t.shape} and {p.shape}")
    if n < 1:
        raise ParameterError(f"n (bootstrap resamples) must be >= 1, got {n}")
    if not 0.0 < level < 1.0:
        raise ParameterError(f"level must be in (0, 1), got {level}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    m = t.size
    values: dict[str, np.ndarray] = {}
    step = max(1, 2_000_000 // m)  # bound memory at ~16 MB of indices per chunk
    for s in range(0, n, step):
        idx = rng.integers(0, m, size=(min(n, s + step) - s, m))
        for name, v in scores(t[idx], p[idx]).items():
            values.setdefault(name, np.empty(n))[s : s + len(idx)] = v
    alpha = (1.0 - level) / 2.0
    return {name: tuple(float(x) for x in np.quantile(v, [alpha, 1.0 - alpha])) for name, v in values.items()}


def _resample_scores(tr: np.ndarray, pr: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced accuracy and macro-F1 of each row of resampled class codes ``tr``/``pr`` [shape=(r, m)]."""
    r = len(tr)
    recall_sum, f1_sum, n_true, n_any = np.zeros(r), np.zeros(r), np.zeros(r), np.zeros(r)
    for c in range(n_classes):
        tc, pc = tr == c, pr == c
        tp, support, predicted = (tc & pc).sum(1), tc.sum(1), pc.sum(1)
        recall_sum += np.divide(tp, support, out=np.zeros(r), where=support > 0)
        f1_sum += np.divide(2 * tp, support + predicted, out=np.zeros(r), where=(support + predicted) > 0)
        n_true += support > 0
        n_any += (support + predicted) > 0
    return recall_sum / np.maximum(n_true, 1), f1_sum / np.maximum(n_any, 1)


def aggregate_folds(
    fold_metrics: list[dict[str, Any]],
    pooled: dict[str, Any],
    *,
    y_true: Sequence | np.ndarray | None = None,
    y_pred: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Per-fold headline figures with mean and std, on top of the pooled metrics.

    Parameters
    ----------
    fold_metrics : list of dict
        One :func:`metrics` result (clip level) per fold.
    pooled : dict
        :func:`metrics` on all folds' test predictions together.
    y_true, y_pred : array, optional
        Pooled clip-level truths and predictions; when given, a ``bootstrap_ci`` on pooled
        accuracy is added.

    Returns
    -------
    dict
        ``pooled``'s keys (so the result is the run's ``metrics.json`` body), plus ``folds``
        (list of {fold, n, accuracy, balanced_accuracy, macro_f1}), ``mean`` and ``std``
        (sample standard deviation, ddof=1; 0.0 for a single fold) of the headline figures,
        and optionally ``bootstrap_ci`` {low, high, level, n, seed}.

    Examples
    --------
    >>> f = [{"n": 10, "accuracy": 0.8, "balanced_accuracy": 0.7, "macro_f1": 0.6},
    ...      {"n": 10, "accuracy": 0.6, "balanced_accuracy": 0.5, "macro_f1": 0.4}]
    >>> out = aggregate_folds(f, {"accuracy": 0.7})
    >>> round(out["mean"]["balanced_accuracy"], 3), round(out["std"]["balanced_accuracy"], 3)
    (0.6, 0.141)
    """
    if not fold_metrics:
        raise ParameterError("fold_metrics is empty: need at least one fold")
    folds = []
    for i, fm in enumerate(fold_metrics):
        missing = [k for k in HEADLINE if k not in fm]
        if missing:
            raise ParameterError(f"fold {i} metrics lack {missing}")
        folds.append({"fold": i, "n": int(fm.get("n", 0)), **{k: float(fm[k]) for k in HEADLINE}})
    out = dict(pooled)
    out["folds"] = folds
    vals = {k: np.array([f[k] for f in folds]) for k in HEADLINE}
    out["mean"] = {k: float(v.mean()) for k, v in vals.items()}
    out["std"] = {k: float(v.std(ddof=1)) if v.size > 1 else 0.0 for k, v in vals.items()}
    if y_true is not None and y_pred is not None:
        lo, hi = bootstrap_ci(y_true, y_pred, n=n_boot, seed=seed, level=level)
        out["bootstrap_ci"] = {
            "low": lo,
            "high": hi,
            "level": float(level),
            "n": int(n_boot),
            "seed": seed if isinstance(seed, int) else None,
        }
    return out


def cross_corpus_labels(
    model_labels: Sequence[str], corpus_labels: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """Labels a model and another corpus share (names in the unified vocabulary).

    Parameters
    ----------
    model_labels, corpus_labels : sequence of str

    Returns
    -------
    kept, dropped_model, dropped_corpus : list of str
        ``kept`` in the model's order; the model's labels the corpus lacks; the corpus's
        labels the model does not know (their clips cannot be scored and are left out).

    Examples
    --------
    >>> cross_corpus_labels(["angry", "calm", "happy"], ["happy", "angry", "boredom"])
    (['angry', 'happy'], ['calm'], ['boredom'])
    """
    m = [str(x) for x in model_labels]
    c = [str(x) for x in corpus_labels]
    cs, ms = set(c), set(m)
    kept = [lab for lab in m if lab in cs]
    if not kept:
        raise ParameterError(f"the model's labels {m} and the corpus's labels {sorted(cs)} share nothing")
    if len(kept) < 2:
        # One label is no classification: every clip is scored right and accuracy reads 1.000.
        raise ParameterError(
            f"the model's labels {m} and the corpus's labels {sorted(cs)} share only {kept}: "
            "evaluating needs at least two shared labels"
        )
    return kept, [lab for lab in m if lab not in cs], sorted(lab for lab in cs if lab not in ms)


def label_case_map(model_labels: Sequence[str], corpus_labels: Sequence[str]) -> dict[str, str]:
    """Corpus labels that differ from a model label only by case: ``{corpus label: model label}``.

    Folder corpora name classes after folders (``Angry``), models often use lower case:
    such labels are the same class. Only one-to-one matches are returned: a corpus label
    that the model has exactly is never renamed, and no name is matched when either side
    has two labels equal up to case (``Sad`` and ``sad``).

    Parameters
    ----------
    model_labels, corpus_labels : sequence of str

    Returns
    -------
    dict
        Empty when nothing needs renaming.

    Examples
    --------
    >>> label_case_map(["angry", "happy", "sad"], ["Angry", "happy", "Sad", "Bored"])
    {'Angry': 'angry', 'Sad': 'sad'}
    """
    m = [str(x) for x in model_labels]
    c = sorted({str(x) for x in corpus_labels})
    by_case_m: dict[str, list[str]] = {}
    for lab in m:
        by_case_m.setdefault(lab.casefold(), []).append(lab)
    by_case_c: dict[str, list[str]] = {}
    for lab in c:
        by_case_c.setdefault(lab.casefold(), []).append(lab)
    out = {}
    for lab in c:
        if lab in m:
            continue
        ms, cs = by_case_m.get(lab.casefold(), []), by_case_c[lab.casefold()]
        if len(ms) == 1 and len(cs) == 1:
            out[lab] = ms[0]
    return out


def restrict_proba(proba: np.ndarray, model_labels: Sequence[str], kept: Sequence[str]) -> np.ndarray:
    """Keep the columns of ``kept`` labels and renormalise each row to sum to one.

    A row with no mass on the kept labels becomes uniform over them.

    Parameters
    ----------
    proba : np.ndarray [shape=(n, len(model_labels))]
    model_labels : sequence of str
    kept : sequence of str
        A non-empty subset of ``model_labels``.

    Returns
    -------
    np.ndarray [shape=(n, len(kept))], float64

    Examples
    --------
    >>> restrict_proba(np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]]), ["a", "b", "c"], ["a", "c"])
    array([[0.28571429, 0.71428571],
           [0.5       , 0.5       ]])
    """
    pr = np.asarray(proba, dtype=np.float64)
    m = [str(x) for x in model_labels]
    if pr.ndim != 2 or pr.shape[1] != len(m):
        raise ParameterError(f"proba must be (n, {len(m)}) for labels {m}, got shape {pr.shape}")
    missing = [lab for lab in kept if lab not in m]
    if missing or not kept:
        raise ParameterError(f"kept labels must be a non-empty subset of {m}, got {list(kept)}")
    sub = pr[:, [m.index(lab) for lab in kept]]
    s = sub.sum(axis=1, keepdims=True)
    uniform = np.full_like(sub, 1.0 / sub.shape[1])
    return np.where(s > 0, sub / np.where(s > 0, s, 1.0), uniform)


def rank_subsets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rank feature subsets: best balanced accuracy first, ties broken by fewer features.

    Each result needs ``balanced_accuracy`` and ``n_features``; other keys (name, subset,
    accuracy...) are kept. Returns new dicts with a 1-based ``rank``.

    Parameters
    ----------
    results : list of dict

    Returns
    -------
    list of dict

    Examples
    --------
    >>> r = rank_subsets([{"name": "all", "balanced_accuracy": 0.8, "n_features": 37},
    ...                   {"name": "mfcc", "balanced_accuracy": 0.8, "n_features": 20}])
    >>> [(x["rank"], x["name"]) for x in r]
    [(1, 'mfcc'), (2, 'all')]
    """
    for i, r in enumerate(results):
        for key in ("balanced_accuracy", "n_features"):
            if key not in r:
                raise ParameterError(f"subset result {i} ({r.get('name', r.get('subset', '?'))!r}) lacks {key!r}")
    ordered = sorted(results, key=lambda r: (-float(r["balanced_accuracy"]), int(r["n_features"])))
    return [{**r, "rank": i + 1} for i, r in enumerate(ordered)]
