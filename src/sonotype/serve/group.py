"""``POST /v1/classify-group``: several clips of one speaker, classified together.

A model trained with ``normalize: {by: speaker}`` (the speech defaults) standardises a
speaker's items with that speaker's own statistics. One clip alone gets the training
speakers' average instead, which is weaker; a client that has several clips of the same
speaker sends them in one multipart request (every part named ``file``) and each clip is
standardised with the statistics of all of them, as :meth:`Classifier.predict_group` does.
For a model without normalisation the answer equals one ``/v1/classify`` call per file.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from sonotype.errors import AudioError, SonotypeError
from sonotype.serve.errors import ApiError, all_finite, audio_error, request_id
from sonotype.serve.openapi import ERROR_RESPONSES
from sonotype.serve.uploads import is_empty, parse_multipart, receive_body, spilled

__all__ = ["MAX_GROUP_FILES", "add_group_route"]

MAX_GROUP_FILES = 64
log = logging.getLogger("sonotype.serve")


async def _files(request: Request, body: Any) -> tuple[list[tuple[str | None, Any]], Any]:
    """Every ``file`` part of a multipart body, in order: ``(filename, file object)``, and the
    form (to close once the files are used)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(400, "missing_file", "send the clips as a multipart form, one part named 'file' per clip")

    form = await parse_multipart(request, body, max_files=MAX_GROUP_FILES)
    try:
        parts = form.getlist("file")
        if not parts:
            raise ApiError(400, "missing_file", f"multipart body needs file fields named 'file' (got fields "
                                                f"{sorted(form.keys())})")
        if not all(isinstance(p, UploadFile) for p in parts):
            raise ApiError(400, "missing_file", "a multipart field 'file' is a form value, not a file (give it a filename)")
        out = []
        for p in parts:
            p.file.seek(0)
            out.append((p.filename, p.file))
        empty = [name or f"part {i + 1}" for i, (name, f) in enumerate(out) if is_empty(f)]
        if empty:
            raise ApiError(400, "empty_body", f"empty file(s): {', '.join(empty)}")
    except BaseException:
        await form.close()
        raise
    return out, form


def _decode(engine: Any, name: str | None, data: Any, index: int) -> Any:
    """One part's samples at the model's rate (limits checked first); errors name the client's file."""
    label = name or f"part {index + 1}"
    try:
        with spilled(data, name, label) as tmp:
            return engine.decode(tmp, label)
    except AudioError as exc:
        raise AudioError(None, f"{exc.reason} (file {label})") from None


def _classify_group(engine: Any, files: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Worker-thread part: decode every clip, then one :meth:`predict_group` call under the model lock."""
    clf = engine.clf
    waves = [_decode(engine, name, data, i) for i, (name, data) in enumerate(files)]
    for i, ((name, _), y) in enumerate(zip(files, waves, strict=True)):
        if y.shape[-1] < clf.min_samples:  # checked here so that the message names the file
            raise AudioError(None, f"audio too short: {y.shape[-1] / engine.sr:.3f} s; this model needs at least "
                                   f"{clf.min_duration:.3f} s (file {name or f'part {i + 1}'})")
    with engine.lock:
        preds = clf.predict_group(waves, engine.sr)
    norm = getattr(clf, "normalizer", None)
    together = norm is not None and len(waves) >= norm.min_clips
    out = []
    for (name, _), p in zip(files, preds, strict=True):
        d = jsonable_encoder(p.to_dict())
        d.pop("path", None)
        d["filename"] = name
        out.append(d)
    if not all_finite(out):
        raise AudioError(None, "the audio gives non-finite class probabilities (corrupt or extreme samples)")
    how = (f"standardised together per {norm.by} ({len(waves)} clips)" if together else
           f"fewer than {norm.min_clips} clips: the training {norm.by}s' average statistics" if norm is not None else
           "this model does not normalise per speaker: each clip classified alone")
    return {"predictions": out, "n_files": len(out), "normalised_together": together, "normalisation": how}


_GROUP_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary", "minLength": 1},
                                        "minItems": 1, "maxItems": MAX_GROUP_FILES}},
                "required": ["file"],
            }
        }
    },
}


def add_group_route(app: FastAPI, engine: Any) -> None:
    """Register ``POST /v1/classify-group`` on ``app`` (see the module notes)."""
    @app.post(
        "/v1/classify-group",
        summary="Classify several clips of one speaker together",
        description=(
            f"A multipart upload with up to {MAX_GROUP_FILES} parts named `file`, all clips of one speaker. "
            "A model trained with per-speaker standardisation standardises each clip with the statistics "
            "of all of them (the speech defaults); otherwise each clip is classified alone. The answer "
            "lists one prediction per file, in order."
        ),
        responses={
            "400": {"description": "not multipart, malformed, no `file` part or an empty file"},
            "413": {"description": "upload too large or a file too long"},
            "415": {"description": "a file is not an audio format sonotype reads"},
            "422": {"description": "a corrupt or too-short file (named in the message)"},
            **ERROR_RESPONSES,
        },
        openapi_extra={"requestBody": _GROUP_BODY},
    )
    async def classify_group(request: Request) -> JSONResponse:
        rid = request_id(request)
        t0 = time.perf_counter()
        lim = engine.limits
        body = await receive_body(request, max_bytes=lim.max_bytes, timeout_s=lim.read_timeout_s,
                                  spool_bytes=lim.spool_kb * 1024)
        form = None
        try:
            files, form = await _files(request, body)
            result = await engine.run(_classify_group, engine, files)
        except ApiError:
            raise
        except AudioError as exc:
            raise audio_error(exc) from None
        except SonotypeError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        finally:
            if form is not None:
                await form.close()
            body.close()
        result.update(model_id=engine.clf.model_id, request_id=rid)
        log.info("request %s: group of %d files (%.0f ms)", rid, len(files), 1000 * (time.perf_counter() - t0))
        return JSONResponse(result)
