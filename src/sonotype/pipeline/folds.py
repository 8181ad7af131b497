"""The folds of a run: train and test every split, pool the test predictions, write them out.

:func:`run_folds` is the loop of :func:`~sonotype.pipeline.experiment.run_experiment`: for each
split, :func:`~sonotype.pipeline.fitting.train_split` (the fit ``AudioClassifier`` uses) then the
split's test items; :func:`summarise` pools the clip-level figures over every test fold.
The other functions turn the outcomes into ``history.json``, ``predictions.csv`` and the
example clips of the report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console

from sonotype.evaluation.metrics import aggregate_folds, bootstrap_ci, evaluate_items, vote
from sonotype.features import Dataset, Standardizer
from sonotype.pipeline.fitting import AugCache, scale, split_items, train_split
from sonotype.splits.split import ProtocolConfig, Split
from sonotype.training.train import TrainResult, predict_proba

if TYPE_CHECKING:
    from sonotype.pipeline.config import RunConfig

__all__ = ["FoldOutcome", "examples", "histories", "model_text", "predictions_csv", "run_folds", "summarise", "train_clips",
           "val_score"]


@dataclass
class FoldOutcome:
    """What one split produced: its test items' probabilities and the trained parts."""

    split: Split
    proba: np.ndarray
    test_items: np.ndarray
    result: TrainResult
    network: torch.nn.Module
    scaler: Standardizer | None
    metrics: dict[str, Any]
    member_results: list[TrainResult] | None = None  # every member's, for an ensemble


def run_folds(
    cfg: RunConfig, ds: Dataset, labels: list[str], y_items: np.ndarray, splits: list[Split], item_level: bool,
    *, aug_cache: AugCache, progress: bool, console: Console,
) -> list[FoldOutcome]:
    """Train on every split's training side and predict its test items.

    Parameters
    ----------
    cfg : RunConfig
    ds : Dataset
        Every item of the run; ``y_items`` their class ids into ``labels``.
    splits : list of Split
        Over clips, or over items when ``item_level`` (the ``random`` protocol).
    aug_cache : dict
        Augmented copies, memoised across folds (and kept for the final fit).

    Returns
    -------
    list of FoldOutcome
        In split order.
    """
    outcomes = []
    for k, split in enumerate(splits):
        if len(splits) > 1:
            console.print(f"[bold]{split.name}[/] ({k + 1}/{len(splits)})")
        tr, va, te = split_items(ds, split, item_level)
        net, scaler, results = train_split(cfg, ds, y_items, len(labels), tr, va, aug_cache=aug_cache,
                                           progress=progress, console=console)
        proba = predict_proba(net, scale(scaler, ds.X[te]))
        m = evaluate_items(proba, y_items[te], ds.item_clip[te], labels)
        outcomes.append(FoldOutcome(split, proba, te, results[0], net, scaler, m, results if len(results) > 1 else None))
    return outcomes


def summarise(
    cfg: RunConfig,
    ds: Dataset,
    labels: list[str],
    y_items: np.ndarray,
    outcomes: list[FoldOutcome],
    proto: ProtocolConfig,
    protocol_text: str,
    item_level: bool,
) -> dict[str, Any]:
    """Pooled clip-level figures over every test fold, plus per-fold values and a bootstrap interval.

    Returns
    -------
    dict
        The head of ``metrics.json``: recipe, corpus, protocol, labels, counts, the clip-level
        figures (:func:`sonotype.evaluation.metrics.metrics`), ``window_level``, ``bootstrap_ci`` and,
        with several folds, ``folds``/``mean``/``std``.
    """
    proba = np.concatenate([o.proba for o in outcomes])
    items = np.concatenate([o.test_items for o in outcomes])
    # Tag each test item with its fold so a clip tested in several folds (random protocol) votes per fold.
    fold_of = np.concatenate([np.full(len(o.test_items), k) for k, o in enumerate(outcomes)])
    key = ds.item_clip[items] * len(outcomes) + fold_of
    pooled = evaluate_items(proba, y_items[items], key, labels)
    clip_ids = pooled["clip_ids"]
    clip_true = np.asarray(pooled["clip_true"])
    clip_pred = np.asarray(pooled["clip_proba"]).argmax(1)
    metrics: dict[str, Any] = {
        "recipe": cfg.name,
        "corpus": cfg.corpus.name,
        "seed_reference": cfg.seed_reference,
        "protocol": protocol_text,
        "protocol_name": proto.name,
        "protocol_config": proto.to_dict(),
        "item_level_split": item_level,
        "representation": "backbone" if cfg.backbone else cfg.representation.kind,
        "model": model_text(cfg),
        "labels": labels,
        "n_clips": len(ds.clips),
        "n_items": int(len(ds.X)),
        "n_train_clips": int(round(np.mean([len(train_clips(ds, o.split, item_level)) for o in outcomes]))),
        "n_test_clips": len(clip_ids),
    }
    metrics.update(pooled["clip_level"])
    metrics["window_level"] = pooled["window_level"]
    if cfg.evaluate.bootstrap > 0:
        lo, hi = bootstrap_ci(clip_true, clip_pred, n=cfg.evaluate.bootstrap, seed=cfg.seed)
        metrics["bootstrap_ci"] = {"level": 0.95, "accuracy": [lo, hi]}
    if len(outcomes) > 1:
        agg = aggregate_folds([o.metrics["clip_level"] for o in outcomes], pooled["clip_level"])
        metrics.update({k: v for k, v in agg.items() if k in ("folds", "mean", "std")})
        for f, o in zip(metrics["folds"], outcomes):
            f["name"] = o.split.name
    return metrics


