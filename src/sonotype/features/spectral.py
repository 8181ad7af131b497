"""One short-time spectrum per clip, and every spectral feature derived from it.

:class:`Spectrum` frames the signal once (a strided view, no copy), applies the window and
runs ``scipy.fft.rfft`` over blocks of frames (float32, or float64 where a feature needs
librosa's exact magnitudes); magnitude, power, mel and log-mel are computed lazily from it
and shared by every feature. Each function mirrors one librosa
function with the same settings (named in its docstring) and is tested against it.

Layout: frames are rows, ``(n_frames, n_bins)``; every feature returns ``(n_frames, k)``.
"""

from __future__ import annotations

import itertools
from functools import cached_property

import numpy as np
import scipy.fft

from sonotype.errors import ConfigError, ParameterError
from sonotype.features import filters
from sonotype.features.config import FeatureConfig
from sonotype.utils.checks import finite, positive_int

__all__ = [
    "Spectrum",
    "bandwidth",
    "centroid",
    "contrast",
    "delta",
    "flatness",
    "logmel",
    "mel",
    "mfcc",
    "mfcc_delta",
    "rms",
    "rolloff",
    "zcr",
]

_TINY32 = float(np.finfo(np.float32).tiny)


def _frame(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """(n_frames, frame_length) read-only strided view of ``y`` (librosa's ``util.frame``, transposed)."""
    return np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop]


