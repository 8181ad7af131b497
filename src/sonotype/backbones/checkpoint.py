"""What a checkpoint folder holds, checked tensor by tensor, and the digest that identifies its encoder.

Every *parameter* of the encoder must come from the folder's safetensors files (transformers would fill
missing ones with random values and carry on); the identity of an encoder is the BLAKE2b digest of the
parameters actually loaded (name, shape, float32 bytes), memoised per folder in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.backbones.native import read_native_config
from sonotype.backbones.whisper import WhisperEncoder, WhisperLogMel
from sonotype.errors import ModelError
from sonotype.utils.io import atomic_write_text
from sonotype.utils.paths import default_cache_dir

__all__ = ["CONFIG_FILE", "PREPROCESSOR_FILE", "WEIGHT_FILES", "Checkpoint", "build_encoder", "check_folder", "checkpoint_digest",
           "encoder_shape", "hash_parameters", "inspect_checkpoint", "missing_files", "read_config", "read_tensors", "require_transformers"]

CONFIG_FILE = "config.json"

PREPROCESSOR_FILE = "preprocessor_config.json"

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")

# model_type -> how sonotype drives it (see extract.py)
_SSL_TYPES = {
    "wav2vec2", "wav2vec2-bert", "wav2vec2-conformer", "wavlm", "hubert", "data2vec-audio",
    "unispeech", "unispeech-sat", "sew", "sew-d",
}

_KINDS = {"whisper": "whisper", "audio-spectrogram-transformer": "ast"}

_WHISPER_PREFIXES = ("model.encoder.", "encoder.")

def require_transformers() -> Any:
    """Import ``transformers`` lazily; the core of sonotype (and Whisper) runs without it."""
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise ModelError(
            f"pretrained backbones need the optional 'transformers' package ({exc}); "
            "install it with: pip install 'sonotype[backbones]'"
        ) from None

@dataclass
class Checkpoint:
    """A folder's encoder: configuration, and where each encoder parameter is stored."""

    folder: Path
    config: dict[str, Any]
    preprocessor: dict[str, Any]
    model_type: str
    kind: str
    n_hidden: int
    dim: int
    prefix: str
    tensors: dict[str, tuple[Path, str]]  # encoder parameter name -> (file, stored key)
    stamp: list[Any]  # (file, size, mtime_ns, inode) of the weight files: memo key of the digest

