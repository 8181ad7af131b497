"""One prediction path: every front end gives the same class probabilities for the same clip.

A small model is trained with :class:`sonotype.AudioClassifier` (a logistic regression on clip
statistics, and a small MLP on 1-s windows, so that a clip has several items to vote), saved,
and the same held-out clips are classified through

- ``AudioClassifier.predict_proba`` (the training dataset builder, then
  :meth:`Classifier.clip_probabilities`),
- ``load_model(dir).predict(path)`` (:class:`~sonotype.inference.predict.Classifier`),
- ``sonotype.inference.batch.predict_files`` (the per-file CSV, probabilities to 6 decimals),
- ``POST /v1/classify`` (the service's bounded, streamed decoding),
- the ``/v1/stream`` WebSocket with one window longer than the clip (the whole clip), and
  window by window against ``Classifier.predict(path, window=..., hop=...)``.

Every path must agree to 1e-5. The clips are resampled on the way (the demo corpus is written
at 22,050 Hz for a 16 kHz model; RAVDESS is 16 kHz for a 22,050 Hz model, two of its
held-out files are stereo), so the decoders and resamplers of every path are compared too.
The generated demo corpus runs everywhere; RAVDESS (``realdata``) when ../shared/data is there.

:func:`test_max_duration_cut_after_resampling`: a clip cut at ``features.max_duration`` is cut
at its own rate before resampling on every path (training, files, arrays).

One disagreement is known and kept visible as a strict xfail (it fails once fixed):

- :func:`test_fusion_members_at_other_rates` (real encoders): a fusion's training items load
  the clip at each encoder's own rate, the prediction path loads it at the highest member
  rate and resamples it again for the others.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import data_dir
from sonotype import AudioClassifier, audio, load_model
from sonotype.corpora.base import Clip
from sonotype.corpora.demo import generate_demo
from sonotype.corpora.registry import load_corpus
from sonotype.features.config import FeatureConfig
from sonotype.features.extract import extract_clip
from sonotype.features.frames import compute_frames
from sonotype.features.represent import prepare_signal
from sonotype.inference.batch import predict_files
from sonotype.inference.predict import Classifier
from sonotype.items.build import build_items
from sonotype.serve import create_app

TOL = 1e-5
FEATURES = {"n_fft": 512, "hop_length": 256, "features": ["rms", "centroid", "zcr", "mfcc"], "n_mfcc": 13}
MODELS = {
    # a fixed, weak regularisation: sharp probabilities, so that a difference in the items shows
    "logreg-stats": {"model": {"name": "logreg", "params": {"C": 10.0}},
                     "representation": {"kind": "stats", "stats": ["mean", "std"]}},
    "mlp-windows": {"model": "mlp-small", "representation": {"kind": "windows", "window": 1.0, "hop": 0.5},
                    "train": {"max_epochs": 8, "patience": None}},
}
RAVDESS_EMOTIONS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}


@dataclass
class Trained:
    est: AudioClassifier
    model_dir: Path
    clf: Classifier
    files: list[Path]  # held-out clips

    def reference(self) -> np.ndarray:
        """``load_model(dir).predict(path)`` of every held-out clip, columns in label order."""
        return np.array([[self.clf.predict(f).probabilities[lab] for lab in self.clf.labels] for f in self.files])


def _demo(root: Path) -> tuple[list[Path], list[str], list[str], list[Path], int]:
    generate_demo(root / "train", seed=0, n_speakers=2, takes=2, seconds=1.5, sr=22050)
    generate_demo(root / "heldout", seed=1, n_speakers=1, takes=1, seconds=2.2, sr=22050)
    clips = load_corpus("demo", root / "train").clips
    files = sorted((root / "heldout").rglob("*.wav"))
    return [Path(c.path) for c in clips], [c.label for c in clips], [c.group for c in clips], files, 16000


def _ravdess(root: Path) -> tuple[list[Path], list[str], list[str], list[Path], int]:
    base = data_dir("ravdess")

    def pick(actor: int, per_emotion: int) -> list[Path]:
        files = sorted((base / f"Actor_{actor:02d}").glob("*.flac"))
        return [f for e in RAVDESS_EMOTIONS for f in [g for g in files if g.name.split("-")[2] == e][:per_emotion]]

    train = [f for a in (2, 3, 4) for f in pick(a, 2)]  # 24 clips, 3 actors
    stereo = [base / "Actor_05/03-01-02-01-02-02-05.flac", base / "Actor_01/03-01-02-01-01-02-01.flac"]
    labels = [RAVDESS_EMOTIONS[f.name.split("-")[2]] for f in train]
    return train, labels, [f.parent.name for f in train], pick(5, 1) + stereo, 22050


@pytest.fixture(scope="module", params=[
    pytest.param(("demo", "logreg-stats"), id="demo-logreg"),
    pytest.param(("demo", "mlp-windows"), id="demo-mlp-windows"),
    pytest.param(("ravdess", "logreg-stats"), id="ravdess-logreg", marks=pytest.mark.realdata),
    pytest.param(("ravdess", "mlp-windows"), id="ravdess-mlp-windows", marks=pytest.mark.realdata),
])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    corpus, model = request.param
    root = tmp_path_factory.mktemp(f"paths-{corpus}-{model}")
    train, labels, groups, files, sr = (_demo if corpus == "demo" else _ravdess)(root)
    torch.set_num_threads(1)
    est = AudioClassifier(features={**FEATURES, "sr": sr}, seed=0, **MODELS[model])
    est.fit([str(f) for f in train], labels, groups=groups)
    model_dir = est.save(root / "model")
    clf = load_model(model_dir)
    assert clf.labels == [str(c) for c in est.classes_]
    return Trained(est, model_dir, clf, files)


def _ws_messages(ws, y: np.ndarray, chunk: int) -> list[dict]:
    for i in range(0, len(y), chunk):
        ws.send_bytes(y[i : i + chunk].astype("<f4").tobytes())
    ws.send_text("end")
    out = []
    while True:
        try:
            out.append(json.loads(ws.receive_text()))
        except WebSocketDisconnect as d:
            assert d.code == 1000, d.reason
            return out


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    diff = float(np.abs(got - want).max())
    assert diff <= TOL, f"{what} differs from load_model(dir).predict(path) by {diff:.3g}"


# ----------------------------------------------------------------------------- whole clips


def test_estimator_equals_the_saved_classifier(trained: Trained) -> None:
    want = trained.reference()
    _close(trained.est.predict_proba([str(f) for f in trained.files]), want, "AudioClassifier.predict_proba")
    in_memory = trained.est.classifier_  # the fitted pieces, before saving
    _close(np.array([[in_memory.predict(f).probabilities[lab] for lab in trained.clf.labels] for f in trained.files]),
           want, "AudioClassifier.classifier_.predict")
    assert list(trained.est.predict([str(f) for f in trained.files])) == [trained.clf.labels[i] for i in want.argmax(1)]


def test_batch_csv_equals_the_classifier(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    summary = predict_files(trained.model_dir, trained.files, out=out, progress=False)
    assert summary.written == len(trained.files) and not summary.errors
    with open(out, newline="", encoding="utf-8") as f:
        rows = {Path(r["path"]).resolve(): r for r in csv.DictReader(f)}
    got = np.array([[float(rows[p.resolve()][f"p_{lab}"]) for lab in trained.clf.labels] for p in trained.files])
    _close(got, trained.reference(), "predict_files (CSV)")


def test_rest_classify_equals_the_classifier(trained: Trained) -> None:
    c = TestClient(create_app(trained.clf))
    got = []
    for f in trained.files:
        r = c.post("/v1/classify", files={"file": (f.name, f.read_bytes(), "application/octet-stream")})
        assert r.status_code == 200, r.text
        got.append([r.json()["probabilities"][lab] for lab in trained.clf.labels])
    _close(np.array(got), trained.reference(), "POST /v1/classify")


def test_websocket_whole_clip_equals_the_classifier(trained: Trained) -> None:
    """One window longer than the clip: the stream's only window is the whole clip, sent at the
    file's own rate in 3,000-sample messages and resampled by the server."""
    c = TestClient(create_app(trained.clf))
    got = []
    for f in trained.files:
        y, sr = audio.load(f)
        with c.websocket_connect(f"/v1/stream?sr={sr}&window=25") as ws:
            (msg,) = _ws_messages(ws, y, 3000)
        assert msg["start"] == 0.0 and msg["end"] == pytest.approx(len(y) / sr, abs=2 / sr)
        got.append([msg["probabilities"][lab] for lab in trained.clf.labels])
    _close(np.array(got), trained.reference(), "/v1/stream (one window)")


