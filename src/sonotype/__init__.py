"""sonotype: labelled audio in, a trustworthy classifier out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sonotype.errors import (
    AudioError,
    ConfigError,
    CorpusError,
    DownloadError,
    ModelError,
    ParameterError,
    SonotypeError,
)

__version__ = "0.1.0"

__all__ = [
    "AudioClassifier",
    "AudioError",
    "ConfigError",
    "CorpusError",
    "DownloadError",
    "ModelError",
    "ParameterError",
    "RunResult",
    "SonotypeError",
    "__version__",
    "load_model",
    "load_run",
]

if TYPE_CHECKING:
    from sonotype.inference.predict import Classifier
    from sonotype.pipeline.estimator import AudioClassifier
    from sonotype.reporting.runs import RunResult


def load_model(path: Any) -> Classifier:
    """Load a saved model directory (safetensors + JSON; never executes code).

    Parameters
    ----------
    path : path-like
        A folder written by ``sonotype train`` or :meth:`AudioClassifier.save`.

    Returns
    -------
    sonotype.inference.predict.Classifier
        ``predict(file or array)`` and ``predict_proba``-like ``forward_items``.

    Examples
    --------
    >>> import sonotype
    >>> sonotype.load_model("no/such/folder")
    Traceback (most recent call last):
    ...
    sonotype.errors.ModelError: no/such/folder: model directory not found
    """
    from sonotype.inference.predict import load_model as _load

    return _load(path)


def load_run(path: Any) -> RunResult:
    """The metrics of a finished run folder, shown as tables in a notebook.

    Parameters
    ----------
    path : path-like
        A run folder (``sonotype train`` / ``run_experiment`` output) or its ``metrics.json``.

    Returns
    -------
    sonotype.reporting.runs.RunResult

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> import sonotype
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "metrics.json").write_text(json.dumps({"balanced_accuracy": 0.9}))
    >>> sonotype.load_run(d).balanced_accuracy
    0.9
    """
    from sonotype.reporting.runs import load_run as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    """``sonotype.AudioClassifier`` on first use: ``import sonotype`` stays free of torch and scikit-learn."""
    if name == "AudioClassifier":
        from sonotype.pipeline.estimator import AudioClassifier

        return AudioClassifier
    if name == "RunResult":
        from sonotype.reporting.runs import RunResult

        return RunResult
    raise AttributeError(f"module 'sonotype' has no attribute {name!r}")
