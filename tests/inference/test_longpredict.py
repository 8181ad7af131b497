"""Long recordings: block streaming equals the in-memory path; smoothing, events, label tracks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import sonotype
from conftest import write_wav
from sonotype import audio
from sonotype.cli import app
from sonotype.errors import AudioError, ParameterError
from sonotype.features.config import RepresentationConfig
from sonotype.inference.events import Event, audacity_labels, merge_events, smooth, webvtt
from test_predict import LABELS, SR, _tone, _train


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("lp"), "tones", RepresentationConfig(kind="stats", stats=["mean", "std"]),
                  "mlp-small")


@pytest.fixture(scope="module")
def three_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s at 22,050 Hz: 20 s low, 20 s mid, 20 s high (resampled to the model's 8 kHz)."""
    rng = np.random.default_rng(3)
    y = np.concatenate([_tone(lab, 20.0, rng, sr=22050) for lab in LABELS])
    return write_wav(tmp_path_factory.mktemp("lpw") / "three.wav", y, 22050)


def test_stream_equals_load(tmp_path: Path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (2, 50_001)).astype(np.float32)
    f = tmp_path / "s.wav"
    sf.write(f, stereo.T, 22050, subtype="FLOAT")
    for sr in (None, 22050, 8000, 44100):
        ref, _ = audio.load(f, sr=sr)
        chunks = list(audio.stream(f, sr, block=1234))
        assert len(chunks) > 10
        got = np.concatenate(chunks)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-6)
    bad = stereo.copy()
    bad[0, 40_000] = np.nan
    sf.write(tmp_path / "nan.wav", bad.T, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(audio.stream(tmp_path / "nan.wav", 8000, block=1000))
    with pytest.raises(AudioError, match="file not found"):
        list(audio.stream(tmp_path / "missing.wav"))


@pytest.mark.parametrize(("window", "hop"), [(2.0, 2.0), (2.0, 0.7), (1.0, 2.5), (3.3, 1.1), (100.0, None)])
def test_streaming_predict_equals_in_memory(model_dir: Path, tmp_path: Path, monkeypatch, window, hop):
    clf = sonotype.load_model(model_dir)
    rng = np.random.default_rng(5)
    # 10.03 s: the tail after the last full window is sometimes under one frame (dropped)
    y = np.concatenate([_tone("low", 4.0, rng, 22050), _tone("high", 6.03, rng, 22050)])
    f = write_wav(tmp_path / "x.wav", y, 22050)
    monkeypatch.setattr(audio, "STREAM_BLOCK_FRAMES", 3001)  # many block joins inside every window
    streamed = clf.predict(f, window=window, hop=hop)
    ref = clf.predict(audio.load(f, sr=SR)[0], SR, window=window, hop=hop)
    assert streamed.path == str(f) and streamed.duration == pytest.approx(ref.duration, abs=1e-9)
    assert [(s.start, s.end) for s in streamed.segments] == [(s.start, s.end) for s in ref.segments]
    for a, b in zip(streamed.segments, ref.segments, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert streamed.probabilities == pytest.approx(ref.probabilities, abs=1e-5)
    assert [(e.start, e.end, e.label) for e in streamed.events] == [(e.start, e.end, e.label) for e in ref.events]
    assert [e.probability for e in streamed.events] == pytest.approx([e.probability for e in ref.events], abs=1e-5)


def test_streaming_errors(model_dir: Path, tmp_path: Path):
    clf = sonotype.load_model(model_dir)
    short = write_wav(tmp_path / "blip.wav", np.zeros(300, np.float32), 22050)
    with pytest.raises(AudioError, match=r"blip\.wav.*too short"):
        clf.predict(short, window=1.0)
    with pytest.raises(ParameterError, match="smooth"):
        clf.predict(short, window=1.0, smooth=0)
    with pytest.raises(ParameterError, match="smooth kind"):
        clf.predict(short, window=1.0, smooth=3, smooth_kind="mode")
    with pytest.raises(ParameterError, match="min_event"):
        clf.predict(short, window=1.0, min_event=-1)


def test_smooth_mean_and_median():
    P = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0.2, 0.8]], float)
    m = smooth(P, 3)
    np.testing.assert_allclose(m[:, 0], [0.5, 2 / 3, 2 / 3, 2.2 / 3, 0.6])  # edges: shrunk windows
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    med = smooth(P, 3, "median")
    np.testing.assert_allclose(med[:, 0], [0.5, 1.0, 1.0, 1.0, 0.6])
    np.testing.assert_allclose(med.sum(axis=1), 1.0)
    # even n: segment i sees i-1 .. i+2 (one more after than before)
    np.testing.assert_allclose(smooth(P, 4)[0, 0], 2 / 3)
    np.testing.assert_array_equal(smooth(P, 1), P)
    with pytest.raises(ParameterError):
        smooth(P, 2.5)


