"""How a frozen encoder runs: torch float32, onnxruntime (float32 or int8), torch bfloat16; on which device.

``backbone.runtime`` picks one (:data:`~sonotype.backbones.config.RUNTIMES`):

- ``torch``: the encoder as loaded, float32 (the reference every other runtime is measured
  against, ``sonotype bench backbone``).
- ``onnx``: the encoder exported once with :func:`torch.onnx.export` (a dynamic batch and
  time axis, every hidden state an output) and run by onnxruntime, which fuses the graph
  (bias + GELU, layer norm, attention). Whisper's graph takes the padded log-mel frames and
  the real frame counts, so a batch of mixed lengths gives each clip its states alone;
  layer-norm wav2vec2 models (WavLM, wav2vec2-large, HuBERT-large) take an attention
  mask; group-norm ones (wav2vec2-base, HuBERT-base) run one clip at a time, as in torch.
  Each export is checked against torch on an input of another shape than the one traced,
  so an exporter that froze a shape or a mask is refused, never used.
- ``onnx-int8``: the same graph with dynamically quantised int8 weights for every matrix
  product but the one whose input has the most outlying values (:func:`_float_linears`)
  (``onnxruntime.quantization.quantize_dynamic``, per output channel, 7-bit range:
  AVX2's u8 x s8 products are summed in pairs into 16 bits, which full 8-bit weights
  saturate, measured as 2x the cosine distance on whisper-base); the convolutions stay
  float32 (onnxruntime's integer convolution was slower than its float one on AVX2 and
  less accurate).
- ``bf16``: torch under bfloat16 autocast, only where the CPU computes bf16 natively
  (AVX512-BF16 or AMX; :func:`sonotype.utils.environment.bf16_native`) or on a GPU that does.
  Elsewhere emulated bf16 is slower than float32, so a warning says so and torch float32
  runs (and is what the embedding cache records).

Exported files are cached under ``<cache>/encoders/`` (``$SONOTYPE_CACHE``), named by the
encoder's digest, its configuration, the runtime, the opset and this module's export
version, and written atomically, so concurrent runs never see half a file.

``backbone.device``: ``auto`` is the GPU when torch sees one; ``cuda`` that is absent falls
back to the CPU with a warning (:func:`resolve_device`). onnxruntime runs on the GPU only
with its CUDA provider (``onnxruntime-gpu``); otherwise on the CPU, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonotype.backbones.config import RUNTIMES, BackboneConfig
from sonotype.backbones.load import Backbone
from sonotype.errors import ConfigError, ModelError

__all__ = [
    "EXPORT_VERSION",
    "OPSET",
    "Runner",
    "RuntimeFallbackWarning",
    "cache_tag",
    "effective_runtime",
    "export_onnx",
    "onnx_path",
    "resolve_device",
    "runner",
]

OPSET = 17
EXPORT_VERSION = 2  # bump when the exported graph changes: old files are then ignored


class RuntimeFallbackWarning(UserWarning):
    """A runtime or device asked for is not available here; what runs instead is named."""


_WARNED: set[str] = set()


def _note(msg: str) -> None:
    """Warn once per process and message: a batch loop must not repeat it per chunk."""
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, RuntimeFallbackWarning, stacklevel=3)


# -- device ---------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """``backbone.device`` -> the torch device used: a missing GPU falls back to the CPU (warned)."""
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if device != "auto":
            _note(f"backbone.device {device}: torch sees no CUDA device here; running on the CPU")
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        _note(f"backbone.device {device}: torch sees {torch.cuda.device_count()} CUDA device(s); using cuda:0")
        index = 0
    return torch.device(f"cuda:{index}")


def _bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    from sonotype.utils.environment import bf16_native

    return bf16_native()


def effective_runtime(cfg: BackboneConfig, *, force_bf16: bool = False) -> str:
    """The runtime that will run: ``bf16`` becomes ``torch`` (warned) where bf16 is not native.

    This, not ``cfg.runtime``, keys the embedding cache, so a float32 fallback shares the
    torch entries and a real bf16 run never does.
    """
    if cfg.runtime not in RUNTIMES:
        raise ConfigError(f"backbone.runtime must be one of {', '.join(RUNTIMES)}, got {cfg.runtime!r}")
    if cfg.runtime == "bf16" and not force_bf16 and not _bf16_available(resolve_device(cfg.device)):
        _note("backbone.runtime bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where emulated bf16 "
              "is slower than float32; running torch float32 (use onnx-int8 for speed here)")
        return "torch"
    return cfg.runtime


def cache_tag(runtime: str) -> str:
    """What keys the embedding cache for ``runtime``: ONNX runtimes name the export version and opset,
    so embeddings of an older export (other quantised layers) are never reused."""
    return f"{runtime}:export{EXPORT_VERSION}:opset{OPSET}" if runtime.startswith("onnx") else runtime


# -- what runs a batch ---------------------------------------------------------------------


@dataclass
class Runner:
    """Runs batches of prepared waveforms: ``run(waves) -> (L hidden states (B, T, D), valid (B, T))``."""

    runtime: str
    device: torch.device
    batchable: bool
    run: Callable[[list[np.ndarray]], tuple[list[torch.Tensor], torch.Tensor]]


def runner(backbone: Backbone, cfg: BackboneConfig, *, force_bf16: bool = False) -> Runner:
    """The :class:`Runner` for ``cfg.runtime`` and ``cfg.device`` (ONNX sessions kept on ``backbone``)."""
    from sonotype.backbones.extract import batchable

    rt = effective_runtime(cfg, force_bf16=force_bf16)
    device = resolve_device(cfg.device)
    if rt in ("torch", "bf16"):
        return Runner(rt, device, batchable(backbone), _torch_run(backbone, device, bf16=rt == "bf16"))
    if backbone.kind not in ("whisper", "ssl"):
        raise ConfigError(
            f"backbone.runtime {rt}: ONNX export covers Whisper and the wav2vec2/WavLM/HuBERT families, not "
            f"{backbone.model_type or backbone.kind} ({backbone.model_id}); use runtime torch"
        )
    key = f"{rt}|{device}|{torch.get_num_threads()}"
    sessions = backbone.__dict__.setdefault("_onnx_sessions", {})
    if key not in sessions:
        sessions[key] = _session(export_onnx(backbone, rt), device)
    return Runner(rt, device, batchable(backbone), _onnx_run(backbone, sessions[key]))


def _torch_run(backbone: Backbone, device: torch.device, *, bf16: bool) -> Callable:
    from sonotype.backbones.extract import hidden_states

    model = backbone.model
    if next(model.parameters()).device != device:
        model.to(device)

    def run(waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            return hidden_states(backbone, waves)

    return run


def _masked(backbone: Backbone) -> bool:
    """Whether the exported graph takes a padding input (Whisper: frame counts; SSL: a mask)."""
    from sonotype.backbones.extract import batchable

    return backbone.kind == "whisper" or batchable(backbone)


def _onnx_run(backbone: Backbone, sess: Any) -> Callable:
    from sonotype.backbones.extract import ssl_inputs, ssl_valid, whisper_inputs, whisper_valid

    masked = _masked(backbone)

    def run(waves: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if backbone.kind == "whisper":
            x, n = whisper_inputs(backbone, waves)
            states = sess.run(None, {"mel": x.numpy(), "n": n.numpy().astype(np.int64)})
            valid = whisper_valid(n, states[0].shape[1])
        else:
            x, att, n = ssl_inputs(backbone, waves)
            feed = {"input_values": x.numpy()}
            if masked:
                feed["attention_mask"] = att.numpy()
            states = sess.run(None, feed)
            valid = ssl_valid(backbone.model.config, n, states[-1].shape[1])
        return [torch.from_numpy(s) for s in states], valid

    return run


def _session(path: Path, device: torch.device) -> Any:
    ort = _require_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = max(1, torch.get_num_threads())  # follows the process's thread budget
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        else:
            _note(f"backbone.device {device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu); "
                  "running the ONNX encoder on the CPU")
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"onnxruntime cannot load {path} ({exc}); delete the file to export it again") from None


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(f"backbone.runtime onnx needs onnxruntime ({exc}); install it with: "
                         "pip install 'sonotype[onnx]'") from None
    return onnxruntime


# -- export --------------------------------------------------------------------------------


class _WhisperGraph(torch.nn.Module):
    """(mel (B, n_mels, N), n (B,)) -> every hidden state, padding masked (see extract.whisper_forward)."""

    def __init__(self, enc: torch.nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, mel: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from sonotype.backbones.extract import whisper_forward

        return tuple(whisper_forward(self.enc, mel, n, always_mask=True))


class _SSLGraph(torch.nn.Module):
    """(input_values (B, S)[, attention_mask (B, S)]) -> every hidden state of a transformers model."""

    def __init__(self, model: torch.nn.Module, masked: bool) -> None:
        super().__init__()
        self.model, self.masked = model, masked

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        kw = {"attention_mask": attention_mask} if self.masked else {}
        return tuple(self.model(x, output_hidden_states=True, **kw).hidden_states)


def _digest(backbone: Backbone) -> str:
    if backbone.weights_digest:
        return backbone.weights_digest
    from sonotype.backbones.digest import _hash_params

    return _hash_params(backbone.model)


def _config_json(backbone: Backbone) -> dict[str, Any]:
    conf = backbone.model.config
    d = vars(conf) if not hasattr(conf, "to_dict") else conf.to_dict()
    return {k: v for k, v in d.items() if not k.startswith("_")}


def onnx_path(backbone: Backbone, runtime: str) -> Path:
    """Where the exported ``runtime`` graph of ``backbone`` is cached (digest, config, runtime, opset)."""
    from sonotype.features.cache import default_cache_dir

    material = {"digest": _digest(backbone), "kind": backbone.kind, "model_type": backbone.model_type,
                "config": _config_json(backbone), "masked": _masked(backbone), "version": EXPORT_VERSION}
    h = hashlib.blake2b(json.dumps(material, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()
    return default_cache_dir() / "encoders" / f"{backbone.model_type or backbone.kind}-{h}-{runtime}-opset{OPSET}.onnx"


def _examples(backbone: Backbone, seed: int) -> list[np.ndarray]:
    """Two clips of different lengths (the second shorter: padding is exercised)."""
    rng = np.random.default_rng(seed)
    sr = backbone.sampling_rate
    lengths = (int(2.0 * sr) + 37 * seed, int(1.3 * sr) + 11 * seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def _graph_and_inputs(backbone: Backbone, waves: list[np.ndarray]) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    from sonotype.backbones.extract import ssl_inputs, whisper_inputs

    if backbone.kind == "whisper":
        x, n = whisper_inputs(backbone, waves)
        return _WhisperGraph(backbone.model), {"mel": x, "n": n.long()}
    masked = _masked(backbone)
    if not masked:
        waves = waves[:1]
    x, att, _ = ssl_inputs(backbone, waves)
    inputs = {"input_values": x}
    if masked:
        inputs["attention_mask"] = att
    return _SSLGraph(backbone.model, masked), inputs


def _legacy_exporter() -> dict[str, bool]:
    """The TorchScript exporter (``dynamo=False``: torch >= 2.9 defaults to the dynamo one, which
    needs onnxscript); older torch has only that one and no ``dynamo`` argument."""
    import inspect

    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _export_float(backbone: Backbone) -> bytes:
    """The float32 ONNX graph, checked against torch on inputs of another shape than traced."""
    model = backbone.model
    device = next(model.parameters()).device
    was_training = model.training
    graph, inputs = _graph_and_inputs(backbone, _examples(backbone, 0))
    graph.eval()
    names = [f"hidden_state_{i}" for i in range(backbone.n_hidden)]
    time_axis = {"mel": 2, "n": None, "input_values": 1, "attention_mask": 1}
    axes: dict[str, dict[int, str]] = {k: ({0: "batch", time_axis[k]: "samples"} if time_axis[k] else {0: "batch"})
                                       for k in inputs}
    axes.update({k: {0: "batch", 1: "frames"} for k in names})
    buf = io.BytesIO()
    try:
        model.to("cpu")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter; the result is checked below
            torch.onnx.export(graph, tuple(inputs.values()), buf, input_names=list(inputs), output_names=names,
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, **_legacy_exporter())
    except Exception as exc:
        raise ModelError(f"ONNX export of {backbone.model_id} ({backbone.model_type}) failed: {exc}; "
                         "use backbone.runtime torch") from None
    finally:
        graph.train(False)
        model.train(was_training)  # export restores the wrapper's (training) mode onto the model
        model.to(device)
    data = buf.getvalue()
    _check_export(backbone, data)
    return data


def _check_export(backbone: Backbone, data: bytes) -> None:
    """Refuse a graph whose states differ from torch's on a batch of another shape than traced."""
    ort = _require_onnxruntime()
    waves = _examples(backbone, 1)
    if not _masked(backbone):
        waves = waves[:1]
    graph, inputs = _graph_and_inputs(backbone, waves)
    model = backbone.model
    device = next(model.parameters()).device
    try:
        model.to("cpu")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
            ref = [r.numpy() for r in graph.eval()(*inputs.values())]
    finally:
        model.to(device)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
    worst = max(float(np.abs(g - r).max() / (np.abs(r).max() + 1e-6)) for g, r in zip(got, ref, strict=True))
    if not worst < 1e-3:
        raise ModelError(
            f"ONNX export of {backbone.model_id} ({backbone.model_type}) does not reproduce torch on a new input "
            f"shape (relative difference {worst:.2g}); use backbone.runtime torch"
        )


