"""Thread limits, in one place: BLAS (threadpoolctl), torch's pool, and spawned workers.

Three things decide how many threads a computation uses: the BLAS libraries loaded in this
process (limited at run time with threadpoolctl), torch's intra-op pool, and, for worker
processes started with ``spawn``, the environment they inherit (read when their BLAS loads).
Every limit sonotype sets goes through this module and is restored when its block ends, so
a caller's own settings survive a run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["THREAD_VARS", "limit_blas", "one_blas_thread", "single_threaded_children", "single_threaded_worker",
           "torch_threads"]

# The variables OpenMP/OpenBLAS/MKL/numexpr/Accelerate read when they load in a new process.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


@lru_cache(maxsize=1)
def _controller() -> Any:
    """One threadpoolctl controller per process (building one inspects every loaded library)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return None
    return ThreadpoolController()


@contextmanager
def limit_blas(n: int = 1) -> Iterator[None]:
    """Run BLAS with at most ``n`` threads inside the block (restored after).

    Parameters
    ----------
    n : int
        Thread limit for every BLAS library loaded in this process.
    """
    ctl = _controller()
    if ctl is None:  # pragma: no cover
        yield
        return
    with ctl.limit(limits=int(n), user_api="blas"):
        yield


def one_blas_thread() -> Any:
    """Run BLAS single-threaded inside the block.

    Multi-threaded OpenBLAS splits skinny products (the chroma filterbank) differently from
    one thread, which changes float32 rounding: features would then depend on the caller's
    thread settings. One thread gives the same bits in every process (workers, parent,
    predict), and small products gain nothing from threads (a 720 x 210 logistic-regression
    fit was 60x slower threaded on a shared 2-core machine, 10.9 s against 0.18 s).
    """
    return limit_blas(1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` inside the block (None: unchanged), restored after.

    Parameters
    ----------
    n : int or None
        Threads for torch's CPU kernels; results of a training run depend on it only through
        float rounding, so ``train.num_threads: 1`` makes them bit-reproducible.
    """
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes spawned inside this block start with one-thread BLAS/OpenMP settings.

    The parent's environment is restored when the block ends; the children keep what they
    inherited at start.
    """
    old = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


def single_threaded_worker() -> None:
    """In a worker process: BLAS limited to one thread for the life of the process.

    The inherited environment (:func:`single_threaded_children`) covers libraries loaded
    after start; this covers any already loaded when the worker's initialiser runs.
    """
    ctl = _controller()
    if ctl is not None:
        ctl.limit(limits=1)  # BLAS and OpenMP, for the life of the process
