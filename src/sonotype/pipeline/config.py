"""A run is fully described by one :class:`RunConfig`, readable as YAML.

The config is the only place where choices live: corpus and label operations, features,
representation, model, training, augmentation, protocol. The resolved config is saved
beside every run's results (``config.yaml``) and reproduces the run. Library classes know
nothing of this module: it binds them at the edge.
"""

from __future__ import annotations

import copy
import itertools
import os
import warnings
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from sonotype.backbones.config import BackboneConfig
from sonotype.config.parse import check_fields, strict_from_dict
from sonotype.errors import ConfigError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.items.engine import EngineConfig
from sonotype.items.normalize import NormalizeConfig
from sonotype.pipeline.mixed import MixConfig, mixed_corpus
from sonotype.splits.split import ProtocolConfig
from sonotype.training.config import AugmentConfig, TrainConfig

__all__ = [
    "CorpusConfig",
    "CrossEvalConfig",  # deprecated: a CorpusConfig
    "EvalConfig",
    "ModelConfig",
    "RunConfig",
    "StudyConfig",
    "apply_overrides",
    "load_config",
    "with_absolute_paths",
]


@dataclass
class CorpusConfig:
    """Which corpus to read and what to do with its labels: the corpus to train on, or one to test on.

    ``ops`` is a list of label operations for :func:`sonotype.corpora.ops.apply_ops`, e.g.
    ``[{keep: [happy, neutral, sad]}, {balance: {seed: 0}}]``. ``options`` go to the corpus
    loader. ``title`` is what reports call a cross-corpus evaluation on this corpus (default
    ``on NAME``, e.g. ``on new speakers``); a training corpus leaves it empty.
    Several corpora (``corpus:`` a list of entries) make one ``mixed`` section whose
    ``corpora`` are the entries (see :mod:`sonotype.pipeline.mixed`); ``optional: true`` on an
    entry skips it with a note when its root is absent.
    """

    name: str = "folder"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ops: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    optional: bool = False
    corpora: list[CorpusConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.corpora, list):
            raise ConfigError(f"corpus.corpora: expected a list, got {self.corpora!r}")
        self.corpora = [_section(CorpusConfig, c, f"corpus.corpora[{i}]") for i, c in enumerate(self.corpora)]
        check_fields(self)
        if not self.name.strip():
            raise ConfigError("corpus.name must name a corpus (see `sonotype corpus list`)")


def CrossEvalConfig(corpus: str = "", root: str | None = None, options: dict[str, Any] | None = None,
                    ops: list[dict[str, Any]] | None = None, title: str = "") -> CorpusConfig:
    """Deprecated: a cross-corpus entry is a :class:`CorpusConfig` (``corpus`` is its ``name``)."""
    warnings.warn("CrossEvalConfig(corpus=...) is deprecated: use CorpusConfig(name=...)", FutureWarning,
                  stacklevel=2)
    return CorpusConfig(name=corpus, root=root, options=dict(options or {}), ops=list(ops or []), title=title)


@dataclass
class ModelConfig:
    """A registry model name and its parameters (see ``sonotype.models``).

    ``ensemble: N`` trains N networks of that architecture from seeds ``train.seed``,
    ``train.seed + 1``, ... on the same data and saves them as one model that averages their
    probabilities (the ``ensemble`` model); with ``jobs > 1`` the members train in parallel.
    ``ensemble_validation: rotate`` gives each member its own validation groups (disjoint
    stratified group folds of the training side, see :func:`sonotype.splits.split.rotate_validation`),
    so together the members train on every training group; ``same`` (default) shares the
    protocol's validation part. ``prior_correction: true`` divides the predicted probabilities
    by the training class frequencies (renormalised), the decision rule for balanced accuracy
    on imbalanced classes; the saved model applies it too (an ``ensemble`` model, possibly
    of one network, with ``class_prior``).
    """

    name: str = "resmlp"
    params: dict[str, Any] = field(default_factory=dict)
    ensemble: int = 1
    ensemble_validation: str = "same"
    prior_correction: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.ensemble < 1:
            raise ConfigError(f"model.ensemble must be an integer >= 1, got {self.ensemble!r}")
        if self.ensemble_validation not in ("same", "rotate"):
            raise ConfigError(f"model.ensemble_validation must be 'same' or 'rotate', got {self.ensemble_validation!r}")
        if self.name == "ensemble":
            raise ConfigError("model.name 'ensemble' is built by training; set model.ensemble: N on the member model")


FINAL_MODELS = ("auto", "all", "refit", "best_fold")