# ----------------------------------------------------------------------------- windows


def test_windows_agree_over_stream_rest_and_batch(trained: Trained, tmp_path: Path) -> None:
    """``predict(path, window=1, hop=0.5)`` (a file read block by block) against the WebSocket, the
    REST timeline (``predict`` of the decoded array) and the batch row of the same settings."""
    clf = trained.clf
    c = TestClient(create_app(clf))
    predict_files(trained.model_dir, trained.files, out=tmp_path / "w.csv", window=1.0, hop=0.5, progress=False)
    with open(tmp_path / "w.csv", newline="", encoding="utf-8") as f:
        rows = {Path(r["path"]).resolve(): r for r in csv.DictReader(f)}
    for f in trained.files:
        want = clf.predict(f, window=1.0, hop=0.5)
        bounds = [(s.start, s.end) for s in want.segments]
        seg_want = np.array([[s.probabilities[lab] for lab in clf.labels] for s in want.segments])

        y, _ = audio.load(f, sr=clf.sample_rate)
        with c.websocket_connect(f"/v1/stream?sr={clf.sample_rate}&window=1&hop=0.5") as ws:
            live = _ws_messages(ws, y, 2048)
        assert [(m["start"], m["end"]) for m in live] == bounds
        _close(np.array([[m["probabilities"][lab] for lab in clf.labels] for m in live]), seg_want, "/v1/stream windows")

        r = c.post("/v1/classify?window=1&hop=0.5", content=f.read_bytes())
        assert r.status_code == 200, r.text
        rest = r.json()["segments"]
        assert [(s["start"], s["end"]) for s in rest] == bounds
        _close(np.array([[s["probabilities"][lab] for lab in clf.labels] for s in rest]), seg_want,
               "POST /v1/classify?window=1&hop=0.5")

        row = rows[f.resolve()]
        _close(np.array([float(row[f"p_{lab}"]) for lab in clf.labels]),
               np.array([want.probabilities[lab] for lab in clf.labels]), "predict_files --window 1 --hop 0.5")


