"""ONNX export: the network with its feature scaler and softmax folded into one graph.

The exported graph takes **unscaled** model input items, exactly what
:meth:`sonotype.inference.predict.Classifier.items` returns (float32, shape ``(batch, *input_shape)``,
batch axis dynamic), applies ``(x - mean) / scale``, the network and a softmax, and
returns class probabilities ``(batch, n_classes)`` in the order of the model's labels.
So a program in another language needs only the features and the label list; the
scaler statistics travel inside the graph.

:class:`OnnxClassifier` is a :class:`~sonotype.inference.predict.Classifier` whose
:meth:`forward_items` runs onnxruntime instead of PyTorch: same decoding, features,
segments and voting, another engine for the network.

Examples
--------
>>> from sonotype.inference.export import export_onnx, load_onnx_classifier  # doctest: +SKIP
>>> export_onnx("models/gtzan", "gtzan.onnx")  # doctest: +SKIP
>>> clf = load_onnx_classifier("models/gtzan", "gtzan.onnx")  # doctest: +SKIP
>>> clf.predict("song.wav").label  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonotype.errors import ModelError, ParameterError
from sonotype.inference.predict import Classifier, load_model
from sonotype.utils.io import check_output_file, output_errors

__all__ = ["OnnxClassifier", "export_onnx", "input_shape", "load_onnx_classifier", "verify_onnx"]

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 17


class _Folded(nn.Module):
    """``softmax(network((x - mean) / scale))``: the whole of ``forward_items`` as one module."""

    def __init__(self, network: nn.Module, mean: torch.Tensor | None, scale: torch.Tensor | None) -> None:
        super().__init__()
        self.network = network
        self.scaled = mean is not None
        if mean is not None and scale is not None:
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scaled:
            x = (x - self.mean) / self.scale
        return torch.softmax(self.network(x), dim=-1)


def _classifier(model: Any) -> Classifier:
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def input_shape(clf: Any) -> tuple[int, ...]:
    """The shape of one model input item (without the batch axis), from the saved architecture."""
    spec = getattr(clf.network, "sonotype_spec", None) or clf.info().get("architecture") or {}
    shape = spec.get("input_shape")
    if not shape:
        raise ModelError(f"model {clf.model_id!r}: its architecture does not record input_shape")
    return tuple(int(s) for s in shape)


def _scaler_tensors(clf: Any, ndim: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Scaler statistics shaped to broadcast over a batch ``(N, *input_shape)`` of ``ndim`` axes."""
    sc = clf.scaler
    if sc is None:
        return None, None
    mean = np.asarray(sc.mean_, dtype=np.float64)
    scale = np.asarray(sc.scale_, dtype=np.float64)
    if mean.ndim != ndim:  # per-feature vectors: place them on the feature axis
        shape = [1] * ndim
        shape[int(sc.feature_axis) % ndim] = -1
        mean, scale = mean.reshape(shape), scale.reshape(shape)
    return (torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32))


def folded_module(model: Any) -> nn.Module:
    """The PyTorch module that :func:`export_onnx` writes (eval mode, float32)."""
    clf = _classifier(model)
    shape = input_shape(clf)
    mean, scale = _scaler_tensors(clf, 1 + len(shape))
    return _Folded(clf.network, mean, scale).eval().float()


