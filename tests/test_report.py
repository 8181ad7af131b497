"""Reports: every plot is a real PNG, report.html gathers metrics and plots and escapes data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sonotype.errors import ParameterError
from sonotype.evaluate import aggregate_folds, metrics
from sonotype.report import plot_confusion, plot_prediction, write_plots, write_report

PNG = b"\x89PNG\r\n\x1a\n"
LABELS = ["blues", "<b>rock</b>", "jazz"]


def _metrics() -> dict:
    t = [0, 0, 1, 1, 2, 2, 2, 0]
    p = [0, 1, 1, 1, 2, 0, 2, 0]
    pooled = metrics(t, p, LABELS)
    folds = [metrics(t[:4], p[:4], LABELS), metrics(t[4:], p[4:], LABELS)]
    m = aggregate_folds(folds, pooled, y_true=t, y_pred=p, n_boot=100)
    m.update(protocol="2-fold by track <script>alert(1)</script>", corpus="gtzan", n_train_clips=8,
             n_test_clips=8, train_seconds=1.5)
    return m


def test_plots_and_report(tmp_path: Path):
    m = _metrics()
    history = [
        {"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + e / 20, "val_loss": 1.2 / e, "val_accuracy": 0.4 + e / 20,
         "val_balanced_accuracy": 0.4 + e / 25, "lr": 1e-3}
        for e in range(1, 6)
    ]
    examples = [
        {"name": "a/blues.00001.wav", "true": "blues", "probabilities": [0.7, 0.2, 0.1]},
        {"name": "jazz.00002.wav", "true": "jazz", "probabilities": {"blues": 0.5, "<b>rock</b>": 0.1, "jazz": 0.4}},
    ]
    plots = write_plots(tmp_path, metrics=m, history=history, examples=examples)
    assert [p.name for p in plots] == ["training_curves.png", "confusion.png", "per_class.png",
                                       "clip_predictions.png"]
    for p in plots:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, p
    out = write_report(tmp_path, config={"corpus": "gtzan", "model": {"name": "mlp", "sizes": (256, 128)}},
                       metrics=m, plots=plots, title="GTZAN & friends")
    assert out == tmp_path / "report.html"
    page = out.read_text()
    # relative links to every plot, and each one resolves to a real file
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert srcs == [f"plots/{p.name}" for p in plots]
    assert all((tmp_path / s).is_file() for s in srcs)
    assert "http://" not in page and "https://" not in page  # nothing from the network
    # headline figures, fold mean +- std, bootstrap interval, per-class rows, config as YAML
    assert f"{m['accuracy']:.3f}" in page
    assert f"{m['mean']['balanced_accuracy']:.3f} &plusmn; {m['std']['balanced_accuracy']:.3f}" in page
    assert f"[{m['bootstrap_ci']['low']:.3f}, {m['bootstrap_ci']['high']:.3f}]" in page
    assert "<td>jazz</td>" in page and "name: mlp" in page and "- 256" in page
    # data is escaped
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;rock&lt;/b&gt;" in page and "GTZAN &amp; friends" in page


def test_plot_confusion_checks_shape(tmp_path: Path):
    with pytest.raises(ParameterError, match="3x3"):
        plot_confusion([[1, 2], [3, 4]], LABELS, tmp_path / "c.png")
    p = plot_confusion(np.eye(3, dtype=int).tolist(), LABELS, tmp_path / "c.png")
    assert p.read_bytes().startswith(PNG)


def test_plot_prediction_timeline(tmp_path: Path):
    pred = {
        "path": "song.wav", "label": "jazz", "duration": 7.0,
        "probabilities": {"blues": 0.2, "rock": 0.1, "jazz": 0.7},
        "segments": [
            {"start": float(s), "end": float(min(s + 3, 7)), "label": "jazz",
             "probabilities": {"blues": 0.2, "rock": 0.1, "jazz": 0.7}}
            for s in range(0, 6, 2)
        ],
    }
    p = plot_prediction(pred, tmp_path / "pred.png")
    assert p.read_bytes().startswith(PNG) and p.stat().st_size > 3000


def test_report_pipeline_shapes(tmp_path: Path):
    """The run pipeline's bootstrap layout, cross-corpus results and subset study are shown."""
    m = metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    m["bootstrap_ci"] = {"level": 0.95, "accuracy": [0.3125, 0.9876]}
    m["cross"] = [{"corpus": "emodb", "labels_kept": ["angry", "sad"], "labels_dropped_model": ["calm"],
                   "labels_dropped_corpus": ["boredom"], "n_test_clips": 12, "accuracy": 0.41666,
                   "balanced_accuracy": 0.4, "macro_f1": 0.39}]
    m["study"] = [{"rank": 1, "subset": "mfcc", "n_features": 20, "accuracy": 0.8, "balanced_accuracy": 0.77,
                   "macro_f1": 0.76}]
    page = write_report(tmp_path, config={}, metrics=m, plots=[], title="t").read_text()
    assert "[0.312, 0.988]" in page
    assert "<td>emodb</td><td>angry, sad</td><td>calm, boredom</td><td>12</td><td>0.417</td>" in page
    assert "<td>1</td><td>mfcc</td><td>20</td>" in page
    assert "<img" not in page
