"""Train the members of an ensemble, one network per seed, optionally in worker processes.

The members are trained by :func:`sonotype.training.train.fit` (looked up on that module at call
time, so a patched ``train.fit`` is the one used); :func:`fit_members` stays importable
from :mod:`sonotype.training.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.training import train as _train
from sonotype.training.augment import AugmentConfig
from sonotype.training.train import TrainConfig, TrainResult

__all__ = ["fit_members"]


def fit_members(
    spec: dict[str, Any],
    seeds: Sequence[int],
    X_train: np.ndarray | Sequence[np.ndarray],
    y_train: np.ndarray | Sequence[np.ndarray],
    X_val: np.ndarray | Sequence[np.ndarray] | None = None,
    y_val: np.ndarray | Sequence[np.ndarray] | None = None,
    *,
    config: TrainConfig | Sequence[TrainConfig],
    augment: AugmentConfig | None = None,
    n_classes: int,
    jobs: int = 1,
    progress: bool = True,
    console: Any = None,
) -> tuple[list[nn.Module], list[TrainResult]]:
    """Train one network of architecture ``spec`` per seed (the members of an ensemble).

    Member ``i`` is initialised from ``seeds[i]`` and trained with ``config.seed = seeds[i]``,
    exactly as :func:`fit` would in this process. ``X_train`` / ``y_train`` are one training
    set for all members, or a list with one per member (e.g. different augmented copies); so
    are ``X_val`` / ``y_val`` (e.g. rotating validation groups), and ``config`` (e.g. each
    member's own epoch count for a final fit without validation). With ``jobs > 1`` the members
    train at the same time in ``min(jobs, len(seeds))`` spawned worker processes that read the arrays
    from memory-mapped temporary files (written once); each worker uses
    ``config.num_threads`` threads, or its share of the CPUs. With the same thread count the
    weights are identical to training the members one after another (tested).

    Parameters
    ----------
    spec : dict
        The architecture (:func:`~sonotype.models.model_spec`).
    seeds : sequence of int
        One member per seed.
    X_train, y_train, X_val, y_val : np.ndarray or list of np.ndarray
        As in :func:`fit`, or one per member.
    config : TrainConfig or list of TrainConfig
    augment : AugmentConfig, optional
    n_classes : int
    jobs : int
        Worker processes.
    progress : bool
    console : rich.console.Console, optional

    Returns
    -------
    (networks, results)
        In seed order; the networks are in eval mode.

    Examples
    --------
    >>> from sonotype.models import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-1, 1, (40, 4)), rng.normal(1, 1, (40, 4))]).astype(np.float32)
    >>> y = np.repeat([0, 1], 40)
    >>> spec = {"name": "mlp-small", "input_shape": [4], "n_classes": 2, "params": {}}
    >>> nets, results = fit_members(spec, [0, 1], X, y, config=TrainConfig(max_epochs=3, patience=None),
    ...                             n_classes=2, progress=False)
    >>> len(nets), [r.best_epoch for r in results]
    (2, [3, 3])
    """
    from sonotype.models import from_spec

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ParameterError("fit_members needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"member seeds must differ, got {seeds}")
    if (X_val is None) != (y_val is None):
        raise ParameterError("give both X_val and y_val, or neither")
    n = len(seeds)
    configs = list(config) if isinstance(config, (list, tuple)) else [config] * n
    if len(configs) != n:
        raise ParameterError(f"{n} seeds need {n} training configs, got {len(configs)}")
    per_member, Xs, ys = _per_member(X_train, y_train, n, "training")
    val_per_member, Xvs, yvs = _per_member(X_val, y_val, n, "validation")
    workers = max(1, min(int(jobs), n))
    if workers == 1:
        nets, results = [], []
        for i, seed in enumerate(seeds):
            net = from_spec(spec, seed=seed)
            res = _train.fit(net, Xs[i], ys[i], Xvs[i], yvs[i], config=replace(configs[i], seed=seed), augment=augment,
                      n_classes=n_classes, progress=progress, console=console, progress_label=_member_label(i, n))
            nets.append(net)
            results.append(res)
        return nets, results

    import multiprocessing as mp
    import os
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)  # unless a member's config sets num_threads
    with tempfile.TemporaryDirectory(prefix="sonotype-members-") as tmp:
        def saved(name: str, arr: np.ndarray) -> str:
            return _save_for_workers(os.path.join(tmp, f"{name}.npy"), arr)

        train_paths = [
            {"X_train": saved(f"X_train{i}", Xs[i]), "y_train": saved(f"y_train{i}", ys[i])}
            for i in range(n if per_member else 1)
        ]
        val_paths = [
            {k: saved(f"{k}{i}", a) for k, a in (("X_val", Xvs[i]), ("y_val", yvs[i])) if a is not None}
            for i in range(n if val_per_member else 1)
        ]
        jobs_args = [
            (spec, seed, {**val_paths[i if val_per_member else 0], **train_paths[i if per_member else 0]},
             replace(configs[i], seed=seed, num_threads=configs[i].num_threads or threads).to_dict(),
             None if augment is None else augment.to_dict(), n_classes, progress, _member_label(i, n))
            for i, seed in enumerate(seeds)
        ]
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            outs = list(pool.map(_member_worker, jobs_args))
    nets, results = [], []
    for state, res in outs:
        net = from_spec(spec)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        net.eval()
        nets.append(net)
        results.append(TrainResult(**res))
    return nets, results


def _save_for_workers(path: str, arr: Any) -> str:
    """``arr`` as a ``.npy`` file the member workers memory-map; returns ``path``."""
    from sonotype.utils.shards import is_lazy

    if is_lazy(arr):  # disk-backed items: copied chunk by chunk, never whole in memory
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=arr.shape)
        for s, block in zip(range(0, arr.shape[0], 4096), arr.chunks(4096)):
            out[s : s + len(block)] = block
        out.flush()
        del out
    else:
        np.save(path, np.asarray(arr))
    return path


def _per_member(X: Any, y: Any, n: int, what: str) -> tuple[bool, list[Any], list[Any]]:
    """(given per member?, one X per member, one y per member) from shared arrays or per-member lists."""
    listed = isinstance(X, (list, tuple))
    name = "X_train and y_train" if what == "training" else "X_val and y_val"
    if listed != isinstance(y, (list, tuple)):
        raise ParameterError(f"give {name} both as arrays or both as per-member lists")
    Xs, ys = (list(X), list(y)) if listed else ([X] * n, [y] * n)
    if len(Xs) != n or len(ys) != n:
        raise ParameterError(f"{n} seeds need {n} {what} sets, got {len(Xs)} X and {len(ys)} y")
    return listed, Xs, ys


def _member_label(i: int, n: int) -> str:
    return f"member {i + 1}/{n}  " if n > 1 else ""


def _member_worker(args: tuple) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One ensemble member in a worker process: arrays memory-mapped, progress to stderr."""
    from sonotype.models import from_spec

    spec, seed, paths, cfg_dict, aug_dict, n_classes, progress, label = args
    arrays = {k: np.load(p, mmap_mode="r") for k, p in paths.items()}
    net = from_spec(spec, seed=seed)
    augment = None if aug_dict is None else AugmentConfig.from_dict(aug_dict)
    y_val = None if "y_val" not in arrays else np.asarray(arrays["y_val"])
    res = _train.fit(net, arrays["X_train"], np.asarray(arrays["y_train"]), arrays.get("X_val"), y_val,
              config=TrainConfig.from_dict(cfg_dict), augment=augment, n_classes=n_classes, progress=progress,
              progress_label=label)
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}, res.to_dict()
