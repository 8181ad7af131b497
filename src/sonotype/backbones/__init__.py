"""Pretrained audio backbones (Whisper, wav2vec2 / WavLM / HuBERT, AST) as feature extractors.

Frozen use: :func:`build_embedding_dataset` turns clips into one pooled embedding per clip
(cached on disk), and any registry model trains on them; ``layer="all"`` keeps every hidden
state for the ``layer-weighted-mlp`` head. Fine-tuning: :class:`FineTuneClassifier` wraps
the backbone and a head and trains with :func:`sonotype.train.fit` on waveform arrays.
A model saved with ``backbone=backbone_record(cfg)`` records the backbone's identity and
is refused at load time when the backbone found there differs.

Needs the optional ``transformers`` package (``pip install 'sonotype[backbones]'``); this
package imports without it and raises a clear error only when a backbone is loaded.

Examples
--------
>>> cfg = BackboneConfig("microsoft/wavlm-base-plus", layer="all")  # doctest: +SKIP
>>> ds = build_embedding_dataset(manifest.clips, cfg, cache_dir="cache")  # doctest: +SKIP
"""

from __future__ import annotations

from .config import BackboneConfig
from .dataset import build_embedding_dataset, build_waveform_dataset
from .extract import embed, hidden_states, pool
from .finetune import FineTuneClassifier, waveform_array
from .load import Backbone, backbone_record, describe, load_backbone, require_transformers

__all__ = [
    "Backbone",
    "BackboneConfig",
    "FineTuneClassifier",
    "backbone_record",
    "build_embedding_dataset",
    "build_waveform_dataset",
    "describe",
    "embed",
    "hidden_states",
    "load_backbone",
    "pool",
    "require_transformers",
    "waveform_array",
]
