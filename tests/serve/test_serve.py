"""The HTTP service in-process (TestClient): every endpoint and every error answer.

A tiny real model is trained once per session on the generated demo corpus
(:func:`tiny_model`); the other serving tests import that helper, and the model is
cached in pytest's session temp folder so it is trained only once.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

import sonotype
from sonotype.errors import ModelError, ParameterError
from sonotype.serve import create_app
from sonotype.utils.limits import Limits

SR = 16000


def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A small trained model and a few audio files of its classes (trained once per session).

    Returns the model directory and one held-out demo file per class.
    """
    base = tmp_path_factory.getbasetemp() / "sonotype-serve-model"
    model_dir, corpus = base / "model", base / "corpus"
    if not (model_dir / "model.json").is_file():
        from sonotype.corpora.demo import generate_demo
        from sonotype.corpora.registry import load_corpus
        from sonotype.features.config import FeatureConfig, RepresentationConfig
        from sonotype.features.extract import build_dataset
        from sonotype.features.scaling import Standardizer
        from sonotype.inference.modelio import save_model
        from sonotype.models.apply import predict_proba
        from sonotype.models.registry import build_model
        from sonotype.training.config import TrainConfig
        from sonotype.training.train import fit

        torch.set_num_threads(1)
        generate_demo(corpus, seed=0, n_speakers=2, takes=4, seconds=1.0)
        manifest = load_corpus("demo", corpus)
        fc = FeatureConfig(
            sr=SR, n_fft=512, hop_length=256, tuning=0.0, n_mfcc=13,
            features=["rms", "centroid", "bandwidth", "rolloff", "zcr", "flatness", "mfcc"],
        )
        rc = RepresentationConfig(kind="stats", stats=["mean", "std"])
        ds = build_dataset(manifest.clips, fc, rc, progress=False)
        labels = sorted({c.label for c in ds.clips})
        y = np.array([labels.index(ds.clips[i].label) for i in ds.item_clip])
        scaler = Standardizer().fit(ds.X)
        torch.manual_seed(0)
        net = build_model("mlp", tuple(ds.X.shape[1:]), len(labels))
        fit(net, scaler.transform(ds.X), y, config=TrainConfig(max_epochs=40, patience=None, seed=0),
            n_classes=len(labels), progress=False)
        acc = float((predict_proba(net, scaler.transform(ds.X)).argmax(1) == y).mean())
        save_model(model_dir, network=net, labels=labels, feature_config=fc, representation=rc, scaler=scaler,
                   metrics={"protocol": "training set (test fixture)", "accuracy": acc})
        generate_demo(base / "heldout", seed=1, n_speakers=1, takes=1, seconds=1.0)
    files = sorted((base / "heldout").rglob("*.wav"))
    return model_dir, files


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def clf(model_files: tuple[Path, list[Path]]) -> sonotype.inference.predict.Classifier:
    return sonotype.load_model(model_files[0])


@pytest.fixture(scope="module")
def client(clf: sonotype.inference.predict.Classifier) -> TestClient:
    return TestClient(create_app(clf, max_upload_mb=1.0, max_duration_s=5.0))


def _wav_bytes(y: np.ndarray, sr: int = SR, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt)
    return buf.getvalue()


