"""The run pipeline: corpus -> clips -> features -> dataset -> splits -> fits -> predictions -> report.

:func:`run_experiment` executes one :class:`~sonotype.pipeline.config.RunConfig` and writes a run
directory: ``model/`` (safe model files), ``config.yaml`` (reproduces the run),
``metrics.json``, ``history.json``, ``predictions.csv``, plots and ``report.html``.
Splits are made over clips (by group) and mapped to their items (frames/windows), so the
windows of one clip never straddle a split - except under the seeds' ``random`` protocol,
which splits items on purpose to show the leak.

Each piece is a public function a Python user can call alone: :func:`~sonotype.corpora.ops.load_manifest`,
:func:`~sonotype.pipeline.fitting.build_run_dataset`, :func:`~sonotype.splits.split.make_splits`,
:func:`~sonotype.pipeline.fitting.train_split` (the fit :class:`~sonotype.AudioClassifier` uses),
:func:`~sonotype.pipeline.folds.summarise`, :func:`~sonotype.pipeline.final.final_model` and
:func:`~sonotype.pipeline.evaluate.evaluate_on_corpus`.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from sonotype.backbones.load import summary
from sonotype.corpora.base import Manifest
from sonotype.corpora.licensing import run_licences
from sonotype.corpora.registry import group_name
from sonotype.evaluation.metrics import evaluate_items, rank_subsets
from sonotype.features.extract import Dataset, build_dataset
from sonotype.features.scaling import Standardizer
from sonotype.inference.modelio import save_model
from sonotype.items.build import item_kind as items_of
from sonotype.items.normalize import NormalizeConfig, describe, normalize_dataset
from sonotype.models.apply import predict_proba
from sonotype.pipeline import checks
from sonotype.pipeline.baseline import run_baseline
from sonotype.pipeline.config import RunConfig, with_absolute_paths
from sonotype.pipeline.defaults import check_backbone_run, resolve_backbone
from sonotype.pipeline.evaluate import evaluate_on_corpus
from sonotype.pipeline.final import final_model
from sonotype.pipeline.fitting import (
    backbone_record,
    build_run_dataset,
    clip_items,
    label_index,
    scale,
    split_items,
    train_split,
)
from sonotype.pipeline.folds import (
    FoldOutcome,
    examples,
    histories,
    pooled,
    predictions_csv,
    run_folds,
    summarise,
)
from sonotype.pipeline.mixed import mix_metrics, resolve, run_manifest
from sonotype.reporting import report as rpt
from sonotype.reporting.card import write_run_card
from sonotype.splits.split import (
    ProtocolConfig,
    Split,
    check_no_leak,
    describe_protocol,
    make_splits,
    resolve_auto,
)
from sonotype.utils.console import make_console
from sonotype.utils.environment import environment
from sonotype.utils.io import atomic_dir, atomic_write_text
from sonotype.utils.threads import torch_threads

__all__ = ["run_experiment"]


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

    Parameters
    ----------
    cfg : RunConfig
        The whole run (validated on construction).
    out : str or Path
        The run directory, written atomically (nothing is left half-written on an error).
    force : bool
        Replace an existing run directory.
    progress : bool
        Progress bars and per-epoch lines.
    console : rich.console.Console, optional
        Where messages go (default: stderr).
    config_source : str, optional
        Where the configuration came from, for ``metrics.json``, e.g. ``"recipe ravdess-best"``
        or ``"default for speech"``; default ``"config <name>"``.

    Returns
    -------
    dict
        What ``metrics.json`` holds. The global torch random state and torch's thread count
        are as they were: seeds go to generators of their own, ``train.num_threads`` is restored.
    """

    console = console or make_console()
    out = Path(out)
    cfg = resolve(_resolved(cfg))  # mix.balance: class_weights -> train.class_weights
    t0 = time.perf_counter()
    with torch_threads(cfg.train.num_threads), atomic_dir(out, force=force) as tmp:
        manifest, mix_info = run_manifest(cfg, console)  # one corpus, or the union of several
        checks.check_run(cfg, manifest)  # every config mistake found now, not after extraction
        console.print(f"[bold]{cfg.name}[/]: {len(manifest.clips)} clips, {len(manifest.labels)} labels from {cfg.corpus.name}")
        t_extract = time.perf_counter()
        ds = build_run_dataset(cfg, manifest.clips, progress=progress)
        extract_seconds = time.perf_counter() - t_extract
        raw = ds  # the items before the per-speaker step: the figure without it trains on these
        ds, normalizer = normalize_dataset(ds, cfg.normalize, item_kind(cfg))  # per speaker / corpus
        if ds.skipped:
            console.print(f"[yellow]{len(ds.skipped)} clip(s) skipped during feature extraction[/]")
        labels, y_items = label_index(ds)
        splits, proto, item_level = _splits(cfg, ds, np.asarray(labels, dtype=object)[y_items])
        protocol_text = _protocol_text(cfg, ds, splits, proto, item_level)
        if normalizer is not None:  # the test speakers' own unlabelled clips are used: part of the protocol

            protocol_text += f"; {describe(normalizer.by, normalizer.n_own_, normalizer.n_fallback_, normalizer.min_clips)}"
        console.print(f"protocol: {protocol_text} ({len(splits)} split(s))")

        aug_cache: dict[tuple[int, int], list[np.ndarray]] = {}
        t_train = time.perf_counter()
        outcomes = run_folds(cfg, ds, labels, y_items, splits, item_level, aug_cache=aug_cache, progress=progress,
                             console=console)
        train_seconds = time.perf_counter() - t_train

        metrics = summarise(cfg, ds, labels, y_items, outcomes, proto, protocol_text, item_level)
        metrics["config_source"] = config_source or f"config {cfg.name}"
        if cfg.evaluate.baseline:  # the textbook baseline on the same folds and test clips, with the same step
            metrics["baseline"] = _baseline(cfg, ds, labels, outcomes, item_level, progress, console)
        if mix_info is not None or normalizer is not None:  # corpora, per-corpus figures, corpus x corpus table
            metrics.update(mix_metrics(
                cfg, ds, labels, outcomes, mix_info, normalizer, console=console,
                train=lambda tr, va: train_split(cfg, ds, y_items, len(labels), clip_items(ds, tr), clip_items(ds, va),
                                                 aug_cache=aug_cache, progress=False, console=console)[:2],
                proba=lambda net, scaler, X: predict_proba(net, scale(scaler, X)),
            ))
        if normalizer is not None:  # the same folds without the step: it uses the test speakers' own clips
            metrics["normalize"].update(_without_normalize(cfg, raw, labels, y_items, splits, item_level, aug_cache,
                                                           console))
            if isinstance(metrics.get("baseline"), dict) and "skipped" not in metrics["baseline"]:
                metrics["baseline"]["normalize"] = copy.deepcopy(metrics["normalize"])  # the baseline had this step too
        net, scaler, final_note = final_model(cfg, ds, y_items, labels, outcomes, aug_cache, progress, console,
                                              item_level)
        metrics.update(final_model=final_note, train_seconds=round(train_seconds, 2),
                       extract_seconds=round(extract_seconds, 2))
        _save(tmp / "model", cfg, net, scaler, labels, metrics, protocol_text, manifest, ds, normalizer)
        if cfg.study and cfg.study.subsets:
            metrics["study"] = _subset_study(cfg, manifest, splits[0], item_level, progress, console)
        if cfg.cross:
            metrics["cross"] = [evaluate_on_corpus(tmp / "model", cc, progress=progress) for cc in cfg.cross]
        metrics["total_seconds"] = round(time.perf_counter() - t0, 2)
        metrics["environment"] = environment()  # figures can move slightly on another CPU/BLAS
        _write_run(tmp, cfg, manifest, ds, labels, outcomes, metrics)
    step = rpt.normalize_sentence(metrics)  # the figure beside the step it includes, and the figure without it
    console.print(
        f"[green]done[/] {out}: accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f} ({metrics['n_test_clips']} test clips)" + (f"; {step}" if step else "")
    )
    return metrics


