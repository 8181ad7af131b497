"""Defaults by corpus kind, `config_source`, and the `--backbone` switch (checked before extraction)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sonotype.cli import app
from sonotype.corpora.demo import generate_demo
from sonotype.errors import ConfigError
from sonotype.pipeline.config import load_config
from sonotype.pipeline.defaults import (
    BACKBONE_HEAD,
    check_backbone_run,
    default_recipe,
    resolve_backbone,
    switch_to_backbone,
)
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import list_recipes, recipe_path

runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The console entry point in a subprocess: errors become one red line and exit code 2 there."""
    return subprocess.run([sys.executable, "-m", "sonotype.cli", *args], capture_output=True, text=True, timeout=300)
FAST = ["--set", "train.max_epochs=2", "--set", "train.patience=null", "--set", "evaluate.bootstrap=0",
        "--set", "evaluate.examples=1", "--set", "augment.copies=0", "--set", "jobs=1"]


def test_default_recipe_prefers_the_corpus_best_then_its_kind():
    assert default_recipe("ravdess") == (recipe_path("ravdess-best"), "recipe ravdess-best")
    assert default_recipe("gtzan")[1] == "recipe gtzan-best"
    assert default_recipe("esc50") == (recipe_path("default-sounds"), "default for sounds")
    assert default_recipe("folder") == (recipe_path("default-sounds"), "default for sounds")
    assert default_recipe("folder", "speech") == (recipe_path("default-speech"), "default for speech")
    assert default_recipe("ravdess", "music") == (recipe_path("default-music"), "default for music")
    with pytest.raises(ConfigError, match="--kind must be one of speech, music, sounds"):
        default_recipe("folder", "noise")


def _fake_encoder(root: Path, name: str = "whisper-base") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_default_recipe_takes_the_encoder_recipe_when_its_encoder_is_here(tmp_path, monkeypatch):
    folder = _fake_encoder(tmp_path)
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path))
    path, source = default_recipe("ravdess")
    assert path == recipe_path("ravdess-whisper")
    assert source == f"recipe ravdess-whisper (whisper-base found at {folder.resolve()}; --scratch for recipe ravdess-best)"
    assert default_recipe("ravdess", scratch=True) == (recipe_path("ravdess-best"), "recipe ravdess-best")
    assert default_recipe("folder", "music")[0] == recipe_path("default-music-whisper")
    assert default_recipe("folder", "music")[1].startswith("default for music with a pretrained encoder (whisper-base found")
    assert default_recipe("folder")[0] == recipe_path("default-sounds-whisper")
    assert default_recipe("esc50")[0] == recipe_path("esc50-whisper")
    # Another encoder's name in the folder is not Whisper-base: nothing switches.
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path / "elsewhere"))
    assert default_recipe("ravdess") == (recipe_path("ravdess-best"), "recipe ravdess-best")
    # --backbone names its own encoder: the encoder recipe's head settings, whatever is installed.
    assert default_recipe("ravdess", encoder=True) == (recipe_path("ravdess-whisper"), "recipe ravdess-whisper")
    assert default_recipe("folder", "speech", encoder=True)[0] == recipe_path("default-speech-whisper")


def test_every_kind_has_an_encoder_default_like_its_corpus_recipes():
    for kind, like in (("speech", "ravdess"), ("music", "gtzan"), ("sounds", "esc50")):
        cfg, ref = load_config(recipe_path(f"default-{kind}-whisper")), load_config(recipe_path(f"{like}-whisper"))
        assert cfg.corpus.name == "folder" and cfg.protocol.name == "auto"
        assert cfg.backbone == ref.backbone and cfg.model == ref.model
        assert cfg.train == ref.train


