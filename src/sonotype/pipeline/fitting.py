"""One split's fit, shared by :func:`~sonotype.pipeline.experiment.run_experiment` and :class:`~sonotype.AudioClassifier`.

A run and the estimator train the same way: model items from the clips (frame features and
their representation, or backbone embeddings), a scaler fitted on the training items only,
then the network (or ensemble members, or a scikit-learn linear model) with waveform copies
of the training clips added. Keeping that here, once, is what makes ``sonotype run`` and
``AudioClassifier.fit`` give the same model from the same settings. Nothing here touches the
global torch or NumPy random state: every seed goes to a generator of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console

from sonotype.backbones.finetune import FineTuneClassifier
from sonotype.backbones.load import backbone_record as record
from sonotype.errors import ConfigError
from sonotype.features.extract import Dataset
from sonotype.features.scaling import Standardizer
from sonotype.items.build import build_items
from sonotype.items.normalize import normalize_copies
from sonotype.items.tasks import dataset_for_run
from sonotype.models.linear import fit_linear
from sonotype.models.registry import build_model, ensemble_of, is_linear, model_spec
from sonotype.pipeline.mixed import balanced_train
from sonotype.splits.split import Split, rotate_validation
from sonotype.training.augment import augmented_items
from sonotype.training.config import TrainConfig
from sonotype.training.members import fit_members
from sonotype.training.train import TrainResult, fit
from sonotype.utils.rng import torch_seed

if TYPE_CHECKING:
    from sonotype.pipeline.config import RunConfig

__all__ = [
    "AugCache",
    "backbone_record",
    "build_network",
    "build_run_dataset",
    "class_prior",
    "clip_items",
    "feature_axis",
    "finetuning",
    "label_index",
    "scale",
    "split_items",
    "train_split",
]

# Augmented copies of a clip, keyed (seed, clip id): memoised across the folds of a run.
AugCache = dict[tuple[int, int], list[np.ndarray]]


def build_run_dataset(cfg: RunConfig, clips: list, *, progress: bool = False) -> Dataset:
    """Model items of ``clips``: frame features -> representation, or backbone embeddings.

    Parameters
    ----------
    cfg : RunConfig
        Its ``features``/``representation`` (or ``backbone``), ``cache_dir`` and ``jobs``.
    clips : list of Clip
        The clips to extract, in order.
    progress : bool
        Show the extraction progress bar.

    Returns
    -------
    Dataset
        ``X`` (n_items, ...), ``item_clip`` (n_items,) into ``clips`` (less any skipped).
    """

    if (ds := dataset_for_run(cfg, clips, progress)) is not None:  # engine: ray
        return ds
    return build_items(clips, features=cfg.features, representation=cfg.representation, backbone=cfg.backbone,
                       cache_dir=cfg.cache_dir, jobs=cfg.jobs, progress=progress)


def finetuning(cfg: RunConfig) -> bool:
    """True when ``cfg`` fine-tunes a pretrained backbone (waveform items, no scaler)."""
    return cfg.backbone is not None and cfg.backbone.finetuning


def build_network(cfg: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> torch.nn.Module:
    """A registry model, or the backbone + head network when fine-tuning, initialised from ``train.seed``.

    The initialisation draws from a forked generator: the caller's torch random state is
    the same afterwards.
    """
    if finetuning(cfg):
        with torch_seed(cfg.train.seed):
            return FineTuneClassifier(input_shape, n_classes, backbone=cfg.backbone.to_dict(),
                                      lr_scale=cfg.backbone.finetune_lr / cfg.train.lr, **cfg.model.params)
    return build_model(cfg.model.name, input_shape, n_classes, seed=cfg.train.seed, **cfg.model.params)


def scale(scaler: Standardizer | None, X: np.ndarray) -> np.ndarray:
    """``X`` standardised by ``scaler`` (unchanged when there is none, as for a fine-tuned backbone)."""
    return X if scaler is None else scaler.transform(X)


def feature_axis(cfg: RunConfig) -> int:
    """The axis the scaler standardises: per mel band (axis 1 of (N, F, T)) for log-mel patches."""
    return 1 if cfg.representation.kind == "logmel" else -1


def label_index(ds: Dataset) -> tuple[list[str], np.ndarray]:
    """The sorted labels of the dataset's clips and every item's class id (its clip's label).

    Returns
    -------
    labels : list of str
        Sorted; class ``i`` of every model is ``labels[i]``.
    y_items : np.ndarray of int, shape (n_items,)
    """
    labels = sorted({c.label for c in ds.clips})
    lid = {lab: i for i, lab in enumerate(labels)}
    clip_y = np.array([lid[c.label] for c in ds.clips], dtype=np.int64)
    return labels, clip_y[ds.item_clip]


def clip_items(ds: Dataset, clips: np.ndarray) -> np.ndarray:
    """Indices of the items (windows, frames) that belong to ``clips``, in item order."""
    return np.flatnonzero(np.isin(ds.item_clip, clips))


def split_items(ds: Dataset, split: Split, item_level: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, validation and test items of a split over clips (or, ``item_level``, over items).

    Parameters
    ----------
    ds : Dataset
    split : Split
        Indices into ``ds.clips``, or into the items when ``item_level`` (the ``random``
        protocol, which splits windows on purpose to show the leak).
    item_level : bool

    Returns
    -------
    train, val, test : np.ndarray of int
        Item indices.
    """
    if item_level:
        return split.train, split.val, split.test
    return clip_items(ds, split.train), clip_items(ds, split.val), clip_items(ds, split.test)


def class_prior(cfg: RunConfig, y_train: np.ndarray, n_classes: int) -> list[float] | None:
    """Training class frequencies for ``model.prior_correction`` (a class absent from training counts 1)."""
    if not cfg.model.prior_correction:
        return None
    counts = np.maximum(np.bincount(y_train, minlength=n_classes), 1).astype(np.float64)
    return (counts / counts.sum()).tolist()


def backbone_record(cfg: RunConfig) -> dict[str, Any] | None:
    """What a saved model records of its backbone (folder, commit, digest), or None without one."""
    if cfg.backbone is None:
        return None

    return record(cfg.backbone)


def _balanced(cfg: RunConfig, ds: Dataset, tr: np.ndarray) -> np.ndarray:
    """``mix.balance: undersample``: the training items of each corpus cut to the smallest corpus's clips."""
    if cfg.mix.balance != "undersample" or not len(tr):
        return tr

    kept = balanced_train(cfg, ds.clips, np.unique(ds.item_clip[tr]))
    return tr[np.isin(ds.item_clip[tr], kept)]


@dataclass
class _Side:
    """The training side of one split, with the augmented copies of its clips on demand."""

    cfg: RunConfig
    ds: Dataset
    y_items: np.ndarray
    aug_cache: AugCache

    def with_copies(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items' features, class ids and clip ids, plus ``augment.copies`` copies of their clips."""
        X, y, owner = self.ds.X[items], self.y_items[items], self.ds.item_clip[items]
        if self.cfg.augment.copies > 0 and len(items):
            X_aug, clip_aug = augmented_items(self.ds, self.cfg, np.unique(owner), self.aug_cache, self.cfg.seed)
            if len(X_aug):
                X_aug = normalize_copies(self.ds, X_aug, clip_aug)  # as their originals, under `normalize`
                # An augmented item has its clip's class: the class id of any item of that clip.
                first = {ci: i for i, ci in reversed(list(enumerate(self.ds.item_clip.tolist())))}
                X = np.concatenate([X, X_aug])
                y = np.concatenate([y, self.y_items[[first[c] for c in clip_aug.tolist()]]])
                owner = np.concatenate([owner, clip_aug])
        return X, y, owner


def train_split(
    cfg: RunConfig,
    ds: Dataset,
    y_items: np.ndarray,
    n_classes: int,
    train_items: np.ndarray,
    val_items: np.ndarray,
    *,
    aug_cache: AugCache | None = None,
    progress: bool = False,
    console: Console | None = None,
    train_configs: list[TrainConfig] | None = None,
) -> tuple[torch.nn.Module, Standardizer | None, list[TrainResult]]:
    """Fit the scaler (training items only) and the network, ensemble members or linear model on one split.

    Parameters
    ----------
    cfg : RunConfig
        Model, training, augmentation and protocol settings.
    ds : Dataset
        Every item of the run; ``y_items`` (n_items,) their class ids.
    n_classes : int
    train_items, val_items : np.ndarray of int
        Item indices; ``val_items`` may be empty (no early stopping; ``max_epochs`` epochs).
    aug_cache : dict, optional
        Memo of augmented copies keyed ``(seed, clip)``, shared across the folds of a run.
    progress : bool
        Print epochs; ``console`` is where.
    train_configs : list of TrainConfig, optional
        One per ensemble member (or one), replacing ``cfg.train``: the final fit on every clip
        gives each member its own fixed epoch count that way.

    Returns
    -------
    network : torch.nn.Module
    scaler : Standardizer or None
        None for a fine-tuned backbone (the backbone normalises its waveforms itself).
    results : list of TrainResult
        One per network (per member for an ensemble).

    Notes
    -----
    Ensemble member ``i`` trains from seed ``train.seed + i`` on the same augmented copies as
    the others (members with their own copies were no better on RAVDESS, 0.590 against 0.605
    for two, and each set of copies costs extraction time). With ``ensemble_validation:
    rotate`` each member validates on its own groups of the training side and trains on the
    rest; the shared scaler is then fitted on the whole training side.
    """

    console = console or Console(quiet=True)
    side = _Side(cfg, ds, y_items, {} if aug_cache is None else aug_cache)
    tr, va = np.asarray(train_items, np.int64), np.asarray(val_items, np.int64)
    tr = _balanced(cfg, ds, tr)
    if is_linear(cfg.model.name):  # logreg / linear-svm: scikit-learn, no torch loop
        return _train_linear(cfg, side, n_classes, np.union1d(tr, va), progress, console)
    rotate = cfg.model.ensemble > 1 and cfg.model.ensemble_validation == "rotate"
    if rotate:
        tr, va = np.union1d(tr, va), np.empty(0, np.int64)  # the whole training side; members carve their own
    X_tr, y_tr, _ = side.with_copies(tr)
    scaler = None if finetuning(cfg) else Standardizer(feature_axis=feature_axis(cfg)).fit(X_tr)
    net = build_network(cfg, tuple(ds.X.shape[1:]), n_classes)
    X_va = scale(scaler, ds.X[va]) if len(va) else None
    y_va = y_items[va] if len(va) else None
    if cfg.model.ensemble > 1:
        if rotate:
            return _fit_rotating(cfg, side, net, scaler, n_classes, tr, progress, console, train_configs)
        if progress:
            console.print(f"training {cfg.model.ensemble} ensemble members (seeds {_seeds(cfg)}, "
                          f"{min(cfg.jobs, cfg.model.ensemble)} at a time)")
        members, results = fit_members(
            model_spec(net), _seeds(cfg), scale(scaler, X_tr), y_tr, X_va, y_va, config=train_configs or cfg.train,
            augment=cfg.augment, n_classes=n_classes, jobs=cfg.jobs, progress=progress, console=console,
        )
        return ensemble_of(members, class_prior=class_prior(cfg, y_items[tr], n_classes)), scaler, results
    result = fit(net, scale(scaler, X_tr), y_tr, X_va, y_va, config=(train_configs or [cfg.train])[0],
                 augment=cfg.augment, n_classes=n_classes, progress=progress, console=console)
    if cfg.model.prior_correction:
        net = ensemble_of([net], class_prior=class_prior(cfg, y_items[tr], n_classes))
    return net, scaler, [result]


def _seeds(cfg: RunConfig) -> list[int]:
    return [cfg.train.seed + i for i in range(cfg.model.ensemble)]


def _fit_rotating(
    cfg: RunConfig, side: _Side, net: torch.nn.Module, scaler: Standardizer | None, n_classes: int, tr: np.ndarray,
    progress: bool, console: Console, train_configs: list[TrainConfig] | None,
) -> tuple[torch.nn.Module, Standardizer | None, list[TrainResult]]:
    """Ensemble members, each validating on its own groups of the training side ``tr``."""
    ds = side.ds
    carvings = rotate_validation(np.unique(ds.item_clip[tr]), [c.label for c in ds.clips], [c.group for c in ds.clips],
                                 cfg.model.ensemble, val_size=cfg.protocol.val_size, seed=cfg.protocol.seed)
    sets = [side.with_copies(clip_items(ds, t)) for t, _ in carvings]
    vals = [clip_items(ds, v) for _, v in carvings]
    if progress:
        console.print(f"training {cfg.model.ensemble} ensemble members (seeds {_seeds(cfg)}, "
                      f"{min(cfg.jobs, cfg.model.ensemble)} at a time, each with its own validation groups)")
    members, results = fit_members(
        model_spec(net), _seeds(cfg), [scale(scaler, X) for X, _, _ in sets], [y for _, y, _ in sets],
        [scale(scaler, ds.X[v]) for v in vals], [side.y_items[v] for v in vals], config=train_configs or cfg.train,
        augment=cfg.augment, n_classes=n_classes, jobs=cfg.jobs, progress=progress, console=console,
    )
    return ensemble_of(members, class_prior=class_prior(cfg, side.y_items[tr], n_classes)), scaler, results


def _train_linear(
    cfg: RunConfig, side: _Side, n_classes: int, items: np.ndarray, progress: bool, console: Console
) -> tuple[torch.nn.Module, Standardizer, list[TrainResult]]:
    """Fit a linear model on the whole training side: its validation part joins the training data
    (there is no early stopping; inner group CV on this side picks C, see :mod:`sonotype.models.linear`)."""

    if cfg.augment.enabled_features:
        raise ConfigError(f"model {cfg.model.name!r} is fitted by scikit-learn: SpecAugment, mixup and feature noise "
                          "do not apply (waveform copies, augment.copies, do); set them to 0")
    if cfg.model.ensemble > 1:
        raise ConfigError(f"model {cfg.model.name!r} is deterministic: model.ensemble > 1 would repeat one fit")
    X, y, clip_of = side.with_copies(items)
    scaler = Standardizer(feature_axis=feature_axis(cfg)).fit(X)
    net = build_network(cfg, tuple(side.ds.X.shape[1:]), n_classes)
    info = fit_linear(net, scaler.transform(X), y, groups=np.array([side.ds.clips[c].group for c in clip_of]),
                      item_clip=clip_of)
    if progress:
        console.print(f"{info['model']}: C={info['C']:g} ({info['chosen_by']}; {info['inner_cv']}), "
                      f"{info['n_items']} items, {info['seconds']:.1f}s")
    if cfg.model.prior_correction:
        net = ensemble_of([net], class_prior=class_prior(cfg, side.y_items[items], n_classes))
    return net, scaler, [TrainResult(seconds=info["seconds"])]
