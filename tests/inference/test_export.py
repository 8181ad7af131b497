"""ONNX export: onnxruntime gives PyTorch's probabilities (within 1e-4) on real feature items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sonotype
from sonotype.errors import ModelError
from test_serve import tiny_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sonotype.inference.export import OnnxClassifier, export_onnx, load_onnx_classifier, verify_onnx  # noqa: E402


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(model_files, tmp_path_factory) -> Path:
    return export_onnx(model_files[0], tmp_path_factory.mktemp("onnx") / "model.onnx")


def _real_items(clf, files: list[Path]) -> np.ndarray:
    out = []
    for f in files:
        y, sr = sonotype.audio.load(f, sr=clf.feature_config.sr)
        out.append(clf.items(y, sr, path=str(f)))
    return np.concatenate(out)


def test_onnx_matches_pytorch_on_real_items(model_files, exported) -> None:
    clf = sonotype.load_model(model_files[0])
    X = _real_items(clf, model_files[1])
    assert X.shape == (5, *clf.architecture["input_shape"])
    sess = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": X})[0]
    want = clf.forward_items(X)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # Dynamic batch axis: one item and many items.
    np.testing.assert_allclose(sess.run(None, {"features": X[:1]})[0], want[:1], atol=1e-4, rtol=0)
    big = np.repeat(X, 7, axis=0)
    assert sess.run(None, {"features": big})[0].shape == (35, len(clf.labels))
    assert verify_onnx(clf, exported, X) < 1e-4


def test_onnx_graph_metadata_and_io(model_files, exported) -> None:
    clf = sonotype.load_model(model_files[0])
    m = onnx.load(str(exported))
    onnx.checker.check_model(m)
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["sonotype.labels"]) == clf.labels
    assert meta["sonotype.model_id"] == clf.model_id
    assert meta["sonotype.sample_rate"] == str(clf.feature_config.sr)
    (inp,) = m.graph.input
    assert inp.name == "features"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == clf.architecture["input_shape"]


def test_onnx_classifier_predicts_like_pytorch(model_files, exported) -> None:
    clf = sonotype.load_model(model_files[0])
    oc = load_onnx_classifier(model_files[0], exported)
    assert isinstance(oc, OnnxClassifier) and isinstance(oc, sonotype.inference.predict.Classifier)
    assert oc.labels == clf.labels and oc.model_id == clf.model_id
    for f in model_files[1]:
        a, b = clf.predict(f, window=0.5, hop=0.25), oc.predict(f, window=0.5, hop=0.25)
        assert a.label == b.label
        assert [s.label for s in a.segments] == [s.label for s in b.segments]
        for lab in clf.labels:
            assert a.probabilities[lab] == pytest.approx(b.probabilities[lab], abs=1e-4)


@pytest.mark.parametrize(("model", "kind", "window"), [("cnn1d-bn", "windows", 0.5), ("cnn-bn", "logmel", 0.5)])
def test_sequence_models_export_with_their_scaler_axis(model, kind, window, model_files, tmp_path: Path) -> None:
    """(T, F) and (F, T) inputs: the scaler is folded along the right axis (untrained weights suffice)."""
    from sonotype.corpora.registry import load_corpus
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.extract import build_dataset
    from sonotype.features.scaling import Standardizer
    from sonotype.inference.modelio import save_model
    from sonotype.models.registry import build_model

    torch.manual_seed(0)
    heldout = model_files[1][0].parents[1]
    clips = load_corpus("demo", heldout).clips
    feats = ["logmel"] if kind == "logmel" else ["mfcc", "centroid"]
    fc = FeatureConfig(sr=16000, n_fft=512, hop_length=256, n_mels=32, n_mfcc=13, features=feats, tuning=0.0)
    rc = RepresentationConfig(kind=kind, window=window, hop=window)
    ds = build_dataset(clips, fc, rc, progress=False)
    scaler = Standardizer(feature_axis=1 if kind == "logmel" else -1).fit(ds.X)
    net = build_model(model, tuple(ds.X.shape[1:]), len({c.label for c in clips}))
    labels = sorted({c.label for c in clips})
    save_model(tmp_path / "m", network=net, labels=labels, feature_config=fc, representation=rc, scaler=scaler)
    clf = sonotype.load_model(tmp_path / "m")
    path = export_onnx(clf, tmp_path / "m.onnx")
    diff = verify_onnx(clf, path, ds.X)
    assert diff < 1e-4


def test_export_cli(model_files, tmp_path: Path) -> None:
    from sonotype.cli import app

    out = tmp_path / "sub" / "cli.onnx"
    r = CliRunner().invoke(app, ["export", str(model_files[0]), "--onnx", str(out)])
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.stat().st_size > 1000
    assert "matches PyTorch" in r.output
    r = CliRunner().invoke(app, ["export", str(tmp_path / "missing"), "--onnx", str(out)])
    assert isinstance(r.exception, ModelError)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_classifier_refuses_bad_files(model_files, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_onnx_classifier(model_files[0], tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="not a loadable ONNX"):
        load_onnx_classifier(model_files[0], junk)
    # A graph for another input shape is refused instead of failing at prediction time.
    other = torch.nn.Sequential(torch.nn.Linear(3, 5))
    torch.onnx.export(other, (torch.zeros(1, 3),), str(tmp_path / "other.onnx"), dynamo=False,
                      input_names=["features"], output_names=["probabilities"])
    with pytest.raises(ModelError, match="input shape"):
        load_onnx_classifier(model_files[0], tmp_path / "other.onnx")
