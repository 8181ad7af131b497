"""End-to-end runs of the pipeline on generated and real corpora (short trainings)."""

from __future__ import annotations

import csv
import html
import json

import numpy as np
import pytest

from conftest import data_dir
from sonotype.corpora.demo import generate_demo
from sonotype.errors import SonotypeError
from sonotype.inference.predict import load_model
from sonotype.pipeline.config import CorpusConfig, load_config
from sonotype.pipeline.experiment import evaluate_on_corpus, run_experiment
from sonotype.recipes import recipe_path

FAST = ["train.max_epochs=25", "train.patience=6", "evaluate.bootstrap=200", "train.num_threads=1",
        "evaluate.baseline=false"]  # the baseline has its own tests (test_baseline.py)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo") / "corpus", seed=0)


def _cfg(root, cache, extra=()):
    return load_config(recipe_path("demo"), [f"corpus.root={root}", f"cache_dir={cache}", *FAST, *extra])


def test_demo_recipe_end_to_end_is_reproducible(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path / "cache", ["protocol=holdout:0.25"])
    m1 = run_experiment(cfg, tmp_path / "a", progress=False)
    m2 = run_experiment(cfg, tmp_path / "b", progress=False)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "confusion"):
        assert m1[key] == m2[key], key
    run = tmp_path / "a"
    for name in ("config.yaml", "metrics.json", "history.json", "predictions.csv", "report.html", "model/model.json"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("protocol", "n_train_clips", "n_test_clips", "labels", "accuracy", "balanced_accuracy", "macro_f1", "confusion"):
        assert key in saved
    assert saved["n_test_clips"] + saved["n_train_clips"] <= saved["n_clips"]
    env = saved["environment"]  # where the figures were computed: they can move on another CPU/BLAS
    assert env["torch_threads"] == 1 and env["versions"]["numpy"] == np.__version__ and env["cpu"]
    assert "ran on: " in (run / "report.html").read_text()
    # Five synthetic classes are learnable by speaker-independent evaluation: well above chance (0.2).
    assert saved["balanced_accuracy"] > 0.6
    # The saved config reproduces the run.
    again = load_config(run / "config.yaml")
    assert again.to_dict() == cfg.to_dict()
    with pytest.raises(SonotypeError, match="already exists"):
        run_experiment(cfg, run, progress=False)


def test_test_clips_never_share_a_group_with_training(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path / "cache", ["protocol=kfold:2", "evaluate.final_model=best_fold"])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert len(m["folds"]) == 2 and "mean" in m and "std" in m
    rows = list(csv.DictReader((tmp_path / "run" / "predictions.csv").open()))
    speakers = {}
    for r in rows:
        speakers.setdefault(r["split"], set()).add(r["path"].rsplit("/", 1)[-1].split("_")[0])
    a, b = speakers.values()
    assert not (a & b), "a speaker was tested in two folds: folds overlap"
    assert m["n_test_clips"] == m["n_clips"], "every clip is tested exactly once over the folds"


def test_cross_corpus_evaluation_reports_kept_labels(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path / "cache", ["protocol=holdout:0.25"])
    run_experiment(cfg, tmp_path / "run", progress=False)
    other = generate_demo(tmp_path / "other", seed=1)
    m = evaluate_on_corpus(tmp_path / "run" / "model", CorpusConfig(name="demo", root=str(other),
                                                                        ops=[{"drop": ["sweep"]}]))
    assert "sweep" not in m["labels_kept"] and "sweep" in m["labels_dropped_model"]
    # The figures are those of the saved model's own predictions on the kept clips of the other corpus.
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from sonotype.corpora.registry import load_corpus

    clips = [c for c in load_corpus("demo", str(other)).clips if c.label != "sweep"]
    clf = load_model(tmp_path / "run" / "model")
    true, pred = [c.label for c in clips], [clf.predict(c.path).label for c in clips]
    assert m["n_test_clips"] == len(clips) > 0
    assert m["accuracy"] == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, pred), abs=1e-12)


