"""``POST /v1/tag``: a pretrained encoder's own classes for one upload, without a trained model.

``sonotype serve --tagger [ENCODER]`` (``create_app(tagger=...)``) serves the
:class:`~sonotype.inference.tagging.Tagger` that ``sonotype tag`` uses: EfficientAT mn04's
527 AudioSet classes or musicnn's 50 MSD tags. The upload goes through the same path as
``/v1/classify`` (:func:`sonotype.serve.uploads.run_upload`: bounded body, spooled parts,
header-checked streamed decoding, the worker pool), decoded at the encoder's rate; the
query's ``window``/``hop`` get the same limits (:func:`sonotype.utils.limits.check_windows`).
The answer is the JSON of ``sonotype tag --json`` for that one file
(:meth:`TagResult.to_dict <sonotype.inference.tagging.TagResult.to_dict>`, ``path`` = the
client's file name), plus the request id::

    {"encoder": "efficientat-mn04",
     "results": [{"path": "cow.flac", "duration": 5.0,
                  "tags": [{"label": "Cattle, bovinae", "probability": 0.71}, ...],
                  "windows": [{"start": 0.0, "end": 1.0, "tags": [...]}, ...]}],
     "request_id": "..."}

(``windows`` only with ``window``.)
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from sonotype.errors import AudioError, ParameterError
from sonotype.inference.tagging import MAX_TOP, Tagger
from sonotype.serve.errors import ApiError, all_finite, request_id
from sonotype.serve.openapi import upload_openapi
from sonotype.serve.uploads import run_upload, spilled
from sonotype.utils.limits import check_windows

__all__ = ["add_tag_route", "tag_upload", "tagger_info"]

log = logging.getLogger("sonotype.serve")


def tagger_info(tagger: Tagger) -> dict[str, Any]:
    """:meth:`Tagger.info` and the number of labels, JSON-ready (``GET /v1/tagger``)."""
    info = jsonable_encoder(tagger.info())
    info["n_labels"] = len(tagger.labels)
    return info


def tag_upload(engine: Any, data: Any, filename: str | None, top: int, window: float | None,
               hop: float | None) -> dict[str, Any]:
    """Worker-thread part of ``/v1/tag``: spill the upload, decode it at the tagger's rate within
    the limits, check the windows against its duration, tag it (under the network lock)."""
    tagger: Tagger = engine.tagger
    lim = engine.limits
    with spilled(data, filename) as path:
        y = engine.decode(path, sr=tagger.sample_rate)
        try:
            window, hop = check_windows(lim, window=window, hop=hop, duration=y.shape[-1] / tagger.sample_rate)
        except ParameterError as exc:
            raise ApiError(422, "invalid_parameter", str(exc)) from None
        with engine.lock:
            res = tagger.tag(y, tagger.sample_rate, top=top, window=window, hop=hop, max_windows=lim.max_windows)
    res.path = filename
    out = jsonable_encoder(res.to_dict())
    if not all_finite(out):  # JSON has no NaN: answering it would be a 500 while encoding
        raise AudioError(None, "the audio gives non-finite tag probabilities (corrupt or extreme samples)")
    return out


def add_tag_route(app: FastAPI, engine: Any) -> None:
    """Register ``POST /v1/tag`` on ``app`` (see the module notes); ``engine.tagger`` tags."""
    tagger: Tagger = engine.tagger

    @app.post(
        "/v1/tag",
        summary="Tag one audio file with the pretrained encoder's own classes",
        description=(
            f"No trained model needed: the top `top` classes of `{tagger.name}` ({len(tagger.labels)} "
            "labels, see `GET /v1/tagger`) for the whole clip and, with `window`/`hop` (seconds), for "
            "each window (the clip's tags are then the mean over the windows). Send the audio as a "
            "multipart upload (field `file`) or as the raw request body, as for `/v1/classify`. "
            "The answer is the JSON of `sonotype tag --json` for that file."
        ),
        openapi_extra=upload_openapi("top/window/hop"),
    )
    async def tag(
        request: Request,
        top: int = Query(5, ge=1, le=MAX_TOP, description="How many tags (per clip and per window)"),
        window: float | None = Query(None, gt=0, le=3600, description="Window length in seconds"),
        hop: float | None = Query(None, gt=0, le=3600, description="Window step in seconds"),
    ) -> JSONResponse:
        rid = request_id(request)
        t0 = time.perf_counter()
        lim = engine.limits
        result, filename = await run_upload(request, engine, tag_upload, top, window, hop, what="tagging",
                                            check=lambda: check_windows(lim, window=window, hop=hop))
        answer = {"encoder": tagger.name, "results": [result], "request_id": rid}
        best = result["tags"][0] if result.get("tags") else {}
        log.info("request %s: %s -> %s %.2f (%.1f s audio, %.0f ms)", rid, filename or "raw body",
                 best.get("label"), best.get("probability", 0.0), result.get("duration", 0.0),
                 1000 * (time.perf_counter() - t0))
        return JSONResponse(answer)
