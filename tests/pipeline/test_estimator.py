"""sonotype.AudioClassifier: fit on paths / a Manifest / arrays, scikit-learn compatibility, save and reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

import sonotype
from sonotype import AudioClassifier
from sonotype.corpora.demo import CLASSES, generate_demo
from sonotype.corpora.registry import load_corpus
from sonotype.errors import AudioError, ConfigError, ParameterError
from sonotype.features.config import FeatureConfig

SR = 8000
FEATURES = {"sr": SR, "n_fft": 512, "hop_length": 256, "features": ["rms", "centroid", "mfcc"], "n_mfcc": 13,
            "n_mels": 40, "tuning": 0.0}
REPR = {"kind": "stats", "stats": ["mean", "std"]}
# One BLAS thread: these tiny networks are slower with more on a shared machine.
TRAIN = {"max_epochs": 12, "lr": 3e-3, "batch_size": 16, "num_threads": 1}


def _est(**kw) -> AudioClassifier:
    params = {"features": FEATURES, "representation": REPR, "model": "mlp-small", "train": TRAIN, **kw}
    return AudioClassifier(**params)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """60 generated clips: 5 classes x 3 speakers x 4 takes of 0.6 s at 8 kHz, and a feature cache."""
    root = generate_demo(tmp_path_factory.mktemp("demo"), n_speakers=3, takes=4, seconds=0.6, sr=SR)
    m = load_corpus("demo", root)
    cache = str(tmp_path_factory.mktemp("cache"))
    return m, [c.path for c in m.clips], np.array([c.label for c in m.clips]), np.array([c.group for c in m.clips]), cache


@pytest.fixture(scope="module")
def fitted(corpus):
    m, _, _, _, cache = corpus
    return _est(cache_dir=cache).fit(m)


def test_fit_on_manifest_predict_shapes_order_and_score(corpus, fitted):
    _, paths, y, _, _ = corpus
    est = fitted
    assert est.classes_.tolist() == sorted(CLASSES)
    assert est.input_shape_ == (30,) and len(est.feature_names_) == 30  # (rms, centroid, 13 MFCC) x (mean, std)
    assert est.config_.model.name == "mlp-small" and est.config_.train.max_epochs == 12
    P = est.predict_proba(paths)
    assert P.shape == (60, 5) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    pred = est.predict(paths)
    assert pred.tolist() == est.classes_[P.argmax(axis=1)].tolist()
    # classes_ order: the column of a clip's own class is, on training data, mostly the largest
    own = P[np.arange(60), np.searchsorted(est.classes_, y)]
    assert (own >= P.max(axis=1) - 1e-7).mean() > 0.6
    score = est.score(paths, y)
    assert score == pytest.approx(balanced_accuracy_score(y, pred))
    assert score > 0.6  # chance is 0.2
    assert est.score(corpus[0], None) == pytest.approx(score)  # a Manifest carries its labels


def test_fit_on_paths_same_as_manifest_and_rng_untouched(corpus, fitted):
    _, paths, y, groups, cache = corpus
    torch.manual_seed(1234)
    np.random.seed(99)
    t_state, n_state = torch.get_rng_state().clone(), np.random.get_state()
    est = _est(cache_dir=cache).fit(paths, y, groups=groups)
    assert torch.equal(torch.get_rng_state(), t_state)
    after = np.random.get_state()
    assert after[0] == n_state[0] and np.array_equal(after[1], n_state[1]) and after[2:] == n_state[2:]
    # the user's next draw is the one it would have been without the fit
    assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(1234)))
    # same clips, labels and groups as the manifest, same seed: the same network, whatever the global seed was
    np.testing.assert_allclose(est.predict_proba(paths[:8]), fitted.predict_proba(paths[:8]), atol=1e-6)
    # another seed trains another network
    other = _est(cache_dir=cache, seed=1).fit(paths, y, groups=groups)
    assert np.abs(other.predict_proba(paths[:8]) - fitted.predict_proba(paths[:8])).max() > 1e-3


def test_fit_on_arrays_with_integer_labels(corpus, fitted):
    _, paths, y, groups, _ = corpus
    signals = [sf.read(p, dtype="float32") for p in paths]
    pairs = [(sig, sr) for sig, sr in signals]
    y_int = np.searchsorted(np.array(sorted(CLASSES)), y)
    est = _est().fit(pairs, y_int, groups=groups)
    assert est.classes_.tolist() == [0, 1, 2, 3, 4]
    pred = est.predict(pairs[:10])
    assert pred.dtype.kind == "i" and set(pred.tolist()) <= set(range(5))
    # arrays and their files give the same items: the array-trained model equals the path-trained one
    np.testing.assert_allclose(est.predict_proba(pairs[:6]), fitted.predict_proba(paths[:6]), atol=1e-5)
    # a fitted model takes arrays at another rate and stereo arrays
    from sonotype.audio import resample

    sig = signals[0][0]
    p16 = fitted.predict_proba([(resample(sig, SR, 16000), 16000), (np.stack([sig, sig]), SR)])
    np.testing.assert_allclose(p16[1], fitted.predict_proba(paths[:1])[0], atol=1e-5)
    np.testing.assert_allclose(p16[0], p16[1], atol=0.05)


def test_save_then_load_model_gives_same_probabilities(corpus, fitted, tmp_path: Path):
    _, paths, _, _, _ = corpus
    d = fitted.save(tmp_path / "model")
    assert {"model.json", "weights.safetensors"} <= {f.name for f in d.iterdir()}
    clf = sonotype.load_model(d)
    assert clf.labels == fitted.classes_.tolist()
    P = fitted.predict_proba(paths[:6])
    Q = np.array([[clf.predict(p).probabilities[c] for c in fitted.classes_] for p in paths[:6]])
    np.testing.assert_allclose(P, Q, atol=1e-6)
    assert [clf.predict(p).label for p in paths[:6]] == fitted.predict(paths[:6]).tolist()
    with pytest.raises(Exception, match="exists"):
        fitted.save(d)
    fitted.save(d, force=True)


def test_clone_and_params_round_trip():
    est = _est(seed=3, jobs=1)
    params = est.get_params()
    assert params["model"] == "mlp-small" and params["seed"] == 3 and params["features"] == FEATURES
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert AudioClassifier(**params).get_params() == params
    twin.set_params(model={"name": "mlp", "params": {"hidden": [32]}}, seed=5)
    assert twin.get_params()["seed"] == 5 and twin.run_config().model.params == {"hidden": [32]}
    assert est.get_params()["model"] == "mlp-small"  # the original is untouched
    # dataclass configs are accepted like dicts
    cfg = AudioClassifier(features=FeatureConfig(**FEATURES)).run_config()
    assert cfg.features.n_mfcc == 13 and cfg.model.name == "resmlp"  # default model as `sonotype train`


def test_defaults_are_those_of_sonotype_train():
    from sonotype.pipeline.config import RunConfig

    cfg, run = AudioClassifier().run_config(), RunConfig()
    assert cfg.features == run.features and cfg.representation == run.representation
    assert cfg.model == run.model and cfg.train == run.train and cfg.augment == run.augment


def test_from_recipe_and_default_carry_the_recipe_settings(corpus, tmp_path: Path, monkeypatch):
    from sonotype.pipeline.config import load_config
    from sonotype.recipes import recipe_path

    want = load_config(recipe_path("ravdess-best"))
    cfg = AudioClassifier.from_recipe("ravdess-best", cache_dir=str(tmp_path)).run_config()
    assert (cfg.features, cfg.representation, cfg.model) == (want.features, want.representation, want.model)
    assert cfg.normalize.by == "speaker" and cfg.cache_dir == str(tmp_path) and cfg.jobs == want.jobs
    est = AudioClassifier.default("speech", scratch=True, jobs=1)
    assert clone(est).get_params() == est.get_params()  # plain parameters: the sklearn contract holds
    speech = load_config(recipe_path("default-speech"))
    assert est.run_config().model.name == speech.model.name == "logreg"
    assert AudioClassifier.default("music", scratch=True).run_config().features == load_config(
        recipe_path("default-music")).features
    # an encoder on the machine makes the encoder default, its alias resolved to the folder
    enc = tmp_path / "encoders" / "whisper-base"
    enc.mkdir(parents=True)
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path / "encoders"))
    bb = AudioClassifier.default("speech").run_config().backbone
    assert bb is not None and bb.model == str(enc.resolve())
    assert AudioClassifier.default("speech", scratch=True).run_config().backbone is None
    # the from-scratch speech default fits and predicts (speaker step over the demo's speakers)
    m, _, y, _, cache = corpus
    fit = AudioClassifier.default("speech", scratch=True, jobs=1, cache_dir=cache,
                                  features={**want.to_dict()["features"], "sr": SR, "features": ["mfcc", "rms"]}).fit(m)
    assert fit.normalizer_.by == "speaker" and balanced_accuracy_score(y, fit.predict(m)) > 0.5
    with pytest.raises(ConfigError, match="--kind must be one of"):
        AudioClassifier.default("noise")


def test_unfitted_and_bad_inputs(corpus):
    _, paths, y, _, _ = corpus
    est = _est()
    with pytest.raises(NotFittedError):
        est.predict(paths[:2])
    with pytest.raises(NotFittedError):
        est.save("/tmp/never-written")
    with pytest.raises(ParameterError, match="wrap a single one in a list"):
        est.fit(paths[0], y[:1])
    with pytest.raises(ParameterError, match="all paths or all"):
        est.fit([paths[0], (np.zeros(800, np.float32), SR)], y[:2])
    with pytest.raises(ParameterError, match="2 inputs but 3 labels"):
        est.fit(paths[:2], y[:3])
    with pytest.raises(ParameterError, match="at least two classes"):
        est.fit(paths[:2], ["a", "a"])
    with pytest.raises(ConfigError, match=r"features: unknown key\(s\) \['n_mfccs'\]"):
        AudioClassifier(features={"n_mfccs": 3}).fit(paths[:2], y[:2])
    with pytest.raises(ConfigError, match=r"train\.max_epochs: expected an integer"):
        AudioClassifier(train={"max_epochs": "x"}).fit(paths[:2], y[:2])
    with pytest.raises(ParameterError, match="model must be a model name, a config dataclass or a dict"):
        AudioClassifier(model=3).fit(paths[:2], y[:2])
    with pytest.raises(AudioError, match=r"missing\.wav"):
        est.fit([*paths[:4], "/nonexistent/missing.wav"], [*y[:4], "tone"])


def test_cross_validate_group_kfold(corpus):
    _, paths, y, groups, cache = corpus
    res = cross_validate(_est(cache_dir=cache), paths, y, groups=groups, cv=GroupKFold(3),
                         params={"groups": groups}, return_estimator=True)
    assert len(res["test_score"]) == 3
    assert all(0.0 <= s <= 1.0 for s in res["test_score"])
    assert np.mean(res["test_score"]) > 0.4  # new speakers, 12 epochs; chance is 0.2
    # each fold's model saw two speakers only
    for est in res["estimator"]:
        assert est.classes_.tolist() == sorted(CLASSES)


def test_grid_search_over_one_parameter(corpus):
    _, paths, y, groups, cache = corpus
    one_split = [(np.flatnonzero(groups != "spk1"), np.flatnonzero(groups == "spk1"))]
    grid = GridSearchCV(_est(cache_dir=cache), {"model": ["mlp-small", "logreg"]}, cv=one_split)
    grid.fit(paths, y, groups=groups)
    assert len(grid.cv_results_["params"]) == 2
    assert grid.best_params_["model"] in ("mlp-small", "logreg")
    assert grid.best_estimator_.predict(paths[:3]).shape == (3,)
    assert grid.best_score_ == pytest.approx(max(grid.cv_results_["mean_test_score"]))


def test_augmented_copies_of_arrays_match_those_of_files(corpus):
    """Waveform copies of in-memory signals are made by the run's rule (seed, clip, copy) for files."""
    _, paths, y, groups, _ = corpus
    idx = np.flatnonzero(groups != "spk3")[::2]  # 20 clips of two speakers: small and quick
    aug = {"copies": 1, "noise_snr_db": [10.0, 20.0], "gain_db": [-6.0, 6.0]}
    on_files = _est(augment=aug).fit([paths[i] for i in idx], y[idx], groups=groups[idx])
    pairs = [sf.read(paths[i], dtype="float32") for i in idx]
    on_arrays = _est(augment=aug).fit([(s, r) for s, r in pairs], y[idx], groups=groups[idx])
    probe = [paths[i] for i in np.flatnonzero(groups == "spk3")[:6]]
    np.testing.assert_allclose(on_arrays.predict_proba(probe), on_files.predict_proba(probe), atol=1e-5)
    plain = _est().fit([paths[i] for i in idx], y[idx], groups=groups[idx])
    assert np.abs(plain.predict_proba(probe) - on_files.predict_proba(probe)).max() > 1e-3  # the copies count
