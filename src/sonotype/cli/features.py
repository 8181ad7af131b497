"""CLI command: ``sonotype features`` (extract a corpus's frame features, cached, in parallel)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

from sonotype.cli._common import out
from sonotype.corpora.registry import load_corpus
from sonotype.errors import AudioError, ConfigError
from sonotype.features.cache import FeatureCache
from sonotype.features.config import FeatureConfig, RepresentationConfig, preset
from sonotype.features.extract import build_dataset
from sonotype.items.engine import EngineConfig, MapStats
from sonotype.utils.io import atomic_open, check_output_file, output_errors


def _load_settings(path: Path | None, preset_name: str | None) -> tuple[Any, Any]:
    """FeatureConfig and RepresentationConfig from a preset and/or a YAML file.

    The YAML holds ``features:`` (FeatureConfig fields) and ``representation:``
    (RepresentationConfig fields); a flat mapping is read as FeatureConfig fields.
    """


    fcfg, rcfg = preset(preset_name) if preset_name else (FeatureConfig(), RepresentationConfig())
    if path is None:
        return fcfg, rcfg
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read feature settings ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(doc).__name__}")
    if ("features" in doc and isinstance(doc["features"], dict)) or "representation" in doc:
        f_over, r_over = doc.get("features") or {}, doc.get("representation") or {}
    else:
        f_over, r_over = doc, {}
    try:
        fcfg = FeatureConfig.from_dict({**fcfg.to_dict(), **f_over})
        rcfg = RepresentationConfig.from_dict({**rcfg.to_dict(), **r_over})
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return fcfg, rcfg


def _save_npz(out_path: Path, ds: Any, fcfg: Any, rcfg: Any) -> None:
    """Write the dataset as a plain .npz (no pickled objects), atomically: temp file + rename."""


    with atomic_open(out_path) as f:  # streamed to disk: X is not copied into memory again
        np.savez(
            f,
            X=ds.X,
            item_clip=ds.item_clip,
            feature_names=np.asarray(ds.feature_names, dtype=str),
            clip_path=np.asarray([c.path for c in ds.clips], dtype=str),
            clip_label=np.asarray([c.label for c in ds.clips], dtype=str),
            clip_group=np.asarray([c.group for c in ds.clips], dtype=str),
            skipped_path=np.asarray([s.path for s in ds.skipped], dtype=str),
            skipped_reason=np.asarray([s.reason for s in ds.skipped], dtype=str),
            config=np.asarray(json.dumps({"features": fcfg.to_dict(), "representation": rcfg.to_dict()})),
        )


def features(
    name: str = typer.Argument(..., help="Corpus loader name (see `sonotype corpus list`)."),
    root: Path = typer.Argument(..., help="Corpus root folder."),
    settings: Path | None = typer.Option(None, "--set", help="YAML with `features:` and `representation:` settings."),
    preset_name: str | None = typer.Option(None, "--preset", help="Named settings: gtzan37, gtzan37-frames, mfcc13-windows, tess40, logmel128."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Worker processes (default 1; with --engine ray the local cluster's CPUs, default all cores)."),
    cache: str | None = typer.Option(None, "--cache", help="Cache folder (default $SONOTYPE_CACHE or ~/.cache/sonotype); with --engine ray also an fsspec URL (s3://...)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compute everything, store nothing."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the dataset (X, item_clip, names, clips) to this .npz."),
    engine: str = typer.Option("local", "--engine", help="local (--jobs processes) | ray (tasks over manifest shards)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local cluster of --jobs CPUs)."),
) -> None:
    """Extract frame features for a whole corpus (cached, parallel) and print a summary."""
    from rich.markup import escape  # console output only


    fcfg, rcfg = _load_settings(settings, preset_name)
    if out_file is not None:
        check_output_file(out_file)  # a folder, a read-only or full disk: one line now, not after the extraction
    ecfg = EngineConfig.from_any({"name": engine, "address": address}, jobs=jobs)
    jobs = jobs or 1
    if cache is not None and "://" in cache and ecfg.name != "ray":
        raise ConfigError(f"--cache {cache}: a URL cache holds shards of the ray engine; add --engine ray, or give a folder")
    manifest = load_corpus(name, root)
    store = None if no_cache or (cache and "://" in cache) else FeatureCache(cache)
    t0 = time.perf_counter()
    if ecfg.name == "ray":
        from sonotype.items import tasks  # heavy (torch): lazy for a fast --help

        stats = MapStats()
        ds = tasks.build_dataset(manifest.clips, fcfg, rcfg, engine=ecfg, progress=True, stats=stats,
                               cache=None if no_cache else (cache if store is None else str(store.root)))
        store = None
    else:
        ds = build_dataset(manifest.clips, fcfg, rcfg, cache_dir=store, jobs=jobs, progress=True)
    secs = time.perf_counter() - t0
    n = len(manifest.clips)
    if not ds.clips:  # nothing extracted is a failure, not a (0, 0) success

        first = ds.skipped[0] if ds.skipped else None
        raise AudioError(None, f"none of the {n} clip(s) of {name} at {root} could be featurised"
                         + (f"; first: {first.path}: {first.reason}" if first else ""))
    rate = n / secs if secs > 0 else float("inf")
    out.print(
        f"[bold]{n}[/] files in {secs:.1f} s ({rate:.1f} files/s): {len(ds.clips)} extracted, "
        f"[{'red' if ds.skipped else 'green'}]{len(ds.skipped)} skipped[/]; "
        f"{len(ds)} items x {len(ds.feature_names)} features, X shape {tuple(ds.X.shape)}",
        highlight=False,
        soft_wrap=True,
    )
    if store is not None:
        out.print(f"cache {store.root}: {store.hits} hits, {store.misses} computed"
                  + ("" if store.writable else " (not writable: nothing stored)"), highlight=False, soft_wrap=True)
    if ecfg.name == "ray":
        out.print(f"ray: {stats.shards} shards of {ecfg.shard_size}: {stats.cached} from the cache, {stats.computed} computed "
                  f"({stats.cpu_seconds:.1f} CPU-s in {len(stats.peak_rss_mb)} workers; start-up {stats.startup_seconds:.1f} s)",
                  highlight=False, soft_wrap=True)
    for s in manifest.skipped:
        out.print(f"  [yellow]not a corpus file[/] {escape(f'{s.path}: {s.reason}')}", highlight=False, soft_wrap=True)
    for s in ds.skipped:
        out.print(f"  [red]skipped[/] {escape(f'{s.path}: {s.reason}')}", highlight=False, soft_wrap=True)
    if out_file is not None:
        with output_errors(out_file):  # a disk that filled up meanwhile: one line, the temporary file removed
            _save_npz(out_file, ds, fcfg, rcfg)
        out.print(f"wrote {out_file}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``features`` to `app`."""
    app.command("features")(features)
