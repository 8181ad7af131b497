"""Honest evaluation protocols: which items train, validate and test a model.

Every item (a clip, or a window of a clip carrying its clip's group) has a label and a
group - whatever must never sit on both sides of a split: a speaker, an actor, a track.
All grouped protocols keep each group whole on one side, and validation data are carved
out of each training side by the same group rule, so the validation score is as honest as
the test score. ``random`` ignores groups; it exists only to reproduce the seeds' inflated
figures and warns (:class:`LeakWarning`) every time it is used.

Protocols
---------
auto
    ``official`` when every item has an assignment; else a stratified ``holdout`` when
    every group holds one item (nothing to keep together); else ``logo`` when there are
    at most 12 groups; else stratified group ``kfold`` with ``k`` folds (default 5).
holdout
    One stratified group split; ``test_size`` is realised as one fold of a
    :class:`~sklearn.model_selection.StratifiedGroupKFold` with ``round(1 / test_size)``
    folds (0.2 -> 1/5 of the groups, 0.25 -> 1/4, 0.3 -> 1/3).
kfold
    Stratified group k-fold: every item is in exactly one test fold.
logo
    Leave one group out: one split per group.
locos
    Leave one corpus out (runs over several corpora, whose groups read ``corpus:speaker``):
    one split per corpus, tested on all of it and trained on the other corpora.
official, predefined
    Per-item assignments (``train``, ``valid``/``val``/``dev``, ``test``); items without
    one are left out and counted in :attr:`Split.excluded`. ``official`` reads the
    corpus's ``split`` field, ``predefined`` any field named by ``field``. Numbered folds
    (``fold1`` ... ``foldK``, as ESC-50's) give one split per fold, that fold testing.
groups
    Explicit test groups (``groups:YAF``); training is ``train_groups`` or every other group.
random
    Stratified random split over items, ignoring groups. Leaks; warns.

Validation
----------
``val_size`` of each training side becomes validation, chosen by the protocol's group
rule (stratified group fold, or a group shuffle split when there are few groups) and
seeded. A training side with fewer than 3 groups gets no validation (``val`` is empty):
carving one of two speakers out would halve the training data. Official splits keep
their own validation items when they have some.

Examples
--------
>>> labels = ["a", "b"] * 12
>>> groups = [f"spk{i // 2}" for i in range(24)]
>>> [s.name for s in make_splits(labels, groups, "kfold:3")]
['fold 1/3', 'fold 2/3', 'fold 3/3']
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    LeaveOneGroupOut,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)

from sonotype.errors import ConfigError, ParameterError, SonotypeError
from sonotype.splits.protocol import PROTOCOLS, ProtocolConfig

__all__ = [
    "PROTOCOLS",
    "LeakError",
    "LeakWarning",
    "ProtocolConfig",
    "Split",
    "check_no_leak",
    "corpus_of",
    "describe_protocol",
    "make_splits",
    "resolve_auto",
    "rotate_validation",
]

AUTO_LOGO_MAX_GROUPS = 12
MIN_VAL_GROUPS = 3
_ASSIGN = {
    "train": "train", "training": "train",
    "valid": "val", "val": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "eval": "test",
}  # fmt: skip


class LeakWarning(UserWarning):
    """A protocol lets one group (speaker, track) sit on both sides of a split."""


class LeakError(SonotypeError):
    """A split that must keep groups apart has one group on two sides."""


@dataclass(frozen=True)
class Split:
    """Integer indices into the items for one train/validation/test partition.

    ``excluded`` holds items the protocol leaves out (no official assignment, or in
    none of the listed groups).
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **{k: getattr(self, k).tolist() for k in ("train", "val", "test", "excluded")},
        }


# --- helpers -----------------------------------------------------------------------------


def _as_str_array(values: Sequence[Any], what: str) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ParameterError(f"{what} must be a sequence with one entry per item, got {type(values).__name__}")
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ParameterError(f"{what} must be one-dimensional (one entry per item), got shape {values.shape}")
    arr = np.asarray([str(v) for v in values], dtype=object)
    if arr.size == 0:
        raise ParameterError(f"make_splits needs at least one item; {what} is empty")
    return arr


