"""1D convolutional networks over (T, F) sequences: frames in time, features as channels.

``cnn1d`` reproduces the two seed networks; their flatten size depends on T, so they
take exactly the T they were built for. ``cnn1d-bn`` pools globally over time and takes
any T (the recommended sequence model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models.layers import TemporalPool, clamp_pool, conv_out, conv_padding, feature_size

__all__ = ["CNN1DBN", "CNN1DSeed"]

VARIANTS_1D = ("seed-a", "seed-b")


def _length_channels(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(length, channels) of an input: (T, F) -> (T, F); a (D,) vector -> (D, 1)."""
    if len(input_shape) == 1:
        return int(input_shape[0]), 1
    if len(input_shape) == 2:
        return int(input_shape[0]), int(input_shape[1])
    raise ParameterError(f"1D CNNs take (T, F) sequences or (D,) vectors, got input_shape {input_shape}")


class _ChannelsFirst(nn.Module):
    """(B, T, F) -> (B, F, T); (B, D) -> (B, 1, D)."""

    def __init__(self, vector: bool) -> None:
        super().__init__()
        self.vector = vector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if self.vector else x.transpose(1, 2)


class CNN1DSeed(nn.Module):
    """The seeds' 1D CNNs.

    ``variant="seed-a"`` (lab report, 13 MFCC x 216 frames): Conv1D 64 k3 + ReLU + BN +
    MaxPool 2 + Dropout 0.2, Conv1D 128 k3 + ReLU + BN + MaxPool 2 + Dropout 0.2, Flatten,
    Dense 128 + ReLU + Dropout 0.2, linear head. Valid convolutions as in Keras.

    ``variant="seed-b"`` (student project, the MFCC vector read as a 1-channel sequence):
    Conv1D 64, 64, Dropout 0.25, MaxPool 2, Conv1D 128 x3, Dropout 0.25, MaxPool 2,
    Conv1D 256, Flatten, linear head; ReLU after each conv, 'same' padding.

    Robust to short inputs: where a valid convolution or a pooling would shrink the time
    axis below 1, the build clamps it (padding just enough, pooling kernel at most the
    length), decided from ``input_shape`` only. The flatten size follows T, so the module
    accepts exactly the ``input_shape`` it was built for.

    Parameters
    ----------
    input_shape : (T, F) or (D,)
        A sequence of frames, or a vector read as a one-channel sequence.
    n_classes : int
    variant : {"seed-a", "seed-b"}
    kernel_size : int
    dropout : float, optional
        Overrides the variant's dropout.
    dense : int
        Width of seed-a's dense layer.

    Examples
    --------
    >>> import torch
    >>> CNN1DSeed((216, 13), 4).eval()(torch.zeros(2, 216, 13)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        variant: str = "seed-a",
        kernel_size: int = 3,
        dropout: float | None = None,
        dense: int = 128,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS_1D:
            raise ParameterError(f"cnn1d variant must be one of {', '.join(VARIANTS_1D)}, got {variant!r}")
        length, channels = _length_channels(tuple(input_shape))
        self.input_layout = "vector" if len(input_shape) == 1 else "TF"
        k = int(kernel_size)
        layers: list[nn.Module] = [_ChannelsFirst(len(input_shape) == 1)]

        def conv(c_in: int, c_out: int, same: bool, bn: bool) -> None:
            nonlocal length
            pad = conv_padding(length, k, k // 2 if same else 0)
            layers.extend([nn.Conv1d(c_in, c_out, k, padding=pad), nn.ReLU()])
            if bn:
                layers.append(nn.BatchNorm1d(c_out))
            length = conv_out(length, k, 1, pad)

        def pool() -> None:
            nonlocal length
            kp = clamp_pool(length, 2)
            layers.append(nn.MaxPool1d(kp) if kp > 1 else nn.Identity())
            length //= kp

        if variant == "seed-a":
            p = 0.2 if dropout is None else float(dropout)
            conv(channels, 64, False, True)
            pool()
            layers.append(nn.Dropout(p))
            conv(64, 128, False, True)
            pool()
            layers.extend([nn.Dropout(p), nn.Flatten()])
            trunk = nn.Sequential(*layers)
            flat = feature_size(trunk, tuple(input_shape))[0]
            head = [nn.Linear(flat, dense), nn.ReLU(), nn.Dropout(p), nn.Linear(dense, n_classes)]
        else:
            p = 0.25 if dropout is None else float(dropout)
            conv(channels, 64, True, False)
            conv(64, 64, True, False)
            layers.append(nn.Dropout(p))
            pool()
            for c_in in (64, 128, 128):
                conv(c_in, 128, True, False)
            layers.append(nn.Dropout(p))
            pool()
            conv(128, 256, True, False)
            layers.append(nn.Flatten())
            trunk = nn.Sequential(*layers)
            flat = feature_size(trunk, tuple(input_shape))[0]
            head = [nn.Linear(flat, n_classes)]
        self.trunk = trunk
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class CNN1DBN(nn.Module):
    """Recommended 1D CNN over (T, F) sequences: works for any T.

    Blocks of ``Conv1d(kernel_size, 'same') -> BatchNorm -> ReLU -> MaxPool(2)`` over time
    (ceil mode, so a length-1 sequence survives), then global pooling over time
    (``pooling``: avg, max, avgmax or attention), dropout and a linear head.

    Parameters
    ----------
    input_shape : (T, F)
        Frames x features (T may differ at prediction time).
    n_classes : int
    channels : sequence of int
        One block per entry.
    kernel_size : int
    pooling : {"avg", "max", "avgmax", "attention"}
    dropout : float

    Examples
    --------
    >>> import torch
    >>> net = CNN1DBN((100, 40), 3).eval()
    >>> net(torch.zeros(2, 100, 40)).shape, net(torch.zeros(1, 7, 40)).shape  # any length
    (torch.Size([2, 3]), torch.Size([1, 3]))
    """

    input_layout = "TF"
    variable_axis = 0  # T of (T, F) may differ from input_shape

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        channels: Sequence[int] = (64, 128, 128),
        kernel_size: int = 5,
        pooling: str = "avgmax",
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ParameterError(f"cnn1d-bn takes (T, F) sequences, got input_shape {tuple(input_shape)}")
        channels = [int(c) for c in channels]
        if not channels or any(c <= 0 for c in channels):
            raise ParameterError(f"channels must list positive widths, got {channels}")
        k = int(kernel_size)
        layers: list[nn.Module] = [_ChannelsFirst(False)]
        c_in = int(input_shape[1])
        for i, c in enumerate(channels):
            layers += [nn.Conv1d(c_in, c, k, padding=k // 2, bias=False), nn.BatchNorm1d(c), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool1d(2, ceil_mode=True))
            c_in = c
        self.trunk = nn.Sequential(*layers)
        self.pool = TemporalPool(c_in, pooling)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.pool.out_channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.trunk(x)))
