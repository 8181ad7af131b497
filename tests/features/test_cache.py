"""Feature cache: keyed by content and settings, atomic, resumable after a kill; parallel extraction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_wav
from sonotype.corpora.base import Clip, Skipped
from sonotype.features.cache import CacheWarning, FeatureCache
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.extract import build_dataset, extract_corpus

CFG = FeatureConfig(sr=16000, n_fft=1024, hop_length=256, features=["rms", "mfcc", "chroma"], n_mfcc=13)


def _clips(root: Path, n: int, seconds: float = 1.0, sr: int = 16000) -> list[Clip]:
    rng = np.random.default_rng(0)
    clips = []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        y = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.02 * rng.standard_normal(t.size)
        p = write_wav(root / f"c{i:02d}.wav", y.astype(np.float32), sr)
        clips.append(Clip(path=str(p), label=f"l{i % 2}", group=f"g{i // 2}"))
    return clips


def _values(results) -> list[np.ndarray]:
    return [ff.values for _, ff in results]


def test_rerun_hits_and_returns_identical_features(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 4)
    first = FeatureCache(tmp_path / "cache")
    a = list(extract_corpus(clips, CFG, cache_dir=first))
    assert (first.hits, first.misses, first.writes) == (0, 4, 4)
    second = FeatureCache(tmp_path / "cache")
    b = list(extract_corpus(clips, CFG, cache_dir=second))
    assert (second.hits, second.writes) == (4, 0)
    assert [i for i, _ in b] == [0, 1, 2, 3]
    for x, y in zip(_values(a), _values(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert b[0][1].groups == a[0][1].groups and b[0][1].names == a[0][1].names
    third = FeatureCache(tmp_path / "cache")  # a parallel rerun finds every hit in the parent
    c = list(extract_corpus(clips, CFG, cache_dir=third, jobs=2))
    assert (third.hits, third.misses, third.writes) == (4, 0, 0)
    np.testing.assert_array_equal(c[3][1].values, a[3][1].values)
    files = list((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 4
    with np.load(files[0], allow_pickle=False) as z:  # plain arrays, no pickled objects
        assert z["values"].dtype == np.float32


def test_changed_setting_file_or_clip_part_misses(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 2)
    root = tmp_path / "cache"
    list(extract_corpus(clips, CFG, cache_dir=root))
    other = FeatureCache(root)
    list(extract_corpus(clips, FeatureConfig.from_dict({**CFG.to_dict(), "n_mfcc": 12}), cache_dir=other))
    assert other.hits == 0 and other.writes == 2

    # Same size, same mtime, different content: must not return stale features.
    p = Path(clips[0].path)
    st = p.stat()
    before = next(extract_corpus(clips[:1], CFG, cache_dir=root))[1].values
    t = np.arange(16000) / 16000
    write_wav(p, (0.3 * np.sin(2 * np.pi * 900 * t)).astype(np.float32), 16000)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size
    changed = FeatureCache(root)
    after = next(extract_corpus(clips[:1], CFG, cache_dir=changed))[1].values
    assert changed.hits == 0 and not np.array_equal(before, after)

    part = Clip(path=clips[1].path, label="l1", group="g0", start=0.25, duration=0.5)
    parted = FeatureCache(root)
    ff = next(extract_corpus([part], CFG, cache_dir=parted))[1]
    assert parted.hits == 0 and ff.n_frames == 1 + 8000 // 256


def test_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 1)
    root = tmp_path / "cache"
    good = next(extract_corpus(clips, CFG, cache_dir=root))[1].values
    (f,) = list(root.rglob("*.npz"))
    f.write_bytes(b"not a zip file")
    again = FeatureCache(root)
    with pytest.warns(CacheWarning, match=r"not a \.npz \(zip\) file.*recomputing"):
        np.testing.assert_array_equal(next(extract_corpus(clips, CFG, cache_dir=again))[1].values, good)
    assert again.hits == 0 and again.writes == 1


def test_parallel_order_skips_and_dataset(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 5)
    bad = tmp_path / "audio" / "broken.wav"
    bad.write_text("this is not audio")
    clips.insert(2, Clip(path=str(bad), label="l0", group="gx"))
    clips.append(Clip(path=str(tmp_path / "missing.wav"), label="l1", group="gy"))
    serial = list(extract_corpus(clips, CFG, jobs=1))
    parallel = list(extract_corpus(clips, CFG, jobs=2, cache_dir=tmp_path / "cache"))
    assert [i for i, _ in parallel] == list(range(len(clips)))
    for (_, a), (_, b) in zip(serial, parallel, strict=True):
        assert type(a) is type(b)
        if isinstance(a, Skipped):
            assert a == b
        else:
            np.testing.assert_array_equal(a.values, b.values)
    skipped = [o for _, o in parallel if isinstance(o, Skipped)]
    assert [s.path for s in skipped] == [str(bad), str(tmp_path / "missing.wav")]
    assert "audio" in skipped[0].reason  # the loader's own words: not audio, corrupt, ...
    assert "not found" in skipped[1].reason

    ds = build_dataset(clips, CFG, RepresentationConfig(kind="windows", window=0.5, hop=0.25, last="drop"),
                       cache_dir=tmp_path / "cache", jobs=1)
    assert len(ds.clips) == 5 and len(ds.skipped) == 2
    assert ds.X.shape[1:] == (1 + 8000 // 256, 26) and ds.X.dtype == np.float32
    assert len(ds.labels()) == len(ds) == len(ds.groups())
    per_clip = np.bincount(ds.item_clip)
    assert per_clip.tolist() == [2] * 5  # 63 frames per clip: 32-frame windows at frames 0 and 16
    assert ds.groups()[0] == "g0" and ds.labels()[-1] == "l0"
    assert ds.feature_names[:2] == ["rms", "mfcc_01"]


SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from sonotype.corpora.base import Clip
    from sonotype.features.extract import extract_corpus
    from sonotype.features.config import FeatureConfig
    clips = [Clip.from_dict(d) for d in json.loads(open(sys.argv[1]).read())]
    cfg = FeatureConfig.from_dict(json.loads(open(sys.argv[2]).read()))
    marker, hold_at = Path(sys.argv[4]), int(sys.argv[5])
    # Hold the run inside the write of cache entry number hold_at: its temporary file is
    # written and fsynced, the rename into place has not happened. Say so, then wait to be killed.
    real_replace, renamed = os.replace, []
    def replace(src, dst, *a, **kw):
        if str(dst).endswith(".npz"):
            if len(renamed) + 1 == hold_at:
                marker.write_text(str(src))
                while True:
                    time.sleep(60)
            renamed.append(dst)
        return real_replace(src, dst, *a, **kw)
    os.replace = replace
    for _ in extract_corpus(clips, cfg, cache_dir=sys.argv[3]):
        pass
    """
)


