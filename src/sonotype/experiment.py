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

from . import checks
from .audio import load as load_audio
from .augment import augment_waveform
from .config import CorpusConfig, CrossEvalConfig, RunConfig, with_absolute_paths
from .corpora import Manifest, load_corpus
from .corpora.ops import apply_ops
from .environment import environment
from .errors import ConfigError, CorpusError, SonotypeError
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
from .models.linear import is_linear
from .splits import (
    MIN_VAL_GROUPS,
    ProtocolConfig,
    Split,
    check_no_leak,
    describe_protocol,
    make_splits,
    resolve_auto,
    rotate_validation,
)
from .train import TrainConfig, TrainResult, fit, fit_members, predict_proba

__all__ = ["FoldOutcome", "evaluate_on_corpus", "load_manifest", "run_experiment"]


# What a clip's group is, per corpus, for the protocol sentence in reports.
GROUP_NAMES = {
    "gtzan": "track", "folder": "file", "demo": "speaker", "fsdd": "speaker", "ravdess": "actor", "cremad": "actor",
    "tess": "speaker", "savee": "speaker", "emodb": "speaker", "dusha": "speaker", "esc50": "source recording",
    "mixed": "speaker",
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
        raise CorpusError(f"corpus {corpus!r} at {cc.root} has no usable clips ({len(manifest.skipped)} skipped)")
    return manifest


def _dataset(cfg: RunConfig, clips: list, progress: bool) -> Dataset:
    """Frame features -> representation, or pretrained-backbone embeddings when configured."""
    from .engine import dataset_for_run

    if (ds := dataset_for_run(cfg, clips, progress)) is not None:  # engine: ray
        return ds
    if cfg.backbone:
        from .backbones import BackboneConfig, build_embedding_dataset, build_waveform_dataset

        bcfg = BackboneConfig.from_dict(cfg.backbone)
        if bcfg.finetune_layers > 0:  # fine-tuning eats waveforms, not embeddings
            return build_waveform_dataset(clips, bcfg)
        return build_embedding_dataset(clips, bcfg, cache_dir=cfg.cache_dir, progress=progress)
    return build_dataset(clips, cfg.features, cfg.representation, cache_dir=cfg.cache_dir, jobs=cfg.jobs, progress=progress)


def _item_kind(cfg: RunConfig) -> str:
    """What the items are, for per-speaker normalisation: embeddings, waveforms or a representation."""
    if cfg.backbone:
        return "waveform" if _finetuning(cfg) else "backbone"
    return cfg.representation.kind


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
    train_configs: list[TrainConfig] | None = None,
) -> tuple[torch.nn.Module, Standardizer | None, list[TrainResult]]:
    """Fit scaler (training items only) and network (or ensemble members) on one split.

    ``train_configs`` (one per member, or one for a single network) replace ``cfg.train``:
    the final fit on every clip gives each member its own fixed epoch count that way.

    Ensemble member ``i`` trains from seed ``train.seed + i`` on the same augmented copies as
    the others (members with their own copies were no better on RAVDESS, 0.590 against 0.605
    for two, and each set of copies costs extraction time). With ``ensemble_validation:
    rotate`` each member validates on its own groups of the training side and trains on the
    rest; the shared scaler is then fitted on the whole training side.
    """
    if train_items is None:  # mix.balance: undersample cuts each corpus of the training side to the smallest
        from .corpora.mixed import balanced_train

        train_clips = balanced_train(cfg, ds.clips, train_clips)
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
                from .normalize import normalize_copies

                X_aug = normalize_copies(ds, X_aug, clip_aug)  # as their originals, under `normalize`
                # An augmented item has its clip's class: the class id of any item of that clip.
                X = np.concatenate([X, X_aug])
                y = np.concatenate([y, y_items[[first_item[c] for c in clip_aug.tolist()]]])
        return X, y

    if is_linear(cfg.model.name):  # logreg / linear-svm: scikit-learn, no torch loop
        return _train_linear(cfg, ds, y_items, n_classes, np.union1d(tr, va), with_copies, aug_cache, progress, console)
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
            model_spec(net), seeds, X_tr, y_tr, X_va, y_va, config=train_configs or cfg.train, augment=cfg.augment,
            n_classes=n_classes, jobs=cfg.jobs, progress=progress, console=console,
        )
        return ensemble_of(members, class_prior=_prior(cfg, y_items[tr], n_classes)), scaler, results
    result = fit(
        net,
        _scale(scaler, X_tr),
        y_tr,
        X_va,
        y_va,
        config=(train_configs or [cfg.train])[0],
        augment=cfg.augment,
        n_classes=n_classes,
        progress=progress,
        console=console,
    )
    if cfg.model.prior_correction:
        net = ensemble_of([net], class_prior=_prior(cfg, y_items[tr], n_classes))
    return net, scaler, [result]


