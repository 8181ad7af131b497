"""sonotype.audio: loading by content, resampling, segmentation and every bad-input case."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import data_dir, write_wav
from sonotype import audio
from sonotype.errors import AudioError, ParameterError


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spec)])


# --- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "subtype", "tol"),
    [
        ("a.wav", "WAV", "PCM_16", 1e-4),
        ("a.wav", "WAV", "FLOAT", 1e-7),
        ("a.flac", "FLAC", "PCM_24", 1e-6),
        ("a.ogg", "OGG", "VORBIS", 0.05),
        ("a.aiff", "AIFF", "PCM_16", 1e-4),
        ("a.au", "AU", "PCM_16", 1e-4),
    ],
)
def test_load_formats_roundtrip(tmp_path: Path, name: str, fmt: str, subtype: str, tol: float) -> None:
    sr = 16000
    y = _sine(440, sr, 0.5)
    p = write_wav(tmp_path / name, y, sr, format=fmt, subtype=subtype)
    got, got_sr = audio.load(p)
    assert got_sr == sr
    assert got.dtype == np.float32 and got.ndim == 1
    assert len(got) == len(y)
    assert np.max(np.abs(got - y)) < tol
    inf = audio.info(p)
    assert (inf.samplerate, inf.channels, inf.frames, inf.format) == (sr, 1, len(y), fmt)
    assert inf.duration == pytest.approx(0.5)


def test_format_read_by_content_not_extension(tmp_path: Path) -> None:
    sr = 8000
    y = _sine(300, sr, 0.25)
    p = write_wav(tmp_path / "really_flac.wav", y, sr, format="FLAC")
    got, _ = audio.load(p)
    assert audio.info(p).format == "FLAC"
    np.testing.assert_allclose(got, y, atol=1e-4)


@pytest.mark.realdata
def test_real_tess_aiff_named_wav() -> None:
    p = data_dir("tess", "YAF_angry", "YAF_germ_angry.wav")
    inf = audio.info(p)
    assert inf.format == "AIFF" and inf.samplerate == 24414 and inf.channels == 1
    y, sr = audio.load(p)
    assert sr == 24414 and len(y) == inf.frames
    assert inf.duration == pytest.approx(2.206, abs=0.01)
    assert 0.01 < float(np.max(np.abs(y))) <= 1.0
    y16, sr16 = audio.load(p, sr=16000)
    assert sr16 == 16000 and abs(len(y16) - round(len(y) * 16000 / 24414)) <= 1


@pytest.mark.realdata
def test_real_gtzan_mp3() -> None:
    p = data_dir("gtzan", "genres_original", "blues", "blues.00099.mp3")
    inf = audio.info(p)
    assert inf.format == "MP3" and inf.samplerate == 22050
    y, sr = audio.load(p, offset=10.0, duration=2.0)
    assert sr == 22050 and len(y) == 44100
    assert float(np.sqrt(np.mean(y**2))) > 0.01  # music, not silence
    full, _ = audio.load(p)
    assert len(full) / sr == pytest.approx(30.0, abs=0.1)
    np.testing.assert_allclose(full[220500:264600], y, atol=1e-3)


def test_multichannel_downmix_is_channel_mean(tmp_path: Path) -> None:
    sr = 8000
    left, right = _sine(200, sr, 0.5), _sine(700, sr, 0.5, amp=0.25)
    p = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), sr, subtype="FLOAT")
    mono, _ = audio.load(p)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = audio.load(p, mono=False)
    assert both.shape == (2, len(left))
    np.testing.assert_allclose(both[1], right, atol=1e-7)
    assert audio.info(p).channels == 2
    both16, _ = audio.load(p, sr=16000, mono=False)
    assert both16.shape == (2, 2 * len(left))


@pytest.mark.parametrize(("orig", "target"), [(44100, 22050), (8000, 16000), (24414, 22050)])
def test_resample_keeps_frequency_and_length_ratio(tmp_path: Path, orig: int, target: int) -> None:
    y = _sine(1000, orig, 1.0)
    p = write_wav(tmp_path / "s.wav", y, orig, subtype="FLOAT")
    got, sr = audio.load(p, sr=target)
    assert sr == target
    assert abs(len(got) - round(len(y) * target / orig)) <= 1
    assert _peak_hz(got, sr) == pytest.approx(1000, abs=2)
    direct = audio.resample(y, orig, target)
    np.testing.assert_allclose(direct, got, atol=1e-6)


def test_resample_same_rate_and_bad_rate() -> None:
    y = _sine(100, 1000, 0.1)
    assert audio.resample(y, 1000, 1000) is y
    with pytest.raises(ParameterError, match="-5"):
        audio.resample(y, 1000, -5)


def test_offset_and_duration(tmp_path: Path) -> None:
    sr = 1000
    ramp = (np.arange(3 * sr) / (3 * sr)).astype(np.float32)
    p = write_wav(tmp_path / "r.wav", ramp, sr, subtype="FLOAT")
    y, _ = audio.load(p, offset=1.0, duration=0.5)
    np.testing.assert_array_equal(y, ramp[1000:1500])
    tail, _ = audio.load(p, offset=2.5, duration=10.0)  # clipped at the end
    np.testing.assert_array_equal(tail, ramp[2500:])
    with pytest.raises(AudioError, match="past the end"):
        audio.load(p, offset=3.5)
    with pytest.raises(ParameterError, match="offset"):
        audio.load(p, offset=-1)
    with pytest.raises(ParameterError, match="duration"):
        audio.load(p, duration=0)


def test_silence_is_valid(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "quiet.wav", np.zeros(4000, np.float32), 8000)
    y, sr = audio.load(p, min_samples=2048)
    assert sr == 8000 and len(y) == 4000 and not y.any()


# --- bad input ---------------------------------------------------------------------------


def _valid_wav_bytes(tmp_path: Path) -> bytes:
    p = write_wav(tmp_path / "ok.wav", _sine(440, 16000, 1.0), 16000, subtype="PCM_16")
    return p.read_bytes()


def _bad(path: Path, match: str, **kw) -> AudioError:
    with pytest.raises(AudioError, match=match) as err:
        audio.load(path, **kw)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    return err.value


def test_missing_file(tmp_path: Path) -> None:
    _bad(tmp_path / "nope.wav", "file not found")
    with pytest.raises(AudioError, match="file not found"):
        audio.info(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.wav"
    d.mkdir()
    _bad(d, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _bad(p, r"empty file \(0 bytes\)")


def test_header_only_wav_has_zero_frames(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "hdr.wav", np.zeros(0, np.float32), 16000)
    assert p.stat().st_size > 0
    _bad(p, "zero-length audio")
    with pytest.raises(AudioError, match="zero-length"):
        audio.info(p)


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "AU"])
def test_truncated_file_is_detected(tmp_path: Path, fmt: str) -> None:
    # libsndfile silently reads the frames that remain: the header check must catch it.
    src = write_wav(
        tmp_path / f"ok.{fmt.lower()}", _sine(440, 16000, 1.0), 16000, format=fmt, subtype="PCM_16"
    )
    raw = src.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(raw[: len(raw) // 2])
    assert sf.info(str(cut)).frames < 16000  # what libsndfile alone would accept
    err = _bad(cut, f"truncated {fmt} file: header announces 32000 bytes")
    assert "present" in err.reason
    with pytest.raises(AudioError, match="truncated"):
        audio.info(cut)


def test_truncated_wav_header_only_part(tmp_path: Path) -> None:
    raw = _valid_wav_bytes(tmp_path)
    p = tmp_path / "hdr_cut.wav"
    p.write_bytes(raw[:44])  # header announces data, none present
    _bad(p, "truncated WAV file")


def test_truncated_flac(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "ok.flac", _sine(440, 16000, 1.0), 16000)
    raw = src.read_bytes()
    p = tmp_path / "cut.flac"
    p.write_bytes(raw[: len(raw) // 2])
    _bad(p, "truncated or corrupt")


def test_random_bytes_are_not_audio(tmp_path: Path) -> None:
    p = tmp_path / "noise.wav"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    _bad(p, "not an audio file: content not recognised")


def test_text_file_named_wav(tmp_path: Path) -> None:
    p = tmp_path / "notes.wav"
    p.write_text("these are my notes, not a recording\n" * 20)
    _bad(p, "not an audio file: the content is text")


def test_unsupported_container(tmp_path: Path) -> None:
    p = tmp_path / "song.m4a"
    p.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(2000))
    _bad(p, "unsupported audio format: MP4/M4A")


def test_unsupported_wav_encoding(tmp_path: Path) -> None:
    raw = bytearray(_valid_wav_bytes(tmp_path))
    raw[20:22] = struct.pack("<H", 0x1234)  # format tag in the fmt chunk
    p = tmp_path / "odd.wav"
    p.write_bytes(bytes(raw))
    _bad(p, "unsupported WAV encoding \\(format tag 0x1234")


def test_corrupt_header(tmp_path: Path) -> None:
    raw = bytearray(_valid_wav_bytes(tmp_path))
    raw[12:16] = b"junk"  # no fmt chunk any more
    p = tmp_path / "broken.wav"
    p.write_bytes(bytes(raw))
    _bad(p, "corrupt WAV file")


def test_too_short(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "blip.wav", _sine(440, 16000, 0.01), 16000)
    err = _bad(p, "too short: 160 samples, need at least 2048", min_samples=2048)
    assert "analysis frame" in err.reason
    y, _ = audio.load(p, min_samples=160)
    assert len(y) == 160
    # the check applies after resampling
    _bad(p, "too short: 80 samples", sr=8000, min_samples=100)


def test_nan_samples_are_corrupt(tmp_path: Path) -> None:
    y = _sine(440, 8000, 0.1)
    y[10] = np.nan
    p = write_wav(tmp_path / "nan.wav", y, 8000, subtype="FLOAT")
    _bad(p, "NaN")


def test_check_length_without_path() -> None:
    with pytest.raises(AudioError, match="too short: 3 samples"):
        audio.check_length(np.zeros(3), 4)
    audio.check_length(np.zeros((2, 4)), 4)  # channels-first: counts samples, not channels


# --- segmentation ------------------------------------------------------------------------


def _bounds(segs: list[audio.Segment]) -> list[tuple[float, float, int]]:
    return [(s.start, s.end, s.samples.shape[-1]) for s in segs]


def test_segment_policies_exact() -> None:
    sr = 10
    y = np.arange(1, 26, dtype=np.float32)  # 2.5 s
    pad = audio.segment(y, sr, 1.0, last="pad")
    assert _bounds(pad) == [(0.0, 1.0, 10), (1.0, 2.0, 10), (2.0, 3.0, 10)]
    np.testing.assert_array_equal(pad[2].samples, [21, 22, 23, 24, 25, 0, 0, 0, 0, 0])
    drop = audio.segment(y, sr, 1.0, last="drop")
    assert _bounds(drop) == [(0.0, 1.0, 10), (1.0, 2.0, 10)]
    keep = audio.segment(y, sr, 1.0, last="keep")
    assert _bounds(keep) == [(0.0, 1.0, 10), (1.0, 2.0, 10), (2.0, 2.5, 5)]
    np.testing.assert_array_equal(keep[1].samples, y[10:20])


def test_segment_exact_fit_has_no_partial() -> None:
    y = np.ones(30, np.float32)
    for last in ("pad", "drop", "keep"):
        assert _bounds(audio.segment(y, 10, 1.0, last=last)) == [
            (0.0, 1.0, 10),
            (1.0, 2.0, 10),
            (2.0, 3.0, 10),
        ]


def test_segment_window_longer_than_signal() -> None:
    y = np.ones(7, np.float32)
    assert _bounds(audio.segment(y, 10, 1.0, last="pad")) == [(0.0, 1.0, 10)]
    assert _bounds(audio.segment(y, 10, 1.0, last="keep")) == [(0.0, 0.7, 7)]
    assert audio.segment(y, 10, 1.0, last="drop") == []


def test_segment_overlapping_hop() -> None:
    # GTZAN "sequences": 5 s windows every 1 s over 30 s -> 26 full windows.
    sr = 100
    y = np.zeros(30 * sr, np.float32)
    segs = audio.segment(y, sr, 5.0, 1.0, last="drop")
    assert len(segs) == 26
    assert [s.start for s in segs[:3]] == [0.0, 1.0, 2.0] and segs[-1].end == 30.0
    # 10.5 s, 4 s windows, hop 3 s: starts 0, 3, 6; the tail from 9 s is partial
    z = np.arange(1050, dtype=np.float32)
    assert _bounds(audio.segment(z, sr, 4.0, 3.0, last="keep")) == [
        (0.0, 4.0, 400),
        (3.0, 7.0, 400),
        (6.0, 10.0, 400),
        (9.0, 10.5, 150),
    ]
    padded = audio.segment(z, sr, 4.0, 3.0, last="pad")
    assert padded[-1].end == 13.0 and padded[-1].samples.shape == (400,)


def test_segment_multichannel_and_errors() -> None:
    y = np.zeros((2, 25), np.float32)
    segs = audio.segment(y, 10, 1.0, last="pad")
    assert [s.samples.shape for s in segs] == [(2, 10)] * 3
    with pytest.raises(ParameterError, match="window=0"):
        audio.segment(y, 10, 0.0)
    with pytest.raises(ParameterError, match="'trim'"):
        audio.segment(y, 10, 1.0, last="trim")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="sr=0"):
        audio.segment(y, 0, 1.0)
