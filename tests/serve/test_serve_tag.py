"""``POST /v1/tag`` (``sonotype serve --tagger``): tagging without a trained model, over HTTP.

A tiny random EfficientAT encoder (built from its config, as in ``test_tagging``) covers the
plumbing: the answer equals :meth:`Tagger.tag` on the same file to the digit, the limits and
the guard of ``/v1/classify`` hold, the OpenAPI document describes the route and schemathesis
finds no server error on it. The real mn04 weights name an ESC-50 cow.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import schemathesis
import soundfile as sf
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from typer.testing import CliRunner

import sonotype
from conftest import tiny_tagger
from sonotype.cli import app as cli_app
from sonotype.errors import ParameterError
from sonotype.inference.tagging import Tagger
from sonotype.serve import create_app
from sonotype.serve.app import app_from_env
from sonotype.utils.limits import Limits
from test_serve import tiny_model

LABELS = ["Speech", "Music", "Dog", "Bell", "Rain", "Moo"]
LIMITS = Limits().replace(max_upload_mb=1.0, max_duration_s=5.0, max_windows=50)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random EfficientAT tagger (width 0.1) whose probabilities spread over (0, 1)."""
    return tiny_tagger(tmp_path_factory.mktemp("serve-tagger"), LABELS, weight_sd=1.0, bias_sd=1.0)


@pytest.fixture(scope="module")
def tagger(tiny: Path) -> Tagger:
    return Tagger.load(str(tiny))


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory):
    return sonotype.load_model(tiny_model(tmp_path_factory)[0])


@pytest.fixture(scope="module")
def both(clf, tagger: Tagger):
    """A model and a tagger on one server, answering only Host ``testserver`` (TestClient's)."""
    return create_app(clf, tagger=tagger, limits=LIMITS, allow_hosts=["testserver"])


