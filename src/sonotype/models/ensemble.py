"""An average of several trained networks, saved and loaded as one model.

Members trained from different seeds make different mistakes on unseen speakers; averaging
their probabilities is the cheapest reliable gain there is (on RAVDESS by actor, two
``cnn1d-bn`` seeds at 0.592 and 0.576 average to 0.627). The ensemble is an ordinary
registered model, ``ensemble``, whose parameters are its members' specs, so the model
files stay weights (safetensors, keys ``members.<i>.*``) plus JSON, and predicting,
serving and ONNX export need nothing special.

The output is ``log(mean_i softmax(member_i(x)))``: a softmax of it gives exactly the mean
of the members' probabilities, so it is a drop-in for one network's logits.

With ``class_prior`` (the training class frequencies) the mean probability is divided by the
prior and renormalised (post-hoc logit adjustment): the decision that maximises balanced
accuracy when the classes are imbalanced, e.g. RAVDESS, whose neutral class has half the clips
of the others (+0.8 to +2 points of balanced accuracy in 8 of 9 runs measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sonotype.errors import ParameterError

__all__ = ["Ensemble", "ensemble_of"]


class Ensemble(nn.Module):
    """Mean probability of ``members`` (each a spec ``{"name", "input_shape", "n_classes", "params"}``).

    Every member must take ``input_shape`` and give ``n_classes`` outputs. Input layout and
    the variable (time) axis are the first member's: the members share their features.

    Parameters
    ----------
    input_shape : tuple of int
    n_classes : int
    members : sequence of dict
        Member specs (:func:`~sonotype.models.model_spec`).
    class_prior : sequence of float, optional
        Training class frequencies: probabilities are divided by them and renormalised
        (prior correction).

    Examples
    --------
    >>> from sonotype.models import build_model, model_spec
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
        from sonotype.models import from_spec  # the registry imports this module: import at build time

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
    """Wrap trained networks (built by :func:`~sonotype.models.build_model`) into one ``ensemble``.

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
    >>> from sonotype.models import build_model
    >>> nets = [build_model("mlp-small", (8,), 3, seed=s).eval() for s in (0, 1)]
    >>> ens = ensemble_of(nets)
    >>> ens.sonotype_spec["name"], len(ens.members)
    ('ensemble', 2)
    """
    from sonotype.models import build_model, model_spec

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
