"""Prosody and silence: the ``f0`` frame feature (parity with librosa.yin, voicing, frame grid) and ``active_db``."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from conftest import data_dir
from sonotype.audio import load
from sonotype.errors import ConfigError
from sonotype.features.cache import FeatureCache
from sonotype.features.config import FeatureConfig
from sonotype.features.frames import active_frames, compute_frames
from sonotype.features.pitch import f0

SR = 16000


def _cfg(**kw: object) -> FeatureConfig:
    base: dict = {"sr": SR, "n_fft": 1024, "hop_length": 256, "features": ["rms", "f0"]}
    base.update(kw)
    return FeatureConfig(**base)


def _yin(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    return librosa.yin(y, fmin=cfg.f0_fmin, fmax=cfg.f0_fmax, sr=cfg.sr, frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=cfg.center)


def test_sine_gives_its_pitch_and_matches_yin() -> None:
    t = np.arange(SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    cfg = _cfg()
    ff = compute_frames(y, cfg)
    a, b = ff.groups["f0"]
    assert ff.names[a:b] == ["f0", "f0_voiced"]
    out = ff.values[:, a:b]
    ref = _yin(y, cfg)
    assert out.shape == (ref.size, 2) == (1 + y.size // 256, 2)
    voiced = out[:, 1] == 1
    assert voiced[3:-3].all()  # steady tone: voiced away from the padded edges
    np.testing.assert_allclose(out[voiced, 0], np.log2(ref[voiced]), rtol=0, atol=1e-5)
    assert np.median(2 ** out[:, 0]) == pytest.approx(220.0, rel=0.005)


def test_silence_is_unvoiced_and_filled() -> None:
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 150.0 * t)).astype(np.float32)
    y = np.concatenate([tone, np.zeros(SR, np.float32), tone])
    out = f0(y, _cfg())
    mid = slice(100, 120)  # frames well inside the silent second
    assert (out[mid, 1] == 0).all()
    np.testing.assert_allclose(2 ** out[mid, 0], 150.0, rtol=0.03)  # interpolated from both sides (edge frames are a little off)
    none = f0(np.zeros(SR, np.float32), _cfg())
    assert (none[:, 1] == 0).all() and np.allclose(none[:, 0], np.log2(65.0))


def test_config_checks_and_cache_keys_unchanged_without_f0() -> None:
    with pytest.raises(ConfigError, match="f0_fmin"):
        _cfg(f0_fmin=600.0)
    with pytest.raises(ConfigError, match="too low"):
        f0(np.zeros(SR, np.float32), _cfg(n_fft=256, hop_length=64))
    plain = FeatureConfig(sr=SR)
    assert "f0_fmin" not in plain.to_dict()  # old configs keep their saved form and cache keys
    assert FeatureConfig.from_dict(plain.to_dict()) == plain
    with_f0 = _cfg(f0_fmax=400.0)
    assert FeatureConfig.from_dict(with_f0.to_dict()) == with_f0
    k1 = FeatureCache._key("d", with_f0, 0.0, None)
    assert k1 != FeatureCache._key("d", _cfg(), 0.0, None)


@pytest.mark.realdata
def test_real_ravdess_file_matches_yin() -> None:
    path = data_dir("ravdess", "Actor_01", "03-01-05-02-01-01-01.flac")
    y, _ = load(path, sr=SR)
    cfg = _cfg()
    out = compute_frames(y, cfg).values[:, 1:3]
    ref = _yin(y, cfg)
    voiced = out[:, 1] == 1
    assert 0.2 < voiced.mean() < 0.9  # a spoken sentence between silences
    np.testing.assert_allclose(out[voiced, 0], np.log2(ref[voiced]), rtol=0, atol=1e-5)
    assert 150.0 < np.median(2 ** out[voiced, 0]) < 400.0  # actor 1 (male) shouting in anger: ~330 Hz


def test_active_db_keeps_only_loud_frames() -> None:
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 150.0 * t)).astype(np.float32)
    y = np.concatenate([np.zeros(SR, np.float32), tone, 1e-3 * tone, np.zeros(SR, np.float32)])  # -54 dB middle part
    full = compute_frames(y, _cfg(features=["rms", "mfcc"]))
    act = compute_frames(y, _cfg(features=["rms", "mfcc"], active_db=30.0))
    keep = active_frames(full.values[:, 0], 30.0)
    np.testing.assert_array_equal(act.values, full.values[keep])  # the same frames, computed in full context
    assert abs(int(keep.sum()) - SR // 256) <= 4  # about the tone's second; the quiet copy and silence dropped
    assert act.values[:, 0].min() >= full.values[:, 0].max() * 10 ** (-30 / 20)
    with pytest.raises(ConfigError, match="active_db"):
        _cfg(active_db=0.0)
    assert "active_db" not in _cfg().to_dict() and _cfg(active_db=30.0).to_dict()["active_db"] == 30.0
