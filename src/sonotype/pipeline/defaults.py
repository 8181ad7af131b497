"""What a run uses when the user names only a corpus, and the switch to a frozen encoder.

``sonotype train --corpus C`` with no ``--config``/``--model`` starts from the configuration
that measured best for that kind of corpus (:func:`default_recipe`). A frozen pretrained
encoder beat every from-scratch configuration on every corpus measured (RAVDESS 0.83 against
0.64, ESC-50 0.70 against 0.54; docs/results.md), so when the encoder its recipe names
(Whisper-base) is on this machine - a folder in ``$SONOTYPE_BACKBONES`` or a copy fetched by
``sonotype backbone fetch whisper-base`` - the default is the corpus's ``C-whisper`` recipe
(``default-<kind>-whisper`` for other corpora). Without one, or with ``scratch=True``
(``--scratch``), it is the corpus's own ``C-best`` recipe where one exists, else the measured
default for speech, music or other sounds (``default-<kind>``). Nothing is downloaded to make
that choice. The choice is printed and stored as ``config_source`` in ``metrics.json``, so a
figure always says what produced it.

``--backbone DIR|NAME`` (:func:`switch_to_backbone`) turns any run into the frozen-encoder
representation with the recommended head (every hidden state mean+std pooled,
``layer-weighted-mlp``): settings of a from-scratch recipe that mean nothing there (network
parameters, ensemble and prior correction, waveform copies, SpecAugment, frame features) are
replaced, each with a note, before any audio is read. :func:`resolve_backbone` is the one
place where an encoder reference becomes something the loader can open.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from sonotype.backbones.catalog import ALIASES, NATIVE_ENCODERS
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.load import resolve
from sonotype.backbones.native import read_native_config
from sonotype.errors import ConfigError, SonotypeError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.models.registry import MODELS, resolved_params
from sonotype.recipes import RECIPES_DIR
from sonotype.training.config import AugmentConfig

__all__ = [
    "BACKBONES_ENV",
    "BACKBONE_HEAD",
    "CORPUS_KINDS",
    "KINDS",
    "NATIVE_HEAD",
    "check_backbone_run",
    "default_recipe",
    "local_backbone",
    "resolve_backbone",
    "switch_to_backbone",
]

KINDS = ("speech", "music", "sounds")
# The kind of each named corpus, for those without a ``<corpus>-best`` recipe of their own.
CORPUS_KINDS = {
    "ravdess": "speech", "cremad": "speech", "tess": "speech", "savee": "speech", "emodb": "speech",
    "dusha": "speech", "fsdd": "speech", "demo": "sounds", "gtzan": "music", "esc50": "sounds",
}  # fmt: skip
BACKBONES_ENV = "SONOTYPE_BACKBONES"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# The recommended frozen-encoder setup (measured on RAVDESS with Whisper-base, docs/results.md):
# every hidden state mean+std pooled over the clip's real frames, learned layer weights, one
# hidden layer; no augmentation. Training a head on cached embeddings takes seconds.
BACKBONE_HEAD: dict[str, Any] = {
    "backbone": {"layer": "all", "pooling": "meanstd"},
    "model": {"name": "layer-weighted-mlp", "params": {"hidden": [256], "dropout": 0.3}},
    "train": {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01, "batch_size": 32, "max_epochs": 100,
              "patience": 15, "plateau_patience": 5, "label_smoothing": 0.1, "num_threads": 1},
}


# The measured setup for natively run encoders and fusions (docs/results.md): one pooled vector
# per encoder, standardised, and logistic regression with C by inner group cross-validation.
NATIVE_HEAD: dict[str, Any] = {
    "backbone": {"layer": "last", "pooling": "mean"},
    "model": {"name": "logreg", "params": {"cv_scoring": "log_loss"}},
    "train": {},
}


def default_recipe(
    corpus: str, kind: str | None = None, *, scratch: bool = False, encoder: bool = False
) -> tuple[Path, str]:
    """The recipe file a plain ``sonotype train`` starts from, and its ``config_source`` text.

    Parameters
    ----------
    corpus : str
        Corpus loader name (``ravdess``, ``folder``, ...).
    kind : {"speech", "music", "sounds"}, optional
        Picks that kind's measured default whatever the corpus. Without it a corpus's own
        recipe wins, then the kind of a named corpus; a ``folder`` corpus of unknown kind gets
        the default for other sounds (the most general one).
    scratch : bool
        Never the frozen-encoder recipe, even when its encoder is on this machine.
    encoder : bool
        The frozen-encoder recipe whether or not its encoder is here (``--backbone`` names
        another one): its head settings are the measured ones.

    Returns
    -------
    path : Path
        The recipe YAML.
    source : str
        What produced the configuration, e.g. ``"recipe ravdess-whisper (whisper-base found at
        /models/whisper-base; --scratch for recipe ravdess-best)"``.
    """

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    k = kind or CORPUS_KINDS.get(corpus, "sounds")
    best = RECIPES_DIR / f"{corpus}-best.yaml"
    if kind is None and best.is_file():
        plain, plain_source = best, f"recipe {corpus}-best"
    else:
        plain, plain_source = RECIPES_DIR / f"default-{k}.yaml", f"default for {k}"
    if scratch:
        return plain, plain_source
    want_encoder = encoder
    names_tried = ([] if kind is not None else [f"{corpus}-encoders", f"{corpus}-whisper"]) + \
        [f"default-{k}-encoders", f"default-{k}-whisper"]
    recipes = [RECIPES_DIR / f"{n}.yaml" for n in names_tried if (RECIPES_DIR / f"{n}.yaml").is_file()]

    def label(path: Path) -> str:
        if path.stem.startswith(corpus):
            return f"recipe {path.stem}"
        return f"default for {k} with " + ("a pretrained encoder" if len(_recipe_backbone(path)) <= 1 else "pretrained encoders")

    if want_encoder:  # --backbone names the encoder: the hidden-state head's measured settings are the base
        base = next((r for r in recipes if r.stem.endswith("-whisper")), recipes[0])
        return base, label(base)
    plain_label = plain_source if plain_source.startswith("recipe") else f"the {plain_source}"
    for path in recipes:  # the measured best first; each needs all its encoders on this machine
        names = _recipe_backbone(path)
        found = [local_backbone(n) for n in names]
        if names and all(f is not None for f in found):
            where = ", ".join(f"{n} found at {f}" for n, f in zip(names, found, strict=True))
            return path, f"{label(path)} ({where}; --scratch for {plain_label})"
    return plain, plain_source


def _recipe_backbone(path: Path) -> list[str]:
    """The encoders a recipe's ``backbone.model`` names ([] when it names none)."""

    d = yaml.safe_load(path.read_text()) or {}
    model = (d.get("backbone") or {}).get("model") or []
    return [str(m) for m in (model if isinstance(model, list) else [model])]


