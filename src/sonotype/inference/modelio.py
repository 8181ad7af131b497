"""Safe model files: a directory of safetensors weights and one JSON description.

Layout of a saved model directory (specified in ``docs/model-format.md``)::

    model.json            format, version, labels, architecture, feature settings, scaler, metrics, licences
    weights.safetensors   the network's state_dict
    scaler.safetensors    the feature scaler's statistics (only when there is a scaler)
    README.md             the model card (:mod:`sonotype.reporting.card`); never read back

Versions: 1 (no ``licences``), 2 (``licences`` required). Every version in
:data:`SUPPORTED_VERSIONS` is read; a newer one is refused with a one-line error naming it.

Loading reads JSON with :mod:`json` and tensors with :func:`safetensors.safe_open`
and nothing else: no pickle, no ``torch.load``, so opening a model file never executes
code. ``model.json`` is checked against a strict schema (unknown keys, wrong types, an
unknown format version are refused with :class:`~sonotype.errors.ModelError`) and the
weights' digests recorded in it are verified, so a swapped or truncated file is caught.
``model.json`` nested deeper than :data:`MAX_JSON_DEPTH` is refused before it is parsed.
The weights file's metadata carries a digest of the labels in output order
(``labels_digest``; absent in files written before it was recorded, then not checked),
so labels edited or swapped in ``model.json`` are refused too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from sonotype._version import __version__
from sonotype.errors import ConfigError, ModelError, ParameterError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.reporting.card import write_card
from sonotype.utils.io import atomic_dir, atomic_write_bytes, atomic_write_text, file_digest
from sonotype.utils.licences import UNKNOWN, Combined, combine, encoder_licence

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_JSON",
    "SCALER_FILE",
    "SUPPORTED_VERSIONS",
    "WEIGHTS_FILE",
    "labels_digest",
    "read_model_dir",
    "save_model",
]

FORMAT = "sonotype-model"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)  # read; FORMAT_VERSION is written
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"
SCALER_FILE = "scaler.safetensors"
# Deepest nesting of objects and arrays accepted in model.json (a real one is under 10 deep).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")

# key -> (accepted JSON types, required); the schema of format_version 1, and of 2 (+ licences).
_SCHEMA_V1: dict[str, tuple[tuple[type, ...], bool]] = {
    "format": ((str,), True),
    "format_version": ((int,), True),
    "sonotype_version": ((str,), True),
    "labels": ((list,), True),
    "architecture": ((dict,), True),
    "features": ((dict, type(None)), True),  # null for backbone models: no frame features are used
    "representation": ((dict, type(None)), True),
    "scaler": ((dict, type(None)), True),
    "metrics": ((dict, type(None)), True),
    "created": ((str,), True),
    "backbone": ((dict, type(None)), True),
    "files": ((dict,), True),
    "extra": ((dict,), False),
}
_SCHEMAS = {1: _SCHEMA_V1, 2: {**_SCHEMA_V1, "licences": ((dict,), True)}}
_ARCH_KEYS = {"name": str, "input_shape": list, "n_classes": int, "params": dict}


def _plain(x: Any, what: str) -> Any:
    """``x`` as JSON would give it back; refuse values JSON cannot hold."""
    try:
        return json.loads(json.dumps(x, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{what} must be JSON values (no NaN), got {x!r} ({exc})") from None


def labels_digest(labels: list[str]) -> str:
    """Digest of the labels in output order, stored in the weights' metadata and checked on load.

    Parameters
    ----------
    labels : list of str

    Returns
    -------
    str
        32 hex characters (BLAKE2b of the labels as a JSON list).

    Examples
    --------
    >>> labels_digest(["a", "b"]) == labels_digest(["b", "a"])
    False
    """
    text = json.dumps([str(x) for x in labels], ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[`` and ``{`` in JSON text (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _state_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Torch tensors or numpy arrays -> independent contiguous CPU tensors.

    safetensors refuses shared or non-contiguous storage, so every entry is copied.
    """
    out = {}
    for k, v in state.items():
        t = v.detach().to("cpu") if isinstance(v, torch.Tensor) else torch.from_numpy(np.array(v))
        out[str(k)] = t.contiguous().clone()
    return out


