"""Downloads against a loopback HTTP server: full, resumed, truncated, bad checksum; safe extraction."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import socket
import struct
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sonotype.corpora.download import Resource, download, extract
from sonotype.corpora.registry import download_corpus, load_corpus
from sonotype.errors import CorpusError, DownloadError


def make_zip() -> bytes:
    """A small FSDD-like archive: two WAVs under repo/recordings/ and a README."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("0_jackson_0", "1_theo_3"):
            wav = io.BytesIO()
            sf.write(wav, np.zeros(400, dtype=np.float32), 8000, format="WAV")
            z.writestr(f"repo/recordings/{name}.wav", wav.getvalue())
        z.writestr("repo/README.md", "x" * 5000)  # makes the archive big enough to cut in parts
    return buf.getvalue()


class Server:
    """Serves ``payload`` at /data.zip; ``mode`` decides how (ranges, truncation)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.routes: dict[str, bytes] = {"/data.zip": payload}  # tests may add more paths
        # "ok" | "truncate-once" | "truncate-always" | "no-range" | "no-length" | "no-length-cut"
        # | "chunked" | "chunked-cut-once" | "reset-once"
        self.mode = "ok"
        self.requests: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                data = outer.routes.get(self.path.split("?")[0])
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = 0
                if rng and outer.mode != "no-range":
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        if outer.mode != "416-no-size":
                            self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                first = len(outer.requests) == 1
                if outer.mode in ("no-length", "no-length-cut"):  # close-delimited body
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2] if outer.mode == "no-length-cut" else body)
                    self.close_connection = True
                    return
                if outer.mode == "chunked" or (outer.mode == "chunked-cut-once" and first):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    cut = outer.mode == "chunked-cut-once"
                    for i in range(0, len(body) // 2 if cut else len(body), 1000):
                        piece = body[i : i + 1000]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    if not cut:
                        self.wfile.write(b"0\r\n\r\n")  # the final chunk: the body is complete
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.mode == "reset-once" and first:  # half the body, then a TCP reset
                    self.wfile.write(body[: len(body) // 2])
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                truncate = outer.mode == "truncate-always" or (outer.mode == "truncate-once" and first)
                self.wfile.write(body[: len(body) // 2] if truncate else body)
                if truncate:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.zip"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(make_zip()) as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_download_and_extract(server, tmp_path, capsys):
    out = download(
        server.url,
        tmp_path / "dl" / "data.zip",
        sha256=sha(server.payload),
        md5=hashlib.md5(server.payload).hexdigest(),
    )
    assert out.read_bytes() == server.payload and not out.with_name("data.zip.part").exists()
    assert server.requests == [None]
    # already there and verified: no second request
    download(server.url, out, sha256=sha(server.payload))
    assert len(server.requests) == 1
    # into a folder, no checksum known: the computed sha256 is printed for the record
    (tmp_path / "dl2").mkdir()
    into = download(server.url, tmp_path / "dl2")
    assert into.name == "data.zip" and sha(server.payload) in capsys.readouterr().err
    root = extract(out, tmp_path / "corpus")
    assert sorted(p.name for p in (root / "repo" / "recordings").iterdir()) == [
        "0_jackson_0.wav",
        "1_theo_3.wav",
    ]
    assert len(load_corpus("fsdd", root)) == 2


def test_resume_partial_file(server, tmp_path):
    dest = tmp_path / "data.zip"
    dest.with_name("data.zip.part").write_bytes(server.payload[:1000])
    download(server.url, dest, sha256=sha(server.payload), progress=False)
    assert dest.read_bytes() == server.payload
    assert server.requests == ["bytes=1000-"]


def test_resume_when_server_ignores_range(server, tmp_path):
    server.mode = "no-range"
    dest = tmp_path / "data.zip"
    dest.with_name("data.zip.part").write_bytes(b"garbage that must not stay at the front")
    download(server.url, dest, sha256=sha(server.payload), progress=False)
    assert dest.read_bytes() == server.payload


def test_truncated_transfer_is_resumed(server, tmp_path):
    server.mode = "truncate-once"
    dest = download(server.url, tmp_path / "data.zip", sha256=sha(server.payload), progress=False)
    assert dest.read_bytes() == server.payload
    assert server.requests[0] is None and server.requests[1] == f"bytes={len(server.payload) // 2}-"


def test_truncated_transfer_without_resume_is_an_error(server, tmp_path):
    server.mode = "truncate-always"
    with pytest.raises(DownloadError, match=rf"truncated transfer .*: \d+ of {len(server.payload)} bytes"):
        download(server.url, tmp_path / "data.zip", resume=False, progress=False)
    assert not (tmp_path / "data.zip").exists()
    with pytest.raises(DownloadError, match=r"truncated transfer.*run again to resume"):
        download(server.url, tmp_path / "data.zip", retries=1, progress=False)
    assert (tmp_path / "data.zip.part").stat().st_size < len(server.payload)
    server.mode = "ok"  # a later run finishes the part
    assert (
        download(server.url, tmp_path / "data.zip", sha256=sha(server.payload), progress=False).read_bytes()
        == server.payload
    )


def marker(out: Path) -> dict:
    return json.loads(out.with_name(f".{out.name}.complete").read_text())


def test_no_length_no_checksum_is_never_promoted(server, tmp_path):
    """A close-delimited body looks the same whole or cut: without a checksum it stays a .part."""
    dest, part = tmp_path / "data.zip", tmp_path / "data.zip.part"
    server.mode = "no-length-cut"
    with pytest.raises(DownloadError, match=r"announced no length and no checksum is known") as info:
        download(server.url, dest, progress=False)
    assert not dest.exists() and part.stat().st_size == len(server.payload) // 2
    assert str(part) in str(info.value)
    # the next run must not report the cut file as "already present": the resumed request states
    # the full size (Content-Range), which the part does not reach
    with pytest.raises(DownloadError, match=rf"truncated transfer .* of {len(server.payload)} bytes"):
        download(server.url, dest, progress=False)
    assert not dest.exists()
    part.unlink()
    # a whole close-delimited body is refused the same way, until the server states its size
    server.mode = "no-length"
    with pytest.raises(DownloadError, match="announced no length"):
        download(server.url, dest, progress=False)
    assert not dest.exists() and part.read_bytes() == server.payload
    assert download(server.url, dest, progress=False).read_bytes() == server.payload  # 416 "bytes */N"
    assert marker(dest)["verified_by"] == "size matches Content-Length"
    # with its checksum, a close-delimited body is verified: a cut one is rejected, a whole one accepted
    server.mode = "no-length-cut"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(server.url, tmp_path / "b.zip", sha256=sha(server.payload), progress=False)
    assert not (tmp_path / "b.zip").exists()
    server.mode = "no-length"
    assert download(server.url, tmp_path / "b.zip", sha256=sha(server.payload), progress=False).read_bytes() == server.payload


def test_a_chunked_body_ended_by_the_server_is_complete(server, tmp_path):
    server.mode = "chunked"
    dest = download(server.url, tmp_path / "data.zip", progress=False)
    assert dest.read_bytes() == server.payload
    rec = marker(dest)
    assert rec == {
        "url": server.url,
        "size": len(server.payload),
        "sha256": sha(server.payload),
        "verified_by": "chunked body ended by the server",
    }
    download(server.url, dest, progress=False)  # recorded as complete: no second request
    assert len(server.requests) == 1


def test_a_cut_chunked_body_is_resumed(server, tmp_path):
    server.mode = "chunked-cut-once"
    dest = download(server.url, tmp_path / "data.zip", progress=False)
    assert dest.read_bytes() == server.payload
    sent = sum(len(server.payload[i : i + 1000]) for i in range(0, len(server.payload) // 2, 1000))
    assert server.requests == [None, f"bytes={sent}-"]  # the chunks that arrived were kept
    assert marker(dest)["verified_by"] == "size matches Content-Length"


def test_a_connection_reset_mid_transfer_is_resumed(server, tmp_path):
    server.mode = "reset-once"
    dest = download(server.url, tmp_path / "data.zip", progress=False)
    assert dest.read_bytes() == server.payload and len(server.requests) == 2
    assert marker(dest)["sha256"] == sha(server.payload)
    server.mode = "reset-once"
    server.requests.clear()
    with pytest.raises(DownloadError, match=r"truncated transfer .*of \d+ bytes received"):
        download(server.url, tmp_path / "again.zip", retries=0, progress=False)
    assert not (tmp_path / "again.zip").exists()


class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are on disk (the part that fits is written)."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b: bytes) -> int:
        if len(b) > self.room:
            self.f.write(b[: self.room])
            self.f.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_full_disk_is_an_error_never_a_short_file(server, tmp_path, monkeypatch):
    import builtins

    import sonotype.corpora.download as dl

    room = 3000

    def full_open(*args, **kw) -> FullDisk:
        return FullDisk(builtins.open(*args, **kw), room)  # closed by FullDisk.__exit__

    monkeypatch.setattr(dl, "open", full_open, raising=False)
    dest = tmp_path / "data.zip"
    part = tmp_path / "data.zip.part"
    for checksum in (None, sha(server.payload)):
        with pytest.raises(DownloadError, match=r"cannot write .*data\.zip\.part: No space left on device \(errno 28\)"):
            download(server.url, dest, sha256=checksum, progress=False)
        assert not dest.exists() and part.stat().st_size == room  # kept for resuming
        part.unlink()
    # once there is room again, the kept part is resumed
    with pytest.raises(DownloadError, match="No space left"):
        download(server.url, dest, progress=False)
    monkeypatch.undo()
    server.requests.clear()
    assert download(server.url, dest, progress=False).read_bytes() == server.payload
    assert server.requests == [f"bytes={room}-"]


def test_a_file_without_a_completion_record_is_treated_as_partial(server, tmp_path):
    """A cut file promoted by an older version (no record) is resumed, not reported as present."""
    dest = tmp_path / "data.zip"
    dest.write_bytes(server.payload[:1000])
    download(server.url, dest, progress=False)
    assert dest.read_bytes() == server.payload and server.requests == ["bytes=1000-"]
    # a record that no longer matches the file (the file was cut or changed later) is not trusted
    dest.write_bytes(server.payload[:2000])
    server.requests.clear()
    download(server.url, dest, progress=False)
    assert dest.read_bytes() == server.payload and server.requests == ["bytes=2000-"]


def test_a_whole_part_is_promoted_only_when_the_server_states_its_size(server, tmp_path):
    dest = tmp_path / "data.zip"
    dest.with_name("data.zip.part").write_bytes(server.payload)
    assert download(server.url, dest, progress=False).read_bytes() == server.payload
    assert server.requests == [f"bytes={len(server.payload)}-"]  # answered 416 "bytes */N"
    server.mode = "416-no-size"
    server.requests.clear()
    other = tmp_path / "other.zip"
    other.with_name("other.zip.part").write_bytes(server.payload)
    assert download(server.url, other, progress=False).read_bytes() == server.payload
    assert server.requests == [f"bytes={len(server.payload)}-", None]  # fetched again from the start


def test_checksum_mismatch(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DownloadError, match=f"expected sha256 {wrong}, got {sha(server.payload)}"):
        download(server.url, tmp_path / "data.zip", sha256=wrong, progress=False)
    assert not (tmp_path / "data.zip").exists() and not (tmp_path / "data.zip.part").exists()
    with pytest.raises(DownloadError, match="expected md5"):
        download(server.url, tmp_path / "data.zip", md5="f" * 32, progress=False)


def test_bad_addresses(tmp_path):
    with pytest.raises(DownloadError, match="only http"):
        download("file:///etc/passwd", tmp_path / "x")
    with pytest.raises(DownloadError, match="cannot connect"):
        download("http://127.0.0.1:9/nothing.zip", tmp_path / "x", progress=False)


def test_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url.replace("data.zip", "missing.zip"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_extract_refuses_escapes(tmp_path):
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr("../escape.txt", "bad")
    with pytest.raises(DownloadError, match="outside"):
        extract(evil_zip, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()

    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as t:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(DownloadError, match="points outside"):
        extract(evil_tar, tmp_path / "out2")

    good_tar = tmp_path / "good.tar.gz"
    with tarfile.open(good_tar, "w:gz") as t:
        data = b"hello"
        info = tarfile.TarInfo("a/b.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    assert (extract(good_tar, tmp_path / "out3") / "a" / "b.txt").read_bytes() == b"hello"
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract(tmp_path / "plain.txt", tmp_path / "out4")


def test_download_corpus(server, tmp_path, monkeypatch):
    import sonotype.corpora.fsdd as fsdd

    monkeypatch.setattr(fsdd, "DOWNLOADS", (Resource(server.url, "fsdd.zip", sha256=sha(server.payload)),))
    root = download_corpus("fsdd", tmp_path / "fsdd", progress=False)
    m = load_corpus("fsdd", root)
    assert len(m) == 2 and not m.skipped  # the archive folder is never scanned
    download_corpus("fsdd", root, progress=False)  # second run: nothing fetched or unpacked again
    assert len(server.requests) == 1
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_corpus("fsdd", tmp_path / "other", sha256="1" * 64, progress=False)
    for name, step in (("gtzan", "genres/blues"), ("dusha", "crowd.tar"), ("savee", "Register")):
        with pytest.raises(DownloadError, match="cannot be downloaded automatically") as info:
            download_corpus(name, tmp_path / name)
        assert step in str(info.value) and str(tmp_path / name) in str(info.value)


def wav_bytes(seconds: float, sr: int = 8000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * sr), dtype=np.float32), sr, format="WAV")
    return buf.getvalue()


def test_cremad_fetch_resolves_git_lfs_pointers(server, tmp_path, monkeypatch):
    import sonotype.corpora.cremad as cremad

    wav = wav_bytes(0.1)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha(wav)}\nsize {len(wav)}\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("CREMA-D-master/AudioWAV/1001_DFA_ANG_XX.wav", pointer)
        z.writestr("CREMA-D-master/AudioMP3/1001_DFA_ANG_XX.mp3", pointer)  # not needed, left alone
        z.writestr(
            "CREMA-D-master/VideoDemographics.csv",
            "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n",
        )
    base = server.url.rsplit("/", 1)[0]
    server.routes["/repo.zip"] = buf.getvalue()
    server.routes["/media/AudioWAV/1001_DFA_ANG_XX.wav"] = wav
    monkeypatch.setattr(cremad, "REPO_ARCHIVE", Resource(f"{base}/repo.zip", "CREMA-D-master.zip"))
    monkeypatch.setattr(cremad, "LFS_MEDIA", f"{base}/media/")

    # before fetching, the loader reports pointers instead of listing them as audio
    raw = tmp_path / "raw"
    extract_to = extract(download(f"{base}/repo.zip", tmp_path / "r.zip", progress=False), raw)
    with pytest.raises(CorpusError, match="git-lfs pointer"):
        load_corpus("cremad", extract_to / "CREMA-D-master")

    root = download_corpus("cremad", tmp_path / "cremad", progress=False)
    assert root.name == "CREMA-D-master" and (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").read_bytes() == wav
    m = load_corpus("cremad", root)
    assert [(c.label, c.group, c.meta["age"]) for c in m] == [("angry", "1001", 51)] and not m.skipped
    n = len(server.requests)
    download_corpus("cremad", tmp_path / "cremad", progress=False)  # finished work is not redone
    assert len(server.requests) == n

    server.routes["/media/AudioWAV/1001_DFA_ANG_XX.wav"] = wav_bytes(0.2)  # the host serves other bytes
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_corpus("cremad", tmp_path / "again", progress=False)


def test_tess_fetch_from_dataverse(server, tmp_path, monkeypatch):
    import sonotype.corpora.tess as tess

    a, b = wav_bytes(0.1), wav_bytes(0.2)
    listing = {
        "data": {
            "latestVersion": {
                "files": [
                    {
                        "directoryLabel": "OAF_angry",
                        "dataFile": {
                            "id": 11,
                            "filename": "OAF_back_angry.wav",
                            "md5": hashlib.md5(a).hexdigest(),
                        },
                    },
                    {
                        "dataFile": {
                            "id": 12,
                            "filename": "YAF_dog_ps.wav",
                            "checksum": {"type": "MD5", "value": hashlib.md5(b).hexdigest()},
                        }
                    },
                ]
            }
        }
    }
    server.routes["/api/datasets/:persistentId/"] = json.dumps(listing).encode()
    server.routes["/api/access/datafile/11"] = a
    server.routes["/api/access/datafile/12"] = b
    monkeypatch.setattr(tess, "DATAVERSE_SERVER", server.url.rsplit("/", 1)[0])
    root = download_corpus("tess", tmp_path / "tess", progress=False)
    m = load_corpus("tess", root)
    assert [(Path(c.path).relative_to(root).as_posix(), c.label) for c in m] == [
        ("OAF_angry/OAF_back_angry.wav", "angry"),
        ("YAF_dog_ps.wav", "surprised"),
    ]
    server.routes["/api/access/datafile/12"] = a  # corrupted on the server
    with pytest.raises(DownloadError, match="expected md5"):
        download_corpus("tess", tmp_path / "tess2", progress=False)
