"""Configs are the schema: every dataclass converts and validates itself on construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from sonotype.backbones.config import BackboneConfig
from sonotype.corpora.demo import generate_demo
from sonotype.corpora.registry import group_name
from sonotype.errors import ConfigError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.pipeline.config import CorpusConfig, CrossEvalConfig, ModelConfig, RunConfig, load_config
from sonotype.recipes import recipe_path
from sonotype.splits.split import ProtocolConfig, carve_validation
from sonotype.training.config import AugmentConfig, TrainConfig


def test_python_construction_converts_sections_and_protocol_strings():
    cfg = RunConfig(protocol="kfold:4", model={"name": "mlp"}, features={"n_mfcc": 13}, study={"subsets": ["mfcc"]},
                    backbone={"model": "/enc", "layer": "all"}, cross=[{"name": "savee", "root": "/s"}])
    assert isinstance(cfg.protocol, ProtocolConfig) and (cfg.protocol.name, cfg.protocol.k) == ("kfold", 4)
    assert isinstance(cfg.model, ModelConfig) and cfg.model.name == "mlp"
    assert isinstance(cfg.features, FeatureConfig) and cfg.features.n_mfcc == 13
    assert isinstance(cfg.study.model, ModelConfig) and cfg.study.model.name == "mlp-elu"
    assert isinstance(cfg.backbone, BackboneConfig) and cfg.backbone.keeps_layers and not cfg.backbone.finetuning
    assert cfg.cross == [CorpusConfig(name="savee", root="/s")]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RunConfig(train={"lr": "fast"}), r"^train\.lr: expected a number, got 'fast' \(str\)$"),
        (lambda: RunConfig(model={"name": "mlp", "widht": 3}), r"^model: unknown key\(s\) \['widht'\]"),
        (lambda: RunConfig(features=3), r"^features: expected a mapping of FeatureConfig settings, got int 3$"),
        (lambda: RunConfig(seed="0"), r"^seed: expected an integer, got '0' \(str\)$"),
        (lambda: RunConfig(jobs=0), r"^jobs must be >= 1, got 0$"),
        (lambda: RunConfig(backbone={"model": "/enc", "pooling": "max"}), r"^backbone\.pooling must be one of"),
        (lambda: TrainConfig(batch_size=2.5), r"^train\.batch_size: expected an integer, got 2\.5 \(float\)$"),
        (lambda: AugmentConfig(copies=True), r"^augment\.copies: expected an integer, got True \(bool\)$"),
        (lambda: ProtocolConfig(k="4"), r"^protocol\.k: expected an integer, got '4' \(str\)$"),
        (lambda: CorpusConfig(name=""), r"^corpus\.name must name a corpus"),
        (lambda: CorpusConfig(options=[]), r"^corpus\.options: expected a mapping, got \[\] \(list\)$"),
        (lambda: ModelConfig(params="x"), r"^model\.params: expected a mapping"),
        (lambda: RepresentationConfig(kind="stats", stats=["mode"]), r"unknown statistic 'mode'"),
        (lambda: RepresentationConfig(kind="windows", window=1.0, hop=0.0), r"^representation\.hop must be > 0"),
    ],
)
def test_wrong_values_name_their_key(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"roll_percent": 1.2}, r"roll_percent must lie in \(0, 1\), got 1\.2"),
        ({"n_mfcc": 40, "n_mels": 20}, r"n_mfcc \(40\) must be <= features\.n_mels \(20\)"),
        ({"win_length": 4096}, r"win_length must be in 1\.\.n_fft \(2048\) or null, got 4096"),
        ({"top_db": -3.0}, r"top_db must be >= 0 dB or null, got -3\.0"),
        ({"features": ["contrast"], "sr": 8000}, r"contrast band edges reach 6400 Hz, at or above the Nyquist"),
        ({"features": ["contrast"], "contrast_bands": 0}, r"contrast needs contrast_fmin > 0 and contrast_bands >= 1"),
        ({"fmax": 20000.0}, r"need 0 <= fmin < fmax <= sr / 2 \(11025\)"),
        ({"pad_mode": "zeros"}, r"pad_mode must be one of constant"),
        ({"window": "nope"}, r"window 'nope' is not a scipy window"),
        ({"max_duration": 0.0}, r"max_duration must be > 0 seconds or null"),
        ({"tuning": "auto"}, r"tuning: expected a number or one of 'estimate'"),
    ],
)
def test_every_feature_setting_is_checked_at_construction(settings, message):
    with pytest.raises(ConfigError, match=message):
        FeatureConfig(**settings)


def test_settings_only_a_used_feature_reads_are_checked_only_when_it_is_used():
    # FSDD at 8 kHz keeps the default contrast settings, which only the contrast feature reads.
    assert FeatureConfig(sr=8000, features=["mfcc"]).contrast_bands == 6
    assert FeatureConfig(features=["rms"], n_mfcc=40, n_mels=20).n_mfcc == 40


def test_one_duration_rule_and_one_frame_count():
    fc = FeatureConfig(sr=100, n_fft=8, hop_length=4, max_duration=2.0)
    assert (fc.read_duration(None), fc.read_duration(5.0), fc.read_duration(1.5)) == (2.0, 2.0, 1.5)
    assert fc.max_samples == 200 and FeatureConfig().max_samples is None and FeatureConfig().read_duration(3.0) == 3.0
    assert fc.n_frames(200) == 51  # librosa.stft(np.zeros(200), n_fft=8, hop_length=4).shape[1]
    assert FeatureConfig(n_fft=8, hop_length=4, center=False).n_frames(200) == 49


def test_cross_entries_are_corpus_configs_and_the_old_key_still_loads():
    with pytest.warns(FutureWarning, match=r"cross\[0\]: 'corpus: savee' is deprecated; write 'name: savee'"):
        cfg = RunConfig.from_dict({"cross": [{"corpus": "savee", "root": "/s", "title": "on SAVEE"}]})
    assert cfg.cross == [CorpusConfig(name="savee", root="/s", title="on SAVEE")]
    assert yaml.safe_load(cfg.to_yaml())["cross"][0]["name"] == "savee"
    with pytest.raises(ConfigError, match="give the corpus as 'name' only"):
        RunConfig.from_dict({"cross": [{"corpus": "savee", "name": "tess"}]})
    with pytest.warns(FutureWarning, match="use CorpusConfig"):
        assert CrossEvalConfig(corpus="demo", root="/d").name == "demo"


def test_contradicting_sections_are_refused_on_construction():
    with pytest.raises(ConfigError, match=r"ensemble_validation 'rotate' .* needs protocol.val_size > 0"):
        RunConfig(model={"name": "mlp", "ensemble": 2, "ensemble_validation": "rotate"}, protocol="random")
    with pytest.raises(ConfigError, match="not supported when fine-tuning a backbone"):
        RunConfig(model={"ensemble": 2}, backbone={"model": "/enc", "finetune_layers": 2})
    with pytest.raises(ConfigError, match="'logreg' is fitted by scikit-learn: SpecAugment"):
        RunConfig(model={"name": "logreg"}, augment={"spec_time_masks": 1, "spec_time_width": 4})
    with pytest.raises(ConfigError, match="'logreg' is deterministic"):
        RunConfig(model={"name": "logreg", "ensemble": 2})


def test_every_recipe_round_trips_through_yaml():
    for name in ("demo", "savee-cross", "ravdess-whisper", "fsdd-best", "gtzan-subsets"):
        cfg = load_config(recipe_path(name))
        again = RunConfig.from_dict(yaml.safe_load(cfg.to_yaml()))
        assert again == cfg, name


def test_group_names_live_with_their_corpus():
    assert [group_name(c) for c in ("ravdess", "gtzan", "tess", "esc50", "nope")] == [
        "actor", "track", "speaker", "source recording", "group"]


def test_carve_validation_keeps_groups_whole():
    labels = np.array(["a", "b"] * 12)
    groups = np.repeat([f"g{i}" for i in range(6)], 4)
    train, val = carve_validation(np.arange(24), labels, groups, val_size=0.3, seed=1)
    assert len(val) and not set(groups[train]) & set(groups[val]) and len(train) + len(val) == 24
    assert len(carve_validation(np.arange(8), labels[:8], groups[:8], val_size=0.3)[1]) == 0  # 2 groups: none


def test_a_run_leaves_the_callers_random_state_and_threads_alone(tmp_path):
    from sonotype.pipeline.experiment import run_experiment

    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=3, takes=1, seconds=0.5)
    cfg = load_config(recipe_path("demo"), [
        f"corpus.root={root}", "train.max_epochs=2", "train.num_threads=1", "evaluate.bootstrap=0",
        "evaluate.baseline=false", "evaluate.examples=0", "protocol=logo",
    ])
    torch.manual_seed(1234)
    np.random.seed(99)
    threads = torch.get_num_threads()
    before_torch, before_np = torch.random.get_rng_state(), np.random.get_state()
    m1 = run_experiment(cfg, tmp_path / "a", progress=False)
    assert torch.equal(torch.random.get_rng_state(), before_torch)
    assert np.array_equal(np.random.get_state()[1], before_np[1])
    assert torch.get_num_threads() == threads
    torch.manual_seed(5)  # another caller state: the run's figures do not depend on it
    m2 = run_experiment(cfg, tmp_path / "b", progress=False)
    assert m1["balanced_accuracy"] == m2["balanced_accuracy"] and m1["folds"] == m2["folds"]
