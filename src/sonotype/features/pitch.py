"""Fundamental frequency (prosody) on the shared frame grid.

Emotion in speech lives largely in the pitch contour, which spectral features only hint at.
:func:`f0` runs ``librosa.yin`` with the engine's frame settings (frame length ``n_fft``, hop,
centring), so its frames line up with every other frame feature, and returns two columns:

- ``f0``: log2 of the YIN estimate in Hz (octaves; a pitch shift is then a constant offset),
  with unvoiced frames filled by linear interpolation between the neighbouring voiced frames,
  so clip statistics (mean, std, percentiles) describe the voiced contour, not YIN's guesses
  in silence;
- ``f0_voiced``: 1 where the frame is voiced, else 0 (its mean is the voiced fraction).

A frame counts as voiced when its energy is within ``VOICED_DB`` of the clip's loudest frame
and YIN's estimate lies strictly inside ``(f0_fmin, f0_fmax)`` (YIN answers a bound when it
finds no period).
"""

from __future__ import annotations

import librosa
import numpy as np

from sonotype.errors import ConfigError
from sonotype.features.config import FeatureConfig

__all__ = ["VOICED_DB", "f0"]

VOICED_DB = 30.0  # frames quieter than the loudest by more than this are unvoiced


def _yin(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    fmin, fmax = float(cfg.f0_fmin), float(cfg.f0_fmax)
    max_period = cfg.n_fft - cfg.n_fft // 2 - 1  # librosa.yin's win_length default is frame_length // 2
    if fmin < cfg.sr / max_period:
        raise ConfigError(f"f0_fmin {fmin} Hz is too low for n_fft {cfg.n_fft} at {cfg.sr} Hz (>= {cfg.sr / max_period:.1f} Hz)")
    return librosa.yin(
        np.asarray(y, dtype=np.float32), fmin=fmin, fmax=fmax, sr=int(cfg.sr), frame_length=int(cfg.n_fft),
        hop_length=int(cfg.hop_length), center=bool(cfg.center), pad_mode=cfg.pad_mode,
    )


def f0(y: np.ndarray, cfg: FeatureConfig, *, rms: np.ndarray | None = None) -> np.ndarray:
    """Log-f0 contour and voicing flag of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono signal at ``cfg.sr``.
    cfg : FeatureConfig
        ``n_fft`` (YIN frame length), ``hop_length``, ``center``, ``pad_mode``, ``f0_fmin``,
        ``f0_fmax``.
    rms : np.ndarray [shape=(n_frames,) or (n_frames, 1)], optional
        Frame RMS on the same grid (computed with librosa when not given).

    Returns
    -------
    np.ndarray [shape=(n_frames, 2)], float32
        Columns ``f0`` (log2 Hz, unvoiced frames interpolated; a clip with no voiced frame
        gets ``log2(f0_fmin)`` throughout) and ``f0_voiced`` (0 or 1).

    Examples
    --------
    >>> import numpy as np
    >>> cfg = FeatureConfig(sr=16000, n_fft=1024, hop_length=256, features=["f0"])
    >>> t = np.arange(16000) / 16000
    >>> out = f0(np.sin(2 * np.pi * 200 * t).astype(np.float32), cfg)
    >>> round(float(2 ** np.median(out[:, 0])))
    200
    """
    hz = _yin(y, cfg)
    if rms is None:
        rms = librosa.feature.rms(
            y=np.asarray(y, dtype=np.float32), frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=cfg.center,
            pad_mode=cfg.pad_mode,
        )[0]
    e = np.asarray(rms, dtype=np.float64).reshape(-1)[: hz.size]
    db = 20.0 * np.log10(np.maximum(e, 1e-10))
    lo, hi = float(cfg.f0_fmin), float(cfg.f0_fmax)
    voiced = (db >= db.max() - VOICED_DB) & (hz > lo * 1.01) & (hz < hi * 0.99) & (e > 1e-6)
    logf = np.log2(np.clip(hz, lo, hi))
    idx = np.flatnonzero(voiced)
    if idx.size == 0:
        filled = np.full(hz.shape, np.log2(lo))
    else:
        filled = np.interp(np.arange(hz.size), idx, logf[idx])
    return np.stack([filled, voiced.astype(np.float64)], axis=1).astype(np.float32)
