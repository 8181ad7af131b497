"""push -> pull -> predict against a loopback HTTP server standing in for the Hugging Face Hub.

huggingface_hub 2.x, without hf_xet (switched off here: its uploads go to a separate storage
service), calls for ``create_repo`` ``POST /api/repos/create``; for ``upload_folder``
``POST /api/validate-yaml`` (the card's front matter),
``POST /api/models/{id}/preupload/{rev}`` (regular or LFS per file), the LFS batch API
``POST /{id}.git/info/lfs/objects/batch`` and a ``PUT`` of each LFS file to the href it
answers, then ``POST /api/models/{id}/commit/{rev}`` (NDJSON: header, inline files, LFS
pointers); for ``model_info`` ``GET /api/models/{id}/revision/{rev}``; for
``snapshot_download`` ``GET /api/models/{id}/tree/{commit}`` and ``HEAD``/``GET
/{id}/resolve/{commit}/{file}`` (with ``X-Repo-Commit`` and ``ETag``). The server keeps
commits per branch, so a pull pins what a push made.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import sonotype
from sonotype.errors import DownloadError, ModelError, ParameterError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.scaling import Standardizer
from sonotype.inference.hub import SOURCE_FILE, parse_ref, pull, push
from sonotype.inference.modelio import save_model
from sonotype.models.registry import build_model

REPO = "someone/tiny-tones"


class FakeHub:
    """Repositories as ``{repo: {"branches": {name: commit}, "commits": {commit: {path: bytes}}}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.tamper: dict[str, bytes] = {}  # path -> bytes served instead of the stored ones
        self.break_files: dict[str, int] = {}  # path -> how many downloads are cut off half-way
        self.unknown: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None,
                      ctype: str = "application/json", head: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
                self._send(json.dumps(obj).encode(), status, headers)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _missing(self, what: str = "RepoNotFound") -> None:
                self._json({"error": what}, 404, {"X-Error-Code": what})

            def do_POST(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("POST", path))
                body = self._body()
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo = f"{req.get('organization') or 'someone'}/{req['name']}" if "/" not in req["name"] else req["name"]
                    if repo in hub.repos:
                        return self._json({"error": "exists", "url": f"{hub.url}/{repo}"}, 409)
                    hub.repos[repo] = {"branches": {"main": "0" * 40}, "commits": {"0" * 40: {}},
                                       "private": bool(req.get("private")) or req.get("visibility") == "private"}
                    return self._json({"url": f"{hub.url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":  # the card's metadata, checked before the commit
                    head = json.loads(body)["content"].split("---")[1]
                    meta = yaml.safe_load(head)
                    ok = isinstance(meta, dict) and isinstance(meta.get("license"), str)
                    return self._json({"errors": [] if ok else [{"message": "bad metadata"}], "warnings": []},
                                      200 if ok else 400)
                if path.endswith(".git/info/lfs/objects/batch"):
                    req = json.loads(body)
                    return self._send(json.dumps({"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"],
                         "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"}}}
                        for o in req["objects"]]}).encode(), ctype="application/vnd.git-lfs+json")
                for kind in ("preupload", "commit", "branch"):
                    marker = f"/{kind}/"
                    if path.startswith("/api/models/") and marker in path:
                        repo, rev = path[len("/api/models/"):].split(marker, 1)
                        if repo not in hub.repos:
                            return self._missing()
                        return getattr(self, f"_{kind}")(repo, rev, body)
                hub.unknown.append(("POST", path))
                self._missing("EntryNotFound")

            def _preupload(self, repo: str, rev: str, body: bytes) -> None:
                files = json.loads(body)["files"]
                self._json({"files": [{"path": f["path"], "shouldIgnore": False,
                                       "uploadMode": "lfs" if f["path"].endswith(".safetensors") else "regular"}
                                      for f in files]})

            def _branch(self, repo: str, rev: str, body: bytes) -> None:
                branches = hub.repos[repo]["branches"]
                branches.setdefault(rev, branches["main"])
                self._json({})

            def _commit(self, repo: str, rev: str, body: bytes) -> None:
                r = hub.repos[repo]
                if rev not in r["branches"]:
                    return self._missing("RevisionNotFound")
                files = dict(r["commits"][r["branches"][rev]])
                for line in body.splitlines():
                    item = json.loads(line)
                    v = item["value"]
                    if item["key"] == "file":
                        files[v["path"]] = base64.b64decode(v["content"])
                    elif item["key"] == "lfsFile":
                        files[v["path"]] = hub.blobs[v["oid"]]
                    elif item["key"] == "deletedFile":
                        files.pop(v["path"], None)
                commit = hashlib.sha1(json.dumps(sorted((k, hashlib.sha1(b).hexdigest()) for k, b in files.items()))
                                      .encode() + rev.encode() + str(len(r["commits"])).encode()).hexdigest()
                r["commits"][commit] = files
                r["branches"][rev] = commit
                self._json({"commitUrl": f"{hub.url}/{repo}/commit/{commit}", "commitOid": commit,
                            "pullRequestUrl": None})

            def do_PUT(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("PUT", path))
                body = self._body()
                if path.startswith("/lfs-upload/"):
                    oid = path[len("/lfs-upload/"):]
                    if hashlib.sha256(body).hexdigest() != oid:
                        return self._json({"error": "sha256 mismatch"}, 400)
                    hub.blobs[oid] = body
                    return self._send(b"", ctype="text/plain")
                self._missing("EntryNotFound")

            def _commit_of(self, repo: str, rev: str) -> str | None:
                r = hub.repos[repo]
                return r["branches"].get(rev) or (rev if rev in r["commits"] else None)

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("HEAD" if head else "GET", path))
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
                    for kind in ("/revision/", "/tree/"):
                        if kind in rest:
                            repo, rev = rest.split(kind, 1)
                            if repo not in hub.repos:
                                return self._missing()
                            commit = self._commit_of(repo, rev)
                            if commit is None:
                                return self._missing("RevisionNotFound")
                            files = hub.repos[repo]["commits"][commit]
                            if kind == "/tree/":
                                return self._json([{"type": "file", "path": f, "size": len(b),
                                                    "oid": hashlib.sha1(b).hexdigest()} for f, b in files.items()])
                            return self._json({"id": repo, "modelId": repo, "sha": commit, "private": False,
                                               "siblings": [{"rfilename": f} for f in files]})
                    hub.unknown.append(("GET", path))
                    return self._missing("EntryNotFound")
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    commit = self._commit_of(repo, rev) if repo in hub.repos else None
                    files = hub.repos[repo]["commits"].get(commit or "", {}) if repo in hub.repos else {}
                    if name not in files:
                        return self._missing("EntryNotFound")
                    full = hub.tamper.get(name, files[name])
                    headers = {"ETag": f'"{hashlib.sha1(full).hexdigest()}"', "X-Repo-Commit": str(commit)}
                    if head:
                        return self._send(full, headers=headers, ctype="application/octet-stream", head=True)
                    if hub.break_files.get(name, 0) > 0:  # the connection drops half-way
                        hub.break_files[name] -= 1
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(full)))
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.end_headers()
                        self.wfile.write(full[: len(full) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    return self._send(full, headers=headers, ctype="application/octet-stream")
                hub.unknown.append(("GET", path))
                self._missing("EntryNotFound")

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


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    constants = pytest.importorskip("huggingface_hub.constants")
    server = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("SONOTYPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # plain HTTP + LFS uploads, as the server plays
    yield server
    server.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    net = build_model("mlp-small", (4,), 2, seed=0)
    return save_model(tmp_path_factory.mktemp("m") / "model", network=net, labels=["hi", "lo"],
                      feature_config=FeatureConfig(sr=8000, n_fft=256, hop_length=128, features=["rms", "centroid"]),
                      representation=RepresentationConfig(kind="stats", stats=["mean", "std"]),
                      scaler=Standardizer().fit(X))


def _wave() -> np.ndarray:
    t = np.arange(8000) / 8000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_parse_ref() -> None:
    assert parse_ref("hf://a/b") == ("a/b", None)
    assert parse_ref("hf:/a/b@main") == ("a/b", "main")  # a CLI Path collapses the '//'
    assert parse_ref(Path("models/x")) is None
    with pytest.raises(ParameterError, match="hf://user/name"):
        parse_ref("hf://just-a-name")


def test_push_pull_predict_identical(hub: FakeHub, model_dir: Path) -> None:
    r = push(model_dir, REPO, private=True)
    assert hub.repos[REPO]["private"] and not hub.unknown, hub.unknown
    files = hub.repos[REPO]["commits"][r["commit"]]
    assert sorted(files) == ["README.md", "model.json", "scaler.safetensors", "weights.safetensors"]
    assert f"hf://{REPO}" in files["README.md"].decode()  # the card's usage lines name the hub reference
    local = sonotype.load_model(model_dir)
    remote = sonotype.load_model(f"hf://{REPO}")
    assert remote.model_id.startswith(f"someone--tiny-tones@{r['commit']}")  # the resolved commit, pinned
    y = _wave()
    assert remote.predict(y, 8000).probabilities == local.predict(y, 8000).probabilities
    folder = pull(f"hf://{REPO}@{r['commit']}")
    src = json.loads((folder / SOURCE_FILE).read_text())
    assert src["commit"] == r["commit"] and src["repo"] == REPO
    assert all(r["commit"] in p for m, p in hub.requests if "/resolve/" in p)  # files only from the pinned commit
    n = len(hub.requests)
    assert pull(f"hf://{REPO}") == folder  # same commit: nothing downloaded again
    assert all("/resolve/" not in p for _, p in hub.requests[n:])


def test_push_to_a_branch_pins_it(hub: FakeHub, model_dir: Path) -> None:
    main = push(model_dir, REPO)
    r = push(model_dir, REPO, revision="v2")
    assert hub.repos[REPO]["branches"]["v2"] == r["commit"] != main["commit"]
    assert pull(f"hf://{REPO}@v2").name == f"someone--tiny-tones@{r['commit']}"


def test_pickles_and_code_are_never_downloaded(hub: FakeHub, model_dir: Path) -> None:
    r = push(model_dir, REPO)
    files = hub.repos[REPO]["commits"][r["commit"]]
    files.update({"model.pkl": b"pickle", "handler.py": b"import os", "pytorch_model.bin": b"pickle"})
    folder = pull(f"hf://{REPO}")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "model.json", "scaler.safetensors", "weights.safetensors", SOURCE_FILE])
    assert not any(p.endswith((".pkl", ".py", ".bin")) for _, p in hub.requests)


def test_tampered_weights_are_refused_and_deleted(hub: FakeHub, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir, REPO)
    good = (model_dir / "weights.safetensors").read_bytes()
    hub.tamper["weights.safetensors"] = good[:-4] + bytes(b ^ 0xFF for b in good[-4:])
    with pytest.raises(ModelError, match=r"refused, download deleted.*does not match the digest") as err:
        sonotype.load_model(f"hf://{REPO}")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache" / "models").glob("*"))  # nothing of it is kept


def test_interrupted_download_then_a_rerun_completes(hub: FakeHub, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir, REPO)
    hub.break_files["weights.safetensors"] = 1000  # every try fails, huggingface_hub's own retries included
    with pytest.raises(DownloadError, match="run the same command again") as err:
        pull(f"hf://{REPO}")
    assert "\n" not in str(err.value)
    assert next(p.name for p in (tmp_path / "cache" / "models").iterdir()).endswith(".partial")  # never a model
    hub.break_files.clear()
    folder = pull(f"hf://{REPO}")
    assert (folder / "weights.safetensors").read_bytes() == (model_dir / "weights.safetensors").read_bytes()


def test_offline_and_unreachable_are_one_line(hub: FakeHub, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        pull("hf://nobody/nothing")
    push(model_dir, REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="offline") as err:
        pull(f"hf://{REPO}")
    assert "\n" not in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    folder = pull(f"hf://{REPO}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pull(f"hf://{REPO}") == folder  # downloaded before: used offline from the cache
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:9") as err:
        pull("hf://someone/other")
    assert "\n" not in str(err.value)


def test_cli_push_then_predict_and_serve_info(hub: FakeHub, model_dir: Path, tmp_path: Path) -> None:
    import soundfile as sf
    from fastapi.testclient import TestClient

    from sonotype.cli import app
    from sonotype.serve.app import create_app

    runner = CliRunner()
    res = runner.invoke(app, ["push", str(model_dir), REPO, "--json"])
    assert res.exit_code == 0, res.output
    ref = json.loads(res.stdout)["ref"]
    wav = tmp_path / "a.wav"
    sf.write(wav, _wave(), 8000)
    res = runner.invoke(app, ["predict", ref, str(wav), "--json"])
    assert res.exit_code == 0, res.output
    expected = sonotype.load_model(model_dir).predict(str(wav)).probabilities
    doc = json.loads(res.stdout)
    got = doc["results"][0]
    assert doc["model"].startswith("someone--tiny-tones@")
    assert got["probabilities"] == pytest.approx(expected, abs=1e-6)
    info = TestClient(create_app(ref)).get("/v1/model").json()
    assert info["licences"]["license"] == "other" and "unknown" in info["licences"]["effect"]
    res = runner.invoke(app, ["predict", "hf://nobody/nothing", str(wav)])
    assert isinstance(res.exception, DownloadError)  # `sonotype` prints it as one red line, exit code 2
    assert str(res.exception).startswith("hf://nobody/nothing does not exist")
