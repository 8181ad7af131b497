"""Feature engine: librosa-exact frame features from one STFT, representations, scaling, cache.

Every frame feature is also a function called like librosa's, returning
``(n_features, n_frames)``: :func:`centroid`, :func:`bandwidth`, :func:`rolloff`,
:func:`flatness`, :func:`contrast`, :func:`rms`, :func:`zcr`, :func:`chroma`, :func:`tonnetz`,
:func:`mel`, :func:`logmel`, :func:`mfcc`, :func:`mfcc_delta`, :func:`mfcc_delta2`, :func:`f0`.

>>> import numpy as np
>>> from sonotype.features import centroid
>>> centroid(y=np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050), sr=22050).shape
(1, 44)
"""

from __future__ import annotations

from sonotype.features.functional import (
    bandwidth,
    centroid,
    chroma,
    contrast,
    f0,
    flatness,
    logmel,
    mel,
    mfcc,
    mfcc_delta,
    mfcc_delta2,
    rms,
    rolloff,
    tonnetz,
    zcr,
)

__all__ = [
    "bandwidth",
    "centroid",
    "chroma",
    "contrast",
    "f0",
    "flatness",
    "logmel",
    "mel",
    "mfcc",
    "mfcc_delta",
    "mfcc_delta2",
    "rms",
    "rolloff",
    "tonnetz",
    "zcr",
]
