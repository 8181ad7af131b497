"""Fetch corpora: resumable HTTP downloads, checksum checks, safe extraction.

``download`` writes into ``<dest>.part`` and renames it into place only once the transfer is
known to be complete (checksum match; else exactly the announced size, or a chunked body the
server ended) so an interrupted run never leaves a file that looks finished; the next run
resumes the ``.part`` with an HTTP ``Range`` request. Files without a known checksum carry a
``.<name>.complete`` record (size, sha256); one without it is partial. Write errors (disk
full) are raised as :class:`DownloadError` naming the file, never taken for a short body. ``extract``
refuses archive members that would land outside the destination (``../`` or absolute
names, links pointing out). ``download_corpus`` reads each corpus module's ``DOWNLOADS``
constant; corpora without a public address define ``MANUAL`` (the manual steps) instead,
and corpora that need more than one archive define ``fetch(dest, *, progress)``.

Only the standard library (urllib) is used.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from sonotype.errors import CorpusError, DownloadError

__all__ = ["Resource", "download", "download_corpus", "extract", "fetch_dataverse"]

CHUNK = 1 << 16
USER_AGENT = "sonotype-downloader/0.1 (+https://github.com/)"


@dataclass(frozen=True)
class Resource:
    """One file to fetch: address, local file name, known checksums, whether to unpack it."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    extract: bool = True


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> None:
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want is None:
            continue
        got = _digest(path, algo)
        if got.lower() != want.lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algo} {want.lower()}, got {got} ({path})"
            )


def _total_from(resp: http.client.HTTPResponse, offset: int) -> int | None:
    if resp.status == 206:
        cr = resp.headers.get("Content-Range", "")
        if "/" in cr and cr.rsplit("/", 1)[1].strip().isdigit():
            return int(cr.rsplit("/", 1)[1])
        cl = resp.headers.get("Content-Length")
        return offset + int(cl) if cl and cl.isdigit() else None
    cl = resp.headers.get("Content-Length")
    return int(cl) if cl and cl.isdigit() else None


def _write_error(part: Path, exc: OSError) -> DownloadError:
    """A failed write (disk full, permissions) is never a short transfer: say so, keep the part."""
    why = exc.strerror or str(exc)
    code = f" (errno {exc.errno})" if exc.errno else ""
    return DownloadError(
        f"cannot write {part}: {why}{code}; the {part.stat().st_size if part.exists() else 0} bytes "
        "received so far are kept, so a later run resumes once the problem is fixed"
    )


