"""The OpenAPI document states the errors the service really answers.

Every error body is ``{error, detail, request_id}`` with a string ``detail``
(:data:`ERROR_SCHEMA`), including the 422 of a bad query parameter, where FastAPI would
declare its own list-shaped ``HTTPValidationError``. :func:`install_error_schema` replaces
the app's ``openapi()`` so that every operation declares that body for every 4xx/5xx it
lists, plus the answers any route may give (:data:`ERROR_RESPONSES`: a refused Host or
token, a full queue with ``Retry-After``). :func:`upload_openapi` is the request body and
the answers of a single-file route (``/v1/classify``, ``/v1/tag``).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["ERROR_RESPONSES", "ERROR_SCHEMA", "install_error_schema", "upload_openapi"]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "a short code, e.g. payload_too_large"},
        "detail": {"type": "string", "description": "what is wrong, in words"},
        "request_id": {"type": "string", "description": "also in the X-Request-ID header and the server log"},
    },
    "required": ["error", "detail", "request_id"],
}

# Answers any API route may give, besides its own.
ERROR_RESPONSES: dict[str, Any] = {
    "400": {"description": "bad request, or a Host header this server does not serve"},
    "401": {"description": "a token is required (`Authorization: Bearer TOKEN`)",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
}
_BUSY: dict[str, Any] = {
    "503": {"description": "every worker busy and the queue full: retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
    "500": {"description": "unexpected failure (logged with the request id)"},
}
def upload_openapi(params: str) -> dict[str, Any]:
    """The request body a single-file route accepts (a multipart ``file`` or the raw audio) and
    its error answers, as a fresh dict for ``openapi_extra`` (FastAPI may merge into it);
    ``params`` names the query parameters a 422 may be about."""
    binary = {"type": "string", "format": "binary", "minLength": 1}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": dict(binary)}, "required": ["file"]}
                },
                "application/octet-stream": {"schema": dict(binary)},
                "audio/*": {"schema": dict(binary)},
            },
        },
        "responses": {
            "400": {"description": "empty body, malformed multipart or no `file` field"},
            "408": {"description": "body not received in time"},
            "413": {"description": "upload too large or audio too long"},
            "415": {"description": "not an audio format sonotype reads"},
            "422": {"description": f"corrupt or too-short audio, or invalid {params}"},
            **copy.deepcopy(ERROR_RESPONSES),
        },
    }


_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def install_error_schema(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare :data:`ERROR_SCHEMA` for every error answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.pop("HTTPValidationError", None)
        comps.pop("ValidationError", None)
        comps["ErrorBody"] = ERROR_SCHEMA
        for ops in schema.get("paths", {}).values():
            for method, op in ops.items():
                responses = op.setdefault("responses", {})
                for code, resp in ERROR_RESPONSES.items():
                    responses.setdefault(code, dict(resp))
                if method == "post":
                    for code, resp in _BUSY.items():
                        responses.setdefault(code, dict(resp))
                for code, resp in responses.items():
                    if code[0] in "45":
                        resp["content"] = _REF
                        resp.setdefault("description", "error")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
