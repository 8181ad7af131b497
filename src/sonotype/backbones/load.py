"""Find and load a pretrained audio model from a local directory or the Hugging Face cache.

Weights are read with safetensors only (``use_safetensors=True``: no pickle), and nothing
is downloaded unless ``BackboneConfig.local_files_only`` is False. When files are missing
the error names them and says how to fetch them.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..io import file_digest
from .config import BackboneConfig

__all__ = ["Backbone", "backbone_record", "describe", "load_backbone", "require_transformers"]

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")

# model_type -> how sonotype drives it (see extract.py)
_SSL_TYPES = {
    "wav2vec2", "wav2vec2-bert", "wav2vec2-conformer", "wavlm", "hubert", "data2vec-audio",
    "unispeech", "unispeech-sat", "sew", "sew-d",
}
_KINDS = {"whisper": "whisper", "audio-spectrogram-transformer": "ast"}


def require_transformers() -> Any:
    """Import ``transformers`` lazily; the core of sonotype runs without it."""
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise ModelError(
            f"pretrained backbones need the optional 'transformers' package ({exc}); "
            "install it with: pip install 'sonotype[backbones]'"
        ) from None


@dataclass
class Backbone:
    """A loaded pretrained audio encoder, ready to embed waveforms.

    Attributes
    ----------
    model : torch.nn.Module
        The encoder (for Whisper only the encoder half is kept), in eval mode.
    feature_extractor : transformers feature extractor
        Turns waveforms into the model's input (mel frames for Whisper/AST, normalised
        samples for wav2vec2-family models).
    kind : {"whisper", "ssl", "ast", "generic"}
    model_id : str
        As given in the config (hub id or directory).
    revision : str or None
        The resolved hub commit for hub models; None for local directories.
    weights_digest : str or None
        BLAKE2b of the weights and config for local directories (their identity).
    sampling_rate : int
    n_hidden : int
        Number of hidden states the encoder returns (layers + 1 for the embeddings).
    dim : int
        Width of one hidden state.
    """

    model: Any
    feature_extractor: Any
    kind: str
    model_id: str
    revision: str | None
    weights_digest: str | None
    sampling_rate: int
    n_hidden: int
    dim: int
    model_type: str

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two backbones the same: recorded in caches and model files."""
        return {
            "model": self.model_id,
            "revision": self.revision,
            "weights_digest": self.weights_digest,
            "model_type": self.model_type,
            "n_hidden": self.n_hidden,
            "dim": self.dim,
        }


