"""Docstrings are part of the API: their examples run, and the covered modules keep numpydoc sections.

``test_docstring_examples_run`` executes every ``>>>`` example in every sonotype module
(doctest), in a temporary working directory, so an example that no longer matches the code
fails here rather than misleading a reader. ``test_public_api_has_numpydoc_sections`` lists
each public function and class of the covered modules that lacks ``Parameters`` (when it
takes any; dataclasses may use ``Attributes``), ``Returns``/``Yields`` (when it returns
something) or ``Examples``, so that coverage cannot regress. Examples marked ``+SKIP`` are
allowed only for the few that need a finished run or take minutes (``SKIP_ALLOWED``).

The documentation (``README.md``, ``docs/``, built by ``make docs``) is checked here too, without
building the site (``make test`` runs the strict mkdocs build): every ``sonotype.x.y`` name and
every ``from sonotype... import`` in it resolves, every file path it names exists, every
``sonotype`` command in its shell blocks names existing commands and options, the README stays a
front page, every page is in the site's navigation, the API pages cover the public modules, and
the layers in ``docs/design.md`` are the import-linter contract's.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import json
import pkgutil
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

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
    "sonotype.models.registry",
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
    "sonotype.pipeline.evaluate.evaluate_on_corpus",  # needs a saved model and a second corpus on disk
    "sonotype.pipeline.baseline.run_baseline",  # needs a finished run's folds (run_experiment calls it)
    "sonotype.bench.features.run_benchmark",  # minutes of timing
    "sonotype.corpora.tess.fetch",  # downloads
    "sonotype.pipeline.demo.run_demo",  # trains a model (tests/pipeline/test_experiment.py runs it)
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


# --- the documentation: README.md, docs/ (the mkdocs site) ---------------------------------

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)
DOC_FILES = [README, *PAGES]
NOTEBOOK = DOCS / "quickstart.ipynb"

NOT_PYTHON = {"sonotype.labels"}  # the ONNX metadata key, not a module path
_DOTTED = re.compile(r"(?<![\w/.-])sonotype(?:\.[A-Za-z_]\w*)+")
_FROM_IMPORT = re.compile(r"^\s*from (sonotype[\w.]*) import \(?([\w, ]+)", re.M)
_PATH = re.compile(r"(?<![\w/.-])((?:src|tests|scripts|docs|recipes)/[\w./*<>{}-]*[\w*>}]|sonotype/[\w/]+\.py)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return False
        return True
    return False


def _python_names(text: str) -> set[str]:
    names = {m.group(0) for m in _DOTTED.finditer(text)} - NOT_PYTHON
    for m in _FROM_IMPORT.finditer(text):
        names |= {f"{m.group(1)}.{x.strip()}" for x in m.group(2).split(",") if x.strip()}
    return names


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("doc", [*DOC_FILES, NOTEBOOK], ids=_rel)
def test_documented_names_resolve(doc: Path) -> None:
    """Module paths in the docs are today's: the layered move left none behind."""
    text = doc.read_text()
    if doc.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
    missing = sorted(n for n in _python_names(text) if not _resolves(n))
    assert not missing, f"{_rel(doc)} names what does not exist: {missing}"


@pytest.mark.parametrize("doc", DOC_FILES, ids=_rel)
def test_documented_paths_exist(doc: Path) -> None:
    missing = []
    for m in _PATH.finditer(doc.read_text()):
        path = m.group(1).rstrip(".")
        if any(c in path for c in "*<{"):  # a pattern (tests/test_fuzz_*.py), not a file
            continue
        if not ((ROOT / path).exists() or (ROOT / "src" / path).exists()):
            missing.append(path)
    assert not missing, f"{_rel(doc)} names files that do not exist: {sorted(set(missing))}"


