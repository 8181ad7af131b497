"""`sonotype corpus list | show | download` through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import data_dir, write_wav
from sonotype.cli import app
from sonotype.errors import CorpusError, DownloadError

runner = CliRunner()


@pytest.fixture
def tree(tmp_path):
    for spk in ("anna", "ben"):
        for take in (1, 2):
            write_wav(tmp_path / "bird" / f"{spk}_{take}.wav", np.zeros(800, dtype=np.float32), 8000)
    write_wav(tmp_path / "frog" / "anna_1.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "frog" / "notes.txt").write_text("x")
    return tmp_path


def test_list():
    r = runner.invoke(app, ["corpus", "list"])
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line.split()[1] for line in r.output.splitlines() if line.strip()}
    assert lines["ravdess"] == "download" and lines["gtzan"] == "manual" and lines["folder"] == "-"
    assert set(lines) == {
        "cremad",
        "demo",
        "dusha",
        "emodb",
        "esc50",
        "folder",
        "fsdd",
        "gtzan",
        "ravdess",
        "savee",
        "tess",
    }


def test_show_json(tree):
    r = runner.invoke(app, ["corpus", "show", "folder", str(tree), "--json", "-o", r"group_regex=^(\w+)_\d$"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["corpus"] == "folder" and d["n_clips"] == 5
    assert d["classes"] == {"bird": 4, "frog": 1} and d["groups"] == {"anna": 3, "ben": 2}
    assert d["sample_rates"] == {"8000": 4, "16000": 1} and d["total_duration"] == pytest.approx(0.5)
    assert d["skipped"] == [
        {"path": str(tree / "frog" / "notes.txt"), "reason": "not an audio file (extension '.txt')"}
    ]


def test_show_tables(tree):
    r = runner.invoke(app, ["corpus", "show", "folder", str(tree)])
    assert r.exit_code == 0, r.output
    assert "5 clips, 2 classes, 5 groups" in r.output
    assert "8000 Hz x 4, 16000 Hz x 1" in r.output
    assert "skipped: 1" in r.output and "notes.txt: not an audio file" in r.output


@pytest.mark.realdata
def test_show_real_gtzan_with_split():
    root = data_dir("gtzan")
    split = data_dir("gtzan", "reference", "fault_filtered_split.csv")
    r = runner.invoke(app, ["corpus", "show", "gtzan", str(root), "--json", "--option", f"split_csv={split}"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["n_clips"] == 30 and d["sample_rates"] == {"22050": 30} and len(d["skipped"]) == 1


def test_errors_reach_the_library_error(tmp_path):
    r = runner.invoke(app, ["corpus", "show", "tess", str(tmp_path / "nope")])
    assert r.exit_code != 0 and isinstance(r.exception, CorpusError) and "not found" in str(r.exception)
    r = runner.invoke(app, ["corpus", "show", "folder", str(tmp_path), "-o", "novalue"])
    assert r.exit_code != 0 and "KEY=VALUE" in str(r.exception)
    r = runner.invoke(app, ["corpus", "download", "gtzan", str(tmp_path)])
    assert isinstance(r.exception, DownloadError) and "genres/blues/blues.00000.au" in str(r.exception)


def test_error_is_one_red_line(tmp_path):
    """The console script turns library errors into one line and exit code 2."""
    import subprocess
    import sys

    code = "from sonotype.cli import main; import sys; sys.argv=['sonotype','corpus','show','tess',sys.argv[1]]; main()"
    p = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: corpus root not found") and "Traceback" not in p.stderr
