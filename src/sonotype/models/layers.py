"""Building blocks shared by the model families: shape arithmetic and pooling over time.

The seed architectures flatten a feature map whose size depends on the input size, so a
pooling or valid convolution that would shrink a dimension below 1 must be clamped at
build time. The helpers here decide, from the known input size, the kernel and padding
that keep every dimension >= 1; the decision depends only on ``input_shape`` so the same
JSON rebuilds the same module.
"""

from __future__ import annotations

import torch
from torch import nn

from sonotype.errors import ParameterError

__all__ = ["POOLINGS", "TemporalPool", "clamp_pool", "conv_out", "conv_padding", "feature_size"]

POOLINGS = ("avg", "max", "avgmax", "attention")


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis (floor mode).

    Parameters
    ----------
    size, kernel, stride, padding : int

    Returns
    -------
    int

    Examples
    --------
    >>> conv_out(216, 3), conv_out(216, 2, stride=2)
    (214, 108)
    """
    return (size + 2 * padding - kernel) // stride + 1


def conv_padding(size: int, kernel: int, padding: int = 0) -> int:
    """The padding to use so that a convolution of ``kernel`` keeps ``size`` >= 1.

    Keeps the requested ``padding`` when the input is long enough; otherwise the
    smallest padding for which the output has length 1 or more.

    Parameters
    ----------
    size, kernel, padding : int

    Returns
    -------
    int

    Examples
    --------
    >>> conv_padding(10, 3), conv_padding(1, 3)
    (0, 1)
    """
    if size + 2 * padding >= kernel:
        return padding
    return (kernel - size + 1) // 2


def clamp_pool(size: int, kernel: int) -> int:
    """Pooling kernel clamped to ``size`` (1 = no pooling) so the output is never empty.

    Parameters
    ----------
    size, kernel : int

    Returns
    -------
    int

    Examples
    --------
    >>> clamp_pool(10, 2), clamp_pool(1, 2)
    (2, 1)
    """
    return max(1, min(kernel, size))


def feature_size(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape (without batch) of ``module``'s output for one zero input, in eval mode.

    Used once at build time to size the dense layer after a flatten; eval mode and a
    zero input leave BatchNorm statistics and the random state untouched.

    Parameters
    ----------
    module : torch.nn.Module
    input_shape : tuple of int
        Without the batch axis.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> feature_size(nn.Conv1d(4, 8, 3), (4, 20))
    (8, 18)
    """
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros(1, *input_shape))
    module.train(was_training)
    return tuple(out.shape[1:])


class TemporalPool(nn.Module):
    """Pool a (B, C, T) feature sequence over time into (B, C) or (B, 2C).

    ``avg`` and ``max`` are the global pools; ``avgmax`` concatenates both (robust to
    clips where the cue is short); ``attention`` learns a score per frame and takes the
    softmax-weighted mean, so the model can ignore silent frames. All work for any T >= 1.

    Parameters
    ----------
    channels : int
        C of the input.
    mode : {"avg", "max", "avgmax", "attention"}

    Examples
    --------
    >>> TemporalPool(8, "avgmax")(torch.zeros(2, 8, 5)).shape
    torch.Size([2, 16])
    """

    def __init__(self, channels: int, mode: str = "avgmax") -> None:
        super().__init__()
        if mode not in POOLINGS:
            raise ParameterError(f"pooling must be one of {', '.join(POOLINGS)}, got {mode!r}")
        self.mode = mode
        self.out_channels = 2 * channels if mode == "avgmax" else channels
        self.score = nn.Conv1d(channels, 1, kernel_size=1) if mode == "attention" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=2)
        if self.mode == "max":
            return x.amax(dim=2)
        if self.mode == "avgmax":
            return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        weights = torch.softmax(self.score(x), dim=2)  # (B, 1, T)
        return (x * weights).sum(dim=2)
