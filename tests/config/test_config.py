"""Run configs: YAML round trip, dotted overrides, clear errors, recipes load."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonotype.errors import ConfigError
from sonotype.pipeline.config import RunConfig, apply_overrides, load_config
from sonotype.recipes import list_recipes, recipe_path


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = RunConfig()
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    again = load_config(p)
    assert again.to_dict() == cfg.to_dict()


def test_dotted_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["features.n_mfcc=13", "train.lr=0.01", "representation.stats=[mean, std]",
                             "protocol=kfold:4", "corpus.options.group_regex=^(\\w+)_"])
    assert cfg.features.n_mfcc == 13
    assert cfg.train.lr == pytest.approx(0.01)
    assert cfg.representation.stats == ["mean", "std"]
    assert cfg.protocol.name == "kfold" and cfg.protocol.k == 4
    assert cfg.corpus.options == {"group_regex": "^(\\w+)_"}


def test_override_merges_into_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\nfeatures: {n_fft: 4096, hop_length: 1024}\nmodel: {name: mlp}\n")
    cfg = load_config(p, ["features.hop_length=512"])
    assert (cfg.features.n_fft, cfg.features.hop_length, cfg.model.name) == (4096, 512, "mlp")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("featurez: {}\n", "unknown key"),
        ("features: {n_ffft: 3}\n", "unknown"),
        ("features: {features: [mfcc, wobble]}\n", "wobble"),
        ("model: 3\n", "expected a mapping"),
        ("- a\n- b\n", "mapping at the top level"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, yaml_text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_every_shipped_recipe_loads():
    names = [r["name"] for r in list_recipes()]
    assert "demo" in names
    for name in names:
        cfg = load_config(recipe_path(name))
        assert cfg.name == name, f"recipe file {name}.yaml declares name {cfg.name!r}"


def test_unknown_recipe_lists_known():
    with pytest.raises(ConfigError, match="demo"):
        recipe_path("no-such-recipe")


def test_overrides_index_into_lists():
    base = {"cross": [{"corpus": "savee", "root": None}], "corpus": {"ops": [{"keep": ["a"]}]}}
    d = apply_overrides(base, ["cross.0.root=/data/savee", "corpus.ops.0.keep=[a, b]"])
    assert d["cross"][0] == {"corpus": "savee", "root": "/data/savee"}
    assert d["corpus"]["ops"][0] == {"keep": ["a", "b"]}
    assert base["cross"][0]["root"] is None, "the input is not modified"
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides(base, ["cross.3.root=x"])
    cfg = load_config(recipe_path("savee-cross"), ["cross.0.root=/data/savee"])
    assert cfg.cross[0].root == "/data/savee" and cfg.cross[0].name == "savee"


def test_protocol_shortcut_keeps_the_sections_other_settings():
    recipe = {"protocol": {"name": "logo", "val_size": 0.15, "seed": 3}}
    cfg = RunConfig.from_dict(apply_overrides(recipe, ["protocol=kfold:6"]))
    assert (cfg.protocol.name, cfg.protocol.k, cfg.protocol.val_size, cfg.protocol.seed) == ("kfold", 6, 0.15, 3)
    cfg = RunConfig.from_dict(apply_overrides(recipe, ["protocol=holdout"]))
    assert (cfg.protocol.name, cfg.protocol.test_size, cfg.protocol.val_size) == ("holdout", 0.2, 0.15)
    cfg = RunConfig.from_dict(apply_overrides({"protocol": "logo"}, ["protocol.val_size=0.2"]))
    assert (cfg.protocol.name, cfg.protocol.val_size) == ("logo", 0.2)
    # Same result as setting the key itself: the shortcut and the dotted key agree.
    a = load_config(recipe_path("ravdess-best"), ["protocol=kfold:6"]).protocol
    b = load_config(recipe_path("ravdess-best"), ["protocol.k=6", "protocol.name=kfold"]).protocol
    assert a == b


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=fast", r"^train\.lr: expected a number, got 'fast' \(str\)$"),
        ("train.patience=soon", r"^train\.patience: expected an integer or null, got 'soon' \(str\)$"),
        ("features.n_mfcc=true", r"^features\.n_mfcc: expected an integer, got True \(bool\)$"),
        ("representation.stats=mean", r"^representation\.stats: expected a list of strings, got 'mean' \(str\)$"),
        ("cross=[{name: savee, root: 3}]", r"^cross\[0\]\.root: expected a string or null, got 3 \(int\)$"),
        ("train.lr={a: 1", r"^override 'train\.lr=\{a: 1': value '\{a: 1' is not valid YAML: "),
        ("protocol=kfold4", r"did you mean 'kfold:4'\?$"),
    ],
)
def test_values_are_checked_against_the_field_types(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_type_check_accepts_what_yaml_gives():
    cfg = load_config(None, ["train.lr=1", "augment.gain_db=[-3, 3]", "protocol.test_groups=[1001, 1002]",
                             "train.patience=null", "features.tuning=estimate"])
    assert cfg.train.lr == 1 and tuple(cfg.augment.gain_db) == (-3.0, 3.0) and cfg.protocol.test_groups == ["1001", "1002"]


def test_with_absolute_paths(tmp_path, monkeypatch):
    from sonotype.pipeline.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["corpus.root=data/ravdess", "cache_dir=~/c", "cross=[{name: savee, root: ../savee}]"])
    absolute = with_absolute_paths(cfg)
    assert absolute.corpus.root == str(tmp_path / "data" / "ravdess")
    assert absolute.cross[0].root == str(tmp_path.parent / "savee")
    assert absolute.cache_dir == str(Path("~/c").expanduser())
    assert cfg.corpus.root == "data/ravdess", "the input is not modified"
