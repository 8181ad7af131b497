"""Classify new audio with a saved model: ``sonotype.load_model(path).predict("song.wav")``.

A :class:`Classifier` applies exactly the feature settings and scaler the model was trained
with, so a prediction sees what training saw. Input at another sample rate is resampled to
the model's; input shorter than one analysis frame is refused with a clear message.

Timeline policy
---------------
- Without ``window``: a statistics or frames model sees the whole file as one segment; a
  windows/log-mel model's own windows form the timeline (start ``i * hop``).
- With ``window``/``hop``: the signal is cut into segments of ``window`` s every ``hop`` s.
  The final partial segment is *kept at its real length* rather than zero-padded: padding
  with silence would change the statistics a model sees. A tail shorter than one analysis
  frame (``n_fft`` samples) carries no information of its own and is dropped, unless it
  is the only segment. Each segment's probability is the mean over its items; the file's
  is the mean over segments.
- A *file* with ``window`` is streamed (:func:`sonotype.audio.stream`): read in blocks,
  resampled by one stateful resampler, cut into segments as their audio arrives, so the
  memory does not grow with the recording's length. The segments equal those of the
  in-memory path (an array, or the whole file loaded) to float rounding.
- ``smooth``/``smooth_kind`` smooth the segment probabilities (see :mod:`sonotype.inference.events`);
  the segments then carry the smoothed probabilities and labels, while the file's label
  and probabilities stay the mean of the unsmoothed segments. ``events`` merge
  consecutive segments of one label; ``min_event`` merges shorter events into a neighbour.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sonotype import audio
from sonotype.backbones.runtime import featurizer_for, network_for
from sonotype.errors import AudioError, ModelError, ParameterError, SonotypeError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.represent import featurize, window_frames
from sonotype.features.scaling import Standardizer
from sonotype.inference.events import Event, merge_events
from sonotype.inference.events import smooth as smooth_probabilities
from sonotype.inference.hub import local_model
from sonotype.inference.modelio import MODEL_JSON, SCALER_FILE, WEIGHTS_FILE, read_model_dir
from sonotype.inference.windows import Windower
from sonotype.items.normalize import Normalizer
from sonotype.models.apply import predict_proba
from sonotype.models.registry import build_model, check_item_shape
from sonotype.utils.checks import finite, mono_signal, sample_rate
from sonotype.utils.html import bar, colour, esc, table, timeline

__all__ = ["Classifier", "Event", "Prediction", "SegmentPrediction",
           "load_model"]

# Segments featurized before one network call while streaming: amortises the call, bounds memory.
_STREAM_BATCH = 64


@dataclass
class SegmentPrediction:
    """One stretch of the timeline: seconds from the start, label and class probabilities.

    Attributes
    ----------
    start, end : float
        Seconds.
    label : str
        The most probable class.
    probabilities : dict
        Class -> probability, in the model's label order.

    Examples
    --------
    >>> SegmentPrediction(0.0, 0.5, "dog", {"cat": 0.2, "dog": 0.8}).to_dict()["label"]
    'dog'
    """

    start: float
    end: float
    label: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prediction:
    """A file's (or array's) label, mean class probabilities, duration, segment timeline and
    the events (consecutive segments of one label merged).

    In a notebook it shows as probability bars and a coloured timeline (``_repr_html_``).

    Attributes
    ----------
    path : str or None
        The file, or None for an array.
    label : str
        The most probable class over the whole input.
    probabilities : dict
        Class -> mean probability, in the model's label order.
    duration : float
        Seconds.
    segments : list of SegmentPrediction
        One per model window (or per item), in time order.
    events : list of Event
        Consecutive segments of one label, merged.

    Examples
    --------
    >>> p = Prediction(None, "dog", {"cat": 0.25, "dog": 0.75}, 1.0,
    ...                [SegmentPrediction(0.0, 1.0, "dog", {"cat": 0.25, "dog": 0.75})])
    >>> p.to_dict()["probabilities"], "timeline" in p._repr_html_()
    ({'cat': 0.25, 'dog': 0.75}, True)
    """

    path: str | None
    label: str
    probabilities: dict[str, float]
    duration: float
    segments: list[SegmentPrediction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "duration": self.duration,
            "segments": [s.to_dict() for s in self.segments],
            "events": [e.to_dict() for e in self.events],
        }

    def _repr_html_(self) -> str:
        """A notebook view: the label, probability bars (highest first) and the segment timeline."""

        labels = list(self.probabilities)  # the model's label order: one colour per label everywhere
        where = f" <span style='color:#777'>{esc(self.path)}</span>" if self.path else ""
        out = f"<div><b>{esc(self.label)}</b> ({self.duration:.2f} s){where}"
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])
        out += table(["class", "probability", ""],
                     [[esc(k), f"{v:.3f}", bar(v, color=colour(labels.index(k)))] for k, v in ranked])
        if self.segments:  # events are the segments merged and never overlap; overlapping windows may
            spans = [(e.start, e.end, e.label) for e in self.events] or [(s.start, s.end, s.label) for s in self.segments]
            out += f"<div>timeline ({len(self.segments)} segments, {len(self.events)} events)</div>"
            out += timeline(spans, labels, self.duration)
        return out + "</div>"


class Classifier:
    """A loaded model: network (eval mode), scaler, labels and the exact feature settings.

    Build one with :func:`load_model`. ``forward_items`` is the single place where the
    network runs, so another runtime (ONNX) overrides only that method.

    Parameters
    ----------
    network : torch.nn.Module
        Put in eval mode.
    labels : sequence of str
        Class names in output order.
    feature_config : FeatureConfig
    representation : RepresentationConfig
        The settings the network was trained with.
    architecture : dict
        The spec that rebuilds ``network``.
    scaler : Standardizer, optional
    metrics : dict, optional
        The evaluation saved with the model.
    model_id : str
        Name plus weights digest, e.g. for a server's responses.
    meta : dict, optional
        The whole ``model.json``.
    backbone : BackboneFeaturizer, optional
        A pretrained encoder that makes the items.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> net = build_model("mlp-small", (2,), 2, seed=0)  # untrained: this shows the API, not a result
    >>> path = save_model(tempfile.mkdtemp() + "/model", network=net, labels=["high", "low"],
    ...                   feature_config=fc, representation=RepresentationConfig())
    >>> clf = load_model(path)
    >>> clf.labels, clf.sample_rate
    (['high', 'low'], 8000)
    >>> p = clf.predict(np.zeros(16000, np.float32), 8000, window=0.5)
    >>> p.label in clf.labels, len(p.segments), round(sum(p.probabilities.values()), 5)
    (True, 4, 1.0)
    """

    def __init__(
        self,
        *,
        network: torch.nn.Module,
        labels: Sequence[str],
        feature_config: FeatureConfig,
        representation: RepresentationConfig,
        architecture: dict[str, Any],
        scaler: Any = None,
        metrics: dict[str, Any] | None = None,
        model_id: str = "model",
        meta: dict[str, Any] | None = None,
        backbone: Any = None,
        normalizer: Any = None,
    ) -> None:
        self.network = network.eval()
        self.labels = [str(lab) for lab in labels]
        self.feature_config = feature_config
        self.representation = representation
        self.architecture = architecture
        self.scaler = scaler
        self.metrics = metrics
        self.model_id = model_id
        self.meta = meta or {}
        # a pretrained backbone (sonotype.backbones.runtime.BackboneFeaturizer) makes the items
        self.backbone = backbone
        # per-speaker / per-corpus standardisation (sonotype.items.normalize.Normalizer), applied in items()
        self.normalizer = normalizer

    # ------------------------------------------------------------------ facts
    @property
    def sample_rate(self) -> int:
        """The rate every input is resampled to before feature extraction."""
        if self.backbone is not None:
            return int(self.backbone.sample_rate)
        return int(self.feature_config.sr)

    @property
    def min_samples(self) -> int:
        """Fewest samples a prediction needs: one analysis frame (``n_fft``), or one full
        model window when the representation drops partial windows."""
        if self.backbone is not None:
            return int(self.backbone.min_samples)
        n = int(self.feature_config.n_fft)
        rep = self.representation
        if rep.kind in ("windows", "logmel") and rep.last == "drop" and rep.window:
            n = max(n, int(round(rep.window * self.sample_rate)))
        return n

    @property
    def min_duration(self) -> float:
        return self.min_samples / self.sample_rate

    def info(self) -> dict[str, Any]:
        """JSON-ready description: labels, settings, architecture, sample rate, id, metrics.

        Returns
        -------
        dict
            ``model_id, labels, sample_rate, min_duration, features, representation, backbone,
            architecture, metrics, created, sonotype_version, licences``.
        """
        return {
            "model_id": self.model_id,
            "labels": list(self.labels),
            "sample_rate": self.sample_rate,
            "min_duration": self.min_duration,
            "features": None if self.backbone is not None else self.feature_config.to_dict(),
            "representation": None if self.backbone is not None else self.representation.to_dict(),
            "backbone": self.meta.get("backbone"),
            "architecture": dict(self.architecture),
            "metrics": self.metrics,
            "created": self.meta.get("created"),
            "sonotype_version": self.meta.get("sonotype_version"),
            "licences": self.meta.get("licences"),  # data and encoder licences, combined (null before format 2)
        }

    def __repr__(self) -> str:
        return (f"Classifier({self.model_id!r}, {self.architecture.get('name')!r}, "
                f"{self.representation.kind}, labels={self.labels})")

    # ------------------------------------------------------------------ pipeline
    def items(self, y: np.ndarray, sr: int, *, path: str | None = None) -> np.ndarray:
        """Featurize a mono signal at the model's rate into model input items (unscaled).

        A model trained with ``normalize`` standardises them here by the running statistics
        (:meth:`sonotype.items.normalize.Normalizer.start_running`) or else its fallback ones; give
        several clips of one speaker to :meth:`predict_group` to use their own statistics.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono audio at ``sr``.
        sr : int
            Must be the model's :attr:`sample_rate`.
        path : str, optional
            Named in errors.

        Returns
        -------
        np.ndarray [shape=(n_items, *input_shape)], float32
        """
        X = self._raw_items(y, sr, path=path)
        if self.normalizer is not None:
            if self.normalizer.running:
                self.normalizer.observe(X)
            X = self.normalizer.transform(X)
        return X

    def predict_group(self, sources: Sequence[str | os.PathLike | np.ndarray], sr: int | None = None) -> list[Prediction]:
        """Classify several clips of one speaker (or one corpus) whole, normalised together.

        A model trained with ``normalize: {by: speaker}`` standardises each clip's items with
        the statistics of all the given clips (the speaker's own, no label needed), as in
        training; with fewer than its ``min_clips`` clips it uses its fallback statistics.
        Without normalisation this is :meth:`predict` on each clip.

        Parameters
        ----------
        sources : sequence of path-like or np.ndarray
            The clips: files, or mono arrays at ``sr``.
        sr : int, optional
            Sample rate of array clips.

        Returns
        -------
        list of Prediction
            One per clip, in order.
        """
        sigs = [self._signal(s, sr) for s in sources]
        if not sigs:
            raise ParameterError("predict_group needs at least one clip")
        for y, path in sigs:
            if y.shape[-1] < self.min_samples:
                raise self._too_short(int(y.shape[-1]), path)
        Xs = [self._raw_items(y, self.sample_rate, path=path) for y, path in sigs]
        if self.normalizer is not None:
            stats = self.normalizer.stats_of(np.concatenate(Xs)) if len(Xs) >= self.normalizer.min_clips else None
            Xs = [self.normalizer.transform(X, stats) for X in Xs]
        out = []
        for (y, path), X in zip(sigs, Xs, strict=True):
            n = int(y.shape[-1])
            if len(X) == 0:
                raise self._too_short(n, path)
            P = self.forward_items(X)
            bounds = self._item_bounds(len(P), n)
            seg_p = P if len(bounds) == len(P) else P.mean(axis=0, keepdims=True)
            out.append(self._result(path, seg_p, bounds, n / self.sample_rate, 1, "mean", 0.0))
        return out

    def _raw_items(self, y: np.ndarray, sr: int, *, path: str | None = None) -> np.ndarray:
        if int(sr) != self.sample_rate:
            y = audio.resample(y, int(sr), self.sample_rate)
        if self.backbone is not None:
            return np.asarray(self.backbone.items(y), dtype=np.float32)
        return np.asarray(featurize(y, self.sample_rate, self.feature_config, self.representation, path=path),
                          dtype=np.float32)

    def clip_probabilities(self, X: np.ndarray, item_clip: np.ndarray, n_clips: int,
                           groups: Sequence[str] | None = None) -> np.ndarray:
        """Class probabilities of whole clips from their raw items: the one prediction step.

        Every front end ends here: each group's items are standardised together (a model
        trained with ``normalize``; ``groups`` gives every clip's speaker or corpus, None =
        all the clips are one group), then scaled, run through the network
        (:meth:`forward_items`) and averaged over each clip's items.

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, *input_shape)]
            Unscaled, unnormalised items, e.g. from the training dataset builder or :meth:`items`.
        item_clip : np.ndarray [shape=(n_items,)], int
            The clip (0 .. n_clips - 1) each item belongs to; every clip needs an item.
        n_clips : int
        groups : sequence of str [shape=(n_clips,)], optional

        Returns
        -------
        np.ndarray [shape=(n_clips, n_classes)], float32
            Columns in :attr:`labels` order.
        """
        item_clip = np.asarray(item_clip, dtype=np.int64)
        counts = np.bincount(item_clip, minlength=n_clips)
        if len(counts) != n_clips or (counts == 0).any():
            raise ParameterError(f"every one of the {n_clips} clips needs items, got item counts {counts.tolist()}")
        if self.normalizer is not None:
            keys = [""] * n_clips if groups is None else [str(g) for g in groups]
            if len(keys) != n_clips:
                raise ParameterError(f"{n_clips} clips but {len(keys)} groups")
            X = self.normalizer.transform_groups(np.asarray(X), item_clip, keys)
        P = self.forward_items(X)
        out = np.zeros((n_clips, len(self.labels)), np.float64)
        np.add.at(out, item_clip, P)
        return (out / counts[:, None]).astype(np.float32)

    def forward_items(self, X: np.ndarray) -> np.ndarray:
        """Scale items and run the network: probabilities, shape (n_items, n_classes).

        A wrong shape or a non-numeric array is a :class:`ParameterError` naming the model's
        ``input_shape``, checked before the scaler so every bad shape gets the same error.

        Parameters
        ----------
        X : np.ndarray [shape=(n_items, *input_shape)]
            Unscaled items (:meth:`items`).

        Returns
        -------
        np.ndarray [shape=(n_items, n_classes)], float32
            Columns in :attr:`labels` order.
        """

        X = np.asarray(X)
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise ParameterError(f"prediction items must be a real numeric array, got dtype {X.dtype}")
        X = X.astype(np.float32, copy=False)
        if X.ndim < 2:
            raise ParameterError(f"prediction items need shape (N, ...), got {X.shape}")
        check_item_shape(self.network, X.shape[1:], "prediction")
        if self.scaler is not None:
            X = np.asarray(self.scaler.transform(X), dtype=np.float32)
        return predict_proba(self.network, X)

    def _signal(self, source: str | os.PathLike | np.ndarray, sr: int | None) -> tuple[np.ndarray, str | None]:
        """Mono float32 at the model's rate, and the path when there is one.

        A file is read as training read it: only the first ``features.max_duration`` seconds,
        cut at the file's own rate before resampling (:func:`sonotype.audio.load`).
        """
        if isinstance(source, (str, os.PathLike)):
            limit = None if self.backbone is not None else self.feature_config.max_duration
            y, _ = audio.load(source, sr=self.sample_rate, duration=limit, min_samples=1)
            return y, str(source)
        if sr is None:
            raise ParameterError("predict on an array needs its sample rate: predict(y, sr)")
        sr = sample_rate(sr, "sample rate (sr)")
        # shared with featurize, so a bad array gets the same error from predict and represent
        y = mono_signal(source)
        if int(sr) != self.sample_rate and y.size:
            y = audio.resample(y, int(sr), self.sample_rate)
        return np.ascontiguousarray(y, dtype=np.float32), None

    def _too_short(self, n: int, path: str | None, what: str = "audio") -> AudioError:
        sr = self.sample_rate
        return AudioError(path, f"{what} too short: {n / sr:.3f} s ({n} samples at {sr} Hz); this model needs at "
                                f"least {self.min_duration:.3f} s ({self.min_samples} samples)")

    def _probabilities(self, p: np.ndarray) -> dict[str, float]:
        return {lab: float(v) for lab, v in zip(self.labels, p, strict=True)}

    def predict(
        self,
        source: str | os.PathLike | np.ndarray,
        sr: int | None = None,
        *,
        window: float | None = None,
        hop: float | None = None,
        smooth: int = 1,
        smooth_kind: Literal["mean", "median"] = "mean",
        min_event: float = 0.0,
    ) -> Prediction:
        """Label a file or an array; with ``window``/``hop`` also a segment timeline.

        Parameters
        ----------
        source : path-like or np.ndarray [shape=(n,) or (channels, n)]
        sr : int, optional
            Sample rate of an array (required for arrays); resampled to the model's.
        window, hop : float, optional
            Segment length and step in seconds (``hop`` defaults to ``window``). A file is
            then streamed in blocks: memory independent of its length.
        smooth, smooth_kind : int, str
            Smooth segment probabilities over a centred window of ``smooth`` segments,
            ``"mean"`` (moving average) or ``"median"`` (see :mod:`sonotype.inference.events`).
        min_event : float
            Events shorter than this (seconds) are merged into a neighbour.

        Returns
        -------
        Prediction

        Raises
        ------
        AudioError
            Unreadable file, or input shorter than :attr:`min_duration` (the message gives both).

        Examples
        --------
        >>> import tempfile
        >>> import soundfile as sf
        >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
        >>> from sonotype.inference.modelio import save_model
        >>> from sonotype.models.registry import build_model
        >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
        >>> tmp = tempfile.mkdtemp()
        >>> path = save_model(tmp + "/model", network=build_model("mlp-small", (2,), 2, seed=0),
        ...                   labels=["high", "low"], feature_config=fc, representation=RepresentationConfig())
        >>> sf.write(tmp + "/song.wav", np.zeros(24000, np.float32), 8000)  # 3 s
        >>> pred = load_model(path).predict(tmp + "/song.wav", window=1.0, hop=0.5)
        >>> [(s.start, s.end) for s in pred.segments][:3], pred.duration
        ([(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)], 3.0)
        """
        if window is None and hop is not None:
            raise ParameterError(f"hop={hop} given without window")
        smooth_probabilities(np.zeros((0, 1)), smooth, smooth_kind)  # check the settings before any work
        merge_events([], np.zeros((0, 1)), ["x"], min_event=min_event)
        sr_m = self.sample_rate
        if window is not None:
            hop = window if hop is None else hop
            window = finite("window (s)", window, low=0.0, low_open=True)
            hop = finite("hop (s)", hop, low=0.0, low_open=True)
            if window * sr_m < self.min_samples:
                raise ParameterError(f"window={window} s is shorter than this model's minimum "
                                     f"{self.min_duration:.3f} s")
        if window is not None and isinstance(source, (str, os.PathLike)):
            path = str(source)
            seg_p, bounds, n = self._stream_segments(path, window, hop)
            return self._result(path, seg_p, bounds, n / sr_m, smooth, smooth_kind, min_event)
        y, path = self._signal(source, sr)
        n = int(y.shape[-1])
        duration = n / sr_m
        if n < self.min_samples:
            raise self._too_short(n, path)
        if window is None:
            X = self.items(y, sr_m, path=path)
            if len(X) == 0:
                raise self._too_short(n, path)
            P = self.forward_items(X)
            bounds = self._item_bounds(len(P), n)
            seg_p = P if len(bounds) == len(P) else P.mean(axis=0, keepdims=True)
        else:
            segs = audio.segment(y, sr_m, window, hop, last="keep")
            segs = [s for i, s in enumerate(segs) if i == 0 or s.samples.shape[-1] >= self.min_samples]
            Xs = [self.items(s.samples, sr_m, path=path) for s in segs]
            keep = [i for i, x in enumerate(Xs) if len(x)]
            if not keep:
                raise self._too_short(n, path)
            P = self.forward_items(np.concatenate([Xs[i] for i in keep]))
            cuts = np.cumsum([len(Xs[i]) for i in keep])[:-1]
            seg_p = np.stack([p.mean(axis=0) for p in np.split(P, cuts)])
            bounds = [(segs[i].start, min(segs[i].end, duration)) for i in keep]
        return self._result(path, seg_p, bounds, duration, smooth, smooth_kind, min_event)

    def _result(self, path: str | None, seg_p: np.ndarray, bounds: Sequence[tuple[float, float]], duration: float,
                smooth: int, smooth_kind: Literal["mean", "median"], min_event: float) -> Prediction:
        """The Prediction from segment probabilities: file mean (unsmoothed), smoothed timeline, events."""
        clip = seg_p.mean(axis=0)
        shown = smooth_probabilities(seg_p, smooth, smooth_kind) if smooth > 1 else seg_p
        bounds = [(round(float(s), 6), round(float(e), 6)) for s, e in bounds]
        segments = [
            SegmentPrediction(s, e, self.labels[int(p.argmax())], self._probabilities(p))
            for (s, e), p in zip(bounds, shown, strict=True)
        ]
        events = merge_events(bounds, shown, self.labels, min_event=min_event)
        return Prediction(path, self.labels[int(clip.argmax())], self._probabilities(clip), float(duration),
                          segments, events)

    def _stream_segments(self, path: str, window: float, hop: float) -> tuple[np.ndarray, list[tuple[float, float]], int]:
        """Segment probabilities, bounds and sample count of a file read block by block.

        The same segments as :func:`sonotype.audio.segment` (``last="keep"``) on the whole
        signal, and the same tail rule as the in-memory path, but only about one window
        plus one block of audio is held at a time.
        """

        sr = self.sample_rate
        win = Windower(sr, window, hop, min_samples=self.min_samples)
        probs: list[np.ndarray] = []
        bounds: list[tuple[float, float]] = []
        pending: list[tuple[np.ndarray, tuple[float, float]]] = []

        def flush() -> None:
            items = [x for x, _ in pending if len(x)]
            if items:
                P = self.forward_items(np.concatenate(items))
                cuts = np.cumsum([len(x) for x in items])[:-1]
                probs.extend(p.mean(axis=0) for p in np.split(P, cuts))
                bounds.extend(b for x, b in pending if len(x))
            pending.clear()

        def add(windows: list) -> None:
            for wd in windows:
                pending.append((self.items(wd.samples, sr, path=path), (wd.start / sr, wd.end / sr)))
                if len(pending) >= _STREAM_BATCH:
                    flush()

        for chunk in audio.stream(path, sr):
            add(win.push(chunk))
        n = win.n
        if n < self.min_samples:
            raise self._too_short(n, path)
        add(win.finish())  # the tail no full window covers, kept at its real length (dropped under one frame)
        flush()
        if not probs:
            raise self._too_short(n, path)
        return np.stack(probs), bounds, n

    def _item_bounds(self, n_items: int, n_samples: int) -> list[tuple[float, float]]:
        """Start/end (s) of each item when items are the model's own windows; else the whole
        analysed signal (the first ``max_duration`` s) as one segment."""
        fc, rep = self.feature_config, self.representation
        sr = self.sample_rate
        if self.backbone is not None:  # one embedding of the first max_seconds
            limit = self.backbone.cfg.max_seconds
            return [(0.0, (n_samples if limit is None else min(n_samples, int(round(limit * sr)))) / sr)]
        if fc.max_samples is not None:
            n_samples = min(n_samples, fc.max_samples)
        end = n_samples / sr
        if rep.kind not in ("windows", "logmel") or not rep.window:
            return [(0.0, end)]

        hop = int(fc.hop_length)
        _, starts = window_frames(fc.n_frames(n_samples), sr, hop, rep)
        if len(starts) != n_items:  # should not happen; fall back to the nominal hop
            step = rep.hop or rep.window
            starts_s = [i * step for i in range(n_items)]
        else:
            starts_s = [f * hop / sr for f in starts]
        return [(s, min(s + rep.window, end)) for s in starts_s]

    def predict_many(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        window: float | None = None,
        hop: float | None = None,
        on_error: Literal["skip", "raise"] = "skip",
        smooth: int = 1,
        smooth_kind: Literal["mean", "median"] = "mean",
        min_event: float = 0.0,
    ) -> list[Prediction | tuple[str, SonotypeError]]:
        """Predict every file (folders are searched recursively for audio files).

        With ``on_error="skip"`` a file that fails gives ``(path, error)`` in its place and
        the rest go on; ``"raise"`` stops at the first error. The other settings are
        :meth:`predict`'s.

        Parameters
        ----------
        paths : iterable of path-like
            Files and folders.
        window, hop, smooth, smooth_kind, min_event
            As in :meth:`predict`.
        on_error : {"skip", "raise"}

        Returns
        -------
        list of Prediction or (str, SonotypeError)
            In the order of the files found.
        """
        if on_error not in ("skip", "raise"):
            raise ParameterError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        out: list[Prediction | tuple[str, SonotypeError]] = []
        for f in expand_paths(paths):
            try:
                out.append(self.predict(f, window=window, hop=hop, smooth=smooth, smooth_kind=smooth_kind,
                                        min_event=min_event))
            except SonotypeError as exc:
                if on_error == "raise":
                    raise
                out.append((str(f), exc))
        return out


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in audio.AUDIO_EXTENSIONS))
        else:
            files.append(p)
    return files


def load_model(path: str | os.PathLike, *, backbone_dirs: Sequence[str | os.PathLike] = ()) -> Classifier:
    """Load a model directory written by :func:`sonotype.inference.modelio.save_model`.

    Only JSON and safetensors are read; nothing from the directory is executed. A model
    on a pretrained backbone reloads it from the recorded folder, or, when that folder
    moved, from the one in ``backbone_dirs`` (``--backbone-dir``), ``$SONOTYPE_BACKBONES``
    or the fetch folder whose encoder digest is the recorded one.

    Parameters
    ----------
    path : path-like
        The model folder (``sonotype train``'s ``RUN_DIR/model`` or ``AudioClassifier.save``), or
        ``"hf://user/name[@revision]"``: downloaded by :func:`sonotype.inference.hub.pull` (commit pinned,
        only JSON and safetensors, digests checked) into the cache first.
    backbone_dirs : sequence of path-like
        Further places to look for a moved backbone.

    Returns
    -------
    Classifier

    Raises
    ------
    ModelError
        Missing or invalid files, unknown format version, weights that do not fit the
        architecture.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> net = build_model("mlp-small", (2,), 2, seed=0)  # untrained: this shows the API, not a result
    >>> path = save_model(tempfile.mkdtemp() + "/model", network=net, labels=["high", "low"],
    ...                   feature_config=fc, representation=RepresentationConfig())
    >>> load_model(path).predict(np.zeros(8000, np.float32), 8000).duration
    1.0
    """

    root = Path(local_model(path))  # hf://user/name[@revision]: pulled first (JSON + safetensors only)
    meta, tensors = read_model_dir(root)
    backbone = None
    if meta["backbone"] is not None:  # reload the recorded backbone; refused when it differs

        backbone = featurizer_for(meta, where=str(root / "model.json"), search=tuple(backbone_dirs))
    arch = meta["architecture"]
    try:
        if backbone is not None and backbone.waveform_samples is not None:  # fine-tuned backbone + head
            net = network_for(arch, backbone)
        else:
            net = build_model(arch["name"], tuple(arch["input_shape"]), arch["n_classes"], **arch["params"])
        net.load_state_dict(tensors["network"], strict=True)
    except (SonotypeError, RuntimeError, TypeError, ValueError) as exc:
        if "net" in locals():
            _check_output_width(root, net, tensors["network"], meta["labels"])  # the clearer message when it is that
        raise ModelError(f"{root / WEIGHTS_FILE}: weights do not fit architecture {arch['name']!r} ({exc})") from None
    scaler = None
    if meta["scaler"] is not None:
        scaler = _scaler(root, meta["scaler"], tensors["scaler"])
        _check_scaler_width(root, scaler, arch)
    extra = meta.get("extra") or {}
    normalizer = None
    if extra.get("normalize"):  # JSON statistics, never pickled

        normalizer = Normalizer.from_dict(extra["normalize"])
    return Classifier(
        normalizer=normalizer,
        network=net,
        labels=meta["labels"],
        # a backbone model stores no frame settings (null): the defaults are placeholders, never used
        feature_config=FeatureConfig.from_dict(meta["features"] or {}),
        representation=RepresentationConfig.from_dict(meta["representation"] or {}),
        architecture=arch,
        scaler=scaler,
        metrics=meta["metrics"],
        model_id=f"{_model_name(root)}-{meta['files'][WEIGHTS_FILE][:8]}",
        meta=meta,
        backbone=backbone,
    )


def _model_name(root: Path) -> str:
    """The directory's name; for a run's ``RUN_DIR/model`` the run's name, which says more."""
    r = root.resolve()
    return r.parent.name if r.name == "model" and r.parent.name else r.name


def _check_output_width(root: Path, net: torch.nn.Module, state: dict[str, torch.Tensor], labels: list[str]) -> None:
    """Raise :class:`ModelError` when the weights' only disagreement with ``net`` is the number of classes.

    ``architecture.n_classes`` equals the number of labels (checked with the schema); weights
    whose output layer has another width mean ``model.json``'s labels are not the ones the
    network was trained with.
    """
    want = net.state_dict()
    bad = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    widths = {int(state[k].shape[0]) for k in bad if state[k].ndim == want[k].ndim and state[k].ndim >= 1
              and int(want[k].shape[0]) == len(labels) and tuple(state[k].shape[1:]) == tuple(want[k].shape[1:])}
    if bad and len(widths) == 1 and len(bad) == sum(int(want[k].shape[0]) == len(labels) for k in bad):
        raise ModelError(f"{root / MODEL_JSON}: {len(labels)} labels {labels}, but the network in {WEIGHTS_FILE} "
                         f"outputs {widths.pop()} classes")


def _check_scaler_width(root: Path, scaler: Any, arch: dict[str, Any]) -> None:
    """The scaler's statistics must have one value per input feature (``input_shape`` at its feature axis)."""
    shape = list(arch["input_shape"])
    ax = scaler.feature_axis if scaler.feature_axis < 0 else scaler.feature_axis - 1  # the item has no batch axis
    n = int(np.asarray(scaler.mean_).size)
    if not -len(shape) <= ax < len(shape):
        raise ModelError(f"{root / MODEL_JSON}: scaler feature_axis {scaler.feature_axis} does not fit "
                         f"architecture.input_shape {shape}")
    if n != shape[ax]:
        raise ModelError(f"{root / MODEL_JSON}: the scaler holds statistics of {n} features but "
                         f"architecture.input_shape {shape} has {shape[ax]} input features")


def _scaler(root: Path, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None) -> Any:
    """Rebuild the Standardizer from its safetensors file; the JSON copy must agree with it."""

    try:
        scaler = Standardizer.from_tensors({k: v.numpy() for k, v in (tensors or {}).items()},
                                           feature_axis=int(state.get("feature_axis", -1)))
        same = all(
            np.allclose(np.asarray(state[k], dtype=np.float64), getattr(scaler, f"{k}_"), rtol=1e-6, atol=0)
            for k in ("mean", "scale") if k in state
        )
    except (SonotypeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{root}: invalid scaler ({exc})") from None
    if not same:
        raise ModelError(f"{root}: the scaler statistics in model.json and {SCALER_FILE} disagree")
    return scaler


_BATCH_NAMES = ("BATCH_FIXED_COLUMNS", "batch_header",
                "read_batch")
