"""Neural classifiers by name: the seeds' architectures and the recommended defaults.

Every model is rebuilt from JSON alone, ``(name, input_shape, n_classes, params)``, so a
saved model is weights (safetensors) plus that JSON, never a pickled module. Networks
output logits; :func:`sonotype.training.train.predict_proba` applies the softmax.

``input_shape`` excludes the batch axis: ``(D,)`` for statistics vectors, ``(T, F)`` for
frame sequences (``cnn1d``, ``cnn1d-bn``), ``(F, T)`` for log-mel patches (``cnn2d``,
``crnn``, ``cnn-bn``; the model adds the channel axis itself).

Examples
--------
>>> m = build_model("resmlp", (40,), 8, width=128)
>>> spec = model_spec(m)  # JSON-ready
>>> same = from_spec(spec)  # same architecture; load the saved state_dict into it
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sonotype.errors import ParameterError
from sonotype.models.cnn1d import CNN1DBN, CNN1DSeed
from sonotype.models.cnn2d import CRNN, CNN2DSeed
from sonotype.models.mlp import MLP, ResMLP
from sonotype.utils.rng import torch_seed

__all__ = [
    "MODELS",
    "ModelEntry",
    "build_model",
    "count_parameters",
    "ensemble_of",
    "from_spec",
    "model_names",
    "model_spec",
    "register_model",
    "resolved_params",
]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: the module class, its preset parameters and a summary.

    Calling the entry builds the module: ``entry(input_shape, n_classes, **params)``.

    Parameters
    ----------
    cls : type of torch.nn.Module
        Built as ``cls(input_shape, n_classes, **params)``.
    defaults : dict
        The preset's parameters (over the class defaults).
    summary : str
        One line for ``sonotype models``.

    Examples
    --------
    >>> MODELS["mlp-small"].resolved({})["hidden"]
    [64, 32, 16]
    """

    cls: type[nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    def param_names(self) -> list[str]:
        sig = inspect.signature(self.cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def resolved(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter with its value: class defaults < preset < ``params``."""
        sig = inspect.signature(self.cls.__init__)
        out = {p.name: p.default for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        out.update(self.defaults)
        out.update(params)
        return _jsonable(out)

    def __call__(self, input_shape: tuple[int, ...], n_classes: int, **params: Any) -> nn.Module:
        return self.cls(tuple(input_shape), n_classes, **self.resolved(params))


MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, cls: type[nn.Module], defaults: Mapping[str, Any] | None = None, summary: str = ""
) -> None:
    """Add an architecture to the registry (``cls(input_shape, n_classes, **params)``).

    Parameters
    ----------
    name : str
        New, unique name.
    cls : type of torch.nn.Module
        Takes ``(input_shape, n_classes)`` and keyword-only architecture parameters.
    defaults : dict, optional
        Preset parameters.
    summary : str
        One line for ``sonotype models``.

    Examples
    --------
    >>> register_model("mlp", MLP)
    Traceback (most recent call last):
    ...
    sonotype.errors.ParameterError: model name 'mlp' is already registered
    """
    if name in MODELS:
        raise ParameterError(f"model name {name!r} is already registered")
    MODELS[name] = ModelEntry(cls, dict(defaults or {}), summary)


register_model("mlp", MLP, {}, "seed A: Dense 256-128-64, ReLU, BatchNorm, Dropout 0.3")
register_model(
    "mlp-small",
    MLP,
    {"hidden": [64, 32, 16], "dropout": [0.3, 0.3, 0.2]},
    "seed A: Dense 64-32-16, BatchNorm",
)
register_model(
    "mlp-elu",
    MLP,
    {"hidden": [200], "dropout": 0.0, "batchnorm": False, "activation": "elu"},
    "seed A feature-subset study: Dense 200 ELU",
)
register_model("resmlp", ResMLP, {}, "recommended for clip statistics: residual MLP with BatchNorm, Dropout")
register_model(
    "cnn1d", CNN1DSeed, {}, "seeds A/B 1D CNN over (T, F) or a (D,) vector (variant seed-a|seed-b)"
)
register_model("cnn1d-bn", CNN1DBN, {}, "recommended for (T, F) sequences: BN CNN + global pooling, any T")
register_model(
    "cnn2d", CNN2DSeed, {}, "seeds B/C/D 2D CNN over (F, T) log-mel (variant seed-b|tutorial|seed-d)"
)
register_model("crnn", CRNN, {}, "recommended for log-mel: BN CNN + BiGRU + pooling over time, any T")
register_model("cnn-bn", CRNN, {"rnn_hidden": 0}, "log-mel BN CNN + pooling over time (no GRU), any T")


def model_names() -> list[str]:
    """Registered model names, sorted.

    Returns
    -------
    list of str

    Examples
    --------
    >>> {"mlp", "resmlp", "crnn"} <= set(model_names())
    True
    """
    return sorted(MODELS)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON would give them back (tuples -> lists); refuse what JSON cannot hold."""
    try:
        return json.loads(json.dumps(dict(params)))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"model parameters must be JSON values, got {dict(params)!r} ({exc})") from None


def resolved_params(name: str, **params: Any) -> dict[str, Any]:
    """All parameters of model ``name`` with the values ``params`` would build it with.

    Parameters
    ----------
    name : str
        A registered model.
    **params
        Overrides; unknown names raise :class:`ParameterError`.

    Returns
    -------
    dict

    Examples
    --------
    >>> resolved_params("mlp-small", dropout=0.1)["dropout"]
    0.1
    """
    entry = _entry(name)
    _check_param_names(name, entry, params)
    return entry.resolved(params)


def _entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ParameterError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    return MODELS[name]


def _check_param_names(name: str, entry: ModelEntry, params: Mapping[str, Any]) -> None:
    known = entry.param_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(
            f"model {name!r} has no parameter(s) {unknown}; known: {', '.join(known) or 'none'}"
        )


def build_model(
    name: str, input_shape: tuple[int, ...], n_classes: int, *, seed: int | None = None, **params: Any
) -> nn.Module:
    """Build a registered network; the result carries ``sonotype_spec`` to rebuild it.

    Parameters
    ----------
    name : str
        A name from :func:`model_names`.
    input_shape : tuple of int
        One item's shape, without the batch axis.
    n_classes : int
        Number of output logits (>= 2).
    seed : int, optional
        Seed for the weight initialisation (the global torch random state is left as
        it was); None uses the current torch random state.
    **params
        Architecture parameters (see the model class); unknown names raise.

    Returns
    -------
    torch.nn.Module
        With attributes ``sonotype_spec`` (dict: name, input_shape, n_classes, params,
        all JSON values) and ``input_shape``.

    Examples
    --------
    >>> import torch
    >>> net = build_model("mlp-small", (37,), 5, seed=0)
    >>> net.sonotype_spec["name"], net(torch.zeros(2, 37)).shape
    ('mlp-small', torch.Size([2, 5]))
    """
    entry = _entry(name)
    shape = tuple(int(s) for s in input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or any(s < 1 for s in shape):
        raise ParameterError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    if int(n_classes) < 2:
        raise ParameterError(f"n_classes must be >= 2, got {n_classes}")
    _check_param_names(name, entry, params)
    resolved = entry.resolved(params)
    if seed is None:
        model = entry.cls(shape, int(n_classes), **resolved)
    else:
        with torch_seed(seed):
            model = entry.cls(shape, int(n_classes), **resolved)
    model.input_shape = shape
    model.sonotype_spec = {
        "name": name,
        "input_shape": list(shape),
        "n_classes": int(n_classes),
        "params": resolved,
    }
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The JSON that rebuilds ``model`` with :func:`from_spec`; raises for foreign modules.

    Parameters
    ----------
    model : torch.nn.Module
        Built by :func:`build_model`.

    Returns
    -------
    dict
        ``{"name", "input_shape", "n_classes", "params"}``.

    Examples
    --------
    >>> model_spec(build_model("mlp-small", (4,), 2))["input_shape"]
    [4]
    """
    spec = getattr(model, "sonotype_spec", None)
    if spec is None:
        raise ParameterError(f"{type(model).__name__} was not built by sonotype.models.build_model")
    return json.loads(json.dumps(spec))


def from_spec(spec: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """Rebuild a network from ``{"name", "input_shape", "n_classes", "params"}`` (e.g. read from JSON).

    Parameters
    ----------
    spec : dict
        As :func:`model_spec` gives it.
    seed : int, optional
        Weight initialisation seed.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> a = build_model("mlp-small", (4,), 2, seed=1)
    >>> b = from_spec(model_spec(a), seed=1)
    >>> all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    True
    """
    missing = sorted({"name", "input_shape", "n_classes", "params"} - set(spec))
    if missing:
        raise ParameterError(f"model spec lacks key(s) {missing}; got {sorted(spec)}")
    return build_model(
        spec["name"], tuple(spec["input_shape"]), int(spec["n_classes"]), seed=seed, **dict(spec["params"])
    )


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; BatchNorm running statistics are buffers, not counted.

    Parameters
    ----------
    model : torch.nn.Module
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int

    Examples
    --------
    >>> import torch
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# Models defined in sibling modules register themselves on import; importing them here
# keeps the registry complete in a fresh process (a saved model names its architecture).
from sonotype.models import heads  # noqa: E402, F401
from sonotype.models.ensemble import Ensemble, ensemble_of  # noqa: E402

register_model("ensemble", Ensemble, {}, "mean probability of member networks (model.ensemble: N seeds)")
from sonotype.models import linear  # noqa: E402, F401  (logreg, linear-svm: fitted by scikit-learn)
