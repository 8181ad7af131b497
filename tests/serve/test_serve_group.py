"""``POST /v1/classify-group``: one speaker's clips standardised together, as ``predict_group``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sonotype.pipeline.mixed import load_mixed
from sonotype.serve import create_app
from test_mixed import _two_folder_corpora
from test_serve import _check_error, _wav_bytes, clf, client, model_files  # noqa: F401


@pytest.fixture(scope="module")
def speaker_model(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model trained with per-speaker standardisation, and one speaker's clips."""
    from sonotype import AudioClassifier
    from sonotype.inference.predict import load_model

    tmp = tmp_path_factory.mktemp("group")
    m, _ = load_mixed(_two_folder_corpora(tmp))
    est = AudioClassifier(features={"features": ["mfcc"], "n_mfcc": 13, "sr": 16000, "n_fft": 512, "hop_length": 256},
                          model="mlp-small", train={"max_epochs": 10, "patience": None, "num_threads": 1},
                          normalize="speaker", cache_dir=str(tmp / "cache"))
    est.fit(m)
    est.save(tmp / "model")
    clips = [Path(c.path) for c in m.clips if c.group == "a:spk2"]
    assert len(clips) >= 3
    return load_model(tmp / "model"), clips


def _parts(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (p.name, p.read_bytes(), "audio/wav")) for p in paths]


def test_group_is_standardised_together_as_predict_group(speaker_model) -> None:
    model, clips = speaker_model
    api = TestClient(create_app(model))
    r = api.post("/v1/classify-group", files=_parts(clips))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["n_files"] == len(clips) and d["normalised_together"] is True
    assert d["normalisation"] == f"standardised together per speaker ({len(clips)} clips)"
    assert [p["filename"] for p in d["predictions"]] == [p.name for p in clips]
    want = model.predict_group(clips)
    for got, w in zip(d["predictions"], want, strict=True):
        assert got["label"] == w.label and "path" not in got
        np.testing.assert_allclose([got["probabilities"][lab] for lab in model.labels],
                                   [w.probabilities[lab] for lab in model.labels], atol=1e-6)
    # together differs from one clip at a time (the training average), which is what the route is for
    alone = [api.post("/v1/classify", files=dict([_parts([p])[0]])).json()["probabilities"] for p in clips]
    assert max(abs(a[lab] - g["probabilities"][lab]) for a, g in zip(alone, d["predictions"], strict=True)
               for lab in model.labels) > 1e-3
    # one clip: too few for statistics of its own, and the answer says so
    one = api.post("/v1/classify-group", files=_parts(clips[:1])).json()
    assert one["normalised_together"] is False and "average statistics" in one["normalisation"]
    np.testing.assert_allclose([one["predictions"][0]["probabilities"][lab] for lab in model.labels],
                               [alone[0][lab] for lab in model.labels], atol=1e-6)


def test_group_without_normalisation_equals_single_calls(client: TestClient, model_files) -> None:  # noqa: F811
    paths = model_files[1][:3]
    r = client.post("/v1/classify-group", files=_parts(paths))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["normalised_together"] is False and "each clip classified alone" in d["normalisation"]
    for p, got in zip(paths, d["predictions"], strict=True):
        one = client.post("/v1/classify", files={"file": (p.name, p.read_bytes(), "audio/wav")}).json()
        assert got["label"] == one["label"]
        for lab, v in one["probabilities"].items():
            assert got["probabilities"][lab] == pytest.approx(v, abs=1e-6)


def test_group_errors_name_the_file(client: TestClient, model_files) -> None:  # noqa: F811
    good = model_files[1][0]
    _check_error(client.post("/v1/classify-group", content=good.read_bytes()), 400, "missing_file")
    _check_error(client.post("/v1/classify-group", files={"other": ("x.wav", good.read_bytes(), "audio/wav")}),
                 400, "missing_file")
    body = _check_error(client.post("/v1/classify-group", files=[*_parts([good]), ("file", ("e.wav", b"", "audio/wav"))]),
                        400, "empty_body")
    assert "e.wav" in body["detail"]
    body = _check_error(client.post("/v1/classify-group",
                                    files=[*_parts([good]), ("file", ("notes.txt", b"not audio at all" * 50, "text/plain"))]),
                        415, "unsupported_audio")
    assert "(file notes.txt)" in body["detail"] and "sonotype-upload-" not in body["detail"]
    body = _check_error(client.post("/v1/classify-group",
                                    files=[*_parts([good]), ("file", ("tiny.wav", _wav_bytes(np.zeros(10)), "audio/wav"))]),
                        422, "invalid_audio")
    assert "tiny.wav" in body["detail"]
