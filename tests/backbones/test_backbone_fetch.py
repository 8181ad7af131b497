"""`sonotype backbone fetch` against a loopback HTTP server standing in for the Hugging Face hub.

huggingface_hub 2.x's snapshot_download, with a commit given, calls
``GET /api/models/{id}/revision/{rev}`` (sonotype resolves and pins the revision first),
``GET /api/models/{id}/tree/{commit}?recursive=...`` (the file list), then
``HEAD`` and ``GET /{id}/resolve/{commit}/{file}`` per file that passes allow_patterns.
The server below answers exactly those, from a tiny random Whisper saved here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.fetch import fetch
from sonotype.backbones.folders import MARKER_FILE
from sonotype.backbones.load import load_backbone
from sonotype.errors import ConfigError, DownloadError, ModelError

REPO = "tiny-org/whisper-tiny-random"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves one repository at one commit; ``break_files[name]`` downloads are cut off half-way.

    ``Range: bytes=N-`` requests get the rest of the file (206), as the hub does, so a
    resumed download can be seen in ``requests`` (``ranges``).
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str]] = []
        self.break_files: dict[str, int] = {}
        self.ranges: list[tuple[str, int]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("HEAD" if head else "GET", path))
                api = f"/api/models/{REPO}/"
                if path.startswith(api + "revision/"):
                    rev = path[len(api + "revision/"):]
                    if rev not in ("main", COMMIT):
                        return self._json({"error": "Invalid rev id"}, 404, {"X-Error-Code": "RevisionNotFound"})
                    return self._json({"id": REPO, "modelId": REPO, "sha": COMMIT, "private": False,
                                       "siblings": [{"rfilename": f} for f in hub.files]})
                if path.startswith("/api/models/") and "/revision/" in path:
                    return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
                if path == api + f"tree/{COMMIT}":
                    return self._json([{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                       for f, b in hub.files.items()])
                prefix = f"/{REPO}/resolve/{COMMIT}/"
                if path.startswith(prefix) and path[len(prefix):] in hub.files:
                    name = path[len(prefix):]
                    full = hub.files[name]
                    rng = self.headers.get("Range", "")
                    start = int(rng[6:].split("-")[0]) if rng.startswith("bytes=") and not head else 0
                    body = full[start:]
                    if start:
                        hub.ranges.append((name, start))
                    self.send_response(206 if start else 200)
                    if start:
                        self.send_header("Content-Range", f"bytes {start}-{len(full) - 1}/{len(full)}")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("ETag", f'"{hashlib.sha1(full).hexdigest()}"')
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.end_headers()
                    if head:
                        return
                    if hub.break_files.get(name, 0) > 0:  # the connection drops half-way
                        hub.break_files[name] -= 1
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(body)
                    return
                self._json({"error": f"no route {path}"}, 404, {"X-Error-Code": "EntryNotFound"})

            def do_GET(self) -> None:
                self._route(head=False)

            def do_HEAD(self) -> None:
                self._route(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tf = pytest.importorskip("transformers", reason="needs the optional extra: pip install 'sonotype[backbones]'")
    import torch

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-whisper")
    tf.WhisperModel(tf.WhisperConfig(
        vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
        max_target_positions=16, decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )).save_pretrained(d)
    tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(d)
    files = {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}
    files["pytorch_model.bin"] = b"pickle: must never be downloaded"
    files["tokenizer.json"] = b"{}"
    files["model.fp16.safetensors"] = b"a variant: not needed, not downloaded"
    return files


@pytest.fixture
def hub(tiny_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    server = FakeHub(tiny_files)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("SONOTYPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SONOTYPE_BACKBONES", raising=False)
    yield server
    server.close()


def test_fetch_pins_the_revision_downloads_only_safe_files_and_loads(hub: FakeHub, tmp_path: Path) -> None:
    folder = fetch(REPO, dest_dir=tmp_path / "bb")
    assert folder == tmp_path / "bb" / "tiny-org--whisper-tiny-random"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["config.json", "preprocessor_config.json", "model.safetensors", MARKER_FILE])
    assert not any(path.endswith((".bin", "tokenizer.json", "fp16.safetensors")) for _, path in hub.requests)
    assert ("GET", f"/api/models/{REPO}/revision/main") in hub.requests
    assert all(COMMIT in path for _, path in hub.requests if "/resolve/" in path)  # every file from the pinned commit
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker["hub_id"] == REPO and marker["revision"] == COMMIT and marker["requested_revision"] == "main"
    bb = load_backbone(BackboneConfig(str(folder)))
    assert marker["digest"] == bb.weights_digest and bb.n_hidden == 3
    # found again by hub id from the fetch folder, offline, with the commit pinned
    again = load_backbone(BackboneConfig(REPO), search=[tmp_path / "bb"])
    assert again.path == str(folder) and again.revision == COMMIT and again.weights_digest == bb.weights_digest
    n = len(hub.requests)
    assert fetch(REPO, dest_dir=tmp_path / "bb") == folder  # same commit: nothing downloaded again
    assert all("/resolve/" not in p for _, p in hub.requests[n:])


def test_interrupted_download_leaves_no_backbone_and_a_rerun_completes(hub: FakeHub, tmp_path: Path) -> None:
    hub.break_files["model.safetensors"] = 1000  # every try fails, huggingface_hub's own retries included
    with pytest.raises(DownloadError, match=r"run the same command again") as err:
        fetch(REPO, dest_dir=tmp_path / "bb")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bb" / "tiny-org--whisper-tiny-random").exists()  # only the .partial folder
    assert (tmp_path / "bb" / "tiny-org--whisper-tiny-random.partial").is_dir()
    hub.break_files.clear()
    folder = fetch(REPO, dest_dir=tmp_path / "bb")
    assert (folder / "model.safetensors").read_bytes() == hub.files["model.safetensors"]
    assert not (tmp_path / "bb" / "tiny-org--whisper-tiny-random.partial").exists()
    load_backbone(BackboneConfig(str(folder)))


def test_offline_unreachable_and_unknown_are_one_line_errors(hub: FakeHub, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DownloadError, match=r"has no revision 'v9'"):
        fetch(REPO, revision="v9", dest_dir=tmp_path)
    with pytest.raises(DownloadError, match=r"nobody/nothing does not exist"):
        fetch("nobody/nothing", dest_dir=tmp_path)
    with pytest.raises(ConfigError, match="not a known backbone name"):
        fetch("bad--id//x", dest_dir=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="offline mode"):
        fetch(REPO, dest_dir=tmp_path)
    # a backbone reference that would download: offline it says how to get it, in one line
    with pytest.raises(ModelError, match=r"not downloaded.*sonotype backbone fetch") as err:
        load_backbone(BackboneConfig(REPO, local_files_only=False))
    assert "\n" not in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:9") as err:
        fetch(REPO, dest_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_cli_fetch_and_list(hub: FakeHub, tmp_path: Path) -> None:
    from sonotype.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["backbone", "fetch", REPO, "--dir", str(tmp_path / "bb")])
    assert res.exit_code == 0, res.output
    assert COMMIT[:12] in res.output and "encoder digest" in res.output
    res = runner.invoke(app, ["backbone", "list", "--json", "--backbone-dir", str(tmp_path / "bb")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    names = [r["name"] for r in doc["backbones"]]
    assert {"whisper-tiny", "whisper-base", "whisper-small", "wavlm-base-plus", "hubert-base", "wav2vec2-base"} <= set(names)
    assert any(r["hub_id"].startswith("MIT/ast") for r in doc["backbones"])
    base = next(r for r in doc["backbones"] if r["name"] == "whisper-base")
    assert base["cpu_per_audio_hour"] != "not measured"
    unmeasured = {"whisper-tiny", "whisper-small", "wavlm-base-plus", "hubert-base"}
    assert all(r["cpu_per_audio_hour"] == "not measured" for r in doc["backbones"] if r["name"] in unmeasured)
    assert "measured" in base["cpu_per_audio_hour"] and "not" not in base["cpu_per_audio_hour"]
    assert str(tmp_path / "bb") in doc["searched"]
    # the native encoders are listed beside the hub ones, with their family, source and licence (not fetched here)
    native = {r["name"]: r for r in doc["backbones"] if r["kind"] == "native"}
    assert set(native) == {"musicnn-msd", "efficientat-mn04"}
    assert native["musicnn-msd"]["family"] == "musicnn" and native["musicnn-msd"]["licence"] == "ISC"
    assert "pypi.org/project/musicnn/0.1.0" in native["musicnn-msd"]["source"]
    assert native["efficientat-mn04"]["licence"] == "MIT" and native["efficientat-mn04"]["source"].startswith("https://github.com/")
    assert all(r["present"] == "" and r["verified"] is False for r in native.values())
    assert all(r["kind"] == "transformers" and r["hub_id"] for r in doc["backbones"] if r["name"] not in native)
