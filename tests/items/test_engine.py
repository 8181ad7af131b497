"""The engines: local pool and a local Ray cluster give the same arrays as ``--jobs 2``; Ray
retries a task whose worker died; a rerun after the driver stopped computes only the missing shards."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_wav
from sonotype.corpora.registry import load_corpus
from sonotype.errors import ConfigError, ParameterError
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.extract import build_dataset as local_build_dataset
from sonotype.items.engine import EngineConfig, MapStats, ShardStore, map_files, map_shards, shard_key
from sonotype.items.tasks import build_dataset

FCFG = FeatureConfig(sr=16000, n_fft=512, hop_length=256, features=["rms", "mfcc", "centroid"], n_mfcc=8)
RCFG = RepresentationConfig(kind="stats", stats=["mean", "std"])


def _corpus(root: Path, n: int = 14) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for i in range(n):
        label = ("low", "high")[i % 2]
        f0 = (220.0, 1800.0)[i % 2] * (1 + 0.03 * i)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
        write_wav(root / label / f"{label}_{i:02d}.wav", y.astype(np.float32), 16000)
    (root / "low" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return root


# -- tasks the workers run (module-level; sent to Ray by value, see the fixture) ------------------
def _square_task(items: list[int], ctx: dict) -> dict[str, np.ndarray]:
    marks = ctx.get("marks")
    if marks:
        Path(marks, f"{items[0]}-{os.getpid()}-{np.random.default_rng().integers(1 << 30)}").touch()
    return {"x": np.asarray(items, dtype=np.int64) ** 2}


def _die_once_task(items: list[int], ctx: dict) -> dict[str, np.ndarray]:
    flag = Path(ctx["flag"])
    if items[0] == ctx["victim"] and not flag.exists():
        flag.touch()
        os._exit(1)  # the worker process dies mid-run, as if killed
    return {"x": np.asarray(items, dtype=np.int64) ** 2, "pid": np.asarray([os.getpid()])}


def _failing_task(items: list[int], ctx: dict) -> dict[str, np.ndarray]:
    raise ParameterError(f"bad shard {items}")


def _double(x: int) -> int:
    return 2 * x


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray engine needs sonotype[ray] (`make test` installs it)")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test file
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


# -- no cluster needed ----------------------------------------------------------------------------------
def test_engine_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"engine\.name must be one of local, ray"):
        EngineConfig.from_any("spark")
    with pytest.raises(ConfigError, match=r"needs engine\.name: ray"):
        EngineConfig.from_any({"address": "10.0.0.1:6379"})
    with pytest.raises(ConfigError, match="unknown key"):
        EngineConfig.from_any({"name": "ray", "adress": "x"})
    assert EngineConfig.from_any(None, jobs=3).workers == 3
    assert EngineConfig.from_any({"name": "ray", "address": "auto"}, jobs=3).workers is None  # the cluster decides


def test_local_engine_pool_keeps_order_and_stores_shards(tmp_path: Path) -> None:
    shards = [list(range(s, s + 3)) for s in range(0, 30, 3)]
    store = ShardStore(tmp_path / "cache", "test")
    keys = [f"{i:032x}" for i in range(len(shards))]
    st = MapStats()
    got = list(map_shards(_square_task, shards, context={}, engine=EngineConfig(workers=2), store=store, keys=keys, stats=st))
    assert [i for i, _ in got] == list(range(10))
    assert np.array_equal(np.concatenate([r["x"] for _, r in got]), np.arange(30) ** 2)
    assert st.computed == 10 and st.cached == 0 and len(st.peak_rss_mb) == 2 and store.writes == 10
    again = MapStats()
    list(map_shards(_square_task, shards, context={}, engine="local", store=store, keys=keys, stats=again))
    assert again.cached == 10 and again.computed == 0
    assert [i for i, _ in map_files(_double, range(7), jobs=2, shard_size=2)] == list(range(7))
    assert [v for _, v in map_files(_double, range(7), jobs=2, shard_size=2)] == [0, 2, 4, 6, 8, 10, 12]


def test_shard_key_follows_settings_and_file_changes(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c", n=2)
    clips = load_corpus("folder", root).clips
    k = shard_key("features", {"a": 1}, clips)
    assert shard_key("features", {"a": 2}, clips) != k
    wav = Path(clips[0].path)
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    assert shard_key("features", {"a": 1}, clips) != k


def test_url_cache_holds_shards(tmp_path: Path) -> None:
    store = ShardStore("memory://sonotype-test-url", "test")
    store.save("ab" * 16, {"x": np.arange(4.0)})
    assert "ab" * 16 in store and np.array_equal(store.load("ab" * 16)["x"], np.arange(4.0))
    assert store.load("cd" * 16) is None and store.local_root() is None
    assert ShardStore(f"file://{tmp_path}", "test").local_root() == str(tmp_path)


# -- a local Ray cluster ----------------------------------------------------------------------------------
@pytest.mark.ray
def test_ray_features_identical_to_jobs_2(ray_cluster, tmp_path: Path) -> None:
    clips = load_corpus("folder", _corpus(tmp_path / "corpus")).clips
    ref = local_build_dataset(clips, FCFG, RCFG, jobs=2)
    st = MapStats()
    ds = build_dataset(clips, FCFG, RCFG, engine=EngineConfig(name="ray", shard_size=4), cache=f"file://{tmp_path}/cache",
                       stats=st)
    assert ds.X.shape == ref.X.shape == (14, 20)
    assert np.array_equal(ds.X, ref.X) and np.array_equal(ds.item_clip, ref.item_clip)
    assert ds.clips == ref.clips and ds.feature_names == ref.feature_names
    assert [(s.path, s.reason) for s in ds.skipped] == [(s.path, s.reason) for s in ref.skipped] and len(ds.skipped) == 1
    assert st.shards == 4 and st.computed == 4 and st.cpu_seconds > 0
    assert list((tmp_path / "cache" / "frames").rglob("*.npz"))  # workers filled the shared per-clip cache too
    again = MapStats()
    ds2 = build_dataset(clips, FCFG, RCFG, engine=EngineConfig(name="ray", shard_size=4), cache=f"file://{tmp_path}/cache",
                        stats=again)
    assert again.cached == 4 and again.computed == 0 and np.array_equal(ds2.X, ref.X)


@pytest.mark.ray
def test_ray_retries_a_task_whose_worker_died(ray_cluster, tmp_path: Path) -> None:
    shards = [[i, i + 1] for i in range(0, 12, 2)]
    ctx = {"flag": str(tmp_path / "died"), "victim": 6}
    st = MapStats()
    got = list(map_shards(_die_once_task, shards, context=ctx, engine=EngineConfig(name="ray", max_retries=2), stats=st))
    assert (tmp_path / "died").exists()  # the first attempt of shard 3 killed its worker
    assert np.array_equal(np.concatenate([r["x"] for _, r in got]), np.arange(12) ** 2)
    assert st.computed == 6
    (tmp_path / "died").unlink()
    with pytest.raises(ParameterError, match="worker died 1 time"):
        list(map_shards(_die_once_task, shards, context=ctx, engine=EngineConfig(name="ray", max_retries=0)))


@pytest.mark.ray
def test_ray_rerun_after_the_driver_stopped_computes_only_missing_shards(ray_cluster, tmp_path: Path) -> None:
    shards = [list(range(s, s + 2)) for s in range(0, 20, 2)]
    store = ShardStore(tmp_path / "cache", "test")
    keys = [f"{i:032x}" for i in range(len(shards))]
    marks = tmp_path / "marks"
    marks.mkdir()
    ray_engine = EngineConfig(name="ray")
    it = map_shards(_square_task, shards, context={"marks": str(marks)}, engine=ray_engine, store=store, keys=keys)
    for _ in range(3):  # the driver dies after three shards came back
        next(it)
    it.close()
    was_stored = [k in store for k in keys]
    stored = sum(was_stored)
    assert 3 <= stored < len(shards)
    st = MapStats()
    got = list(map_shards(_square_task, shards, context={"marks": str(marks)}, engine=ray_engine, store=store, keys=keys,
                          stats=st))
    assert st.cached == stored and st.computed == len(shards) - stored
    runs = [len(list(marks.glob(f"{s[0]}-*"))) for s in shards]
    assert all(n == 1 for n, kept in zip(runs, was_stored) if kept)  # nothing stored was computed again
    assert all(n >= 1 for n in runs)
    assert np.array_equal(np.concatenate([r["x"] for _, r in got]), np.arange(20) ** 2)


@pytest.mark.ray
def test_ray_task_errors_surface_as_themselves_and_map_files_keeps_order(ray_cluster) -> None:
    with pytest.raises(ParameterError, match=r"bad shard \[0\]"):
        list(map_shards(_failing_task, [[0]], engine="ray"))
    assert [v for _, v in map_files(_double, list(range(9)), engine="ray", shard_size=2)] == [2 * i for i in range(9)]


@pytest.mark.ray
def test_features_command_on_ray_with_a_url_cache(ray_cluster, tmp_path: Path) -> None:
    from sonotype.cli import app

    root = _corpus(tmp_path / "corpus", n=6)
    settings = tmp_path / "feat.yaml"
    settings.write_text("features:\n  sr: 16000\n  n_fft: 512\n  features: [rms, mfcc]\n  n_mfcc: 8\n")
    out_ray, out_local = tmp_path / "ray.npz", tmp_path / "local.npz"
    args = ["features", "folder", str(root), "--set", str(settings), "--cache", "memory://sonotype-cli-test"]
    res = CliRunner().invoke(app, [*args, "--engine", "ray", "--out", str(out_ray)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "1 shards of 64: 0 from the cache, 1 computed" in res.output and "broken.wav" in res.output
    again = CliRunner().invoke(app, [*args, "--engine", "ray"], catch_exceptions=False)
    assert "1 from the cache, 0 computed" in again.output
    local = CliRunner().invoke(app, ["features", "folder", str(root), "--set", str(settings), "--no-cache", "--jobs", "2",
                                     "--out", str(out_local)], catch_exceptions=False)
    assert local.exit_code == 0, local.output
    with np.load(out_ray, allow_pickle=False) as a, np.load(out_local, allow_pickle=False) as b:
        assert a["X"].shape == (6, 9) and np.array_equal(a["X"], b["X"]) and np.array_equal(a["clip_path"], b["clip_path"])
    bad = CliRunner().invoke(app, [*args, "--jobs", "2"])
    assert isinstance(bad.exception, ConfigError) and "add --engine ray" in str(bad.exception)


@pytest.mark.ray
def test_run_config_engine_key_builds_the_same_dataset(ray_cluster, tmp_path: Path) -> None:
    from sonotype.pipeline.config import RunConfig, apply_overrides
    from sonotype.pipeline.fitting import build_run_dataset

    clips = load_corpus("folder", _corpus(tmp_path / "corpus", n=6)).clips
    base = {**RunConfig().to_dict(), "features": FCFG.to_dict(), "representation": RCFG.to_dict(),
            "cache_dir": str(tmp_path / "cache")}
    local = build_run_dataset(RunConfig.from_dict(base), clips)
    on_ray = build_run_dataset(RunConfig.from_dict(apply_overrides(base, ["engine.name=ray", "engine.shard_size=2"])), clips)
    assert on_ray.X.shape == (6, 20) and np.array_equal(on_ray.X, local.X) and on_ray.clips == local.clips
    assert len(list((tmp_path / "cache" / "shards" / "features").rglob("*.npz"))) == 4  # 7 clips (1 broken) in shards of 2


@pytest.mark.ray
def test_ray_embeddings_match_the_local_extraction(ray_cluster, tmp_path: Path) -> None:
    tf = pytest.importorskip("transformers", reason="needs sonotype[backbones]")
    import torch

    from sonotype.backbones.config import BackboneConfig
    from sonotype.items.embeddings import build_embedding_dataset as local_embed
    from sonotype.items.tasks import build_embedding_dataset

    torch.manual_seed(0)
    model = tf.WhisperModel(tf.WhisperConfig(
        vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500, max_target_positions=16,
        decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    model.save_pretrained(tmp_path / "whisper")
    tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "whisper")
    clips = load_corpus("folder", _corpus(tmp_path / "corpus", n=5)).clips
    cfg = BackboneConfig(str(tmp_path / "whisper"), layer="last", pooling="meanstd")
    ref = local_embed(clips, cfg, cache=False)
    st = MapStats()
    ds = build_embedding_dataset(clips, cfg, engine=EngineConfig(name="ray", shard_size=2), cache=str(tmp_path / "c"), stats=st)
    assert ds.X.shape == ref.X.shape == (5, 64) and ds.clips == ref.clips and ds.feature_names == ref.feature_names
    assert len(ds.skipped) == 1 and ds.skipped[0].path.endswith("broken.wav")
    np.testing.assert_allclose(ds.X, ref.X, rtol=1e-4, atol=1e-5)  # batched per shard, not per corpus
    assert st.computed == 3
    mean_only = build_embedding_dataset(clips, BackboneConfig(str(tmp_path / "whisper"), layer=1, pooling="mean"),
                                        engine="ray", cache=str(tmp_path / "c"))  # from the stored shards: all layers kept
    np.testing.assert_allclose(mean_only.X, local_embed(clips, BackboneConfig(str(tmp_path / "whisper"), layer=1, pooling="mean"),
                                                        cache=False).X, rtol=1e-4, atol=1e-5)


@pytest.mark.ray
def test_bench_scale_runs_both_engines_and_projects_dusha(ray_cluster) -> None:
    from sonotype.bench.scale import DUSHA_HOURS, run_scale

    r = run_scale(40, engines=("local", "ray"), workers=(2,), clip_seconds=0.1, shard_size=8, cluster_sizes=(1, 8))
    assert r["clips"] == 40 and r["distinct_files"] == 40 and abs(r["audio_hours"] - 40 * 0.1 / 3600) < 1e-6
    assert [(x["engine"], x["workers"], x["items"]) for x in r["runs"]] == [("local", 2, 40), ("ray", 2, 40)]
    for x in r["runs"]:
        proj = x["dusha_hours_on_k_workers"]
        assert x["clips_per_second"] > 0 and x["cpu_seconds"] > 0 and x["peak_rss_mb_per_worker"] > 10
        assert proj["8"]["cpu_bound"] == pytest.approx(proj["1"]["cpu_bound"] / 8)
        assert proj["1"]["cpu_bound"] == pytest.approx(DUSHA_HOURS * x["cpu_seconds_per_audio_hour"] / 3600)
    with pytest.raises(ParameterError, match="engine must be local or ray"):
        run_scale(4, engines=("dask",))


@pytest.mark.ray
def test_predict_over_a_folder_on_ray_writes_the_local_rows(ray_cluster, tmp_path: Path) -> None:
    import csv

    from sonotype.features.config import RepresentationConfig
    from sonotype.inference.batch import predict_files
    from test_batch import _folder
    from test_predict import _train

    model = _train(tmp_path / "m", "tones", RepresentationConfig(kind="stats", stats=["mean", "std"]), "mlp-small")
    files = _folder(tmp_path / "d", 7)
    (tmp_path / "d" / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")  # an error, reported, no row
    local = predict_files(model, [tmp_path / "d"], out=tmp_path / "local.csv", progress=False)
    remote = predict_files(model, [tmp_path / "d"], out=tmp_path / "ray.csv", engine="ray", jobs=2, progress=False)
    assert (remote.written, len(remote.errors)) == (local.written, len(local.errors)) == (7, 1)
    with open(tmp_path / "local.csv") as a, open(tmp_path / "ray.csv") as b:
        rows_local, rows_ray = list(csv.reader(a)), list(csv.reader(b))
    # the same rows, and the ray engine writes them in input order
    assert sorted(rows_ray) == sorted(rows_local) and [r[0] for r in rows_ray[1:]] == sorted(map(str, files))
    with pytest.raises(ParameterError, match="address is for the ray engine"):
        predict_files(model, files, out=tmp_path / "x.csv", address="auto", progress=False)