def test_saved_model_predicts_like_the_run(demo_root, tmp_path):
    cfg = _cfg(demo_root, tmp_path / "cache", ["protocol=holdout:0.25"])
    run_experiment(cfg, tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "predictions.csv").open()))
    clf = load_model(tmp_path / "run" / "model")
    for r in rows[:5]:
        pred = clf.predict(r["path"])
        expected = np.array([float(r[f"p_{lab}"]) for lab in clf.labels])
        got = np.array([pred.probabilities[lab] for lab in clf.labels])
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.realdata
def test_tess_random_split_reaches_seed_accuracy(tmp_path):
    """Seed A's TESS experiment (40 MFCC means, MLP, random 80/20) on the real subset."""
    root = data_dir("tess")
    cfg = load_config(None, [
        "name=tess-test", "corpus.name=tess", f"corpus.root={root}", f"cache_dir={tmp_path / 'cache'}",
        "features.features=[mfcc]", "features.n_mfcc=40", "representation.stats=[mean]",
        "model.name=mlp", "protocol=random", "train.max_epochs=80", "train.patience=15", "train.lr=0.003",
        "train.num_threads=1", "evaluate.bootstrap=0",
    ])
    with pytest.warns(UserWarning, match="ignoring their groups"):
        m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["n_test_clips"] == 56
    assert m["accuracy"] >= 0.9


def test_augmented_copies_are_the_same_with_parallel_jobs(tmp_path):
    from sonotype.features.extract import build_dataset
    from sonotype.training.augment import augmented_items as _augmented_items

    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=1, takes=2, seconds=1.0)
    cfg = load_config(recipe_path("demo"), [
        f"corpus.root={root}", "augment.copies=2", "augment.pitch_semitones=[-2, 2]", "augment.noise_snr_db=[10, 20]",
    ])
    from sonotype.corpora.registry import load_corpus

    ds = build_dataset(load_corpus("demo", root).clips, cfg.features, cfg.representation, progress=False)
    clips = np.arange(len(ds.clips))
    X1, ids1 = _augmented_items(ds, cfg, clips, {}, seed=0)
    cfg.jobs = 2
    cache = {}
    X2, ids2 = _augmented_items(ds, cfg, clips, cache, seed=0)
    assert X1.shape == (2 * len(ds.X), *ds.X.shape[1:])
    np.testing.assert_array_equal(ids1, ids2)
    np.testing.assert_array_equal(X1, X2)
    assert not np.allclose(X1[ids1 == 0][0], ds.X[0]), "a copy differs from its original"
    # Another seed (another ensemble member) gets other copies; both stay memoised.
    X3, _ = _augmented_items(ds, cfg, clips, cache, seed=1)
    assert not np.allclose(X3, X1)
    assert sorted(cache) == sorted((s, int(c)) for s in (0, 1) for c in clips)


# --- what trained the saved model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory):
    """TESS-like: two speakers only, so no validation speaker can be carved from one training side."""
    return generate_demo(tmp_path_factory.mktemp("two") / "corpus", seed=0, n_speakers=2, takes=3, seconds=1.0)


@pytest.fixture
def fit_calls(monkeypatch):
    """Every call of train.fit: (training rows, validation given?, max_epochs, best epoch)."""
    import sonotype.pipeline.fitting as fitting
    import sonotype.training.train as train

    calls = []
    real = train.fit

    def spy(model, X_train, y_train, X_val=None, y_val=None, *, config, **kw):
        res = real(model, X_train, y_train, X_val, y_val, config=config, **kw)
        calls.append((len(X_train), X_val is not None, config.max_epochs, res.best_epoch))
        return res

    monkeypatch.setattr(train, "fit", spy)
    monkeypatch.setattr(fitting, "fit", spy)
    return calls


def _two(root, cache, extra=()):
    return load_config(recipe_path("demo"), [
        f"corpus.root={root}", f"cache_dir={cache}", "train.max_epochs=6", "train.patience=null",
        "evaluate.bootstrap=0", "train.num_threads=1", "evaluate.examples=4", *extra,
    ])


