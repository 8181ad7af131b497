"""Atomic file writes and content hashing, shared by caches, model files and reports.

Temporary files and folders are created with ``os.open(..., 0o666)`` / ``os.mkdir(..., 0o777)``
rather than ``tempfile.mkstemp``/``mkdtemp`` (which force 0600/0700): the kernel then applies the
process umask (and any default ACL) at creation, exactly as for a plain ``open``, so every output
ends up 0644/0755 under umask 022 with no racy ``os.umask`` read and no later ``chmod``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sonotype.errors import OutputError, ParameterError

__all__ = [
    "OWNER_FILE",
    "STALE_AFTER_S",
    "NotARegularFileError",
    "atomic_dir",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "file_digest",
    "file_kind",
    "output_errors",
    "regular_file_stat",
    "sweep_stale_temps",
    "write_output_text",
]

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)

# Inside an atomic_dir's temporary folder while it is being built: who builds it (removed before the rename).
OWNER_FILE = ".sonotype-owner"
# A temporary left by a killed writer with no (usable) owner record is removed after this long.
STALE_AFTER_S = 24 * 3600
# What _temp_name makes: ``.<name>.<12 hex>.tmp``.
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")
# Errors that are about where an output goes, whatever file they name; EACCES/EPERM only under the output's folder.
_WRITE_FAULTS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})
_ACCESS_FAULTS = frozenset({errno.EACCES, errno.EPERM})


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


# -- what a path is ----------------------------------------------------------------------


class NotARegularFileError(OSError):
    """A FIFO, a device, a socket or a folder where a regular file is needed (never opened)."""


def file_kind(mode: int) -> str:
    """What ``st_mode`` describes, in words: ``"a FIFO (named pipe)"``, ``"a character device"``...

    Parameters
    ----------
    mode : int
        ``os.stat_result.st_mode``.

    Returns
    -------
    str

    Examples
    --------
    >>> import stat
    >>> file_kind(stat.S_IFIFO | 0o644), file_kind(stat.S_IFREG | 0o644)
    ('a FIFO (named pipe)', 'a regular file')
    """
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return words
    return "a special file"


def regular_file_stat(path: str | os.PathLike) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed), refusing anything but a regular file without opening it.

    Opening a FIFO blocks until a writer comes, and reading a device never ends: whatever
    hashes or decodes a file the user pointed at checks this first.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    os.stat_result

    Raises
    ------
    NotARegularFileError
        A FIFO, device, socket or folder (an ``OSError``, so callers that report unreadable
        files report it too).
    OSError
        Missing, a symlink loop (``ELOOP``), permission denied.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.mkfifo(f"{d}/x.wav")
    >>> regular_file_stat(f"{d}/x.wav")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sonotype.utils.io.NotARegularFileError: [Errno 22] a FIFO (named pipe), not a regular file: '.../x.wav'
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(errno.EINVAL, f"{file_kind(st.st_mode)}, not a regular file", str(path))
    return st


# -- outputs: checked before the work, faults in one line -----------------------------------


def _existing_ancestor(p: Path) -> Path:
    """The nearest folder above ``p`` (or ``p``'s nearest existing parent) that exists."""
    a = p.parent if str(p.parent) else Path(".")
    while not os.path.lexists(a) and a != a.parent:
        a = a.parent
    return a


def _fault_message(dest: Path, exc: OSError) -> str:
    why = exc.strerror or str(exc)
    name = errno.errorcode.get(exc.errno or 0)
    return f"cannot write {dest}: {why}" + (f" ({name})" if name else "") + "; nothing was left behind"


def _probe(dest: Path, need_bytes: int) -> None:
    """Create (and remove) a small file where ``dest`` will be written; check the free space."""
    where = _existing_ancestor(dest)
    if not where.is_dir():
        raise OutputError(f"cannot write {dest}: {where} is {_kind_of(where)}, not a folder")
    fd, tmp = -1, where / f".sonotype-probe.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, _FILE_FLAGS, 0o666)
        os.write(fd, b"\0" * 4096)  # a full disk refuses data, not always an empty file
    except OSError as exc:
        raise OutputError(_fault_message(dest, exc).replace("; nothing was left behind", "")) from None
    finally:
        if fd >= 0:
            os.close(fd)
            tmp.unlink(missing_ok=True)
    if need_bytes > 0:
        try:
            sv = os.statvfs(where)
        except (OSError, AttributeError):  # no statvfs (Windows): the probe above is the check
            return
        free = sv.f_bavail * sv.f_frsize
        if free < need_bytes:
            raise OutputError(f"cannot write {dest}: {free / 1e6:.1f} MB free on {where}, about "
                              f"{need_bytes / 1e6:.1f} MB needed")


def _kind_of(p: Path) -> str:
    try:
        return file_kind(os.stat(p).st_mode)
    except OSError as exc:
        return f"unusable ({exc.strerror or exc})"


def check_output_file(path: str | os.PathLike, *, need_bytes: int = 0) -> Path:
    """Check, before any work, that ``path`` can be written as a file; return it as a Path.

    Refused with one :class:`~sonotype.errors.OutputError` line: an existing folder (or FIFO,
    device...) at ``path``, a parent that is a file, a folder that cannot be written (read-only,
    permission, full: a small probe file is created and removed), less free space than
    ``need_bytes``. The file itself is neither created nor touched.

    Parameters
    ----------
    path : path-like
        The output file (``--csv``, ``--out``, ``--onnx``).
    need_bytes : int
        Free space required on its file system (0: no check beyond the probe).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> check_output_file(f"{d}/out.csv").name
    'out.csv'
    >>> check_output_file(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sonotype.errors.OutputError: ... is an existing folder, not a file: give a file name (e.g. .../out.csv)
    """
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):  # a parent that is a file: the probe names it
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{p} is an existing folder, not a file: give a file name (e.g. {p / 'out.csv'})")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{p} is {file_kind(st.st_mode)}, not a file: give a regular file name")
    _probe(p, need_bytes)
    return p