@dataclass
class EvalConfig:
    """How the evaluation is reported, and which model ``model/`` holds.

    The reported figures always come from the protocol's test folds; ``final_model`` only
    chooses the saved model, and ``metrics.json`` (``final_model``) records exactly what
    trained it (clips, groups, validation groups, epochs):

    ``all``
        A final fit on every clip, with no validation part, for a fixed number of epochs:
        the median over the folds of their best epochs (per member for an ensemble). The
        model to take to another corpus. Without validation the learning-rate plateau rule
        watches the training loss (see :class:`~sonotype.training.config.TrainConfig`).
    ``refit``
        A fit on every clip except a validation part carved out by group (at least
        :data:`sonotype.splits.split.MIN_VAL_GROUPS` (3) groups are needed; with fewer, as with TESS's two speakers, it
        fits like ``all``), early stopping on that part (shared by ensemble members).
    ``best_fold``
        The fold model with the best validation score, trained on that fold's training side.
    ``auto`` (default)
        ``all`` with several folds; with one split the split's own model (no second fit).

    With one split, ``refit`` and ``best_fold`` keep the split's model; ``all`` still fits
    on every clip (e.g. ``savee-cross``: TESS's random split, then all of TESS).

    ``baseline`` (default true) also fits, on the same folds, clip statistics + logistic
    regression (:mod:`sonotype.pipeline.baseline`) and reports the model against it.
    """

    bootstrap: int = 1000
    examples: int = 6
    final_model: str = "auto"
    baseline: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        if self.bootstrap < 0 or self.examples < 0:
            raise ConfigError(f"evaluate.bootstrap and evaluate.examples must be >= 0, got {self.bootstrap}, "
                              f"{self.examples}")
        if self.final_model not in FINAL_MODELS:
            raise ConfigError(
                f"evaluate.final_model must be one of {', '.join(FINAL_MODELS)}, got {self.final_model!r}"
            )


@dataclass
class StudyConfig:
    """Feature-subset study (seed A): one small model per subset of feature columns."""

    subsets: list[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="mlp-elu"))

    def __post_init__(self) -> None:
        self.model = _section(ModelConfig, self.model, "study.model")
        check_fields(self)


