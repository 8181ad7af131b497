"""CLI commands: ``sonotype features`` (extract a corpus) and ``sonotype bench features``."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

from sonotype.audio import info
from sonotype.bench.features import run_benchmark
from sonotype.cli._common import out
from sonotype.corpora.registry import load_corpus
from sonotype.errors import AudioError, ConfigError
from sonotype.features.cache import FeatureCache
from sonotype.features.config import FeatureConfig, RepresentationConfig, preset
from sonotype.features.extract import build_dataset
from sonotype.items.engine import EngineConfig, MapStats
from sonotype.utils.io import atomic_open, check_output_file, output_errors

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True, rich_markup_mode=None)


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


@bench_app.command("features")
def bench_features(
    root: Path | None = typer.Argument(None, help="Folder of audio files (default: generated signals)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    files: int = typer.Option(8, "--files", "-n", help="Number of files to time."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Workers for the all-cores run (default: all cores)."),
    repeats: int = typer.Option(3, "--repeats", help="Timed passes for sonotype (best is kept)."),
    seconds: float = typer.Option(30.0, "--seconds", help="Length of each generated music signal (no ROOT)."),
    speech: Path | None = typer.Option(None, "--speech", help="Folder of speech clips for the log-mel part (default: generated, or ROOT)."),
) -> None:
    """Time the seeds' per-feature librosa pipeline against sonotype (1 core, all cores) and log-mel."""

    r = run_benchmark(root, files=files, jobs=jobs, repeats=repeats, music_seconds=seconds, speech_seconds=min(3.0, seconds),
                      speech_root=speech)
    if as_json:
        typer.echo(json.dumps(r))
        return
    from rich.table import Table  # console output only

    t = Table(title=f"37-value GTZAN set: {r['files']} files ({r['source']}), {r['audio_seconds']:.0f} s of audio")
    for col in ("pipeline", "s / file", "s / audio-hour", "x real time", "speed-up"):
        t.add_column(col, justify="right" if col != "pipeline" else "left")
    t.add_row("seeds (librosa per feature)", f"{r['seed_seconds_per_file']:.3f}", f"{r['seed_seconds_per_audio_hour']:.1f}", f"{r['seed_x_realtime']:.0f}", "1.0")
    t.add_row("sonotype, 1 core", f"{r['one_core_seconds_per_file']:.4f}", f"{r['one_core_seconds_per_audio_hour']:.1f}", f"{r['one_core_x_realtime']:.0f}", f"{r['ratio_one_core']:.1f}")
    t.add_row(
        f"sonotype, {r['jobs']} workers", f"{r['all_cores_seconds_per_file']:.4f}", f"{r['all_cores_seconds_per_audio_hour']:.1f}",
        f"{r['all_cores_x_realtime']:.0f}", f"{r['ratio_one_core'] * r['ratio_all_cores']:.1f} ({r['ratio_all_cores']:.2f} x 1 core)",
    )
    out.print(t)
    out.print(
        f"log-mel 128 @ 16 kHz, {r['logmel_files']} clips: librosa {r['logmel_librosa_seconds_per_file'] * 1000:.2f} ms/file, "
        f"sonotype {r['logmel_sonotype_seconds_per_file'] * 1000:.2f} ms/file -> {r['logmel_ratio']:.1f}x",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"max relative error of the 37 means vs the seeds' pipeline: {r['max_relative_error']:.2e}", highlight=False, soft_wrap=True)
    out.print(f"worker start-up {r['pool_startup_seconds']:.2f} s (not in the all-cores time); {r['cpu_count']} CPUs", highlight=False, soft_wrap=True)


