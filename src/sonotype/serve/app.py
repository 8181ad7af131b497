"""The HTTP service: classify uploaded audio with a saved model, or tag it with a pretrained encoder.

Endpoints
---------
With a model (``create_app(model)``, ``sonotype serve MODEL``):

- ``POST /v1/classify``: a multipart upload (field ``file``) or the raw audio as the body,
  any content type; optional query ``window``/``hop`` (seconds) and ``envelope`` (number of
  waveform bins to return for drawing). Answers label, probabilities, segment timeline,
  duration, model id and request id.
- ``GET /v1/model``: labels, feature settings, training metrics summary.
- ``GET /v1/stream``: a WebSocket classifying live float32 PCM window by window
  (protocol and close codes in :mod:`sonotype.serve.stream`).
- ``POST /v1/classify-group``: several clips of one speaker (:mod:`sonotype.serve.group`).
- ``GET /``: a small offline web page.

With a tagger (``create_app(tagger="efficientat-mn04")``, ``sonotype serve --tagger``), with or
without a model:

- ``POST /v1/tag``: the encoder's own classes for one upload (:mod:`sonotype.serve.tag`);
  ``GET /v1/tagger``: the encoder, its family, licence and labels. Without a model,
  ``GET /v1/model`` answers the same as ``/v1/tagger`` and ``/`` leads to ``/docs``.

Always: ``GET /healthz`` (liveness, the model id and/or the tagger's name) and ``GET /docs``,
API docs rendered from ``/openapi.json`` without any CDN (FastAPI's default Swagger UI loads
its assets from the internet).

Every error is JSON ``{error, detail, request_id}``, logged with the request id, which is
also echoed in the ``X-Request-ID`` header. The body size is checked from Content-Length
before reading and counted while reading; the audio duration is checked from the header
before decoding. Decoding and inference run in worker threads, never on the event loop,
and the network itself is used by one thread at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sonotype import __version__, audio, load_model
from sonotype.errors import AudioError, ParameterError
from sonotype.inference.tagging import Tagger
from sonotype.serve.errors import ApiError, all_finite, request_id
from sonotype.serve.group import add_group_route
from sonotype.serve.openapi import install_error_schema, upload_openapi
from sonotype.serve.security import Guard
from sonotype.serve.server import HeaderTimeoutH11, install_log_filter
from sonotype.serve.stream import serve_stream
from sonotype.serve.tag import add_tag_route, tagger_info
from sonotype.serve.uploads import run_upload, spilled
from sonotype.utils.limits import Limits, check_samples, check_windows

__all__ = ["DEFAULT_MAX_DURATION_S", "DEFAULT_MAX_UPLOAD_MB", "ApiError", "create_app"]

log = logging.getLogger("sonotype.serve")

DEFAULT_MAX_UPLOAD_MB = Limits.max_upload_mb
DEFAULT_MAX_DURATION_S = Limits.max_duration_s
MAX_ENVELOPE = 4000
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATIC = resources.files("sonotype.serve") / "static"


class _RequestIdMiddleware:
    """Give every HTTP request an id (the client's ``X-Request-ID`` when sane) and echo it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _RID_OK.match(incoming) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def _error_response(request: Request, status: int, error: str, detail: str,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    rid = request_id(request)
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "request %s: %s %s -> %d %s: %s", rid, request.method, request.url.path, status, error, detail)
    return JSONResponse({"error": error, "detail": detail, "request_id": rid}, status_code=status, headers=headers)


