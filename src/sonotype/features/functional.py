"""Frame features called like librosa: ``centroid(y=y, sr=sr)`` or ``centroid(S=S)``.

Every frame feature the engine knows (:data:`~sonotype.features.config.FRAME_FEATURES`) is a
function here with librosa's argument names and defaults and librosa's orientation:
features are rows, frames are columns, ``(n_features, n_frames)`` float32. They run on the
same :class:`~sonotype.features.spectral.Spectrum` code that training uses (one STFT,
librosa-exact values, see ``tests/features/test_features_parity.py``), so a value printed in a
notebook is the value a model was trained on.

One private helper, :func:`_spectrum`, decides between the two inputs: a waveform ``y``
(transformed here with ``n_fft``, ``hop_length``, ``win_length``, ``window``, ``center``,
``pad_mode``) or a precomputed spectrogram ``S`` (``n_fft`` then follows from its height).
Computing several features of one clip? :func:`~sonotype.features.frames.compute_frames` shares
one STFT among all of them and is faster than calling these one by one.

Differences from librosa, all deliberate: ``y`` must be mono (1-D); giving both ``y`` and
``S`` is an error rather than ``y`` being ignored; :func:`tonnetz` projects STFT chroma (not
CQT chroma); :func:`f0` returns the log2 contour and a voicing row rather than YIN's Hz.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np

from sonotype.audio import check_length
from sonotype.errors import ParameterError
from sonotype.features import filters, pitch, spectral, tonal
from sonotype.features.config import FeatureConfig
from sonotype.features.frames import one_blas_thread
from sonotype.features.spectral import Spectrum
from sonotype.utils.checks import mono_signal, sample_rate

__all__ = [
    "bandwidth",
    "centroid",
    "chroma",
    "contrast",
    "f0",
    "flatness",
    "logmel",
    "mel",
    "mfcc",
    "mfcc_delta",
    "mfcc_delta2",
    "rms",
    "rolloff",
    "tonnetz",
    "zcr",
]

F = TypeVar("F", bound=Callable[..., Any])

_STFT_DOC = """y : np.ndarray [shape=(n,)], optional
        Mono audio time series (float or integer PCM). Give ``y`` or ``S``, not both.
    sr : int
        Sample rate of ``y`` (or of the signal ``S`` was computed from), Hz.
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames)], optional
        {s_kind} spectrogram, frequencies as rows (librosa's layout).
    n_fft : int, optional
        FFT length; 2048 for ``y``. With ``S`` it follows from ``S``'s height (a given value
        must agree).
    hop_length : int
        Samples between frame starts (``y`` only).
    win_length : int, optional
        Window length <= ``n_fft`` (default ``n_fft``), zero-padded to ``n_fft``.
    window : str
        Window name, as ``scipy.signal.get_window``.
    center : bool
        Pad ``y`` by ``n_fft // 2`` at both ends so that frame ``t`` is centred at
        ``t * hop_length``.
    pad_mode : str
        ``np.pad`` mode for the centring padding."""


def _doc(**parts: str) -> Callable[[F], F]:
    """Fill the shared parameter text into a docstring (one wording, every function)."""

    def deco(fn: F) -> F:
        fn.__doc__ = (fn.__doc__ or "").replace("{stft}", _STFT_DOC.format(**parts))
        return fn

    return deco


def _one_thread(fn: F) -> F:
    """Run ``fn`` with single-threaded BLAS, as :func:`~sonotype.features.frames.compute_frames` does.

    The float32 products then round as they do in training, whatever the caller's threads.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _config(what: str, sr: int, n_fft: int | None, hop_length: int, **settings: Any) -> FeatureConfig:
    """The engine's settings for one call (validated by :class:`FeatureConfig`)."""
    sr = sample_rate(sr)
    if what != "f0":  # FeatureConfig checks the f0 range against sr even where f0 is not computed
        top = min(500.0, 0.49 * sr)
        settings.setdefault("f0_fmax", top)
        settings.setdefault("f0_fmin", min(65.0, top / 2))
    return FeatureConfig(sr=sr, n_fft=2048 if n_fft is None else n_fft, hop_length=hop_length,
                         features=[what], **settings)


