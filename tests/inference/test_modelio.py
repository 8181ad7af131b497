"""Safe model files: round trip in a fresh process, strict schema, no pickle ever."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sonotype
from sonotype.errors import ModelError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.scaling import Standardizer
from sonotype.inference.modelio import (
    FORMAT_VERSION,
    MODEL_JSON,
    SCALER_FILE,
    WEIGHTS_FILE,
    read_model_dir,
    save_model,
)
from sonotype.models.apply import predict_proba
from sonotype.models.registry import build_model
from sonotype.training.config import TrainConfig
from sonotype.training.train import fit
from sonotype.utils.io import file_digest

LABELS = ["low", "mid", "high"]


def _tiny(tmp_path: Path, name: str = "model") -> tuple[Path, np.ndarray, np.ndarray, torch.nn.Module, Standardizer]:
    """Train a small registry MLP a few epochs on separable synthetic stats vectors; save it."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = (rng.normal(size=(120, 8)) + y[:, None] * 2.0 + 5.0).astype(np.float32)
    scaler = Standardizer().fit(X)
    net = build_model("mlp-small", (8,), 3, seed=0)
    fit(net, scaler.transform(X), y, config=TrainConfig(max_epochs=5, batch_size=32, patience=None), n_classes=3,
        progress=False)
    fc = FeatureConfig(sr=16000, features=["mfcc"], n_mfcc=4)
    rc = RepresentationConfig(kind="stats", stats=["mean", "std"])
    dest = save_model(tmp_path / name, network=net, labels=LABELS, feature_config=fc, representation=rc,
                      scaler=scaler, metrics={"accuracy": 0.9})
    return dest, X, y, net, scaler


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    return _tiny(tmp_path_factory.mktemp("m"))


def test_layout_and_json(saved):
    dest, *_ = saved
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", MODEL_JSON, SCALER_FILE, WEIGHTS_FILE]
    meta = json.loads((dest / MODEL_JSON).read_text())
    assert meta["format"] == "sonotype-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["labels"] == LABELS
    assert meta["architecture"]["name"] == "mlp-small" and meta["architecture"]["input_shape"] == [8]
    assert meta["features"]["sr"] == 16000 and meta["representation"]["stats"] == ["mean", "std"]
    assert meta["scaler"] is not None and meta["metrics"] == {"accuracy": 0.9} and meta["backbone"] is None


def test_architecture_saved_with_resolved_params(saved, tmp_path: Path):
    _, _, _, net, _ = saved
    meta = json.loads((saved[0] / MODEL_JSON).read_text())
    assert meta["architecture"]["params"]["hidden"] == [64, 32, 16]  # preset resolved, not {}
    arch = {"name": "mlp", "input_shape": [8], "n_classes": 3, "params": {}}
    with pytest.raises(ModelError, match="name='mlp' disagrees"):
        save_model(tmp_path / "x", network=net, architecture=arch, labels=LABELS, feature_config=FeatureConfig(),
                   representation=RepresentationConfig())


def test_round_trip_same_process(saved):
    dest, X, _, net, scaler = saved
    meta, tensors = read_model_dir(dest)
    for k, v in net.state_dict().items():
        assert torch.equal(tensors["network"][k], v), k
    clf = sonotype.load_model(dest)
    np.testing.assert_array_equal(clf.forward_items(X), predict_proba(net, scaler.transform(X)))
    # RUN_DIR/model is named after the run, plus the weights' digest
    assert clf.model_id == f"{dest.parent.name}-{meta['files'][WEIGHTS_FILE][:8]}"
    assert not clf.network.training