def test_default_final_model_is_fitted_on_both_speakers(two_speakers, tmp_path, fit_calls):
    cfg = _two(two_speakers, tmp_path / "cache", ["protocol=logo", "evaluate.final_model=auto"])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    fm = json.loads((tmp_path / "run" / "metrics.json").read_text())["final_model"]
    assert fm == m["final_model"]
    assert fm["how"] == "all" and fm["requested"] == "auto"
    assert fm["train_groups"] == ["spk1", "spk2"] and fm["validation_groups"] == []
    assert fm["n_clips"] == m["n_clips"] == 30 and fm["n_validation_clips"] == 0
    # Two folds of one speaker each (15 clips, no validation speaker), then one fit on all 30 clips.
    assert [c[:3] for c in fit_calls] == [(15, False, 6), (15, False, 6), (30, False, 6)]
    assert fm["epochs"] == 6 and fm["fold_best_epochs"] == [6, 6]
    assert "trained on 30 of 30 clips (2 speakers: spk1, spk2), no validation part" in fm["text"]
    assert json.loads((tmp_path / "run" / "model" / "model.json").read_text())["extra"]["trained_on"] == fm["text"]
    assert "Saved model.</b> final fit on every clip" in (tmp_path / "run" / "report.html").read_text()


def test_best_fold_and_refit_say_what_they_trained_on(two_speakers, tmp_path, fit_calls):
    best = run_experiment(_two(two_speakers, tmp_path / "cache", ["protocol=logo", "evaluate.final_model=best_fold"]),
                          tmp_path / "best", progress=False)["final_model"]
    # No fold had validation data: the first fold's model, trained on the other speaker only.
    assert best["how"] == "best_fold" and best["split"] == "test group spk1"
    assert best["train_groups"] == ["spk2"] and best["n_clips"] == 15
    assert "first fold (no fold had a validation part" in best["text"]
    assert len(fit_calls) == 2  # no second fit
    # refit cannot carve a validation speaker out of two: it fits on everything, and says so.
    refit = run_experiment(_two(two_speakers, tmp_path / "cache", ["protocol=logo", "evaluate.final_model=refit"]),
                           tmp_path / "refit", progress=False)["final_model"]
    assert refit["requested"] == "refit" and refit["how"] == "all"
    assert refit["train_groups"] == ["spk1", "spk2"] and refit["n_clips"] == 30
    assert fit_calls[-1][:2] == (30, False)


def test_refit_with_enough_groups_names_its_validation_groups(demo_root, tmp_path, fit_calls):
    cfg = _cfg(demo_root, tmp_path / "cache", ["protocol=kfold:2", "evaluate.final_model=refit", "train.max_epochs=4"])
    fm = run_experiment(cfg, tmp_path / "run", progress=False)["final_model"]
    assert fm["how"] == "refit" and len(fm["validation_groups"]) == 1
    assert sorted(fm["train_groups"] + fm["validation_groups"]) == ["spk1", "spk2", "spk3", "spk4"]
    assert fm["n_clips"] + fm["n_validation_clips"] == 160 and fm["n_validation_clips"] == 40
    assert fit_calls[-1][:2] == (120, True)


def test_final_fit_epochs_are_the_median_of_each_members_best_epochs(tmp_path, fit_calls):
    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=6, takes=2, seconds=1.0)
    cfg = _two(root, tmp_path / "cache", ["protocol={name: kfold, k: 2, val_size: 0.34}", "model.ensemble=2",
                                          "train.max_epochs=10", "train.lr=0.01", "evaluate.final_model=all"])
    fm = run_experiment(cfg, tmp_path / "run", progress=False)["final_model"]
    folds, final = fit_calls[:4], fit_calls[4:]
    assert all(val for _, val, _, _ in folds) and not any(val for _, val, _, _ in final)
    best = [[folds[2 * f + i][3] for i in range(2)] for f in range(2)]  # folds x members
    expected = [int(np.floor(np.median([best[0][i], best[1][i]]) + 0.5)) for i in range(2)]
    assert len({e for row in best for e in row}) > 1, "the folds' best epochs differ (else nothing is tested)"
    assert fm["fold_best_epochs"] == best and fm["epochs"] == expected
    assert [c[2] for c in final] == expected and {c[0] for c in final} == {60}
    assert fm["train_groups"] == [f"spk{i}" for i in range(1, 7)]


