"""Prediction with saved models: files, arrays at other rates, bad input, segment timelines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sonotype
from conftest import write_wav
from sonotype.audio import resample
from sonotype.errors import AudioError, ParameterError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.represent import featurize
from sonotype.features.scaling import Standardizer
from sonotype.inference.modelio import save_model
from sonotype.inference.predict import Prediction
from sonotype.models.registry import build_model
from sonotype.training.config import TrainConfig
from sonotype.training.train import fit

SR = 8000
LABELS = ["low", "mid", "high"]
FREQS = {"low": 250.0, "mid": 900.0, "high": 2800.0}
FC = FeatureConfig(sr=SR, n_fft=512, hop_length=256, features=["rms", "centroid", "mfcc"], n_mfcc=13,
                   n_mels=40, tuning=0.0)


def _tone(label: str, seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = FREQS[label] * rng.uniform(0.9, 1.1)
    a, noise = rng.uniform(0.2, 0.6), rng.uniform(0.002, 0.03)
    return (a * np.sin(2 * np.pi * f * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def _train(tmp: Path, name: str, rc: RepresentationConfig, model: str, **params) -> Path:
    """A few epochs of a registry model on featurized synthetic tones (three pitch classes)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    Xs, ys = [], []
    for k, lab in enumerate(LABELS):
        for _ in range(12):
            items = featurize(_tone(lab, rng.uniform(0.8, 3.0), rng), SR, FC, rc)
            Xs.append(items)
            ys += [k] * len(items)
    X, y = np.concatenate(Xs), np.array(ys)
    scaler = Standardizer().fit(X)
    net = build_model(model, X.shape[1:], 3, seed=0, **params)
    fit(net, scaler.transform(X), y, config=TrainConfig(max_epochs=15, batch_size=16, patience=None, lr=3e-3),
        n_classes=3, progress=False)
    return save_model(tmp / name, network=net, labels=LABELS, feature_config=FC, representation=rc, scaler=scaler)


@pytest.fixture(scope="module")
def stats_model(tmp_path_factory: pytest.TempPathFactory):
    d = _train(tmp_path_factory.mktemp("p"), "tones", RepresentationConfig(kind="stats", stats=["mean", "std"]), "mlp-small")
    return sonotype.load_model(d)


@pytest.fixture(scope="module")
def window_model(tmp_path_factory: pytest.TempPathFactory):
    rc = RepresentationConfig(kind="windows", window=0.5, hop=0.25, last="pad")
    d = _train(tmp_path_factory.mktemp("w"), "tones-win", rc, "cnn1d-bn", channels=[16, 16], dropout=0.1)
    return sonotype.load_model(d)


def test_predict_file(stats_model, tmp_path: Path):
    rng = np.random.default_rng(7)
    f = write_wav(tmp_path / "high.wav", _tone("high", 2.0, rng), SR)
    p = stats_model.predict(f)
    assert isinstance(p, Prediction)
    assert p.label == "high" and p.path == str(f)
    assert p.duration == pytest.approx(2.0)
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert [(s.start, s.end) for s in p.segments] == [(0.0, 2.0)]  # stats model: one segment
    d = json.loads(json.dumps(p.to_dict()))
    assert d["label"] == "high" and d["segments"][0]["probabilities"] == pytest.approx(d["probabilities"])


def test_predict_array_at_other_rate_and_stereo(stats_model, tmp_path: Path):
    rng = np.random.default_rng(8)
    y22 = _tone("low", 1.5, rng, sr=22050)
    p = stats_model.predict(y22, 22050)
    assert p.label == "low" and p.path is None and p.duration == pytest.approx(1.5, abs=1e-3)
    same = stats_model.predict(resample(y22, 22050, SR), SR)
    assert p.probabilities == pytest.approx(same.probabilities, abs=1e-6)
    # a file at 22,050 Hz is resampled on load the same way
    f = write_wav(tmp_path / "low22.wav", y22, 22050)
    assert stats_model.predict(f).probabilities == pytest.approx(same.probabilities, abs=1e-4)
    # (channels, n) stereo is averaged to mono
    st = stats_model.predict(np.stack([y22, y22]), 22050)
    assert st.probabilities == pytest.approx(p.probabilities, abs=1e-5)
    # int16 PCM is scaled to [-1, 1] like a file read
    pcm = stats_model.predict((y22 * 32768).astype(np.int16), 22050)
    assert pcm.probabilities == pytest.approx(p.probabilities, abs=1e-3)
    with pytest.raises(ParameterError, match="sample rate"):
        stats_model.predict(y22)


