"""musicnn (MSD): a pretrained music-tagging CNN as a frozen music encoder, in plain torch.

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging"
(ISMIR 2019 LBD; github.com/jordipons/musicnn, ISC licence). The weights are the TensorFlow-1
checkpoint inside the ``musicnn==0.1.0`` wheel (``musicnn/MSD_musicnn/``); :func:`convert` reads
it with :func:`~sonotype.backbones.tfbundle.read_bundle` (no TensorFlow) and writes a
``model.safetensors`` + ``config.json`` folder that :func:`load` checks and opens.

Pipeline (as the original ``extractor.py``): 16 kHz mono -> :func:`log_mel` (96 bands,
``log10(10000 * mel + 1)``) -> :func:`patches` of 187 frames (3 s) -> :class:`Musicnn`.

Examples
--------
>>> enc = load("~/.cache/sonotype/backbones/musicnn-msd")  # doctest: +SKIP
>>> enc.tag(wave, sr, top=3)  # doctest: +SKIP
[('metal', 0.61), ('heavy metal', 0.42), ('rock', 0.37)]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft
import soxr
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError, ParameterError
from .tfbundle import read_bundle

__all__ = [
    "BN_FIELDS",
    "HOP",
    "LICENSE",
    "N_FFT",
    "N_MELS",
    "PATCH_FRAMES",
    "SAMPLE_RATE",
    "WHEEL_FILE",
    "WHEEL_MEMBERS",
    "WHEEL_NAME",
    "WHEEL_SHA256",
    "WHEEL_VERSION",
    "Musicnn",
    "MusicnnEncoder",
    "convert",
    "load",
    "log_mel",
    "mel_filters",
    "mel_filters_t",
    "patches",
    "save",
    "state_dict_from_bundle",
    "tensor_digest",
    "tf_names",
]

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as the original computes it
LICENSE = "ISC"
WHEEL_NAME = "musicnn"
WHEEL_VERSION = "0.1.0"
WHEEL_FILE = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
WHEEL_MEMBERS = ("musicnn/MSD_musicnn/.index", "musicnn/MSD_musicnn/.data-00000-of-00001")
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default (torch's is 1e-5)
FLOAT16_MAX = 65504.0
FORMAT_VERSION = 1
BATCH = 2  # patches per forward pass in :meth:`MusicnnEncoder.embed`: measured fastest on one core


# --- front end -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """The (96, 257) Slaney mel filter bank the original used (``librosa.filters.mel`` defaults)."""
    import librosa  # heavy: librosa loads numba; only this path needs it

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    fb.setflags(write=False)  # shared by every call (cached)
    return fb


@lru_cache(maxsize=1)
def mel_filters_t() -> np.ndarray:
    """:func:`mel_filters` transposed to (257, 96), contiguous (3x faster product than a ``.T`` view)."""
    return np.ascontiguousarray(mel_filters().T)  # writable: torch.from_numpy warns on read-only arrays


def log_mel(wave: np.ndarray, *, half: bool = True) -> np.ndarray:
    """Log-compressed mel spectrogram of a 16 kHz mono signal, as musicnn's ``batch_data``.

    Equals ``librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=512, hop_length=256,
    n_mels=96, pad_mode="reflect")`` (centred frames, periodic Hann window, power 2, Slaney
    mel bank), then ``log10(10000 * mel + 1)``. ``pad_mode="reflect"`` is the librosa (< 0.10)
    default the model was trained and released with; librosa >= 0.10 pads with zeros, which
    changes only the first and last frame.

    Parameters
    ----------
    wave : numpy.ndarray, shape (n_samples,)
        Mono audio at :data:`SAMPLE_RATE`, at least one sample.
    half : bool
        Round the mel power to float16 before the log, as the original does
        (``audio_rep.astype(np.float16)``; at most ~2e-4 change in the log values). Values
        above float16's range are clipped to 65504 rather than becoming ``inf``.

    Returns
    -------
    numpy.ndarray, shape (n_frames, 96), float32
        ``n_frames = 1 + n_samples // 256``.
    """
    y = np.asarray(wave, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"log_mel needs a non-empty 1-D mono signal; got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ParameterError("log_mel: the signal holds NaN or infinite samples")
    # numpy's reflect pad also works for signals shorter than the pad (it reflects repeatedly)
    padded = np.pad(y, N_FFT // 2, mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(HOP * padded.strides[0], padded.strides[0])
    )
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann (scipy "hann", fftbins)
    spec = torch.from_numpy(scipy.fft.rfft(frames * window, axis=1))  # scipy: 6x numpy's FFT here
    # the rest in torch: numpy's BLAS would start its own threads for the product, which on a
    # busy machine costs more than it gives; torch keeps to the caller's thread setting
    mel = (spec.real.square() + spec.imag.square()) @ torch.from_numpy(mel_filters_t())
    if half:
        # torch rounds to float16 in hardware (numpy in software, 10x slower), to nearest even as numpy
        mel = mel.clamp(max=FLOAT16_MAX).half().float()
    return torch.log10(10000.0 * mel + 1.0).numpy()


def patches(mel: np.ndarray, frames: int = PATCH_FRAMES) -> np.ndarray:
    """Cut a log-mel spectrogram into non-overlapping patches of ``frames`` frames.

    As the original ``batch_data`` with ``overlap = n_frames``: patches start every ``frames``
    frames and the trailing frames that do not fill a whole patch are dropped (a 30 s clip,
    1876 frames, gives 10 patches and drops 6 frames). A spectrogram shorter than one patch,
    which the original cannot tag, is repeated end to end until it fills one patch (the
    ``repeat-pad`` the model was trained with for short clips).

    Parameters
    ----------
    mel : numpy.ndarray, shape (n_frames, n_mels)
    frames : int

    Returns
    -------
    numpy.ndarray, shape (max(1, n_frames // frames), frames, n_mels), float32
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] == 0:
        raise ParameterError(f"patches needs a (frames, bands) spectrogram with frames > 0; got {mel.shape}")
    t = mel.shape[0]
    if t < frames:
        mel = np.tile(mel, (-(-frames // t), 1))
        t = mel.shape[0]
    n = t // frames
    return np.ascontiguousarray(mel[: n * frames].reshape(n, frames, mel.shape[1]))


# --- the network -----------------------------------------------------------------------------


def _bn(n: int, dims: int) -> nn.Module:
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(n, eps=BN_EPS)


def _signs(bn: nn.Module) -> torch.Tensor:
    """+1 or -1 per channel: the sign of a batch norm's scale (gamma / sqrt(var + eps))."""
    return torch.where(bn.weight < 0, -1.0, 1.0).to(bn.weight.dtype)


def _affine(bn: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """Inference batch norm over the last axis of ``v`` (elementwise, so ``v``'s layout is kept)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return (v - bn.running_mean) * scale + bn.bias


def _relu_bn_max(y: torch.Tensor, s: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """(B, C, T, F) channels-last sign-flipped convolution -> (B, T, C): max over F, ReLU, batch norm."""
    m = F.max_pool2d(y, (1, y.shape[3]))[..., 0].transpose(1, 2)  # max-pool stays fast on channels-last
    return _affine(bn, F.relu(m * s))


def _conv_time(conv: nn.Conv1d, h: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, T, O): a conv1d over time padded (k - 1) // 2 + k // 2, as one matrix product.

    Each output frame reads ``k`` consecutive input frames, which in a (T, C) row-major array
    are ``k * C`` consecutive numbers: the windows are a strided view, no im2col loop.
    """
    b, t, c = h.shape
    k = conv.kernel_size[0]
    hp = F.pad(h, (0, 0, (k - 1) // 2, k // 2)).contiguous()
    win = hp.as_strided((b, t, k * c), (hp.stride(0), c, 1)).reshape(b * t, k * c)
    w = conv.weight.permute(2, 1, 0).reshape(k * c, -1)  # (O, C, k) -> (k * C, O), matching the windows
    return torch.addmm(conv.bias, win, w).reshape(b, t, -1)


class Musicnn(nn.Module):
    """musicnn's "7774timbraltemporal" front end, dense mid end and pooling back end.

    Inference only: batch norm always uses the running statistics (``train()`` changes
    nothing). Each block is conv -> ReLU -> batch norm (the original's order). TensorFlow ``same``
    padding of the temporal convolutions pads ``(k - 1) // 2`` frames before and the rest
    after; the timbral and mid-end convolutions pad 3 frames on each side explicitly.

    Parameters
    ----------
    n_mels, n_tags : int
        Input bands (96) and output tags (50).
    timbral, temporal, midend, backend : int
        Filters per timbral (204) and temporal (51) branch, mid-end channels (64),
        penultimate units (200).
    """

    def __init__(
        self,
        n_mels: int = N_MELS,
        n_tags: int = 50,
        timbral: int = 204,
        temporal: int = 51,
        midend: int = 64,
        backend: int = 200,
    ) -> None:
        super().__init__()
        self.arch = {"n_mels": n_mels, "n_tags": n_tags, "timbral": timbral, "temporal": temporal,
                     "midend": midend, "backend": backend}
        self.bn_input = _bn(1, 2)
        # int(0.4 * 96) = 38 and int(0.7 * 96) = 67 bands, as the original's kernel sizes
        self.timbral = nn.ModuleList(nn.Conv2d(1, timbral, (7, int(f * n_mels))) for f in (0.4, 0.7))
        self.timbral_bn = nn.ModuleList(_bn(timbral, 1) for _ in range(2))
        self.temporal = nn.ModuleList(nn.Conv2d(1, temporal, (k, 1)) for k in (128, 64, 32))
        self.temporal_bn = nn.ModuleList(_bn(temporal, 1) for _ in range(3))
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList(nn.Conv1d(c, midend, 7) for c in (front, midend, midend))
        self.midend_bn = nn.ModuleList(_bn(midend, 1) for _ in range(3))
        self.pool_bn = _bn(2 * (front + 3 * midend), 1)
        self.dense = nn.Linear(2 * (front + 3 * midend), backend)
        self.dense_bn = _bn(backend, 1)
        self.out = nn.Linear(backend, n_tags)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) log-mel patches -> (B, T, 561) front-end features (time-major).

        Computed as conv -> ReLU -> batch norm -> max over bands, but rearranged for speed
        (3x on one core) with the same result: batch norm is a per-channel affine map
        ``a * v + b`` and ReLU is monotonic, so the max over bands of ``a * relu(conv) + b``
        is ``a * relu(max conv) + b`` where ``a >= 0`` and ``a * relu(-max(-conv)) + b`` where
        ``a < 0``; negating those channels' weights turns both into one max-pool of the raw
        convolution, and the ReLU and batch norm then run on a tensor ~60x smaller. The
        convolutions see their single input channel unfolded into a few time-shifted channels
        (channels-last), which oneDNN runs near matrix-multiply speed.
        """
        x = _affine(self.bn_input, x.unsqueeze(-1))[..., 0]  # one channel: (B, T, F)
        feats = []
        # timbral: 7 time shifts as channels, kernel (1, bands); time padded 3 + 3 explicitly,
        # frequency unpadded ("valid"), as the original
        x7 = F.pad(x, (0, 0, 3, 3)).unfold(1, 7, 1).contiguous().permute(0, 3, 1, 2)  # (B, 7, T, F)
        for conv, bn in zip(self.timbral, self.timbral_bn):
            s = _signs(bn)
            w = (conv.weight * s[:, None, None, None]).transpose(1, 2).contiguous()  # (O, 7, 1, K)
            feats.append(_relu_bn_max(F.conv2d(x7, w, conv.bias * s), s, bn))
        for conv, bn in zip(self.temporal, self.temporal_bn):
            k = conv.kernel_size[0]
            # TF "same" padding: (k - 1) // 2 frames before, the rest after
            xp = F.pad(x, (0, 0, (k - 1) // 2, k // 2))
            n = 8 if k % 8 == 0 else 1  # taps j = n * a + b: n shifted channels, dilated kernel of k / n
            xs = xp.unfold(1, n, 1).contiguous().permute(0, 3, 1, 2)  # (B, n, T + k - n, F)
            s = _signs(bn)
            w = (conv.weight[:, 0, :, 0] * s[:, None]).reshape(-1, k // n, n).transpose(1, 2)[..., None]
            y = F.conv2d(xs, w.contiguous(), conv.bias * s, dilation=(n, 1))
            feats.append(_relu_bn_max(y, s, bn))
        return torch.cat(feats, dim=2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on log-mel patches.

        Parameters
        ----------
        x : torch.Tensor, shape (B, T, n_mels)
            :func:`patches` output (T = 187 for the trained model).

        Returns
        -------
        dict of str to torch.Tensor
            ``frontend`` (B, 561, T), ``midend`` (B, 753, T: front end and the three mid-end
            layers), ``pooled`` (B, 1506: max over time, then mean over time), ``penultimate``
            (B, 200, after its batch norm, as the original's "penultimate"), ``tags`` (B, 50
            sigmoid probabilities).
        """
        front = self.frontend(x)
        layers = [front]
        h = front
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
            out = _affine(bn, F.relu(_conv_time(conv, h)))
            h = out if i == 0 else out + h  # layers 2 and 3 are residual
            layers.append(h)
        mid = torch.cat(layers, dim=2)  # (B, T, 753)
        mx, mean = mid.amax(dim=1), mid.mean(dim=1)
        # TF flattens concat([max, mean], axis=2) of shape (B, 753, 2): the weights expect
        # max and mean interleaved per channel (max_0, mean_0, max_1, ...)
        flat = torch.stack((mx, mean), dim=2).flatten(1)
        pen = _affine(self.dense_bn, F.relu(self.dense(_affine(self.pool_bn, flat))))
        return {
            "frontend": front.transpose(1, 2),
            "midend": mid.transpose(1, 2),
            "pooled": torch.cat((mx, mean), dim=1),
            "penultimate": pen,
            "tags": torch.sigmoid(self.out(pen)),
        }

    def weight_names(self) -> list[str]:
        """The state-dict keys that hold weights (batch norm's ``num_batches_tracked`` excluded)."""
        return [k for k in self.state_dict() if not k.endswith("num_batches_tracked")]


# --- TensorFlow names -> module names --------------------------------------------------------


def tf_names() -> dict[str, str]:
    """The original graph's layer names (creation order) -> this module's prefixes."""
    convs = ["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2", "midend.0", "midend.1", "midend.2"]
    bns = ["bn_input", "timbral_bn.0", "timbral_bn.1", "temporal_bn.0", "temporal_bn.1", "temporal_bn.2",
           "midend_bn.0", "midend_bn.1", "midend_bn.2", "pool_bn", "dense_bn"]
    names = {f"conv2d{'' if i == 0 else f'_{i}'}": m for i, m in enumerate(convs)}
    names.update({f"batch_normalization{'' if i == 0 else f'_{i}'}": m for i, m in enumerate(bns)})
    names.update({"dense": "dense", "dense_1": "out"})
    return names


BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _convert_tensor(module: str, field: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    if field in BN_FIELDS:
        return BN_FIELDS[field], value
    if field == "bias":
        return "bias", value
    if field != "kernel":
        raise ModelError(f"musicnn checkpoint: unexpected variable {field!r} in layer {module!r}")
    if module.startswith("midend"):  # (7, C, 1, out): a conv over C "bands" of one channel = conv1d
        return "weight", value[:, :, 0, :].transpose(2, 1, 0)
    if value.ndim == 4:  # TF (h, w, in, out) -> torch (out, in, h, w)
        return "weight", value.transpose(3, 2, 0, 1)
    return "weight", value.T  # dense (in, out) -> Linear (out, in)


def state_dict_from_bundle(tensors: Mapping[str, np.ndarray], model: Musicnn | None = None) -> dict[str, torch.Tensor]:
    """Map the checkpoint's TensorFlow tensors to a :class:`Musicnn` state dict.

    Parameters
    ----------
    tensors : mapping of str to numpy.ndarray
        :func:`~sonotype.backbones.tfbundle.read_bundle` output (optimiser slots already dropped).
    model : Musicnn, optional
        The module to fill (its shapes are checked); default a standard :class:`Musicnn`.

    Returns
    -------
    dict of str to torch.Tensor
        Exactly ``model.weight_names()``, float32, contiguous.

    Raises
    ------
    ModelError
        A module weight with no tensor, a tensor that fills nothing, or a shape mismatch.
    """
    model = model if model is not None else Musicnn()
    names = tf_names()
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unused = []
    for tf_name, value in tensors.items():
        layer, _, field = tf_name.rpartition("/")
        if layer not in names:
            unused.append(tf_name)
            continue
        attr, arr = _convert_tensor(names[layer], field, np.asarray(value))
        key = f"{names[layer]}.{attr}"
        if tuple(arr.shape) != tuple(expected[key].shape):
            raise ModelError(f"musicnn checkpoint: {tf_name} has shape {value.shape}; {key} needs {tuple(expected[key].shape)}")
        out[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    missing = sorted(set(model.weight_names()) - set(out))
    if missing or unused:
        raise ModelError(f"musicnn checkpoint does not match the architecture: missing {missing}, unused {sorted(unused)}")
    return out


# --- files -----------------------------------------------------------------------------------


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted tensor names, dtypes, shapes and little-endian bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        h.update(t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def _config(model: Musicnn, labels: Sequence[str], digest: str) -> dict:
    return {
        "family": "musicnn",
        "variant": "MSD_musicnn",
        "format_version": FORMAT_VERSION,
        "sample_rate": SAMPLE_RATE,
        "frontend": {
            "n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS, "window": "hann", "center": True,
            "pad_mode": "reflect", "power": 2.0, "mel": "slaney", "float16_mel": True,
            "compression": "log10(10000 * mel + 1)", "patch_frames": PATCH_FRAMES,
        },
        "architecture": dict(model.arch),
        "labels": list(labels),
        "outputs": {"frontend": [2 * model.arch["timbral"] + 3 * model.arch["temporal"], "T"],
                    "midend": [model.pool_bn.num_features // 2, "T"], "pooled": [model.pool_bn.num_features],
                    "penultimate": [model.arch["backend"]], "tags": [model.arch["n_tags"]]},
        "license": LICENSE,
        "source": {"package": WHEEL_NAME, "version": WHEEL_VERSION, "file": WHEEL_FILE, "sha256": WHEEL_SHA256,
                   "members": list(WHEEL_MEMBERS)},
        "tensor_digest": digest,
    }


def save(model: Musicnn, labels: Sequence[str], out_dir: Path | str) -> Path:
    """Write ``model.safetensors`` + ``config.json`` for ``model`` atomically (temp folder, then rename)."""

    labels = [str(x) for x in labels]
    if len(labels) != model.arch["n_tags"]:
        raise ModelError(f"musicnn: {len(labels)} labels for a model with {model.arch['n_tags']} tags")
    out_dir = Path(out_dir).expanduser()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    tensors = {k: state[k].detach().to(torch.float32).contiguous() for k in model.weight_names()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the renamed folder should read like any other
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt", "family": "musicnn"})
        cfg = _config(model, labels, tensor_digest(tensors))
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
        old = None
        if out_dir.exists():  # move the old folder aside so the new one appears in one rename
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def convert(index: bytes | Path, data: bytes | Path, labels: Sequence[str], out_dir: Path | str) -> Path:
    """Convert the original TensorFlow checkpoint into a sonotype musicnn folder.

    Parameters
    ----------
    index, data : bytes or Path
        The bundle's ``.index`` and ``.data-00000-of-00001`` (paths, or bytes read from the wheel).
    labels : sequence of str
        The 50 tag names in output order.
    out_dir : Path
        Folder to create or replace.

    Returns
    -------
    Path
        ``out_dir``, holding ``model.safetensors`` and ``config.json``.
    """
    tensors = read_bundle(index, data)
    out = tensors.get("dense_1/kernel")
    n_tags = out.shape[-1] if out is not None and out.ndim == 2 else len(labels)
    if len(labels) != n_tags:
        raise ModelError(f"musicnn: {len(labels)} labels for a checkpoint with {n_tags} output tags")
    model = Musicnn(n_tags=n_tags)
    model.load_state_dict(state_dict_from_bundle(tensors, model), strict=False)
    return save(model, labels, out_dir)


def load(folder: Path | str) -> MusicnnEncoder:
    """Open a folder written by :func:`convert` (safetensors only, never pickle), checking everything.

    Raises
    ------
    ModelError
        Missing or unreadable files, another family, missing/extra/misshapen tensors, or
        tensors whose digest differs from ``config.json``'s ``tensor_digest``.
    """

    folder = Path(folder).expanduser()
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{folder / 'config.json'}: cannot read the musicnn config ({e})") from e
    if not isinstance(cfg, dict) or cfg.get("family") != "musicnn" or cfg.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{folder}: not a musicnn folder of format {FORMAT_VERSION} (config.json says "
                         f"family={cfg.get('family') if isinstance(cfg, dict) else None!r})")
    try:
        model = Musicnn(**cfg["architecture"])
        labels = [str(x) for x in cfg["labels"]]
        tensors = load_file(str(folder / "model.safetensors"))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{folder / 'config.json'}: incomplete or invalid musicnn config ({e!r})") from e
    except (OSError, SafetensorError) as e:
        raise ModelError(f"{folder / 'model.safetensors'}: cannot read ({e})") from e
    want = model.state_dict()
    names = set(model.weight_names())
    if set(tensors) != names:
        raise ModelError(f"{folder / 'model.safetensors'}: missing {sorted(names - set(tensors))}, "
                         f"unexpected {sorted(set(tensors) - names)}")
    bad = [k for k in names if tensors[k].shape != want[k].shape or tensors[k].dtype != torch.float32]
    if bad:
        raise ModelError(f"{folder / 'model.safetensors'}: wrong shape or dtype for {sorted(bad)}")
    if tensor_digest(tensors) != cfg.get("tensor_digest"):
        raise ModelError(f"{folder / 'model.safetensors'}: tensor digest differs from config.json (modified or corrupt)")
    if len(labels) != model.arch["n_tags"]:
        raise ModelError(f"{folder / 'config.json'}: {len(labels)} labels for {model.arch['n_tags']} tags")
    model.load_state_dict(tensors, strict=False)
    return MusicnnEncoder(model.eval(), labels, cfg)


# --- the encoder -----------------------------------------------------------------------------


class MusicnnEncoder:
    """A loaded musicnn: clip-level embeddings and tags from a waveform.

    Attributes
    ----------
    model : Musicnn
        In eval mode.
    labels : list of str
    config : dict
        The folder's ``config.json``.
    batch : int
        Patches per forward pass.
    """

    def __init__(self, model: Musicnn, labels: Sequence[str], config: dict | None = None) -> None:
        self.model = model.eval()
        self.labels = list(labels)
        self.config = dict(config or {})
        self.batch = BATCH

    def patches(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """(n, 187, 96) log-mel patches of a mono waveform at ``sr`` Hz (resampled to 16 kHz with soxr)."""
        y = np.asarray(wave, dtype=np.float32)
        if y.ndim != 1:
            raise ParameterError(f"musicnn needs a 1-D mono waveform; got shape {y.shape}")
        if int(sr) <= 0:
            raise ParameterError(f"musicnn: sample rate must be positive; got {sr}")
        if int(sr) != SAMPLE_RATE and y.size:
            y = soxr.resample(y, int(sr), SAMPLE_RATE).astype(np.float32, copy=False)
        return patches(log_mel(y))

    def embed(self, wave: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Clip-level vectors of a mono waveform.

        Returns
        -------
        dict of str to numpy.ndarray (float32)
            ``frontend_max``/``frontend_mean`` (561) and ``midend_max``/``midend_mean`` (753):
            max and mean over every frame of every patch; ``pooled`` (1506), ``penultimate``
            (200) and ``tags`` (50): the per-patch outputs averaged over patches.
        """
        x = torch.from_numpy(self.patches(wave, sr))
        mx = mean = None
        rest: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch):
                out = self.model(x[start : start + self.batch])
                mid = out["midend"]
                bmx, bsum = mid.amax(dim=(0, 2)), mid.sum(dim=(0, 2))
                mx = bmx if mx is None else torch.maximum(mx, bmx)
                mean = bsum if mean is None else mean + bsum
                for k in ("pooled", "penultimate", "tags"):
                    rest[k] = out[k].sum(0) + rest.get(k, 0)
        assert mx is not None and mean is not None
        n = x.shape[0]
        mean = mean / (n * x.shape[1])
        front = 2 * self.model.arch["timbral"] + 3 * self.model.arch["temporal"]
        res = {"frontend_max": mx[:front], "frontend_mean": mean[:front], "midend_max": mx, "midend_mean": mean}
        res.update({k: v / n for k, v in rest.items()})
        return {k: v.numpy().astype(np.float32, copy=False) for k, v in res.items()}

    def tag(self, wave: np.ndarray, sr: int, top: int = 5) -> list[tuple[str, float]]:
        """The ``top`` tags of a clip, most likely first, with their probabilities averaged over patches."""
        probs = self.embed(wave, sr)["tags"]
        order = np.argsort(-probs, kind="stable")[: max(0, int(top))]
        return [(self.labels[i], float(probs[i])) for i in order]
