"""The Hugging Face Hub both ways: ``sonotype push MODEL_DIR user/name`` and ``hf://user/name[@revision]``.

Push uploads a model folder's ``model.json``, safetensors files and a card written for the hub
(usage lines with ``hf://user/name``) with ``huggingface_hub.create_repo`` and ``upload_folder``;
nothing else in the folder goes up.

Pull resolves the revision asked for (default ``main``) to its commit first and downloads only
that commit, and only ``model.json``, ``*.safetensors`` and ``README.md`` (never a pickle, a
``.py`` file or anything else the repository holds), into
``<sonotype cache>/models/<user>--<name>@<commit>``. Files land in a ``.partial`` folder that is
renamed only once :func:`sonotype.inference.modelio.read_model_dir` accepted them (schema, format version,
the weights' digests recorded in ``model.json``), so an interrupted or tampered download never
looks like a model; a refused one is deleted. ``sonotype-source.json`` in the folder records the
repository, the revision asked for and the commit. Offline (``HF_HUB_OFFLINE=1``) a revision
already downloaded is used from the cache; anything else is one clear line.

Examples
--------
>>> parse_ref("hf://someone/emotions@v1")
('someone/emotions', 'v1')
>>> parse_ref("runs/x/model") is None
True
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sonotype.errors import DownloadError, ModelError, ParameterError
from sonotype.inference.modelio import MODEL_JSON, SCALER_FILE, WEIGHTS_FILE, read_model_dir
from sonotype.reporting.card import CARD_FILE, write_card
from sonotype.utils.io import atomic_write_text
from sonotype.utils.paths import default_cache_dir

__all__ = ["ALLOW_PATTERNS", "SOURCE_FILE", "is_hub_ref", "local_model", "parse_ref", "pull", "push"]

SCHEME = "hf://"
SOURCE_FILE = "sonotype-source.json"  # written beside a pulled model: repository, revision asked for, commit
ALLOW_PATTERNS = [MODEL_JSON, "*.safetensors", CARD_FILE]  # what is ever downloaded: JSON, safetensors, the card
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def parse_ref(ref: Any) -> tuple[str, str | None] | None:
    """``hf://user/name[@revision]`` -> ``(repo_id, revision or None)``; anything else -> None.

    ``hf:/user/name`` is accepted too: a command-line path argument collapses the double slash.

    Raises
    ------
    ParameterError
        ``hf://`` followed by something that is not ``user/name``.
    """
    text = os.fspath(ref) if isinstance(ref, os.PathLike) else ref
    if not isinstance(text, str) or not text.startswith("hf:/"):
        return None
    body = text[len(SCHEME):] if text.startswith(SCHEME) else text[len("hf:/"):]
    repo, _, revision = body.partition("@")
    if not _REPO.match(repo) or (revision == "" and body.endswith("@")):
        raise ParameterError(f"{text!r}: a hub model is hf://user/name or hf://user/name@revision")
    return repo, revision or None


def is_hub_ref(ref: Any) -> bool:
    """Whether ``ref`` names a model on the hub (``hf://...``)."""
    return parse_ref(ref) is not None


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub() -> tuple[Any, Any]:
    try:
        import huggingface_hub as hh  # optional dependency: only the hub commands need it
        from huggingface_hub import errors as hub_errors
    except ImportError as exc:
        raise DownloadError(f"the hub needs the 'huggingface_hub' package ({exc}): pip install huggingface_hub") from None
    return hh, hub_errors


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _explain(exc: BaseException, what: str, revision: str | None, hub_errors: Any) -> str:
    """One line for a failed hub call, most specific first."""
    endpoint = _endpoint()
    if isinstance(exc, hub_errors.RevisionNotFoundError):
        return f"{what} has no revision {revision!r} at {endpoint}"
    if isinstance(exc, hub_errors.RepositoryNotFoundError):
        return f"{what} does not exist at {endpoint} (or is private: log in with `hf auth login`)"
    if isinstance(exc, hub_errors.OfflineModeIsEnabled):
        return f"{what}: offline mode is enabled (HF_HUB_OFFLINE)"
    name = type(exc).__name__
    if "Connect" in name or "Timeout" in name or isinstance(exc, (ConnectionError, TimeoutError)):
        return f"cannot reach {endpoint} for {what} ({_one_line(exc)}); check the network or HF_ENDPOINT"
    return f"{what} at {endpoint} failed ({_one_line(exc)})"


def models_home() -> Path:
    """Where pulled models are kept: ``<sonotype cache>/models``."""
    return default_cache_dir() / "models"


def _read_source(folder: Path) -> dict[str, Any]:
    try:
        d = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _cached(root: Path, repo: str, revision: str | None) -> Path | None:
    """A pulled folder of ``repo`` at ``revision`` (a commit, or the name it was asked by), newest first."""
    found = sorted(root.glob(f"{repo.replace('/', '--')}@*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in found:
        src = _read_source(folder)
        if folder.suffix == ".partial" or src.get("repo") != repo:
            continue
        if src.get("commit") == revision or src.get("requested_revision") == (revision or "main"):
            return folder
    return None


def pull(ref: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download ``hf://user/name[@revision]`` (commit pinned, JSON and safetensors only) and return its folder.

    Parameters
    ----------
    ref : str
        ``hf://user/name`` or ``hf://user/name@revision`` (branch, tag or commit).
    cache_dir : path-like, optional
        Parent folder (default ``<sonotype cache>/models``).

    Returns
    -------
    Path
        ``<cache_dir>/<user>--<name>@<commit>``, checked by :func:`sonotype.inference.modelio.read_model_dir`.

    Raises
    ------
    DownloadError
        Offline and not downloaded before, hub unreachable, repository or revision not found,
        an interrupted transfer, no sonotype model in the repository.
    ModelError
        The downloaded files are refused (digest mismatch, unknown format version...); they are deleted.
    """
    parsed = parse_ref(ref)
    if parsed is None:
        raise ParameterError(f"{ref!r} is not a hub model (hf://user/name[@revision])")
    repo, revision = parsed
    ref = f"{SCHEME}{repo}" + (f"@{revision}" if revision else "")  # as written, whatever a CLI path made of it
    root = Path(cache_dir) if cache_dir is not None else models_home()
    if _offline():
        hit = _cached(root, repo, revision)
        if hit is not None:
            return hit
        raise DownloadError(f"cannot download {ref}: offline (HF_HUB_OFFLINE is set) and it was not downloaded "
                            "before; unset HF_HUB_OFFLINE on a machine with network access")
    hh, hub_errors = _hub()
    try:
        info = hh.HfApi(endpoint=_endpoint()).model_info(repo, revision=revision or "main")
    except Exception as exc:  # network and hub errors of every kind: one line each
        raise DownloadError(_explain(exc, ref, revision, hub_errors)) from None
    commit = str(info.sha)
    files = [s.rfilename for s in (info.siblings or [])]
    if MODEL_JSON not in files or WEIGHTS_FILE not in files:
        raise DownloadError(f"{ref} ({commit[:12]}) holds no sonotype model: {MODEL_JSON} and {WEIGHTS_FILE} are "
                            f"needed, found {', '.join(files[:8]) or 'nothing'}")
    final = root / f"{repo.replace('/', '--')}@{commit}"
    if final.is_dir() and _read_source(final).get("commit") == commit:
        return final
    partial = final.with_name(final.name + ".partial")
    try:
        hh.snapshot_download(repo, revision=commit, local_dir=partial, allow_patterns=ALLOW_PATTERNS,
                             endpoint=_endpoint(), max_workers=2)
    except Exception as exc:
        raise DownloadError(_explain(exc, f"downloading {ref}", revision, hub_errors)
                            + f"; the files that arrived are kept in {partial}: run the same command again to finish"
                            ) from None
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    try:
        read_model_dir(partial)  # schema, version and the weights' digests: before it can be used
    except ModelError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelError(f"{ref} at {commit[:12]} refused, download deleted: {exc}") from None
    source = {"repo": repo, "requested_revision": revision or "main", "commit": commit, "endpoint": _endpoint(),
              "pulled": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(partial / SOURCE_FILE, json.dumps(source, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def local_model(ref: Any) -> Any:
    """A model reference made local: ``hf://...`` is pulled (its folder returned), anything else returned as is."""
    return pull(os.fspath(ref)) if is_hub_ref(ref) else ref


def _stage(model_dir: Path, repo: str, dest: Path) -> None:
    """Copy what a model is (``model.json``, its safetensors) to ``dest`` with a card written for the hub."""
    meta, _ = read_model_dir(model_dir)  # never push what sonotype could not load back
    for name in (MODEL_JSON, WEIGHTS_FILE, SCALER_FILE):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, dest / name)
    run_metrics = model_dir.parent / "metrics.json"  # a run's model: the card gets the run's figures
    metrics = None
    if model_dir.name == "model" and run_metrics.is_file():
        try:
            metrics = json.loads(run_metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = None
    write_card(dest, meta, metrics=metrics, name=repo.split("/")[1], ref=f"{SCHEME}{repo}")


def push(model_dir: str | os.PathLike, repo: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, message: str | None = None) -> dict[str, str]:
    """Upload a model folder to the hub as ``repo`` (created when missing), card included.

    Parameters
    ----------
    model_dir : path-like
        A saved model folder (checked by :func:`~sonotype.inference.modelio.read_model_dir` first).
    repo : str
        ``user/name``.
    private : bool
        Create the repository private (an existing one keeps its visibility).
    revision : str, optional
        The branch to commit to (created from ``main`` when missing); default ``main``.
    token : str, optional
        A hub token; default the one ``hf auth login`` stored.
    message : str, optional
        The commit message.

    Returns
    -------
    dict
        ``{"repo", "revision", "commit", "url", "ref"}``: ``ref`` (``hf://repo@commit``) loads exactly this upload.
    """
    if not _REPO.match(repo):
        raise ParameterError(f"{repo!r}: a hub repository is user/name")
    src = Path(model_dir)
    hh, hub_errors = _hub()
    api = hh.HfApi(endpoint=_endpoint(), token=token)
    with tempfile.TemporaryDirectory(prefix="sonotype-push-") as tmp:
        _stage(src, repo, Path(tmp))
        try:
            api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
            if revision and revision != "main":
                api.create_branch(repo, branch=revision, exist_ok=True)
            info = api.upload_folder(folder_path=tmp, repo_id=repo, revision=revision,
                                     commit_message=message or f"sonotype model from {src.resolve().name}")
        except Exception as exc:  # network and hub errors of every kind: one line each
            raise DownloadError(_explain(exc, f"uploading to {repo}", revision, hub_errors)) from None
    commit = str(getattr(info, "oid", "") or "")
    return {"repo": repo, "revision": revision or "main", "commit": commit, "url": f"{_endpoint()}/{repo}",
            "ref": f"{SCHEME}{repo}@{commit}" if commit else f"{SCHEME}{repo}"}