def check_output_dir(path: str | os.PathLike, *, force: bool = False, need_bytes: int = 0) -> Path:
    """Check, before any work, that a folder can be created at ``path``; return it as a Path.

    Refused: an existing file (or FIFO...) at ``path`` (:class:`~sonotype.errors.OutputError`),
    an existing folder unless ``force`` (:class:`~sonotype.errors.ParameterError`, as
    :class:`atomic_dir`), and whatever :func:`check_output_file` refuses about the parent.

    Parameters
    ----------
    path : path-like
    force : bool
        An existing folder will be replaced.
    need_bytes : int
        Free space required (0: only the probe).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "f").write_text("x")
    >>> check_output_dir(d / "run").name
    'run'
    >>> check_output_dir(d / "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sonotype.errors.OutputError: ... is a regular file, not a folder
    """
    p = Path(path).expanduser()
    if os.path.lexists(p):
        if not p.is_dir():
            raise OutputError(f"{p} is {_kind_of(p)}, not a folder")
        if not force:
            raise ParameterError(f"{p} already exists; pass --force (force=True) to overwrite it")
    _probe(p, need_bytes)
    return p


@contextmanager
def output_errors(dest: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``dest`` into one :class:`~sonotype.errors.OutputError` line.

    Wrap the final write of an output (the atomic writers have removed their temporary file
    by then, so nothing partial is left).

    Parameters
    ----------
    dest : path-like
        The output named in the message.

    Yields
    ------
    None

    Examples
    --------
    >>> import errno
    >>> with output_errors("/data/x.npz"):  # doctest: +ELLIPSIS
    ...     raise OSError(errno.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    ...
    sonotype.errors.OutputError: cannot write /data/x.npz: No space left on device (ENOSPC); nothing was left behind
    """
    try:
        yield
    except OSError as exc:
        raise OutputError(_fault_message(Path(dest), exc)) from None


def write_output_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`check_output_file`, then :func:`atomic_write_text` with :func:`output_errors`.

    Parameters
    ----------
    path : path-like
    text : str

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_output_text(f"{d}/a.csv", "x,y\\n").read_text()
    'x,y\\n'
    >>> write_output_text(d, "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sonotype.errors.OutputError: ... is an existing folder, not a file: give a file name (e.g. .../out.csv)
    """
    p = check_output_file(path)
    with output_errors(p):
        atomic_write_text(p, text)
    return p


def _write_fault(exc: BaseException, dest: Path, tmp: Path) -> bool:
    """Is ``exc`` about writing ``dest``: a full or read-only disk, or permission denied on ``dest``,
    its folder or anything in ``tmp`` (an unreadable input elsewhere is not)?"""
    if not isinstance(exc, OSError) or exc.errno is None:
        return False
    if exc.errno in _WRITE_FAULTS:
        return True
    if exc.errno in _ACCESS_FAULTS and exc.filename is not None:
        try:
            f = Path(os.path.abspath(os.fsdecode(exc.filename)))
        except (TypeError, ValueError):
            return False
        d, t = Path(os.path.abspath(dest)), Path(os.path.abspath(tmp))
        return f in (d, d.parent) or f.is_relative_to(t) or f.is_relative_to(d)
    return False


# -- temporaries of killed writers ----------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2 :].split()[19])  # field 22, counted after "(comm)"
    except (OSError, ValueError, IndexError):
        return None


def _owner_record() -> str:
    pid = os.getpid()
    return json.dumps({"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)})


def _alive(pid: int, start: object) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) is not a probe there: go by age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists (another user's)
        pass
    now = _start_time(pid)
    return not (isinstance(start, int) and now is not None and now != start)  # else a reused PID


def _stale(p: Path, now: float) -> bool:
    """A temporary whose owner process is gone (same machine), or, with no usable owner record, older than a day."""
    try:
        st = os.lstat(p)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        try:
            rec = json.loads((p / OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rec = None
        if isinstance(rec, dict) and rec.get("host") == socket.gethostname() and type(rec.get("pid")) is int:
            return not _alive(rec["pid"], rec.get("start"))
    return now - st.st_mtime > STALE_AFTER_S


def sweep_stale_temps(folder: str | os.PathLike, *, name: str | None = None) -> list[Path]:
    """Remove the temporaries killed writers left in ``folder``; return what was removed.

    A temporary is what :func:`atomic_open` and :class:`atomic_dir` create, ``.<name>.<12 hex>.tmp``
    (only those of ``name`` when given). A folder is removed when its owner record
    (:data:`OWNER_FILE`) names a process of this machine that is gone; one without a usable
    record (an older sonotype's, another machine's) and a file are removed once older than
    :data:`STALE_AFTER_S`. Only ``folder`` itself is listed, nothing below it.

    Parameters
    ----------
    folder : path-like
    name : str, optional
        The destination's name: only its temporaries.

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / ".run.0123456789ab.tmp").mkdir()
    >>> _ = (d / ".run.0123456789ab.tmp" / OWNER_FILE).write_text('{"pid": 999999999, "host": "%s"}' % socket.gethostname())
    >>> [p.name for p in sweep_stale_temps(d, name="run")]
    ['.run.0123456789ab.tmp']
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if m is None or (name is not None and m["name"] != name):
            continue
        p = Path(e.path)
        if not _stale(p, now):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


class atomic_dir:
    """Build a directory under a temporary name and rename it into place on success.

    ``with atomic_dir(dest, force=False) as tmp: ...`` - on error the partial directory is
    removed; an existing ``dest`` is refused unless ``force``.

    Before the work: ``dest`` must not be a file, its folder must take a new folder and a
    small file (read-only, permission, full disk: one :class:`~sonotype.errors.OutputError`
    line), and temporaries of this ``dest`` left by killed runs are removed (with a
    warning). The temporary folder holds :data:`OWNER_FILE` (this process) while it is
    built. A full disk, a read-only file system or a permission error under the output's
    folder during the work is one ``OutputError`` line naming ``dest``, nothing left behind.

    Parameters
    ----------
    dest : path-like
        The final folder.
    force : bool
        Replace an existing ``dest`` (only once the new one is complete).
    need_bytes : int
        Free space required before the work starts (0: the probe only).

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

    def __init__(self, dest: str | os.PathLike, *, force: bool = False, need_bytes: int = 0) -> None:
        self.dest = Path(dest)
        self.force = force
        self.need_bytes = need_bytes

    def __enter__(self) -> Path:
        if os.path.lexists(self.dest) and not self.dest.is_dir():
            raise OutputError(f"{self.dest} is {_kind_of(self.dest)}, not a folder")
        if self.dest.exists() and not self.force:
            raise ParameterError(f"{self.dest} already exists; pass --force (force=True) to overwrite it")
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(_fault_message(self.dest, exc).replace("; nothing was left behind", "")) from None
        removed = sweep_stale_temps(self.dest.parent, name=self.dest.name)
        if removed:
            warnings.warn(f"removed {len(removed)} temporary folder(s) left in {self.dest.parent} by killed runs: "
                          f"{', '.join(p.name for p in removed)}", UserWarning, stacklevel=2)
        self.tmp = None
        try:
            self.tmp = _create_temp_dir(self.dest)
            with open(self.tmp / OWNER_FILE, "w", encoding="utf-8") as f:  # also the probe: a full disk fails here
                f.write(_owner_record())
        except OSError as exc:
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            raise OutputError(_fault_message(self.dest, exc)) from None
        if self.need_bytes:
            try:
                _probe(self.tmp / "probe", self.need_bytes)
            except OutputError as exc:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise OutputError(str(exc).replace(str(self.tmp / "probe"), str(self.dest))) from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OutputError) and str(self.tmp) in str(exc):  # a nested atomic_dir: name ours
                raise OutputError(str(exc).replace(str(self.tmp), str(self.dest))) from None
            if _write_fault(exc, self.dest, self.tmp):
                raise OutputError(_fault_message(self.dest, exc)) from None
            return
        try:
            (self.tmp / OWNER_FILE).unlink(missing_ok=True)
            if self.dest.exists():
                old = self.dest.with_name(f".{self.dest.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.dest, old)
                try:
                    os.replace(self.tmp, self.dest)
                except OSError:
                    os.replace(old, self.dest)  # put the previous one back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.dest)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise OutputError(_fault_message(self.dest, exc)) from None


def file_digest(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """BLAKE2b digest (hex, 32 chars) of a file's bytes: the content key of every cache.

    Only a regular file is opened: a FIFO, a device or a socket is refused
    (:class:`NotARegularFileError`) before anything could block on it.

    Parameters
    ----------
    path : path-like
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str

    Raises
    ------
    OSError
        Missing or unreadable, a symlink loop, or not a regular file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_bytes(b"sonotype")
    >>> file_digest(d / "a.txt") == file_digest(d / "a.txt"), len(file_digest(d / "a.txt"))
    (True, 32)
    """
    regular_file_stat(path)
    h = hashlib.blake2b(digest_size=16)
    # O_NONBLOCK: should a FIFO be swapped in after the check, the open does not wait for a writer.
    with os.fdopen(os.open(path, _READ_FLAGS), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise NotARegularFileError(errno.EINVAL, "not a regular file", str(path))
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
