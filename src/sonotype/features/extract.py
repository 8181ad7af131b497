"""Whole-corpus extraction: cached, parallel, streamed, in input order.

Workers are separate processes started with ``spawn`` (forking a parent that already
imported torch can deadlock) and limited to one BLAS thread each, so ``jobs`` processes use
``jobs`` cores. Results stream back in input order through a bounded window of pending
clips: memory does not grow with the corpus. Unreadable files become :class:`Skipped`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonotype.audio import load
from sonotype.corpora.base import Clip, Skipped
from sonotype.errors import AudioError, ParameterError
from sonotype.features.cache import FeatureCache
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.frames import FrameFeatures, compute_frames
from sonotype.features.represent import prepare_signal, represent, represent_names
from sonotype.utils.limits import cap_jobs
from sonotype.utils.progress import LineProgress, stderr_is_terminal
from sonotype.utils.threads import single_threaded_children, single_threaded_worker

__all__ = ["Dataset", "build_dataset", "extract_clip", "extract_corpus"]


def extract_clip(clip: Clip, fcfg: FeatureConfig, cache: FeatureCache | None = None, key: str | None = None) -> FrameFeatures | Skipped:
    """Frame features of one clip (from the cache when there), or :class:`Skipped` with the reason.

    Parameters
    ----------
    clip : Clip
        The file (and part of it) to read.
    fcfg : FeatureConfig
    cache : FeatureCache, optional
    key : str, optional
        The clip's cache key when already known (saves hashing the file again).

    Returns
    -------
    FrameFeatures or Skipped
        A file that cannot be used is reported, never raised: a corpus run goes on.

    Examples
    --------
    >>> import tempfile
    >>> import soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(f"{tmp}/a.wav", np.zeros(8000, np.float32), 8000)
    >>> extract_clip(Clip(f"{tmp}/a.wav", "quiet", "spk1"), FeatureConfig(sr=8000)).values.shape
    (16, 37)
    >>> extract_clip(Clip(f"{tmp}/missing.wav", "quiet", "spk1"), FeatureConfig()).reason[:14]
    'file not found'
    """
    if cache is not None and key is None:
        try:
            key = cache.key(clip.path, fcfg, start=clip.start, duration=clip.duration)
        except OSError:
            key = None  # unreadable: load() below reports why
    try:
        if cache is not None and key is not None and key in cache and (hit := cache.load(key)) is not None:
            return hit
        y, _ = load(clip.path, sr=fcfg.sr, offset=clip.start, duration=fcfg.read_duration(clip.duration))
        ff = compute_frames(prepare_signal(y, fcfg.sr, fcfg, path=clip.path), fcfg)
    except AudioError as exc:
        return Skipped(clip.path, exc.reason)
    except ParameterError as exc:
        return Skipped(clip.path, str(exc))
    except OSError as exc:
        return Skipped(clip.path, f"cannot read file ({exc.strerror or exc})")
    if cache is not None:
        cache.misses += 1
    if cache is not None and key is not None:
        cache.store(key, ff, source={"path": clip.path, "start": clip.start, "duration": clip.duration})
    return ff


# -- worker side ------------------------------------------------------------------------
_W: dict[str, Any] = {}


def init_worker(fcfg: dict[str, Any], cache_root: str | None, writable: bool = True) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    single_threaded_worker()
    _W["fcfg"] = FeatureConfig.from_dict(fcfg)
    _W["cache"] = FeatureCache(cache_root, writable=writable) if cache_root is not None else None


def extract_task(task: tuple[dict[str, Any], str | None]) -> FrameFeatures | Skipped:
    clip, key = task
    return extract_clip(Clip.from_dict(clip), _W["fcfg"], _W["cache"], key)


@contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return

    if not stderr_is_terminal():  # a log or a pipe: plain lines with rate and ETA, not a silent bar
        lines = LineProgress(total, "features", unit="files")
        try:
            yield lambda: lines.advance(1)
        except BaseException:  # an error or Ctrl-C: the line says how far it got, not "done"
            lines.close(stopped=True)
            raise
        lines.close()
        return
    from rich.progress import (  # console output only
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (
        TextColumn("[bold]features"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files  {task.fields[rate]} files/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    from rich.console import Console  # console output only

    # Progress goes to stderr: stdout stays clean for --json output.
    with Progress(*cols, transient=False, console=Console(stderr=True)) as prog:
        task = prog.add_task("features", total=total, rate="-")

        def advance() -> None:
            prog.advance(task)
            t = prog.tasks[task]
            prog.update(task, rate=f"{t.speed:.1f}" if t.speed else "-")

        yield advance


def extract_corpus(
    clips: Sequence[Clip],
    fcfg: FeatureConfig,
    *,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> Iterator[tuple[int, FrameFeatures | Skipped]]:
    """Yield ``(index, FrameFeatures or Skipped)`` for every clip, in input order.

    Parameters
    ----------
    clips : sequence of Clip
    fcfg : FeatureConfig
    cache_dir : path, FeatureCache or None
        Where per-clip results are cached; None computes without caching.
    jobs : int
        Worker processes (1 = in this process).
    progress : bool
        Show a rich progress bar (files done, rate, ETA) on the terminal.

    Yields
    ------
    (int, FrameFeatures or Skipped)
        The clip's index in ``clips`` and its result.

    Examples
    --------
    >>> import tempfile
    >>> import soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(f"{tmp}/a.wav", np.zeros(8000, np.float32), 8000)
    >>> [(i, type(r).__name__) for i, r in extract_corpus([Clip(f"{tmp}/a.wav", "x", "g")], FeatureConfig())]
    [(0, 'FrameFeatures')]
    """
    clips = list(clips)
    if jobs < 1:
        raise ParameterError(f"jobs must be >= 1, got {jobs}")
    cache = cache_dir if isinstance(cache_dir, FeatureCache) or cache_dir is None else FeatureCache(cache_dir)
    with _progress_bar(len(clips), progress) as advance:
        if jobs == 1 or len(clips) <= 1:
            for i, clip in enumerate(clips):
                out = extract_clip(clip, fcfg, cache)
                if advance:
                    advance()
                yield i, out
            return
        # Hits are read here; only misses go to the workers (a rerun starts no pool at all).
        # Only memoised digests are used: new files are hashed by the workers, in parallel.
        keys: list[str | None] = []
        pending: list[int] = []
        for i, clip in enumerate(clips):
            key = None
            if cache is not None:
                try:
                    key = cache.known_key(clip.path, fcfg, start=clip.start, duration=clip.duration)
                except OSError:
                    key = None
            keys.append(key)
            if cache is None or key is None or key not in cache:
                pending.append(i)
        yield from _parallel(clips, fcfg, cache, keys, set(pending), jobs, advance)


def _parallel(
    clips: list[Clip],
    fcfg: FeatureConfig,
    cache: FeatureCache | None,
    keys: list[str | None],
    pending: set[int],
    jobs: int,
    advance: Any,
) -> Iterator[tuple[int, FrameFeatures | Skipped]]:
    pool = None
    if pending:
        if cache is not None:
            cache.check_writable()  # a read-only or full cache: one warning here, not one per worker
        with single_threaded_children():
            pool = mp.get_context("spawn").Pool(
                min(cap_jobs(jobs), len(pending)), initializer=init_worker,
                initargs=(fcfg.to_dict(), None if cache is None else str(cache.root),
                          cache is None or cache.writable),
            )
    try:
        window: deque[tuple[int, Any]] = deque()
        todo = iter(sorted(pending))
        limit = 4 * jobs

        def fill() -> None:
            while len(window) < limit:
                j = next(todo, None)
                if j is None:
                    return
                window.append((j, pool.apply_async(extract_task, ((clips[j].to_dict(), keys[j]),))))  # type: ignore[union-attr]

        fill()
        for i, clip in enumerate(clips):
            if i in pending:
                _, res = window.popleft()
                out = res.get()
                if cache is not None and not isinstance(out, Skipped):
                    cache.misses += 1
                fill()
            else:
                out = cache.load(keys[i]) if cache is not None and keys[i] else None  # type: ignore[arg-type]
                if out is None:  # vanished or unreadable since the check: compute here
                    out = extract_clip(clip, fcfg, cache)
            if advance:
                advance()
            yield i, out
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


@dataclass
class Dataset:
    """Model items of a corpus and where each came from.

    ``X[k]`` belongs to ``clips[item_clip[k]]``: windows and frames keep their clip, so a
    split by clip or group never separates them.

    Parameters
    ----------
    X : np.ndarray [shape=(n_items, ...)], float32
        Model items.
    item_clip : np.ndarray [shape=(n_items,)], int
        Index into ``clips`` of each item.
    clips : list of Clip
        The clips that gave items.
    skipped : list of Skipped
        Clips that could not be used, with the reason.
    feature_names : list of str
        Names of the item's feature columns.

    Examples
    --------
    >>> ds = Dataset(np.zeros((3, 2), np.float32), np.array([0, 0, 1]), [Clip("a.wav", "x", "g"), Clip("b.wav", "y", "g")])
    >>> ds.labels().tolist()
    ['x', 'x', 'y']
    """

    X: np.ndarray
    item_clip: np.ndarray
    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)

    def labels(self) -> np.ndarray:
        """Label of every item, (N,)."""
        return np.asarray([self.clips[i].label for i in self.item_clip], dtype=object).astype(str)

    def groups(self) -> np.ndarray:
        """Group (speaker, track) of every item, (N,)."""
        return np.asarray([self.clips[i].group for i in self.item_clip], dtype=object).astype(str)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def build_dataset(
    clips: Sequence[Clip],
    fcfg: FeatureConfig,
    rcfg: RepresentationConfig,
    *,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> Dataset:
    """Extract ``clips`` (see :func:`extract_corpus`) and represent each as model items.

    Parameters
    ----------
    clips : sequence of Clip
    fcfg : FeatureConfig
    rcfg : RepresentationConfig
    cache_dir, jobs, progress
        As in :func:`extract_corpus`.

    Returns
    -------
    Dataset
        Skipped clips are listed in ``skipped``, not in ``clips``.

    Examples
    --------
    >>> import tempfile
    >>> import soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> for name in ("a", "b"):
    ...     sf.write(f"{tmp}/{name}.wav", np.zeros(8000, np.float32), 8000)
    >>> clips = [Clip(f"{tmp}/a.wav", "x", "g1"), Clip(f"{tmp}/b.wav", "y", "g2"), Clip(f"{tmp}/c.wav", "y", "g2")]
    >>> ds = build_dataset(clips, FeatureConfig(sr=8000), RepresentationConfig())
    >>> ds.X.shape, len(ds.skipped)
    ((2, 37), 1)
    """
    items: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    ok: list[Clip] = []
    skipped: list[Skipped] = []
    names: list[str] | None = None
    clips = list(clips)
    for i, out in extract_corpus(clips, fcfg, cache_dir=cache_dir, jobs=jobs, progress=progress):
        if isinstance(out, Skipped):
            skipped.append(out)
            continue
        x = represent(out, rcfg)
        if names is None:
            names = represent_names(out, rcfg)
        owners.append(np.full(x.shape[0], len(ok), dtype=np.int64))
        items.append(x)
        ok.append(clips[i])
    if items:
        X = np.concatenate(items, axis=0)
        item_clip = np.concatenate(owners)
    else:
        X = np.zeros((0, 0), dtype=np.float32)
        item_clip = np.zeros(0, dtype=np.int64)
    return Dataset(X=X, item_clip=item_clip, clips=ok, skipped=skipped, feature_names=names or [])
