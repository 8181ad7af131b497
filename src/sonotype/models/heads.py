"""Heads over pretrained-backbone embeddings.

``layer-weighted-mlp`` takes one clip's pooled embedding of every hidden state, (L, D)
(``BackboneConfig(layer="all")``), and learns which layers matter: each layer's vector is
layer-normalised (layer scales differ by orders of magnitude), the L vectors are summed
with softmax weights (the SUPERB recipe), and an MLP classifies the sum. The learned
weights are readable afterwards (:meth:`LayerWeightedMLP.layer_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models import register_model

__all__ = ["LayerWeightedMLP"]


class LayerWeightedMLP(nn.Module):
    """Softmax-weighted sum over layers, then ``Linear -> ReLU -> Dropout`` blocks and a linear head.

    Parameters
    ----------
    input_shape : (L, D)
        Hidden states per clip and their width.
    n_classes : int
    hidden : sequence of int
        Widths of the MLP's hidden layers (empty = linear head on the weighted sum).
    dropout : float

    Examples
    --------
    >>> LayerWeightedMLP((7, 512), 4, hidden=(64,)).eval()(torch.zeros(2, 7, 512)).shape
    torch.Size([2, 4])
    """

    input_layout = "layers"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ParameterError(f"layer-weighted-mlp takes (layers, width) items, got input_shape {input_shape}")
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        n_layers, width = (int(s) for s in input_shape)
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        blocks: list[nn.Module] = []
        for h in (int(h) for h in hidden):
            if h <= 0:
                raise ParameterError(f"hidden layer widths must be > 0, got {list(hidden)}")
            blocks += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        blocks.append(nn.Linear(width, n_classes))
        self.mlp = nn.Sequential(*blocks)

    def layer_weights(self) -> torch.Tensor:
        """The learned weight of each layer (sums to 1), shape (L,)."""
        return torch.softmax(self.layer_logits.detach(), dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.layer_logits, dim=0)
        return self.mlp(torch.einsum("bld,l->bd", self.norm(x), w))


register_model(
    "layer-weighted-mlp",
    LayerWeightedMLP,
    {},
    "backbone embeddings of every layer (L, D): learned softmax layer weights + MLP",
)
