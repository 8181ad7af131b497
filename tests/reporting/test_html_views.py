"""Notebook views: ``_repr_html_`` of Manifest, Prediction and RunResult, and ``load_run``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import sonotype
from sonotype.corpora.base import Clip, Manifest, Skipped
from sonotype.errors import ParameterError
from sonotype.inference.events import Event
from sonotype.inference.predict import Prediction, SegmentPrediction
from sonotype.reporting.runs import RunResult, load_run


def _cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def test_manifest_counts_per_class_and_group() -> None:
    clips = [Clip(f"{g}_{i}.wav", lab, g) for lab, g, n in (("cat", "ann", 3), ("dog", "ann", 1), ("dog", "bob", 2))
             for i in range(n)]
    html = Manifest("toy", "/x", clips, [Skipped("a.txt", "not audio")])._repr_html_()
    assert "toy: 6 clips, 2 classes, 2 groups, 1 files skipped" in html
    cells = _cells(html)
    # per class: name, clips, bar, groups
    i = cells.index("cat")
    assert cells[i + 1] == "3" and "width:100.0%" in cells[i + 2] and cells[i + 3] == "1"
    j = cells.index("dog")
    assert cells[j + 1] == "3" and cells[j + 3] == "2"
    # class x group: cat has no bob clip (empty cell), dog has 1 + 2
    k = [n for n, c in enumerate(cells) if c == "dog"][1]
    assert cells[k + 1 : k + 3] == ["1", "2"]
    assert cells[cells.index("cat", j + 1) + 1 : cells.index("cat", j + 1) + 3] == ["3", ""]


def test_manifest_many_groups_and_escaping() -> None:
    clips = [Clip(f"{i}.wav", "<b>x</b>", f"g{i}") for i in range(30)] + [Clip("y.wav", "y", "g0")]
    html = Manifest("m", "/", clips)._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "clips per group: min 1, median 1, max 2 (30 groups" in html
    assert "0 clips" in Manifest("empty", "/", [])._repr_html_()


def test_prediction_bars_in_probability_order_and_timeline() -> None:
    segs = [SegmentPrediction(0.0, 1.0, "dog", {"cat": 0.1, "dog": 0.9}),
            SegmentPrediction(1.0, 2.0, "cat", {"cat": 0.7, "dog": 0.3})]
    p = Prediction("a.wav", "dog", {"cat": 0.4, "dog": 0.6}, 2.0, segs,
                   [Event(0.0, 1.0, "dog", 0.9), Event(1.0, 2.0, "cat", 0.7)])
    html = p._repr_html_()
    cells = _cells(html)
    assert cells[:2] == ["dog", "0.600"] and cells[3:5] == ["cat", "0.400"]
    assert "width:60.0%" in cells[2] and "width:40.0%" in cells[5]
    spans = re.findall(r"title='(\w+) ([\d.]+)-([\d.]+) s' style='position:absolute;left:([\d.]+)%;width:([\d.]+)%", html)
    assert spans == [("dog", "0.00", "1.00", "0.00", "50.00"), ("cat", "1.00", "2.00", "50.00", "50.00")]
    assert "2 segments, 2 events" in html


def test_run_result_from_cross_validate() -> None:
    r = RunResult.from_cv({"test_score": np.array([0.6, 0.8, 1.0]), "fit_time": np.array([1.0, 2.0, 3.0]),
                           "score_time": np.zeros(3)})
    assert r.balanced_accuracy == pytest.approx(0.8)
    assert r.metrics["std"]["balanced_accuracy"] == pytest.approx(0.2)
    assert [f["fit_seconds"] for f in r.folds] == [1.0, 2.0, 3.0]
    html = r._repr_html_()
    assert "0.800 &plusmn; 0.200" in html
    assert "<td>1.000</td>" in html and "fit_seconds" in html
    with pytest.raises(ParameterError, match="test_score"):
        RunResult.from_cv({"fit_time": [1.0]})


def test_load_run_reads_a_run_folder(tmp_path: Path) -> None:
    metrics = {"balanced_accuracy": 0.75, "accuracy": 0.8, "macro_f1": 0.7, "corpus": "demo",
               "per_class": {"cat": {"precision": 0.9, "recall": 0.6, "f1": 0.72, "support": 10}},
               "folds": [{"fold": 0, "n": 10, "accuracy": 0.8, "balanced_accuracy": 0.75, "macro_f1": 0.7}],
               "mean": {"balanced_accuracy": 0.75}, "std": {"balanced_accuracy": 0.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    r = sonotype.load_run(tmp_path)
    assert (r.balanced_accuracy, r.accuracy, r.macro_f1, r["corpus"]) == (0.75, 0.8, 0.7, "demo")
    assert r.path == tmp_path and repr(r).startswith("RunResult(1 folds, balanced accuracy 0.750")
    html = r._repr_html_()
    assert "Per class" in html and "<td>0.600</td>" in html and "Folds" in html
    assert load_run(tmp_path / "metrics.json").to_dict() == metrics


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="not a sonotype run folder"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{oops")
    with pytest.raises(ParameterError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ParameterError, match="JSON object"):
        load_run(tmp_path)
