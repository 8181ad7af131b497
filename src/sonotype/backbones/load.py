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

import contextlib
import importlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.digest import _read_tensors, checkpoint_digest, find_by_digest
from sonotype.backbones.digest import (
    summary as summary,  # re-exported: experiment.py and older code import it from here
)
from sonotype.errors import ConfigError, ModelError

__all__ = [
    "ALIASES",
    "Alias",
    "Backbone",
    "Checkpoint",
    "add_search_dirs",
    "backbone_record",
    "backbones_home",
    "describe",
    "find_by_digest",
    "inspect_checkpoint",
    "load_backbone",
    "require_transformers",
    "resolve",
    "search_dirs",
]

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
MARKER_FILE = "sonotype-backbone.json"  # written by `sonotype backbone fetch`: hub id, pinned commit, digest
SEARCH_ENV = "SONOTYPE_BACKBONES"

# model_type -> how sonotype drives it (see extract.py)
_SSL_TYPES = {
    "wav2vec2", "wav2vec2-bert", "wav2vec2-conformer", "wavlm", "hubert", "data2vec-audio",
    "unispeech", "unispeech-sat", "sew", "sew-d",
}
_KINDS = {"whisper": "whisper", "audio-spectrogram-transformer": "ast"}
_WHISPER_PREFIXES = ("model.encoder.", "encoder.")


@dataclass(frozen=True)
class Alias:
    """A pretrained encoder sonotype knows by a short name (``sonotype backbone list``)."""

    name: str
    hub_id: str
    parameters: str  # of the encoder sonotype runs
    cpu_per_audio_hour: str  # measured, or "not measured"
    note: str = ""


# CPU cost per hour of audio, one thread. whisper-base: real weights, every layer pooled, 24 RAVDESS clips (91 s)
# on this project's AMD EPYC machine: 3.6 CPU-s, 25 audio-s per CPU-s. wav2vec2-base and AST: the README's
# measurement with random weights of the same architecture (same compute). The others: no weights here to time.
ALIASES: dict[str, Alias] = {a.name: a for a in (
    Alias("whisper-tiny", "openai/whisper-tiny", "8.2 M", "not measured"),
    Alias("whisper-base", "openai/whisper-base", "20.6 M", "2.4 CPU-min (measured)"),
    Alias("whisper-small", "openai/whisper-small", "88 M", "not measured"),
    Alias("wavlm-base-plus", "microsoft/wavlm-base-plus", "94 M", "not measured"),
    Alias("hubert-base", "facebook/hubert-base-ls960", "94 M", "not measured"),
    Alias("wav2vec2-base", "facebook/wav2vec2-base", "95 M", "11 CPU-min (measured, random weights)",
          "the main branch may hold only PyTorch .bin weights: pick a revision with safetensors"),
    Alias("ast-audioset", "MIT/ast-finetuned-audioset-10-10-0.4593", "86 M",
          "20 CPU-min for 10 s clips (measured, random weights)"),
)}

