"""The textbook baseline fitted beside every run, on the same folds and the same test clips.

What a user would try first with librosa and scikit-learn: 40 MFCC and their deltas,
spectral features (RMS, zero-crossing rate, centroid, bandwidth, roll-off, flatness,
contrast) and chroma per frame, mean and standard deviation per clip, standardised on the
training side, and multinomial logistic regression (``logreg``) with C chosen by inner
stratified group cross-validation on the training side only. Features go through the
feature cache like the run's own. For backbone runs it is the same frame-feature baseline.

The model is compared with it by a **paired bootstrap over the test clips**: resample the
pooled test clips with replacement (``evaluate.bootstrap`` times, seeded by the run's seed),
compute the balanced accuracy of the model and of the baseline on the same resample, and take
the 2.5 and 97.5 percentiles of the difference. The model *beats the baseline* when that 95 %
interval lies above 0, is *worse* when it lies below 0, and otherwise the two are *not
distinguishable* on this many test clips.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.console import Console

from sonotype.errors import ConfigError, CorpusError, ParameterError, SonotypeError
from sonotype.evaluation.metrics import metrics as clip_metrics
from sonotype.evaluation.metrics import vote
from sonotype.features import Dataset, FeatureConfig, RepresentationConfig, Standardizer, build_dataset
from sonotype.models import build_model, resolved_params
from sonotype.models.linear import fit_linear
from sonotype.pipeline.config import RunConfig
from sonotype.training.train import predict_proba

__all__ = ["BASELINE_MODEL", "baseline_features", "paired_bootstrap", "run_baseline"]

BASELINE_MODEL = "logreg"
_FRAME_FEATURES = ["mfcc", "mfcc_delta", "rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness",
                   "contrast", "chroma"]
_SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
DESCRIPTION = ("MFCC 40 + deltas, spectral features (RMS, ZCR, centroid, bandwidth, roll-off, flatness, contrast) "
               "and chroma, mean and std per clip, standardised; logistic regression, C by inner group CV")


def baseline_features(cfg: RunConfig | None = None) -> tuple[FeatureConfig, RepresentationConfig]:
    """The baseline's feature settings: librosa's defaults at 22,050 Hz (210 values per clip).

    Only the run's ``features.max_duration`` carries over (both then see the same audio),
    and not for backbone runs, whose frame settings are unused.

    Parameters
    ----------
    cfg : RunConfig, optional
        The run compared with the baseline (None: no ``max_duration``).

    Returns
    -------
    FeatureConfig, RepresentationConfig

    Examples
    --------
    >>> from sonotype.features.represent import represent_names
    >>> fc, rc = baseline_features()
    >>> fc.n_mfcc, len(represent_names(fc, rc))
    (40, 210)
    """
    max_duration = None if cfg is None or cfg.backbone else cfg.features.max_duration
    fc = FeatureConfig(sr=22050, n_fft=2048, hop_length=512, features=list(_FRAME_FEATURES), n_mfcc=40,
                       max_duration=max_duration)
    return fc, RepresentationConfig(kind="stats", stats=["mean", "std"])


def _balanced_accuracies(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Balanced accuracy (mean recall over the classes present) of each resample row of ``idx``."""
    b = idx.shape[0]
    yy = y[idx]
    key = (yy + k * np.arange(b)[:, None]).ravel()
    total = np.bincount(key, minlength=b * k).reshape(b, k)
    hits = np.bincount(key, weights=(pred[idx] == yy).ravel(), minlength=b * k).reshape(b, k)
    recall = np.divide(hits, total, out=np.zeros((b, k)), where=total > 0)
    return recall.sum(1) / np.maximum((total > 0).sum(1), 1)