def _train_linear(
    cfg: RunConfig, ds: Dataset, y_items: np.ndarray, n_classes: int, items: np.ndarray, with_copies: Any,
    aug_cache: dict[tuple[int, int], list[np.ndarray]], progress: bool, console: Console,
) -> tuple[torch.nn.Module, Standardizer, list[TrainResult]]:
    """Fit a linear model on the whole training side: its validation part joins the training data
    (there is no early stopping; inner group CV on this side picks C, see :mod:`sonotype.models.linear`)."""
    from .models.linear import fit_linear

    if cfg.augment.enabled_features:
        raise ConfigError(f"model {cfg.model.name!r} is fitted by scikit-learn: SpecAugment, mixup and feature noise "
                          "do not apply (waveform copies, augment.copies, do); set them to 0")
    if cfg.model.ensemble > 1:
        raise ConfigError(f"model {cfg.model.name!r} is deterministic: model.ensemble > 1 would repeat one fit")
    X, y = with_copies(items)
    clip_of = ds.item_clip[items]
    if cfg.augment.copies > 0 and len(items):  # memoised: the copies with_copies just used, for their clips
        clip_of = np.concatenate([clip_of, _augmented_items(ds, cfg, np.unique(clip_of), aug_cache, cfg.seed)[1]])
    scaler = Standardizer(feature_axis=_feature_axis(cfg)).fit(X)
    net = _build_network(cfg, tuple(ds.X.shape[1:]), n_classes)
    info = fit_linear(net, scaler.transform(X), y, groups=np.array([ds.clips[c].group for c in clip_of]),
                      item_clip=clip_of)
    if progress:
        console.print(f"{info['model']}: C={info['C']:g} ({info['chosen_by']}; {info['inner_cv']}), "
                      f"{info['n_items']} items, {info['seconds']:.1f}s")
    if cfg.model.prior_correction:
        net = ensemble_of([net], class_prior=_prior(cfg, y_items[items], n_classes))
    return net, scaler, [TrainResult(seconds=info["seconds"])]


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
    from .console import make_console
    from .defaults import check_backbone_run, resolve_backbone

    console = console or make_console()
    out = Path(out)
    if cfg.backbone and cfg.backbone.get("model"):  # a name from a recipe -> a folder or hub id, before any work
        cfg = replace(cfg, backbone={**cfg.backbone, "model": resolve_backbone(cfg.backbone["model"])})
    check_backbone_run(cfg)
    from .corpora.mixed import mix_metrics, resolve, run_manifest
    from .normalize import normalize_dataset

    cfg = resolve(cfg)  # mix.balance: class_weights -> train.class_weights
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
        manifest, mix_info = run_manifest(cfg, console)  # one corpus, or the union of several
        checks.check_run(cfg, manifest)  # every config mistake found now, not after extraction
        console.print(f"[bold]{cfg.name}[/]: {len(manifest.clips)} clips, {len(manifest.labels)} labels from {cfg.corpus.name}")
        t_extract = time.perf_counter()
        ds = _dataset(cfg, manifest.clips, progress)
        extract_seconds = time.perf_counter() - t_extract
        ds, normalizer = normalize_dataset(ds, cfg.normalize, _item_kind(cfg))  # per speaker / corpus
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
            protocol_text += " - " + _leak_text(splits, ds, GROUP_NAMES.get(cfg.corpus.name, "group"))
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
        if mix_info is not None or normalizer is not None:  # corpora, per-corpus figures, corpus x corpus table
            metrics.update(mix_metrics(
                cfg, ds, labels, outcomes, mix_info, normalizer, console=console,
                train=lambda tr, va: _train_one(cfg, ds, y_items, len(labels), tr, va, aug_cache=aug_cache,
                                                progress=False, console=console)[:2],
                proba=lambda net, scaler, X: predict_proba(net, _scale(scaler, X)),
            ))
        if cfg.evaluate.baseline:  # the textbook baseline on the same folds and test clips
            from .baseline import run_baseline

            metrics["baseline"] = run_baseline(cfg, ds, labels, outcomes, item_level, progress=progress, console=console)
        net, scaler, final_note = _final_model(cfg, ds, y_items, labels, outcomes, aug_cache, progress, console,
                                               item_level)
        metrics["final_model"] = final_note
        metrics["train_seconds"] = round(train_seconds, 2)
        metrics["extract_seconds"] = round(extract_seconds, 2)
        backbone = _backbone_record(cfg)
        if backbone is not None:
            from .backbones.load import summary

            metrics["backbone"] = summary(backbone)
        metrics["n_skipped"] = len(manifest.skipped) + len(ds.skipped)

        save_model(
            tmp / "model",
            network=net,  # the network carries its own JSON architecture spec
            labels=labels,
            feature_config=None if cfg.backbone else cfg.features,  # a backbone model uses no frame features
            representation=None if cfg.backbone else cfg.representation,
            scaler=scaler,
            metrics=_headline(metrics),
            backbone=backbone,
            extra={"recipe": cfg.name, "protocol": protocol_text, "trained_on": final_note["text"],
                   **({"normalize": normalizer.to_dict()} if normalizer is not None else {})},
        )
        if cfg.study and cfg.study.subsets:
            metrics["study"] = _subset_study(cfg, manifest, splits[0], item_level, progress, console)
        if cfg.cross:
            metrics["cross"] = [evaluate_on_corpus(tmp / "model", cc, progress=progress) for cc in cfg.cross]

        metrics["total_seconds"] = round(time.perf_counter() - t0, 2)
        metrics["environment"] = environment()  # figures can move slightly on another CPU/BLAS
        atomic_write_text(tmp / "config.yaml", with_absolute_paths(cfg).to_yaml())
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
        atomic_write_text(
            tmp / "history.json", json.dumps(_histories(outcomes), indent=2)
        )
        atomic_write_text(tmp / "predictions.csv", _predictions_csv(ds, labels, outcomes))
        atomic_write_text(tmp / "skipped.json", json.dumps(
            [{"path": s.path, "reason": s.reason} for s in [*manifest.skipped, *ds.skipped]], indent=2))
        examples = _examples(ds, labels, outcomes, cfg.evaluate.examples)
        plots = rpt.write_plots(tmp, history=_histories(outcomes), metrics=metrics, examples=examples)
        rpt.write_report(tmp, config=cfg.to_dict(), metrics=metrics, plots=plots, title=cfg.name)
    console.print(
        f"[green]done[/] {out}: accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f} ({metrics['n_test_clips']} test clips)"
    )
    return metrics


