"""The /v1/stream WebSocket in-process: live windows equal offline predict, and every close code."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import sonotype
from sonotype.inference.live import LiveStream
from sonotype.inference.windows import Windower
from sonotype.serve import create_app
from sonotype.serve import stream as stream_mod
from test_serve import SR, tiny_model


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory):
    return sonotype.load_model(tiny_model(tmp_path_factory)[0])


@pytest.fixture(scope="module")
def signal(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The held-out demo clips (one per class, 1 s each) back to back, twice: about 8-10 s at 16 kHz."""
    files = tiny_model(tmp_path_factory)[1]
    parts = [sf.read(f, dtype="float32")[0] for f in files]
    return np.concatenate(parts + parts[::-1]).astype(np.float32)


@pytest.fixture(scope="module")
def client(clf) -> TestClient:
    return TestClient(create_app(clf, max_stream_s=30.0, max_stream_buffer_s=20.0))


def _stream(ws, y: np.ndarray, chunks: list[int]) -> list[dict]:
    """Send ``y`` cut at ``chunks`` sizes, then 'end'; the messages up to the 1000 close."""
    i = 0
    for c in chunks:
        ws.send_bytes(y[i : i + c].astype("<f4").tobytes())
        i += c
    ws.send_bytes(y[i:].astype("<f4").tobytes())
    ws.send_text("end")
    out = []
    while True:
        try:
            out.append(json.loads(ws.receive_text()))
        except WebSocketDisconnect as d:
            assert d.code == 1000, d.reason
            return out


def _close_of(ws) -> tuple[int, str]:
    while True:
        try:
            ws.receive_text()
        except WebSocketDisconnect as d:
            return d.code, d.reason


def _same_as_offline(got: list[dict], want, atol: float) -> None:
    assert [(g["start"], g["end"]) for g in got] == [(s.start, s.end) for s in want.segments]
    assert [g["label"] for g in got] == [s.label for s in want.segments]
    for g, s in zip(got, want.segments, strict=True):
        for lab, p in s.probabilities.items():
            assert g["probabilities"][lab] == pytest.approx(p, abs=atol)


@pytest.mark.parametrize(("window", "hop"), [(0.5, 0.5), (0.5, 0.2), (0.3, 0.7), (1.5, None)])
def test_live_windows_equal_offline(client, clf, signal, window, hop):
    rng = np.random.default_rng(int(window * 10))
    chunks = list(rng.integers(1, 5000, 40))  # any chunk size, one sample included
    chunks[3] = 1
    q = f"sr={SR}&window={window}" + (f"&hop={hop}" if hop else "")
    with client.websocket_connect(f"/v1/stream?{q}") as ws:
        got = _stream(ws, signal, chunks)
    want = clf.predict(signal, SR, window=window, hop=hop)
    assert len(got) >= 5
    _same_as_offline(got, want, 1e-5)
    assert len({g["label"] for g in got}) >= 2  # a real timeline, not one label


def test_other_rate_is_resampled_like_a_file(client, clf, signal, tmp_path: Path):
    import soxr

    y = soxr.resample(signal, SR, 22050).astype(np.float32)
    f = tmp_path / "x.wav"
    sf.write(f, y, 22050, subtype="FLOAT")
    with client.websocket_connect("/v1/stream?sr=22050&window=0.5") as ws:
        got = _stream(ws, y, [2205] * 30)
    _same_as_offline(got, clf.predict(f, window=0.5), 1e-3)


