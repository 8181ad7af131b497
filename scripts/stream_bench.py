"""Measure the /v1/stream WebSocket against offline predict on one clip (docs/results.md, README).

Starts ``sonotype serve MODEL --threads 1`` in a subprocess (pin it to one core with
``--core``), streams CLIP to ``/v1/stream`` in real time (``--speed``) in chunks of
``--chunk-ms``, and reports:

- agreement: the share of windows whose live label equals ``predict --window W --hop H``'s
  (and whether the windows' bounds are the same);
- latency: for each window, the time from sending the chunk holding its last sample to
  receiving its message (p50, p95, max), the server's CPU time and the wall time.

Usage::

    python scripts/stream_bench.py MODEL CLIP --window 5 --hop 5 [--core 0] [--sr 48000] [--json OUT]

``--sr`` resamples the clip on the client first and sends it at that rate (the browser's
case: the server then resamples back to the model's rate).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("clip")
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--hop", type=float, default=None)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--sr", type=int, default=None, help="send at this rate (resampled on the client)")
    ap.add_argument("--core", type=int, default=None, help="pin the server to this CPU core (taskset)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import soxr
    import websocket

    import sonotype
    from sonotype import audio

    hop = a.hop or a.window
    clf = sonotype.load_model(a.model)
    y, sr = audio.load(a.clip)  # native rate, mono
    if a.sr and a.sr != sr:
        y, sr = soxr.resample(y, sr, a.sr).astype(np.float32), a.sr
    t_off = time.perf_counter()
    offline = clf.predict(a.clip, window=a.window, hop=hop)
    t_off = time.perf_counter() - t_off

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "sonotype", "serve", a.model, "--port", str(port), "--threads", "1",
           "--log-level", "warning"]
    if a.core is not None:
        cmd = ["taskset", "-c", str(a.core), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    srv = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or srv.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        # warm the model (first call loads numba code etc.), as a served model is warm
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/v1/stream?sr={sr}&window={a.window}&hop={hop}")
        ws.send_binary(y[: int((a.window + 0.5) * sr)].astype("<f4").tobytes())
        ws.send("end")  # a resampling server holds back its filter's delay: 'end' flushes it
        try:
            while ws.recv():
                pass
        except websocket.WebSocketConnectionClosedException:
            pass
        ws.close()
        cpu0 = _cpu_seconds(srv.pid)

        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/v1/stream?sr={sr}&window={a.window}&hop={hop}")
        chunk = max(1, int(round(a.chunk_ms / 1000 * sr)))
        sent_at: list[tuple[int, float]] = []  # (samples sent so far, time)
        got: list[tuple[dict, float]] = []

        def receive() -> None:
            while True:
                try:
                    msg = ws.recv()
                except websocket.WebSocketConnectionClosedException:
                    return
                if not msg:
                    return
                got.append((json.loads(msg), time.perf_counter()))

        rx = threading.Thread(target=receive, daemon=True)
        rx.start()
        t0 = time.perf_counter()
        n = 0
        for i in range(0, y.size, chunk):
            part = y[i : i + chunk]
            ws.send_binary(part.astype("<f4").tobytes())
            n += part.size
            sent_at.append((n, time.perf_counter()))
            wait = t0 + n / sr / a.speed - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        ws.send("end")
        rx.join(60)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds(srv.pid) - cpu0
    finally:
        srv.terminate()
        srv.wait(10)

    counts = np.array([c for c, _ in sent_at])
    times = np.array([t for _, t in sent_at])
    lat = []
    for m, t in got:
        if m["end"] - m["start"] < a.window - 1e-6:  # the final partial window is answered on 'end'
            continue
        k = int(np.searchsorted(counts, int(round(m["end"] * sr))))  # the chunk holding its last sample
        lat.append(1000 * (t - times[min(k, len(times) - 1)]))
    live = [m for m, _ in got]
    same_bounds = [(m["start"], m["end"]) for m in live] == [(s.start, s.end) for s in offline.segments]
    agree = sum(m["label"] == s.label for m, s in zip(live, offline.segments, strict=False))
    out = {
        "model": clf.model_id, "clip": str(a.clip), "window": a.window, "hop": hop, "sent_sr": sr,
        "model_sr": clf.sample_rate, "chunk_ms": a.chunk_ms, "speed": a.speed,
        "windows_live": len(live), "windows_offline": len(offline.segments), "same_bounds": same_bounds,
        "agree": agree, "agree_share": agree / max(1, len(offline.segments)),
        "max_prob_diff": max((abs(m["probabilities"][k] - s.probabilities[k])
                              for m, s in zip(live, offline.segments, strict=False) for k in s.probabilities),
                             default=0.0),
        "latency_ms": {"n": len(lat), "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                       "max": float(np.max(lat))} if lat else None,
        "server_cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "offline_predict_s": round(t_off, 2),
        "labels_live": [m["label"] for m in live], "labels_offline": [s.label for s in offline.segments],
        "core": a.core, "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
