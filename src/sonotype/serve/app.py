"""The HTTP service: classify uploaded audio with a saved model.

Endpoints
---------
- ``POST /v1/classify``: a multipart upload (field ``file``) or the raw audio as the body,
  any content type; optional query ``window``/``hop`` (seconds) and ``envelope`` (number of
  waveform bins to return for drawing). Answers label, probabilities, segment timeline,
  duration, model id and request id.
- ``GET /v1/model``: labels, feature settings, training metrics summary.
- ``GET /v1/stream``: a WebSocket classifying live float32 PCM window by window
  (protocol and close codes in :mod:`sonotype.serve.stream`).
- ``GET /healthz``: liveness and the model id.
- ``GET /``: a small offline web page; ``GET /docs``: API docs rendered from ``/openapi.json``
  without any CDN (FastAPI's default Swagger UI loads its assets from the internet).

Every error is JSON ``{error, detail, request_id}``, logged with the request id, which is
also echoed in the ``X-Request-ID`` header. The body size is checked from Content-Length
before reading and counted while reading; the audio duration is checked from the header
before decoding. Decoding and inference run in worker threads, never on the event loop,
and the network itself is used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sonotype import audio
from sonotype.errors import AudioError, ParameterError, SonotypeError

__all__ = ["DEFAULT_MAX_DURATION_S", "DEFAULT_MAX_UPLOAD_MB", "ApiError", "create_app"]

log = logging.getLogger("sonotype.serve")

DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_DURATION_S = 600.0
MAX_SEGMENTS = 5000  # bounds the work one request can ask for through a tiny hop
MAX_ENVELOPE = 4000
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATIC = resources.files("sonotype.serve") / "static"


class ApiError(Exception):
    """An error answered to the client as JSON ``{error, detail, request_id}``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


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


def _rid(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def _error_response(request: Request, status: int, error: str, detail: str) -> JSONResponse:
    rid = _rid(request)
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "request %s: %s %s -> %d %s: %s", rid, request.method, request.url.path, status, error, detail)
    return JSONResponse({"error": error, "detail": detail, "request_id": rid}, status_code=status)


class _Engine:
    """The classifier plus the locking that keeps concurrent requests safe.

    Decoding runs concurrently in worker threads (bounded, to cap memory); the model call
    holds a lock, because a torch module is not guaranteed re-entrant and parallel calls
    would only fight for the same cores.
    """

    def __init__(self, clf: Any, *, max_duration_s: float) -> None:
        self.clf = clf
        self.max_duration_s = max_duration_s
        self.sr = int(clf.sample_rate)  # a backbone model's rate is its encoder's
        self.lock = threading.Lock()
        self.limiter = anyio.CapacityLimiter(4)

    def classify(self, path: Path, *, window: float | None, hop: float | None, envelope: int) -> dict[str, Any]:
        meta = audio.info(path)
        if meta.duration > self.max_duration_s:
            raise ApiError(
                413, "audio_too_long",
                f"audio lasts {meta.duration:.1f} s; this server accepts at most {self.max_duration_s:g} s",
            )
        y, sr = audio.load(path, sr=self.sr)
        duration = y.shape[-1] / sr
        step = hop if hop is not None else window
        if step is not None and duration / step > MAX_SEGMENTS:
            raise ApiError(
                422, "invalid_parameter",
                f"hop={step:g} s over {duration:.1f} s of audio gives more than {MAX_SEGMENTS} segments",
            )
        with self.lock:
            pred = self.clf.predict(y, sr, window=window, hop=hop)
        out = jsonable_encoder(pred.to_dict())
        if not _all_finite(out):  # JSON has no NaN: answering it would be a 500 while encoding
            raise AudioError(None, "the audio gives non-finite class probabilities (corrupt or extreme samples)")
        out.pop("path", None)
        if envelope:
            out["waveform"] = _envelope(y, sr, envelope)
        return out


def _all_finite(obj: Any) -> bool:
    """True when no float anywhere in the JSON-ready ``obj`` is NaN or infinite."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return True


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


async def _read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """Read the request body, refusing early (Content-Length) or while counting bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", f"invalid Content-Length header {declared!r}") from None
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", _too_large(size, max_bytes))
    buf = bytearray()
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                buf += chunk
                if len(buf) > max_bytes:
                    raise ApiError(413, "payload_too_large", _too_large(len(buf), max_bytes, at_least=True))
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"the body was not received within {timeout_s:g} s") from None
    return bytes(buf)


def _too_large(size: int, max_bytes: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"upload is {more}{size / 1e6:.2f} MB; this server accepts at most {max_bytes / 1e6:g} MB"


async def parse_multipart(request: Request, body: bytes, *, max_files: int) -> Any:
    """The form of a multipart ``body`` already read (size-checked) by :func:`_read_body`; 400 if malformed."""
    async def replay() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    try:
        return await MultiPartParser(request.headers, replay(), max_files=max_files, max_fields=16).parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc.message}") from None


