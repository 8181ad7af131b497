"""Classify audio as it arrives: the one windowing used by files, the WebSocket and ``listen``.

A live label is only trustworthy if it is the label ``predict --window W --hop H`` gives
the same audio offline. So there is one :class:`Windower`: :meth:`Classifier.predict
<sonotype.inference.predict.Classifier.predict>` streams a file through it, the ``/v1/stream``
WebSocket and ``sonotype listen`` push microphone (or file) chunks through it. Windows
start every ``hop`` samples and are emitted the moment their last sample arrives; when
the stream ends, the tail no full window covers is kept at its real length (dropped when
shorter than one analysis frame, unless it is the only window), the rule of
:func:`sonotype.audio.segment` with ``last="keep"``.

:class:`LiveStream` adds what live input needs: PCM at any rate (one stateful
``soxr.ResampleStream`` to the model's rate, so chunk boundaries leave no trace), sample
checks, a length limit, and the classification of ready windows in one network call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sonotype.errors import AudioError, ParameterError
from sonotype.utils.checks import finite, sample_rate

if TYPE_CHECKING:
    from sonotype.inference.predict import Classifier, SegmentPrediction

__all__ = ["MAX_RATE", "MIN_RATE", "LiveStream", "Window", "Windower"]

MIN_RATE, MAX_RATE = 4000, 192_000  # PCM rates a live stream accepts (resampled to the model's)


@dataclass(frozen=True)
class Window:
    """One window of the signal at the model's rate: sample offsets and the audio."""

    start: int
    end: int
    samples: np.ndarray


class Windower:
    """Cut a signal that arrives in chunks into the windows :func:`sonotype.audio.segment`
    (``last="keep"``) cuts from the whole signal, holding about one window of audio.

    Parameters
    ----------
    sr : int
        Rate of the pushed samples.
    window, hop : float
        Window length and step in seconds.
    min_samples : int
        A final partial window shorter than this is dropped (unless it is the only one).
    """

    def __init__(self, sr: int, window: float, hop: float, *, min_samples: int = 1) -> None:
        self.sr = int(sr)
        self.w = max(1, int(round(window * sr)))
        self.h = max(1, int(round(hop * sr)))
        self.min_samples = int(min_samples)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # sample index of _buf[0]
        self._next = 0  # start of the next full window
        self.n = 0  # samples pushed so far
        self.n_full = 0  # full windows emitted
        self._finished = False

    @property
    def buffered(self) -> int:
        """Samples held, waiting for their window to fill."""
        return int(self._buf.size)

    def push(self, chunk: np.ndarray) -> list[Window]:
        """Add samples; return the windows whose last sample has now arrived."""
        if self._finished:
            raise ParameterError("push after finish: this stream has ended")
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        out: list[Window] = []
        if not chunk.size:
            return out
        self.n += chunk.size
        self._buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk
        while self._buf_start + self._buf.size >= self._next + self.w:
            off = self._next - self._buf_start
            out.append(Window(self._next, self._next + self.w, self._buf[off : off + self.w]))
            self._next += self.h
            self.n_full += 1
        trim = min(self._buf.size, max(0, self._next - self._buf_start))
        self._buf, self._buf_start = self._buf[trim:], self._buf_start + trim
        return out

    def finish(self) -> list[Window]:
        """End of the signal: the tail no full window covers, kept at its real length."""
        self._finished = True
        n, w, h = self.n, self.w, self.h
        tail = 0 if self.n_full == 0 else self._next
        if ((self.n_full == 0 or self._next - h + w < n) and tail < n
                and (self.n_full == 0 or n - tail >= self.min_samples)):
            return [Window(tail, n, self._buf[tail - self._buf_start :])]
        return []


