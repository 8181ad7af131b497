"""Training settings as typed sections of a run config: the training loop and the augmentation.

Plain dataclasses with no torch import, so a run config loads (and is checked) without the
training machinery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sonotype.config.parse import check_fields, strict_from_dict
from sonotype.errors import ConfigError
from sonotype.utils.shards import wants_memmap

__all__ = ["MONITORS", "AugmentConfig", "TrainConfig"]

# The waveform transforms drawn from a range ([low, high]).
_RANGES = ("noise_snr_db", "gain_db", "pitch_semitones", "stretch", "speed")
# What early stopping and the saved epoch may watch.
MONITORS = ("val_balanced_accuracy", "val_accuracy", "val_loss")


@dataclass
class AugmentConfig:
    """Augmentation settings; the defaults switch everything off.

    Waveform transforms (each applied with its probability ``*_p`` when its range is set;
    values drawn uniformly in ``(min, max)``), applied in this order:
    ``speed`` (rate; 1.1 = 10 % faster and higher, length / rate, via soxr resampling),
    ``stretch`` (rate; length / rate, pitch kept, librosa phase vocoder),
    ``pitch_semitones`` (librosa pitch shift, length kept),
    ``shift_s`` (shift by up to +- that many seconds; ``shift_mode`` circular or zero-fill),
    ``gain_db``, and last ``noise_snr_db`` (white noise at that SNR relative to the
    transformed clip). ``copies`` augmented versions are made per training clip (0 = off).

    Feature transforms, per training batch: ``spec_time_masks`` masks of up to
    ``spec_time_width`` frames and ``spec_freq_masks`` masks of up to ``spec_freq_width``
    bins (SpecAugment; for (T, F) and (F, T) inputs), ``mixup_alpha`` (Beta(a, a) mixing
    of pairs and their one-hot targets; 0 = off) and ``feature_noise_std`` (Gaussian noise
    in standardised units; 0 = off).
    """

    copies: int = 0
    noise_snr_db: tuple[float, float] | None = None
    noise_p: float = 1.0
    gain_db: tuple[float, float] | None = None
    gain_p: float = 1.0
    shift_s: float | None = None
    shift_mode: Literal["circular", "zero"] = "circular"
    shift_p: float = 1.0
    pitch_semitones: tuple[float, float] | None = None
    pitch_p: float = 0.5
    stretch: tuple[float, float] | None = None
    stretch_p: float = 0.5
    speed: tuple[float, float] | None = None
    speed_p: float = 0.5
    spec_time_masks: int = 0
    spec_time_width: int = 0
    spec_freq_masks: int = 0
    spec_freq_width: int = 0
    mixup_alpha: float = 0.0
    feature_noise_std: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        for name in _RANGES:
            value = getattr(self, name)
            if value is None:
                continue
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"augment {name} must be a (min, max) pair, got {value!r}") from None
            if lo > hi:
                raise ConfigError(f"augment {name} needs min <= max, got {value!r}")
            if name in ("stretch", "speed") and lo <= 0:
                raise ConfigError(f"augment {name} rates must be > 0, got {value!r}")
            setattr(self, name, (lo, hi))
        for name in ("noise_p", "gain_p", "shift_p", "pitch_p", "stretch_p", "speed_p"):
            p = getattr(self, name)
            if not 0.0 <= float(p) <= 1.0:
                raise ConfigError(f"augment {name} must be a probability in [0, 1], got {p!r}")
        if self.shift_s is not None and self.shift_s < 0:
            raise ConfigError(f"augment shift_s must be >= 0 seconds, got {self.shift_s!r}")
        if self.shift_mode not in ("circular", "zero"):
            raise ConfigError(f"augment shift_mode must be 'circular' or 'zero', got {self.shift_mode!r}")
        for name in ("copies", "spec_time_masks", "spec_time_width", "spec_freq_masks", "spec_freq_width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"augment {name} must be an integer >= 0, got {v!r}")
        if self.mixup_alpha < 0 or self.feature_noise_std < 0:
            raise ConfigError(
                f"augment mixup_alpha and feature_noise_std must be >= 0, got {self.mixup_alpha}, "
                f"{self.feature_noise_std}"
            )

    @property
    def enabled_waveform(self) -> bool:
        """True when the pipeline should make augmented copies of the training clips."""
        return self.copies > 0 and any(getattr(self, n) is not None for n in (*_RANGES, "shift_s"))

    @property
    def enabled_spec(self) -> bool:
        """True when SpecAugment masks are configured (needs (T, F) or (F, T) items)."""
        return bool(
            (self.spec_time_masks and self.spec_time_width) or (self.spec_freq_masks and self.spec_freq_width)
        )

    @property
    def enabled_features(self) -> bool:
        """True when :func:`sonotype.training.train.fit` has batch-level work to do."""
        return bool(self.enabled_spec or self.mixup_alpha > 0 or self.feature_noise_std > 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in _RANGES:
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        return strict_from_dict(cls, d)


@dataclass
class TrainConfig:
    """Training settings (saved beside every run).

    ``patience`` epochs without improvement of ``monitor`` (by more than ``min_delta``)
    stop training (None = never stop early); ``plateau_patience`` epochs without
    improvement multiply the learning rate by ``plateau_factor`` (None = off). Without a
    validation set the model trains for ``max_epochs``, the plateau rule watches the
    training loss, and the final weights are kept. ``class_weights`` weights the loss
    by inverse class frequency in the training labels (``n / (k * n_c)``).
    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` during training.
    ``precision: bf16`` runs the training forward pass under bfloat16 autocast on CPUs with
    native bfloat16 (AVX512-BF16 or AMX; elsewhere, where it would be slower, a warning and
    float32): for the RAVDESS 1D CNN 1.8x faster per batch, 1.4x per epoch (measured). Weights,
    optimiser, validation and prediction stay float32.
    ``memmap`` (auto | true | false) keeps the items in memory-mapped ``.npy`` shards on disk
    (:mod:`sonotype.utils.shards`), read batch by batch: ``auto`` above 2 GiB of items
    (``$SONOTYPE_MEMMAP_BYTES``), so a set larger than RAM trains with bounded RSS.

    Parameters
    ----------
    optimizer : {"adam", "adamw", "sgd"}
    lr, momentum, weight_decay : float
        Learning rate; SGD momentum; L2 (adamw: decoupled) weight decay.
    batch_size, max_epochs : int
    patience : int, optional
        Early-stopping patience in epochs (None: never stop early).
    monitor : {"val_balanced_accuracy", "val_accuracy", "val_loss"}
    min_delta : float
        Smallest change of ``monitor`` that counts as an improvement.
    plateau_factor : float
        Learning-rate factor on a plateau.
    plateau_patience : int, optional
        Epochs without improvement before the rate is cut (None: off).
    label_smoothing : float
        In [0, 1).
    class_weights : bool
        Weight the loss by inverse class frequency.
    seed : int
        Batch order (and, through the estimator, the initialisation).
    num_threads : int, optional
        torch threads while training (None: torch's default).
    deterministic : bool
    precision : {"fp32", "bf16"}
    memmap : {"auto", True, False}
        Memory-mapped shards for the items (see above).

    Examples
    --------
    >>> TrainConfig(max_epochs=30, patience=None).patience is None
    True
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 100
    patience: int | None = 10
    monitor: Literal["val_balanced_accuracy", "val_accuracy", "val_loss"] = "val_balanced_accuracy"
    min_delta: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int | None = 5
    label_smoothing: float = 0.0
    class_weights: bool = False
    seed: int = 0
    num_threads: int | None = None
    deterministic: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    memmap: str | bool = "auto"

    def __post_init__(self) -> None:
        check_fields(self)

        wants_memmap(self.memmap, 0)  # auto | true | false, checked here
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(
                f"lr must be > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}"
            )
        for name in ("batch_size", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("patience", "plateau_patience"):
            v = getattr(self, name)
            if v is not None and int(v) < 0:
                raise ConfigError(f"{name} must be >= 0 or None, got {v}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ConfigError(f"num_threads must be >= 1 or None, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, d)
