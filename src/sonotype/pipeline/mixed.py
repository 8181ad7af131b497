"""Several corpora in one run: one manifest over their union, labels in one vocabulary.

A run config's ``corpus`` may be a list of entries ``{name, root, options, ops, optional}``
(:func:`mixed_corpus` turns the list into one ``mixed`` corpus section). Each entry is read by
its own loader at its own sample rate (every clip is resampled to the model's rate when its
features or embeddings are made, exactly as for one corpus), its labels are brought to the
unified emotion vocabulary (:func:`unify_label`: case-insensitive, with the common synonyms;
``options.labels`` maps anything else), its ``ops`` run on the unified labels, and every
clip's group becomes ``corpus:speaker``, so no speaker of one corpus is confused with a
speaker of another and a group split never puts a speaker on both sides.

Which labels are kept: the run's top-level ``labels:`` list, or else the labels every
present corpus has (the intersection; stated in the output and in ``metrics.json``).
An entry with ``optional: true`` whose root is missing is skipped with a note, not an
error, so one recipe serves machines that hold only some of the corpora.

Balancing (``mix.balance``): ``none``; ``undersample`` (on every training side, each corpus
is cut to the clip count of the smallest, class proportions kept, seeded); ``class_weights``
(inverse-frequency class weights over the union's training side, ``train.class_weights``).

The corpus x corpus table (:func:`corpus_matrix`) trains one model per single corpus (all
its clips, validation carved by speaker), tests it on every other corpus and, on the
diagonal, scores the corpus against itself by speaker folds; a ``locos`` run adds the row
"all other corpora". :func:`per_corpus` splits any protocol's pooled test predictions by
corpus.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.corpora.base import Clip, Manifest, Skipped, load_corpus
from sonotype.corpora.emotions import CORPUS_ONLY, EMOTIONS
from sonotype.corpora.ops import apply_ops
from sonotype.errors import ConfigError, CorpusError
from sonotype.splits.split import corpus_of

__all__ = [
    "BALANCE",
    "MIXED",
    "MixConfig",
    "corpus_matrix",
    "corpus_of",
    "load_mixed",
    "mixed_corpus",
    "parse_corpus_args",
    "per_corpus",
    "run_manifest",
    "undersample_corpora",
    "unify_label",
]

MIXED = "mixed"
BALANCE = ("none", "undersample", "class_weights")

# Spellings met in folder names and corpus releases -> the unified emotion name.
SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "ang": "angry", "mad": "angry", "rage": "angry",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy", "hap": "happy", "glad": "happy",
    "sad": "sad", "sadness": "sad", "sorrow": "sad",
    "fear": "fearful", "fearful": "fearful", "afraid": "fearful", "scared": "fearful", "fea": "fearful",
    "disgust": "disgust", "disgusted": "disgust", "dis": "disgust",
    "surprise": "surprised", "surprised": "surprised", "ps": "surprised", "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised", "sur": "surprised",
    "neutral": "neutral", "neu": "neutral", "neutrality": "neutral",
    "calm": "calm", "boredom": "boredom", "bored": "boredom", "positive": "positive", "other": "other",
}  # fmt: skip


@dataclass
class MixConfig:
    """How a mixed run balances its corpora and whether it fills the corpus x corpus table.

    ``balance``: ``none`` | ``undersample`` (each corpus to the smallest, on every training
    side) | ``class_weights`` (inverse class frequencies over the union). ``matrix`` (default
    true) trains one extra model per corpus for the corpus x corpus table of the report,
    plus speaker folds within each corpus for its diagonal.
    """

    balance: str = "none"
    matrix: bool = True

    def __post_init__(self) -> None:
        if self.balance not in BALANCE:
            raise ConfigError(f"mix.balance must be one of {', '.join(BALANCE)}, got {self.balance!r}")
        if not isinstance(self.matrix, bool):
            raise ConfigError(f"mix.matrix must be true or false, got {self.matrix!r}")


def unify_label(label: str, mapping: Mapping[str, str] | None = None) -> str:
    """The unified name of a corpus label: ``mapping`` first (exact, then case-insensitive),
    then the synonyms (``Angry``, ``anger`` -> ``angry``; ``happiness``, ``joy`` -> ``happy``;
    ``sadness`` -> ``sad``; ``fear`` -> ``fearful`` ...); any other label is kept as it is.

    Examples
    --------
    >>> unify_label("Anger"), unify_label("Pleasant Surprise"), unify_label("tone")
    ('angry', 'surprised', 'tone')
    >>> unify_label("W", {"W": "angry"})
    'angry'
    """
    mapping = mapping or {}
    if label in mapping:
        return str(mapping[label])
    lowered = {str(k).lower(): v for k, v in mapping.items()}
    key = re.sub(r"[\s\-]+", "_", str(label).strip().lower())
    if key in lowered:
        return str(lowered[key])
    return SYNONYMS.get(key, label)


def mixed_corpus(entries: list[Any]) -> dict[str, Any]:
    """The corpus section that a YAML list of corpus entries stands for."""
    return {"name": MIXED, "corpora": entries}


def parse_corpus_args(values: Sequence[str]) -> list[dict[str, Any]]:
    """``--corpus NAME=ROOT`` values (repeatable) -> corpus entries ``{name, root}``."""
    out = []
    for v in values:
        name, sep, root = v.partition("=")
        if not sep or not name.strip() or not root.strip():
            raise ConfigError(f"--corpus {v!r}: with several corpora each is NAME=ROOT, e.g. ravdess=~/data/ravdess")
        out.append({"name": name.strip(), "root": root.strip()})
    names = [e["name"] for e in out]
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise ConfigError(f"--corpus names {dup} more than once; give each corpus once")
    return out


def _label(lab: str, order: dict[str, int]) -> tuple[int, str]:
    return order.get(lab, len(order)), lab


def _sorted_labels(labels: Iterable[str]) -> list[str]:
    order = {name: i for i, name in enumerate(EMOTIONS + CORPUS_ONLY)}
    return sorted(set(labels), key=lambda x: _label(x, order))


def load_mixed(
    entries: Sequence[Any], *, labels: Sequence[str] | None = None, ops: Sequence[Mapping[str, Any]] = (),
    notes: list[str] | None = None,
) -> tuple[Manifest, dict[str, Any]]:
    """Read every corpus entry and return their union (groups ``corpus:speaker``) and what was done.

    Parameters
    ----------
    entries : sequence of CorpusConfig or dict
        ``name`` (loader), ``root``, ``options`` (the loader's, plus ``labels``: a map of
        corpus labels to unified ones), ``ops`` (label operations on the unified labels),
        ``optional`` (skip with a note when the root is absent).
    labels : sequence of str, optional
        The labels to keep; default the intersection of the present corpora's labels.
    ops : sequence of mapping
        Label operations on the union, after the labels are chosen.
    notes : list, optional
        Receives one sentence per skipped corpus and per dropped label set.

    Returns
    -------
    (Manifest, dict)
        The union (corpus ``mixed``) and ``{corpora, labels, labels_source, labels_dropped}``.
    """
    notes = notes if notes is not None else []
    parts: list[tuple[str, Manifest, Any]] = []
    record: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, e in enumerate(entries):
        e = _entry(e, i)
        root = os.path.expandvars(str(e["root"])) if e["root"] else None  # recipes say $SONOTYPE_DATA/ravdess
        if not root or not Path(str(root)).expanduser().is_dir():
            why = "no root given" if not root else f"root {root} not found"
            if root and "$" in root:
                why += " (an environment variable in it is not set)"
            if e["optional"]:
                notes.append(f"corpus {e['name']!r} skipped: {why} (optional)")
                record.append({"name": e["name"], "root": root, "present": False, "note": why})
                continue
            if not root:
                raise ConfigError(f"corpus.corpora[{i}] ({e['name']!r}) needs a root folder "
                                  f"(--corpus {e['name']}=ROOT, or optional: true to skip it when absent)")
            raise CorpusError(f"corpus {e['name']!r}: {why} (set optional: true to skip it when absent)")
        options = dict(e["options"])
        mapping = options.pop("labels", None) or {}
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"corpus.corpora[{i}].options.labels must map corpus labels to unified ones, got {mapping!r}")
        m = load_corpus(e["name"], root, **options)
        key = options.get("corpus") or (m.corpus if m.corpus and m.corpus != "folder" else e["name"])
        if key in seen:
            raise ConfigError(f"corpus {key!r} appears twice in the mixed run; give a folder corpus its own name "
                              "with options.corpus")
        seen.add(key)
        original = m.labels
        m = m.replace_clips([c.with_label(unify_label(c.label, mapping)) for c in m.clips])
        if e["ops"]:
            m = apply_ops(m, e["ops"])
        clips = [replace(c, group=f"{key}:{c.group}", corpus=key, meta={**c.meta, "speaker": c.group})
                 for c in m.clips]
        if not clips:
            raise CorpusError(f"corpus {key!r} at {root} has no usable clips after its label operations")
        parts.append((key, Manifest(key, m.root, clips, m.skipped), e))
        record.append({"name": key, "loader": e["name"], "root": str(m.root), "present": True,
                       "n_clips": len(clips), "labels_read": original,
                       "labels": dict(sorted(Counter(c.label for c in clips).items()))})
    if not parts:
        raise CorpusError("mixed run: none of its corpora is present (" +
                          "; ".join(f"{r['name']}: {r['note']}" for r in record) + ")")
    per = {key: set(man.labels) for key, man, _ in parts}
    kept, source = _kept_labels(per, labels, notes)
    dropped = {key: _sorted_labels(have - set(kept)) for key, have in per.items() if have - set(kept)}
    notes.append(f"labels kept ({'as given' if source == 'given' else 'those every corpus has'}): {kept}"
                 + (f"; dropped: {dropped}" if dropped else ""))
    clips: list[Clip] = []
    skipped: list[Skipped] = []
    for (key, man, _), rec in zip(parts, [r for r in record if r["present"]], strict=True):
        rec["n_clips_read"] = rec["n_clips"]
        rec["n_clips"] = sum(c.label in kept for c in man.clips)
        rec["labels"] = {lab: n for lab, n in rec["labels"].items() if lab in kept}
        clips.extend(c for c in man.clips if c.label in kept)
        skipped.extend(man.skipped)
        skipped.extend(Skipped(c.clip_id, f"mixed run: label {c.label!r} of {key} not kept") for c in man.clips
                       if c.label not in kept)
    union = Manifest(MIXED, "", clips, skipped)
    if ops:
        union = apply_ops(union, list(ops))
    info = {"corpora": record, "labels": kept, "labels_source": source, "labels_dropped": dropped,
            "notes": list(notes)}
    return union, info


def _kept_labels(per: dict[str, set[str]], labels: Sequence[str] | None, notes: list[str]) -> tuple[list[str], str]:
    """The labels a mixed run keeps, and where they came from: ``given`` (each must be in some
    corpus; a corpus lacking one is noted) or the ``intersection`` of the corpora's labels."""
    if labels:
        kept = [str(x) for x in labels]
        unknown = sorted(set(kept) - set().union(*per.values()))
        if unknown:
            raise ConfigError(f"labels {unknown} are in no corpus of the run; the corpora have "
                              + "; ".join(f"{k}: {_sorted_labels(v)}" for k, v in per.items()))
        for key, have in per.items():
            missing = sorted(set(kept) - have)
            if missing:
                notes.append(f"corpus {key!r} has no clip of {missing}")
        return kept, "given"
    kept = _sorted_labels(set.intersection(*per.values()))
    if len(kept) < 2:
        raise ConfigError("the corpora share fewer than two labels (" +
                          "; ".join(f"{k}: {_sorted_labels(v)}" for k, v in per.items()) +
                          "); map them with options.labels or list the labels to keep with labels:")
    return kept, "intersection"


