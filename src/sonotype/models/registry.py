"""The model registry: every architecture by name: the seeds' architectures and the recommended defaults.

Every model is rebuilt from JSON alone, ``(name, input_shape, n_classes, params)``, so a
saved model is weights (safetensors) plus that JSON, never a pickled module. Networks
output logits; :func:`sonotype.models.apply.predict_proba` applies the softmax.

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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sonotype.errors import ParameterError
from sonotype.models.cnn1d import CNN1DBN, CNN1DSeed
from sonotype.models.cnn2d import CRNN, CNN2DSeed
from sonotype.models.heads import LayerWeightedMLP
from sonotype.models.linear import LinearClassifier
from sonotype.models.mlp import MLP, ResMLP
from sonotype.utils.rng import torch_seed

__all__ = [
    "MODELS",
    "Ensemble",
    "ModelEntry",
    "build_model",
    "check_item_shape",
    "count_parameters",
    "ensemble_of",
    "from_spec",
    "is_linear",
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
        raise ParameterError(f"{type(model).__name__} was not built by sonotype.models.registry.build_model")
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


def check_item_shape(model: nn.Module, shape: tuple[int, ...], what: str) -> None:
    """Refuse items whose shape is not the one ``model`` was built for (any length along ``variable_axis``).

    Parameters
    ----------
    model : torch.nn.Module
        Built by :func:`build_model` (its ``input_shape``; a module without one accepts anything).
    shape : tuple of int
        One item's shape (no batch axis).
    what : str
        Named in the error (``"training"``, ``"prediction"``).

    Examples
    --------
    >>> check_item_shape(build_model("mlp-small", (4,), 2), (4,), "prediction")
    >>> check_item_shape(build_model("mlp-small", (4,), 2), (5,), "prediction")
    Traceback (most recent call last):
    ...
    sonotype.errors.ParameterError: prediction items have shape (5,), but the model was built for input_shape (4,)
    """
    expected = getattr(model, "input_shape", None)
    if expected is None:
        return
    expected = tuple(expected)
    got = tuple(shape)
    axis = getattr(model, "variable_axis", None)  # global-pooling models take any T
    if axis is not None and len(got) == len(expected):
        got_cmp = got[:axis] + got[axis + 1 :]
        exp_cmp = expected[:axis] + expected[axis + 1 :]
    else:
        got_cmp, exp_cmp = got, expected
    if got_cmp != exp_cmp:
        raise ParameterError(
            f"{what} items have shape {got}, but the model was built for input_shape {expected}"
        )


class Ensemble(nn.Module):
    """Mean probability of ``members`` (each a spec ``{"name", "input_shape", "n_classes", "params"}``).

    Every member must take ``input_shape`` and give ``n_classes`` outputs. Input layout and
    the variable (time) axis are the first member's: the members share their features.

    Parameters
    ----------
    input_shape : tuple of int
    n_classes : int
    members : sequence of dict
        Member specs (:func:`~sonotype.models.registry.model_spec`).
    class_prior : sequence of float, optional
        Training class frequencies: probabilities are divided by them and renormalised
        (prior correction).

    Examples
    --------
    >>> from sonotype.models.registry import build_model, model_spec
    >>> spec = model_spec(build_model("mlp-small", (8,), 3))
    >>> Ensemble((8,), 3, members=[spec, spec]).eval()(torch.zeros(2, 8)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        members: Sequence[dict[str, Any]] = (),
        class_prior: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(members) < 1:
            raise ParameterError("an ensemble needs at least one member spec")
        built = []
        for i, spec in enumerate(members):
            if not isinstance(spec, dict):
                raise ParameterError(f"ensemble member {i} must be a model spec dict, got {type(spec).__name__}")
            if spec.get("name") == "ensemble":
                raise ParameterError(f"ensemble member {i} is itself an ensemble; list its members instead")
            if tuple(spec.get("input_shape", ())) != tuple(input_shape) or int(spec.get("n_classes", -1)) != n_classes:
                raise ParameterError(
                    f"ensemble member {i} is built for input_shape {spec.get('input_shape')} and "
                    f"{spec.get('n_classes')} classes, the ensemble for {list(input_shape)} and {n_classes}"
                )
            built.append(from_spec(spec))
        self.members = nn.ModuleList(built)
        log_prior = torch.zeros(n_classes)
        if class_prior is not None:
            prior = torch.tensor([float(p) for p in class_prior], dtype=torch.float64)
            if prior.shape != (n_classes,) or not bool(torch.all(prior > 0)):
                raise ParameterError(
                    f"class_prior must be {n_classes} positive frequencies, got {list(class_prior)}"
                )
            log_prior = torch.log(prior / prior.sum()).float()
        # Not in the state dict: the JSON spec carries it, and older files load strictly.
        self.register_buffer("log_prior", log_prior, persistent=False)
        self.input_layout = getattr(built[0], "input_layout", None)
        axis = getattr(built[0], "variable_axis", None)
        if axis is not None and all(getattr(m, "variable_axis", None) == axis for m in built):
            self.variable_axis = axis  # only when every member takes any length along it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x), dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members)) - self.log_prior


def ensemble_of(networks: Sequence[nn.Module], *, class_prior: Sequence[float] | None = None) -> nn.Module:
    """Wrap trained networks (built by :func:`~sonotype.models.registry.build_model`) into one ``ensemble``.

    The members' weights are copied into the new module, which carries its own spec;
    ``class_prior`` turns on the prior correction (one network may then be wrapped alone).

    Parameters
    ----------
    networks : sequence of torch.nn.Module
        Same input shape and classes.
    class_prior : sequence of float, optional

    Returns
    -------
    torch.nn.Module
        An ``ensemble`` in eval mode.

    Examples
    --------
    >>> from sonotype.models.registry import build_model
    >>> nets = [build_model("mlp-small", (8,), 3, seed=s).eval() for s in (0, 1)]
    >>> ens = ensemble_of(nets)
    >>> ens.sonotype_spec["name"], len(ens.members)
    ('ensemble', 2)
    """
    if not networks:
        raise ParameterError("ensemble_of needs at least one network")
    specs = [model_spec(n) for n in networks]
    prior = None if class_prior is None else [float(p) for p in class_prior]
    ens = build_model("ensemble", tuple(specs[0]["input_shape"]), specs[0]["n_classes"], members=specs,
                      class_prior=prior)
    for dst, src in zip(ens.members, networks):
        dst.load_state_dict(src.state_dict())
    ens.eval()
    return ens

def is_linear(model: Any) -> bool:
    """Whether ``model`` (a module, or a registry name) is fitted by :func:`fit_linear`.

    Parameters
    ----------
    model : torch.nn.Module or str

    Returns
    -------
    bool

    Examples
    --------
    >>> is_linear("logreg"), is_linear("mlp")
    (True, False)
    """
    if isinstance(model, str):
        entry = MODELS.get(model)
        return entry is not None and getattr(entry.cls, "fitted_by", None) == "sklearn"
    return getattr(model, "fitted_by", None) == "sklearn"


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
register_model(
    "logreg",
    LinearClassifier,
    {"loss": "logistic"},
    "multinomial logistic regression (scikit-learn), C by inner group CV; items flattened",
)
register_model(
    "linear-svm",
    LinearClassifier,
    {"loss": "hinge"},
    "linear SVM (scikit-learn LinearSVC) + out-of-fold Platt probabilities, C by inner group CV",
)
register_model(
    "layer-weighted-mlp",
    LayerWeightedMLP,
    {},
    "backbone embeddings of every layer (L, D): learned softmax layer weights + MLP",
)
register_model("ensemble", Ensemble, {}, "mean probability of member networks (model.ensemble: N seeds)")