def _float_linears(backbone: Backbone) -> list[str]:
    """The Linear layer int8 leaves float32: the one whose input has the most outlying values.

    Dynamic quantisation gives each activation tensor one scale, so a tensor with a few
    huge channels loses the rest to rounding. In whisper-base that is layer 4's fc2 (input
    peak 121 x its RMS on the export's noise input, 145 x on RAVDESS; the next ones
    98-113 x): leaving that one product float32 cut the largest cosine distance of any
    layer's mean over 48 RAVDESS clips from 0.018 to 0.0016 for 2 % of the speed, while
    leaving the next two float32 as well changed nothing (measured; see docs/results.md).
    Found on the export's own input, so the file depends only on the encoder.
    """
    from sonotype.backbones.extract import hidden_states, prepare_waveforms

    model = backbone.model
    sr = backbone.sampling_rate
    waves = prepare_waveforms(backbone, _examples(backbone, 0), sr, BackboneConfig(backbone.path or "x"))
    if not _masked(backbone):
        waves = waves[:1]
    peaks: dict[str, float] = {}

    def hook(name: str) -> Callable:
        def run(mod: torch.nn.Module, inp: tuple, out: torch.Tensor) -> None:
            x = inp[0].detach().float()
            peaks[name] = max(peaks.get(name, 0.0), float(x.abs().max() / (x.pow(2).mean().sqrt() + 1e-12)))
        return run

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
            hidden_states(backbone, waves)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [max(peaks, key=peaks.get)] if peaks else []