_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.\-]*/)?[A-Za-z0-9][\w.\-]*")


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
class Backbone:
    """A loaded pretrained audio encoder, ready to embed waveforms.

    Attributes
    ----------
    model : torch.nn.Module
        The encoder (for Whisper only the encoder), in eval mode, float32.
    feature_extractor : callable or transformers feature extractor
        Waveform -> model input (log-mel frames for Whisper/AST, normalised samples for
        the wav2vec2 family).
    kind : {"whisper", "ssl", "ast", "generic"}
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


# -- where a reference leads ---------------------------------------------------------------


def backbones_home() -> Path:
    """Default folder of ``sonotype backbone fetch``: ``<sonotype cache>/backbones``."""
    from sonotype.features.cache import default_cache_dir

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


def _valid_hub_id(s: str) -> bool:
    return (len(s) <= 96 and _HUB_ID.fullmatch(s) is not None and "--" not in s and ".." not in s
            and not s.endswith((".git", ".", "-")))


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "./", "../", "~", ".\\")) or s in (".", "..") or s.endswith(("/", "\\")) \
        or "\\" in s or s.count("/") > 1


def _offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (the hub library reads them at import)."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _local_missing(root: Path) -> list[str]:
    missing = [f for f in (CONFIG_FILE, PREPROCESSOR_FILE) if not (root / f).is_file()]
    if not any((root / f).is_file() for f in WEIGHT_FILES) and not any(root.glob("*.safetensors")):
        missing.append(WEIGHT_FILES[0])
    return missing


def _check_folder(root: Path, ref: str) -> None:
    missing = _local_missing(root)
    if missing:
        raise ModelError(
            f"backbone folder {root} lacks {', '.join(missing)}; a backbone folder holds config.json, "
            "preprocessor_config.json and model.safetensors (get one with `sonotype backbone fetch NAME --dir DIR`, "
            "or save a transformers model with save_pretrained)"
            + (f" [reference {ref!r}]" if ref != str(root) else "")
        )


def _marker(folder: Path) -> dict[str, Any]:
    try:
        d = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _candidates(dirs: list[Path]) -> list[Path]:
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


@dataclass
class Source:
    """A resolved reference: the folder to read, and where it came from."""

    folder: Path
    revision: str | None = None
    hub_id: str | None = None


def _hint_moved() -> str:
    return (f"if it moved, pass --backbone-dir DIR (predict, serve) or set ${SEARCH_ENV} to folders holding it; "
            f"known names: {', '.join(ALIASES)} (`sonotype backbone fetch NAME`)")


def _cached(hub_id: str, revision: str | None) -> Path | None:
    """The snapshot folder of a hub model in the Hugging Face cache, when complete."""
    try:
        from huggingface_hub import try_to_load_from_cache
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
    return None if _local_missing(snap) else snap


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
        _check_folder(path.absolute(), ref)
        marker = _marker(path)
        return Source(path.absolute(), marker.get("revision"), marker.get("hub_id"))
    if path.exists():
        raise ModelError(f"backbone {ref!r}: {path.absolute()} is a file; a backbone is a folder holding "
                         "config.json, preprocessor_config.json and model.safetensors")
    if _looks_like_path(ref):
        raise ModelError(f"backbone folder {path.absolute()} does not exist; {_hint_moved()}")
    if ref not in ALIASES and not _valid_hub_id(ref):
        raise ConfigError(
            f"backbone {ref!r} is not a folder (none at {path.absolute()}), not a known name ({', '.join(ALIASES)}) "
            "and not a valid Hugging Face hub id ('name' or 'org/name': letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    hub_id = ALIASES[ref].hub_id if ref in ALIASES else ref
    for folder in _candidates(search_dirs(search)):
        m = _marker(folder)
        if m.get("hub_id") == hub_id and (cfg.revision is None or cfg.revision in (m.get("revision"), m.get("requested_revision"))):
            _check_folder(folder, ref)
            return Source(folder, m.get("revision"), hub_id)
    snap = _cached(hub_id, cfg.revision)
    if snap is not None:
        return Source(snap, snap.name, hub_id)
    where = "" if ref in ALIASES else f"no folder at {path.absolute()}, "
    if cfg.local_files_only or _offline():
        looked = f" at revision {cfg.revision!r}" if cfg.revision else ""
        raise ModelError(
            f"backbone {ref!r} ({hub_id}{looked}) is not downloaded ({where}not in {', '.join(map(str, search_dirs(search)))} "
            f"nor in the Hugging Face cache, which lacks config.json, preprocessor_config.json, model.safetensors); "
            f"fetch it once with `sonotype backbone fetch {ref}` (or `hf download {hub_id}`), or set "
            "backbone.local_files_only: false to download it on first use"
        )
    from sonotype.backbones.fetch import fetch

    folder = fetch(ref, revision=cfg.revision)
    m = _marker(folder)
    return Source(folder, m.get("revision"), hub_id)


# -- what is in a checkpoint ---------------------------------------------------------------


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable backbone configuration ({exc})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{path}: must hold a JSON object")
    return d


def _shape(config: dict[str, Any]) -> tuple[str, int, int]:
    """(model_type, hidden states, width) from a config.json dict."""
    model_type = str(config.get("model_type", ""))
    if model_type == "whisper":
        return model_type, int(config.get("encoder_layers", 0)) + 1, int(config.get("d_model", 0))
    width = config.get("hidden_size") or config.get("d_model") or 0
    return model_type, int(config.get("num_hidden_layers", 0)) + 1, int(width)


def _weight_files(folder: Path) -> list[Path]:
    index = folder / WEIGHT_FILES[1]
    if index.is_file():
        wm = _read_json(index).get("weight_map", {})
        return sorted({folder / str(f) for f in wm.values()})
    if (folder / WEIGHT_FILES[0]).is_file():  # not variants such as model.fp16.safetensors beside it
        return [folder / WEIGHT_FILES[0]]
    return sorted(folder.glob("*.safetensors"))


def _stored_keys(files: list[Path]) -> dict[str, Path]:
    from safetensors import safe_open

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
    import torch

    from sonotype.backbones.whisper import WhisperEncoder

    with torch.device("meta"):
        names = [n for n, _ in WhisperEncoder(config).named_parameters()]
    return names, _WHISPER_PREFIXES


def _short(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


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
    _check_folder(root, str(root))
    config = _read_json(root / CONFIG_FILE)
    pre = _read_json(root / PREPROCESSOR_FILE)
    model_type, n_hidden, dim = _shape(config)
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
    if kind != "whisper":  # transformers renames these families' keys itself: checked at load (_build)
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


# -- loading -------------------------------------------------------------------------------


def _build(ck: Checkpoint) -> tuple[Any, Any]:
    """(encoder module holding the checkpoint's tensors, feature extractor)."""
    if ck.kind == "whisper":
        import numpy as np
        import torch

        from sonotype.backbones.whisper import WhisperEncoder, WhisperLogMel

        state = _read_tensors(ck)
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
        import torch

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
    ck = inspect_checkpoint(src.folder)
    model, extractor = _build(ck)
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
    src = resolve(cfg, search=search)
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
