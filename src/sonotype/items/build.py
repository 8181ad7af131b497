"""The one place that decides what a clip's items are: frame-feature representations, frozen-encoder
embeddings (one encoder or a fusion), or waveforms for fine-tuning; on the local machine or an engine.

Training (:func:`sonotype.pipeline.fitting.build_run_dataset`), evaluation of a saved model on
another corpus and :class:`~sonotype.pipeline.estimator.AudioClassifier` all call
:func:`build_items`, so a model's items are made the same way wherever they are made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sonotype.backbones.config import BackboneConfig
from sonotype.corpora.base import Clip
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.extract import Dataset, build_dataset
from sonotype.items.embeddings import build_embedding_dataset, build_waveform_dataset

__all__ = ["build_items", "item_kind"]


def item_kind(backbone: BackboneConfig | None, representation: RepresentationConfig | None) -> str:
    """What the items are: ``"backbone"`` embeddings, ``"waveform"`` (fine-tuning) or the representation's kind."""
    if backbone is not None:
        return "waveform" if backbone.finetuning else "backbone"
    return representation.kind if representation is not None else "stats"


def build_items(
    clips: Sequence[Clip],
    *,
    features: FeatureConfig | None = None,
    representation: RepresentationConfig | None = None,
    backbone: BackboneConfig | None = None,
    loaded: Any = None,
    waveform_seconds: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> Dataset:
    """Model items of ``clips``, in order (unreadable clips go to ``skipped``).

    Parameters
    ----------
    clips : sequence of Clip
    features, representation : FeatureConfig, RepresentationConfig
        Frame features and how they become items (models without an encoder).
    backbone : BackboneConfig, optional
        A frozen encoder or a fusion (embeddings), or a fine-tuned one (waveforms).
    loaded : object, optional
        An already loaded encoder (a :class:`~sonotype.backbones.load.Backbone`, or a saved
        model's featurizer with a ``backbone`` attribute): not loaded again.
    waveform_seconds : float, optional
        Waveform items of this length (a fine-tuned model's input; default ``backbone.max_seconds``).
    cache_dir, jobs, progress
        The feature/embedding cache, worker processes, a progress bar.

    Returns
    -------
    Dataset
    """
    clips = list(clips)
    bb = getattr(loaded, "backbone", loaded)
    if backbone is not None and (backbone.finetuning or waveform_seconds is not None):
        return build_waveform_dataset(clips, backbone, backbone=bb, seconds=waveform_seconds)
    if backbone is not None:
        return build_embedding_dataset(clips, backbone, cache_dir=cache_dir, progress=progress,
                                       backbone=None if backbone.fused else bb)
    if features is None or representation is None:
        features = features or FeatureConfig()
        representation = representation or RepresentationConfig()
    return build_dataset(clips, features, representation, cache_dir=cache_dir, jobs=jobs, progress=progress)