class _Engine:
    """The classifier and/or the tagger, the limits and the locking that keeps concurrent requests safe.

    At most ``limits.decode_workers`` requests decode and classify at once (worker threads,
    never the event loop), ``limits.queue`` more wait; beyond that a request is answered 503
    with ``Retry-After`` at once (:meth:`run`). The model call holds a lock, because a torch
    module is not guaranteed re-entrant and parallel calls would only fight for the cores
    (the tagger's network takes the same lock). Decoding goes through
    :func:`sonotype.audio.stream` block by block after the header has been checked against
    ``max_duration_s`` and ``max_samples`` (the file's rate x channels), so a request holds
    about its audio at the model's rate (the tagger's for ``/v1/tag``), whatever the file's rate.
    """

    def __init__(self, clf: Any, limits: Limits, tagger: Tagger | None = None) -> None:
        self.clf = clf  # None on a tagger-only server
        self.tagger = tagger
        self.limits = limits
        # a backbone model's rate is its encoder's
        self.sr = int(clf.sample_rate) if clf is not None else int(tagger.sample_rate)  # type: ignore[union-attr]
        self.lock = threading.Lock()
        self._limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()
        self.admitted = 0  # requests in a worker or waiting for one (event-loop only: no lock)
        self.decodes = 0  # files whose decoding started (tests check that refusals come before)

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The worker slots of the running event loop (one loop under uvicorn; a test client
        may run one loop per connection, and an anyio limiter belongs to one loop)."""
        loop = asyncio.get_running_loop()
        lim = self._limiters.get(loop)
        if lim is None:
            lim = self._limiters[loop] = anyio.CapacityLimiter(self.limits.decode_workers)
        return lim

    @property
    def max_duration_s(self) -> float:
        return self.limits.max_duration_s

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` in a worker thread, or 503 with ``Retry-After`` when the queue is full."""
        lim = self.limits
        if self.admitted >= lim.decode_workers + lim.queue:
            raise ApiError(503, "busy", f"{self.admitted} requests are being classified or waiting (at most "
                                        f"{lim.decode_workers} + {lim.queue}); retry in {lim.retry_after_s} s",
                           headers={"Retry-After": str(lim.retry_after_s)})
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)
        finally:
            self.admitted -= 1

    def decode(self, path: Path, label: str = "audio", sr: int | None = None) -> np.ndarray:
        """Mono float32 at ``sr`` (default the model's rate); the header is checked against the
        limits before decoding, and the samples are counted while decoding (a header may lie).
        Concatenated, the blocks equal :func:`sonotype.audio.load` of the file at that rate."""
        sr = self.sr if sr is None else int(sr)
        meta = audio.info(path)
        try:
            check_samples(self.limits, samplerate=meta.samplerate, channels=meta.channels, frames=meta.frames,
                          what=label)
        except ParameterError as exc:
            raise ApiError(413, "audio_too_long", str(exc)) from None
        self.decodes += 1
        cap = int(self.limits.max_duration_s * sr) + sr
        # one buffer sized from the header (at most the cap), grown only if the header lied short
        y = np.empty(min(cap, int(meta.frames * sr / meta.samplerate) + 64), np.float32)
        n = 0
        for chunk in audio.stream(path, sr):
            if n + chunk.size > cap:
                raise ApiError(413, "audio_too_long", f"{label} holds more than the {meta.duration:.1f} s its "
                                                      f"header announces; at most {self.max_duration_s:g} s "
                                                      "(max_duration_s)")
            if n + chunk.size > y.size:
                y = np.resize(y, min(cap, 2 * (n + chunk.size)))
            y[n:n + chunk.size] = chunk
            n += chunk.size
        return y[:n]

    def classify(self, path: Path, *, window: float | None, hop: float | None, envelope: int) -> dict[str, Any]:
        y = self.decode(path)
        sr = self.sr
        duration = y.shape[-1] / sr
        try:
            window, hop = check_windows(self.limits, window=window, hop=hop, duration=duration)
        except ParameterError as exc:
            raise ApiError(422, "invalid_parameter", str(exc)) from None
        with self.lock:
            pred = self.clf.predict(y, sr, window=window, hop=hop)
        out = jsonable_encoder(pred.to_dict())
        if not all_finite(out):  # JSON has no NaN: answering it would be a 500 while encoding
            raise AudioError(None, "the audio gives non-finite class probabilities (corrupt or extreme samples)")
        out.pop("path", None)
        if envelope:
            out["waveform"] = _envelope(y, sr, envelope)
        return out


def _envelope(y: np.ndarray, sr: int, bins: int) -> dict[str, Any]:
    """Min/max of ``y`` in ``bins`` equal slices: enough to draw the waveform in a browser."""
    n = y.shape[-1]
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    return {
        "sr": sr,
        "duration": n / sr,
        "min": np.round(lo, 4).tolist(),
        "max": np.round(hi, 4).tolist(),
    }