def test_every_default_and_whisper_recipe_exists():
    names = {r["name"] for r in list_recipes()}
    assert {"default-speech", "default-music", "default-sounds"} <= names
    for c in ("ravdess", "emodb", "tess", "savee", "cremad", "gtzan", "fsdd", "esc50"):
        cfg = load_config(recipe_path(f"{c}-whisper"))
        assert cfg.corpus.name == c and cfg.backbone.model == "whisper-base"
        assert (cfg.model.name, cfg.backbone.layer, cfg.backbone.pooling) == ("layer-weighted-mlp", "all", "meanstd")
        assert cfg.augment.copies == 0 and cfg.model.ensemble == 1
    cross = load_config(recipe_path("tess-savee-whisper"))
    assert (cross.corpus.name, cross.cross[0].name) == ("tess", "savee")


def test_resolve_backbone_folder_env_hub_id_and_error(tmp_path, monkeypatch):
    enc = tmp_path / "encoders" / "whisper-base"
    enc.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_backbone("encoders/whisper-base") == str(enc.resolve())  # stored absolute
    monkeypatch.delenv("SONOTYPE_BACKBONES", raising=False)
    with pytest.raises(ConfigError, match=r"SONOTYPE_BACKBONES is not set"):
        resolve_backbone("whisper-base")
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path / "encoders"))
    assert resolve_backbone("whisper-base") == str(enc.resolve())
    assert resolve_backbone("openai/whisper-base") == "openai/whisper-base"
    with pytest.raises(ConfigError, match="not found"):
        resolve_backbone("no-such-encoder")


def test_switch_from_a_scratch_recipe_notes_every_change():
    plain = load_config(recipe_path("ravdess-cnn1d")).to_dict()
    out, notes = switch_to_backbone(plain, "/enc")
    text = "\n".join(notes)
    for what in ("model cnn1d-bn", "model.ensemble 2 -> 1", "prior_correction", "augment (", "features block",
                 "representation block", "train ("):
        assert what in text, (what, text)
    cfg = load_config(None, ["corpus.root=/x"], base=out)
    assert (cfg.backbone.model, cfg.backbone.layer, cfg.backbone.pooling) == ("/enc", "all", "meanstd")
    assert (cfg.model.name, cfg.model.params, cfg.model.ensemble, cfg.model.prior_correction) == (
        "layer-weighted-mlp", {"hidden": [256], "dropout": 0.3}, 1, False)
    assert cfg.augment.copies == 0 and cfg.augment.mixup_alpha == 0 and cfg.augment.spec_time_masks == 0
    assert cfg.train.lr == BACKBONE_HEAD["train"]["lr"] and cfg.protocol.k == 4  # the protocol is kept
    check_backbone_run(cfg)
    # a recipe already set up for the encoder needs no note
    again, notes2 = switch_to_backbone(load_config(recipe_path("ravdess-whisper")).to_dict(), "/enc")
    assert notes2 == [] and again["backbone"]["batch_size"] == 8


def test_mismatched_backbone_model_is_refused_before_extraction(tmp_path, monkeypatch):
    import sonotype.pipeline.experiment as ex

    def boom(*a, **k):
        raise AssertionError("extraction started")

    monkeypatch.setattr(ex, "build_run_dataset", boom)
    enc = tmp_path / "enc"
    enc.mkdir()
    root = generate_demo(tmp_path / "demo", seed=0, n_speakers=2, takes=1, seconds=0.5)
    base = [f"corpus.root={root}", "corpus.name=demo"]
    cfg = load_config(recipe_path("ravdess-cnn1d"), [*base, "augment.copies=0", f"backbone={{model: {enc}, layer: all}}"])
    with pytest.raises(ConfigError, match="cannot read"):
        run_experiment(cfg, tmp_path / "r1", progress=False)
    cfg = load_config(recipe_path("ravdess-whisper"), [*base, f"backbone.model={enc}", "augment.copies=2"])
    with pytest.raises(ConfigError, match=r"augment\.copies"):
        run_experiment(cfg, tmp_path / "r2", progress=False)
    cfg = load_config(recipe_path("ravdess-whisper"), [*base, "backbone.model=not-here"])
    with pytest.raises(ConfigError, match="backbone 'not-here' not found"):
        run_experiment(cfg, tmp_path / "r3", progress=False)


