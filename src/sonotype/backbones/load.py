"""Find a pretrained audio encoder, check its checkpoint, and load it: fast, and never half-random.

Where a reference leads (:func:`resolve`): an existing folder; a known name (``whisper-base``,
see :data:`ALIASES`) or a hub id, looked up in the folders ``sonotype backbone fetch`` fills
(``--backbone-dir``, ``$SONOTYPE_BACKBONES``, ``~/.cache/sonotype/backbones``) and then in the
Hugging Face cache; downloaded only with ``local_files_only: false``. Every bad reference
(missing folder, folder without its files, malformed hub id, nothing cached, no network)
is one :class:`ModelError`/:class:`ConfigError`/:class:`DownloadError` line.

What is loaded (:func:`inspect_checkpoint`): the encoder's tensors are found in the
safetensors files under the known key prefixes (``model.encoder.``/``encoder.`` for
Whisper, the base-model prefix such as ``wav2vec2.`` or none for the others), and *every
parameter* of the encoder must come from there; otherwise a :class:`ModelError` lists the
missing and unexpected tensors and names the usual cause. transformers would instead fill
them with random values and carry on (a bare ``WhisperEncoder`` save, keys without
``model.encoder.``, trains to chance with no message).

Identity: the BLAKE2b digest of the encoder tensors actually used (names relative to the
encoder, dtype, shape, bytes), so an encoder-only copy and a full checkpoint of the same
weights are the same encoder, and a moved folder can be found again by its digest.

Speed: Whisper is built by :mod:`.whisper` without importing transformers (whose model
machinery costs 3-5 s to import); other families use their transformers class directly
(no ``AutoModel``). Weights are read with safetensors only: no pickle, ever.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonotype.backbones.catalog import ALIASES, NATIVE_ENCODERS
from sonotype.backbones.checkpoint import (
    build_encoder,
    check_folder,
    checkpoint_digest,
    inspect_checkpoint,
)
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.fetch import fetch
from sonotype.backbones.folders import (
    SEARCH_ENV,
    cached_snapshot,
    candidates,
    looks_like_path,
    named_folder,
    offline,
    read_marker,
    search_dirs,
    valid_hub_id,
)
from sonotype.backbones.native import FAMILIES, family_of, load_native, native_outputs, read_native_config
from sonotype.errors import ConfigError, ModelError

__all__ = ["Backbone", "Source", "backbone_record", "describe", "load_backbone", "resolve", "summary"]


@dataclass
class Backbone:
    """A loaded pretrained audio encoder, ready to embed waveforms.

    Attributes
    ----------
    model : torch.nn.Module
        The encoder (for Whisper only the encoder), in eval mode, float32.
    feature_extractor : callable or transformers feature extractor
        Waveform -> model input (log-mel frames for Whisper/AST, normalised samples for
        the wav2vec2 family).
    kind : {"whisper", "ssl", "ast", "generic", "native"}
        ``native``: a family of :mod:`.native`; ``model`` is its network, ``feature_extractor``
        the family's encoder object (``embed``, ``tag``).
    model_id : str
        The reference as given (folder, name or hub id).
    revision : str or None
        The hub commit the files come from (None for a folder of unknown origin).
    weights_digest : str
        Digest of the encoder tensors used (see module notes): the encoder's identity.
    path : str
        The absolute folder the files were read from.
    hub_id : str or None
        The hub repository, for names and hub ids (and fetched folders).
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
    path: str = ""
    hub_id: str | None = None
    preprocessor: dict[str, Any] = field(default_factory=dict)
    load_seconds: float = 0.0

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two backbones the same: recorded in model files (the digest decides)."""
        return {
            "model": self.model_id,
            "path": self.path,
            "revision": self.revision,
            "weights_digest": self.weights_digest,
            "model_type": self.model_type,
            "n_hidden": self.n_hidden,
            "dim": self.dim,
        }

@dataclass
class Source:
    """A resolved reference: the folder to read, and where it came from."""

    folder: Path
    revision: str | None = None
    hub_id: str | None = None

def _hint_moved() -> str:
    return (f"if it moved, pass --backbone-dir DIR (predict, serve) or set ${SEARCH_ENV} to folders holding it; "
            f"known names: {', '.join(ALIASES)} (`sonotype backbone fetch NAME`)")

def resolve(cfg: BackboneConfig, *, search: list[str | os.PathLike] | tuple = ()) -> Source:
    """Where ``cfg.model`` leads (see module notes); download only when allowed.

    Raises
    ------
    ModelError
        A folder that does not exist or lacks files; a name/hub id found nowhere locally.
    ConfigError
        A reference that is neither a folder, a known name nor a valid hub id.
    DownloadError
        Downloading was allowed and failed (offline, unreachable, not found).
    """
    ref = cfg.model.strip()
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        check_folder(path.absolute(), ref)
        marker = read_marker(path)
        return Source(path.absolute(), marker.get("revision"), marker.get("hub_id"))
    if path.exists():
        raise ModelError(f"backbone {ref!r}: {path.absolute()} is a file; a backbone is a folder holding "
                         "config.json, preprocessor_config.json and model.safetensors")
    if looks_like_path(ref):
        raise ModelError(f"backbone folder {path.absolute()} does not exist; {_hint_moved()}")
    named = named_folder(ref, search_dirs(search))
    if named is not None:  # encoder names are folder names under $SONOTYPE_BACKBONES / the fetch folder
        marker = read_marker(named)
        return Source(named, marker.get("revision"), marker.get("hub_id"))
    if ref not in ALIASES and ref not in NATIVE_ENCODERS and not valid_hub_id(ref):
        raise ConfigError(
            f"backbone {ref!r} is not a folder (none at {path.absolute()}), not a known name ({', '.join(ALIASES)}) "
            "and not a valid Hugging Face hub id ('name' or 'org/name': letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    hub_id = ALIASES[ref].hub_id if ref in ALIASES else ref
    for folder in candidates(search_dirs(search)):
        m = read_marker(folder)
        if m.get("hub_id") == hub_id and (cfg.revision is None or cfg.revision in (m.get("revision"), m.get("requested_revision"))):
            check_folder(folder, ref)
            return Source(folder, m.get("revision"), hub_id)
    snap = cached_snapshot(hub_id, cfg.revision)
    if snap is not None:
        return Source(snap, snap.name, hub_id)
    where = "" if ref in ALIASES else f"no folder at {path.absolute()}, "
    if cfg.local_files_only or offline():
        looked = f" at revision {cfg.revision!r}" if cfg.revision else ""
        raise ModelError(
            f"backbone {ref!r} ({hub_id}{looked}) is not downloaded ({where}not in {', '.join(map(str, search_dirs(search)))} "
            f"nor in the Hugging Face cache, which lacks config.json, preprocessor_config.json, model.safetensors); "
            f"fetch it once with `sonotype backbone fetch {ref}` (or `hf download {hub_id}`), or set "
            "backbone.local_files_only: false to download it on first use"
        )
    folder = fetch(ref, revision=cfg.revision)
    m = read_marker(folder)
    return Source(folder, m.get("revision"), hub_id)

def load_backbone(cfg: BackboneConfig, *, search: list[str | os.PathLike] | tuple = ()) -> Backbone:
    """Load the backbone ``cfg`` names, checking that every encoder parameter was loaded.

    Parameters
    ----------
    cfg : BackboneConfig
    search : list of path, optional
        Extra folders to look in for names and hub ids (``--backbone-dir``).

    Returns
    -------
    Backbone

    Raises
    ------
    ModelError, ConfigError, DownloadError
        One line naming what is wrong: see :func:`resolve` and :func:`inspect_checkpoint`;
        a :class:`ModelError` also when ``transformers`` is needed (non-Whisper encoders) and
        not installed.

    Examples
    --------
    >>> bb = load_backbone(BackboneConfig("whisper-base"))  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    src = resolve(cfg, search=search)
    if family_of(src.folder) is not None:
        return _load_native(cfg, src, t0)
    ck = inspect_checkpoint(src.folder)
    model, extractor = build_encoder(ck)
    digest = checkpoint_digest(ck, model)
    model.eval()
    sr = getattr(extractor, "sampling_rate", None) or ck.preprocessor.get("sampling_rate")
    return Backbone(
        model=model,
        feature_extractor=extractor,
        kind=ck.kind,
        model_id=cfg.model,
        revision=src.revision,
        weights_digest=digest,
        sampling_rate=int(sr),
        n_hidden=ck.n_hidden,
        dim=ck.dim,
        model_type=ck.model_type,
        path=str(ck.folder),
        hub_id=src.hub_id,
        preprocessor=dict(ck.preprocessor),
        load_seconds=time.perf_counter() - t0,
    )