def _entry(e: Any, i: int) -> dict[str, Any]:
    d = e if isinstance(e, Mapping) else {k: getattr(e, k) for k in ("name", "root", "options", "ops", "optional")}
    if not d.get("name"):
        raise ConfigError(f"corpus.corpora[{i}] needs a name (the corpus loader)")
    if d.get("corpora"):
        raise ConfigError(f"corpus.corpora[{i}] ({d['name']!r}) holds corpora itself; list every corpus once, flat")
    return {"name": str(d["name"]), "root": d.get("root"), "options": dict(d.get("options") or {}),
            "ops": list(d.get("ops") or []), "optional": bool(d.get("optional", False))}


def run_manifest(cfg: Any, console: Any = None) -> tuple[Manifest, dict[str, Any] | None]:
    """The manifest of a run: one corpus (then the top-level ``labels`` are kept) or the union of several.

    Returns the manifest and, for a mixed run, what :func:`load_mixed` reports (else None).
    """
    cc = cfg.corpus
    labels = getattr(cfg, "labels", None)
    if getattr(cc, "corpora", None):
        notes: list[str] = []
        manifest, info = load_mixed(cc.corpora, labels=labels, ops=cc.ops, notes=notes)
        if console is not None:
            for n in notes:
                console.print(f"[yellow]note[/] {n}", highlight=False)
            console.print("corpora: " + ", ".join(f"{r['name']} {r['n_clips']} clips" for r in info["corpora"]
                                                 if r["present"]), highlight=False)
        return manifest, info
    from sonotype.pipeline.experiment import load_manifest

    manifest = load_manifest(cc)
    if labels:
        from sonotype.corpora.ops import keep_labels

        manifest = keep_labels(manifest, labels)
    return manifest, None