def train_clips(ds: Dataset, split: Split, item_level: bool) -> np.ndarray:
    """The clips on a split's training side (a split over items names items)."""
    return np.unique(ds.item_clip[split.train]) if item_level else split.train


def model_text(cfg: RunConfig) -> str:
    """``resmlp``, ``ensemble of 3 x resmlp, prior-corrected``: the model as reports name it."""
    text = cfg.model.name if cfg.model.ensemble == 1 else f"ensemble of {cfg.model.ensemble} x {cfg.model.name}"
    return text + (", prior-corrected" if cfg.model.prior_correction else "")


def val_score(o: FoldOutcome) -> float:
    """The fold's best validation score (mean over ensemble members)."""
    scores = []
    for r in o.member_results or [o.result]:
        h = r.history[r.best_epoch - 1] if r.history else {}
        scores.append(float(h.get("val_balanced_accuracy") or h.get("val_accuracy") or 0.0))
    return float(np.mean(scores))


def histories(outcomes: list[FoldOutcome]) -> list[dict[str, Any]]:
    """history.json: one entry per split, or per split and ensemble member."""
    out = []
    for o in outcomes:
        if o.member_results is None:
            out.append({"split": o.split.name, "history": o.result.history})
        else:
            out.extend({"split": o.split.name, "member": i + 1, "history": r.history}
                       for i, r in enumerate(o.member_results))
    return out


def predictions_csv(ds: Dataset, labels: list[str], outcomes: list[FoldOutcome]) -> str:
    """One row per test clip (per fold): path, true label, predicted label, probabilities."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["split", "clip_id", "path", "true", "predicted", *[f"p_{lab}" for lab in labels]])
    for o in outcomes:
        cids, cp = vote(o.proba, ds.item_clip[o.test_items])
        for ci, p in zip(cids.tolist(), cp):
            c = ds.clips[ci]
            w.writerow([o.split.name, c.clip_id, c.path, c.label, labels[int(p.argmax())], *[f"{v:.6f}" for v in p]])
    return buf.getvalue()


def examples(ds: Dataset, labels: list[str], outcomes: list[FoldOutcome], n: int) -> list[dict[str, Any]]:
    """A few test clips with their mean prediction, for the seeds' green/red bar charts.

    Drawn (seeded) from every fold's test clips, half of them wrongly classified where
    there are enough wrong ones, so the picture shows the errors as well as the successes.
    """
    pool = []  # (fold, clip id, mean probabilities)
    for k, o in enumerate(outcomes):
        cids, cp = vote(o.proba, ds.item_clip[o.test_items])
        pool.extend((k, int(ci), p) for ci, p in zip(cids.tolist(), cp))
    if not pool or n <= 0:
        return []
    wrong = [i for i, (_, ci, p) in enumerate(pool) if labels[int(np.argmax(p))] != ds.clips[ci].label]
    right = sorted(set(range(len(pool))) - set(wrong))
    n = min(n, len(pool))
    n_wrong = min(len(wrong), max(n // 2, n - len(right)))
    rng = np.random.default_rng(0)
    pick = rng.choice(wrong, size=n_wrong, replace=False).tolist() if n_wrong else []
    if n > n_wrong:
        pick += rng.choice(right, size=n - n_wrong, replace=False).tolist()
    out = []
    for i in sorted(pick):
        k, ci, p = pool[i]
        out.append({"name": Path(ds.clips[ci].path).name, "true": ds.clips[ci].label,
                    "split": outcomes[k].split.name, "probabilities": {lab: float(v) for lab, v in zip(labels, p)}})
    return out