def test_round_trip_fresh_process(saved, tmp_path: Path):
    dest, X, _, net, scaler = saved
    np.save(tmp_path / "X.npy", X)
    expected = predict_proba(net, scaler.transform(X))
    # Bit-equal is promised for the same machine and thread count (a BLAS may split sums
    # differently with more threads), so the fresh process uses the 1 thread this one does.
    code = (
        "import sys, numpy as np, torch, sonotype\n"
        "torch.set_num_threads(1)\n"
        "m = sonotype.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], m.forward_items(np.load(sys.argv[2], allow_pickle=False)))\n"
        "print(m.labels)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(dest), str(tmp_path / "X.npy"), str(tmp_path / "P.npy")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(LABELS)
    np.testing.assert_array_equal(np.load(tmp_path / "P.npy", allow_pickle=False), expected)


def test_refuse_overwrite_without_force(saved, tmp_path: Path):
    _, _, _, net, scaler = saved
    kw = dict(network=net, labels=LABELS, feature_config=FeatureConfig(), representation=RepresentationConfig(),
              scaler=scaler)
    target = save_model(tmp_path / "m", **kw)
    before = (target / MODEL_JSON).read_text()
    with pytest.raises(ModelError, match="already exists"):
        save_model(target, **kw)
    assert (target / MODEL_JSON).read_text() == before
    save_model(target, **kw, metrics={"accuracy": 0.5}, force=True)
    assert json.loads((target / MODEL_JSON).read_text())["metrics"] == {"accuracy": 0.5}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit(d: Path, fn) -> None:
    meta = json.loads((d / MODEL_JSON).read_text())
    fn(meta)
    (d / MODEL_JSON).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=99), "unknown format_version 99"),
        (lambda m: m.update(format_version="1"), "unknown format_version '1'"),
        (lambda m: m.update(format="something-else"), "not a sonotype model"),
        (lambda m: m.update(run_code="__import__('os').system('true')"), r"unexpected key\(s\) \['run_code'\]"),
        (lambda m: m.update(labels="low,mid,high"), "'labels' must be list"),
        (lambda m: m.update(labels=["low", "low", "high"]), "distinct"),
        (lambda m: m["architecture"].update(n_classes=4), "n_classes=4 but 3 labels"),
        (lambda m: m["architecture"].update(hook="x"), "'architecture' must have keys"),
        (lambda m: m["features"].update(sr=-1), "invalid feature settings"),
        (lambda m: m["features"].update(evil=1), "invalid feature settings"),
        (lambda m: m.pop("scaler"), "missing key 'scaler'"),
        (lambda m: m.pop("licences"), "missing key 'licences'"),
        (lambda m: m.update(licences={"license": "mit"}), "invalid 'licences'"),
        (lambda m: m["files"].update({WEIGHTS_FILE: "0" * 32}), "does not match the digest"),
    ],
)
def test_bad_model_json_is_refused(saved, tmp_path: Path, edit, message):
    d = _copy(saved[0], tmp_path / "bad")
    _edit(d, edit)
    with pytest.raises(ModelError, match=message):
        sonotype.load_model(d)


def test_missing_files_are_named(saved, tmp_path: Path):
    with pytest.raises(ModelError, match="model directory not found"):
        read_model_dir(tmp_path / "nope")
    for name in (WEIGHTS_FILE, SCALER_FILE, MODEL_JSON):
        d = _copy(saved[0], tmp_path / f"no-{name}")
        (d / name).unlink()
        with pytest.raises(ModelError, match=f"missing model file {name}"):
            read_model_dir(d)
    d = _copy(saved[0], tmp_path / "badjson")
    (d / MODEL_JSON).write_text("{")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_model_dir(d)


class _Boom:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_loading_never_executes_pickles(saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = tmp_path / "PWNED"
    evil = pickle.dumps(_Boom(marker))
    d = _copy(saved[0], tmp_path / "evil")
    for name in ("weights.pt", "model.pt", "model.pkl", "scaler.pkl", "pytorch_model.bin"):
        (d / name).write_bytes(evil)

    def refuse(*a, **k):
        raise AssertionError("pickle/torch.load must never be used to load a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(np, "load", refuse)
    clf = sonotype.load_model(d)  # loads fine from safetensors + JSON alone
    assert clf.labels == LABELS
    assert not marker.exists()
    # a pickle posing as the weights file is refused, not run
    (d / WEIGHTS_FILE).write_bytes(evil)
    with pytest.raises(ModelError, match="digest"):
        sonotype.load_model(d)
    _edit(d, lambda m: m["files"].update({WEIGHTS_FILE: file_digest(d / WEIGHTS_FILE)}))
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        sonotype.load_model(d)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_architecture(saved, tmp_path: Path):
    d = _copy(saved[0], tmp_path / "arch")
    _edit(d, lambda m: m["architecture"]["params"].update(hidden=[32, 16, 8]))
    with pytest.raises(ModelError, match="do not fit architecture 'mlp-small'"):
        sonotype.load_model(d)
