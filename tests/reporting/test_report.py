"""Reports: every plot draws its data (checked on the figure that wrote the PNG), report.html gathers
metrics and plots and escapes data."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from sonotype.errors import ParameterError
from sonotype.evaluation.metrics import aggregate_folds, metrics
from sonotype.reporting import prediction as prediction_mod
from sonotype.reporting import report as report_mod
from sonotype.reporting.prediction import plot_prediction
from sonotype.reporting.report import NEUTRAL, RIGHT, WRONG, plot_confusion, write_plots, write_report

PNG = b"\x89PNG\r\n\x1a\n"
LABELS = ["blues", "<b>rock</b>", "jazz"]
# _metrics' clips, by hand: true blues -> blues, rock, blues; true rock -> rock, rock; true jazz ->
# jazz, blues, jazz.
CONFUSION = [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
ROW_NORMALISED = [["0.67", "0.33", "0.00"], ["0.00", "1.00", "0.00"], ["0.33", "0.00", "0.67"]]
# precision, recall, F1 per class: blues 2/3, 2/3, 2/3; rock 2/3, 2/2, 0.8; jazz 2/2, 2/3, 0.8.
PER_CLASS = {"precision": [2 / 3, 2 / 3, 1.0], "recall": [2 / 3, 1.0, 2 / 3], "f1": [2 / 3, 0.8, 0.8]}


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> dict:
    """File name -> the figure written to it (report.save_figure, spied on where it is used)."""
    figs: dict = {}
    real = report_mod.save_figure

    def spy(fig, path):
        figs[Path(path).name] = fig
        return real(fig, path)

    monkeypatch.setattr(report_mod, "save_figure", spy)
    monkeypatch.setattr(prediction_mod, "save_figure", spy)
    return figs


def _check_png(path: Path, fig) -> None:
    """The file is ``fig`` at 100 dpi, cut to its drawn content, pixel for pixel."""
    from PIL import Image

    assert path.read_bytes().startswith(PNG)
    with Image.open(path) as im:
        img, dpi = np.asarray(im.convert("RGB")), im.info.get("dpi")
    assert dpi == pytest.approx((100, 100), abs=0.01)
    w, h = fig.get_size_inches() * 100
    # "tight": the drawn content plus 0.1 in (10 px) of padding on each side
    assert 0.8 * h <= img.shape[0] <= h + 21 and 0.8 * w <= img.shape[1] <= w + 21, (img.shape, h, w)
    buf = io.BytesIO()
    fig.set_layout_engine("none")  # the layout it was saved with
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    with Image.open(buf) as im:
        np.testing.assert_array_equal(img, np.asarray(im.convert("RGB")))


def _cell_texts(ax, k: int) -> list[list[str]]:
    grid = [[""] * k for _ in range(k)]
    for t in ax.texts:
        x, y = t.get_position()
        grid[int(round(y))][int(round(x))] = t.get_text()
    return grid


def _check_confusion(fig, counts: list[list[int]], normalised: list[list[str]], labels: list[str],
                     title: str = "") -> None:
    """Both panels: the numbers in every cell, the image values, true down / predicted across."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 2
    k = len(labels)
    cm = np.asarray(counts, float)
    for ax, name, want_texts, want_image in (
        (axes[0], "counts", [[str(v) for v in row] for row in counts], cm),
        (axes[1], "row-normalised", normalised, cm / np.maximum(cm.sum(1, keepdims=True), 1)),
    ):
        assert ax.get_title() == (f"{title}: {name}" if title else name)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
        assert [t.get_text() for t in ax.get_yticklabels()] == labels
        assert _cell_texts(ax, k) == want_texts
        (im,) = ax.get_images()
        np.testing.assert_allclose(im.get_array(), want_image)


def _metrics() -> dict:
    t = [0, 0, 1, 1, 2, 2, 2, 0]
    p = [0, 1, 1, 1, 2, 0, 2, 0]
    pooled = metrics(t, p, LABELS)
    folds = [metrics(t[:4], p[:4], LABELS), metrics(t[4:], p[4:], LABELS)]
    m = aggregate_folds(folds, pooled, y_true=t, y_pred=p, n_boot=100)
    m.update(protocol="2-fold by track <script>alert(1)</script>", corpus="gtzan", n_train_clips=8,
             n_test_clips=8, train_seconds=1.5)
    return m


def test_plots_and_report(tmp_path: Path, saved: dict):
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
        _check_png(p, saved[p.name])
    # Training curves: each series of the history, named, per epoch.
    loss_ax, acc_ax = saved["training_curves.png"].axes
    lines = {ln.get_label(): ln for ax in (loss_ax, acc_ax) for ln in ax.get_lines()}
    assert set(lines) == {"training loss", "validation loss", "training accuracy", "validation accuracy",
                          "validation balanced accuracy"}
    assert [ln.get_label() for ln in loss_ax.get_lines()] == ["training loss", "validation loss"]
    for name, key in (("training loss", "loss"), ("validation loss", "val_loss"), ("training accuracy", "accuracy"),
                      ("validation accuracy", "val_accuracy"), ("validation balanced accuracy", "val_balanced_accuracy")):
        assert list(lines[name].get_xdata()) == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(lines[name].get_ydata(), [h[key] for h in history])
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy") and acc_ax.get_ylim() == (0, 1.02)
    # Confusion: the counts and the row shares of the hand-computed matrix.
    _check_confusion(saved["confusion.png"], CONFUSION, ROW_NORMALISED, LABELS)
    # Per class: precision, recall and F1 bars at the hand-computed heights.
    (ax,) = saved["per_class.png"].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    bars = {c.get_label(): [r.get_height() for r in c] for c in ax.containers}
    assert bars.keys() == PER_CLASS.keys()
    for key, want in PER_CLASS.items():
        np.testing.assert_allclose(bars[key], want)
    # Clip predictions: the probabilities as bars, the predicted one green when right, red when wrong.
    a, b = saved["clip_predictions.png"].axes
    assert a.get_title() == "blues.00001.wav\ntrue blues, predicted blues" and b.get_title() == (
        "jazz.00002.wav\ntrue jazz, predicted blues")
    np.testing.assert_allclose([r.get_height() for r in a.patches], [0.7, 0.2, 0.1])
    np.testing.assert_allclose([r.get_height() for r in b.patches], [0.5, 0.1, 0.4])
    grey = to_rgba("#9e9e9e")
    assert [r.get_facecolor() for r in a.patches] == [to_rgba(RIGHT), grey, grey]
    assert [r.get_facecolor() for r in b.patches] == [to_rgba(WRONG), grey, grey]
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