async def _extract_audio(request: Request, body: bytes) -> tuple[bytes, str | None]:
    """The audio bytes and the client's file name, from a multipart form or a raw body."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return body, None

    form = await parse_multipart(request, body, max_files=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        fields = sorted(form.keys())
        if upload is not None:  # a part without a filename arrives as a text value
            raise ApiError(400, "missing_file", "the multipart field 'file' is a form value, not a file (give it a filename)")
        raise ApiError(400, "missing_file", f"multipart body needs a file field named 'file' (got fields {fields})")
    try:
        data = await upload.read()
    finally:
        await form.close()
    return data, upload.filename


def _suffix(filename: str | None) -> str:
    """A safe extension hint from the client's file name (decoding goes by content anyway)."""
    ext = Path(filename or "").suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,6}", ext) else ".audio"


def _audio_error(exc: AudioError) -> ApiError:
    reason = exc.reason
    if reason.startswith(("unsupported", "not an audio file", "not a supported")):
        return ApiError(415, "unsupported_audio", f"the upload is not audio in a format sonotype reads: {reason}")
    return ApiError(422, "invalid_audio", f"the audio cannot be used: {reason}")


def create_app(
    model: Any,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    read_timeout_s: float = 60.0,
    torch_threads: int | None = None,
    max_stream_s: float | None = None,
    max_stream_buffer_s: float | None = None,
) -> FastAPI:
    """Build the FastAPI app serving one model.

    Parameters
    ----------
    model : path-like or Classifier
        A saved model directory (loaded with :func:`sonotype.load_model`) or a loaded classifier.
    max_upload_mb : float
        Bodies larger than this are refused with 413, before or while reading them.
    max_duration_s : float
        Audio longer than this is refused with 413 before it is decoded.
    read_timeout_s : float
        A client that has not sent its whole body within this time gets 408.
    torch_threads : int or None
        Threads torch may use for inference (process-wide); ``None`` leaves torch's setting.
    max_stream_s, max_stream_buffer_s : float, optional
        ``/v1/stream`` limits: the longest stream (default 4 h) and the most audio waiting
        for classification (default 60 s); beyond either the socket closes with 1008.

    Returns
    -------
    FastAPI
        Run it with uvicorn, or test it with ``fastapi.testclient.TestClient``.
    """
    if max_upload_mb <= 0:
        raise ParameterError(f"max_upload_mb must be > 0, got {max_upload_mb}")
    if max_duration_s <= 0:
        raise ParameterError(f"max_duration_s must be > 0, got {max_duration_s}")
    if read_timeout_s <= 0:
        raise ParameterError(f"read_timeout_s must be > 0, got {read_timeout_s}")
    from sonotype.serve.stream import DEFAULT_STREAM_MAX_BUFFER_S, DEFAULT_STREAM_MAX_S, serve_stream

    max_stream_s = DEFAULT_STREAM_MAX_S if max_stream_s is None else max_stream_s
    max_stream_buffer_s = DEFAULT_STREAM_MAX_BUFFER_S if max_stream_buffer_s is None else max_stream_buffer_s
    if not (max_stream_s > 0 and max_stream_buffer_s > 0):
        raise ParameterError(f"max_stream_s and max_stream_buffer_s must be > 0, got {max_stream_s}, "
                             f"{max_stream_buffer_s}")
    if torch_threads is not None:
        if torch_threads < 1:
            raise ParameterError(f"torch_threads must be >= 1, got {torch_threads}")
        import torch

        torch.set_num_threads(torch_threads)

    if isinstance(model, (str, os.PathLike)):
        from sonotype import load_model

        clf = load_model(model)
    else:
        clf = model
    engine = _Engine(clf, max_duration_s=max_duration_s)
    max_bytes = int(max_upload_mb * 1_000_000)
    model_info = jsonable_encoder(clf.info())
    model_info.setdefault("model_id", clf.model_id)
    limits = {"max_upload_mb": max_upload_mb, "max_duration_s": max_duration_s, "max_stream_s": max_stream_s,
              "max_stream_buffer_s": max_stream_buffer_s}

    app = FastAPI(
        title="sonotype",
        summary="Classify audio with a trained sonotype model.",
        version=_version(),
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_RequestIdMiddleware)
    app.state.classifier = clf
    app.state.engine = engine

    _add_error_handlers(app)
    _add_info_routes(app, clf, model_info, limits)
    _add_classify_route(app, engine, max_bytes=max_bytes, read_timeout_s=read_timeout_s)
    from sonotype.serve.group import add_group_route

    add_group_route(app, engine, max_bytes=max_bytes, read_timeout_s=read_timeout_s)
    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, engine, max_seconds=max_stream_s, max_buffer_s=max_stream_buffer_s)

    _add_pages(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers the same JSON shape (:func:`_error_response`) with the request id."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(request, exc.status, exc.error, exc.detail)

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
        return _error_response(request, exc.status_code, names.get(exc.status_code, "http_error"), str(exc.detail))


def _add_info_routes(app: FastAPI, clf: Any, model_info: dict[str, Any], limits: dict[str, Any]) -> None:
    """``/healthz`` and ``/v1/model``."""

    @app.get("/healthz", summary="Liveness check")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_id": clf.model_id, "labels": list(clf.labels)}

    @app.get("/v1/model", summary="The served model: labels, feature settings, metrics")
    async def model_endpoint() -> dict[str, Any]:
        return {**model_info, "limits": limits}


# The request body /v1/classify accepts and its error answers, for the OpenAPI page.
_CLASSIFY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "400": {"description": "empty body, malformed multipart or no `file` field"},
        "408": {"description": "body not received in time"},
        "413": {"description": "upload too large or audio too long"},
        "415": {"description": "not an audio format sonotype reads"},
        "422": {"description": "corrupt or too-short audio, or invalid window/hop"},
    },
}


