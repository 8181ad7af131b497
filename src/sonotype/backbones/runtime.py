"""Prediction-time side of backbone models: reload the recorded backbone, turn audio into items.

A model trained on backbone embeddings records the backbone in ``model.json``
(``{"config": BackboneConfig, "identity": {...}}``). :func:`featurizer_for` loads that
backbone again, refuses it when its identity differs (another revision, other weights,
another shape), and gives :class:`sonotype.inference.predict.Classifier` what it needs: the sample
rate, the shortest usable input and ``items(y)``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sonotype.audio import resample
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.embed import embed
from sonotype.backbones.finetune import (
    FINETUNE_NAME,
    FineTuneClassifier,
    check_identity,
    from_spec,
    waveform_array,
)
from sonotype.backbones.folders import SEARCH_ENV, find_by_digest, search_dirs
from sonotype.backbones.load import Backbone, load_backbone
from sonotype.errors import ConfigError, ModelError

__all__ = ["BackboneFeaturizer", "FusedFeaturizer", "featurizer_for", "network_for"]


class BackboneFeaturizer:
    """Audio -> model items for a backbone model: one item per signal.

    Frozen models get the pooled embedding ((1, D), (1, 2D) or (1, L, D)); fine-tuned
    models the waveform array (1, 2, S) their network takes.
    """

    def __init__(self, backbone: Backbone, cfg: BackboneConfig, *, waveform_samples: int | None = None) -> None:
        self.backbone = backbone
        self.cfg = cfg
        self.waveform_samples = waveform_samples

    @property
    def sample_rate(self) -> int:
        return self.backbone.sampling_rate

    @property
    def min_samples(self) -> int:
        """One 25 ms analysis window: shorter input is padded by the extractor anyway."""
        return int(0.025 * self.sample_rate) + 1

    def items(self, y: np.ndarray) -> np.ndarray:
        """Model items of a mono signal at :attr:`sample_rate`, float32 (1, ...)."""
        if self.waveform_samples is not None:
            return waveform_array([y], self.sample_rate, self.backbone, self.cfg,
                                  seconds=self.waveform_samples / self.sample_rate)
        return embed(self.backbone, [y], self.sample_rate, self.cfg)


class FusedFeaturizer:
    """Audio -> one item for a fusion: every encoder's embedding, concatenated in the recorded order."""

    waveform_samples = None  # a fusion is frozen

    def __init__(self, members: list[BackboneFeaturizer]) -> None:
        self.members = members
        first = members[0].cfg
        # the fusion's settings: its encoders' names (as recorded) with the shared pooling settings
        self.cfg = BackboneConfig.from_dict({**first.to_dict(), "model": [m.cfg.model for m in members]})
        self.backbone = None  # each encoder is loaded by its member

    @property
    def sample_rate(self) -> int:
        """The highest member rate: each member resamples to its own (:meth:`items`)."""
        return max(m.sample_rate for m in self.members)

    @property
    def min_samples(self) -> int:
        return max(int(np.ceil(m.min_samples * self.sample_rate / m.sample_rate)) for m in self.members)

    def items(self, y: np.ndarray) -> np.ndarray:
        """Model items of a mono signal at :attr:`sample_rate`, float32 (1, D1 + D2 + ...)."""
        parts = []
        for m in self.members:
            z = y if m.sample_rate == self.sample_rate else resample(y, self.sample_rate, m.sample_rate)
            parts.append(np.asarray(m.items(z), dtype=np.float32).reshape(1, -1))
        return np.concatenate(parts, axis=-1)


def featurizer_for(
    meta: dict[str, Any], *, where: str = "model.json", search: list[str | os.PathLike] | tuple = ()
) -> BackboneFeaturizer | FusedFeaturizer:
    """Load and check the backbone a saved model records; find a moved folder by its digest.

    When the recorded folder is gone (or holds other weights), the folders in ``search``
    (``--backbone-dir``), ``$SONOTYPE_BACKBONES`` and the fetch folder are searched for one
    whose encoder digest is the recorded one.

    Raises
    ------
    ModelError
        Malformed record, backbone not found anywhere (naming where it looked), or a
        backbone whose identity differs from the recorded one.
    """
    rec = meta.get("backbone")
    if isinstance(rec, dict) and isinstance(rec.get("members"), list):  # a fusion of frozen encoders
        return FusedFeaturizer([featurizer_for({**meta, "backbone": m}, where=where, search=search)
                                for m in rec["members"]])
    if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict) or not isinstance(rec.get("identity"), dict):
        raise ModelError(f"{where}: 'backbone' must be {{'config': {{...}}, 'identity': {{...}}}}, got {rec!r}")
    try:
        cfg = BackboneConfig.from_dict(rec["config"])
    except Exception as exc:  # ConfigError or TypeError from a hand-edited file
        raise ModelError(f"{where}: invalid backbone settings ({exc})") from None
    ident = rec["identity"]
    digest = ident.get("weights_digest")
    try:
        bb = load_backbone(cfg, search=search)
        check_identity(bb, ident)
    except (ModelError, ConfigError) as exc:
        found = find_by_digest(digest, search_dirs(search), model_type=ident.get("model_type")) if digest else None
        if found is None:
            looked = ", ".join(map(str, search_dirs(search)))
            hint = f" No folder in {looked} holds an encoder with digest {digest}; pass --backbone-dir DIR " \
                   f"(or set ${SEARCH_ENV}) to where a copy is." if digest else ""
            raise ModelError(f"{where}: the model's backbone cannot be loaded: {exc}{hint}") from None
        cfg = replace(cfg, model=str(found))
        bb = load_backbone(cfg)
        check_identity(bb, ident)
    arch = meta.get("architecture", {})
    samples = int(arch["input_shape"][1]) if arch.get("name") == FINETUNE_NAME else None
    return BackboneFeaturizer(bb, cfg, waveform_samples=samples)


def network_for(arch: dict[str, Any], featurizer: BackboneFeaturizer) -> FineTuneClassifier:
    """The fine-tuned network of a ``backbone-finetune`` architecture, on the featurizer's backbone."""
    with torch.no_grad():
        return from_spec(arch, loaded=featurizer.backbone)
