"""Several corpora in one run, leave-one-corpus-out, per-speaker normalisation (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import data_dir, write_wav
from sonotype.corpora.base import Clip
from sonotype.errors import ConfigError, CorpusError, ParameterError
from sonotype.items.normalize import NormalizeConfig, Normalizer, describe, reduce_axes
from sonotype.pipeline.config import RunConfig, load_config
from sonotype.pipeline.mixed import (
    corpus_matrix,
    load_mixed,
    mixed_vs_single,
    parse_corpus_args,
    undersample_corpora,
    unify_label,
)
from sonotype.splits.split import make_splits

# Class -> fundamental frequency of the synthetic "voice"; every speaker shifts all of them.
F0 = {"angry": 300.0, "happy": 520.0, "neutral": 180.0, "sad": 120.0, "fearful": 700.0}


def _clip(label: str, speaker: int, take: int, sr: int, seconds: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng([speaker, take, int(F0[label])])
    t = np.arange(int(seconds * sr)) / sr
    f = F0[label] * (1.0 + 0.15 * speaker)  # a speaker's voice moves every class
    y = 0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 2 * f * t)
    return (y * (0.5 + 0.2 * speaker) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def folder_corpus(root: Path, folders: dict[str, str], *, sr: int, speakers: int = 3, takes: int = 3) -> Path:
    """A class-per-folder tree ``<root>/<folder>/spkN_MM.wav`` (folder name -> true emotion)."""
    for folder, label in folders.items():
        for s in range(speakers):
            for k in range(takes):
                write_wav(root / folder / f"spk{s + 1}_{k:02d}.wav", _clip(label, s, k, sr), sr)
    return root


def tess_tree(root: Path, *, takes: int = 3) -> Path:
    """TESS naming at 24,414 Hz: ``<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav``, speakers OAF and YAF."""
    for s, spk in enumerate(("OAF", "YAF")):
        for emo in ("angry", "happy", "neutral", "sad", "fear"):
            for k in range(takes):
                label = {"fear": "fearful"}.get(emo, emo)
                write_wav(root / f"{spk}_{emo}" / f"{spk}_w{k}_{emo}.wav", _clip(label, s, k, 24414), 24414)
    return root


def emodb_tree(root: Path, *, takes: int = 2) -> Path:
    """EmoDB naming at 16 kHz: ``wav/<speaker><text><emotion><version>.wav`` for 3 speakers."""
    for s, spk in enumerate(("03", "08", "09")):
        for letter, label in (("W", "angry"), ("F", "happy"), ("N", "neutral"), ("T", "sad")):
            for k in range(takes):
                write_wav(root / "wav" / f"{spk}a0{k + 1}{letter}a.wav", _clip(label, s + 2, k, 16000), 16000)
    return root


def _two_folder_corpora(tmp_path: Path) -> list[dict]:
    a = folder_corpus(tmp_path / "a", {"Angry": "angry", "happiness": "happy", "Neutral": "neutral", "SAD": "sad"},
                      sr=16000)
    b = folder_corpus(tmp_path / "b", {"anger": "angry", "joy": "happy", "calmness": "neutral", "sadness": "sad",
                                       "fear": "fearful"}, sr=22050)
    return [
        {"name": "folder", "root": str(a), "options": {"group_regex": r"^(spk\d+)_", "corpus": "a"}},
        {"name": "folder", "root": str(b), "options": {"group_regex": r"^(spk\d+)_", "corpus": "b",
                                                       "labels": {"Calmness": "neutral"}}},
    ]


def test_unify_label_synonyms_and_map():
    assert [unify_label(x) for x in ("Angry", "anger", "ANGER", "happiness", "Joy", "sadness", "fear", "Fearful",
                                     "Pleasant Surprise", "pleasant-surprised", "neutral")] == [
        "angry", "angry", "angry", "happy", "happy", "sad", "fearful", "fearful", "surprised", "surprised", "neutral"]
    assert unify_label("tone") == "tone"  # not an emotion: unchanged
    assert unify_label("Cross", {"cross": "angry"}) == "angry"  # the map is case-insensitive too
    assert unify_label("joy", {"joy": "positive"}) == "positive"  # the map wins over the synonyms


def test_mixed_union_labels_groups_and_notes(tmp_path):
    entries = _two_folder_corpora(tmp_path)
    notes: list[str] = []
    m, info = load_mixed(entries, notes=notes)
    assert m.corpus == "mixed"
    assert info["labels"] == ["neutral", "happy", "sad", "angry"] and info["labels_source"] == "intersection"
    assert info["labels_dropped"] == {"b": ["fearful"]}
    assert any("dropped" in n and "fearful" in n for n in notes)
    assert {c.group for c in m.clips} == {f"{k}:spk{s}" for k in "ab" for s in (1, 2, 3)}
    assert {c.corpus for c in m.clips} == {"a", "b"}
    assert all(c.meta["speaker"] == c.group.split(":")[1] for c in m.clips)
    assert m.class_counts() == {"angry": 18, "happy": 18, "neutral": 18, "sad": 18}  # 2 corpora x 3 speakers x 3 takes
    assert sum("not kept" in s.reason for s in m.skipped) == 9  # b's fear clips
    rec = {r["name"]: r for r in info["corpora"]}
    assert rec["a"]["n_clips"] == 36 and rec["b"]["n_clips"] == 36 and rec["b"]["n_clips_read"] == 45
    # labels given: kept as given, even where one corpus lacks one
    m2, info2 = load_mixed(entries, labels=["angry", "fearful"])
    assert m2.class_counts() == {"angry": 18, "fearful": 9} and info2["labels_source"] == "given"
    with pytest.raises(ConfigError, match=r"labels \['boredom'\] are in no corpus"):
        load_mixed(entries, labels=["angry", "boredom"])


def test_optional_corpus_is_skipped_with_a_note_and_a_required_one_fails(tmp_path):
    entries = _two_folder_corpora(tmp_path)
    notes: list[str] = []
    _, info = load_mixed([*entries, {"name": "savee", "root": str(tmp_path / "nope"), "optional": True}], notes=notes)
    assert any("'savee' skipped" in n and "not found" in n for n in notes)
    assert [r["present"] for r in info["corpora"]] == [True, True, False]
    with pytest.raises(CorpusError, match=r"corpus 'savee': root .* not found .*optional: true"):
        load_mixed([*entries, {"name": "savee", "root": str(tmp_path / "nope")}])
    with pytest.raises(CorpusError, match="none of its corpora is present"):
        load_mixed([{"name": "savee", "root": str(tmp_path / "nope"), "optional": True}])
    with pytest.raises(ConfigError, match="appears twice"):
        load_mixed([entries[0], entries[0]])


def test_list_corpus_config_round_trips_and_cli_entries(tmp_path):
    cfg = load_config(None, ["corpus=[{name: tess, root: /t}, {name: emodb, root: /e, optional: true}]",
                             "corpus.1.root=/e2", "labels=[angry, sad]", "normalize=speaker", "protocol=locos"])
    assert cfg.corpus.name == "mixed" and [c.root for c in cfg.corpus.corpora] == ["/t", "/e2"]
    assert cfg.corpus.corpora[1].optional and cfg.normalize == NormalizeConfig(by="speaker")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert parse_corpus_args(["tess=/a", "emodb=/b"]) == [{"name": "tess", "root": "/a"}, {"name": "emodb", "root": "/b"}]
    with pytest.raises(ConfigError, match="NAME=ROOT"):
        parse_corpus_args(["tess"])
    with pytest.raises(ConfigError, match="more than once"):
        parse_corpus_args(["tess=/a", "tess=/b"])
    with pytest.raises(ConfigError, match=r"normalize\.by must be one of"):
        load_config(None, ["normalize.by=actor"])
    with pytest.raises(ConfigError, match=r"mix\.balance must be one of"):
        load_config(None, ["mix.balance=oversample"])


def test_locos_folds_keep_every_corpus_on_one_side():
    rng = np.random.default_rng(0)
    groups = [f"{c}:s{rng.integers(0, 4)}" for c in ("ravdess", "tess", "emodb") for _ in range(40)]
    labels = [["angry", "sad"][i % 2] for i in range(len(groups))]
    splits = make_splits(labels, groups, {"name": "locos", "val_size": 0.25})
    corp = np.array([g.split(":")[0] for g in groups])
    assert [s.name for s in splits] == ["test corpus emodb", "test corpus ravdess", "test corpus tess"]
    tested = []
    for s in splits:
        (test_corpus,) = set(corp[s.test])
        tested.append(test_corpus)
        assert test_corpus not in set(corp[s.train]) | set(corp[s.val])  # no corpus on both sides
        assert len(s.test) == 40 and len(s.train) + len(s.val) == 80
        assert len(s.val) > 0 and not set(np.array(groups)[s.val]) & set(np.array(groups)[s.train])
    assert sorted(tested) == ["emodb", "ravdess", "tess"]
    with pytest.raises(ParameterError, match="at least 2 corpora"):
        make_splits(labels[:40], groups[:40], "locos")


def test_undersample_cuts_every_corpus_to_the_smallest_keeping_class_shares():
    from sonotype.corpora.base import Clip

    clips = ([Clip(f"a{i}", "x" if i < 60 else "y", f"a:s{i % 5}", "a") for i in range(90)]
             + [Clip(f"b{i}", "x" if i < 10 else "y", f"b:s{i % 3}", "b") for i in range(30)])
    kept = undersample_corpora(np.arange(120), clips, seed=1)
    from collections import Counter

    got = Counter((clips[i].corpus, clips[i].label) for i in kept)
    assert got == {("a", "x"): 20, ("a", "y"): 10, ("b", "x"): 10, ("b", "y"): 20}
    assert np.array_equal(kept, undersample_corpora(np.arange(120), clips, seed=1))  # seeded
    assert np.array_equal(undersample_corpora(np.arange(30), clips[:30], seed=1), np.arange(30))  # one corpus: all


def test_normalizer_against_numpy():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 5)) * rng.uniform(0.5, 4, 5) + rng.normal(size=5) * 10
    keys = ["a"] * 5 + ["b"] * 6 + ["c"]  # c: one clip, below min_clips
    n = Normalizer("speaker", (0,), min_clips=2).fit(X, np.arange(12), keys)
    out = n.transform_groups(X, np.arange(12), keys)
    for sel in (slice(0, 5), slice(5, 11)):
        want = (X[sel] - X[sel].mean(0)) / X[sel].std(0)
        np.testing.assert_allclose(out[sel], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[sel].mean(0), 0, atol=1e-5)
    fallback_mean = (X[:5].mean(0) + X[5:11].mean(0)) / 2
    fallback_std = np.sqrt((X[:5].var(0) + X[5:11].var(0)) / 2)
    np.testing.assert_allclose(n.mean_.ravel(), fallback_mean, rtol=1e-10)
    np.testing.assert_allclose(n.std_.ravel(), fallback_std, rtol=1e-10)
    np.testing.assert_allclose(out[11], (X[11] - fallback_mean) / fallback_std, rtol=1e-5)
    assert (n.n_own_, n.n_fallback_) == (2, 1)
    assert describe("speaker", n.n_own_, n.n_fallback_).endswith(
        "(1 of 3 speaker groups with fewer than 2 clips: the training average)")
    # every clip its own group (a folder corpus without group_regex): the protocol says the step did nothing
    single = Normalizer("speaker", (0,)).fit(X, np.arange(12), [str(i) for i in range(12)])
    single.transform_groups(X, np.arange(12), [str(i) for i in range(12)])
    assert (single.n_own_, single.n_fallback_) == (0, 12)
    assert describe("speaker", 0, 12).startswith("no per-speaker standardisation: none of 12 speaker groups has 2")
    # augmented copies of a clip get its speaker's statistics (an unknown group: the fallback)
    np.testing.assert_allclose(n.transform_known(X[[0, 6, 11]], ["a", "b", "zz"]), out[[0, 6, 11]], rtol=1e-5, atol=1e-6)
    # running statistics reach the batch statistics once every clip is seen
    n.start_running()
    assert n.current()[2] == "fallback"
    for row in X[:5]:
        n.observe(row[None])
    mean, std, which = n.current()
    assert which == "running"
    np.testing.assert_allclose(mean.ravel(), X[:5].mean(0), rtol=1e-10)
    np.testing.assert_allclose(std.ravel(), X[:5].std(0), rtol=1e-8)
    # JSON round trip (no pickle)
    again = Normalizer.from_dict(json.loads(json.dumps(n.to_dict())))
    np.testing.assert_array_equal(again.mean_, n.mean_)
    np.testing.assert_array_equal(again.transform(X[:2]), n.transform(X[:2], (n.mean_, n.std_)))


def test_normalizer_over_time_for_windows_and_per_element_for_embeddings():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(6, 10, 3)) + np.array([1.0, -2.0, 5.0])  # (N, T, F) windows
    assert reduce_axes("windows", 3) == (0, 1) and reduce_axes("logmel", 3) == (0, 2)
    assert reduce_axes("backbone", 3) == (0,) and reduce_axes("stats", 2) == (0,)
    n = Normalizer("corpus", reduce_axes("windows", 3)).fit(W, np.arange(6), ["x"] * 6)
    out = n.transform_groups(W, np.arange(6), ["x"] * 6)
    np.testing.assert_allclose(out, (W - W.mean((0, 1))) / W.std((0, 1)), rtol=1e-5, atol=1e-5)
    E = rng.normal(size=(6, 4, 3))  # (N, L, D) embeddings: per layer and dimension
    n2 = Normalizer("speaker", (0,)).fit(E, np.arange(6), ["s"] * 6)
    np.testing.assert_allclose(n2.transform_groups(E, np.arange(6), ["s"] * 6), (E - E.mean(0)) / E.std(0),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ParameterError, match="fitted on items of shape"):
        n2.transform(rng.normal(size=(2, 4, 5)))


def _matrix_clips() -> list[Clip]:
    """Corpora a and b, 3 speakers each, 2 clips of x and 1 of y per speaker (9 clips a corpus)."""
    return [Clip(f"/{c}/s{s}_{lab}{k}.wav", lab, f"{c}:s{s}", corpus=c, meta={"speaker": f"s{s}"})
            for c in "ab" for s in (1, 2, 3) for lab, n in (("x", 2), ("y", 1)) for k in range(n)]


def test_corpus_matrix_cells_from_known_predictions():
    """A model trained on a gets everything right; one trained on b says x for every clip except
    those of speaker s1. Each cell is then known by hand:

    - trained on b, on the 9 clips of a: s1's 3 right, then x right and y wrong for s2, s3:
      recall x 6/6, recall y 1/3 -> balanced accuracy 2/3 (accuracy 7/9: the classes are not
      balanced, so the two differ); precision x 6/8 (F1 6/7), precision y 1/1 (F1 1/2) ->
      macro-F1 19/28. The same on b's own speaker folds.
    - trained on a: 1.0 everywhere.
    """
    clips = _matrix_clips()
    labels = ["x", "y"]
    corpus = np.array([c.corpus for c in clips])
    calls = []

    def train_predict(tr, va, te):
        tr, va, te = (np.asarray(v) for v in (tr, va, te))
        calls.append((tr, va, te))
        trained_on = set(corpus[np.r_[tr, va]].tolist())
        assert len(trained_on) == 1 and not set(np.r_[tr, va].tolist()) & set(te.tolist())
        right = [labels.index(clips[i].label) for i in te]
        if trained_on == {"a"}:
            return np.array(right)
        return np.array([r if clips[i].meta["speaker"] == "s1" else 0 for r, i in zip(right, te)])

    m = corpus_matrix(clips, labels, train_predict, val_size=0.34, seed=0, within_folds=4)
    assert m["train_sets"] == ["a", "b"] and m["test_corpora"] == ["a", "b"] and "mixed_vs_single" not in m
    b_on_a = m["rows"]["b"]["a"]
    assert b_on_a == {"balanced_accuracy": pytest.approx(2 / 3), "accuracy": pytest.approx(7 / 9),
                      "macro_f1": pytest.approx(19 / 28), "n_clips": 9, "chance": 0.5}
    assert m["rows"]["a"]["b"] == {"balanced_accuracy": 1.0, "accuracy": 1.0, "macro_f1": 1.0, "n_clips": 9,
                                   "chance": 0.5}
    assert m["rows"]["a"]["a"] == {**m["rows"]["a"]["b"], "protocol": "3-fold by speaker within a"}
    assert m["rows"]["b"]["b"] == {**b_on_a, "protocol": "3-fold by speaker within b"}
    # Off the diagonal a row trains on all of one corpus (validation carved from its own speakers)
    # and tests on all of the other; the diagonal is 3 folds, each speaker tested once.
    whole = [(set(tr.tolist()) | set(va.tolist()), set(te.tolist())) for tr, va, te in calls if len(te) == 9]
    a_idx, b_idx = set(np.flatnonzero(corpus == "a").tolist()), set(np.flatnonzero(corpus == "b").tolist())
    assert whole == [(a_idx, b_idx), (b_idx, a_idx)]
    assert all(len(va) == 3 for tr, va, te in calls if len(te) == 9)  # one of three speakers validates
    diag = [te for tr, va, te in calls if len(te) == 3]
    assert len(diag) == 6 and sorted(i for te in diag for i in te.tolist()) == list(range(18))
    # With the leave-one-corpus-out scores added, the mixed model against the best single corpus.
    locos = {"a": {"balanced_accuracy": 0.9}, "b": {"balanced_accuracy": 0.5}}
    m = corpus_matrix(clips, labels, train_predict, val_size=0.34, seed=0, locos=locos)
    assert m["train_sets"] == ["a", "b", "all others"] and m["rows"]["all others"] == locos
    assert m["mixed_vs_single"] == {
        "a": {"mixed": 0.9, "best_single": "b", "best_single_score": pytest.approx(2 / 3), "beats": True,
              "text": "a: mixed 0.900 beats the best single corpus (b, 0.667)"},
        "b": {"mixed": 0.5, "best_single": "a", "best_single_score": 1.0, "beats": False,
              "text": "b: mixed 0.500 does NOT beat the best single corpus (a, 1.000)"},
    }


def test_mixed_vs_single_takes_the_best_single_corpus_and_a_tie_does_not_beat():
    def ba(v: float) -> dict:
        return {"balanced_accuracy": v}

    rows = {"a": {"b": ba(0.40), "c": ba(0.70)},
            "b": {"a": ba(0.55), "c": ba(0.60)},
            "c": {"a": ba(0.65), "b": {"skipped": "too few speakers"}},
            "all others": {"a": ba(0.62), "b": ba(0.41), "c": ba(0.70)}}
    got = mixed_vs_single(rows, ["a", "b", "c"])
    assert got == {
        "a": {"mixed": 0.62, "best_single": "c", "best_single_score": 0.65, "beats": False,
              "text": "a: mixed 0.620 does NOT beat the best single corpus (c, 0.650)"},
        "b": {"mixed": 0.41, "best_single": "a", "best_single_score": 0.40, "beats": True,
              "text": "b: mixed 0.410 beats the best single corpus (a, 0.400)"},  # c's cell was skipped
        "c": {"mixed": 0.70, "best_single": "a", "best_single_score": 0.70, "beats": False,
              "text": "c: mixed 0.700 does NOT beat the best single corpus (a, 0.700)"},  # a tie
    }
    assert mixed_vs_single({k: v for k, v in rows.items() if k != "all others"}, ["a", "b", "c"]) == {}


def _locos_scores_from_csv(run: Path) -> dict[str, dict]:
    """Per left-out corpus, recomputed from predictions.csv with scikit-learn: each locos fold tests
    exactly one corpus, all of its clips."""
    import csv

    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    by: dict[str, tuple[list, list]] = {}
    for r in csv.DictReader((run / "predictions.csv").open()):
        t, p = by.setdefault(r["split"].removeprefix("test corpus "), ([], []))
        t.append(r["true"])
        p.append(r["predicted"])
    return {c: {"balanced_accuracy": balanced_accuracy_score(t, p), "accuracy": accuracy_score(t, p), "n_clips": len(t)}
            for c, (t, p) in by.items()}


def _tiny_sets(tmp_path: Path) -> list[str]:
    return [f"cache_dir={tmp_path / 'cache'}", "features.features=[mfcc]", "features.n_mfcc=13", "features.sr=16000",
            "features.n_fft=512", "features.hop_length=256", "representation.kind=stats",
            "representation.stats=[mean, std]", "model.name=mlp-small", "train.max_epochs=15", "train.patience=null",
            "train.num_threads=1", "evaluate.bootstrap=0", "evaluate.baseline=false", "evaluate.examples=0"]


def test_mixed_locos_run_with_speaker_normalisation_end_to_end(tmp_path):
    from sonotype.inference.predict import load_model
    from sonotype.pipeline.experiment import run_experiment

    entries = _two_folder_corpora(tmp_path)
    cfg = load_config(None, [f"corpus={json.dumps(entries)}", "protocol=locos", "normalize=speaker",
                             *_tiny_sets(tmp_path)])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["corpus"] == "mixed: a+b" and m["labels_kept"] == ["neutral", "happy", "sad", "angry"]
    assert m["n_test_clips"] == 72 and [f["name"] for f in m["folds"]] == ["test corpus a", "test corpus b"]
    assert set(m["per_corpus"]) == {"a", "b"} and all(v["n_clips"] == 36 for v in m["per_corpus"].values())
    assert m["per_corpus"]["a"]["chance"] == 0.25
    for name, want in _locos_scores_from_csv(tmp_path / "run").items():
        got = m["per_corpus"][name]
        assert got["n_clips"] == want["n_clips"] == 36
        assert got["balanced_accuracy"] == pytest.approx(want["balanced_accuracy"], abs=1e-12)
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    mat = m["corpus_matrix"]
    assert mat["train_sets"] == ["a", "b", "all others"] and mat["test_corpora"] == ["a", "b"]
    # What each cell is computed from is fixed by the data: every test corpus has 36 clips, 9 per
    # class, so a cell's balanced accuracy is a mean of four recalls k/9, a multiple of 1/36.
    # (Its value: test_corpus_matrix_cells_from_known_predictions.)
    for r in ("a", "b"):
        for c in ("a", "b"):
            cell = mat["rows"][r][c]
            assert cell["n_clips"] == 36 and cell["chance"] == 0.25, (r, c)
            assert cell["balanced_accuracy"] * 36 == pytest.approx(round(cell["balanced_accuracy"] * 36), abs=1e-9)
    assert mat["rows"]["a"]["a"]["protocol"] == "3-fold by speaker within a"  # the diagonal: speaker folds
    assert mat["rows"]["b"]["b"]["protocol"] == "3-fold by speaker within b"
    assert mat["rows"]["all others"]["a"] == m["per_corpus"]["a"]  # the locos fold itself, not a retraining
    vs = mat["mixed_vs_single"]["a"]  # with two corpora the best single one for a is b
    assert vs["mixed"] == m["per_corpus"]["a"]["balanced_accuracy"]
    assert vs["best_single"] == "b" and vs["best_single_score"] == mat["rows"]["b"]["a"]["balanced_accuracy"]
    assert m["normalize"]["by"] == "speaker"
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Corpus x corpus" in html and "Per corpus" in html and "Normalisation" in html
    assert "Mixed against single-corpus training" in html
    # the saved model carries the normaliser (JSON) and predict_group reproduces the run's rule
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["extra"]["normalize"]["by"] == "speaker"
    clf = load_model(tmp_path / "run" / "model")
    assert clf.normalizer is not None and clf.normalizer.by == "speaker"
    files = sorted(Path(entries[0]["root"]).glob("*/spk1_*.wav"))
    got = clf.predict_group(files)
    from sonotype.audio import load

    raw = np.concatenate([clf._raw_items(load(f, sr=clf.sample_rate)[0], clf.sample_rate) for f in files])
    want = clf.forward_items(((raw - raw.mean(0)) / raw.std(0)).astype(np.float32))
    np.testing.assert_allclose([[p.probabilities[lab] for lab in clf.labels] for p in got], want, atol=1e-5)
    # one clip alone: the fallback statistics (the training speakers' average), as predict() uses
    single = clf.predict(files[0])
    want1 = clf.forward_items(((raw[:1] - clf.normalizer.mean_) / clf.normalizer.std_).astype(np.float32))[0]
    np.testing.assert_allclose([single.probabilities[lab] for lab in clf.labels], want1, atol=1e-5)
    # the CLI: --same-speaker is predict_group over the files given
    from typer.testing import CliRunner

    from sonotype.cli import app

    res = CliRunner().invoke(app, ["predict", str(tmp_path / "run" / "model"), *map(str, files), "--same-speaker", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    rows = rows["results"]
    np.testing.assert_allclose([[r["probabilities"][lab] for lab in clf.labels] for r in rows], want, atol=1e-5)
    # without the flag each file is classified alone, and a note on stderr says what the flag would do
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "run" / "model"), *map(str, files), "--json"])
    assert res.exit_code == 0, res.output
    assert "--same-speaker standardises them together" in res.stderr and "note" not in res.stdout
    alone = json.loads(res.stdout)["results"]
    np.testing.assert_allclose([alone[0]["probabilities"][lab] for lab in clf.labels], want1, atol=1e-5)


def test_cli_train_with_repeated_corpus_and_run_recipe_with_corpus_roots(tmp_path):
    from typer.testing import CliRunner

    from sonotype.cli import app

    tess, emodb = tess_tree(tmp_path / "tess"), emodb_tree(tmp_path / "emodb")
    sets = [x for s in _tiny_sets(tmp_path) for x in ("--set", s)]
    r = CliRunner().invoke(app, ["train", "--corpus", f"tess={tess}", "--corpus", f"emodb={emodb}", "--model",
                                 "mlp-small", "--protocol", "locos", "--set", "mix.matrix=false", *sets,
                                 "--out", str(tmp_path / "run"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["labels_kept"] == ["neutral", "happy", "sad", "angry", "fearful"][:4]
    assert m["labels_dropped"] == {"tess": ["fearful"]} and "corpus_matrix" not in m
    groups = {row.split(",")[2] for row in (tmp_path / "run" / "predictions.csv").read_text().splitlines()[1:]}
    assert groups  # one row per test clip
    assert {f["name"] for f in m["folds"]} == {"test corpus emodb", "test corpus tess"}
    r = CliRunner().invoke(app, ["train", "--corpus", f"tess={tess}", "--root", str(tess), "--out", str(tmp_path / "x")])
    assert isinstance(r.exception, ConfigError) and "NAME=ROOT" in str(r.exception)
    # `run` of the scratch locos recipe: roots by name, the absent corpora skipped with a note
    r = CliRunner().invoke(app, ["run", "emotion-locos", "--corpus", f"tess={tess}", "--corpus", f"emodb={emodb}",
                                 *sets, "--set", "model.params={}", "--set", "mix.matrix=false",
                                 "--out", str(tmp_path / "recipe")])
    assert r.exit_code == 0, r.output
    assert "'savee' skipped" in r.output and "'cremad' skipped" in r.output
    m = json.loads((tmp_path / "recipe" / "metrics.json").read_text())
    assert m["corpus"] == "mixed: tess+emodb" and m["labels_source"] == "given"
    assert [c["name"] for c in m["corpora"] if not c["present"]] == ["ravdess", "cremad", "savee", "dusha"]
    r = CliRunner().invoke(app, ["run", "emotion-locos", "--corpus", f"gtzan={tess}", "--out", str(tmp_path / "y")])
    assert isinstance(r.exception, ConfigError) and "has no corpus 'gtzan'" in str(r.exception)


def test_estimator_normalize_per_speaker(tmp_path):
    from sonotype import AudioClassifier
    from sonotype.inference.predict import load_model

    entries = _two_folder_corpora(tmp_path)
    m, _ = load_mixed(entries)
    clf = AudioClassifier(features={"features": ["mfcc"], "n_mfcc": 13, "sr": 16000, "n_fft": 512, "hop_length": 256},
                          model="mlp-small", train={"max_epochs": 10, "patience": None, "num_threads": 1},
                          normalize="speaker", cache_dir=str(tmp_path / "cache"))
    clf.fit(m)
    assert clf.normalizer_.by == "speaker"
    one = [c for c in m.clips if c.group == "a:spk2"]
    P = clf.predict_proba([c.path for c in one])  # the clips given are one speaker
    P2 = clf.predict_proba([c.path for c in one], groups=["x"] * len(one))
    np.testing.assert_allclose(P, P2, atol=1e-6)
    clf.save(tmp_path / "model")
    got = load_model(tmp_path / "model").predict_group([c.path for c in one])
    np.testing.assert_allclose([[g.probabilities[lab] for lab in clf.classes_] for g in got], P, atol=1e-5)
    with pytest.raises(ParameterError, match="needs the speaker of every clip"):
        AudioClassifier(model="mlp-small", normalize="speaker").fit([c.path for c in one], [c.label for c in one])


@pytest.mark.parametrize("finetune", [0, 1])
def test_cross_corpus_evaluation_of_a_backbone_model(tmp_path, finetune):
    """`evaluate` of a backbone model on another corpus makes the model's own items: embeddings
    (frozen) or waveforms (fine-tuned), never frame features."""
    from sonotype.pipeline.config import CrossEvalConfig
    from sonotype.pipeline.experiment import evaluate_on_corpus, run_experiment
    from test_backbones import _tiny_models

    models = _tiny_models(tmp_path / "models")
    tess, emodb = tess_tree(tmp_path / "tess"), emodb_tree(tmp_path / "emodb")
    sets = ["corpus.name=tess", f"corpus.root={tess}", f"cache_dir={tmp_path / 'cache'}", "protocol=logo",
            "train.max_epochs=3", "train.num_threads=1", "evaluate.bootstrap=0", "evaluate.baseline=false"]
    if finetune:
        sets += ["model.params={hidden: 16}",
                 f"backbone={{model: {models['wavlm']}, layer: all, pooling: mean, max_seconds: 1.0, finetune_layers: 1}}"]
    else:
        sets += ["model.name=layer-weighted-mlp", "normalize=speaker",
                 f"backbone={{model: {models['whisper']}, layer: all, pooling: mean, max_seconds: 1.0}}"]
    run_experiment(load_config(None, sets), tmp_path / "run", progress=False)
    m = evaluate_on_corpus(tmp_path / "run" / "model", CrossEvalConfig(corpus="emodb", root=str(emodb)),
                           cache_dir=str(tmp_path / "cache"))
    assert m["labels_kept"] == ["angry", "happy", "neutral", "sad"] and m["labels_dropped_model"] == ["fearful"]
    assert m["normalized_by"] == (None if finetune else "speaker")
    assert m["n_test_clips"] == 24 and 0.0 <= m["balanced_accuracy"] <= 1.0 and m["chance"]["balanced_accuracy"] == 0.25


@pytest.mark.realdata
def test_real_tess_and_emodb_locos_with_a_tiny_model(tmp_path):
    tess, emodb = data_dir("tess"), data_dir("emodb")
    cfg = load_config(None, [f"corpus=[{{name: tess, root: {tess}}}, {{name: emodb, root: {emodb}}}]",
                             "labels=[angry, happy, neutral, sad]", "protocol=locos", "normalize=speaker",
                             "mix.matrix=false", *_tiny_sets(tmp_path)])
    from sonotype.pipeline.experiment import run_experiment

    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["corpora"][0]["n_clips"] == 160 and m["corpora"][1]["n_clips"] == 339
    assert m["n_test_clips"] == 499 and set(m["per_corpus"]) == {"tess", "emodb"}
    assert {c.split(":")[0] for c in m["final_model"]["train_groups"]} == {"tess", "emodb"}
    for name, want in _locos_scores_from_csv(tmp_path / "run").items():
        assert m["per_corpus"][name]["n_clips"] == want["n_clips"] == {"tess": 160, "emodb": 339}[name]
        assert m["per_corpus"][name]["balanced_accuracy"] == pytest.approx(want["balanced_accuracy"], abs=1e-12)