@pytest.fixture(scope="module")
def client(both) -> TestClient:
    return TestClient(both)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 16 kHz mono WAV and a 44.1 kHz stereo FLAC (both resampled to the tagger's 32 kHz)."""
    root = tmp_path_factory.mktemp("tag-clips")
    rng = np.random.default_rng(3)
    t = np.arange(int(2.5 * 16000)) / 16000
    mono = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(root / "tone.wav", mono, 16000)
    stereo = rng.normal(0, 0.1, (int(3.2 * 44100), 2)).astype(np.float32)
    sf.write(root / "noise.flac", stereo, 44100)
    return [root / "tone.wav", root / "noise.flac"]


def _wav(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def _error(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"], body
    assert body["request_id"] == r.headers["x-request-id"]
    return body


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize("top", [1, 3, len(LABELS)])
def test_tag_equals_the_python_tagger_exactly(client: TestClient, tagger: Tagger, clips: list[Path], top: int) -> None:
    for path in clips:
        want = tagger.tag(path, top=top).to_dict()
        r = client.post(f"/v1/tag?top={top}", files={"file": (path.name, path.read_bytes(), "audio/wav")})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["encoder"] == "tiny-tagger" and doc["request_id"] == r.headers["x-request-id"]
        (got,) = doc["results"]
        assert got == {**want, "path": path.name}  # the JSON of `sonotype tag --json`, to the digit
        assert len(got["tags"]) == top and "windows" not in got


def test_tag_windows_equal_the_python_tagger(client: TestClient, tagger: Tagger, clips: list[Path]) -> None:
    path = clips[1]
    want = tagger.tag(path, top=2, window=1.0, hop=0.5).to_dict()
    r = client.post("/v1/tag?top=2&window=1&hop=0.5", files={"file": (path.name, path.read_bytes(), "audio/flac")})
    assert r.status_code == 200, r.text
    (got,) = r.json()["results"]
    assert got == {**want, "path": path.name}
    assert [(w["start"], w["end"]) for w in got["windows"]] == [(s / 2, s / 2 + 1.0) for s in range(5)]
    assert all(len(w["tags"]) == 2 for w in got["windows"])


def test_raw_body_is_tagged_like_a_multipart_upload(client: TestClient, clips: list[Path]) -> None:
    data = clips[0].read_bytes()
    raw = client.post("/v1/tag", content=data, headers={"content-type": "audio/wav"}).json()["results"][0]
    form = client.post("/v1/tag", files={"file": ("x.wav", data, "audio/wav")}).json()["results"][0]
    assert raw["path"] is None and form["path"] == "x.wav"
    assert raw["tags"] == form["tags"] and len(raw["tags"]) == 5  # top defaults to 5


def test_tagger_info_and_health(client: TestClient, clf, tagger: Tagger) -> None:
    info = client.get("/v1/tagger").json()
    assert info["encoder"] == "tiny-tagger" and info["family"] == "efficientat" and info["licence"] == "MIT"
    assert info["labels"] == LABELS and info["n_labels"] == len(LABELS) and info["sample_rate"] == 32000
    assert info["limits"] == LIMITS.to_dict()
    assert client.get("/v1/model").json()["model_id"] == clf.model_id  # with a model, /v1/model is the model
    assert client.get("/healthz").json() == {"status": "ok", "model_id": clf.model_id, "labels": clf.labels,
                                             "tagger": "tiny-tagger"}


def test_a_tagger_only_server(tagger: Tagger, clips: list[Path]) -> None:
    app = create_app(tagger=tagger, limits=LIMITS)
    c = TestClient(app)
    assert c.get("/healthz").json() == {"status": "ok", "tagger": "tiny-tagger"}
    assert c.get("/v1/model").json() == c.get("/v1/tagger").json()
    assert c.post("/v1/tag", content=clips[0].read_bytes()).status_code == 200
    for path in ("/v1/classify", "/v1/classify-group"):
        _error(c.post(path, content=clips[0].read_bytes()), 404, "not_found")
    r = c.get("/", follow_redirects=False)  # the page classifies: a tagger-only server leads to the API docs
    assert r.status_code == 307 and r.headers["location"] == "/docs"
    assert set(app.openapi()["paths"]) == {"/healthz", "/v1/model", "/v1/tagger", "/v1/tag"}


def test_create_app_needs_a_model_or_a_tagger(tiny: Path) -> None:
    with pytest.raises(ParameterError, match="a model, a tagger or both"):
        create_app()
    assert TestClient(create_app(tagger=str(tiny))).get("/v1/tagger").json()["encoder"] == "tiny-tagger"


# ----------------------------------------------------------------------------- errors and limits


@pytest.mark.parametrize(("query", "needle"), [
    ("top=0", "top"), ("top=101", "top"), ("top=abc", "top"), ("top=2.5", "top"),
    ("window=0", "window"), ("window=-1", "window"), ("hop=1", "needs a window"),
    ("window=1&hop=0.001", "min_hop_s"), ("window=0.04", "max_windows"),
])
def test_bad_parameters_are_422_json(client: TestClient, clips: list[Path], query: str, needle: str) -> None:
    body = _error(client.post(f"/v1/tag?{query}", content=clips[0].read_bytes()), 422, "invalid_parameter")
    assert needle in body["detail"], body


def test_oversize_upload_and_too_long_audio_are_413(client: TestClient, both) -> None:
    _error(client.post("/v1/tag", content=b"\0" * 1_200_000), 413, "payload_too_large")
    before = both.state.engine.decodes
    long = np.zeros(6 * 8000, np.float32)  # 6 s > max_duration_s=5: refused from the header
    body = _error(client.post("/v1/tag", files={"file": ("long.wav", _wav(long, 8000), "audio/wav")}), 413,
                  "audio_too_long")
    assert "max_duration_s" in body["detail"] and both.state.engine.decodes == before


def test_not_audio_empty_and_corrupt(client: TestClient) -> None:
    _error(client.post("/v1/tag", content=b"this is not audio at all" * 10), 415, "unsupported_audio")
    _error(client.post("/v1/tag", content=b""), 400, "empty_body")
    _error(client.post("/v1/tag", files={"other": ("a.wav", b"RIFF", "audio/wav")}), 400, "missing_file")
    y = np.zeros(8000, np.float32)
    y[::50] = 5e37  # float WAV with impossible values
    buf = io.BytesIO()
    sf.write(buf, y, 16000, format="WAV", subtype="FLOAT")
    _error(client.post("/v1/tag", content=buf.getvalue()), 422, "invalid_audio")


def test_wrong_host_is_400_and_a_token_is_required(clf, tagger: Tagger, clips: list[Path]) -> None:
    c = TestClient(create_app(clf, tagger=tagger, limits=LIMITS, allow_hosts=["testserver"], token="s3cret"))
    data = clips[0].read_bytes()
    _error(c.post("/v1/tag", content=data, headers={"host": "evil.example"}), 400, "bad_host")
    _error(c.get("/v1/tagger", headers={"host": "evil.example:8000"}), 400, "bad_host")
    r = _error(c.post("/v1/tag", content=data), 401, "unauthorized")
    assert r and c.post("/v1/tag", content=data).headers["www-authenticate"] == "Bearer"
    assert c.post("/v1/tag", content=data, headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_a_failing_tagger_is_500_and_the_server_goes_on(both, client: TestClient, clips: list[Path],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    engine = both.state.engine
    real = engine.tagger

    class Broken:
        def __getattr__(self, name: str):
            return getattr(real, name)

        def tag(self, *args, **kwargs):
            raise RuntimeError("boom")

    engine.tagger = Broken()
    try:
        with caplog.at_level(logging.ERROR, logger="sonotype.serve"):
            body = _error(client.post("/v1/tag", content=clips[0].read_bytes()), 500, "internal_error")
    finally:
        engine.tagger = real
    assert "tagging failed" in body["detail"] and "boom" in caplog.text
    assert client.post("/v1/tag", content=clips[0].read_bytes()).status_code == 200


# ----------------------------------------------------------------------------- OpenAPI


def test_openapi_describes_the_tag_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/tag"]["post"]
    body = op["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["file"]
    assert {"application/octet-stream", "audio/*"} <= set(body)
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    top = params["top"]
    assert (top["minimum"], top["maximum"], top["default"]) == (1, 100, 5)
    assert {"window", "hop"} <= set(params)
    for code in ("400", "401", "413", "415", "422", "500", "503"):
        assert op["responses"][code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "get" in spec["paths"]["/v1/tagger"]


@pytest.fixture
def _quiet_server_log():
    logger = logging.getLogger("sonotype.serve")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("_quiet_server_log")
def test_schemathesis_all_checks_on_the_tagger_routes(both) -> None:
    """Every schemathesis check (status codes, content types, response schemas, negative data
    rejection...) over every operation of a server with a model and a tagger: 0 failures, no 5xx."""
    from schemathesis.checks import max_response_time
    from schemathesis.config import SchemathesisConfig

    config = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "401", "404", "409", "413", "415", "422"]}}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", both, config=config)
    ops = [o.ok() for o in schema.get_all_operations()]
    assert {("POST", "/v1/tag"), ("GET", "/v1/tagger"), ("POST", "/v1/classify")} <= {(o.method.upper(), o.path) for o in ops}
    failures: list[str] = []
    codes: Counter[tuple[str, int]] = Counter()
    with asgi.get_client(schema.app) as session:
        for op in ops:
            modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if op.query or op.body else (GenerationMode.POSITIVE,)
            n = 30 if op.path in ("/v1/tag", "/v1/tagger") else 8
            for mode in modes:
                @settings(max_examples=n, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(op.as_strategy(mode))
                def fuzz(case) -> None:
                    try:
                        r = case.call_and_validate(session=session, excluded_checks=[max_response_time])
                        codes[(case.path, r.status_code)] += 1
                    except BaseException as exc:
                        failures.append(f"{case.method} {case.path} {mode.value}: {str(exc)[:300]}")  # noqa: B023

                fuzz()
    assert not failures, "\n".join(failures[:10])
    assert all(c < 500 for _, c in codes), codes
    assert any(p == "/v1/tag" and 400 <= c < 500 for p, c in codes), codes


# ----------------------------------------------------------------------------- CLI and workers


def test_cli_serve_tagger_without_a_model(monkeypatch: pytest.MonkeyPatch, tiny: Path) -> None:
    served = {}

    def fake_run(app, **kw):
        served["app"], served["kw"] = app, kw

    monkeypatch.setattr("sonotype.serve.server.run", fake_run)  # the command imports it when it runs
    res = CliRunner().invoke(cli_app, ["serve", "--tagger", str(tiny), "--port", "8123"])
    assert res.exit_code == 0, res.output
    assert "tagger tiny-tagger (6 labels, POST /v1/tag)" in res.output
    app = served["app"]
    assert app.state.classifier is None and app.state.tagger.name == "tiny-tagger"
    assert "/v1/tag" in app.openapi()["paths"] and served["kw"]["port"] == 8123
    res = CliRunner().invoke(cli_app, ["serve"])
    assert isinstance(res.exception, ParameterError) and "--tagger" in str(res.exception)


def test_worker_processes_get_the_tagger_from_the_environment(monkeypatch: pytest.MonkeyPatch, tiny: Path) -> None:
    monkeypatch.delenv("SONOTYPE_SERVE_MODEL", raising=False)
    monkeypatch.setenv("SONOTYPE_SERVE_TAGGER", str(tiny))
    monkeypatch.setenv("SONOTYPE_SERVE_ALLOW_HOSTS", "*")
    c = TestClient(app_from_env())
    assert c.get("/healthz").json() == {"status": "ok", "tagger": "tiny-tagger"}
    monkeypatch.delenv("SONOTYPE_SERVE_TAGGER")
    with pytest.raises(ParameterError, match="SONOTYPE_SERVE_TAGGER"):
        app_from_env()


# ----------------------------------------------------------------------------- the real weights


@pytest.mark.realdata
def test_real_mn04_names_an_esc50_cow_over_http(real_encoders: Path, shared_data: Path) -> None:
    clip = shared_data / "esc50/audio/4-181955-A-3.flac"
    tagger = Tagger.load(str(real_encoders / "efficientat-mn04"))
    c = TestClient(create_app(tagger=tagger))
    r = c.post("/v1/tag?top=3", files={"file": (clip.name, clip.read_bytes(), "audio/flac")})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["encoder"] == "efficientat-mn04"
    (res,) = doc["results"]
    assert {"Cattle, bovinae", "Moo"} & {t["label"] for t in res["tags"]}, res["tags"]
    assert res == {**tagger.tag(clip, top=3).to_dict(), "path": clip.name}
    info = c.get("/v1/tagger").json()
    assert info["n_labels"] == 527 and info["family"] == "efficientat" and info["licence"] == "MIT"