def create_app(
    model: Any = None,
    *,
    tagger: str | os.PathLike | Tagger | None = None,
    limits: Limits | None = None,
    max_upload_mb: float | None = None,
    max_duration_s: float | None = None,
    read_timeout_s: float | None = None,
    torch_threads: int | None = None,
    max_stream_s: float | None = None,
    max_stream_buffer_s: float | None = None,
    allow_hosts: list[str] | None = None,
    allow_origins: list[str] | None = None,
    token: str | None = None,
) -> FastAPI:
    """Build the FastAPI app serving one model, one tagger, or both.

    Parameters
    ----------
    model : path-like or Classifier, optional
        A saved model directory (loaded with :func:`sonotype.load_model`) or a loaded classifier:
        ``/v1/classify``, ``/v1/classify-group``, ``/v1/stream`` and the web page.
    tagger : str, path-like or Tagger, optional
        A tagging encoder (``efficientat-mn04``, ``musicnn-msd`` or its folder, loaded with
        :meth:`sonotype.inference.tagging.Tagger.load`), or a loaded one: ``/v1/tag`` and
        ``/v1/tagger``. At least one of ``model`` and ``tagger`` is needed.
    limits : Limits, optional
        Every limit of the service (:class:`sonotype.utils.limits.Limits`; default: the defaults
        with the ``SONOTYPE_LIMIT_*`` environment applied). Shown at ``GET /v1/model``.
    max_upload_mb, max_duration_s, read_timeout_s, max_stream_s, max_stream_buffer_s : float, optional
        Shortcuts overriding the fields of ``limits`` of the same names.
    torch_threads : int or None
        Threads torch may use for inference (process-wide); ``None`` leaves torch's setting.
    allow_hosts : list of str, optional
        Host names (the ``Host`` header without its port) answered; others get 400. ``None``
        answers any (the CLI passes the served address and the localhost forms).
    allow_origins : list of str, optional
        Extra ``Origin`` values (``scheme://host[:port]``) allowed on the WebSocket besides
        the page's own origin; a browser page elsewhere is refused with close code 1008.
    token : str, optional
        When given, every API route needs ``Authorization: Bearer TOKEN`` (the WebSocket
        also accepts ``?token=``); else 401.

    Returns
    -------
    FastAPI
        Run it with :func:`sonotype.serve.server.run`, or test it with ``fastapi.testclient.TestClient``.
    """
    overrides = {"max_upload_mb": max_upload_mb, "max_duration_s": max_duration_s, "read_timeout_s": read_timeout_s,
                 "max_stream_s": max_stream_s, "max_stream_buffer_s": max_stream_buffer_s}
    limits = (Limits.from_env() if limits is None else limits).replace(
        **{k: v for k, v in overrides.items() if v is not None})

    if torch_threads is not None:
        if torch_threads < 1:
            raise ParameterError(f"torch_threads must be >= 1, got {torch_threads}")
        import torch  # heavy: torch loads in ~1 s; only this path needs it

        torch.set_num_threads(torch_threads)

    if model is None and tagger is None:
        raise ParameterError("create_app needs a model, a tagger or both")
    clf = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    tag = Tagger.load(str(tagger)) if isinstance(tagger, (str, os.PathLike)) else tagger
    engine = _Engine(clf, limits, tag)

    app = FastAPI(
        title="sonotype",
        summary="Classify audio with a trained sonotype model, or tag it with a pretrained encoder.",
        version=_version(),
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(Guard, allow_hosts=allow_hosts, allow_origins=allow_origins, token=token)
    app.add_middleware(_RequestIdMiddleware)  # outermost: the guard's answers carry the request id
    app.state.classifier = clf
    app.state.tagger = tag
    app.state.engine = engine
    app.state.limits = limits

    _add_error_handlers(app)
    _add_info_routes(app, clf, tag, limits.to_dict())
    if clf is not None:
        _add_classify_route(app, engine)
        add_group_route(app, engine)

        @app.websocket("/v1/stream")
        async def stream(ws: WebSocket) -> None:
            await serve_stream(ws, engine, max_seconds=limits.max_stream_s, max_buffer_s=limits.max_stream_buffer_s)

    if tag is not None:
        add_tag_route(app, engine)
    _add_pages(app, with_page=clf is not None)
    install_error_schema(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers the same JSON shape (:func:`_error_response`) with the request id."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(request, exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
            parts.append(f"{where}: {e.get('msg')} (got {e.get('input')!r})")
        return _error_response(request, 422, "invalid_parameter", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "not_found", 405: "method_not_allowed"}
        # a 405 carries its Allow header (RFC 9110): the exception holds it
        return _error_response(request, exc.status_code, names.get(exc.status_code, "http_error"), str(exc.detail),
                               dict(exc.headers or {}))


def _add_info_routes(app: FastAPI, clf: Any, tag: Tagger | None, limits: dict[str, Any]) -> None:
    """``/healthz``, ``/v1/model`` and (with a tagger) ``/v1/tagger``."""
    health: dict[str, Any] = {"status": "ok"}
    if clf is not None:
        health.update(model_id=clf.model_id, labels=list(clf.labels))
    if tag is not None:
        health["tagger"] = tag.name

    @app.get("/healthz", summary="Liveness check")
    async def healthz() -> dict[str, Any]:
        return dict(health)

    if tag is not None:
        tag_info = {**tagger_info(tag), "limits": limits}

        @app.get("/v1/tagger", summary="The served tagger: encoder, family, licence, labels")
        async def tagger_endpoint() -> dict[str, Any]:
            return tag_info

    if clf is None:  # a tagger-only server: a client asking for the model learns what is served
        @app.get("/v1/model", summary="No model is served: the tagger (as GET /v1/tagger)")
        async def tagger_as_model() -> dict[str, Any]:
            return tag_info
        return

    model_info = jsonable_encoder(clf.info())
    model_info.setdefault("model_id", clf.model_id)

    @app.get("/v1/model", summary="The served model: labels, feature settings, metrics")
    async def model_endpoint() -> dict[str, Any]:
        return {**model_info, "limits": limits}


def _add_classify_route(app: FastAPI, engine: _Engine) -> None:
    """``POST /v1/classify``: one file in the body or a multipart upload, classified off the event loop."""
    clf = engine.clf

    @app.post(
        "/v1/classify",
        summary="Classify one audio file",
        description=(
            "Send the audio as a multipart upload (field `file`) or as the raw request body with "
            "any content type (audio/wav, application/octet-stream, ...). Any format libsndfile "
            "reads (WAV, FLAC, OGG, MP3, AIFF, AU) is recognised by content. `window`/`hop` "
            "(seconds) ask for a segment timeline; `envelope` returns that many min/max "
            "waveform bins for drawing."
        ),
        openapi_extra=upload_openapi("window/hop"),
    )
    async def classify(
        request: Request,
        window: float | None = Query(None, gt=0, le=3600, description="Segment length in seconds"),
        hop: float | None = Query(None, gt=0, le=3600, description="Segment step in seconds"),
        envelope: int = Query(0, ge=0, le=MAX_ENVELOPE, description="Waveform bins to return"),
    ) -> JSONResponse:
        rid = request_id(request)
        t0 = time.perf_counter()
        lim = engine.limits
        result, filename = await run_upload(request, engine, _classify_file, window, hop, envelope,
                                            check=lambda: check_windows(lim, window=window, hop=hop))
        result.update(filename=filename, model_id=clf.model_id, request_id=rid)
        log.info(
            "request %s: %s -> %s (%.1f s audio, %.0f ms)",
            rid, filename or "raw body", result.get("label"), result.get("duration", 0.0),
            1000 * (time.perf_counter() - t0),
        )
        return JSONResponse(result)


def _add_pages(app: FastAPI, *, with_page: bool = True) -> None:
    """The web page (it classifies: only with a model; else ``/`` leads to ``/docs``), the API
    docs page and their static files."""
    if with_page:
        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(str(_STATIC / "index.html"), media_type="text/html")
    else:
        @app.get("/", include_in_schema=False)
        async def to_docs() -> RedirectResponse:
            return RedirectResponse("/docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(str(_STATIC / "docs.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")


def _classify_file(
    engine: _Engine, data: Any, filename: str | None, window: float | None, hop: float | None, envelope: int
) -> dict[str, Any]:
    """Worker-thread part of a request: copy the upload to a named temp file, decode, classify."""
    with spilled(data, filename) as path:
        return engine.classify(path, window=window, hop=hop, envelope=envelope)


def _version() -> str:
    return __version__


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` with several workers: settings from the environment.

    ``SONOTYPE_SERVE_MODEL`` and/or ``SONOTYPE_SERVE_TAGGER`` (one is required),
    ``SONOTYPE_SERVE_TORCH_THREADS``, the limits as
    ``SONOTYPE_LIMIT_<NAME>`` (:mod:`sonotype.utils.limits`), ``SONOTYPE_SERVE_ALLOW_HOSTS`` and
    ``SONOTYPE_SERVE_ALLOW_ORIGINS`` (comma-separated; hosts ``*`` = any) and ``SONOTYPE_TOKEN``.
    """
    model = os.environ.get("SONOTYPE_SERVE_MODEL") or None
    tagger = os.environ.get("SONOTYPE_SERVE_TAGGER") or None
    if not model and not tagger:
        raise ParameterError("SONOTYPE_SERVE_MODEL (the model directory to serve) or SONOTYPE_SERVE_TAGGER "
                             "(the tagging encoder) must be set")
    threads = os.environ.get("SONOTYPE_SERVE_TORCH_THREADS")
    hosts = [h for h in os.environ.get("SONOTYPE_SERVE_ALLOW_HOSTS", "*").split(",") if h]
    origins = [o for o in os.environ.get("SONOTYPE_SERVE_ALLOW_ORIGINS", "").split(",") if o]
    limits = Limits.from_env()
    HeaderTimeoutH11.header_timeout_s = limits.header_timeout_s  # this worker process's protocol
    install_log_filter()
    return create_app(
        model,
        tagger=tagger,
        limits=limits,
        torch_threads=int(threads) if threads else None,
        allow_hosts=None if "*" in hosts else hosts,
        allow_origins=origins,
        token=os.environ.get("SONOTYPE_TOKEN") or None,
    )