@dataclass
class RunConfig:
    """Everything that defines a run; ``sonotype run`` and ``sonotype train`` consume it.

    ``backbone`` (optional) names a pretrained model whose embeddings replace the frame
    features (see :class:`sonotype.backbones.config.BackboneConfig`; needs ``sonotype[backbones]``).
    ``jobs`` is the number of worker processes for feature extraction, augmented copies
    and ensemble members (results do not depend on it). ``engine`` (``{name: local|ray,
    address, shard_size, max_retries}``, see :class:`sonotype.items.engine.EngineConfig`) runs the
    feature or embedding extraction as Ray tasks instead. ``cross`` lists corpora to test the
    saved model on, on the labels both share. ``labels`` lists the labels kept (mixed runs:
    default the corpora's intersection); ``mix`` and ``normalize`` are the mixed-corpus and
    per-speaker standardisation settings (:mod:`sonotype.pipeline.mixed`, :mod:`sonotype.items.normalize`).

    The config is its own schema: sections given as mappings become their dataclasses,
    ``protocol`` may be a string (``"kfold:4"``), every value is checked against its type with
    the key named, and settings that contradict each other are refused here, before any audio
    is read (:class:`~sonotype.errors.ConfigError`).
    """

    name: str = "run"
    description: str = ""
    seed_reference: str = ""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    study: StudyConfig | None = None
    cross: list[CorpusConfig] = field(default_factory=list)
    backbone: BackboneConfig | None = None
    labels: list[str] | None = None  # labels kept (mixed runs: default the corpora's intersection)
    mix: MixConfig = field(default_factory=MixConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    seed: int = 0
    jobs: int = 1
    cache_dir: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        for key, cls in _SECTIONS.items():
            setattr(self, key, _section(cls, getattr(self, key), key))
        if not isinstance(self.protocol, ProtocolConfig):
            self.protocol = ProtocolConfig.parse(self.protocol) if isinstance(self.protocol, str) else _section(
                ProtocolConfig, self.protocol, "protocol")
        if self.study is not None:
            self.study = _section(StudyConfig, self.study, "study")
        if self.backbone is not None:
            self.backbone = _section(BackboneConfig, self.backbone, "backbone")
        if not isinstance(self.cross, list):
            raise ConfigError(f"cross: expected a list, got {self.cross!r}")
        self.cross = [_cross_entry(c, i) for i, c in enumerate(self.cross)]
        check_fields(self)
        if self.jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {self.jobs}")
        _check_combination(self)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """A run config from plain values (YAML): unknown keys and wrong types are named."""
        return _build(cls, d, "")


# The sections of a RunConfig that are always there, with their classes.
_SECTIONS: dict[str, type] = {
    "corpus": CorpusConfig, "features": FeatureConfig, "representation": RepresentationConfig, "model": ModelConfig,
    "train": TrainConfig, "augment": AugmentConfig, "evaluate": EvalConfig, "mix": MixConfig,
    "normalize": NormalizeConfig, "engine": EngineConfig,
}


def _section(cls: type, value: Any, where: str) -> Any:
    """``value`` as a ``cls``: kept when it is one, built strictly from a mapping, refused otherwise."""
    if isinstance(value, cls):
        return value
    if value is None and cls is EngineConfig:  # `engine: null` in configs saved before it was a section
        return EngineConfig()
    if isinstance(value, dict) or (cls in (NormalizeConfig, EngineConfig) and isinstance(value, str)) or (
        cls is CorpusConfig and isinstance(value, list)  # several corpora: one mixed section
    ):
        return _build(cls, value, where)
    raise ConfigError(f"{where}: expected a mapping of {cls.__name__} settings, got {type(value).__name__} {value!r}")


def _cross_entry(value: Any, i: int) -> CorpusConfig:
    """One ``cross`` entry; the old ``{corpus: NAME}`` spelling still loads, with a deprecation note.

    The note is a :class:`FutureWarning`, the category Python shows to end users by default
    (a recipe's author, not a library developer, has to change the key).
    """
    where = f"cross[{i}]"
    if isinstance(value, dict) and "corpus" in value:
        if "name" in value:
            raise ConfigError(f"{where}: give the corpus as 'name' only ('corpus' is its deprecated spelling)")
        warnings.warn(f"{where}: 'corpus: {value['corpus']}' is deprecated; write 'name: {value['corpus']}' "
                      "(a cross entry is a corpus section like the training one)", FutureWarning, stacklevel=4)
        value = {("name" if k == "corpus" else k): v for k, v in value.items()}
    return _section(CorpusConfig, value, where)


def _check_combination(cfg: RunConfig) -> None:
    """Settings of different sections that cannot go together (each message names what to change)."""

    if cfg.model.ensemble > 1 and cfg.model.ensemble_validation == "rotate" and (
        cfg.protocol.val_size <= 0 or cfg.protocol.name == "random"
    ):
        raise ConfigError(
            "model.ensemble_validation 'rotate' carves validation groups from each training side: it needs "
            "protocol.val_size > 0 and a grouped protocol (not 'random')"
        )
    if cfg.backbone is not None and cfg.backbone.finetuning and (cfg.model.ensemble > 1 or cfg.model.prior_correction):
        raise ConfigError(
            "model.ensemble > 1 and model.prior_correction are not supported when fine-tuning a backbone "
            "(the fine-tuned network is saved as it is)"
        )
    from sonotype.models.registry import is_linear  # heavy: the registry loads torch; configs load without it

    if is_linear(cfg.model.name):
        if cfg.augment.enabled_features:
            raise ConfigError(f"model {cfg.model.name!r} is fitted by scikit-learn: SpecAugment, mixup and feature "
                              "noise do not apply (waveform copies, augment.copies, do); set them to 0")
        if cfg.model.ensemble > 1:
            raise ConfigError(f"model {cfg.model.name!r} is deterministic: model.ensemble > 1 would repeat one fit")


def to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj



def _build(cls: type, d: Any, where: str) -> Any:
    """``cls(**d)`` for a mapping from YAML: an unknown key or a value of the wrong type names its dotted key.

    Sub-sections are left as mappings: the dataclasses convert them in ``__post_init__``, so a
    config built in Python and one read from YAML go through the same checks.
    """
    if d is None:
        return None
    if cls is ProtocolConfig and isinstance(d, str):
        return ProtocolConfig.parse(d)
    if cls is NormalizeConfig and isinstance(d, str):  # `normalize: speaker`
        return NormalizeConfig.parse(d)
    if cls is EngineConfig and isinstance(d, str):  # `engine: ray`
        return EngineConfig(name=d)
    if cls is CorpusConfig and isinstance(d, list):  # several corpora: one mixed section
        d = mixed_corpus(d)
    sections = {"study", "model", "protocol", "backbone", "cross", *_SECTIONS} if cls in (RunConfig, StudyConfig) \
        else {"corpora"} if cls is CorpusConfig else frozenset()
    return strict_from_dict(cls, d, where=where or "config", skip=frozenset(sections))


def _parse_value(text: str) -> Any:
    """Parse an override value as YAML so `5`, `0.1`, `true`, `[a, b]`, `null` get their types.

    Text that is not YAML stays a string (a path with a colon), unless it opens a YAML list
    or mapping (`[1`, `{a: 1`): that is a typo, refused here rather than taken as a string.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if text.lstrip().startswith(("[", "{")):
            raise ConfigError(f"value {text!r} is not valid YAML: {yaml_problem(exc)}") from None
        return text


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from a YAML error: what is wrong and where (PyYAML's own message spans lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{problem}{where}" + (f" ({context})" if context else "")


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``key.sub=value`` overrides to a plain config dict (a copy is returned).

    A numeric part indexes a list: ``cross.0.root=/data/savee``.
    """
    out = copy.deepcopy(d)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, _, value = item.partition("=")
        try:
            _parse_value(value)
        except ConfigError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from None
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        node: Any = out
        for p, nxt in itertools.pairwise(parts):
            node = _child(node, p, item, make_list=nxt.isdigit())
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, item)] = _parse_value(value)
        elif parts == ["protocol"] and isinstance(node.get("protocol"), dict) and isinstance(_parse_value(value), str):
            # `protocol=kfold:6` is a shortcut for the protocol's name and main setting: it keeps
            # the section's other settings (val_size, seed, ...) instead of resetting them.
            node["protocol"] = {**node["protocol"], **_protocol_shortcut(_parse_value(value))}
        else:
            node[last] = _parse_value(value)
    return out


