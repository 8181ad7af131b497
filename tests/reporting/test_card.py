"""Model cards and licences: written from the run's records, valid YAML front matter, clean Markdown."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import data_dir
from sonotype.corpora.base import CORPORA
from sonotype.corpora.demo import generate_demo
from sonotype.corpora.licensing import corpus_licence, run_licences
from sonotype.corpora.registry import get_loader
from sonotype.errors import ParameterError
from sonotype.pipeline.config import load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import recipe_path
from sonotype.reporting.card import render_card
from sonotype.utils.licences import (
    CC_BY_NC_ND_4_0,
    CC_BY_NC_SA_4_0,
    MIT,
    UNKNOWN,
    Licence,
    combine,
    encoder_licence,
    parse_licence,
    register_encoder_licence,
)

markdown = pytest.importorskip("markdown")

FAST = ["train.max_epochs=10", "train.num_threads=1", "evaluate.bootstrap=100", "model.name=mlp-small",
        "model.params={}"]


def _front(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def _html(body: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return markdown.markdown(body, extensions=["tables", "fenced_code"])


def _check_card(run: Path) -> tuple[dict, str]:
    """The card's front matter and body, with its figures checked against metrics.json."""
    metrics = json.loads((run / "metrics.json").read_text())
    card = (run / "model" / "README.md").read_text()
    fm, body = _front(card)
    assert fm["library_name"] == "sonotype" and "audio-classification" in fm["tags"]
    values = {m["type"]: m["value"] for m in fm["model-index"][0]["results"][0]["metrics"]}
    assert values == {"balanced_accuracy": round(metrics["balanced_accuracy"], 4),
                      "accuracy": round(metrics["accuracy"], 4), "f1": round(metrics["macro_f1"], 4)}
    assert fm["model-index"][0]["results"][0]["dataset"]["args"]["protocol"] == metrics["protocol"]
    ci = metrics["bootstrap_ci"]
    for key, title in (("balanced_accuracy", "Balanced accuracy"), ("accuracy", "Accuracy"), ("macro_f1", "Macro-F1")):
        row = next(line for line in body.splitlines() if line.startswith(f"| {title} |"))
        assert f"| {metrics[key]:.3f} | {ci[key][0]:.3f} - {ci[key][1]:.3f} |" in row
    for label, counts in zip(metrics["labels"], metrics["confusion"]):
        assert f"| **{label}** | " + " | ".join(map(str, counts)) + " |" in body
    html = _html(body)
    assert "<table>" in html and "<h2>Confusion matrix</h2>" in html
    return fm, body


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("card")
    root = generate_demo(base / "corpus", seed=0, n_speakers=3, takes=4, seconds=1.0)
    cfg = load_config(recipe_path("demo"), [f"corpus.root={root}", f"cache_dir={base / 'cache'}", *FAST])
    run_experiment(cfg, base / "run", progress=False)
    return base / "run"


def test_demo_card_from_the_runs_records(demo_run: Path) -> None:
    fm, body = _check_card(demo_run)
    assert fm["license"] == "cc0-1.0" and fm["datasets"] == ["demo"]
    meta = json.loads((demo_run / "model" / "model.json").read_text())
    assert meta["licences"]["license"] == "cc0-1.0" and meta["format_version"] == 2
    assert "baseline (same folds)" in body and "## Known limits" in body
    assert meta["files"]["weights.safetensors"] in body  # the weights' digest


def test_card_of_a_python_save_has_no_run_figures(tmp_path: Path) -> None:
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.inference.modelio import save_model
    from sonotype.models.registry import build_model

    d = save_model(tmp_path / "m", network=build_model("mlp-small", (2,), 2, seed=0), labels=["a", "b"],
                   feature_config=FeatureConfig(sr=8000, features=["rms", "centroid"]),
                   representation=RepresentationConfig())
    fm, body = _front((d / "README.md").read_text())
    assert fm["license"] == "other" and "model-index" not in fm
    assert "licence unknown for unknown data" in body and "No evaluation is recorded" in body
    _html(body)