def _local_missing(root: Path) -> list[str]:
    missing = [f for f in (CONFIG_FILE, PREPROCESSOR_FILE) if not (root / f).is_file()]
    if not any((root / f).is_file() for f in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    return missing


def _how_to_get(model: str) -> str:
    return (
        f"fetch them once with `hf download {model}` (huggingface_hub >= 0.34; older: "
        f"`huggingface-cli download {model}`), or set backbone.local_files_only: false on a "
        "machine with network access"
    )


def _offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (the hub library reads them at import)."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cached(model: str, revision: str | None) -> tuple[Path | None, str | None, list[str]]:
    """(snapshot dir, commit, missing files) of a hub model in the local HF cache."""
    from huggingface_hub import try_to_load_from_cache

    found: dict[str, str] = {}
    for name in (CONFIG_FILE, PREPROCESSOR_FILE, *WEIGHT_FILES):
        hit = try_to_load_from_cache(model, name, cache_dir=os.environ.get("HF_HUB_CACHE"), revision=revision)
        if isinstance(hit, str):
            found[name] = hit
    missing = [f for f in (CONFIG_FILE, PREPROCESSOR_FILE) if f not in found]
    if not any(f in found for f in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    if not found:
        return None, None, missing
    snap = Path(next(iter(found.values()))).parent
    return snap, snap.name, missing


def _weights_digest(root: Path) -> str:
    """Digest of config + weight files: a local directory's identity for caches."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    names = [CONFIG_FILE, *sorted(p.name for p in root.glob("*.safetensors"))]
    for name in names:
        h.update(name.encode())
        h.update(file_digest(root / name).encode())
    return h.hexdigest()


def _resolve(cfg: BackboneConfig) -> tuple[str, str | None, str | None]:
    """(where to load from, hub commit, local weights digest); raise naming missing files."""
    source = Path(os.path.expanduser(cfg.model))
    if source.is_dir():
        missing = _local_missing(source)
        if missing:
            raise ModelError(
                f"backbone directory {source} lacks {', '.join(missing)}; save a model there with "
                f"model.save_pretrained(dir) and feature_extractor.save_pretrained(dir) (safetensors)"
            )
        return str(source), None, _weights_digest(source)
    require_transformers()
    if cfg.local_files_only or _offline():
        snap, revision, missing = _cached(cfg.model, cfg.revision)
        if missing or snap is None:
            looked = f"revision {cfg.revision!r}" if cfg.revision else "its default revision"
            raise ModelError(
                f"backbone {cfg.model!r} ({looked}) is not a local directory and the Hugging Face cache "
                f"lacks {', '.join(missing)}; {_how_to_get(cfg.model)}"
            )
        return str(snap), revision, None
    return cfg.model, cfg.revision, None


def _shape(config: dict[str, Any]) -> tuple[str, int, int]:
    """(model_type, hidden states, width) from a config.json dict."""
    model_type = str(config.get("model_type", ""))
    if model_type == "whisper":
        return model_type, int(config.get("encoder_layers", 0)) + 1, int(config.get("d_model", 0))
    width = config.get("hidden_size") or config.get("d_model") or 0
    return model_type, int(config.get("num_hidden_layers", 0)) + 1, int(width)


def backbone_record(cfg: BackboneConfig) -> dict[str, Any]:
    """The ``model.json`` ``backbone`` entry for ``cfg`` without loading the weights.

    Same content as :func:`describe` of the loaded backbone: settings plus identity (hub
    commit or weights digest, architecture type, hidden-state shape).
    """
    where, revision, digest = _resolve(cfg)
    conf = Path(where) / CONFIG_FILE
    if not conf.is_file():  # online hub id not cached yet: loading fetches and records it
        return describe(load_backbone(cfg), cfg)
    try:
        model_type, n_hidden, dim = _shape(json.loads(conf.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{conf}: unreadable backbone configuration ({exc})") from None
    identity = {
        "model": cfg.model,
        "revision": revision,
        "weights_digest": digest,
        "model_type": model_type,
        "n_hidden": n_hidden,
        "dim": dim,
    }
    return json.loads(json.dumps({"config": cfg.to_dict(), "identity": identity}))


def load_backbone(cfg: BackboneConfig) -> Backbone:
    """Load the backbone ``cfg`` names, from a local directory or the Hugging Face cache.

    Parameters
    ----------
    cfg : BackboneConfig

    Returns
    -------
    Backbone

    Raises
    ------
    ModelError
        Weights or configuration missing (naming the files and how to get them), or a
        model that is not an audio encoder sonotype can drive, or ``transformers`` is not installed.

    Examples
    --------
    >>> bb = load_backbone(BackboneConfig("microsoft/wavlm-base-plus"))  # doctest: +SKIP
    """
    where, revision, digest = _resolve(cfg)
    tf = require_transformers()
    kw: dict[str, Any] = {"local_files_only": where != cfg.model or cfg.local_files_only}
    if where == cfg.model and cfg.revision:
        kw["revision"] = cfg.revision
    hf_log = tf.utils.logging
    bars = hf_log.is_progress_bar_enabled()
    verbosity = hf_log.get_verbosity()
    try:
        hf_log.disable_progress_bar()  # sonotype shows its own progress; no per-tensor bars
        hf_log.set_verbosity_error()
        config = tf.AutoConfig.from_pretrained(where, **kw)
        extractor = tf.AutoFeatureExtractor.from_pretrained(where, **kw)
        model = tf.AutoModel.from_pretrained(where, use_safetensors=True, **kw)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"backbone {cfg.model!r} could not be loaded from {where}: {exc}") from None
    finally:
        hf_log.set_verbosity(verbosity)
        if bars:
            hf_log.enable_progress_bar()
    if where == cfg.model and revision is None:  # downloaded just now: record the commit
        revision = getattr(config, "_commit_hash", None)
    model_type, n_hidden, dim = _shape(config.to_dict())
    kind = _KINDS.get(model_type, "ssl" if model_type in _SSL_TYPES else "generic")
    if kind == "whisper":
        model = model.get_encoder()
    n_layers = n_hidden - 1
    sr = getattr(extractor, "sampling_rate", None)
    if not n_layers or not dim or not sr:
        raise ModelError(
            f"backbone {cfg.model!r} ({model_type or 'unknown type'}) does not look like an audio encoder "
            f"(layers={n_layers}, width={dim}, sampling_rate={sr})"
        )
    model.eval()
    return Backbone(
        model=model,
        feature_extractor=extractor,
        kind=kind,
        model_id=cfg.model,
        revision=revision,
        weights_digest=digest,
        sampling_rate=int(sr),
        n_hidden=n_layers + 1,
        dim=dim,
        model_type=model_type,
    )


def describe(backbone: Backbone, cfg: BackboneConfig) -> dict[str, Any]:
    """JSON for ``model.json``'s ``backbone`` key: the settings and the backbone's identity."""
    return json.loads(json.dumps({"config": cfg.to_dict(), "identity": backbone.identity}))