def save_model(
    dest: str | os.PathLike,
    *,
    network: torch.nn.Module,
    architecture: dict[str, Any] | None = None,
    labels: list[str],
    feature_config: FeatureConfig | dict[str, Any] | None,
    representation: RepresentationConfig | dict[str, Any] | None,
    scaler: Any = None,
    metrics: dict[str, Any] | None = None,
    backbone: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    licences: Combined | None = None,
    force: bool = False,
) -> Path:
    """Write a model directory atomically; an existing ``dest`` is refused unless ``force``.

    Parameters
    ----------
    dest : path-like
        The model directory to create.
    network : torch.nn.Module
        Its ``state_dict()`` goes to ``weights.safetensors``.
    architecture : dict, optional
        ``{"name", "input_shape", "n_classes", "params"}`` that rebuilds the network with
        :func:`sonotype.models.registry.build_model`. A network built by ``build_model`` carries its
        spec with every parameter resolved; that is what is saved (``architecture``, when
        given, must agree with it on name, input_shape and n_classes).
    labels : list of str
        Class names in output order.
    feature_config, representation : dataclass, dict or None
        The exact feature settings used at training time; None (stored as null) for a
        model on backbone embeddings, which uses no frame features.
    scaler : Standardizer, optional
        Anything with ``to_dict()`` (JSON) and ``state_tensors()`` (name -> tensor).
    metrics : dict, optional
        A JSON summary of the evaluation (headline figures, protocol).
    backbone : dict, optional
        Description of a pretrained embedding backbone the features come from.
    extra : dict, optional
        Free-form JSON kept under ``"extra"``.
    licences : sonotype.utils.licences.Combined, optional
        What the model inherits from its data and encoder (``sonotype train`` gives the run's);
        default: data of unknown licence, plus the backbone's licence when there is one.

    Returns
    -------
    Path
        ``dest``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> net = build_model("mlp-small", (2,), 2, seed=0)  # untrained: this shows the API, not a result
    >>> path = save_model(tempfile.mkdtemp() + "/model", network=net, labels=["high", "low"],
    ...                   feature_config=fc, representation=RepresentationConfig())
    >>> sorted(p.name for p in path.iterdir())
    ['README.md', 'model.json', 'weights.safetensors']
    """

    spec = getattr(network, "sonotype_spec", None)
    if architecture is None and spec is None:
        raise ModelError("architecture is required for a network not built by sonotype.models.registry.build_model")
    if spec is not None:
        # The network's own spec holds every parameter resolved, so the file does not depend
        # on today's defaults; a given architecture must agree with it.
        if architecture is not None:
            given = _plain(architecture, "architecture")
            for key in ("name", "input_shape", "n_classes"):
                if given.get(key) != spec.get(key):
                    raise ModelError(f"architecture {key}={given.get(key)!r} disagrees with the network's "
                                     f"{spec.get(key)!r}")
        architecture = spec
    fdict = None if feature_config is None else (
        feature_config.to_dict() if hasattr(feature_config, "to_dict") else dict(feature_config))
    rdict = None if representation is None else (
        representation.to_dict() if hasattr(representation, "to_dict") else dict(representation))
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sonotype_version": __version__,
        "labels": [str(lab) for lab in labels],
        "architecture": _plain(architecture, "architecture"),
        "features": _plain(fdict, "feature_config"),
        "representation": _plain(rdict, "representation"),
        "scaler": None if scaler is None else _plain(scaler.to_dict(), "scaler.to_dict()"),
        "metrics": None if metrics is None else _plain(metrics, "metrics"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": None if backbone is None else _plain(backbone, "backbone"),
        "files": {},
        "extra": _plain(dict(extra or {}), "extra"),
        "licences": (licences or _default_licences(backbone)).to_dict(),
    }
    _validate(meta, Path(dest) / MODEL_JSON)  # never write what we could not read back
    if Path(dest).exists() and not force:
        raise ModelError(f"{dest} already exists; pass --force (force=True) to overwrite it")
    with atomic_dir(dest, force=force) as tmp:
        # safetensors' save_file creates its file 0600; bytes through atomic_write_bytes honour the umask
        atomic_write_bytes(tmp / WEIGHTS_FILE, save(_state_tensors(network.state_dict()),
                                                   metadata={"format": FORMAT, "labels_digest": labels_digest(labels)}))
        meta["files"][WEIGHTS_FILE] = file_digest(tmp / WEIGHTS_FILE)
        if scaler is not None:
            atomic_write_bytes(tmp / SCALER_FILE, save(_state_tensors(scaler.state_tensors()), metadata={"format": FORMAT}))
            meta["files"][SCALER_FILE] = file_digest(tmp / SCALER_FILE)
        atomic_write_text(tmp / MODEL_JSON, json.dumps(meta, indent=2, allow_nan=False) + "\n")
        write_card(tmp, meta, name=Path(dest).name)  # `sonotype train` rewrites it with the run's records
    return Path(dest)


