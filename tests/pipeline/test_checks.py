"""The whole run config is checked against the registry and the corpus before extraction."""

from __future__ import annotations

import pytest

from sonotype.corpora.base import Clip, Manifest
from sonotype.errors import ConfigError
from sonotype.pipeline.checks import check_labels, check_model, check_protocol, check_run
from sonotype.pipeline.config import load_config
from sonotype.recipes import recipe_path


def _manifest(n_groups: int, labels=("a", "b"), per=2) -> Manifest:
    clips = [Clip(f"/x/{g}_{lab}_{i}.wav", lab, f"g{g}") for g in range(n_groups) for lab in labels for i in range(per)]
    return Manifest("folder", "/x", clips)


def test_model_names_and_params_against_the_registry():
    check_model("resmlp", {"width": 64, "blocks": 1})
    check_model("layer-weighted-mlp", {})
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'; did you mean 'resmlp'\? \(known: .*cnn1d.*\)"):
        check_model("resnet", {})
    with pytest.raises(ConfigError, match=r"unknown model 'ensemble'"):
        check_model("ensemble", {})
    with pytest.raises(ConfigError, match=r"'cnn1d' takes no parameter\(s\) 'hidden'.*\(it takes: .*variant"):
        check_model("cnn1d", {"hidden": [64]})
    with pytest.raises(ConfigError, match=r"^study\.model\.params: expected a mapping"):
        check_model("mlp", [1], where="study.model")


def test_labels_protocol_and_cross_targets(tmp_path):
    check_labels(["a", "b", "a"], what="x")
    with pytest.raises(ConfigError, match=r"x has 1 label\(s\) \['a'\]: a classifier needs at least two"):
        check_labels(["a", "a"], what="x")
    cfg = load_config(None, ["protocol=kfold:50"])
    with pytest.raises(ConfigError, match=r"protocol 'kfold' on 10 group\(s\) of 40 clips: .*at least 50 groups, got 10"):
        check_protocol(cfg, _manifest(10).clips)
    check_protocol(load_config(None, ["protocol=kfold:5"]), _manifest(10).clips)
    with pytest.raises(ConfigError, match=r"unknown group\(s\) \['g99'\]"):
        check_protocol(load_config(None, ["protocol=groups:g99"]), _manifest(3).clips)
    with pytest.raises(ConfigError, match=r"'official' needs per-item assignments"):
        check_protocol(load_config(None, ["protocol=official"]), _manifest(3).clips)
    with pytest.raises(ConfigError, match=r"^cross\.0\.name: unknown corpus 'savy'"):
        check_run(load_config(None, ["cross=[{name: savy, root: /x}]"]), _manifest(4))
    with pytest.raises(ConfigError, match=r"^cross\.0\.root: corpus root not found"):
        check_run(load_config(None, [f"cross=[{{name: savee, root: {tmp_path / 'nope'}}}]"]), _manifest(4))
    check_run(load_config(None, [f"cross=[{{name: savee, root: {tmp_path}}}]"]), _manifest(4))


def test_model_is_built_once_on_a_stand_in_item():
    from sonotype.pipeline.checks import check_model_fits

    for recipe in ("ravdess-best", "ravdess-cnn1d", "gtzan-images-cnn2d", "demo"):
        check_model_fits(load_config(recipe_path(recipe)))
    with pytest.raises(ConfigError, match=r"'cnn2d' cannot be built for representation 'stats' items \(vectors\).*takes \(F, T\)"):
        check_model_fits(load_config(None, ["model.name=cnn2d"]))
    with pytest.raises(ConfigError, match=r"cnn1d variant must be one of seed-a, seed-b, got 'x'"):
        check_model_fits(load_config(None, ["model.name=cnn1d", "model.params.variant=x"]))