@pytest.mark.filterwarnings("ignore::sonotype.splits.split.LeakWarning")
def test_random_split_of_clips_says_speakers_straddle_and_saves_a_model_of_all_clips(two_speakers, tmp_path, fit_calls):
    cfg = _two(two_speakers, tmp_path / "cache", ["protocol=random", "evaluate.final_model=all"])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert "LEAKS: random split over clips: 2 of 2 speakers on both sides" in m["protocol"]
    assert "windows" not in m["protocol"]
    fm = m["final_model"]
    assert fm["how"] == "all" and fm["n_clips"] == 30 and fm["epochs"] == fit_calls[0][3]
    assert fit_calls[-1][:3] == (30, False, fit_calls[0][3])


def test_leak_text_names_what_straddles():
    from types import SimpleNamespace

    from sonotype.corpora.base import Clip
    from sonotype.pipeline.experiment import _leak_text
    from sonotype.splits.split import Split

    clips = [Clip(f"c{i}.wav", "a", f"s{i // 2}") for i in range(4)]  # 2 speakers x 2 clips
    one = SimpleNamespace(item_clip=np.arange(4), clips=clips)
    split = Split("random", np.array([0, 2]), np.array([], int), np.array([1, 3]))
    assert _leak_text([split], one, "speaker") == (
        "LEAKS: random split over clips: 2 of 2 speakers on both sides; reproduces the seed only")
    # Two windows per clip; clip 0's windows on both sides, so its speaker too.
    windows = SimpleNamespace(item_clip=np.repeat(np.arange(4), 2), clips=clips)
    split = Split("random", np.array([0, 2, 3]), np.array([], int), np.array([1, 4, 5, 6, 7]))
    assert _leak_text([split], windows, "speaker") == (
        "LEAKS: random split over windows: windows of 1 of 4 clips on both sides, "
        "1 of 2 speakers on both sides; reproduces the seed only")
    # One clip per group (a folder corpus): nothing straddles.
    alone = SimpleNamespace(item_clip=np.arange(4), clips=[Clip(f"c{i}.wav", "a", f"c{i}") for i in range(4)])
    split = Split("random", np.array([0, 1]), np.array([2]), np.array([3]))
    assert _leak_text([split], alone, "file") == "random split over clips: no clip and no file on both sides"


def test_examples_show_wrong_clips_as_well_as_right_ones():
    from types import SimpleNamespace

    from sonotype.corpora.base import Clip
    from sonotype.pipeline.folds import FoldOutcome
    from sonotype.pipeline.folds import examples as _examples
    from sonotype.splits.split import Split

    labels = ["a", "b"]
    clips = [Clip(f"c{i}.wav", labels[i % 2], "g") for i in range(20)]
    ds = SimpleNamespace(item_clip=np.arange(20), clips=clips)

    def outcome(n_wrong):
        p = np.array([[0.9, 0.1] if c.label == "a" else [0.1, 0.9] for c in clips], np.float32)
        p[:n_wrong] = p[:n_wrong, ::-1]
        return FoldOutcome(Split("fold", np.array([], int), np.array([], int), np.arange(20)), p, np.arange(20),
                           None, None, None, {})

    def wrong(ex):
        return max(ex["probabilities"], key=ex["probabilities"].get) != ex["true"]

    for n_wrong, want in ((3, 3), (1, 1), (0, 0), (20, 6)):
        ex = _examples(ds, labels, [outcome(n_wrong)], 6)
        assert len(ex) == 6 and sum(map(wrong, ex)) == want, n_wrong
    ex = _examples(ds, labels, [outcome(15)], 6)
    assert sum(map(wrong, ex)) == 3, "half wrong when both kinds abound"
    assert all(e["split"] == "fold" for e in ex)


