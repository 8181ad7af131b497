"""A small synthetic corpus that needs no download: ``sonotype demo`` and the tests run on it.

``generate_demo(root)`` writes ``<root>/<class>/<speaker>_<take>.wav`` for five classes of
synthesised sound - ``tone`` (a harmonic note with vibrato), ``chord`` (a triad), ``noise_burst``
(band-passed noise bursts), ``sweep`` (a harmonic glide) and ``pulse_train`` (filtered clicks).
Each "speaker" has its own timbre (harmonic tilt, a resonance, a background-noise colour and
pitch range), so a speaker-independent split is a real test; every take draws its own pitch,
envelope, gain (a 24 dB range, so loudness alone separates nothing) and signal-to-noise
ratio. Default: 5 classes x 4 speakers x 8 takes = 160 files of 1.5 s at 16 kHz (~7.7 MB).

Every file is generated from its own seed derived from ``(seed, class, speaker, take)``, so the
corpus is bit-identical across runs and independent of generation order.
The ``demo`` loader reads it back with group = speaker.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from sonotype.corpora.base import Manifest, check_root, register
from sonotype.errors import ParameterError

__all__ = ["CLASSES", "generate_demo", "prepare"]

NAME = "demo"
CLASSES = ("tone", "chord", "noise_burst", "sweep", "pulse_train")


def _speaker(seed: int, index: int) -> dict[str, float]:
    """Stable per-speaker timbre: what a speaker-independent split must generalise over."""
    rng = np.random.default_rng([seed, 7919, index])
    return {
        "tilt": float(rng.uniform(0.35, 0.9)),  # harmonic amplitude ratio
        "resonance": float(rng.uniform(600, 3000)),  # Hz
        "q": float(rng.uniform(2, 6)),
        "pitch": float(rng.uniform(0.7, 1.4)),  # scales every class's pitch range
        "noise_colour": float(rng.uniform(-1.0, 1.0)),  # -1 dark ... +1 bright background
    }


def _harmonic(f0: np.ndarray, sr: int, tilt: float, n: int = 8) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(f0)
    for k in range(1, n + 1):
        alias = (k * f0) < sr / 2
        y += (tilt ** (k - 1)) * np.sin(k * phase) * alias
    return y


def _envelope(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    # Clamped to half the clip: short clips (seconds down to 0.2) would otherwise have ramps
    # longer than themselves. The draws are unchanged, so longer corpora stay bit-identical.
    attack = min(max(1, int(sr * rng.uniform(0.005, 0.25))), max(1, n // 2))
    release = min(max(1, int(sr * rng.uniform(0.05, 0.5))), max(1, n // 2))
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    env[n - release :] *= np.linspace(1, 0, release)
    return env * np.exp(-np.arange(n) / sr * rng.uniform(0.0, 2.0))


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int) -> np.ndarray:
    from scipy import signal

    sos = signal.butter(2, [lo, min(hi, 0.45 * sr)], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _synth(cls: str, spk: dict[str, float], sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal  # imported here: registering the loader must stay cheap

    t = np.arange(n) / sr
    p = spk["pitch"]
    if cls == "tone":
        f0 = (
            rng.uniform(110, 440)
            * p
            * (1 + 0.01 * rng.uniform(0, 2) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        )
        y = _harmonic(f0, sr, spk["tilt"])
    elif cls == "chord":
        root = rng.uniform(110, 330) * p
        third = 2 ** ((4 if rng.random() < 0.5 else 3) / 12)
        y = sum(_harmonic(np.full(n, root * r), sr, spk["tilt"]) for r in (1.0, third, 2 ** (7 / 12)))
    elif cls == "noise_burst":
        y = np.zeros(n)
        for _ in range(int(rng.integers(2, 5))):
            length = min(int(sr * rng.uniform(0.08, 0.3)), n - 1)  # clips down to 0.2 s
            start = int(rng.integers(0, n - length))
            centre = rng.uniform(400, 4000) * p
            burst = _bandpass(rng.standard_normal(length), centre / 1.5, centre * 1.5, sr)
            y[start : start + length] += burst * np.hanning(length)
    elif cls == "sweep":
        f_a, f_b = rng.uniform(150, 400) * p, rng.uniform(600, 1600) * p
        if rng.random() < 0.5:
            f_a, f_b = f_b, f_a
        f0 = f_a * (f_b / f_a) ** (t / t[-1])
        y = _harmonic(f0, sr, spk["tilt"], n=4)
    elif cls == "pulse_train":
        rate = rng.uniform(6, 40)
        y = np.zeros(n)
        y[(np.arange(0, t[-1], 1 / rate) * sr).astype(int)] = 1.0
        y = signal.lfilter(*signal.iirpeak(min(spk["resonance"], 0.45 * sr), spk["q"], fs=sr), y)
        y += 0.3 * _bandpass(y, 200, 1200 * p, sr)
    else:  # pragma: no cover - CLASSES is closed
        raise ParameterError(f"unknown demo class {cls!r}")
    y = np.asarray(y, dtype=np.float64) * _envelope(n, sr, rng)
    # the speaker's resonance colours every class (a crude vocal tract)
    b, a = signal.iirpeak(min(spk["resonance"], 0.45 * sr), spk["q"], fs=sr)
    y = 0.6 * y + 0.4 * signal.lfilter(b, a, y)
    y /= np.max(np.abs(y)) + 1e-12
    noise = rng.standard_normal(n)
    noise = signal.lfilter([1.0, spk["noise_colour"]], [1.0], noise)
    snr_db = rng.uniform(8, 30)
    noise *= np.sqrt(np.mean(y**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    y = y + noise
    y *= 10 ** (rng.uniform(-27, -3) / 20) / (np.max(np.abs(y)) + 1e-12)
    return y.astype(np.float32)


def generate_demo(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    sr: int = 16000,
    n_speakers: int = 4,
    takes: int = 8,
    seconds: float = 1.5,
) -> Path:
    """Write the demo corpus under ``root`` and return ``root``.

    Parameters
    ----------
    root : path-like
        Destination folder (created; existing demo files are overwritten identically).
    seed : int
        Everything random derives from it.
    sr, n_speakers, takes, seconds
        Sample rate, speakers per class, takes per speaker and class, clip length.

    Returns
    -------
    pathlib.Path
        ``root``.

    Examples
    --------
    >>> import tempfile
    >>> root = generate_demo(tempfile.mkdtemp(), n_speakers=2, takes=1, seconds=0.2)
    >>> sorted(p.parent.name + "/" + p.name for p in root.rglob("*.wav"))[:3]
    ['chord/spk1_01.wav', 'chord/spk2_01.wav', 'noise_burst/spk1_01.wav']
    """
    if sr < 4000 or n_speakers < 1 or takes < 1 or not 0.2 <= seconds <= 30:
        raise ParameterError(
            f"demo needs sr >= 4000, n_speakers >= 1, takes >= 1, 0.2 <= seconds <= 30; "
            f"got sr={sr}, n_speakers={n_speakers}, takes={takes}, seconds={seconds}"
        )
    out = Path(root)
    n = int(round(seconds * sr))
    speakers = [_speaker(seed, i) for i in range(n_speakers)]
    for cls in CLASSES:
        folder = out / cls
        folder.mkdir(parents=True, exist_ok=True)
        for s, spk in enumerate(speakers):
            for take in range(takes):
                rng = np.random.default_rng([seed, zlib.crc32(cls.encode()), s, take])
                y = _synth(cls, spk, sr, n, rng)
                sf.write(str(folder / f"spk{s + 1}_{take + 1:02d}.wav"), y, sr, subtype="PCM_16")
    return out


@register(NAME, group="speaker")
def prepare(root: Path) -> Manifest:
    """Read a corpus written by :func:`generate_demo`: label = folder, group = speaker.

    Parameters
    ----------
    root : pathlib.Path

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> m = prepare(generate_demo(tempfile.mkdtemp(), n_speakers=2, takes=2, seconds=0.2))
    >>> len(m), m.labels == sorted(CLASSES), m.group_counts()
    (20, True, {'spk1': 10, 'spk2': 10})
    """
    from sonotype.corpora.folder import prepare as folder_prepare

    return folder_prepare(check_root(root), group_regex=r"^(.+)_\d+$", corpus=NAME)
