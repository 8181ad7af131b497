"""``sonotype listen``: a file played in real time and a (fake) device give the offline windows and events."""

from __future__ import annotations

import json
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import sonotype
from conftest import write_wav
from sonotype.cli import app, main
from sonotype.features.config import RepresentationConfig
from sonotype.inference.events import audacity_labels
from sonotype.inference.listen import EventTracker, file_source, listen
from test_predict import LABELS, SR, _tone, _train

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("l"), "tones", RepresentationConfig(kind="stats", stats=["mean", "std"]),
                  "mlp-small")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s at the model's 8 kHz: 4 s low, 4 s mid, 4 s high, plus a 0.3 s tail."""
    rng = np.random.default_rng(5)
    y = np.concatenate([_tone(lab, 4.0, rng) for lab in LABELS] + [_tone("high", 0.3, rng)])
    return write_wav(tmp_path_factory.mktemp("lw") / "three.wav", y, SR)


@pytest.mark.parametrize(("window", "hop"), [(0.5, None), (1.0, 0.4)])
def test_listen_input_equals_offline(model_dir, clip, tmp_path, window, hop):
    ev = tmp_path / "events.txt"
    args = ["listen", str(model_dir), "--input", str(clip), "--speed", "40", "--window", str(window), "--json",
            "--events", str(ev)] + (["--hop", str(hop)] if hop else [])
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in res.output.splitlines()]
    want = sonotype.load_model(model_dir).predict(clip, window=window, hop=hop)
    assert [(g["start"], g["end"], g["label"]) for g in got] == [(s.start, s.end, s.label) for s in want.segments]
    for g, s in zip(got, want.segments, strict=True):
        assert g["probabilities"]["mid"] == pytest.approx(s.probabilities["mid"], abs=1e-5)
    assert {e.label for e in want.events} == set(LABELS) and want.events[0].label == "low"  # a real timeline
    assert ev.read_text() == audacity_labels(want.events)  # live events = offline events, to the digit


