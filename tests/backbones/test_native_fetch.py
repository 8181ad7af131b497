"""`sonotype backbone fetch musicnn-msd | efficientat-mn04` against a loopback HTTP server.

The server plays a Python package index (the JSON API ``/pypi/{name}/{version}/json``, the
simple API ``/simple/{name}/`` in PEP 691 JSON and PEP 503 HTML, the file download) and a
GitHub release (``/releases/download/...`` redirects to a CDN address that serves the file).
Downloads honour ``Range`` (206), and ``breaks[path]`` cuts that many responses off half-way
through the body, so an interrupted transfer and its resumption can be seen.

Plumbing runs on a tiny random EfficientAT network and a synthetic zip; the ``realdata`` tests
serve the real checkpoints of ``../shared/models`` (the musicnn bundle packed into a zip under the
wheel's member names, with a ``configuration.py`` holding ``MSD_LABELS``; the mn04 state dict).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import threading
import warnings
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from conftest import DATA
from sonotype.backbones import efficientat as E
from sonotype.backbones import musicnn as M
from sonotype.backbones.fetch import fetch
from sonotype.backbones.folders import MARKER_FILE
from sonotype.backbones.native import load_native
from sonotype.backbones.sources import (
    AUDIOSET_LABELS,
    MUSICNN_MSD_TENSOR_DIGEST,
    NATIVE_SOURCES,
    PYPI_ENV,
    ReleaseSource,
    WheelSource,
    fetch_native,
    labels_digest,
    labels_from_source,
    sha256_file,
)
from sonotype.errors import ConfigError, DownloadError, ModelError

MODELS = DATA.parent / "models"
MUSICNN = MODELS / "musicnn-msd"
MN04 = MODELS / "efficientat-mn04"
needs_musicnn = pytest.mark.skipif(not (MUSICNN / ".index").is_file(),
                                   reason=f"needs the musicnn checkpoint at {MUSICNN} (../shared/models beside the checkout)")
needs_mn04 = pytest.mark.skipif(not (MN04 / "mn04_as_mAP_432.pt").is_file(),
                                reason=f"needs the EfficientAT mn04 weights at {MN04} (../shared/models beside the checkout)")

WHEEL = "musicnn-0.1.0-py3-none-any.whl"
TINY_WIDTH, TINY_LABELS = 0.1, ["alpha", "beta, gamma", "delta", "epsilon", "zeta"]


class FakeServer:
    """A package index and a release host on 127.0.0.1 (see the module notes)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # path -> bytes, served with Range support
        self.listed_sha: dict[str, str] = {}  # wheel file name -> the sha256 the index lists (default: the real one)
        self.json_api = True
        self.simple_html = False
        self.breaks: dict[str, int] = {}
        self.requests: list[str] = []
        self.ranges: list[tuple[str, int]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _wheels(self) -> list[dict[str, Any]]:
                return [{"filename": p.rsplit("/", 1)[-1], "url": p, "size": len(b),
                         "sha": srv.listed_sha.get(p.rsplit("/", 1)[-1], hashlib.sha256(b).hexdigest())}
                        for p, b in srv.files.items() if p.startswith("/files/")]

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                srv.requests.append(path)
                if path == "/pypi/musicnn/0.1.0/json":
                    if not srv.json_api or not self._wheels():  # PyPI: 404 for an unknown release
                        return self._send(404, b"Not Found", "text/plain")
                    doc = {"info": {"name": "musicnn", "version": "0.1.0"},
                           "urls": [{"filename": w["filename"], "url": srv.url + w["url"], "size": w["size"],
                                     "packagetype": "bdist_wheel", "digests": {"sha256": w["sha"]}}
                                    for w in self._wheels()]}
                    return self._send(200, json.dumps(doc).encode(), "application/json")
                if path == "/simple/musicnn/" and self._wheels():
                    ws = self._wheels()
                    if srv.simple_html or "json" not in self.headers.get("Accept", ""):
                        links = "".join(f'<a href="../..{w["url"]}#sha256={w["sha"]}">{w["filename"]}</a><br/>' for w in ws)
                        return self._send(200, f"<html><body>{links}</body></html>".encode(), "text/html")
                    doc = {"meta": {"api-version": "1.1"}, "name": "musicnn",
                           "files": [{"filename": w["filename"], "url": w["url"], "hashes": {"sha256": w["sha"]}}
                                     for w in ws]}
                    return self._send(200, json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json")
                if path.startswith("/releases/download/"):  # GitHub: a redirect to a signed CDN address
                    cdn = "/cdn/" + path.rsplit("/", 1)[-1]
                    if cdn in srv.files:
                        return self._send(302, b"", "text/html", {"Location": f"{srv.url}{cdn}?sig=abc"})
                if path in srv.files:
                    full = srv.files[path]
                    rng = self.headers.get("Range", "")
                    start = int(rng[6:].split("-")[0]) if rng.startswith("bytes=") else 0
                    if start:
                        srv.ranges.append((path, start))
                    body = full[start:]
                    self.send_response(206 if start else 200)
                    if start:
                        self.send_header("Content-Range", f"bytes {start}-{len(full) - 1}/{len(full)}")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    if srv.breaks.get(path, 0) > 0:  # the connection drops half-way through the body
                        srv.breaks[path] -= 1
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(body)
                    return
                self._send(404, b"Not Found", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    def downloads(self, name: str) -> int:
        return sum(p.endswith("/" + name) and not p.startswith("/releases/") for p in self.requests)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv(PYPI_ENV, raising=False)
    s = FakeServer()
    yield s
    s.close()


def _left(root: Path) -> list[str]:
    """Everything under ``root`` (relative paths), hidden files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# ------------------------------------------------------------------------------ tiny sources
@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path, str]:
    """(a tiny random EfficientAT state dict saved with torch.save, its labels csv, its tensor digest)."""
    torch.manual_seed(0)
    state = E.MN(TINY_WIDTH, len(TINY_LABELS)).eval().state_dict()
    d = tmp_path_factory.mktemp("tiny-mn")
    torch.save(state, d / "tiny.pt")
    with open(d / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        w.writerows([i, f"/m/{i}", name] for i, name in enumerate(TINY_LABELS))
    return (d / "tiny.pt").read_bytes(), d / "labels.csv", E.tensor_digest(state)


def _tiny_release(server: FakeServer, tiny_pt: tuple[bytes, Path, str], **kw: Any) -> ReleaseSource:
    data, labels, digest = tiny_pt
    server.files["/cdn/tiny.pt"] = data
    spec = ReleaseSource(f"{server.url}/releases/download/v0.0.1/tiny.pt", "tiny.pt", hashlib.sha256(data).hexdigest(),
                         digest, model="tiny", width_mult=TINY_WIDTH, labels_csv=labels, labels_sha256=None)
    return replace(spec, **kw)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _wheel_spec(data: bytes, **kw: Any) -> WheelSource:
    """The real musicnn source with the pinned wheel hash replaced by that of ``data``."""
    return replace(NATIVE_SOURCES["musicnn-msd"], sha256=hashlib.sha256(data).hexdigest(), **kw)


def _configuration(labels: list[str]) -> bytes:
    # as the package's source: other code around the list, which is never run
    return (f"import os\nos._exit(3)\nSR = 16000\nMTT_LABELS = ['guitar']\nMSD_LABELS = {labels!r}\n").encode()


@pytest.fixture(scope="module")
def real_wheel() -> bytes:
    """The real MSD_musicnn checkpoint packed into a zip under the wheel's member names."""
    if not (MUSICNN / ".index").is_file():
        pytest.skip(f"needs the musicnn checkpoint at {MUSICNN} (../shared/models beside the checkout)")
    labels = [x for x in (MUSICNN / "labels.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    return _zip({
        "musicnn/__init__.py": b"",
        "musicnn/configuration.py": _configuration(labels),
        M.WHEEL_MEMBERS[0]: (MUSICNN / ".index").read_bytes(),
        M.WHEEL_MEMBERS[1]: (MUSICNN / ".data-00000-of-00001").read_bytes(),
        "musicnn/MSD_musicnn/checkpoint": (MUSICNN / "checkpoint").read_bytes(),
    })


# ------------------------------------------------------------------------ labels and sources
def test_labels_are_read_from_the_source_text_never_run() -> None:
    src = _configuration(["rock", "pop"])
    assert labels_from_source(src, "MSD_LABELS", "configuration.py") == ["rock", "pop"]  # os._exit never ran
    assert labels_from_source(src, "MTT_LABELS", "x") == ["guitar"]
    with pytest.raises(ModelError, match="no assignment to NOPE"):
        labels_from_source(src, "NOPE", "x")
    with pytest.raises(ModelError, match="not a literal list"):
        labels_from_source(b"MSD_LABELS = list(open('/etc/passwd'))", "MSD_LABELS", "x")
    with pytest.raises(ModelError, match="cannot parse"):
        labels_from_source(b"MSD_LABELS = [", "MSD_LABELS", "x")


def test_the_registry_pins_what_the_readme_says() -> None:
    wheel, release = NATIVE_SOURCES["musicnn-msd"], NATIVE_SOURCES["efficientat-mn04"]
    assert isinstance(wheel, WheelSource) and isinstance(release, ReleaseSource)
    assert (wheel.package, wheel.version, wheel.filename) == ("musicnn", "0.1.0", WHEEL)
    assert wheel.sha256 == "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
    assert wheel.members == ("musicnn/MSD_musicnn/.index", "musicnn/MSD_musicnn/.data-00000-of-00001")
    assert release.url == "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
    assert release.tensor_digest == E.MN04_TENSOR_DIGEST and release.model == "mn04_as"
    # the packaged AudioSet class names: 527, in index order, the file its pinned hash names
    assert sha256_file(AUDIOSET_LABELS) == release.labels_sha256
    with open(AUDIOSET_LABELS, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(527)) and rows[0]["display_name"] == "Speech"


@pytest.mark.parametrize("html", [False, True])
def test_an_index_without_the_json_api_is_asked_through_the_simple_api(server: FakeServer, html: bool) -> None:
    data = _zip({"x": b"y"})
    server.files[f"/files/{WHEEL}"] = data
    server.json_api, server.simple_html = False, html
    listed = _wheel_spec(data).locate(server.url, timeout=10)
    assert listed.api == "simple" and listed.url == f"{server.url}/files/{WHEEL}"
    assert listed.sha256 == hashlib.sha256(data).hexdigest()
    server.json_api = True
    listed = _wheel_spec(data).locate(server.url, timeout=10)
    assert listed.api == "json" and listed.page == f"{server.url}/pypi/musicnn/0.1.0/json"


# ----------------------------------------------------------------------- EfficientAT plumbing
def test_release_file_follows_the_redirect_converts_and_loads(server: FakeServer, tiny_pt: Any, tmp_path: Path) -> None:
    spec = _tiny_release(server, tiny_pt)
    r = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    assert r.converted and r.folder == tmp_path / "efficientat-mn04" and r.warnings == []
    assert "/releases/download/v0.0.1/tiny.pt" in server.requests and "/cdn/tiny.pt" in server.requests
    assert _left(tmp_path) == ["efficientat-mn04", "efficientat-mn04/config.json", "efficientat-mn04/model.safetensors",
                               f"efficientat-mn04/{MARKER_FILE}"]  # the download and the staging folder are gone
    fam, enc, cfg = load_native(r.folder)
    assert fam.name == "efficientat" and cfg["tensor_digest"] == tiny_pt[2] and enc.labels == TINY_LABELS
    rec = json.loads((r.folder / MARKER_FILE).read_text())
    assert rec["url"] == spec.url and rec["sha256"] == spec.sha256 and rec["tensor_digest"] == rec["digest"] == tiny_pt[2]
    n = server.downloads("tiny.pt")
    again = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    assert not again.converted and server.downloads("tiny.pt") == n  # verified folder there: nothing fetched


def test_an_interrupted_transfer_resumes_on_the_rerun(server: FakeServer, tiny_pt: Any, tmp_path: Path) -> None:
    spec = _tiny_release(server, tiny_pt)
    server.breaks["/cdn/tiny.pt"] = 1
    with pytest.raises(DownloadError, match=r"truncated transfer .*run again to resume") as err:
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec, retries=0)
    _one_line(err)
    assert _left(tmp_path) == [".efficientat-mn04.download", ".efficientat-mn04.download/tiny.pt.part"]
    half = (tmp_path / ".efficientat-mn04.download" / "tiny.pt.part").stat().st_size
    assert 0 < half < len(tiny_pt[0])
    r = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec, retries=0)
    assert server.ranges == [("/cdn/tiny.pt", half)]  # the rerun asked only for the rest
    assert r.converted and load_native(r.folder)[2]["tensor_digest"] == tiny_pt[2]
    assert ".efficientat-mn04.download" not in _left(tmp_path)
    # cut twice within one call: its own retries resume it
    server.breaks["/cdn/tiny.pt"], server.ranges = 2, []
    r = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec, force=True)
    assert r.converted and len(server.ranges) == 2