def paired_bootstrap(
    y_true: np.ndarray,
    pred_model: np.ndarray,
    pred_baseline: np.ndarray,
    *,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile interval of ``BA(model) - BA(baseline)`` over paired resamples of the test clips.

    Parameters
    ----------
    y_true, pred_model, pred_baseline : np.ndarray [shape=(n_clips,)], int
        Class ids of the same test clips.
    n : int
        Resamples.
    seed : int
    level : float
        Interval coverage, in (0, 1).

    Returns
    -------
    dict
        ``{difference, interval: [low, high], level, n_resamples, verdict}`` with verdict
        ``"better"`` (interval above 0), ``"worse"`` (below 0) or ``"not distinguishable"``.

    Examples
    --------
    >>> y = np.array([0, 1] * 50)
    >>> paired_bootstrap(y, y, 1 - y, n=200)["verdict"]
    'better'
    """
    t, a, b = (np.asarray(v).astype(np.int64) for v in (y_true, pred_model, pred_baseline))
    if not (t.shape == a.shape == b.shape) or t.ndim != 1 or t.size == 0:
        raise ParameterError(f"paired bootstrap needs three equal-length non-empty label arrays, got "
                             f"{t.shape}, {a.shape}, {b.shape}")
    if n < 1 or not 0 < level < 1:
        raise ParameterError(f"need n >= 1 and 0 < level < 1, got n={n}, level={level}")
    k = int(max(t.max(), a.max(), b.max())) + 1
    rng = np.random.default_rng(seed)
    m = t.size
    diffs = np.empty(n)
    step = max(1, 2_000_000 // m)
    for s in range(0, n, step):
        idx = rng.integers(0, m, size=(min(n, s + step) - s, m))
        diffs[s : s + len(idx)] = _balanced_accuracies(t, a, idx, k) - _balanced_accuracies(t, b, idx, k)
    lo, hi = (float(v) for v in np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2]))
    full = np.arange(m)[None, :]
    observed = float(_balanced_accuracies(t, a, full, k)[0] - _balanced_accuracies(t, b, full, k)[0])
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
    return {"difference": observed, "interval": [lo, hi], "level": level, "n_resamples": int(n), "verdict": verdict}


def _verdict_text(model_ba: float, base_ba: float, cmp: dict[str, Any] | None, n_clips: int) -> str:
    if cmp is None:
        return (f"model balanced accuracy {model_ba:.3f} against the baseline's {base_ba:.3f} "
                f"(no bootstrap: evaluate.bootstrap is 0)")
    lo, hi = cmp["interval"]
    words = {
        "better": "beats the baseline beyond the bootstrap interval",
        "worse": "is worse than the baseline beyond the bootstrap interval",
        "not distinguishable": "does not beat the baseline beyond the bootstrap interval (the difference may be chance)",
    }[cmp["verdict"]]
    return (f"The model {words}: balanced accuracy {model_ba:.3f} against {base_ba:.3f}, difference "
            f"{cmp['difference']:+.3f}, {cmp['level'] * 100:.0f} % paired bootstrap interval [{lo:+.3f}, {hi:+.3f}] "
            f"over the same {n_clips} test clips ({cmp['n_resamples']} resamples).")


def _fold_clips(o: Any, ds: Dataset, item_level: bool) -> tuple[np.ndarray, np.ndarray]:
    """(training-side clips, test clips) of one fold, as indices into ``ds.clips``."""
    s = o.split
    if not item_level:
        return np.union1d(s.train, s.val), np.asarray(s.test)
    # The seeds' item-level split: a clip whose items are tested is a test clip; the baseline
    # trains on the other clips (it cannot share the model's leak: one clip is one item here).
    test = np.unique(ds.item_clip[s.test])
    return np.setdiff1d(np.unique(ds.item_clip[np.concatenate([s.train, s.val])]), test), test


def run_baseline(
    cfg: RunConfig,
    ds: Dataset,
    labels: list[str],
    outcomes: list[Any],
    item_level: bool,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Fit the baseline on every fold of a run and compare the run's model with it.

    Parameters
    ----------
    cfg : RunConfig
        The run's config (cache_dir, jobs, seed, evaluate.bootstrap, features.max_duration).
    ds : Dataset
        The run's dataset: its clips, in its order, are the ones split.
    labels : list of str
        The run's class names (ids index them).
    outcomes : list of FoldOutcome
        The run's folds: their splits are reused and their test predictions paired.
    item_level : bool
        Whether the splits index items (the seeds' random protocol) rather than clips.

    Returns
    -------
    dict
        ``balanced_accuracy``, ``accuracy``, ``macro_f1`` (pooled over the test folds, clip
        level), ``n_test_clips``, ``folds`` (name, n, figures, C), ``mean``/``std`` over folds,
        ``model`` (the model's figures on the same clips), ``comparison`` (paired bootstrap),
        ``verdict`` (one sentence), ``config``, ``seconds`` (wall, extraction included),
        ``extract_seconds``, ``cpu_seconds`` (this process's CPU time). A baseline that cannot be fitted returns ``{"skipped": reason}``
        (printed) rather than losing the run.

    Examples
    --------
    ``run_experiment`` calls it with its folds (``evaluate.baseline: true``); by hand:

    >>> metrics["baseline"] = run_baseline(cfg, ds, labels, outcomes, item_level)  # doctest: +SKIP
    """
    console = console or Console(stderr=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    fc, rc = baseline_features(cfg)
    try:
        bds = build_dataset(ds.clips, fc, rc, cache_dir=cfg.cache_dir, jobs=cfg.jobs, progress=progress)
        t_extract = time.perf_counter() - t0
        out = _fit_folds(cfg, ds, bds, labels, outcomes, item_level)
    except SonotypeError as exc:
        console.print(f"[yellow]baseline skipped: {exc}[/]")
        return {"skipped": str(exc), "config": _config_record(fc, rc, None)}
    out["config"] = _config_record(fc, rc, out.pop("_inner_cv"))
    out["extract_seconds"] = round(t_extract, 2)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["cpu_seconds"] = round(time.process_time() - cpu0, 2)  # this process; wall time on a loaded machine varies
    if progress:
        console.print(f"[bold]baseline[/] (clip statistics + logistic regression, {out['seconds']:.1f}s): "
                      f"{out['verdict']}")
    return out


def _config_record(fc: FeatureConfig, rc: RepresentationConfig, inner_cv: str | None) -> dict[str, Any]:
    return {
        "description": DESCRIPTION,
        "features": fc.to_dict(),
        "representation": rc.to_dict(),
        "model": BASELINE_MODEL,
        "params": resolved_params(BASELINE_MODEL),
        "inner_cv": inner_cv,
        "comparison": "paired bootstrap over the test clips of the difference in balanced accuracy",
    }


def _fit_folds(
    cfg: RunConfig, ds: Dataset, bds: Dataset, labels: list[str], outcomes: list[Any], item_level: bool
) -> dict[str, Any]:
    lid = {lab: i for i, lab in enumerate(labels)}
    # build_dataset keeps the clip objects it was given: map the run's clip index -> baseline row.
    row_of = {id(c): r for r, c in enumerate(bds.clips)}
    rows = np.array([row_of.get(id(c), -1) for c in ds.clips])
    if bds.X.shape[0] != len(bds.clips):
        raise ConfigError(f"baseline: expected one statistics vector per clip, got {bds.X.shape[0]} for "
                            f"{len(bds.clips)} clips")
    y = np.array([lid[c.label] for c in bds.clips])
    groups = np.array([c.group for c in bds.clips], dtype=object)
    truth, base_pred, model_pred, folds, inner = [], [], [], [], None
    for o in outcomes:
        train_c, test_c = _fold_clips(o, ds, item_level)
        tr, te = rows[train_c], rows[test_c]
        tr, keep = tr[tr >= 0], te >= 0
        te, test_c = te[keep], test_c[keep]
        if not len(te):
            continue
        if item_level and np.unique(y[tr]).size < 2:
            raise ConfigError(
                "the item-level random split put items of (nearly) every clip on both sides, so a clip-level "
                "baseline has no clean training clips; use a grouped protocol to compare with the baseline")
        scaler = Standardizer().fit(bds.X[tr])
        net = build_model(BASELINE_MODEL, (bds.X.shape[1],), len(labels))
        info = fit_linear(net, scaler.transform(bds.X[tr]), y[tr], groups=groups[tr])
        inner = inner or info["inner_cv"]
        pred = predict_proba(net, scaler.transform(bds.X[te])).argmax(1)
        cids, cp = vote(o.proba, ds.item_clip[o.test_items])
        by_clip = dict(zip(cids.tolist(), cp.argmax(1).tolist()))
        mp = np.array([by_clip[c] for c in test_c.tolist()])
        fm = clip_metrics(y[te], pred, labels)
        folds.append({"name": o.split.name, "n": int(len(te)), **{k: fm[k] for k in _SCORES}, "C": info["C"]})
        truth.append(y[te])
        base_pred.append(pred)
        model_pred.append(mp)
    if not folds:
        raise CorpusError("baseline: no test clip has baseline features")
    t, b, m = np.concatenate(truth), np.concatenate(base_pred), np.concatenate(model_pred)
    pooled, model_m = clip_metrics(t, b, labels), clip_metrics(t, m, labels)
    cmp = None
    if cfg.evaluate.bootstrap > 0:
        cmp = paired_bootstrap(t, m, b, n=cfg.evaluate.bootstrap, seed=cfg.seed)
    out: dict[str, Any] = {k: pooled[k] for k in _SCORES}
    out["n_test_clips"] = int(t.size)
    out["n_missing"] = int(sum(len(_fold_clips(o, ds, item_level)[1]) for o in outcomes) - t.size)
    out["model"] = {k: model_m[k] for k in _SCORES}
    out["comparison"] = cmp
    out["verdict"] = _verdict_text(model_m["balanced_accuracy"], pooled["balanced_accuracy"], cmp, int(t.size))
    out["folds"] = folds
    if len(folds) > 1:
        vals = {k: np.array([f[k] for f in folds]) for k in _SCORES}
        out["mean"] = {k: float(v.mean()) for k, v in vals.items()}
        out["std"] = {k: float(v.std(ddof=1)) for k, v in vals.items()}
    out["_inner_cv"] = inner
    return out
