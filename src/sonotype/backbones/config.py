"""Backbone settings: which pretrained model, which layer(s), how frames become one vector.

A plain dataclass, saved as JSON in every run config and beside every model trained on
embeddings, so the same backbone and settings are used at training and prediction time.
Nothing here imports ``transformers``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sonotype.config.parse import check_fields, strict_from_dict
from sonotype.errors import ConfigError

__all__ = ["DEVICES", "LAYER_MODES", "POOLINGS", "RUNTIMES", "BackboneConfig"]

POOLINGS = ("mean", "meanstd", "attention")
# "all" and "weighted" both keep every hidden state (items (L, D)); "weighted" names the
# intent (a learned softmax-weighted sum in the head, e.g. the "layer-weighted-mlp" model).
LAYER_MODES = ("last", "all", "weighted")
# how the frozen encoder runs (see sonotype.backbones.engines): torch float32, onnxruntime float32,
# onnxruntime with dynamic int8 weights, torch bfloat16 (CPUs with native bf16 only)
RUNTIMES = ("torch", "onnx", "onnx-int8", "bf16")
DEVICES = ("auto", "cpu", "cuda")  # "cuda:N" too


@dataclass
class BackboneConfig:
    """A pretrained audio model used as a feature extractor (frozen) or fine-tuned.

    Parameters
    ----------
    model : str
        A local folder holding ``config.json``, ``preprocessor_config.json`` and
        ``model.safetensors`` (recorded absolute in saved models); a known name
        (``whisper-base``, ``wavlm-base-plus``, ...: ``sonotype backbone list``); or a Hugging
        Face hub id (``"openai/whisper-base"``). Names and hub ids are looked up in the fetch
        folders and the Hugging Face cache (``sonotype backbone fetch NAME``).
    revision : str, optional
        Hub revision (branch, tag or commit); None = what was fetched for ``main``. Saved
        models pin the commit.
    layer : int or {"last", "all", "weighted"}
        Which hidden state to pool: ``"last"``, an index into the hidden states (0 = the
        input embeddings, negative counts from the end), or ``"all"``/``"weighted"`` to keep
        every layer, giving items of shape (L, D) for a head that learns layer weights.
    pooling : {"mean", "meanstd", "attention"}
        Over time, ignoring padding: ``mean`` (D values), ``meanstd`` (mean then standard
        deviation, 2D values). ``attention`` needs frame sequences and a learned head; it is
        only available when fine-tuning (the head pools the frames itself).
    batch_size : int
        Clips per forward pass during extraction.
    max_seconds : float, optional
        Keep only the first N seconds of each clip (None = whole clip; Whisper caps at 30 s,
        AST at its ``max_length`` frames).
    finetune_layers : int
        0 = frozen feature extractor; N > 0 = fine-tune the top N transformer layers.
    finetune_lr : float
        Learning rate of the unfrozen backbone layers (the head uses the training lr).
    local_files_only : bool
        Never reach the hub unless this is False (and there is a network); then a name or
        hub id not found locally is fetched on first use.
    runtime : {"torch", "onnx", "onnx-int8", "bf16"}
        How the frozen encoder runs for embeddings: PyTorch float32; exported to ONNX and run
        by onnxruntime (float32, or ``onnx-int8``: dynamically quantised int8 weights); or
        PyTorch bfloat16 (only on CPUs with native bf16, elsewhere a warning and float32).
        Embeddings of each runtime are cached apart. Fine-tuning always uses torch.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where the encoder runs: ``auto`` = the GPU when torch sees one, else the CPU; an
        asked-for GPU that is absent falls back to the CPU with a warning.
    """

    model: str = ""
    revision: str | None = None
    layer: int | str = "last"
    pooling: str = "mean"
    batch_size: int = 8
    max_seconds: float | None = 30.0
    finetune_layers: int = 0
    finetune_lr: float = 1e-5
    local_files_only: bool = True
    runtime: str = "torch"
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"backbone.model must name a hub id or a local directory, got {self.model!r}")
        if isinstance(self.layer, bool) or not (
            isinstance(self.layer, int) or (isinstance(self.layer, str) and self.layer in LAYER_MODES)
        ):
            raise ConfigError(f"backbone.layer must be an int or one of {', '.join(LAYER_MODES)}, got {self.layer!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"backbone.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"backbone.batch_size must be >= 1, got {self.batch_size}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"backbone.max_seconds must be > 0 or None, got {self.max_seconds}")
        if int(self.finetune_layers) < 0:
            raise ConfigError(f"backbone.finetune_layers must be >= 0, got {self.finetune_layers}")
        if not self.finetune_lr > 0:
            raise ConfigError(f"backbone.finetune_lr must be > 0, got {self.finetune_lr}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"backbone.runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        dev = self.device
        if not isinstance(dev, str) or not (dev in DEVICES or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"backbone.device must be auto, cpu, cuda or cuda:N, got {dev!r}")

    @property
    def finetuning(self) -> bool:
        """True when the top ``finetune_layers`` layers train with the head (items are waveforms)."""
        return self.finetune_layers > 0

    @property
    def keeps_layers(self) -> bool:
        """True when items keep every hidden state: shape (L, D) instead of (D,)."""
        return self.layer in ("all", "weighted")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneConfig:
        return strict_from_dict(cls, d)
