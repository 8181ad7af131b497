"""A truncated or garbled cache file is recomputed with a CacheWarning, never fatal.

Hypothesis breaks stored frame-feature files (``.npz``) and backbone embedding files the way
a full disk or a bad copy does; the next run must warn, recompute exactly the original
values, and store a good file again (the run after it hits).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from conftest import write_wav
from mutants import FUZZ, mutants
from sonotype.corpora.base import Clip
from sonotype.features.cache import CacheWarning, FeatureCache
from sonotype.features.config import FeatureConfig
from sonotype.features.extract import extract_corpus

SR = 16000
CFG = FeatureConfig(sr=SR, n_fft=512, hop_length=256, features=["rms", "centroid", "mfcc"], n_mfcc=13)


def _clip(root: Path, hz: float = 300.0) -> Clip:
    t = np.arange(SR // 2) / SR
    y = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return Clip(path=str(write_wav(root / f"c{int(hz)}.wav", y.astype(np.float32), SR)), label="a", group="g")


def _run(clip: Clip, root: Path, **kw) -> tuple[np.ndarray, FeatureCache, list[warnings.WarningMessage]]:
    cache = FeatureCache(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ((_, ff),) = list(extract_corpus([clip], CFG, cache_dir=cache, **kw))
    return ff.values, cache, [w for w in caught if issubclass(w.category, CacheWarning)]


@pytest.mark.timeout(120)
def test_garbled_feature_cache_file_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "audio")
    root = tmp_path / "cache"
    good, _, _ = _run(clip, root)
    (f,) = list(root.rglob("*.npz"))
    stored = f.read_bytes()
    warned = 0

    @settings(FUZZ, max_examples=60)
    @given(mutants(stored))
    def fuzz(data: bytes) -> None:
        nonlocal warned
        f.write_bytes(data)
        values, cache, caught = _run(clip, root)
        np.testing.assert_array_equal(values, good)
        if cache.hits:  # the damage missed everything that is read (e.g. a zip timestamp)
            assert not caught and cache.writes == 0
            return
        assert cache.misses == cache.writes == 1
        assert len(caught) == 1 and str(f) in str(caught[0].message) and "recomputing" in str(caught[0].message)
        warned += 1
        again, cache, caught = _run(clip, root)  # rewritten: the next run hits, silently
        assert cache.hits == 1 and not caught
        np.testing.assert_array_equal(again, good)

    fuzz()
    assert warned >= 40  # most mutants do break the file


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),  # BadZipFile, fatal before
        pytest.param(lambda b: b[:-30] + bytes(30), id="zeroed-tail"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b"not a zip file", id="text"),
    ],
)
def test_damaged_feature_cache_file_in_a_parallel_run(tmp_path: Path, damage) -> None:
    """With jobs=2 the parent reads known hits itself: a bad one warns there and is recomputed."""
    clips = [_clip(tmp_path / "audio", hz) for hz in (300.0, 500.0)]
    root = tmp_path / "cache"
    good = [ff.values for _, ff in extract_corpus(clips, CFG, cache_dir=root)]
    first = FeatureCache(root).file_for(FeatureCache(root).key(clips[0].path, CFG))
    first.write_bytes(damage(first.read_bytes()))
    cache = FeatureCache(root)
    with pytest.warns(CacheWarning, match="unreadable.*recomputing"):
        out = [ff.values for _, ff in extract_corpus(clips, CFG, cache_dir=cache, jobs=2)]
    for a, b in zip(out, good, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (cache.hits, cache.writes) == (1, 1)


def test_missing_cache_file_is_a_silent_miss(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "audio")
    values, cache, caught = _run(clip, tmp_path / "cache")
    assert cache.misses == 1 and not caught and values.shape[1] == 15


# ----------------------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random wav2vec2 (as in test_backbones), saved locally: no network, no weights."""
    tf = pytest.importorskip("transformers", reason="needs the optional extra: pip install 'sonotype[backbones]'")
    torch.manual_seed(0)
    conf = tf.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    d = tmp_path_factory.mktemp("tiny-wav2vec2")
    tf.Wav2Vec2Model(conf).save_pretrained(d)
    tf.Wav2Vec2FeatureExtractor().save_pretrained(d)
    return d


@pytest.mark.timeout(120)
def test_garbled_embedding_cache_file_is_recomputed_with_a_warning(tmp_path: Path, backbone_dir: Path) -> None:
    from sonotype.backbones.config import BackboneConfig
    from sonotype.backbones.load import load_backbone
    from sonotype.items.embeddings import build_embedding_dataset

    torch.set_num_threads(1)
    clips = [_clip(tmp_path / "audio", hz) for hz in (300.0, 700.0)]
    cfg = BackboneConfig(str(backbone_dir), batch_size=2)
    bb = load_backbone(cfg)
    root = tmp_path / "cache"
    good = build_embedding_dataset(clips, cfg, cache_dir=root, backbone=bb).X
    files = sorted((root / "embeddings").rglob("*.npz"))
    assert len(files) == 2
    stored = {f: f.read_bytes() for f in files}
    warned = 0

    @settings(FUZZ, max_examples=25)
    @given(mutants(stored[files[0]]))
    def fuzz(data: bytes) -> None:
        nonlocal warned
        for f, b in stored.items():
            f.write_bytes(b)
        files[0].write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            X = build_embedding_dataset(clips, cfg, cache_dir=root, backbone=bb).X
        np.testing.assert_allclose(X, good, rtol=0, atol=1e-6)  # recomputed, or read back intact
        ours = [w for w in caught if issubclass(w.category, CacheWarning)]
        assert len(ours) <= 1
        if ours:
            assert str(files[0]) in str(ours[0].message)
            assert files[0].read_bytes() != data  # a good file was stored again
            warned += 1

    fuzz()
    assert warned >= 15
