"""Representations, column selection, names and featurize's checks."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.errors import AudioError, ConfigError, ParameterError
from sonotype.features.config import FeatureConfig, RepresentationConfig, preset
from sonotype.features.frames import FrameFeatures, compute_frames
from sonotype.features.represent import featurize, represent, represent_names, select_columns

GROUPS = {"rms": (0, 1), "centroid": (1, 2), "bandwidth": (2, 3), "rolloff": (3, 4), "zcr": (4, 5), "mfcc": (5, 25), "chroma": (25, 37)}


def _ff(n_frames: int = 50, sr: int = 22050, hop: int = 512) -> FrameFeatures:
    values = np.arange(n_frames * 37, dtype=np.float32).reshape(n_frames, 37)
    names = ["rms", "centroid", "bandwidth", "rolloff", "zcr"] + [f"mfcc_{i:02d}" for i in range(1, 21)] + [f"chroma_{i}" for i in range(12)]
    return FrameFeatures(values, names, dict(GROUPS), sr, hop)


def test_select_columns_by_name_range_and_mix() -> None:
    assert select_columns(GROUPS, None).tolist() == list(range(37))
    assert select_columns(GROUPS, "mfcc").tolist() == list(range(5, 25))
    assert select_columns(GROUPS, "0-4,25-36").tolist() == [*range(5), *range(25, 37)]
    assert select_columns(GROUPS, "rms, chroma").tolist() == [0, *range(25, 37)]
    assert select_columns(GROUPS, "3,1,3").tolist() == [3, 1]


@pytest.mark.parametrize("spec", ["0-37", "40", "5-2", "spectral", "1-2-3"])
def test_select_columns_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="select"):
        select_columns(GROUPS, spec)


def test_stats_layout_and_names() -> None:
    ff = _ff(11)
    r = RepresentationConfig(kind="stats", stats=["mean", "std", "p90"], select="rms,mfcc")
    x = represent(ff, r)
    names = represent_names(ff, r)
    assert x.shape == (1, 3 + 60) and x.dtype == np.float32
    assert names[:3] == ["rms_mean", "rms_std", "rms_p90"]
    assert names[3:5] == ["mfcc_01_mean", "mfcc_02_mean"] and names[23] == "mfcc_01_std"
    col = ff.values[:, 0]
    np.testing.assert_allclose(x[0, :3], [col.mean(), col.std(), np.percentile(col, 90)], rtol=1e-6)
    np.testing.assert_allclose(x[0, 3:23], ff.values[:, 5:25].mean(axis=0), rtol=1e-6)


def test_names_from_config_match_computed_names() -> None:
    fcfg, rcfg = preset("gtzan37")
    fcfg.max_duration = None
    ff = compute_frames(np.random.default_rng(5).standard_normal(9000).astype(np.float32), fcfg)
    assert represent_names(fcfg, rcfg) == represent_names(ff, rcfg) == [f"{n}_mean" for n in ff.names]
    frames = RepresentationConfig(kind="frames", select="0-4")
    assert represent_names(fcfg, frames) == ["rms", "centroid", "bandwidth", "rolloff", "zcr"]


def test_stats_rejects_unknown_statistic() -> None:
    with pytest.raises(ConfigError, match="unknown statistic"):
        represent(_ff(), RepresentationConfig(kind="stats", stats=["mode"]))


def test_frames_keep_rows_and_selection() -> None:
    ff = _ff(20)
    x = represent(ff, RepresentationConfig(kind="frames", select="25-36"))
    np.testing.assert_array_equal(x, ff.values[:, 25:37])


def test_windows_follow_the_seed_geometry() -> None:
    # 30 s at 22,050 Hz, hop 512 -> 1292 frames; 5 s windows every 1 s -> 216 frames each.
    ff = _ff(1292)
    r = RepresentationConfig(kind="windows", window=5.0, hop=1.0, last="drop", select="mfcc")
    x = represent(ff, r)
    assert x.shape[1:] == (216, 20)
    assert x.shape[0] == (1292 - 216) // 43 + 1
    np.testing.assert_array_equal(x[1], ff.values[43 : 43 + 216, 5:25])


def test_window_tail_policies() -> None:
    ff = _ff(100)
    base = {"kind": "windows", "window": 40 * 512 / 22050, "hop": 30 * 512 / 22050}
    drop = represent(ff, RepresentationConfig(**base, last="drop"))
    pad = represent(ff, RepresentationConfig(**base, last="pad"))
    keep = represent(ff, RepresentationConfig(**base, last="keep"))
    # 41-frame windows every 30 frames over 100 frames: full windows at 0 and 30; the tail
    # from frame 60 is dropped, zero-padded, or kept as the last 41 frames.
    assert drop.shape[0] == 2 and pad.shape[0] == 3 and keep.shape[0] == 3
    np.testing.assert_array_equal(pad[-1, :40], ff.values[60:])
    assert np.all(pad[-1, 40:] == 0)
    np.testing.assert_array_equal(keep[-1], ff.values[100 - 41 :])
    short = represent(_ff(10), RepresentationConfig(**base, last="drop"))
    assert short.shape == (0, 41, 37)


def test_logmel_patches_are_feature_by_time_and_pad_with_the_floor() -> None:
    fcfg = FeatureConfig(sr=16000, n_fft=512, hop_length=160, features=["rms", "logmel"], n_mels=40)
    y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    ff = compute_frames(y, fcfg)
    x = represent(ff, RepresentationConfig(kind="logmel", window=0.4, hop=0.25))
    a, b = ff.groups["logmel"]
    assert x.shape == (4, 40, 41)  # 101 frames: windows at 0, 25, 50 and a padded one at 75
    np.testing.assert_array_equal(x[0], ff.values[:41, a:b].T)
    np.testing.assert_array_equal(x[-1][:, :26], ff.values[75:, a:b].T)
    assert np.all(x[-1][:, 26:] == ff.values[:, a:b].min())


def test_featurize_resamples_cuts_and_checks_length() -> None:
    fcfg, rcfg = preset("gtzan37")
    fcfg.max_duration = 1.0
    y = np.random.default_rng(1).standard_normal(2 * 44100).astype(np.float32) * 0.1
    x = featurize(y, 44100, fcfg, rcfg)
    assert x.shape == (1, 37)
    ff = compute_frames(np.zeros(22050, np.float32), fcfg)
    assert ff.n_frames == 1 + 22050 // 512
    with pytest.raises(AudioError, match=r"clip\.wav.*too short"):
        featurize(np.zeros(100, np.float32), 22050, fcfg, rcfg, path="clip.wav")
    with pytest.raises(AudioError, match="NaN"):
        featurize(np.full(9000, np.nan, np.float32), 22050, fcfg, rcfg, path="bad.wav")


def test_feature_names_and_groups_follow_config_order() -> None:
    cfg = FeatureConfig(features=["chroma", "mfcc_delta", "contrast", "tonnetz"], n_mfcc=5)
    ff = compute_frames(np.random.default_rng(2).standard_normal(8000).astype(np.float32), cfg)
    assert list(ff.groups) == ["chroma", "mfcc_delta", "contrast", "tonnetz"]
    assert ff.groups == {"chroma": (0, 12), "mfcc_delta": (12, 17), "contrast": (17, 24), "tonnetz": (24, 30)}
    assert ff.names[0] == "chroma_C" and ff.names[12] == "mfcc_delta_01" and ff.names[-1] == "tonnetz_major_y"
    assert ff.values.dtype == np.float32 and ff.values.shape == (1 + 8000 // 512, 30)


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="Nyquist"):
        compute_frames(np.zeros(4000, np.float32), FeatureConfig(sr=8000, features=["contrast"]))
    with pytest.raises(ConfigError, match="n_mfcc"):
        compute_frames(np.zeros(4000, np.float32), FeatureConfig(features=["mfcc"], n_mfcc=200))
    with pytest.raises(ConfigError, match="preset"):
        preset("nope")
    with pytest.raises(AudioError, match="too short"):
        compute_frames(np.zeros(100, np.float32), FeatureConfig(center=False))
    with pytest.raises(ParameterError, match="mono"):  # a bad argument, not a bad config
        compute_frames(np.zeros((2, 100), np.float32), FeatureConfig())
