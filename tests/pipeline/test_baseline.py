"""The baseline beside every run: same folds, same test clips, paired bootstrap, report and results."""

from __future__ import annotations

import html
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from sonotype.corpora.base import Clip
from sonotype.corpora.demo import generate_demo
from sonotype.features.extract import Dataset
from sonotype.models import linear as linear_mod
from sonotype.pipeline import baseline as bl
from sonotype.pipeline.config import RunConfig, load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import recipe_path
from sonotype.reporting.report import _baseline_section
from sonotype.reporting.results import collect_results, results_table
from sonotype.splits.split import Split

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


def _folds_with_known_predictions(model: str, baseline: str):
    """48 clips of 2 classes from 3 speakers, leave-one-speaker-out, where both systems are known.

    The model's test predictions are given (``perfect`` or ``wrong`` on every clip), its items in
    reversed clip order, so that a pairing by position instead of by clip would show. The baseline's
    features are ``informative`` (the class, +-1, plus a little noise: logistic regression
    gets every clip right) or ``constant`` (no information: one class for every clip, balanced
    accuracy exactly 1/2).
    """
    rng = np.random.default_rng(0)
    clips = [Clip(f"/x/s{g}_{i:02d}.wav", "ab"[i % 2], f"s{g}") for g in range(3) for i in range(16)]
    y = np.array([i % 2 for _ in range(3) for i in range(16)])
    ds = Dataset(np.zeros((48, 1), np.float32), np.arange(48), clips)
    X = (2.0 * y - 1.0)[:, None] + 0.1 * rng.standard_normal((48, 3)) if baseline == "informative" else np.ones((48, 3))
    bds = Dataset(X.astype(np.float32), np.arange(48), list(clips))
    outcomes = []
    for g in range(3):
        test = np.arange(16 * g, 16 * g + 16)
        items = test[::-1]  # the model's items in another order than the split's clips
        pred = y[items] if model == "perfect" else 1 - y[items]
        split = Split(f"test group s{g}", np.setdiff1d(np.arange(48), test), np.zeros(0, np.int64), test)
        outcomes.append(SimpleNamespace(split=split, proba=np.eye(2)[pred], test_items=items))
    return ds, bds, outcomes


@pytest.mark.parametrize(
    ("model", "baseline", "model_ba", "baseline_ba", "verdict", "words"),
    [
        ("perfect", "constant", 1.0, 0.5, "better", "The model beats the baseline beyond the bootstrap interval"),
        ("wrong", "informative", 0.0, 1.0, "worse", "The model is worse than the baseline beyond the bootstrap interval"),
        ("perfect", "informative", 1.0, 1.0, "not distinguishable", "The model does not beat the baseline"),
    ],
)
def test_the_verdict_follows_the_data(monkeypatch, model, baseline, model_ba, baseline_ba, verdict, words) -> None:
    ds, bds, outcomes = _folds_with_known_predictions(model, baseline)
    monkeypatch.setattr(bl, "build_dataset", lambda clips, *a, **kw: bds)  # the features are given, not extracted
    cfg = load_config(None, ["evaluate.bootstrap=200", "jobs=1"])
    b = bl.run_baseline(cfg, ds, ["a", "b"], outcomes, item_level=False, progress=False)
    assert b["balanced_accuracy"] == baseline_ba and b["model"]["balanced_accuracy"] == model_ba
    assert [f["balanced_accuracy"] for f in b["folds"]] == [baseline_ba] * 3
    assert [f["n"] for f in b["folds"]] == [16] * 3 and b["n_test_clips"] == 48 and b["n_missing"] == 0
    d = model_ba - baseline_ba
    # Every resample of 48 clips holds both classes: the difference is the same on each.
    assert b["comparison"]["difference"] == d and b["comparison"]["interval"] == [d, d]
    assert b["comparison"]["verdict"] == verdict
    assert b["verdict"].startswith(words) and f"difference {d:+.3f}" in b["verdict"]
    assert f"<b>{html.escape(b['verdict'], quote=True)}</b>" in _baseline_section({"baseline": b})


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
    # The demo's 30 test clips: model and baseline differ by at most a few clips (measured: 0.767
    # against 0.800), so the paired interval straddles 0 and the verdict is "not distinguishable".
    # (Clearly better / worse systems: test_the_verdict_follows_the_data below.)
    cmp = b["comparison"]
    assert cmp["n_resamples"] == 300 and cmp["level"] == 0.95
    assert cmp["difference"] == pytest.approx(b["model"]["balanced_accuracy"] - b["balanced_accuracy"], abs=1e-12)
    assert abs(cmp["difference"]) <= 0.1
    assert cmp["interval"][0] < 0 < cmp["interval"][1] and cmp["verdict"] == "not distinguishable"
    assert b["verdict"].startswith("The model does not beat the baseline beyond the bootstrap interval")
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
    assert html.escape(b["verdict"], quote=True) in page and "The model does not beat the baseline" in page
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


def test_the_baseline_is_standardised_per_speaker_as_the_model(corpus: Path, tmp_path: Path) -> None:
    """With ``normalize: speaker`` a logreg run on the baseline's features is the baseline again: the
    baseline got the model's step (so the comparison measures the network, not the step)."""
    fc, rc = bl.baseline_features()
    sets = [f"corpus.root={corpus}", f"cache_dir={tmp_path / 'cache'}", *QUICK, "model.name=logreg", "model.params={}",
            f"features={json.dumps(fc.to_dict())}", f"representation={json.dumps(rc.to_dict())}", "evaluate.examples=0"]
    m = run_experiment(load_config(recipe_path("demo"), [*sets, "normalize=speaker"]), tmp_path / "run", progress=False)
    b = m["baseline"]
    assert b["normalize"] == m["normalize"] and m["normalize"]["by"] == "speaker"
    for key in ("balanced_accuracy", "accuracy", "macro_f1"):
        assert b[key] == pytest.approx(m[key]), key
    assert b["comparison"]["interval"] == [0.0, 0.0]
    # The run's figure without the step is the baseline's figure without it (the same logreg on raw features).
    plain = run_experiment(load_config(recipe_path("demo"), sets), tmp_path / "plain", progress=False)["baseline"]
    assert "normalize" not in plain
    for key in ("balanced_accuracy", "accuracy", "macro_f1"):
        assert m["normalize"]["without"][key] == pytest.approx(plain[key]), key
    page = (tmp_path / "run" / "report.html").read_text()
    assert "The baseline has the same per-speaker standardisation" in page