def resolve(cfg: Any) -> Any:
    """The run config with ``mix.balance: class_weights`` turned into the training setting it means."""
    mix = getattr(cfg, "mix", None)
    if mix is not None and mix.balance == "class_weights" and not cfg.train.class_weights:
        return replace(cfg, train=replace(cfg.train, class_weights=True))
    return cfg


def undersample_corpora(train: np.ndarray, clips: Sequence[Clip], *, seed: int = 0) -> np.ndarray:
    """Cut every corpus of a training side to the clip count of the smallest, keeping class shares.

    Each corpus ``c`` with ``n_c > n_min`` keeps ``round(n_min * n_{c,k} / n_c)`` clips of class
    ``k`` (at least one), drawn without replacement from a generator seeded by ``seed`` and
    the corpus name. Returns the kept clip indices, sorted.
    """
    train = np.asarray(train, dtype=np.int64)
    by_corpus: dict[str, list[int]] = {}
    for i in train.tolist():
        by_corpus.setdefault(clips[i].corpus or corpus_of(clips[i].group), []).append(i)
    if len(by_corpus) < 2:
        return np.sort(train)
    n_min = min(len(v) for v in by_corpus.values())
    kept: list[int] = []
    for name, idx in sorted(by_corpus.items()):
        if len(idx) == n_min:
            kept.extend(idx)
            continue
        rng = np.random.default_rng([int(seed), *name.encode()])
        by_class: dict[str, list[int]] = {}
        for i in idx:
            by_class.setdefault(clips[i].label, []).append(i)
        for lab in sorted(by_class):
            members = by_class[lab]
            take = max(1, int(round(n_min * len(members) / len(idx))))
            kept.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return np.sort(np.asarray(kept, dtype=np.int64))


