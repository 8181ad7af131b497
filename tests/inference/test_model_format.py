"""The model format: fixtures of every supported version load and predict as when they were saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import sonotype
from sonotype.errors import ModelError
from sonotype.inference.modelio import FORMAT_VERSION, MODEL_JSON, SUPPORTED_VERSIONS, read_model_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
SR = 8000


def _signal() -> np.ndarray:  # the same as make_fixtures.signal()
    t = np.arange(SR // 2) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)


def test_every_supported_version_has_a_fixture() -> None:
    assert sorted(int(p.name[1:]) for p in FIXTURES.glob("v*") if p.is_dir()) == list(SUPPORTED_VERSIONS)
    assert max(SUPPORTED_VERSIONS) == FORMAT_VERSION
    assert sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file()) < 100_000  # small, as promised


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_fixture_loads_and_predicts_as_saved(version: int) -> None:
    torch.set_num_threads(1)
    folder = FIXTURES / f"v{version}"
    meta, _ = read_model_dir(folder)
    assert meta["format_version"] == version
    expected = json.loads((folder / "expected.json").read_text())
    clf = sonotype.load_model(folder)
    np.testing.assert_allclose(clf.forward_items(np.asarray(expected["X"], np.float32)), expected["proba"],
                               rtol=0, atol=1e-6)
    got = clf.predict(_signal(), SR).probabilities
    assert got == pytest.approx(expected["signal_probabilities"], abs=1e-5)
    assert (clf.info()["licences"] is None) == (version == 1)  # version 1 carried no licences


def test_unknown_future_version_is_refused_in_one_line(tmp_path: Path) -> None:
    d = shutil.copytree(FIXTURES / f"v{FORMAT_VERSION}", tmp_path / "future")
    meta = json.loads((d / MODEL_JSON).read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (d / MODEL_JSON).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"unknown format_version {FORMAT_VERSION + 1}") as err:
        sonotype.load_model(d)
    assert "\n" not in str(err.value)


def test_version_1_with_licences_is_refused(tmp_path: Path) -> None:
    d = shutil.copytree(FIXTURES / "v1", tmp_path / "v1")
    meta = json.loads((d / MODEL_JSON).read_text())
    meta["licences"] = json.loads((FIXTURES / "v2" / MODEL_JSON).read_text())["licences"]
    (d / MODEL_JSON).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"unexpected key\(s\) \['licences'\] for format_version 1"):
        sonotype.load_model(d)
