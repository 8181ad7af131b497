"""Where encoders live: the folders searched, fetch markers, the Hugging Face cache, and finding a folder by digest."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from sonotype.backbones.checkpoint import (
    CONFIG_FILE,
    PREPROCESSOR_FILE,
    WEIGHT_FILES,
    checkpoint_digest,
    encoder_shape,
    inspect_checkpoint,
    missing_files,
    read_config,
)
from sonotype.backbones.native import read_native_config
from sonotype.errors import ModelError, SonotypeError
from sonotype.utils.paths import default_cache_dir

__all__ = [
    "MARKER_FILE",
    "SEARCH_ENV",
    "add_search_dirs",
    "backbones_home",
    "cached_snapshot",
    "candidates",
    "find_by_digest",
    "looks_like_path",
    "named_folder",
    "offline",
    "read_marker",
    "search_dirs",
    "valid_hub_id",
]

MARKER_FILE = "sonotype-backbone.json"  # written by `sonotype backbone fetch`: hub id, pinned commit, digest

SEARCH_ENV = "SONOTYPE_BACKBONES"

_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.\-]*/)?[A-Za-z0-9][\w.\-]*")

def backbones_home() -> Path:
    """Default folder of ``sonotype backbone fetch``: ``<sonotype cache>/backbones``."""
    return default_cache_dir() / "backbones"

def search_dirs(extra: list[str | os.PathLike] | tuple = ()) -> list[Path]:
    """Folders searched for backbones: ``extra`` (``--backbone-dir``), ``$SONOTYPE_BACKBONES``, home."""
    env = [p for p in os.environ.get(SEARCH_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for p in [*extra, *env, backbones_home()]:
        q = Path(os.path.expanduser(str(p))).absolute()
        if q not in out:
            out.append(q)
    return out

def add_search_dirs(dirs: list[str | os.PathLike] | tuple = ()) -> None:
    """Put ``dirs`` (``--backbone-dir``) first in ``$SONOTYPE_BACKBONES``, so every later
    lookup in this process and in the processes it starts searches them."""
    if not dirs:
        return
    old = [p for p in os.environ.get(SEARCH_ENV, "").split(os.pathsep) if p.strip()]
    new = [str(Path(os.path.expanduser(str(d))).absolute()) for d in dirs]
    os.environ[SEARCH_ENV] = os.pathsep.join(dict.fromkeys([*new, *old]))

def valid_hub_id(s: str) -> bool:
    return (len(s) <= 96 and _HUB_ID.fullmatch(s) is not None and "--" not in s and ".." not in s
            and not s.endswith((".git", ".", "-")))

def looks_like_path(s: str) -> bool:
    return s.startswith(("/", "./", "../", "~", ".\\")) or s in (".", "..") or s.endswith(("/", "\\")) \
        or "\\" in s or s.count("/") > 1

def offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (the hub library reads them at import)."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))

def read_marker(folder: Path) -> dict[str, Any]:
    try:
        d = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}

def candidates(dirs: list[Path]) -> list[Path]:
    """Backbone-looking folders at or one/two levels under ``dirs`` (config.json + safetensors)."""
    found: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            continue
        level = [d]
        for _ in range(3):
            nxt = []
            for f in level:
                if (f / CONFIG_FILE).is_file() and f not in found:
                    found.append(f)
                with contextlib.suppress(OSError):
                    nxt.extend(sorted(x for x in f.iterdir() if x.is_dir() and not x.name.startswith(".")))
            level = nxt
    return found

def cached_snapshot(hub_id: str, revision: str | None) -> Path | None:
    """The snapshot folder of a hub model in the Hugging Face cache, when complete."""
    try:
        from huggingface_hub import try_to_load_from_cache  # optional: sonotype[backbones]
    except ImportError:  # no hub library, hence no hub cache
        return None

    found: dict[str, str] = {}
    for name in (CONFIG_FILE, PREPROCESSOR_FILE, *WEIGHT_FILES):
        hit = try_to_load_from_cache(hub_id, name, cache_dir=os.environ.get("HF_HUB_CACHE"), revision=revision)
        if isinstance(hit, str):
            found[name] = hit
    if not found:
        return None
    snap = Path(next(iter(found.values()))).parent
    return None if missing_files(snap) else snap


def find_by_digest(digest: str, dirs: list[Path], *, model_type: str | None = None) -> Path | None:
    """The first backbone folder under ``dirs`` whose encoder digest is ``digest``."""
    for folder in candidates(dirs):
        m = read_marker(folder)
        if m.get("digest") not in (None, digest):
            continue
        if model_type is not None and m.get("digest") is None:
            with contextlib.suppress(ModelError):
                if encoder_shape(read_config(folder / CONFIG_FILE))[0] != model_type:
                    continue
        native = read_native_config(folder)
        if native is not None:  # a native family's config.json carries its tensor digest (checked at load)
            if native.get("tensor_digest") == digest and not missing_files(folder):
                return folder
            continue
        try:
            if missing_files(folder):
                continue
            if checkpoint_digest(inspect_checkpoint(folder)) == digest:
                return folder
        except SonotypeError:  # an unreadable candidate folder is just not the one
            continue
    return None


def named_folder(name: str, dirs: list[Path]) -> Path | None:
    """The encoder folder called ``name`` (``whisper-base``, ``musicnn-msd``) directly under one of ``dirs``."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    for d in dirs:
        folder = d / name
        if (folder / CONFIG_FILE).is_file() and not missing_files(folder):
            return folder.absolute()
    return None
