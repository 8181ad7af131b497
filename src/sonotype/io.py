"""Atomic file writes and content hashing, shared by caches, model files and reports."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_dir", "atomic_write_bytes", "atomic_write_text", "file_digest"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` then rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class atomic_dir:
    """Build a directory under a temporary name and rename it into place on success.

    ``with atomic_dir(dest, force=False) as tmp: ...`` - on error the partial directory is
    removed; an existing ``dest`` is refused unless ``force``.
    """

    def __init__(self, dest: str | os.PathLike, *, force: bool = False) -> None:
        self.dest = Path(dest)
        self.force = force

    def __enter__(self) -> Path:
        from .errors import SonotypeError

        if self.dest.exists() and not self.force:
            raise SonotypeError(f"{self.dest} already exists; pass --force (force=True) to overwrite it")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.dest.parent, prefix=f".{self.dest.name}.", suffix=".tmp"))
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
    """BLAKE2b digest (hex, 32 chars) of a file's bytes: the content key of every cache."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
