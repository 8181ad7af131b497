"""Atomic file writes and content hashing, shared by caches, model files and reports.

Temporary files and folders are created with ``os.open(..., 0o666)`` / ``os.mkdir(..., 0o777)``
rather than ``tempfile.mkstemp``/``mkdtemp`` (which force 0600/0700): the kernel then applies the
process umask (and any default ACL) at creation, exactly as for a plain ``open``, so every output
ends up 0644/0755 under umask 022 with no racy ``os.umask`` read and no later ``chmod``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_dir", "atomic_open", "atomic_write_bytes", "atomic_write_text", "file_digest"]

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _temp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")


def _create_temp_file(dest: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file beside ``dest``; its mode is ``0o666 & ~umask``."""
    for _ in range(100):
        tmp = _temp_name(dest)
        try:
            return os.open(tmp, _FILE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {dest}")


def _create_temp_dir(dest: Path) -> Path:
    """A new temporary folder beside ``dest``; its mode is ``0o777 & ~umask``."""
    for _ in range(100):
        tmp = _temp_name(dest)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {dest}")


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Stream bytes into a temporary file beside ``path``; fsync and rename it into place on success.

    On any error the temporary file is removed and ``path`` is left as it was. Use it for
    outputs too big to build in memory first (``np.savez`` straight to disk).

    Parameters
    ----------
    path : path-like
        The final file (its folder is created).

    Yields
    ------
    binary file
        The temporary file, open for writing.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_open(d / "out.bin") as f:
    ...     _ = f.write(b"abc")
    >>> (d / "out.bin").read_bytes(), sorted(p.name for p in d.iterdir())
    (b'abc', ['out.bin'])
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_file(p)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` then rename it into place.

    Parameters
    ----------
    path : path-like
    data : bytes

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(d / "a.bin", b"ab")
    >>> (d / "a.bin").read_bytes()
    b'ab'
    """
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : path-like
    text : str

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a.txt", "héllo")
    >>> (d / "a.txt").read_text(encoding="utf-8")
    'héllo'
    """
    atomic_write_bytes(path, text.encode("utf-8"))


class atomic_dir:
    """Build a directory under a temporary name and rename it into place on success.

    ``with atomic_dir(dest, force=False) as tmp: ...`` - on error the partial directory is
    removed; an existing ``dest`` is refused unless ``force``.

    Parameters
    ----------
    dest : path-like
        The final folder.
    force : bool
        Replace an existing ``dest`` (only once the new one is complete).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_dir(d / "model") as tmp:
    ...     _ = (tmp / "weights.bin").write_bytes(b"w")
    >>> [p.name for p in (d / "model").iterdir()]
    ['weights.bin']
    >>> with atomic_dir(d / "model"):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    sonotype.errors.ParameterError: ... already exists; pass --force (force=True) to overwrite it
    """

    def __init__(self, dest: str | os.PathLike, *, force: bool = False) -> None:
        self.dest = Path(dest)
        self.force = force

    def __enter__(self) -> Path:
        from sonotype.errors import ParameterError

        if self.dest.exists() and not self.force:
            raise ParameterError(f"{self.dest} already exists; pass --force (force=True) to overwrite it")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _create_temp_dir(self.dest)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.dest, old)
            os.replace(self.tmp, self.dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.dest)


def file_digest(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """BLAKE2b digest (hex, 32 chars) of a file's bytes: the content key of every cache.

    Parameters
    ----------
    path : path-like
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_bytes(b"sonotype")
    >>> file_digest(d / "a.txt") == file_digest(d / "a.txt"), len(file_digest(d / "a.txt"))
    (True, 32)
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
