"""Issue 23: every request has a budget, hostile clients are refused, the schema is the truth.

Each test names the row of the issue's table it guards. In-process (TestClient) except the
header-timeout tests, which run uvicorn on loopback in a thread, and the RSS test, which
runs ``sonotype serve`` in a subprocess (``slow``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import sonotype
from sonotype.errors import ParameterError
from sonotype.items.engine import EngineConfig
from sonotype.serve import create_app
from sonotype.serve.security import default_hosts, host_name
from sonotype.serve.server import HeaderTimeoutH11, RateLimitFilter
from sonotype.serve.uploads import receive_body
from sonotype.utils import limits as limits_mod
from sonotype.utils.limits import Limits, cap_jobs, check_samples, check_windows
from test_serve import SR, tiny_model


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return sonotype.load_model(tiny_model(tmp_path_factory)[0])


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> bytes:
    return tiny_model(tmp_path_factory)[1][0].read_bytes()


@pytest.fixture(scope="module")
def app(clf):
    return create_app(clf, limits=Limits())


@pytest.fixture(scope="module")
def client(app) -> TestClient:
    return TestClient(app)


@pytest.fixture(scope="module")
def big_flac(tmp_path_factory) -> bytes:
    """Row 2's file: 599 s of near-silence at 192 kHz stereo, a few hundred KB of FLAC."""
    path = tmp_path_factory.mktemp("flac") / "big.flac"
    sr, n = 192_000, 599 * 192_000
    block = np.zeros((sr * 10, 2), np.int16)
    block[::997] = 3  # not pure digital silence
    with sf.SoundFile(path, "w", sr, 2, format="FLAC", subtype="PCM_16") as f:
        done = 0
        while done < n:
            k = min(len(block), n - done)
            f.write(block[:k])
            done += k
    return path.read_bytes()


