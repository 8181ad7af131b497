"""The run pipeline: corpus -> clips -> features -> dataset -> model -> predictions -> report.

:func:`run_experiment` executes one :class:`~sonotype.config.RunConfig` and writes a run
directory: ``model/`` (safe model files), ``config.yaml`` (reproduces the run),
``metrics.json``, ``history.json``, ``predictions.csv``, plots and ``report.html``.
Splits are made over clips (by group) and mapped to their items (frames/windows), so the
windows of one clip never straddle a split - except under the seeds' ``random`` protocol,
which splits items on purpose to show the leak.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from .audio import load as load_audio
from .augment import augment_waveform
from .config import CorpusConfig, CrossEvalConfig, RunConfig
from .corpora import Manifest, load_corpus
from .corpora.ops import apply_ops
from .errors import ConfigError, SonotypeError
from .evaluate import (
    aggregate_folds,
    bootstrap_ci,
    cross_corpus_labels,
    evaluate_items,
    rank_subsets,
    restrict_proba,
    vote,
)
from .evaluate import metrics as clip_metrics
from .features import Dataset, Standardizer, build_dataset, featurize
from .io import atomic_dir, atomic_write_text
from .modelio import save_model
from .models import build_model, ensemble_of, model_spec
from .splits import (
    ProtocolConfig,
    Split,
    check_no_leak,
    describe_protocol,
    make_splits,
    resolve_auto,
    rotate_validation,
)
from .train import TrainResult, fit, fit_members, predict_proba

__all__ = ["FoldOutcome", "evaluate_on_corpus", "load_manifest", "run_experiment"]


# What a clip's group is, per corpus, for the protocol sentence in reports.
GROUP_NAMES = {
    "gtzan": "track", "folder": "file", "demo": "speaker", "fsdd": "speaker", "ravdess": "actor", "cremad": "actor",
    "tess": "speaker", "savee": "speaker", "emodb": "speaker", "dusha": "speaker", "esc50": "source recording",
}


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


def load_manifest(cc: CorpusConfig | CrossEvalConfig, *, name: str | None = None) -> Manifest:
    """Load a corpus and apply its label operations."""
    corpus = name or getattr(cc, "name", None) or getattr(cc, "corpus", "")
    if not cc.root:
        raise ConfigError(f"corpus {corpus!r} needs a root folder (corpus.root or --root)")
    manifest = load_corpus(corpus, cc.root, **cc.options)
    if cc.ops:
        manifest = apply_ops(manifest, cc.ops)
    if not manifest.clips:
        raise SonotypeError(f"corpus {corpus!r} at {cc.root} has no usable clips ({len(manifest.skipped)} skipped)")
    return manifest


def _dataset(cfg: RunConfig, clips: list, progress: bool) -> Dataset:
    """Frame features -> representation, or pretrained-backbone embeddings when configured."""
    if cfg.backbone:
        from .backbones import BackboneConfig, build_embedding_dataset, build_waveform_dataset

        bcfg = BackboneConfig.from_dict(cfg.backbone)
        if bcfg.finetune_layers > 0:  # fine-tuning eats waveforms, not embeddings
            return build_waveform_dataset(clips, bcfg)
        return build_embedding_dataset(clips, bcfg, cache_dir=cfg.cache_dir, progress=progress)
    return build_dataset(clips, cfg.features, cfg.representation, cache_dir=cfg.cache_dir, jobs=cfg.jobs, progress=progress)


def _finetuning(cfg: RunConfig) -> bool:
    return bool(cfg.backbone) and int(cfg.backbone.get("finetune_layers") or 0) > 0


def _build_network(cfg: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> torch.nn.Module:
    """A registry model, or the backbone + head network when fine-tuning a pretrained encoder."""
    torch.manual_seed(cfg.train.seed)
    if _finetuning(cfg):
        from .backbones import BackboneConfig, FineTuneClassifier

        bcfg = BackboneConfig.from_dict(cfg.backbone)
        return FineTuneClassifier(input_shape, n_classes, backbone=bcfg.to_dict(),
                                  lr_scale=bcfg.finetune_lr / cfg.train.lr, **cfg.model.params)
    return build_model(cfg.model.name, input_shape, n_classes, **cfg.model.params)


def _scale(scaler: Standardizer | None, X: np.ndarray) -> np.ndarray:
    return X if scaler is None else scaler.transform(X)


def _feature_axis(cfg: RunConfig) -> int:
    # log-mel patches are (F, T): standardise per mel band, i.e. along axis 1 of (N, F, T).
    return 1 if cfg.representation.kind == "logmel" else -1


def _augmented_items(
    ds: Dataset, cfg: RunConfig, clip_ids: np.ndarray, cache: dict[tuple[int, int], list[np.ndarray]], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Waveform-augmented copies of the given clips' items (seeded per clip and copy; memoised across folds).

    Copies not yet made are computed in ``cfg.jobs`` spawned processes (one BLAS thread each);
    a copy depends only on its clip, its index and ``seed``, so the result is the same for
    any number of jobs.
    """
    fc, rc = cfg.features, cfg.representation
    todo = [ci for ci in clip_ids.tolist() if (seed, ci) not in cache]
    tasks = []
    for ci in todo:
        clip = ds.clips[ci]
        dur = clip.duration
        if fc.max_duration is not None:
            dur = fc.max_duration if dur is None else min(dur, fc.max_duration)
        tasks.append((clip.path, clip.start, dur, fc.to_dict(), rc.to_dict(), cfg.augment.to_dict(), seed, ci))
    if cfg.jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from .features.extract import _one_thread_env

        with _one_thread_env(), ProcessPoolExecutor(
            max_workers=min(cfg.jobs, len(tasks)), mp_context=mp.get_context("spawn")
        ) as pool:
            made = list(pool.map(_augment_clip, tasks, chunksize=max(1, len(tasks) // (8 * cfg.jobs))))
    else:
        made = [_augment_clip(t) for t in tasks]
    cache.update(((seed, ci), m) for ci, m in zip(todo, made))
    xs, ids = [], []
    for ci in clip_ids.tolist():
        for items in cache[seed, ci]:
            xs.append(items)
            ids.append(np.full(len(items), ci))
    if not xs:
        return np.empty((0, *ds.X.shape[1:]), np.float32), np.empty(0, int)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ids)


def _augment_clip(task: tuple) -> list[np.ndarray]:
    """``augment.copies`` augmented copies of one clip, featurised (a worker's unit of work)."""
    from .augment import AugmentConfig
    from .features.config import FeatureConfig, RepresentationConfig

    path, start, dur, fc_d, rc_d, aug_d, seed, ci = task
    fc, rc, aug = FeatureConfig.from_dict(fc_d), RepresentationConfig.from_dict(rc_d), AugmentConfig.from_dict(aug_d)
    y, sr = load_audio(path, sr=fc.sr, offset=start, duration=dur)
    return [
        featurize(augment_waveform(y, sr, aug, np.random.default_rng([seed, ci, c])), sr, fc, rc, path=path)
        for c in range(aug.copies)
    ]


def _train_one(
    cfg: RunConfig,
    ds: Dataset,
    y_items: np.ndarray,
    n_classes: int,
    train_clips: np.ndarray,
    val_clips: np.ndarray,
    *,
    aug_cache: dict[tuple[int, int], list[np.ndarray]],
    progress: bool,
    console: Console,
    train_items: np.ndarray | None = None,
    val_items: np.ndarray | None = None,
) -> tuple[torch.nn.Module, Standardizer | None, list[TrainResult]]:
    """Fit scaler (training items only) and network (or ensemble members) on one split.

    Ensemble member ``i`` trains from seed ``train.seed + i`` on the same augmented copies as
    the others (members with their own copies were no better on RAVDESS, 0.590 against 0.605
    for two, and each set of copies costs extraction time). With ``ensemble_validation:
    rotate`` each member validates on its own groups of the training side and trains on the
    rest; the shared scaler is then fitted on the whole training side.
    """
    tr = np.flatnonzero(np.isin(ds.item_clip, train_clips)) if train_items is None else train_items
    va = np.flatnonzero(np.isin(ds.item_clip, val_clips)) if val_items is None else val_items
    n_members = cfg.model.ensemble
    rotate = n_members > 1 and cfg.model.ensemble_validation == "rotate"
    if rotate:
        tr, va = np.union1d(tr, va), np.empty(0, np.int64)  # the whole training side; members carve their own
    first_item = {ci: i for i, ci in reversed(list(enumerate(ds.item_clip.tolist())))}

    def with_copies(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X, y = ds.X[items], y_items[items]
        if cfg.augment.copies > 0 and len(items):
            X_aug, clip_aug = _augmented_items(ds, cfg, np.unique(ds.item_clip[items]), aug_cache, cfg.seed)
            if len(X_aug):
                # An augmented item has its clip's class: the class id of any item of that clip.
                X = np.concatenate([X, X_aug])
                y = np.concatenate([y, y_items[[first_item[c] for c in clip_aug.tolist()]]])
        return X, y

    X_tr, y_tr = with_copies(tr)
    # Waveform items of a fine-tuned backbone are normalised by the backbone itself: no scaler.
    scaler = None if _finetuning(cfg) else Standardizer(feature_axis=_feature_axis(cfg)).fit(X_tr)
    net = _build_network(cfg, tuple(ds.X.shape[1:]), n_classes)
    X_va = _scale(scaler, ds.X[va]) if len(va) else None
    y_va = y_items[va] if len(va) else None
    if n_members > 1:
        seeds = [cfg.train.seed + i for i in range(n_members)]
        if rotate:
            clip_of = ds.item_clip
            side = np.unique(clip_of[tr])
            carvings = rotate_validation(side, [c.label for c in ds.clips], [c.group for c in ds.clips], n_members,
                                         val_size=cfg.protocol.val_size, seed=cfg.protocol.seed)
            sets = [with_copies(np.flatnonzero(np.isin(clip_of, t))) for t, _ in carvings]
            vals = [np.flatnonzero(np.isin(clip_of, v)) for _, v in carvings]
            X_tr = [_scale(scaler, X) for X, _ in sets]
            y_tr = [y for _, y in sets]
            X_va = [_scale(scaler, ds.X[v]) for v in vals]
            y_va = [y_items[v] for v in vals]
        else:
            X_tr = _scale(scaler, X_tr)
        if progress:
            how = ", each with its own validation groups" if rotate else ""
            console.print(f"training {n_members} ensemble members (seeds {seeds}, {min(cfg.jobs, n_members)} at a time{how})")
        members, results = fit_members(
            model_spec(net), seeds, X_tr, y_tr, X_va, y_va, config=cfg.train, augment=cfg.augment,
            n_classes=n_classes, jobs=cfg.jobs, progress=progress, console=console,
        )
        return ensemble_of(members, class_prior=_prior(cfg, y_items[tr], n_classes)), scaler, results
    result = fit(
        net,
        _scale(scaler, X_tr),
        y_tr,
        X_va,
        y_va,
        config=cfg.train,
        augment=cfg.augment,
        n_classes=n_classes,
        progress=progress,
        console=console,
    )
    if cfg.model.prior_correction:
        net = ensemble_of([net], class_prior=_prior(cfg, y_items[tr], n_classes))
    return net, scaler, [result]


def _prior(cfg: RunConfig, y_train: np.ndarray, n_classes: int) -> list[float] | None:
    """Training class frequencies for ``model.prior_correction`` (a class absent from training counts 1)."""
    if not cfg.model.prior_correction:
        return None
    counts = np.maximum(np.bincount(y_train, minlength=n_classes), 1).astype(np.float64)
    return (counts / counts.sum()).tolist()


def _splits(cfg: RunConfig, ds: Dataset, item_labels: np.ndarray) -> tuple[list[Split], ProtocolConfig, bool]:
    """Splits over clips (honest) or, for the seeds' ``random`` protocol, over items."""
    proto = cfg.protocol
    clip_labels = [c.label for c in ds.clips]
    clip_groups = [c.group for c in ds.clips]
    assignments = [c.meta.get(proto.field) for c in ds.clips]
    has_assign = any(a is not None for a in assignments)
    if proto.name == "auto":
        proto = resolve_auto(clip_labels, clip_groups, assignments if has_assign else None, base=proto)
    if proto.name == "random":
        # Item level on purpose: reproduces the seeds' leak (windows of one track on both sides).
        return make_splits(list(item_labels), [ds.clips[i].group for i in ds.item_clip], proto), proto, True
    splits = make_splits(clip_labels, clip_groups, proto, assignments=assignments if has_assign else None)
    for s in splits:
        check_no_leak(s, clip_groups)
    return splits, proto, False


def run_experiment(
    cfg: RunConfig,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
    config_source: str | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` end to end and write its run directory at ``out``; return the metrics.

    ``config_source`` says where the configuration came from (``metrics.json``), e.g.
    ``"recipe ravdess-best"`` or ``"default for speech"``; default ``"config <name>"``.
    """
    from . import report as rpt
    from .defaults import check_backbone_run, resolve_backbone

    console = console or Console(stderr=True)
    out = Path(out)
    if cfg.backbone and cfg.backbone.get("model"):  # a name from a recipe -> a folder or hub id, before any work
        cfg = replace(cfg, backbone={**cfg.backbone, "model": resolve_backbone(cfg.backbone["model"])})
    check_backbone_run(cfg)
    if cfg.model.ensemble > 1 and cfg.model.ensemble_validation == "rotate" and (
        cfg.protocol.val_size <= 0 or cfg.protocol.name == "random"
    ):
        raise ConfigError(
            "model.ensemble_validation 'rotate' carves validation groups from each training side: it needs "
            "protocol.val_size > 0 and a grouped protocol (not 'random')"
        )
    if _finetuning(cfg) and (cfg.model.ensemble > 1 or cfg.model.prior_correction):
        raise ConfigError(
            "model.ensemble > 1 and model.prior_correction are not supported when fine-tuning a backbone "
            "(the fine-tuned network is saved as it is)"
        )
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    t0 = time.perf_counter()
    with atomic_dir(out, force=force) as tmp:
        manifest = load_manifest(cfg.corpus)
        console.print(f"[bold]{cfg.name}[/]: {len(manifest.clips)} clips, {len(manifest.labels)} labels from {cfg.corpus.name}")
        ds = _dataset(cfg, manifest.clips, progress)
        if ds.skipped:
            console.print(f"[yellow]{len(ds.skipped)} clip(s) skipped during feature extraction[/]")
        labels = sorted({c.label for c in ds.clips})
        lid = {lab: i for i, lab in enumerate(labels)}
        item_labels = np.array([ds.clips[i].label for i in ds.item_clip])
        y_items = np.array([lid[v] for v in item_labels])
        splits, proto, item_level = _splits(cfg, ds, item_labels)
        protocol_text = describe_protocol(
            proto, group_name=GROUP_NAMES.get(cfg.corpus.name, "group"), n_groups=len({c.group for c in ds.clips})
        )
        if item_level:
            protocol_text += " - LEAKS: items (windows) of one clip on both sides; reproduces the seed only"
        console.print(f"protocol: {protocol_text} ({len(splits)} split(s))")

        aug_cache: dict[tuple[int, int], list[np.ndarray]] = {}
        outcomes: list[FoldOutcome] = []
        t_train = time.perf_counter()
        for k, split in enumerate(splits):
            if len(splits) > 1:
                console.print(f"[bold]{split.name}[/] ({k + 1}/{len(splits)})")
            if item_level:
                net, scaler, results = _train_one(
                    cfg, ds, y_items, len(labels), np.empty(0), np.empty(0), aug_cache=aug_cache, progress=progress,
                    console=console, train_items=split.train, val_items=split.val,
                )
                test_items = split.test
            else:
                net, scaler, results = _train_one(
                    cfg, ds, y_items, len(labels), split.train, split.val, aug_cache=aug_cache, progress=progress,
                    console=console,
                )
                test_items = np.flatnonzero(np.isin(ds.item_clip, split.test))
            proba = predict_proba(net, _scale(scaler, ds.X[test_items]))
            m = evaluate_items(proba, y_items[test_items], ds.item_clip[test_items], labels)
            outcomes.append(FoldOutcome(split, proba, test_items, results[0], net, scaler, m,
                                        results if len(results) > 1 else None))
        train_seconds = time.perf_counter() - t_train

        metrics = _summarise(cfg, ds, labels, y_items, outcomes, proto, protocol_text, item_level)
        metrics["config_source"] = config_source or f"config {cfg.name}"
        net, scaler, final_note = _final_model(cfg, ds, y_items, labels, outcomes, aug_cache, progress, console)
        metrics["final_model"] = final_note
        metrics["train_seconds"] = round(train_seconds, 2)
        metrics["n_skipped"] = len(manifest.skipped) + len(ds.skipped)

        save_model(
            tmp / "model",
            network=net,  # the network carries its own JSON architecture spec
            labels=labels,
            feature_config=cfg.features,
            representation=cfg.representation,
            scaler=scaler,
            metrics=_headline(metrics),
            backbone=_backbone_record(cfg),
            extra={"recipe": cfg.name, "protocol": protocol_text},
        )
        if cfg.study and cfg.study.subsets:
            metrics["study"] = _subset_study(cfg, manifest, splits[0], item_level, progress, console)
        if cfg.cross:
            metrics["cross"] = [evaluate_on_corpus(tmp / "model", cc, progress=progress) for cc in cfg.cross]

        metrics["total_seconds"] = round(time.perf_counter() - t0, 2)
        atomic_write_text(tmp / "config.yaml", cfg.to_yaml())
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
        atomic_write_text(
            tmp / "history.json", json.dumps(_histories(outcomes), indent=2)
        )
        atomic_write_text(tmp / "predictions.csv", _predictions_csv(ds, labels, outcomes))
        atomic_write_text(tmp / "skipped.json", json.dumps(
            [{"path": s.path, "reason": s.reason} for s in [*manifest.skipped, *ds.skipped]], indent=2))
        examples = _examples(ds, labels, outcomes, cfg.evaluate.examples)
        plots = rpt.write_plots(tmp, history=outcomes[0].result.history, metrics=metrics, examples=examples)
        rpt.write_report(tmp, config=cfg.to_dict(), metrics=metrics, plots=plots, title=cfg.name)
    console.print(
        f"[green]done[/] {out}: accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f} ({metrics['n_test_clips']} test clips)"
    )
    return metrics


def _summarise(
    cfg: RunConfig,
    ds: Dataset,
    labels: list[str],
    y_items: np.ndarray,
    outcomes: list[FoldOutcome],
    proto: ProtocolConfig,
    protocol_text: str,
    item_level: bool,
) -> dict[str, Any]:
    """Pooled clip-level figures over every test fold, plus per-fold values and a bootstrap interval."""
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
        "representation": cfg.representation.kind,
        "model": _model_text(cfg),
        "labels": labels,
        "n_clips": len(ds.clips),
        "n_items": int(len(ds.X)),
        "n_train_clips": int(round(np.mean([len(np.unique(ds.item_clip[o.split.train])) if item_level else len(o.split.train) for o in outcomes]))),
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


def _model_text(cfg: RunConfig) -> str:
    text = cfg.model.name if cfg.model.ensemble == 1 else f"ensemble of {cfg.model.ensemble} x {cfg.model.name}"
    return text + (", prior-corrected" if cfg.model.prior_correction else "")


def _backbone_record(cfg: RunConfig) -> dict[str, Any] | None:
    if not cfg.backbone:
        return None
    from .backbones import BackboneConfig, backbone_record

    return backbone_record(BackboneConfig.from_dict(cfg.backbone))


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("recipe", "corpus", "protocol", "accuracy", "balanced_accuracy", "macro_f1", "n_test_clips", "mean", "std")
    return {k: m[k] for k in keys if k in m}


def _final_model(
    cfg: RunConfig,
    ds: Dataset,
    y_items: np.ndarray,
    labels: list[str],
    outcomes: list[FoldOutcome],
    aug_cache: dict[tuple[int, int], list[np.ndarray]],
    progress: bool,
    console: Console,
) -> tuple[torch.nn.Module, Standardizer | None, str]:
    """The model saved in ``model/``: the only split's, the best fold's, or one refit on all clips."""
    if len(outcomes) == 1:
        return outcomes[0].network, outcomes[0].scaler, "the model of the single split"
    if cfg.evaluate.final_model == "best_fold":
        scores = [_val_score(o) for o in outcomes]
        best = int(np.argmax(scores))
        return outcomes[best].network, outcomes[best].scaler, f"the fold model with the best validation score ({outcomes[best].split.name})"
    console.print("[bold]refit[/] on all clips (validation carved out by group for early stopping)")
    clip_labels = [c.label for c in ds.clips]
    clip_groups = [c.group for c in ds.clips]
    val_part = max(cfg.protocol.val_size, 0.1)
    holdout = ProtocolConfig(name="holdout", test_size=val_part, val_size=0.0, seed=cfg.protocol.seed)
    try:
        split = make_splits(clip_labels, clip_groups, holdout)[0]
        train_clips, val_clips = split.train, split.test
    except SonotypeError:
        train_clips, val_clips = np.arange(len(ds.clips)), np.empty(0, int)
    net, scaler, _ = _train_one(
        cfg, ds, y_items, len(labels), train_clips, val_clips, aug_cache=aug_cache, progress=progress, console=console
    )
    return net, scaler, "refit on all clips; validation carved out by group for early stopping"


def _val_score(o: FoldOutcome) -> float:
    """The fold's best validation score (mean over ensemble members)."""
    scores = []
    for r in o.member_results or [o.result]:
        h = r.history[r.best_epoch - 1] if r.history else {}
        scores.append(float(h.get("val_balanced_accuracy") or h.get("val_accuracy") or 0.0))
    return float(np.mean(scores))


def _histories(outcomes: list[FoldOutcome]) -> list[dict[str, Any]]:
    """history.json: one entry per split, or per split and ensemble member."""
    out = []
    for o in outcomes:
        if o.member_results is None:
            out.append({"split": o.split.name, "history": o.result.history})
        else:
            out.extend({"split": o.split.name, "member": i + 1, "history": r.history}
                       for i, r in enumerate(o.member_results))
    return out


def _predictions_csv(ds: Dataset, labels: list[str], outcomes: list[FoldOutcome]) -> str:
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


def _examples(ds: Dataset, labels: list[str], outcomes: list[FoldOutcome], n: int) -> list[dict[str, Any]]:
    """A few test clips with their mean prediction, for the seeds' green/red bar charts."""
    o = outcomes[0]
    cids, cp = vote(o.proba, ds.item_clip[o.test_items])
    rng = np.random.default_rng(0)
    pick = rng.choice(len(cids), size=min(n, len(cids)), replace=False) if len(cids) else []
    return [
        {"name": Path(ds.clips[cids[i]].path).name, "true": ds.clips[cids[i]].label,
         "probabilities": {lab: float(p) for lab, p in zip(labels, cp[i])}}
        for i in sorted(pick)
    ]


def _subset_study(
    cfg: RunConfig, manifest: Manifest, split: Split, item_level: bool, progress: bool, console: Console
) -> list[dict[str, Any]]:
    """Seed A's feature-subset study: a small model per subset on the first split, ranked."""
    results = []
    for spec in cfg.study.subsets:
        sub = replace(cfg, representation=replace(cfg.representation, select=spec), model=cfg.study.model, augment=replace(cfg.augment, copies=0))
        ds = build_dataset(manifest.clips, sub.features, sub.representation, cache_dir=cfg.cache_dir, jobs=cfg.jobs)
        labels = sorted({c.label for c in ds.clips})
        lid = {lab: i for i, lab in enumerate(labels)}
        y_items = np.array([lid[ds.clips[i].label] for i in ds.item_clip])
        if item_level:
            net, scaler, _ = _train_one(sub, ds, y_items, len(labels), np.empty(0), np.empty(0), aug_cache={}, progress=False,
                                        console=console, train_items=split.train, val_items=split.val)
            test_items = split.test
        else:
            net, scaler, _ = _train_one(sub, ds, y_items, len(labels), split.train, split.val, aug_cache={}, progress=False, console=console)
            test_items = np.flatnonzero(np.isin(ds.item_clip, split.test))
        proba = predict_proba(net, _scale(scaler, ds.X[test_items]))
        m = evaluate_items(proba, y_items[test_items], ds.item_clip[test_items], labels)["clip_level"]
        n_features = int(ds.X.shape[-1])
        console.print(f"  subset {spec!r}: {n_features} features, balanced accuracy {m['balanced_accuracy']:.3f}")
        results.append({"subset": spec, "n_features": n_features, "accuracy": m["accuracy"],
                        "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"]})
    return rank_subsets(results)


def evaluate_on_corpus(
    model_dir: str | Path, cc: CrossEvalConfig, *, progress: bool = False, jobs: int = 1, cache_dir: str | None = None
) -> dict[str, Any]:
    """Evaluate a saved model on another corpus, on the labels both share (cross-corpus)."""
    from .predict import load_model

    clf = load_model(model_dir)
    manifest = load_manifest(cc, name=cc.corpus)
    kept, dropped_model, dropped_corpus = cross_corpus_labels(clf.labels, manifest.labels)
    if not kept:
        raise SonotypeError(
            f"model labels {clf.labels} and corpus {cc.corpus!r} labels {manifest.labels} share nothing to evaluate on"
        )
    clips = [c for c in manifest.clips if c.label in kept]
    ds = build_dataset(clips, clf.feature_config, clf.representation, cache_dir=cache_dir, jobs=jobs, progress=progress)
    proba = restrict_proba(clf.forward_items(ds.X), clf.labels, kept)
    clip_ids, clip_proba = vote(proba, ds.item_clip)
    y_true = [ds.clips[c].label for c in clip_ids]
    y_pred = [kept[i] for i in clip_proba.argmax(1)]
    m = clip_metrics(y_true, y_pred, kept)
    m.update({
        "corpus": cc.corpus,
        "root": cc.root,
        "protocol": f"cross-corpus: trained elsewhere, tested on all of {cc.corpus} on shared labels",
        "labels_kept": kept,
        "labels_dropped_model": dropped_model,
        "labels_dropped_corpus": dropped_corpus,
        "n_test_clips": len(clip_ids),
        "n_skipped": len(manifest.skipped) + len(ds.skipped),
    })
    return m