def _without_normalize(
    cfg: RunConfig, raw: Dataset, labels: list[str], y_items: np.ndarray, splits: list[Split], item_level: bool,
    aug_cache: dict[tuple[int, int], list[np.ndarray]], console: Console,
) -> dict[str, Any]:
    """The run's folds again on the items before the per-speaker (or per-corpus) step.

    Same splits, same model and training settings, ``normalize: none``: only the training
    repeats (the items, and the augmented copies in ``aug_cache``, are those of the run). The
    figures are those a run with ``normalize.by=none`` gives on the same folds.

    Returns
    -------
    dict
        ``{"without": {balanced_accuracy, accuracy, macro_f1}, "without_seconds": s}``.
    """
    off = replace(cfg, normalize=NormalizeConfig())
    t0 = time.perf_counter()
    console.print(f"without the per-{cfg.normalize.by} standardisation (same {len(splits)} split(s)): training again")
    quiet = Console(quiet=True)  # the folds' lines were printed once, for the run itself
    outcomes = run_folds(off, raw, labels, y_items, splits, item_level, aug_cache=aug_cache, progress=False,
                         console=quiet)
    return {"without": pooled(raw, labels, y_items, outcomes), "without_seconds": round(time.perf_counter() - t0, 2)}


def item_kind(cfg: RunConfig) -> str:
    """What the items are, for per-speaker normalisation: embeddings, waveforms or a representation."""
    return items_of(cfg.backbone, cfg.representation)


