"""Batch prediction over folders: one fsynced CSV row per file, --jobs, --resume after a real kill."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sonotype
from conftest import write_wav
from sonotype.cli import app
from sonotype.errors import ParameterError
from sonotype.features.config import RepresentationConfig
from sonotype.inference.batch import BatchWriter, batch_header, predict_files, read_batch
from test_predict import LABELS, SR, _tone, _train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("b"), "tones", RepresentationConfig(kind="stats", stats=["mean", "std"]),
                  "mlp-small")


def _folder(root: Path, n: int, seconds: float = 1.0, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_wav(root / f"sub{i % 3}" / f"f{i:03d}.wav", _tone(LABELS[i % 3], seconds, rng), SR)
            for i in range(n)]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_equal_predict_and_jobs_agree(model_dir: Path, tmp_path: Path):
    files = _folder(tmp_path / "d", 9)
    clf = sonotype.load_model(model_dir)
    s = predict_files(clf, [tmp_path / "d"], out=tmp_path / "r.csv", progress=False)
    assert (s.total, s.written, s.skipped, s.errors) == (9, 9, 0, [])
    rows = {r["path"]: r for r in _rows(tmp_path / "r.csv")}
    assert sorted(rows) == sorted(map(str, files))
    for f in files:
        want = clf.predict(f)
        r = rows[str(f)]
        assert r["label"] == want.label and r["model"] == clf.model_id
        assert float(r["p_high"]) == pytest.approx(want.probabilities["high"], abs=1e-6)
        assert r["digest"] == sonotype.utils.io.file_digest(f)
    # two worker processes give the same rows (in completion order)
    s2 = predict_files(model_dir, [tmp_path / "d"], out=tmp_path / "r2.csv", jobs=2, progress=False)
    assert s2.written == 9
    rows2 = {r["path"]: r for r in _rows(tmp_path / "r2.csv")}
    assert rows2 == rows


def test_resume_skips_repairs_and_refuses(model_dir: Path, tmp_path: Path):
    files = _folder(tmp_path / "d", 6)
    out = tmp_path / "r.csv"
    clf = sonotype.load_model(model_dir)
    predict_files(clf, [tmp_path / "d"], out=out, progress=False)
    full = out.read_text()
    with pytest.raises(ParameterError, match="exists: add --resume"):
        predict_files(clf, [tmp_path / "d"], out=out, progress=False)
    # a kill in the middle of a row: the last line is cut short
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][:17])
    rows, cut = read_batch(out, batch_header(clf.labels))
    assert cut and len(rows) == 3
    s = predict_files(clf, [tmp_path / "d"], out=out, resume=True, progress=False)
    assert (s.written, s.skipped) == (3, 3) and any("cut short" in n for n in s.repaired)
    got = _rows(out)
    assert sorted(r["path"] for r in got) == sorted(map(str, files))
    assert out.read_text().endswith("\n")
    # nothing left to do
    s = predict_files(clf, [tmp_path / "d"], out=out, resume=True, progress=False)
    assert (s.written, s.skipped, s.repaired) == (0, 6, [])
    # a file whose content changed is predicted again, its old row dropped
    write_wav(files[0], _tone("high", 1.0, np.random.default_rng(9)), SR)
    s = predict_files(clf, [tmp_path / "d"], out=out, resume=True, progress=False)
    assert (s.written, s.skipped) == (1, 5) and "changed" in s.repaired[0]
    got = _rows(out)
    assert len(got) == 6 and len({r["path"] for r in got}) == 6
    assert next(r for r in got if r["path"] == str(files[0]))["label"] == "high"
    # another label set wrote it: refused, not mixed
    other = tmp_path / "other.csv"
    other.write_text("path,digest,model,duration,label,p_a,p_b,segments,events\n")
    with pytest.raises(ParameterError, match="another model"):
        predict_files(clf, [tmp_path / "d"], out=other, resume=True, progress=False)


def test_writer_rows_survive_without_close(tmp_path: Path):
    w = BatchWriter(tmp_path / "x.csv", ["path", "label"])
    w.open(resume=False)
    w.write(["a, with comma", "x"])
    # no close: each row is already on disk
    assert (tmp_path / "x.csv").read_text() == 'path,label\n"a, with comma",x\n'
    w.close()


# The child: `sonotype predict` whose row writer, once it has written HOLD_AT rows, says so in
# a marker file and then waits (in the main thread, inside the run) for the parent's signal,
# so the signal lands mid-run every time, after exactly HOLD_AT rows, however fast the machine.
HOLD_AT = 5
HELD_CHILD = """
import signal, sys, time
from pathlib import Path
from sonotype.inference import batch