def _default_licences(backbone: dict[str, Any] | None) -> Combined:
    """Data of unknown licence (a Python fit knows no corpus), plus the encoder's licence."""
    inputs = [("data", "unknown data", UNKNOWN)]
    if backbone:
        name = str((backbone.get("config") or {}).get("model") or (backbone.get("identity") or {}).get("model"))
        inputs.append(("encoder", name, encoder_licence(name)))
    return combine(inputs)


def _validate(meta: Any, where: Path) -> None:
    """Check ``meta`` against its version's schema; raise :class:`ModelError` naming the problem."""
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: must hold a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{where}: not a sonotype model (format {meta.get('format')!r}, expected {FORMAT!r})")
    version = meta.get("format_version")
    if type(version) is not int or version not in _SCHEMAS:
        raise ModelError(
            f"{where}: unknown format_version {version!r}; this sonotype reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} (upgrade sonotype to load newer models)"
        )
    schema = _SCHEMAS[version]
    unknown = sorted(set(meta) - set(schema))
    if unknown:
        raise ModelError(f"{where}: unexpected key(s) {unknown} for format_version {version}")
    for key, (types, required) in schema.items():
        if key not in meta:
            if required:
                raise ModelError(f"{where}: missing key {key!r}")
            continue
        # bool is an int subclass in Python; it is never a valid value here.
        if isinstance(meta[key], bool) or not isinstance(meta[key], types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ModelError(f"{where}: {key!r} must be {want}, got {type(meta[key]).__name__}")
    labels = meta["labels"]
    if len(labels) < 2 or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise ModelError(f"{where}: 'labels' must be >= 2 distinct strings, got {labels!r}")
    arch = meta["architecture"]
    if set(arch) != set(_ARCH_KEYS):
        raise ModelError(f"{where}: 'architecture' must have keys {sorted(_ARCH_KEYS)}, got {sorted(arch)}")
    for key, typ in _ARCH_KEYS.items():
        if isinstance(arch[key], bool) or not isinstance(arch[key], typ):
            raise ModelError(f"{where}: architecture.{key} must be {typ.__name__}, got {arch[key]!r}")
    if not arch["input_shape"] or not all(type(s) is int and s > 0 for s in arch["input_shape"]):
        raise ModelError(f"{where}: architecture.input_shape must be positive ints, got {arch['input_shape']!r}")
    if arch["n_classes"] != len(labels):
        raise ModelError(f"{where}: architecture.n_classes={arch['n_classes']} but {len(labels)} labels")
    if (meta["features"] is None or meta["representation"] is None) and meta["backbone"] is None:
        raise ModelError(f"{where}: 'features' and 'representation' may be null only for a backbone model")
    try:
        if meta["features"] is not None:
            FeatureConfig.from_dict(meta["features"])
        if meta["representation"] is not None:
            RepresentationConfig.from_dict(meta["representation"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: invalid feature settings ({exc})") from None
    if meta.get("licences") is not None:
        try:
            Combined.from_dict(meta["licences"])
        except ParameterError as exc:
            raise ModelError(f"{where}: invalid 'licences' ({exc})") from None
    for name, digest in meta["files"].items():
        if name not in (WEIGHTS_FILE, SCALER_FILE) or not isinstance(digest, str):
            raise ModelError(f"{where}: 'files' must map {WEIGHTS_FILE}/{SCALER_FILE} to digests, got {name!r}")


def _load_tensors(path: Path, digest: str | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The file's tensors and its metadata, once its digest is checked."""
    if not path.is_file():
        raise ModelError(f"{path}: missing model file {path.name}")
    if digest is not None and file_digest(path) != digest:
        raise ModelError(f"{path}: content does not match the digest recorded in {MODEL_JSON} (corrupt or replaced)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_json(mj: Path) -> Any:
    """``model.json`` parsed, refusing nesting deeper than :data:`MAX_JSON_DEPTH` before parsing it."""
    try:
        text = mj.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{mj}: not valid JSON ({exc})") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelError(f"{mj}: nested {depth} deep; a model description is at most {MAX_JSON_DEPTH} deep "
                         "(not written by sonotype)")
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelError(f"{mj}: nested too deep to parse (not written by sonotype)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{mj}: not valid JSON ({exc})") from None


def read_model_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor] | None]]:
    """Read and check a model directory without executing anything from it.

    Returns
    -------
    meta : dict
        The validated ``model.json``.
    tensors : dict
        ``{"network": state_dict, "scaler": tensors or None}``.

    Raises
    ------
    ModelError
        Missing directory or file (named), invalid JSON, unknown format or version, schema
        violation, digest mismatch, unreadable safetensors.

    Parameters
    ----------
    path : path-like
        The model folder.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sonotype.features.config import FeatureConfig, RepresentationConfig
    >>> from sonotype.inference.modelio import save_model
    >>> from sonotype.models.registry import build_model
    >>> fc = FeatureConfig(sr=8000, n_fft=512, hop_length=256, features=["rms", "centroid"])
    >>> net = build_model("mlp-small", (2,), 2, seed=0)  # untrained: this shows the API, not a result
    >>> path = save_model(tempfile.mkdtemp() + "/model", network=net, labels=["high", "low"],
    ...                   feature_config=fc, representation=RepresentationConfig())
    >>> meta, tensors = read_model_dir(path)
    >>> meta["labels"], sorted(tensors)
    (['high', 'low'], ['network', 'scaler'])
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"{root}: model directory not found" if not root.exists()
                         else f"{root}: a model is a directory holding {MODEL_JSON} and {WEIGHTS_FILE}")
    mj = root / MODEL_JSON
    if not mj.is_file():
        if (root / "model" / MODEL_JSON).is_file():  # a run directory given for its model
            raise ModelError(f"{root} is a run directory, not a model: did you mean {root / 'model'}?")
        raise ModelError(f"{mj}: missing model file {MODEL_JSON}")
    meta = _read_json(mj)
    _validate(meta, mj)
    files = meta["files"]
    if WEIGHTS_FILE not in files:
        raise ModelError(f"{mj}: 'files' lacks the digest of {WEIGHTS_FILE}")
    if (meta["scaler"] is None) != (SCALER_FILE not in files):
        raise ModelError(f"{mj}: 'scaler' and files[{SCALER_FILE!r}] must be both present or both absent")
    network, weights_meta = _load_tensors(root / WEIGHTS_FILE, files[WEIGHTS_FILE])
    saved = weights_meta.get("labels_digest")  # absent in files written before it was recorded
    if saved is not None and saved != labels_digest(meta["labels"]):
        raise ModelError(f"{mj}: 'labels' {meta['labels']} are not the labels {WEIGHTS_FILE} was saved with "
                         "(edited, reordered or swapped): restore the model's own model.json")
    tensors: dict[str, dict[str, torch.Tensor] | None] = {
        "network": network,
        "scaler": None if meta["scaler"] is None else _load_tensors(root / SCALER_FILE, files[SCALER_FILE])[0],
    }
    return meta, tensors
