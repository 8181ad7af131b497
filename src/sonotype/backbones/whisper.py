"""Whisper's encoder and log-mel front end in plain torch, with transformers' tensor names.

Why not transformers' own classes: importing any transformers model module pulls in
``modeling_utils`` and with it ``torch._dynamo``, ``torch.distributed.tensor``, sympy and
scipy.optimize, 3-5 s before a single weight is read (measured on this project's machine;
the issue's "3.2 s first-time set-up"). Whisper's encoder is a few dozen lines, so
sonotype builds it here, on the ``meta`` device (no random initialisation), and assigns
the checkpoint's tensors, read with safetensors. State-dict keys are those of
``transformers.WhisperEncoder`` and the numbers agree with it (tested against it, tiny
random and real whisper-base), so the same checkpoints load and the same embeddings come out.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonotype.errors import ModelError

__all__ = ["WhisperEncoder", "WhisperLogMel", "mel_filter_bank"]


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = 3.0 * f / 200.0
    log = f >= 1000.0
    mel[log] = 15.0 + np.log(f[log] / 1000.0) * (27.0 / np.log(6.4))
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = 200.0 * m / 3.0
    log = m >= 15.0
    f[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m[log] - 15.0))
    return f


def mel_filter_bank(n_freq: int, n_mels: int, sr: int, fmin: float = 0.0, fmax: float = 8000.0) -> np.ndarray:
    """Slaney-normalised triangular filters, (n_freq, n_mels): Whisper's (= librosa's) bank."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    fft = np.linspace(0, sr // 2, n_freq)
    diff = np.diff(edges)
    slopes = edges[None, :] - fft[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    return bank * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]


class WhisperLogMel:
    """Waveform -> Whisper's log-mel frames, on the clip's real length (no 30 s padding).

    Equals ``WhisperFeatureExtractor(w, padding="longest")`` for one clip: a centred STFT
    (Hann window), its last frame dropped, power mel spectrum, log10, floored at the
    clip's maximum - 8, then ``(x + 4) / 4``. Built from ``preprocessor_config.json``.
    """

    def __init__(
        self,
        *,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        hop_length: int = 160,
        n_fft: int = 400,
        dither: float = 0.0,
        **_: Any,
    ) -> None:
        if dither:
            raise ModelError(f"Whisper preprocessor with dither={dither}: sonotype needs deterministic features (0)")
        self.feature_size = int(feature_size)
        self.sampling_rate = int(sampling_rate)
        self.hop_length = int(hop_length)
        self.n_fft = int(n_fft)
        bank = mel_filter_bank(1 + self.n_fft // 2, self.feature_size, self.sampling_rate)
        self._bank_t = torch.from_numpy(bank.T.astype(np.float32))
        self._window = torch.hann_window(self.n_fft)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """(feature_size, len(wave) // hop_length) float32 log-mel frames of a mono clip."""
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        with torch.autocast("cpu", enabled=False):  # float32 even inside the bf16 runtime's autocast
            stft = torch.stft(x, self.n_fft, self.hop_length, window=self._window, return_complex=True)
            power = (stft[..., :-1].abs() ** 2).contiguous()
            log = torch.clamp(self._bank_t @ power, min=1e-10).log10()
            log = torch.maximum(log, log.max() - 8.0)
            return ((log + 4.0) / 4.0).numpy()


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ModelError(f"Whisper d_model {dim} is not divisible by its {heads} attention heads")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = h.shape
        shape = (b, t, self.heads, self.head_dim)
        # the query is scaled before the product, as in OpenAI's and transformers' code
        q = (self.q_proj(h) * self.scaling).view(shape).transpose(1, 2)
        k = self.k_proj(h).view(shape).transpose(1, 2)
        v = self.v_proj(h).view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, scale=1.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class _Layer(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        d = int(c.d_model)
        self.self_attn = _Attention(d, int(c.encoder_attention_heads), float(c.attention_dropout))
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, int(c.encoder_ffn_dim))
        self.fc2 = nn.Linear(int(c.encoder_ffn_dim), d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.dropout, self.activation_dropout = float(c.dropout), float(c.activation_dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = h + F.dropout(self.self_attn(self.self_attn_layer_norm(h), mask), self.dropout, self.training)
        x = F.dropout(F.gelu(self.fc1(self.final_layer_norm(h))), self.activation_dropout, self.training)
        return h + F.dropout(self.fc2(x), self.dropout, self.training)


class _Positions(nn.Module):
    """The learned positional table (``embed_positions.weight``), sliced to the frames present.

    Not an ``nn.Embedding``: its random initialisation on the ``meta`` device goes through
    torch's reference kernels, whose first use imports ``torch._dynamo`` (2-5 s).
    """

    def __init__(self, n: int, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d), requires_grad=False)

    @property
    def num_embeddings(self) -> int:
        return int(self.weight.shape[0])


_DEFAULTS = {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
             "activation_function": "gelu", "scale_embedding": False, "num_mel_bins": 80, "max_source_positions": 1500}


class WhisperEncoder(nn.Module):
    """Conv front end, learned positions, pre-norm transformer layers, final layer norm.

    ``forward`` is not defined: :func:`sonotype.backbones.extract.hidden_states` drives the
    parts on the clip's real frames. ``config`` mirrors the ``config.json`` values used.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        c = SimpleNamespace(**{**_DEFAULTS, **config})
        missing = [k for k in ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim")
                   if getattr(c, k, None) is None]
        if missing:
            raise ModelError(f"Whisper config.json lacks {', '.join(missing)}")
        if c.activation_function != "gelu" or c.scale_embedding:
            raise ModelError(
                f"Whisper variant with activation {c.activation_function!r}, scale_embedding={c.scale_embedding} "
                "is not supported (every published Whisper uses gelu and no embedding scale)"
            )
        c.layerdrop = float(c.encoder_layerdrop)
        self.config = c
        d = int(c.d_model)
        self.dropout = float(c.dropout)
        self.conv1 = nn.Conv1d(int(c.num_mel_bins), d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = _Positions(int(c.max_source_positions), d)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(int(c.encoder_layers)))
        self.layer_norm = nn.LayerNorm(d)

    @property
    def n_parameters(self) -> int:
        return sum(math.prod(p.shape) for p in self.parameters())
