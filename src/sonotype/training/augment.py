"""Seeded data augmentation: waveform transforms before featurising, feature transforms per batch.

Waveform part (seed E: noise, speed, pitch, shift; plus gain and time stretch): the
pipeline makes ``copies`` augmented versions of every *training* clip with
:func:`augment_waveform` and featurises them like the originals. Drawing the random
parameters (:func:`draw_waveform_params`) is separate from applying them
(:func:`apply_waveform`), as in audiomentations, so a draw can be logged, frozen and
replayed. Written by hand rather than with audiomentations: each transform is a line
of numpy/librosa/soxr, and this keeps every draw on one ``numpy.random.Generator``.

Feature part (applied inside :func:`sonotype.training.train.fit`, training batches only):
SpecAugment time/frequency masks, mixup with soft targets, Gaussian feature noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import librosa
import numpy as np
import soxr
import torch

from sonotype.config.parse import check_fields, strict_from_dict
from sonotype.errors import ConfigError, ParameterError

__all__ = [
    "AugmentConfig",
    "apply_waveform",
    "augment_waveform",
    "draw_waveform_params",
    "feature_noise",
    "mixup",
    "spec_augment",
]

_RANGES = ("noise_snr_db", "gain_db", "pitch_semitones", "stretch", "speed")


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


def draw_waveform_params(cfg: AugmentConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one set of waveform-transform parameters (JSON-ready; None = transform skipped).

    The number of draws depends on ``cfg`` only, never on the outcomes, so the stream of
    a generator stays aligned across clips.
    """

    def draw(rng_range: tuple[float, float] | None, p: float) -> float | None:
        if rng_range is None:
            return None
        on = rng.random() < p
        value = float(rng.uniform(*rng_range))
        return value if on else None

    params: dict[str, Any] = {
        "speed": draw(cfg.speed, cfg.speed_p),
        "stretch": draw(cfg.stretch, cfg.stretch_p),
        "pitch_semitones": draw(cfg.pitch_semitones, cfg.pitch_p),
        "shift_s": draw(None if cfg.shift_s is None else (-cfg.shift_s, cfg.shift_s), cfg.shift_p),
        "shift_mode": cfg.shift_mode,
        "gain_db": draw(cfg.gain_db, cfg.gain_p),
        "noise_snr_db": draw(cfg.noise_snr_db, cfg.noise_p),
        "noise_seed": None,
    }
    if cfg.noise_snr_db is not None:
        seed = int(rng.integers(2**63 - 1))
        params["noise_seed"] = seed if params["noise_snr_db"] is not None else None
    return params


