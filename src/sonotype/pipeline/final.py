"""The model a run saves in ``model/``, and the record of exactly what trained it.

The reported figures always come from the protocol's test folds; ``evaluate.final_model``
(see :class:`~sonotype.pipeline.config.EvalConfig`) only chooses the saved model: a fold's model,
a refit with early stopping on a validation part carved by group, or a fit on every clip
for the folds' median best epoch count. ``metrics.json`` (``final_model``) names the clips
and groups that trained it and those that only validated it, so it never claims more
data than the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console

from sonotype.corpora import group_name
from sonotype.errors import SonotypeError
from sonotype.features import Dataset, Standardizer
from sonotype.pipeline.fitting import AugCache, clip_items, train_split
from sonotype.pipeline.folds import FoldOutcome, train_clips, val_score
from sonotype.splits.split import MIN_VAL_GROUPS, ProtocolConfig, make_splits

if TYPE_CHECKING:
    from sonotype.pipeline.config import RunConfig

__all__ = ["final_model"]

Trained = tuple[torch.nn.Module, Standardizer | None, dict[str, Any]]


@dataclass
class _Run:
    """What every way of making the final model needs."""

    cfg: RunConfig
    ds: Dataset
    y_items: np.ndarray
    n_classes: int
    aug_cache: AugCache
    progress: bool
    console: Console

    @property
    def group(self) -> str:
        return group_name(self.cfg.corpus.name)

    def fit(self, cfg: RunConfig, train: np.ndarray, val: np.ndarray, **kw: Any) -> tuple:
        return train_split(cfg, self.ds, self.y_items, self.n_classes, clip_items(self.ds, train),
                           clip_items(self.ds, val), aug_cache=self.aug_cache, progress=self.progress,
                           console=self.console, **kw)

    def record(self, how: str, train: np.ndarray, val: np.ndarray, epochs: list[int], text: str,
               **more: Any) -> dict[str, Any]:
        """The ``final_model`` entry of ``metrics.json``."""
        groups = np.array([c.group for c in self.ds.clips], dtype=object)
        train_groups = sorted({str(g) for g in groups[train]})
        val_groups = sorted({str(g) for g in groups[val]})
        n = len(self.ds.clips)
        validated = f", validated on {len(val)} clips ({_some(val_groups, self.group)})" if len(val) else \
            ", no validation part"
        return {
            "how": how, "requested": self.cfg.evaluate.final_model,
            "text": f"{text}: trained on {len(train)} of {n} clips ({_some(train_groups, self.group)}){validated}",
            "n_clips": int(len(train)), "n_validation_clips": int(len(val)),
            "train_groups": train_groups, "validation_groups": val_groups,
            "epochs": epochs[0] if len(epochs) == 1 else epochs, **more,
        }


def final_model(
    cfg: RunConfig, ds: Dataset, y_items: np.ndarray, labels: list[str], outcomes: list[FoldOutcome],
    aug_cache: AugCache, progress: bool, console: Console, item_level: bool = False,
) -> Trained:
    """The model saved in ``model/`` and the record of what trained it.

    Parameters
    ----------
    cfg : RunConfig
        ``evaluate.final_model`` chooses: ``auto`` (``all`` with several folds, else the
        split's model), ``all``, ``refit`` or ``best_fold``.
    ds, y_items, labels
        The run's items, their class ids and the label names.
    outcomes : list of FoldOutcome
        The folds' models and training histories.
    aug_cache : dict
        The run's memoised augmented copies (a final fit reuses them).
    item_level : bool
        Whether the splits were over items (``random`` protocol).

    Returns
    -------
    network, scaler, record
        ``record`` is the ``final_model`` entry of ``metrics.json``.
    """
    run = _Run(cfg, ds, y_items, len(labels), aug_cache, progress, console)
    asked = cfg.evaluate.final_model
    how = asked
    if asked == "auto":
        how = "all" if len(outcomes) > 1 else "split"
    elif len(outcomes) == 1 and asked != "all":
        how = "split"
    if how in ("split", "best_fold"):
        return _fold_model(run, outcomes, how, item_level)
    # One validation part (refit) or none (all), shared by every ensemble member: no rotation.
    final_cfg = replace(cfg, model=replace(cfg.model, ensemble_validation="same"))
    if how == "refit":
        refit = _refit(run, final_cfg)
        if refit is not None:
            return refit
    return _fit_all(run, final_cfg, outcomes)


def _fold_model(run: _Run, outcomes: list[FoldOutcome], how: str, item_level: bool) -> Trained:
    """The single split's model, or the fold's with the best validation score."""
    k = int(np.argmax([val_score(o) for o in outcomes])) if how == "best_fold" else 0
    o = outcomes[k]
    train = train_clips(run.ds, o.split, item_level)
    val = np.unique(run.ds.item_clip[o.split.val]) if item_level else o.split.val
    epochs = [r.best_epoch for r in o.member_results or [o.result]]
    if how == "split":
        what = f"the model of the single split ({o.split.name})"
    elif any(r.history and r.history[0].get("val_loss") is not None for r in o.member_results or [o.result]):
        what = f"the model of {o.split.name}, the fold with the best validation score"
    else:
        what = f"the model of {o.split.name}, the first fold (no fold had a validation part to choose by)"
    return o.network, o.scaler, run.record(how, train, val, epochs, what + f", weights of epoch {_epochs(epochs)}",
                                           split=o.split.name)


def _refit(run: _Run, final_cfg: RunConfig) -> Trained | None:
    """A fit on every clip but a validation part carved by group; None when none can be carved."""
    cfg, ds = run.cfg, run.ds
    n_groups = len({c.group for c in ds.clips})
    holdout = ProtocolConfig(name="holdout", test_size=max(cfg.protocol.val_size, 0.1), val_size=0.0,
                             seed=cfg.protocol.seed)
    split, why = None, f"only {n_groups} {run.group}s"
    if n_groups >= MIN_VAL_GROUPS:
        try:
            split = make_splits([c.label for c in ds.clips], [c.group for c in ds.clips], holdout)[0]
        except SonotypeError as exc:
            why = str(exc)
    if split is None:
        run.console.print(f"[yellow]refit[/]: no validation part can be carved by {run.group} ({why}); "
                          "fitting on every clip for a fixed number of epochs, as final_model 'all' does")
        return None
    run.console.print(f"[bold]refit[/] on {len(split.train)} of {len(ds.clips)} clips "
                      f"(validation by {run.group} for early stopping)")
    net, scaler, results = run.fit(final_cfg, split.train, split.test)
    epochs = [r.best_epoch for r in results]
    return net, scaler, run.record("refit", split.train, split.test, epochs,
                                   f"refit, early stopping on a validation part, weights of epoch {_epochs(epochs)}")


def _fit_all(run: _Run, final_cfg: RunConfig, outcomes: list[FoldOutcome]) -> Trained:
    """Every clip, no validation, each member's epochs fixed from the folds' best epochs."""
    cfg, ds = run.cfg, run.ds
    best = [[r.best_epoch for r in o.member_results or [o.result]] for o in outcomes]  # folds x members
    epochs = [max(1, int(np.floor(np.median(col) + 0.5))) for col in zip(*best)]
    rule = "median of the best epochs of " + ("the single split" if len(outcomes) == 1 else f"the {len(outcomes)} folds")
    run.console.print(f"[bold]final fit[/] on all {len(ds.clips)} clips, no validation, {_epochs(epochs)} epochs ({rule})")
    everything, none = np.arange(len(ds.clips)), np.empty(0, np.int64)
    net, scaler, _ = run.fit(final_cfg, everything, none,
                             train_configs=[replace(cfg.train, max_epochs=e) for e in epochs])
    return net, scaler, run.record("all", everything, none, epochs,
                                   f"final fit on every clip for {_epochs(epochs)} epochs ({rule})",
                                   fold_best_epochs=[b[0] if len(b) == 1 else b for b in best])


def _epochs(epochs: list[int]) -> str:
    """``12``, or ``12/15/14`` for the members of an ensemble."""
    return "/".join(str(e) for e in epochs)


def _some(names: list[str], what: str, limit: int = 8) -> str:
    """``2 speakers: OAF, YAF``; only the count beyond ``limit`` names."""
    head = f"{len(names)} {what}{'s' if len(names) != 1 else ''}"
    return head if len(names) > limit else f"{head}: {', '.join(names)}"