def _check_error(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert body["detail"] and isinstance(body["detail"], str)
    assert body["request_id"] == r.headers["x-request-id"]
    return body


# ----------------------------------------------------------------------------- endpoints


def test_healthz(client: TestClient, clf) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_id": clf.model_id, "labels": clf.labels}
    assert len(r.headers["x-request-id"]) == 16


def test_model_endpoint(client: TestClient, clf) -> None:
    m = client.get("/v1/model").json()
    assert m["labels"] == clf.labels == ["chord", "noise_burst", "pulse_train", "sweep", "tone"]
    assert m["model_id"] == clf.model_id
    assert m["sample_rate"] == SR
    assert m["features"]["n_fft"] == 512 and m["features"]["n_mfcc"] == 13
    assert m["architecture"]["name"] == "mlp"
    assert 0.0 <= m["metrics"]["accuracy"] <= 1.0
    assert m["limits"] == {**Limits().to_dict(), "max_upload_mb": 1.0, "max_duration_s": 5.0}


def test_classify_multipart_matches_python_api(client: TestClient, clf, model_files) -> None:
    for path in model_files[1]:
        want = clf.predict(path)
        r = client.post("/v1/classify", files={"file": (path.name, path.read_bytes(), "audio/wav")})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["label"] == want.label
        assert d["probabilities"].keys() == set(clf.labels)
        for lab, p in want.probabilities.items():
            assert d["probabilities"][lab] == pytest.approx(p, abs=1e-6)
        assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert d["duration"] == pytest.approx(1.0, abs=1e-3)
        assert d["model_id"] == clf.model_id
        assert d["filename"] == path.name
        assert d["request_id"] == r.headers["x-request-id"]
        assert len(d["segments"]) == 1 and d["segments"][0]["label"] == want.label
        assert "path" not in d  # the server's temporary file name is not leaked


@pytest.mark.parametrize("ctype", ["audio/wav", "application/octet-stream", "text/plain", None])
def test_classify_raw_body_any_content_type(client: TestClient, clf, model_files, ctype) -> None:
    path = model_files[1][0]
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/v1/classify", content=path.read_bytes(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["label"] == clf.predict(path).label
    assert r.json()["filename"] is None


def test_classify_flac_and_other_rate(client: TestClient, clf, model_files, tmp_path: Path) -> None:
    """Format and sample rate come from the content: a 22,050 Hz FLAC named .bin is resampled."""
    y, sr = sf.read(str(model_files[1][1]), dtype="float32")
    flac = tmp_path / "clip.bin"
    flac.write_bytes(_wav_bytes(sonotype.audio.resample(y, sr, 22050), 22050, "FLAC"))
    r = client.post("/v1/classify", files={"file": ("clip.bin", flac.read_bytes(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    want = clf.predict(flac)
    assert want.duration == pytest.approx(1.0, abs=1e-3)
    assert r.json()["label"] == want.label
    for lab, p in want.probabilities.items():
        assert r.json()["probabilities"][lab] == pytest.approx(p, abs=1e-6)


def test_classify_window_hop_timeline(client: TestClient, clf, model_files) -> None:
    path = model_files[1][2]
    r = client.post("/v1/classify?window=0.4&hop=0.2", content=path.read_bytes())
    assert r.status_code == 200, r.text
    segs = r.json()["segments"]
    want = clf.predict(path, window=0.4, hop=0.2).segments
    assert [(s["start"], s["end"], s["label"]) for s in segs] == [(w.start, w.end, w.label) for w in want]
    assert segs[0]["start"] == 0.0 and segs[1]["start"] == pytest.approx(0.2)
    assert segs[-1]["end"] == pytest.approx(1.0)


def test_classify_envelope(client: TestClient, model_files) -> None:
    y, _ = sf.read(str(model_files[1][0]), dtype="float32")
    r = client.post("/v1/classify?envelope=100", content=model_files[1][0].read_bytes())
    w = r.json()["waveform"]
    assert len(w["min"]) == len(w["max"]) == 100
    assert max(w["max"]) == pytest.approx(float(y.max()), abs=1e-3)
    assert min(w["min"]) == pytest.approx(float(y.min()), abs=1e-3)
    assert all(lo <= hi for lo, hi in zip(w["min"], w["max"], strict=True))


def test_request_id_echoed_or_replaced(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.post("/v1/classify", content=b"", headers={"X-Request-ID": "my.req:7"})
    assert r.json()["request_id"] == "my.req:7"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces" and len(r.headers["x-request-id"]) == 16


def test_page_docs_and_openapi_are_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="file"' in page.text and "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/style.css", "/docs"):
        r = client.get(asset)
        assert r.status_code == 200, asset
        text = r.text.replace("http://127.0.0.1:8000", "")
        assert "https://" not in text and "http://" not in text, f"{asset} refers to an external URL"
    assert "https://" not in page.text and "http://" not in page.text
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/classify"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(op["requestBody"]["content"])
    assert {p["name"] for p in op["parameters"]} == {"window", "hop", "envelope"}
    assert {"/healthz", "/v1/model"} <= set(spec["paths"])


# ----------------------------------------------------------------------------- errors


def test_empty_body_is_400(client: TestClient) -> None:
    _check_error(client.post("/v1/classify", content=b""), 400, "empty_body")
    _check_error(client.post("/v1/classify", files={"file": ("a.wav", b"")}), 400, "empty_body")


def test_multipart_without_file_field_is_400(client: TestClient, model_files) -> None:
    body = _check_error(client.post("/v1/classify", files={"audio": ("a.wav", b"RIFF")}), 400, "missing_file")
    assert "'file'" in body["detail"] and "audio" in body["detail"]
    r = client.post("/v1/classify", content=b"--xx\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 400 and r.json()["error"] in ("bad_multipart", "missing_file")


def test_too_large_by_content_length_is_413(client: TestClient) -> None:
    body = _check_error(client.post("/v1/classify", content=b"\0" * 1_200_000), 413, "payload_too_large")
    assert "1 MB" in body["detail"]


def test_too_large_counted_while_streaming_is_413(client: TestClient) -> None:
    """A chunked body (no Content-Length) is counted as it arrives."""

    def chunks():
        for _ in range(40):
            yield b"\0" * 64_000

    r = client.post("/v1/classify", content=chunks())
    body = _check_error(r, 413, "payload_too_large")
    assert "more than" in body["detail"]


def test_too_long_audio_is_413(client: TestClient) -> None:
    y = np.zeros(6 * 8000, np.float32)  # 6 s at 8 kHz = 96 kB, under the size limit
    body = _check_error(client.post("/v1/classify", content=_wav_bytes(y, 8000)), 413, "audio_too_long")
    assert "6.0 s" in body["detail"] and "5 s" in body["detail"]


def test_not_audio_is_415(client: TestClient) -> None:
    body = _check_error(client.post("/v1/classify", content=b"hello, this is text\n" * 20), 415, "unsupported_audio")
    assert "text" in body["detail"]
    m4a = b"\0\0\0\x20ftypM4A " + bytes(200)
    body = _check_error(client.post("/v1/classify", content=m4a), 415, "unsupported_audio")
    assert "MP4" in body["detail"]
    _check_error(client.post("/v1/classify", content=bytes(range(256)) * 8), 415, "unsupported_audio")


def test_corrupt_and_too_short_audio_is_422(client: TestClient, model_files) -> None:
    wav = model_files[1][0].read_bytes()
    body = _check_error(client.post("/v1/classify", content=wav[: len(wav) // 2]), 422, "invalid_audio")
    assert "truncated" in body["detail"]
    body = _check_error(client.post("/v1/classify", files={"file": ("cut.wav", wav[:20])}), 422, "invalid_audio")
    assert "sonotype-upload" not in body["detail"] and "cut.wav" in body["detail"]  # no server paths leak
    body = _check_error(client.post("/v1/classify", content=_wav_bytes(np.zeros(100, np.float32))), 422, "invalid_audio")
    assert "too short" in body["detail"]
    buf = io.BytesIO()
    sf.write(buf, np.full(4000, np.nan, np.float32), SR, format="WAV", subtype="FLOAT")
    body = _check_error(client.post("/v1/classify", content=buf.getvalue()), 422, "invalid_audio")
    assert "NaN" in body["detail"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [("window=-1", "window"), ("window=abc", "window"), ("hop=0.5", "hop"), ("window=0.5&hop=0.0001", "min_hop_s"), ("window=1&hop=0.000000001", "min_hop_s"),
         ("window=1e308", "window"),
     ("envelope=99999", "envelope"), ("window=0.001", "window")],
)
def test_bad_parameters_are_422(client: TestClient, model_files, query, needle) -> None:
    r = client.post(f"/v1/classify?{query}", content=model_files[1][0].read_bytes())
    assert r.status_code == 422, r.text
    assert r.json()["error"] in ("invalid_parameter", "invalid_request")
    assert needle in r.json()["detail"]


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    _check_error(client.get("/v2/nothing"), 404, "not_found")
    _check_error(client.get("/v1/classify"), 405, "method_not_allowed")


def test_errors_are_logged_with_request_id(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sonotype.serve"):
        r = client.post("/v1/classify", content=b"", headers={"X-Request-ID": "log-me-42"})
    assert r.status_code == 400
    assert any("log-me-42" in rec.getMessage() and "empty_body" in rec.getMessage() for rec in caplog.records)


class _Exploding:
    """A classifier whose network fails: the server must answer 500 and keep serving."""

    def __init__(self, clf) -> None:
        self._clf = clf
        self.calls = 0

    def __getattr__(self, name: str):
        return getattr(self._clf, name)

    def predict(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")
        return self._clf.predict(*args, **kwargs)


def test_internal_error_is_500_and_server_survives(clf, model_files, caplog) -> None:
    c = TestClient(create_app(_Exploding(clf)))
    wav = model_files[1][0].read_bytes()
    with caplog.at_level(logging.ERROR, logger="sonotype.serve"):
        body = _check_error(c.post("/v1/classify", content=wav), 500, "internal_error")
    assert any(body["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)
    assert c.post("/v1/classify", content=wav).status_code == 200
    assert c.get("/healthz").status_code == 200


def test_create_app_checks_its_arguments(tmp_path: Path, clf) -> None:
    with pytest.raises(ModelError, match="not found"):
        create_app(tmp_path / "missing")
    with pytest.raises(ParameterError, match="max_upload_mb"):
        create_app(clf, max_upload_mb=0)
    with pytest.raises(ParameterError, match="max_duration_s"):
        create_app(clf, max_duration_s=-1)


def test_model_directory_path_is_loaded(model_files) -> None:
    c = TestClient(create_app(model_files[0]))
    assert c.get("/healthz").json()["model_id"] == sonotype.load_model(model_files[0]).model_id


def test_slow_client_gets_408_and_does_not_block_others(clf) -> None:
    """A client that stops sending mid-body is cut off; meanwhile others are served."""
    import httpx
    import uvicorn

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = uvicorn.Server(uvicorn.Config(create_app(clf, read_timeout_s=8.0), host="127.0.0.1", port=port,
                                          log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        slow = socket.create_connection(("127.0.0.1", port), timeout=15)
        slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nRIFF")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        # Answered while the slow body is still pending: nothing has come back on the slow socket yet.
        slow.setblocking(False)
        with pytest.raises(BlockingIOError):
            slow.recv(1)
        slow.settimeout(15)
        reply = b""
        while b"request_timeout" not in reply:  # headers and body may arrive in separate packets
            chunk = slow.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
        slow.close()
        assert reply.startswith("HTTP/1.1 408"), reply
        assert "request_timeout" in reply
    finally:
        server.should_exit = True
        th.join(10)