def _load_native(cfg: BackboneConfig, src: Source, t0: float) -> Backbone:
    """A native family's encoder as a Backbone: one "layer", the chosen pooled outputs concatenated."""
    fam, encoder, config = load_native(src.folder)
    outputs = native_outputs(fam, config, cfg.outputs)
    return Backbone(
        model=encoder.model,
        feature_extractor=encoder,
        kind="native",
        model_id=cfg.model,
        revision=src.revision,
        weights_digest=str(config.get("tensor_digest")),
        sampling_rate=fam.sample_rate,
        n_hidden=1,
        dim=sum(w for _, w in outputs),
        model_type=fam.name,
        path=str(src.folder),
        hub_id=src.hub_id,
        preprocessor={"family": fam.name, "front_end": config.get("front_end"), "outputs": [n for n, _ in outputs]},
        load_seconds=time.perf_counter() - t0,
    )


def _record(cfg: BackboneConfig, identity: dict[str, Any], hub_id: str | None) -> dict[str, Any]:
    """``{"config", "identity"}`` with folders made absolute and the hub commit pinned."""
    conf = cfg.to_dict()
    if hub_id is None or Path(os.path.expanduser(cfg.model)).is_dir():
        conf["model"] = identity["path"]  # a folder: stored resolved, so predict works from any working folder
    elif identity.get("revision"):
        conf["revision"] = identity["revision"]  # a name or hub id: pinned to the commit it was trained with
    return json.loads(json.dumps({"config": conf, "identity": identity}))

