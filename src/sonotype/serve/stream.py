"""``GET /v1/stream``: classify live PCM over a WebSocket, window by window, as it arrives.

Protocol
--------
- Query: ``sr`` (Hz of the PCM sent; default the model's rate; other rates are resampled
  on the server), ``window`` (seconds, default :data:`DEFAULT_WINDOW_S` or the model's
  minimum when longer) and ``hop`` (seconds, default ``window``).
- Client -> server: binary messages of little-endian float32 mono PCM at ``sr``, any
  number of samples each; the text message ``end`` ends the stream.
- Server -> client: one text message per window as soon as its last sample has arrived,
  ``{"start": s, "end": e, "label": ..., "probabilities": {...}}`` (seconds from the start
  of the stream): the windows of ``predict --window W --hop H`` on the same audio
  (:class:`sonotype.inference.windows.Windower`). After ``end``: the last partial window (when it holds
  one analysis frame), then the close with code 1000.
- Errors close the socket with a code and a reason: 1007 for invalid data (a binary frame
  whose length is not a multiple of 4, NaN or infinite samples, a bad query parameter);
  ``window``/``hop`` outside the limits of :mod:`sonotype.utils.limits` (a hop under ``min_hop_s``,
  more than ``max_windows_per_stream_s`` windows per second, a window over ``max_window_s``);
  1003 for an unsupported message (any text but ``end``); 1008 for a limit (the stream's
  length, or more audio waiting for classification than the server buffers: the client
  sends faster than the model keeps up); 1009 for one frame over :data:`MAX_FRAME_BYTES`;
  1011 when classification fails unexpectedly.

Featurizing and the network call run in worker threads (the network under the engine's
lock), never on the event loop; each connection has its own state, so many streams can
run at once, and windows queued while one call runs go together into the next call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from typing import Any

import anyio
import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sonotype.errors import AudioError, ParameterError, SonotypeError
from sonotype.inference.live import LiveStream, classify_windows
from sonotype.inference.windows import Window
from sonotype.utils.limits import Limits, check_windows

__all__ = ["DEFAULT_STREAM_MAX_BUFFER_S", "DEFAULT_STREAM_MAX_S", "DEFAULT_WINDOW_S", "MAX_FRAME_BYTES", "serve_stream"]

log = logging.getLogger("sonotype.serve")

DEFAULT_WINDOW_S = 1.0
DEFAULT_STREAM_MAX_S = Limits.max_stream_s
DEFAULT_STREAM_MAX_BUFFER_S = Limits.max_stream_buffer_s
MAX_FRAME_BYTES = 4 * 1024 * 1024  # 1 M samples: about 22 s at 48 kHz in one message


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8 (the control frame's limit)."""
    b = text.encode("utf-8")
    return text if len(b) <= 123 else b[:120].decode("utf-8", "ignore") + "..."