def _leak_text(splits: list[Split], ds: Dataset, group_name: str) -> str:
    """What an item-level split really puts on more than one side: windows of a clip, clips of a group.

    Computed from the split, so a one-item-per-clip representation is said to split clips
    (its leak is speakers on both sides), and windows are named only when they straddle.
    """
    one_per_clip = len(ds.item_clip) == len(ds.clips)
    groups = np.array([str(c.group) for c in ds.clips], dtype=object)
    clips_across: set[int] = set()
    groups_across: set[str] = set()
    for sp in splits:
        sides = [ds.item_clip[getattr(sp, side)] for side in ("train", "val", "test")]
        for a, b in ((0, 1), (0, 2), (1, 2)):
            clips_across |= set(np.intersect1d(sides[a], sides[b]).tolist())
            groups_across |= set(groups[sides[a]]) & set(groups[sides[b]])
    n_groups = len(set(groups))
    what = "clips" if one_per_clip else "windows"
    found = []
    if clips_across:
        found.append(f"windows of {len(clips_across)} of {len(ds.clips)} clips on both sides")
    if groups_across:
        found.append(f"{len(groups_across)} of {n_groups} {group_name}s on both sides")
    if not found:
        return f"random split over {what}: no clip and no {group_name} on both sides"
    return f"LEAKS: random split over {what}: " + ", ".join(found) + "; reproduces the seed only"


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
        "representation": "backbone" if cfg.backbone else cfg.representation.kind,
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
    item_level: bool = False,
) -> tuple[torch.nn.Module, Standardizer | None, dict[str, Any]]:
    """The model saved in ``model/`` (see :class:`~sonotype.config.EvalConfig`) and what trained it.

    The record names the clips and groups that trained the saved model and those that only
    validated it, so ``metrics.json`` never claims more data than the model saw.
    """
    asked = cfg.evaluate.final_model
    how = asked
    if asked == "auto":
        how = "all" if len(outcomes) > 1 else "split"
    elif len(outcomes) == 1 and asked != "all":
        how = "split"
    group_name = GROUP_NAMES.get(cfg.corpus.name, "group")

    def record(how: str, train: np.ndarray, val: np.ndarray, epochs: list[int], text: str, **more: Any) -> dict[str, Any]:
        groups = np.array([c.group for c in ds.clips], dtype=object)
        train_groups = sorted({str(g) for g in groups[train]})
        val_groups = sorted({str(g) for g in groups[val]})
        return {
            "how": how, "requested": asked,
            "text": f"{text}: trained on {len(train)} of {len(ds.clips)} clips "
                    f"({_some(train_groups, group_name)})"
                    + (f", validated on {len(val)} clips ({_some(val_groups, group_name)})" if len(val) else
                       ", no validation part"),
            "n_clips": int(len(train)), "n_validation_clips": int(len(val)),
            "train_groups": train_groups, "validation_groups": val_groups,
            "epochs": epochs[0] if len(epochs) == 1 else epochs, **more,
        }

    if how in ("split", "best_fold"):
        k = int(np.argmax([_val_score(o) for o in outcomes])) if how == "best_fold" else 0
        o = outcomes[k]
        train, val = (np.unique(ds.item_clip[o.split.train]), np.unique(ds.item_clip[o.split.val])) if item_level \
            else (o.split.train, o.split.val)
        epochs = [r.best_epoch for r in o.member_results or [o.result]]
        if how == "split":
            what = f"the model of the single split ({o.split.name})"
        elif any(r.history and r.history[0].get("val_loss") is not None for r in o.member_results or [o.result]):
            what = f"the model of {o.split.name}, the fold with the best validation score"
        else:
            what = f"the model of {o.split.name}, the first fold (no fold had a validation part to choose by)"
        return o.network, o.scaler, record(how, train, val, epochs, what + f", weights of epoch {_epochs(epochs)}",
                                           split=o.split.name)

    everything = np.arange(len(ds.clips))
    # One validation part (refit) or none (all), shared by every ensemble member: no rotation.
    final_cfg = replace(cfg, model=replace(cfg.model, ensemble_validation="same"))
    if how == "refit":
        n_groups = len({c.group for c in ds.clips})
        holdout = ProtocolConfig(name="holdout", test_size=max(cfg.protocol.val_size, 0.1), val_size=0.0,
                                 seed=cfg.protocol.seed)
        split, why = None, f"only {n_groups} {group_name}s"
        if n_groups >= MIN_VAL_GROUPS:
            try:
                split = make_splits([c.label for c in ds.clips], [c.group for c in ds.clips], holdout)[0]
            except SonotypeError as exc:
                why = str(exc)
        if split is None:
            console.print(f"[yellow]refit[/]: no validation part can be carved by {group_name} ({why}); "
                          "fitting on every clip for a fixed number of epochs, as final_model 'all' does")
        else:
            console.print(f"[bold]refit[/] on {len(split.train)} of {len(ds.clips)} clips "
                          f"(validation by {group_name} for early stopping)")
            net, scaler, results = _train_one(final_cfg, ds, y_items, len(labels), split.train, split.test,
                                              aug_cache=aug_cache, progress=progress, console=console)
            epochs = [r.best_epoch for r in results]
            return net, scaler, record("refit", split.train, split.test, epochs,
                                       f"refit, early stopping on a validation part, weights of epoch {_epochs(epochs)}")

    # how == "all": every clip, no validation, each member's epochs fixed from the folds' best epochs.
    best = [[r.best_epoch for r in o.member_results or [o.result]] for o in outcomes]  # folds x members
    epochs = [max(1, int(np.floor(np.median(col) + 0.5))) for col in zip(*best)]
    rule = "median of the best epochs of " + ("the single split" if len(outcomes) == 1 else f"the {len(outcomes)} folds")
    console.print(f"[bold]final fit[/] on all {len(ds.clips)} clips, no validation, {_epochs(epochs)} epochs ({rule})")
    net, scaler, _ = _train_one(
        final_cfg, ds, y_items, len(labels), everything, np.empty(0, np.int64), aug_cache=aug_cache,
        progress=progress, console=console, train_configs=[replace(cfg.train, max_epochs=e) for e in epochs],
    )
    return net, scaler, record("all", everything, np.empty(0, np.int64), epochs,
                               f"final fit on every clip for {_epochs(epochs)} epochs ({rule})",
                               fold_best_epochs=[b[0] if len(b) == 1 else b for b in best])