# The setting a `name:ARG` protocol shortcut sets, per protocol name.
_SHORTCUT_ARG = {"kfold": "k", "holdout": "test_size", "random": "test_size", "groups": "test_groups",
                 "predefined": "field"}


def _protocol_shortcut(spec: str) -> dict[str, Any]:
    """The protocol fields a ``name[:arg]`` string sets (validated), e.g. ``{name: kfold, k: 6}``."""
    p = ProtocolConfig.parse(spec)
    d = p.to_dict()
    out: dict[str, Any] = {"name": p.name}
    if ":" in spec and p.name in _SHORTCUT_ARG:
        out[_SHORTCUT_ARG[p.name]] = d[_SHORTCUT_ARG[p.name]]
    return out


def _index(node: list[Any], part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {item!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def _child(node: Any, part: str, item: str, *, make_list: bool) -> Any:
    """The sub-section ``part`` of ``node`` (created when missing), for dotted overrides."""
    if isinstance(node, list):
        node = node[_index(node, part, item)]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
        return node
    if node.get(part) is None:
        node[part] = [] if make_list else {}
    if part == "protocol" and isinstance(node[part], str):
        node[part] = _protocol_shortcut(node[part])  # `protocol: logo` in a recipe, then `protocol.seed=3`
    if not isinstance(node[part], (dict, list)):
        raise ConfigError(f"override {item!r}: {part!r} is not a section")
    return node[part]


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Read a YAML run config (or start from ``base``/defaults) and apply dotted overrides."""
    d: dict[str, Any] = copy.deepcopy(base) if base else {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a config must be a mapping at the top level")
        d = _merge(d, loaded)
    if overrides:
        d = apply_overrides(d, overrides)
    return RunConfig.from_dict(d)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """A copy of ``cfg`` whose folders (corpus roots, cache, a local backbone) are absolute.

    The saved ``config.yaml`` must reproduce the run from any working folder, so a root given
    as ``data/ravdess`` is stored as the folder it meant when the run was made.
    """
    backbone = cfg.backbone
    if backbone is not None:  # a folder (or a fusion's folders) made absolute; names and hub ids stay
        models = backbone.model if isinstance(backbone.model, list) else [backbone.model]
        models = [_absolute(m) if Path(m).expanduser().is_dir() else m for m in models]
        backbone = replace(backbone, model=models if isinstance(backbone.model, list) else models[0])
    return replace(
        cfg,
        corpus=replace(cfg.corpus, root=_absolute(cfg.corpus.root),
                       corpora=[replace(c, root=_absolute(c.root)) for c in cfg.corpus.corpora]),
        cross=[replace(c, root=_absolute(c.root)) for c in cfg.cross],
        cache_dir=_absolute(cfg.cache_dir),
        backbone=backbone,
    )
