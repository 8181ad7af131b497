"""Augmentation: measured effects of each waveform transform, SpecAugment masks, mixup, seeding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sonotype.errors import ConfigError, ParameterError
from sonotype.training.augment import (
    apply_waveform,
    augment_waveform,
    draw_waveform_params,
    feature_noise,
    mixup,
    spec_augment,
)
from sonotype.training.config import AugmentConfig

SR = 22050


def sine(freq: float = 440.0, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(y: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[np.argmax(spec)])


def params(**kw: object) -> dict:
    base = {
        "speed": None,
        "stretch": None,
        "pitch_semitones": None,
        "shift_s": None,
        "shift_mode": "circular",
        "gain_db": None,
        "noise_snr_db": None,
        "noise_seed": None,
    }
    return {**base, **kw}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_is_added_at_the_drawn_snr(seed: int) -> None:
    y = sine()
    cfg = AugmentConfig(copies=1, noise_snr_db=(0.0, 30.0))
    p = draw_waveform_params(cfg, np.random.default_rng(seed))
    out = apply_waveform(y, SR, p)
    noise = out.astype(np.float64) - y
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(noise**2))
    assert 0.0 <= p["noise_snr_db"] <= 30.0
    assert abs(measured - p["noise_snr_db"]) < 0.5
    assert out.dtype == np.float32 and out.shape == y.shape


def test_gain_scales_by_the_decibels() -> None:
    y = sine()
    out = apply_waveform(y, SR, params(gain_db=-6.0))
    assert 20 * np.log10(np.max(np.abs(out)) / np.max(np.abs(y))) == pytest.approx(-6.0, abs=1e-4)


def test_pitch_shift_moves_the_peak_by_the_semitone_ratio() -> None:
    y = sine(440.0)
    out = apply_waveform(y, SR, params(pitch_semitones=3.0))
    assert out.shape == y.shape
    assert peak_hz(out) == pytest.approx(440.0 * 2 ** (3 / 12), rel=0.01)


def test_time_stretch_changes_length_by_the_rate_and_keeps_pitch() -> None:
    y = sine(440.0, seconds=2.0)
    out = apply_waveform(y, SR, params(stretch=1.25))
    assert out.size == pytest.approx(y.size / 1.25, rel=0.01)
    assert peak_hz(out) == pytest.approx(440.0, rel=0.01)


def test_speed_changes_length_and_pitch_together() -> None:
    y = sine(440.0, seconds=2.0)
    out = apply_waveform(y, SR, params(speed=1.2))
    assert out.size == pytest.approx(y.size / 1.2, rel=0.01)
    assert peak_hz(out) == pytest.approx(440.0 * 1.2, rel=0.01)


def test_shift_circular_and_zero_fill() -> None:
    y = np.arange(1, 11, dtype=np.float32)
    sr = 10
    assert np.array_equal(apply_waveform(y, sr, params(shift_s=0.3)), np.roll(y, 3))
    zero = apply_waveform(y, sr, params(shift_s=-0.3, shift_mode="zero"))
    assert np.array_equal(zero, np.r_[y[3:], np.zeros(3, np.float32)])


def test_full_chain_is_seeded_and_finite() -> None:
    cfg = AugmentConfig(
        copies=2,
        noise_snr_db=(10, 20),
        gain_db=(-6, 6),
        shift_s=0.1,
        pitch_semitones=(-2, 2),
        pitch_p=1.0,
        stretch=(0.9, 1.1),
        stretch_p=1.0,
        speed=(0.9, 1.1),
        speed_p=1.0,
    )
    y = sine(330.0)
    a = augment_waveform(y, SR, cfg, np.random.default_rng(5))
    b = augment_waveform(y, SR, cfg, np.random.default_rng(5))
    c = augment_waveform(y, SR, cfg, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)
    assert a.dtype == np.float32 and np.isfinite(a).all()
    p = draw_waveform_params(cfg, np.random.default_rng(5))
    assert np.array_equal(apply_waveform(y, SR, json.loads(json.dumps(p))), a)  # a frozen draw replays


def test_probability_zero_skips_but_keeps_the_stream_aligned() -> None:
    on = AugmentConfig(copies=1, pitch_semitones=(-1, 1), pitch_p=1.0, noise_snr_db=(5, 10), noise_p=1.0)
    off = AugmentConfig(copies=1, pitch_semitones=(-1, 1), pitch_p=0.0, noise_snr_db=(5, 10), noise_p=0.0)
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    p_on, p_off = draw_waveform_params(on, r1), draw_waveform_params(off, r2)
    assert p_on["pitch_semitones"] is not None and p_off["pitch_semitones"] is None
    assert p_off["noise_snr_db"] is None and p_off["noise_seed"] is None
    assert r1.random() == r2.random()
    y = sine()
    assert np.array_equal(apply_waveform(y, SR, p_off), y)


def test_silence_gets_no_noise_and_bad_input_raises() -> None:
    z = np.zeros(100, np.float32)
    assert np.array_equal(apply_waveform(z, SR, params(noise_snr_db=10.0, noise_seed=1)), z)
    with pytest.raises(ParameterError, match="mono"):
        apply_waveform(np.zeros((2, 100)), SR, params())
    with pytest.raises(ParameterError, match="NaN"):
        apply_waveform(np.array([0.0, np.nan]), SR, params())


def test_config_validation_and_round_trip() -> None:
    cfg = AugmentConfig(
        copies=3, noise_snr_db=[5, 20], spec_time_masks=2, spec_time_width=10, mixup_alpha=0.2
    )
    assert cfg.noise_snr_db == (5.0, 20.0)
    again = AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert cfg.enabled_waveform and cfg.enabled_features and cfg.enabled_spec
    assert not AugmentConfig(copies=3).enabled_waveform
    assert not AugmentConfig(noise_snr_db=(1, 2)).enabled_waveform  # copies = 0
    for bad in (
        {"noise_snr_db": (20, 5)},
        {"pitch_p": 1.5},
        {"stretch": (0, 1)},
        {"copies": -1},
        {"shift_mode": "wrap"},
        {"gain_db": 3},
    ):
        with pytest.raises(ConfigError):
            AugmentConfig(**bad)
    with pytest.raises(ConfigError, match="unknown AugmentConfig"):
        AugmentConfig.from_dict({"noise": 1})


def test_spec_augment_masks_whole_rows_of_the_drawn_width() -> None:
    b, t, f, width = 16, 50, 12, 8
    cfg = AugmentConfig(spec_time_masks=1, spec_time_width=width)
    out = spec_augment(torch.ones(b, t, f), cfg, torch.Generator().manual_seed(0), time_axis=1, freq_axis=2)
    # replay the generator: the first draw is the B widths
    widths = torch.randint(0, width + 1, (b,), generator=torch.Generator().manual_seed(0))
    zero_rows = (out == 0).all(dim=2)
    assert torch.equal(zero_rows.sum(dim=1), widths)
    assert ((out == 0).any(dim=2) == zero_rows).all()  # whole rows only: frequency untouched
    for i in range(b):  # one contiguous block per item
        idx = torch.nonzero(zero_rows[i]).flatten()
        if idx.numel():
            assert idx[-1] - idx[0] + 1 == idx.numel()
    assert len(set(widths.tolist())) > 1


def test_spec_augment_frequency_masks_on_ft_layout() -> None:
    cfg = AugmentConfig(spec_freq_masks=2, spec_freq_width=3)
    x = torch.ones(32, 20, 40)  # (B, F, T)
    out = spec_augment(x, cfg, torch.Generator().manual_seed(1), time_axis=2, freq_axis=1)
    zero_bins = (out == 0).all(dim=2).sum(dim=1)
    assert ((out == 0).any(dim=2) == (out == 0).all(dim=2)).all()
    assert zero_bins.max() <= 6 and zero_bins.sum() > 0
    same = spec_augment(x, cfg, torch.Generator().manual_seed(1), time_axis=2, freq_axis=1)
    other = spec_augment(x, cfg, torch.Generator().manual_seed(2), time_axis=2, freq_axis=1)
    assert torch.equal(out, same) and not torch.equal(out, other)
    with pytest.raises(ParameterError):
        spec_augment(torch.ones(4, 10), cfg, torch.Generator(), time_axis=1, freq_axis=1)


def test_mixup_mixes_inputs_and_targets_alike() -> None:
    y = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    x = y.clone()  # inputs equal to targets: the same mix must come out
    xm, ym = mixup(x, y, 0.4, torch.Generator().manual_seed(0))
    assert torch.allclose(xm, ym)
    assert torch.allclose(ym.sum(dim=1), torch.ones(8))
    assert not torch.equal(ym, y)
    xs, ys = mixup(x, y, 0.0, torch.Generator())
    assert xs is x and ys is y


def test_feature_noise_has_the_requested_std() -> None:
    x = torch.zeros(200, 100)
    out = feature_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert float(out.std()) == pytest.approx(0.5, rel=0.02)
    assert feature_noise(x, 0.0, torch.Generator()) is x
