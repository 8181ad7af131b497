"""Serve a trained model over HTTP: a FastAPI app with a REST API and a small web page.

The app is a thin front end (parse, call :class:`sonotype.inference.predict.Classifier`, format);
``sonotype serve MODEL`` runs it under uvicorn.

Examples
--------
>>> from sonotype.serve import create_app  # doctest: +SKIP
>>> app = create_app("models/gtzan-mlp", max_upload_mb=20)  # doctest: +SKIP
"""

from __future__ import annotations

from sonotype.serve.app import create_app

__all__ = ["create_app"]
