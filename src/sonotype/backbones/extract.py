"""Hidden states of a pretrained encoder, pooled over time without counting padding.

Three families are driven explicitly, anything else ``AutoModel`` loads runs one clip at a
time through its own forward:

- **Whisper** encoders run on the clip's real number of mel frames. Hugging Face's
  ``WhisperEncoder.forward`` insists on 3000 frames (30 s) and cannot mask padding, so
  :func:`_whisper_states` replays its steps (conv1, conv2, positional embedding, layers,
  final layer norm) on the real frames, slicing the positional table to the frames
  present. A 3.5 s clip then costs about a tenth of the 30 s pass (whisper-base encoder,
  one CPU thread: 0.11 s instead of 1.06 s). What changes, and only that (all tested):

  * a clip of exactly 30 s gives the stock forward's hidden states, every layer;
  * a shorter clip's mel frames are the padded input's first frames (bar the last one,
    whose STFT window reached into the padding), and its input embeddings (conv +
    positions) equal the padded run's away from the end; its outputs differ from the
    padded run's only because the stock encoder's attention also sees 30 s of padding;
  * in a batch, mel frames past a clip's end are zeros, conv1's outputs there are zeroed
    (the zero padding conv2 sees when the clip runs alone) and attention masks padded
    positions, so a clip's states in a batch of mixed lengths equal its states alone.
- **wav2vec2 / WavLM / HuBERT** (and relatives) take normalised samples; frame counts
  follow the conv feature encoder (``conv_kernel``/``conv_stride``). Models whose feature
  encoder uses group norm (``feat_extract_norm="group"``, e.g. wav2vec2-base) normalise over
  the whole padded input, so they run one clip at a time; layer-norm models batch with an
  attention mask.
- **AST** always sees its fixed ``max_length`` frames (its positional grid is fixed); the
  pooling keeps the two summary tokens and the patches that start inside the real audio.

Hidden states follow Hugging Face's convention: index 0 is the input embedding, index
``L`` the last layer (for Whisper after the final layer norm).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sonotype.audio import resample
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.load import Backbone
from sonotype.backbones.whisper import WhisperLogMel
from sonotype.errors import ConfigError, ParameterError

__all__ = ["batchable", "embed", "embed_all_layers", "hidden_states", "layer_view", "pool", "pool_layers",
           "prepare_waveforms"]

_WHISPER_SECONDS = 30.0


def prepare_waveforms(
    backbone: Backbone, waveforms: Sequence[np.ndarray], sr: int, cfg: BackboneConfig
) -> list[np.ndarray]:
    """Mono float32 at the backbone's rate, cut to ``max_seconds`` (and Whisper's 30 s)."""
    out = []
    limit = cfg.max_seconds
    if backbone.kind == "whisper":
        limit = _WHISPER_SECONDS if limit is None else min(limit, _WHISPER_SECONDS)
    for i, w in enumerate(waveforms):
        w = np.asarray(w, dtype=np.float32)
        if w.ndim != 1 or w.size == 0:
            raise ParameterError(f"waveform {i} must be a non-empty mono (samples,) array, got shape {w.shape}")
        if int(sr) != backbone.sampling_rate:
            w = resample(w, int(sr), backbone.sampling_rate)
        if limit is not None:
            w = w[: int(round(limit * backbone.sampling_rate))]
        # one analysis window at least (25 ms), so every model yields a frame
        min_len = int(0.025 * backbone.sampling_rate) + 1
        if w.size < min_len:
            w = np.pad(w, (0, min_len - w.size))
        out.append(np.ascontiguousarray(w))
    return out


def batchable(backbone: Backbone) -> bool:
    """Whether padding a batch leaves each clip's states unchanged (see module notes)."""
    if backbone.kind in ("whisper", "ast"):
        return True
    if backbone.kind == "ssl":
        return getattr(backbone.model.config, "feat_extract_norm", "layer") != "group"
    return False


