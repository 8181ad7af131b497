"""Side-by-side benchmark: the seeds' per-feature librosa pipeline against sonotype.

Times, on the same files in one run: (a) the seeds' pipeline (every feature its own librosa
call, so its own STFT, SEEDS.md A), (b) sonotype in one process, (c) sonotype with one worker
process per core (a warm pool: process start-up is reported separately), for the 37-value
GTZAN set; and 128-band log-mel at 16 kHz (``librosa.feature.melspectrogram`` +
``power_to_db`` per file against :func:`compute_frames`, compute only).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.audio import AUDIO_EXTENSIONS, load
from sonotype.corpora.base import Clip
from sonotype.features.config import FeatureConfig, preset
from sonotype.features.frames import compute_frames

__all__ = ["generate_music", "generate_speech", "run_benchmark", "seed_features"]

SEED_KW = {"n_fft": 8192, "hop_length": 512}
GROUPS = (("rms", 0, 1), ("centroid", 1, 2), ("bandwidth", 2, 3), ("rolloff", 3, 4), ("zcr", 4, 5), ("mfcc", 5, 25), ("chroma", 25, 37))


def seed_features(path: str | os.PathLike) -> np.ndarray:
    """The seeds' 37 means, exactly as SEEDS.md A computes them: one librosa call per feature.

    Parameters
    ----------
    path : path-like
        An audio file (the first 30 s are read at 22,050 Hz).

    Returns
    -------
    np.ndarray [shape=(37,)]
        rms, centroid, bandwidth, roll-off, zcr, 20 MFCC, 12 chroma (clip means).

    Examples
    --------
    >>> import tempfile
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/a.wav"
    >>> sf.write(path, generate_music(1.0, 22050, np.random.default_rng(0)), 22050)
    >>> seed_features(path).shape
    (37,)
    """
    import librosa

    y, sr = librosa.load(path, sr=22050, duration=30)
    parts = [
        librosa.feature.rms(y=y, frame_length=8192, hop_length=512),
        librosa.feature.spectral_centroid(y=y, sr=sr, **SEED_KW),
        librosa.feature.spectral_bandwidth(y=y, sr=sr, **SEED_KW),
        librosa.feature.spectral_rolloff(y=y, sr=sr, **SEED_KW),
        librosa.feature.zero_crossing_rate(y, frame_length=8192, hop_length=512),
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, **SEED_KW),
        librosa.feature.chroma_stft(y=y, sr=sr, **SEED_KW),
    ]
    return np.concatenate([p.mean(axis=1) for p in parts])


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest per-feature-group error of the 37 means: ``max|a - b| / max|b|`` within each group."""
    worst = 0.0
    for _, a, b in GROUPS:
        scale = float(np.abs(ref[a:b]).max()) or 1.0
        worst = max(worst, float(np.abs(ours[a:b] - ref[a:b]).max()) / scale)
    return worst


def generate_music(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A music-like signal: harmonic notes changing every half second, drum hits, noise.

    Parameters
    ----------
    seconds : float
    sr : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(int(seconds * sr),)], float32

    Examples
    --------
    >>> generate_music(2.0, 8000, np.random.default_rng(0)).shape
    (16000,)
    """
    n = int(seconds * sr)
    y = np.zeros(n)
    note = int(0.5 * sr)
    t = np.arange(note) / sr
    env = np.exp(-3 * t)
    for s in range(0, n, note):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 7))
        m = min(note, n - s)
        y[s : s + m] += 0.2 * (env * tone)[:m]
        hit = min(int(0.05 * sr), n - s)
        y[s : s + hit] += 0.3 * rng.standard_normal(hit) * np.exp(-np.arange(hit) / (0.01 * sr))
    y += 0.01 * rng.standard_normal(n)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


def generate_speech(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A speech-like signal: a gliding voiced source in syllables with noisy onsets and pauses.

    Parameters
    ----------
    seconds : float
    sr : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(int(seconds * sr),)], float32

    Examples
    --------
    >>> generate_speech(1.0, 16000, np.random.default_rng(0)).shape
    (16000,)
    """
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(h * phase) / h for h in range(1, 15))
    syll = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(float)
    y = voiced * syll + 0.05 * rng.standard_normal(n) * (1 - syll)
    return (y / np.abs(y).max() * 0.5).astype(np.float32)


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _warm_pool_seconds(clips: list[Clip], fcfg: FeatureConfig, jobs: int) -> tuple[float, float]:
    """(startup seconds, seconds for all clips) with ``jobs`` spawned one-thread workers."""
    import multiprocessing as mp

    from sonotype.features.extract import _init_worker, _work
    from sonotype.utils.threads import single_threaded_children

    t0 = time.perf_counter()
    with single_threaded_children():
        pool = mp.get_context("spawn").Pool(jobs, initializer=_init_worker, initargs=(fcfg.to_dict(), None))
    try:
        warm = [(c.to_dict(), None) for c in clips[:jobs]] * 2
        pool.map(_work, warm, chunksize=1)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        list(pool.imap(_work, [(c.to_dict(), None) for c in clips], chunksize=1))
        return startup, time.perf_counter() - t1
    finally:
        pool.terminate()
        pool.join()


