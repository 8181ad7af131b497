"""A run's metrics as an object a notebook can show: :class:`RunResult` and :func:`load_run`.

``run_experiment`` writes ``metrics.json`` (and returns the same dict); scikit-learn's
``cross_validate`` returns a dict of arrays. :class:`RunResult` wraps either with the
headline figures as attributes and an HTML view built from the same tables as the run's
``report.html`` (one rendering of a metric, wherever it is shown).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.errors import ParameterError

__all__ = ["RunResult", "load_run"]

_HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


class RunResult:
    """The metrics of one run (or one cross-validation), with a notebook view.

    Parameters
    ----------
    metrics : dict
        A run's ``metrics.json`` body: pooled figures (``balanced_accuracy``, ...), optionally
        ``folds``, ``mean``/``std``, ``per_class``, ``baseline``, ``cross``.
    path : path-like, optional
        The run folder the metrics were read from.

    Attributes
    ----------
    metrics : dict
        As given; ``result["key"]`` reads it too.
    path : pathlib.Path or None

    Examples
    --------
    >>> r = RunResult({"mean": {"balanced_accuracy": 0.8}, "std": {"balanced_accuracy": 0.05},
    ...                "folds": [{"fold": 0, "balanced_accuracy": 0.75}, {"fold": 1, "balanced_accuracy": 0.85}]})
    >>> r.balanced_accuracy, len(r.folds)
    (0.8, 2)
    >>> "balanced accuracy" in r._repr_html_()
    True
    """

    def __init__(self, metrics: Mapping[str, Any], path: str | os.PathLike | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise ParameterError(f"metrics must be a dict (a run's metrics.json), got {type(metrics).__name__}")
        self.metrics = dict(metrics)
        self.path = None if path is None else Path(path)

    @classmethod
    def from_cv(cls, results: Mapping[str, Any], *, metric: str = "balanced_accuracy") -> RunResult:
        """Wrap the dict ``sklearn.model_selection.cross_validate`` returns.

        Parameters
        ----------
        results : dict
            ``cross_validate``'s output: ``test_score`` (one scorer; ``AudioClassifier.score`` is
            balanced accuracy) or ``test_<name>`` per scorer, and ``fit_time``.
        metric : str
            The name ``test_score`` stands for.

        Returns
        -------
        RunResult
            ``folds`` (one row per split), ``mean`` and ``std`` (ddof=1) of every scorer.

        Examples
        --------
        >>> import numpy as np
        >>> r = RunResult.from_cv({"test_score": np.array([0.7, 0.9]), "fit_time": np.array([1.0, 1.2])})
        >>> round(r.balanced_accuracy, 3), round(r.metrics["std"]["balanced_accuracy"], 3)
        (0.8, 0.141)
        """
        scores = {(metric if k == "test_score" else k[len("test_"):]): np.asarray(v, dtype=np.float64)
                  for k, v in results.items() if k.startswith("test_")}
        if not scores:
            raise ParameterError(f"cross_validate results need a test_score entry, got keys {sorted(results)}")
        n = {v.size for v in scores.values()}
        if len(n) != 1:
            raise ParameterError(f"cross_validate results have different fold counts: {sorted(n)}")
        folds = [{"fold": i, **{k: float(v[i]) for k, v in scores.items()}} for i in range(n.pop())]
        if "fit_time" in results:
            for f, t in zip(folds, np.asarray(results["fit_time"], dtype=np.float64)):
                f["fit_seconds"] = round(float(t), 2)
        return cls({
            "folds": folds,
            "mean": {k: float(v.mean()) for k, v in scores.items()},
            "std": {k: float(v.std(ddof=1)) if v.size > 1 else 0.0 for k, v in scores.items()},
        })

    def __getitem__(self, key: str) -> Any:
        return self.metrics[key]

    def _figure(self, key: str) -> float | None:
        """The pooled figure, else the mean over folds."""
        v = self.metrics.get(key, (self.metrics.get("mean") or {}).get(key))
        return None if v is None else float(v)

    @property
    def balanced_accuracy(self) -> float | None:
        """Balanced accuracy (mean per-class recall): pooled over folds, else their mean."""
        return self._figure("balanced_accuracy")

    @property
    def accuracy(self) -> float | None:
        """Accuracy: pooled over folds, else their mean."""
        return self._figure("accuracy")

    @property
    def macro_f1(self) -> float | None:
        """Macro-averaged F1: pooled over folds, else their mean."""
        return self._figure("macro_f1")

    @property
    def folds(self) -> list[dict[str, Any]]:
        """One dict per fold (empty for a single holdout)."""
        return list(self.metrics.get("folds") or [])

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class (pooled), when the run recorded them."""
        return dict(self.metrics.get("per_class") or {})

    def to_dict(self) -> dict[str, Any]:
        """The metrics, as a plain dict (a copy).

        Returns
        -------
        dict
        """
        return json.loads(json.dumps(self.metrics, default=float))

    def __repr__(self) -> str:
        ba = self.balanced_accuracy
        where = f" {self.path}" if self.path else ""
        return f"RunResult({len(self.folds)} folds, balanced accuracy {'?' if ba is None else f'{ba:.3f}'}{where})"

    def _repr_html_(self) -> str:
        """Headline figures, folds, per class, baseline and cross-corpus tables, as in ``report.html``."""
        from sonotype.reporting import report
        from sonotype.utils.html import esc

        m = self.metrics
        title = f"<b>sonotype run</b> <span style='color:#777'>{esc(self.path)}</span>" if self.path else "<b>sonotype run</b>"
        parts = [title, report._headline(m), report._baseline_section(m)]
        extra = sorted({k for f in self.folds for k in f} - {"fold", "name", "n", *_HEADLINE})
        if extra:  # cross_validate output carries scorers of its own: show every column
            heads = ["fold", *(k for k in (*_HEADLINE, *extra) if any(k in f for f in self.folds))]
            rows = [[esc(f.get(h, "")) if h == "fold" else report._num(f.get(h, "")) for h in heads] for f in self.folds]
            parts.append(report._section_table("Folds", heads, rows))
        else:
            parts.append(report._folds_table(m))
        parts += [report._per_class_table(m), report._cross_table(m)]
        return "<div>" + "".join(p for p in parts if p) + "</div>"


def load_run(path: str | os.PathLike) -> RunResult:
    """The metrics of a finished run folder (``sonotype train`` / ``run_experiment`` output).

    Parameters
    ----------
    path : path-like
        The run folder, or its ``metrics.json``.

    Returns
    -------
    RunResult

    Raises
    ------
    ParameterError
        No ``metrics.json`` there, or it is not a JSON object.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "metrics.json").write_text(json.dumps({"balanced_accuracy": 0.9, "accuracy": 0.92}))
    >>> load_run(d).balanced_accuracy
    0.9
    """
    p = Path(path)
    f = p if p.is_file() else p / "metrics.json"
    if not f.is_file():
        raise ParameterError(f"{p} is not a sonotype run folder: no metrics.json there")
    try:
        metrics = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{f} is not valid JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise ParameterError(f"{f} must hold a JSON object, got {type(metrics).__name__}")
    return RunResult(metrics, f.parent)
