"""Ensembles: the mean of member probabilities, parallel members equal sequential ones, safe files, runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sonotype
from sonotype.corpora.demo import generate_demo
from sonotype.errors import ConfigError, ParameterError
from sonotype.features.scaling import Standardizer
from sonotype.inference.modelio import save_model
from sonotype.models.apply import predict_proba
from sonotype.models.registry import build_model, ensemble_of, from_spec, model_spec
from sonotype.pipeline.config import ModelConfig, load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import recipe_path
from sonotype.training.config import TrainConfig
from sonotype.training.members import fit_members
from test_train import blobs, one_thread, sequences  # noqa: F401  (one_thread: autouse fixture)


def test_output_is_the_log_of_the_mean_member_probability() -> None:
    nets = [build_model("cnn1d-bn", (30, 5), 4, seed=s, channels=[8, 8]).eval() for s in (0, 1, 2)]
    ens = ensemble_of(nets)
    X = np.random.default_rng(0).normal(size=(7, 30, 5)).astype(np.float32)
    mean = np.mean([predict_proba(n, X) for n in nets], axis=0)
    np.testing.assert_allclose(predict_proba(ens, X), mean, rtol=0, atol=1e-6)
    # Members differ (different seeds), so the mean is not any one of them.
    assert not np.allclose(predict_proba(nets[0], X), mean, atol=1e-3)
    # Global-pooling members take other lengths, and so does the ensemble.
    assert ens.variable_axis == 0 and predict_proba(ens, X[:, :17]).shape == (7, 4)
    # A spec rebuilds it: the members are in the params.
    spec = model_spec(ens)
    assert spec["name"] == "ensemble" and [m["name"] for m in spec["params"]["members"]] == ["cnn1d-bn"] * 3
    again = from_spec(spec)
    again.load_state_dict(ens.state_dict())
    np.testing.assert_array_equal(predict_proba(again.eval(), X), predict_proba(ens, X))


def test_prior_correction_divides_by_the_training_frequencies() -> None:
    nets = [build_model("mlp-small", (6,), 3, seed=s).eval() for s in (0, 1)]
    X = np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32)
    prior = [0.5, 0.25, 0.25]
    mean = np.mean([predict_proba(n, X) for n in nets], axis=0)
    want = mean / np.array(prior)
    want /= want.sum(1, keepdims=True)
    corrected = ensemble_of(nets, class_prior=prior)
    np.testing.assert_allclose(predict_proba(corrected, X), want, atol=1e-6)
    # One network can be wrapped alone; the prior is in the JSON spec, not in the weights.
    alone = ensemble_of(nets[:1], class_prior=[2, 1, 1])  # counts are normalised
    w1 = predict_proba(nets[0], X) / np.array(prior)
    np.testing.assert_allclose(predict_proba(alone, X), w1 / w1.sum(1, keepdims=True), atol=1e-6)
    spec = model_spec(alone)
    assert spec["params"]["class_prior"] == [2.0, 1.0, 1.0] and "log_prior" not in alone.state_dict()
    again = from_spec(spec)
    again.load_state_dict(alone.state_dict())
    np.testing.assert_allclose(predict_proba(again.eval(), X), predict_proba(alone, X), atol=1e-7)
    # The rarer class wins more often after the correction.
    assert (predict_proba(corrected, X).argmax(1) != 0).sum() >= (mean.argmax(1) != 0).sum()
    with pytest.raises(ParameterError, match="3 positive frequencies"):
        ensemble_of(nets, class_prior=[1.0, 0.0, 1.0])
    with pytest.raises(ParameterError, match="3 positive frequencies"):
        ensemble_of(nets, class_prior=[1.0, 1.0])


def test_bad_ensembles_are_refused() -> None:
    a = model_spec(build_model("mlp-small", (6,), 3, seed=0))
    b = model_spec(build_model("mlp-small", (7,), 3, seed=0))
    with pytest.raises(ParameterError, match="member 1 is built for input_shape"):
        build_model("ensemble", (6,), 3, members=[a, b])
    with pytest.raises(ParameterError, match="at least one member"):
        build_model("ensemble", (6,), 3, members=[])
    nested = model_spec(build_model("ensemble", (6,), 3, members=[a]))
    with pytest.raises(ParameterError, match="itself an ensemble"):
        build_model("ensemble", (6,), 3, members=[nested])
    with pytest.raises(ConfigError, match=r"model\.ensemble must be an integer >= 1"):
        ModelConfig(name="mlp", ensemble=0)
    with pytest.raises(ConfigError, match=r"set model\.ensemble: N"):
        ModelConfig(name="ensemble")
    with pytest.raises(ConfigError, match="ensemble_validation must be 'same' or 'rotate'"):
        ModelConfig(name="mlp", ensemble=2, ensemble_validation="kfold")
    with pytest.raises(ConfigError, match=r"model\.prior_correction: expected true or false"):
        ModelConfig(name="mlp", prior_correction="yes")


def test_parallel_members_equal_sequential_members() -> None:
    X, y = sequences(96, seed=3)
    spec = model_spec(build_model("cnn1d-bn", (24, 6), 2, channels=[8, 8]))
    cfg = TrainConfig(batch_size=16, max_epochs=3, patience=None, num_threads=1)
    args = (spec, [5, 6], X[:64], y[:64], X[64:], y[64:])
    seq_nets, seq_res = fit_members(*args, config=cfg, n_classes=2, jobs=1, progress=False)
    par_nets, par_res = fit_members(*args, config=cfg, n_classes=2, jobs=2, progress=False)
    for a, b in zip(seq_nets, par_nets):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in res.history] for res in seq_res]
    assert strip == [[{k: v for k, v in r.items() if k != "seconds"} for r in res.history] for res in par_res]
    # Member i is the network build_model(seed=seeds[i]) trained with train.seed = seeds[i]: seeds matter.
    w0, w1 = seq_nets[0].state_dict(), seq_nets[1].state_dict()
    assert not all(torch.equal(w0[k], w1[k]) for k in w0)
    with pytest.raises(ParameterError, match="must differ"):
        fit_members(spec, [1, 1], X, y, config=cfg, n_classes=2, progress=False)


def test_members_can_train_on_their_own_sets() -> None:
    X, y = sequences(96, seed=4)
    spec = model_spec(build_model("cnn1d-bn", (24, 6), 2, channels=[8]))
    cfg = TrainConfig(batch_size=16, max_epochs=2, patience=None, num_threads=1)
    sets_X, sets_y = [X[:48], X[48:]], [y[:48], y[48:]]
    seq, _ = fit_members(spec, [0, 1], sets_X, sets_y, config=cfg, n_classes=2, jobs=1, progress=False)
    par, _ = fit_members(spec, [0, 1], sets_X, sets_y, config=cfg, n_classes=2, jobs=2, progress=False)
    for a, b in zip(seq, par):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    # Member 1 trained on the second half: the same as a lone seed-1 member trained on it.
    alone, _ = fit_members(spec, [1], [X[48:]], [y[48:]], config=cfg, n_classes=2, progress=False)
    assert all(torch.equal(alone[0].state_dict()[k], seq[1].state_dict()[k]) for k in alone[0].state_dict())
    with pytest.raises(ParameterError, match="2 seeds need 2 training sets"):
        fit_members(spec, [0, 1], [X], [y], config=cfg, n_classes=2, progress=False)
    with pytest.raises(ParameterError, match="both as arrays or both as per-member lists"):
        fit_members(spec, [0, 1], [X, X], y, config=cfg, n_classes=2, progress=False)


def test_ensemble_model_files_load_without_pickle_and_predict(tmp_path, monkeypatch) -> None:
    X, y = blobs(90, d=8, k=3)
    scaler = Standardizer().fit(X)
    spec = model_spec(build_model("mlp-small", (8,), 3))
    nets, _ = fit_members(spec, [0, 1], scaler.transform(X), y, config=TrainConfig(max_epochs=5, patience=None),
                          n_classes=3, progress=False)
    ens = ensemble_of(nets)
    fc = {"sr": 16000, "features": ["mfcc"]}
    save_model(tmp_path / "m", network=ens, labels=["a", "b", "c"], feature_config=fc,
               representation={"kind": "stats", "stats": ["mean"]}, scaler=scaler)
    import pickle

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    clf = sonotype.load_model(tmp_path / "m")
    assert clf.architecture["name"] == "ensemble"
    np.testing.assert_allclose(clf.forward_items(X), predict_proba(ens, scaler.transform(X)), atol=1e-6)
    monkeypatch.undo()
    pytest.importorskip("onnxruntime")
    from sonotype.inference.export import export_onnx, verify_onnx

    export_onnx(clf, tmp_path / "m.onnx")  # the averaging is part of the graph
    assert verify_onnx(clf, tmp_path / "m.onnx", X) < 1e-5


def test_run_with_an_ensemble_writes_member_histories(tmp_path) -> None:
    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=2, takes=4, seconds=1.0)
    cfg = load_config(recipe_path("demo"), [
        f"corpus.root={root}", f"cache_dir={tmp_path / 'cache'}", "protocol=kfold:2", "evaluate.final_model=best_fold",
        "train.max_epochs=4", "train.num_threads=1", "evaluate.bootstrap=50", "model.ensemble=2",
    ])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["model"] == "ensemble of 2 x resmlp"
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [(h["split"], h["member"]) for h in hist] == [
        ("fold 1/2", 1), ("fold 1/2", 2), ("fold 2/2", 1), ("fold 2/2", 2)
    ]
    clf = sonotype.load_model(tmp_path / "run" / "model")
    assert clf.architecture["name"] == "ensemble" and len(clf.architecture["params"]["members"]) == 2
    assert load_config(tmp_path / "run" / "config.yaml").model.ensemble == 2


def test_rotating_validation_gives_each_member_its_own_groups(tmp_path, monkeypatch) -> None:
    import sonotype.pipeline.fitting as exp

    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=8, takes=2, seconds=1.0)
    seen = []
    real = exp.fit_members

    def spy(spec, seeds, X_tr, y_tr, X_va, y_va, **kw):
        seen.append((X_tr, X_va))
        return real(spec, seeds, X_tr, y_tr, X_va, y_va, **kw)

    monkeypatch.setattr(exp, "fit_members", spy)
    sets = [f"corpus.root={root}", "protocol={name: kfold, k: 2, val_size: 0.25}", "evaluate.final_model=best_fold",
            "train.max_epochs=2", "train.num_threads=1", "evaluate.bootstrap=0", "model.ensemble=2",
            "model.ensemble_validation=rotate"]
    m = run_experiment(load_config(recipe_path("demo"), sets), tmp_path / "run", progress=False)
    assert m["model"] == "ensemble of 2 x resmlp" and len(seen) == 2  # one call per fold
    for X_tr, X_va in seen:
        assert isinstance(X_va, list) and len(X_va) == 2 and isinstance(X_tr, list)
        # 4 training speakers x 10 clips per fold: each member validates on 1 speaker and trains on 3.
        assert len(X_va[0]) == len(X_va[1]) == 10 and len(X_tr[0]) == len(X_tr[1]) == 30
        assert not np.array_equal(X_va[0], X_va[1])
        assert not any(np.any(np.all(X_tr[0] == row, axis=1)) for row in X_va[0]), "a validation clip in training"
    with pytest.raises(ConfigError, match=r"needs protocol\.val_size > 0"):  # refused when the config is built
        load_config(recipe_path("demo"), [*sets[:-1], "protocol={name: kfold, k: 2, val_size: 0}",
                                          "model.ensemble_validation=rotate"])


def test_prior_correction_in_a_run_uses_the_training_frequencies(tmp_path) -> None:
    root = generate_demo(tmp_path / "corpus", seed=0, n_speakers=3, takes=4, seconds=1.0)
    for f in sorted((root / "tone").iterdir())[::2]:  # half the tones: an imbalanced corpus
        f.unlink()
    cfg = load_config(recipe_path("demo"), [
        f"corpus.root={root}", "protocol=kfold:3", "evaluate.final_model=best_fold", "train.max_epochs=3",
        "train.num_threads=1", "evaluate.bootstrap=0", "model.prior_correction=true",
    ])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["model"] == "resmlp, prior-corrected"
    arch = json.loads((tmp_path / "run" / "model" / "model.json").read_text())["architecture"]
    assert arch["name"] == "ensemble" and len(arch["params"]["members"]) == 1
    prior = dict(zip(m["labels"], arch["params"]["class_prior"]))
    # 2 training speakers per fold: 8 clips of each class, 4 tones.
    assert prior["tone"] == pytest.approx(4 / 36) and prior["chord"] == pytest.approx(8 / 36)