# ----------------------------------------------------------------------------- the known disagreement


def test_max_duration_cut_after_resampling(tmp_path: Path) -> None:
    """The frames of a clip cut at ``max_duration``, as training extracts them and as prediction
    does. Measured: 24 RAVDESS clips (16 kHz) for a 22,050 Hz logistic regression (C=10) with
    ``max_duration: 2``: ``AudioClassifier.predict_proba`` and ``load_model(dir).predict`` differ
    by up to 0.021 in probability; without ``max_duration`` (the cases above) they agree to 1e-7."""
    generate_demo(tmp_path, seed=2, n_speakers=1, takes=1, seconds=3.0, sr=22050)
    path = sorted(tmp_path.rglob("*.wav"))[0]
    fc = FeatureConfig(sr=16000, max_duration=2.0, **FEATURES)
    train_side = extract_clip(Clip(str(path), "x", "g"), fc)  # what AudioClassifier / sonotype train extract
    y, _ = audio.load(path, sr=fc.sr, duration=fc.max_duration)  # how Classifier.predict reads a file
    predict_side = compute_frames(prepare_signal(y, fc.sr, fc), fc)
    np.testing.assert_allclose(train_side.values, predict_side.values, rtol=TOL, atol=TOL)
    native, native_sr = audio.load(path)  # an array at its own rate (predict(y, sr), AudioClassifier on arrays)
    array_side = compute_frames(prepare_signal(native, native_sr, fc), fc)
    np.testing.assert_allclose(train_side.values, array_side.values, rtol=TOL, atol=TOL)


@pytest.mark.realdata
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "a fusion of encoders at different rates: training items (sonotype/items/embeddings.py "
    "build_embedding_dataset -> _load_clip) load each clip at each encoder's own rate, while "
    "Classifier.predict loads it at FusedFeaturizer.sample_rate (the highest member rate, "
    "sonotype/backbones/runtime.py) and FusedFeaturizer.items resamples it again for the slower "
    "members: file -> 32 kHz -> 16 kHz is not file -> 16 kHz, and musicnn's pooled activations move "
    "by up to ~1 (582 of 2,090 fused columns beyond 1e-5 on ESC-50)."))
def test_fusion_members_at_other_rates(real_encoders: Path, shared_data: Path) -> None:
    """musicnn-msd (16 kHz) + efficientat-mn04 (32 kHz) on ESC-50 clips (22,050 Hz): the items
    the saved model's predict path makes must equal those its training made."""
    audio_dir = shared_data / "esc50" / "audio"
    files = [audio_dir / n for n in ("4-181955-A-3.flac", "4-158653-A-32.flac")]
    est = AudioClassifier(backbone={"model": [str(real_encoders / "musicnn-msd"), str(real_encoders / "efficientat-mn04")]},
                          model={"name": "logreg", "params": {"C": 10.0}}, seed=0)
    clf = est.fit([str(f) for f in files * 2], ["cow", "keyboard"] * 2).classifier_
    train_side = build_items([Clip(str(f), "x", "g") for f in files], backbone=est.config_.backbone).X
    predict_side = np.concatenate([clf.items(audio.load(f, sr=clf.sample_rate)[0], clf.sample_rate) for f in files])
    np.testing.assert_allclose(predict_side, train_side, rtol=TOL, atol=TOL)