def read_config(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable backbone configuration ({exc})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{path}: must hold a JSON object")
    return d

def encoder_shape(config: dict[str, Any]) -> tuple[str, int, int]:
    """(model_type, hidden states, width) from a config.json dict."""
    model_type = str(config.get("model_type", ""))
    if model_type == "whisper":
        return model_type, int(config.get("encoder_layers", 0)) + 1, int(config.get("d_model", 0))
    width = config.get("hidden_size") or config.get("d_model") or 0
    return model_type, int(config.get("num_hidden_layers", 0)) + 1, int(width)

def _weight_files(folder: Path) -> list[Path]:
    index = folder / WEIGHT_FILES[1]
    if index.is_file():
        wm = read_config(index).get("weight_map", {})
        return sorted({folder / str(f) for f in wm.values()})
    if (folder / WEIGHT_FILES[0]).is_file():  # not variants such as model.fp16.safetensors beside it
        return [folder / WEIGHT_FILES[0]]
    return sorted(folder.glob("*.safetensors"))

def _stored_keys(files: list[Path]) -> dict[str, Path]:
    from safetensors import safe_open  # only model and encoder files need it

    keys: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                keys.update(dict.fromkeys(sf.keys(), f))
        except Exception as exc:  # SafetensorError, OSError: a truncated or foreign file
            raise ModelError(f"{f}: not a readable safetensors file ({exc})") from None
    return keys

def _transformers_classes(model_type: str, config: dict[str, Any]) -> tuple[Any, Any]:
    """(config object, base model class) for a model type, without the Auto* machinery."""
    tf = require_transformers()
    try:
        conf_cls = tf.CONFIG_MAPPING[model_type]
        model_cls = tf.MODEL_MAPPING[conf_cls]
    except KeyError:
        raise ModelError(f"model_type {model_type!r} is not an encoder transformers {tf.__version__} knows") from None
    conf = conf_cls.from_dict({k: v for k, v in config.items() if k != "transformers_version"})
    return conf, model_cls

def _encoder_layout(config: dict[str, Any]) -> tuple[list[str], tuple[str, ...]]:
    """(parameter names of sonotype's Whisper encoder, key prefixes a checkpoint may use)."""
    import torch  # heavy: torch loads in ~1 s; only this path needs it

    with torch.device("meta"):
        names = [n for n, _ in WhisperEncoder(config).named_parameters()]
    return names, _WHISPER_PREFIXES

def _short(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")

def missing_files(root: Path) -> list[str]:
    """The files an encoder folder lacks (a native family's needs no preprocessor file)."""
    needed = (CONFIG_FILE,) if read_native_config(root) is not None else (CONFIG_FILE, PREPROCESSOR_FILE)
    missing = [f for f in needed if not (root / f).is_file()]
    if not any((root / f).is_file() for f in WEIGHT_FILES) and not any(root.glob("*.safetensors")):
        missing.append(WEIGHT_FILES[0])
    return missing

def check_folder(root: Path, ref: str) -> None:
    missing = missing_files(root)
    if missing:
        raise ModelError(
            f"backbone folder {root} lacks {', '.join(missing)}; a backbone folder holds config.json, "
            "preprocessor_config.json and model.safetensors (get one with `sonotype backbone fetch NAME --dir DIR`, "
            "or save a transformers model with save_pretrained)"
            + (f" [reference {ref!r}]" if ref != str(root) else "")
        )


def inspect_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Read a folder's configuration and match the encoder's parameters to stored tensors.

    Raises
    ------
    ModelError
        Unreadable files, not an audio encoder, or a parameter of the encoder not in the
        checkpoint / a tensor under the encoder's prefix the encoder has no place for: the
        message lists them and names the usual cause and its fix.
    """
    root = Path(folder).absolute()
    check_folder(root, str(root))
    config = read_config(root / CONFIG_FILE)
    pre = read_config(root / PREPROCESSOR_FILE)
    model_type, n_hidden, dim = encoder_shape(config)
    kind = _KINDS.get(model_type, "ssl" if model_type in _SSL_TYPES else "generic")
    sr = pre.get("sampling_rate")
    if n_hidden < 2 or not dim or not sr:
        raise ModelError(
            f"backbone {root} ({model_type or 'unknown type'}) does not look like an audio encoder "
            f"(layers={n_hidden - 1}, width={dim}, sampling_rate={sr})"
        )
    files = _weight_files(root)
    stamp = []
    for f in files:
        st = f.stat()
        stamp.append([str(f), st.st_size, st.st_mtime_ns, st.st_ino])
    if kind != "whisper":  # transformers renames these families' keys itself: checked at load (build_encoder)
        return Checkpoint(root, config, pre, model_type, kind, n_hidden, dim, "", {}, stamp)
    stored = _stored_keys(files)
    expected, prefixes = _encoder_layout(config)
    want = set(expected)
    best: tuple[int, str, dict[str, tuple[Path, str]], list[str]] | None = None
    for p in prefixes:
        found: dict[str, tuple[Path, str]] = {}
        extra: list[str] = []
        for k, f in stored.items():
            if not k.startswith(p):
                continue
            rel = k[len(p):]
            if rel in want:
                found[rel] = (f, k)
            else:
                extra.append(k)
        if best is None or len(found) > best[0]:
            best = (len(found), p, found, extra)
    assert best is not None
    _, prefix, found, extra = best
    missing = [n for n in expected if n not in found]
    if missing or extra:
        raise ModelError(_mismatch_message(root, kind, prefix, expected, missing, extra, stored))
    return Checkpoint(root, config, pre, model_type, kind, n_hidden, dim, prefix, found, stamp)

def _mismatch_message(root: Path, kind: str, prefix: str, expected: list[str], missing: list[str],
                      extra: list[str], stored: dict[str, Path]) -> str:
    head = (f"backbone {root}: {len(missing)} of the encoder's {len(expected)} parameters are not in the checkpoint"
            if missing else f"backbone {root}: the checkpoint holds {len(extra)} tensor(s) the encoder has no place for")
    unexpected = extra if extra else [k for k in stored if not k.startswith(prefix)] if missing else []
    parts = [head]
    if missing:
        parts.append(f"missing: {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected: {_short(sorted(unexpected))}")
    msg = "; ".join(parts) + "."
    bare = sum(k in set(expected) for k in stored)
    if kind == "whisper" and missing and bare >= 0.9 * len(expected):
        msg += (" Usual cause: the file was saved from a bare WhisperEncoder (encoder.save_pretrained), so its keys lack "
                "the 'model.encoder.' prefix and transformers would load every encoder weight at random. Fix: save the "
                "whole model (WhisperModel or WhisperForConditionalGeneration .save_pretrained), or rewrite "
                "model.safetensors with each key k renamed to 'model.encoder.' + k.")
    elif missing:
        msg += (" Usual cause: a checkpoint of another architecture or size than config.json describes, or one saved "
                "under another key prefix; refusing to run an encoder with random weights. Fix: keep config.json and "
                "the weights from the same save_pretrained call.")
    else:
        msg += " config.json describes a smaller encoder than the weights: keep both from the same save_pretrained call."
    return msg

def build_encoder(ck: Checkpoint) -> tuple[Any, Any]:
    """(encoder module holding the checkpoint's tensors, feature extractor)."""
    if ck.kind == "whisper":
        import torch  # heavy: torch loads in ~1 s; only this path needs it

        state = read_tensors(ck)
        # float32 via numpy: 2-3x faster than Tensor.float() for float16 on CPU
        state = {k: torch.from_numpy(v.numpy().astype(np.float32)) if v.dtype == torch.float16 else v.float()
                 for k, v in state.items()}
        with torch.device("meta"):  # no random initialisation: every tensor is assigned below
            enc = WhisperEncoder(ck.config)
        enc.load_state_dict(state, strict=True, assign=True)
        enc.embed_positions.weight.requires_grad_(False)
        return enc, WhisperLogMel(**ck.preprocessor)
    tf = require_transformers()
    conf, model_cls = _transformers_classes(ck.model_type, ck.config)
    hf_log = tf.utils.logging
    verbosity, bars = hf_log.get_verbosity(), hf_log.is_progress_bar_enabled()
    try:
        hf_log.set_verbosity_error()  # sonotype checks the loading report itself, below
        hf_log.disable_progress_bar()
        import torch  # heavy: torch loads in ~1 s; only this path needs it

        dtype = {"dtype" if int(tf.__version__.split(".")[0]) >= 5 else "torch_dtype": torch.float32}
        model, info = model_cls.from_pretrained(str(ck.folder), config=conf, use_safetensors=True, local_files_only=True,
                                                output_loading_info=True, **dtype)
        fe_cls = getattr(tf, str(ck.preprocessor.get("feature_extractor_type", "")), None) or tf.AutoFeatureExtractor
        extractor = fe_cls.from_pretrained(str(ck.folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"backbone {ck.folder} could not be loaded: {exc}") from None
    finally:
        hf_log.set_verbosity(verbosity)
        if bars:
            hf_log.enable_progress_bar()
    params = {n for n, _ in model.named_parameters()}
    missing = sorted(k for k in info.get("missing_keys", []) if k in params)
    mismatched = sorted(str(k[0] if isinstance(k, (tuple, list)) else k) for k in info.get("mismatched_keys", []))
    if missing or mismatched:
        unexpected = sorted(info.get("unexpected_keys", []))
        base = getattr(model_cls, "base_model_prefix", "")
        raise ModelError(
            f"backbone {ck.folder}: {len(missing) + len(mismatched)} of the encoder's {len(params)} parameters are not in "
            f"the checkpoint" + (f"; missing: {_short(missing)}" if missing else "")
            + (f"; wrong shape: {_short(mismatched)}" if mismatched else "")
            + (f"; unexpected: {_short(unexpected)}" if unexpected else "")
            + f". Usual cause: weights of another architecture or size than config.json describes, or saved under "
            f"another key prefix than {base!r}; refusing to run an encoder with random weights. Fix: keep config.json "
            "and the weights from the same save_pretrained call."
        )
    return model, extractor


# checkpoint memo key -> digest, for this process (the files under the cache persist it)
_DIGESTS: dict[str, str] = {}

def _memo_file(ck: Checkpoint) -> tuple[str, Path]:
    key = hashlib.blake2b(json.dumps([ck.stamp, ck.prefix, sorted(ck.tensors)]).encode(), digest_size=16).hexdigest()
    return key, default_cache_dir() / "digests" / f"backbone-{key}.json"

def hash_parameters(model: Any) -> str:
    """BLAKE2b of the encoder's parameters (name, shape, float32 bytes), in name order."""
    import torch  # heavy: torch loads in ~1 s; only this path needs it

    h = hashlib.blake2b(digest_size=16)
    for name, p in sorted(model.named_parameters()):
        t = p.detach().to(torch.float32).contiguous()
        h.update(f"{name}|{list(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).numpy()))
    return h.hexdigest()

def read_tensors(ck: Checkpoint) -> dict[str, Any]:
    from safetensors import safe_open  # only model and encoder files need it

    state: dict[str, Any] = {}
    by_file: dict[Path, list[tuple[str, str]]] = {}
    for name, (f, key) in ck.tensors.items():
        by_file.setdefault(f, []).append((name, key))
    for f, items in by_file.items():
        try:
            with safe_open(str(f), framework="pt") as sf:
                for name, key in items:
                    state[name] = sf.get_tensor(key)
        except Exception as exc:
            raise ModelError(f"{f}: not a readable safetensors file ({exc})") from None
    return state

def checkpoint_digest(ck: Checkpoint, model: Any = None) -> str:
    """Digest of the encoder ``ck`` holds (memoised by the weight files' size, time and inode).

    Computed from the loaded encoder's parameters, so it does not depend on how a
    checkpoint names or stores them (prefix, other parts, legacy names, float16).
    """
    key, memo = _memo_file(ck)
    if key in _DIGESTS:
        return _DIGESTS[key]
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        rec = json.loads(memo.read_text())
        if rec["stamp"] == ck.stamp:
            _DIGESTS[key] = str(rec["digest"])
            return _DIGESTS[key]
    if model is None:
        model, _ = build_encoder(ck)
    digest = hash_parameters(model)
    _DIGESTS[key] = digest
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        atomic_write_text(memo, json.dumps({"stamp": ck.stamp, "digest": digest}))
    return digest
