"""Frame-level feature matrices: which features, in which order, under which column names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sonotype.audio import check_length
from sonotype.errors import ConfigError, ParameterError
from sonotype.features import pitch, spectral, tonal
from sonotype.features.config import FeatureConfig
from sonotype.features.spectral import Spectrum
from sonotype.utils.threads import one_blas_thread

__all__ = ["FrameFeatures", "active_frames", "compute_frames", "feature_names", "feature_width", "frame_layout", "one_blas_thread"]

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
TONNETZ_NAMES = ("fifth_x", "fifth_y", "minor_x", "minor_y", "major_x", "major_y")


@dataclass
class FrameFeatures:
    """Per-frame features of one clip.

    Attributes
    ----------
    values : np.ndarray [shape=(n_frames, n_features)], float32
        With ``FeatureConfig.active_db`` set, only the active frames (the rest are dropped).
    names : list of str
        One per column, e.g. ``"rms"``, ``"mfcc_01"``, ``"chroma_C"``.
    groups : dict
        Feature name -> column range ``(start, stop)``, in ``FeatureConfig.features`` order.
    sr, hop_length : int
        Frame ``t`` starts at sample ``t * hop_length`` (centred frames: is centred there).

    Examples
    --------
    >>> ff = compute_frames(np.zeros(8000, np.float32), FeatureConfig(sr=8000, features=["rms", "chroma"]))
    >>> ff.n_frames, ff.groups["chroma"], ff.names[1]
    (16, (1, 13), 'chroma_C')
    """

    values: np.ndarray
    names: list[str]
    groups: dict[str, tuple[int, int]]
    sr: int
    hop_length: int

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])


def feature_width(name: str, cfg: FeatureConfig) -> int:
    """Number of columns feature ``name`` takes under ``cfg``.

    Parameters
    ----------
    name : str
        A frame feature (:data:`~sonotype.features.FRAME_FEATURES`).
    cfg : FeatureConfig

    Returns
    -------
    int

    Examples
    --------
    >>> feature_width("contrast", FeatureConfig()), feature_width("mfcc", FeatureConfig(n_mfcc=13))
    (7, 13)
    """
    return len(feature_names(name, cfg))


def feature_names(name: str, cfg: FeatureConfig) -> list[str]:
    """Column names of feature ``name`` under ``cfg``.

    Parameters
    ----------
    name : str
        A frame feature (:data:`~sonotype.features.FRAME_FEATURES`).
    cfg : FeatureConfig

    Returns
    -------
    list of str

    Examples
    --------
    >>> feature_names("f0", FeatureConfig()), feature_names("mfcc", FeatureConfig(n_mfcc=2))
    (['f0', 'f0_voiced'], ['mfcc_01', 'mfcc_02'])
    """
    if name in ("rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness"):
        return [name]
    if name == "contrast":
        return [f"contrast_{i}" for i in range(int(cfg.contrast_bands) + 1)]
    if name == "chroma":
        if cfg.n_chroma == 12:
            return [f"chroma_{p}" for p in PITCH_CLASSES]
        return [f"chroma_{i:02d}" for i in range(cfg.n_chroma)]
    if name in ("mel", "logmel"):
        return [f"{name}_{i:03d}" for i in range(cfg.n_mels)]
    if name in ("mfcc", "mfcc_delta", "mfcc_delta2"):
        return [f"{name}_{i:02d}" for i in range(1, cfg.n_mfcc + 1)]
    if name == "tonnetz":
        return [f"tonnetz_{n}" for n in TONNETZ_NAMES]
    if name == "f0":
        return ["f0", "f0_voiced"]
    raise ConfigError(f"unknown frame feature {name!r}")


def frame_layout(cfg: FeatureConfig) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Column names and feature groups :func:`compute_frames` will produce, without audio.

    Parameters
    ----------
    cfg : FeatureConfig

    Returns
    -------
    names : list of str
        One per column.
    groups : dict
        Feature -> column range ``(start, stop)``.

    Examples
    --------
    >>> names, groups = frame_layout(FeatureConfig(features=["rms", "contrast"]))
    >>> len(names), groups
    (8, {'rms': (0, 1), 'contrast': (1, 8)})
    """
    names: list[str] = []
    groups: dict[str, tuple[int, int]] = {}
    for feat in cfg.features:
        cols = feature_names(feat, cfg)
        groups[feat] = (len(names), len(names) + len(cols))
        names.extend(cols)
    return names, groups


