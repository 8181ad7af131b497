"""The baseline beside every run: same folds, same test clips, paired bootstrap, report and results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from sonotype.corpora.demo import generate_demo
from sonotype.models import linear as linear_mod
from sonotype.pipeline import baseline as bl
from sonotype.pipeline.config import RunConfig, load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import recipe_path
from sonotype.reporting.results import collect_results, results_table

QUICK = ["train.max_epochs=6", "train.patience=null", "train.num_threads=1", "evaluate.bootstrap=300",
         "evaluate.examples=2", "evaluate.final_model=best_fold"]


def test_resampled_balanced_accuracy_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    idx = rng.integers(0, 50, size=(20, 50))
    got = bl._balanced_accuracies(y, pred, idx, 4)
    want = [balanced_accuracy_score(y[i], pred[i]) for i in idx]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_paired_bootstrap_verdicts() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    good = np.where(rng.random(300) < 0.8, y, (y + 1) % 3)
    poor = np.where(rng.random(300) < 0.5, y, (y + 1) % 3)
    r = bl.paired_bootstrap(y, good, poor, n=500, seed=0)
    assert r["verdict"] == "better" and r["interval"][0] > 0
    assert r["difference"] == pytest.approx(balanced_accuracy_score(y, good) - balanced_accuracy_score(y, poor))
    assert r["interval"][0] < r["difference"] < r["interval"][1]
    assert bl.paired_bootstrap(y, poor, good, n=500)["verdict"] == "worse"
    same = bl.paired_bootstrap(y, good, good, n=100)
    assert same["verdict"] == "not distinguishable" and same["interval"] == [0.0, 0.0]
    # Nearly equal systems on few clips: the interval straddles 0.
    flip = good.copy()
    flip[:3] = poor[:3]
    assert bl.paired_bootstrap(y[:40], good[:40], flip[:40], n=500)["verdict"] == "not distinguishable"
    # Seeded: the same interval twice.
    assert bl.paired_bootstrap(y, good, poor, n=200, seed=3) == bl.paired_bootstrap(y, good, poor, n=200, seed=3)


def test_baseline_features_are_the_textbook_set() -> None:
    fc, rc = bl.baseline_features(RunConfig())
    assert fc.n_mfcc == 40 and {"mfcc", "mfcc_delta", "chroma", "contrast", "centroid"} <= set(fc.features)
    assert rc.kind == "stats" and rc.stats == ["mean", "std"]
    cfg = load_config(None, ["features.max_duration=30"])
    assert bl.baseline_features(cfg)[0].max_duration == 30
    cfg = load_config(None, ["features.max_duration=30", "backbone={model: x}"])
    assert bl.baseline_features(cfg)[0].max_duration is None  # backbone runs: frame settings are unused


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("bl") / "corpus", seed=0, n_speakers=3, takes=2, seconds=1.0)


def test_every_run_has_its_baseline_on_the_same_folds(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    seen: list[set] = []
    real = linear_mod._inner_folds

    def spy(y, groups, item_clip, k):
        seen.append(set(groups.tolist()))
        return real(y, groups, item_clip, k)

    monkeypatch.setattr(linear_mod, "_inner_folds", spy)
    cfg = load_config(recipe_path("demo"), [f"corpus.root={corpus}", f"cache_dir={tmp_path / 'cache'}", *QUICK])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    b = m["baseline"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["baseline"]
    assert saved == json.loads(json.dumps(b))
    for key in ("balanced_accuracy", "accuracy", "macro_f1", "config", "seconds", "folds", "comparison", "verdict"):
        assert key in b, key
    # Same folds and the same test clips as the model.
    assert [f["name"] for f in b["folds"]] == [f["name"] for f in m["folds"]]
    assert [f["n"] for f in b["folds"]] == [f["n"] for f in m["folds"]]
    assert b["n_test_clips"] == m["n_test_clips"] == 30 and b["n_missing"] == 0
    assert b["model"]["balanced_accuracy"] == pytest.approx(m["balanced_accuracy"])
    # The synthetic classes are easy for clip statistics too: far above chance (0.2).
    assert b["balanced_accuracy"] > 0.6
    assert b["comparison"]["n_resamples"] == 300 and b["comparison"]["verdict"] in (
        "better", "worse", "not distinguishable")
    assert b["config"]["model"] == "logreg" and b["config"]["features"]["n_mfcc"] == 40
    assert b["seconds"] >= b["extract_seconds"] > 0
    # Inner CV ran on the training side only: 2 of the 3 speakers, never the fold's test speaker.
    speakers = {"spk1", "spk2", "spk3"}
    tested = [f["name"].rsplit(" ", 1)[-1] for f in b["folds"]]
    assert sorted(tested) == sorted(speakers)
    assert len(seen) == 3 and all(s == speakers - {t} for s, t in zip(seen, tested))
    # The report puts it beside the model's figures and says in words how they compare.
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Baseline</h2>" in page and "paired bootstrap interval" in page
    assert ("beats the baseline" in page) or ("does not beat the baseline" in page) or ("worse than" in page)
    # And the results table has a baseline column.
    table = results_table(collect_results([tmp_path / "run"]))
    assert "| baseline |" in table.splitlines()[0] and f"{b['balanced_accuracy']:.3f}" in table.splitlines()[2]


def test_a_logreg_run_on_the_baseline_features_is_the_baseline(corpus: Path, tmp_path: Path) -> None:
    fc, rc = bl.baseline_features()
    sets = [f"corpus.root={corpus}", f"cache_dir={tmp_path / 'cache'}", *QUICK, "model.name=logreg", "model.params={}",
            f"features={json.dumps(fc.to_dict())}", f"representation={json.dumps(rc.to_dict())}"]
    m = run_experiment(load_config(recipe_path("demo"), sets), tmp_path / "run", progress=False)
    b = m["baseline"]
    for key in ("balanced_accuracy", "accuracy", "macro_f1"):
        assert b[key] == pytest.approx(m[key]), key
    assert [f["C"] for f in b["folds"]] and b["comparison"]["interval"] == [0.0, 0.0]
    assert b["comparison"]["verdict"] == "not distinguishable"


def test_baseline_can_be_turned_off(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(recipe_path("demo"), [f"corpus.root={corpus}", *QUICK, "evaluate.baseline=false",
                                            "protocol=holdout:0.34"])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert "baseline" not in m
    assert "<h2>Baseline</h2>" not in (tmp_path / "run" / "report.html").read_text()
    from sonotype.errors import ConfigError

    with pytest.raises(ConfigError, match=r"evaluate\.baseline"):
        load_config(None, ["evaluate.baseline=maybe"])


def test_item_level_random_split_of_frames_skips_the_baseline_with_a_reason(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(recipe_path("demo"), [f"corpus.root={corpus}", f"cache_dir={tmp_path / 'cache'}", *QUICK,
                                            "protocol=random", "representation.kind=frames", "model.name=logreg",
                                            "model.params={C: 1.0}"])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert "no clean training clips" in m["baseline"]["skipped"]
    assert "baseline skipped" in (tmp_path / "run" / "report.html").read_text()
    assert "| baseline |" in results_table(collect_results([tmp_path / "run"]))
