"""The floors of the package hold: no import circles, no private names across modules, lazy imports with a reason.

The import-linter contract in pyproject.toml (``lint-imports``, run by ``make test``) keeps each
sub-package importing only the layers below it; these tests read the import graph drawn from
the code (``scripts/import_graph.py``, function-level imports included) for what a layer
contract cannot see.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sonotype"


def _graph() -> dict:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.scan(SRC)


def test_no_import_circles_counting_function_level_imports() -> None:
    assert _graph()["circle_members"] == []


def test_no_private_name_is_imported_across_modules() -> None:
    assert _graph()["private_examples"] == []


def test_only_the_package_root_has_a_lazy_attribute_table() -> None:
    assert _graph()["module_getattr"] == ["sonotype"]


def _function_imports_without_reason() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        guarded = {id(b) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body}
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in guarded:
                    span = lines[node.lineno - 1 : node.end_lineno]
                    if not any("#" in line for line in span):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return sorted(set(bad))


def test_every_function_level_import_says_why_it_is_lazy() -> None:
    # optional (an extra) or heavy (torch, scikit-learn...): anything else belongs at the top
    assert _function_imports_without_reason() == []


def test_import_sonotype_loads_neither_torch_nor_sklearn() -> None:
    code = "import sys, sonotype; print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_run_config_loads_without_torch() -> None:
    code = "import sys; from sonotype.pipeline.config import load_config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists(),
                    reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_linter_layers_contract_is_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


def test_the_cli_starts_without_torch() -> None:
    # `sonotype --help` and typos answer at once: every command imports its library when it runs
    code = "import sys, sonotype.cli; print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