def _logmel_seconds(speech: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds for the 128-band log-mel of every 16 kHz clip: (librosa, sonotype)."""
    import librosa

    lcfg = FeatureConfig(sr=16000, n_fft=2048, hop_length=512, features=["logmel"], n_mels=128)
    t_lib = t_our = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for y in speech:
            librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_mels=128))
        t_lib = min(t_lib, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for y in speech:
            compute_frames(y, lcfg)
        t_our = min(t_our, time.perf_counter() - t0)
    return t_lib, t_our


def run_benchmark(
    root: str | os.PathLike | None = None,
    *,
    files: int = 8,
    jobs: int | None = None,
    seed: int = 0,
    repeats: int = 3,
    music_seconds: float = 30.0,
    speech_seconds: float = 3.0,
    speech_root: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring).

    Without ``root``, ``files`` music-like signals of ``music_seconds`` (22,050 Hz WAV) and
    ``4 * files`` speech-like signals of ``speech_seconds`` (16 kHz) are generated from ``seed``.

    Parameters
    ----------
    root : path-like, optional
        A folder of music files to time instead of generated ones.
    files : int
        Music files (speech: four times as many).
    jobs : int, optional
        Worker processes (default: every CPU).
    seed : int
    repeats : int
        Timings per measurement (the best is reported).
    music_seconds, speech_seconds : float
        Length of the generated signals.
    speech_root : path-like, optional
        A folder of speech files to time instead of generated ones.

    Returns
    -------
    dict
        Seconds and speed-ups against librosa, per stage (see the module docstring).

    Examples
    --------
    >>> figures = run_benchmark(files=1, repeats=1, music_seconds=2.0, speech_seconds=1.0, jobs=1)  # doctest: +SKIP
    """
    import librosa

    from sonotype.features.extract import build_dataset

    jobs = jobs or os.cpu_count() or 1
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="sonotype-bench-") as tmp:
        if root is not None:
            paths = _audio_files(Path(root))[:files]
            if not paths:
                from sonotype.errors import ConfigError

                raise ConfigError(f"no audio files under {root}")
            speech = [] if speech_root is not None else [load(p, sr=16000)[0] for p in paths]
        else:
            import soundfile as sf

            paths = []
            for i in range(files):
                p = Path(tmp) / f"music_{i:02d}.wav"
                sf.write(p, generate_music(music_seconds, 22050, rng), 22050, subtype="PCM_16")
                paths.append(p)
            speech = [generate_speech(speech_seconds, 16000, rng) for _ in range(max(files * 4, 8))]
        if speech_root is not None:  # real speech clips for the log-mel part (e.g. RAVDESS)
            speech = [load(p, sr=16000)[0] for p in _audio_files(Path(speech_root))[: max(files * 4, 8)]]
            if not speech:
                from sonotype.errors import ConfigError

                raise ConfigError(f"no audio files under {speech_root}")
        clips = [Clip(path=str(p), label="x", group=str(i)) for i, p in enumerate(paths)]
        fcfg, rcfg = preset("gtzan37")
        audio_s = sum(min(30.0, librosa.get_duration(path=str(p))) for p in paths)

        t0 = time.perf_counter()
        ref = np.stack([seed_features(p) for p in paths])
        t_seed = time.perf_counter() - t0

        ours = None
        t_one = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            ds = build_dataset(clips, fcfg, rcfg, jobs=1)
            t_one = min(t_one, time.perf_counter() - t0)
            ours = ds.X
        startup, t_all = _warm_pool_seconds(clips, fcfg, jobs) if jobs > 1 else (0.0, t_one)

        max_err = max(relative_error(o, r) for o, r in zip(ours, ref, strict=True))

        speech_s = sum(len(y) for y in speech) / 16000
        t_lib, t_our = _logmel_seconds(speech, repeats)
    n = len(paths)
    return {
        "files": n,
        "source": str(root) if root is not None else "generated",
        "audio_seconds": audio_s,
        "jobs": jobs,
        "seed_seconds_per_file": t_seed / n,
        "one_core_seconds_per_file": t_one / n,
        "all_cores_seconds_per_file": t_all / n,
        "pool_startup_seconds": startup,
        "seed_seconds_per_audio_hour": t_seed * 3600 / audio_s,
        "one_core_seconds_per_audio_hour": t_one * 3600 / audio_s,
        "all_cores_seconds_per_audio_hour": t_all * 3600 / audio_s,
        "seed_x_realtime": audio_s / t_seed,
        "one_core_x_realtime": audio_s / t_one,
        "all_cores_x_realtime": audio_s / t_all,
        "ratio_one_core": t_seed / t_one,
        "ratio_all_cores": t_one / t_all,
        "logmel_files": len(speech),
        "logmel_audio_seconds": speech_s,
        "logmel_librosa_seconds_per_file": t_lib / len(speech),
        "logmel_sonotype_seconds_per_file": t_our / len(speech),
        "logmel_ratio": t_lib / t_our,
        "max_relative_error": max_err,
        "cpu_count": os.cpu_count(),
        "note": "37-value times include loading; ratio_all_cores is all cores vs one core (warm pool)",
    }