def test_merge_events_and_min_event():
    lab = ["a", "b"]
    P = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9], [0.2, 0.8]])
    bounds = [(i * 1.0, i * 1.0 + 1.0) for i in range(7)]
    ev = merge_events(bounds, P, lab)
    assert [(e.start, e.end, e.label) for e in ev] == [(0, 2, "a"), (2, 3, "b"), (3, 5, "a"), (5, 7, "b")]
    assert ev[0].probability == pytest.approx(0.85) and ev[1].probability == pytest.approx(0.7)
    # the 1 s "b" goes into the "a" on either side (its own neighbours are both a): a 0-5 event
    ev = merge_events(bounds, P, lab, min_event=1.5)
    assert [(e.start, e.end, e.label) for e in ev] == [(0, 5, "a"), (5, 7, "b")]
    assert ev[0].probability == pytest.approx((0.9 + 0.8 + 0.3 + 0.6 + 0.7) / 5)
    # everything shorter than min_event: merging stops at one event
    assert [(e.start, e.end, e.label) for e in merge_events(bounds, P, lab, min_event=100)] == [(0, 7, "a")]
    # overlapping windows (2 s every 1 s): boundaries at the overlap midpoints
    ob = [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 4.5)]
    Q = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
    assert [(e.start, e.end) for e in merge_events(ob, Q, lab)] == [(0.0, 2.5), (2.5, 4.5)]
    # hop > window: the gap is split at its midpoint
    gb = [(0.0, 1.0), (3.0, 4.0)]
    assert [(e.start, e.end) for e in merge_events(gb, Q[1:3], lab)] == [(0.0, 2.0), (2.0, 4.0)]
    # a short event between two different labels joins the neighbour its segments favour
    R = np.array([[0.9, 0.1, 0], [0.9, 0.1, 0], [0.3, 0.2, 0.5], [0, 0.1, 0.9], [0, 0.1, 0.9]])
    ev = merge_events(bounds[:5], R, ["a", "b", "c"], min_event=2)
    assert [(e.start, e.end, e.label) for e in ev] == [(0, 2, "a"), (2, 5, "c")]
    assert merge_events([], np.zeros((0, 2)), lab) == []


def test_audacity_and_webvtt_text():
    ev = [Event(0.0, 45.5, "rap", 0.874), Event(45.5, 3725.25, "R&B <slow>", 0.6)]
    assert audacity_labels(ev) == "0.000000\t45.500000\trap\n45.500000\t3725.250000\tR&B <slow>\n"
    assert webvtt(ev) == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:45.500\nrap (0.87)\n\n"
        "2\n00:00:45.500 --> 01:02:05.250\nR&amp;B &lt;slow&gt; (0.60)\n"
    )
    assert audacity_labels([Event(1, 2, "a\tb\nc", 1.0)]) == "1.000000\t2.000000\ta b c\n"
    assert webvtt([]) == "WEBVTT\n"


def test_cli_long_predict_end_to_end(model_dir: Path, three_tones: Path, tmp_path: Path):
    runner = CliRunner()
    lab, vtt, rows, plots = tmp_path / "t.txt", tmp_path / "t.vtt", tmp_path / "ev.csv", tmp_path / "plots"
    res = runner.invoke(app, ["predict", str(model_dir), str(three_tones), "--window", "2", "--hop", "1",
                              "--smooth", "3", "--min-event", "4", "--json", "--labels", str(lab), "--vtt", str(vtt),
                              "--csv", str(rows), "--csv-rows", "events", "--plot", str(plots)])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["results"][0]
    assert len(r["segments"]) == 59 and r["duration"] == pytest.approx(60.0)
    ev = r["events"]
    assert [e["label"] for e in ev] == LABELS
    assert ev[0]["start"] == 0.0 and ev[-1]["end"] == 60.0
    assert [e["end"] for e in ev[:2]] == [pytest.approx(20.5, abs=1.01), pytest.approx(40.5, abs=1.01)]
    assert all(e["probability"] > 0.6 for e in ev)
    lines = lab.read_text().splitlines()
    assert [ln.split("\t")[2] for ln in lines] == LABELS and lines[0].startswith("0.000000\t")
    assert vtt.read_text().startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:")
    got = list(csv.DictReader(rows.open()))
    assert [g["label"] for g in got] == LABELS and float(got[-1]["end"]) == 60.0
    assert (plots / "three.png").stat().st_size > 10_000
    # per segment rows; a bad --csv-rows is one clear error
    res = runner.invoke(app, ["predict", str(model_dir), str(three_tones), "--window", "5", "--csv", str(rows),
                              "--csv-rows", "segments"])
    assert res.exit_code == 0, res.output
    seg = list(csv.DictReader(rows.open()))
    assert len(seg) == 12 and list(seg[0])[:4] == ["path", "start", "end", "label"]
    assert [s["label"] for s in seg[::4]] == LABELS
    res = runner.invoke(app, ["predict", str(model_dir), str(three_tones), "--csv-rows", "frames"])
    assert isinstance(res.exception, ParameterError) and "--csv-rows" in str(res.exception)
