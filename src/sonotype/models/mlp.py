"""Dense networks over clip-level feature vectors: the seeds' MLPs and a residual MLP.

Inputs of any shape are flattened, so the same models take a (D,) statistics vector or
a single (D,) frame (the lab report's "frames" variant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sonotype.errors import ParameterError

__all__ = ["MLP", "ResMLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ParameterError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _per_layer(value: float | Sequence[float], n: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        out = [float(value)] * n
    else:
        out = [float(v) for v in value]
    if len(out) != n:
        raise ParameterError(f"{name} needs one value per hidden layer ({n}), got {list(value)}")
    if any(not 0.0 <= v < 1.0 for v in out):
        raise ParameterError(f"{name} values must be in [0, 1), got {out}")
    return out


class MLP(nn.Module):
    """Stack of ``Linear -> activation -> BatchNorm -> Dropout`` blocks and a linear head.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one item; flattened to ``prod(input_shape)`` inputs.
    n_classes : int
        Number of output logits.
    hidden : sequence of int
        Width of each hidden layer, e.g. the lab report's ``(256, 128, 64)``.
    dropout : float or sequence of float
        Dropout after each hidden layer (one value or one per layer; 0 = none).
    batchnorm : bool
        BatchNorm after each hidden layer's activation, as in the seeds.
    activation : {"relu", "elu", "gelu"}

    Examples
    --------
    >>> import torch
    >>> net = MLP((37,), 5, hidden=(32, 16)).eval()
    >>> net(torch.zeros(4, 37)).shape
    torch.Size([4, 5])
    """

    input_layout = "vector"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        hidden: Sequence[int] = (256, 128, 64),
        dropout: float | Sequence[float] = 0.3,
        batchnorm: bool = True,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if any(h <= 0 for h in hidden):
            raise ParameterError(f"hidden layer widths must be > 0, got {hidden}")
        drops = _per_layer(dropout, len(hidden), "dropout")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h, p in zip(hidden, drops, strict=True):
            layers += [nn.Linear(width, h), _activation(activation)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            if p > 0:
                layers.append(nn.Dropout(p))
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResBlock(nn.Module):
    """``x + Dropout(BN(Linear(Dropout(ReLU(BN(Linear(x)))))))`` followed by ReLU."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class ResMLP(nn.Module):
    """Residual MLP over clip statistics (seed E's "dense network with residual connections").

    An input projection ``Linear -> BN -> ReLU`` to ``width``, ``blocks`` residual blocks
    of two BatchNorm'd linear layers with dropout, then dropout and a linear head. The
    skip connections let it be deeper than the plain MLP without losing the gradient,
    and BatchNorm makes it insensitive to the feature scales that stats vectors mix.

    Parameters
    ----------
    input_shape : tuple of int
        One item; flattened.
    n_classes : int
    width : int
        Width of the projection and of every block.
    blocks : int
        Residual blocks (0: projection and head only).
    dropout : float
        In [0, 1).

    Examples
    --------
    >>> import torch
    >>> ResMLP((74,), 3, width=64).eval()(torch.zeros(2, 74)).shape
    torch.Size([2, 3])
    """

    input_layout = "vector"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        width: int = 256,
        blocks: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if width <= 0 or blocks < 0:
            raise ParameterError(
                f"resmlp needs width > 0 and blocks >= 0, got width={width}, blocks={blocks}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        self.stem = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.BatchNorm1d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(*[_ResBlock(width, dropout) for _ in range(blocks)])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
