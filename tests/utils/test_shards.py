"""Memory-mapped item shards: same values as in memory, lazy selections, chunked scaling,
training that never reads the whole set, and ``train.memmap`` end to end."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from sonotype.errors import ConfigError, ParameterError
from sonotype.features.scaling import Standardizer
from sonotype.utils.shards import (
    EAGER_ROWS,
    LazyRows,
    Scaled,
    ShardedArray,
    ShardWriter,
    is_lazy,
    wants_memmap,
)


def _write(folder: Path, X: np.ndarray, rows: int) -> ShardedArray:
    w = ShardWriter(folder)
    for s in range(0, len(X), rows):
        w.append(X[s : s + rows])
    return w.close()


def test_sharded_rows_equal_the_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 3, 4)).astype(np.float32)
    A = _write(tmp_path / "a", X, 1_337)
    assert A.shape == X.shape and len(A) == 10_000 and A.ndim == 3 and A.nbytes == X.nbytes
    assert sorted(p.name for p in (tmp_path / "a").iterdir())[:2] == ["X-00000.npy", "X-00001.npy"]
    idx = np.sort(rng.choice(10_000, 64, replace=False))
    assert np.array_equal(A[idx], X[idx]) and np.array_equal(A[5], X[5]) and np.array_equal(A[-1], X[-1])
    assert np.array_equal(A[1_300:1_400], X[1_300:1_400]) and np.array_equal(A[idx[::-1]], X[idx[::-1]])
    big = A[np.arange(0, 10_000, 2)]  # more than EAGER_ROWS rows: a lazy view, nothing read yet
    assert isinstance(big, LazyRows) and big.shape == (5_000, 3, 4) and is_lazy(big)
    assert np.array_equal(big[10:20], X[20:40:2]) and np.array_equal(np.asarray(big), X[::2])
    with pytest.raises(IndexError):
        A[10_000]
    (tmp_path / "a" / "index.json").unlink()
    with pytest.raises(ParameterError, match="not a complete set of item shards"):
        ShardedArray(tmp_path / "a")


def test_standardizer_fits_in_chunks_and_scales_lazily(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((9_000, 6)) * [1, 10, 100, 0.1, 5, 1e3] + [0, 5, -3, 1e3, 2, 7]).astype(np.float32)
    X[:, 4] = 2.0  # constant: scale 1
    A = _write(tmp_path / "a", X, 2_000)
    ref = Standardizer().fit(X)
    lazy = Standardizer().fit(A)
    np.testing.assert_allclose(lazy.mean_, ref.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lazy.scale_, ref.scale_, rtol=1e-8)
    assert lazy.scale_[4] == 1.0
    S = lazy.transform(A)
    assert isinstance(S, Scaled) and S.shape == X.shape
    np.testing.assert_allclose(S[100:200], ref.transform(X[100:200]), rtol=1e-6, atol=1e-6)
    # (N, F, T) patches scaled per band (feature_axis=-2), like log-mel items
    P = rng.standard_normal((5_000, 4, 7)).astype(np.float32) * np.arange(1, 5)[None, :, None]
    PA = _write(tmp_path / "p", P, 999)
    np.testing.assert_allclose(Standardizer(feature_axis=-2).fit(PA).scale_, Standardizer(feature_axis=-2).fit(P).scale_,
                               rtol=1e-8)


def test_training_reads_batches_never_the_whole_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from sonotype.models.apply import predict_proba
    from sonotype.models.registry import build_model
    from sonotype.training.config import TrainConfig
    from sonotype.training.train import fit

    rng = np.random.default_rng(2)
    n, d = 48_000, 256  # 49 MB of items
    y = rng.integers(0, 2, n)
    A = _write(tmp_path / "a", (rng.standard_normal((n, d)) + y[:, None] * 0.5).astype(np.float32), 8_000)
    fit(build_model("mlp", (d,), 2), np.zeros((8, d), np.float32), np.arange(8) % 2, config=TrainConfig(max_epochs=1),
        n_classes=2)  # warm: torch's lazy imports are not the loader's memory

    def refuse(*_: object, **__: object) -> np.ndarray:
        raise AssertionError("the whole set was materialised")

    monkeypatch.setattr(ShardedArray, "__array__", refuse)
    monkeypatch.setattr(LazyRows, "__array__", refuse)
    monkeypatch.setattr(Scaled, "__array__", refuse)
    tr, va = np.arange(0, 40_000), np.arange(40_000, n)
    scaler = Standardizer().fit(A[tr])
    torch.manual_seed(0)
    net = build_model("mlp", (d,), 2)
    tracemalloc.start()
    res = fit(net, scaler.transform(A[tr]), y[tr], scaler.transform(A[va]), y[va],
              config=TrainConfig(max_epochs=1, batch_size=256, patience=None, num_threads=1), n_classes=2)
    proba = predict_proba(net, scaler.transform(A[va]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < A.nbytes / 2.5, f"peak traced allocation {peak / 1e6:.1f} MB for a {A.nbytes / 1e6:.1f} MB set"
    assert proba.shape == (n - 40_000, 2) and res.history[-1]["val_balanced_accuracy"] > 0.9
    assert len(tr) > EAGER_ROWS


def test_memmap_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from sonotype.training.config import TrainConfig

    assert wants_memmap(True, 0) and not wants_memmap(False, 1e12) and not wants_memmap("auto", 1e6)
    assert wants_memmap("auto", 3 * 2**30)
    monkeypatch.setenv("SONOTYPE_MEMMAP_BYTES", "1000")
    assert wants_memmap("auto", 1001)
    with pytest.raises(ConfigError, match=r"train\.memmap must be auto, true or false"):
        TrainConfig(memmap="sometimes")


def test_run_with_train_memmap_equals_the_in_memory_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from sonotype.corpora.demo import generate_demo
    from sonotype.pipeline.config import load_config
    from sonotype.pipeline.experiment import run_experiment
    from sonotype.recipes import recipe_path

    root = generate_demo(tmp_path / "corpus", seed=0)
    fast = [f"corpus.root={root}", f"cache_dir={tmp_path / 'cache'}", "train.max_epochs=8", "train.patience=null",
            "evaluate.bootstrap=50", "train.num_threads=1", "evaluate.baseline=false", "protocol=holdout:0.25"]
    mem = run_experiment(load_config(recipe_path("demo"), [*fast, "train.memmap=false"]), tmp_path / "mem", progress=False)
    monkeypatch.setenv("SONOTYPE_MEMMAP_BYTES", "1000")  # auto: this small set counts as large
    disk = run_experiment(load_config(recipe_path("demo"), [*fast, "train.memmap=auto"]), tmp_path / "disk", progress=False)
    for key in ("accuracy", "balanced_accuracy", "confusion", "n_items"):
        assert mem[key] == disk[key], key
    arrays = list((tmp_path / "cache" / "arrays").glob("features-*/index.json"))
    assert len(arrays) == 1 and json.loads(arrays[0].read_text())["shards"]


def test_bench_memmap_trains_from_disk(tmp_path: Path) -> None:
    from sonotype.bench.scale import run_memmap_bench

    r = run_memmap_bench(0.02, dim=64, folder=tmp_path)
    assert r["rows"] == int(0.02 * 2**30 // 256) and r["shards"] == 1 and r["val_accuracy"] > 0.9
    assert (tmp_path / "items" / "index.json").is_file()


def test_parallel_ensemble_members_train_from_disk_backed_items(tmp_path: Path) -> None:
    import torch

    from sonotype.models.apply import predict_proba
    from sonotype.models.registry import build_model, model_spec
    from sonotype.training.config import TrainConfig
    from sonotype.training.members import fit_members

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 6_000)
    X = (rng.standard_normal((6_000, 16)) + y[:, None]).astype(np.float32)
    A = _write(tmp_path / "a", X, 2_500)
    scaler = Standardizer().fit(A)
    spec = model_spec(build_model("mlp", (16,), 2))
    cfg = TrainConfig(max_epochs=2, patience=None, num_threads=1)
    on_disk, _ = fit_members(spec, [0, 1], scaler.transform(A), y, config=cfg, n_classes=2, jobs=2, progress=False)
    in_mem, _ = fit_members(spec, [0, 1], scaler.transform(X), y, config=cfg, n_classes=2, jobs=2, progress=False)
    for a, b in zip(on_disk, in_mem):
        with torch.no_grad():
            assert np.array_equal(predict_proba(a, scaler.transform(X[:500])), predict_proba(b, scaler.transform(X[:500])))
