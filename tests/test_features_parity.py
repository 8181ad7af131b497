"""Every frame feature against librosa's own function with the same settings.

Error measure per feature: ``max|ours - librosa| / max|librosa|`` over the clip (exact
comparison where librosa's output is all zeros). Bound: 1e-4 for every feature; measured
errors are ~1e-7 (float32 rounding). Two stated exceptions:

- roll-off is a bin frequency found with a float64 running sum; librosa's float32 running
  sum has a rounding error about as large as one bin's energy at 85 % of the total, so up to
  2 % of frames (measured 0.2-1.2 % on GTZAN) pick the neighbouring bin, sr / n_fft Hz apart.
  The clip mean still agrees to better than 1e-4.
- zero-crossing rate is an integer count: exact.
- MFCC deltas are measured on the MFCC's own scale (see ``assert_parity``).

Bandwidth, contrast and flatness run on librosa's float64 transform, so their spectra are
bit-equal to librosa's; the float32 path is checked separately without them.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest

from conftest import data_dir
from sonotype.audio import load
from sonotype.features import FeatureConfig, compute_frames, featurize
from sonotype.features.bench import relative_error, seed_features
from sonotype.features.config import preset

ALL = ["rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness", "contrast", "chroma",
       "mel", "logmel", "mfcc", "mfcc_delta", "mfcc_delta2", "tonnetz"]
SPECTRAL_ONLY = [f for f in ALL if f not in ("bandwidth", "contrast", "flatness")]  # the float32-FFT path


def librosa_reference(y: np.ndarray, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Each feature as its own librosa call (frames as rows)."""
    sr = cfg.sr
    k = {"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "center": cfg.center}
    tuning = None if cfg.tuning == "estimate" else cfg.tuning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on silence ("empty frequency set")
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg.n_mfcc, n_mels=cfg.n_mels, **k)
        chroma = librosa.feature.chroma_stft(y=y, sr=sr, tuning=tuning, n_chroma=cfg.n_chroma, **k)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=cfg.n_mels, **k)
        ref = {
            "rms": librosa.feature.rms(y=y, frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=cfg.center),
            "zcr": librosa.feature.zero_crossing_rate(y, frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=cfg.center),
            "centroid": librosa.feature.spectral_centroid(y=y, sr=sr, **k),
            "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr, **k),
            "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr, **k),
            "flatness": librosa.feature.spectral_flatness(y=y, **k),
            "contrast": librosa.feature.spectral_contrast(y=y, sr=sr, **k),
            "chroma": chroma,
            "mel": mel,
            "logmel": librosa.power_to_db(mel, top_db=cfg.top_db),
            "mfcc": mfcc,
            "mfcc_delta": librosa.feature.delta(mfcc),
            "mfcc_delta2": librosa.feature.delta(mfcc, order=2),
            "tonnetz": librosa.feature.tonnetz(chroma=chroma),
        }
    return {name: v.T for name, v in ref.items() if name in cfg.features}


def assert_parity(y: np.ndarray, cfg: FeatureConfig, tol: float = 1e-4) -> dict[str, float]:
    ff = compute_frames(y, cfg)
    ref = librosa_reference(y, cfg)
    errors = {}
    for name, (a, b) in ff.groups.items():
        ours, theirs = ff.values[:, a:b], ref[name]
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        scale = float(np.abs(theirs).max())
        diff = np.abs(ours - theirs)
        if name == "rolloff":
            bin_hz = cfg.sr / cfg.n_fft
            off = diff[:, 0] > 1e-3
            assert off.mean() <= 0.02, f"rolloff: {off.sum()} of {len(off)} frames differ"
            assert np.all(diff[off] <= bin_hz * 1.001), f"rolloff differs by more than one bin: {diff.max()}"
            errors[name] = float(np.abs(ours.mean() - theirs.mean()) / max(scale, 1e-30))
            assert errors[name] <= tol
            continue
        if name == "zcr":
            np.testing.assert_array_equal(ours, theirs.astype(np.float32))
            errors[name] = 0.0
            continue
        if name.startswith("mfcc_delta"):
            # A delta is a short linear filter over MFCC frames: its rounding error is bounded
            # by the MFCC's, so it is measured on the MFCC's scale (on silence, where the MFCC
            # are constant, both deltas are pure rounding noise around 0).
            mf = librosa.feature.mfcc(y=y, sr=cfg.sr, n_mfcc=cfg.n_mfcc, n_mels=cfg.n_mels, n_fft=cfg.n_fft,
                                      hop_length=cfg.hop_length, center=cfg.center)
            scale = max(scale, float(np.abs(mf).max()))
        err = float(diff.max() / scale) if scale > 0 else float(diff.max())
        errors[name] = err
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"
    return errors


