"""A real ``sonotype serve`` process on loopback, over HTTP, and a bounded load test.

The load test sends 300 requests from 8 concurrent clients (a few of them deliberately
bad), requires zero 5xx and every answer equal to the in-process Python API's, prints
p50/p95 latency, and checks the server is still healthy afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

import sonotype
from test_serve import tiny_model

N_REQUESTS = 300
N_CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sonotype_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("sonotype")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("sonotype")
    return [found] if found else [sys.executable, "-c", "from sonotype.cli import main; main()"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(base URL, model dir, audio files, log path) of a running `sonotype serve` process."""
    model_dir, files = tiny_model(tmp_path_factory)
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*_sonotype_cmd(), "serve", str(model_dir), "--port", str(port), "--threads", "1",
             "--max-upload-mb", "2", "--max-duration", "10"],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`sonotype serve` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"`sonotype serve` did not answer within 90 s:\n{log.read_text()}")
        time.sleep(0.2)
    yield url, model_dir, files, log, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_binds_loopback_and_serves(served) -> None:
    url, model_dir, files, log, _proc = served
    clf = sonotype.load_model(model_dir)
    assert httpx.get(f"{url}/healthz").json()["model_id"] == clf.model_id
    assert httpx.get(f"{url}/v1/model").json()["labels"] == clf.labels
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "sonotype" in page.text
    r = httpx.post(f"{url}/v1/classify", files={"file": (files[0].name, files[0].read_bytes())},
                   headers={"X-Request-ID": "proc-test-1"})
    assert r.status_code == 200 and r.json()["label"] == clf.predict(files[0]).label
    assert r.headers["x-request-id"] == "proc-test-1"
    r = httpx.post(f"{url}/v1/classify", content=b"not audio at all, just words", headers={"X-Request-ID": "proc-bad-2"})
    assert r.status_code == 415 and r.json()["request_id"] == "proc-bad-2"
    r = httpx.post(f"{url}/v1/classify", content=b"\0" * 2_500_000)
    assert r.status_code == 413
    time.sleep(0.2)
    assert "proc-bad-2" in log.read_text()  # the error was logged with its request id
    # Bound to loopback only: a non-loopback address of this machine must not answer.
    host = socket.gethostbyname(socket.gethostname())
    if not host.startswith("127."):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{host}:{url.rsplit(':', 1)[1]}/healthz", timeout=2)


def test_load_300_requests_8_clients(served) -> None:
    url, model_dir, files, _log, proc = served
    clf = sonotype.load_model(model_dir)
    payloads = [(f.name, f.read_bytes()) for f in files]
    expected = [clf.predict(f).to_dict() for f in files]
    bad = b"definitely not audio\n" * 10
    rng = np.random.default_rng(0)
    plan = [int(i) for i in rng.integers(0, len(payloads), N_REQUESTS)]
    bad_at = set(rng.choice(N_REQUESTS, 15, replace=False).tolist())

    def worker(ids: list[int]) -> list[tuple[int, int, float, str]]:
        out = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in ids:
                t0 = time.perf_counter()
                if i in bad_at:
                    r = c.post("/v1/classify", content=bad)
                    ok = r.status_code == 415 and r.json()["error"] == "unsupported_audio"
                else:
                    k = plan[i]
                    if i % 2:
                        r = c.post("/v1/classify", files={"file": payloads[k]})
                    else:
                        r = c.post("/v1/classify", content=payloads[k][1], headers={"content-type": "audio/wav"})
                    d = r.json()
                    ok = (r.status_code == 200 and d["label"] == expected[k]["label"]
                          and all(abs(d["probabilities"][lab] - p) < 1e-5 for lab, p in expected[k]["probabilities"].items()))
                out.append((i, r.status_code, time.perf_counter() - t0, "ok" if ok else r.text[:200]))
        return out

    shards = [list(range(j, N_REQUESTS, N_CLIENTS)) for j in range(N_CLIENTS)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(N_CLIENTS) as ex:
        results = [row for rows in ex.map(worker, shards) for row in rows]
    wall = time.perf_counter() - t0
    assert len(results) == N_REQUESTS
    server_errors = [r for r in results if r[1] >= 500]
    wrong = [r for r in results if r[3] != "ok"]
    lat = np.array([r[2] for r in results if r[0] not in bad_at]) * 1000
    p50, p95 = np.percentile(lat, [50, 95])
    print(f"\nload test: {N_REQUESTS} requests ({len(bad_at)} bad), {N_CLIENTS} clients, {wall:.1f} s, "
          f"{N_REQUESTS / wall:.0f} req/s; classify latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    assert not server_errors, server_errors[:5]
    assert not wrong, wrong[:5]
    assert proc.poll() is None
    assert httpx.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"
    r = httpx.post(f"{url}/v1/classify", content=payloads[0][1])
    assert r.status_code == 200 and r.json()["label"] == expected[0]["label"]


def test_bad_model_directory_fails_cleanly(tmp_path: Path, monkeypatch, capsys) -> None:
    """`sonotype serve` on a wrong folder prints one red line and exits 2, before binding."""
    from sonotype.cli import main

    monkeypatch.setattr(sys, "argv", ["sonotype", "serve", str(tmp_path / "nope"), "--port", str(_free_port())])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "model directory not found" in err and "Traceback" not in err
