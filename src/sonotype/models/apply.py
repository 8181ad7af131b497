"""A built network applied to items: logits and class probabilities in batches, training or not."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models.registry import check_item_shape
from sonotype.utils.shards import is_lazy

__all__ = ["batched_logits", "predict_proba"]


def batched_logits(model: nn.Module, X: np.ndarray, *, batch_size: int) -> torch.Tensor:
    """Logits of ``X`` in eval mode, ``batch_size`` items at a time, without gradients (the mode is restored)."""
    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, X.shape[0], batch_size):
            outs.append(
                model(
                    torch.from_numpy(np.array(X[s : s + batch_size], dtype=np.float32))
                )  # copy: memmaps are read-only
            )
    model.train(was_training)
    return torch.cat(outs)


def predict_proba(model: nn.Module, X: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax of the logits) in eval mode, without gradients.

    Parameters
    ----------
    model : torch.nn.Module
    X : np.ndarray or np.memmap, shape (N, ...)
        Items standardised like the training data.
    batch_size : int

    Returns
    -------
    np.ndarray, float32, shape (N, n_classes)

    Examples
    --------
    >>> from sonotype.models.registry import build_model
    >>> P = predict_proba(build_model("mlp-small", (4,), 3, seed=0), np.zeros((5, 4), np.float32))
    >>> P.shape, bool(np.allclose(P.sum(axis=1), 1.0))
    ((5, 3), True)
    """
    if not (isinstance(X, np.ndarray) or is_lazy(X)) or X.ndim < 2:
        raise ParameterError(
            f"predict_proba needs an array of shape (N, ...), got {getattr(X, 'shape', type(X))}"
        )
    check_item_shape(model, X.shape[1:], "prediction")
    if X.shape[0] == 0:
        n_out = model.sonotype_spec["n_classes"] if hasattr(model, "sonotype_spec") else 0
        return np.zeros((0, n_out), dtype=np.float32)
    if int(batch_size) < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    return torch.softmax(batched_logits(model, X, batch_size=int(batch_size)), dim=1).numpy().astype(np.float32)
