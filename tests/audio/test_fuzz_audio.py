"""Bad audio at volume: broken WAV, FLAC, MP3, AIFF and OGG files raise AudioError, fast.

Hypothesis mutates valid files (synthetic ones of every format, and real files from the
corpora when present) and :func:`sonotype.audio.load` must either return sane audio or
raise :class:`AudioError` - never another exception, never a hang, never gigabytes. The
regression tests below pin the bugs this fuzzing found (issue 11, section 6).
"""

from __future__ import annotations

import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from mutants import FORMATS, FUZZ, REAL, SR, base, encode, mutants
from sonotype import audio
from sonotype.errors import AudioError

LIMIT_S = 2.0  # per mutant, both loads: they take ~5 ms; 2 s means hung or blown up
MAX_SAMPLES = 1 << 22  # bases hold under 10^5 samples at 16 kHz; more means a header was believed
CASES = [*FORMATS, *(pytest.param(n, marks=pytest.mark.realdata) for n in REAL)]


def _check(path: Path) -> str:
    """Load ``path`` natively and at 16 kHz; the outcome, after asserting it is a sane one."""
    t0 = time.perf_counter()
    try:
        inf = audio.info(path)
    except AudioError as exc:
        assert exc.reason
        inf = None
    outcomes = []
    for kw in ({}, {"sr": 16000, "mono": False}):
        try:
            y, sr = audio.load(path, **kw)
        except AudioError as exc:
            assert exc.reason and str(exc).startswith(str(path))
            outcomes.append("error")
            continue
        assert inf is not None, "info() refused a file that load() accepted"
        assert y.dtype == np.float32 and y.flags.c_contiguous
        assert np.all(np.isfinite(y)) and float(np.max(np.abs(y))) <= 2.0**31
        assert y.shape[-1] >= 1 and y.size <= MAX_SAMPLES, y.shape
        if kw:
            assert sr == 16000 and y.shape[0] == inf.channels
        else:
            assert sr == inf.samplerate and y.shape == (inf.frames,)
        outcomes.append("loaded")
    elapsed = time.perf_counter() - t0
    assert elapsed < LIMIT_S, f"{elapsed:.1f} s to load a {path.stat().st_size} byte mutant"
    return "+".join(outcomes)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", CASES)
def test_mutated_file_loads_or_raises_audio_error(name: str, tmp_path: Path) -> None:
    original = base(name)
    path = tmp_path / "mutant.bin"
    path.write_bytes(original)
    assert _check(path) == "loaded+loaded"  # the unbroken base is valid
    seen: Counter[str] = Counter()

    @settings(FUZZ, max_examples=40 if name in REAL else 120)
    @given(mutants(original))
    def fuzz(data: bytes) -> None:
        path.write_bytes(data)
        seen[_check(path)] += 1

    fuzz()
    # The mutations do break files (and some survive, e.g. a flipped sample byte).
    assert seen["error+error"] > sum(seen.values()) // 4, seen


def _peak_mb(fn) -> float:
    """Peak Python/numpy allocation while ``fn()`` runs, in MB (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 1e6


def _refused(path: Path, match: str, **kw) -> None:
    with pytest.raises(AudioError, match=match):
        audio.load(path, **kw)


def test_absurd_frame_count_in_flac_or_mp3_header_allocates_nothing(tmp_path: Path) -> None:
    """Found by fuzzing: soundfile allocates ``frames`` up front, so a FLAC STREAMINFO claiming
    2^36 samples or an MP3 Xing header claiming 2^31 frames raised MemoryError or ValueError
    ("array is too big") instead of AudioError, or took tens of GB where overcommit allows it."""
    flac = bytearray(encode("flac"))
    assert flac[:4] == b"fLaC" and int.from_bytes(flac[22:26], "big") == SR // 2  # total samples
    flac[21] |= 0x0F
    flac[22:26] = b"\xff\xff\xff\xff"
    mp3 = bytearray(encode("mp3"))
    x = mp3.find(b"Xing")
    assert x > 0 and mp3[x + 7] & 1  # the frames field is present
    mp3[x + 8 : x + 12] = (0x7FFFFFFF).to_bytes(4, "big")
    for name, data in (("flac", flac), ("mp3", mp3)):
        p = tmp_path / f"huge.{name}"
        p.write_bytes(bytes(data))
        assert audio.info(p).frames > 10**10
        assert _peak_mb(lambda p=p: _refused(p, "truncated")) < 200


def test_implausible_sample_rate_is_refused_before_resampling(tmp_path: Path) -> None:
    """Found by fuzzing: a WAV/AIFF header claiming 1 Hz was resampled to 16 kHz, 16,000 times
    the samples (256 MB and 1-8 s from a 16 kB file; gigabytes from a real one)."""
    wav = bytearray(encode("wav"))
    assert int.from_bytes(wav[24:28], "little") == SR
    for rate in (1, 999, 5_000_000):
        wav[24:28] = rate.to_bytes(4, "little")
        p = tmp_path / f"rate{rate}.wav"
        p.write_bytes(bytes(wav))
        with pytest.raises(AudioError, match=f"implausible sample rate {rate} Hz"):
            audio.info(p)
        assert _peak_mb(lambda p=p: _refused(p, "implausible sample rate", sr=16000)) < 50
    wav[24:28] = (1000).to_bytes(4, "little")  # the lowest accepted rate still loads
    p = tmp_path / "rate1000.wav"
    p.write_bytes(bytes(wav))
    assert audio.load(p)[1] == 1000


def test_float_samples_beyond_any_pcm_range_are_corrupt(tmp_path: Path) -> None:
    """Found by fuzzing: a flipped exponent byte in a float WAV gives samples of 1e37, which
    loaded and overflowed the features into NaN probabilities (the server then failed with 500
    while encoding NaN as JSON). Overshoot a real file can have still loads."""
    import soundfile as sf

    y = np.zeros(4000, np.float32)
    y[100] = 3.0  # +9.5 dB over full scale: clipped mastering, not corruption
    sf.write(str(tmp_path / "hot.wav"), y, SR, subtype="FLOAT")
    assert float(audio.load(tmp_path / "hot.wav")[0].max()) == 3.0
    y[200] = -4.4e26
    sf.write(str(tmp_path / "bad.wav"), y, SR, subtype="FLOAT")
    _refused(tmp_path / "bad.wav", r"sample values up to 4.4e\+26, beyond any PCM range")


def test_aiff_chunk_walk_is_bounded(tmp_path: Path) -> None:
    """A corrupt AIFF whose chunk sizes are all zero used to be walked 8 bytes at a time over
    the whole file; the walk now stops after 64 chunks (as the RIFF one does)."""
    aiff = bytearray(encode("aiff"))
    assert aiff[:4] == b"FORM" and aiff[8:12] == b"AIFF"
    body = aiff[:12] + bytes(4_000_000)  # 500,000 empty chunk headers
    p = tmp_path / "zeros.aiff"
    p.write_bytes(bytes(body))
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, pos):
            return self.f.seek(pos)

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

    def counting_open(path, mode="r", *a, **kw):
        return Counting(real_open(path, mode, *a, **kw))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audio, "open", counting_open, raising=False)  # the module's builtin open, counted
        assert audio._check_truncation(p, "AIFF") is None
    assert reads == [8] * 64  # 64 chunk headers read, not 500,000