def test_other_tensors_are_refused_and_deleted_a_differing_file_hash_only_warned(
        server: FakeServer, tiny_pt: Any, tmp_path: Path) -> None:
    spec = _tiny_release(server, tiny_pt, tensor_digest="0" * 64)
    with pytest.raises(ModelError, match=r"are not the released efficientat-mn04.*downloaded file was deleted") as err:
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    _one_line(err)
    assert _left(tmp_path) == []
    # the recorded file hash differs, the tensors are the expected ones: used, with a warning
    spec = _tiny_release(server, tiny_pt, sha256="f" * 64)
    with pytest.warns(UserWarning, match=r"differs from the recorded f{64}.*tensors are exactly"):
        r = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    rec = json.loads((r.folder / MARKER_FILE).read_text())
    assert rec["sha256"] == hashlib.sha256(tiny_pt[0]).hexdigest() and rec["expected_sha256"] == "f" * 64
    assert len(rec["warnings"]) == 1 and r.warnings == rec["warnings"]
    # the previous folder stays untouched by a failed fetch
    before = (r.folder / "model.safetensors").read_bytes()
    server.files["/cdn/tiny.pt"] = b"not a state dict"
    with pytest.raises(ModelError, match="not a loadable weights-only state dict"):
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=replace(spec, sha256=None), force=True)
    assert (r.folder / "model.safetensors").read_bytes() == before
    assert _left(tmp_path) == ["efficientat-mn04", "efficientat-mn04/config.json", "efficientat-mn04/model.safetensors",
                               f"efficientat-mn04/{MARKER_FILE}"]


