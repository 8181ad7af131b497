"""Request bodies in bounded memory: counted while read, spooled to disk past a small size.

A body is read into a :class:`tempfile.SpooledTemporaryFile` that moves to disk once it
holds more than ``spool_bytes``; a multipart body is parsed from that file in blocks
(Starlette spools each uploaded part the same way), and an upload reaches libsndfile as a
named temporary file copied block by block. So one request holds at most about
``spool_bytes`` of its upload in memory, whatever ``max_upload_mb`` allows.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from sonotype.errors import AudioError
from sonotype.serve.errors import ApiError

__all__ = ["COPY_BLOCK", "is_empty", "parse_multipart", "receive_body", "spilled"]

COPY_BLOCK = 1 << 16


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