def _signal(y: Any, cfg: FeatureConfig) -> np.ndarray:
    if np.ndim(y) != 1:
        raise ParameterError(f"y must be a mono signal of shape (n,), got shape {np.shape(y)}; "
                             "average the channels first (y.mean(axis=0))")
    sig = mono_signal(y)
    check_length(sig, 1 if cfg.center else int(cfg.n_fft))
    return sig


def _spectrum(
    what: str,
    y: Any,
    S: Any,
    *,
    sr: int,
    n_fft: int | None,
    hop_length: int,
    kind: Literal["magnitude", "power"] = "magnitude",
    precise: bool = False,
    **settings: Any,
) -> Spectrum:
    """The one place that decides between a waveform and a spectrogram.

    ``y``: a :class:`Spectrum` of the signal (``precise``: librosa's float64 transform).
    ``S``: a :class:`Spectrum` over ``S.T`` (``kind`` says whether ``S`` is ``|X|`` or
    ``|X|**2``), with ``n_fft`` inferred from its height.
    """
    if (y is None) == (S is None):
        raise ParameterError(f"{what} needs exactly one of y (a waveform) or S (a spectrogram)"
                             + (", not both" if y is not None else ""))
    if y is not None:
        cfg = _config(what, sr, n_fft, hop_length, **settings)
        return Spectrum(_signal(y, cfg), cfg, precise=precise)
    S = np.asarray(S)
    if S.ndim != 2 or S.shape[0] < 2 or not np.issubdtype(S.dtype, np.floating):
        raise ParameterError(f"{what}: S must be a real 2-D spectrogram (1 + n_fft // 2, n_frames), "
                             f"got {S.dtype} of shape {S.shape}")
    inferred = 2 * (S.shape[0] - 1)
    if n_fft is not None and 1 + int(n_fft) // 2 != S.shape[0]:
        raise ParameterError(f"{what}: S has {S.shape[0]} frequency rows, which is n_fft={inferred}, not n_fft={n_fft}")
    if not np.all(np.isfinite(S)) or (S.size and S.min() < 0):
        raise ParameterError(f"{what}: S must be a {kind} spectrogram: finite and >= 0")
    cfg = _config(what, sr, inferred, hop_length, **settings)
    return Spectrum.from_spectrogram(S.T, cfg, power=kind == "power")


def _rows(frames: np.ndarray) -> np.ndarray:
    """The engine's (n_frames, k) as librosa's (k, n_frames)."""
    return np.ascontiguousarray(np.asarray(frames, dtype=np.float32).T)


