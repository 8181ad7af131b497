"""Results tables from metrics.json files of several runs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sonotype.errors import ParameterError, SonotypeError
from sonotype.reporting.results import collect_results, results_table


def _write(run: Path, **kw) -> None:
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(kw))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    _write(tmp_path / "runs" / "ravdess-mlp", corpus="ravdess", recipe="ravdess-mlp", protocol_name="kfold:4",
           protocol="4-fold by actor", accuracy=0.6512, balanced_accuracy=0.6401, macro_f1=0.6333,
           mean={"accuracy": 0.65, "balanced_accuracy": 0.64, "macro_f1": 0.63},
           std={"accuracy": 0.041, "balanced_accuracy": 0.05, "macro_f1": 0.052},
           n_test_clips=960, train_seconds=412.0,
           baseline={"balanced_accuracy": 0.4312, "accuracy": 0.44, "macro_f1": 0.42,
                     "comparison": {"difference": 0.21, "interval": [0.17, 0.25], "verdict": "better"}})
    _write(tmp_path / "runs" / "nested" / "tess-seed", corpus="tess", recipe="tess-seed", protocol="random 80/20",
           accuracy=0.99, balanced_accuracy=0.991, macro_f1=0.99, n_test_clips=56, train_seconds=12.34)
    return tmp_path / "runs"


def test_collect_and_markdown(runs: Path):
    rows = collect_results([runs, runs / "nested" / "tess-seed" / "metrics.json"])
    assert [r["corpus"] for r in rows] == ["ravdess", "tess"]  # found recursively, de-duplicated, sorted
    assert rows[0]["run_dir"].endswith("ravdess-mlp")
    md = results_table(rows)
    lines = md.strip().splitlines()
    assert lines[0] == ("| corpus | recipe | protocol | accuracy | balanced accuracy | macro-F1 | baseline "
                        "| test clips | training time |")
    assert lines[2] == ("| ravdess | ravdess-mlp | kfold:4 | 0.651 (0.650 ± 0.041) | 0.640 (0.640 ± 0.050) "
                        "| 0.633 (0.630 ± 0.052) | 0.431 (beaten) | 960 | 6.9 min |")
    # A run without a baseline (older metrics.json, or evaluate.baseline false) leaves the cell empty.
    assert lines[3] == "| tess | tess-seed | random 80/20 | 0.990 | 0.991 | 0.990 |  | 56 | 12.3 s |"


def test_csv(runs: Path):
    rows = list(csv.DictReader(io.StringIO(results_table(collect_results([runs]), fmt="csv"))))
    assert rows[0]["balanced_accuracy"] == "0.640" and rows[0]["balanced_accuracy_std"] == "0.050"
    assert rows[1]["accuracy_mean"] == "" and rows[1]["n_test_clips"] == "56"
    assert rows[1]["train_seconds"] == "12.3"
    assert rows[0]["baseline_balanced_accuracy"] == "0.431" and rows[0]["baseline_verdict"] == "better"
    assert rows[1]["baseline_balanced_accuracy"] == "" and rows[1]["baseline_verdict"] == ""


@pytest.mark.parametrize(("verdict", "cell"), [("worse", "0.500 (model worse)"),
                                               ("not distinguishable", "0.500 (not beaten)"), (None, "0.500")])
def test_baseline_cell_says_how_the_model_compares(tmp_path: Path, verdict, cell):
    cmp = None if verdict is None else {"verdict": verdict}
    _write(tmp_path / "r", corpus="x", recipe="x", balanced_accuracy=0.4,
           baseline={"balanced_accuracy": 0.5, "comparison": cmp})
    assert f"| {cell} |" in results_table(collect_results([tmp_path]))


def test_errors(tmp_path: Path):
    with pytest.raises(ParameterError, match="does not exist"):
        collect_results([tmp_path / "nope"])
    bad = tmp_path / "r" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(SonotypeError, match=r"metrics\.json"):
        collect_results([tmp_path])
    with pytest.raises(ParameterError, match="fmt"):
        results_table([], fmt="html")


def test_backbone_column(runs: Path):
    _write(runs / "ravdess-whisper", corpus="ravdess", recipe="ravdess-whisper", protocol_name="kfold:4",
           protocol="4-fold by actor", representation="backbone", accuracy=0.74, balanced_accuracy=0.73, macro_f1=0.72,
           n_test_clips=960, train_seconds=30.0,
           backbone={"model": "/models/whisper-base", "digest": "d135fcc7455a2e76", "layers": "all", "pooling": "meanstd"})
    rows = collect_results([runs])
    lines = results_table(rows).strip().splitlines()
    assert lines[0].startswith("| corpus | recipe | protocol | backbone | accuracy |")
    assert "| ravdess | ravdess-whisper | kfold:4 | whisper-base@d135fcc7 all/meanstd | 0.740 |" in lines[3]
    assert "| ravdess | ravdess-mlp | kfold:4 |  | 0.651" in lines[2]  # frame-feature runs: empty cell
    by_recipe = {r["recipe"]: r for r in csv.DictReader(io.StringIO(results_table(rows, fmt="csv")))}
    assert by_recipe["ravdess-whisper"]["backbone"] == "whisper-base@d135fcc7 all/meanstd"
    assert by_recipe["tess-seed"]["backbone"] == ""


def test_a_run_with_the_per_speaker_step_shows_its_figure_without_it(tmp_path: Path):
    step = {"by": "speaker", "min_clips": 2, "text": "items standardised per speaker",
            "without": {"balanced_accuracy": 0.5163, "accuracy": 0.52, "macro_f1": 0.5}}
    _write(tmp_path / "a", corpus="ravdess", recipe="ravdess-whisper", protocol_name="kfold:4", accuracy=0.65,
           balanced_accuracy=0.6414, macro_f1=0.63, n_test_clips=960, normalize=step)
    _write(tmp_path / "b", corpus="tess", recipe="tess-seed", protocol_name="random", accuracy=0.99,
           balanced_accuracy=0.991, macro_f1=0.99, n_test_clips=56)
    lines = results_table(collect_results([tmp_path])).strip().splitlines()
    assert lines[0] == ("| corpus | recipe | protocol | accuracy | balanced accuracy | macro-F1 "
                        "| balanced accuracy without the step | baseline | test clips | training time |")
    assert lines[2] == ("| ravdess | ravdess-whisper | kfold:4 | 0.650 | 0.641 | 0.630 | 0.516 (no per-speaker step) "
                        "|  | 960 |  |")
    assert lines[3] == "| tess | tess-seed | random | 0.990 | 0.991 | 0.990 |  |  | 56 |  |"
    rows = list(csv.DictReader(io.StringIO(results_table(collect_results([tmp_path]), fmt="csv"))))
    assert rows[0]["normalize_by"] == "speaker" and rows[0]["without_normalize_balanced_accuracy"] == "0.516"
    assert rows[0]["without_normalize_accuracy"] == "0.520" and rows[0]["without_normalize_macro_f1"] == "0.500"
    assert rows[1]["normalize_by"] == "" and rows[1]["without_normalize_balanced_accuracy"] == ""
    # No run with the step: no column.
    assert "without the step" not in results_table(collect_results([tmp_path / "b"]))