def local_backbone(ref: str) -> str | None:
    """The absolute folder ``ref`` resolves to on this machine, or None; never downloads.

    A hub id (``owner/name``) is not local and gives None, as does a name found nowhere.
    """
    if not ref:
        return None
    try:
        found = resolve_backbone(ref)
    except SonotypeError:
        return None
    return found if Path(found).is_dir() else None


def resolve_backbone(ref: str | list[str]) -> str | list[str]:
    """Turn ``--backbone`` / ``backbone.model`` into what the loader opens: a folder or a hub id.

    In order: an existing folder (made absolute, so a run moved elsewhere still finds it);
    ``$SONOTYPE_BACKBONES/<ref>`` (so recipes can say ``model: whisper-base``); a known name
    (:data:`sonotype.backbones.catalog.ALIASES`) that ``sonotype backbone fetch`` has fetched; a
    hub id ``owner/name``. Anything else is a :class:`ConfigError` saying where it was looked for.
    """

    if isinstance(ref, list):  # a fusion: each encoder on its own
        return [str(resolve_backbone(r)) for r in ref]
    ref = str(ref).strip()
    if not ref:
        raise ConfigError("--backbone needs a folder or a hub id, got an empty value")
    p = Path(ref).expanduser()
    if p.is_dir():
        return str(p.resolve())
    home = os.environ.get(BACKBONES_ENV)
    if home and (Path(home).expanduser() / ref).is_dir():
        return str((Path(home).expanduser() / ref).resolve())
    if (ref in ALIASES or ref in NATIVE_ENCODERS) and not p.exists():
        try:  # a copy fetched earlier, found by its fetch record or its folder name
            return str(resolve(BackboneConfig(model=ref)).folder.resolve())
        except SonotypeError:
            pass
    elif _HUB_ID.match(ref) and not p.exists():
        return ref
    where = f"${BACKBONES_ENV}/{ref} ({home})" if home else f"${BACKBONES_ENV}/{ref} (${BACKBONES_ENV} is not set)"
    raise ConfigError(
        f"backbone {ref!r} not found: no folder {p.resolve()} and no {where}, no fetched copy, and it is not a hub id "
        f"(owner/name); pass --backbone DIR, set $SONOTYPE_BACKBONES to the folder that holds it, or run "
        f"'sonotype backbone fetch {ref}'"
    )


