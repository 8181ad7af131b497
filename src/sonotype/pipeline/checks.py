"""Check a whole run config against the corpus before any feature is extracted.

Extraction takes minutes; a misspelt model name, a parameter the model does not take, more
folds than groups or a single label left after the label operations must be found in the
first second, with a message that says what to change. :func:`check_run` is what
:func:`sonotype.pipeline.experiment.run_experiment` calls right after loading the manifest; the
parts (:func:`check_model`, :func:`check_labels`, :func:`check_protocol`) serve ``evaluate``
and the command line too.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from sonotype.errors import ConfigError, SonotypeError

__all__ = ["check_labels", "check_model", "check_model_fits", "check_protocol", "check_run"]


def _closest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_model(name: str, params: Mapping[str, Any] | None = None, *, where: str = "model") -> None:
    """Refuse an unknown model name or a parameter its class does not take, without building it.

    The registry (:data:`sonotype.models.MODELS`) knows each architecture's constructor; its
    keyword-only parameters are the names ``model.params`` may use.
    """
    from sonotype.models import MODELS, model_names

    known = [n for n in model_names() if n != "ensemble"]  # built by training, not by name
    if name not in known:
        raise ConfigError(f"{where}.name: unknown model {name!r}{_closest(name, known)} (known: {', '.join(known)})")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}.params: expected a mapping of parameter names to values, got {params!r}")
    accepted = MODELS[name].param_names()
    unknown = [p for p in params if p not in accepted]
    if unknown:
        close = {p: difflib.get_close_matches(p, accepted, n=1, cutoff=0.5) for p in unknown}
        hints = "".join(f"; {p!r}: did you mean {c[0]!r}?" for p, c in close.items() if c)
        raise ConfigError(
            f"{where}.params: model {name!r} takes no parameter(s) {', '.join(map(repr, unknown))}{hints} "
            f"(it takes: {', '.join(accepted) or 'none'})"
        )


def check_model_fits(cfg: Any) -> None:
    """Build the model once on a stand-in item of the representation's layout (no feature needed).

    The item's rank and time length follow the representation (``stats``/``frames``: a vector;
    ``windows``: (T, F); ``logmel``: (F, T), T from ``window`` and the hop); its feature size
    is a generous stand-in. A parameter value the class refuses (``variant``, ``dropout``) or a
    model that cannot take that layout (a 2D CNN on clip statistics) is named here.
    """
    from sonotype.errors import ParameterError
    from sonotype.models import build_model

    rep, fc = cfg.representation, cfg.features
    width = 128
    if rep.kind in ("windows", "logmel"):
        frames = max(1, int(float(rep.window or 1.0) * fc.sr / fc.hop_length) + 1)
        shape: tuple[int, ...] = (frames, width) if rep.kind == "windows" else (width, frames)
        layout = f"({'T, F' if rep.kind == 'windows' else 'F, T'}) patches"
    else:
        shape, layout = (width,), "vectors"
    try:
        build_model(cfg.model.name, shape, 2, seed=0, **cfg.model.params)
    except (ParameterError, ConfigError) as exc:
        raise ConfigError(
            f"model {cfg.model.name!r} cannot be built for representation {rep.kind!r} items ({layout}) "
            f"with params {dict(cfg.model.params)}: {exc}"
        ) from None


def check_labels(labels: Sequence[str], *, what: str) -> None:
    """A classifier needs two classes at least: one label gives accuracy 1.000 and means nothing."""
    if len(set(labels)) < 2:
        shown = sorted(set(labels))
        raise ConfigError(
            f"{what} has {len(shown)} label(s) {shown}: a classifier needs at least two; "
            "check the label operations (keep/drop/merge)"
        )


def check_protocol(cfg: Any, clips: Sequence[Any]) -> None:
    """Make the splits over the clips (cheap: labels and groups only) to find protocol mistakes now.

    Too many folds for the groups, an unknown test group, a class missing from a training
    side, an official split the corpus does not have: all raise here, before extraction.
    """
    from sonotype.splits.split import make_splits

    proto = cfg.protocol
    labels = [c.label for c in clips]
    groups = [c.group for c in clips]
    assignments = [c.meta.get(proto.field) for c in clips]
    has_assign = any(a is not None for a in assignments)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real split, made later, warns once
        try:
            make_splits(labels, groups, proto, assignments=assignments if has_assign else None)
        except SonotypeError as exc:
            n_groups = len(set(groups))
            raise ConfigError(f"protocol {proto.name!r} on {n_groups} group(s) of {len(clips)} clips: {exc}") from None


def check_run(cfg: Any, manifest: Any) -> None:
    """Every check of a run config that needs no feature: model, labels, protocol, cross-corpus targets.

    ``cfg`` is a :class:`~sonotype.pipeline.config.RunConfig`, ``manifest`` the corpus after its label
    operations. Raises :class:`~sonotype.errors.ConfigError` naming the setting to change.
    """
    from sonotype.corpora.base import check_root, get_loader

    finetune = cfg.backbone is not None and cfg.backbone.finetuning
    if not finetune:  # a fine-tuned backbone takes its head's parameters, not a registry model's
        check_model(cfg.model.name, cfg.model.params)
    if cfg.backbone is None:
        check_model_fits(cfg)
    if cfg.study and cfg.study.subsets:
        check_model(cfg.study.model.name, cfg.study.model.params, where="study.model")
    check_labels(manifest.labels, what=f"corpus {cfg.corpus.name!r} at {cfg.corpus.root} after its label operations")
    check_protocol(cfg, manifest.clips)
    for i, cc in enumerate(cfg.cross):
        try:
            get_loader(cc.name)
        except SonotypeError as exc:
            raise ConfigError(f"cross.{i}.name: {exc}") from None
        if not cc.root:
            raise ConfigError(f"cross.{i}.root: corpus {cc.name!r} needs a root folder (--set cross.{i}.root=...)")
        try:
            check_root(cc.root)
        except SonotypeError as exc:
            raise ConfigError(f"cross.{i}.root: {exc}") from None