def balanced_train(cfg: Any, clips: Sequence[Clip], train: np.ndarray) -> np.ndarray:
    """A training side after ``mix.balance`` (only ``undersample`` changes which clips train)."""
    mix = getattr(cfg, "mix", None)
    if mix is None or mix.balance != "undersample" or not len(train):
        return train
    return undersample_corpora(train, clips, seed=cfg.seed)


def _scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    present = [lab for lab in labels if lab in set(y_true)]
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "n_clips": len(y_true),
        "chance": 1.0 / max(len(present), 1),
    }


def per_corpus(clip_corpus: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str],
               labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Balanced accuracy, accuracy, macro-F1, clips and chance (1/k of its labels) per test corpus."""
    out = {}
    cc = np.asarray(clip_corpus, dtype=object)
    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    for name in sorted(set(cc.tolist())):
        sel = cc == name
        out[name] = _scores(yt[sel].tolist(), yp[sel].tolist(), labels)
    return out


TrainFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def corpus_matrix(
    clips: Sequence[Clip], labels: Sequence[str], train_predict: TrainFn, *, val_size: float, seed: int,
    within_folds: int = 4, locos: Mapping[str, dict[str, Any]] | None = None, progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The corpus x corpus table: balanced accuracy of a model trained on the row's corpora on the column's.

    ``train_predict(train, val, test)`` (clip indices) trains on ``train`` (early stopping on
    ``val``) and returns the predicted label index of every ``test`` clip. Off the diagonal a
    row trains on all of one corpus (validation: ``val_size`` of its speakers); the diagonal
    is that corpus scored by its own speaker folds (``min(within_folds, speakers)`` folds,
    within the corpus only). ``locos`` (per test corpus, from a ``locos`` run) adds the row
    ``all others``.
    """
    from sonotype.splits.split import ProtocolConfig, _carve_val, make_splits

    corp = np.asarray([c.corpus or corpus_of(c.group) for c in clips], dtype=object)
    y = np.asarray([c.label for c in clips], dtype=object)
    g = np.asarray([c.group for c in clips], dtype=object)
    names = sorted(set(corp.tolist()))
    rows: dict[str, dict[str, Any]] = {}
    for a in names:
        ia = np.flatnonzero(corp == a)
        row: dict[str, Any] = {}
        if progress:
            progress(f"corpus table: training on {a} ({len(ia)} clips)")
        tr, va = _carve_val(ia, y, g, ProtocolConfig(name="holdout", val_size=val_size, seed=seed), 0, grouped=True)
        others = np.flatnonzero(corp != a)
        pred = train_predict(tr, va, others)
        for b in names:
            if b == a:
                continue
            sel = corp[others] == b
            row[b] = _scores(y[others][sel].tolist(), [labels[k] for k in pred[sel]], labels)
        n_groups = len(set(g[ia].tolist()))
        k = min(within_folds, n_groups)
        if k >= 2:
            proto = ProtocolConfig(name="kfold", k=k, val_size=val_size, seed=seed)
            true, got = [], []
            try:
                folds = make_splits(y[ia].tolist(), g[ia].tolist(), proto)
            except Exception as exc:  # too few speakers holding a class: no diagonal, said so
                row[a] = {"skipped": str(exc)}
                folds = []
            for s in folds:
                p = train_predict(ia[s.train], ia[s.val], ia[s.test])
                true.extend(y[ia[s.test]].tolist())
                got.extend(labels[k_] for k_ in p)
            if folds:
                row[a] = {**_scores(true, got, labels), "protocol": f"{k}-fold by speaker within {a}"}
        rows[a] = row
    out: dict[str, Any] = {"train_sets": list(rows), "test_corpora": names, "rows": rows,
                           "text": "rows: training set; columns: test corpus; cells: balanced accuracy (chance 1/k); "
                                   "diagonal: speaker folds within the corpus"}
    if locos:
        rows["all others"] = {b: dict(v) for b, v in locos.items()}
        out["train_sets"] = list(rows)
        out["mixed_vs_single"] = mixed_vs_single(rows, names)
    return out


