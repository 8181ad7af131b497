"""Shared by the fuzz tests: small valid audio files of each format, and a hypothesis strategy
that breaks them the way disks, transfers and careless tools do.

The mutations are those of issue 11: truncation, flipped bytes, absurd values in header
fields (sizes, rates, channel counts), zeroed headers, junk prepended, and a spliced run of
random bytes. Header bytes are targeted more often than the body, because that is where a
parser decides how much to allocate and read.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conftest import DATA

SR = 8000
HEADER = 128  # bytes treated as "the header" by the targeted mutations

# Reproducible in CI (derandomize: the examples are a function of the test alone), no example
# database written into the checkout, no hypothesis deadline (timing is asserted explicitly,
# with a bound that means "hung or blew up", not "a slow machine").
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (format, subtype) of the synthetic bases; 'wav-float' reaches the float-sample checks.
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "wav-float": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
}

# Real files from ../shared/data, whole (a cut MP3 or AIFF is no longer a valid file): real
# encoders' headers (ID3 and Xing tags, LIST chunks, FLAC seek tables, a TESS AIFF named .wav).
REAL = {
    "real-fsdd-wav": "fsdd/recordings/0_george_27.wav",
    "real-ravdess-flac": "ravdess/Actor_07/03-01-06-02-01-01-07.flac",
    "real-tess-aiff": "tess/YAF_angry/YAF_germ_angry.wav",
    "real-gtzan-mp3": "gtzan/genres_original/blues/blues.00099.mp3",
}


def signal(seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    """A stereo test signal: a 440 Hz tone left, half of it plus a little noise right."""
    t = np.arange(int(seconds * sr)) / sr
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    right = 0.5 * left + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return np.stack([left, right], axis=1).astype(np.float32)


def encode(name: str, y: np.ndarray | None = None, sr: int = SR) -> bytes:
    """The bytes of a valid file of ``FORMATS[name]``; skip when this libsndfile cannot write it.

    MP3 writing needs libsndfile >= 1.1 (soundfile's wheels bundle 1.2); without it the real
    GTZAN MP3 (``real-gtzan-mp3``) still covers the format when the data is present.
    """
    fmt, subtype = FORMATS[name]
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    buf = io.BytesIO()
    sf.write(buf, signal(sr=sr) if y is None else y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def real(name: str) -> bytes:
    """A real file's bytes; skip when the data is absent."""
    p = Path(DATA) / REAL[name]
    if not p.is_file():
        pytest.skip(f"real audio {p} not found (place ../shared/data beside the checkout or set SONOTYPE_DATA)")
    return p.read_bytes()


def base(name: str) -> bytes:
    return real(name) if name in REAL else encode(name)


_SPECIAL = {
    2: [0, 1, 0x7FFF, 0x8000, 0xFFFF],
    4: [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE],
}


@st.composite
def mutants(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with one to three mutations applied in turn (never the unchanged bytes)."""
    data = bytearray(original)
    ops = draw(st.lists(st.sampled_from(["truncate", "flip", "absurd", "zero", "junk", "splice"]), min_size=1, max_size=3))
    for op in ops:
        n = len(data)
        head = min(HEADER, n)
        if op == "junk":  # junk prepended: the magic is no longer at offset 0
            data = bytearray(draw(st.binary(min_size=1, max_size=512))) + data
        elif n == 0:
            continue
        elif op == "truncate":
            data = data[: draw(st.integers(0, n - 1))]
        elif op == "flip":
            where = st.one_of(st.integers(0, head - 1), st.integers(0, n - 1))
            for i, x in draw(st.lists(st.tuples(where, st.integers(1, 255)), min_size=1, max_size=8)):
                data[i] ^= x
        elif op == "absurd" and n >= 4:  # a size, rate or count field set to a limit value
            width = draw(st.sampled_from([2, 4]))
            off = draw(st.integers(0, min(HEADER, n) - width))
            value = draw(st.one_of(st.sampled_from(_SPECIAL[width]), st.integers(0, 2 ** (8 * width) - 1)))
            data[off : off + width] = value.to_bytes(width, draw(st.sampled_from(["little", "big"])))
        elif op == "zero":
            k = draw(st.integers(1, head))
            data[:k] = bytes(k)
        elif op == "splice":
            i = draw(st.integers(0, n - 1))
            chunk = draw(st.binary(min_size=1, max_size=64))
            data[i : i + len(chunk)] = chunk
    out = bytes(data)
    if out == original:  # e.g. an "absurd" value equal to the one there: force a change
        out = out[:-1]
    return out
