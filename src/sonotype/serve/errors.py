"""The error answers of the service: :class:`ApiError` and the helpers that make one.

Every error is JSON ``{error, detail, request_id}`` (the schema in :mod:`.openapi`).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from sonotype.errors import AudioError

__all__ = ["ApiError", "all_finite", "audio_error", "request_id"]


class ApiError(Exception):
    """An error answered to the client as JSON ``{error, detail, request_id}`` (with ``headers``)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def all_finite(obj: Any) -> bool:
    """True when no float anywhere in the JSON-ready ``obj`` is NaN or infinite."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    return True


def audio_error(exc: AudioError) -> ApiError:
    reason = exc.reason
    if reason.startswith(("unsupported", "not an audio file", "not a supported")):
        return ApiError(415, "unsupported_audio", f"the upload is not audio in a format sonotype reads: {reason}")
    return ApiError(422, "invalid_audio", f"the audio cannot be used: {reason}")