def _query_number(ws: WebSocket, name: str, kind: type, default: Any) -> Any:
    raw = ws.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = kind(raw)
    except ValueError:
        raise _Close(1007, f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise _Close(1007, f"{name}={raw!r} is not finite")
    return v


async def _classify_queue(ws: WebSocket, engine: Any, queue: asyncio.Queue[list[Window] | None],
                          answered: list[float]) -> None:
    """Classify the queued windows and send their segments, until ``None``; windows that queued
    up meanwhile go in one call. ``answered[0]``: end (s) of the last window answered."""
    clf = engine.clf
    while True:
        item = await queue.get()
        if item is None:
            return
        batch = list(item)
        last = False
        while not queue.empty():  # windows that queued up while the last call ran: one call
            nxt = queue.get_nowait()
            if nxt is None:
                last = True
                break
            batch.extend(nxt)
        segs = await anyio.to_thread.run_sync(classify_windows, clf, batch, engine.lock,
                                              limiter=engine.limiter)
        for s in segs:
            await ws.send_text(json.dumps(s.to_dict()))
        if batch:
            answered[0] = batch[-1].end / clf.sample_rate
        if last:
            return


def _push(live: LiveStream, data: bytes) -> list[Window]:
    """The windows one binary message (float32 PCM) completes; a bad message closes the stream."""
    if len(data) > MAX_FRAME_BYTES:
        raise _Close(1009, f"a binary message of {len(data)} bytes; at most {MAX_FRAME_BYTES} per message")
    if len(data) % 4:
        raise _Close(1007, f"a binary message of {len(data)} bytes: float32 PCM needs a multiple of 4")
    try:
        return live.push(np.frombuffer(data, dtype="<f4"))
    except AudioError as exc:
        raise _Close(1007, f"invalid PCM: {exc.reason}") from None
    except ParameterError as exc:
        raise _Close(1008, str(exc)) from None


def _open(ws: WebSocket, clf: Any, sid: str, limits: Limits, *, max_seconds: float,
          max_buffer_s: float) -> LiveStream:
    """The stream the query asks for (``sr``, ``window``, ``hop``); a bad setting closes it with 1007."""
    sr = _query_number(ws, "sr", int, clf.sample_rate)
    default_window = max(DEFAULT_WINDOW_S, math.ceil(clf.min_duration * 10) / 10)
    window = _query_number(ws, "window", float, default_window)
    hop = _query_number(ws, "hop", float, None)
    try:
        window, hop = check_windows(limits, window=window, hop=hop, stream=True)
        live = LiveStream(clf, sr, window, hop, max_seconds=max_seconds)
    except SonotypeError as exc:
        raise _Close(1007, str(exc)) from None
    if live.window + live.hop > max_buffer_s:
        raise _Close(1007, f"window + hop = {live.window + live.hop:g} s is more than this server buffers "
                           f"({max_buffer_s:g} s)")
    log.info("stream %s: sr=%d window=%g hop=%g", sid, sr, live.window, live.hop)
    return live


async def serve_stream(ws: WebSocket, engine: Any, *, max_seconds: float, max_buffer_s: float) -> None:
    """Run one ``/v1/stream`` connection to its end (see the module notes)."""
    sid = uuid.uuid4().hex[:12]
    await ws.accept()
    clf = engine.clf
    live: LiveStream | None = None
    worker: asyncio.Task | None = None
    queue: asyncio.Queue[list[Window] | None] = asyncio.Queue()
    answered = [0.0]  # end (s) of the last window answered: the backlog is received minus this

    try:
        live = _open(ws, clf, sid, engine.limits, max_seconds=max_seconds, max_buffer_s=max_buffer_s)
        worker = asyncio.create_task(_classify_queue(ws, engine, queue, answered))
        while True:
            recv = asyncio.ensure_future(ws.receive())
            await asyncio.wait({recv, worker}, return_when=asyncio.FIRST_COMPLETED)
            if not recv.done():  # the worker ended before 'end': classification failed, say so now
                recv.cancel()
                worker.result()
                raise RuntimeError("the classification task ended early")
            msg = recv.result()
            if msg["type"] == "websocket.disconnect":
                log.info("stream %s: client left after %.1f s of audio", sid, live.seconds)
                worker.cancel()
                return
            data, text = msg.get("bytes"), msg.get("text")
            if data is not None:
                windows = _push(live, data)
                if live.seconds - answered[0] > max_buffer_s:
                    raise _Close(1008, f"more than {max_buffer_s:g} s of audio waiting for classification: "
                                       "send at most in real time")
                if windows:
                    queue.put_nowait(windows)
            elif text is not None:
                if text.strip().lower() != "end":
                    raise _Close(1003, f"unknown text message {text[:40]!r}: send binary float32 PCM, or 'end'")
                queue.put_nowait(live.finish())
                queue.put_nowait(None)
                t0 = time.perf_counter()
                await worker
                log.info("stream %s: ended after %.1f s of audio (flush %.0f ms)", sid, live.seconds,
                         1000 * (time.perf_counter() - t0))
                await ws.close(1000, "end of stream")
                return
    except _Close as c:
        log.warning("stream %s: closing %d: %s", sid, c.code, c.reason)
        if worker is not None:
            worker.cancel()
        if ws.client_state == WebSocketState.CONNECTED:
            await ws.close(c.code, _reason(c.reason))
    except WebSocketDisconnect:
        if worker is not None:
            worker.cancel()
    except Exception:
        log.exception("stream %s: failed", sid)
        if worker is not None:
            worker.cancel()
        if ws.client_state == WebSocketState.CONNECTED:
            await ws.close(1011, "classification failed unexpectedly; see the server log")