def test_offline_unreachable_and_404_are_one_line_errors(server: FakeServer, tiny_pt: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _tiny_release(server, tiny_pt)
    with pytest.raises(DownloadError, match=r"answered HTTP 404 .*--url.*--from") as err:
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=replace(spec, url=f"{server.url}/releases/nope.pt"))
    _one_line(err)
    with pytest.raises(DownloadError, match=r"musicnn 0\.1\.0 is not on the package index") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, index=server.url)  # no wheel listed: both APIs 404
    _one_line(err)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"offline mode.*--from"):
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    down = server.url
    server.close()  # the server is gone: nothing listens there any more
    with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1:\d+ to download efficientat-mn04.*--from") as err:
        fetch_native("efficientat-mn04", dest_dir=tmp_path, source=spec)
    _one_line(err)
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+ to look up musicnn 0\.1\.0") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, index=down)
    _one_line(err)
    assert _left(tmp_path) == []


def test_from_a_local_file_and_through_the_fetch_entry_point(tiny_pt: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data, labels, digest = tiny_pt
    spec = ReleaseSource("http://127.0.0.1:9/never", "tiny.pt", None, digest, model="tiny", width_mult=TINY_WIDTH,
                         labels_csv=labels, labels_sha256=None)
    (tmp_path / "mine.pt").write_bytes(data)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local copy needs no network
    r = fetch_native("efficientat-mn04", dest_dir=tmp_path / "bb", source=spec, source_file=tmp_path / "mine.pt")
    assert r.converted and r.record["from"] == str(tmp_path / "mine.pt") and "url" not in r.record
    assert (tmp_path / "mine.pt").read_bytes() == data  # the user's file is left as it is
    with pytest.raises(ModelError, match=r"give the tiny\.pt file itself"):
        fetch_native("efficientat-mn04", dest_dir=tmp_path / "bb", source=spec, source_file=tmp_path, force=True)
    # `fetch` sends the native names here; they have no revisions
    with pytest.raises(ConfigError, match="no revisions"):
        fetch("efficientat-mn04", revision="main", dest_dir=tmp_path)


# ------------------------------------------------------------------------- musicnn plumbing
def test_a_listed_hash_that_is_not_the_known_one_downloads_nothing(server: FakeServer, tmp_path: Path) -> None:
    data = _zip({"musicnn/configuration.py": b"MSD_LABELS = ['a']"})
    server.files[f"/files/{WHEEL}"] = data
    server.listed_sha[WHEEL] = "e" * 64
    with pytest.raises(DownloadError, match=r"lists sha256 e{64} .*nothing was downloaded") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, index=server.url, source=_wheel_spec(data))
    _one_line(err)
    assert server.downloads(WHEEL) == 0 and _left(tmp_path) == []