def active_frames(rms: np.ndarray, active_db: float) -> np.ndarray:
    """Mask of frames whose RMS is within ``active_db`` dB of the loudest (``FeatureConfig.active_db``).

    Parameters
    ----------
    rms : np.ndarray [shape=(n_frames,)]
        Frame RMS (linear).
    active_db : float
        Range kept below the loudest frame, dB.

    Returns
    -------
    np.ndarray [shape=(n_frames,)], bool

    Examples
    --------
    >>> active_frames(np.array([1.0, 0.1, 0.001]), 30.0)
    array([ True,  True, False])
    """
    db = 20.0 * np.log10(np.maximum(np.asarray(rms, dtype=np.float64), 1e-10))
    return db >= db.max() - active_db


def _chroma(sp: Spectrum, memo: dict[str, np.ndarray]) -> np.ndarray:
    if "chroma" not in memo:
        memo["chroma"] = tonal.chroma(sp)
    return memo["chroma"]


_SIMPLE: dict[str, Callable[[Spectrum], np.ndarray]] = {
    "rms": spectral.rms,
    "zcr": spectral.zcr,
    "centroid": spectral.centroid,
    "bandwidth": spectral.bandwidth,
    "rolloff": spectral.rolloff,
    "flatness": spectral.flatness,
    "contrast": spectral.contrast,
    "mel": spectral.mel,
    "logmel": spectral.logmel,
    "mfcc": spectral.mfcc,
    "mfcc_delta": spectral.mfcc_delta,
    "mfcc_delta2": lambda sp: spectral.mfcc_delta(sp, order=2),
}


def compute_frames(y: np.ndarray, cfg: FeatureConfig) -> FrameFeatures:
    """Every feature of ``cfg.features`` from one STFT of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono signal, already at ``cfg.sr`` (see :func:`sonotype.features.featurize` for files).
    cfg : FeatureConfig
        Which features (``cfg.features``, in output order) and their settings.

    Returns
    -------
    FrameFeatures
        ``values`` is (n_frames, n_features) float32 with ``n_frames = 1 + n // hop_length``
        for centred frames, exactly librosa's frame count.

    Examples
    --------
    >>> import numpy as np
    >>> ff = compute_frames(np.zeros(22050, np.float32), FeatureConfig())
    >>> ff.values.shape, ff.names[:2]
    ((44, 37), ['rms', 'centroid'])
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"compute_frames needs a mono 1-D signal, got shape {y.shape}")
    check_length(y, 1 if cfg.center else int(cfg.n_fft))
    with one_blas_thread():
        return _compute(y, cfg)


def _compute(y: np.ndarray, cfg: FeatureConfig) -> FrameFeatures:
    sp = Spectrum(y, cfg, precise=spectral.needs_precise(cfg.features))
    memo: dict[str, np.ndarray] = {}
    blocks: list[np.ndarray] = []
    names: list[str] = []
    groups: dict[str, tuple[int, int]] = {}
    for feat in cfg.features:
        if feat == "chroma":
            block = _chroma(sp, memo)
        elif feat == "tonnetz":
            block = tonal.tonnetz(_chroma(sp, memo))
        elif feat == "f0":
            block = pitch.f0(sp.y, cfg, rms=spectral.rms(sp))
        else:
            block = _SIMPLE[feat](sp)
        cols = feature_names(feat, cfg)
        groups[feat] = (len(names), len(names) + len(cols))
        names.extend(cols)
        blocks.append(np.asarray(block, dtype=np.float32))
    values = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    if cfg.active_db is not None:
        values = values[active_frames(spectral.rms(sp)[:, 0], float(cfg.active_db))]
    return FrameFeatures(np.ascontiguousarray(values, dtype=np.float32), names, groups, int(cfg.sr), int(cfg.hop_length))