def test_too_short_input(stats_model, tmp_path: Path):
    with pytest.raises(AudioError, match=r"too short: 0\.013 s \(100 samples at 8000 Hz\).*at least 0\.064 s \(512"):
        stats_model.predict(np.zeros(100, np.float32), SR)
    f = write_wav(tmp_path / "blip.wav", np.zeros(300, np.float32), 22050)  # 109 samples at 8 kHz
    with pytest.raises(AudioError, match=r"blip\.wav.*too short"):
        stats_model.predict(f)
    with pytest.raises(AudioError, match="NaN"):
        stats_model.predict(np.full(2000, np.nan, np.float32), SR)


def test_timeline_with_window_and_hop(stats_model):
    rng = np.random.default_rng(9)
    y = np.concatenate([_tone("low", 2.0, rng), _tone("high", 3.5, rng)])  # 5.5 s
    p = stats_model.predict(y, SR, window=2.0, hop=1.0)
    starts_ends = [(s.start, s.end) for s in p.segments]
    # full windows every second, then the 1.5 s tail kept at its real length (not padded)
    assert starts_ends == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 5.5)]
    assert p.segments[0].label == "low" and p.segments[-1].label == "high"
    seg = np.array([[s.probabilities[lab] for lab in LABELS] for s in p.segments])
    assert [p.probabilities[lab] for lab in LABELS] == pytest.approx(seg.mean(axis=0).tolist(), abs=1e-6)
    # a tail shorter than one analysis frame (512 samples) is dropped
    q = stats_model.predict(y[: 3 * SR + 100], SR, window=1.0)
    assert [(s.start, s.end) for s in q.segments] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    with pytest.raises(ParameterError, match="without window"):
        stats_model.predict(y, SR, hop=1.0)
    with pytest.raises(ParameterError, match="shorter than this model's minimum"):
        stats_model.predict(y, SR, window=0.01)


def test_window_model_own_windows_are_the_timeline(window_model):
    rng = np.random.default_rng(10)
    y = _tone("mid", 2.0, rng)
    p = window_model.predict(y, SR)
    # 63 frames; 0.5 s windows (16 frames) every round(0.25 s / 32 ms) = 8 frames (0.256 s):
    # starts at frames 0, 8, ..., 40, then the padded tail window at frame 48
    starts = [s.start for s in p.segments]
    np.testing.assert_allclose(starts, np.arange(7) * 8 * 256 / SR)
    assert all(s.end == pytest.approx(min(s.start + 0.5, 2.0)) for s in p.segments)
    assert p.label == "mid"
    # with an explicit window each segment averages its own windows
    q = window_model.predict(y, SR, window=1.0, hop=1.0)
    assert [(s.start, s.end) for s in q.segments] == [(0.0, 1.0), (1.0, 2.0)]


def test_predict_many_and_info(stats_model, tmp_path: Path):
    rng = np.random.default_rng(11)
    write_wav(tmp_path / "d" / "a.wav", _tone("mid", 1.0, rng), SR)
    (tmp_path / "d" / "b.wav").write_bytes(b"RIFF not audio at all")
    (tmp_path / "d" / "notes.txt").write_text("ignored")
    res = stats_model.predict_many([tmp_path / "d"])
    assert len(res) == 2
    assert isinstance(res[0], Prediction) and res[0].label == "mid"
    path, err = res[1]
    assert path.endswith("b.wav") and isinstance(err, AudioError)
    with pytest.raises(AudioError):
        stats_model.predict_many([tmp_path / "d"], on_error="raise")
    info = json.loads(json.dumps(stats_model.info()))
    assert info["labels"] == LABELS and info["sample_rate"] == SR and info["model_id"].startswith("tones-")
    assert info["architecture"]["name"] == "mlp-small" and info["features"]["n_mfcc"] == 13
    assert info["min_duration"] == pytest.approx(512 / SR)