@bench_app.command("predict")
def bench_predict(
    model: Path = typer.Argument(..., help="Saved model directory."),
    audio: Path = typer.Argument(..., help="Audio file to classify (e.g. a 30 s clip)."),
    repeats: int = typer.Option(10, "--repeats", help="Timed predictions (the median is reported)."),
    threads: int = typer.Option(1, "--threads", help="torch threads (the budget is for one core)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time loading a model and predicting one file (the README's prediction budget)."""

    import torch  # heavy: torch loads in ~1 s; only this path needs it

    from sonotype.inference.predict import (
        load_model,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    torch.set_num_threads(threads)
    load_model(model)  # warm imports and file cache: the budget excludes Python imports
    t0 = time.perf_counter()
    clf = load_model(model)
    load_s = time.perf_counter() - t0
    clf.predict(audio)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        clf.predict(audio)
        times.append(time.perf_counter() - t0)
    r = {
        "model": clf.model_id, "audio": str(audio), "audio_seconds": info(audio).duration, "threads": threads,
        "load_seconds": load_s, "predict_seconds_median": statistics.median(times), "predict_seconds_max": max(times),
    }
    if as_json:
        typer.echo(json.dumps(r))
        return
    out.print(
        f"{r['model']}: load {load_s * 1000:.0f} ms; predict {r['audio_seconds']:.1f} s of audio: median "
        f"{r['predict_seconds_median'] * 1000:.0f} ms, max {r['predict_seconds_max'] * 1000:.0f} ms ({threads} thread(s))",
        highlight=False, soft_wrap=True,
    )


@bench_app.command("scale")
def bench_scale(
    root: Path | None = typer.Argument(None, help="Folder of real clips to repeat (default: generated short clips)."),
    n: int = typer.Option(2000, "--n", help="Clips in the manifest."),
    engine: list[str] = typer.Option([], "--engine", help="local and/or ray (repeatable; default both)."),
    workers: list[int] = typer.Option([], "--workers", "-w", help="Worker counts to run (repeatable; default: all cores)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local cluster)."),
    seconds: float = typer.Option(0.25, "--seconds", help="Length of each generated clip."),
    shard_size: int = typer.Option(64, "--shard-size", help="Clips per Ray task."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Clips/s, CPU-s per audio hour and peak RSS of the local and Ray engines on N clips; Dusha (350 h) projected."""
    from sonotype.bench.scale import (  # heavy (torch): lazy for a fast --help
        DUSHA_HOURS,
        run_scale,
    )  # heavy (torch): lazy for a fast --help

    r = run_scale(n, engines=tuple(engine) or ("local", "ray"), workers=tuple(workers) or None, root=root,
                  clip_seconds=seconds, address=address, shard_size=shard_size)
    if as_json:
        typer.echo(json.dumps(r))
        return
    from rich.table import Table  # console output only

    t = Table(title=f"{r['clips']} clips ({r['source']}, {r['distinct_files']} distinct), {r['audio_hours']:.2f} audio-hours")
    ks = list(r["runs"][0]["dusha_hours_on_k_workers"]) if r["runs"] else []
    for col in ("engine", "workers", "wall s", "clips/s", "x RT", "CPU-s/audio-h", "RSS/worker MB"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for run in r["runs"]:
        t.add_row(run["engine"], str(run["workers"]), f"{run['wall_seconds']:.1f}", f"{run['clips_per_second']:.0f}",
                  f"{run['x_realtime']:.0f}", f"{run['cpu_seconds_per_audio_hour']:.1f}", f"{run['peak_rss_mb_per_worker']:.0f}")
    out.print(t)
    for run in r["runs"]:
        proj = run["dusha_hours_on_k_workers"]
        start = f"; start-up {run['startup_seconds']:.1f} s in the wall time" if run.get("startup_seconds") else ""
        out.print(f"{run['engine']}, {run['workers']} worker(s){start}: Dusha ({DUSHA_HOURS:.0f} h) in hours, CPU-bound / as "
                  "measured here: " + ", ".join(f"K={k} {proj[k]['cpu_bound']:.2f}/{proj[k]['as_measured']:.2f}" for k in ks),
                  highlight=False, soft_wrap=True)
    out.print(f"driver peak RSS {r['driver_peak_rss_mb']:.0f} MB; {r['cpu_count']} CPUs, load average "
              f"{', '.join(f'{x:.1f}' for x in r['load_average'])}", highlight=False, soft_wrap=True)


@bench_app.command("memmap")
def bench_memmap(
    gb: float = typer.Option(2.0, "--gb", help="Size of the synthetic set of items."),
    dim: int = typer.Option(1024, "--dim", help="Values per item."),
    epochs: int = typer.Option(1, "--epochs", help="Training epochs over the set."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train on a set of items in memory-mapped shards larger than the RSS it uses: peak RSS vs set size."""
    from sonotype.bench.scale import (
        run_memmap_bench,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    r = run_memmap_bench(gb, dim=dim, epochs=epochs)
    if as_json:
        typer.echo(json.dumps(r))
        return
    rss = r["rss_mb"]
    out.print(
        f"{r['set_gb']:.2f} GB of items ({r['rows']} x {r['dim']} float32, {r['shards']} shards): written in "
        f"{r['write_seconds']:.1f} s, scaler {r['scaler_seconds']:.1f} s, {r['epochs']} epoch(s) in {r['train_seconds']:.1f} s "
        f"({r['rows_per_second']:.0f} rows/s), val accuracy {r['val_accuracy']:.3f}",
        highlight=False, soft_wrap=True)
    out.print(
        f"peak RSS {rss['baseline'].get('VmHWM', 0):.0f} MB before, {rss['end'].get('VmHWM', 0):.0f} MB after "
        f"(+{r['peak_rss_growth_mb']:.0f} MB for a {r['set_gb'] * 1024:.0f} MB set); at the end RssAnon "
        f"{rss['end'].get('RssAnon', 0):.0f} MB, RssFile {rss['end'].get('RssFile', 0):.0f} MB; load average "
        f"{', '.join(f'{x:.1f}' for x in r['load_average'])}",
        highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``features`` and the ``bench`` group to `app`."""
    app.command("features")(features)
    app.add_typer(bench_app, name="bench")