def test_a_wheel_with_the_wrong_checksum_is_deleted(server: FakeServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zip({"musicnn/configuration.py": b"MSD_LABELS = ['a']"})
    server.files[f"/files/{WHEEL}"] = data
    monkeypatch.setenv(PYPI_ENV, server.url + "/simple")  # the index from the environment (pip's form)
    spec = _wheel_spec(data)
    server.listed_sha[WHEEL] = spec.sha256  # the index says the right hash, the bytes are others
    server.files[f"/files/{WHEEL}"] = data + b"tampered"
    with pytest.raises(DownloadError, match=r"checksum mismatch .*the file was deleted") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, source=spec)
    _one_line(err)
    assert server.downloads(WHEEL) == 1 and _left(tmp_path) == []


def test_a_zip_without_the_members_is_refused_and_deleted(server: FakeServer, tmp_path: Path) -> None:
    data = _zip({"musicnn/configuration.py": b"MSD_LABELS = ['a']", "musicnn/MSD_musicnn/.index": b"x"})
    server.files[f"/files/{WHEEL}"] = data
    with pytest.raises(ModelError, match=r"the zip has no musicnn/MSD_musicnn/\.data-00000-of-00001.*deleted") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, index=server.url, source=_wheel_spec(data))
    _one_line(err)
    assert _left(tmp_path) == []
    # a local copy with the wrong hash: refused, and left where it is
    (tmp_path / WHEEL).write_bytes(data)
    with pytest.raises(DownloadError, match=r"is not the musicnn-0\.1\.0-py3-none-any\.whl sonotype knows"):
        fetch_native("musicnn-msd", dest_dir=tmp_path / "bb", source_file=tmp_path / WHEEL)
    assert (tmp_path / WHEEL).read_bytes() == data and not (tmp_path / "bb" / "musicnn-msd").exists()
    with pytest.raises(ModelError, match="not a readable zip"):
        bad = b"PK not a zip"
        (tmp_path / "bad.whl").write_bytes(bad)
        fetch_native("musicnn-msd", dest_dir=tmp_path / "bb", source_file=tmp_path / "bad.whl", source=_wheel_spec(bad))


