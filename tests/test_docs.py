"""Docstrings are part of the API: their examples run, and the covered modules keep numpydoc sections.

``test_docstring_examples_run`` executes every ``>>>`` example in every sonotype module
(doctest), in a temporary working directory, so an example that no longer matches the code
fails here rather than misleading a reader. ``test_public_api_has_numpydoc_sections`` lists
each public function and class of the covered modules that lacks ``Parameters`` (when it
takes any; dataclasses may use ``Attributes``), ``Returns``/``Yields`` (when it returns
something) or ``Examples``, so that coverage cannot regress. Examples marked ``+SKIP`` are
allowed only for the few that need a finished run or take minutes (``SKIP_ALLOWED``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import re

import pytest

import sonotype

# Importing __main__ would run the CLI.
NOT_IMPORTED = {"sonotype.__main__", "sonotype.cli.__main__"}


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(sonotype.__path__, "sonotype.") if m.name not in NOT_IMPORTED)


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # an optional extra (onnx, transformers) is not installed
        pytest.skip(f"{name} needs an optional package: {exc}")


@pytest.mark.parametrize("name", ["sonotype", *_modules()])
def test_docstring_examples_run(name: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SONOTYPE_CACHE", str(tmp_path / "cache"))
    mod = _import(name)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, name):
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


# The public API covered by numpydoc docstrings (features first, then the top-level API).
COVERED = (
    "sonotype",
    "sonotype.audio",
    "sonotype.pipeline.baseline",
    "sonotype.inference.batch",
    "sonotype.utils.console",
    "sonotype.corpora.base",
    "sonotype.corpora.demo",
    "sonotype.corpora.describe",
    "sonotype.corpora.emodb",
    "sonotype.corpora.emotions",
    "sonotype.corpora.esc50",
    "sonotype.corpora.folder",
    "sonotype.corpora.fsdd",
    "sonotype.corpora.gtzan",
    "sonotype.corpora.ravdess",
    "sonotype.corpora.savee",
    "sonotype.corpora.tess",
    "sonotype.pipeline.demo",
    "sonotype.corpora.ops",
    "sonotype.utils.environment",
    "sonotype.pipeline.estimator",
    "sonotype.evaluation.metrics",
    "sonotype.inference.events",
    "sonotype.features",
    "sonotype.bench.features",
    "sonotype.features.cache",
    "sonotype.features.config",
    "sonotype.features.extract",
    "sonotype.features.filters",
    "sonotype.features.frames",
    "sonotype.features.functional",
    "sonotype.features.pitch",
    "sonotype.features.represent",
    "sonotype.features.scaling",
    "sonotype.features.spectral",
    "sonotype.features.tonal",
    "sonotype.utils.io",
    "sonotype.inference.modelio",
    "sonotype.models",
    "sonotype.models.cnn1d",
    "sonotype.models.cnn2d",
    "sonotype.models.ensemble",
    "sonotype.models.heads",
    "sonotype.models.layers",
    "sonotype.models.linear",
    "sonotype.models.mlp",
    "sonotype.reporting.plots",
    "sonotype.inference.predict",
    "sonotype.utils.progress",
    "sonotype.splits.protocol",
    "sonotype.recipes",
    "sonotype.reporting.report",
    "sonotype.reporting.prediction",
    "sonotype.reporting.results",
    "sonotype.reporting.runs",
    "sonotype.training.train",
    "sonotype.training.members",
)

SKIP_ALLOWED = {
    "sonotype.evaluation.metrics.evaluate_on_corpus",  # needs a saved model and a second corpus on disk
    "sonotype.pipeline.baseline.run_baseline",  # needs a finished run's folds (run_experiment calls it)
    "sonotype.bench.features.run_benchmark",  # minutes of timing
    "sonotype.corpora.tess.fetch",  # downloads
    "sonotype.pipeline.demo.run_demo",  # trains a model (tests/test_experiment.py runs it)
}

_SECTION = re.compile(r"^\s*(\w[\w ]*)\n\s*-{3,}\s*$", re.M)


def _public(mod) -> list[tuple[str, object]]:
    names = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
    out = []
    for n in names:
        obj = getattr(mod, n)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", None) != mod.__name__:
            continue  # re-exports are checked where they are defined
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # the errors are documented by their module as a family
        out.append((f"{mod.__name__}.{n}", obj))
    return out


def _missing(obj: object) -> list[str]:
    sections = set(_SECTION.findall(inspect.getdoc(obj) or ""))
    miss = []
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    takes = sig is not None and any(p.name != "self" for p in sig.parameters.values())
    if inspect.isclass(obj):
        if takes and not {"Parameters", "Attributes"} & sections:
            miss.append("Parameters")
    else:
        if takes and "Parameters" not in sections:
            miss.append("Parameters")
        if sig is not None and sig.return_annotation not in ("None", None) and not {"Returns", "Yields"} & sections:
            miss.append("Returns")
    if "Examples" not in sections:
        miss.append("Examples")
    return miss


def test_public_api_has_numpydoc_sections() -> None:
    gaps = [f"{name}: lacks {', '.join(m)}" for mod in COVERED for name, obj in _public(importlib.import_module(mod))
            if (m := _missing(obj))]
    assert not gaps, "\n".join(gaps)


# The classes a notebook user calls methods on: their public methods document Parameters and
# Returns too (their examples live in the class docstring).
METHOD_CLASSES = (
    "sonotype.pipeline.estimator.AudioClassifier",
    "sonotype.inference.predict.Classifier",
    "sonotype.corpora.base.Clip",
    "sonotype.corpora.base.Manifest",
    "sonotype.features.cache.FeatureCache",
    "sonotype.features.scaling.Standardizer",
    "sonotype.reporting.runs.RunResult",
)


def test_key_classes_document_their_methods() -> None:
    gaps = []
    for path in METHOD_CLASSES:
        mod, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(mod), name)
        for attr, f in vars(cls).items():
            f = f.__func__ if isinstance(f, (staticmethod, classmethod)) else f
            if attr.startswith("_") or not inspect.isfunction(f):
                continue
            if m := [x for x in _missing(f) if x != "Examples"]:
                gaps.append(f"{path}.{attr}: lacks {', '.join(m)}")
    assert not gaps, "\n".join(gaps)


def test_examples_are_not_skipped() -> None:
    skipped = sorted(name for mod in COVERED for name, obj in _public(importlib.import_module(mod))
                     if "+SKIP" in (inspect.getdoc(obj) or ""))
    assert set(skipped) <= SKIP_ALLOWED, skipped


def test_the_checker_sees_a_gap() -> None:
    def undocumented(x: int) -> int:
        """One line."""
        return x

    assert _missing(undocumented) == ["Parameters", "Returns", "Examples"]
