"""Where the natively run encoders' released weights come from, and ``sonotype backbone fetch`` for them.

Two kinds of source, one entry per encoder in :data:`NATIVE_SOURCES`:

- :class:`WheelSource` (``musicnn-msd``): a wheel on a Python package index. Its file entry is
  looked up through the index's JSON API (``{index}/pypi/{package}/{version}/json``); an index
  that has no JSON API (a mirror serving only the "simple" API) is asked
  ``{index}/simple/{package}/`` (PEP 691 JSON, else PEP 503 HTML) instead. The sha256 the index
  lists must be the pinned one before anything is downloaded, and the downloaded file's too.
  The two checkpoint members and the tag names are read out of the zip; the tag names by
  ``ast.literal_eval`` of one assignment in the package's source text. Nothing from the wheel
  is installed, imported or run.
- :class:`ReleaseSource` (``efficientat-mn04``): one file at a fixed address (a GitHub release
  asset, which redirects to a CDN). Its sha256 is recorded and compared with the known value,
  but the digest of its tensors decides: the file hash in the README could not be checked
  against the release, so a file whose hash differs while its tensors are exactly the released
  ones is used with a warning. The release holds weights only: the 527 AudioSet class names
  ship with sonotype (``backbones/data/audioset_labels.csv``, CC BY 4.0, see its README).

A download is streamed into ``<dir>/.<name>.download/<file>.part`` by
:func:`sonotype.corpora.download.download` (a timeout per read, retries, a rerun resumes the
``.part`` with an HTTP ``Range`` request). The encoder is converted into a hidden temporary
folder beside ``<dir>/<name>``, its tensor digest checked, the folder loaded once, a
``sonotype-backbone.json`` record written (source address, file sha256, tensor digest), and
only then renamed into place; the downloaded file is deleted afterwards. A file with a wrong
checksum or the wrong tensors is deleted at once, so a failed fetch leaves nothing but what was
there before (and, after an interrupted transfer, the ``.part`` to resume).

Examples
--------
>>> fetch_native("musicnn-msd").folder  # doctest: +SKIP
PosixPath('/home/me/.cache/sonotype/backbones/musicnn-msd')
>>> fetch_native("musicnn-msd", source_file="musicnn-0.1.0-py3-none-any.whl")  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sonotype.backbones import efficientat, musicnn
from sonotype.backbones.folders import MARKER_FILE, backbones_home, offline, read_marker
from sonotype.backbones.native import load_native, read_native_config
from sonotype.corpora.download import USER_AGENT, download
from sonotype.errors import ConfigError, DownloadError, ModelError
from sonotype.utils.io import atomic_write_text

__all__ = [
    "AUDIOSET_LABELS",
    "AUDIOSET_LABELS_SHA256",
    "DEFAULT_INDEX",
    "MUSICNN_MSD_LABELS_SHA256",
    "MUSICNN_MSD_TENSOR_DIGEST",
    "NATIVE_SOURCES",
    "PYPI_ENV",
    "Fetched",
    "Listed",
    "ReleaseSource",
    "WheelSource",
    "fetch_native",
    "index_url",
    "labels_digest",
    "labels_from_source",
    "sha256_file",
]

PYPI_ENV = "SONOTYPE_PYPI_URL"  # the package index musicnn's wheel is looked up in
DEFAULT_INDEX = "https://pypi.org"
MAX_LISTING = 32 << 20  # bytes of an index page read at most
MAX_MEMBER = 256 << 20  # bytes of one zip member read at most (the checkpoint data is 9.5 MB)

# musicnn.tensor_digest of the MSD_musicnn checkpoint of the musicnn 0.1.0 wheel, converted
# (../shared/models/musicnn-msd: the same .index/.data bytes as the wheel's members).
MUSICNN_MSD_TENSOR_DIGEST = "9fc7e6e58451e0b5a3a361f93031c7d8ea5e0c6c3a6f4cf4f2c91f97673b47c6"
# labels_digest of the 50 MSD tags (musicnn/configuration.py's MSD_LABELS, the README's labels.txt)
MUSICNN_MSD_LABELS_SHA256 = "eff11f6d83f4706bcdbb6897a8fbbb37c6f4419b7939de7db6432d809164235f"

AUDIOSET_LABELS = Path(__file__).resolve().parent / "data" / "audioset_labels.csv"
AUDIOSET_LABELS_SHA256 = "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def labels_digest(labels: list[str]) -> str:
    """sha256 of the label names joined by newlines (order matters: it is the output order)."""
    return hashlib.sha256("\n".join(labels).encode("utf-8")).hexdigest()


def index_url(given: str | None = None) -> str:
    """The package index root: ``given``, else ``$SONOTYPE_PYPI_URL``, else https://pypi.org.

    A trailing ``/simple`` (the form pip's ``--index-url`` takes) is dropped.
    """
    url = (given or os.environ.get(PYPI_ENV) or DEFAULT_INDEX).strip().rstrip("/")
    if url.endswith("/simple"):
        url = url[: -len("/simple")]
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"package index {url!r} is not an http(s) address (set {PYPI_ENV} or --index-url)")
    return url


def labels_from_source(text: bytes | str, variable: str, where: str) -> list[str]:
    """The list of strings assigned to ``variable`` in Python source text, read with ``ast.literal_eval`` (never run).

    Raises
    ------
    ModelError
        Not parseable, no such assignment, or not a non-empty list of strings.
    """
    try:
        tree = ast.parse(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{where}: cannot parse it as Python source to read {variable} ({type(exc).__name__})") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if getattr(node, "value", None) is None or not any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            continue
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ModelError(f"{where}: {variable} is not a literal list") from None
        if isinstance(value, list | tuple) and value and all(isinstance(x, str) for x in value):
            return [str(x) for x in value]
        raise ModelError(f"{where}: {variable} is not a non-empty list of strings")
    raise ModelError(f"{where}: no assignment to {variable}")


# ------------------------------------------------------------------------------- index look-up
@dataclass(frozen=True)
class Listed:
    """A file as a package index lists it."""

    url: str
    sha256: str | None
    size: int | None
    api: str  # "json" (the JSON API) or "simple" (PEP 691 / PEP 503)
    page: str  # the address asked


class _Links(HTMLParser):
    """``(href, text)`` of every ``<a>`` of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _get(url: str, *, timeout: float, accept: str | None = None) -> tuple[bytes, str, str]:
    """(body, content type, final address) of a GET; ``urllib.error.HTTPError``/``URLError`` pass through."""
    headers = {"User-Agent": USER_AGENT}
    if accept:
        headers["Accept"] = accept
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        body = resp.read(MAX_LISTING + 1)
        if len(body) > MAX_LISTING:
            raise DownloadError(f"{url}: the index page is larger than {MAX_LISTING >> 20} MB; not an index listing")
        return body, resp.headers.get("Content-Type", ""), resp.geturl()


def _unreachable(where: str, what: str, exc: BaseException) -> DownloadError:
    reason = getattr(exc, "reason", None) or exc
    return DownloadError(f"cannot reach {where} to {what} ({str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__}); "
                         f"check the network (or {PYPI_ENV} / --url for another address), or pass --from FILE with a copy you have")


# ------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class WheelSource:
    """An encoder's weights inside a wheel on a package index (musicnn).

    Attributes
    ----------
    package, version, filename : str
        The distribution, its version and the wheel's file name.
    sha256 : str
        The wheel's pinned sha256: the index's listed value and the downloaded file must match it.
    members : tuple of str
        The checkpoint's ``.index`` and ``.data-00000-of-00001`` inside the wheel.
    labels_member, labels_variable : str
        The source file holding the tag names, and the variable they are assigned to.
    labels_sha256, tensor_digest : str or None
        :func:`labels_digest` of the tag names and the converted tensors' digest (None: not checked).
    """

    package: str
    version: str
    filename: str
    sha256: str
    members: tuple[str, str]
    labels_member: str
    labels_variable: str
    labels_sha256: str | None
    tensor_digest: str | None
    kind: str = "wheel"

    def page(self, index: str) -> str:
        return f"{index}/project/{self.package}/{self.version}/"

    def locate(self, index: str, *, timeout: float) -> Listed:
        """The wheel's address and listed sha256, through the JSON API, else the simple API."""
        api = f"{index}/pypi/{urllib.parse.quote(self.package)}/{urllib.parse.quote(self.version)}/json"
        what = f"look up {self.package} {self.version}"
        try:
            body, _, final = _get(api, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code not in (404, 403, 405, 406, 410):
                raise DownloadError(f"{api}: HTTP {exc.code} {exc.reason} while trying to {what}") from None
            return self._simple(index, timeout=timeout, json_status=exc.code)
        except (urllib.error.URLError, OSError) as exc:
            raise _unreachable(index, what, exc) from None
        try:
            entries = json.loads(body)["urls"]
            files = {str(e["filename"]): e for e in entries}
        except (ValueError, KeyError, TypeError):
            raise DownloadError(f"{api}: not a package index JSON answer (no 'urls' list of files)") from None
        e = files.get(self.filename)
        if e is None:
            raise DownloadError(f"{api}: {self.package} {self.version} lists no file {self.filename} "
                                f"(files: {', '.join(sorted(files)) or 'none'})")
        digests = e.get("digests") if isinstance(e.get("digests"), dict) else {}
        size = e.get("size")
        return Listed(urllib.parse.urljoin(final, str(e.get("url", ""))), digests.get("sha256"),
                      int(size) if isinstance(size, int) else None, "json", api)

    def _simple(self, index: str, *, timeout: float, json_status: int) -> Listed:
        page = f"{index}/simple/{urllib.parse.quote(self.package)}/"
        accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
        try:
            body, ctype, final = _get(page, timeout=timeout, accept=accept)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise DownloadError(f"{self.package} {self.version} is not on the package index {index} "
                                    f"(HTTP {json_status} from its JSON API, 404 from {page})") from None
            raise DownloadError(f"{page}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _unreachable(index, f"look up {self.package} {self.version}", exc) from None
        found: dict[str, Listed] = {}
        if "json" in ctype:
            try:
                for e in json.loads(body)["files"]:
                    hashes = e.get("hashes") if isinstance(e.get("hashes"), dict) else {}
                    size = e.get("size")
                    found[str(e["filename"])] = Listed(urllib.parse.urljoin(final, str(e["url"])), hashes.get("sha256"),
                                                       int(size) if isinstance(size, int) else None, "simple", page)
            except (ValueError, KeyError, TypeError):
                raise DownloadError(f"{page}: not a simple-API JSON answer (no 'files' list)") from None
        else:
            parser = _Links()
            parser.feed(body.decode("utf-8", "replace"))
            for href, text in parser.links:
                parts = urllib.parse.urlsplit(urllib.parse.urljoin(final, href))
                name = text or urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
                frag = dict(p.split("=", 1) for p in parts.fragment.split("&") if "=" in p)
                found[name] = Listed(urllib.parse.urlunsplit(parts._replace(fragment="")), frag.get("sha256"), None,
                                     "simple", page)
        if self.filename not in found:
            raise DownloadError(f"{page}: the package index lists no {self.filename} "
                                f"({len(found)} other files of {self.package})")
        return found[self.filename]

    def labels_from_zip(self, z: zipfile.ZipFile, where: str) -> list[str]:
        return labels_from_source(z.read(self.labels_member), self.labels_variable, f"{where}:{self.labels_member}")

    def read(self, path: Path) -> tuple[bytes | Path, bytes | Path, list[str], str]:
        """(index, data, labels, what was read) from the wheel (a zip) or a checkpoint folder."""
        if path.is_dir():
            return self._read_folder(path)
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                missing = [m for m in (*self.members, self.labels_member) if m not in names]
                if missing:
                    raise ModelError(f"{path.name}: the zip has no {', '.join(missing)}: not the {self.package} "
                                     f"{self.version} wheel")
                big = [m for m in (*self.members, self.labels_member) if z.getinfo(m).file_size > MAX_MEMBER]
                if big:
                    raise ModelError(f"{path.name}: {big[0]} claims {z.getinfo(big[0]).file_size} bytes, more than a "
                                     "checkpoint holds")
                index, data = z.read(self.members[0]), z.read(self.members[1])
                labels = self.labels_from_zip(z, path.name)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise ModelError(f"{path}: not a readable zip/wheel ({type(exc).__name__}: {exc})") from None
        return index, data, labels, f"{', '.join(self.members)} and {self.labels_member} of the wheel"

    def _read_folder(self, folder: Path) -> tuple[Path, Path, list[str], str]:
        """A checkpoint folder: the two members by name, tag names from ``labels.txt`` or a
        ``configuration.py`` beside it or one level up (an unpacked or installed package)."""
        index, data = (folder / Path(m).name for m in self.members)
        missing = [p.name for p in (index, data) if not p.is_file()]
        if missing:
            raise ModelError(f"{folder}: no {' or '.join(missing)}; give the {self.filename} wheel or a folder "
                             "holding the checkpoint (.index, .data-00000-of-00001) and labels.txt")
        if (folder / "labels.txt").is_file():
            try:
                text = (folder / "labels.txt").read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ModelError(f"{folder / 'labels.txt'}: not UTF-8 text") from None
            return index, data, [line.strip() for line in text.splitlines() if line.strip()], "the folder's labels.txt"
        for conf in (folder / "configuration.py", folder.parent / "configuration.py"):
            if conf.is_file():
                return index, data, labels_from_source(conf.read_bytes(), self.labels_variable, str(conf)), str(conf)
        raise ModelError(f"{folder}: no labels.txt (the tag names in output order, one a line) and no "
                         "configuration.py beside it")

    def convert(self, path: Path, out: Path) -> None:
        index, data, labels, _ = self.read(path)
        if self.labels_sha256 is not None and labels_digest(labels) != self.labels_sha256:
            raise ModelError(f"{path}: its {len(labels)} tag names are not musicnn's 50 MSD tags in order "
                             f"(first: {', '.join(labels[:3])})")
        musicnn.convert(index, data, labels, out)


@dataclass(frozen=True)
class ReleaseSource:
    """An encoder's weights as one state-dict file at a fixed address (EfficientAT).

    Attributes
    ----------
    url, filename : str
        Where the file is downloaded from (redirects followed) and its name.
    sha256 : str or None
        The file hash known so far: a difference is reported, not fatal (the tensors decide).
    tensor_digest : str or None
        The digest the converted tensors must have (None: not checked).
    model, width_mult : str, float
        Passed to :func:`sonotype.backbones.efficientat.convert` (``mn04_as`` is tied there to
        the release's tensor digest).
    labels_csv, labels_sha256 : path or None, str or None
        The class names (default the packaged AudioSet list) and their file's sha256.
    """

    url: str
    filename: str
    sha256: str | None
    tensor_digest: str | None
    model: str = "mn04_as"
    width_mult: float = 0.4
    labels_csv: Path | None = None
    labels_sha256: str | None = AUDIOSET_LABELS_SHA256
    kind: str = "release"

    def convert(self, path: Path, out: Path) -> None:
        if path.is_dir():
            raise ModelError(f"{path}: a folder; give the {self.filename} file itself")
        labels = Path(self.labels_csv) if self.labels_csv is not None else AUDIOSET_LABELS
        if self.labels_sha256 is not None:
            try:
                got = sha256_file(labels)
            except OSError as exc:
                raise ModelError(f"{labels}: cannot read the class names ({exc.strerror or exc}); reinstall sonotype") from None
            if got != self.labels_sha256:
                raise ModelError(f"{labels}: sha256 {got} is not the AudioSet class list's; reinstall sonotype")
        efficientat.convert(path, labels, out, name=self.model, width_mult=self.width_mult)


NativeSource = WheelSource | ReleaseSource

# One entry per natively converted encoder (its folder name: ``catalog.NATIVE_ENCODERS``).
NATIVE_SOURCES: dict[str, NativeSource] = {
    "musicnn-msd": WheelSource(
        musicnn.WHEEL_NAME, musicnn.WHEEL_VERSION, musicnn.WHEEL_FILE, musicnn.WHEEL_SHA256,
        (musicnn.WHEEL_MEMBERS[0], musicnn.WHEEL_MEMBERS[1]), "musicnn/configuration.py", "MSD_LABELS",
        MUSICNN_MSD_LABELS_SHA256, MUSICNN_MSD_TENSOR_DIGEST,
    ),
    "efficientat-mn04": ReleaseSource(
        efficientat.URL, efficientat.URL.rsplit("/", 1)[-1], efficientat.FILE_SHA256, efficientat.MN04_TENSOR_DIGEST,
    ),
}


# -------------------------------------------------------------------------------------- fetch
@dataclass
class Fetched:
    """What :func:`fetch_native` did.

    Attributes
    ----------
    folder : Path
        The encoder folder (``<dir>/<name>``).
    record : dict
        Its ``sonotype-backbone.json``.
    converted : bool
        False when a verified folder was already there and nothing was done.
    warnings : list of str
        Differences that did not stop the fetch (a release file hash that differs while the
        tensors are the released ones).
    """

    folder: Path
    record: dict[str, Any]
    converted: bool
    warnings: list[str] = field(default_factory=list)


def _present(final: Path, want: str | None) -> bool:
    cfg = read_native_config(final)
    return (want is not None and cfg is not None and cfg.get("tensor_digest") == want
            and (final / "model.safetensors").is_file())


def _permissions(folder: Path) -> None:
    """A temporary folder is private (0700); the encoder folder reads like any other."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for p in folder.iterdir():
        if p.is_file():
            p.chmod(0o666 & ~mask)


def _download(name: str, spec: NativeSource, url: str, dl_dir: Path, *, timeout: float, retries: int,
              progress: bool) -> Path:
    """The file at ``url`` in ``dl_dir`` (resuming a ``.part`` there); a wheel's sha256 checked on arrival."""
    strict = spec.sha256 if isinstance(spec, WheelSource) else None
    try:
        return download(url, dl_dir / spec.filename, sha256=strict, progress=progress, retries=retries, timeout=timeout)
    except DownloadError as exc:
        with contextlib.suppress(OSError):
            dl_dir.rmdir()  # only when empty: a cut transfer's .part stays to be resumed
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if msg.startswith("checksum mismatch"):
            shutil.rmtree(dl_dir, ignore_errors=True)
            raise DownloadError(f"{name}: {msg.split(' (', 1)[0]}: not the {spec.filename} sonotype knows; "
                                "the file was deleted") from None
        if ": cannot connect (" in msg:
            host = urllib.parse.urlsplit(url).netloc
            raise DownloadError(f"cannot reach {host} to download {name} ({msg.split(': cannot connect (', 1)[1].rstrip(')')}); "
                                "check the network, or pass --from FILE with a copy you have") from None
        if ": HTTP 404" in msg:
            raise DownloadError(f"{name}: {url} answered HTTP 404 (not found): the file moved or the address is wrong; "
                                "pass --url with where it is now, or --from FILE") from None
        raise DownloadError(f"{name}: {msg}") from None  # a cut transfer says how to resume it


def fetch_native(
    name: str,
    *,
    dest_dir: str | os.PathLike | None = None,
    source_file: str | os.PathLike | None = None,
    url: str | None = None,
    index: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = False,
    source: NativeSource | None = None,
) -> Fetched:
    """Download (or take from ``source_file``), verify and convert a native encoder into ``<dest_dir>/<name>``.

    Parameters
    ----------
    name : str
        ``musicnn-msd`` or ``efficientat-mn04`` (:data:`NATIVE_SOURCES`); the folder's name.
    dest_dir : path, optional
        Parent folder (default :func:`~sonotype.backbones.folders.backbones_home`).
    source_file : path, optional
        A copy the user has: the wheel / ``.pt`` file, or (musicnn) a checkpoint folder with
        ``labels.txt``. Same checks; nothing is downloaded, and the file is left as it is.
    url : str, optional
        Download from this address instead (a mirror); checked the same way.
    index : str, optional
        Package index root for a wheel (default ``$SONOTYPE_PYPI_URL``, else https://pypi.org).
    force : bool
        Convert again even when a verified folder is there.
    timeout, retries : float, int
        Seconds a read may stall; further attempts (each resuming) within this call.
    progress : bool
        Print download progress on stderr.
    source : WheelSource or ReleaseSource, optional
        Overrides ``NATIVE_SOURCES[name]`` (tests, other releases).

    Returns
    -------
    Fetched

    Raises
    ------
    ConfigError
        An unknown name.
    DownloadError
        Offline, unreachable, not found, a cut transfer (a rerun resumes it), a wrong checksum.
    ModelError
        A file that is not the expected wheel / state dict (missing members, other tensors).
    """
    spec = source if source is not None else NATIVE_SOURCES.get(name)
    if spec is None:
        raise ConfigError(f"{name!r} is not a natively converted encoder ({', '.join(NATIVE_SOURCES)})")
    root = Path(os.path.expanduser(str(dest_dir))).absolute() if dest_dir is not None else backbones_home()
    final = root / name
    if not force and _present(final, spec.tensor_digest):
        return Fetched(final, read_marker(final), False)
    record: dict[str, Any] = {"name": name, "kind": spec.kind}
    dl_dir = root / f".{name}.download"
    downloaded = False
    if source_file is not None:
        path = Path(os.path.expanduser(str(source_file))).absolute()
        if not path.exists():
            raise ModelError(f"--from {path}: no such file or folder")
        record["from"] = str(path)
    else:
        if offline():
            raise DownloadError(f"cannot download {name}: offline mode (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set); "
                                "unset it, or pass --from FILE with a copy you have")
        if url is None and isinstance(spec, WheelSource):
            where = index_url(index)
            listed = spec.locate(where, timeout=timeout)
            if listed.sha256 is not None and listed.sha256.lower() != spec.sha256:
                raise DownloadError(f"{listed.page} lists sha256 {listed.sha256} for {spec.filename}, not the known "
                                    f"{spec.sha256}: a different file under that name; nothing was downloaded")
            record.update(index=where, listing=listed.page, listing_api=listed.api, listed_sha256=listed.sha256)
            url = listed.url
        elif url is None:
            assert isinstance(spec, ReleaseSource)
            url = spec.url
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"{url!r} is not an http(s) address")
        root.mkdir(parents=True, exist_ok=True)
        path = _download(name, spec, url, dl_dir, timeout=timeout, retries=retries, progress=progress)
        downloaded = True
        record["url"] = url
    notes: list[str] = []
    try:
        if path.is_file():
            record["file"], record["size"] = path.name, path.stat().st_size
            record["sha256"] = got = sha256_file(path)
            record["expected_sha256"] = spec.sha256
            if isinstance(spec, WheelSource) and got != spec.sha256:
                raise DownloadError(f"{path.name}: sha256 {got} is not the {spec.filename} sonotype knows "
                                    f"({spec.sha256})")
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            out = staging / name
            spec.convert(path, out)
            cfg = read_native_config(out)
            if cfg is None:
                raise ModelError(f"{path.name}: the conversion wrote no readable config.json")
            digest = cfg.get("tensor_digest")
            if spec.tensor_digest is not None and digest != spec.tensor_digest:
                raise ModelError(f"{path.name}: its tensors (digest {digest}) are not the released {name} "
                                 f"({spec.tensor_digest})")
            load_native(out)  # the folder opens, and its file holds what config.json says
            if record.get("sha256") and spec.sha256 and record["sha256"] != spec.sha256:
                notes.append(f"{path.name}: sha256 {record['sha256']} differs from the recorded {spec.sha256} "
                             f"(that value could not be checked against the release), but its tensors are exactly the "
                             f"released {name} (digest {digest}): used")
            record.update(family=cfg.get("family"), licence=cfg.get("license"), tensor_digest=digest, digest=digest,
                          fetched=datetime.now(timezone.utc).isoformat(timespec="seconds"), warnings=notes)
            atomic_write_text(out / MARKER_FILE, json.dumps(record, indent=2) + "\n")
            _permissions(out)
            if final.exists():
                os.replace(final, staging / f"{name}.old")
            os.replace(out, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        # a complete file that failed a check is deleted; a cut transfer never reaches here (its .part stays)
        if downloaded and not isinstance(exc, KeyboardInterrupt):
            shutil.rmtree(dl_dir, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, permissions, an unreadable copy: one line naming the file
            raise DownloadError(f"{name}: {exc.filename or root}: {exc.strerror or exc}") from None
        if isinstance(exc, ModelError | DownloadError):
            text = str(exc).strip().splitlines()
            msg = f"{name}: {text[0] if text else type(exc).__name__}"
            if downloaded:
                msg += f"; the downloaded file was deleted ({url})"
            raise type(exc)(msg) from None
        raise
    if downloaded:
        shutil.rmtree(dl_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        dl_dir.rmdir()
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return Fetched(final, record, True, notes)