# -------------------------------------------------------------------------------- real data
@pytest.mark.realdata
@needs_musicnn
def test_musicnn_wheel_through_the_json_api_interrupted_then_resumed(server: FakeServer, real_wheel: bytes,
                                                                     tmp_path: Path) -> None:
    server.files[f"/files/{WHEEL}"] = real_wheel
    spec = _wheel_spec(real_wheel)
    server.breaks[f"/files/{WHEEL}"] = 1
    with pytest.raises(DownloadError, match="truncated transfer") as err:
        fetch_native("musicnn-msd", dest_dir=tmp_path, index=server.url, source=spec, retries=0)
    _one_line(err)
    assert not (tmp_path / "musicnn-msd").exists()
    r = fetch_native("musicnn-msd", dest_dir=tmp_path, index=server.url, source=spec, retries=0)
    assert len(server.ranges) == 1 and server.ranges[0][1] > 0
    assert "/pypi/musicnn/0.1.0/json" in server.requests
    fam, enc, cfg = load_native(r.folder)
    assert fam.name == "musicnn" and cfg["tensor_digest"] == MUSICNN_MSD_TENSOR_DIGEST
    assert labels_digest(enc.labels) == spec.labels_sha256 and enc.labels[:3] == ["rock", "pop", "alternative"]
    rec = json.loads((r.folder / MARKER_FILE).read_text())
    assert rec["listing_api"] == "json" and rec["sha256"] == rec["listed_sha256"] == spec.sha256
    assert rec["url"] == f"{server.url}/files/{WHEEL}" and rec["digest"] == MUSICNN_MSD_TENSOR_DIGEST
    assert _left(tmp_path) == ["musicnn-msd", "musicnn-msd/config.json", "musicnn-msd/model.safetensors",
                               f"musicnn-msd/{MARKER_FILE}"]
    # wrong tag names in an otherwise right wheel: refused
    swapped = _zip({**{n: zipfile.ZipFile(io.BytesIO(real_wheel)).read(n) for n in M.WHEEL_MEMBERS},
                    "musicnn/configuration.py": _configuration(["pop", "rock", *enc.labels[2:]])})
    (tmp_path / "swapped.whl").write_bytes(swapped)
    with pytest.raises(ModelError, match="not musicnn's 50 MSD tags in order"):
        fetch_native("musicnn-msd", dest_dir=tmp_path / "bb", source_file=tmp_path / "swapped.whl",
                     source=_wheel_spec(swapped))


