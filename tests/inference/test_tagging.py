"""Tagging without training: Tagger, `sonotype tag`, on tiny random encoders and on the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import tiny_tagger
from sonotype.backbones import efficientat as E
from sonotype.cli import app
from sonotype.errors import AudioError, ModelError, ParameterError
from sonotype.inference.tagging import Tagger

LABELS = ["Speech", "Music", "Dog", "Bell", "Rain"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tagger(tmp_path_factory.mktemp("tagger"), LABELS, weight_sd=0.5)


def _noise(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * sr)).astype(np.float32)


def test_clip_tags_are_the_encoders_probabilities_ranked(tiny: Path) -> None:
    tagger = Tagger.load(str(tiny))
    y = _noise(3.0)
    p = E.load(tiny).embed(y, 16000)["probabilities"]
    res = tagger.tag(y, 16000, top=3)
    want = [LABELS[i] for i in np.argsort(-p, kind="stable")[:3]]
    assert [lab for lab, _ in res.tags] == want
    np.testing.assert_allclose([q for _, q in res.tags], np.sort(p)[::-1][:3], rtol=1e-5)
    assert res.duration == pytest.approx(3.0) and res.windows == []


def test_windows_cover_the_clip_and_the_clip_is_their_mean(tiny: Path) -> None:
    tagger = Tagger.load(str(tiny))
    y = _noise(5.0, seed=1)
    res = tagger.tag(y, 16000, top=len(LABELS), window=2.0, hop=1.0)
    assert [(w.start, w.end) for w in res.windows] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0)]
    mean = np.mean([tagger.probabilities(y[s * 16000 : (s + 2) * 16000], 16000) for s in range(4)], axis=0)
    got = dict(res.tags)
    np.testing.assert_allclose([got[lab] for lab in LABELS], mean, rtol=1e-5)


@pytest.mark.parametrize(("kw", "match"), [
    ({"top": 0}, "top must be"), ({"top": 101}, "top must be"), ({"hop": 1.0}, "hop=1.0 given without window"),
    ({"window": 0.0}, "window"), ({"window": 1e-4, "max_windows": 50}, "windows; at most 50"),
])
def test_bad_settings_are_one_clear_error(tiny: Path, kw: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        Tagger.load(str(tiny)).tag(_noise(1.0), 16000, **kw)


def test_a_folder_that_is_no_tagging_encoder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (tmp_path / "x" / "preprocessor_config.json").write_text("{}")
    (tmp_path / "x" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="not a tagging encoder"):
        Tagger.load(str(tmp_path / "x"))


def test_cli_json_has_the_documented_shape(tiny: Path, tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, _noise(2.0), 16000)
    res = CliRunner().invoke(app, ["tag", str(wav), str(tmp_path / "missing.wav"), "--encoder", str(tiny),
                                   "--top", "2", "--json"])
    assert isinstance(res.exception, AudioError) and "missing.wav" in str(res.exception)  # before any work
    res = CliRunner().invoke(app, ["tag", str(wav), "--encoder", str(tiny), "--top", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["encoder"] == "tiny-tagger" and doc["errors"] == []
    (r,) = doc["results"]
    assert r["path"] == str(wav) and [set(t) for t in r["tags"]] == [{"label", "probability"}] * 2
    assert r["tags"][0]["probability"] >= r["tags"][1]["probability"]


@pytest.mark.realdata
@pytest.mark.parametrize(("encoder", "clip", "expected"), [
    ("efficientat-mn04", "esc50/audio/4-181955-A-3.flac", {"Cattle, bovinae", "Moo"}),
    ("efficientat-mn04", "esc50/audio/4-158653-A-32.flac", {"Computer keyboard", "Typing"}),
    ("musicnn-msd", "gtzan/genres_original/metal/metal.00000.wav", {"metal", "heavy metal"}),
    ("musicnn-msd", "gtzan/genres_original/jazz/jazz.00011.wav", {"jazz"}),
])
def test_real_encoders_name_known_clips(real_encoders: Path, shared_data: Path, encoder: str, clip: str,
                                        expected: set[str]) -> None:
    res = Tagger.load(str(real_encoders / encoder)).tag(shared_data / clip, top=3)
    assert expected & {lab for lab, _ in res.tags}, res.tags
