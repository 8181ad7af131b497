"""Pooled embeddings of whole clips: every hidden state pooled over time, run on the chosen runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.engines import runner
from sonotype.backbones.extract import pool, pool_layers, prepare_waveforms
from sonotype.backbones.load import Backbone
from sonotype.backbones.native import embed_native as embed_native_clips
from sonotype.errors import ConfigError, ParameterError

__all__ = ["embed", "embed_all_layers", "layer_view"]


def embed(
    backbone: Backbone,
    waveforms: Sequence[np.ndarray],
    sr: int,
    cfg: BackboneConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Pooled embeddings of waveforms, one per waveform.

    Parameters
    ----------
    backbone : Backbone
        From :func:`sonotype.backbones.load.load_backbone`.
    waveforms : sequence of np.ndarray, each (samples,)
        Mono audio at rate ``sr`` (resampled to the backbone's rate here).
    sr : int
    cfg : BackboneConfig
        ``layer``, ``pooling``, ``batch_size`` and ``max_seconds`` are used.
    on_batch : callable, optional
        Called with the number of clips after each batch (progress bars).

    Returns
    -------
    np.ndarray, float32
        (N, D) (``meanstd``: (N, 2D)), or (N, L, D) for ``layer="all"``/``"weighted"``.

    Examples
    --------
    >>> X = embed(bb, [y1, y2], 16000, BackboneConfig("microsoft/wavlm-base-plus"))  # doctest: +SKIP
    """
    pooled = embed_all_layers(backbone, waveforms, sr, cfg, on_batch=on_batch)
    return layer_view(pooled, cfg.layer)


def layer_view(pooled: np.ndarray, layer: int | str) -> np.ndarray:
    """From all-layer embeddings (N, L, D) to what ``layer`` asks for."""
    if layer in ("all", "weighted"):
        return np.ascontiguousarray(pooled)
    n_layers = pooled.shape[1]
    idx = -1 if layer == "last" else int(layer)
    if not -n_layers <= idx < n_layers:
        raise ConfigError(f"backbone.layer {layer} is out of range: this model has hidden states 0..{n_layers - 1}")
    return np.ascontiguousarray(pooled[:, idx])


def embed_all_layers(
    backbone: Backbone,
    waveforms: Sequence[np.ndarray],
    sr: int,
    cfg: BackboneConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
    force_bf16: bool = False,
) -> np.ndarray:
    """Pooled embeddings of every hidden state, (N, L, D): what the disk cache stores.

    Pooling every layer costs almost nothing next to the forward pass, and lets a later
    run pick another layer without re-extracting. The encoder runs as ``cfg.runtime`` and
    ``cfg.device`` ask (:mod:`.engines`); ``force_bf16`` runs bf16 even where it is only
    emulated (tests and benchmarks).
    """
    if backbone.kind == "native":  # a native family pools itself: one "layer", std 0 (one vector per clip)
        waves = [np.asarray(w, dtype=np.float32) for w in waveforms]
        if cfg.max_seconds is not None:
            waves = [w[: int(round(cfg.max_seconds * sr))] for w in waves]
        outputs = [(n, 0) for n in backbone.preprocessor["outputs"]]
        X = embed_native_clips(backbone.feature_extractor, waves, sr, outputs)
        out = np.zeros((len(waves), 1, backbone.dim * (2 if cfg.pooling == "meanstd" else 1)), np.float32)
        out[:, 0, : backbone.dim] = X
        if on_batch is not None and len(waves):
            on_batch(len(waves))
        return out
    waves = prepare_waveforms(backbone, waveforms, sr, cfg)
    width = backbone.dim * (2 if cfg.pooling == "meanstd" else 1)
    out = np.zeros((len(waves), backbone.n_hidden, width), dtype=np.float32)
    if not waves:
        return out
    pool(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), cfg.pooling)  # validate early
    run = runner(backbone, cfg, force_bf16=force_bf16)
    step = int(cfg.batch_size) if run.batchable else 1
    order = np.argsort([-len(w) for w in waves], kind="stable")  # similar lengths together: less padding
    was_training = backbone.model.training
    backbone.model.eval()
    try:
        with torch.inference_mode():
            for s in range(0, len(order), step):
                idx = order[s : s + step]
                states, valid = run.run([waves[i] for i in idx])
                if len(states) != backbone.n_hidden:
                    raise ParameterError(
                        f"backbone {backbone.model_id} returned {len(states)} hidden states, expected {backbone.n_hidden}"
                    )
                # every layer pooled once, where the states are (the GPU for torch on CUDA)
                out[idx] = pool_layers(states, valid, cfg.pooling).cpu().numpy()
                if on_batch is not None:
                    on_batch(len(idx))
    finally:
        backbone.model.train(was_training)
    if not np.isfinite(out).all():
        raise ParameterError(f"backbone {backbone.model_id} produced NaN or infinite embeddings")
    return out