class LiveStream:
    """Classify a live signal window by window, as :meth:`Classifier.predict` would offline.

    Parameters
    ----------
    clf : Classifier
    sr : int
        Rate of the PCM pushed; resampled to ``clf.sample_rate`` when it differs.
    window, hop : float
        Seconds (``hop`` defaults to ``window``); ``window`` must hold the model's minimum.
    max_seconds : float, optional
        Refuse (:class:`ParameterError`) audio beyond this many seconds.
    """

    def __init__(self, clf: Classifier, sr: int, window: float, hop: float | None = None, *,
                 max_seconds: float | None = None) -> None:
        self.clf = clf
        self.in_sr = sample_rate(sr, "sample rate (sr)")
        if not MIN_RATE <= self.in_sr <= MAX_RATE:
            raise ParameterError(f"sample rate sr={self.in_sr} is outside {MIN_RATE}..{MAX_RATE} Hz")
        window = finite("window (s)", window, low=0.0, low_open=True)
        hop = window if hop is None else finite("hop (s)", hop, low=0.0, low_open=True)
        self.window, self.hop = window, hop
        self.sr = int(clf.sample_rate)
        if window * self.sr < clf.min_samples:
            raise ParameterError(f"window={window:g} s is shorter than this model's minimum {clf.min_duration:.3f} s")
        self.max_seconds = max_seconds
        self.windower = Windower(self.sr, window, hop, min_samples=clf.min_samples)
        self._rs = None
        if self.in_sr != self.sr:
            import soxr

            self._rs = soxr.ResampleStream(self.in_sr, self.sr, 1, dtype="float32", quality="HQ")
        self.received = 0  # input samples, at in_sr

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.received / self.in_sr

    def push(self, pcm: np.ndarray) -> list[Window]:
        """Add mono PCM at ``sr``; the windows now complete. Non-finite or impossible samples
        are an :class:`AudioError`; audio beyond ``max_seconds`` a :class:`ParameterError`."""
        y = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if not y.size:
            return []
        if not np.all(np.isfinite(y)):
            raise AudioError(None, "samples contain NaN or infinity")
        peak = float(np.max(np.abs(y)))
        if peak > 1e3:
            raise AudioError(None, f"sample values up to {peak:.3g}: float PCM lies in [-1, 1]")
        if self.max_seconds is not None and (self.received + y.size) / self.in_sr > self.max_seconds:
            raise ParameterError(f"the stream is longer than this server's limit of {self.max_seconds:g} s")
        self.received += y.size
        if self._rs is not None:
            y = self._rs.resample_chunk(y, last=False)
        return self.windower.push(y)

    def finish(self) -> list[Window]:
        """End of input: the resampler's last samples, the windows they complete and the tail."""
        out: list[Window] = []
        if self._rs is not None:
            out = self.windower.push(self._rs.resample_chunk(np.zeros(0, np.float32), last=True))
        return out + self.windower.finish()

    def classify(self, windows: Sequence[Window]) -> list[SegmentPrediction]:
        """Label windows (one network call for all); a window that gives no items is left out."""
        return classify_windows(self.clf, windows)


def classify_windows(clf: Classifier, windows: Sequence[Window], lock: Any = None) -> list[SegmentPrediction]:
    """Segment predictions of windows at the model's rate, as ``predict(window=...)`` makes them.

    ``lock`` (a ``threading.Lock``), when given, is held around the network call only:
    featurizing runs concurrently with other streams' calls.
    """
    from sonotype.inference.predict import SegmentPrediction

    sr = clf.sample_rate
    items = [clf.items(w.samples, sr) for w in windows]
    keep = [i for i, x in enumerate(items) if len(x)]
    if not keep:
        return []
    X = np.concatenate([items[i] for i in keep])
    if lock is None:
        P = clf.forward_items(X)
    else:
        with lock:
            P = clf.forward_items(X)
    cuts = np.cumsum([len(items[i]) for i in keep])[:-1]
    out = []
    for i, p in zip(keep, np.split(P, cuts), strict=True):
        m = p.mean(axis=0)
        out.append(SegmentPrediction(round(windows[i].start / sr, 6), round(windows[i].end / sr, 6),
                                     clf.labels[int(m.argmax())], {lab: float(v) for lab, v in zip(clf.labels, m, strict=True)}))
    return out