def mixed_vs_single(rows: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per left-out corpus: the mixed model (``all others``) against the best single-corpus model on it."""
    out = {}
    for b in names:
        mixed = rows.get("all others", {}).get(b)
        singles = [(a, rows[a][b]["balanced_accuracy"]) for a in names
                   if a != b and "balanced_accuracy" in rows.get(a, {}).get(b, {})]
        if not mixed or not singles:
            continue
        best, v = max(singles, key=lambda t: t[1])
        out[b] = {"mixed": mixed["balanced_accuracy"], "best_single": best, "best_single_score": v,
                  "beats": bool(mixed["balanced_accuracy"] > v),
                  "text": f"{b}: mixed {mixed['balanced_accuracy']:.3f} "
                          f"{'beats' if mixed['balanced_accuracy'] > v else 'does NOT beat'} the best single corpus "
                          f"({best}, {v:.3f})"}
    return out


def _fold_predictions(ds: Any, labels: Sequence[str], outcomes: Sequence[Any]) -> list[tuple[str, list[int], list[str]]]:
    """Per fold: its name, test clip ids and predicted labels (a clip's items voted)."""
    from sonotype.evaluation.metrics import vote

    out = []
    for o in outcomes:
        cids, cp = vote(o.proba, ds.item_clip[o.test_items])
        out.append((o.split.name, [int(c) for c in cids], [labels[int(k)] for k in cp.argmax(1)]))
    return out


def mix_metrics(
    cfg: Any, ds: Any, labels: Sequence[str], outcomes: Sequence[Any], info: dict[str, Any] | None,
    normalizer: Any, *, console: Any, train: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]],
    proba: Callable[[Any, Any, np.ndarray], np.ndarray],
) -> dict[str, Any]:
    """What ``metrics.json`` adds for a mixed or normalised run.

    ``corpora`` (each entry: present or skipped and why, clips, labels), ``labels_kept`` /
    ``labels_source`` / ``labels_dropped``, ``balance``, ``normalize``, ``per_corpus``
    (pooled test figures split by corpus, for any protocol), ``per_corpus_folds`` and, with
    ``mix.matrix`` and two corpora at least, ``corpus_matrix`` (:func:`corpus_matrix`).
    ``train(train_clips, val_clips)`` fits a model as the run does; ``proba(net, scaler, X)``
    runs it.
    """
    import time

    from sonotype.evaluation.metrics import vote
    from sonotype.items.normalize import describe

    out: dict[str, Any] = {}
    if normalizer is not None:
        out["normalize"] = {"by": normalizer.by, "min_clips": normalizer.min_clips, "axes": list(normalizer.axes),
                            "text": describe(normalizer.by)}
    if info is None:
        return out
    names = [r["name"] for r in info["corpora"] if r["present"]]
    out.update({"corpus": f"mixed: {'+'.join(names)}", "corpora": info["corpora"], "labels_kept": info["labels"], "labels_source": info["labels_source"],
                "labels_dropped": info["labels_dropped"], "balance": cfg.mix.balance, "mix_notes": info["notes"]})
    folds = _fold_predictions(ds, labels, outcomes)
    corp = [c.corpus or corpus_of(c.group) for c in ds.clips]
    true = [c.label for c in ds.clips]
    ids = [i for _, cids, _ in folds for i in cids]
    preds = [p for _, _, ps in folds for p in ps]
    out["per_corpus"] = per_corpus([corp[i] for i in ids], [true[i] for i in ids], preds, labels)
    out["per_corpus_folds"] = [{"split": name, "per_corpus": per_corpus([corp[i] for i in cids], [true[i] for i in cids],
                                                                        ps, labels)} for name, cids, ps in folds]
    present = sorted(set(corp))
    if cfg.mix.matrix and len(present) >= 2:
        t0 = time.perf_counter()

        def train_predict(tr: np.ndarray, va: np.ndarray, te: np.ndarray) -> np.ndarray:
            net, scaler = train(np.asarray(tr, np.int64), np.asarray(va, np.int64))
            items = np.flatnonzero(np.isin(ds.item_clip, te))
            cids, cp = vote(proba(net, scaler, ds.X[items]), ds.item_clip[items])
            at = {int(c): int(k) for c, k in zip(cids, cp.argmax(1))}
            return np.asarray([at[int(c)] for c in te], dtype=np.int64)

        locos = None
        if getattr(cfg.protocol, "name", "") == "locos":
            locos = {}
            for name, cids, ps in folds:
                test_corpus = name.removeprefix("test corpus ")
                locos[test_corpus] = per_corpus([corp[i] for i in cids], [true[i] for i in cids], ps, labels)[test_corpus]
        m = corpus_matrix(ds.clips, list(labels), train_predict, val_size=cfg.protocol.val_size, seed=cfg.protocol.seed,
                          locos=locos, progress=lambda text: console.print(text, highlight=False))
        m["seconds"] = round(time.perf_counter() - t0, 2)
        out["corpus_matrix"] = m
        console.print(matrix_text(m), highlight=False)
        for v in (m.get("mixed_vs_single") or {}).values():
            console.print(v["text"], highlight=False)
    return out


