"""Predict a big folder into a results CSV that survives a kill: :func:`predict_files`.

Rows are appended and fsynced as files finish (:class:`BatchWriter`); ``resume`` skips files
whose path and content digest are already there and repairs a line cut short. The same
names stay importable from :mod:`sonotype.inference.predict`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sonotype.errors import ParameterError, SonotypeError
from sonotype.inference.events import merge_events
from sonotype.inference.events import smooth as smooth_probabilities
from sonotype.inference.predict import Classifier, Prediction, expand_paths, load_model
from sonotype.items.engine import map_files
from sonotype.utils.checks import positive_int
from sonotype.utils.io import atomic_write_text, check_output_file, file_digest
from sonotype.utils.limits import cap_jobs
from sonotype.utils.progress import LineProgress, stderr_is_terminal

__all__ = ["BATCH_FIXED_COLUMNS", "BatchSummary", "BatchWriter", "batch_header", "batch_row", "file_row", "predict_files",
           "read_batch"]

BATCH_FIXED_COLUMNS = ("path", "digest", "model", "duration", "label")


@dataclass
class BatchSummary:
    """What :func:`predict_files` did: rows written now, files found done already, failures.

    Parameters
    ----------
    out : str
        The results CSV.
    total : int
        Files found in the inputs.
    written : int
        Rows written by this call.
    skipped : int
        Files already in the CSV (``resume``) with the same content digest.
    errors : list of (path, message)
        Files that could not be classified (no row; a later resume tries them again).
    repaired : list of str
        What resuming mended in the CSV (a cut last line, a changed file).

    Examples
    --------
    >>> BatchSummary("r.csv", total=3, written=2, skipped=1).to_dict()["written"]
    2
    """

    out: str
    total: int
    written: int
    skipped: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_header(labels: Sequence[str]) -> list[str]:
    """The columns of a :func:`predict_files` CSV: one row per file.

    Parameters
    ----------
    labels : sequence of str
        The model's labels, in its order (``Classifier.labels``).

    Returns
    -------
    list of str
        The fixed columns, one ``p_<label>`` probability per label, then the counts.

    Examples
    --------
    >>> batch_header(["cat", "dog"])
    ['path', 'digest', 'model', 'duration', 'label', 'p_cat', 'p_dog', 'segments', 'events']
    """
    return [*BATCH_FIXED_COLUMNS, *(f"p_{lab}" for lab in labels), "segments", "events"]


def batch_row(clf: Classifier, path: str | os.PathLike, *, digest: str | None = None, **settings: Any) -> list[str]:
    """The CSV row of one file: path, content digest, model id, duration, label, probabilities,
    segment and event counts. ``settings`` go to :meth:`Classifier.predict`.

    This is the per-file unit of work of :func:`predict_files`; another engine (Ray, a job
    queue) can call it on its own workers and hand the rows to :class:`BatchWriter`.

    Parameters
    ----------
    clf : Classifier
        A loaded model.
    path : path-like
        The audio file.
    digest : str, optional
        Its content digest (:func:`sonotype.utils.io.file_digest`) when already known.
    **settings
        ``window``, ``hop``, ``smooth``, ... of :meth:`Classifier.predict`.

    Returns
    -------
    list of str
        The fields of :func:`batch_header` ``(clf.labels)``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> tmp = tempfile.mkdtemp()
    >>> path = save_model(tmp + "/model", network=build_model("mlp-small", (2,), 2, seed=0),
    ...                   labels=["high", "low"], feature_config=fc, representation=RepresentationConfig())
    >>> sf.write(tmp + "/a.wav", np.zeros(8000, np.float32), 8000)
    >>> row = batch_row(load_model(path), tmp + "/a.wav", window=0.5)
    >>> dict(zip(batch_header(["high", "low"]), row))["segments"], len(row)
    ('2', 9)
    """

    digest = file_digest(path) if digest is None else digest
    return file_row(clf.model_id, clf.labels, clf.predict(path, **settings), digest, path=path)


def file_row(model_id: str, labels: Sequence[str], r: Prediction, digest: str, *,
             path: str | os.PathLike | None = None) -> list[str]:
    """One file's fields of :func:`batch_header`: the one per-file CSV row of every ``predict`` path.

    Parameters
    ----------
    model_id : str
    labels : sequence of str
        The model's labels, in its order.
    r : Prediction
        The file's prediction.
    digest : str
        The file's content digest.
    path : path-like, optional
        The path to write (default ``r.path``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sonotype.inference.predict import Prediction
    >>> r = Prediction("a.wav", "dog", {"cat": 0.25, "dog": 0.75}, 1.5, [], [])
    >>> file_row("m-1234", ["cat", "dog"], r, "d1g")
    ['a.wav', 'd1g', 'm-1234', '1.500000', 'dog', '0.250000', '0.750000', '0', '0']
    """
    return [str(r.path if path is None else path), digest, model_id, f"{r.duration:.6f}", r.label,
            *(f"{r.probabilities[lab]:.6f}" for lab in labels), str(len(r.segments)), str(len(r.events))]


def _csv_line(row: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


class BatchWriter:
    """Append rows to a results CSV so that a kill loses nothing written.

    Each row is one ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``: after a
    crash, SIGKILL or power cut the file holds every finished row, and at worst a last
    line cut short, which :func:`read_batch` detects and :meth:`open` (``resume=True``)
    repairs by rewriting the file atomically without it.

    Parameters
    ----------
    path : path-like
        The results CSV.
    header : sequence of str
        Its columns (:func:`batch_header`).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/r.csv"
    >>> with BatchWriter(out, ["path", "label"]) as w:
    ...     w.open(resume=False)
    ...     w.write(["a.wav", "dog"])
    >>> read_batch(out, ["path", "label"])
    ([['a.wav', 'dog']], False)
    """

    def __init__(self, path: str | os.PathLike, header: Sequence[str]) -> None:
        self.path = Path(path)
        self.header = list(header)
        self._fd: int | None = None

    def open(self, *, resume: bool, keep: Sequence[Sequence[str]] | None = None) -> None:
        """Start the file (header) or, resuming, continue it; ``keep``: rows to rewrite it with."""

        if keep is not None:  # a repaired file: only whole, current rows, written atomically
            atomic_write_text(self.path, "".join(_csv_line(r) for r in [self.header, *keep]))
        elif not (resume and self.path.exists() and self.path.stat().st_size):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, _csv_line(self.header))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def write(self, row: Sequence[str]) -> None:
        if self._fd is None:
            raise ParameterError("BatchWriter.write before open")
        os.write(self._fd, _csv_line(row).encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_batch(path: str | os.PathLike, header: Sequence[str]) -> tuple[list[list[str]], bool]:
    """The whole rows of an earlier :func:`predict_files` CSV, and whether a damaged last
    line (cut short by a kill) was left out.

    Parameters
    ----------
    path : path-like
        The results CSV.
    header : sequence of str
        The columns it must have (:func:`batch_header` of the model's labels).

    Returns
    -------
    rows : list of list of str
        Every whole row after the header.
    cut : bool
        Whether a last line without its newline (written halfway) was dropped.

    Raises
    ------
    ParameterError
        The header is not ``header`` (another model or another label set wrote it), or a
        line other than the last is damaged (not a file this function wrote).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/r.csv"
    >>> _ = open(out, "w").write("path,label\\na.wav,dog\\nb.wav,d")  # killed while writing b.wav
    >>> read_batch(out, ["path", "label"])
    ([['a.wav', 'dog']], True)
    """

    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    cut = bool(lines) and lines[-1] != ""  # the last line has no newline: written halfway
    if not cut:
        lines = lines[:-1]
    if not lines:
        return [], cut
    rows = list(csv.reader(lines))
    if rows[0] != list(header):
        raise ParameterError(f"{path}: its columns {rows[0][:8]}... are not this model's {list(header)[:8]}...: "
                             "it was written by another model; write to a new file")
    body = rows[1:]
    if cut and body:
        body = body[:-1]
    elif cut:  # even the header is incomplete: start again
        return [], True
    for i, r in enumerate(body, 2):
        if len(r) != len(header):
            raise ParameterError(f"{path}: line {i} has {len(r)} fields, expected {len(header)}: "
                                 "not a results file this command wrote")
    return body, cut


def _batch_progress(total: int, enabled: bool) -> Any:
    """``advance(cached=...)`` and ``close()``: a rich bar on a terminal, plain lines otherwise."""

    class _Off:
        def advance(self, *, cached: bool = False) -> None: ...

        def close(self, stopped: bool = False) -> None: ...

    if not enabled:
        return _Off()
    if not stderr_is_terminal():
        lines = LineProgress(total, "predict", unit="files")

        class _Lines:
            def advance(self, *, cached: bool = False) -> None:
                lines.advance(1, cached=cached)

            def close(self, stopped: bool = False) -> None:
                lines.close(stopped, "--resume continues")

        return _Lines()
    from rich.console import Console  # console output only
    from rich.progress import (  # console output only
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
    prog.start()
    task = prog.add_task("predict", total=total)

    class _Bar:
        def advance(self, *, cached: bool = False) -> None:
            prog.advance(task)

        def close(self, stopped: bool = False) -> None:
            prog.stop()

    return _Bar()


_WORKER: dict[str, Any] = {}


def _worker_init(model: str, backbone_dirs: Sequence[str]) -> None:
    torch.set_num_threads(1)  # one process per core: threads inside would only fight over them
    _WORKER["clf"] = load_model(model, backbone_dirs=backbone_dirs)


def _safe_row(clf: Classifier, path: str, **kwargs: Any) -> tuple[str, list[str] | None, str | None]:
    """``(path, row, None)``, or ``(path, None, reason)`` for a file sonotype refuses (reported, not raised)."""
    try:
        return path, batch_row(clf, path, **kwargs), None
    except SonotypeError as exc:
        return path, None, str(exc)


def _engine_row(
    path: str, *, model_dir: str, backbone_dirs: Sequence[str], settings: dict[str, Any]
) -> tuple[str, list[str] | None, str | None]:
    """One file's row on an engine worker; the model is loaded once per worker process."""
    key = f"clf:{model_dir}"
    if key not in _WORKER:
        torch.set_num_threads(1)
        _WORKER[key] = load_model(model_dir, backbone_dirs=backbone_dirs)
    return _safe_row(_WORKER[key], path, **settings)


def _worker_row(path: str, digest: str | None, settings: dict[str, Any]) -> tuple[str, list[str] | None, str | None]:
    return _safe_row(_WORKER["clf"], path, digest=digest, **settings)


def predict_files(
    model: str | os.PathLike | Classifier,
    paths: Iterable[str | os.PathLike],
    *,
    out: str | os.PathLike,
    jobs: int = 1,
    resume: bool = False,
    window: float | None = None,
    hop: float | None = None,
    smooth: int = 1,
    smooth_kind: Literal["mean", "median"] = "mean",
    min_event: float = 0.0,
    progress: bool = True,
    backbone_dirs: Sequence[str | os.PathLike] = (),
    engine: str = "local",
    address: str | None = None,
) -> BatchSummary:
    """Predict every file (folders searched recursively) into the CSV ``out``, one row per file.

    Rows (absolute paths) are appended and fsynced as files finish (:class:`BatchWriter`), so an interrupted
    run keeps every finished file. ``resume=True`` continues such a file: a file whose path
    *and* content digest (BLAKE2b) are already in it is skipped; a file whose content
    changed is predicted again and its old row dropped; a last line cut short by a kill is
    repaired. Without ``resume`` an existing ``out`` is refused rather than overwritten.

    Parameters
    ----------
    model : path-like or Classifier
        ``jobs > 1`` needs the model directory: each worker process loads its own copy.
    jobs : int
        Worker processes (each with one torch thread); 1 predicts in this process.
    window, hop, smooth, smooth_kind, min_event
        As :meth:`Classifier.predict`; the row gives the file-level answer.
    progress : bool
        A progress bar on stderr (plain lines with rate and ETA when it is not a terminal).
    engine : {"local", "ray"}
        ``ray`` spreads the files over a Ray cluster (:func:`sonotype.items.engine.map_files`; a
        local one with ``jobs`` CPUs when ``address`` is None); rows still arrive, and are
        written, in input order.
    address : str, optional
        Ray cluster address (``ray://host:10001``, ``auto``).

    Returns
    -------
    BatchSummary
        Files that fail (unreadable, too short) are listed in ``errors`` and get no row, so
        a later ``resume`` tries them again.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> tmp = tempfile.mkdtemp()
    >>> path = save_model(tmp + "/model", network=build_model("mlp-small", (2,), 2, seed=0),
    ...                   labels=["high", "low"], feature_config=fc, representation=RepresentationConfig())
    >>> sf.write(tmp + "/a.wav", np.zeros(8000, np.float32), 8000)
    >>> s = predict_files(path, [tmp + "/a.wav"], out=tmp + "/r.csv", progress=False)
    >>> s.written, s.skipped
    (1, 0)
    >>> predict_files(path, [tmp], out=tmp + "/r.csv", resume=True, progress=False).skipped
    1
    """

    jobs = positive_int("jobs", jobs)
    if engine not in ("local", "ray"):
        raise ParameterError(f"engine must be 'local' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise ParameterError("an address is for the ray engine: add engine='ray' (--engine ray)")
    check_output_file(out)  # a folder or an unwritable place: one line before the model is even loaded
    settings = {"window": window, "hop": hop, "smooth": smooth, "smooth_kind": smooth_kind, "min_event": min_event}
    if isinstance(model, Classifier):
        if jobs > 1:
            raise ParameterError("jobs > 1 needs the model directory (each worker loads it), not a loaded Classifier")
        clf = model
    else:
        clf = load_model(model, backbone_dirs=backbone_dirs)
    # settings checked once, before any file or the output is touched
    if window is None and hop is not None:
        raise ParameterError(f"hop={hop} given without window")
    smooth_probabilities(np.zeros((0, 1)), smooth, smooth_kind)
    merge_events([], np.zeros((0, 1)), ["x"], min_event=min_event)
    out_p = Path(out)
    header = batch_header(clf.labels)
    # absolute paths: a resume from another working directory still recognises its files
    files = list(dict.fromkeys(os.path.abspath(f) for f in expand_paths(paths)))
    if out_p.exists() and out_p.stat().st_size and not resume:
        raise ParameterError(f"{out_p} exists: add --resume (resume=True) to continue it, or remove it to start over")
    done: dict[str, list[str]] = {}
    keep: list[list[str]] | None = None
    repaired: list[str] = []
    if resume and out_p.exists() and out_p.stat().st_size:
        done, keep, repaired = _resume_rows(out_p, header, clf.model_id, files)
    todo = [f for f in files if f not in done]
    summary = BatchSummary(str(out_p), len(files), 0, len(files) - len(todo), [], repaired)
    bar = _batch_progress(len(files), progress)
    for _ in range(summary.skipped):
        bar.advance(cached=True)
    writer = BatchWriter(out_p, header)
    writer.open(resume=resume, keep=keep)
    stopped = True
    results: Generator[_Result, None, None] | None = None
    try:
        if engine == "ray" and todo:
            if isinstance(model, Classifier):
                raise ParameterError("the ray engine needs the model directory (each worker loads it)")
            results = _ray_rows(
                str(Path(model)), todo, backbone_dirs, settings, jobs, address)
        elif jobs == 1 or len(todo) <= 1:
            results = _local_rows(clf, todo, settings)
        else:
            results = _pool_rows(str(Path(model)), todo, backbone_dirs, settings, jobs)  # type: ignore[arg-type]
        for f, row, err in results:
            if row is not None:
                writer.write(row)
                summary.written += 1
            else:
                summary.errors.append((f, str(err)))
            bar.advance()
        stopped = False
        return summary
    finally:
        if results is not None:
            results.close()  # cancels what a worker pool still has in flight
        writer.close()
        bar.close(stopped)


def _resume_rows(
    out_p: Path, header: Sequence[str], model_id: str, files: Sequence[str]
) -> tuple[dict[str, list[str]], list[list[str]] | None, list[str]]:
    """The rows of ``out_p`` still valid for ``files`` (path -> row), the rows to rewrite it
    with when it needs mending (None when it does not), and what was mended."""

    rows, cut = read_batch(out_p, header)
    others = {r[2] for r in rows} - {model_id}
    if others:
        raise ParameterError(f"{out_p} holds rows of model {sorted(others)[0]}, not {model_id}: "
                             "write to a new file")
    done: dict[str, list[str]] = {}
    repaired: list[str] = []
    if cut:
        repaired.append("a last line cut short (dropped; its file is predicted again)")
    wanted = set(files)
    current: list[list[str]] = []
    for r in rows:
        if r[0] in done:  # a file twice (should not happen): keep the first
            repaired.append(f"a second row of {r[0]}")
            continue
        if r[0] in wanted:
            f = r[0]
            if not Path(f).is_file() or file_digest(f) != r[1]:
                repaired.append(f"{f} changed since its row was written (predicted again)")
                continue
            done[f] = r
        current.append(r)
    return done, (current if repaired else None), repaired


_Result = tuple[str, list[str] | None, str | None]


def _local_rows(clf: Classifier, todo: Sequence[str], settings: dict[str, Any]) -> Generator[_Result, None, None]:
    """Rows in this process, in input order."""
    for f in todo:
        try:
            yield f, batch_row(clf, f, **settings), None
        except SonotypeError as exc:
            yield f, None, str(exc)


def _ray_rows(model_dir: str, todo: Sequence[str], backbone_dirs: Sequence[str | os.PathLike],
              settings: dict[str, Any], jobs: int, address: str | None) -> Generator[_Result, None, None]:
    """Rows from a Ray cluster (:func:`sonotype.items.engine.map_files`), in input order."""


    task = partial(_engine_row, model_dir=model_dir, backbone_dirs=[str(b) for b in backbone_dirs],
                   settings=settings)
    for _, result in map_files(task, todo, engine="ray", jobs=jobs, address=address, shard_size=16):
        yield result


def _pool_rows(model_dir: str, todo: Sequence[str], backbone_dirs: Sequence[str | os.PathLike],
               settings: dict[str, Any], jobs: int) -> Generator[_Result, None, None]:
    """Rows from ``jobs`` spawned worker processes as they finish, at most ``2 * jobs`` in flight."""

    ctx = get_context("spawn")  # fork after torch has started threads can deadlock
    jobs = min(cap_jobs(jobs), max(1, len(todo)))
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(model_dir, [str(b) for b in backbone_dirs])) as pool:
        queue = iter(todo)
        running: set[Any] = set()
        try:
            while True:
                while len(running) < 2 * jobs and (f := next(queue, None)) is not None:
                    running.add(pool.submit(_worker_row, f, None, settings))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
