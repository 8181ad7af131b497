"""Request bodies in bounded memory: counted while read, spooled to disk past a small size.

A body is read into a :class:`tempfile.SpooledTemporaryFile` that moves to disk once it
holds more than ``spool_bytes``; a multipart body is parsed from that file in blocks
(Starlette spools each uploaded part the same way), and an upload reaches libsndfile as a
named temporary file copied block by block. So one request holds at most about
``spool_bytes`` of its upload in memory, whatever ``max_upload_mb`` allows.

:func:`run_upload` is the one path of a single-file route (``/v1/classify``, ``/v1/tag``):
receive the body, take the file out of a multipart form or the raw body, refuse an empty one,
check the query, run the route's work in a worker thread (:meth:`Engine.run`, which answers
503 when the queue is full) and map its errors onto the JSON answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from sonotype.errors import AudioError, ParameterError, SonotypeError
from sonotype.serve.errors import ApiError, audio_error, request_id

__all__ = ["COPY_BLOCK", "extract_audio", "is_empty", "parse_multipart", "receive_body", "run_upload", "spilled"]

COPY_BLOCK = 1 << 16
log = logging.getLogger("sonotype.serve")


def _too_large(size: int, max_bytes: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"upload is {more}{size / 1e6:.2f} MB; this server accepts at most {max_bytes / 1e6:g} MB"


async def receive_body(request: Request, *, max_bytes: int, timeout_s: float, spool_bytes: int) -> IO[bytes]:
    """The request body as a file positioned at 0, refused early (Content-Length, 413) or while
    counting (413), or when not received within ``timeout_s`` (408); in memory up to ``spool_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", f"invalid Content-Length header {declared!r}") from None
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", _too_large(size, max_bytes))
    body = tempfile.SpooledTemporaryFile(max_size=spool_bytes, prefix="sonotype-body-")  # noqa: SIM115 - returned
    n = 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                n += len(chunk)
                if n > max_bytes:
                    raise ApiError(413, "payload_too_large", _too_large(n, max_bytes, at_least=True))
                body.write(chunk)
    except TimeoutError:
        body.close()
        raise ApiError(408, "request_timeout", f"the body was not received within {timeout_s:g} s") from None
    except BaseException:
        body.close()
        raise
    body.seek(0)
    return body


async def parse_multipart(request: Request, body: IO[bytes], *, max_files: int) -> Any:
    """The form of a multipart ``body`` (from :func:`receive_body`), read in blocks; 400 if malformed.
    Close it (``await form.close()``) when done: its file parts may be on disk."""
    async def blocks() -> AsyncGenerator[bytes, None]:
        while chunk := body.read(COPY_BLOCK):
            yield chunk
        yield b""

    try:
        return await MultiPartParser(request.headers, blocks(), max_files=max_files, max_fields=16).parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc.message}") from None


def is_empty(f: IO[bytes]) -> bool:
    """True when the file object (positioned at 0) holds no byte; leaves it at 0."""
    empty = not f.read(1)
    f.seek(0)
    return empty


def _suffix(filename: str | None) -> str:
    """A safe extension hint from the client's file name (decoding goes by content anyway)."""
    ext = Path(filename or "").suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,6}", ext) else ".audio"


@contextlib.contextmanager
def spilled(data: bytes | IO[bytes], filename: str | None, label: str | None = None) -> Iterator[Path]:
    """An upload (bytes or a file object at 0) as a named temporary file (libsndfile reads
    files), deleted afterwards; an :class:`AudioError` inside names the client's file
    (``label``), not the temporary path."""
    fd, name = tempfile.mkstemp(prefix="sonotype-upload-", suffix=_suffix(filename))
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray)):
                f.write(data)
            else:
                shutil.copyfileobj(data, f, COPY_BLOCK)
        yield Path(name)
    except AudioError as exc:
        raise AudioError(None, exc.reason.replace(name, label or filename or "upload")) from None
    finally:
        Path(name).unlink(missing_ok=True)


async def extract_audio(request: Request, body: IO[bytes]) -> tuple[Any, str | None, Any]:
    """The audio (a file object at 0), the client's file name and the form to close (or None),
    from a multipart form (field ``file``) or a raw body."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return body, None, None

    form = await parse_multipart(request, body, max_files=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        fields = sorted(form.keys())
        if upload is not None:  # a part without a filename arrives as a text value
            raise ApiError(400, "missing_file", "the multipart field 'file' is a form value, not a file (give it a filename)")
        raise ApiError(400, "missing_file", f"multipart body needs a file field named 'file' (got fields {fields})")
    upload.file.seek(0)
    return upload.file, upload.filename, form


async def run_upload(request: Request, engine: Any, work: Callable[..., Any], *args: Any,
                     check: Callable[[], object] | None = None, what: str = "classification") -> tuple[Any, str | None]:
    """The one path of a single-file route: ``work(engine, data, filename, *args)`` in a worker
    thread on the uploaded audio, and the client's file name.

    The body is received within the limits of ``engine.limits`` (413, 408), the file taken out
    of a multipart form or the raw body (400 when missing or empty), ``check()`` run (its
    :class:`ParameterError` is 422 ``invalid_parameter``), then ``work`` runs through
    ``engine.run`` (503 when the queue is full). An :class:`AudioError` answers 415/422, another
    :class:`SonotypeError` 422, anything else 500 (logged with the request id). The body and
    the form's spooled parts are closed in every case.
    """
    lim = engine.limits
    body = await receive_body(request, max_bytes=lim.max_bytes, timeout_s=lim.read_timeout_s,
                              spool_bytes=lim.spool_kb * 1024)
    form = None
    try:
        data, filename, form = await extract_audio(request, body)
        if is_empty(data):
            raise ApiError(400, "empty_body", "no audio received: the request body (or the uploaded file) is empty")
        if check is not None:
            try:
                check()
            except ParameterError as exc:
                raise ApiError(422, "invalid_parameter", str(exc)) from None
        try:
            result = await engine.run(work, engine, data, filename, *args)
        except ApiError:
            raise
        except AudioError as exc:
            raise audio_error(exc) from None
        except SonotypeError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except Exception:
            log.exception("request %s: %s failed", request_id(request), what)
            raise ApiError(500, "internal_error", f"{what} failed unexpectedly; see the server log") from None
    finally:
        if form is not None:
            await form.close()
        body.close()
    return result, filename