def matrix_text(m: dict[str, Any]) -> str:
    """The corpus x corpus table as aligned text (balanced accuracy; chance in brackets)."""
    cols = m["test_corpora"]
    w = max(12, *(len(r) for r in m["train_sets"]))
    lines = ["train \\ test".ljust(w) + "".join(c.rjust(16) for c in cols)]
    for r in m["train_sets"]:
        cells = []
        for c in cols:
            v = m["rows"][r].get(c)
            cells.append((f"{v['balanced_accuracy']:.3f} ({v['chance']:.2f})" if v and "balanced_accuracy" in v
                          else "-").rjust(16))
        lines.append(r.ljust(w) + "".join(cells))
    return "\n".join(lines)


def recipe_root_sets(recipe: str | Path, values: Sequence[str], root: Any = None) -> list[str]:
    """``sonotype run --corpus NAME=ROOT``: the overrides setting the root of the recipe's corpus NAME."""
    import yaml

    d = yaml.safe_load(Path(recipe).read_text()) or {}
    corpus = d.get("corpus") or {}
    entries = corpus if isinstance(corpus, list) else (corpus.get("corpora") or None)
    out = []
    for e in parse_corpus_args(values):
        if entries is None:
            if root is not None:
                raise ConfigError("--root and --corpus NAME=ROOT both set the root of this one-corpus recipe; give one")
            if e["name"] != corpus.get("name"):
                raise ConfigError(f"--corpus {e['name']}=...: the recipe reads corpus {corpus.get('name')!r}")
            out.append(f"corpus.root={e['root']}")
            continue
        names = [(x.get("options") or {}).get("corpus") or x.get("name") for x in entries]
        if e["name"] not in names:
            raise ConfigError(f"--corpus {e['name']}=...: the recipe has no corpus {e['name']!r}; it has {names}")
        prefix = "corpus" if isinstance(corpus, list) else "corpus.corpora"
        out.append(f"{prefix}.{names.index(e['name'])}.root={Path(e['root']).expanduser()}")
    return out