def test_window_answered_as_soon_as_complete(client, signal):
    """The first window's message comes after its last sample, before any more audio is sent."""
    with client.websocket_connect(f"/v1/stream?sr={SR}&window=0.5") as ws:
        ws.send_bytes(signal[: SR // 2 - 1].astype("<f4").tobytes())
        ws.send_bytes(signal[SR // 2 - 1 : SR // 2].astype("<f4").tobytes())
        m = json.loads(ws.receive_text())
        assert (m["start"], m["end"]) == (0.0, 0.5)
        # a partial window is answered only on 'end'
        ws.send_bytes(signal[SR // 2 : SR // 2 + 3000].astype("<f4").tobytes())
        ws.send_text("end")
        m = json.loads(ws.receive_text())
        assert (m["start"], m["end"]) == (0.5, round(0.5 + 3000 / SR, 6))
        assert _close_of(ws) == (1000, "end of stream")


def test_many_streams_at_once(client, clf, signal):
    want = clf.predict(signal, SR, window=0.5, hop=0.25)
    results: dict[int, list[dict]] = {}

    def one(k: int) -> None:
        with client.websocket_connect("/v1/stream?window=0.5&hop=0.25") as ws:
            results[k] = _stream(ws, signal, [1000 + 37 * k] * 20)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    for got in results.values():
        _same_as_offline(got, want, 1e-5)


@pytest.mark.parametrize(("query", "code", "needle"), [
    ("sr=abc", 1007, "not an integer"),
    ("sr=100", 1007, "outside 4000..192000"),
    ("sr=0", 1007, "sr"),
    ("window=nan", 1007, "not finite"),
    ("window=0", 1007, "window"),
    ("window=0.02", 1007, "shorter than this model's minimum"),
    ("window=0.001", 1007, "min_hop_s"),
    # issue 23 rows 1 and 5: no floor on the hop ran 37 CPU-s per audio second; 1e308 closed 1011
    ("window=1&hop=0.000000001", 1007, "min_hop_s"),
    ("window=1&hop=0.001", 1007, "min_hop_s"),
    ("window=1&hop=0.005", 1007, "min_hop_s"),
    ("window=1e308", 1007, "max_window_s"),
    ("window=1&hop=1e308", 1007, "max_window_s"),
    ("window=0.5&hop=-1", 1007, "hop"),
    ("window=15&hop=15", 1007, "more than this server buffers"),
])
def test_bad_query_closes_1007(client, query, code, needle):
    with client.websocket_connect(f"/v1/stream?{query}") as ws:
        got = _close_of(ws)
    assert got[0] == code and needle in got[1], got


def test_bad_messages_close_with_reason(client):
    cases = [
        (lambda ws: ws.send_bytes(b"\x00" * 4001), 1007, "multiple of 4"),
        (lambda ws: ws.send_bytes(np.array([0.1, np.nan], "<f4").tobytes()), 1007, "NaN"),
        (lambda ws: ws.send_bytes(np.array([0.1, 5e4], "<f4").tobytes()), 1007, "[-1, 1]"),
        (lambda ws: ws.send_text("hello"), 1003, "unknown text message"),
        (lambda ws: ws.send_bytes(b"\x00" * (stream_mod.MAX_FRAME_BYTES + 4)), 1009, "at most"),
    ]
    for send, code, needle in cases:
        with client.websocket_connect("/v1/stream?window=0.5") as ws:
            ws.send_bytes(np.zeros(100, "<f4").tobytes())
            send(ws)
            got = _close_of(ws)
        assert got[0] == code and needle in got[1], (needle, got)
        assert len(got[1].encode()) <= 123


def test_stream_length_limit_closes_1008(clf):
    c = TestClient(create_app(clf, max_stream_s=2.0))
    with c.websocket_connect("/v1/stream?window=0.5") as ws:
        for _ in range(5):
            ws.send_bytes(np.zeros(SR // 2, "<f4").tobytes())
        code, reason = _close_of(ws)
    assert code == 1008 and "longer than this server's limit of 2 s" in reason


def test_backlog_limit_closes_1008(clf, monkeypatch):
    real = stream_mod.classify_windows

    def slow(*a, **k):
        time.sleep(0.3)
        return real(*a, **k)

    monkeypatch.setattr(stream_mod, "classify_windows", slow)
    c = TestClient(create_app(clf, max_stream_buffer_s=1.5))
    with c.websocket_connect("/v1/stream?window=0.5") as ws:
        for _ in range(40):  # 10 s in an instant: far faster than real time
            ws.send_bytes(np.zeros(SR // 4, "<f4").tobytes())
        code, reason = _close_of(ws)
    assert code == 1008 and "waiting for classification" in reason


def test_classification_failure_closes_1011(clf, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(stream_mod, "classify_windows", broken)
    c = TestClient(create_app(clf))
    with c.websocket_connect("/v1/stream?window=0.5") as ws:
        ws.send_bytes(np.zeros(SR, "<f4").tobytes())
        ws.send_text("end")
        assert _close_of(ws)[0] == 1011
    with c.websocket_connect("/v1/stream?window=0.5") as ws:  # told at once, not at the next message
        ws.send_bytes(np.zeros(SR, "<f4").tobytes())
        code, reason = _close_of(ws)
        assert code == 1011 and "see the server log" in reason


def test_windower_equals_segment():
    from sonotype.audio import segment

    rng = np.random.default_rng(0)
    y = rng.standard_normal(10_007).astype(np.float32)
    for w, h in ((0.1, 0.1), (0.1, 0.03), (0.05, 0.2), (2.0, 1.0)):
        win = Windower(1000, w, h, min_samples=1)
        got, i = [], 0
        for c in rng.integers(1, 700, 100):
            got += win.push(y[i : i + c])
            i += c
            if i >= y.size:
                break
        got += win.push(y[i:]) + win.finish()
        want = segment(y, 1000, w, h, last="keep")
        assert [(g.start / 1000, g.end / 1000) for g in got] == [(s.start, min(s.end, y.size / 1000)) for s in want]
        for g, s in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.samples, s.samples)
        assert win.buffered <= int(round(max(w, h) * 1000)) + 700


def test_live_stream_checks(clf):
    with pytest.raises(sonotype.errors.ParameterError, match="outside"):
        LiveStream(clf, 1000, 0.5)
    live = LiveStream(clf, SR, 0.5, max_seconds=1.0)
    assert live.push(np.zeros(SR // 2, np.float32))[0].end == SR // 2
    with pytest.raises(sonotype.errors.ParameterError, match="limit of 1 s"):
        live.push(np.zeros(SR, np.float32))