def _commands(text: str):
    """``(line, tokens)`` of every ``sonotype ...`` line in the shell blocks of a Markdown text."""
    for lang, body in _FENCE.findall(text):
        if lang not in ("bash", "sh", "shell", "console", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            try:
                toks = shlex.split(line, comments=True)
            except ValueError:
                continue
            while toks and re.match(r"^[A-Z_]+=", toks[0]):  # VAR=value sonotype ...
                toks = toks[1:]
            if toks[:1] == ["sonotype"]:
                yield line, toks


def _command_error(toks: list[str]) -> str | None:
    """Why a ``sonotype`` command line names a command or an option that does not exist, else None."""
    import typer

    from sonotype.cli import app

    cmd, path, args = typer.main.get_command(app), ["sonotype"], []
    for t in toks[1:]:
        if t in ("|", ">", ">>", "&&", "||", ";"):
            break
        if t := t.strip("[]"):  # [--json]: optional, still checked
            args.append(t)
    i = 0
    while hasattr(cmd, "commands") and i < len(args) and not args[i].startswith("-"):
        if (sub := cmd.commands.get(args[i])) is None:
            return f"no command '{' '.join(path)} {args[i]}'"
        cmd, i = sub, i + 1
        path.append(args[i - 1])
    options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for t in args[i:]:
        if t.startswith("-") and len(t) > 1 and not t[1].isdigit() and t.split("=", 1)[0] not in options:
            return f"'{' '.join(path)}' has no option {t.split('=', 1)[0]}"
    return None


@pytest.mark.parametrize("doc", DOC_FILES, ids=_rel)
def test_documented_commands_exist(doc: Path) -> None:
    """Every command and option a reader copies from the docs exists (names, not runs)."""
    bad = [f"{err}: {line}" for line, toks in _commands(doc.read_text()) if (err := _command_error(toks))]
    assert not bad, "\n".join(bad)


def test_the_command_checker_sees_a_bad_command() -> None:
    assert _command_error(["sonotype", "train", "--corpus", "x", "--no-such-option"])
    assert _command_error(["sonotype", "corpus", "shw", "ravdess", "DIR"])
    assert _command_error(["sonotype", "predict", "MODEL", "a.wav", "--window", "3", "[--json]"]) is None
    lines = list(_commands("```bash\nSONOTYPE_DATA=~/d sonotype run demo \\\n    --out x  # note --bad\n```\n"))
    assert [t for _, t in lines] == [["sonotype", "run", "demo", "--out", "x"]]


def test_readme_is_a_front_page() -> None:
    text = README.read_text()
    assert len(text.encode()) <= 12_000, f"README.md is {len(text.encode())} bytes: move detail into docs/"
    first_block = _FENCE.search(text).group(2)
    assert "make demo" in first_block and "make test" in first_block, "the two set-up commands come first"
    sections = dict(re.findall(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    for name in ("Share a model", "Serving", "Results"):
        assert sections.get(name, "").strip(), f"README.md has no '## {name}' section"
    assert re.search(r"^\|.*protocol.*\|.*baseline.*\|$", sections["Results"], re.M | re.I), \
        "the results table gives each figure's protocol and baseline"
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    broken = [t for t in links if "://" not in t and not (ROOT / t).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
    assert any(t.startswith("docs/") for t in links), "README.md links into the docs"


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for item in nav for p in _nav_pages(item)]


def test_every_page_is_in_the_site_navigation() -> None:
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(_nav_pages(cfg["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert pages <= nav, f"pages missing from mkdocs.yml nav: {sorted(pages - nav)}"
    assert nav <= pages, f"nav entries without a page: {sorted(nav - pages)}"


# The public modules the API reference must render (docs/api/*.md, "::: module" blocks).
API_MODULES = (
    "sonotype.pipeline.estimator",
    "sonotype.inference.predict",
    "sonotype.inference.batch",
    "sonotype.reporting.runs",
    "sonotype.corpora.registry",
    "sonotype.corpora.base",
    "sonotype.features.functional",
    "sonotype.backbones.config",
    "sonotype.pipeline.config",
    "sonotype.pipeline.experiment",
)


def test_api_reference_covers_the_public_modules() -> None:
    blocks = {m for p in (DOCS / "api").glob("*.md") for m in re.findall(r"^::: ([\w.]+)", p.read_text(), re.M)}
    assert set(API_MODULES) <= blocks, f"no API page for {sorted(set(API_MODULES) - blocks)}"
    assert all(_resolves(m) for m in blocks), sorted(m for m in blocks if not _resolves(m))


def test_design_page_shows_the_import_contract() -> None:
    design = (DOCS / "design.md").read_text()
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for contract in contracts:
        for layer in contract.get("layers", []):
            for pkg in (x.strip() for x in layer.split("|")):
                assert f"`{pkg}`" in design, f"docs/design.md does not describe {pkg}"
        assert f'"{layer}"' in design or contract["type"] != "layers", f"docs/design.md lacks layer {layer!r}"
