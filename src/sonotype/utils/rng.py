"""Seeded torch randomness that leaves the caller's random state alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_seed"]


@contextmanager
def torch_seed(seed: int) -> Iterator[None]:
    """Inside the block torch's CPU generator starts from ``seed``; afterwards it is as it was.

    ``torch.manual_seed`` would also queue a seed for CUDA generators not yet initialised,
    changing a notebook user's GPU random state later; sonotype's networks are built and
    trained on the CPU, so only the CPU generator is seeded (and forked).

    Parameters
    ----------
    seed : int
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        yield