def _pad_stack(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad along the last axis; return (batch, lengths)."""
    n = max(a.shape[-1] for a in arrays)
    out = np.zeros((len(arrays), *arrays[0].shape[:-1], n), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return torch.from_numpy(out), torch.tensor([a.shape[-1] for a in arrays])


def _additive_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) bool -> (B, 1, T, T) additive attention mask; None when nothing is padded."""
    if bool(valid.all()):
        return None
    b, t = valid.shape
    mask = torch.zeros(b, 1, t, t, dtype=dtype, device=valid.device)
    return mask.masked_fill(~valid[:, None, None, :], torch.finfo(dtype).min)


def _legacy_layer_kwargs(layer: torch.nn.Module) -> dict[str, Any]:
    """transformers 4's encoder layers require ``layer_head_mask``; 5 dropped it."""
    return {"layer_head_mask": None} if "layer_head_mask" in inspect.signature(layer.forward).parameters else {}


def whisper_inputs(backbone: Backbone, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded log-mel frames (B, n_mels, N) and each clip's real frame count (B,)."""
    fe = backbone.feature_extractor
    if isinstance(fe, WhisperLogMel):
        mels = [fe(w) for w in waves]
    else:  # a transformers WhisperFeatureExtractor in a hand-built Backbone
        mels = [np.asarray(fe(w, sampling_rate=fe.sampling_rate, padding="longest", return_tensors="np")["input_features"][0])
                for w in waves]
    return _pad_stack(mels)


def whisper_valid(n: torch.Tensor, t: int) -> torch.Tensor:
    """(B, t) bool: the encoder positions (conv2 halves the frames) that hold real audio."""
    return torch.arange(t, device=n.device)[None, :] < ((n + 1) // 2)[:, None]


def whisper_forward(
    enc: torch.nn.Module, x: torch.Tensor, n: torch.Tensor, *, always_mask: bool = False
) -> list[torch.Tensor]:
    """Every hidden state of the Whisper encoder on padded mel frames ``x`` with real counts ``n``.

    ``always_mask`` builds the attention mask even when nothing is padded, so a traced
    graph (ONNX export) has no data-dependent branch.
    """
    frames = torch.arange(x.shape[-1], device=x.device)
    h = F.gelu(enc.conv1(x)) * (frames[None, :] < n[:, None]).to(x.dtype)[:, None, :]
    h = F.gelu(enc.conv2(h)).permute(0, 2, 1)
    t = h.shape[1]
    if t > enc.embed_positions.num_embeddings:
        raise ParameterError(f"Whisper input of {t} positions exceeds the model's {enc.embed_positions.num_embeddings}")
    h = h + enc.embed_positions.weight[:t].to(h.dtype)
    h = F.dropout(h, p=float(getattr(enc, "dropout", 0.0)), training=enc.training)
    valid = whisper_valid(n, t)
    if always_mask:
        mask = torch.zeros(valid.shape, dtype=h.dtype, device=h.device)
        mask = mask.masked_fill(~valid, torch.finfo(h.dtype).min)[:, None, None, :]
    else:
        mask = _additive_mask(valid, h.dtype)
    states = [h]
    for layer in enc.layers:
        out = layer(h, mask, **_legacy_layer_kwargs(layer))
        h = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple
        states.append(h)
    states[-1] = enc.layer_norm(h)
    return states


def _whisper_states(backbone: Backbone, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
    enc = backbone.model
    x, n = whisper_inputs(backbone, waves)  # (B, n_mels, N), real frame counts
    w = enc.conv1.weight
    x, n = x.to(device=w.device, dtype=w.dtype), n.to(w.device)
    states = whisper_forward(enc, x, n)
    return states, whisper_valid(n, states[0].shape[1])


def _conv_lengths(config: Any, n: torch.Tensor) -> torch.Tensor:
    """Frames after the conv feature encoder: floor((n - k) / s) + 1 per layer."""
    for k, s in zip(config.conv_kernel, config.conv_stride, strict=True):
        n = torch.div(n - k, s, rounding_mode="floor") + 1
    return n.clamp(min=1)


def ssl_inputs(backbone: Backbone, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised samples zero-padded (B, S), their attention mask (B, S) int64, real lengths (B,)."""
    fe = backbone.feature_extractor
    vals = [np.asarray(fe(w, sampling_rate=fe.sampling_rate, return_tensors="np")["input_values"][0]) for w in waves]
    x, n = _pad_stack(vals)
    att = (torch.arange(x.shape[-1])[None, :] < n[:, None]).long()
    return x, att, n


def ssl_valid(config: Any, n: torch.Tensor, t: int) -> torch.Tensor:
    """(B, t) bool: the frames after the conv feature encoder that hold real audio."""
    return torch.arange(t)[None, :] < _conv_lengths(config, n)[:, None]


def _ssl_states(backbone: Backbone, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
    model = backbone.model
    x, att, n = ssl_inputs(backbone, waves)
    p = next(model.parameters())
    x, att = x.to(device=p.device, dtype=p.dtype), att.to(p.device)
    kw = {} if len(waves) == 1 else {"attention_mask": att}
    with warnings.catch_warnings():
        # WavLM mixes a float position bias with a bool padding mask inside torch's MHA
        warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
        out = model(x, output_hidden_states=True, **kw)
    states = list(out.hidden_states)
    return states, ssl_valid(model.config, n, states[-1].shape[1]).to(p.device)


def _ast_states(backbone: Backbone, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
    fe, model = backbone.feature_extractor, backbone.model
    x = fe(waves, sampling_rate=fe.sampling_rate, return_tensors="pt")["input_values"]
    out = model(x.to(next(model.parameters()).dtype), output_hidden_states=True)
    states = list(out.hidden_states)
    cfg = model.config
    t_dim = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
    f_dim = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
    special = states[-1].shape[1] - f_dim * t_dim
    sr = backbone.sampling_rate
    frames = torch.tensor([min(cfg.max_length, 1 + (len(w) - int(0.025 * sr)) // int(0.010 * sr)) for w in waves])
    t_ok = torch.arange(t_dim)[None, :] * cfg.time_stride < frames[:, None]  # (B, t_dim)
    patches = t_ok[:, None, :].expand(-1, f_dim, -1).reshape(len(waves), -1)  # frequency-major order
    valid = torch.cat([torch.ones(len(waves), special, dtype=torch.bool), patches], dim=1)
    return states, valid


def _generic_states(backbone: Backbone, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
    if len(waves) != 1:
        raise ParameterError("generic backbones run one clip at a time")
    fe = backbone.feature_extractor
    inputs = fe(waves[0], sampling_rate=fe.sampling_rate, return_tensors="pt")
    inputs.pop("attention_mask", None)
    out = backbone.model(**inputs, output_hidden_states=True)
    states = list(out.hidden_states)
    return states, torch.ones(1, states[-1].shape[1], dtype=torch.bool)


_STATES: dict[str, Callable[[Backbone, list[np.ndarray]], tuple[list[torch.Tensor], torch.Tensor]]] = {
    "whisper": _whisper_states,
    "ssl": _ssl_states,
    "ast": _ast_states,
    "generic": _generic_states,
}


def hidden_states(backbone: Backbone, waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every hidden state of a batch of prepared waveforms, and which frames are real.

    Parameters
    ----------
    waves : list of np.ndarray
        From :func:`prepare_waveforms` (backbone rate, mono, cut).

    Returns
    -------
    states : list of torch.Tensor, each (B, T, D)
        ``backbone.n_hidden`` tensors; gradients flow when enabled (fine-tuning).
    valid : torch.Tensor of bool, shape (B, T)
    """
    return _STATES[backbone.kind](backbone, waves)


def pool(x: torch.Tensor, valid: torch.Tensor, how: str) -> torch.Tensor:
    """Pool (B, [L,] T, D) over T counting only the ``valid`` (B, T) frames.

    ``mean`` gives (B, [L,] D); ``meanstd`` appends the standard deviation, (B, [L,] 2D).
    """
    if how not in ("mean", "meanstd"):
        raise ConfigError(
            f"pooling {how!r} cannot be precomputed; frozen embeddings take 'mean' or 'meanstd' "
            "('attention' is learned and needs fine-tuning, backbone.finetune_layers > 0)"
        )
    w = valid.to(x.dtype)
    if x.dim() == 4:
        w = w[:, None, :, None]
    else:
        w = w[:, :, None]
    count = w.sum(dim=-2).clamp(min=1.0)
    mean = (x * w).sum(dim=-2) / count
    if how == "mean":
        return mean
    var = (((x - mean.unsqueeze(-2)) ** 2) * w).sum(dim=-2) / count
    return torch.cat([mean, var.clamp(min=0).sqrt()], dim=-1)


def pool_layers(states: Sequence[torch.Tensor], valid: torch.Tensor, how: str) -> torch.Tensor:
    """:func:`pool` of each (B, T, D) hidden state, stacked to (B, L, D or 2D), float32.

    One weighted matrix product per statistic and layer, and no (B, L, T, D) stack: the
    same numbers as ``pool(torch.stack(states, 1), ...)`` for a quarter of its time.
    """
    pool(states[0][:1, :1, :1].float(), valid[:1, :1], how)  # validates ``how``
    w = valid.to(device=states[0].device, dtype=torch.float32)[:, None, :]  # (B, 1, T)
    count = w.sum(dim=-1, keepdim=True).clamp(min=1.0)  # (B, 1, 1)
    out = []
    for x in states:
        x = x.float()
        mean = torch.bmm(w, x) / count  # (B, 1, D)
        if how == "mean":
            out.append(mean[:, 0])
            continue
        dev = (x - mean).square_()
        std = (torch.bmm(w, dev) / count).clamp_(min=0).sqrt_()
        out.append(torch.cat([mean[:, 0], std[:, 0]], dim=-1))
    return torch.stack(out, dim=1)


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
        From :func:`sonotype.backbones.load_backbone`.
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
    waves = prepare_waveforms(backbone, waveforms, sr, cfg)
    width = backbone.dim * (2 if cfg.pooling == "meanstd" else 1)
    out = np.zeros((len(waves), backbone.n_hidden, width), dtype=np.float32)
    if not waves:
        return out
    pool(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), cfg.pooling)  # validate early
    from sonotype.backbones.engines import runner

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
