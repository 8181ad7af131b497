"""The CLI end to end on a generated corpus: train -> predict -> evaluate -> results -> run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sonotype.cli import app
from sonotype.corpora.demo import generate_demo

runner = CliRunner()
FAST = ["--set", "train.max_epochs=15", "--set", "train.num_threads=1", "--set", "evaluate.bootstrap=100",
        "--set", "evaluate.baseline=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    root = generate_demo(base / "corpus", seed=0, n_speakers=3, takes=4, seconds=1.0)
    run = base / "run"
    res = runner.invoke(app, [
        "train", "--corpus", "demo", "--root", str(root), "--out", str(run), "--features", "mfcc,centroid,rms",
        "--model", "mlp-small", "--protocol", "holdout:0.34", "--json", "--quiet",
        "--set", f"cache_dir={base / 'cache'}", "--set", "representation.stats=[mean, std]", *FAST,
    ])
    assert res.exit_code == 0, res.output
    return base, root, run, json.loads(res.stdout)


def test_train_prints_metrics_json_and_writes_the_run(trained):
    _, _, run, metrics = trained
    assert metrics["labels"] == ["chord", "noise_burst", "pulse_train", "sweep", "tone"]
    assert "holdout" in metrics["protocol"]
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert (run / "model" / "weights.safetensors").stat().st_size > 0


def test_predict_json_csv_and_timeline(trained, tmp_path):
    _, root, run, _ = trained
    files = sorted(root.rglob("*.wav"))[:3]
    out_csv = tmp_path / "pred.csv"
    res = runner.invoke(app, ["predict", str(run / "model"), *map(str, files), "--json", "--csv", str(out_csv),
                              "--window", "0.5", "--hop", "0.25"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert len(payload["results"]) == 3 and not payload["errors"]
    first = payload["results"][0]
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-5
    assert [s["start"] for s in first["segments"]][:3] == pytest.approx([0.0, 0.25, 0.5], abs=1e-4)
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert all(r["label"] in first["probabilities"] for r in rows)


def test_predict_reports_bad_files_and_keeps_going(trained, tmp_path):
    _, root, run, _ = trained
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    good = sorted(root.rglob("*.wav"))[0]
    res = runner.invoke(app, ["predict", str(run / "model"), str(good), str(bad), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert len(payload["results"]) == 1
    assert payload["errors"][0]["path"] == str(bad) and "audio" in payload["errors"][0]["error"]


def test_evaluate_cross_corpus_and_results_table(trained, tmp_path):
    _, _, run, _ = trained
    other = generate_demo(tmp_path / "other", seed=5, n_speakers=2, takes=2, seconds=1.0)
    out = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", str(run / "model"), "--corpus", "demo", "--root", str(other),
                              "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["n_test_clips"] == 20 and sorted(m["labels_kept"]) == m["labels_kept"]
    assert (out / "report.html").is_file()
    res = runner.invoke(app, ["results", str(run), "--csv", str(tmp_path / "t.csv")])
    assert res.exit_code == 0, res.output
    assert "demo" in res.stdout and "holdout" in res.stdout
    assert (tmp_path / "t.csv").read_text().count("\n") == 2


def test_run_recipe_with_overrides(trained, tmp_path):
    base, root, _, _ = trained
    res = runner.invoke(app, ["run", "demo", "--root", str(root), "--out", str(tmp_path / "r"), "--quiet", "--json",
                              "--set", "protocol=holdout:0.34", "--set", f"cache_dir={base / 'cache'}", *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["recipe"] == "demo"
    res = runner.invoke(app, ["recipes"])
    assert res.exit_code == 0 and "ravdess" in res.stdout


def test_errors_are_one_red_line_with_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sonotype.cli", "train", "--corpus", "ravdess", "--root", str(tmp_path / "missing"),
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "corpus root" in proc.stderr and "Traceback" not in proc.stderr


def test_train_ensemble_flag_saves_an_averaging_model(trained, tmp_path):
    _, root, _, _ = trained
    res = runner.invoke(app, [
        "train", "--corpus", "demo", "--root", str(root), "--out", str(tmp_path / "ens"), "--features", "mfcc,rms",
        "--model", "mlp-small", "--ensemble", "2", "--jobs", "2", "--protocol", "holdout:0.34", "--json", "--quiet",
        "--set", "train.max_epochs=3", "--set", "train.num_threads=1", "--set", "evaluate.bootstrap=0",
    ])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"] == "ensemble of 2 x mlp-small"
    arch = json.loads((tmp_path / "ens" / "model" / "model.json").read_text())["architecture"]
    assert arch["name"] == "ensemble" and [m["name"] for m in arch["params"]["members"]] == ["mlp-small"] * 2