def test_speaker_step_is_described(demo_run: Path) -> None:
    meta = json.loads((demo_run / "model" / "model.json").read_text())
    meta["extra"]["normalize"] = {"by": "speaker", "min_clips": 2}
    _, body = _front(render_card(meta))
    assert "## Speaker step" in body and "--same-speaker" in body


def test_every_corpus_declares_a_licence() -> None:
    get_loader("folder")  # imports every corpus module
    for name in CORPORA:
        lic = corpus_licence(name)
        assert isinstance(lic, Licence) and (lic.spdx or lic.url or name == "folder"), name
    assert corpus_licence("ravdess").id == "CC-BY-NC-SA-4.0" and corpus_licence("tess").id == "CC-BY-NC-ND-4.0"
    assert corpus_licence("gtzan").commercial is False and corpus_licence("folder") == UNKNOWN
    assert corpus_licence("folder", {"licence": "CC-BY-4.0"}).id == "CC-BY-4.0"
    with pytest.raises(ParameterError, match="SPDX id"):
        parse_licence("cc by maybe")


def test_combined_licence_rule() -> None:
    nc = combine([("data", "RAVDESS", CC_BY_NC_SA_4_0), ("encoder", "whisper-base", encoder_licence("whisper-base"))])
    assert nc.license == "cc-by-nc-sa-4.0" and nc.commercial is False
    assert nc.effect == "non-commercial use only: trained on RAVDESS (CC BY-NC-SA 4.0)."
    both = combine([("data", "RAVDESS", CC_BY_NC_SA_4_0), ("data", "TESS", CC_BY_NC_ND_4_0)])
    assert both.license == "other" and both.license_name == "RAVDESS: CC BY-NC-SA 4.0; TESS: CC BY-NC-ND 4.0"
    assert "no derivatives" in both.effect
    assert combine([("encoder", "whisper", MIT)]).license == "mit"
    assert combine([]).license == "other" and combine([]).commercial is None
    register_encoder_licence("toy-encoder", MIT)
    assert encoder_licence("org/toy-encoder-small") == MIT


def test_run_licences_of_a_backbone_run() -> None:
    cfg = load_config(recipe_path("demo"), ["corpus.name=ravdess", "corpus.root=/nowhere"])
    object.__setattr__(cfg, "backbone", type("B", (), {"model": "openai/whisper-base"})())
    lic = run_licences(cfg)
    assert [(r, n, x.id) for r, n, x in lic.inputs] == [("data", "RAVDESS", "CC-BY-NC-SA-4.0"),
                                                        ("encoder", "openai/whisper-base", "MIT")]


def test_cli_corpus_show_and_backbone_list_print_licences(demo_run: Path) -> None:
    from sonotype.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["corpus", "show", "demo", str(demo_run.parent / "corpus"), "--json", "--no-headers"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["licence"]["id"] == "CC0-1.0"
    res = runner.invoke(app, ["backbone", "list", "--json"], env={**os.environ, "COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r["licence"] for r in json.loads(res.stdout)["backbones"]}
    assert rows["whisper-base"] == "MIT"


@pytest.mark.realdata
def test_ravdess_run_card_is_non_commercial(tmp_path: Path) -> None:
    src = data_dir("ravdess")
    root = tmp_path / "ravdess"
    root.mkdir()
    for actor in ("Actor_01", "Actor_02", "Actor_03"):  # a couple of actors: a quick run
        (root / actor).mkdir()
        for f in (src / actor).iterdir():
            (root / actor / f.name).symlink_to(f)
    cfg = load_config(recipe_path("demo"), [
        "corpus.name=ravdess", f"corpus.root={root}", "corpus.ops=[{keep: [neutral, happy, sad, angry]}]",
        f"cache_dir={tmp_path / 'cache'}", "features.features=[rms, mfcc]", "features.sr=16000", *FAST])
    run_experiment(cfg, tmp_path / "run", progress=False)
    fm, body = _check_card(tmp_path / "run")
    assert fm["license"] == "cc-by-nc-sa-4.0" and fm["datasets"] == ["RAVDESS"]
    assert "non-commercial use only: trained on RAVDESS (CC BY-NC-SA 4.0)" in body
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["licences"]["inputs"][0]["licence"]["id"] == "CC-BY-NC-SA-4.0"
