"""``sonotype listen``: label a microphone (or a file played in real time) window by window.

The windows are those of :class:`sonotype.inference.live.LiveStream`, so a label printed live is the
label ``predict --window W --hop H`` gives the same audio. Consecutive windows of one
label are merged into events as they close, with the boundaries :func:`sonotype.inference.events.
merge_events` draws (the midpoint of two windows' overlap), so the events appended to a
file equal the offline events of the recording (no smoothing, no ``min_event``: both
need windows that have not arrived yet).

The microphone goes through ``sounddevice`` (PortAudio), imported only here and only for
a device: ``pip install 'sonotype[live]'`` plus the system's PortAudio (Debian:
``libportaudio2``). Audio is captured in PortAudio's callback thread and classified in
the caller's, so a slow window never drops samples.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sonotype.errors import AudioError, ConfigError, ParameterError
from sonotype.inference.events import Event, _one_line
from sonotype.inference.live import LiveStream

if TYPE_CHECKING:
    from sonotype.inference.predict import Classifier, SegmentPrediction

__all__ = ["EventTracker", "device_source", "file_source", "listen"]

BLOCK_SECONDS = 0.05  # capture block: 50 ms keeps latency small and the per-call cost low


def file_source(path: str | os.PathLike, *, speed: float = 1.0, block_s: float = BLOCK_SECONDS) -> tuple[int, Iterator[np.ndarray]]:
    """The file's rate and its audio in ``block_s`` blocks, paced at ``speed`` times real time."""
    from sonotype import audio
    from sonotype.utils.checks import finite

    speed = finite("speed", speed, low=0.0, low_open=True)
    sr = audio.info(path).samplerate

    def gen() -> Iterator[np.ndarray]:
        t0, sent = time.monotonic(), 0
        for chunk in audio.stream(path, None, block=max(1, int(round(block_s * sr)))):
            sent += chunk.size
            yield chunk
            wait = t0 + sent / sr / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    return sr, gen()


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError:
        raise ConfigError("listening to a microphone needs the sounddevice package: "
                          "pip install 'sonotype[live]' (or use --input FILE)") from None
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise ConfigError(f"listening to a microphone needs the PortAudio library ({exc}): install it "
                          "(Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio) "
                          "or use --input FILE") from None
    return sounddevice


def device_source(device: int | str | None = None, *, seconds: float | None = None,
                  block_s: float = BLOCK_SECONDS) -> tuple[int, Iterator[np.ndarray]]:
    """An input device's rate and its audio (mono) as it is captured, for ``seconds`` or until
    Ctrl-C. No device at all is an :class:`AudioError` saying so."""
    sd = _sounddevice()
    try:
        dev = sd.query_devices(device, "input")
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioError(None, f"no audio input device{'' if device is None else f' {device!r}'} found ({exc}); "
                               "plug in a microphone, pick one with --device, or use --input FILE") from None
    if int(dev.get("max_input_channels", 0)) < 1:
        raise AudioError(None, f"{dev.get('name', device)!r} has no input channels: pick a microphone with --device")
    sr = int(round(float(dev["default_samplerate"])))
    q: queue.Queue[np.ndarray] = queue.Queue()

    def callback(indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        q.put(np.asarray(indata, dtype=np.float32).mean(axis=1))

    def gen() -> Iterator[np.ndarray]:
        stream = sd.InputStream(device=device, samplerate=sr, channels=1, dtype="float32",
                                blocksize=max(1, int(round(block_s * sr))), callback=callback)
        got = 0
        with stream:
            while seconds is None or got < seconds * sr:
                try:
                    chunk = q.get(timeout=2.0)
                except queue.Empty:
                    raise AudioError(None, f"the input device {dev.get('name')!r} delivers no audio") from None
                got += chunk.size
                yield chunk

    return sr, gen()


@dataclass
class EventTracker:
    """Merge labelled windows into events as they arrive; :meth:`add` returns an event when
    the label changes (it then ends at the midpoint of the two windows' overlap, as in
    :func:`sonotype.inference.events.merge_events`), :meth:`close` the last one."""

    labels: list[str]
    _run: list[Any] = field(default_factory=list)  # segments of the current label
    _start: float = 0.0

    def add(self, seg: SegmentPrediction) -> Event | None:
        out = None
        if self._run and seg.label != self._run[-1].label:
            end = round((seg.start + self._run[-1].end) / 2, 6)
            out = self._event(end)
            self._run, self._start = [], end
        if not self._run and out is None:
            self._start = seg.start
        self._run.append(seg)
        return out

    def _event(self, end: float) -> Event:
        lab = self._run[-1].label
        p = float(np.mean(np.asarray([s.probabilities[lab] for s in self._run], dtype=np.float64)))
        return Event(round(self._start, 6), end, lab, p)

    def close(self) -> Event | None:
        if not self._run:
            return None
        ev = self._event(round(self._run[-1].end, 6))
        self._run = []
        return ev


def _append_event(path: Path, ev: Event) -> None:
    """One Audacity label line, appended and fsynced: a kill keeps every closed event."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ev.start:.6f}\t{ev.end:.6f}\t{_one_line(ev.label)}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def listen(
    clf: Classifier,
    source: tuple[int, Iterator[np.ndarray]],
    *,
    window: float,
    hop: float | None = None,
    on_segment: Callable[[SegmentPrediction], None] | None = None,
    events_out: str | os.PathLike | None = None,
) -> tuple[list[SegmentPrediction], list[Event]]:
    """Classify ``source`` (rate, chunks) window by window until it ends (or Ctrl-C).

    ``on_segment`` sees each window as it is labelled; events are appended to
    ``events_out`` (an Audacity label track: start, end, label) as each one closes.
    Returns every segment and event (also after Ctrl-C, with the audio so far).
    """
    sr, chunks = source
    live = LiveStream(clf, sr, window, hop)
    tracker = EventTracker(list(clf.labels))
    out = Path(events_out) if events_out is not None else None
    if out is not None:
        if out.is_dir():
            raise ParameterError(f"{out} is a folder: --events needs a file to append to")
        out.parent.mkdir(parents=True, exist_ok=True)
    segments: list[SegmentPrediction] = []
    events: list[Event] = []

    def take(windows: list) -> None:
        for seg in live.classify(windows):
            segments.append(seg)
            if on_segment is not None:
                on_segment(seg)
            ev = tracker.add(seg)
            if ev is not None:
                events.append(ev)
                if out is not None:
                    _append_event(out, ev)

    try:
        for chunk in chunks:
            take(live.push(chunk))
    except KeyboardInterrupt:
        pass
    take(live.finish())
    ev = tracker.close()
    if ev is not None:
        events.append(ev)
        if out is not None:
            _append_event(out, ev)
    return segments, events
