"""Evaluation: metrics against hand-computed values, voting, folds, bootstrap, cross-corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sonotype.errors import ParameterError
from sonotype.evaluation.metrics import (
    aggregate_folds,
    bootstrap_ci,
    cross_corpus_labels,
    evaluate_items,
    metrics,
    rank_subsets,
    restrict_proba,
    vote,
)

LABELS = ["a", "b", "c"]


def test_metrics_hand_computed():
    # true: a a a b b c ; pred: a a b b c c
    t = ["a", "a", "a", "b", "b", "c"]
    p = ["a", "a", "b", "b", "c", "c"]
    m = metrics(t, p, LABELS)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls: a 2/3, b 1/2, c 1/1 -> UAR = (2/3 + 1/2 + 1) / 3
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    # precision: a 2/2, b 1/2, c 1/2 ; f1: a 0.8, b 0.5, c 2/3
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["confusion_normalized"][0] == pytest.approx([2 / 3, 1 / 3, 0])
    assert m["labels"] == LABELS
    # JSON-safe: plain Python types only
    assert json.loads(json.dumps(m)) == m


def test_metrics_indices_equal_names_and_absent_class():
    m1 = metrics([0, 0, 1], [0, 1, 1], LABELS)
    m2 = metrics(["a", "a", "b"], ["a", "b", "b"], LABELS)
    assert m1 == m2
    # class c absent on both sides: macro-F1 over a and b only, confusion row of zeros
    assert m1["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert m1["confusion_normalized"][2] == [0.0, 0.0, 0.0]
    assert m1["per_class"]["c"]["support"] == 0


def test_metrics_log_loss_and_bad_input():
    proba = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    m = metrics([0, 1], [0, 1], LABELS, proba=proba)
    assert m["log_loss"] == pytest.approx(-np.log(0.5))
    with pytest.raises(ParameterError, match="'z'"):
        metrics(["z"], ["a"], LABELS)
    with pytest.raises(ParameterError, match="index 3"):
        metrics([3], [0], LABELS)
    with pytest.raises(ParameterError, match="length"):
        metrics([0, 1], [0], LABELS)


def test_vote_hand_example():
    proba = np.array([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1], [0.1, 0.9], [0.3, 0.7]])
    clips = ["t2", "t1", "t2", "t1", "t1"]
    ids, p = vote(proba, clips)
    assert ids.tolist() == ["t2", "t1"]  # first-appearance order
    np.testing.assert_allclose(p, [[0.75, 0.25], [0.2, 0.8]])


def test_evaluate_items_clip_vs_window_level():
    # clip x: 3 windows of true 0, two predicted 1 weakly, one 0 strongly -> vote says 0
    proba = np.array([[0.45, 0.55], [0.45, 0.55], [0.95, 0.05], [0.1, 0.9]])
    y = [0, 0, 0, 1]
    res = evaluate_items(proba, y, ["x", "x", "x", "y"], ["neg", "pos"])
    assert res["window_level"]["accuracy"] == pytest.approx(0.5)
    assert res["window_level"]["n"] == 4
    assert res["clip_level"]["accuracy"] == 1.0
    assert res["clip_level"]["n"] == 2
    assert res["clip_ids"] == ["x", "y"]
    with pytest.raises(ParameterError, match="different labels"):
        evaluate_items(proba, [0, 1, 0, 1], ["x", "x", "x", "y"], ["neg", "pos"])


def test_aggregate_folds_numbers():
    folds = [
        {"accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3, "n": 10},
        {"accuracy": 0.7, "balanced_accuracy": 0.6, "macro_f1": 0.5, "n": 10},
        {"accuracy": 0.9, "balanced_accuracy": 0.8, "macro_f1": 0.7, "n": 10},
    ]
    pooled = metrics([0] * 5 + [1] * 5, [0] * 4 + [1] * 6, ["a", "b"])
    agg = aggregate_folds(folds, pooled, y_true=[0] * 5 + [1] * 5, y_pred=[0] * 4 + [1] * 6, n_boot=200)
    assert agg["accuracy"] == pytest.approx(0.9)  # the pooled figures stay at top level
    assert [f["accuracy"] for f in agg["folds"]] == [0.5, 0.7, 0.9]
    assert agg["mean"] == pytest.approx({"accuracy": 0.7, "balanced_accuracy": 0.6, "macro_f1": 0.5})
    assert agg["std"]["accuracy"] == pytest.approx(0.2)  # sample std of 0.5, 0.7, 0.9
    ci = agg["bootstrap_ci"]
    assert ci["low"] <= 0.9 <= ci["high"] and ci["level"] == 0.95 and ci["n"] == 200
    single = aggregate_folds(folds[:1], pooled)
    assert single["std"]["accuracy"] == 0.0 and "bootstrap_ci" not in single
    with pytest.raises(ParameterError, match="lack"):
        aggregate_folds([{"accuracy": 1.0}], pooled)


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.7, t, rng.integers(0, 4, 300))
    acc = float((t == p).mean())
    lo, hi = bootstrap_ci(t, p, n=500, seed=3)
    assert lo < acc < hi
    assert 0.05 < hi - lo < 0.2  # about +- 2 standard errors of sqrt(.7*.3/300) ~ 0.026
    assert bootstrap_ci(t, p, n=500, seed=3) == (lo, hi)
    assert bootstrap_ci(t, p, n=500, seed=4) != (lo, hi)
    assert bootstrap_ci(t, p, n=500, seed=np.random.default_rng(3)) == (lo, hi)
    with pytest.raises(ParameterError, match="level"):
        bootstrap_ci(t, p, level=1.5)


def test_cross_corpus_labels_and_restrict():
    kept, dm, dc = cross_corpus_labels(["angry", "calm", "happy", "sad"], ["sad", "angry", "boredom"])
    assert (kept, dm, dc) == (["angry", "sad"], ["calm", "happy"], ["boredom"])
    proba = np.array([[0.2, 0.5, 0.1, 0.2], [0.0, 1.0, 0.0, 0.0]])
    r = restrict_proba(proba, ["angry", "calm", "happy", "sad"], kept)
    np.testing.assert_allclose(r, [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ParameterError, match="share nothing"):
        cross_corpus_labels(["a"], ["b"])
    with pytest.raises(ParameterError, match="subset"):
        restrict_proba(proba, ["angry", "calm", "happy", "sad"], ["boredom"])


def test_rank_subsets():
    res = [
        {"name": "mfcc", "balanced_accuracy": 0.6, "n_features": 20},
        {"name": "all", "balanced_accuracy": 0.7, "n_features": 37},
        {"name": "rms", "balanced_accuracy": 0.6, "n_features": 1},
    ]
    ranked = rank_subsets(res)
    assert [r["name"] for r in ranked] == ["all", "rms", "mfcc"]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    with pytest.raises(ParameterError, match="n_features"):
        rank_subsets([{"name": "x", "balanced_accuracy": 0.1}])


def test_one_shared_label_is_refused():
    with pytest.raises(ParameterError, match=r"share only \['angry'\]: evaluating needs at least two shared labels"):
        cross_corpus_labels(["angry", "calm"], ["angry", "boredom"])