def test_demo_report_shows_the_new_speakers_figure(tmp_path, monkeypatch):
    import sonotype.pipeline.demo as demo

    small = lambda root, seed: generate_demo(root, seed=seed, n_speakers=2, takes=2, seconds=1.0)  # noqa: E731
    fast = lambda path, overrides: load_config(path, [*overrides, *FAST[:1], "evaluate.bootstrap=0"])  # noqa: E731
    monkeypatch.setattr(demo, "generate_demo", small)
    monkeypatch.setattr(demo, "load_config", fast)
    m = demo.run_demo(tmp_path / "out")
    page = (tmp_path / "out" / "run" / "report.html").read_text()
    assert "<img src='plots/confusion_on_new_speakers.png'" in page
    assert (tmp_path / "out" / "run" / "plots" / "confusion_on_new_speakers.png").read_bytes().startswith(b"\x89PNG")
    (cross,) = m["cross"]
    assert cross["title"] == "on new speakers" and cross["n_test_clips"] == 20
    assert json.loads((tmp_path / "out" / "heldout_metrics.json").read_text()) == cross
    assert m["final_model"]["n_clips"] == 20 and m["final_model"]["how"] == "all"


# --- the per-speaker step reported with the figure without it -----------------------------------


def test_per_speaker_run_states_the_figure_without_the_step_on_the_same_folds(tmp_path):
    """``normalize.by=speaker`` uses the test speakers' own (unlabelled) clips: the run also states
    the figure without the step, which is exactly what a ``normalize.by=none`` run gives on the same
    folds, and its baseline has the same step as the model."""
    import io

    from rich.console import Console

    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=3, takes=2, seconds=1.0)
    fast = [s for s in FAST if not s.startswith("evaluate.baseline")]  # the baseline gets the step too
    sets = [f"corpus.root={root}", f"cache_dir={tmp_path / 'cache'}", *fast, "evaluate.examples=0"]
    printed = io.StringIO()
    m = run_experiment(load_config(recipe_path("demo"), [*sets, "normalize.by=speaker"]), tmp_path / "with",
                       progress=False, console=Console(file=printed, width=400))
    off = run_experiment(load_config(recipe_path("demo"), [*sets, "normalize.by=none"]), tmp_path / "without",
                         progress=False)
    saved = json.loads((tmp_path / "with" / "metrics.json").read_text())
    norm = saved["normalize"]
    assert norm["by"] == "speaker" and norm["min_clips"] == 2 and norm["text"]  # what was there before stays
    # Exactly the figures of the run without the step: same splits, same seeds, same model settings.
    assert [f["name"] for f in off["folds"]] == [f["name"] for f in saved["folds"]] and len(off["folds"]) == 3
    assert norm["without"] == {k: off[k] for k in ("balanced_accuracy", "accuracy", "macro_f1")}
    assert "normalize" not in off
    # The baseline is standardised per speaker as the model is, so "beats the baseline" measures the network.
    assert saved["baseline"]["normalize"] == norm
    assert "normalize" not in off["baseline"]
    assert saved["baseline"]["balanced_accuracy"] != off["baseline"]["balanced_accuracy"] or \
        saved["baseline"]["accuracy"] != off["baseline"]["accuracy"], "the baseline's step changed nothing"
    assert saved["final_model"]["how"] == "all"
    # The printed summary and the report name the step beside the figure, and give the figure without it.
    words = (f"balanced accuracy {m['balanced_accuracy']:.3f} with per-speaker standardisation (uses the test "
             f"speakers' own unlabelled clips); {norm['without']['balanced_accuracy']:.3f} without (same folds)")
    assert words in " ".join(printed.getvalue().split())
    page = (tmp_path / "with" / "report.html").read_text()
    assert html.escape(words[0].upper() + words[1:], quote=True) in page
    assert "pooled, without it (same folds)" in page
    assert "per-speaker standardisation" not in (tmp_path / "without" / "report.html").read_text()
