"""Conformance of every registered model: builds, forward shape, JSON rebuild, parameter counts."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from sonotype.errors import ParameterError
from sonotype.models.layers import TemporalPool
from sonotype.models.registry import (
    build_model,
    count_parameters,
    from_spec,
    model_names,
    model_spec,
    resolved_params,
)

# (typical, small) input shapes per registered model; a new model must add a row here.
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mlp": ((37,), (1,)),
    "mlp-small": ((37,), (1,)),
    "mlp-elu": ((37,), (1,)),
    "resmlp": ((120,), (1,)),
    "cnn1d": ((216, 13), (2, 1)),
    "cnn1d-bn": ((130, 40), (1, 1)),
    "cnn2d": ((64, 44), (1, 1)),
    "crnn": ((64, 44), (1, 1)),
    "cnn-bn": ((64, 44), (1, 1)),
    "layer-weighted-mlp": ((13, 64), (1, 2)),
    "logreg": ((210,), (1,)),
    "linear-svm": ((216, 13), (1,)),
}

# variants and extra layouts that the registry names alone do not reach
CASES = [(name, shape, {}) for name, shapes in SHAPES.items() for shape in shapes] + [
    ("cnn1d", (22,), {"variant": "seed-b"}),
    ("cnn1d", (1,), {"variant": "seed-b"}),
    ("cnn1d", (216, 13), {"variant": "seed-b"}),
    ("cnn1d", (22,), {"variant": "seed-a"}),
    ("cnn2d", (64, 64), {"variant": "tutorial"}),
    ("cnn2d", (2, 3), {"variant": "tutorial"}),
    ("cnn2d", (128, 130), {"variant": "seed-d"}),
    ("cnn2d", (1, 2), {"variant": "seed-d"}),
    ("crnn", (40, 30), {"pooling": "attention"}),
    ("cnn-bn", (40, 30), {"pooling": "max", "channels": [8, 16]}),
    ("cnn1d-bn", (50, 13), {"pooling": "avg"}),
    ("resmlp", (40,), {"width": 32, "blocks": 0}),
    # an ensemble is built from its members' specs (see test_ensemble.py)
    ("ensemble", (30, 40), {"members": [
        {"name": "cnn1d-bn", "input_shape": [30, 40], "n_classes": 5, "params": {"channels": [8]}},
        {"name": "cnn1d-bn", "input_shape": [30, 40], "n_classes": 5, "params": {"channels": [8, 8]}},
    ]}),
]


def test_every_registered_model_has_shapes() -> None:
    assert set(model_names()) == set(SHAPES) | {"ensemble"}


@pytest.mark.parametrize(("name", "shape", "params"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_build_forward_and_rebuild_from_json(name: str, shape: tuple[int, ...], params: dict) -> None:
    m = build_model(name, shape, 5, seed=0, **params)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    m.train()
    assert m(x).shape == (3, 5)  # train mode (BatchNorm batch stats, running stats move)
    m.eval()
    out = m(x)
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    spec = json.loads(json.dumps(model_spec(m)))  # only JSON survives
    m2 = from_spec(spec, seed=123)  # a different initialisation ...
    m2.load_state_dict(m.state_dict())  # ... replaced by the saved weights
    m2.eval()
    assert torch.equal(m2(x), out)
    assert count_parameters(m2) == count_parameters(m)


def test_mlp_parameter_count_by_hand() -> None:
    # Linear 37->256, BN(256), Linear 256->128, BN(128), Linear 128->64, BN(64), Linear 64->10
    expected = (
        (37 * 256 + 256) + 2 * 256 + (256 * 128 + 128) + 2 * 128 + (128 * 64 + 64) + 2 * 64 + (64 * 10 + 10)
    )
    assert expected == 52426
    assert count_parameters(build_model("mlp", (37,), 10)) == expected
    small = (37 * 64 + 64 + 128) + (64 * 32 + 32 + 64) + (32 * 16 + 16 + 32) + (16 * 10 + 10)
    assert count_parameters(build_model("mlp-small", (37,), 10)) == small
    assert count_parameters(build_model("mlp-elu", (37,), 10)) == 37 * 200 + 200 + 200 * 10 + 10


def test_cnn1d_seed_a_parameter_count_by_hand() -> None:
    # 216 frames x 13 MFCC: conv k3 valid -> 214, pool -> 107, conv -> 105, pool -> 52; 128 x 52 flattened
    conv1 = 13 * 64 * 3 + 64 + 2 * 64
    conv2 = 64 * 128 * 3 + 128 + 2 * 128
    dense = 128 * 52 * 128 + 128
    head = 128 * 8 + 8
    assert (
        count_parameters(build_model("cnn1d", (216, 13), 8, variant="seed-a")) == conv1 + conv2 + dense + head
    )


def test_cnn2d_seed_b_parameter_count_by_hand() -> None:
    # 5 'same' 3x3 conv blocks with max-pool 2: 128 x 64 -> 4 x 2 with 96 channels
    chans = [1, 8, 16, 32, 64, 96]
    convs = sum(c_in * c_out * 9 + c_out for c_in, c_out in itertools.pairwise(chans))
    head = 96 * 4 * 2 * 3 + 3
    assert count_parameters(build_model("cnn2d", (128, 64), 3, variant="seed-b")) == convs + head


@pytest.mark.parametrize("name", ["crnn", "cnn-bn", "cnn1d-bn"])
def test_global_pooling_models_take_any_length(name: str) -> None:
    shape = (30, 40) if name == "cnn1d-bn" else (40, 30)  # (T, F) or (F, T), 40 features
    m = build_model(name, shape, 4, seed=0).eval()
    for t in (1, 7, 301):
        x = torch.randn(2, t, 40) if name == "cnn1d-bn" else torch.randn(2, 40, t)
        assert m(x).shape == (2, 4)


def test_build_seed_is_reproducible_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a = build_model("resmlp", (20,), 3, seed=7)
    b = build_model("resmlp", (20,), 3, seed=7)
    c = build_model("resmlp", (20,), 3, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_from_spec_needs_all_keys() -> None:
    with pytest.raises(ParameterError, match="lacks key"):
        from_spec({"name": "mlp", "input_shape": [4]})


def test_resolved_params_fill_presets_and_defaults() -> None:
    p = resolved_params("mlp-small")
    assert p == {"hidden": [64, 32, 16], "dropout": [0.3, 0.3, 0.2], "batchnorm": True, "activation": "relu"}
    assert resolved_params("cnn-bn")["rnn_hidden"] == 0
    assert resolved_params("crnn", pooling="attention")["pooling"] == "attention"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nope", (10,), 2), {}, "unknown model 'nope'"),
        (("mlp", (10,), 2), {"widht": 3}, "no parameter"),
        (("mlp", (0,), 2), {}, "input_shape"),
        (("mlp", (10,), 1), {}, "n_classes"),
        (("cnn2d", (10,), 2), {}, r"\(F, T\)"),
        (("cnn2d", (10, 10), 2), {"variant": "vgg"}, "variant"),
        (("cnn1d-bn", (10,), 2), {}, r"\(T, F\)"),
        (("crnn", (10, 10), 2), {"pooling": "median"}, "pooling"),
        (("mlp", (10,), 2), {"dropout": [0.1, 0.2]}, "one value per hidden layer"),
        (("mlp", (10,), 2), {"activation": "tanh"}, "activation"),
    ],
)
def test_bad_arguments_raise_parameter_error(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        build_model(*args, **kwargs)


def test_attention_pooling_is_a_weighted_mean() -> None:
    pool = TemporalPool(3, "attention")
    x = torch.ones(2, 3, 9) * torch.tensor([1.0, -2.0, 5.0])[None, :, None]  # constant over time
    assert torch.allclose(pool(x), torch.tensor([[1.0, -2.0, 5.0]] * 2))
    avgmax = TemporalPool(3, "avgmax")
    y = torch.arange(6.0).view(1, 1, 6).expand(1, 3, 6)
    assert avgmax(y).tolist() == [[2.5, 2.5, 2.5, 5.0, 5.0, 5.0]]
