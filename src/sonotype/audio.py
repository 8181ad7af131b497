"""Audio I/O: load any file libsndfile understands, by content not by extension.

soundfile reads the header to find the format, so a TESS file named ``.wav`` that is
really AIFF loads fine; soxr does the resampling. Every failure becomes an
:class:`~sonotype.errors.AudioError` naming the path and the reason.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from sonotype.errors import AudioError, ParameterError
from sonotype.utils.checks import finite, positive_int, sample_rate
from sonotype.utils.io import file_kind

__all__ = ["AudioInfo", "Segment", "check_length", "info", "load", "resample", "segment", "stream"]

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".w64",
        ".caf",
        ".opus",
    }
)


@dataclass(frozen=True)
class AudioInfo:
    """Facts about an audio file, read from its header.

    Attributes
    ----------
    path : str
    samplerate : int
        Hz.
    channels, frames : int
        ``frames`` is samples per channel.
    duration : float
        Seconds.
    format, subtype : str
        soundfile's names, e.g. ``"WAV"`` and ``"PCM_16"``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/tone.wav"
    >>> sf.write(path, np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) / 2, 8000)
    >>> info(path).duration, info(path).subtype
    (1.0, 'PCM_16')
    """

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
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(p, "symlink loop (too many levels of symbolic links)") from None
        raise AudioError(p, "file not found" if isinstance(exc, (FileNotFoundError, NotADirectoryError))
                         else f"cannot read file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(p, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):  # never opened: a FIFO blocks for a writer, a device never ends
        raise AudioError(p, f"{file_kind(st.st_mode)}, not a regular file")
    if st.st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise AudioError(p, "permission denied (file not readable)")
    return p


# Leading bytes of containers, to tell "not audio" from "audio libsndfile cannot decode".
_SUPPORTED_MAGIC = (
    (b"RIFF", "WAV"),
    (b"RIFX", "WAV"),
    (b"RF64", "RF64"),
    (b"FORM", "AIFF"),
    (b"fLaC", "FLAC"),
    (b"OggS", "OGG"),
    (b".snd", "AU"),
    (b"ID3", "MP3"),
    (b"caff", "CAF"),
)
_UNSUPPORTED_MAGIC = (
    (4, b"ftyp", "MP4/M4A (AAC/ALAC)"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMA"),
    (0, b"#!AMR", "AMR"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"MThd", "MIDI"),
    (0, b"wvpk", "WavPack"),
    (0, b"MAC ", "Monkey's Audio"),
    (0, b"ADIF", "AAC (ADIF)"),
)
# WAV format tags libsndfile decodes: PCM, MS ADPCM, IEEE float, A-law, mu-law, IMA ADPCM,
# G.721/G.723 ADPCM, GSM 6.10, extensible.
_WAV_TAGS = frozenset({0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0014, 0x0040, 0x0031, 0xFFFE})


def _head(p: Path, n: int = 64) -> bytes:
    with open(p, "rb") as f:
        return f.read(n)


def _describe_unreadable(p: Path, exc: Exception) -> str:
    """Say why libsndfile refused ``p``: not audio at all, an unsupported format, or corrupt."""
    head = _head(p, 512)
    for off, magic, name in _UNSUPPORTED_MAGIC:
        if head[off : off + len(magic)] == magic:
            return (
                f"unsupported audio format: {name} (libsndfile cannot decode it; convert it to WAV or FLAC)"
            )
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        tag = _wav_format_tag(p)
        if tag is not None and tag not in _WAV_TAGS:
            return f"unsupported WAV encoding (format tag 0x{tag:04x}; convert it to PCM WAV or FLAC)"
    for magic, name in _SUPPORTED_MAGIC:
        if head.startswith(magic):
            return f"corrupt {name} file: header cannot be parsed ({exc})"
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xfa"):
        return f"corrupt MP3 file ({exc})"
    if _looks_like_text(head):
        return "not an audio file: the content is text"
    return f"not an audio file: content not recognised as any audio format ({exc})"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def _riff_chunks(p: Path) -> list[tuple[bytes, int, int]]:
    """(id, declared size, offset of the data) of each top-level chunk of a RIFF/WAVE file."""
    size = p.stat().st_size
    chunks = []
    with open(p, "rb") as f:
        head = f.read(12)
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size and len(chunks) < 64:
            f.seek(pos)
            hdr = f.read(8)
            cid, n = hdr[:4], int.from_bytes(hdr[4:], "little" if endian == "<" else "big")
            chunks.append((cid, n, pos + 8))
            if cid == b"data":
                break
            pos += 8 + n + (n & 1)
    return chunks


def _wav_format_tag(p: Path) -> int | None:
    for cid, _n, off in _riff_chunks(p):
        if cid == b"fmt ":
            with open(p, "rb") as f:
                f.seek(off)
                raw = f.read(2)
            if len(raw) == 2:
                return int.from_bytes(raw, "little" if _head(p, 4) == b"RIFF" else "big")
    return None


def _check_truncation(p: Path, fmt: str) -> None:
    """Compare the audio-data size a WAV/AIFF/AU header announces with the bytes present.

    libsndfile silently shortens a truncated file to the frames it finds, so a file cut
    in half would load as half the audio. Sizes 0 and 0xFFFFFFFF mean "unknown"
    (streaming writers) and are accepted.
    """
    size = p.stat().st_size
    declared = present = None
    if fmt == "WAV":
        data = [c for c in _riff_chunks(p) if c[0] == b"data"]
        if data:
            _cid, declared, off = data[0]
            present = size - off
    elif fmt == "AIFF":
        with open(p, "rb") as f:
            pos, seen = 12, 0
            while pos + 8 <= size and seen < 64:  # a corrupt size could step 8 bytes at a time
                seen += 1
                f.seek(pos)
                hdr = f.read(8)
                n = int.from_bytes(hdr[4:], "big")
                if hdr[:4] == b"SSND":  # size counts an 8-byte offset/block-size prefix
                    declared, present = n - 8, size - pos - 16
                    break
                pos += 8 + n + (n & 1)
    elif fmt == "AU":
        head = _head(p, 12)
        if len(head) == 12:
            off, declared = int.from_bytes(head[4:8], "big"), int.from_bytes(head[8:12], "big")
            present = size - off
    if declared in (None, 0, 0xFFFFFFFF) or present is None:
        return
    if present < declared:
        raise AudioError(
            p,
            f"truncated {fmt} file: header announces {declared} bytes of audio data, only {present} present",
        )


# Sample rates a real recording can have. A corrupt header claiming 1 Hz would otherwise be
# "resampled" to 16,000 times as many samples (gigabytes from a 20 MB file).
_MIN_SR, _MAX_SR = 1000, 1_000_000
# Frames per read are capped at this many samples (64 MB of float32): a corrupt header that
# announces billions of frames must not make us allocate for them before reading.
_READ_BLOCK_SAMPLES = 1 << 24
# Largest magnitude a sample can have: even int32 PCM written as float without scaling stays
# below 2**31. A flipped exponent byte in a float WAV gives 1e37, which overflows the
# float32 features (about 1e17 and up) into NaN probabilities.
_MAX_ABS = 2.0**31


def _open(p: Path) -> sf.SoundFile:
    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(p, _describe_unreadable(p, exc)) from None
    try:
        if not _MIN_SR <= f.samplerate <= _MAX_SR:
            raise AudioError(
                p,
                f"corrupt {f.format} file: implausible sample rate {f.samplerate} Hz in the header "
                f"(expected {_MIN_SR}-{_MAX_SR} Hz)",
            )
        _check_truncation(p, str(f.format))
    except BaseException:
        f.close()
        raise
    return f


def info(path: str | os.PathLike) -> AudioInfo:
    """Return sample rate, channels, frames, duration, format and subtype of ``path``.

    Parameters
    ----------
    path : path-like
        An audio file (only its header is read).

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        Missing, unreadable, empty or truncated file (the reason names it).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/tone.wav"
    >>> sf.write(path, np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) / 2, 8000)
    >>> i = info(path)
    >>> i.samplerate, i.channels, i.frames
    (8000, 1, 8000)
    """
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
    """Resample ``y`` (samples,) or (samples, channels) with soxr's high-quality filter.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n, channels)]
    orig_sr, target_sr : int
        Hz.

    Returns
    -------
    np.ndarray [shape=(round(n * target_sr / orig_sr),) or (..., channels)], float32
        ``y`` itself when the rates are equal.

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros(22050, np.float32), 22050, 16000).shape
    (16000,)
    """
    for rate in (orig_sr, target_sr):  # a NaN rate would make soxr spin for ever
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (math.isfinite(rate) and rate > 0):
            raise ParameterError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return y
    if np.ndim(y) not in (1, 2):
        raise ParameterError(f"resample needs (samples,) or (samples, channels), got shape {np.shape(y)}")
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
    >>> import tempfile
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/stereo.wav"
    >>> sf.write(path, np.stack([np.ones(16000), -np.ones(16000)], axis=1) / 2, 16000)
    >>> y, sr = load(path, sr=8000)  # channels averaged, resampled
    >>> y.shape, sr, float(abs(y).max())
    ((8000,), 8000, 0.0)
    >>> load(path, mono=False, duration=0.5)[0].shape  # (channels, samples)
    (2, 8000)
    """

    finite("offset (s)", offset, low=0.0)
    if duration is not None:
        finite("duration (s)", duration, low=0.0, low_open=True)
    if sr is not None:
        sr = sample_rate(sr)
    positive_int("min_samples", min_samples, minimum=0)
    p = _check_file(path)
    with _open(p) as f:
        native_sr = int(f.samplerate)
        total = int(f.frames)
        if total <= 0:
            raise AudioError(p, "zero-length audio (no samples)")
        start = int(round(offset * native_sr))
        if start >= total:
            raise AudioError(p, f"offset {offset:.3f} s is past the end ({total / native_sr:.3f} s)")
        want = total - start if duration is None else max(1, int(round(duration * native_sr)))
        n = min(want, total - start)
        try:
            f.seek(start)
            data = _read_frames(f, n)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(p, f"truncated or corrupt audio data ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(p, "truncated or corrupt audio data (no samples could be read)")
    if data.shape[0] < n:
        raise AudioError(p, f"truncated audio: header announces {n} frames, only {data.shape[0]} readable")
    if not np.all(np.isfinite(data)):
        raise AudioError(p, "corrupt audio: samples contain NaN or infinity")
    peak = float(np.max(np.abs(data)))
    if peak > _MAX_ABS:
        raise AudioError(
            p, f"corrupt audio: sample values up to {peak:.3g}, beyond any PCM range (audio lies in [-1, 1])"
        )
    y = data.mean(axis=1) if mono else data.T
    if sr is not None and sr != native_sr:
        y = resample(y if mono else y.T, native_sr, sr)
        y = y if mono else y.T
    else:
        sr = native_sr
    y = np.ascontiguousarray(y, dtype=np.float32)
    check_length(y, min_samples, path=p)
    return y, int(sr)


# Frames per block when streaming a file (about 3 s at 22,050 Hz): small enough that the
# memory of a prediction does not grow with the recording, large enough to keep per-block
# overhead (soundfile, soxr, numpy) negligible.
STREAM_BLOCK_FRAMES = 1 << 16


def stream(path: str | os.PathLike, sr: int | None = None, *, block: int | None = None) -> Iterator[np.ndarray]:
    """Yield a file's audio as mono float32 chunks at ``sr``, reading ``block`` frames at a time.

    Memory is bounded by the block whatever the file's length, so an hours-long recording
    can be classified as it is read. Resampling runs through one stateful
    ``soxr.ResampleStream``, so block joins are seamless: concatenated, the chunks equal
    ``load(path, sr)[0]`` (same filter, same length). Each block gets the checks
    :func:`load` makes (NaN/infinity, impossible magnitudes), and a file that ends before
    its header's frame count is an :class:`AudioError` once the shortfall shows. ``block``
    defaults to :data:`STREAM_BLOCK_FRAMES`.

    Parameters
    ----------
    path : path-like
        An audio file.
    sr : int, optional
        Output rate (None: the file's).
    block : int, optional
        Frames read per chunk.

    Yields
    ------
    np.ndarray [shape=(n_chunk,)], float32

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> path = tempfile.mkdtemp() + "/tone.wav"
    >>> sf.write(path, np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) / 2, 8000)
    >>> chunks = list(stream(path, 16000, block=3000))
    >>> len(chunks), sum(c.size for c in chunks) == load(path, 16000)[0].size
    (3, True)
    """

    block = STREAM_BLOCK_FRAMES if block is None else block

    if sr is not None:
        sr = sample_rate(sr)
    block = positive_int("block", block)
    p = _check_file(path)
    with _open(p) as f:
        native_sr = int(f.samplerate)
        total = int(f.frames)
        if total <= 0:
            raise AudioError(p, "zero-length audio (no samples)")
        rs = None if sr is None or sr == native_sr else soxr.ResampleStream(native_sr, sr, 1, dtype="float32",
                                                                            quality="HQ")
        got = 0
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(p, f"truncated or corrupt audio data ({exc})") from None
            got += data.shape[0]
            last = data.shape[0] < block or got >= total
            if data.shape[0]:
                if not np.all(np.isfinite(data)):
                    raise AudioError(p, "corrupt audio: samples contain NaN or infinity")
                peak = float(np.max(np.abs(data)))
                if peak > _MAX_ABS:
                    raise AudioError(p, f"corrupt audio: sample values up to {peak:.3g}, beyond any PCM range "
                                        "(audio lies in [-1, 1])")
            y = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
            if rs is not None:
                y = rs.resample_chunk(y, last=last)
            if y.size:
                yield y
            if last:
                break
    if got == 0:
        raise AudioError(p, "truncated or corrupt audio data (no samples could be read)")
    if got < total:
        raise AudioError(p, f"truncated audio: header announces {total} frames, only {got} readable")


def _read_frames(f: sf.SoundFile, n: int) -> np.ndarray:
    """Read up to ``n`` frames in bounded blocks, stopping at the real end of the data.

    soundfile allocates the whole output for ``read(n)`` up front, so a FLAC or MP3 header
    announcing 10^12 frames raised MemoryError (or took the machine's memory) before a byte
    was decoded; blocks make the memory follow the samples actually present.
    """
    block = max(1, _READ_BLOCK_SAMPLES // max(1, f.channels))
    if n <= block:
        return f.read(n, dtype="float32", always_2d=True)
    parts: list[np.ndarray] = []
    got = 0
    while got < n:
        want = min(block, n - got)
        part = f.read(want, dtype="float32", always_2d=True)
        if part.shape[0]:
            parts.append(part)
            got += part.shape[0]
        if part.shape[0] < want:
            break
    return np.concatenate(parts) if parts else np.zeros((0, f.channels), np.float32)


def check_length(y: np.ndarray, min_samples: int, *, path: object = None) -> None:
    """Raise :class:`AudioError` when ``y`` holds fewer than ``min_samples`` samples.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)]
        Samples along the last axis.
    min_samples : int
    path : object, optional
        Named in the error.

    Examples
    --------
    >>> import numpy as np
    >>> check_length(np.zeros(100), 2048, path="clip.wav")
    Traceback (most recent call last):
    ...
    sonotype.errors.AudioError: clip.wav: too short: 100 samples, need at least 2048 (one analysis frame)
    """
    n = int(y.shape[-1])
    if n < min_samples:
        raise AudioError(path, f"too short: {n} samples, need at least {min_samples} (one analysis frame)")


@dataclass(frozen=True)
class Segment:
    """One window of a signal: ``start``/``end`` in seconds, ``samples`` the audio.

    Attributes
    ----------
    start, end : float
        Seconds from the signal's start (``end`` is the window's nominal end).
    samples : np.ndarray [shape=(n_window,)]

    Examples
    --------
    >>> import numpy as np
    >>> s = segment(np.zeros(300), 100, 2.0)[1]
    >>> s.start, s.end, s.samples.shape
    (2.0, 4.0, (200,))
    """

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

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
    sr : int
        Hz.
    window : float
        Window length, seconds.
    hop : float, optional
        Step between window starts, seconds (None: ``window``).
    last : {"pad", "drop", "keep"}
        The final partial window.

    Returns
    -------
    list of Segment

    Examples
    --------
    >>> import numpy as np
    >>> [s.start for s in segment(np.zeros(10 * 100), 100, 5.0, 1.0, last="drop")]
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    hop = window if hop is None else hop

    def ok(v: object) -> bool:
        return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v) and v > 0

    if not ok(sr):
        raise ParameterError(f"sample rate must be > 0, got sr={sr}")
    if not (ok(window) and ok(hop)):
        raise ParameterError(f"window and hop must be finite and > 0 s, got window={window}, hop={hop}")
    if last not in ("pad", "drop", "keep"):
        raise ParameterError(f"last must be 'pad', 'drop' or 'keep', got {last!r}")
    y = np.asarray(y)
    if y.ndim < 1:
        raise ParameterError(f"segment needs an array with a time axis, got shape {y.shape}")
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
