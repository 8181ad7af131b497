"""``sonotype bench scale``: corpus-scale extraction on the local and Ray engines, measured.

A manifest of N clips is built from real files repeated (``root``) or from generated
signals (a few hundred distinct files, repeated): what is timed is the engine, not the
disk. Nothing is cached, so every clip is computed. Per engine and worker count it
reports clips/s, audio seconds per wall second, CPU seconds per audio hour (the workers'
CPU, so a loaded machine does not flatter or hide it), peak RSS of the largest worker and
of the driver, and a projection for Dusha (350 h) on K workers. Results stream through
the engines' bounded windows and are dropped after counting, so memory is flat in N:
run it at N = 2,000 and 20,000 (in separate processes: peak RSS is per process).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.corpora.base import Clip
from sonotype.errors import ParameterError

__all__ = ["DUSHA_HOURS", "run_scale"]

DUSHA_HOURS = 350.0
_DISTINCT = 200  # generated files; the manifest repeats them


def _generated(folder: Path, n: int, seconds: float, sr: int) -> list[Clip]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    out = []
    for i in range(min(n, _DISTINCT)):
        f0 = 110.0 * 2 ** (i % 36 / 12)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
        p = folder / f"gen_{i:04d}.wav"
        sf.write(p, y.astype(np.float32), sr, subtype="PCM_16")
        out.append(Clip(path=str(p), label=f"c{i % 4}", group=f"g{i % 10}"))
    return out


def _real(root: Path) -> list[Clip]:
    from sonotype.corpora import load_corpus

    clips = load_corpus("folder", root).clips
    if not clips:
        raise ParameterError(f"bench scale: no audio clips under {root}")
    return list(clips)


def _repeat(base: list[Clip], n: int) -> list[Clip]:
    return [base[i % len(base)] for i in range(n)]


def _audio_seconds(clips: list[Clip], base: list[Clip]) -> float:
    from sonotype.audio import info

    dur = {c.path: info(c.path).duration for c in base}
    return float(sum(dur[c.path] for c in clips))


def _rss_mb(ru: Any) -> float:
    return ru.ru_maxrss / 1024.0


def _local(clips: list[Clip], fcfg: Any, rcfg: Any, workers: int) -> dict[str, Any]:
    """The existing process pool (``--jobs``): results streamed and dropped."""
    from sonotype.features import extract_corpus, represent

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = time.process_time()
    t0 = time.perf_counter()
    items = 0
    for _, out in extract_corpus(clips, fcfg, cache_dir=None, jobs=workers):
        if not hasattr(out, "reason"):
            items += represent(out, rcfg).shape[0]
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    cpu = child_cpu + (time.process_time() - c0) if workers > 1 else time.process_time() - c0
    worker_rss = _rss_mb(after) if workers > 1 else _rss_mb(resource.getrusage(resource.RUSAGE_SELF))
    return {"wall_seconds": wall, "cpu_seconds": cpu, "items": items, "peak_rss_mb_per_worker": worker_rss,
            "startup_seconds": None}


def _ray(clips: list[Clip], fcfg: Any, rcfg: Any, workers: int, address: str | None, shard_size: int) -> dict[str, Any]:
    from sonotype.items.engine import EngineConfig, MapStats, _shard_of, map_shards
    from sonotype.items.tasks import _features_task

    ecfg = EngineConfig(name="ray", address=address, workers=workers, shard_size=shard_size)
    st = MapStats()
    c0 = time.process_time()
    t0 = time.perf_counter()
    items = 0
    shards = [[c.to_dict() for c in s] for s in _shard_of(clips, shard_size)]
    ctx = {"features": fcfg.to_dict(), "representation": rcfg.to_dict(), "cache_dir": None}
    for _, r in map_shards(_features_task, shards, context=ctx, engine=ecfg, stats=st):
        items += int(r["X"].shape[0])
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "cpu_seconds": st.cpu_seconds, "driver_cpu_seconds": time.process_time() - c0,
            "items": items, "peak_rss_mb_per_worker": max(st.peak_rss_mb.values(), default=0.0),
            "workers_seen": len(st.peak_rss_mb), "startup_seconds": st.startup_seconds}


def run_scale(
    n: int = 2000,
    *,
    engines: tuple[str, ...] = ("local", "ray"),
    workers: tuple[int, ...] | None = None,
    root: str | os.PathLike | None = None,
    clip_seconds: float = 0.25,
    address: str | None = None,
    shard_size: int = 64,
    cluster_sizes: tuple[int, ...] = (1, 8, 32, 128),
) -> dict[str, Any]:
    """Time ``n`` clips on each engine and worker count; see the module notes for what is reported."""
    from sonotype.features import FeatureConfig, RepresentationConfig

    if n < 1:
        raise ParameterError(f"bench scale: --n must be >= 1, got {n}")
    for e in engines:
        if e not in ("local", "ray"):
            raise ParameterError(f"bench scale: engine must be local or ray, got {e!r}")
    workers = workers or (os.cpu_count() or 1,)
    fcfg, rcfg = FeatureConfig(), RepresentationConfig()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sonotype-scale-") as tmp:
        base = _real(Path(root)) if root is not None else _generated(Path(tmp), n, clip_seconds, fcfg.sr)
        clips = _repeat(base, n)
        audio_s = _audio_seconds(clips, base)
        for engine in engines:
            for w in workers:
                r = _local(clips, fcfg, rcfg, w) if engine == "local" else _ray(clips, fcfg, rcfg, w, address, shard_size)
                wall, cpu = r["wall_seconds"], r["cpu_seconds"]
                per_worker_rate = audio_s / wall / w  # audio-s per wall-s per worker, as measured (load included)
                r.update(
                    engine=engine, workers=w, clips=n,
                    clips_per_second=n / wall, x_realtime=audio_s / wall,
                    cpu_seconds_per_audio_hour=cpu / (audio_s / 3600.0),
                    dusha_hours_on_k_workers={
                        str(k): {"cpu_bound": DUSHA_HOURS * (cpu / audio_s) / k,
                                 "as_measured": DUSHA_HOURS / (per_worker_rate * k)}
                        for k in cluster_sizes
                    },
                )
                runs.append(r)
    return {
        "clips": n, "distinct_files": len(base), "audio_hours": audio_s / 3600.0,
        "source": str(root) if root is not None else f"generated {clip_seconds:g} s clips at {fcfg.sr} Hz",
        "features": "default FeatureConfig + stats representation (no cache)",
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
        "driver_peak_rss_mb": _rss_mb(resource.getrusage(resource.RUSAGE_SELF)),
        "runs": runs,
    }


def _proc_status() -> dict[str, float]:
    """VmHWM (peak RSS), VmRSS, RssAnon, RssFile of this process in MB (Linux; empty elsewhere)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = float(val.split()[0]) / 1024.0
    except OSError:
        pass
    return out


