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
from typing import Any

import numpy as np
import soxr

from sonotype.errors import AudioError, ParameterError
from sonotype.inference.predict import Classifier, SegmentPrediction
from sonotype.inference.windows import Window, Windower
from sonotype.utils.checks import finite, sample_rate

__all__ = ["MAX_RATE", "MIN_RATE", "LiveStream", "classify_windows"]

MIN_RATE, MAX_RATE = 4000, 192_000  # PCM rates a live stream accepts (resampled to the model's)


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
