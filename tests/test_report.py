"""Reports: every plot is a real PNG, report.html gathers metrics and plots and escapes data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sonotype.errors import ParameterError
from sonotype.evaluation.metrics import aggregate_folds, metrics
from sonotype.reporting.report import plot_confusion, plot_prediction, write_plots, write_report

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


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


def _legends_off_the_axes(fig) -> list[str]:
    """Every legend's texts, after checking that no legend overlaps any axes."""
    renderer = _drawn(fig)
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    assert legends, "the figure has a legend"
    for lg in legends:
        for ax in fig.axes:
            assert not lg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), ax.get_title()
    return [t.get_text() for lg in legends for t in [*lg.get_texts(), lg.get_title()]]


def _epochs(n: int, shift: float = 0.0, val: bool = True) -> list[dict]:
    return [{"epoch": e, "loss": 1.0 / e + shift, "accuracy": 0.5 + e / 40, "lr": 1e-3,
             "val_loss": 1.2 / e + shift if val else None, "val_accuracy": 0.4 + e / 40 if val else None,
             "val_balanced_accuracy": 0.4 + e / 50 if val else None} for e in range(1, n + 1)]


def test_training_curves_name_each_fold_and_keep_the_legend_off_the_curves():
    from sonotype.reporting.report import _history_figure

    runs = [{"split": "test group OAF", "history": _epochs(8)}, {"split": "test group YAF", "history": _epochs(6, 0.1)},
            {"split": "fold 3/3", "member": 2, "history": _epochs(5, 0.2)}]
    fig = _history_figure(runs)
    texts = _legends_off_the_axes(fig)
    assert {"test group OAF", "test group YAF", "fold 3/3, member 2", "training", "validation"} <= set(texts)
    solid = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == len(dashed) == 3  # training and validation loss of each run
    # Without validation there is no dashed line and no "validation" entry.
    texts = _legends_off_the_axes(_history_figure([{"split": "a", "history": _epochs(4, val=False)},
                                                  {"split": "b", "history": _epochs(4, val=False)}]))
    assert "validation" not in texts and {"a", "b"} <= set(texts)
    # One run: a colour per series, its name as the legend title.
    texts = _legends_off_the_axes(_history_figure([{"split": "holdout", "history": _epochs(5)}]))
    assert "holdout" in texts and "validation balanced accuracy" in texts
    with pytest.raises(ParameterError, match="no epochs"):
        _history_figure([{"split": "a", "history": []}])


def test_per_class_legend_is_off_the_bars():
    from sonotype.reporting.report import _per_class_figure

    texts = _legends_off_the_axes(_per_class_figure(_metrics()["per_class"]))
    assert {"precision", "recall", "f1"} <= set(texts)


def test_prediction_timeline_has_a_probability_colour_bar():
    from sonotype.reporting.report import _prediction_figure

    segs = [{"start": float(s), "end": float(s + 2), "label": "jazz",
             "probabilities": {"blues": 0.1 * s, "jazz": 1 - 0.1 * s}} for s in range(4)]
    fig = _prediction_figure({"path": "x.wav", "label": "jazz", "duration": 5.0, "segments": segs,
                              "probabilities": {"blues": 0.15, "jazz": 0.85}})
    _drawn(fig)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "probability"
    assert bars[0].get_ylim() == (0.0, 1.0)


def test_cross_corpus_figure_and_saved_model_line(tmp_path: Path):
    m = metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    cross = metrics(["a", "b", "a", "a"], ["a", "a", "a", "b"], ["a", "b"])
    cross.update(corpus="demo", title="on new speakers", labels_kept=["a", "b"])
    m["cross"] = [cross, {**cross, "title": ""}]
    m["final_model"] = {"how": "all", "text": "final fit on every clip for 7 epochs: trained on 3 of 3 clips"}
    plots = write_plots(tmp_path, metrics=m)
    assert [p.name for p in plots] == ["confusion.png", "per_class.png", "confusion_on_new_speakers.png",
                                       "confusion_on_demo.png"]
    page = write_report(tmp_path, config={}, metrics=m, plots=plots, title="t").read_text()
    assert "<img src='plots/confusion_on_new_speakers.png'" in page and "confusion on new speakers" in page
    assert "<b>Saved model.</b> final fit on every clip for 7 epochs: trained on 3 of 3 clips" in page
