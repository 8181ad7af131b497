"""Item arrays on disk as memory-mapped ``.npy`` shards, read row by row: training beyond RAM.

A Dusha-size set of embeddings (300,000 clips x 7 layers x 1,024 values, float32) is
8.6 GB; every in-memory copy (the array, its training subset, its standardised form)
costs that again. Here items are written shard by shard as extraction produces them
(``X-00000.npy``, ... plus ``index.json``, each file written atomically, the index last)
and opened with ``np.load(mmap_mode="r")``: plain ``.npy``, no pickle.

:class:`ShardedArray` behaves like a read-only array of rows: ``shape``, ``dtype``,
``len``, integer/slice/index-array selection. A selection of at most :data:`EAGER_ROWS`
rows (a training batch, a validation chunk) is read into an ndarray; a larger one stays a
lazy view of the same rows, so ``X[train_items]`` costs no memory. ``np.asarray(view)``
reads a view on purpose. :class:`~sonotype.features.Standardizer` fits such arrays in
chunks and transforms them lazily (:class:`Scaled`), and the training loop reads sorted
batches from them, so RSS stays bounded by the batch, not the set.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.errors import ConfigError, ParameterError

__all__ = ["EAGER_ROWS", "LazyRows", "Scaled", "ShardWriter", "ShardedArray", "is_lazy", "memmap_limit_bytes",
           "wants_memmap"]

EAGER_ROWS = 4096
INDEX = "index.json"
_LIMIT_ENV = "SONOTYPE_MEMMAP_BYTES"
_DEFAULT_LIMIT = 2 << 30  # auto: on disk above 2 GiB of items


def memmap_limit_bytes() -> int:
    """``train.memmap: auto`` puts items on disk above this size (``$SONOTYPE_MEMMAP_BYTES``, default 2 GiB)."""
    raw = os.environ.get(_LIMIT_ENV)
    if not raw:
        return _DEFAULT_LIMIT
    try:
        return int(float(raw))
    except ValueError:
        raise ConfigError(f"${_LIMIT_ENV}={raw!r}: expected a number of bytes") from None


def wants_memmap(setting: Any, nbytes: float) -> bool:
    """Resolve ``train.memmap`` (auto | true | false) for a set of ``nbytes`` bytes."""
    if setting in (True, "true", "on", "yes"):
        return True
    if setting in (False, "false", "off", "no", None):
        return False
    if setting == "auto":
        return nbytes > memmap_limit_bytes()
    raise ConfigError(f"train.memmap must be auto, true or false, got {setting!r}")


class ShardWriter:
    """Append row blocks; each block becomes one ``.npy`` shard; :meth:`close` writes the index."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / INDEX).unlink(missing_ok=True)  # incomplete until closed
        self.rows: list[int] = []
        self.item_shape: tuple[int, ...] | None = None

    def append(self, block: np.ndarray) -> None:
        from sonotype.utils.io import atomic_open

        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim < 2 or block.shape[0] == 0:
            if block.shape[0] == 0:
                return
            raise ParameterError(f"shard rows must be (n, ...) arrays, got shape {block.shape}")
        if self.item_shape is None:
            self.item_shape = tuple(block.shape[1:])
        elif tuple(block.shape[1:]) != self.item_shape:
            raise ParameterError(f"shard items of shape {block.shape[1:]} after {self.item_shape}")
        with atomic_open(self.folder / f"X-{len(self.rows):05d}.npy") as f:
            np.lib.format.write_array(f, block, allow_pickle=False)
        self.rows.append(int(block.shape[0]))

    def close(self) -> ShardedArray:
        from sonotype.utils.io import atomic_write_text

        index = {"version": 1, "dtype": "float32", "item_shape": list(self.item_shape or (0,)),
                 "shards": [{"file": f"X-{i:05d}.npy", "rows": r} for i, r in enumerate(self.rows)]}
        atomic_write_text(self.folder / INDEX, json.dumps(index))
        return ShardedArray(self.folder)


