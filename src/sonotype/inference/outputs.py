"""What ``predict`` gives back for a list of files: predictions, and the files written from them.

One per-file CSV format for every path (``predict --csv``, ``predict --out`` batches,
:func:`sonotype.inference.batch.predict_files`): :func:`~sonotype.inference.batch.batch_header`
columns, one row per file. Segment and event rows, Audacity label tracks and WebVTT cues
come from the same :class:`~sonotype.inference.predict.Prediction` objects.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.audio import AUDIO_EXTENSIONS
from sonotype.errors import AudioError, ParameterError, SonotypeError
from sonotype.inference.batch import batch_header, file_row
from sonotype.inference.events import audacity_labels, merge_events, webvtt
from sonotype.inference.events import smooth as smooth_probabilities
from sonotype.inference.export import export_onnx, load_onnx_classifier
from sonotype.inference.predict import Classifier, Prediction, expand_paths, load_model
from sonotype.utils.io import atomic_write_text, file_digest

__all__ = ["CSV_ROWS", "RUNTIMES", "audio_files", "check_predict_settings", "load_for_predict", "predict_paths",
           "prediction_csv", "speaker_note", "write_event_files"]

RUNTIMES = ("torch", "onnx")
CSV_ROWS = ("file", "segments", "events")


def audio_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The audio files of ``inputs`` (files as given, folders searched as
    :func:`~sonotype.inference.predict.expand_paths` searches them); a missing input or a folder
    without audio is an error before any work."""
    files: list[Path] = []
    for p in map(Path, inputs):
        if not p.exists():
            raise AudioError(p, "no such file or folder")
        found = expand_paths([p])
        if p.is_dir() and not found:
            raise ParameterError(f"{p}: no audio file in this folder (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        files.extend(found)
    return files


def check_predict_settings(runtime: str, csv_rows: str, smooth: int, smooth_kind: str, min_event: float) -> None:
    """A bad ``predict`` setting fails before the model loads."""
    if runtime not in RUNTIMES:
        raise ParameterError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
    if csv_rows not in CSV_ROWS:
        raise ParameterError(f"--csv-rows must be one of {CSV_ROWS}, got {csv_rows!r}")
    smooth_probabilities(np.zeros((0, 1)), smooth, smooth_kind)  # type: ignore[arg-type]
    merge_events([], np.zeros((0, 1)), ["x"], min_event=min_event)


def load_for_predict(model: str | os.PathLike, runtime: str = "torch", onnx_path: str | os.PathLike | None = None) -> Any:
    """The classifier of ``predict``: the torch model, or its ONNX graph (exported when missing)."""
    if runtime == "onnx":
        onnx_file = Path(onnx_path) if onnx_path else Path(model) / "model.onnx"
        if not onnx_file.exists():
            export_onnx(model, onnx_file)
        return load_onnx_classifier(model, onnx_file)
    return load_model(model)


def speaker_note(clf: Any, n_files: int) -> str | None:
    """The note for a speaker-normalised model classifying several files one by one (None otherwise)."""
    norm = getattr(clf, "normalizer", None)
    if norm is None or n_files < norm.min_clips:  # one clip alone cannot give statistics anyway
        return None
    return (f"this model standardises each {norm.by}'s clips together; each file is classified alone here, with the "
            f"training {norm.by}s' average statistics. If these files are one {norm.by}'s, --same-speaker "
            "standardises them together.")


def predict_paths(clf: Classifier | Any, files: Sequence[str | os.PathLike], *, same_speaker: bool = False,
                  **settings: Any) -> tuple[list[Prediction], list[dict[str, str]]]:
    """Each file's prediction, and the files that failed (``{"path", "error"}``; the others go on).

    ``same_speaker`` classifies the files as one speaker's clips, standardised together
    (:meth:`~sonotype.inference.predict.Classifier.predict_group`); ``settings`` go to
    :meth:`~sonotype.inference.predict.Classifier.predict`.
    """
    if same_speaker:
        if not hasattr(clf, "predict_group"):
            raise ParameterError("--same-speaker needs the torch runtime")
        if settings.get("window") is not None or settings.get("smooth", 1) != 1 or settings.get("min_event"):
            raise ParameterError("--same-speaker classifies each file whole: leave out --window, --smooth and --min-event")
        return clf.predict_group(list(files)), []
    results, errors = [], []
    for f in files:
        try:
            results.append(clf.predict(f, **settings))
        except SonotypeError as exc:  # reported per file, the run goes on
            errors.append({"path": str(f), "error": str(exc)})
    return results, errors


def prediction_csv(results: Sequence[Prediction], clf: Classifier | Any, rows: str = "file") -> str:
    """The ``--csv`` text: per file (the batch columns), per segment or per event."""
    if rows not in CSV_ROWS:
        raise ParameterError(f"rows must be one of {CSV_ROWS}, got {rows!r}")
    labels = list(clf.labels)
    buf = io.StringIO()
    w = csv.writer(buf)
    probs = [f"p_{lab}" for lab in labels]
    if rows == "file":
        w.writerow(batch_header(labels))
        for r in results:
            w.writerow(file_row(clf.model_id, labels, r, file_digest(r.path) if r.path else ""))
    elif rows == "segments":
        w.writerow(["path", "start", "end", "label", *probs])
        for r in results:
            for s in r.segments:
                w.writerow([r.path, f"{s.start:.6f}", f"{s.end:.6f}", s.label,
                            *[f"{s.probabilities[lab]:.6f}" for lab in labels]])
    else:
        w.writerow(["path", "start", "end", "label", "probability"])
        for r in results:
            for e in r.events:
                w.writerow([r.path, f"{e.start:.6f}", f"{e.end:.6f}", e.label, f"{e.probability:.6f}"])
    return buf.getvalue()


def _targets(results: Sequence[Prediction], dest: Path, ext: str, *, single: bool) -> list[tuple[Prediction, Path]]:
    """(result, path) pairs: ``dest`` itself for one input file, else ``dest/STEM.ext`` per file."""
    if single:
        return [(r, dest) for r in results]
    dest.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    pairs = []
    for r in results:
        stem = Path(str(r.path)).stem
        if stem in seen:
            raise ParameterError(f"{seen[stem]} and {r.path} would both write {dest / (stem + ext)}; "
                                 "predict them separately")
        seen[stem] = str(r.path)
        pairs.append((r, dest / f"{stem}{ext}"))
    return pairs


def write_event_files(results: Sequence[Prediction], labels_out: Path | None, vtt_out: Path | None, *,
                      single: bool) -> None:
    """``--labels`` (Audacity) and ``--vtt`` (WebVTT) event files: one file, or a folder of one per input."""
    for dest, ext, fmt in ((labels_out, ".txt", audacity_labels), (vtt_out, ".vtt", webvtt)):
        if dest:
            for r, target in _targets(results, Path(dest), ext, single=single):
                atomic_write_text(target, fmt(r.events))