def _pad(y: np.ndarray, n_fft: int, center: bool, mode: str) -> np.ndarray:
    return np.pad(y, (n_fft // 2, n_fft // 2), mode=mode) if center else y


class Spectrum:
    """The shared STFT of one clip and its cached derived spectrograms.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono signal at ``cfg.sr``.
    cfg : FeatureConfig
        n_fft, hop_length, win_length, window, center and pad_mode as in ``librosa.stft``.
    precise : bool
        Run the transform in float64 and round to complex64, exactly as librosa does: the
        magnitudes are bit-equal to librosa's, for ~1.5x the FFT time. Bandwidth, contrast
        and flatness need it (:func:`needs_precise`): they weigh the quietest bins, where a
        float32 FFT's rounding floor (~1e-7 of the frame's peak) is a visible share of the
        value (a pure tone's bandwidth doubles). Every other feature is exact to ~1e-6 in float32.

    Attributes
    ----------
    mag, power, mel, logmel, mfcc : np.ndarray [shape=(n_frames, k)], float32
        Computed on first use and kept: every feature of the clip shares them.

    Examples
    --------
    >>> sp = Spectrum(np.zeros(22050, np.float32), FeatureConfig())
    >>> sp.mag.shape, sp.mel.shape, sp.n_frames
    ((44, 1025), (44, 128), 44)
    """

    def __init__(self, y: np.ndarray, cfg: FeatureConfig, *, precise: bool = False) -> None:
        if np.ndim(y) != 1:
            raise ParameterError(f"Spectrum needs a mono 1-D signal, got shape {np.shape(y)}")
        self.y: np.ndarray | None = np.ascontiguousarray(y, dtype=np.float32)
        self.cfg = cfg
        self.precise = precise

    @classmethod
    def from_spectrogram(cls, S: np.ndarray, cfg: FeatureConfig, *, power: bool = False) -> Spectrum:
        """A Spectrum over a given spectrogram (frames as rows) instead of a signal.

        ``S`` is ``|X|`` (``power=False``) or ``|X|**2``; the other is derived from it. There
        is no signal, so the waveform features (:func:`rms`, :func:`zcr`) cannot use it.

        Parameters
        ----------
        S : np.ndarray [shape=(n_frames, 1 + cfg.n_fft // 2)]
            Non-negative spectrogram, frames as rows.
        cfg : FeatureConfig
            The settings ``S`` was computed with (``sr``, ``n_fft``) and the features' own.
        power : bool
            ``S`` is a power spectrogram.

        Returns
        -------
        Spectrum

        Examples
        --------
        >>> sp = Spectrum.from_spectrogram(np.ones((3, 1025), np.float32), FeatureConfig())
        >>> sp.n_frames, float(sp.power[0, 0])
        (3, 1.0)
        """
        S = np.ascontiguousarray(S, dtype=np.float32)
        sp = cls.__new__(cls)
        sp.y, sp.cfg, sp.precise = None, cfg, False
        sp.__dict__["power" if power else "mag"] = S
        sp.__dict__["mag" if power else "power"] = np.sqrt(S) if power else S * S
        return sp

    @cached_property
    def mag(self) -> np.ndarray:
        """Magnitude spectrogram ``|X|`` (n_frames, 1 + n_fft // 2), float32.

        Computed in blocks of frames that fit in cache (window, rfft, abs), so the complex
        STFT of the whole clip never exists in memory.
        """
        c = self.cfg
        win = c.win_length or c.n_fft
        if self.precise:  # cast the signal once, so each block multiplies float64 by float64
            y, w = self.y.astype(np.float64), filters.window64(c.window, win, c.n_fft)
        else:
            y, w = self.y, filters.window(c.window, win, c.n_fft)
        frames = _frame(_pad(y, c.n_fft, c.center, c.pad_mode), c.n_fft, c.hop_length)
        n = frames.shape[0]
        out = np.empty((n, c.n_fft // 2 + 1), dtype=np.float32)
        power = np.empty_like(out)
        step = max(8, (1 << 20) // (8 * c.n_fft))
        for s in range(0, n, step):  # blocks of frames, not single frames
            x = scipy.fft.rfft(frames[s : s + step] * w, axis=-1, workers=1)
            m = np.abs(x.astype(np.complex64, copy=False), out=out[s : s + step])
            np.multiply(m, m, out=power[s : s + step])  # while the block is in cache
        self.__dict__["power"] = power
        return out

    @cached_property
    def power(self) -> np.ndarray:
        """Power spectrogram ``|X|**2``, float32 (the same rounding as ``np.abs(X)**2``)."""
        self.mag  # noqa: B018 - computes and stores the power alongside
        return self.__dict__["power"]

    @property
    def n_frames(self) -> int:
        """librosa's frame count, without computing the spectrum (rms/zcr need only this)."""
        if self.y is None:
            return int(self.mag.shape[0])
        return self.cfg.n_frames(self.y.size)

    @cached_property
    def freqs(self) -> np.ndarray:
        return filters.fft_freqs(self.cfg.sr, self.cfg.n_fft)

    @cached_property
    def mel(self) -> np.ndarray:
        """Mel power spectrogram (n_frames, n_mels): ``librosa.feature.melspectrogram``."""
        c = self.cfg
        p = self.power
        out = np.zeros((p.shape[0], c.n_mels), dtype=np.float32)
        for m0, m1, lo, hi, w in filters.mel_blocks(c.sr, c.n_fft, c.n_mels, float(c.fmin), c.fmax):
            np.matmul(p[:, lo:hi], w, out=out[:, m0:m1])
        return out

    @cached_property
    def logmel(self) -> np.ndarray:
        """``librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=cfg.top_db)``."""
        return power_to_db(self.mel, top_db=self.cfg.top_db)

    @cached_property
    def mfcc(self) -> np.ndarray:
        """``librosa.feature.mfcc`` (DCT-II ortho of the log-mel), (n_frames, n_mfcc)."""
        c = self.cfg
        if c.n_mfcc > c.n_mels:
            raise ConfigError(f"n_mfcc ({c.n_mfcc}) must be <= n_mels ({c.n_mels})")
        return self.logmel @ filters.dct_matrix(c.n_mels, c.n_mfcc)


PRECISE_FEATURES = frozenset({"bandwidth", "contrast", "flatness"})


def needs_precise(features: list[str]) -> bool:
    """Whether these features need librosa's float64 transform (see :class:`Spectrum`).

    Parameters
    ----------
    features : list of str
        Frame feature names.

    Returns
    -------
    bool

    Examples
    --------
    >>> needs_precise(["mfcc", "bandwidth"]), needs_precise(["mfcc"])
    (True, False)
    """
    return bool(PRECISE_FEATURES & set(features))


def power_to_db(s: np.ndarray, *, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``librosa.power_to_db`` with ``ref=1``: ``10 log10(max(amin, s))``, floored at max - top_db.

    Parameters
    ----------
    s : np.ndarray
        Power values, any shape.
    amin : float
        Floor on ``s`` before the log, > 0.
    top_db : float, optional
        The result is at least ``max - top_db`` (None: no floor).

    Returns
    -------
    np.ndarray
        dB, the shape of ``s``.

    Examples
    --------
    >>> power_to_db(np.array([1.0, 0.1, 1e-12]))
    array([  0., -10., -80.])
    """
    finite("amin", amin, low=0.0, low_open=True)
    if top_db is not None:
        finite("top_db (dB)", top_db, low=0.0)
    out = np.log10(np.maximum(amin, s))
    out *= 10.0
    if top_db is not None and out.size:
        np.maximum(out, out.max() - top_db, out=out)
    return out


def _signal(sp: Spectrum, what: str) -> np.ndarray:
    if sp.y is None:
        raise ParameterError(f"{what} needs the waveform; this Spectrum was built from a spectrogram")
    return sp.y


def rms(sp: Spectrum) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop, center, pad_mode)``.

    Frame energies are float64 sums of ``y**2`` over hop-sized blocks, added ``n_fft / hop``
    blocks at a time (a running sum when hop does not divide n_fft): O(n), no frame loop.
    librosa sums each frame in float32, so the two agree to ~1e-6 relative.

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32

    Examples
    --------
    >>> sp = Spectrum(np.full(22050, 0.5, np.float32), FeatureConfig())
    >>> float(rms(sp)[10, 0])
    0.5
    """
    c = sp.cfg
    y = _pad(_signal(sp, "rms"), c.n_fft, c.center, c.pad_mode).astype(np.float64)
    n, hop, nf = sp.n_frames, c.hop_length, c.n_fft
    if nf % hop == 0:
        per = nf // hop
        need = (n - 1 + per) * hop
        sq = np.zeros(need)
        m = min(need, y.size)
        sq[:m] = y[:m] * y[:m]
        blocks = np.concatenate(([0.0], np.cumsum(sq.reshape(-1, hop).sum(axis=1))))
        energy = blocks[per : per + n] - blocks[:n]
    else:
        cs = np.concatenate(([0.0], np.cumsum(y * y)))
        starts = np.arange(n) * hop
        energy = cs[starts + nf] - cs[starts]
    return np.sqrt(np.maximum(energy, 0.0) / nf).astype(np.float32)[:, None]


def zcr(sp: Spectrum) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop, center)``.

    librosa pads with edge values, zeroes samples with ``|x| <= 1e-10`` and counts sign
    changes inside each frame; counting them once over the whole signal with an integer
    running sum gives the identical rates.

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32
        Crossings per sample.

    Examples
    --------
    >>> sp = Spectrum(np.tile(np.float32([1, -1]), 11025), FeatureConfig())  # a crossing every sample
    >>> round(float(zcr(sp)[10, 0]), 3)
    1.0
    """
    c = sp.cfg
    y = _signal(sp, "zcr")
    if c.center:
        y = np.pad(y, (c.n_fft // 2, c.n_fft // 2), mode="edge")
    neg = y < np.float64(-1e-10)  # float64 compare, as librosa's numba stencil does
    cross = np.concatenate(([0], np.cumsum(neg[1:] != neg[:-1], dtype=np.int64)))
    # cross[k] = crossings at positions 1..k; a frame at s counts positions s+1 .. s+L-1.
    starts = np.arange(sp.n_frames) * c.hop_length
    count = cross[starts + c.n_fft - 1] - cross[starts]
    return (count / c.n_fft).astype(np.float32)[:, None]


_BLOCK = 64
_KK64 = np.stack([np.ones(_BLOCK), np.arange(_BLOCK), np.arange(_BLOCK) ** 2.0], axis=1)  # (64, 3): 1, k, k^2


class _Moments:
    """Per-frame spectral moments from block-local sums, shared by centroid, bandwidth, roll-off.

    The bins are cut into blocks of 64; one float32 product gives each block's sum and its
    first and second moments about the block's first bin. Everything after that is float64
    on (n_frames, n_blocks) arrays.

    The float32 sums are accurate to ~1e-7 of themselves (positive terms, no cancellation),
    which is all the centroid and roll-off need. The spread is not: see :meth:`spread`.
    """

    def __init__(self, mag: np.ndarray) -> None:
        t, nb = mag.shape
        nblk = nb // _BLOCK
        main = mag[:, : nblk * _BLOCK].reshape(t, nblk, _BLOCK)
        k = np.arange(_BLOCK, dtype=np.float32)
        local = main @ np.stack([np.ones_like(k), k, k * k], axis=1)  # (t, nblk, 3)
        tail = mag[:, nblk * _BLOCK :].astype(np.float64)  # the leftover bins (Nyquist)
        kt = np.arange(nblk * _BLOCK, nb, dtype=np.float64)
        self.base = np.arange(nblk, dtype=np.float64) * _BLOCK
        self.local = local.astype(np.float64)
        self.tail, self.kt = tail, kt
        self.mag, self.main = mag, main
        s0 = self.local[:, :, 0].sum(axis=1) + tail.sum(axis=1)
        s1 = (self.local[:, :, 1] + self.base * self.local[:, :, 0]).sum(axis=1) + tail @ kt
        self.total = s0
        self.silent = s0 < _TINY32
        denom = np.where(self.silent, 1.0, s0)
        self.center = s1 / denom  # centroid in bins; 0 for silent frames as in librosa

    def rolloff_bin(self, roll_percent: float) -> np.ndarray:
        """Index of the first bin whose cumulative sum reaches ``roll_percent`` of the total."""
        t, nb = self.mag.shape
        blocks = np.concatenate([self.local[:, :, 0], self.tail.sum(axis=1, keepdims=True)], axis=1)
        cum = np.cumsum(blocks, axis=1)
        thr = roll_percent * self.total
        blk = np.minimum(np.count_nonzero(cum < thr[:, None], axis=1), blocks.shape[1] - 1)
        before = np.where(blk > 0, cum[np.arange(t), np.maximum(blk - 1, 0)], 0.0)
        offs = blk[:, None] * _BLOCK + np.arange(_BLOCK)
        seg = np.take_along_axis(self.mag, np.minimum(offs, nb - 1), axis=1).astype(np.float64)
        seg[offs >= nb] = 0.0
        inner = before[:, None] + np.cumsum(seg, axis=1)
        return np.minimum(blk * _BLOCK + np.count_nonzero(inner < thr[:, None], axis=1), nb - 1)

    def spread(self) -> np.ndarray:
        """Second central moment in bins^2: sum_k S_k (k - c)^2 / sum_k S_k, block by block.

        A block's share is ``a2 + 2 d a1 + d^2 a0`` (``d`` = block origin - centroid), terms
        that cancel when the centroid is near. With float32 sums (relative error e <= 64 u32
        = 3.8e-6, any summation order) the share's error is e * sum S_k (k + |d|)^2 against
        the share sum S_k (k + d)^2. Two or more blocks from the centroid that ratio is at
        most (191 / 65)^2 < 9. In the centroid's block and its neighbours it is unbounded:
        terms of (128 bins)^2 against a spread of a few bins^2 (a tone midway in a block:
        2.4e-4 of its bandwidth; 1.7e-4 on a chirp, by an amount that depended on the CPU's
        sgemm kernel). Those 3 x 64 bins per frame are re-summed in float64 (u64 = 1.1e-16,
        < 1e-11 after the same cancellation). The centroid's own error (its float32 sums) is
        removed by the corrected two-pass formula, ``(m2 - m1^2 / s0) / s0`` with m1 the first
        moment about it. Bound: variance within 9 e = 3.4e-5, bandwidth within 1.7e-5 of the
        exact moment of these magnitudes, on any CPU (measured <= 4e-7).
        """
        t = self.center.shape[0]
        nblk = self.base.size
        local = self.local
        if nblk:
            b = np.clip(self.center // _BLOCK, 0, nblk - 1).astype(np.int64)
            j = np.clip(b[:, None] + np.arange(-1, 2), 0, nblk - 1)  # (t, 3); edge repeats are harmless
            rows = np.arange(t)[:, None]
            seg = self.main[rows, j].astype(np.float64)  # (t, 3, 64)
            local = local.copy()  # roll-off keeps the float32 sums: a result must not depend on call order
            local[rows, j] = seg @ _KK64
        d = self.base[None, :] - self.center[:, None]
        a0, a1, a2 = local[:, :, 0], local[:, :, 1], local[:, :, 2]
        dt = self.kt[None, :] - self.center[:, None]
        s0 = a0.sum(axis=1) + self.tail.sum(axis=1)
        m1 = (a1 + d * a0).sum(axis=1) + (self.tail * dt).sum(axis=1)  # ~0: the centroid's own error
        m2 = (a2 + 2 * d * a1 + d * d * a0).sum(axis=1) + (self.tail * dt * dt).sum(axis=1)
        s0 = np.where(self.silent, 1.0, s0)
        v = np.maximum(m2 - m1 * m1 / s0, 0.0) / s0  # corrected two-pass: about the exact centroid
        v[self.silent] = 0.0
        return v


def _moments(sp: Spectrum) -> _Moments:
    if "_moments" not in sp.__dict__:
        sp.__dict__["_moments"] = _Moments(sp.mag)
    return sp.__dict__["_moments"]


def centroid(sp: Spectrum) -> np.ndarray:
    """``librosa.feature.spectral_centroid(S=|X|)``; silent frames give 0 as in librosa.

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32
        Hz.

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> round(float(np.median(centroid(sp))), -1)
    1000.0
    """
    df = sp.cfg.sr / sp.cfg.n_fft
    return (_moments(sp).center * df).astype(np.float32)[:, None]


def bandwidth(sp: Spectrum) -> np.ndarray:
    """``librosa.feature.spectral_bandwidth(S=|X|, p=2)``: spread around the centroid.

    Central moments are accumulated per block about each block's own origin (see
    :class:`_Moments`): a raw ``E[f^2] - E[f]^2`` in float32 would cancel catastrophically
    for narrow-band frames (a pure tone at 4 kHz).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32
        Hz.

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> bool(np.median(bandwidth(sp)) < 100)  # a tone is narrow
    True
    """
    df = sp.cfg.sr / sp.cfg.n_fft
    return (np.sqrt(_moments(sp).spread()) * df).astype(np.float32)[:, None]


def rolloff(sp: Spectrum) -> np.ndarray:
    """``librosa.feature.spectral_rolloff(S=|X|, roll_percent)``: lowest bin frequency whose
    cumulative energy reaches ``roll_percent`` of the frame's total.

    The running sum is float64 (block sums, then one block per frame). librosa's is float32,
    whose rounding at 85 % of a 4,097-bin sum is about one bin's energy: in ~1 % of frames the
    two pick neighbouring bins (sr / n_fft Hz apart); clip means agree to ~1e-6.

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32
        Hz (a bin frequency).

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> bool(1000 < np.median(rolloff(sp)) < 1030)
    True
    """
    c = sp.cfg
    if not 0.0 < c.roll_percent < 1.0:
        raise ConfigError(f"roll_percent must lie in (0, 1), got {c.roll_percent}")
    return sp.freqs[_moments(sp).rolloff_bin(c.roll_percent)].astype(np.float32)[:, None]


def flatness(sp: Spectrum, *, amin: float = 1e-10) -> np.ndarray:
    """``librosa.feature.spectral_flatness(S=|X|, power=2, amin=1e-10)``: geometric over arithmetic mean.

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.
    amin : float
        Floor on the power, > 0.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1)], float32
        In (0, 1].

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> bool(np.median(flatness(sp)) < 0.01)  # a tone is anything but flat
    True
    """
    finite("amin", amin, low=0.0, low_open=True)  # 0 would take log(0) of silent bins
    s = np.maximum(amin, sp.power)
    gmean = np.exp(np.mean(np.log(s), axis=1))
    return (gmean / np.mean(s, axis=1)).astype(np.float32)[:, None]


def contrast(sp: Spectrum, *, quantile: float = 0.02) -> np.ndarray:
    """``librosa.feature.spectral_contrast(S=|X|, fmin, n_bands)``: peak minus valley (dB) per octave band.

    Uses the same band edges as librosa; one ``np.partition`` per band (7 bands, not per frame)
    replaces the full sort, which only changes the order the quantile means are summed in.
    ``quantile`` (the share of each band's bins averaged as its peak and its valley) lies in (0, 1).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.
        (``contrast_fmin``, ``contrast_bands``).
    quantile : float
        In (0, 1).

    Returns
    -------
    np.ndarray [shape=(n_frames, contrast_bands + 1)], float32
        dB, lowest band first.

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> contrast(sp).shape
    (44, 7)
    """
    finite("quantile", quantile, low=0.0, high=1.0, low_open=True, high_open=True)
    c = sp.cfg
    freq = sp.freqs
    n_bands = int(c.contrast_bands)
    if c.contrast_fmin <= 0 or n_bands < 1:
        raise ConfigError(f"contrast needs contrast_fmin > 0 and contrast_bands >= 1, got {c.contrast_fmin}, {n_bands}")
    octa = np.zeros(n_bands + 2)
    octa[1:] = c.contrast_fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * c.sr):
        raise ConfigError(
            f"contrast band edges {octa[:-1].tolist()} exceed the Nyquist frequency {c.sr / 2} Hz; "
            "lower contrast_fmin or contrast_bands"
        )
    m = sp.mag
    valley = np.zeros((m.shape[0], n_bands + 1))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(itertools.pairwise(octa)):
        band = np.logical_and(freq >= f_low, freq <= f_high)
        nz = np.flatnonzero(band)
        if k > 0:
            band[nz[0] - 1] = True
        if k == n_bands:
            band[nz[-1] + 1 :] = True
        sel = np.flatnonzero(band)
        lo, hi = int(sel[0]), int(sel[-1]) + 1
        q = max(int(np.rint(quantile * sel.size)), 1)
        if k < n_bands:
            hi -= 1
        sub = m[:, lo:hi]
        n = sub.shape[1]
        part = np.partition(sub, sorted({q - 1, n - q}), axis=1)
        valley[:, k] = part[:, :q].mean(axis=1)
        peak[:, k] = part[:, n - q :].mean(axis=1)
    out = power_to_db(peak) - power_to_db(valley)
    return out.astype(np.float32)


def mel(sp: Spectrum) -> np.ndarray:
    """``sp.mel``: the mel power spectrogram (see :attr:`Spectrum.mel`).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mels)], float32

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> mel(sp).shape
    (44, 128)
    """
    return sp.mel


def logmel(sp: Spectrum) -> np.ndarray:
    """``sp.logmel``: the mel spectrogram in dB (see :attr:`Spectrum.logmel`).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mels)], float32

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> L = logmel(sp)
    >>> bool(L.max() - L.min() <= sp.cfg.top_db)
    True
    """
    return sp.logmel


def mfcc(sp: Spectrum) -> np.ndarray:
    """``sp.mfcc``: the MFCC (see :attr:`Spectrum.mfcc`).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mfcc)], float32

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> mfcc(sp).shape
    (44, 20)
    """
    return sp.mfcc


def mfcc_delta(sp: Spectrum, *, order: int = 1, width: int = 9) -> np.ndarray:
    """:func:`delta` of the clip's MFCC (``librosa.feature.delta(mfcc, width, order)``).

    Parameters
    ----------
    sp : Spectrum
        The clip's shared STFT; settings come from ``sp.cfg``.
    order, width : int
        As in :func:`delta`.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mfcc)], float32

    Examples
    --------
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    >>> sp = Spectrum(tone, FeatureConfig())
    >>> mfcc_delta(sp, order=2).shape
    (44, 20)
    """
    return delta(sp.mfcc, order=order, width=width)


def delta(m: np.ndarray, *, order: int = 1, width: int = 9) -> np.ndarray:
    """``librosa.feature.delta(m.T, width=9, order).T`` along time (its Savitzky-Golay filter).

    ``m`` is (n_frames, k). ``width`` is odd and >= 3, ``order`` >= 1 and below ``width`` (as
    in librosa). Clips shorter than ``width`` frames use the largest odd width that fits
    (librosa refuses them); too few frames for any filter of that order give zeros.

    Parameters
    ----------
    m : np.ndarray [shape=(n_frames, k)]
        Frames as rows.
    order : int
        Derivative order.
    width : int
        Filter length in frames.

    Returns
    -------
    np.ndarray [shape=(n_frames, k)], float32

    Examples
    --------
    >>> delta(np.arange(20.0)[:, None] * 3)[10]  # a ramp rising by 3 per frame
    array([3.], dtype=float32)
    """
    import scipy.signal

    width = positive_int("width", width, minimum=3)
    if width % 2 == 0:
        raise ParameterError(f"width must be an odd integer >= 3, got {width}")
    order = positive_int("order", order)
    if order >= width:
        raise ParameterError(f"order must be below width, got order={order}, width={width}")
    n = m.shape[0]
    w = min(width, n if n % 2 else n - 1)
    if w < 3 or w <= order:
        return np.zeros_like(m)
    return scipy.signal.savgol_filter(m, w, polyorder=order, deriv=order, axis=0, mode="interp").astype(np.float32)