def _signals(sr: int) -> dict[str, np.ndarray]:
    t = np.arange(int(1.5 * sr)) / sr
    rng = np.random.default_rng(7)
    return {
        "sine": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "high_tone": (0.3 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32),
        "chirp": (0.5 * np.sin(2 * np.pi * (100 * t + 2000 * t**2))).astype(np.float32),
        "noise": (0.1 * rng.standard_normal(t.size)).astype(np.float32),
        "silence": np.zeros(t.size, dtype=np.float32),
        "silence_then_tone": np.concatenate([np.zeros(t.size // 2), 0.5 * np.sin(2 * np.pi * 330 * t[: t.size - t.size // 2])]).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_signals(22050)))
def test_synthetic_signals_match_librosa(name: str) -> None:
    cfg = FeatureConfig(features=ALL)
    assert_parity(_signals(22050)[name], cfg)


@pytest.mark.parametrize("name", ["sine", "chirp", "noise", "silence"])
def test_float32_path_and_seed_fft_size_match_librosa(name: str) -> None:
    # Without contrast/flatness the STFT runs in float32; n_fft 8192 as in the seeds.
    cfg = FeatureConfig(n_fft=8192, hop_length=512, features=SPECTRAL_ONLY, n_mfcc=13)
    assert_parity(_signals(22050)[name], cfg)


def test_fixed_tuning_other_sizes_and_sample_rate() -> None:
    y = _signals(16000)["chirp"]
    cfg = FeatureConfig(sr=16000, n_fft=1024, hop_length=256, n_mels=64, n_mfcc=30, tuning=0.25,
                        features=["chroma", "mel", "mfcc", "tonnetz", "centroid"])
    assert_parity(y, cfg)


def test_uncentred_frames_and_a_hop_that_does_not_divide_n_fft() -> None:
    y = _signals(22050)["chirp"]
    assert_parity(y, FeatureConfig(n_fft=1024, hop_length=300, center=False, features=ALL))
    assert_parity(y, FeatureConfig(n_fft=1024, hop_length=300, features=["rms", "zcr", "mfcc", "rolloff"]))


def test_silence_matches_librosa_zero_conventions() -> None:
    ff = compute_frames(np.zeros(22050, np.float32), FeatureConfig(features=["centroid", "bandwidth", "rolloff", "chroma", "flatness"]))
    v = ff.values
    assert np.all(v[:, :3] == 0)  # librosa: normalised-to-1 division skipped on silence
    assert np.all(v[:, 3:15] == 0)
    np.testing.assert_allclose(v[:, 15], 1.0, rtol=1e-5)  # flatness of a floor-only spectrum


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("parts", "seconds"),
    [
        (("gtzan", "genres_original", "jazz", "jazz.00000.wav"), 8.0),
        (("ravdess", "Actor_01", "03-01-05-01-01-01-01.flac"), None),
        (("tess", "OAF_angry", "OAF_check_angry.wav"), None),
    ],
)
def test_real_files_match_librosa(parts: tuple[str, ...], seconds: float | None) -> None:
    path = data_dir(*parts)
    y, _ = load(path, sr=22050, duration=seconds)
    errors = assert_parity(y, FeatureConfig(features=ALL))
    assert max(errors.values()) < 1e-4


@pytest.mark.realdata
def test_seed_37_mean_vector_matches_seed_pipeline() -> None:
    path = data_dir("gtzan", "genres_original", "blues", "blues.00000.wav")
    fcfg, rcfg = preset("gtzan37")
    y, sr = load(path)
    ours = featurize(y, sr, fcfg, rcfg, path=path)
    ref = seed_features(path)
    assert ours.shape == (1, 37)
    assert relative_error(ours[0], ref) < 1e-4
    # Every single value relative to itself, too (no mean is near zero in this clip).
    np.testing.assert_allclose(ours[0], ref, rtol=1e-4)