def switch_to_backbone(d: dict[str, Any], ref: str | None) -> tuple[dict[str, Any], list[str]]:
    """A copy of the plain config ``d`` set up for a frozen encoder, and one note per change.

    ``ref`` (None = keep ``d["backbone"]["model"]``) names the encoder. Backbone keys the
    config already sets (batch_size, max_seconds, revision) are kept; a fine-tuning config
    (``finetune_layers > 0``) is left alone apart from the encoder. Call before applying
    command-line overrides, so that an explicit ``--set`` still wins.
    """

    out = copy.deepcopy(d)
    notes: list[str] = []
    bb = dict(out.get("backbone") or {})
    if ref is not None:
        bb["model"] = ref
    if not bb.get("model"):
        raise ConfigError("no backbone named: pass --backbone DIR|NAME or set backbone.model")
    if int(bb.get("finetune_layers") or 0) > 0:
        out["backbone"] = bb
        return out, notes
    refs = bb["model"] if isinstance(bb["model"], list) else [bb["model"]]
    vector_head = len(refs) > 1 or all(_is_native(r) for r in refs)
    spec = NATIVE_HEAD if vector_head else BACKBONE_HEAD
    why = "one vector per encoder, as measured" if vector_head else "the recommended head reads every layer, mean+std"
    for key, value in spec["backbone"].items():
        if bb.get(key, value) != value:
            notes.append(f"backbone.{key} {bb[key]!r} -> {value!r} ({why})")
        bb[key] = value
    out["backbone"] = bb
    model = dict(out.get("model") or {})
    head = spec["model"]
    if model.get("name") != head["name"]:
        was = model.get("name", "resmlp") + (f" {model['params']}" if model.get("params") else "")
        notes.append(f"model {was} -> {head['name']} {head['params']} (a frame-feature network cannot read embeddings)")
        model = {**model, "name": head["name"], "params": copy.deepcopy(head["params"])}
    if int(model.get("ensemble") or 1) > 1:
        notes.append(f"model.ensemble {model['ensemble']} -> 1 (the head on a frozen encoder is stable; one is enough)")
        model["ensemble"] = 1
    if model.get("prior_correction"):
        notes.append("model.prior_correction -> false (measured without it)")
        model["prior_correction"] = False
    model.pop("ensemble_validation", None)
    out["model"] = model
    aug = out.get("augment") or {}
    default_aug = asdict(AugmentConfig())
    changed = sorted(k for k, v in aug.items() if _plain(v) != _plain(default_aug.get(k)))
    if changed:
        notes.append(f"augment ({', '.join(changed)}) dropped: waveform copies and SpecAugment do not apply to embeddings")
    out.pop("augment", None)
    for block, cls in (("features", FeatureConfig), ("representation", RepresentationConfig)):
        given = out.pop(block, None) or {}
        base = asdict(cls())
        if any(_plain(v) != _plain(base.get(k)) for k, v in given.items()):
            notes.append(f"{block} block ignored: the encoder reads the waveform at its own rate and pools its own frames")
    train = dict(out.get("train") or {})
    head_train = spec["train"]
    differs = sorted(k for k, v in head_train.items() if k in train and train[k] != v)
    if differs:
        notes.append(f"train ({', '.join(differs)}) -> the head's settings {head_train}")
    keep = {k: train[k] for k in ("seed", "deterministic", "monitor") if k in train}
    out["train"] = {**copy.deepcopy(head_train), **keep}
    return out, notes


def _is_native(ref: str) -> bool:
    """True for an encoder of a natively run family (by name, or a folder whose config.json says so)."""
    return ref in NATIVE_ENCODERS or read_native_config(Path(str(ref)).expanduser()) is not None


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def check_backbone_run(cfg: Any) -> None:
    """Refuse, before any extraction, a frozen-encoder run whose model cannot read its items.

    ``layer: all|weighted`` gives (L, D) items that only a ``layers`` head reads; a single
    layer gives vectors that a ``layers`` head refuses. Waveform copies are refused too.
    """
    bb = cfg.backbone
    if bb is None:
        return
    if cfg.augment.copies > 0:
        raise ConfigError("augment.copies (waveform copies) is not supported with a backbone; set augment.copies=0")
    if bb.finetuning:
        return

    resolved_params(cfg.model.name, **cfg.model.params)  # unknown model / parameter -> ParameterError
    layout = getattr(MODELS[cfg.model.name].cls, "input_layout", "vector")
    keeps_layers = bb.keeps_layers
    if keeps_layers and layout != "layers":
        raise ConfigError(
            f"backbone.layer {bb.layer!r} gives one (layers, width) item per clip, which model "
            f"{cfg.model.name!r} ({layout} input) cannot read: use model.name=layer-weighted-mlp "
            "(or --backbone, which sets it), or backbone.layer=last"
        )
    if not keeps_layers and layout == "layers":
        raise ConfigError(
            f"model {cfg.model.name!r} reads every hidden state: set backbone.layer=all (got {bb.layer!r})"
        )
    if layout not in ("vector", "layers"):
        raise ConfigError(f"model {cfg.model.name!r} reads {layout} items; backbone embeddings are vectors")
