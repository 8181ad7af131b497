"""End-to-end runs of the pipeline on generated and real corpora (short trainings)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import data_dir
from sonotype.config import CrossEvalConfig, load_config
from sonotype.corpora.demo import generate_demo
from sonotype.errors import SonotypeError
from sonotype.experiment import evaluate_on_corpus, run_experiment
from sonotype.predict import load_model
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
    m = evaluate_on_corpus(tmp_path / "run" / "model", CrossEvalConfig(corpus="demo", root=str(other),
                                                                        ops=[{"drop": ["sweep"]}]))
    assert "sweep" not in m["labels_kept"] and "sweep" in m["labels_dropped_model"]
    assert m["n_test_clips"] > 0 and 0.0 <= m["accuracy"] <= 1.0


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
    from sonotype.experiment import _augmented_items
    from sonotype.features import build_dataset

    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=1, takes=2, seconds=1.0)
    cfg = load_config(recipe_path("demo"), [
        f"corpus.root={root}", "augment.copies=2", "augment.pitch_semitones=[-2, 2]", "augment.noise_snr_db=[10, 20]",
    ])
    from sonotype.corpora import load_corpus

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