def test_listen_plain_lines_and_resampled_file(model_dir, clip, tmp_path):
    import soxr

    y, _ = sf.read(clip, dtype="float32")
    f = write_wav(tmp_path / "x.wav", soxr.resample(y, SR, 22050).astype(np.float32), 22050, subtype="FLOAT")
    res = runner.invoke(app, ["listen", str(model_dir), "--input", str(f), "--speed", "40", "--window", "2",
                              "--events", str(tmp_path / "e.txt")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("0:00.0-0:02.0  low  ") and lines[2].startswith("0:04.0-0:06.0  mid  ")
    assert lines[-1] == f"3 event(s) appended to {tmp_path / 'e.txt'}"
    want = sonotype.load_model(model_dir).predict(f, window=2)
    assert [ln.split("  ")[1] for ln in lines[:-1]] == [s.label for s in want.segments]


class _Clock:
    """An injected clock for ``file_source``: ``sleep`` moves time on, nothing really waits."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert s > 0
        self.sleeps.append(s)
        self.now += s


@pytest.mark.parametrize("speed", [6.0, 1.0])
def test_file_source_keeps_real_time(clip, monkeypatch, speed):
    """Block k is handed out no earlier than the audio before it lasts at ``speed``, and never later
    (the source waits exactly what is left); a consumer slower than real time is never made to wait."""
    from sonotype.inference import listen as listen_mod

    clock = _Clock()
    monkeypatch.setattr(listen_mod, "time", clock)
    sr, chunks = file_source(clip, speed=speed, block_s=0.05)
    total = sf.info(str(clip)).frames
    assert sr == SR and total == int(12.3 * SR)
    sent, at = 0, []
    for c in chunks:
        at.append((clock.now - 1000.0, sent))  # when each block arrives, after how many samples
        sent += c.size
    assert sent == total and [n for _, n in at][:3] == [0, 400, 800]  # 50 ms blocks at 8 kHz
    for t, n in at:
        assert t == pytest.approx(n / SR / speed, abs=1e-9), (t, n)
    assert sum(clock.sleeps) == pytest.approx(total / SR / speed, abs=1e-9)  # 12.3 s of audio
    # A consumer that takes longer than each block lasts: no sleep at all.
    slow = _Clock()
    monkeypatch.setattr(listen_mod, "time", slow)
    _, chunks = file_source(clip, speed=speed, block_s=0.05)
    for _ in chunks:
        slow.now += 1.0  # one second of work per 50 ms block
    assert slow.sleeps == []


def test_event_tracker_matches_merge_events():
    from sonotype.inference.events import merge_events
    from sonotype.inference.predict import SegmentPrediction

    rng = np.random.default_rng(1)
    P = rng.dirichlet([0.3, 0.3], 40)
    bounds = [(round(i * 0.3, 6), round(i * 0.3 + 0.5, 6)) for i in range(40)]
    tr, got = EventTracker(["a", "b"]), []
    for (s, e), p in zip(bounds, P, strict=True):
        lab = "ab"[int(p.argmax())]
        ev = tr.add(SegmentPrediction(s, e, lab, {"a": float(p[0]), "b": float(p[1])}))
        got += [ev] if ev else []
    got.append(tr.close())
    want = merge_events(bounds, P, ["a", "b"])
    assert len(want) > 5
    assert [(g.start, g.end, g.label) for g in got] == [(w.start, w.end, w.label) for w in want]
    np.testing.assert_allclose([g.probability for g in got], [w.probability for w in want], atol=1e-12)


class _FakeStream:
    """sounddevice.InputStream over an array: the callback runs in its own thread, like PortAudio's."""

    def __init__(self, y, *, samplerate, blocksize, callback, **kw):
        self.y, self.block, self.cb = y, blocksize, callback
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for i in range(0, self.y.size, self.block):
            self.cb(self.y[i : i + self.block, None], self.block, None, None)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.thread.join(5)


def _fake_sd(y=None, sr=SR, devices=True):
    sd = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        if not devices:
            raise PortAudioError("Error querying device -1")
        return {"name": "fake mic", "max_input_channels": 1, "default_samplerate": float(sr)}

    sd.PortAudioError = PortAudioError
    sd.query_devices = query_devices
    sd.InputStream = lambda **kw: _FakeStream(y, **kw)
    return sd


def test_device_path_with_fake_sounddevice(model_dir, clip, monkeypatch):
    from sonotype.inference.listen import device_source

    y, _ = sf.read(clip, dtype="float32")
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sd(y))
    clf = sonotype.load_model(model_dir)
    segs, events = listen(clf, device_source(None, seconds=len(y) / SR), window=0.5)
    want = clf.predict(clip, window=0.5)
    assert [(s.start, s.end, s.label) for s in segs] == [(s.start, s.end, s.label) for s in want.segments]
    assert [e.label for e in events] == LABELS


def _one_error_line(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["sonotype", *args])
    code = 0
    try:
        main()
    except SystemExit as done:
        code = int(done.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_no_device_is_one_line(model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sd(devices=False))
    line = _one_error_line(*_main(monkeypatch, capsys, "listen", str(model_dir))[::2])
    assert "no audio input device found" in line and "--input FILE" in line


def test_missing_sounddevice_or_portaudio_is_one_line(model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails: not installed
    line = _one_error_line(*_main(monkeypatch, capsys, "listen", str(model_dir))[::2])
    assert "needs the sounddevice package" in line and "sonotype[live]" in line

    class _NoPortAudio:  # importing sounddevice without the library raises OSError
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    line = _one_error_line(*_main(monkeypatch, capsys, "listen", str(model_dir))[::2])
    assert "PortAudio library not found" in line and "libportaudio2" in line


def test_bad_listen_options(model_dir, clip, monkeypatch, capsys):
    line = _one_error_line(*_main(monkeypatch, capsys, "listen", str(model_dir), "--input", str(clip),
                                  "--speed", "0")[::2])
    assert "speed" in line
    line = _one_error_line(*_main(monkeypatch, capsys, "listen", str(model_dir), "--input", str(clip),
                                  "--window", "0.01")[::2])
    assert "shorter than this model's minimum" in line
