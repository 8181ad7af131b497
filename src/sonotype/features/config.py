"""Feature settings: what to compute per frame, and how to turn frames into model inputs.

Both are plain dataclasses, saved as JSON beside every model and as YAML in every run
config, so the same settings are applied at training and at prediction time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sonotype.config.parse import check_fields, strict_from_dict
from sonotype.errors import ConfigError

__all__ = ["FRAME_FEATURES", "FeatureConfig", "RepresentationConfig", "preset"]

# Frame-level features the engine knows, in no particular order; the order used is
# FeatureConfig.features. Widths depend on settings (n_mfcc, n_mels, n_chroma, contrast bands).
FRAME_FEATURES = (
    "rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness", "contrast",
    "chroma", "mel", "logmel", "mfcc", "mfcc_delta", "mfcc_delta2", "tonnetz", "f0",
)

# numpy.pad modes a centred STFT can pad with (librosa's choice of the same).
PAD_MODES = ("constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum", "reflect", "symmetric",
             "wrap", "empty")

# Settings read only by the ``f0`` feature: left out of ``to_dict`` when ``f0`` is not used,
# so configurations without it keep their saved form and feature-cache keys.
_F0_FIELDS = ("f0_fmin", "f0_fmax")


@dataclass
class FeatureConfig:
    """Frame-level feature settings, librosa's names and defaults unless said otherwise.

    ``features`` lists the frame features in output order. The default is the seeds'
    37-value GTZAN set order: rms, centroid, bandwidth, roll-off, zcr, 20 MFCC, 12 chroma.
    ``tuning="estimate"`` estimates tuning per clip like ``librosa.feature.chroma_stft``;
    a number fixes it (in fractions of a bin), which is faster and clip-independent.
    ``max_duration`` keeps only the first N seconds of each clip (seed: 30 s).
    ``f0_fmin`` / ``f0_fmax`` bound the YIN pitch search of the ``f0`` feature (speech range).
    ``active_db`` keeps only the frames whose RMS is within that many dB of the clip's
    loudest frame (features are computed on the whole clip first, so deltas keep their
    context): clip statistics then describe the speech, not the varying amount of silence
    around and inside it (RAVDESS by actor: +6 points balanced accuracy, docs/results.md). None
    keeps every frame.

    Parameters
    ----------
    sr : int
        Every clip is resampled to this rate, Hz.
    n_fft, hop_length, win_length, window, center, pad_mode
        The STFT, as ``librosa.stft`` (``win_length=None``: ``n_fft``).
    max_duration : float, optional
        Seconds kept from the start of each clip (None: all).
    features : list of str
        Frame features in output order (:data:`FRAME_FEATURES`).
    n_mfcc, n_mels, fmin, fmax, top_db
        MFCC and (log-)mel settings (``fmax=None``: ``sr / 2``; ``top_db=None``: no floor).
    n_chroma, tuning
        Chroma bins per octave; tuning in fractions of a bin, or ``"estimate"``.
    roll_percent : float
        Roll-off share, in (0, 1).
    contrast_fmin, contrast_bands
        Spectral contrast: lowest band edge (Hz) and number of octave bands.
    f0_fmin, f0_fmax : float
        YIN search range of ``f0``, Hz.
    active_db : float, optional
        Keep frames within this many dB of the loudest (None: all frames).

    Examples
    --------
    >>> cfg = FeatureConfig(sr=16000, features=["mfcc", "f0"], n_mfcc=13)
    >>> cfg.to_dict()["features"], "f0_fmin" in FeatureConfig().to_dict()
    (['mfcc', 'f0'], False)
    """

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    max_duration: float | None = None
    features: list[str] = field(
        default_factory=lambda: ["rms", "centroid", "bandwidth", "rolloff", "zcr", "mfcc", "chroma"]
    )
    n_mfcc: int = 20
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    n_chroma: int = 12
    tuning: float | Literal["estimate"] = "estimate"
    roll_percent: float = 0.85
    contrast_fmin: float = 200.0
    contrast_bands: int = 6
    top_db: float | None = 80.0
    f0_fmin: float = 65.0
    f0_fmax: float = 500.0
    active_db: float | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        unknown = [f for f in self.features if f not in FRAME_FEATURES]
        if unknown:
            raise ConfigError(f"features.features: unknown frame feature(s) {unknown}; known: {', '.join(FRAME_FEATURES)}")
        if not self.features:
            raise ConfigError("features.features must list at least one frame feature")
        for name in ("sr", "n_fft", "hop_length", "n_mfcc", "n_mels", "n_chroma"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"features.{name} must be > 0, got {getattr(self, name)}")
        self._check_ranges()
        self._check_used()

    def _check_ranges(self) -> None:
        """Settings that are wrong whatever features are computed."""
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ConfigError(f"features.win_length must be in 1..n_fft ({self.n_fft}) or null, got {self.win_length}")
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(f"features.pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")
        if self.max_duration is not None and not self.max_duration > 0:
            raise ConfigError(f"features.max_duration must be > 0 seconds or null, got {self.max_duration}")
        if not 0 <= self.fmin < (self.sr / 2 if self.fmax is None else self.fmax) <= self.sr / 2:
            raise ConfigError(f"features: need 0 <= fmin < fmax <= sr / 2 ({self.sr / 2:g}), "
                              f"got fmin={self.fmin}, fmax={self.fmax}")
        if isinstance(self.tuning, str) and self.tuning != "estimate":
            raise ConfigError(f"features.tuning must be 'estimate' or a number, got {self.tuning!r}")
        if not 0.0 < self.roll_percent < 1.0:
            raise ConfigError(f"features.roll_percent must lie in (0, 1), got {self.roll_percent}")
        if self.top_db is not None and not self.top_db >= 0:
            raise ConfigError(f"features.top_db must be >= 0 dB or null, got {self.top_db}")
        if self.active_db is not None and not self.active_db > 0:
            raise ConfigError(f"features.active_db must be > 0 dB or null, got {self.active_db!r}")
        if self.window not in ("hann", "hanning"):
            import scipy.signal

            try:
                scipy.signal.get_window(self.window, 8, fftbins=True)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"features.window {self.window!r} is not a scipy window ({exc})") from None

    def _check_used(self) -> None:
        """Settings that only the features using them can get wrong (e.g. contrast at 8 kHz)."""
        used = set(self.features)
        if "f0" in used and not 0 < self.f0_fmin < self.f0_fmax < self.sr / 2:
            raise ConfigError(f"features: need 0 < f0_fmin < f0_fmax < sr / 2, got f0_fmin={self.f0_fmin}, "
                              f"f0_fmax={self.f0_fmax}")
        if used & {"mfcc", "mfcc_delta", "mfcc_delta2"} and self.n_mfcc > self.n_mels:
            raise ConfigError(f"features.n_mfcc ({self.n_mfcc}) must be <= features.n_mels ({self.n_mels})")
        if "contrast" in used:
            if not self.contrast_fmin > 0 or self.contrast_bands < 1:
                raise ConfigError(f"features: contrast needs contrast_fmin > 0 and contrast_bands >= 1, got "
                                  f"{self.contrast_fmin}, {self.contrast_bands}")
            top = self.contrast_fmin * 2.0 ** (self.contrast_bands - 1)  # the lowest edge of the top band
            if top >= self.sr / 2:
                raise ConfigError(f"features: contrast band edges reach {top:g} Hz, at or above the Nyquist frequency "
                                  f"{self.sr / 2:g} Hz; lower contrast_fmin or contrast_bands")

    def read_duration(self, duration: float | None) -> float | None:
        """Seconds to read of a clip lasting ``duration`` (None: to the end): at most ``max_duration``.

        Parameters
        ----------
        duration : float or None
            The clip's own length (a segment of a longer file), None for the whole file.

        Returns
        -------
        float or None
            None reads the whole file.
        """
        if self.max_duration is None:
            return duration
        return self.max_duration if duration is None else min(duration, self.max_duration)

    def n_frames(self, n_samples: int) -> int:
        """librosa's STFT frame count for a signal of ``n_samples`` samples (centred or not).

        Parameters
        ----------
        n_samples : int

        Returns
        -------
        int
            ``1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length`` with centring,
            ``1 + (n - n_fft) // hop_length`` without.
        """
        n = int(n_samples) + (2 * (self.n_fft // 2) if self.center else 0)
        return 1 + (n - self.n_fft) // self.hop_length

    @property
    def max_samples(self) -> int | None:
        """``max_duration`` in samples at ``sr`` (None: no cut): the one rule for cutting a signal."""
        return None if self.max_duration is None else int(round(self.max_duration * self.sr))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if "f0" not in self.features:
            for name in _F0_FIELDS:
                d.pop(name)
        if self.active_db is None:  # added later: absent keeps older configs' saved form and cache keys
            d.pop("active_db")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        return strict_from_dict(cls, d)


@dataclass
class RepresentationConfig:
    """How frame features become what a model eats.

    - ``stats``: one vector per clip: ``stats`` (mean, std, min, max, median, pNN) of every feature.
    - ``frames``: one row per frame.
    - ``windows``: sliding windows of ``window`` s every ``hop`` s -> (T, F) sequences.
    - ``logmel``: like windows, but laid out (F, T) as an image for 2D CNNs (use with the
      ``logmel`` frame feature).

    ``select`` keeps a subset of feature columns by group name or index ranges, e.g.
    ``"mfcc"`` or ``"0-4,25-36"``. ``last`` is the policy for a final partial window.

    Parameters
    ----------
    kind : {"stats", "frames", "windows", "logmel"}
        As above.
    stats : list of str
        Statistics of ``stats``: ``mean``, ``std``, ``min``, ``max``, ``median``, ``pNN``.
    window, hop : float, optional
        Window length and step, seconds (``windows``, ``logmel``; ``hop=None``: ``window``).
    last : {"pad", "drop", "keep"}
        A final partial window.
    select : str, optional
        Feature columns kept (group names or index ranges).

    Examples
    --------
    >>> RepresentationConfig(kind="windows", window=2.0, hop=0.5).to_dict()["last"]
    'pad'
    """

    kind: Literal["stats", "frames", "windows", "logmel"] = "stats"
    stats: list[str] = field(default_factory=lambda: ["mean"])
    window: float | None = None
    hop: float | None = None
    last: Literal["pad", "drop", "keep"] = "pad"
    select: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if self.kind not in ("stats", "frames", "windows", "logmel"):
            raise ConfigError(f"representation kind must be stats, frames, windows or logmel, got {self.kind!r}")
        if self.kind in ("windows", "logmel") and (self.window is None or self.window <= 0):
            raise ConfigError(f"representation {self.kind!r} needs window > 0 seconds, got {self.window!r}")
        if self.last not in ("pad", "drop", "keep"):
            raise ConfigError(f"last must be pad, drop or keep, got {self.last!r}")
        if self.hop is not None and not self.hop > 0:
            raise ConfigError(f"representation.hop must be > 0 seconds or null, got {self.hop!r}")
        if self.kind == "stats":
            from sonotype.features.represent import (
                check_stats,  # the statistics' grammar lives with their code
            )

            check_stats(self.stats)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RepresentationConfig:
        return strict_from_dict(cls, d)


def preset(name: str) -> tuple[FeatureConfig, RepresentationConfig]:
    """Named feature configurations from the seeds.

    - ``gtzan37``: the seeds' 37-value GTZAN mean vector (n_fft 8192, hop 512, first 30 s at
      22,050 Hz: rms, centroid, bandwidth, roll-off, zcr, 20 MFCC, 12 chroma).
    - ``gtzan37-frames``: the same 37 values for every frame.
    - ``mfcc13-windows``: 13 MFCC in 5 s windows every 1 s (216 x 13, seed "sequences").
    - ``tess40``: 40 MFCC averaged over time (seed TESS/SAVEE).
    - ``logmel128``: 128-band log-mel at 16 kHz in 3 s patches every 1.5 s.

    Parameters
    ----------
    name : str
        One of the names above.

    Returns
    -------
    FeatureConfig, RepresentationConfig
        Fresh copies (editing them changes no other caller's).

    Examples
    --------
    >>> f, r = preset("mfcc13-windows")
    >>> f.n_mfcc, r.kind, r.window
    (13, 'windows', 5.0)
    """
    seed = FeatureConfig(sr=22050, n_fft=8192, hop_length=512, max_duration=30.0)
    table = {
        "gtzan37": (seed, RepresentationConfig(kind="stats", stats=["mean"])),
        "gtzan37-frames": (seed, RepresentationConfig(kind="frames")),
        "mfcc13-windows": (
            FeatureConfig(sr=22050, n_fft=2048, hop_length=512, features=["mfcc"], n_mfcc=13),
            RepresentationConfig(kind="windows", window=5.0, hop=1.0, last="drop"),
        ),
        "tess40": (FeatureConfig(features=["mfcc"], n_mfcc=40), RepresentationConfig(kind="stats", stats=["mean"])),
        "logmel128": (
            FeatureConfig(sr=16000, n_fft=2048, hop_length=512, features=["logmel"], n_mels=128),
            RepresentationConfig(kind="logmel", window=3.0, hop=1.5, last="pad"),
        ),
    }
    if name not in table:
        raise ConfigError(f"unknown feature preset {name!r}; known: {', '.join(table)}")
    f, r = table[name]
    return FeatureConfig.from_dict(f.to_dict()), RepresentationConfig.from_dict(r.to_dict())
