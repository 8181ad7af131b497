"""``sonotype evaluate``: a saved model scored on a labelled corpus, with the same metrics as a run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from sonotype.corpora.ops import load_manifest
from sonotype.evaluation.metrics import cross_corpus_labels, label_case_map, metrics, restrict_proba, vote
from sonotype.inference.predict import load_model
from sonotype.items.build import build_items
from sonotype.items.normalize import normalize_items
from sonotype.pipeline import checks

__all__ = ["evaluate_on_corpus"]


def evaluate_on_corpus(
    model_dir: str | Path, cc: Any, *, progress: bool = False, jobs: int = 1, cache_dir: str | None = None
) -> dict[str, Any]:
    """Evaluate a saved model on another corpus, on the labels both share (cross-corpus).

    Parameters
    ----------
    model_dir : str or Path
        A saved model folder (``sonotype train``, a run's ``model/``, ``AudioClassifier.save``).
    cc : CorpusConfig
        The corpus to test on (``name``, ``root``, ``options``, ``ops``; ``title`` names the
        evaluation in reports, default ``on NAME``).
    progress : bool
        Show the extraction progress bar.
    jobs : int
        Feature-extraction processes.
    cache_dir : str, optional
        Feature cache folder.

    Returns
    -------
    dict
        The clip-level metrics of :func:`metrics` on the kept labels, plus ``corpus``,
        ``title``, ``protocol`` (one sentence: what was trained where, what was scored,
        chance), ``trained_on``, ``chance``, the labels kept and dropped on either side,
        ``n_test_clips``, ``n_skipped``, ``normalized_by`` (a model trained with
        ``normalize`` is standardised by the new corpus's own speakers) and
        ``labels_matched_by_case`` (corpus label -> the model's, for labels that differ
        only by case, ``Angry``/``angry``: matched, with a warning, not refused).

    Examples
    --------
    >>> from sonotype.pipeline.config import CorpusConfig
    >>> m = evaluate_on_corpus("runs/tess/model", CorpusConfig(name="savee", root="data/savee"))  # doctest: +SKIP
    >>> m["balanced_accuracy"], m["labels_kept"]  # doctest: +SKIP
    (0.21, ['angry', 'disgust', 'fearful', 'happy', 'neutral', 'sad', 'surprised'])
    """

    clf = load_model(model_dir)
    manifest = load_manifest(cc)
    checks.check_labels(manifest.labels, what=f"corpus {cc.name!r} at {cc.root} after its label operations")
    by_case = label_case_map(clf.labels, manifest.labels)
    if by_case:  # folder corpora name classes after folders (Angry), models often say angry
        warnings.warn(f"{cc.name}: label(s) matched to the model's ignoring case: "
                      + ", ".join(f"{a!r} -> {b!r}" for a, b in by_case.items()), UserWarning, stacklevel=2)
        manifest = manifest.replace_clips(c.with_label(by_case.get(c.label, c.label)) for c in manifest.clips)
    kept, dropped_model, dropped_corpus = cross_corpus_labels(clf.labels, manifest.labels)
    clips = [c for c in manifest.clips if c.label in kept]
    fz = clf.backbone  # None, or the saved model's encoder featurizer (one encoder or a fusion)
    seconds = None if fz is None or fz.waveform_samples is None else fz.waveform_samples / fz.sample_rate
    ds = build_items(clips, features=clf.feature_config, representation=clf.representation,
                     backbone=None if fz is None else fz.cfg, loaded=fz, waveform_seconds=seconds,
                     cache_dir=cache_dir, jobs=jobs, progress=progress)
    X = ds.X
    if getattr(clf, "normalizer", None) is not None:  # the model's rule, with this corpus's own statistics

        X = normalize_items(clf.normalizer, X, ds.item_clip, ds.clips)
    proba = restrict_proba(clf.forward_items(X), clf.labels, kept)
    clip_ids, clip_proba = vote(proba, ds.item_clip)
    y_true = [ds.clips[c].label for c in clip_ids]
    y_pred = [kept[i] for i in clip_proba.argmax(1)]
    m = metrics(y_true, y_pred, kept)
    trained = _trained_on(clf, model_dir)
    chance = _chance(y_true, kept)
    m.update({
        "corpus": cc.name,
        "title": cc.title or f"on {cc.name}",
        "root": cc.root,
        "protocol": _cross_protocol(trained, cc.name, len(clip_ids), kept, dropped_model, dropped_corpus,
                                    len(manifest.clips) - len(clips), chance, by_case),
        "trained_on": trained,
        "chance": chance,
        "labels_kept": kept,
        "labels_dropped_model": dropped_model,
        "labels_dropped_corpus": dropped_corpus,
        "labels_matched_by_case": by_case,
        "n_test_clips": len(clip_ids),
        "n_skipped": len(manifest.skipped) + len(ds.skipped),
        "normalized_by": getattr(getattr(clf, "normalizer", None), "by", None),  # that corpus's own statistics
    })
    return m


def _trained_on(clf: Any, model_dir: str | Path) -> dict[str, Any]:
    """Which run and corpus a saved model comes from (its model.json), for cross-corpus records."""
    headline = clf.metrics or {}
    extra = clf.meta.get("extra") or {}
    return {
        "model": str(Path(model_dir).resolve()),
        "model_id": clf.model_id,
        "recipe": extra.get("recipe") or headline.get("recipe"),
        "corpus": headline.get("corpus"),
        "protocol": extra.get("protocol") or headline.get("protocol"),
        "labels": list(clf.labels),
    }


def _chance(y_true: list[str], kept: list[str]) -> dict[str, Any]:
    """Chance level on the kept labels: balanced accuracy 1/k; accuracy of always saying the commonest label."""
    counts = {lab: y_true.count(lab) for lab in kept}
    majority = max(kept, key=lambda lab: counts[lab])
    return {
        "balanced_accuracy": 1.0 / len(kept),
        "accuracy": counts[majority] / max(len(y_true), 1),
        "majority_label": majority,
    }


def _cross_protocol(
    trained: dict[str, Any], corpus: str, n_clips: int, kept: list[str], dropped_model: list[str],
    dropped_corpus: list[str], n_left_out: int, chance: dict[str, Any], by_case: dict[str, str] | None = None,
) -> str:
    """The cross-corpus sentence for reports: what was trained where, what was scored, and chance."""
    origin = f"model {trained['model_id']} trained on {trained['corpus'] or 'an unrecorded corpus'}"
    if trained.get("recipe"):
        origin += f" (run {trained['recipe']!r})"
    dropped = []
    if dropped_model:
        dropped.append(f"model labels with no clip in {corpus} {dropped_model}")
    if dropped_corpus:
        dropped.append(f"{corpus} labels the model lacks {dropped_corpus} ({n_left_out} clips left out)")
    return (
        f"cross-corpus: {origin}, tested on all {n_clips} clips of {corpus} on the {len(kept)} shared labels {kept}"
        + (f" ({corpus}'s {', '.join(sorted(by_case))} matched ignoring case)" if by_case else "")
        + (f"; dropped: {'; '.join(dropped)}" if dropped else "; nothing dropped")
        + f"; chance: balanced accuracy {chance['balanced_accuracy']:.3f}, accuracy {chance['accuracy']:.3f}"
        f" (always {chance['majority_label']!r})"
    )
