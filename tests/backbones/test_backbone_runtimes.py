"""backbone.runtime (torch, onnx, onnx-int8, bf16), backbone.device, and `sonotype bench backbone`.

Tiny random Whisper / wav2vec2 (group norm) / WavLM (layer norm) models built from configs
(the fixtures of test_backbones), exported to ONNX here; the real whisper-base encoder for
the realdata test.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import data_dir, write_wav
from sonotype.audio import load as load_audio
from sonotype.backbones import engines
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.embed import embed_all_layers
from sonotype.backbones.engines import (
    RuntimeFallbackWarning,
    effective_runtime,
    export_onnx,
    onnx_path,
    resolve_device,
)
from sonotype.backbones.load import load_backbone
from sonotype.bench.backbone import bench_backbone, cosine_distances
from sonotype.corpora.base import Clip
from sonotype.errors import ConfigError, ModelError
from sonotype.items.embeddings import EmbeddingCache, build_embedding_dataset
from test_backbones import _tiny_models, _waves

pytest.importorskip("onnxruntime", reason="needs the optional extra sonotype[onnx] (onnxruntime)")

SR = 16000
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "whisper-base"
FAMILIES = ("whisper", "wav2vec2", "wavlm")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONOTYPE_CACHE", str(tmp_path_factory.mktemp("sonotype-cache")))
    monkeypatch.delenv("SONOTYPE_BACKBONES", raising=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return _tiny_models(tmp_path_factory.mktemp("backbones"))


def _cfg(model: Path, runtime: str = "torch", **kw: object) -> BackboneConfig:
    return BackboneConfig(str(model), layer="all", pooling="meanstd", batch_size=3, runtime=runtime, **kw)


# -- settings --------------------------------------------------------------------------------


def test_runtime_and_device_are_validated_and_round_trip() -> None:
    cfg = BackboneConfig("whisper-base", runtime="onnx-int8", device="cuda:1")
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg
    assert BackboneConfig("x").runtime == "torch" and BackboneConfig("x").device == "auto"
    with pytest.raises(ConfigError, match=r"backbone.runtime must be one of torch, onnx, onnx-int8, bf16, got 'tensorrt'"):
        BackboneConfig("x", runtime="tensorrt")
    for bad in ("gpu", "cuda:", "cuda:x", ""):
        with pytest.raises(ConfigError, match=r"backbone\.device must be auto, cpu, cuda or cuda:N"):
            BackboneConfig("x", device=bad)


# -- ONNX export and closeness ---------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_matches_torch_and_batches_like_alone(models: dict[str, Path], name: str) -> None:
    bb = load_backbone(_cfg(models[name]))
    waves = _waves(lengths=(16000, 24000, 9000, 12000))
    ref = embed_all_layers(bb, waves, SR, _cfg(models[name]))
    got = embed_all_layers(bb, waves, SR, _cfg(models[name], "onnx"))
    assert got.shape == ref.shape == (4, bb.n_hidden, 2 * bb.dim)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * float(np.abs(ref).max()))
    alone = np.concatenate([embed_all_layers(bb, [w], SR, _cfg(models[name], "onnx")) for w in waves])
    np.testing.assert_allclose(got, alone, rtol=0, atol=2e-5 * float(np.abs(ref).max()))
    # a time axis the export never saw (one 3.1 s clip) still matches: the axis is dynamic
    long = _waves(seed=3, lengths=(49600,))
    np.testing.assert_allclose(embed_all_layers(bb, long, SR, _cfg(models[name], "onnx")),
                               embed_all_layers(bb, long, SR, _cfg(models[name])), rtol=0, atol=2e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name", FAMILIES)
def test_int8_is_quantized_and_close_within_a_loose_bound(models: dict[str, Path], name: str) -> None:
    onnx = pytest.importorskip("onnx")
    bb = load_backbone(_cfg(models[name]))
    waves = _waves(lengths=(16000, 24000, 9000))
    ref = embed_all_layers(bb, waves, SR, _cfg(models[name]))
    got = embed_all_layers(bb, waves, SR, _cfg(models[name], "onnx-int8"))
    dist = cosine_distances(got, ref)
    assert dist.max() < 0.02, dist.max()
    assert np.abs(got - ref).max() > 1e-6  # int8 weights really ran (float32 ONNX agrees to ~1e-7)
    graph = onnx.load(str(onnx_path(bb, "onnx-int8"))).graph
    ops = {n.op_type for n in graph.node}
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops
    assert "ConvInteger" not in ops  # convolutions stay float32
    weights = {i.name for i in graph.initializer}
    float_products = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    assert len(float_products) == 1  # the one Linear with the most outlying input stays float32


def test_exports_are_cached_apart_per_runtime_and_written_atomically(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bb = load_backbone(_cfg(models["whisper"]))
    f32 = export_onnx(bb, "onnx")
    i8 = export_onnx(bb, "onnx-int8")
    assert f32 != i8 and f32.parent == i8.parent
    assert f32.name.endswith(f"-onnx-opset{engines.OPSET}.onnx") and i8.name.endswith(f"-onnx-int8-opset{engines.OPSET}.onnx")
    assert not [p for p in f32.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("exported again although cached")

    monkeypatch.setattr(engines, "_export_float", boom)
    monkeypatch.setattr(engines, "_quantize", boom)
    assert export_onnx(bb, "onnx") == f32 and export_onnx(bb, "onnx-int8") == i8
    other = load_backbone(_cfg(models["wavlm"]))
    assert onnx_path(other, "onnx") != f32  # another encoder digest, another file


def test_an_export_that_does_not_reproduce_torch_is_refused(models: dict[str, Path]) -> None:
    bb = load_backbone(_cfg(models["whisper"]))
    data = engines._export_float(bb)
    engines._check_export(bb, data)  # the true graph passes
    with torch.no_grad():
        bb.model.layers[0].fc1.weight.mul_(3.0)  # torch now computes something else than the graph
    with pytest.raises(ModelError, match="does not reproduce torch on a new input shape"):
        engines._check_export(bb, data)


def test_onnx_refuses_an_encoder_family_it_does_not_cover(models: dict[str, Path]) -> None:
    bb = load_backbone(_cfg(models["ast"]))
    with pytest.raises(ConfigError, match="ONNX export covers Whisper and the wav2vec2/WavLM/HuBERT families"):
        embed_all_layers(bb, _waves(lengths=(16000,)), SR, _cfg(models["ast"], "onnx"))


# -- embedding cache --------------------------------------------------------------------------


def test_the_runtime_is_part_of_the_embedding_cache_key(models: dict[str, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [Clip(write_wav(tmp_path / f"c{i}.wav", 0.1 * rng.standard_normal(SR + 999 * i).astype(np.float32), SR),
                  label="a", group=str(i)) for i in range(3)]
    cache = tmp_path / "cache"
    stats: dict = {}
    torch_ds = build_embedding_dataset(clips, _cfg(models["whisper"]), cache_dir=cache, stats=stats)
    assert stats["computed"] == 3
    bb = load_backbone(_cfg(models["whisper"]))
    alone = [embed_all_layers(bb, [load_audio(c.path, sr=SR)[0]], SR, _cfg(models["whisper"]))[0] for c in clips]
    np.testing.assert_allclose(torch_ds.X, np.stack(alone), rtol=0, atol=1e-5)  # clip order kept (batched longest first)
    build_embedding_dataset(clips, _cfg(models["whisper"], "onnx-int8"), cache_dir=cache, stats=stats)
    assert stats["computed"] == 3 and stats["cached"] == 0  # torch entries never stand in for int8 ones
    int8_ds = build_embedding_dataset(clips, _cfg(models["whisper"], "onnx-int8"), cache_dir=cache, stats=stats)
    assert stats["cached"] == 3
    again = build_embedding_dataset(clips, _cfg(models["whisper"]), cache_dir=cache, stats=stats)
    assert stats["cached"] == 3
    np.testing.assert_array_equal(again.X, torch_ds.X)
    assert not np.array_equal(int8_ds.X, torch_ds.X)
    store = EmbeddingCache(cache)
    keys = {rt: store.key(bb, _cfg(models["whisper"]), clips[0], runtime=rt) for rt in ("torch", "onnx", "onnx-int8", "bf16")}
    assert len(set(keys.values())) == 4
    assert keys["torch"] == store.key(bb, _cfg(models["whisper"]), clips[0])  # caches made before runtimes stay valid
    assert len(list((cache / "embeddings").rglob("*.npz"))) == 6
    engines.EXPORT_VERSION += 1  # a new export (other float32 layers, other graph) never reuses old int8 entries
    try:
        assert store.key(bb, _cfg(models["whisper"]), clips[0], runtime="onnx-int8") != keys["onnx-int8"]
        assert store.key(bb, _cfg(models["whisper"]), clips[0], runtime="torch") == keys["torch"]
    finally:
        engines.EXPORT_VERSION -= 1


# -- bf16 and device ------------------------------------------------------------------------------


def test_bf16_runs_torch_float32_with_a_note_where_the_cpu_lacks_it(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engines._WARNED.clear()
    monkeypatch.setattr(engines, "bf16_native", lambda: False)  # the name engines calls
    cfg = _cfg(models["whisper"], "bf16", device="cpu")
    with pytest.warns(RuntimeFallbackWarning, match="no native bfloat16.*running torch float32"):
        assert effective_runtime(cfg) == "torch"
    bb = load_backbone(cfg)
    waves = _waves()
    ref = embed_all_layers(bb, waves, SR, _cfg(models["whisper"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeFallbackWarning)
        np.testing.assert_array_equal(embed_all_layers(bb, waves, SR, cfg), ref)  # the fallback is float32 torch
    monkeypatch.setattr(engines, "bf16_native", lambda: True)
    assert effective_runtime(cfg) == "bf16"
    bf = embed_all_layers(bb, waves, SR, cfg)  # emulated here, native where the CPU has it: same numbers
    assert np.abs(bf - ref).max() > 1e-6 and cosine_distances(bf, ref).max() < 0.01


def test_device_falls_back_to_the_cpu_with_a_note_when_cuda_is_absent(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engines._WARNED.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto") == torch.device("cpu")  # auto: no note, the CPU is the plan
        assert resolve_device("cpu") == torch.device("cpu")
    with pytest.warns(RuntimeFallbackWarning, match="backbone.device cuda:1: torch sees no CUDA device here; running on the CPU"):
        assert resolve_device("cuda:1") == torch.device("cpu")
    bb = load_backbone(_cfg(models["wavlm"]))
    waves = _waves()
    ref = embed_all_layers(bb, waves, SR, _cfg(models["wavlm"], device="cpu"))
    for rt in ("torch", "onnx"):
        with pytest.warns(RuntimeFallbackWarning, match="no CUDA device"):
            engines._WARNED.clear()
            got = embed_all_layers(bb, waves, SR, _cfg(models["wavlm"], rt, device="cuda"))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    assert next(bb.model.parameters()).device.type == "cpu"


def test_cuda_index_beyond_the_devices_present_uses_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    engines._WARNED.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.warns(RuntimeFallbackWarning, match="torch sees 1 CUDA device"):
        assert resolve_device("cuda:3") == torch.device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device torch can see")
def test_embeddings_on_cuda_match_the_cpu(models: dict[str, Path]) -> None:
    for name in ("whisper", "wavlm"):
        bb = load_backbone(_cfg(models[name]))
        waves = _waves()
        ref = embed_all_layers(bb, waves, SR, _cfg(models[name], device="cpu"))
        got = embed_all_layers(bb, waves, SR, _cfg(models[name], device="cuda"))
        assert next(bb.model.parameters()).device.type == "cuda"
        assert cosine_distances(got, ref).max() < 1e-4


# -- bench -------------------------------------------------------------------------------------


def test_bench_backbone_json_shape_and_values(models: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sonotype.cli import app

    r = bench_backbone(models["whisper"], clips=3)
    assert set(r["runtimes"]) == {"torch", "onnx", "onnx-int8", "bf16"}
    for name, row in r["runtimes"].items():
        assert row["x_realtime_per_core"] > 0 and row["cpu_seconds"] > 0, name
        assert 0 <= row["max_cosine_distance"] < 0.05, (name, row)
    assert r["runtimes"]["torch"]["max_cosine_distance"] < 1e-12 and r["runtimes"]["torch"]["speedup_vs_torch"] == 1.0
    assert r["runtimes"]["onnx"]["max_cosine_distance"] < 1e-6
    assert r["clips"] == 3 and r["threads"] == 1 and r["fastest"] in r["runtimes"]
    assert r["runtimes"]["bf16"].get("native", True) == r["bf16_native"]
    rng = np.random.default_rng(1)
    for i in range(4):
        write_wav(tmp_path / "speech" / f"s{i}.wav", 0.1 * rng.standard_normal(SR).astype(np.float32), SR)
    res = CliRunner().invoke(app, ["bench", "backbone", str(models["wavlm"]), "--speech", str(tmp_path / "speech"),
                                   "--clips", "2", "--runtime", "onnx", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["runtimes"]) == {"torch", "onnx"} and doc["clips"] == 2 and doc["audio_seconds"] == 2.0
    assert {"x_realtime_per_core", "max_cosine_distance"} <= set(doc["runtimes"]["onnx"])
    bad = CliRunner().invoke(app, ["bench", "backbone", str(models["wavlm"]), "--runtime", "tensorrt"])
    assert isinstance(bad.exception, ConfigError) and "unknown runtime(s) tensorrt" in str(bad.exception)


def test_cosine_distances() -> None:
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [0.0, 0.0], [2.0, 2.0]])
    np.testing.assert_allclose(cosine_distances(a, b), [1.0, 0.0, 0.0], atol=1e-12)


# -- the real encoder ----------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL / "model.safetensors").is_file(), reason="needs ../shared/models/whisper-base")
def test_real_whisper_onnx_runtimes_stay_within_cosine_001_of_torch() -> None:
    clip = data_dir("ravdess", "Actor_01") / "03-01-01-01-01-01-01.flac"
    y, _ = load_audio(clip, sr=SR)
    bb = load_backbone(_cfg(REAL))
    ref = embed_all_layers(bb, [y], SR, _cfg(REAL))
    f32 = embed_all_layers(bb, [y], SR, _cfg(REAL, "onnx"))
    i8 = embed_all_layers(bb, [y], SR, _cfg(REAL, "onnx-int8"))
    assert cosine_distances(f32, ref).max() < 1e-5
    assert cosine_distances(i8, ref).max() < 0.01
    assert cosine_distances(i8, ref).max() > 1e-6  # really quantised


def test_pool_layers_equals_pooling_the_stacked_states() -> None:
    from sonotype.backbones.extract import pool, pool_layers

    g = torch.Generator().manual_seed(0)
    states = [torch.randn(3, 7, 5, generator=g) * (i + 1) + i for i in range(4)]
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] + [False] * 6])
    for how in ("mean", "meanstd"):
        np.testing.assert_allclose(pool_layers(states, valid, how).numpy(),
                                   pool(torch.stack(states, 1), valid, how).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="pooling 'attention' cannot be precomputed"):
        pool_layers(states, valid, "attention")


def test_a_saved_model_embeds_with_the_runtime_it_was_trained_with(models: dict[str, Path]) -> None:
    from sonotype.backbones.load import backbone_record
    from sonotype.backbones.runtime import featurizer_for

    y = _waves(lengths=(20000,))[0]
    for rt in ("torch", "onnx-int8"):
        cfg = BackboneConfig(str(models["whisper"]), layer="all", pooling="meanstd", runtime=rt)
        feat = featurizer_for({"backbone": backbone_record(cfg)})
        assert feat.cfg.runtime == rt
        np.testing.assert_array_equal(feat.items(y), embed_all_layers(feat.backbone, [y], SR, cfg))
    int8 = featurizer_for({"backbone": backbone_record(_cfg(models["whisper"], "onnx-int8"))}).items(y)
    assert np.abs(int8 - featurizer_for({"backbone": backbone_record(_cfg(models["whisper"]))}).items(y)).max() > 1e-6
