"""Fetch corpora: resumable HTTP downloads, checksum checks, safe extraction.

``download`` writes into ``<dest>.part`` and renames it into place only once the transfer is
complete and its checksum matches, so an interrupted run never leaves a file that looks
finished; the next run resumes the ``.part`` with an HTTP ``Range`` request. ``extract``
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

from ..errors import CorpusError, DownloadError

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


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool) -> tuple[int, int | None]:
    """One HTTP request that appends to ``part``; returns (bytes on disk, expected total)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the part is complete
            return offset, offset
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    with resp:
        if offset and resp.status != 206:
            _say(progress, f"  server ignored the resume request; starting {part.name} again")
            offset = 0
        total = _total_from(resp, offset)
        mode = "ab" if offset else "wb"
        done, shown = offset, -1
        with open(part, mode) as f:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    if progress and total:
                        pct = int(100 * done / total)
                        if pct // 10 != shown:
                            shown = pct // 10
                            print(
                                f"\r  {part.name[:-5]}: {pct:3d}% of {total / 1e6:.1f} MB",
                                end="",
                                file=sys.stderr,
                            )
            except (http.client.IncompleteRead, OSError):
                pass  # a cut connection is handled like a short body below
        if progress and total:
            print(file=sys.stderr)
    return part.stat().st_size, total


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
        Further attempts (each resuming) when the server sends fewer bytes than announced.

    Returns
    -------
    Path
        The finished file. A ``dest`` already present whose checksum matches is not fetched again.

    Raises
    ------
    DownloadError
        Network failure, truncated transfer after all retries, or checksum mismatch.
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
    if out.exists():
        if sha256 is None and md5 is None:
            _say(progress, f"{out} already present (no checksum to verify); not downloading again")
            return out
        try:
            _verify(out, url, sha256, md5)
            _say(progress, f"{out} already present and verified")
            return out
        except DownloadError:
            _say(progress, f"{out} present but its checksum differs; downloading again")
            out.unlink()
    part = out.with_name(out.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)
    _say(progress, f"downloading {url} -> {out}")
    size, total = 0, None
    for _ in range(max(0, retries) + 1):
        size, total = _fetch_once(url, part, timeout=timeout, progress=progress)
        if total is None or size >= total:
            break
        if not resume:
            break
        _say(progress, f"  transfer cut short at {size} of {total} bytes; resuming")
    if total is not None and size > total:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: received {size} bytes, more than the {total} announced; the partial file was removed"
        )
    if total is not None and size < total:
        raise DownloadError(
            f"truncated transfer from {url}: {size} of {total} bytes received"
            + (f"; run again to resume from {part}" if resume else "")
        )
    try:
        _verify(part, url, sha256, md5)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)
    if sha256 is None and md5 is None:
        _say(progress, f"  no checksum known; sha256 of {out.name}: {_digest(out, 'sha256')}")
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
    from .base import DOWNLOAD_DIR, get_loader

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
