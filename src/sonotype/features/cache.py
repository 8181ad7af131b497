"""On-disk cache of per-clip frame features, keyed by audio content and the full settings.

Layout: ``<root>/frames/v<VERSION>/<k[:2]>/<k>.npz``, one file per clip, where ``k`` hashes
(cache version, the file's BLAKE2b content digest, the complete FeatureConfig, the clip's
start and duration). One file per clip, written by atomic rename, means a crash or Ctrl-C
can only lose the clip being computed: there is no shared index to corrupt or rewrite, a
rerun simply finds what is there, and parallel workers never write the same file. Files are
plain ``.npz`` read with ``allow_pickle=False``; the zip CRC-32 of each member catches a
garbled file, which is then recomputed with a :class:`CacheWarning`, never fatal.

File digests are memoised per (path, size, mtime_ns, ctime_ns, inode) in ``<root>/digests``
so a rerun does not re-hash big files; any change to the file changes ctime, so a changed
file is re-hashed and misses. Only regular files are hashed: a FIFO or a device is refused
(an ``OSError``, reported as a skipped clip) before anything opens it.

A cache folder that cannot be written (read-only, permission, full disk, no home folder)
gives one :class:`CacheWarning` and the work goes on without storing anything; the first
write into a shard folder also removes the temporaries killed writers left there (older
than a day, :func:`sonotype.utils.io.sweep_stale_temps`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.features.config import FeatureConfig
from sonotype.features.frames import FrameFeatures
from sonotype.utils.io import atomic_write_bytes, file_digest, regular_file_stat, sweep_stale_temps
from sonotype.utils.paths import default_cache_dir

__all__ = ["CACHE_VERSION", "CacheWarning", "FeatureCache"]

CACHE_VERSION = 2  # 2: bandwidth moments summed in float64 near the centroid (values differ up to ~1e-4 from v1)


class CacheWarning(UserWarning):
    """A cache file cannot be read back (truncated, garbled: it is recomputed), or the cache
    folder cannot be written (the work goes on without storing)."""


def warn_unreadable(path: Path, exc: BaseException) -> None:
    """Say that the cache file ``path`` is unusable and will be recomputed (and overwritten)."""
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
    except OSError:
        zipped = True
    # numpy's own words for a non-zip file are about pickles, which would only mislead here.
    why = f"{type(exc).__name__}: {exc}" if zipped else "not a .npz (zip) file: truncated at the start or overwritten"
    warnings.warn(f"cache file {path} is unreadable ({why}); recomputing it", CacheWarning, stacklevel=3)


def _h(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class FeatureCache:
    """Frame-feature store under ``root``.

    Counts, for this process: ``hits`` (clips read back), ``misses`` (clips computed because
    they were not cached) and ``writes`` (files stored).

    Parameters
    ----------
    root : path-like, optional
        Cache folder (default :func:`default_cache_dir`).
    writable : bool
        False: read what is there, store nothing (a worker whose parent found the folder
        read-only). Set to False, with one :class:`CacheWarning`, by the first failed write.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from sonotype.features.frames import compute_frames
    >>> from sonotype.features.config import FeatureConfig
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(f"{tmp}/a.wav", np.zeros(8000, np.float32), 8000)
    >>> cache, cfg = FeatureCache(f"{tmp}/cache"), FeatureConfig(sr=8000)
    >>> key = cache.key(f"{tmp}/a.wav", cfg)
    >>> cache.store(key, compute_frames(np.zeros(8000, np.float32), cfg))
    >>> key in cache, cache.load(key).values.shape
    (True, (16, 37))
    """

    def __init__(self, root: str | os.PathLike | None = None, *, writable: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.writable = writable
        self._digests: dict[tuple, str] = {}
        self._swept: set[Path] = set()

    # -- writing, or going on without -------------------------------------------------
    def disable(self, exc: OSError) -> None:
        """Stop storing, with one :class:`CacheWarning` saying why (the work goes on).

        Parameters
        ----------
        exc : OSError
            What the write failed with.
        """
        if self.writable:
            self.writable = False
            warnings.warn(f"cache folder {self.root} cannot be written ({exc.strerror or exc}): going on without "
                          "storing to the cache (--cache DIR or $SONOTYPE_CACHE choose another)", CacheWarning,
                          stacklevel=3)

    def write(self, path: Path, data: bytes) -> bool:
        """Store ``data`` at ``path`` (under the root) atomically; False when the cache cannot be written.

        The first write into a folder removes the temporaries killed writers left there.

        Parameters
        ----------
        path : pathlib.Path
        data : bytes

        Returns
        -------
        bool
        """
        if not self.writable:
            return False
        try:
            if path.parent not in self._swept:
                self._swept.add(path.parent)
                sweep_stale_temps(path.parent)
            atomic_write_bytes(path, data)
        except OSError as exc:
            self.disable(exc)
            return False
        return True

    def check_writable(self) -> bool:
        """Probe the folder once (a small file written and removed); False, with one warning, when it cannot be written.

        Returns
        -------
        bool
        """
        if self.writable:
            probe = self.root / f".probe-{os.getpid()}"
            if self.write(probe, b"probe"):
                probe.unlink(missing_ok=True)
        return self.writable

    # -- content digests -------------------------------------------------------------
    def digest(self, path: str | os.PathLike, *, compute: bool = True) -> str | None:
        """Content digest of ``path``, re-hashed only when its size, times or inode changed.

        With ``compute=False`` only a memoised digest is returned (None when there is none):
        the parent of a parallel run uses it to find hits without hashing new files itself.

        Parameters
        ----------
        path : path-like
        compute : bool
            Hash the file when no memoised digest is valid.

        Returns
        -------
        str or None
        """
        st = regular_file_stat(path)  # a FIFO or device is refused unopened; a symlink loop is ELOOP
        p = Path(os.path.realpath(path))
        stamp = (str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if stamp in self._digests:
            return self._digests[stamp]
        memo = self.root / "digests" / f"{_h(str(p))}.json"
        try:
            rec = json.loads(memo.read_text())
            if tuple(rec["stamp"]) == stamp:
                self._digests[stamp] = rec["digest"]
                return rec["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if not compute:
            return None
        d = file_digest(p)
        self._digests[stamp] = d
        self.write(memo, json.dumps({"stamp": list(stamp), "digest": d}).encode())  # read-only: it re-hashes
        return d

    # -- keys and files --------------------------------------------------------------
    def key(self, path: str | os.PathLike, fcfg: FeatureConfig, *, start: float = 0.0, duration: float | None = None) -> str:
        """Cache key for a clip of ``path`` under ``fcfg`` (hashes the file if needed).

        Parameters
        ----------
        path : path-like
            The audio file.
        fcfg : FeatureConfig
        start, duration : float
            The part of the file (seconds; ``duration=None``: to the end).

        Returns
        -------
        str
            Changes with the file's content, every feature setting and :data:`CACHE_VERSION`.
        """
        return self._key(str(self.digest(path)), fcfg, start, duration)

    def known_key(
        self, path: str | os.PathLike, fcfg: FeatureConfig, *, start: float = 0.0, duration: float | None = None
    ) -> str | None:
        """Cache key from a memoised digest only; None when the file would need hashing.

        Parameters
        ----------
        path : path-like
            The audio file.
        fcfg : FeatureConfig
        start, duration : float
            The part of the file (seconds; ``duration=None``: to the end).

        Returns
        -------
        str or None
        """
        digest = self.digest(path, compute=False)
        return None if digest is None else self._key(digest, fcfg, start, duration)

    @staticmethod
    def _key(digest: str, fcfg: FeatureConfig, start: float, duration: float | None) -> str:
        material = {
            "version": CACHE_VERSION,
            "digest": digest,
            "features": fcfg.to_dict(),
            "start": float(start),
            "duration": None if duration is None else float(duration),
        }
        return _h(json.dumps(material, sort_keys=True))

    def file_for(self, key: str) -> Path:
        """Where the features of ``key`` are stored.

        Parameters
        ----------
        key : str

        Returns
        -------
        pathlib.Path
        """
        return self.root / "frames" / f"v{CACHE_VERSION}" / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        try:
            return self.file_for(key).is_file()
        except OSError:  # a folder we may not enter: nothing usable there
            return False

    def load(self, key: str) -> FrameFeatures | None:
        """The stored features, or None (missing or unreadable: it is then recomputed).

        Any failure to read an existing file is a miss with a :class:`CacheWarning`: a garbled
        zip raises ``BadZipFile``, ``NotImplementedError``, ``EOFError``, ``MemoryError`` (a
        flipped shape) and more, none of which may stop a corpus run.

        Parameters
        ----------
        key : str

        Returns
        -------
        FrameFeatures or None
        """
        f = self.file_for(key)
        try:
            with np.load(f, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("version") != CACHE_VERSION:
                    return None
                ff = FrameFeatures(
                    values=np.array(z["values"], dtype=np.float32),
                    names=[str(n) for n in z["names"]],
                    groups={k: (int(a), int(b)) for k, (a, b) in meta["groups"].items()},
                    sr=int(meta["sr"]),
                    hop_length=int(meta["hop_length"]),
                )
            if ff.values.ndim != 2 or ff.values.shape[1] != len(ff.names):
                raise ValueError(f"values of shape {ff.values.shape} for {len(ff.names)} names")
        except FileNotFoundError:
            return None
        except PermissionError as exc:  # the folder's, not the file's contents: once, then without storing
            self.disable(exc)
            return None
        except Exception as exc:
            warn_unreadable(f, exc)
            return None
        self.hits += 1
        return ff

    def store(self, key: str, ff: FrameFeatures, *, source: dict[str, Any] | None = None) -> None:
        """Write ``ff`` atomically (temporary file + rename).

        Parameters
        ----------
        key : str
        ff : FrameFeatures
        source : dict, optional
            What the features came from (path, settings), stored beside them for inspection.
        """
        meta = {
            "version": CACHE_VERSION,
            "groups": {k: list(v) for k, v in ff.groups.items()},
            "sr": ff.sr,
            "hop_length": ff.hop_length,
            "source": source or {},
        }
        buf = io.BytesIO()
        np.savez(buf, values=ff.values, names=np.asarray(ff.names, dtype=str), meta=np.asarray(json.dumps(meta)))
        if self.write(self.file_for(key), buf.getvalue()):
            self.writes += 1
