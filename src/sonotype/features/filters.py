"""Cached deterministic builders: windows, frequency vectors, filterbanks, DCT and tonnetz matrices.

Every builder is keyed on its arguments (``functools.lru_cache``), so a corpus run builds each
filterbank once. The mel filterbank is also kept as contiguous blocks of filters with the bin
range they cover: a mel filter is zero outside a narrow band, so the blocked product costs a
fraction of a dense ``P @ mel.T`` while adding exactly the same non-zero terms.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["chroma_fb", "dct_matrix", "fft_freqs", "hz_to_octs", "mel_blocks", "mel_fb", "pitch_tuning", "tonnetz_phi", "window", "window64"]


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale, the same arithmetic as ``librosa.hz_to_mel(htk=False)``."""
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


def hz_to_octs(f: np.ndarray, *, tuning: float = 0.0, bins_per_octave: int = 12) -> np.ndarray:
    """Octaves above C0 relative to a tuned A440 (``librosa.hz_to_octs``).

    Parameters
    ----------
    f : np.ndarray
        Frequencies, Hz (> 0).
    tuning : float
        Offset of A440 in fractions of a bin.
    bins_per_octave : int

    Returns
    -------
    np.ndarray
        The shape of ``f``.

    Examples
    --------
    >>> hz_to_octs(np.array([27.5, 440.0]))
    array([0., 4.])
    """
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asarray(f) / (float(a440) / 16))


# The builders below reproduce librosa's (tested equal to them) so that worker processes
# never import librosa: its import and numba set-up cost seconds per process.
@lru_cache(maxsize=32)
def window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic analysis window centred in ``n_fft`` samples, float32."""
    out = window64(name, win_length, n_fft).astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=32)
def window64(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic analysis window centred in ``n_fft`` samples (librosa's ``get_window`` + ``pad_center``), float64."""
    if name in ("hann", "hanning"):
        fac = np.linspace(-np.pi, np.pi, win_length + 1)  # scipy's general_cosine, periodic
        w = (0.5 + 0.5 * np.cos(fac))[:-1]
    else:
        import scipy.signal

        w = scipy.signal.get_window(name, win_length, fftbins=True)
    if win_length > n_fft:
        from sonotype.errors import ConfigError

        raise ConfigError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
    lpad = (n_fft - win_length) // 2
    out = np.zeros(n_fft, dtype=np.float64)
    out[lpad : lpad + win_length] = w
    out.flags.writeable = False
    return out


@lru_cache(maxsize=32)
def fft_freqs(sr: int, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz, float64) of each rfft bin."""
    out = np.fft.rfftfreq(n_fft, 1.0 / sr)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=32)
def mel_fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """``librosa.filters.mel`` (Slaney scale and norm), shape (n_mels, 1 + n_fft // 2), float32."""
    fmax = float(sr) / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin)[0], _hz_to_mel(fmax)[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs(sr, n_fft))
    for i in range(n_mels):  # one row per filter, as librosa builds it
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=32)
def mel_blocks(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, block: int = 16
) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The mel filterbank cut into groups of ``block`` consecutive filters.

    Returns tuples ``(m0, m1, lo, hi, W)`` with ``W = fb[m0:m1, lo:hi].T`` (contiguous) covering
    every non-zero weight of filters ``m0..m1``.
    """
    fb = mel_fb(sr, n_fft, n_mels, fmin, fmax)
    out = []
    for m0 in range(0, n_mels, block):
        m1 = min(n_mels, m0 + block)
        nz = np.flatnonzero(np.any(fb[m0:m1] != 0, axis=0))
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
        w = np.ascontiguousarray(fb[m0:m1, lo:hi].T)
        w.flags.writeable = False
        out.append((m0, m1, lo, hi, w))
    return tuple(out)


@lru_cache(maxsize=256)
def chroma_fb(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """``librosa.filters.chroma`` for ``tuning`` (fractions of a bin), shape (n_chroma, bins), float32."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    d = np.remainder(d + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sqrt(np.sum(np.abs(wts) ** 2, axis=0, keepdims=True))
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    out = np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)
    out.flags.writeable = False
    return out


def pitch_tuning(frequencies: np.ndarray, *, resolution: float = 0.01, bins_per_octave: int = 12) -> float:
    """``librosa.pitch_tuning``: histogram peak of the pitches' deviation from the tempered scale.

    Parameters
    ----------
    frequencies : np.ndarray
        Pitches, Hz (values <= 0 are ignored).
    resolution : float
        Histogram bin width, in fractions of a bin.
    bins_per_octave : int

    Returns
    -------
    float
        In [-0.5, 0.5).

    Examples
    --------
    >>> round(pitch_tuning(np.array([440.0, 880.0, 220.0]) * 2 ** (0.1 / 12)), 2)
    0.1
    """
    f = np.atleast_1d(frequencies)
    f = f[f > 0]
    if not np.any(f):
        return 0.0
    residual = np.mod(bins_per_octave * hz_to_octs(f), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, edges = np.histogram(residual, bins)
    return float(edges[np.argmax(counts)])


@lru_cache(maxsize=32)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix: ``x @ D`` equals ``scipy.fft.dct(x, norm="ortho")[:n_out]``."""
    import scipy.fft

    d = scipy.fft.dct(np.eye(n_in), type=2, norm="ortho", axis=-1)[:, :n_out]
    out = np.ascontiguousarray(d, dtype=np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def tonnetz_phi(n_chroma: int) -> np.ndarray:
    """librosa's tonal-centroid projection (6, n_chroma): fifths, minor and major thirds."""
    dim_map = np.linspace(0, 12, num=n_chroma, endpoint=False)
    scale = np.asarray([7.0 / 6, 7.0 / 6, 3.0 / 2, 3.0 / 2, 2.0 / 3, 2.0 / 3])
    v = np.multiply.outer(scale, dim_map)
    v[::2] -= 0.5
    r = np.array([1, 1, 1, 1, 0.5, 0.5])
    phi = r[:, np.newaxis] * np.cos(np.pi * v)
    phi.flags.writeable = False
    return phi