def apply_waveform(y: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
    """Apply a drawn parameter set (from :func:`draw_waveform_params`) to a mono clip.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    sr : int
        Its sample rate.
    params : dict
        Keys speed, stretch, pitch_semitones, shift_s, shift_mode, gain_db,
        noise_snr_db, noise_seed; a None value skips that transform.

    Returns
    -------
    np.ndarray, float32, shape (m,)
        m = n unless speed or stretch changed the length (about n / rate).
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"augmentation needs a non-empty mono waveform, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ParameterError("augmentation input contains NaN or infinite samples")
    if int(sr) <= 0:
        raise ParameterError(f"sr must be > 0, got {sr}")
    out = y.astype(np.float32, copy=True)
    if params.get("speed") is not None:
        out = soxr.resample(out, float(sr) * params["speed"], float(sr)).astype(np.float32)
    if params.get("stretch") is not None:
        out = librosa.effects.time_stretch(out, rate=float(params["stretch"]))
    if params.get("pitch_semitones") is not None:
        out = librosa.effects.pitch_shift(out, sr=int(sr), n_steps=float(params["pitch_semitones"]))
    if params.get("shift_s") is not None:
        out = _shift(out, round(float(params["shift_s"]) * sr), params.get("shift_mode", "circular"))
    if params.get("gain_db") is not None:
        out = out * np.float32(10.0 ** (float(params["gain_db"]) / 20.0))
    if params.get("noise_snr_db") is not None:
        out = _add_noise(out, float(params["noise_snr_db"]), int(params["noise_seed"]))
    out = np.asarray(out, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ParameterError(f"augmentation produced non-finite samples with parameters {params}")
    return out


def augment_waveform(y: np.ndarray, sr: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random draw of the waveform chain: ``apply_waveform(y, sr, draw_waveform_params(cfg, rng))``.

    Examples
    --------
    >>> cfg = AugmentConfig(copies=2, noise_snr_db=(10, 30), pitch_semitones=(-2, 2))
    >>> y_aug = augment_waveform(y, 22050, cfg, np.random.default_rng(0))  # doctest: +SKIP
    """
    return apply_waveform(y, sr, draw_waveform_params(cfg, rng))


def _shift(y: np.ndarray, n: int, mode: str) -> np.ndarray:
    if n == 0:
        return y
    if mode == "circular":
        return np.roll(y, n)
    out = np.zeros_like(y)
    if abs(n) < y.size:
        if n > 0:
            out[n:] = y[:-n]
        else:
            out[:n] = y[-n:]
    return out


def _add_noise(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White Gaussian noise scaled so that 10 log10(P_signal / P_noise) is exactly ``snr_db``."""
    power = float(np.mean(y.astype(np.float64) ** 2))
    if power == 0.0:
        return y  # silence has no SNR to honour
    noise = np.random.default_rng(seed).standard_normal(y.size)
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0) / np.mean(noise**2))
    return (y + noise).astype(np.float32)


def spec_augment(
    batch: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, *, time_axis: int, freq_axis: int
) -> torch.Tensor:
    """SpecAugment masks (Park et al. 2019) on a batch; returns a new tensor.

    Per item, ``cfg.spec_time_masks`` masks of width drawn uniformly in
    ``[0, spec_time_width]`` frames along ``time_axis`` and ``cfg.spec_freq_masks`` masks
    of width in ``[0, spec_freq_width]`` bins along ``freq_axis`` are set to 0 (the mean
    of standardised features). Axes count the batch axis (e.g. 1 and 2 for (B, T, F)).
    """
    if batch.dim() < 3:
        raise ParameterError(
            f"spec_augment needs (B, T, F) or (B, F, T) batches, got shape {tuple(batch.shape)}"
        )
    axes = {time_axis % batch.dim(), freq_axis % batch.dim()}
    if 0 in axes or len(axes) != 2:
        raise ParameterError(
            f"time_axis and freq_axis must be two distinct non-batch axes, got {time_axis}, {freq_axis}"
        )
    out = _mask_axis(batch, cfg.spec_time_masks, cfg.spec_time_width, time_axis % batch.dim(), generator)
    return _mask_axis(out, cfg.spec_freq_masks, cfg.spec_freq_width, freq_axis % batch.dim(), generator)


def _mask_axis(x: torch.Tensor, n_masks: int, width: int, axis: int, g: torch.Generator) -> torch.Tensor:
    if n_masks <= 0 or width <= 0:
        return x
    b, length = x.shape[0], x.shape[axis]
    pos = torch.arange(length)
    keep = torch.ones(b, length, dtype=torch.bool)
    for _ in range(n_masks):
        w = torch.randint(0, min(width, length) + 1, (b,), generator=g)
        start = (torch.rand(b, generator=g) * (length - w + 1)).long()
        keep &= ~((pos[None, :] >= start[:, None]) & (pos[None, :] < (start + w)[:, None]))
    shape = [1] * x.dim()
    shape[0], shape[axis] = b, length
    return x * keep.view(shape).to(x.dtype)


def mixup(
    x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): one ``lam ~ Beta(alpha, alpha)`` per batch, pairs by permutation.

    Returns ``lam * x + (1 - lam) * x[perm]`` and the same mix of the (soft) targets;
    alpha <= 0 returns the inputs unchanged.
    """
    if alpha <= 0:
        return x, y_onehot
    if x.shape[0] != y_onehot.shape[0]:
        raise ParameterError(
            f"mixup needs as many targets as items, got {tuple(x.shape)} and {tuple(y_onehot.shape)}"
        )
    # torch's Beta sampler takes no generator: seed a numpy one from the torch generator.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator)
    return lam * x + (1 - lam) * x[perm], lam * y_onehot + (1 - lam) * y_onehot[perm]


def feature_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` (standardised units); 0 = unchanged."""
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def augmented_items(
    ds: Any, cfg: Any, clip_ids: np.ndarray, cache: dict[tuple[int, int], list[np.ndarray]], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Waveform-augmented copies of the given clips' model items, memoised in ``cache``.

    Parameters
    ----------
    ds : Dataset
        The run's items and clips (copies are read from the clips' files).
    cfg : RunConfig
        Its ``features``, ``representation``, ``augment`` (``copies`` per clip) and ``jobs``.
    clip_ids : np.ndarray of int
        Indices into ``ds.clips``.
    cache : dict
        ``(seed, clip) -> list of item arrays``: copies already made are not made again.
    seed : int
        Copy ``c`` of clip ``i`` draws from ``np.random.default_rng([seed, i, c])``.

    Returns
    -------
    X : np.ndarray, float32, shape (n_copied_items, ...)
    clip_of : np.ndarray of int, shape (n_copied_items,)
        The clip each copied item comes from.

    Notes
    -----
    Copies not yet made are computed in ``cfg.jobs`` spawned processes (one BLAS thread each);
    a copy depends only on its clip, its index and ``seed``, so the result is the same for any
    number of jobs.
    """
    fc, rc = cfg.features, cfg.representation
    todo = [ci for ci in clip_ids.tolist() if (seed, ci) not in cache]
    tasks = [(ds.clips[ci].path, ds.clips[ci].start, fc.read_duration(ds.clips[ci].duration), fc.to_dict(),
              rc.to_dict(), cfg.augment.to_dict(), seed, ci) for ci in todo]
    if cfg.jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from sonotype.utils.threads import single_threaded_children

        with single_threaded_children(), ProcessPoolExecutor(
            max_workers=min(cfg.jobs, len(tasks)), mp_context=mp.get_context("spawn")
        ) as pool:
            made = list(pool.map(augment_clip, tasks, chunksize=max(1, len(tasks) // (8 * cfg.jobs))))
    else:
        made = [augment_clip(t) for t in tasks]
    cache.update(((seed, ci), m) for ci, m in zip(todo, made))
    xs, ids = [], []
    for ci in clip_ids.tolist():
        for items in cache[seed, ci]:
            xs.append(items)
            ids.append(np.full(len(items), ci))
    if not xs:
        return np.empty((0, *ds.X.shape[1:]), np.float32), np.empty(0, int)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ids)


def augment_clip(task: tuple) -> list[np.ndarray]:
    """``augment.copies`` augmented copies of one clip, featurised (a worker's unit of work).

    ``task`` is ``(path, start, seconds to read, features dict, representation dict, augment
    dict, seed, clip id)``: plain values, so it pickles cheaply to a spawned worker.
    """
    from sonotype.audio import load as load_audio
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.represent import featurize

    path, start, dur, fc_d, rc_d, aug_d, seed, ci = task
    fc, rc, aug = FeatureConfig.from_dict(fc_d), RepresentationConfig.from_dict(rc_d), AugmentConfig.from_dict(aug_d)
    y, sr = load_audio(path, sr=fc.sr, offset=start, duration=dur)
    return [
        featurize(augment_waveform(y, sr, aug, np.random.default_rng([seed, ci, c])), sr, fc, rc, path=path)
        for c in range(aug.copies)
    ]
