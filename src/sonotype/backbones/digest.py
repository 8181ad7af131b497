"""The identity of a backbone: a digest of its encoder's parameters, and finding a folder by it.

A saved model records its backbone's digest, so a backbone that moved is found again by
content (:func:`find_by_digest`) whatever its folder or hub id. The names stay importable
from :mod:`sonotype.backbones.load`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonotype.errors import ModelError, SonotypeError

if TYPE_CHECKING:
    from sonotype.backbones.load import Checkpoint

__all__ = ["checkpoint_digest", "find_by_digest", "summary"]

# checkpoint memo key -> digest, for this process (the files under the cache persist it)
_DIGESTS: dict[str, str] = {}


def _memo_file(ck: Checkpoint) -> tuple[str, Path]:
    from sonotype.features.cache import default_cache_dir

    key = hashlib.blake2b(json.dumps([ck.stamp, ck.prefix, sorted(ck.tensors)]).encode(), digest_size=16).hexdigest()
    return key, default_cache_dir() / "digests" / f"backbone-{key}.json"


def _hash_params(model: Any) -> str:
    """BLAKE2b of the encoder's parameters (name, shape, float32 bytes), in name order."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name, p in sorted(model.named_parameters()):
        t = p.detach().to(torch.float32).contiguous()
        h.update(f"{name}|{list(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).numpy()))
    return h.hexdigest()


def _read_tensors(ck: Checkpoint) -> dict[str, Any]:
    from safetensors import safe_open

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
    from sonotype.backbones.load import _build

    key, memo = _memo_file(ck)
    if key in _DIGESTS:
        return _DIGESTS[key]
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        rec = json.loads(memo.read_text())
        if rec["stamp"] == ck.stamp:
            _DIGESTS[key] = str(rec["digest"])
            return _DIGESTS[key]
    if model is None:
        model, _ = _build(ck)
    digest = _hash_params(model)
    _DIGESTS[key] = digest
    from sonotype.utils.io import atomic_write_text

    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        atomic_write_text(memo, json.dumps({"stamp": ck.stamp, "digest": digest}))
    return digest


def find_by_digest(digest: str, dirs: list[Path], *, model_type: str | None = None) -> Path | None:
    """The first backbone folder under ``dirs`` whose encoder digest is ``digest``."""
    from sonotype.backbones.load import (
        CONFIG_FILE,
        _candidates,
        _local_missing,
        _marker,
        _read_json,
        _shape,
        inspect_checkpoint,
    )

    for folder in _candidates(dirs):
        m = _marker(folder)
        if m.get("digest") not in (None, digest):
            continue
        if model_type is not None and m.get("digest") is None:
            with contextlib.suppress(ModelError):
                if _shape(_read_json(folder / CONFIG_FILE))[0] != model_type:
                    continue
        try:
            if _local_missing(folder):
                continue
            if checkpoint_digest(inspect_checkpoint(folder)) == digest:
                return folder
        except SonotypeError:  # an unreadable candidate folder is just not the one
            continue
    return None


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's ``backbone`` entry from a record: model, digest, layers, pooling."""
    conf, ident = record.get("config", {}), record.get("identity", {})
    return {
        "model": conf.get("model") or ident.get("model"),
        "path": ident.get("path"),
        "revision": ident.get("revision"),
        "digest": ident.get("weights_digest"),
        "model_type": ident.get("model_type"),
        "layers": conf.get("layer"),
        "n_hidden": ident.get("n_hidden"),
        "pooling": conf.get("pooling"),
        "max_seconds": conf.get("max_seconds"),
        "finetune_layers": conf.get("finetune_layers"),
        "runtime": conf.get("runtime", "torch"),
    }