@pytest.mark.realdata
@needs_musicnn
def test_musicnn_from_the_shared_checkpoint_folder(tmp_path: Path) -> None:
    r = fetch_native("musicnn-msd", dest_dir=tmp_path, source_file=MUSICNN)
    assert r.record["from"] == str(MUSICNN) and "sha256" not in r.record
    assert load_native(r.folder)[2]["tensor_digest"] == MUSICNN_MSD_TENSOR_DIGEST


@pytest.mark.realdata
@needs_mn04
def test_mn04_release_through_the_cli(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sonotype.cli import app, main

    server.files["/cdn/mn04_as_mAP_432.pt"] = (MN04 / "mn04_as_mAP_432.pt").read_bytes()
    url = f"{server.url}/releases/download/v0.0.1/mn04_as_mAP_432.pt"
    runner = CliRunner()
    res = runner.invoke(app, ["backbone", "fetch", "efficientat-mn04", "--dir", str(tmp_path), "--url", url])
    assert res.exit_code == 0, res.output
    assert E.MN04_TENSOR_DIGEST in res.output and "warning" not in res.output  # the file hash is the README's
    _, enc, cfg = load_native(tmp_path / "efficientat-mn04")
    assert cfg["tensor_digest"] == E.MN04_TENSOR_DIGEST and len(enc.labels) == 527 and enc.labels[0] == "Speech"
    res = runner.invoke(app, ["backbone", "list", "--json", "--backbone-dir", str(tmp_path)])
    row = next(r for r in json.loads(res.output)["backbones"] if r["name"] == "efficientat-mn04")
    assert row["kind"] == "native" and row["present"] == str(tmp_path / "efficientat-mn04") and row["verified"]
    assert row["licence"] == "MIT" and row["family"] == "efficientat"
    # the console entry point: one error line (after the "downloading" note), exit code 2
    monkeypatch.setattr(sys, "argv", ["sonotype", "backbone", "fetch", "efficientat-mn04", "--dir", str(tmp_path / "x"),
                                      "--url", f"{server.url}/releases/download/v0.0.1/gone.pt"])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert done.value.code == 2 and "Traceback" not in err and len(errors) == 1 and "HTTP 404" in errors[0]
    assert err.strip().splitlines()[-1] == errors[0]
    assert _left(tmp_path / "x") == []  # nothing left behind (the empty download folder removed)


# ------------------------------------------------------------------------------------ bench
def test_bench_times_a_native_encoder_cold_and_warm(server: FakeServer, tiny_pt: Any, tmp_path: Path) -> None:
    from sonotype.bench.backbone import bench_backbone

    folder = fetch_native("efficientat-mn04", dest_dir=tmp_path, source=_tiny_release(server, tiny_pt)).folder
    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    for i in range(2):
        sf.write(tmp_path / "clips" / f"{i}.wav", (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bench_backbone(folder, speech=tmp_path / "clips", clips=2, repeats=1)
    assert r["kind"] == "native" and r["model_type"] == "efficientat" and r["clips"] == 2
    assert r["audio_seconds"] == pytest.approx(4.0, abs=0.01) and set(r["modes"]) == {"embed", "embed_batch"}
    for v in r["modes"].values():
        assert v["x_realtime_warm"] > 0 and v["x_realtime_cold"] > 0 and v["cpu_seconds_per_audio_hour_warm"] > 0