def _float_nodes(backbone: Backbone, model_proto: Any, names: list[str]) -> list[str]:
    """ONNX MatMul nodes computing the Linear layers ``names`` (matched by their weight values)."""
    from onnx import numpy_helper

    want = {}
    for n in names:
        w = dict(backbone.model.named_modules())[n].weight.detach().float().T.contiguous().numpy()
        want[(w.shape, hashlib.blake2b(w.tobytes(), digest_size=16).hexdigest())] = n
    inits = {i.name: i for i in model_proto.graph.initializer}
    nodes = []
    for node in model_proto.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in inits:
            arr = np.ascontiguousarray(numpy_helper.to_array(inits[node.input[1]]), dtype=np.float32)
            if (arr.shape, hashlib.blake2b(arr.tobytes(), digest_size=16).hexdigest()) in want:
                nodes.append(node.name)
    return nodes


def _quantize(float_path: Path, backbone: Backbone | None = None) -> bytes:
    """Dynamic int8 weights for every MatMul (per channel, 7-bit: see module notes) but the one
    :func:`_float_linears` picks; convolutions stay float32."""
    _require_onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = _float_nodes(backbone, onnx.load(str(float_path)), _float_linears(backbone)) if backbone is not None else []
    with tempfile.TemporaryDirectory(dir=float_path.parent, prefix=".quant-") as tmp:
        out = Path(tmp) / "int8.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import logging

            level = logging.getLogger().level
            logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice, on the root logger
            try:
                quantize_dynamic(str(float_path), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                                 op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude)
            finally:
                logging.getLogger().setLevel(level)
        return out.read_bytes()


def export_onnx(backbone: Backbone, runtime: str = "onnx") -> Path:
    """The cached ONNX file for ``runtime`` (``onnx`` or ``onnx-int8``), exported on first use.

    Raises
    ------
    ModelError
        onnxruntime missing, an encoder family the export does not cover, or an export
        that does not reproduce torch.
    """
    if runtime not in ("onnx", "onnx-int8"):
        raise ConfigError(f"export_onnx: runtime must be onnx or onnx-int8, got {runtime!r}")
    from sonotype.utils.io import atomic_write_bytes

    path = onnx_path(backbone, runtime)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if runtime == "onnx":
        atomic_write_bytes(path, _export_float(backbone))
    else:
        atomic_write_bytes(path, _quantize(export_onnx(backbone, "onnx"), backbone))
    with contextlib.suppress(OSError):
        os.chmod(path, 0o644)
    return path