@_one_thread
def rms(
    y: Any = None,
    *,
    S: Any = None,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Root-mean-square energy of each frame: ``librosa.feature.rms``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], optional
        Mono audio. Give ``y`` or ``S``, not both.
    S : np.ndarray [shape=(1 + frame_length // 2, n_frames)], optional
        Magnitude spectrogram; the energy is then Parseval's sum over its bins (librosa's
        formula, which equals the waveform RMS only for a rectangular window).
    frame_length : int
        Samples per frame (the ``n_fft`` of the other features, for the same frames).
    hop_length : int
        Samples between frame starts.
    center : bool
        Pad ``y`` by ``frame_length // 2`` at both ends.
    pad_mode : str
        ``np.pad`` mode for that padding.

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import rms
    >>> y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    >>> r = rms(y)
    >>> r.shape, round(float(r[0, 10]), 2)  # a sine's RMS is its amplitude / sqrt(2)
    ((1, 44), 0.35)
    """
    if S is not None and y is None:
        S = np.asarray(S)
        if S.ndim != 2 or S.shape[0] != frame_length // 2 + 1:
            raise ParameterError(f"rms: S must have 1 + frame_length // 2 = {frame_length // 2 + 1} rows, "
                                 f"got shape {S.shape}")
        x = np.abs(S.astype(np.float64)) ** 2
        x[0] *= 0.5
        if frame_length % 2 == 0:
            x[-1] *= 0.5
        return np.sqrt(2.0 * x.sum(axis=0, keepdims=True) / frame_length**2).astype(np.float32)
    sp = _spectrum("rms", y, S, sr=22050, n_fft=frame_length, hop_length=hop_length, center=center, pad_mode=pad_mode)
    return _rows(spectral.rms(sp))


@_one_thread
def zcr(y: Any, *, frame_length: int = 2048, hop_length: int = 512, center: bool = True) -> np.ndarray:
    """Share of sign changes in each frame: ``librosa.feature.zero_crossing_rate``.

    Samples with ``|x| <= 1e-10`` count as zero, and centring pads with the edge values,
    both as librosa does; the rates are identical to librosa's.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio.
    frame_length : int
        Samples per frame.
    hop_length : int
        Samples between frame starts.
    center : bool
        Pad by ``frame_length // 2`` edge samples at both ends.

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32
        Crossings per sample, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import zcr
    >>> y = np.sin(2 * np.pi * 100 * np.arange(22050) / 22050)  # 200 crossings a second
    >>> z = zcr(y)
    >>> z.shape, bool(190 < np.median(z) * 22050 < 210)
    ((1, 44), True)
    """
    sp = _spectrum("zcr", y, None, sr=22050, n_fft=frame_length, hop_length=hop_length, center=center)
    return _rows(spectral.zcr(sp))


@_one_thread
@_doc(s_kind="Magnitude")
def centroid(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Spectral centroid, the magnitude-weighted mean frequency: ``librosa.feature.spectral_centroid``.

    ``c[t] = sum_k f_k S[k, t] / sum_k S[k, t]``; silent frames give 0.

    Parameters
    ----------
    {stft}

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32
        Hz.

    See Also
    --------
    bandwidth : the spread around this centroid.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import centroid
    >>> y = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050)
    >>> round(float(np.median(centroid(y=y, sr=22050))), -1)
    1000.0
    """
    sp = _spectrum("centroid", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode)
    return _rows(spectral.centroid(sp))


@_one_thread
@_doc(s_kind="Magnitude")
def bandwidth(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Spectral bandwidth (p = 2): ``librosa.feature.spectral_bandwidth``.

    ``b[t] = sqrt(sum_k S[k, t] (f_k - c[t])^2 / sum_k S[k, t])`` about the centroid ``c``,
    accumulated so that narrow-band frames do not cancel (a pure tone's bandwidth is a few
    Hz, not rounding noise). Runs on librosa's float64 transform.

    Parameters
    ----------
    {stft}

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32
        Hz.

    See Also
    --------
    centroid

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import bandwidth
    >>> t = np.arange(22050) / 22050
    >>> tone, noise = np.sin(2 * np.pi * 1000 * t), np.random.default_rng(0).standard_normal(22050)
    >>> bool(np.median(bandwidth(tone)) < 100 < np.median(bandwidth(noise)))
    True
    """
    sp = _spectrum("bandwidth", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, precise=True)
    return _rows(spectral.bandwidth(sp))


@_one_thread
@_doc(s_kind="Magnitude")
def rolloff(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    roll_percent: float = 0.85,
) -> np.ndarray:
    """Roll-off frequency: ``librosa.feature.spectral_rolloff``.

    The lowest bin frequency below which ``roll_percent`` of the frame's magnitude lies.
    The running sum is float64; librosa's float32 sum picks the neighbouring bin in ~1 % of
    frames (``sr / n_fft`` Hz apart).

    Parameters
    ----------
    {stft}
    roll_percent : float
        Share of the magnitude, in (0, 1).

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32
        Hz, one of the FFT bin frequencies.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import rolloff
    >>> y = np.sin(2 * np.pi * 2000 * np.arange(22050) / 22050)
    >>> f = float(np.median(rolloff(y)))  # a tone: just above its frequency (window leakage)
    >>> bool(2000 < f < 2000 + 2 * 22050 / 2048)
    True
    """
    sp = _spectrum("rolloff", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, roll_percent=roll_percent)
    return _rows(spectral.rolloff(sp))


@_one_thread
@_doc(s_kind="Magnitude")
def flatness(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    amin: float = 1e-10,
) -> np.ndarray:
    """Spectral flatness (power 2): ``librosa.feature.spectral_flatness``.

    Geometric over arithmetic mean of ``max(amin, S**2)`` per frame: near 1 for white
    noise, near 0 for a tone. Runs on librosa's float64 transform.

    Parameters
    ----------
    {stft}
    amin : float
        Floor on the power, > 0 (the log of a silent bin).

    Returns
    -------
    np.ndarray [shape=(1, n_frames)], float32
        In (0, 1]. (``sr`` does not change the value; it is accepted for symmetry.)

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import flatness
    >>> noise = np.random.default_rng(0).standard_normal(22050)
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    >>> bool(np.median(flatness(tone)) < 0.01 < 0.3 < np.median(flatness(noise)))
    True
    """
    sp = _spectrum("flatness", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, precise=True)
    return _rows(spectral.flatness(sp, amin=amin))


@_one_thread
@_doc(s_kind="Magnitude")
def contrast(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    fmin: float = 200.0,
    n_bands: int = 6,
    quantile: float = 0.02,
) -> np.ndarray:
    """Spectral contrast, peak minus valley in dB per octave band: ``librosa.feature.spectral_contrast``.

    Runs on librosa's float64 transform; the band edges are librosa's.

    Parameters
    ----------
    {stft}
    fmin : float
        Upper edge of the lowest band, Hz (> 0); each further band is an octave.
    n_bands : int
        Number of octave bands above ``fmin``; the top one must stay below Nyquist.
    quantile : float
        Share of a band's bins averaged as its peak and its valley, in (0, 1).

    Returns
    -------
    np.ndarray [shape=(n_bands + 1, n_frames)], float32
        dB, lowest band first.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import contrast
    >>> y = np.random.default_rng(0).standard_normal(22050)
    >>> contrast(y, 22050).shape
    (7, 44)
    """
    sp = _spectrum("contrast", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, precise=True, contrast_fmin=fmin,
                   contrast_bands=n_bands)
    return _rows(spectral.contrast(sp, quantile=quantile))


@_one_thread
@_doc(s_kind="Power")
def chroma(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_chroma: int = 12,
    tuning: float | None = None,
) -> np.ndarray:
    """Chromagram from the power spectrogram: ``librosa.feature.chroma_stft``.

    Energy per pitch class, each frame scaled to a maximum of 1 (silent frames stay 0).

    Parameters
    ----------
    {stft}
    n_chroma : int
        Pitch classes per octave (row 0 is C).
    tuning : float, optional
        Deviation from A440 in fractions of a chroma bin; None estimates it from the
        spectrogram as librosa does (slower, and clip-dependent).

    Returns
    -------
    np.ndarray [shape=(n_chroma, n_frames)], float32
        In [0, 1].

    See Also
    --------
    tonnetz : tonal centroids of this chroma.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import chroma
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)  # A4
    >>> int(np.median(chroma(y, tuning=0.0).argmax(axis=0)))  # pitch class 9 is A
    9
    """
    sp = _spectrum("chroma", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, kind="power", n_chroma=n_chroma,
                   tuning="estimate" if tuning is None else tuning)
    return _rows(tonal.chroma(sp))


@_one_thread
@_doc(s_kind="Power")
def mel(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Mel power spectrogram: ``librosa.feature.melspectrogram`` (Slaney mel scale and norm).

    Parameters
    ----------
    {stft}
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Frequency range of the filter bank, Hz (``fmax=None``: ``sr / 2``).

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames)], float32
        Power, lowest band first.

    See Also
    --------
    logmel : the same in dB.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import mel
    >>> y = np.random.default_rng(0).standard_normal(22050)
    >>> mel(y, n_mels=40).shape
    (40, 44)
    """
    sp = _spectrum("mel", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, kind="power", n_mels=n_mels, fmin=fmin, fmax=fmax)
    return _rows(sp.mel)


def _mel_input(what: str, y: Any, S: Any, sr: int, kw: dict[str, Any]) -> tuple[np.ndarray, FeatureConfig]:
    """(n_frames, n_mels) log-mel from ``y``, or the given log-mel ``S`` (n_mels, n_frames)."""
    if (y is None) == (S is None):
        raise ParameterError(f"{what} needs exactly one of y (a waveform) or S (a log-power mel spectrogram)"
                             + (", not both" if y is not None else ""))
    if y is not None:
        sp = _spectrum(what, y, None, sr=sr, **kw)
        return sp.logmel, sp.cfg
    S = np.asarray(S)
    if S.ndim != 2 or not np.issubdtype(S.dtype, np.floating) or not np.all(np.isfinite(S)):
        raise ParameterError(f"{what}: S must be a finite real log-mel spectrogram (n_mels, n_frames), got "
                             f"{S.dtype} of shape {S.shape}")
    kw = {**kw, "n_mels": S.shape[0]}
    kw.pop("n_fft", None)
    return np.ascontiguousarray(S.T, dtype=np.float32), _config(what, sr, None, **kw)


@_one_thread
@_doc(s_kind="Power")
def logmel(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Log-power mel spectrogram: ``librosa.power_to_db(melspectrogram(...), ref=1.0, top_db=80)``.

    Parameters
    ----------
    {stft}
        For ``logmel``, ``S`` is a power spectrogram (the mel filter bank is applied here).
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Frequency range of the filter bank, Hz (``fmax=None``: ``sr / 2``).
    top_db : float, optional
        Floor at the maximum minus ``top_db`` dB (None: no floor; ``amin`` is 1e-10).

    Returns
    -------
    np.ndarray [shape=(n_mels, n_frames)], float32
        dB relative to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import logmel
    >>> L = logmel(np.random.default_rng(0).standard_normal(22050), n_mels=64)
    >>> L.shape, bool(L.max() - L.min() <= 80)
    ((64, 44), True)
    """
    sp = _spectrum("logmel", y, S, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pad_mode=pad_mode, kind="power", n_mels=n_mels, fmin=fmin,
                   fmax=fmax, top_db=top_db)
    return _rows(sp.logmel)


_MFCC_DOC = """y : np.ndarray [shape=(n,)], optional
        Mono audio. Give ``y`` or ``S``, not both.
    sr : int
        Sample rate, Hz.
    S : np.ndarray [shape=(n_mels, n_frames)], optional
        Log-power mel spectrogram (as :func:`logmel` returns), librosa's ``S`` for ``mfcc``.
    n_mfcc : int
        Coefficients kept, <= ``n_mels``.
    n_fft, hop_length, win_length, window, center, pad_mode
        The STFT of ``y``, as in :func:`mel`.
    n_mels, fmin, fmax, top_db
        The log-mel of ``y``, as in :func:`logmel` (``n_mels`` is ``S``'s height when ``S``
        is given)."""


def _mfcc_doc(fn: F) -> F:
    fn.__doc__ = (fn.__doc__ or "").replace("{mfcc}", _MFCC_DOC)
    return fn


@_one_thread
@_mfcc_doc
def mfcc(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    n_mfcc: int = 20,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients: ``librosa.feature.mfcc`` (DCT-II, ortho, no lifter).

    Parameters
    ----------
    {mfcc}

    Returns
    -------
    np.ndarray [shape=(n_mfcc, n_frames)], float32

    See Also
    --------
    mfcc_delta : their change over time.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import logmel, mfcc
    >>> y = np.random.default_rng(0).standard_normal(22050)
    >>> M = mfcc(y, n_mfcc=13)
    >>> M.shape, bool(np.allclose(M, mfcc(S=logmel(y), n_mfcc=13), atol=1e-3))
    ((13, 44), True)
    """
    kw = {"n_fft": n_fft, "hop_length": hop_length, "win_length": win_length, "window": window, "center": center,
          "pad_mode": pad_mode, "n_mels": n_mels, "fmin": fmin, "fmax": fmax, "top_db": top_db, "n_mfcc": n_mfcc}
    L, cfg = _mel_input("mfcc", y, S, sr, kw)
    if cfg.n_mfcc > cfg.n_mels:
        raise ParameterError(f"n_mfcc ({cfg.n_mfcc}) must be <= n_mels ({cfg.n_mels})")
    return _rows(L @ filters.dct_matrix(cfg.n_mels, cfg.n_mfcc))


@_one_thread
@_mfcc_doc
def mfcc_delta(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    mfcc: Any = None,
    order: int = 1,
    width: int = 9,
    n_mfcc: int = 20,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Time derivative of the MFCC: ``librosa.feature.delta(mfcc, width=9, order=1)``.

    A Savitzky-Golay filter along time (``mode="interp"``). Clips shorter than ``width``
    frames use the largest odd width that fits (librosa refuses them).

    Parameters
    ----------
    {mfcc}
    mfcc : np.ndarray [shape=(n_coefficients, n_frames)], optional
        Coefficients already computed (then ``y`` and ``S`` are not given).
    order : int
        Derivative order, >= 1 and < ``width``.
    width : int
        Filter length in frames, odd, >= 3.

    Returns
    -------
    np.ndarray [shape=(n_mfcc, n_frames)], float32

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import mfcc_delta
    >>> ramp = np.tile(np.arange(50.0), (3, 1))  # rises by 1 per frame
    >>> mfcc_delta(mfcc=ramp)[:, 25]
    array([1., 1., 1.], dtype=float32)
    """
    if mfcc is not None:
        if y is not None or S is not None:
            raise ParameterError("mfcc_delta takes one of y, S or mfcc")
        m = np.asarray(mfcc)
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.number):
            raise ParameterError(f"mfcc must be a real 2-D array (n_coefficients, n_frames), got shape {m.shape}")
        return _rows(spectral.delta(np.ascontiguousarray(m.T, dtype=np.float32), order=order, width=width))
    m = globals()["mfcc"](y, sr, S=S, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                          window=window, center=center, pad_mode=pad_mode, n_mels=n_mels, fmin=fmin, fmax=fmax,
                          top_db=top_db)
    return _rows(spectral.delta(np.ascontiguousarray(m.T), order=order, width=width))


@_one_thread
def mfcc_delta2(y: Any = None, sr: int = 22050, **kwargs: Any) -> np.ndarray:
    """Second time derivative of the MFCC: :func:`mfcc_delta` with ``order=2``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], optional
        Mono audio (or give ``S=`` or ``mfcc=`` as for :func:`mfcc_delta`).
    sr : int
        Sample rate, Hz.
    **kwargs
        Any other argument of :func:`mfcc_delta` except ``order``.

    Returns
    -------
    np.ndarray [shape=(n_mfcc, n_frames)], float32

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import mfcc_delta2
    >>> parabola = np.tile(np.arange(50.0) ** 2 / 2, (2, 1))  # second derivative 1
    >>> np.round(mfcc_delta2(mfcc=parabola)[:, 25], 4)
    array([1., 1.], dtype=float32)
    """
    if "order" in kwargs:
        raise ParameterError("mfcc_delta2 is order 2; use mfcc_delta(order=...) for another order")
    return mfcc_delta(y, sr, order=2, **kwargs)


@_one_thread
@_doc(s_kind="Power")
def tonnetz(
    y: Any = None,
    sr: int = 22050,
    *,
    S: Any = None,
    chroma: Any = None,
    n_fft: int | None = None,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    n_chroma: int = 12,
    tuning: float | None = None,
) -> np.ndarray:
    """Tonal centroids (fifths, minor and major thirds): ``librosa.feature.tonnetz(chroma=...)``.

    librosa's default projects CQT chroma; this projects the STFT chroma of :func:`chroma`,
    i.e. it equals ``librosa.feature.tonnetz(chroma=librosa.feature.chroma_stft(...))``.

    Parameters
    ----------
    {stft}
    chroma : np.ndarray [shape=(n_chroma, n_frames)], optional
        A chromagram to project instead of computing one from ``y`` or ``S``.
    n_chroma, tuning
        As in :func:`chroma`.

    Returns
    -------
    np.ndarray [shape=(6, n_frames)], float32
        Rows: fifth x, fifth y, minor x, minor y, major x, major y.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import tonnetz
    >>> c_major = np.zeros((12, 4)); c_major[[0, 4, 7]] = 1.0  # C, E, G
    >>> tonnetz(chroma=c_major).shape
    (6, 4)
    """
    if chroma is not None:
        if y is not None or S is not None:
            raise ParameterError("tonnetz takes one of y, S or chroma")
        c = np.asarray(chroma)
        if c.ndim != 2:
            raise ParameterError(f"chroma must be (n_chroma, n_frames), got shape {c.shape}")
        return _rows(tonal.tonnetz(np.ascontiguousarray(c.T, dtype=np.float32)))
    ch = globals()["chroma"](y, sr, S=S, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                             window=window, center=center, pad_mode=pad_mode, n_chroma=n_chroma, tuning=tuning)
    return _rows(tonal.tonnetz(np.ascontiguousarray(ch.T)))


@_one_thread
def f0(
    y: Any,
    sr: int = 22050,
    *,
    fmin: float = 65.0,
    fmax: float = 500.0,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Pitch contour and voicing on the feature frame grid, from ``librosa.yin``.

    Unlike ``librosa.yin`` (Hz in every frame, guesses in silence), row 0 is ``log2`` of the
    YIN estimate with unvoiced frames interpolated from their voiced neighbours, and row 1
    marks the voiced frames (within 30 dB of the loudest frame and strictly inside
    ``(fmin, fmax)``); see :mod:`sonotype.features.pitch`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio.
    sr : int
        Sample rate, Hz.
    fmin, fmax : float
        Pitch search range, Hz: ``0 < fmin < fmax < sr / 2``; ``fmin`` must leave at least
        one period in half a frame.
    frame_length : int
        YIN frame length (the ``n_fft`` of the other features, for the same frames).
    hop_length : int
        Samples between frame starts.
    center : bool
        Pad by ``frame_length // 2`` at both ends.
    pad_mode : str
        ``np.pad`` mode for that padding.

    Returns
    -------
    np.ndarray [shape=(2, n_frames)], float32
        Row 0: log2 f0 in Hz; row 1: 1.0 where voiced, else 0.0.

    Examples
    --------
    >>> import numpy as np
    >>> from sonotype.features import f0
    >>> y = np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    >>> out = f0(y, 16000, frame_length=1024, hop_length=256)
    >>> round(float(2 ** np.median(out[0]))), float(out[1].mean())
    (220, 1.0)
    """
    cfg = _config("f0", sr, frame_length, hop_length, center=center, pad_mode=pad_mode, f0_fmin=fmin, f0_fmax=fmax)
    return _rows(pitch.f0(_signal(y, cfg), cfg))
