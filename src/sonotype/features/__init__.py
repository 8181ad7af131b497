"""Feature engine: librosa-exact frame features from one STFT, representations, scaling, cache.

>>> from sonotype.features import FeatureConfig, RepresentationConfig, featurize
"""

from __future__ import annotations

from .cache import CACHE_VERSION, FeatureCache, default_cache_dir
from .config import FRAME_FEATURES, FeatureConfig, RepresentationConfig, preset
from .extract import Dataset, build_dataset, extract_clip, extract_corpus
from .frames import FrameFeatures, compute_frames, feature_names, frame_layout
from .represent import featurize, represent, represent_names, select_columns, window_frames
from .scaling import Standardizer

__all__ = [
    "CACHE_VERSION",
    "FRAME_FEATURES",
    "Dataset",
    "FeatureCache",
    "FeatureConfig",
    "FrameFeatures",
    "RepresentationConfig",
    "Standardizer",
    "build_dataset",
    "compute_frames",
    "default_cache_dir",
    "extract_clip",
    "extract_corpus",
    "feature_names",
    "featurize",
    "frame_layout",
    "preset",
    "represent",
    "represent_names",
    "select_columns",
    "window_frames",
]