def backbone_record(cfg: BackboneConfig, *, search: list[str | os.PathLike] | tuple = ()) -> dict[str, Any]:
    """The ``model.json`` ``backbone`` entry for ``cfg``, from the files (weights hashed once, memoised).

    Same content as :func:`describe` of the loaded backbone: settings (folder absolute,
    hub commit pinned) plus identity (digest of the encoder tensors, type, shape).
    """
    if cfg.fused:  # one record per encoder; the fusion's identity is theirs, in order
        members = [backbone_record(m, search=search) for m in cfg.members]
        conf = cfg.to_dict()
        conf["model"] = [m["config"]["model"] for m in members]
        return {"config": conf, "identity": {"fusion": [m["identity"] for m in members]}, "members": members}
    src = resolve(cfg, search=search)
    native = read_native_config(src.folder)
    if native is not None:  # identity from the folder's config: no encoder pass needed
        outputs = native_outputs(FAMILIES[native["family"]], native, cfg.outputs)
        identity = {"model": cfg.model, "path": str(src.folder), "revision": src.revision,
                    "weights_digest": native.get("tensor_digest"), "model_type": native["family"],
                    "n_hidden": 1, "dim": sum(w for _, w in outputs)}
        return _record(cfg, identity, src.hub_id)
    ck = inspect_checkpoint(src.folder)
    identity = {
        "model": cfg.model,
        "path": str(ck.folder),
        "revision": src.revision,
        "weights_digest": checkpoint_digest(ck),
        "model_type": ck.model_type,
        "n_hidden": ck.n_hidden,
        "dim": ck.dim,
    }
    return _record(cfg, identity, src.hub_id)

def describe(backbone: Backbone, cfg: BackboneConfig) -> dict[str, Any]:
    """JSON for ``model.json``'s ``backbone`` key: the settings and the backbone's identity."""
    return _record(cfg, backbone.identity, backbone.hub_id)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's ``backbone`` entry from a record: model, digest, layers, pooling."""
    conf, ident = record.get("config", {}), record.get("identity", {})
    if "members" in record:  # a fusion: each encoder's summary
        return {"model": conf.get("model"), "fusion": [summary(m) for m in record["members"]],
                "pooling": conf.get("pooling"), "runtime": conf.get("runtime", "torch")}
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