def test_plain_train_uses_the_kind_default_and_records_it(tmp_path):
    root = generate_demo(tmp_path / "demo", seed=0, n_speakers=3, takes=2, seconds=1.0)
    res = runner.invoke(app, ["train", "--corpus", "demo", "--root", str(root), "--out", str(tmp_path / "run"),
                              "--set", f"cache_dir={tmp_path / 'cache'}", *FAST])
    assert res.exit_code == 0, res.output
    assert "configuration: default for sounds" in res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config_source"] == "default for sounds"
    assert metrics["recipe"] == "default-sounds" and metrics["model"] == "logreg"
    res = runner.invoke(app, ["train", "--corpus", "demo", "--root", str(root), "--out", str(tmp_path / "k"),
                              "--kind", "speech", "--quiet", "--json", *FAST,
                              "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "features.features=[mfcc]"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["config_source"] == "default for speech"
    res = _cli("train", "--corpus", "demo", "--root", str(root), "--out", str(tmp_path / "m"), "--model", "mlp",
               "--kind", "speech")
    assert res.returncode == 2 and "--kind" in res.stderr and "Traceback" not in res.stderr


def test_bad_backbone_is_one_line_before_any_work(tmp_path):
    res = _cli("run", "ravdess-best", "--root", str(tmp_path), "--out", str(tmp_path / "r"),
               "--backbone", str(tmp_path / "missing-encoder"))
    assert res.returncode == 2, res.stderr
    assert "backbone" in res.stderr and "not found" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_backbone_flag_end_to_end_with_a_tiny_encoder(tmp_path):
    from test_backbones import _tiny_models

    enc = _tiny_models(tmp_path / "enc")["whisper"]
    root = generate_demo(tmp_path / "demo", seed=0, n_speakers=3, takes=2, seconds=1.0)
    res = runner.invoke(app, ["train", "--corpus", "demo", "--root", str(root), "--out", str(tmp_path / "run"),
                              "--backbone", str(enc), "--set", f"cache_dir={tmp_path / 'cache'}",
                              "--set", "train.max_epochs=3", "--set", "evaluate.bootstrap=0"])
    assert res.exit_code == 0, res.output
    # It starts from the encoder default of its kind, so no from-scratch setting needs replacing.
    assert "note --backbone" not in res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config_source"] == f"default for sounds with a pretrained encoder, switched to backbone {enc}"
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.backbone.model == str(Path(enc).resolve()) and saved.model.name == "layer-weighted-mlp"


def test_plain_train_uses_the_encoder_found_on_this_machine(tmp_path, monkeypatch):
    import shutil

    from test_backbones import _tiny_models

    enc = _tiny_models(tmp_path / "enc")["whisper"]
    shutil.copytree(enc, tmp_path / "models" / "whisper-base")
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path / "models"))
    root = generate_demo(tmp_path / "demo", seed=0, n_speakers=3, takes=2, seconds=1.0)
    common = ["--corpus", "demo", "--root", str(root), "--kind", "speech", "--set", f"cache_dir={tmp_path / 'cache'}",
              "--set", "train.max_epochs=2", "--set", "evaluate.bootstrap=0", "--set", "evaluate.baseline=false"]
    res = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    found = (tmp_path / "models" / "whisper-base").resolve()
    assert metrics["config_source"] == (f"default for speech with a pretrained encoder (whisper-base found at {found}; "
                                        "--scratch for the default for speech)")
    assert metrics["representation"] == "backbone"
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.backbone.model == str(found) and saved.model.name == "layer-weighted-mlp"
    res = runner.invoke(app, ["train", *common, "--scratch", "--backbone", str(enc), "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "--scratch and --backbone contradict" in str(res.exception)
    no_kind = [a for a in common if a not in ("--kind", "speech")]
    res = runner.invoke(app, ["train", *no_kind, "--scratch", "--model", "mlp", "--out", str(tmp_path / "y")])
    assert isinstance(res.exception, ConfigError) and "--scratch chooses a default" in str(res.exception)
