"""Audio I/O: load any file libsndfile understands, by content not by extension.

soundfile reads the header to find the format, so a TESS file named ``.wav`` that is
really AIFF loads fine; soxr does the resampling. Every failure becomes an
:class:`~sonotype.errors.AudioError` naming the path and the reason.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, ParameterError

__all__ = ["AudioInfo", "Segment", "check_length", "info", "load", "resample", "segment"]

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf", ".opus"}
)


@dataclass(frozen=True)
class AudioInfo:
    """Facts about an audio file, read from its header."""

    path: str
    samplerate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str

    def to_dict(self) -> dict:
        return asdict(self)


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir():
        raise AudioError(p, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    return p


def _open(p: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(p))
    except sf.LibsndfileError as exc:
        msg = str(exc).lower()
        if "format" in msg or "recognised" in msg or "recognized" in msg:
            raise AudioError(p, f"not a supported audio format ({exc})") from None
        raise AudioError(p, f"unreadable or corrupt audio ({exc})") from None
    except (RuntimeError, TypeError) as exc:
        raise AudioError(p, f"unreadable or corrupt audio ({exc})") from None


def info(path: str | os.PathLike) -> AudioInfo:
    """Return sample rate, channels, frames, duration, format and subtype of ``path``."""
    p = _check_file(path)
    with _open(p) as f:
        frames = int(f.frames)
        if frames <= 0:
            raise AudioError(p, "zero-length audio (no samples)")
        return AudioInfo(
            path=str(p),
            samplerate=int(f.samplerate),
            channels=int(f.channels),
            frames=frames,
            duration=frames / float(f.samplerate),
            format=str(f.format),
            subtype=str(f.subtype),
        )


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` (samples,) or (samples, channels) with soxr's high-quality filter."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return y
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load(
    path: str | os.PathLike,
    sr: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    *,
    min_samples: int = 1,
) -> tuple[np.ndarray, int]:
    """Load an audio file as float32 in [-1, 1].

    Parameters
    ----------
    path : path-like
        Any format libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, AU, ...), detected by content.
    sr : int or None
        Target sample rate; ``None`` keeps the file's own.
    mono : bool
        Average the channels (as librosa does) when True.
    offset, duration : float
        Seconds to skip, and seconds to read (``None`` = to the end).
    min_samples : int
        Fewer samples than this (after resampling), e.g. one analysis frame, is an error.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32
    sr : int

    Examples
    --------
    >>> y, sr = load("song.wav", sr=22050)  # doctest: +SKIP
    """
    if offset < 0:
        raise ParameterError(f"offset must be >= 0 s, got {offset}")
    if duration is not None and duration <= 0:
        raise ParameterError(f"duration must be > 0 s, got {duration}")
    p = _check_file(path)
    with _open(p) as f:
        native_sr = int(f.samplerate)
        total = int(f.frames)
        if total <= 0:
            raise AudioError(p, "zero-length audio (no samples)")
        start = int(round(offset * native_sr))
        if start >= total:
            raise AudioError(p, f"offset {offset:.3f} s is past the end ({total / native_sr:.3f} s)")
        n = total - start if duration is None else min(int(round(duration * native_sr)), total - start)
        try:
            f.seek(start)
            data = f.read(n, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(p, f"truncated or corrupt audio data ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(p, "truncated or corrupt audio data (no samples could be read)")
    if data.shape[0] < n:
        raise AudioError(p, f"truncated audio: header announces {n} frames, only {data.shape[0]} readable")
    if not np.all(np.isfinite(data)):
        raise AudioError(p, "corrupt audio: samples contain NaN or infinity")
    y = data.mean(axis=1) if mono else data.T
    if sr is not None and sr != native_sr:
        y = resample(y if mono else y.T, native_sr, sr)
        y = y if mono else y.T
    else:
        sr = native_sr
    y = np.ascontiguousarray(y, dtype=np.float32)
    check_length(y, min_samples, path=p)
    return y, int(sr)


def check_length(y: np.ndarray, min_samples: int, *, path: object = None) -> None:
    """Raise :class:`AudioError` when ``y`` holds fewer than ``min_samples`` samples."""
    n = int(y.shape[-1])
    if n < min_samples:
        raise AudioError(path, f"too short: {n} samples, need at least {min_samples} (one analysis frame)")


@dataclass(frozen=True)
class Segment:
    """One window of a signal: ``start``/``end`` in seconds, ``samples`` the audio."""

    start: float
    end: float
    samples: np.ndarray


def segment(
    y: np.ndarray,
    sr: int,
    window: float,
    hop: float | None = None,
    *,
    last: Literal["pad", "drop", "keep"] = "pad",
) -> list[Segment]:
    """Cut ``y`` into windows of ``window`` seconds every ``hop`` seconds.

    ``last`` decides the final partial window: ``"pad"`` zero-pads it to full length,
    ``"drop"`` discards it, ``"keep"`` returns it shorter. A signal shorter than one window
    gives one (padded or kept) window, or none with ``"drop"``.

    Examples
    --------
    >>> import numpy as np
    >>> [s.start for s in segment(np.zeros(10 * 100), 100, 5.0, 1.0, last="drop")]
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    hop = window if hop is None else hop
    if window <= 0 or hop <= 0:
        raise ParameterError(f"window and hop must be > 0 s, got window={window}, hop={hop}")
    if last not in ("pad", "drop", "keep"):
        raise ParameterError(f"last must be 'pad', 'drop' or 'keep', got {last!r}")
    w = max(1, int(round(window * sr)))
    h = max(1, int(round(hop * sr)))
    n = int(y.shape[-1])
    starts = list(range(0, n - w + 1, h)) if n >= w else []
    out = [Segment(s / sr, (s + w) / sr, y[..., s : s + w]) for s in starts]
    # The tail not covered by a full window becomes one partial window (policy ``last``).
    tail = 0 if not starts else starts[-1] + h
    if (not starts or starts[-1] + w < n) and tail < n and last != "drop":
        part = y[..., tail:n]
        if last == "pad":
            pad = [(0, 0)] * (y.ndim - 1) + [(0, tail + w - n)]
            out.append(Segment(tail / sr, (tail + w) / sr, np.pad(part, pad)))
        else:
            out.append(Segment(tail / sr, n / sr, part))
    return out
