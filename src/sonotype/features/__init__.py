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

from sonotype.features.cache import CACHE_VERSION, FeatureCache, default_cache_dir
from sonotype.features.config import FRAME_FEATURES, FeatureConfig, RepresentationConfig, preset
from sonotype.features.extract import Dataset, build_dataset, extract_clip, extract_corpus
from sonotype.features.frames import FrameFeatures, compute_frames, feature_names, frame_layout
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
from sonotype.features.represent import featurize, represent, represent_names, select_columns, window_frames
from sonotype.features.scaling import Standardizer

__all__ = [
    "CACHE_VERSION",
    "FRAME_FEATURES",
    "Dataset",
    "FeatureCache",
    "FeatureConfig",
    "FrameFeatures",
    "RepresentationConfig",
    "Standardizer",
    "bandwidth",
    "build_dataset",
    "centroid",
    "chroma",
    "compute_frames",
    "contrast",
    "default_cache_dir",
    "extract_clip",
    "extract_corpus",
    "f0",
    "feature_names",
    "featurize",
    "flatness",
    "frame_layout",
    "logmel",
    "mel",
    "mfcc",
    "mfcc_delta",
    "mfcc_delta2",
    "preset",
    "represent",
    "represent_names",
    "rms",
    "rolloff",
    "select_columns",
    "tonnetz",
    "window_frames",
    "zcr",
]
