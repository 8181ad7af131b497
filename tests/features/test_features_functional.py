"""The librosa-style feature functions against librosa, from a waveform and from a spectrogram.

Same error measure and bounds as ``test_features_parity.py`` (whose docstring derives them
and says what depends on the CPU): ``max|ours - librosa| / max|librosa|`` <= 1e-4, bandwidth
2e-5, zero-crossing rate exact, roll-off allowed one bin in <= 2 % of frames. The inputs are
synthetic (a chirp with harmonics, noise, a silent gap), so no data is needed.
"""

from __future__ import annotations

import inspect
import warnings

import librosa
import numpy as np
import pytest

import sonotype.features as F
from sonotype.errors import AudioError, ConfigError, ParameterError
from sonotype.features.config import FRAME_FEATURES, FeatureConfig
from sonotype.features.frames import compute_frames

SR = 22050
K = {"n_fft": 2048, "hop_length": 512}


def _signal(sr: int = SR, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(7)
    chirp = sum(np.sin(2 * np.pi * h * (220 * t + 300 * t**2)) / h for h in (1, 2, 3))
    y = 0.4 * chirp + 0.05 * rng.standard_normal(t.size)
    y[int(0.6 * sr) : int(0.8 * sr)] = 0.0  # silent frames: librosa's 0-centroid rule
    return y.astype(np.float32)


Y = _signal()


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = float(np.abs(ref).max())
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    return diff / scale if scale > 0 else diff


def _lib(fn, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(**kw)


MAG = np.abs(librosa.stft(Y, **K))
POW = MAG**2
MEL = _lib(librosa.feature.melspectrogram, y=Y, sr=SR, **K)
LOGMEL = librosa.power_to_db(MEL, top_db=80.0)
MFCC = _lib(librosa.feature.mfcc, y=Y, sr=SR, n_mfcc=20, **K)
CHROMA = _lib(librosa.feature.chroma_stft, y=Y, sr=SR, **K)

# name -> (ours from y, ours from S, librosa's value, bound)
CASES = {
    "centroid": (lambda: F.centroid(y=Y, sr=SR), lambda: F.centroid(S=MAG, sr=SR),
                 lambda: librosa.feature.spectral_centroid(y=Y, sr=SR, **K), 1e-4),
    "bandwidth": (lambda: F.bandwidth(y=Y, sr=SR), lambda: F.bandwidth(S=MAG, sr=SR),
                  lambda: librosa.feature.spectral_bandwidth(y=Y, sr=SR, **K), 2e-5),
    "flatness": (lambda: F.flatness(y=Y), lambda: F.flatness(S=MAG),
                 lambda: librosa.feature.spectral_flatness(y=Y, **K), 1e-4),
    "contrast": (lambda: F.contrast(y=Y, sr=SR), lambda: F.contrast(S=MAG, sr=SR),
                 lambda: librosa.feature.spectral_contrast(y=Y, sr=SR, **K), 1e-4),
    "chroma": (lambda: F.chroma(y=Y, sr=SR), lambda: F.chroma(S=POW, sr=SR), lambda: CHROMA, 1e-4),
    "mel": (lambda: F.mel(y=Y, sr=SR), lambda: F.mel(S=POW, sr=SR), lambda: MEL, 1e-4),
    "logmel": (lambda: F.logmel(y=Y, sr=SR), lambda: F.logmel(S=POW, sr=SR), lambda: LOGMEL, 1e-4),
    "mfcc": (lambda: F.mfcc(y=Y, sr=SR), lambda: F.mfcc(S=LOGMEL, sr=SR), lambda: MFCC, 1e-4),
    "rms": (lambda: F.rms(y=Y), lambda: F.rms(S=MAG),
            lambda: librosa.feature.rms(y=Y, frame_length=2048, hop_length=512), 1e-4),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_librosa_from_waveform(name: str) -> None:
    ours, _, ref, bound = CASES[name]
    out = ours()
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert rel_err(out, ref()) <= bound


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_librosa_from_spectrogram(name: str) -> None:
    _, ours, ref, bound = CASES[name]
    if name == "rms":  # librosa's S formula is Parseval over a windowed frame: compare with it
        expected = librosa.feature.rms(S=MAG, frame_length=2048)
    elif name in ("mel", "logmel", "mfcc", "chroma"):
        expected = ref()
    else:
        fn = {"centroid": librosa.feature.spectral_centroid, "bandwidth": librosa.feature.spectral_bandwidth,
              "flatness": librosa.feature.spectral_flatness, "contrast": librosa.feature.spectral_contrast}[name]
        expected = _lib(fn, S=MAG, **({} if name == "flatness" else {"sr": SR}))
    assert rel_err(ours(), expected) <= bound


def test_rolloff_within_one_bin_of_librosa() -> None:
    for out in (F.rolloff(y=Y, sr=SR), F.rolloff(S=MAG, sr=SR)):
        ref = librosa.feature.spectral_rolloff(y=Y, sr=SR, **K)
        assert out.shape == ref.shape == (1, 1 + Y.size // 512)
        off = np.abs(out - ref) > 1e-3
        assert off.mean() <= 0.02
        assert np.all(np.abs(out - ref)[off] <= SR / 2048 * 1.001)
    ours = F.rolloff(y=Y, sr=SR, roll_percent=0.5)
    ref = librosa.feature.spectral_rolloff(y=Y, sr=SR, roll_percent=0.5, **K)
    assert np.mean(np.abs(ours - ref) > 1e-3) <= 0.02


def test_zcr_is_librosas_exactly() -> None:
    for kw in ({}, {"frame_length": 1024, "hop_length": 300}, {"center": False}):
        np.testing.assert_array_equal(F.zcr(Y, **kw), librosa.feature.zero_crossing_rate(Y, **kw).astype(np.float32))


def test_deltas_and_tonnetz_match_librosa() -> None:
    scale = float(np.abs(MFCC).max())  # deltas on the MFCC's own scale (see test_features_parity)
    for order, fn in ((1, F.mfcc_delta), (2, F.mfcc_delta2)):
        ref = librosa.feature.delta(MFCC, order=order)
        assert float(np.abs(fn(y=Y, sr=SR) - ref).max()) / scale <= 1e-4
        assert float(np.abs(fn(mfcc=MFCC) - ref).max()) / scale <= 1e-5  # the filter alone
    ref = librosa.feature.delta(MFCC, width=5)
    assert float(np.abs(F.mfcc_delta(mfcc=MFCC, width=5) - ref).max()) / scale <= 1e-5
    tz = librosa.feature.tonnetz(chroma=CHROMA)
    assert rel_err(F.tonnetz(y=Y, sr=SR), tz) <= 1e-4
    assert rel_err(F.tonnetz(chroma=CHROMA), tz) <= 1e-5


def test_other_settings_follow_librosa() -> None:
    """Non-default frames, window and mel settings reach the transform."""
    k = {"n_fft": 1024, "hop_length": 256, "win_length": 800, "window": "hamming", "center": False}
    ref = librosa.feature.spectral_centroid(y=Y, sr=16000, **k)
    assert rel_err(F.centroid(Y, 16000, **k), ref) <= 1e-4
    mel = _lib(librosa.feature.melspectrogram, y=Y, sr=SR, n_mels=40, fmin=100.0, fmax=6000.0, **K)
    assert rel_err(F.mel(Y, SR, n_mels=40, fmin=100.0, fmax=6000.0), mel) <= 1e-4
    mf = _lib(librosa.feature.mfcc, y=Y, sr=SR, n_mfcc=13, n_mels=40, **K)
    assert rel_err(F.mfcc(Y, SR, n_mfcc=13, n_mels=40), mf) <= 1e-4
    ch = _lib(librosa.feature.chroma_stft, y=Y, sr=SR, tuning=0.0, n_chroma=24, **K)
    assert rel_err(F.chroma(Y, SR, tuning=0.0, n_chroma=24), ch) <= 1e-4
    con = librosa.feature.spectral_contrast(y=Y, sr=SR, fmin=100.0, n_bands=5, quantile=0.05, **K)
    assert rel_err(F.contrast(Y, SR, fmin=100.0, n_bands=5, quantile=0.05), con) <= 1e-4


def test_f0_agrees_with_yin_on_voiced_frames() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    y = (0.5 * np.sin(2 * np.pi * (150 * t + 50 * t**2))).astype(np.float32)  # 150 -> 250 Hz
    out = F.f0(y, sr, frame_length=1024, hop_length=256)
    hz = librosa.yin(y, fmin=65.0, fmax=500.0, sr=sr, frame_length=1024, hop_length=256)
    assert out.shape == (2, hz.size)
    voiced = out[1] == 1.0
    assert voiced.mean() > 0.9
    np.testing.assert_allclose(2.0 ** out[0, voiced], hz[voiced], rtol=1e-5)


@pytest.mark.parametrize("name", [f for f in FRAME_FEATURES if f != "f0"])
def test_same_values_as_the_training_path(name: str) -> None:
    """Each function equals the matching block of ``compute_frames`` (same code, transposed)."""
    ff = compute_frames(Y, FeatureConfig(features=[name]))
    fn = getattr(F, name)
    np.testing.assert_array_equal(fn(Y, SR) if name != "rms" and name != "zcr" else fn(Y), ff.values.T)


def test_every_frame_feature_is_a_function_with_librosa_names() -> None:
    for name in FRAME_FEATURES:
        fn = getattr(F, name)
        params = inspect.signature(fn).parameters
        assert "y" in params, name
        if name in ("centroid", "bandwidth", "rolloff", "flatness", "contrast", "chroma", "mel", "logmel", "mfcc"):
            assert {"sr", "S", "n_fft", "hop_length", "win_length", "window", "center", "pad_mode"} <= set(params)
            assert params["sr"].default == 22050 and params["hop_length"].default == 512


def test_input_errors_are_specific() -> None:
    with pytest.raises(ParameterError, match="exactly one of y"):
        F.centroid()
    with pytest.raises(ParameterError, match="not both"):
        F.centroid(y=Y, S=MAG)
    with pytest.raises(ParameterError, match="mono signal"):
        F.centroid(y=np.stack([Y, Y]))
    with pytest.raises(ParameterError, match="1025 frequency rows, which is n_fft=2048, not n_fft=1024"):
        F.centroid(S=MAG, n_fft=1024)
    with pytest.raises(ParameterError, match="finite and >= 0"):
        F.centroid(S=-MAG)
    with pytest.raises(ParameterError, match="frame_length"):
        F.rms(S=MAG, frame_length=1024)
    with pytest.raises(ConfigError, match="n_mfcc"):  # the FeatureConfig check, at construction
        F.mfcc(Y, n_mfcc=30, n_mels=20)
    with pytest.raises(AudioError, match="too short"):
        F.centroid(Y[:100], center=False)
    with pytest.raises(ConfigError, match="roll_percent"):
        F.rolloff(Y, roll_percent=1.5)
    with pytest.raises(ParameterError, match="one of y, S or mfcc"):
        F.mfcc_delta(Y, mfcc=MFCC)
    with pytest.raises(ParameterError, match="order 2"):
        F.mfcc_delta2(Y, order=1)


def test_low_sample_rates_work() -> None:
    """The f0 search range (unused here) does not refuse a rate below 1 kHz."""
    y = np.sin(2 * np.pi * 100 * np.arange(800) / 800)
    ref = librosa.feature.spectral_centroid(y=y, sr=800, n_fft=256, hop_length=64)
    assert rel_err(F.centroid(y, 800, n_fft=256, hop_length=64), ref) <= 1e-4
    with pytest.raises(ParameterError, match="sr must be an integer"):
        F.centroid(y, sr=0)


def test_n_fft_follows_the_spectrogram() -> None:
    mag = np.abs(librosa.stft(Y, n_fft=1024, hop_length=256))
    ref = librosa.feature.spectral_centroid(S=mag, sr=SR)  # librosa infers n_fft = 1024 too
    assert rel_err(F.centroid(S=mag, sr=SR), ref) <= 1e-4