@dataclass(frozen=True)
class _Transfer:
    """What one request left on disk: bytes in the part, the announced total, how the body ended.

    ``ended`` is ``"length"`` (exactly the announced size), ``"chunked"`` (the chunked encoding's
    final empty chunk arrived, so the server said it was done), ``"eof"`` (the server closed the
    connection with no length announced: a complete body and a cut one look the same) or
    ``"cut"`` (the body stopped short or the connection failed while reading).
    """

    size: int
    total: int | None
    ended: str


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool) -> _Transfer:
    """One HTTP request that appends to ``part``."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Nothing left to send. Only a server that states the full size ("bytes */N") proves
            # the part is whole; otherwise the part cannot be trusted and is fetched again.
            cr = exc.headers.get("Content-Range", "") if exc.headers is not None else ""
            total = cr.rsplit("/", 1)[1].strip() if "/" in cr else ""
            if total.isdigit() and int(total) == offset:
                return _Transfer(offset, offset, "length")
            _say(progress, f"  server refused to resume {part.name} without stating its size; starting again")
            part.unlink()
            return _fetch_once(url, part, timeout=timeout, progress=progress)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    with resp:
        if offset and resp.status != 206:
            _say(progress, f"  server ignored the resume request; starting {part.name} again")
            offset = 0
        total = _total_from(resp, offset)
        chunked = bool(getattr(resp, "chunked", False))
        done, shown, cut = offset, -1, False
        try:  # read errors are caught inside: an OSError reaching the handler is the disk's
            with open(part, "ab" if offset else "wb") as f:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except http.client.IncompleteRead as exc:  # a chunked body cut: keep what came
                        block, cut = exc.partial, True
                    except (http.client.HTTPException, OSError):  # reset, timeout, bad framing
                        block, cut = b"", True
                    if block:
                        f.write(block)
                    if cut or not block:
                        break
                    done += len(block)
                    if progress and total:
                        pct = int(100 * done / total)
                        if pct // 10 != shown:
                            shown = pct // 10
                            print(f"\r  {part.name[:-5]}: {pct:3d}% of {total / 1e6:.1f} MB", end="", file=sys.stderr)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _write_error(part, exc) from None
        if progress and total:
            print(file=sys.stderr)
    size = part.stat().st_size
    if total is not None:
        ended = "length" if size == total and not cut else "cut"
    elif cut:
        ended = "cut"
    else:
        ended = "chunked" if chunked else "eof"
    return _Transfer(size, total, ended)


def _marker(out: Path) -> Path:
    """The completed-transfer record of ``out`` (hidden, beside it)."""
    return out.with_name(f".{out.name}.complete")


def _read_marker(out: Path) -> dict | None:
    try:
        rec = json.loads(_marker(out).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _is_complete(out: Path) -> bool:
    """True when ``out`` matches its completed-transfer record (size and sha256)."""
    rec = _read_marker(out)
    if rec is None or rec.get("size") != out.stat().st_size:
        return False
    return rec.get("sha256") == _digest(out, "sha256")


def _already_there(out: Path, part: Path, url: str, sha256: str | None, md5: str | None, *, resume: bool,
                   progress: bool) -> bool:
    """Whether the existing ``out`` is the finished download; if not it is removed, or kept as
    the ``.part`` to resume when it may be one cut short."""
    if sha256 is not None or md5 is not None:
        try:
            _verify(out, url, sha256, md5)
            _say(progress, f"{out} already present and verified")
            return True
        except DownloadError:
            _say(progress, f"{out} present but its checksum differs; downloading again")
            out.unlink()
            return False
    if _is_complete(out):
        _say(progress, f"{out} already present (complete transfer recorded); not downloading again")
        return True
    # Written by something that did not record a complete transfer (an older version, a
    # copy cut short): treat it as the partial file it may be, and resume it.
    _say(progress, f"{out} present but not recorded as a complete transfer; resuming it as partial")
    if resume and not part.exists():
        os.replace(out, part)
    else:
        out.unlink()
    return False


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    resume: bool = True,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (a file path, or an existing folder to put it in).

    A file is renamed into place only when the transfer is known to be complete: its checksum
    matches, or (no checksum known) it has exactly the size the server announced, or the
    server ended a chunked body properly. A body with neither a length nor a checksum cannot
    be told from a cut one, so it is refused (the ``.part`` is kept). Without a checksum the
    finished file gets a record ``.<name>.complete`` (size, sha256, how it was verified); a
    file found without a matching record is treated as partial and resumed.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` address.
    dest : path-like
        Target file; when an existing folder, the URL's last path component is the name.
    sha256, md5 : str, optional
        Expected hex digests; a mismatch raises :class:`DownloadError` with both digests and
        removes the bad file. With neither, the computed sha256 is printed so it can be recorded.
    resume : bool
        Continue an existing ``<dest>.part`` with a ``Range`` request (else start over).
    retries : int
        Further attempts (each resuming) when the transfer is cut short.

    Returns
    -------
    Path
        The finished file. A ``dest`` already present and verified is not fetched again.

    Raises
    ------
    DownloadError
        Network failure, truncated transfer after all retries, unverifiable transfer, checksum
        mismatch, or a write error (disk full: the path and the reason are given).
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"only http(s) addresses can be downloaded, got {url!r}")
    out = Path(dest)
    if out.is_dir():
        name = PurePosixPath(urllib.parse.urlsplit(url).path).name
        if not name:
            raise DownloadError(f"cannot derive a file name from {url!r}; give a file path as dest")
        out = out / urllib.parse.unquote(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    checked = sha256 is not None or md5 is not None
    if out.exists() and _already_there(out, part, url, sha256, md5, resume=resume, progress=progress):
        return out
    _marker(out).unlink(missing_ok=True)
    if not resume:
        part.unlink(missing_ok=True)
    _say(progress, f"downloading {url} -> {out}")
    t = _Transfer(0, None, "cut")
    for _ in range(max(0, retries) + 1):
        t = _fetch_once(url, part, timeout=timeout, progress=progress)
        if t.ended != "cut" or (t.total is not None and t.size > t.total):
            break
        if not resume:
            break
        got = f"{t.size} of {t.total}" if t.total is not None else f"{t.size}"
        _say(progress, f"  transfer cut short at {got} bytes; resuming")
    if t.total is not None and t.size > t.total:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: received {t.size} bytes, more than the {t.total} announced; the partial file was removed"
        )
    if t.ended == "cut":
        got = f"{t.size} of {t.total} bytes received" if t.total is not None else (
            f"the connection failed after {t.size} bytes (no length announced)"
        )
        raise DownloadError(
            f"truncated transfer from {url}: {got}" + (f"; run again to resume from {part}" if resume else "")
        )
    try:
        _verify(part, url, sha256, md5)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    if not checked and t.ended == "eof":
        raise DownloadError(
            f"{url}: the server announced no length and no checksum is known, so a complete transfer "
            f"cannot be told from a cut one; {t.size} bytes are kept in {part}. Check them and pass "
            f"sha256={_digest(part, 'sha256')!r} (sonotype corpus download --sha256) to accept them"
        )
    digest = _digest(part, "sha256")
    os.replace(part, out)
    if not checked:
        how = {"length": "size matches Content-Length", "chunked": "chunked body ended by the server"}[t.ended]
        record = {"url": url, "size": t.size, "sha256": digest, "verified_by": how}
        from sonotype.utils.io import atomic_write_text

        atomic_write_text(_marker(out), json.dumps(record, indent=2) + "\n")
        _say(progress, f"  no checksum known; sha256 of {out.name}: {digest}")
    return out


def _check_member(name: str, dest: Path) -> Path:
    target = (dest / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(dest):
        raise DownloadError(f"refusing to extract {name!r}: it would land outside {dest}")
    return target


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a zip or tar archive (any compression tarfile reads) into ``dest``.

    Every member is checked before anything is written: absolute names, ``..`` escapes and
    links pointing outside ``dest`` raise :class:`DownloadError`.
    """
    src = Path(archive)
    if not src.is_file():
        raise DownloadError(f"archive not found: {src}")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as z:
            for info in z.infolist():
                _check_member(info.filename, root)
            z.extractall(root)
        return root
    if tarfile.is_tarfile(src):
        with tarfile.open(src) as t:
            members = t.getmembers()
            for m in members:
                target = _check_member(m.name, root)
                if m.issym() or m.islnk():
                    base = root if m.islnk() else target.parent
                    link = (base / m.linkname).resolve()
                    if os.path.isabs(m.linkname) or not link.is_relative_to(root):
                        raise DownloadError(
                            f"refusing to extract link {m.name!r} -> {m.linkname!r}: it points outside {root}"
                        )
                elif not (m.isfile() or m.isdir()):
                    raise DownloadError(f"refusing to extract {m.name!r}: not a regular file or folder")
            t.extractall(root, members=members, filter="data")
        return root
    raise DownloadError(f"{src} is neither a zip nor a tar archive")