def _idx(a: Any) -> np.ndarray:
    return np.sort(np.asarray(a, dtype=np.int64))


def _sub_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([int(seed), 7919, i]).generate_state(1)[0])


def _group_holdout(
    idx: np.ndarray, labels: np.ndarray, groups: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, held) by whole groups, stratified when there are enough groups."""
    n_groups = len(np.unique(groups[idx]))
    n_folds = max(2, round(1.0 / share))
    _, counts = np.unique(labels[idx], return_counts=True)
    if n_groups >= n_folds and counts.max() >= n_folds:
        sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class" notes
            rest, held = next(sgkf.split(idx, labels[idx], groups[idx]))
    else:
        gss = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        rest, held = next(gss.split(idx, labels[idx], groups[idx]))
    return _idx(idx[rest]), _idx(idx[held])


def _random_holdout(
    idx: np.ndarray, labels: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified item-level split; plain shuffle when a class is too small to stratify."""
    _, counts = np.unique(labels[idx], return_counts=True)
    n_held = int(np.ceil(share * len(idx)))
    stratify = counts.min() >= 2 and len(counts) <= n_held <= len(idx) - len(counts)
    splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(
        n_splits=1, test_size=share, random_state=seed
    )
    rest, held = next(splitter.split(idx, labels[idx]))
    return _idx(idx[rest]), _idx(idx[held])


