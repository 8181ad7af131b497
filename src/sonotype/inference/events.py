"""A readable timeline from segment probabilities: smoothing, merged events, label tracks.

A long recording classified every few seconds gives hundreds of segments whose label
flickers; what a listener wants is "0:00-0:45 rap, 0:45-1:30 classical". Three steps get
there, each documented because each changes the answer:

- :func:`smooth` averages each segment's probabilities over a centred window of ``n``
  segments (``"mean"``, the default: a moving average, which keeps probabilities summing
  to 1), or takes their per-class median (``"median"``: robust to one wild segment; the
  medians are renormalised to sum to 1). At the edges the window shrinks to the segments
  there are: nothing is padded.
- :func:`merge_events` joins consecutive segments with one label into an :class:`Event`.
  Overlapping segments share time, so the boundary between two consecutive segments is
  the midpoint of their overlap (of the gap between them when hop > window): events tile
  the timeline from the first segment's start to the last one's end, without overlap.
  An event's probability is the mean, over its segments, of its label's probability.
- ``min_event`` (seconds): an event shorter than this is *merged into a neighbour*, not
  dropped, so the timeline keeps no hole. The shortest short event goes first; its
  segments join the neighbour whose label they give the higher mean probability (the
  earlier neighbour on a tie), and the merged event's probability is recomputed over all
  its segments. This repeats until every event is at least ``min_event`` long or one
  event is left.

:func:`audacity_labels` and :func:`webvtt` write the events as an Audacity label track and
as WebVTT cues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from sonotype.errors import ParameterError

__all__ = ["SMOOTH_KINDS", "Event", "audacity_labels", "merge_events", "smooth", "webvtt"]

SMOOTH_KINDS = ("mean", "median")


@dataclass
class Event:
    """A stretch of one label: seconds from the start, and the label's mean probability.

    Attributes
    ----------
    start, end : float
        Seconds.
    label : str
    probability : float
        The label's mean probability over the event's segments.

    Examples
    --------
    >>> Event(1.0, 2.5, "speech", 0.9).duration
    1.5
    """

    start: float
    end: float
    label: str
    probability: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smooth(probabilities: np.ndarray, n: int = 1, kind: Literal["mean", "median"] = "mean") -> np.ndarray:
    """Smooth (n_segments, n_classes) probabilities over a centred window of ``n`` segments.

    Segment ``i`` sees segments ``i - (n - 1) // 2`` to ``i + n // 2`` (shrunk at the edges).
    ``n = 1`` returns the probabilities unchanged.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_segments, n_classes)]
    n : int
        Window, in segments.
    kind : {"mean", "median"}
        Median windows are renormalised so that each row sums to 1.

    Returns
    -------
    np.ndarray [shape=(n_segments, n_classes)], float64

    Examples
    --------
    >>> import numpy as np
    >>> smooth(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 3)
    array([[0.5       , 0.5       ],
           [0.66666667, 0.33333333],
           [0.5       , 0.5       ]])
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"smooth must be a whole number of segments >= 1, got {n!r}")
    if kind not in SMOOTH_KINDS:
        raise ParameterError(f"smooth kind must be one of {SMOOTH_KINDS}, got {kind!r}")
    P = np.asarray(probabilities, dtype=np.float64)
    if P.ndim != 2:
        raise ParameterError(f"probabilities need shape (n_segments, n_classes), got {P.shape}")
    if n == 1 or len(P) < 2:
        return P.copy()
    lo, hi = (n - 1) // 2, n // 2
    if kind == "mean":
        c = np.vstack([np.zeros((1, P.shape[1])), np.cumsum(P, axis=0)])
        i = np.arange(len(P))
        a, b = np.maximum(i - lo, 0), np.minimum(i + hi + 1, len(P))
        return (c[b] - c[a]) / (b - a)[:, None]
    out = np.stack([np.median(P[max(0, i - lo) : i + hi + 1], axis=0) for i in range(len(P))])
    s = out.sum(axis=1, keepdims=True)
    return np.divide(out, s, out=np.full_like(out, 1.0 / P.shape[1]), where=s > 0)