def _baseline(cfg: RunConfig, ds: Dataset, labels: list[str], outcomes: list[FoldOutcome], item_level: bool,
              progress: bool, console: Console) -> dict[str, Any]:
    return run_baseline(cfg, ds, labels, outcomes, item_level, progress=progress, console=console)


def _resolved(cfg: RunConfig) -> RunConfig:
    """``cfg`` with a backbone name from a recipe turned into a folder or hub id, checked before any work."""

    if cfg.backbone is not None:
        cfg = replace(cfg, backbone=replace(cfg.backbone, model=resolve_backbone(cfg.backbone.model)))
    check_backbone_run(cfg)
    return cfg


def _protocol_text(cfg: RunConfig, ds: Dataset, splits: list[Split], proto: ProtocolConfig, item_level: bool) -> str:
    """The protocol sentence of reports, with what an item-level split really leaks."""
    group = group_name(cfg.corpus.name)
    text = describe_protocol(proto, group_name=group, n_groups=len({c.group for c in ds.clips}))
    return text + (" - " + _leak_text(splits, ds, group) if item_level else "")


def _save(
    where: Path, cfg: RunConfig, net: torch.nn.Module, scaler: Standardizer | None, labels: list[str],
    metrics: dict[str, Any], protocol_text: str, manifest: Manifest, ds: Dataset, normalizer: Any = None,
) -> None:
    """Write the final model folder; ``metrics`` gains the backbone summary and the skipped count."""
    backbone = backbone_record(cfg)
    if backbone is not None:
        metrics["backbone"] = summary(backbone)
    metrics["n_skipped"] = len(manifest.skipped) + len(ds.skipped)
    save_model(
        where,
        network=net,  # the network carries its own JSON architecture spec
        labels=labels,
        feature_config=None if cfg.backbone else cfg.features,  # a backbone model uses no frame features
        representation=None if cfg.backbone else cfg.representation,
        scaler=scaler,
        metrics=_headline(metrics),
        backbone=backbone,
        licences=run_licences(cfg),  # the corpora's and the encoder's licences, combined
        extra={"recipe": cfg.name, "protocol": protocol_text, "trained_on": metrics["final_model"]["text"],
               **({"normalize": normalizer.to_dict()} if normalizer is not None else {})},
    )


def _write_run(
    tmp: Path, cfg: RunConfig, manifest: Manifest, ds: Dataset, labels: list[str], outcomes: list[FoldOutcome],
    metrics: dict[str, Any],
) -> None:
    """config.yaml, metrics.json, history.json, predictions.csv, skipped.json, plots and report.html."""

    atomic_write_text(tmp / "config.yaml", with_absolute_paths(cfg).to_yaml())
    atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
    write_run_card(tmp, name=cfg.name)  # the model card, from model.json and metrics.json
    atomic_write_text(tmp / "history.json", json.dumps(histories(outcomes), indent=2))
    atomic_write_text(tmp / "predictions.csv", predictions_csv(ds, labels, outcomes))
    atomic_write_text(tmp / "skipped.json", json.dumps(
        [{"path": s.path, "reason": s.reason} for s in [*manifest.skipped, *ds.skipped]], indent=2))
    chosen = examples(ds, labels, outcomes, cfg.evaluate.examples)
    plots = rpt.write_plots(tmp, history=histories(outcomes), metrics=metrics, examples=chosen)
    rpt.write_report(tmp, config=cfg.to_dict(), metrics=metrics, plots=plots, title=cfg.name)


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


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("recipe", "corpus", "protocol", "accuracy", "balanced_accuracy", "macro_f1", "n_test_clips", "mean", "std")
    return {k: m[k] for k in keys if k in m}


def _subset_study(
    cfg: RunConfig, manifest: Manifest, split: Split, item_level: bool, progress: bool, console: Console
) -> list[dict[str, Any]]:
    """Seed A's feature-subset study: a small model per subset on the first split, ranked."""
    results = []
    for spec in cfg.study.subsets:
        sub = replace(cfg, representation=replace(cfg.representation, select=spec), model=cfg.study.model, augment=replace(cfg.augment, copies=0))
        ds = build_dataset(manifest.clips, sub.features, sub.representation, cache_dir=cfg.cache_dir, jobs=cfg.jobs)
        labels, y_items = label_index(ds)
        tr, va, test_items = split_items(ds, split, item_level)
        net, scaler, _ = train_split(sub, ds, y_items, len(labels), tr, va, console=console)
        proba = predict_proba(net, scale(scaler, ds.X[test_items]))
        m = evaluate_items(proba, y_items[test_items], ds.item_clip[test_items], labels)["clip_level"]
        n_features = int(ds.X.shape[-1])
        console.print(f"  subset {spec!r}: {n_features} features, balanced accuracy {m['balanced_accuracy']:.3f}")
        results.append({"subset": spec, "n_features": n_features, "accuracy": m["accuracy"],
                        "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"]})
    return rank_subsets(results)
