"""Manifest operations and describe(): exact counts, reasons, seeds, cut arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import data_dir, write_wav
from sonotype.audio import segment
from sonotype.corpora.base import Clip, Manifest, Skipped
from sonotype.corpora.describe import describe
from sonotype.corpora.ops import apply_ops, balance, cut, drop_labels, keep_labels, merge_labels, min_count
from sonotype.corpora.registry import load_corpus
from sonotype.errors import ConfigError, ParameterError


def manifest(counts: dict[str, int]) -> Manifest:
    clips = [
        Clip(f"/x/{lab}/{i:03d}.wav", lab, f"g{i % 3}", "t") for lab, n in counts.items() for i in range(n)
    ]
    return Manifest("t", "/x", clips, [Skipped("/x/junk.txt", "not an audio file")])


def test_keep_drop_merge():
    m = manifest({"happy": 4, "neutral": 3, "sad": 2, "angry": 5})
    k = keep_labels(m, ["happy", "neutral", "sad"])
    assert k.class_counts() == {"happy": 4, "neutral": 3, "sad": 2}
    assert len(k.skipped) == 1 + 5 and k.skipped[-1].reason == "keep_labels: label 'angry' not kept"
    assert len(m) == 14 and len(m.skipped) == 1  # the input is untouched
    with pytest.raises(ParameterError, match="'calm'"):
        keep_labels(m, ["happy", "calm"])
    d = drop_labels(m, ["angry", "boredom"])
    assert d.class_counts() == {"happy": 4, "neutral": 3, "sad": 2} and len(d.skipped) == 6
    g = merge_labels(m, {"happy": "positive", "neutral": "positive"})
    assert g.class_counts() == {"angry": 5, "positive": 7, "sad": 2}
    assert {c.meta["original_label"] for c in g if c.label == "positive"} == {"happy", "neutral"}
    assert len(g.skipped) == 1


def test_min_count_and_balance():
    m = manifest({"a": 10, "b": 6, "c": 2})
    mc = min_count(m, 3)
    assert mc.class_counts() == {"a": 10, "b": 6}
    assert mc.skipped[-1].reason == "min_count: class 'c' has 2 < 3 clips"
    with pytest.raises(ParameterError):
        min_count(m, 0)
    b1, b2, b3 = balance(mc, seed=0), balance(mc, seed=0), balance(mc, seed=1)
    assert b1.class_counts() == {"a": 6, "b": 6}
    assert [c.path for c in b1] == [c.path for c in b2]  # reproducible from the seed
    assert [c.path for c in b1] != [c.path for c in b3]
    assert [c.path for c in b1] == sorted(c.path for c in b1)  # order preserved
    assert sum(s.reason == "balance: class 'a' undersampled to 6" for s in b1.skipped) == 4
    assert balance(mc, seed=np.random.default_rng(0)).class_counts() == {"a": 6, "b": 6}


def test_cut_matches_audio_segment(tmp_path):
    sr = 1000
    f = write_wav(tmp_path / "a" / "t.wav", np.zeros(int(12.5 * sr), dtype=np.float32), sr)
    short = write_wav(tmp_path / "a" / "s.wav", np.zeros(int(0.5 * sr), dtype=np.float32), sr)
    bad = tmp_path / "a" / "bad.wav"
    bad.write_bytes(b"not audio at all")
    m = Manifest(
        "t",
        str(tmp_path),
        [Clip(str(f), "a", "trk", "t"), Clip(str(short), "a", "s", "t"), Clip(str(bad), "a", "b", "t")],
    )
    for last in ("drop", "pad", "keep"):
        out = cut(m, 5.0, 1.0, last=last)
        parts = [c for c in out if c.path == str(f)]
        ref = segment(np.zeros(int(12.5 * sr)), sr, 5.0, 1.0, last=last)
        assert [c.start for c in parts] == [s.start for s in ref]
        assert [c.start + c.duration for c in parts] == [min(s.end, 12.5) for s in ref]
        assert {c.group for c in parts} == {"trk"} and [c.meta["part"] for c in parts] == list(
            range(len(ref))
        )
        assert len({c.clip_id for c in out}) == len(out)
    drop = cut(m, 5.0, 1.0)
    assert len([c for c in drop if c.path == str(f)]) == 8  # 0..7 s starts
    assert any("shorter than one 5.0 s window" in s.reason for s in drop.skipped)
    assert any(s.path == str(bad) and s.reason.startswith("cut:") for s in drop.skipped)
    pad = cut(m, 5.0, 1.0, last="pad")
    assert [c.meta.get("pad") for c in pad if c.path == str(short)] == [4.5]
    # cutting an already cut clip stays inside it
    inner = cut(Manifest("t", "", [Clip(str(f), "a", "trk", "t", start=2.0, duration=4.0)]), 1.5)
    assert [(c.start, c.duration) for c in inner] == [(2.0, 1.5), (3.5, 1.5)]
    with pytest.raises(ParameterError):
        cut(m, 0)
    with pytest.raises(ParameterError):
        cut(m, 1.0, last="wrap")


def test_apply_ops_from_yaml(tmp_path):
    m = manifest({"happy": 12, "neutral": 30, "sad": 11, "angry": 3, "positive": 2})
    ops = yaml.safe_load(
        """
        - merge: {positive: happy}
        - keep: [happy, neutral, sad, angry]
        - min_count: 10
        - balance: {seed: 0}
        """
    )
    out = apply_ops(m, ops)
    assert out.class_counts() == {"happy": 11, "neutral": 11, "sad": 11}
    assert out.class_counts() == apply_ops(m, ops).class_counts()
    assert [c.path for c in out] == [c.path for c in apply_ops(m, ops)]
    assert apply_ops(m, []) is m and apply_ops(m, None) is m
    for bad, msg in (
        ([{"kepp": ["a"]}], "unknown 'kepp'"),
        ([{"keep": ["a"], "drop": ["b"]}], "one key"),
        (["keep"], "one key"),
        ([{"min_count": "ten"}], "integer"),
        ([{"merge": ["a"]}], "mapping"),
        ([{"keep": ["nosuch"]}], r"#1 \(keep\)"),
        ([{"balance": {"sed": 1}}], "seed"),
        ([{"cut": {"hop": 1}}], "window"),
    ):
        with pytest.raises(ConfigError, match=msg):
            apply_ops(m, bad)


def test_describe_counts_and_unreadable(tmp_path):
    sr = 8000
    a = write_wav(tmp_path / "x" / "a.wav", np.zeros(2 * sr, dtype=np.float32), sr)
    b = write_wav(tmp_path / "y" / "b.flac", np.zeros((sr, 2), dtype=np.float32), 16000)
    broken = tmp_path / "y" / "c.wav"
    broken.write_bytes(b"")
    m = Manifest(
        "t",
        str(tmp_path),
        [Clip(str(a), "x", "g1"), Clip(str(b), "y", "g2"), Clip(str(broken), "y", "g2")],
        [Skipped("z.txt", "not audio")],
    )
    d = describe(m)
    # The unreadable file is not a clip: counted apart (n_unreadable), listed under skipped.
    assert d["n_clips"] == 2 and d["classes"] == {"x": 1, "y": 1} and d["groups"] == {"g1": 1, "g2": 1}
    assert d["n_files"] == 2
    assert d["total_duration"] == pytest.approx(2.5) and d["min_duration"] == 0.5 and d["max_duration"] == 2.0
    assert d["sample_rates"] == {8000: 1, 16000: 1} and d["channels"] == {1: 1, 2: 1}
    assert d["n_unreadable"] == 1
    assert d["skipped"] == [
        {"path": "z.txt", "reason": "not audio"},
        {"path": str(broken), "reason": "unreadable: empty file (0 bytes)"},
    ]
    parts = cut(Manifest("t", "", m.clips[:1]), 0.5)
    assert describe(parts)["total_duration"] == pytest.approx(2.0) and describe(parts)["n_files"] == 1
    quick = describe(m, read_headers=False)
    assert quick["total_duration"] == 0 and quick["sample_rates"] == {} and len(quick["skipped"]) == 1
    assert quick["n_clips"] == 3, "without reading headers every clip is counted"
    assert Path(d["root"]) == tmp_path


@pytest.mark.realdata
def test_describe_and_cut_on_real_corpora():
    d = describe(load_corpus("tess", data_dir("tess")))
    # all 24,414 Hz except OAF_food_fear.wav (96 kHz); YAF_germ_angry.wav (really AIFF) reads fine
    assert d["sample_rates"] == {24414: 279, 96000: 1} and d["n_unreadable"] == 0 and d["skipped"] == []
    gtzan = load_corpus("gtzan", data_dir("gtzan"))
    windows = cut(gtzan, 5.0, 1.0)  # the seeds' sliding 5 s / 1 s windows
    per_track = windows.group_counts()
    assert set(per_track) == set(gtzan.group_counts()) and set(per_track.values()) <= {25, 26}
    assert all(c.start + c.duration <= 30.4 for c in windows)
    assert describe(windows, read_headers=False)["total_duration"] == pytest.approx(5.0 * len(windows))
