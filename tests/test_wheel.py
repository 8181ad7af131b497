"""The wheel holds what an installed sonotype needs, so a packaging mistake fails the suite.

``test_wheel_has_the_package_data`` builds the wheel from a copy of the source (``pyproject.toml``,
``README.md``, ``src/``) in a temporary folder, without installing it, and checks its file list:
every sub-package's ``__init__.py``, every recipe (``src/sonotype/recipes/*.yaml``), every static
file of the web page (``src/sonotype/serve/static/*``), ``py.typed``, every other file declared in
``[tool.setuptools.package-data]``, the ``sonotype`` console script and a Markdown long
description. ``make wheel`` goes further: ``twine check``, a clean venv,
``pip install dist/*.whl`` and ``sonotype demo`` run from outside the source tree.

Run as a script (``python tests/test_wheel.py dist/*.whl``), it checks a wheel already built
(``make wheel`` does).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sonotype"


def expected_files() -> list[str]:
    """The paths (inside the wheel) that an installed sonotype cannot work without.

    Every sub-package's ``__init__.py``; the recipes, the web page's static files and ``py.typed``
    (named here, so that dropping them from ``[tool.setuptools.package-data]`` fails too); and
    every other file that table declares (e.g. data files of a backbone).
    """
    pkgs = sorted(p.parent for p in SRC.rglob("__init__.py") if "__pycache__" not in p.parts)
    out = {f"{p.relative_to(SRC.parent).as_posix()}/__init__.py" for p in pkgs}
    out |= {f"sonotype/recipes/{p.name}" for p in (SRC / "recipes").glob("*.yaml")}
    out |= {f"sonotype/serve/static/{p.name}" for p in (SRC / "serve" / "static").iterdir() if p.is_file()}
    out.add("sonotype/py.typed")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for pattern in declared.get("sonotype", []):
        out |= {f"sonotype/{p.relative_to(SRC).as_posix()}" for p in SRC.glob(pattern)
                if p.is_file() and "__pycache__" not in p.parts}
    return sorted(out)


def wheel_problems(wheel: Path) -> list[str]:
    """What is missing or wrong in ``wheel``; empty when it is complete."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = {n.rsplit("/", 1)[-1]: z.read(n).decode() for n in names
                if n.split("/")[0].endswith(".dist-info") and n.rsplit("/", 1)[-1] in ("METADATA", "entry_points.txt")}
    problems = [f"missing {f}" for f in expected_files() if f not in names]
    if "sonotype = sonotype.cli:main" not in info.get("entry_points.txt", ""):
        problems.append("no console script 'sonotype = sonotype.cli:main' in entry_points.txt")
    if "Description-Content-Type: text/markdown" not in info.get("METADATA", ""):
        problems.append("the long description (README.md) is not declared as Markdown")
    if stray := sorted(n for n in names if n.startswith(("tests/", "docs/", "scripts/")) or "__pycache__" in n):
        problems.append(f"files that do not belong in the wheel: {stray[:5]}")
    return problems


def test_expected_files_cover_the_package_data() -> None:
    files = expected_files()
    assert "sonotype/__init__.py" in files and "sonotype/serve/__init__.py" in files
    assert "sonotype/recipes/demo.yaml" in files and "sonotype/serve/static/index.html" in files
    assert sum(f.endswith("__init__.py") for f in files) >= 17  # the layered sub-packages


def test_the_checker_sees_a_broken_wheel(tmp_path: Path) -> None:
    whl = tmp_path / "sonotype-0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("sonotype/__init__.py", "")
        z.writestr("sonotype-0.dist-info/METADATA", "Name: sonotype\n")
    problems = wheel_problems(whl)
    assert "missing sonotype/py.typed" in problems
    assert "missing sonotype/recipes/demo.yaml" in problems
    assert any("console script" in p for p in problems)


@pytest.mark.slow
def test_wheel_has_the_package_data(tmp_path: Path) -> None:
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[dev]')")
    work = tmp_path / "src-copy"  # built from a copy: the checkout gets no build/ or egg-info
    work.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, work / name)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist")]
    if importlib.util.find_spec("setuptools") is not None:
        cmd += ["--no-isolation", "--skip-dependency-check"]  # the venv's setuptools: no download
    proc = subprocess.run([*cmd, str(work)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("sonotype-*.whl")
    assert wheel_problems(wheel) == []


if __name__ == "__main__":
    bad = {w: p for w in sys.argv[1:] if (p := wheel_problems(Path(w)))}
    for w, p in bad.items():
        print(f"{w}:\n  " + "\n  ".join(p), file=sys.stderr)
    if not sys.argv[1:]:
        print("usage: python tests/test_wheel.py WHEEL...", file=sys.stderr)
    sys.exit(1 if bad or not sys.argv[1:] else 0)