def _carve_val(
    train: np.ndarray, labels: np.ndarray, groups: np.ndarray, cfg: ProtocolConfig, i: int, *, grouped: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Carve validation from one training side by the protocol's rule; empty when impossible."""
    empty = np.zeros(0, dtype=np.int64)
    if cfg.val_size <= 0 or len(train) < 2:
        return train, empty
    seed = _sub_seed(cfg.seed, i)
    if not grouped:
        return _random_holdout(train, labels, cfg.val_size, seed)
    if len(np.unique(groups[train])) < MIN_VAL_GROUPS:
        return train, empty
    return _group_holdout(train, labels, groups, cfg.val_size, seed)


def carve_validation(
    train: np.ndarray, labels: Sequence[Any], groups: Sequence[Any], *, val_size: float = 0.1, seed: int = 0,
    grouped: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Split a training side into training and validation indices by the protocols' own rule.

    Parameters
    ----------
    train : np.ndarray of int, shape (n,)
        Indices (into ``labels``/``groups``) of the training side.
    labels, groups : sequence, shape (n_clips,)
        Label and group of every clip.
    val_size : float
        Share of the side to validate on (0: no validation part).
    seed : int
        Seed of the carving.
    grouped : bool
        True: whole groups go to validation, and nothing is carved from fewer than
        :data:`MIN_VAL_GROUPS` groups; False: a stratified random share of the items.

    Returns
    -------
    train, val : np.ndarray of int
        Disjoint indices; ``val`` is empty when no honest validation part exists.
    """
    cfg = ProtocolConfig(val_size=float(val_size), seed=int(seed))
    return _carve_val(_idx(train), np.asarray(labels).astype(str), np.asarray(groups).astype(str), cfg, 0,
                      grouped=grouped)


def rotate_validation(
    train_side: np.ndarray, labels: Sequence[Any], groups: Sequence[Any], n: int, *, val_size: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` carvings of one training side into (train, validation) with disjoint validation groups.

    The training side (a split's train + val) is cut by whole groups into
    ``max(n, round(1 / val_size))`` stratified group folds; carving ``i`` validates on fold
    ``i`` and trains on the rest. Ensemble members carved this way together train on every
    training group while each still stops early on groups it never saw.

    Raises
    ------
    ParameterError
        Fewer groups than folds, or ``val_size`` not in (0, 1).
    """
    if not 0 < val_size < 1:
        raise ParameterError(f"rotating validation needs 0 < val_size < 1, got {val_size}")
    idx = _idx(train_side)
    y = _as_str_array(labels, "labels")
    g = _as_str_array(groups, "groups")
    n_folds = max(int(n), round(1.0 / val_size), 2)
    n_groups = len(np.unique(g[idx]))
    if n_groups < n_folds:
        raise ParameterError(
            f"rotating validation over {n} members needs at least {n_folds} groups on the training side, got {n_groups}"
        )
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=int(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" notes
        folds = list(sgkf.split(idx, y[idx], g[idx]))
    return [(_idx(idx[rest]), _idx(idx[held])) for rest, held in folds[: int(n)]]


def _check_classes(split: Split, labels: np.ndarray) -> None:
    have = set(labels[split.train])
    for side in ("test", "val"):
        missing = sorted(set(labels[getattr(split, side)]) - have)
        if missing:
            raise ParameterError(
                f"{split.name}: class(es) {missing} appear in {side} ({len(getattr(split, side))} items) "
                f"but not in training ({len(split.train)} items); there are too few groups holding them - "
                "merge or drop those classes, or choose another protocol"
            )


def check_no_leak(split: Split, groups: Sequence[Any]) -> None:
    """Raise :class:`LeakError` naming every group found on more than one side of ``split``."""
    g = np.asarray([str(v) for v in groups], dtype=object)
    sides = {side: set(g[getattr(split, side)]) for side in ("train", "val", "test")}
    leaked = (
        (sides["train"] & sides["val"]) | (sides["train"] & sides["test"]) | (sides["val"] & sides["test"])
    )
    if leaked:
        names = sorted(leaked)
        shown = ", ".join(names[:10]) + (f" ... ({len(names)} in all)" if len(names) > 10 else "")
        raise LeakError(f"{split.name}: {len(names)} group(s) on more than one side of the split: {shown}")


# --- protocols ---------------------------------------------------------------------------


def resolve_auto(
    labels: Sequence[Any],
    groups: Sequence[Any],
    assignments: Sequence[str | None] | None = None,
    *,
    base: ProtocolConfig | None = None,
) -> ProtocolConfig:
    """What ``auto`` means for these items, keeping ``base``'s other settings.

    ``official`` if every item has an assignment; else ``holdout`` (stratified) if every
    group holds exactly one item; else ``logo`` for at most 12 groups; else stratified
    group ``kfold``.
    """
    base = base or ProtocolConfig()
    g = _as_str_array(groups, "groups")
    if len(g) != len(labels):
        raise ParameterError(f"labels and groups differ in length: {len(labels)} != {len(g)}")
    if (
        assignments is not None
        and len(assignments) == len(g)
        and all(a not in (None, "") for a in assignments)
        and len(_fold_ids(assignments) or ("train", "test")) >= 2  # one numbered fold alone is no split
    ):
        name = "official"
    else:
        n_groups = len(np.unique(g))
        if n_groups == len(g):
            name = "holdout"
        elif n_groups <= AUTO_LOGO_MAX_GROUPS:
            name = "logo"
        else:
            name = "kfold"
    d = base.to_dict()
    d["name"] = name
    return ProtocolConfig(**d)


def make_splits(
    labels: Sequence[Any],
    groups: Sequence[Any],
    protocol: ProtocolConfig | str | dict[str, Any] = "auto",
    *,
    assignments: Sequence[str | None] | None = None,
) -> list[Split]:
    """Partition items into train/validation/test by ``protocol``.

    Parameters
    ----------
    labels, groups : sequence, length n
        Class of each item, and the group that must stay on one side (speaker, track).
    protocol : ProtocolConfig, str or dict
        See the module docstring; parsed by :meth:`ProtocolConfig.parse`.
    assignments : sequence of str or None, length n
        Per-item ``train``/``valid``/``test`` for ``official``/``predefined`` (and ``auto``).

    Returns
    -------
    list of Split
        One for holdout/official/groups/random, ``k`` for kfold, one per group for logo.
        Every split of a grouped protocol has passed :func:`check_no_leak`.

    Raises
    ------
    ParameterError
        Lengths differ, fewer groups than folds, a test class absent from training.
    ConfigError
        Invalid protocol settings, unknown group names or assignment values.
    """
    cfg = ProtocolConfig.parse(protocol)
    y = _as_str_array(labels, "labels")
    g = _as_str_array(groups, "groups")
    if len(y) != len(g):
        raise ParameterError(f"labels and groups differ in length: {len(y)} != {len(g)}")
    if assignments is not None and len(assignments) != len(y):
        raise ParameterError(f"assignments and labels differ in length: {len(assignments)} != {len(y)}")
    if cfg.name == "auto":
        cfg = resolve_auto(y, g, assignments, base=cfg)
    idx = np.arange(len(y), dtype=np.int64)
    unique_groups = np.unique(g)
    splits: list[Split] = []

    if cfg.name == "random":
        warnings.warn(
            "protocol 'random' splits items ignoring their groups: windows of one clip and clips of one "
            "speaker land on both sides, so scores are inflated. It exists only to reproduce the seeds' "
            "figures; use auto, kfold, logo or holdout for an honest estimate.",
            LeakWarning,
            stacklevel=2,
        )
        train, test = _random_holdout(idx, y, cfg.test_size, cfg.seed)
        train, val = _carve_val(train, y, g, cfg, 0, grouped=False)
        return [Split("random", train, val, test)]

    if cfg.name == "holdout":
        if len(unique_groups) < 2:
            raise ParameterError(f"holdout needs at least 2 groups, got {len(unique_groups)}")
        train, test = _group_holdout(idx, y, g, cfg.test_size, cfg.seed)
        train, val = _carve_val(train, y, g, cfg, 0, grouped=True)
        splits.append(Split("holdout", train, val, test))

    elif cfg.name == "kfold":
        splits.extend(_kfold_splits(cfg, idx, y, g, unique_groups))

    elif cfg.name == "logo":
        if len(unique_groups) < 2:
            raise ParameterError(f"leave-one-group-out needs at least 2 groups, got {len(unique_groups)}")
        for i, (train, test) in enumerate(LeaveOneGroupOut().split(idx, y, g)):
            train, val = _carve_val(_idx(train), y, g, cfg, i, grouped=True)
            splits.append(Split(f"test group {g[test[0]]}", train, val, _idx(test)))

    elif cfg.name == "locos":
        splits.extend(_locos_splits(cfg, y, g))

    elif cfg.name == "groups":
        splits.append(_groups_split(cfg, idx, y, g, unique_groups))

    elif _fold_ids(assignments):  # official / predefined with numbered folds (ESC-50's fold1..fold5)
        splits.extend(_fold_splits(cfg, y, g, assignments))
    else:  # official / predefined
        splits.append(_assigned_split(cfg, y, g, assignments))

    for s in splits:
        if cfg.name not in ("official", "predefined"):
            check_no_leak(s, g)
        _check_classes(s, y)
    return splits


def _kfold_splits(cfg: ProtocolConfig, idx: np.ndarray, y: np.ndarray, g: np.ndarray,
                  unique_groups: np.ndarray) -> list[Split]:
    """Stratified group k-fold: each fold tests one k-th of the groups, validation carved by group."""
    if len(unique_groups) < cfg.k:
        raise ParameterError(
            f"kfold with k={cfg.k} needs at least {cfg.k} groups, got {len(unique_groups)}; "
            f"lower k or use logo"
        )
    sgkf = StratifiedGroupKFold(n_splits=cfg.k, shuffle=True, random_state=cfg.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = list(sgkf.split(idx, y, g))
    out = []
    for i, (train, test) in enumerate(folds):
        train, val = _carve_val(_idx(train), y, g, cfg, i, grouped=True)
        out.append(Split(f"fold {i + 1}/{cfg.k}", train, val, _idx(test)))
    return out


def _groups_split(cfg: ProtocolConfig, idx: np.ndarray, y: np.ndarray, g: np.ndarray,
                  unique_groups: np.ndarray) -> Split:
    """The named test (and optionally train) groups; groups in neither are excluded."""
    known = set(unique_groups)
    listed = set(cfg.test_groups or []) | set(cfg.train_groups or [])
    unknown = sorted(listed - known)
    if unknown:
        shown = sorted(known)[:20]
        raise ConfigError(f"protocol groups: unknown group(s) {unknown}; the items have groups {shown}")
    in_test = np.isin(g, cfg.test_groups or [])
    in_train = np.isin(g, cfg.train_groups) if cfg.train_groups else ~in_test
    if not in_train.any():
        raise ConfigError(f"protocol groups: no training groups left after test groups {cfg.test_groups}")
    train, val = _carve_val(idx[in_train], y, g, cfg, 0, grouped=True)
    excluded = idx[~in_test & ~in_train]
    name = f"test groups {', '.join(cfg.test_groups or [])}"
    return Split(name, train, val, idx[in_test], excluded)


def corpus_of(group: str) -> str:
    """The corpus of a mixed run's group ``corpus:speaker`` (a group without ``:`` is its own corpus)."""
    return str(group).split(":", 1)[0]


def _locos_splits(cfg: ProtocolConfig, y: np.ndarray, g: np.ndarray) -> list[Split]:
    """Leave one corpus out: one split per corpus (the part of the group before ``:``), tested on
    all of it, trained on the others; validation carved by speaker from the training corpora."""
    corpora = np.asarray([corpus_of(x) for x in g], dtype=object)
    names = sorted(set(corpora.tolist()))
    if len(names) < 2:
        raise ParameterError(
            f"locos (leave one corpus out) needs clips of at least 2 corpora, got {names}; groups must read "
            "'corpus:speaker' as in a run over several corpora (corpus: a list of entries)"
        )
    idx = np.arange(len(y), dtype=np.int64)
    out = []
    for i, name in enumerate(names):
        train, val = _carve_val(idx[corpora != name], y, g, cfg, i, grouped=True)
        out.append(Split(f"test corpus {name}", train, val, idx[corpora == name]))
    return out


_FOLD_RE = re.compile(r"^fold\s*(\d+)$", re.IGNORECASE)


def _fold_ids(assignments: Sequence[str | None] | None) -> list[str] | None:
    """The distinct fold names when every assignment is ``fold<N>`` (a corpus's own k folds), else None."""
    if not assignments:
        return None
    values = {str(a).strip() for a in assignments if a is not None and str(a).strip()}
    if not values or not all(_FOLD_RE.match(v) for v in values):
        return None
    return sorted(values, key=lambda v: int(_FOLD_RE.match(v).group(1)))  # type: ignore[union-attr]


def _fold_splits(
    cfg: ProtocolConfig, y: np.ndarray, g: np.ndarray, assignments: Sequence[str | None] | None
) -> list[Split]:
    """One split per official fold: that fold tests, the others train (validation carved by group)."""
    folds = _fold_ids(assignments) or []
    if len(folds) < 2:
        raise ParameterError(
            f"protocol {cfg.name!r}: field {cfg.field!r} holds only {', '.join(folds)}; leave-one-fold-out needs "
            "at least 2 folds (use kfold:K on a part of the corpus)"
        )
    a = np.array([str(v).strip() if v is not None else "" for v in assignments or []], dtype=object)
    idx = np.arange(len(y), dtype=np.int64)
    out = []
    for k, fold in enumerate(folds):
        test, rest = idx[a == fold], idx[(a != fold) & (a != "")]
        train, val = _carve_val(rest, y, g, cfg, k, grouped=True)
        excluded = idx[a == ""]
        split = Split(f"{fold} ({k + 1}/{len(folds)})", train, val, test, excluded)
        try:
            check_no_leak(split, g)
        except LeakError as exc:
            warnings.warn(f"the {cfg.name} folds keep groups together only partly: {exc}", LeakWarning, stacklevel=3)
        out.append(split)
    return out


def _assigned_split(
    cfg: ProtocolConfig, y: np.ndarray, g: np.ndarray, assignments: Sequence[str | None] | None
) -> Split:
    """The corpus's own split; validation is carved from train when it has none."""
    if assignments is None:
        raise ParameterError(
            f"protocol {cfg.name!r} needs per-item assignments (meta field {cfg.field!r}: train/valid/test)"
        )
    sides = np.full(len(y), "", dtype=object)
    bad: set[str] = set()
    for i, a in enumerate(assignments):
        if a is None or str(a).strip() == "":
            continue
        side = _ASSIGN.get(str(a).strip().lower())
        if side is None:
            bad.add(str(a))
        else:
            sides[i] = side
    if bad:
        raise ConfigError(
            f"protocol {cfg.name!r}: unknown assignment value(s) {sorted(bad)} in field {cfg.field!r}; "
            "use train, valid (val, dev) or test"
        )
    idx = np.arange(len(y), dtype=np.int64)
    train, val, test = idx[sides == "train"], idx[sides == "val"], idx[sides == "test"]
    excluded = idx[sides == ""]
    if len(train) == 0 or len(test) == 0:
        raise ParameterError(
            f"protocol {cfg.name!r}: field {cfg.field!r} gives {len(train)} train and {len(test)} test items "
            f"({len(excluded)} without an assignment); both sides must be non-empty"
        )
    if len(val) == 0:
        train, val = _carve_val(train, y, g, cfg, 0, grouped=True)
    name = (
        cfg.name
        if not len(excluded)
        else f"{cfg.name} ({len(excluded)} of {len(y)} items unassigned, left out)"
    )
    split = Split(name, train, val, test, excluded)
    try:
        check_no_leak(split, g)
    except LeakError as exc:
        warnings.warn(
            f"the {cfg.name} split keeps groups together only partly: {exc}", LeakWarning, stacklevel=3
        )
    return split


def describe_protocol(
    cfg: ProtocolConfig | str | dict[str, Any],
    *,
    group_name: str = "group",
    n_groups: int | None = None,
    splits: Sequence[Split] = (),
) -> str:
    """One sentence for reports, e.g. ``stratified group 4-fold by speaker, validation 10 % ...``.

    Pass the resolved config (after :func:`resolve_auto`) and, optionally, the number of
    groups and the splits made, to add their sizes.
    """
    cfg = ProtocolConfig.parse(cfg)
    by = f"by {group_name}" + (f" ({n_groups} {group_name}s)" if n_groups is not None else "")
    pct = f"{cfg.test_size * 100:g} %"
    text = {
        "auto": "automatic protocol (resolved once the items are known)",
        "holdout": f"stratified group holdout {by}, test about {pct} of the {group_name}s",
        "kfold": f"stratified group {cfg.k}-fold {by}",
        "locos": "leave-one-corpus-out (one fold per corpus: trained on the others, tested on all of it)",
        "logo": f"leave-one-{group_name}-out"
        + (f" ({n_groups} {group_name}s)" if n_groups is not None else ""),
        "official": f"the corpus's official split (field {cfg.field!r})",
        "predefined": f"the predefined split in field {cfg.field!r}",
        "groups": f"test on {group_name}(s) {', '.join(cfg.test_groups or [])}, train on "
        + (", ".join(cfg.train_groups) if cfg.train_groups else "the others"),
        "random": f"random stratified split of items, test {pct}, ignoring {group_name}s (LEAKS: "
        "reproduces the seeds only)",
    }[cfg.name]
    if cfg.val_size <= 0:
        text += ", no validation"
    elif cfg.name == "random":
        text += f", validation {cfg.val_size * 100:g} % of training items"
    else:
        text += f", validation {cfg.val_size * 100:g} % of training {group_name}s"
        if cfg.name in ("official", "predefined"):
            text += " when the split has none"
    if splits:
        sizes = [(len(s.train), len(s.val), len(s.test)) for s in splits]
        if len(splits) == 1:
            text += f" ({sizes[0][0]} train / {sizes[0][1]} validation / {sizes[0][2]} test items)"
        else:
            mean_test = np.mean([t for *_, t in sizes])
            text += f" ({len(splits)} splits, {mean_test:.0f} test items on average)"
        if any(len(s.val) == 0 for s in splits) and cfg.val_size > 0 and cfg.name != "random":
            text += f"; no validation where a training side had fewer than {MIN_VAL_GROUPS} {group_name}s"
    return text + ", seed " + str(cfg.seed)