def test_killed_run_loses_nothing_and_rerun_computes_only_the_rest(tmp_path: Path) -> None:
    """SIGKILL in the middle of writing the 4th entry: 3 whole entries, a stray temporary file,
    and a rerun that reads the 3, computes only the rest and gives the features of a fresh run."""
    import json

    clips = _clips(tmp_path / "audio", 8, seconds=1.0)
    cfg = FeatureConfig(sr=16000, n_fft=1024, hop_length=256, features=["contrast", "flatness", "mfcc"])
    (tmp_path / "clips.json").write_text(json.dumps([c.to_dict() for c in clips]))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    cache, marker, hold_at = tmp_path / "cache", tmp_path / "held", 4
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "clips.json"), str(tmp_path / "cfg.json"), str(cache),
         str(marker), str(hold_at)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120  # a generous bound on start-up, not a measurement
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the child never reached entry {hold_at}: {proc.stderr.read().decode()[-800:]}"
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(list(cache.rglob("*.npz")))
    assert done == hold_at - 1
    stray = Path(marker.read_text())
    assert stray.is_file() and stray.stat().st_size > 0 and not stray.name.endswith(".npz")  # the 4th, never renamed

    resumed = FeatureCache(cache)
    out = list(extract_corpus(clips, cfg, cache_dir=resumed))
    assert resumed.hits == done and resumed.misses == resumed.writes == len(clips) - done
    fresh = list(extract_corpus(clips, cfg))
    for (_, a), (_, b) in zip(out, fresh, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