class _Rows:
    """Shared row-selection logic: ``_take(sorted unique-or-not int64 rows) -> ndarray``."""

    shape: tuple[int, ...]
    dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _take(self, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rows_of(self, key: Any) -> np.ndarray | int:
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            k = int(key)
            if not -n <= k < n:
                raise IndexError(f"row {k} out of range for {n} rows")
            return k % n
        if isinstance(key, slice):
            return np.arange(n, dtype=np.int64)[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean mask of shape {idx.shape} for {n} rows")
            return np.flatnonzero(idx)
        if not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise IndexError(f"rows must be an int, a slice, a 1-D integer or boolean array, got {key!r:.60}")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"rows out of range for {n} rows")
        return np.where(idx < 0, idx + n, idx).astype(np.int64)

    def __getitem__(self, key: Any) -> Any:
        extra = ()
        if isinstance(key, tuple):
            key, extra = key[0], key[1:]
        rows = self._rows_of(key)
        if isinstance(rows, int):
            out = self._take(np.asarray([rows]))[0]
            return out[extra] if extra else out
        if len(rows) > EAGER_ROWS and not extra:
            return LazyRows(self, rows)
        out = self._take(rows)
        return out[(slice(None), *extra)] if extra else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._take(np.arange(self.shape[0], dtype=np.int64))
        return out if dtype is None else out.astype(dtype, copy=False)

    def chunks(self, rows: int = EAGER_ROWS) -> Iterator[np.ndarray]:
        """Consecutive row blocks as ndarrays (for statistics over the whole set)."""
        for s in range(0, self.shape[0], rows):
            yield self._take(np.arange(s, min(s + rows, self.shape[0]), dtype=np.int64))


class ShardedArray(_Rows):
    """Read-only rows over the ``.npy`` shards of a folder written by :class:`ShardWriter`."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        try:
            index = json.loads((self.folder / INDEX).read_text())
            files = [(self.folder / s["file"], int(s["rows"])) for s in index["shards"]]
            item_shape = tuple(int(d) for d in index["item_shape"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ParameterError(f"{self.folder}: not a complete set of item shards ({exc})") from None
        self._maps = [np.load(f, mmap_mode="r", allow_pickle=False) for f, _ in files]
        for (f, r), m in zip(files, self._maps):
            if m.shape[0] != r or tuple(m.shape[1:]) != item_shape or m.dtype != np.float32:
                raise ParameterError(f"{f}: shape {m.shape} {m.dtype}, the index says ({r}, {item_shape}) float32")
        self._starts = np.cumsum([0, *[r for _, r in files]])
        self.shape = (int(self._starts[-1]), *item_shape)

    @classmethod
    def complete(cls, folder: str | os.PathLike) -> bool:
        return (Path(folder) / INDEX).is_file()

    def _take(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        if not len(rows):
            return out
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        for s in np.unique(shard):
            sel = shard == s
            local = rows[sel] - self._starts[s]
            out[sel] = self._maps[s][local]  # sorted local rows read pages in order
            _release(self._maps[s])
        return out

    def __repr__(self) -> str:
        return f"ShardedArray({str(self.folder)!r}, shape={self.shape}, shards={len(self._maps)})"


def _release(m: np.ndarray) -> None:
    """Drop the pages just read from this process's RSS (they stay in the page cache).

    Without it every page an epoch touched would count as resident memory of the process
    until the kernel needs it back: RSS would grow to the size of the set.
    """
    mm = getattr(m, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise"):
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED)


class LazyRows(_Rows):
    """Rows ``rows`` of ``base``, not read until a small selection (or ``np.asarray``) asks."""

    def __init__(self, base: _Rows, rows: np.ndarray) -> None:
        self.base, self.rows = base, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *base.shape[1:])

    def _take(self, rows: np.ndarray) -> np.ndarray:
        picked = self.rows[rows]
        order = np.argsort(picked, kind="stable")  # read the shards in order, hand back as asked
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        out[order] = self.base._take(picked[order])
        return out


class Scaled(_Rows):
    """``(base - mean) / scale`` along ``axis``, computed per selection (float32)."""

    def __init__(self, base: _Rows, mean: np.ndarray, scale: np.ndarray, axis: int) -> None:
        self.base, self.shape = base, base.shape
        bshape = [1] * len(base.shape)
        bshape[axis] = -1
        self.mean, self.scale = mean.reshape(bshape), scale.reshape(bshape)

    def _take(self, rows: np.ndarray) -> np.ndarray:
        return ((self.base._take(rows) - self.mean) / self.scale).astype(np.float32)


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is one of these disk-backed row arrays."""
    return isinstance(x, _Rows)


def streaming_moments(x: _Rows, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and variance (float64) per feature along ``axis`` over every other axis, in chunks.

    Chunks are merged with Chan et al.'s pairwise update, so the result matches numpy's
    two-pass ``mean``/``var`` to float64 rounding without holding the set.
    """
    n_tot, mean, m2 = 0, None, None
    for block in x.chunks():
        b = np.moveaxis(block, axis, -1).reshape(-1, block.shape[axis]).astype(np.float64)
        nb = b.shape[0]
        if nb == 0:
            continue
        mb = b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        if mean is None:
            n_tot, mean, m2 = nb, mb, m2b
            continue
        delta = mb - mean
        tot = n_tot + nb
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2b + delta**2 * (n_tot * nb / tot)
        n_tot = tot
    if mean is None:
        raise ParameterError("Standardizer.fit got no items")
    return mean, m2 / n_tot, n_tot
