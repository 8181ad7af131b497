"""Standardizer: sklearn-equal statistics, any feature axis, JSON and safetensors round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.preprocessing import StandardScaler

from sonotype.errors import ModelError, ParameterError
from sonotype.features.scaling import Standardizer


def test_matches_sklearn_on_vectors() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
    x[:, 2] = 7.0  # zero variance
    ours = Standardizer().fit(x)
    ref = StandardScaler().fit(x)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-6)
    assert ours.scale_[2] == 1.0
    np.testing.assert_allclose(ours.transform(x), ref.transform(x), atol=1e-5)
    assert ours.transform(x).dtype == np.float32


def test_statistics_over_every_other_axis() -> None:
    rng = np.random.default_rng(1)
    windows = rng.normal(size=(30, 216, 13)) * np.arange(1, 14) + np.arange(13)
    s = Standardizer().fit(windows)
    np.testing.assert_allclose(s.mean_, windows.reshape(-1, 13).mean(axis=0))
    z = s.transform(windows).reshape(-1, 13)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
    patches = rng.normal(size=(8, 40, 51)) + np.arange(40)[:, None]
    t = Standardizer(feature_axis=-2).fit(patches)
    assert t.mean_.shape == (40,)
    np.testing.assert_allclose(t.mean_, patches.transpose(0, 2, 1).reshape(-1, 40).mean(axis=0))
    np.testing.assert_allclose(t.inverse_transform(t.transform(patches)), patches, atol=1e-4)


def test_round_trips_without_pickle(tmp_path) -> None:
    x = np.random.default_rng(2).normal(size=(50, 4))
    s = Standardizer().fit(x)
    d = json.loads(json.dumps(s.to_dict()))
    back = Standardizer.from_dict(d)
    np.testing.assert_array_equal(back.transform(x), s.transform(x))
    blob = st_save(s.state_tensors())
    again = Standardizer.from_tensors(st_load(blob))
    np.testing.assert_array_equal(again.transform(x), s.transform(x))
    assert again.feature_axis == -1


def test_errors() -> None:
    with pytest.raises(ModelError, match="not fitted"):
        Standardizer().transform(np.zeros((2, 3)))
    s = Standardizer().fit(np.random.default_rng(3).normal(size=(10, 3)))
    with pytest.raises(ParameterError, match="3 features, got 4"):  # a bad argument, not a bad model
        s.transform(np.zeros((2, 4)))
    with pytest.raises(ParameterError, match="feature axis"):
        Standardizer().fit(np.zeros(5))
    with pytest.raises(ModelError, match="not a Standardizer state"):
        Standardizer.from_dict({"mean": [0.0]})
    with pytest.raises(ModelError, match="non-positive"):
        Standardizer.from_dict({"mean": [0.0], "scale": [0.0]})