def test_plot_confusion_checks_shape(tmp_path: Path, saved: dict):
    with pytest.raises(ParameterError, match="3x3"):
        plot_confusion([[1, 2], [3, 4]], LABELS, tmp_path / "c.png")
    # Not symmetric, so a transposed matrix (true across) shows; an empty row stays all zero.
    counts = [[3, 1, 0], [0, 0, 0], [2, 0, 5]]
    p = plot_confusion(counts, LABELS, tmp_path / "c.png", title="on demo")
    _check_png(p, saved["c.png"])
    _check_confusion(saved["c.png"], counts, [["0.75", "0.25", "0.00"], ["0.00", "0.00", "0.00"],
                                              ["0.29", "0.00", "0.71"]], LABELS, title="on demo")
    # Dark cells get white numbers: above half the panel's largest value.
    ax = saved["c.png"].axes[0]
    white = sorted((int(round(t.get_position()[1])), int(round(t.get_position()[0]))) for t in ax.texts
                   if to_rgba(t.get_color()) == to_rgba("white"))
    assert white == [(0, 0), (2, 2)]


def test_plot_prediction_timeline(tmp_path: Path, saved: dict):
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
    fig = saved["pred.png"]
    _check_png(p, fig)
    assert fig._suptitle.get_text() == "song.wav"
    wave, timeline, bars = (ax for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert wave.get_title() == "events (0) (no waveform)"  # song.wav is not on disk
    # One column per segment, from its start to the next one's (the last to its end), shading
    # the segment's probabilities of blues, rock, jazz from the top.
    imgs = timeline.get_images()
    assert [tuple(im.get_extent()) for im in imgs] == [(0, 2, 2.5, -0.5), (2, 4, 2.5, -0.5), (4, 7, 2.5, -0.5)]
    for im in imgs:
        np.testing.assert_allclose(np.asarray(im.get_array()).ravel(), [0.2, 0.1, 0.7])
    assert timeline.get_xlim() == (0, 7) and [t.get_text() for t in timeline.get_yticklabels()] == [
        "blues", "rock", "jazz"]
    assert bars.get_title() == "mean: jazz"
    np.testing.assert_allclose([r.get_width() for r in bars.patches], [0.2, 0.1, 0.7])
    grey = to_rgba("#9e9e9e")
    assert [r.get_facecolor() for r in bars.patches] == [grey, grey, to_rgba(NEUTRAL)]


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
    from sonotype.reporting.prediction import prediction_figure

    segs = [{"start": float(s), "end": float(s + 2), "label": "jazz",
             "probabilities": {"blues": 0.1 * s, "jazz": 1 - 0.1 * s}} for s in range(4)]
    fig = prediction_figure({"path": "x.wav", "label": "jazz", "duration": 5.0, "segments": segs,
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


def test_report_names_the_per_speaker_step_beside_the_figure(tmp_path: Path):
    from sonotype.reporting.report import normalize_sentence
    from sonotype.reporting.runs import RunResult

    m = metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    m["normalize"] = {"by": "speaker", "min_clips": 2, "text": "items standardised per speaker",
                      "without": {"balanced_accuracy": 0.25, "accuracy": 1 / 3, "macro_f1": 0.2}}
    words = (f"balanced accuracy {m['balanced_accuracy']:.3f} with per-speaker standardisation (uses the test "
             "speakers' own unlabelled clips); 0.250 without (same folds)")
    assert normalize_sentence(m) == words
    page = write_report(tmp_path, config={}, metrics=m, plots=[], title="t").read_text()
    assert html.escape("B" + words[1:], quote=True) in page
    assert "<th>pooled, without it (same folds)</th>" in page and "<td>0.250</td>" in page and "<td>0.333</td>" in page
    assert RunResult(m).without_normalize == m["normalize"]["without"]
    # Per corpus: the test corpus's own clips; a run without the step: no sentence, no column.
    assert "the test corpus's own unlabelled clips" in normalize_sentence({**m, "normalize": {"by": "corpus"}})
    assert normalize_sentence({**m, "normalize": {"by": "speaker"}}).endswith("unlabelled clips)")
    plain = {k: v for k, v in m.items() if k != "normalize"}
    assert normalize_sentence(plain) is None and RunResult(plain).without_normalize is None
    page = write_report(tmp_path, config={}, metrics=plain, plots=[], title="t").read_text()
    assert "without it" not in page and "standardisation" not in page