def fetch_dataverse(server: str, doi: str, dest: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download every file of a Dataverse dataset, each verified against its published MD5.

    Files keep the dataset's folder labels; ones already present and verified are skipped.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    api = f"{server.rstrip('/')}/api"
    url = f"{api}/datasets/:persistentId/?persistentId={urllib.parse.quote(doi, safe=':/')}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"User-Agent": USER_AGENT}), timeout=60
        ) as r:
            files = json.load(r)["data"]["latestVersion"]["files"]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        raise DownloadError(f"{url}: cannot read the dataset's file list ({exc})") from None
    for i, entry in enumerate(files, 1):
        df = entry["dataFile"]
        name = df.get("originalFileName") or df["filename"]
        folder = entry.get("directoryLabel") or ""
        target = root / folder / name
        _check_member(str(PurePosixPath(folder) / name), root)
        md5 = df.get("md5") or (
            df.get("checksum", {}).get("value") if df.get("checksum", {}).get("type") == "MD5" else None
        )
        _say(progress, f"[{i}/{len(files)}] {folder + '/' if folder else ''}{name}")
        download(f"{api}/access/datafile/{df['id']}?format=original", target, md5=md5, progress=False)
    return root


def download_corpus(
    name: str, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True
) -> Path:
    """Fetch and unpack corpus ``name`` into ``dest`` using the module's ``DOWNLOADS``.

    Archives go to ``dest/.sonotype-downloads/`` (which loaders never scan) and are unpacked into ``dest``; a marker file records
    finished extractions so a second run does no work. Corpora with no public address raise
    :class:`DownloadError` whose message gives the manual steps. ``sha256`` pins the digest of
    a corpus that has exactly one archive (for copies whose digest you recorded yourself).
    """
    from sonotype.corpora.base import DOWNLOAD_DIR, get_loader

    get_loader(name)  # unknown names -> CorpusError listing the known ones
    try:
        module = importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError:
        raise CorpusError(f"corpus {name!r} has no module with download information") from None
    root = Path(dest)
    manual = getattr(module, "MANUAL", None)
    if manual:
        raise DownloadError(f"{name} cannot be downloaded automatically.\n{manual.strip().format(dest=root)}")
    fetch = getattr(module, "fetch", None)
    if callable(fetch):
        if sha256 is not None:
            raise DownloadError(
                f"{name} is fetched file by file with published checksums; --sha256 does not apply"
            )
        return fetch(root, progress=progress)
    resources: tuple[Resource, ...] = getattr(module, "DOWNLOADS", ())
    if not resources:
        raise DownloadError(f"{name}: no download address is known; place the files under {root} yourself")
    if sha256 is not None:
        if len(resources) != 1:
            raise DownloadError(
                f"{name}: --sha256 needs a corpus with exactly one archive, {name} has {len(resources)}"
            )
        resources = (replace(resources[0], sha256=sha256),)
    for res in resources:
        archive = download(
            res.url, root / DOWNLOAD_DIR / res.filename, sha256=res.sha256, md5=res.md5, progress=progress
        )
        marker = root / DOWNLOAD_DIR / f"{res.filename}.extracted"
        if res.extract and not marker.exists():
            _say(progress, f"extracting {archive.name} -> {root}")
            extract(archive, root)
            marker.write_text(archive.name + "\n")
    return root