def run_memmap_bench(gb: float = 2.0, *, dim: int = 1024, epochs: int = 1, batch_size: int = 256,
                     folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train an MLP for ``epochs`` on a synthetic ``gb``-GB set of items in memory-mapped shards.

    What it shows: the process's peak RSS grows by the batch and the model, not by the set
    (items are written in 64 MB shards, scaled lazily, read batch by batch, and the pages
    read are released from the process). Two classes, separable, so the accuracy printed
    also says the rows reached the model intact.
    """
    import shutil

    import torch

    from sonotype.features import Standardizer
    from sonotype.models import build_model
    from sonotype.training.train import TrainConfig, fit, predict_proba
    from sonotype.utils.shards import ShardWriter

    if gb <= 0 or dim < 1:
        raise ParameterError(f"bench memmap: --gb must be > 0 and --dim >= 1, got {gb} and {dim}")
    torch.set_num_threads(1)
    fit(build_model("mlp", (dim,), 2), np.zeros((8, dim), np.float32), np.arange(8) % 2, config=TrainConfig(max_epochs=1),
        n_classes=2)  # torch's lazy imports happen here, before the baseline
    rows = int(gb * 2**30 // (4 * dim))
    block = max(1, (64 << 20) // (4 * dim))
    tmp = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="sonotype-memmap-"))
    try:
        base = _proc_status()
        rng = np.random.default_rng(0)
        y = (np.arange(rows) % 2).astype(np.int64)
        t0 = time.perf_counter()
        w = ShardWriter(tmp / "items")
        for s in range(0, rows, block):
            e = min(rows, s + block)
            x = rng.standard_normal((e - s, dim), dtype=np.float32)
            x[:, :8] += y[s:e, None] * 1.5
            w.append(x)
            del x
        A = w.close()
        write_s = time.perf_counter() - t0
        n_val = min(rows // 10, 50_000)
        tr, va = np.arange(0, rows - n_val), np.arange(rows - n_val, rows)
        t0 = time.perf_counter()
        scaler = Standardizer().fit(A[tr])
        scale_s = time.perf_counter() - t0
        after_write = _proc_status()
        torch.manual_seed(0)
        net = build_model("mlp", (dim,), 2)
        t0 = time.perf_counter()
        res = fit(net, scaler.transform(A[tr]), y[tr], scaler.transform(A[va]), y[va],
                  config=TrainConfig(max_epochs=epochs, batch_size=batch_size, patience=None, num_threads=1), n_classes=2)
        train_s = time.perf_counter() - t0
        acc = float((predict_proba(net, scaler.transform(A[va])).argmax(1) == y[va]).mean())
        end = _proc_status()
    finally:
        if folder is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "set_gb": A.nbytes / 2**30, "rows": rows, "dim": dim, "shards": len(A._maps), "epochs": epochs,
        "write_seconds": write_s, "scaler_seconds": scale_s, "train_seconds": train_s,
        "rows_per_second": len(tr) * epochs / train_s, "val_accuracy": acc,
        "last_val_balanced_accuracy": res.history[-1].get("val_balanced_accuracy"),
        "rss_mb": {"baseline": base, "after_write_and_scaler": after_write, "end": end},
        "peak_rss_growth_mb": end.get("VmHWM", 0.0) - base.get("VmHWM", 0.0),
        "load_average": list(os.getloadavg()),
    }