def _epochs(epochs: list[int]) -> str:
    """``12``, or ``12/15/14`` for the members of an ensemble."""
    return "/".join(str(e) for e in epochs)


def _some(names: list[str], what: str, limit: int = 8) -> str:
    """``2 speakers: OAF, YAF``; only the count beyond ``limit`` names."""
    head = f"{len(names)} {what}{'s' if len(names) != 1 else ''}"
    return head if len(names) > limit else f"{head}: {', '.join(names)}"


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
    checks.check_labels(manifest.labels, what=f"corpus {cc.corpus!r} at {cc.root} after its label operations")
    kept, dropped_model, dropped_corpus = cross_corpus_labels(clf.labels, manifest.labels)
    clips = [c for c in manifest.clips if c.label in kept]
    if clf.backbone is not None and clf.backbone.waveform_samples is None:  # frozen-encoder model: embeddings
        from .backbones import build_embedding_dataset

        ds = build_embedding_dataset(clips, clf.backbone.cfg, backbone=clf.backbone.backbone, cache_dir=cache_dir,
                                     progress=progress)
    elif clf.backbone is not None:  # fine-tuned backbone: waveforms of the length it was trained on
        from .backbones import build_waveform_dataset

        ds = build_waveform_dataset(clips, clf.backbone.cfg, backbone=clf.backbone.backbone,
                                    seconds=clf.backbone.waveform_samples / clf.backbone.sample_rate)
    else:
        ds = build_dataset(clips, clf.feature_config, clf.representation, cache_dir=cache_dir, jobs=jobs,
                           progress=progress)
    X = ds.X
    if getattr(clf, "normalizer", None) is not None:  # the model's rule, with this corpus's own statistics
        from .normalize import normalize_items

        X = normalize_items(clf.normalizer, X, ds.item_clip, ds.clips)
    proba = restrict_proba(clf.forward_items(X), clf.labels, kept)
    clip_ids, clip_proba = vote(proba, ds.item_clip)
    y_true = [ds.clips[c].label for c in clip_ids]
    y_pred = [kept[i] for i in clip_proba.argmax(1)]
    m = clip_metrics(y_true, y_pred, kept)
    trained = _trained_on(clf, model_dir)
    chance = _chance(y_true, kept)
    m.update({
        "corpus": cc.corpus,
        "title": cc.title or f"on {cc.corpus}",
        "root": cc.root,
        "protocol": _cross_protocol(trained, cc.corpus, len(clip_ids), kept, dropped_model, dropped_corpus,
                                    len(manifest.clips) - len(clips), chance),
        "trained_on": trained,
        "chance": chance,
        "labels_kept": kept,
        "labels_dropped_model": dropped_model,
        "labels_dropped_corpus": dropped_corpus,
        "n_test_clips": len(clip_ids),
        "n_skipped": len(manifest.skipped) + len(ds.skipped),
        "normalized_by": getattr(getattr(clf, "normalizer", None), "by", None),  # that corpus's own statistics
    })
    return m