# Ctrl-C as at a terminal, whatever the parent's shell did (a background job ignores SIGINT)
signal.signal(signal.SIGINT, signal.default_int_handler)

marker, argv = Path(sys.argv[1]), sys.argv[2:]
real_write = batch.BatchWriter.write
written = 0

def write(self, row):
    global written
    real_write(self, row)
    written += 1
    if written == int(marker.suffix[1:]):
        marker.write_text("held")
        while True:
            time.sleep(60)

batch.BatchWriter.write = write
sys.argv = ["sonotype", *argv]
from sonotype.cli import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_kill(model_dir: Path, tmp_path: Path, sig: int):
    """SIGKILL (a crash) or SIGINT (Ctrl-C) mid-run, then --resume: every file exactly once."""
    n_files = 12
    files = _folder(tmp_path / "d", n_files)
    out = tmp_path / "r.csv"
    marker = tmp_path / f"held.{HOLD_AT}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", HELD_CHILD, str(marker), "predict", str(model_dir), str(tmp_path / "d"), "--out",
           str(out), "--window", "0.5"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a generous bound on start-up, not a measurement
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the child never reached row {HOLD_AT}: {proc.stderr.read().decode()[-800:]}"
        assert proc.poll() is None
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: the CLI's clean exit
        assert proc.returncode == 130, err[-500:]
        assert re.search(rb"predict: \d+/12 files .* - stopped after [^\n]*; --resume continues", err), err[-500:]
        assert err.rstrip().endswith(b"interrupted") and b"done in" not in err, err[-500:]
    before, _ = read_batch(out, batch_header(LABELS))
    assert len(before) == HOLD_AT  # every row written before the signal is on disk, whole
    res = CliRunner().invoke(app, ["predict", str(model_dir), str(tmp_path / "d"), "--out", str(out), "--resume",
                                   "--window", "0.5"])
    assert res.exit_code == 0, res.output
    assert f"{n_files - HOLD_AT} file(s) written, {HOLD_AT} already there" in res.output
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(map(str, files))  # every file exactly once
    assert [r["path"] for r in rows[:HOLD_AT]] == [r[0] for r in before]  # nothing written was lost
    clf = sonotype.load_model(model_dir)
    for r in rows:
        want = clf.predict(r["path"], window=0.5)
        assert r["label"] == want.label and float(r["p_high"]) == pytest.approx(want.probabilities["high"], abs=1e-6)


def test_cli_batch_errors(model_dir: Path, tmp_path: Path):
    _folder(tmp_path / "d", 2)
    (tmp_path / "d" / "bad.wav").write_text("not audio at all\n" * 10)
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(model_dir), str(tmp_path / "d"), "--resume"])
    assert isinstance(res.exception, ParameterError) and "add --out" in str(res.exception)
    res = runner.invoke(app, ["predict", str(model_dir), str(tmp_path / "d"), "--out", str(tmp_path / "r.csv"),
                              "--json"])
    assert isinstance(res.exception, ParameterError) and "does not combine" in str(res.exception)
    res = runner.invoke(app, ["predict", str(model_dir), str(tmp_path / "d"), "--out", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    assert "2 file(s) written, 0 already there, 1 failed" in res.output and "bad.wav" in res.output
    assert "predict: 1/3 files (33%)" in res.output and "done in" in res.output  # progress lines (not a terminal)
    assert len(_rows(tmp_path / "r.csv")) == 2


def test_resume_from_another_directory(model_dir: Path, tmp_path: Path, monkeypatch):
    _folder(tmp_path / "d", 3)
    clf = sonotype.load_model(model_dir)
    monkeypatch.chdir(tmp_path)
    predict_files(clf, ["d"], out="r.csv", progress=False)
    monkeypatch.chdir(tmp_path / "d")
    s = predict_files(clf, ["."], out=tmp_path / "r.csv", resume=True, progress=False)
    assert (s.written, s.skipped) == (0, 3)
    assert all(Path(r["path"]).is_absolute() for r in _rows(tmp_path / "r.csv"))
