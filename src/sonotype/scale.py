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

from .corpora.base import Clip
from .errors import ParameterError

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
    from .corpora import load_corpus

    clips = load_corpus("folder", root).clips
    if not clips:
        raise ParameterError(f"bench scale: no audio clips under {root}")
    return list(clips)


def _repeat(base: list[Clip], n: int) -> list[Clip]:
    return [base[i % len(base)] for i in range(n)]


def _audio_seconds(clips: list[Clip], base: list[Clip]) -> float:
    from .audio import info

    dur = {c.path: info(c.path).duration for c in base}
    return float(sum(dur[c.path] for c in clips))


def _rss_mb(ru: Any) -> float:
    return ru.ru_maxrss / 1024.0


def _local(clips: list[Clip], fcfg: Any, rcfg: Any, workers: int) -> dict[str, Any]:
    """The existing process pool (``--jobs``): results streamed and dropped."""
    from .features import extract_corpus, represent

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
    from .engine import EngineConfig, MapStats, _features_task, _shard_of, map_shards

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
    from .features import FeatureConfig, RepresentationConfig

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