def _lying_wav(seconds_real: float, claimed_bytes: int, sr: int = SR) -> bytes:
    """A 16-bit mono WAV whose RIFF and data sizes announce ``claimed_bytes`` of samples."""
    y = (np.sin(np.arange(int(sr * seconds_real)) / 7) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, sr, sr * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", (36 + claimed_bytes) & 0xFFFFFFFF) + b"WAVE" + fmt + \
        b"data" + struct.pack("<I", claimed_bytes & 0xFFFFFFFF) + y


# ----------------------------------------------------------------------------- limits in one place


def test_limits_defaults_env_and_overrides() -> None:
    lim = Limits.from_env({"SONOTYPE_LIMIT_MAX_WINDOWS": "12", "SONOTYPE_LIMIT_MIN_HOP_S": "0.5", "PATH": "/bin"})
    assert (lim.max_windows, lim.min_hop_s) == (12, 0.5)
    assert Limits.from_env(lim.to_env()) == lim
    assert lim.replace(queue="3").queue == 3
    for bad in ({"SONOTYPE_LIMIT_NOPE": "1"}, {"SONOTYPE_LIMIT_QUEUE": "1.5"}, {"SONOTYPE_LIMIT_MIN_HOP_S": "nan"},
                {"SONOTYPE_LIMIT_MAX_WINDOWS": "-1"}, {"SONOTYPE_LIMIT_MAX_WINDOWS": "many"}):
        with pytest.raises(ParameterError):
            Limits.from_env(bad)
    text = limits_mod.describe()
    assert all(name in text for name in Limits().to_dict())


@pytest.mark.parametrize(("window", "hop", "needle"), [
    (1.0, 1e-9, "min_hop_s"), (1e308, None, "max_window_s"), (1.0, 1e308, "max_window_s"),
    (float("nan"), None, "finite"), (float("inf"), 1.0, "finite"), (0.0, None, "> 0"), (None, 1.0, "needs a window"),
])
def test_check_windows_refuses(window, hop, needle) -> None:
    """Rows 1 and 5: the same refusal for HTTP, WebSocket and the CLI."""
    with pytest.raises(ParameterError, match=needle):
        check_windows(Limits(), window=window, hop=hop)


def test_check_windows_counts_windows_per_request_and_per_stream_second() -> None:
    lim = Limits(max_windows=100, max_windows_per_stream_s=4)
    assert check_windows(lim, window=1.0, hop=None, duration=100.0) == (1.0, 1.0)
    with pytest.raises(ParameterError, match="max_windows"):
        check_windows(lim, window=1.0, hop=0.5, duration=100.0)
    with pytest.raises(ParameterError, match="max_windows_per_stream_s"):
        check_windows(lim, window=1.0, hop=0.2, stream=True)


def test_check_samples_counts_rate_times_channels() -> None:
    """Row 2: 599 s passed a 600 s duration limit whatever its rate; samples count both."""
    lim = Limits()
    check_samples(lim, samplerate=48_000, channels=2, frames=599 * 48_000)
    with pytest.raises(ParameterError, match="max_samples"):
        check_samples(lim, samplerate=192_000, channels=2, frames=599 * 192_000)
    with pytest.raises(ParameterError, match="max_duration_s"):
        check_samples(lim, samplerate=8_000, channels=1, frames=601 * 8_000)


def test_jobs_capped_at_usable_cores_with_a_note(monkeypatch) -> None:
    """Row 9: --jobs 1000 started one worker per file."""
    monkeypatch.setattr(limits_mod, "usable_cores", lambda: 2)
    with pytest.warns(UserWarning, match="1000 is more than the 2 usable"):
        assert cap_jobs(1000) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cap_jobs(2) == 2
    with pytest.warns(UserWarning):
        assert EngineConfig(workers=1000).n_workers() == 2
    assert EngineConfig().n_workers() == 2


def test_cli_predict_refuses_extreme_window_and_hop(tmp_path_factory) -> None:
    """Row 5: `predict --window 1e308` was a traceback, `--window 1 --hop 1e-9` ran for ever."""
    model, files = tiny_model(tmp_path_factory)
    env = {**os.environ, "PYTHONPATH": str(Path(sonotype.__file__).parents[1])}
    for args in (["--window", "1e308"], ["--window", "1", "--hop", "1e-9"]):
        r = subprocess.run([sys.executable, "-m", "sonotype", "predict", str(model), str(files[0]), *args],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr


# ----------------------------------------------------------------------------- HTTP budgets


def test_hop_floor_and_window_cap_on_http(client, wav) -> None:
    """Rows 1 and 5 over HTTP: clean 422 naming the limit, never a 5000-window computation."""
    for q, needle in (("window=1&hop=0.000000001", "min_hop_s"), ("window=1e308", "window")):
        r = client.post(f"/v1/classify?{q}", content=wav)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_max_windows_per_request(clf, wav) -> None:
    c = TestClient(create_app(clf, limits=Limits(max_windows=3)))
    r = c.post("/v1/classify?window=0.2&hop=0.1", content=wav)
    assert r.status_code == 422 and "max_windows" in r.json()["detail"], r.text
    assert c.post("/v1/classify?window=0.5", content=wav).status_code == 200


def test_192khz_stereo_flac_refused_before_decoding(app, client, big_flac) -> None:
    """Row 2: a 447 KB FLAC took the server from 361 MB to 2.1 GB; now refused from its header."""
    engine = app.state.engine
    before = engine.decodes
    r = client.post("/v1/classify", files={"file": ("big.flac", big_flac, "audio/flac")})
    assert r.status_code == 413 and "max_samples" in r.json()["detail"], r.text
    r = client.post("/v1/classify-group", files=[("file", ("a.flac", big_flac, "audio/flac"))])
    assert r.status_code == 413 and "max_samples" in r.json()["detail"], r.text
    assert engine.decodes == before  # refused from the header: nothing decoded


def test_wav_header_that_lies_about_its_length(client, clf) -> None:
    """Row 2: a header announcing 2 GB of samples over 1 s of data decodes what is there, or is refused."""
    data = _lying_wav(1.0, claimed_bytes=2_000_000_000)
    r = client.post("/v1/classify", content=data)
    assert r.status_code in (200, 413, 422), r.text
    if r.status_code == 200:
        assert r.json()["duration"] == pytest.approx(1.0, abs=0.01)
    else:
        assert r.json()["error"] in ("audio_too_long", "invalid_audio")


def test_queue_full_is_503_with_retry_after(app, client, wav) -> None:
    """Row 2: a bounded worker pool and queue; beyond them 503 at once, with Retry-After."""
    engine = app.state.engine
    lim = engine.limits
    engine.admitted = lim.decode_workers + lim.queue
    try:
        r = client.post("/v1/classify", content=wav)
    finally:
        engine.admitted = 0
    assert r.status_code == 503 and r.json()["error"] == "busy", r.text
    assert r.headers["retry-after"] == str(lim.retry_after_s)
    assert client.post("/v1/classify", content=wav).status_code == 200


def test_upload_spooled_to_disk_past_the_threshold() -> None:
    """Row 2: the body was held in memory; past spool_kb it now lives in a temporary file."""
    from starlette.requests import Request

    async def body_of(n: int):
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            sent = True
            return {"type": "http.request", "body": b"x" * n, "more_body": False}

        req = Request({"type": "http", "method": "POST", "headers": []}, receive)
        return await receive_body(req, max_bytes=10_000_000, timeout_s=10, spool_bytes=1024)

    small, large = asyncio.run(body_of(100)), asyncio.run(body_of(5000))
    try:
        assert small.name is None  # in memory
        assert large.name is not None and large.read() == b"x" * 5000  # rolled over to a file
    finally:
        small.close()
        large.close()


# ----------------------------------------------------------------------------- WebSocket budgets


@pytest.mark.parametrize(("query", "needle"), [
    ("window=1&hop=0.000000001", "min_hop_s"), ("window=1e308", "max_window_s"), ("window=1&hop=1e308", "max_window_s"),
])
def test_stream_limits_close_1007_with_reason(client, query, needle) -> None:
    """Rows 1 and 5 on the WebSocket: a close code with a reason, not 1011 and a traceback."""
    with client.websocket_connect(f"/v1/stream?{query}") as ws, pytest.raises(WebSocketDisconnect) as e:
        ws.receive_text()
    assert e.value.code == 1007 and needle in e.value.reason


def test_stream_windows_per_second(clf) -> None:
    c = TestClient(create_app(clf, limits=Limits(max_windows_per_stream_s=2)))
    with c.websocket_connect("/v1/stream?window=1&hop=0.25") as ws, pytest.raises(WebSocketDisconnect) as e:
        ws.receive_text()
    assert e.value.code == 1007 and "max_windows_per_stream_s" in e.value.reason


# ----------------------------------------------------------------------------- hostile clients (rows 3, 4)


def test_host_allow_list_on_every_route(clf, wav) -> None:
    """Row 4: DNS rebinding could read /v1/model; a foreign Host is now 400."""
    c = TestClient(create_app(clf, allow_hosts=default_hosts("127.0.0.1")), base_url="http://127.0.0.1:8000")
    assert c.get("/v1/model").status_code == 200
    assert c.get("/v1/model", headers={"host": "localhost:8000"}).status_code == 200
    for path in ("/v1/model", "/healthz", "/"):
        r = c.get(path, headers={"host": "evil.example:8000"})
        assert r.status_code == 400 and r.json()["error"] == "bad_host", r.text
    r = c.post("/v1/classify", content=wav, headers={"host": "evil.example"})
    assert r.status_code == 400
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect("/v1/stream", headers={"host": "evil.example"}):
        pass
    assert e.value.code == 1008


def test_default_hosts() -> None:
    assert set(default_hosts("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert "box.lan" in default_hosts("10.0.0.5", ["box.lan"])
    assert default_hosts("0.0.0.0") is None and default_hosts("127.0.0.1", ["*"]) is None
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost.:80") == "localhost"


def test_websocket_origin_allow_list(clf) -> None:
    """Row 4: any web page could drive the local WebSocket."""
    c = TestClient(create_app(clf, allow_hosts=default_hosts("127.0.0.1"), allow_origins=["https://app.example"]),
                   base_url="http://127.0.0.1:8000")
    hosts = {"host": "127.0.0.1:8000"}
    with pytest.raises(WebSocketDisconnect) as e, \
            c.websocket_connect("/v1/stream", headers={**hosts, "origin": "http://evil.example"}):
        pass
    assert e.value.code == 1008 and "origin" in e.value.reason
    for origin in ("http://127.0.0.1:8000", "https://app.example", None):  # own page, listed, not a browser
        h = hosts if origin is None else {**hosts, "origin": origin}
        with c.websocket_connect("/v1/stream", headers=h) as ws:
            ws.send_text("end")
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_text()
            assert e.value.code == 1000


def test_bearer_token(clf, wav) -> None:
    c = TestClient(create_app(clf, token="s3cret"))
    r = c.get("/v1/model")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and r.json()["error"] == "unauthorized"
    assert c.get("/v1/model", headers={"authorization": "Bearer wrong"}).status_code == 401
    auth = {"authorization": "Bearer s3cret"}
    assert c.get("/v1/model", headers=auth).status_code == 200
    assert c.post("/v1/classify", content=wav, headers=auth).status_code == 200
    assert c.get("/").status_code == 200  # the page holds no data
    with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect("/v1/stream"):
        pass
    assert e.value.code == 1008
    with c.websocket_connect("/v1/stream?token=s3cret") as ws:
        ws.send_text("end")
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_text()
        assert e.value.code == 1000


def test_accept_error_log_is_rate_limited() -> None:
    """Row 3: every failed accept() was logged, 242 MB in 75 s."""
    now = [0.0]
    f = RateLimitFilter("out of system resource", every_s=10.0, clock=lambda: now[0])
    def rec():
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "socket.accept() out of system resource",
                                        None, None)
    passed = [f.filter(rec()) for _ in range(1000)]
    assert sum(passed) == 1
    now[0] = 11.0
    r = rec()
    assert f.filter(r) and "999 more like it" in r.getMessage()
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", None, None)
    assert f.filter(other)


@pytest.fixture
def live_server(clf):
    """uvicorn with the header-timeout protocol on a free loopback port, in a thread."""
    HeaderTimeoutH11.header_timeout_s = 0.5
    config = uvicorn.Config(create_app(clf), host="127.0.0.1", port=0, http=HeaderTimeoutH11, loop="asyncio",
                            log_level="warning", timeout_keep_alive=1)
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    t.join(10)
    HeaderTimeoutH11.header_timeout_s = Limits.header_timeout_s


def _closed_by_server(sock: socket.socket, trickle: bool) -> bool:
    """Send half a request's headers (a byte at a time when ``trickle``); True once the server closes."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    sock.settimeout(0.1 if trickle else 30)
    for _ in range(300):
        try:
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            pass
        except OSError:
            return True
        if trickle:
            try:
                sock.sendall(b"X")
            except OSError:
                return True
    return False


@pytest.mark.parametrize("trickle", [False, True])
def test_half_sent_headers_are_timed_out(live_server, trickle) -> None:
    """Row 3: half-sent headers were never timed out; trickling a byte at a time does not reset the clock."""
    closed_before = HeaderTimeoutH11.timeouts
    with socket.create_connection(("127.0.0.1", live_server)) as s:
        assert _closed_by_server(s, trickle)
    assert HeaderTimeoutH11.timeouts > closed_before
    r = httpx.get(f"http://127.0.0.1:{live_server}/healthz", timeout=30)
    assert r.status_code == 200


# ----------------------------------------------------------------------------- the schema (row 11)


def test_schema_declares_error_bodies_group_body_and_405_allow(client) -> None:
    schema = client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    assert "HTTPValidationError" not in comps and comps["ErrorBody"]["properties"]["detail"]["type"] == "string"
    for ops in schema["paths"].values():
        for op in ops.values():
            for code, resp in op["responses"].items():
                if code[0] in "45":
                    assert resp["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody"), (code, op)
    group = schema["paths"]["/v1/classify-group"]["post"]
    assert "multipart/form-data" in group["requestBody"]["content"]
    r = client.get("/v1/classify")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "method_not_allowed"
    r = client.get("/v1/classify?window=abc")
    assert r.status_code == 405
    r = client.post("/v1/classify?window=abc", content=b"x")
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_peak_rss_bounded_for_admitted_192khz_flac(tmp_path_factory, big_flac, tmp_path) -> None:
    """Row 2 target: with max_samples raised so the 192 kHz stereo FLAC is admitted and decoded
    (block by block to the model's rate, then classified in 10 s windows), the server's peak RSS
    grows by less than 300 MB (it grew by 1.8 GB)."""
    model, _ = tiny_model(tmp_path_factory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(sonotype.__file__).parents[1]),
           "SONOTYPE_LIMIT_MAX_SAMPLES": str(10**9)}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "sonotype", "serve", str(model), "--port", str(port),
                             "--threads", "1", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        warm = io.BytesIO()
        sf.write(warm, np.sin(np.arange(SR) / 7).astype(np.float32) / 2, SR, format="WAV")
        assert httpx.post(f"{url}/v1/classify", content=warm.getvalue()).status_code == 200
        base = _vm_hwm(proc.pid)
        r = httpx.post(f"{url}/v1/classify?window=10", files={"file": ("big.flac", big_flac)}, timeout=300)
        assert r.status_code == 200, r.text
        assert r.json()["duration"] == pytest.approx(599.0, abs=0.1)
        peak = _vm_hwm(proc.pid)
        assert peak - base < 300 * 1024 * 1024, (base, peak)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
