"""CLI: ``sonotype bench``: features, prediction, corpus scale, memory-mapped training, encoders, the service.

Benchmarks are commands, never tests: they time what the library does and print the figures.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import typer

from sonotype.audio import info
from sonotype.backbones.config import RUNTIMES
from sonotype.bench.features import run_benchmark
from sonotype.bench.serve import run_bench
from sonotype.cli._common import out
from sonotype.errors import ParameterError

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True, rich_markup_mode=None)


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


def bench_backbone(
    model: str = typer.Argument(..., help="Backbone folder (or a known name / hub id found locally)."),
    speech: Path | None = typer.Option(None, "--speech", "--audio",
                                       help="Folder of clips to time (default: generated speech-like)."),
    clips: int = typer.Option(24, "--clips", "-n", help="Number of clips (spread evenly over the folder)."),
    runtime: list[str] = typer.Option([], "--runtime", help="Runtimes to time (repeatable; default: all)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per forward pass."),
    repeats: int = typer.Option(1, "--repeats", help="Timed passes per runtime (the best is kept)."),
    threads: int = typer.Option(1, "--threads", help="Threads for torch and onnxruntime (1 = per-core speed)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time every backbone.runtime on the same clips: x real time per core, cosine distance to torch float32.

    A native encoder (musicnn-msd, efficientat-mn04) runs in torch float32 only: its ``embed`` (one clip at
    a time) and, where it has one, ``embed_batch`` are timed cold (the first pass of a fresh load) and warm.
    """

    from sonotype.bench.backbone import (
        bench_backbone as run,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bf16 fallback note: the table says it
        r = run(model, speech=speech, clips=clips, runtimes=tuple(runtime) or RUNTIMES, batch_size=batch_size,
                repeats=repeats, threads=threads)
    if as_json:
        typer.echo(json.dumps(r))
        return
    from rich.table import Table  # console output only

    if r.get("kind") == "native":
        t = Table(title=f"{r['model_type']} encoder (native, torch float32), {r['clips']} clips ({r['source']}), "
                        f"{r['audio_seconds']:.0f} s of audio, {r['threads']} thread(s), {r['cpu']}")
        for col in ("call", "x real time / core, warm", "x real time / core, cold", "CPU-s / audio-h, warm"):
            t.add_column(col, justify="left" if col == "call" else "right")
        for name, v in r["modes"].items():
            t.add_row(name, f"{v['x_realtime_warm']:.1f}", f"{v['x_realtime_cold']:.1f}",
                      f"{v['cpu_seconds_per_audio_hour_warm']:.0f}")
        out.print(t)
        out.print(f"load {r['load_cpu_seconds']:.2f} CPU-s, first clip {r['first_clip_cpu_seconds']:.3f} CPU-s; "
                  f"cold = the first pass over the clips right after loading; warm = the best of {r['repeats']} "
                  f"later pass(es). {r['note']}", highlight=False, soft_wrap=True)
        return
    t = Table(title=f"{r['model_type']} encoder, {r['clips']} clips ({r['source']}), {r['audio_seconds']:.0f} s of audio, "
                    f"{r['threads']} thread(s), {r['cpu']}")
    for col in ("runtime", "x real time / core", "CPU-s / audio-h", "vs torch", "max cosine distance", "set-up s"):
        t.add_column(col, justify="left" if col == "runtime" else "right")
    for name, v in r["runtimes"].items():
        label = name + ("" if v.get("native", True) else " (emulated)")
        t.add_row(label, f"{v['x_realtime_per_core']:.1f}", f"{v['cpu_seconds_per_audio_hour']:.0f}",
                  f"{v['speedup_vs_torch']:.2f}x", f"{v['max_cosine_distance']:.2g}", f"{v['setup_seconds']:.1f}")
    out.print(t)
    out.print(f"fastest: {r['fastest']}; distance = largest cosine distance to torch float32 over the clips, every "
              "hidden state and both poolings (mean, mean+std)", highlight=False, soft_wrap=True)


def bench_serve(
    model: Path | None = typer.Argument(None, help="Saved model directory to serve on loopback (or give --url)."),
    url: str | None = typer.Option(None, "--url", help="A running service to drive instead (http://127.0.0.1:8000)."),
    clients: int = typer.Option(16, "--clients", min=1, help="Concurrent clients."),
    seconds: float = typer.Option(60.0, "--seconds", min=1.0, help="How long the load runs."),
    slow_clients: int = typer.Option(0, "--slow-clients", min=0, help="Slowloris connections attached meanwhile."),
    port: int = typer.Option(8765, "--port", help="Port for the server started here."),
    token: str | None = typer.Option(None, "--token", envvar="SONOTYPE_TOKEN", help="Bearer token of the service."),
) -> None:
    """Load-test the service: N clients (classify a 30 s clip, classify-group, stream, oversize and
    malformed requests) for a bounded time; throughput, p50/p95/p99, codes, peak RSS as JSON."""


    if model is None and url is None:
        raise ParameterError("give MODEL (served here on loopback) or --url of a running service")
    r = run_bench(model, url=url, clients=clients, seconds=seconds, slow_clients=slow_clients, token=token,
                  port=port)
    out.print_json(json.dumps(r))


bench_app.command("backbone")(bench_backbone)
bench_app.command("serve")(bench_serve)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group to ``app``."""
    app.add_typer(bench_app, name="bench")
