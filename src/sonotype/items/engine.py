"""Where corpus-scale work runs: this machine's processes (``local``) or a Ray cluster (``ray``).

A manifest is cut into *shards* of consecutive clips; each shard is one task. Results come
back in manifest order through a bounded window of tasks in flight, so the driver's memory
does not grow with the corpus (only the gathered arrays do, and :mod:`sonotype.utils.shards`
keeps those on disk when asked).

With a ``store`` every finished shard is written (by the driver, as soon as it arrives, in
whatever order tasks finish) to ``<cache>/shards/<kind>/v<N>/<key>.npz``, where ``cache`` is
a local folder or any fsspec URL (``s3://bucket/sonotype``, ``file://``, ``memory://``).
The key hashes the settings and each clip's path, span, size and mtime, so a rerun after
the driver died computes only the shards that are not there. Files are plain ``.npz`` read
with ``allow_pickle=False``; a local write is atomic (temporary file + rename), a remote one
goes to a temporary name and is moved into place.

On Ray each task may be retried ``max_retries`` times when its worker dies (killed,
out of memory, ``os._exit``); the task is a pure function of its shard, so a retry
gives the same arrays. ``ray`` is imported only when the ray engine is used
(``pip install 'sonotype[ray]'``).

The ray engine gives arrays identical to ``--jobs N`` (same per-clip functions, one BLAS
thread per worker; tested). Each worker also reports its CPU time and peak RSS.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from sonotype.errors import ConfigError, ParameterError
from sonotype.features.cache import warn_unreadable
from sonotype.utils.io import atomic_write_bytes
from sonotype.utils.limits import cap_jobs, usable_cores
from sonotype.utils.threads import single_threaded_children

__all__ = [
    "ENGINES",
    "EngineConfig",
    "ShardStore",
    "map_files",
    "map_shards",
]


ENGINES = ("local", "ray")
SHARD_VERSION = 1


@dataclass
class EngineConfig:
    """Which engine runs corpus work, and how.

    ``workers``: local worker processes (``--jobs``), or the CPUs of a local Ray cluster
    (default: this machine's cores); ignored with an ``address`` (the cluster decides).
    ``shard_size``: clips per task (large enough that a task outweighs Ray's per-task cost,
    ~1 ms, small enough that a retry or a lost driver costs little). ``max_retries``: times a
    Ray task is rerun when its worker dies.
    """

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    shard_size: int = 64
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ConfigError(f"engine.name must be one of {', '.join(ENGINES)}, got {self.name!r}")
        if self.address is not None and self.name != "ray":
            raise ConfigError(f"engine.address {self.address!r} needs engine.name: ray")
        if self.workers is not None and int(self.workers) < 1:
            raise ConfigError(f"engine.workers must be >= 1, got {self.workers}")
        if int(self.shard_size) < 1:
            raise ConfigError(f"engine.shard_size must be >= 1, got {self.shard_size}")
        if int(self.max_retries) < 0:
            raise ConfigError(f"engine.max_retries must be >= 0, got {self.max_retries}")

    @classmethod
    def from_any(cls, value: Any, *, jobs: int | None = None) -> EngineConfig:
        """From None (local), a name (``"ray"``), a mapping or an EngineConfig; ``jobs`` fills ``workers``."""
        if isinstance(value, EngineConfig):
            cfg = value
        elif value is None:
            cfg = cls()
        elif isinstance(value, str):
            cfg = cls(name=value)
        elif isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ConfigError(f"engine: unknown key(s) {unknown}; known: {', '.join(cls.__dataclass_fields__)}")
            cfg = cls(**value)
        else:
            raise ConfigError(f"engine must be a name or a mapping, got {type(value).__name__} {value!r}")
        return cfg.with_jobs(jobs)

    def with_jobs(self, jobs: int | None) -> EngineConfig:
        """This engine with ``workers`` from ``jobs`` (a run's ``jobs``) unless it names its own."""
        if self.workers is None and jobs is not None and (self.name == "local" or self.address is None):
            return EngineConfig(**{**asdict(self), "workers": int(jobs)})
        return self

    def n_workers(self) -> int:
        """Local workers: ``workers`` capped at the usable cores (with a note), default all of them."""
        return cap_jobs(int(self.workers)) if self.workers else usable_cores()


# -- shard store ----------------------------------------------------------------------------
class ShardStore:
    """Shard results (dicts of arrays) under ``<root>/shards/<kind>/v<N>/``; root: folder or fsspec URL."""

    def __init__(self, root: str | os.PathLike, kind: str) -> None:
        self.url = str(root)
        self.kind = kind
        self.remote = "://" in self.url and not self.url.startswith("file://")
        if "://" in self.url:
            try:
                import fsspec  # optional: sonotype[ray]
            except ImportError:  # pragma: no cover - fsspec comes with the ray extra
                raise ConfigError(f"cache {self.url}: a URL cache needs fsspec (pip install 'sonotype[ray]')") from None
            self.fs, base = fsspec.core.url_to_fs(self.url)
            self.base = f"{base.rstrip('/')}/shards/{kind}/v{SHARD_VERSION}"
        else:
            self.fs = None
            self.base = str(Path(self.url).expanduser() / "shards" / kind / f"v{SHARD_VERSION}")
        self.hits = 0
        self.writes = 0

    def path(self, key: str) -> str:
        return f"{self.base}/{key[:2]}/{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.fs.exists(self.path(key)) if self.fs is not None else os.path.isfile(self.path(key))

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when missing or unreadable (then recomputed, with a CacheWarning)."""

        p = self.path(key)
        try:
            data = self.fs.cat_file(p) if self.fs is not None else Path(p).read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                out = {k: np.asarray(z[k]) for k in z.files}
        except FileNotFoundError:
            return None
        except Exception as exc:  # garbled, truncated: recompute, never fatal
            warn_unreadable(Path(p), exc)
            return None
        self.hits += 1
        return out

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        p = self.path(key)
        if self.fs is None:
            atomic_write_bytes(p, buf.getvalue())
        else:
            tmp = f"{self.base}/{key[:2]}/.{key}.{os.getpid()}.tmp"
            self.fs.makedirs(f"{self.base}/{key[:2]}", exist_ok=True)
            self.fs.pipe_file(tmp, buf.getvalue())
            self.fs.mv(tmp, p)
        self.writes += 1

    def local_root(self) -> str | None:
        """The cache as a local folder (workers may share its per-clip caches), else None."""
        if self.fs is None:
            return self.url
        return self.url[len("file://"):] if self.url.startswith("file://") else None


# -- worker side ----------------------------------------------------------------------------
def _limit_threads() -> None:
    """One BLAS/OpenMP thread per worker: N workers use N cores, and results match ``--jobs``."""
    threadpool_limits(1)
    with contextlib.suppress(Exception):
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


def _run_task(task: Callable[[list[Any], Any], Any], items: list[Any], context: Any) -> tuple[Any, dict[str, Any]]:
    """Run one shard and say what it cost: CPU seconds of this task, peak RSS of this worker."""
    _limit_threads()
    c0 = time.process_time()
    out = task(items, context)
    usage = {
        "pid": os.getpid(),
        "cpu_seconds": time.process_time() - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    return out, usage


def _pool_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads()


def _pool_work(args: tuple[Callable, list[Any], Any]) -> tuple[Any, dict[str, Any]]:
    return _run_task(*args)


# -- ray ------------------------------------------------------------------------------------
def _ray(cfg: EngineConfig) -> tuple[Any, bool]:
    """The ray module, connected; True when this call started the (local) cluster."""
    try:
        import ray  # optional: sonotype[ray]
    except ImportError:
        raise ConfigError("engine 'ray' needs Ray: pip install 'sonotype[ray]'") from None
    if ray.is_initialized():
        return ray, False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    with single_threaded_children():  # workers of a local cluster inherit these
        if cfg.address:
            try:
                ray.init(address=cfg.address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"engine.address {cfg.address!r}: cannot connect to a Ray cluster ({exc})") from None
        else:
            ray.init(num_cpus=cfg.n_workers(), **kw)
    return ray, True


# -- the map --------------------------------------------------------------------------------
@dataclass
class MapStats:
    """What a map did: shards read from the store and computed, and each worker's cost."""

    shards: int = 0
    cached: int = 0
    computed: int = 0
    cpu_seconds: float = 0.0
    peak_rss_mb: dict[int, float] = field(default_factory=dict)
    startup_seconds: float = 0.0

    def add(self, usage: dict[str, Any]) -> None:
        self.computed += 1
        self.cpu_seconds += float(usage["cpu_seconds"])
        pid = int(usage["pid"])
        self.peak_rss_mb[pid] = max(self.peak_rss_mb.get(pid, 0.0), float(usage["peak_rss_mb"]))


def map_shards(
    task: Callable[[list[Any], Any], Any],
    shards: Sequence[list[Any]],
    *,
    context: Any = None,
    engine: EngineConfig | str | None = None,
    store: ShardStore | None = None,
    keys: Sequence[str] | None = None,
    stats: MapStats | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(shard index, task(shard, context))`` for every shard, in shard order.

    Parameters
    ----------
    task : callable
        A module-level function ``task(items, context)`` (workers import it by name); with a
        ``store`` it must return a dict of numpy arrays.
    shards : sequence of lists
    context : any
        Settings shared by every task (sent once per task; keep it small).
    engine : EngineConfig, name or None
        ``local``: a pool of ``workers`` spawned processes (in this process for one worker);
        ``ray``: Ray tasks on the cluster at ``address`` or on a local one.
    store, keys : ShardStore and one key per shard, optional
        Shards found in the store are read, not computed; computed ones are written.
    stats : MapStats, optional
        Filled as the map runs.
    on_shard : callable, optional
        Called with the number of items after each shard (progress).
    """
    cfg = EngineConfig.from_any(engine)
    shards = [list(s) for s in shards]
    if store is not None and (keys is None or len(keys) != len(shards)):
        raise ParameterError("map_shards: a store needs one key per shard")
    st = stats if stats is not None else MapStats()
    st.shards = len(shards)
    # Stored shards are only checked here and read in their turn: memory stays bounded.
    cached = {i for i in range(len(shards)) if store is not None and keys is not None and keys[i] in store}
    pending = [i for i in range(len(shards)) if i not in cached]
    st.cached = len(cached)

    def cached_result(i: int) -> Any:
        out = store.load(keys[i]) if store is not None and keys is not None else None
        if out is None:  # vanished since the check: compute here
            out, usage = _run_task(task, shards[i], context)
            st.add(usage)
            _save(i, out)
        return out

    def _save(i: int, out: Any) -> None:
        if store is not None and keys is not None:
            store.save(keys[i], out)

    def emit(i: int, out: Any) -> tuple[int, Any]:
        if on_shard is not None:
            on_shard(len(shards[i]))
        return i, out

    if not pending:
        for i in range(len(shards)):
            yield emit(i, cached_result(i))
        return
    if cfg.name == "ray":
        yield from _map_ray(task, shards, context, cfg, pending, cached, cached_result, _save, emit, st)
    elif cfg.n_workers() == 1 or len(pending) == 1:
        for i in range(len(shards)):
            if i in cached:
                yield emit(i, cached_result(i))
                continue
            out, usage = _run_task(task, shards[i], context)
            st.add(usage)
            _save(i, out)
            yield emit(i, out)
    else:
        yield from _map_pool(task, shards, context, cfg, pending, cached, cached_result, _save, emit, st)


def _map_pool(task, shards, context, cfg, pending, cached, cached_result, save, emit, st) -> Iterator[tuple[int, Any]]:
    t0 = time.perf_counter()
    with single_threaded_children():
        pool = mp.get_context("spawn").Pool(min(cfg.n_workers(), len(pending)), initializer=_pool_init)
    st.startup_seconds = time.perf_counter() - t0
    try:
        window: deque[tuple[int, Any]] = deque()
        todo = iter(pending)
        limit = 2 * cfg.n_workers()

        def fill() -> None:
            while len(window) < limit and (j := next(todo, None)) is not None:
                window.append((j, pool.apply_async(_pool_work, ((task, shards[j], context),))))

        fill()
        for i in range(len(shards)):
            if i in cached:
                yield emit(i, cached_result(i))
                continue
            j, res = window.popleft()
            out, usage = res.get()
            st.add(usage)
            save(j, out)
            fill()
            yield emit(j, out)
    finally:
        pool.terminate()
        pool.join()


def _map_ray(task, shards, context, cfg, pending, cached, cached_result, save, emit, st) -> Iterator[tuple[int, Any]]:
    t0 = time.perf_counter()
    ray, started = _ray(cfg)
    st.startup_seconds = time.perf_counter() - t0
    try:
        in_flight: dict[Any, int] = {}
        remote = ray.remote(_run_task).options(num_cpus=1, max_retries=int(cfg.max_retries), retry_exceptions=False)
        workers = max(1, int(ray.cluster_resources().get("CPU", cfg.n_workers())))
        limit = 2 * workers
        ctx_ref = ray.put(context)
        task_ref = ray.put(task)
        todo = iter(pending)
        done: dict[int, Any] = {}  # finished out of order, waiting for their turn (bounded by the window)

        def fill() -> None:
            while len(in_flight) + len(done) < limit and (j := next(todo, None)) is not None:
                in_flight[remote.remote(task_ref, shards[j], ctx_ref)] = j

        fill()
        for i in range(len(shards)):
            if i in cached:
                yield emit(i, cached_result(i))
                continue
            while i not in done:
                finished, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in finished:
                    j = in_flight.pop(ref)
                    try:
                        out, usage = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the task itself raised: its own error
                        raise exc.as_instanceof_cause() from None
                    except ray.exceptions.WorkerCrashedError as exc:
                        raise ParameterError(
                            f"shard {j}: its worker died {cfg.max_retries + 1} time(s) ({exc}); "
                            "the shards already finished are stored, rerun to compute the rest"
                        ) from None
                    st.add(usage)
                    save(j, out)  # stored as soon as it arrives: a dead driver loses only tasks in flight
                    done[j] = out
                fill()
            yield emit(i, done.pop(i))
    finally:
        for ref in in_flight:  # the caller stopped early (or failed): stop what is still running
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        if started:
            ray.shutdown()


def map_files(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    engine: EngineConfig | str | None = None,
    jobs: int | None = None,
    address: str | None = None,
    shard_size: int = 16,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, func(item))`` for every item (e.g. a file to classify), in input order.

    ``func`` is a module-level function (or a ``functools.partial`` of one) so workers can
    import it; it should catch its own per-item errors and return them as values. This is
    what ``predict`` over folders runs on: ``engine="ray", address=...`` spreads the files
    over a cluster, ``jobs`` sets local processes.
    """
    cfg = EngineConfig.from_any(engine, jobs=jobs)
    if address is not None:
        cfg = EngineConfig(**{**asdict(cfg), "name": "ray", "address": address})
    items = list(items)
    step = max(1, int(shard_size))
    shards = [items[s : s + step] for s in range(0, len(items), step)]
    for k, outs in map_shards(_apply_each, shards, context=func, engine=cfg):
        for j, out in enumerate(outs):
            yield k * step + j, out


def _apply_each(items: list[Any], func: Callable[[Any], Any]) -> list[Any]:
    return [func(x) for x in items]


# -- features -------------------------------------------------------------------------------
def _stamp(clip: Any) -> list[Any]:
    try:
        st = os.stat(clip.path)
        return [os.path.abspath(clip.path), clip.start, clip.duration, st.st_size, st.st_mtime_ns]
    except OSError:
        return [os.path.abspath(clip.path), clip.start, clip.duration, None, None]


def shard_key(kind: str, settings: dict[str, Any], clips: Sequence[Any]) -> str:
    """Key of one shard: the settings and each clip's path, span, size and mtime."""
    material = {"kind": kind, "version": SHARD_VERSION, "settings": settings, "clips": [_stamp(c) for c in clips]}
    return hashlib.blake2b(json.dumps(material, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def shard_of(clips: list[Any], size: int) -> list[list[Any]]:
    return [clips[s : s + size] for s in range(0, len(clips), size)]


