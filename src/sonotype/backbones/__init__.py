"""Pretrained audio backbones (Whisper, wav2vec2 / WavLM / HuBERT, AST) as feature extractors.

Frozen use: :func:`build_embedding_dataset` turns clips into one pooled embedding per clip
(cached on disk), and any registry model trains on them; ``layer="all"`` keeps every hidden
state for the ``layer-weighted-mlp`` head. Fine-tuning: :class:`FineTuneClassifier` wraps
the backbone and a head and trains with :func:`sonotype.training.train.fit` on waveform arrays.
A model saved with ``backbone=backbone_record(cfg)`` records the backbone's folder
(absolute) and the digest of its encoder tensors; at load time a moved folder is found
again by that digest (``--backbone-dir``, ``$SONOTYPE_BACKBONES``) and another encoder is
refused. Every checkpoint is checked: an encoder parameter missing from it is an error,
never a random weight. ``sonotype backbone fetch NAME`` downloads one (:func:`fetch`).

``backbone.runtime`` runs the frozen encoder as torch float32, ONNX (onnxruntime, float32
or int8) or bf16, and ``backbone.device`` on the GPU when there is one (:mod:`.engines`);
``sonotype bench backbone`` times them (:mod:`.bench`).

Whisper runs on sonotype's own torch encoder (:mod:`.whisper`), without importing
transformers; the other families need the optional ``transformers`` package
(``pip install 'sonotype[backbones]'``), and raise a clear error only when loaded.

Examples
--------
>>> cfg = BackboneConfig("whisper-base", layer="all", pooling="meanstd")  # doctest: +SKIP
>>> ds = build_embedding_dataset(manifest.clips, cfg)  # cached in ~/.cache/sonotype  # doctest: +SKIP
"""

from __future__ import annotations

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.extract import embed, hidden_states, pool
from sonotype.backbones.fetch import fetch
from sonotype.backbones.finetune import FineTuneClassifier, waveform_array
from sonotype.backbones.load import (
    ALIASES,
    Backbone,
    backbone_record,
    describe,
    find_by_digest,
    inspect_checkpoint,
    load_backbone,
    require_transformers,
    resolve,
    search_dirs,
    summary,
)
from sonotype.items.embeddings import EmbeddingCache, build_embedding_dataset, build_waveform_dataset

__all__ = [
    "ALIASES",
    "Backbone",
    "BackboneConfig",
    "EmbeddingCache",
    "FineTuneClassifier",
    "backbone_record",
    "build_embedding_dataset",
    "build_waveform_dataset",
    "describe",
    "embed",
    "fetch",
    "find_by_digest",
    "hidden_states",
    "inspect_checkpoint",
    "load_backbone",
    "pool",
    "require_transformers",
    "resolve",
    "search_dirs",
    "summary",
    "waveform_array",
]