def export_onnx(model: Any, out_path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write the model's network, scaler and softmax as one ONNX graph.

    Parameters
    ----------
    model : path-like or Classifier
        A saved model directory or a loaded classifier.
    out_path : path-like
        The ``.onnx`` file to write (parent folders are created; written atomically).
    opset : int
        ONNX opset version (>= 13).

    Returns
    -------
    Path
        ``out_path``. Input ``"features"`` float32 ``(batch, *input_shape)`` of unscaled
        items; output ``"probabilities"`` float32 ``(batch, n_classes)``.
    """
    if opset < 13:
        raise ParameterError(f"opset must be >= 13, got {opset}")
    out = check_output_file(out_path)  # a folder or an unwritable place: one line before any work
    clf = _classifier(model)
    if (clf.architecture or {}).get("name") == "backbone-finetune":
        # The network holds a whole transformers encoder: export its head only when it is frozen.
        raise ModelError("ONNX export of a fine-tuned backbone model is not supported; frozen-embedding models export")
    module = folded_module(clf)
    shape = input_shape(clf)
    dummy = torch.zeros((2, *shape), dtype=torch.float32)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with output_errors(out), warnings.catch_warnings(), torch.no_grad():
            out.parent.mkdir(parents=True, exist_ok=True)
            # The TorchScript exporter needs no extra package (the dynamo one needs onnxscript).
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            torch.onnx.export(
                module,
                (dummy,),
                str(tmp),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
            _annotate(tmp, clf)
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _annotate(path: Path, clf: Any) -> None:
    """Record labels, model id and the input layout in the ONNX metadata for other runtimes."""

    import onnx  # optional: sonotype[onnx]

    m = onnx.load(str(path))
    info = {
        "labels": json.dumps(list(clf.labels)),
        "model_id": str(clf.model_id),
        "input": "unscaled feature items, as sonotype.inference.predict.Classifier.items() returns them",
        "sample_rate": str(int(clf.feature_config.sr)),
    }
    for k, v in info.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = f"sonotype.{k}", v
    m.producer_name = "sonotype"
    onnx.save(m, str(path))


def _session(onnx_path: str | os.PathLike) -> Any:
    try:
        import onnxruntime as ort  # optional: sonotype[onnx]
    except ImportError:
        raise ModelError("onnxruntime is not installed: pip install 'sonotype[onnx]'") from None
    p = Path(onnx_path)
    if not p.is_file():
        raise ModelError(f"{p}: ONNX file not found")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{p}: not a loadable ONNX model ({exc})") from None


class OnnxClassifier(Classifier):
    """A :class:`~sonotype.inference.predict.Classifier` whose network runs in onnxruntime.

    Build it with :func:`load_onnx_classifier`. Everything but :meth:`forward_items`
    (decoding, features, segments, voting, ``info()``) is the wrapped classifier's own.
    """

    session: Any
    onnx_path: Path

    @classmethod
    def from_classifier(cls, clf: Classifier, onnx_path: str | os.PathLike) -> OnnxClassifier:
        """Wrap a loaded classifier; the ONNX file must take its input shape and classes."""
        new = cls.__new__(cls)
        new.__dict__.update(vars(clf))
        new.session = _session(onnx_path)
        new.onnx_path = Path(onnx_path)
        inp = new.session.get_inputs()[0]
        want = input_shape(clf)
        got = tuple(inp.shape[1:])
        if got != want:
            raise ModelError(f"{onnx_path}: ONNX input shape {got} does not match the model's {want}")
        n_out = new.session.get_outputs()[0].shape[-1]
        if n_out != len(clf.labels):
            raise ModelError(f"{onnx_path}: ONNX gives {n_out} outputs, the model has {len(clf.labels)} labels")
        return new

    def forward_items(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` of unscaled items ``(N, *input_shape)``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if len(X) == 0:
            return np.empty((0, len(self.labels)), dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: X})[0]


def load_onnx_classifier(model_dir: str | os.PathLike, onnx_path: str | os.PathLike) -> OnnxClassifier:
    """Load ``model_dir`` (labels, feature settings) and run its network from ``onnx_path``."""

    return OnnxClassifier.from_classifier(load_model(model_dir), onnx_path)


def verify_onnx(
    model: Any, onnx_path: str | os.PathLike, X: np.ndarray | None = None, *, n: int = 16, seed: int = 0
) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's probabilities.

    ``X`` are unscaled items; by default ``n`` random items drawn around the scaler's
    statistics (so the network sees inputs of realistic scale).
    """
    clf = _classifier(model)
    if X is None:
        shape = input_shape(clf)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, *shape))
        mean, scale = _scaler_tensors(clf, 1 + len(shape))
        X = z if mean is None else z * scale.numpy() + mean.numpy()
    X = np.asarray(X, dtype=np.float32)
    ref = np.asarray(Classifier.forward_items(clf, X), dtype=np.float64)
    got = OnnxClassifier.from_classifier(clf, onnx_path).forward_items(X)
    return float(np.max(np.abs(ref - got)))
