"""2D convolutional networks over (F, T) log-mel patches (the model adds the channel axis).

``cnn2d`` reproduces the seed networks, whose flatten size depends on the patch size, so
they take exactly the (F, T) they were built for. ``crnn`` / ``cnn-bn`` pool in frequency
inside the network and globally over time at the end, so they take any T (the
recommended log-mel models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models.layers import TemporalPool, clamp_pool, conv_out, conv_padding, feature_size

__all__ = ["CRNN", "CNN2DSeed"]

VARIANTS_2D = ("seed-b", "tutorial", "seed-d")


def _check_ft(input_shape: tuple[int, ...], name: str) -> tuple[int, int]:
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ParameterError(f"{name} takes (F, T) log-mel patches, got input_shape {tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1])


class _AddChannel(nn.Module):
    """(B, F, T) -> (B, 1, F, T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class _ChannelsLast(nn.Module):
    """Switch activations to channels-last memory layout (values unchanged).

    On CPU, max-pooling an NCHW tensor is several times slower than channels-last
    (measured 31 ms vs 5 ms for a (19, 16, 128, 130) map on one core), and the
    convolutions after follow the input's layout. Placed after the first convolution
    because a one-channel input cannot carry the layout; weights keep the default
    layout, so state_dicts stay contiguous for safetensors.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)


class CNN2DSeed(nn.Module):
    """The seeds' 2D CNNs over one-channel log-mel patches.

    - ``seed-b`` (student project): 5 blocks of Conv 3x3 ('same') + ReLU + MaxPool 2 with
      8, 16, 32, 64, 96 channels, Flatten, Linear.
    - ``tutorial`` (seed C): Conv 32 3x3 stride 2 + AvgPool 2 + ReLU, Conv 64 3x3 + AvgPool 2
      + ReLU, Conv 64 3x3 + AvgPool 2 + ReLU, Flatten, Dropout 0.5, Dense 64 + ReLU,
      Dropout 0.5, linear head. Valid convolutions as in Keras; one input channel, not RGB.
    - ``seed-d`` (classical vs rap lab): the report gives only its size (845,218
      parameters for its input), not its layers; this is our small reconstruction:
      3 blocks Conv 3x3 + BN + ReLU + MaxPool 2 (16, 32, 64 channels), Flatten,
      Dense 128 + ReLU, Dropout 0.5, linear head.

    Robust to small patches: a pooling or valid convolution that would shrink an axis
    below 1 is clamped at build time (kernel at most the axis length, just enough
    padding), from ``input_shape`` only, so the same JSON rebuilds the same module. The
    flatten size follows the patch size: the module takes exactly its ``input_shape``.

    Parameters
    ----------
    input_shape : (F, T)
        Mel bands x frames.
    n_classes : int
    variant : {"seed-b", "tutorial", "seed-d"}

    Examples
    --------
    >>> import torch
    >>> CNN2DSeed((64, 94), 5, variant="seed-d").eval()(torch.zeros(2, 64, 94)).shape
    torch.Size([2, 5])
    """

    input_layout = "FT"

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, *, variant: str = "seed-b") -> None:
        super().__init__()
        if variant not in VARIANTS_2D:
            raise ParameterError(f"cnn2d variant must be one of {', '.join(VARIANTS_2D)}, got {variant!r}")
        size = list(_check_ft(tuple(input_shape), "cnn2d"))
        layers: list[nn.Module] = [_AddChannel()]

        def conv(c_in: int, c_out: int, *, stride: int = 1, same: bool = False) -> None:
            pads = [conv_padding(s, 3, 1 if same else 0) for s in size]
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=tuple(pads)))
            for i in range(2):
                size[i] = conv_out(size[i], 3, stride, pads[i])

        def pool(kind: type[nn.Module]) -> None:
            k = tuple(clamp_pool(s, 2) for s in size)
            layers.append(kind(k) if max(k) > 1 else nn.Identity())
            for i in range(2):
                size[i] //= k[i]

        if variant == "seed-b":
            c_in = 1
            for c in (8, 16, 32, 64, 96):
                conv(c_in, c, same=True)
                layers.append(nn.ReLU())
                pool(nn.MaxPool2d)
                c_in = c
            layers.append(nn.Flatten())
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(feature_size(self.trunk, tuple(input_shape))[0], n_classes))
        elif variant == "tutorial":
            for c_in, c_out, stride in ((1, 32, 2), (32, 64, 1), (64, 64, 1)):
                conv(c_in, c_out, stride=stride)
                pool(nn.AvgPool2d)
                layers.append(nn.ReLU())
            layers.append(nn.Flatten())
            self.trunk = nn.Sequential(*layers)
            flat = feature_size(self.trunk, tuple(input_shape))[0]
            self.head = nn.Sequential(
                nn.Dropout(0.5), nn.Linear(flat, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, n_classes)
            )
        else:
            c_in = 1
            for c in (16, 32, 64):
                conv(c_in, c, same=True)
                layers += [nn.BatchNorm2d(c), nn.ReLU()]
                pool(nn.MaxPool2d)
                c_in = c
            layers.append(nn.Flatten())
            self.trunk = nn.Sequential(*layers)
            flat = feature_size(self.trunk, tuple(input_shape))[0]
            self.head = nn.Sequential(
                nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, n_classes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class CRNN(nn.Module):
    """Recommended log-mel network: BatchNorm CNN, optional GRU, pooling over time; any T.

    Blocks of ``convs_per_block`` x (Conv 3x3 'same' -> BatchNorm -> ReLU), then MaxPool
    by 2 in frequency (clamped when F is small) and, in the first ``time_pools`` blocks,
    by 2 in time (ceil mode, so T = 1 survives). The frequency axis is then averaged
    away; with ``rnn_hidden > 0`` a bidirectional GRU reads the frame sequence (the
    "R" of CRNN). Global ``pooling`` over time (avg, max, avgmax, attention), dropout,
    linear head. ``cnn-bn`` is the same network without the GRU.

    Parameters
    ----------
    input_shape : (F, T)
        Mel bands x frames (T may differ at prediction time).
    n_classes : int
    channels : sequence of int
        One block per entry.
    convs_per_block : int
    time_pools : int
        Blocks that also halve time.
    rnn_hidden : int
        GRU width per direction (0: no GRU).
    pooling : {"avg", "max", "avgmax", "attention"}
    dropout : float

    Examples
    --------
    >>> import torch
    >>> net = CRNN((64, 94), 4, channels=(8, 16)).eval()
    >>> net(torch.zeros(2, 64, 94)).shape, net(torch.zeros(1, 64, 10)).shape
    (torch.Size([2, 4]), torch.Size([1, 4]))
    """

    input_layout = "FT"
    variable_axis = 1  # T of (F, T) may differ from input_shape

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        channels: Sequence[int] = (16, 32, 64, 128),
        convs_per_block: int = 1,
        time_pools: int = 3,
        rnn_hidden: int = 64,
        pooling: str = "avgmax",
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        f, _ = _check_ft(tuple(input_shape), "crnn")
        channels = [int(c) for c in channels]
        if not channels or any(c <= 0 for c in channels) or convs_per_block < 1:
            raise ParameterError(
                f"crnn needs positive channels and convs_per_block >= 1, got {channels}, {convs_per_block}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [_AddChannel()]
        c_in = 1
        for i, c in enumerate(channels):
            for j in range(int(convs_per_block)):
                layers.append(nn.Conv2d(c_in, c, 3, padding=1, bias=False))
                if i == j == 0:
                    layers.append(_ChannelsLast())
                layers += [nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
            kf = clamp_pool(f, 2)
            kt = 2 if i < time_pools else 1
            if kf > 1 or kt > 1:
                layers.append(nn.MaxPool2d((kf, kt), ceil_mode=True))
            f = -(-f // kf)
        self.trunk = nn.Sequential(*layers)
        self.rnn = nn.GRU(c_in, rnn_hidden, batch_first=True, bidirectional=True) if rnn_hidden > 0 else None
        width = 2 * rnn_hidden if rnn_hidden > 0 else c_in
        self.pool = TemporalPool(width, pooling)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.pool.out_channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x).mean(dim=2)  # (B, C, T')
        if self.rnn is not None:
            h = self.rnn(h.transpose(1, 2))[0].transpose(1, 2)
        return self.head(self.pool(h))
