"""``docs/quickstart.ipynb`` runs from top to bottom in a fresh kernel (nbclient), so it never rots.

The kernel is this interpreter (a kernel spec written for the test), so the notebook sees the
same sonotype and packages as the tests. It runs in a temporary folder: everything it writes
(corpus, cache, model) stays there. The figures it shows are checked, not only that no cell
raised: the corpus view, cross-validated scores above chance, a reloaded model's prediction.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

import sonotype

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


def _outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        for mime in ("text/html", "text/plain"):
            if mime in out.get("data", {}):
                parts.append(out["data"][mime])
    return "\n".join(parts)


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "jupyter" / "kernels" / "sonotype-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sonotype test", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures as PNG outputs
    src = str(Path(sonotype.__file__).resolve().parents[1])  # the kernel imports this sonotype, not another
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(nb, kernel_name="sonotype-test", timeout=300,
                                     resources={"metadata": {"path": str(work)}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = [_outputs(c) for c in code]
    assert "<b>Manifest</b> demo: 60 clips, 5 classes, 4 groups" in text[1]
    m = re.search(r"RunResult\(4 folds, balanced accuracy ([0-9.]+)\)", text[2])
    assert m and float(m.group(1)) > 0.5, text[2][:500]  # chance is 0.2
    assert "balanced accuracy" in text[2] and "<table" in text[2]
    assert any("image/png" in o.get("data", {}) for o in code[3].outputs)  # the plot
    assert re.search(r"balanced accuracy on new speakers: 0\.\d\d|1\.00", text[4])
    assert "timeline" in text[4] and "probability" in text[4]
    assert (work / "quickstart_data" / "model" / "weights.safetensors").is_file()
