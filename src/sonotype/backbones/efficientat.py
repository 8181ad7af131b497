"""EfficientAT ``mn04_as``: a 0.99 M-parameter AudioSet tagger as a general-sound encoder.

Schmid, Koutini & Widmer, "Efficient large-scale audio tagging via transformer-to-CNN knowledge
distillation" (ICASSP 2023), code github.com/fschmid56/EfficientAT (MIT). Rebuilt here in plain
torch and numpy (no torchaudio, no torchvision) with the original's state-dict names, so the
released file's tensors load one for one:

- :func:`log_mel`: the eval-time ``AugmentMelSTFT`` front end (32 kHz, 128 Kaldi mel bands);
- :class:`MN`: the MobileNetV3 ("mn") network with channel squeeze-excitation and the MLP head;
- :func:`convert`: the released ``.pt`` state dict -> ``model.safetensors`` + ``config.json``;
- :func:`load` -> :class:`EfficientATEncoder` (``embed``, ``embed_batch``, ``tag``).

A converted folder is identified by :func:`tensor_digest` of its tensors, so a file fetched from
anywhere is accepted only when it holds exactly the released numbers (:data:`MN04_TENSOR_DIGEST`).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ModelError, ParameterError

__all__ = [
    "BLOCKS",
    "CHUNK_SECONDS",
    "FILE_SHA256",
    "FILE_SIZE",
    "FMAX",
    "FRONT_END",
    "HOP_LENGTH",
    "LICENSE",
    "MN",
    "MN04_TENSOR_DIGEST",
    "N_FFT",
    "N_MELS",
    "SAMPLE_RATE",
    "URL",
    "WHOLE_MAX_SECONDS",
    "WIN_LENGTH",
    "EfficientATEncoder",
    "convert",
    "kaldi_mel_banks",
    "load",
    "log_mel",
    "tensor_digest",
]

SAMPLE_RATE = 32000
PREEMPHASIS = 0.97
N_FFT = 1024
WIN_LENGTH = 800  # a symmetric Hann (torch.hann_window(800, periodic=False)), centred in the 1024 FFT
HOP_LENGTH = 320
N_MELS = 128
FMIN = 0.0
# The original leaves fmax=None, which becomes sr // 2 - fmax_aug_range // 2 = 16000 - 1000:
# at eval time (no augmentation) the bands span 0-15 kHz, not 0-16 kHz.
FMAX = 15000.0
LOG_OFFSET = 1e-5
NORM_SHIFT, NORM_SCALE = 4.5, 5.0
FRONT_END = {
    "sample_rate": SAMPLE_RATE, "preemphasis": PREEMPHASIS, "n_fft": N_FFT, "win_length": WIN_LENGTH,
    "window": "hann-symmetric", "hop_length": HOP_LENGTH, "center": True, "pad_mode": "reflect",
    "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX, "mel": "kaldi-htk", "log_offset": LOG_OFFSET,
    "normalise": "(log_mel + 4.5) / 5",
}

LICENSE = "MIT"
URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
FILE_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
FILE_SIZE = 4_066_513
# tensor_digest() of the released mn04_as state dict (all 312 tensors, float32 + int64 counters).
MN04_TENSOR_DIGEST = "95db72dc04edf16aff9db0b64a88b963c936bbdedd7f433f25cf192c511b25df"
MN04_NAME = "mn04_as"
FORMAT_VERSION = 1

# Clips up to this long run whole (the network is fully convolutional); longer ones run as
# equal windows of about CHUNK_SECONDS (the training clip length) whose outputs are averaged.
WHOLE_MAX_SECONDS = 60.0
CHUNK_SECONDS = 10.0
BATCH_MAX = 4  # clips per forward pass in embed_batch: 2-8 run fastest per clip on a CPU core; 16 spills the caches
BLOCKS = (3, 6, 12, 15)  # the last block of each stage (strides end there): "features.3" ...

# MobileNetV3-Large rows at width 1: in, kernel, expanded, out, squeeze-excite, hard-swish, stride.
_ROWS = (
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
)


# ----------------------------------------------------------------------------------- front end
def kaldi_mel_banks(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                    fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Kaldi's triangular mel filters (no VTLN warp), as EfficientAT pads them.

    Triangles are linear in HTK mel (``1127 ln(1 + f / 700)``), peak 1, unnormalised, over the
    ``n_fft // 2`` bins below Nyquist; EfficientAT appends a zero column for the Nyquist bin.

    Parameters
    ----------
    n_mels, n_fft, sr : int
        Bands, FFT size and sample rate.
    fmin, fmax : float
        Edges of the lowest and highest triangle in Hz (eval time: 0 and 15 kHz).

    Returns
    -------
    numpy.ndarray
        ``(n_mels, n_fft // 2 + 1)`` float64.

    Examples
    --------
    >>> kaldi_mel_banks().shape
    (128, 513)
    """
    mel_lo, mel_hi = 1127.0 * math.log1p(fmin / 700.0), 1127.0 * math.log1p(fmax / 700.0)
    delta = (mel_hi - mel_lo) / (n_mels + 1)
    left = mel_lo + np.arange(n_mels)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    mel = 1127.0 * np.log1p(sr / n_fft * np.arange(n_fft // 2) / 700.0)[None, :]
    banks = np.maximum(0.0, np.minimum((mel - left) / (centre - left), (right - mel) / (right - centre)))
    return np.pad(banks, ((0, 0), (0, 1)))


_BANKS = kaldi_mel_banks()
# Bins above fmax carry no weight: the STFT power is only formed for the bins below it.
_N_BINS = int(np.flatnonzero(_BANKS.any(axis=0))[-1]) + 1
_BANKS_T = torch.from_numpy(_BANKS[:, :_N_BINS].T.astype(np.float32))
_WINDOW = torch.hann_window(WIN_LENGTH, periodic=False, dtype=torch.float64)


def log_mel(wave: np.ndarray) -> np.ndarray:
    """EfficientAT's eval-time log-mel spectrogram of a 32 kHz mono clip.

    Pre-emphasis ``x[n+1] - 0.97 x[n]`` (one sample shorter), centred STFT with reflect padding,
    power, Kaldi mel banks, ``log(mel + 1e-5)``, ``(x + 4.5) / 5``. The STFT runs in float64
    where the original runs float32: float32 rounding moves quiet bands by up to ~4e-4 (near
    the 1e-5 floor), and differently on different CPUs; in float64 the result is the exact
    value to float32 precision on any machine. Power and mel sums (positive terms, no
    cancellation) run in float32.

    Parameters
    ----------
    wave : numpy.ndarray
        ``(n,)`` samples at :data:`SAMPLE_RATE`. Clips shorter than ``n_fft // 2 + 2`` samples
        are zero-padded to that length (reflect padding needs it).

    Returns
    -------
    numpy.ndarray
        ``(128, 1 + (n - 1) // 320)`` float32.

    Examples
    --------
    >>> log_mel(np.zeros(32000, dtype=np.float32)).shape  # 1 s
    (128, 100)
    """
    x = torch.as_tensor(np.asarray(wave, dtype=np.float64))
    if x.ndim != 1 or x.numel() == 0:
        raise ParameterError(f"log_mel needs a non-empty 1-D waveform; got shape {tuple(x.shape)}")
    if x.numel() < N_FFT // 2 + 2:
        x = F.pad(x, (0, N_FFT // 2 + 2 - x.numel()))
    x = x[1:] - PREEMPHASIS * x[:-1]
    spec = torch.stft(x, N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=_WINDOW,
                      center=True, pad_mode="reflect", return_complex=True)
    spec = spec.mT[:, :_N_BINS]  # (frames, bins): torch returns this layout transposed
    power = (spec.real.square() + spec.imag.square()).to(torch.float32)
    mel = torch.log(power @ _BANKS_T + LOG_OFFSET)
    return ((mel + NORM_SHIFT) / NORM_SCALE).T.contiguous().numpy()


# ------------------------------------------------------------------------------------- network
def _divisible(v: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never more than 10 % below ``v`` (MobileNet's rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             act: type[nn.Module] | None = None) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> activation: keys ``.0`` conv, ``.1`` norm."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    """Channel squeeze-excitation: mean over (freq, time) -> fc1 -> ReLU -> fc2 -> sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]


class _ConcurrentSE(nn.Module):
    """The original's concurrent-SE wrapper; ``mn*_as`` use one channel SE (``se_dims="c"``).

    With a single SE the ``max`` aggregation is the identity, so it is not computed.
    """

    def __init__(self, channels: int, se_r: int = 4) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_SqueezeExcite(channels, _divisible(channels // se_r))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    """Expand 1x1 (absent when no expansion) -> depthwise kxk -> [SE] -> project 1x1 (+ input)."""

    def __init__(self, cin: int, k: int, cexp: int, cout: int, se: bool, hs: bool, stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if cexp != cin:
            layers.append(_conv_bn(cin, cexp, 1, act=act))
        layers.append(_conv_bn(cexp, cexp, k, stride, groups=cexp, act=act))
        if se:
            layers.append(_ConcurrentSE(cexp))
        layers.append(_conv_bn(cexp, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class MN(nn.Module):
    """EfficientAT's "mn" MobileNetV3 for AudioSet, strides (2, 2, 2, 2), MLP head.

    State-dict keys are the original's: ``features.0`` (3x3 stride-2 stem), ``features.1..15``
    (inverted residuals; channel SE where MobileNetV3 has it), ``features.16`` (1x1 conv to
    ``6 x`` the last block's channels), ``classifier.2`` / ``classifier.5`` (the MLP; dropout,
    inactive at eval, sits at ``classifier.4``).

    Parameters
    ----------
    width_mult : float
        Channel multiplier: 0.4 for ``mn04`` (384 pooled channels); smaller builds tiny test models.
    num_classes : int
        Output logits (527 AudioSet classes).
    """

    def __init__(self, width_mult: float = 0.4, num_classes: int = 527) -> None:
        super().__init__()
        ch = [tuple(_divisible(c * width_mult) if i in (0, 2, 3) else c for i, c in enumerate(row))
              for row in _ROWS]
        layers: list[nn.Module] = [_conv_bn(1, ch[0][0], 3, 2, act=nn.Hardswish)]
        layers += [_InvertedResidual(*row) for row in ch]
        self.embed_dim = 6 * ch[-1][3]
        layers.append(_conv_bn(ch[-1][3], self.embed_dim, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        hidden = _divisible(1280 * width_mult)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(self.embed_dim, hidden),
                                        nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden, num_classes))
        self.block_dims = {f"features.{i}": ch[i - 1][3] for i in BLOCKS}
        self.width_mult, self.num_classes = width_mult, num_classes
        for m in self.modules():  # the original's initialisation (what a random model looks like)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor) -> dict[str, Any]:
        """Run the network on normalised log-mels.

        Parameters
        ----------
        mel : torch.Tensor
            ``(B, 1, 128, T)`` from :func:`log_mel`.

        Returns
        -------
        dict
            ``"blocks"``: list of ``(B, C_i)`` means over frequency and time of the outputs of
            ``features.3, .6, .12, .15`` (16, 16, 48, 64 channels at width 0.4);
            ``"pooled"``: ``(B, 384)`` mean of ``features.16``; ``"logits"`` and
            ``"probabilities"`` (sigmoid): ``(B, 527)``.
        """
        x, blocks = mel, []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in BLOCKS:
                blocks.append(x.mean((2, 3)))
        pooled = x.mean((2, 3))
        logits = self.classifier[5](self.classifier[4](self.classifier[3](self.classifier[2](pooled))))
        return {"blocks": blocks, "pooled": pooled, "logits": logits, "probabilities": torch.sigmoid(logits)}


# ----------------------------------------------------------------------------- files and digest
def tensor_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: name, dtype, shape and raw little-endian bytes.

    Independent of file format and of key order, so a ``.pt`` and its safetensors copy agree.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        a = t.numpy()
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def _check_tensors(state: Mapping[str, torch.Tensor], model: MN, source: object) -> None:
    """Every key of ``model`` present with its shape and dtype, and nothing else (:class:`ModelError`)."""
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise ModelError(f"{source}: not an EfficientAT mn (width {model.width_mult}) state dict: "
                         f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                         f"unexpected keys {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape) or state[k].dtype != v.dtype:
            raise ModelError(f"{source}: tensor {k!r} is {state[k].dtype} {tuple(state[k].shape)}, "
                             f"expected {v.dtype} {tuple(v.shape)}")


def _read_labels(labels_csv: Path) -> list[str]:
    """AudioSet ``class_labels_indices.csv`` (index, mid, display_name) -> display names in index order."""
    try:
        with open(labels_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        pairs = sorted((int(r["index"]), r["display_name"]) for r in rows)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{labels_csv}: not a class_labels_indices.csv ({exc})") from None
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise ModelError(f"{labels_csv}: class indices are not 0..{len(pairs) - 1}")
    return [name for _, name in pairs]


def convert(pt_path: str | os.PathLike, labels_csv: str | os.PathLike, out_dir: str | os.PathLike, *,
            name: str = MN04_NAME, width_mult: float = 0.4, overwrite: bool = False) -> Path:
    """Turn a released EfficientAT ``.pt`` state dict into ``model.safetensors`` + ``config.json``.

    The ``.pt`` is read with ``torch.load(weights_only=True)`` (no code runs); every key, shape
    and dtype is checked against :class:`MN`. A file named ``mn04_as`` must hold exactly the
    released tensors (:data:`MN04_TENSOR_DIGEST`). The folder is written beside ``out_dir`` and
    renamed into place, so a reader never sees half of it.

    Parameters
    ----------
    pt_path, labels_csv : path
        The state dict and the AudioSet ``class_labels_indices.csv`` (one row per logit).
    out_dir : path
        Folder to create; an existing one is replaced only with ``overwrite=True``.
    name, width_mult : str, float
        Model name recorded in the config, and the width the tensors were trained at.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    pt_path, out_dir = Path(pt_path), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ModelError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    try:
        state = torch.load(pt_path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a pickle that is not a plain state dict, truncated file, missing file
        raise ModelError(f"{pt_path}: not a loadable weights-only state dict ({exc})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{pt_path}: expected a state dict of tensors, got {type(state).__name__}")
    labels = _read_labels(Path(labels_csv))
    model = MN(width_mult, len(labels))
    _check_tensors(state, model, pt_path)
    digest = tensor_digest(state)
    if name == MN04_NAME and digest != MN04_TENSOR_DIGEST:
        raise ModelError(f"{pt_path}: tensor digest {digest} is not the released mn04_as ({MN04_TENSOR_DIGEST})")
    config = {
        "family": "efficientat", "model": name, "format_version": FORMAT_VERSION, "width_mult": width_mult,
        "sample_rate": SAMPLE_RATE, "front_end": FRONT_END, "labels": labels,
        "outputs": {"pooled": model.embed_dim, **model.block_dims, "probabilities": len(labels)},
        "license": LICENSE, "source": URL if name == MN04_NAME else str(pt_path.name), "tensor_digest": digest,
    }
    return _write_folder(out_dir, {k: v.contiguous() for k, v in state.items()}, config)


def _write_folder(out_dir: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write into a temporary sibling folder, then rename it to ``out_dir`` (atomic on one filesystem)."""

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    old = None
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "tensor_digest": config["tensor_digest"]})
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            old = out_dir.with_name(f"{tmp.name}.old")
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out_dir.exists():
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def load(folder: str | os.PathLike) -> EfficientATEncoder:
    """Load a folder written by :func:`convert` (safetensors only; nothing is unpickled).

    Raises
    ------
    ModelError
        Missing or unreadable files, another family, wrong keys or shapes, or tensors whose
        digest differs from the config's (or, for ``mn04_as``, from the release's).
    """

    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        state = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelError(f"{folder}: not an EfficientAT folder ({exc})") from None
    if config.get("family") != "efficientat" or config.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{folder}: config.json is family {config.get('family')!r} "
                         f"version {config.get('format_version')!r}, expected 'efficientat' {FORMAT_VERSION}")
    try:
        model = MN(float(config["width_mult"]), len(config["labels"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder}: config.json lacks or garbles {exc}") from None
    _check_tensors(state, model, folder / "model.safetensors")
    digest = tensor_digest(state)
    expected = MN04_TENSOR_DIGEST if config.get("model") == MN04_NAME else config.get("tensor_digest")
    if digest != expected or digest != config.get("tensor_digest"):
        raise ModelError(f"{folder}: tensor digest {digest} does not match the expected {expected} "
                         "(modified or corrupt weights)")
    model.load_state_dict(state, strict=True)
    return EfficientATEncoder(model.eval(), config["labels"], config)


# ------------------------------------------------------------------------------------- encoder
def _fold_batchnorm(model: MN) -> MN:
    """An inference copy with each eval-mode BatchNorm folded into the conv before it, channels-last.

    Same function up to float rounding (~1e-6 on the logits); on a CPU core the folding saves
    15-20 % and the channels-last layout (faster depthwise convolutions) another 10-15 %. Its
    state dict is no longer the original's, so it is only ever used to run.
    """
    fused = copy.deepcopy(model).eval()
    with torch.no_grad():
        for seq in fused.modules():
            if isinstance(seq, nn.Sequential) and len(seq) > 1 and isinstance(seq[1], nn.BatchNorm2d):
                conv, bn = seq[0], seq[1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
                seq[1] = nn.Identity()
    return fused.to(memory_format=torch.channels_last)


class EfficientATEncoder:
    """A loaded EfficientAT network with its labels: waveforms in, embeddings and tags out.

    Usually made by :func:`load`. Inference runs under ``torch.inference_mode`` on a
    BatchNorm-folded copy of ``model``, with the caller's torch thread settings (none are changed).

    Parameters
    ----------
    model : MN
        The network (its state dict stays the original's).
    labels : sequence of str
        One display name per output.
    config : mapping, optional
        The folder's ``config.json``, kept as :attr:`config`.
    """

    def __init__(self, model: MN, labels: Sequence[str], config: Mapping[str, Any] | None = None) -> None:
        if len(labels) != model.num_classes:
            raise ParameterError(f"{len(labels)} labels for a model with {model.num_classes} outputs")
        self.model, self.labels = model.eval(), list(labels)
        self._net = _fold_batchnorm(model)
        self.config = dict(config or {})

    def _prepare(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """Validated mono float32 at 32 kHz (soxr HQ, as librosa's default resampler)."""

        w = np.asarray(wave)
        if w.ndim != 1 or w.size == 0:
            raise ParameterError(f"expected a non-empty mono 1-D waveform, got shape {w.shape}")
        if isinstance(sr, bool) or not isinstance(sr, (int, float, np.number)) or not float(sr).is_integer() or sr <= 0:
            raise ParameterError(f"sample rate must be a positive whole number of Hz, got {sr!r}")
        w = w.astype(np.float32, copy=False)
        if not np.isfinite(w).all():
            raise ParameterError("waveform holds NaN or infinite samples")
        sr = int(sr)
        return w if sr == SAMPLE_RATE else soxr.resample(w, int(sr), SAMPLE_RATE, quality="HQ").astype(np.float32)

    def _run(self, mels: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Forward equal-shaped ``(128, T)`` log-mels as one batch -> one output dict per clip."""
        with torch.inference_mode():
            out = self._net(torch.from_numpy(np.stack(mels)[:, None]).contiguous(memory_format=torch.channels_last))
        names = list(self.model.block_dims)
        res = []
        for b in range(len(mels)):
            d = {"pooled": out["pooled"][b].numpy(), "probabilities": out["probabilities"][b].numpy()}
            d.update({n: out["blocks"][j][b].numpy() for j, n in enumerate(names)})
            res.append(d)
        return res

    def embed(self, wave: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Embeddings of one clip.

        The whole clip runs in one pass up to :data:`WHOLE_MAX_SECONDS`; a longer one is cut
        into equal windows of about 10 s (the training length), and each output is the mean of
        the windows' outputs (pooled values, block means and probabilities alike).

        Parameters
        ----------
        wave : numpy.ndarray
            ``(n,)`` mono samples, any sample rate (resampled to 32 kHz with soxr HQ).
        sr : int
            Its sample rate.

        Returns
        -------
        dict of numpy.ndarray
            ``"pooled"`` (384,), ``"features.3"`` (16,), ``"features.6"`` (16,),
            ``"features.12"`` (48,), ``"features.15"`` (64,), ``"probabilities"`` (527,).
        """
        return self.embed_batch([wave], sr)[0]

    def embed_batch(self, waves: Sequence[np.ndarray], sr: int) -> list[dict[str, np.ndarray]]:
        """Embeddings of several clips, as :meth:`embed` would give each alone.

        Clips are grouped by length and each group runs as a batch (up to :data:`BATCH_MAX`).
        Zero-padding to a common length is not used: squeeze-excitation averages over the
        whole time axis, so padding would change every clip's numbers. All clips' log-mels are
        held at once (about 0.4x the size of the 32 kHz audio): pass a few hundred at a time.

        Parameters
        ----------
        waves : sequence of numpy.ndarray
            ``(n_i,)`` mono clips, all at ``sr``.
        sr : int
            Their sample rate.

        Returns
        -------
        list of dict
            One :meth:`embed` result per clip, in order.
        """
        pieces: list[list[np.ndarray]] = []
        for wave in waves:
            w = self._prepare(wave, sr)
            n_win = 1 if len(w) <= WHOLE_MAX_SECONDS * SAMPLE_RATE else round(len(w) / (CHUNK_SECONDS * SAMPLE_RATE))
            pieces.append([log_mel(p) for p in np.array_split(w, n_win)])
        flat = [(i, j) for i, ps in enumerate(pieces) for j in range(len(ps))]
        results: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        by_len: dict[int, list[tuple[int, int]]] = {}
        for key in flat:
            by_len.setdefault(pieces[key[0]][key[1]].shape[1], []).append(key)
        for keys in by_len.values():
            for s in range(0, len(keys), BATCH_MAX):
                chunk = keys[s : s + BATCH_MAX]
                results.update(zip(chunk, self._run([pieces[i][j] for i, j in chunk])))
        out = []
        for i, ps in enumerate(pieces):
            outs = [results[(i, j)] for j in range(len(ps))]
            out.append({k: np.mean([o[k] for o in outs], axis=0) if len(outs) > 1 else outs[0][k] for k in outs[0]})
        return out

    def tag(self, wave: np.ndarray, sr: int, top: int = 5) -> list[tuple[str, float]]:
        """The ``top`` classes of a clip with their probabilities, most likely first.

        Parameters
        ----------
        wave, sr : numpy.ndarray, int
            As for :meth:`embed`.
        top : int
            How many classes.

        Returns
        -------
        list of (str, float)
            ``(display name, probability)`` pairs.
        """
        p = self.embed(wave, sr)["probabilities"]
        order = np.argsort(-p, kind="stable")[: max(0, int(top))]
        return [(self.labels[i], float(p[i])) for i in order]
