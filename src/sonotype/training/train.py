"""Train a classifier on in-memory (or memory-mapped) feature arrays, and predict with it.

:func:`fit` is the one training loop for every model: Adam/AdamW, cross-entropy with
optional inverse-frequency class weights and label smoothing, seeded mini-batches,
feature-level augmentation on training batches only, ReduceLROnPlateau, early stopping
on a validation metric with the best weights restored. The same seed on the same
machine gives the same history and weights.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonotype.errors import ConfigError, ParameterError
from sonotype.models.apply import batched_logits
from sonotype.models.linear import fit_linear
from sonotype.models.registry import check_item_shape
from sonotype.training.augment import feature_noise, mixup, spec_augment
from sonotype.training.config import AugmentConfig, TrainConfig
from sonotype.utils.console import make_console
from sonotype.utils.environment import bf16_native
from sonotype.utils.rng import torch_seed
from sonotype.utils.shards import is_lazy
from sonotype.utils.threads import torch_threads

__all__ = ["TrainConfig", "TrainResult", "fit", "inverse_frequency_weights"]



@dataclass
class TrainResult:
    """What :func:`fit` did.

    ``history`` has one record per epoch (``epoch`` counts from 1; validation values are
    None without a validation set); ``best_epoch`` is the epoch number (from 1) whose
    weights the model holds, i.e. ``history[best_epoch - 1]`` (see :attr:`best`).

    Attributes
    ----------
    history : list of dict
        ``epoch``, ``loss``, ``accuracy``, ``val_*``, ``lr``, ``seconds`` per epoch.
    best_epoch : int
    stopped_early : bool
    seconds : float
        Training wall time.

    Examples
    --------
    >>> r = TrainResult([{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.7}], best_epoch=2)
    >>> r.best["val_loss"]
    0.7
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def best(self) -> dict[str, Any]:
        """The history record of the epoch whose weights were kept."""
        return self.history[self.best_epoch - 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_arrays(
    model: nn.Module, X: Any, y: Any, n_classes: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(X, np.ndarray) and not is_lazy(X):
        raise ParameterError(f"{what} features must be a numpy array or memmap, got {type(X).__name__}")
    y = np.asarray(y)
    if X.ndim < 2 or X.shape[0] == 0:
        raise ParameterError(f"{what} features must have shape (N, ...) with N > 0, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ParameterError(
            f"{what} labels must have shape ({X.shape[0]},) to match features {X.shape}, got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ParameterError(f"{what} labels must be integer class ids, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ParameterError(
            f"{what} labels must be in [0, {n_classes - 1}], got range [{y.min()}, {y.max()}]"
        )
    check_item_shape(model, X.shape[1:], what)
    for start in range(0, X.shape[0], 4096):  # chunked: memmaps stay out of memory
        if not np.isfinite(X[start : start + 4096]).all():
            raise ParameterError(f"{what} features contain NaN or infinite values (rows from {start})")
    return X, y.astype(np.int64)


def inverse_frequency_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class loss weights ``n / (n_classes * n_c)`` (1.0 for classes absent from ``y``).

    A balanced label set gets all ones; a class with half the average count gets 2.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], int
        Training class ids.
    n_classes : int

    Returns
    -------
    np.ndarray [shape=(n_classes,)], float32

    Examples
    --------
    >>> inverse_frequency_weights(np.array([0, 0, 0, 1]), 3)
    array([0.44444445, 1.3333334 , 1.        ], dtype=float32)
    """
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return w.astype(np.float32)


def _layout_axes(model: nn.Module, x_ndim: int) -> tuple[int, int] | None:
    """(time_axis, freq_axis) of a batch for SpecAugment, from the model's ``input_layout``."""
    layout = getattr(model, "input_layout", None)
    if x_ndim == 3 and layout == "TF":
        return 1, 2
    if x_ndim == 3 and layout == "FT":
        return 2, 1
    return None


def fit(
    model: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    config: TrainConfig,
    augment: AugmentConfig | None = None,
    n_classes: int,
    progress: bool = True,
    console: Any = None,
    progress_label: str = "",
) -> TrainResult:
    """Train ``model`` in place and leave it holding the best epoch's weights.

    Parameters
    ----------
    model : torch.nn.Module
        Outputs logits of shape (B, n_classes); built by :func:`sonotype.models.registry.build_model`
        for shape checks and SpecAugment axes (``input_layout``).
    X_train : np.ndarray or np.memmap, shape (N, ...)
        Standardised float features; batches are read by index, so a memmap stays on disk.
    y_train : np.ndarray of int, shape (N,)
        Class ids in ``[0, n_classes)``.
    X_val, y_val : optional
        Validation data for early stopping, the plateau rule and the val_* history.
        Without them: ``max_epochs`` epochs, no early stopping, final weights kept.
    config : TrainConfig
    augment : AugmentConfig, optional
        Its feature part (SpecAugment, mixup, feature noise) is applied to training
        batches; the waveform part is the pipeline's business.
    n_classes : int
    progress : bool
        Print one line per epoch (rich) with train/val loss and accuracy, balanced
        accuracy, learning rate, seconds and ETA.
    console : rich.console.Console, optional
        Where to print (default: stderr).
    progress_label : str
        Printed before every epoch line (e.g. which ensemble member is training).

    Returns
    -------
    TrainResult
        Training-side loss/accuracy are measured on the augmented batches as trained.

    Raises
    ------
    ParameterError
        Shape or label mismatches, NaN inputs, or a loss that became NaN (naming the epoch).

    Examples
    --------
    >>> from sonotype.models.registry import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-1, 1, (40, 4)), rng.normal(1, 1, (40, 4))]).astype(np.float32)
    >>> y = np.repeat([0, 1], 40)
    >>> net = build_model("mlp-small", (4,), 2, seed=0)
    >>> res = fit(net, X, y, config=TrainConfig(max_epochs=5, patience=None), n_classes=2, progress=False)
    >>> len(res.history), res.best_epoch, res.stopped_early
    (5, 5, False)
    """
    X_train, y_train = _check_arrays(model, X_train, y_train, n_classes, "training")
    if getattr(model, "fitted_by", None) == "sklearn":
        # logreg / linear-svm: scikit-learn on training + validation items, each item its own
        # inner-CV group (for grouped data call sonotype.models.linear.fit_linear with groups).

        if (X_val is None) != (y_val is None):
            raise ParameterError("give both X_val and y_val, or neither")
        if X_val is not None:
            X_train, y_train = np.concatenate([X_train, X_val]), np.concatenate([y_train, np.asarray(y_val)])
        return TrainResult(seconds=fit_linear(model, X_train, y_train)["seconds"])
    if X_train.shape[0] < 2:
        raise ParameterError(f"training needs at least 2 items (BatchNorm), got {X_train.shape[0]}")
    has_val = X_val is not None
    if has_val != (y_val is not None):
        raise ParameterError("give both X_val and y_val, or neither")
    if has_val:
        X_val, y_val = _check_arrays(model, X_val, y_val, n_classes, "validation")
    aug = augment or AugmentConfig()
    axes = _layout_axes(model, X_train.ndim)
    if aug.enabled_spec and axes is None:
        raise ConfigError(
            f"SpecAugment needs (T, F) or (F, T) items and a model with input_layout 'TF' or 'FT'; "
            f"got items {X_train.shape[1:]} and layout {getattr(model, 'input_layout', None)!r}"
        )
    if progress and console is None:
        console = make_console()

    old_det = torch.are_deterministic_algorithms_enabled()
    try:
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        with torch_threads(config.num_threads), torch_seed(config.seed):
            return _loop(
                model,
                X_train,
                y_train,
                X_val,
                y_val,
                config,
                aug,
                axes,
                n_classes,
                console if progress else None,
                progress_label,
            )
    finally:
        torch.use_deterministic_algorithms(old_det)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, over the model's parameters."""
    if cfg.optimizer == "sgd":  # the tutorial seed (C) trains with SGD
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _train_epoch(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    aug: AugmentConfig,
    axes: tuple[int, int] | None,
    n_classes: int,
    gen: torch.Generator,
    opt: torch.optim.Optimizer,
    weight: torch.Tensor | None,
    bf16: bool,
    epoch: int,
) -> tuple[float, float, float]:
    """One pass over the shuffled training set: (summed loss, correct, items seen)."""
    n = X.shape[0]
    model.train()
    order = torch.randperm(n, generator=gen).numpy()
    starts = list(range(0, n, cfg.batch_size))
    if n > 1 and n - starts[-1] == 1 and len(starts) > 1:
        starts.pop()  # a batch of one breaks BatchNorm: drop that single leftover item
    tot_loss = tot_correct = tot_seen = 0.0
    for b, s in enumerate(starts):
        idx = np.sort(order[s : s + cfg.batch_size])  # sorted reads are fast on memmaps
        xb = torch.from_numpy(np.ascontiguousarray(X[idx], dtype=np.float32))
        yb = torch.from_numpy(y[idx])
        xb = feature_noise(xb, aug.feature_noise_std, gen)
        if axes is not None:
            xb = spec_augment(xb, aug, gen, time_axis=axes[0], freq_axis=axes[1])
        target: torch.Tensor = yb
        if aug.mixup_alpha > 0:
            xb, target = mixup(xb, F.one_hot(yb, n_classes).float(), aug.mixup_alpha, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb)
        logits = logits.float()
        if logits.shape != (xb.shape[0], n_classes):
            raise ParameterError(
                f"model output has shape {tuple(logits.shape)}, expected ({xb.shape[0]}, {n_classes}) logits"
            )
        loss = F.cross_entropy(logits, target, weight=weight, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise ParameterError(
                f"training loss became {loss.item()} at epoch {epoch} (batch {b + 1}); "
                f"try a lower lr (now {opt.param_groups[0]['lr']:g}) or check the features"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        k = xb.shape[0]
        tot_loss += loss.item() * k
        tot_correct += (logits.argmax(1) == yb).sum().item()
        tot_seen += k
    return tot_loss, tot_correct, tot_seen


def _loop(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    cfg: TrainConfig,
    aug: AugmentConfig,
    axes: tuple[int, int] | None,
    n_classes: int,
    console: Any,
    label: str = "",
) -> TrainResult:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    bf16 = cfg.precision == "bf16" and _native_bf16()
    weight = torch.from_numpy(inverse_frequency_weights(y, n_classes)) if cfg.class_weights else None
    opt = _optimizer(model, cfg)
    has_val = X_val is not None
    mode = "min" if cfg.monitor == "val_loss" or not has_val else "max"
    sched = None
    if cfg.plateau_patience is not None:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode=mode,
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            threshold=cfg.min_delta,
            threshold_mode="abs",
        )
    result = TrainResult()
    best_value: float | None = None
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    for epoch in range(1, cfg.max_epochs + 1):
        e0 = time.perf_counter()
        tot_loss, tot_correct, tot_seen = _train_epoch(model, X, y, cfg, aug, axes, n_classes, gen, opt, weight,
                                                       bf16, epoch)
        rec: dict[str, Any] = {
            "epoch": epoch,
            "loss": tot_loss / tot_seen,
            "accuracy": tot_correct / tot_seen,
            "val_loss": None,
            "val_accuracy": None,
            "val_balanced_accuracy": None,
            "lr": opt.param_groups[0]["lr"],
        }
        if has_val:
            rec.update(_evaluate(model, X_val, y_val, cfg.batch_size))
        rec["seconds"] = time.perf_counter() - e0
        result.history.append(rec)
        if not has_val:
            best_state, result.best_epoch = None, epoch
            if sched is not None:
                sched.step(rec["loss"])
        else:
            value = rec[cfg.monitor]
            if _improved(value, rec["val_loss"], best_value, best_loss, cfg):
                best_value, best_loss = value, rec["val_loss"]
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch, since_best = epoch, 0
            else:
                since_best += 1
            if sched is not None:
                sched.step(value)
        if console is not None:
            _print_epoch(console, rec, cfg.max_epochs, time.perf_counter() - t0, label)
        if has_val and cfg.patience is not None and since_best >= cfg.patience:
            result.stopped_early = epoch < cfg.max_epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


def _native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN); warn when it does not.

    The warnings module's default filter shows the warning once per calling location, so a
    run of many fits says it once without a flag of our own.
    """

    ok = bf16_native()
    if not ok:
        warnings.warn("train.precision bf16: this CPU has no native bfloat16; training in float32", stacklevel=3)
    return ok


def _improved(value: float, loss: float, best: float | None, best_loss: float, cfg: TrainConfig) -> bool:
    """Better by more than min_delta; for accuracy monitors a tie is broken by a lower val_loss."""
    if best is None:
        return True
    if cfg.monitor == "val_loss":
        return value < best - cfg.min_delta
    return value > best + cfg.min_delta or (value == best and loss < best_loss)


def _evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    logits = batched_logits(model, X, batch_size=max(batch_size, 256))
    pred = logits.argmax(1).numpy()
    return {
        "val_loss": float(F.cross_entropy(logits, torch.from_numpy(y))),
        "val_accuracy": float(np.mean(pred == y)),
        "val_balanced_accuracy": _balanced_accuracy(y, pred),
    }


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy (mean recall over the classes present in ``y``, UAR).

    A class predicted but absent from the validation labels has no recall to average; that
    is expected in small validation parts, so scikit-learn's warning about it is silenced.
    """

    from sklearn.metrics import (  # heavy: scikit-learn loads in ~0.5 s; only this path needs it
        balanced_accuracy_score,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y, pred))


def _fmt_time(s: float) -> str:
    s = round(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _print_epoch(console: Any, rec: dict[str, Any], total: int, elapsed: float, label: str = "") -> None:
    eta = elapsed / rec["epoch"] * (total - rec["epoch"])
    line = (
        f"{label}epoch {rec['epoch']:>{len(str(total))}}/{total}  loss {rec['loss']:.4f}  acc {rec['accuracy']:.3f}"
    )
    if rec["val_loss"] is not None:
        line += (
            f"  | val loss {rec['val_loss']:.4f}  acc {rec['val_accuracy']:.3f}"
            f"  bal {rec['val_balanced_accuracy']:.3f}"
        )
    line += f"  | lr {rec['lr']:.2g}  {rec['seconds']:.1f}s  ETA {_fmt_time(eta)}"
    console.print(line, highlight=False, soft_wrap=True)
