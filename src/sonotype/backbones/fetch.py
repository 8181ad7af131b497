"""``sonotype backbone fetch``: download an encoder's safetensors, config and preprocessor files.

The revision asked for (default ``main``) is resolved to its commit first
(``/api/models/{id}/revision/{rev}``), and only that commit is downloaded, with
``huggingface_hub.snapshot_download`` and ``allow_patterns`` (no ``.bin``/pickle files, no
tokenizer or ONNX copies). Files land in ``<dir>/<name>.partial`` and the folder is renamed
to ``<dir>/<name>`` only once every file is there and the encoder check passes, so an
interrupted download never looks like a backbone; a rerun keeps the files already complete. The folder gets a
``sonotype-backbone.json`` (hub id, pinned commit, digest of the encoder tensors, files),
by which names, hub ids and digests are found again later.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sonotype.backbones.load import (
    ALIASES,
    CONFIG_FILE,
    MARKER_FILE,
    PREPROCESSOR_FILE,
    _offline,
    _valid_hub_id,
    backbones_home,
    checkpoint_digest,
    inspect_checkpoint,
)
from sonotype.errors import ConfigError, DownloadError
from sonotype.utils.io import atomic_write_text

__all__ = ["ALLOW_PATTERNS", "fetch", "folder_name"]

# the weights (one file or its shards and index), no variants (model.fp16.safetensors), no pickles
ALLOW_PATTERNS = ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json", CONFIG_FILE,
                  PREPROCESSOR_FILE]


def folder_name(name: str) -> str:
    """The folder a name or hub id is fetched into: the alias, or ``org--name``."""
    return name if name in ALIASES else name.replace("/", "--")


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def fetch(
    name: str,
    *,
    revision: str | None = None,
    dest_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Download ``name`` (a known name or a hub id) and return its folder.

    Parameters
    ----------
    name : str
        ``whisper-base`` etc. (:data:`~sonotype.backbones.load.ALIASES`) or ``org/name``.
    revision : str, optional
        Branch, tag or commit; resolved to a commit and pinned. Default ``main``.
    dest_dir : path, optional
        Parent folder (default :func:`~sonotype.backbones.load.backbones_home`).
    force : bool
        Download again even when the folder exists at the same commit.

    Raises
    ------
    ConfigError
        Not a known name or valid hub id.
    DownloadError
        Offline, hub unreachable, repository or revision not found, no safetensors there.
    ModelError
        The downloaded files do not hold a complete encoder (see ``inspect_checkpoint``).
    """
    hub_id = ALIASES[name].hub_id if name in ALIASES else name
    if not _valid_hub_id(hub_id):
        raise ConfigError(f"{name!r} is not a known backbone name ({', '.join(ALIASES)}) nor a valid hub id ('org/name')")
    root = Path(os.path.expanduser(str(dest_dir))).absolute() if dest_dir is not None else backbones_home()
    final = root / folder_name(name)
    if _offline():
        raise DownloadError(
            f"cannot download {hub_id}: offline mode (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set); unset it on a machine "
            "with network access, or copy a backbone folder here and use its path"
        )
    try:
        import huggingface_hub as hh
        from huggingface_hub import errors as hub_errors
    except ImportError as exc:
        raise DownloadError(f"downloading needs the 'huggingface_hub' package ({exc}): "
                            "pip install 'sonotype[backbones]'") from None

    endpoint = _endpoint()
    api = hh.HfApi(endpoint=endpoint)
    try:
        info = api.model_info(hub_id, revision=revision or "main")
    except Exception as exc:  # network and hub errors of every kind: one line each
        raise DownloadError(_explain(exc, hub_id, revision, endpoint, hub_errors)) from None
    commit = str(info.sha)
    files = [s.rfilename for s in (info.siblings or [])]
    if not any(f == "model.safetensors" or (f.startswith("model-") and f.endswith(".safetensors")) for f in files):
        raise DownloadError(
            f"{hub_id} at {revision or 'main'} ({commit[:12]}) has no safetensors weights (files: {', '.join(files[:8])}); "
            "sonotype never loads pickled .bin files. Pick a revision that has them, e.g. the safetensors "
            "conversion pull request: --revision refs/pr/N"
        )
    old = _read_marker(final)
    if not force and old.get("revision") == commit and final.is_dir():
        return final
    partial = root / f"{final.name}.partial"
    try:
        hh.snapshot_download(hub_id, revision=commit, local_dir=partial, allow_patterns=ALLOW_PATTERNS,
                             endpoint=endpoint, max_workers=2)
    except Exception as exc:
        raise DownloadError(
            _explain(exc, hub_id, revision, endpoint, hub_errors)
            + f"; the files that arrived are kept in {partial}: run the same command again to finish"
        ) from None
    ck = inspect_checkpoint(partial)
    digest = checkpoint_digest(ck)
    got = sorted(p.name for p in partial.iterdir() if p.is_file())
    marker: dict[str, Any] = {
        "hub_id": hub_id,
        "name": name,
        "requested_revision": revision or "main",
        "revision": commit,
        "digest": digest,
        "model_type": ck.model_type,
        "files": {f: (partial / f).stat().st_size for f in got},
        "endpoint": endpoint,
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(partial / MARKER_FILE, json.dumps(marker, indent=2) + "\n")
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    if final.exists():
        aside = root / f"{final.name}.old"
        shutil.rmtree(aside, ignore_errors=True)
        final.rename(aside)
        partial.rename(final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        partial.rename(final)
    return final


def _read_marker(folder: Path) -> dict[str, Any]:
    try:
        d = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _explain(exc: BaseException, hub_id: str, revision: str | None, endpoint: str, hub_errors: Any) -> str:
    """One line for a failed hub call, most specific first."""
    if isinstance(exc, hub_errors.RevisionNotFoundError):
        return f"{hub_id} has no revision {revision!r} at {endpoint}"
    if isinstance(exc, hub_errors.GatedRepoError):
        return f"{hub_id} is gated: accept its terms on the hub and log in (hf auth login), then retry"
    if isinstance(exc, hub_errors.RepositoryNotFoundError):
        return f"{hub_id} does not exist at {endpoint} (or is private: log in with hf auth login)"
    if isinstance(exc, (hub_errors.OfflineModeIsEnabled,)):
        return f"cannot download {hub_id}: offline mode is enabled (HF_HUB_OFFLINE)"
    name = type(exc).__name__
    if "Connect" in name or "Timeout" in name or isinstance(exc, (ConnectionError, TimeoutError)):
        return f"cannot reach {endpoint} to download {hub_id} ({_one_line(exc)}); check the network or HF_ENDPOINT"
    return f"downloading {hub_id} from {endpoint} failed ({_one_line(exc)})"