def _add_classify_route(app: FastAPI, engine: _Engine, *, max_bytes: int, read_timeout_s: float) -> None:
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
        openapi_extra=copy.deepcopy(_CLASSIFY_OPENAPI),  # FastAPI may merge into it
    )
    async def classify(
        request: Request,
        window: float | None = Query(None, gt=0, le=3600, description="Segment length in seconds"),
        hop: float | None = Query(None, gt=0, le=3600, description="Segment step in seconds"),
        envelope: int = Query(0, ge=0, le=MAX_ENVELOPE, description="Waveform bins to return"),
    ) -> JSONResponse:
        rid = _rid(request)
        t0 = time.perf_counter()
        body = await _read_body(request, max_bytes, read_timeout_s)
        data, filename = await _extract_audio(request, body)
        if not data:
            raise ApiError(400, "empty_body", "no audio received: the request body (or the uploaded file) is empty")
        if hop is not None and window is None:
            raise ApiError(422, "invalid_parameter", f"hop={hop:g} needs a window as well")
        try:
            result = await anyio.to_thread.run_sync(
                _classify_bytes, engine, data, filename, window, hop, envelope, limiter=engine.limiter
            )
        except ApiError:
            raise
        except AudioError as exc:
            raise _audio_error(exc) from None
        except SonotypeError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except Exception:
            log.exception("request %s: classification failed", rid)
            raise ApiError(500, "internal_error", "classification failed unexpectedly; see the server log") from None
        result.update(filename=filename, model_id=clf.model_id, request_id=rid)
        log.info(
            "request %s: %s -> %s (%.1f s audio, %.0f ms)",
            rid, filename or f"{len(data)} bytes", result.get("label"), result.get("duration", 0.0),
            1000 * (time.perf_counter() - t0),
        )
        return JSONResponse(result)


def _add_pages(app: FastAPI) -> None:
    """The web page, the API docs page and their static files."""
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(_STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(str(_STATIC / "docs.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")


def _classify_bytes(
    engine: _Engine, data: bytes, filename: str | None, window: float | None, hop: float | None, envelope: int
) -> dict[str, Any]:
    """Worker-thread part of a request: spill the bytes to a temp file, decode, classify."""
    with spilled(data, filename) as path:
        return engine.classify(path, window=window, hop=hop, envelope=envelope)


@contextlib.contextmanager
def spilled(data: bytes, filename: str | None, label: str | None = None) -> Iterator[Path]:
    """An upload as a temporary file (libsndfile reads files), deleted afterwards; an
    :class:`AudioError` inside names the client's file (``label``), not the temporary path."""
    fd, name = tempfile.mkstemp(prefix="sonotype-upload-", suffix=_suffix(filename))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield Path(name)
    except AudioError as exc:
        raise AudioError(None, exc.reason.replace(name, label or filename or "upload")) from None
    finally:
        Path(name).unlink(missing_ok=True)


def _version() -> str:
    from sonotype import __version__

    return __version__


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` with several workers: settings from the environment.

    ``SONOTYPE_SERVE_MODEL`` (required), ``SONOTYPE_SERVE_MAX_UPLOAD_MB``,
    ``SONOTYPE_SERVE_MAX_DURATION_S``, ``SONOTYPE_SERVE_TORCH_THREADS``, ``SONOTYPE_SERVE_MAX_STREAM_S``,
    ``SONOTYPE_SERVE_MAX_STREAM_BUFFER_S``.
    """
    model = os.environ.get("SONOTYPE_SERVE_MODEL")
    if not model:
        raise ParameterError("SONOTYPE_SERVE_MODEL is not set: the model directory to serve")
    threads = os.environ.get("SONOTYPE_SERVE_TORCH_THREADS")
    return create_app(
        model,
        max_upload_mb=float(os.environ.get("SONOTYPE_SERVE_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)),
        max_duration_s=float(os.environ.get("SONOTYPE_SERVE_MAX_DURATION_S", DEFAULT_MAX_DURATION_S)),
        torch_threads=int(threads) if threads else None,
        max_stream_s=float(os.environ["SONOTYPE_SERVE_MAX_STREAM_S"]) if "SONOTYPE_SERVE_MAX_STREAM_S" in os.environ else None,
        max_stream_buffer_s=(float(os.environ["SONOTYPE_SERVE_MAX_STREAM_BUFFER_S"])
                             if "SONOTYPE_SERVE_MAX_STREAM_BUFFER_S" in os.environ else None),
    )