def _spans(bounds: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The part of the timeline each segment owns: boundaries at overlap (or gap) midpoints."""
    cuts = [(bounds[i + 1][0] + bounds[i][1]) / 2 for i in range(len(bounds) - 1)]
    starts = [bounds[0][0], *cuts]
    ends = [*cuts, bounds[-1][1]]
    return list(zip(starts, ends, strict=True))


def merge_events(
    bounds: Sequence[tuple[float, float]],
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    min_event: float = 0.0,
) -> list[Event]:
    """Merge consecutive segments of one label (argmax) into events; see the module notes.

    Parameters
    ----------
    bounds : sequence of (start, end) seconds, one per segment, in time order
    probabilities : np.ndarray [shape=(n_segments, n_classes)]
        Usually already :func:`smooth`-ed.
    labels : class names, one per column
    min_event : float
        Events shorter than this many seconds are merged into a neighbour.

    Returns
    -------
    list of Event
        In time order, covering the segments without overlap.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> [(e.start, e.end, e.label) for e in merge_events([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], P, ["a", "b"])]
    [(0.0, 2.0, 'a'), (2.0, 3.0, 'b')]
    """
    P = np.asarray(probabilities, dtype=np.float64)
    if P.ndim != 2 or len(P) != len(bounds) or P.shape[1] != len(labels):
        raise ParameterError(f"probabilities {P.shape} do not match {len(bounds)} segments x {len(labels)} labels")
    if not (isinstance(min_event, (int, float)) and not isinstance(min_event, bool)
            and np.isfinite(min_event) and min_event >= 0):
        raise ParameterError(f"min_event must be a finite number of seconds >= 0, got {min_event!r}")
    if len(P) == 0:
        return []
    spans = _spans(bounds)
    # runs of one label: [first segment, last segment + 1, class index]
    cls = P.argmax(axis=1)
    runs: list[list[int]] = []
    for i, k in enumerate(cls.tolist()):
        if runs and runs[-1][2] == k:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, k])

    def length(r: list[int]) -> float:
        return spans[r[1] - 1][1] - spans[r[0]][0]

    while min_event > 0 and len(runs) > 1:
        j = min(range(len(runs)), key=lambda q: (length(runs[q]), q))
        if length(runs[j]) >= min_event:
            break
        a, b, _ = runs[j]
        sides = [q for q in (j - 1, j + 1) if 0 <= q < len(runs)]
        # the neighbour whose label the short run's segments favour (earlier on a tie)
        q = max(sides, key=lambda q: (P[a:b, runs[q][2]].mean(), -q))
        if q < j:
            runs[q][1] = b
        else:
            runs[q][0] = a
        del runs[j]
        # the two sides may now carry one label: join them
        merged: list[list[int]] = []
        for r in runs:
            if merged and merged[-1][2] == r[2]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        runs = merged
    return [
        Event(round(spans[a][0], 6), round(spans[b - 1][1], 6), str(labels[k]), float(P[a:b, k].mean()))
        for a, b, k in runs
    ]


def audacity_labels(events: Sequence[Event]) -> str:
    """An Audacity label track: one ``start<TAB>end<TAB>label`` line per event, in seconds.

    Audacity reads it with File > Import > Labels. Tabs and line breaks in a label become
    spaces, since they would split the line.

    Parameters
    ----------
    events : sequence of Event

    Returns
    -------
    str

    Examples
    --------
    >>> audacity_labels([Event(0.0, 1.5, "dog bark", 0.8)]).rstrip().split(chr(9))  # tab-separated
    ['0.000000', '1.500000', 'dog bark']
    """
    return "".join(f"{e.start:.6f}\t{e.end:.6f}\t{_one_line(e.label)}\n" for e in events)


def _one_line(text: str) -> str:
    return " ".join(text.replace("\t", " ").splitlines()) if text else text


def _vtt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(events: Sequence[Event]) -> str:
    """WebVTT cues, one per event: ``label (probability)``, e.g. for a ``<track>`` beside the audio.

    ``&``, ``<`` and ``>`` are escaped as WebVTT requires; a label on several lines is
    joined into one (a blank line would end the cue).

    Parameters
    ----------
    events : sequence of Event

    Returns
    -------
    str
        A complete ``.vtt`` file.

    Examples
    --------
    >>> print(webvtt([Event(0.0, 61.5, "a<b", 0.75)]))
    WEBVTT
    <BLANKLINE>
    1
    00:00:00.000 --> 00:01:01.500
    a&lt;b (0.75)
    <BLANKLINE>
    """
    parts = ["WEBVTT\n"]
    for i, e in enumerate(events, 1):
        text = _one_line(e.label).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts.append(f"\n{i}\n{_vtt_time(e.start)} --> {_vtt_time(e.end)}\n{text} ({e.probability:.2f})\n")
    return "".join(parts)
