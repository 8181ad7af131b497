"""Inspection pictures of one recording: the seeds' waveform, spectrograms and features.

Every spectral kind shares one STFT (``n_fft``, ``hop_length``); the figure is drawn on
a matplotlib ``Figure`` with the Agg canvas (no pyplot global state, no display needed)
and written atomically, so a crash never leaves half a PNG behind.

Kinds
-----
waveform     amplitude over time
spectrogram  STFT magnitude in dB (log-frequency axis), the seeds' "sonogram"
mel          mel power spectrogram in dB
chroma       12 pitch classes from the STFT
mfcc         20 MFCC from the mel spectrogram
centroid     spectral centroid drawn over the spectrogram
rolloff      85 % spectral roll-off drawn over the spectrogram
all          one sheet with every kind above
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from sonotype.errors import ParameterError

__all__ = ["KINDS", "plot_audio"]

KINDS = ("waveform", "spectrogram", "mel", "chroma", "mfcc", "centroid", "rolloff")
_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}


@dataclass
class _Analysis:
    """The signal and its one shared STFT; every feature is derived from ``power``."""

    y: np.ndarray
    sr: int
    n_fft: int
    hop_length: int

    @cached_property
    def magnitude(self) -> np.ndarray:
        import librosa

        return np.abs(librosa.stft(self.y, n_fft=self.n_fft, hop_length=self.hop_length))

    @cached_property
    def power(self) -> np.ndarray:
        return self.magnitude**2

    @cached_property
    def mel_db(self) -> np.ndarray:
        import librosa

        mel = librosa.feature.melspectrogram(S=self.power, sr=self.sr, n_mels=128)
        return librosa.power_to_db(mel, ref=np.max)


def _load(
    source: str | os.PathLike | np.ndarray, sr: int | None, min_samples: int
) -> tuple[np.ndarray, int, str]:
    from sonotype.audio import check_length, load

    if isinstance(source, np.ndarray):
        if sr is None or sr <= 0:
            raise ParameterError(f"plot_audio needs sr > 0 with an array input, got sr={sr}")
        from sonotype.utils.checks import mono_signal

        y = mono_signal(source)  # the one rule for folding channels, as predict and featurize read arrays
        if not np.all(np.isfinite(y)):
            raise ParameterError("plot_audio: the array contains NaN or infinity")
        check_length(y, min_samples)
        return y, int(sr), "signal"
    y, sr_out = load(source, sr=sr, min_samples=min_samples)
    return y, sr_out, Path(source).name


def _spec_axes(ax, an: _Analysis, data: np.ndarray, *, y_axis: str, label: str, fig, title: str):
    import librosa.display

    img = librosa.display.specshow(
        data,
        sr=an.sr,
        hop_length=an.hop_length,
        n_fft=an.n_fft,
        x_axis="time",
        y_axis=y_axis,
        ax=ax,
        cmap="magma",
    )
    cbar = fig.colorbar(img, ax=ax, format="%+2.0f dB" if "dB" in label else None)
    cbar.set_label(label)
    ax.set_title(title)
    ax.set_xlabel("Time (s)")
    return img


def _legend_above(ax) -> None:
    """The legend above the axes' right corner (title moved left), off the spectrogram.

    The lines are light on a dark image, so the legend box is dark too.
    """
    ax.set_title(ax.get_title(), loc="left")
    ax.set_title("", loc="center")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, borderaxespad=0.3,
              facecolor="#3a3a3a", edgecolor="#3a3a3a", framealpha=1.0, labelcolor="white")


def _draw(kind: str, ax, fig, an: _Analysis) -> None:
    import librosa
    import librosa.display

    if kind == "waveform":
        librosa.display.waveshow(an.y, sr=an.sr, ax=ax, color="tab:blue")
        peak = float(np.max(np.abs(an.y))) if an.y.size else 0.0
        ax.set(title="Waveform", xlabel="Time (s)", ylabel="Amplitude (full scale)")
        ax.set_ylim(-max(peak, 1e-3) * 1.1, max(peak, 1e-3) * 1.1)
        return
    if kind in ("spectrogram", "centroid", "rolloff"):
        db = librosa.amplitude_to_db(an.magnitude, ref=np.max)
        title = {
            "spectrogram": "Spectrogram (STFT)",
            "centroid": "Spectral centroid",
            "rolloff": "Spectral roll-off",
        }
        _spec_axes(ax, an, db, y_axis="log", label="Level (dB re max)", fig=fig, title=title[kind])
        ax.set_ylabel("Frequency (Hz)")
        times = librosa.times_like(an.magnitude, sr=an.sr, hop_length=an.hop_length)  # centred frames
        if kind == "centroid":
            cent = librosa.feature.spectral_centroid(S=an.magnitude, sr=an.sr, n_fft=an.n_fft)[0]
            ax.plot(times, cent, color="white", linewidth=1.5, label="centroid")
            _legend_above(ax)
        elif kind == "rolloff":
            roll = librosa.feature.spectral_rolloff(
                S=an.magnitude, sr=an.sr, n_fft=an.n_fft, roll_percent=0.85
            )[0]
            low = librosa.feature.spectral_rolloff(
                S=an.magnitude, sr=an.sr, n_fft=an.n_fft, roll_percent=0.15
            )[0]
            ax.plot(times, roll, color="cyan", linewidth=1.5, label="roll-off 85 %")
            ax.plot(times, low, color="white", linewidth=1.0, linestyle="--", label="roll-off 15 %")
            _legend_above(ax)
        return
    if kind == "mel":
        _spec_axes(
            ax, an, an.mel_db, y_axis="mel", label="Power (dB re max)", fig=fig, title="Mel spectrogram"
        )
        ax.set_ylabel("Frequency (Hz, mel scale)")
        return
    if kind == "chroma":
        chroma = librosa.feature.chroma_stft(S=an.power, sr=an.sr, n_fft=an.n_fft, tuning=0.0)
        _spec_axes(
            ax, an, chroma, y_axis="chroma", label="Relative energy (0-1)", fig=fig, title="Chromagram"
        )
        ax.set_ylabel("Pitch class")
        return
    if kind == "mfcc":
        mfcc = librosa.feature.mfcc(S=an.mel_db, sr=an.sr, n_mfcc=20)
        # Coefficient 0 (overall level) is an order of magnitude larger than the rest and
        # would wash them out: the colour range follows coefficients 1-19, 0 saturates.
        lim = float(np.percentile(np.abs(mfcc[1:]), 99)) or 1.0
        img = librosa.display.specshow(
            mfcc,
            sr=an.sr,
            hop_length=an.hop_length,
            x_axis="time",
            ax=ax,
            cmap="coolwarm",
            vmin=-lim,
            vmax=lim,
        )
        cbar = fig.colorbar(img, ax=ax, extend="both")
        cbar.set_label("Coefficient value (range of 1-19)")
        ax.set(title="MFCC (20 coefficients)", xlabel="Time (s)", ylabel="MFCC index")
        ax.set_yticks(np.arange(0, 20, 4) + 0.5, [str(i) for i in range(0, 20, 4)])
        return
    raise ParameterError(f"plot kind must be one of {', '.join((*KINDS, 'all'))}; got {kind!r}")


def plot_audio(
    source: str | os.PathLike | np.ndarray,
    *,
    sr: int | None = None,
    kind: str = "waveform",
    out: str | os.PathLike,
    n_fft: int = 2048,
    hop_length: int = 512,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw one inspection picture (or, with ``kind="all"``, a sheet of all of them).

    Parameters
    ----------
    source : path-like or np.ndarray [shape=(n,) or (channels, n)]
        An audio file (read by content) or samples; an array needs ``sr``.
    sr : int or None
        Sample rate to load at (``None`` keeps the file's), or the array's sample rate.
    kind : str
        One of :data:`KINDS` or ``"all"``.
    out : path-like
        Picture to write; the suffix picks the format (``.png``, ``.svg``, ``.pdf``, ``.jpg``).
    n_fft, hop_length : int
        The shared STFT; spectral kinds need at least ``n_fft`` samples.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    AudioError
        The file cannot be read, or is shorter than one analysis frame.
    ParameterError
        Unknown kind or suffix, bad STFT settings, array without ``sr``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> out = tempfile.mkdtemp() + "/tone.png"
    >>> y = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    >>> plot_audio(y, sr=16000, kind="mel", out=out).stat().st_size > 0
    True
    """
    if kind != "all" and kind not in KINDS:
        raise ParameterError(f"plot kind must be one of {', '.join((*KINDS, 'all'))}; got {kind!r}")
    if n_fft < 16 or hop_length < 1:
        raise ParameterError(
            f"n_fft must be >= 16 and hop_length >= 1, got n_fft={n_fft}, hop_length={hop_length}"
        )
    out = Path(out)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ParameterError(
            f"output {out} must end in one of {', '.join(_FORMATS)}, got {out.suffix or 'no suffix'!r}"
        )
    y, sr_, name = _load(source, sr, 1 if kind == "waveform" else n_fft)
    an = _Analysis(y, sr_, n_fft, hop_length)

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure(kind, an, title or f"{name} - {len(y) / sr_:.2f} s at {sr_} Hz")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    from sonotype.utils.io import atomic_write_bytes

    atomic_write_bytes(out, buf.getvalue())
    return out


def _figure(kind: str, an: _Analysis, heading: str):
    """The figure of one kind (or the ``all`` sheet), not yet rendered."""
    from matplotlib.figure import Figure

    if kind == "all":
        fig = Figure(figsize=(14, 15), layout="constrained")
        grid = fig.add_gridspec(4, 2, height_ratios=[0.7, 1, 1, 1])
        axes = [fig.add_subplot(grid[0, :])] + [
            fig.add_subplot(grid[r, c]) for r in (1, 2, 3) for c in (0, 1)
        ]
        for k, ax in zip(KINDS, axes, strict=True):
            _draw(k, ax, fig, an)
    else:
        fig = Figure(figsize=(10, 3.5 if kind == "waveform" else 4.5), layout="constrained")
        _draw(kind, fig.add_subplot(), fig, an)
    fig.suptitle(heading)
    return fig
