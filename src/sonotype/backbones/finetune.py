"""Fine-tuning: a backbone's top layers plus a small head, trained by :func:`sonotype.training.train.fit`.

The trainer works on numpy arrays, so the input is a waveform array (N, 2, S): channel 0
the samples at the backbone's rate (cropped or zero-padded to S), channel 1 a 0/1 mask of
the real samples, which the model uses to cut each clip back to its real length before
the backbone sees it (see :func:`waveform_array`).

A smaller learning rate for the backbone, with the trainer's single optimiser: each
unfrozen backbone parameter ``w`` is re-parametrised as ``w0 + s * delta`` with ``w0`` the
pretrained value (frozen, not saved) and ``delta`` trained from zero. Adam's steps are
invariant to gradient scale, so ``delta`` moves at the training lr and ``w`` at
``s * lr = finetune_lr``; weight decay pulls ``w`` back towards ``w0`` (L2-SP), not to zero.

The saved state holds only the head and the deltas; the pretrained weights are named
by the backbone identity recorded in ``model.json`` and reloaded from the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.extract import batchable, hidden_states, pool, prepare_waveforms
from sonotype.backbones.load import Backbone, load_backbone
from sonotype.errors import ConfigError, ModelError, ParameterError

__all__ = ["FINETUNE_NAME", "FineTuneClassifier", "check_identity", "from_spec", "waveform_array"]

FINETUNE_NAME = "backbone-finetune"


def waveform_array(
    waveforms: Sequence[np.ndarray], sr: int, backbone: Backbone, cfg: BackboneConfig, *, seconds: float
) -> np.ndarray:
    """Waveforms as one float32 array (N, 2, S) for :func:`sonotype.training.train.fit`.

    Parameters
    ----------
    waveforms : sequence of np.ndarray, each (samples,)
    sr : int
        Their rate; resampled to the backbone's.
    seconds : float
        Fixed length S / backbone rate: longer clips are cropped, shorter zero-padded
        and marked by the mask channel so the model sees only their real samples.
    """
    if not seconds > 0:
        raise ParameterError(f"seconds must be > 0, got {seconds}")
    n = int(round(seconds * backbone.sampling_rate))
    waves = prepare_waveforms(backbone, waveforms, sr, cfg)
    out = np.zeros((len(waves), 2, n), dtype=np.float32)
    for i, w in enumerate(waves):
        k = min(n, w.size)
        out[i, 0, :k] = w[:k]
        out[i, 1, :k] = 1.0
    return out


class _Delta(nn.Module):
    """Parametrisation ``w0 + scale * delta``; ``w0`` is a non-persistent buffer."""

    def __init__(self, w0: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.register_buffer("w0", w0.detach().clone(), persistent=False)
        self.scale = float(scale)

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        return self.w0 + self.scale * delta

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return (w - self.w0) / self.scale


def _layer_stack(backbone: Backbone) -> tuple[nn.ModuleList, list[nn.Module]]:
    """The transformer layers (bottom to top) and the final norms after them.

    Looks where Hugging Face audio models keep them: ``layers`` (Whisper encoder, AST in
    transformers 5), ``encoder.layers`` (wav2vec2 family), ``encoder.layer`` (older AST).
    """
    m = backbone.model
    enc = getattr(m, "encoder", None)
    for owner, name in ((m, "layers"), (enc, "layers"), (enc, "layer"), (m, "layer")):
        layers = getattr(owner, name, None) if owner is not None else None
        if isinstance(layers, nn.ModuleList) and len(layers):
            break
    else:
        raise ConfigError(f"backbone {backbone.model_id}: cannot find its transformer layers to fine-tune")
    norms = [
        x
        for x in (getattr(m, "layer_norm", None), getattr(enc, "layer_norm", None), getattr(m, "layernorm", None))
        if isinstance(x, nn.Module)
    ]
    return layers, norms


class FineTuneClassifier(nn.Module):
    """Backbone (top ``finetune_layers`` layers trainable) + pooling + MLP head.

    Carries a ``sonotype_spec`` (name ``"backbone-finetune"``) like registry models, so
    :func:`sonotype.inference.modelio.save_model` stores it and :func:`from_spec` rebuilds it from
    JSON, loading the backbone again from its directory or the cache. Not in the model
    registry: it cannot be built without a backbone.

    Parameters
    ----------
    input_shape : (2, S)
        From :func:`waveform_array`.
    n_classes : int
    backbone : dict
        A :class:`BackboneConfig` as a dict; its ``layer`` ("all"/"weighted" learn a softmax
        weighting of the layers), ``pooling`` (mean, meanstd or attention) and
        ``finetune_layers`` are used.
    lr_scale : float
        ``finetune_lr / lr``: the backbone learns at this fraction of the training lr.
    hidden : int
        Width of the head's hidden layer (0 = linear head).
    dropout : float
    loaded : Backbone, optional
        An already loaded backbone for ``backbone`` (it is modified: top layers re-parametrised).
    """

    input_layout = "waveform"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        backbone: dict[str, Any] | None = None,
        lr_scale: float = 0.01,
        hidden: int = 256,
        dropout: float = 0.1,
        loaded: Backbone | None = None,
    ) -> None:
        super().__init__()
        if backbone is None:
            raise ConfigError("backbone-finetune needs backbone=<BackboneConfig as a dict>")
        if len(input_shape) != 2 or input_shape[0] != 2:
            raise ParameterError(f"backbone-finetune takes (2, samples) waveform items, got input_shape {input_shape}")
        if not lr_scale > 0:
            raise ConfigError(f"lr_scale must be > 0, got {lr_scale}")
        self.cfg = BackboneConfig.from_dict(dict(backbone))
        bb = loaded if loaded is not None else load_backbone(self.cfg)
        self.backbone = bb  # a plain attribute, not a child module: its frozen weights are not our state
        self.input_shape = (2, int(input_shape[1]))
        self.sonotype_spec = {
            "name": FINETUNE_NAME,
            "input_shape": [2, int(input_shape[1])],
            "n_classes": int(n_classes),
            "params": {"backbone": self.cfg.to_dict(), "lr_scale": float(lr_scale), "hidden": int(hidden),
                       "dropout": float(dropout)},
        }
        if isinstance(self.cfg.layer, int) and not -bb.n_hidden <= self.cfg.layer < bb.n_hidden:
            raise ConfigError(
                f"backbone.layer {self.cfg.layer} is out of range: this model has hidden states 0..{bb.n_hidden - 1}"
            )
        for p in bb.model.parameters():
            p.requires_grad_(False)
        if getattr(bb.model.config, "layerdrop", 0.0):
            # LayerDrop skips layers at random in training, and a skipped layer yields no hidden state
            bb.model.config.layerdrop = 0.0
        self.deltas = nn.ModuleList()
        if self.cfg.finetune_layers:
            layers, norms = _layer_stack(bb)
            if self.cfg.finetune_layers > len(layers):
                raise ConfigError(
                    f"backbone.finetune_layers={self.cfg.finetune_layers} but {bb.model_id} has {len(layers)} layers"
                )
            top = [*layers[len(layers) - self.cfg.finetune_layers :], *norms]
            targets = [(sub, name, p) for mod in top for sub in mod.modules() for name, p in sub.named_parameters(recurse=False)]
            for sub, name, p in targets:  # listed first: parametrising adds modules to walk
                parametrize.register_parametrization(sub, name, _Delta(p, lr_scale))
                getattr(sub.parametrizations, name).original.requires_grad_(True)
                self.deltas.append(getattr(sub.parametrizations, name))
        d = bb.dim
        self.layer_logits = nn.Parameter(torch.zeros(bb.n_hidden)) if self.cfg.keeps_layers else None
        self.attn = nn.Linear(d, 1) if self.cfg.pooling == "attention" else None
        width = 2 * d if self.cfg.pooling == "meanstd" else d
        if hidden:
            self.head = nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
            )
        else:
            self.head = nn.Sequential(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, n_classes))

    def train(self, mode: bool = True) -> FineTuneClassifier:
        super().train(mode)
        # the backbone trains (dropout on) only when some of it is being fine-tuned
        self.backbone.model.train(mode and self.cfg.finetune_layers > 0)
        return self

    def _states(self, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if batchable(self.backbone) or len(waves) == 1:
            return hidden_states(self.backbone, waves)
        runs = [hidden_states(self.backbone, [w]) for w in waves]
        t = max(v.shape[1] for _, v in runs)
        states = [
            torch.cat([nn.functional.pad(s[k], (0, 0, 0, t - s[k].shape[1])) for s, _ in runs])
            for k in range(len(runs[0][0]))
        ]
        valid = torch.cat([nn.functional.pad(v, (0, t - v.shape[1])) for _, v in runs])
        return states, valid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 2:
            raise ParameterError(f"backbone-finetune expects (B, 2, samples) waveform batches, got {tuple(x.shape)}")
        lengths = x[:, 1].sum(dim=1).round().long().clamp(min=1)
        waves = [x[i, 0, : int(n)].detach().cpu().numpy() for i, n in enumerate(lengths)]
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.cfg.finetune_layers > 0):
            states, valid = self._states(waves)
        if self.layer_logits is not None:
            w = torch.softmax(self.layer_logits, dim=0)
            h = sum(w[k] * s for k, s in enumerate(states))
        else:
            h = states[-1 if self.cfg.layer == "last" else int(self.cfg.layer)]
        if self.attn is not None:
            score = self.attn(h).squeeze(-1).masked_fill(~valid, torch.finfo(h.dtype).min)
            pooled = (torch.softmax(score, dim=1).unsqueeze(-1) * h).sum(dim=1)
        else:
            pooled = pool(h, valid, self.cfg.pooling)
        return self.head(pooled)

    def check_identity(self, recorded: dict[str, Any] | None) -> None:
        """Raise :class:`ModelError` when the loaded backbone is not the one recorded."""
        check_identity(self.backbone, recorded)


def check_identity(backbone: Backbone, recorded: dict[str, Any] | None) -> None:
    """Refuse a backbone whose identity differs from the one a model was trained with.

    Compares the hub revision or the local weights digest, the architecture type and the
    hidden-state shape; the model id itself may differ (a directory copy of a hub model).
    """
    if not recorded:
        raise ModelError("the model records no backbone identity; it cannot be checked against the loaded backbone")
    now = backbone.identity
    # the digest of the encoder tensors decides; a hub revision only for records without one
    keys = ("model_type", "n_hidden", "dim", "weights_digest" if recorded.get("weights_digest") else "revision")
    diffs = [k for k in keys if recorded.get(k) is not None and recorded.get(k) != now.get(k)]
    if diffs:
        detail = ", ".join(f"{k}: recorded {recorded.get(k)!r}, loaded {now.get(k)!r}" for k in diffs)
        raise ModelError(f"backbone {backbone.model_id} does not match the one the model was trained with ({detail})")


def from_spec(spec: dict[str, Any], *, loaded: Backbone | None = None) -> FineTuneClassifier:
    """Rebuild a fine-tuned model from its ``sonotype_spec`` (``model.json``'s architecture)."""
    if spec.get("name") != FINETUNE_NAME:
        raise ModelError(f"not a {FINETUNE_NAME} architecture: {spec.get('name')!r}")
    params = dict(spec.get("params", {}))
    return FineTuneClassifier(tuple(spec["input_shape"]), int(spec["n_classes"]), loaded=loaded, **params)
