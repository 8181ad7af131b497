"""``sonotype bench serve``: drive the service on loopback with concurrent clients and report.

A benchmark, not a test: N client threads for a bounded time, each picking in turn a
classify request (a 30 s clip), a classify-group request (three clips), a stream (5 s of
PCM over the WebSocket), an oversize upload and a malformed one. Reported: requests per
second, p50/p95/p99 latency per kind, answers by status code, dropped connections, and the
server's peak RSS (``VmHWM`` of the process it started). ``slow_clients`` slowloris
connections (half-sent headers, refreshed as the server closes them) run meanwhile, and a
normal client's latency is measured under them.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import wsproto
import wsproto.events as wse

__all__ = ["run_bench"]

KINDS = ("classify", "group", "stream", "oversize", "malformed")


def _wav(seconds: float, sr: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * (200 + 300 * rng.random()) * t) + 0.05 * rng.standard_normal(t.size))
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _stream(host: str, port: int, pcm: bytes, token: str | None) -> int:
    """One /v1/stream session (wsproto over a socket): the close code."""
    conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    target = "/v1/stream?window=1" + (f"&token={token}" if token else "")
    with socket.create_connection((host, port), timeout=60) as s:
        s.sendall(conn.send(wse.Request(host=f"{host}:{port}", target=target)))
        opened = False
        code = 0
        sent = False
        while True:
            data = s.recv(65536)
            if not data:
                return code or 1006
            conn.receive_data(data)
            for ev in conn.events():
                if isinstance(ev, wse.AcceptConnection):
                    opened = True
                elif isinstance(ev, wse.RejectConnection):
                    return 403
                elif isinstance(ev, wse.CloseConnection):
                    code = ev.code
                    s.sendall(conn.send(ev.response()))
                    return code
            if opened and not sent:
                for i in range(0, len(pcm), 32000):
                    s.sendall(conn.send(wse.BytesMessage(data=pcm[i:i + 32000])))
                s.sendall(conn.send(wse.TextMessage(data="end")))
                sent = True


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _slowloris(host: str, port: int, n: int, stop: threading.Event, opened: list[int]) -> None:
    """Keep ``n`` connections with half-sent headers open, reopening the ones the server closes."""
    socks: list[socket.socket] = []
    while not stop.is_set():
        while len(socks) < n and not stop.is_set():
            try:
                s = socket.create_connection((host, port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                s.setblocking(False)
                socks.append(s)
                opened[0] += 1
            except OSError:
                break
        alive = []
        for s in socks:
            try:
                if s.recv(1) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            try:
                s.send(b"X")  # trickle
                alive.append(s)
            except OSError:
                s.close()
        socks = alive
        stop.wait(1.0)
    for s in socks:
        s.close()


def run_bench(model: str | os.PathLike | None, *, url: str | None = None, clients: int = 16, seconds: float = 60.0,
              slow_clients: int = 0, token: str | None = None, port: int = 8765) -> dict[str, Any]:
    """Run the load and return the figures (see the module notes); starts ``sonotype serve MODEL``
    on loopback unless ``url`` names a running service."""
    proc = None
    if url is None:
        if model is None:
            raise ValueError("give a model or a url")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "sonotype", "serve", str(model), "--port", str(port),
                                 "--log-level", "error"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
    host, _, p = url.split("://", 1)[1].partition(":")
    port_n = int(p.split("/")[0] or 80)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        info = httpx.get(f"{url}/v1/model", headers=headers, timeout=10).json()
        sr = int(info.get("sample_rate", 16000))
        max_mb = float(info["limits"]["max_upload_mb"])
        clip30 = _wav(30.0, sr, 0)
        group = [_wav(3.0, sr, k) for k in range(3)]
        pcm = (0.1 * np.sin(np.arange(5 * sr) / 9)).astype("<f4").tobytes()
        oversize = b"\0" * int(max_mb * 1_000_000 + 1024)
        malformed = b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"

        lat: dict[str, list[float]] = {k: [] for k in KINDS}
        codes: Counter[str] = Counter()
        dropped = [0]
        stop = threading.Event()
        lock = threading.Lock()

        def client(k: int) -> None:
            kinds = itertools.cycle(KINDS[k % len(KINDS):] + KINDS[:k % len(KINDS)])
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                while not stop.is_set():
                    kind = next(kinds)
                    t0 = time.perf_counter()
                    try:
                        if kind == "classify":
                            code = c.post("/v1/classify", files={"file": ("clip.wav", clip30)}).status_code
                        elif kind == "group":
                            code = c.post("/v1/classify-group",
                                          files=[("file", (f"{i}.wav", g)) for i, g in enumerate(group)]).status_code
                        elif kind == "stream":
                            code = _stream(host, port_n, pcm, token)
                        elif kind == "oversize":
                            code = c.post("/v1/classify", content=oversize).status_code
                        else:
                            code = c.post("/v1/classify", content=malformed).status_code
                    except (httpx.TransportError, OSError):
                        with lock:
                            dropped[0] += 1
                        continue
                    dt = time.perf_counter() - t0
                    with lock:
                        lat[kind].append(dt)
                        codes[f"{kind} {code}"] += 1

        slow_stop = threading.Event()
        slow_opened = [0]
        slow_thread = None
        if slow_clients:
            slow_thread = threading.Thread(target=_slowloris, args=(host, port_n, slow_clients, slow_stop, slow_opened),
                                           daemon=True)
            slow_thread.start()
            time.sleep(3)
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        probe: list[float] = []
        while time.perf_counter() - t_start < seconds:
            t0 = time.perf_counter()
            try:
                httpx.get(f"{url}/healthz", headers=headers, timeout=30)
                probe.append(time.perf_counter() - t0)
            except httpx.TransportError:
                dropped[0] += 1
            time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(180)
        elapsed = time.perf_counter() - t_start
        slow_stop.set()
        if slow_thread is not None:
            slow_thread.join(30)
        total = sum(len(v) for v in lat.values())

        def pct(v: list[float], q: float) -> float | None:
            return round(float(np.percentile(v, q)) * 1000, 1) if v else None

        return {
            "clients": clients, "seconds": round(elapsed, 1), "requests": total,
            "throughput_rps": round(total / elapsed, 2),
            "latency_ms": {k: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99)}
                           for k, v in lat.items()},
            "codes": dict(sorted(codes.items())),
            "server_errors_5xx": sum(n for key, n in codes.items() if key.split()[1].startswith("5")
                                     and key.split()[1] != "503"),
            "busy_503": sum(n for key, n in codes.items() if key.split()[1] == "503"),
            "dropped": dropped[0],
            "healthz_probe_ms": {"p50": pct(probe, 50), "max": pct(probe, 100), "n": len(probe)},
            "slow_clients": slow_clients, "slow_connections_opened": slow_opened[0],
            "server_peak_rss_mb": (round(_vm_hwm(proc.pid) / 2**20, 1) if proc is not None and _vm_hwm(proc.pid)
                                   else None),
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