def _trained_on(clf: Any, model_dir: str | Path) -> dict[str, Any]:
    """Which run and corpus a saved model comes from (its model.json), for cross-corpus records."""
    headline = clf.metrics or {}
    extra = clf.meta.get("extra") or {}
    return {
        "model": str(Path(model_dir).resolve()),
        "model_id": clf.model_id,
        "recipe": extra.get("recipe") or headline.get("recipe"),
        "corpus": headline.get("corpus"),
        "protocol": extra.get("protocol") or headline.get("protocol"),
        "labels": list(clf.labels),
    }


def _chance(y_true: list[str], kept: list[str]) -> dict[str, Any]:
    """Chance level on the kept labels: balanced accuracy 1/k; accuracy of always saying the commonest label."""
    counts = {lab: y_true.count(lab) for lab in kept}
    majority = max(kept, key=lambda lab: counts[lab])
    return {
        "balanced_accuracy": 1.0 / len(kept),
        "accuracy": counts[majority] / max(len(y_true), 1),
        "majority_label": majority,
    }


def _cross_protocol(
    trained: dict[str, Any], corpus: str, n_clips: int, kept: list[str], dropped_model: list[str],
    dropped_corpus: list[str], n_left_out: int, chance: dict[str, Any],
) -> str:
    """The cross-corpus sentence for reports: what was trained where, what was scored, and chance."""
    origin = f"model {trained['model_id']} trained on {trained['corpus'] or 'an unrecorded corpus'}"
    if trained.get("recipe"):
        origin += f" (run {trained['recipe']!r})"
    dropped = []
    if dropped_model:
        dropped.append(f"model labels with no clip in {corpus} {dropped_model}")
    if dropped_corpus:
        dropped.append(f"{corpus} labels the model lacks {dropped_corpus} ({n_left_out} clips left out)")
    return (
        f"cross-corpus: {origin}, tested on all {n_clips} clips of {corpus} on the {len(kept)} shared labels {kept}"
        + (f"; dropped: {'; '.join(dropped)}" if dropped else "; nothing dropped")
        + f"; chance: balanced accuracy {chance['balanced_accuracy']:.3f}, accuracy {chance['accuracy']:.3f}"
        f" (always {chance['majority_label']!r})"
    )
