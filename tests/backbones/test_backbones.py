"""Pretrained backbones, offline: tiny random Whisper / wav2vec2 / WavLM / AST models built here.

Every model is created from a config with random weights and saved to a temporary folder,
so the whole path (load by directory, embed, cache, train a head, fine-tune, save and
reload) runs without network or downloaded weights.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import data_dir, write_wav
from sonotype.backbones.checkpoint import require_transformers
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.embed import embed
from sonotype.backbones.extract import batchable, hidden_states, pool, prepare_waveforms
from sonotype.backbones.finetune import FineTuneClassifier
from sonotype.backbones.load import describe, load_backbone
from sonotype.corpora.base import Clip
from sonotype.errors import ConfigError, ModelError, SonotypeError
from sonotype.items.embeddings import build_embedding_dataset
from sonotype.models.apply import predict_proba
from sonotype.training.config import TrainConfig
from sonotype.training.train import fit

SR = 16000


def _tiny_models(root: Path) -> dict[str, Path]:
    tf = pytest.importorskip("transformers", reason="needs the optional extra sonotype[backbones] (transformers)")
    tf.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    ssl = {**small, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
    specs = {
        "whisper": (
            tf.WhisperModel(
                tf.WhisperConfig(
                    vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                    max_source_positions=1500, max_target_positions=16, decoder_start_token_id=1,
                    pad_token_id=0, bos_token_id=1, eos_token_id=2,
                )
            ),
            tf.WhisperFeatureExtractor(feature_size=80),
        ),
        # group-norm feature encoder (like wav2vec2-base): runs one clip at a time
        "wav2vec2": (tf.Wav2Vec2Model(tf.Wav2Vec2Config(**ssl)), tf.Wav2Vec2FeatureExtractor()),
        # layer-norm feature encoder (like WavLM-Large): batches with an attention mask
        "wavlm": (
            tf.WavLMModel(
                tf.WavLMConfig(**ssl, feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=32,
                               max_bucket_distance=100)
            ),
            tf.Wav2Vec2FeatureExtractor(return_attention_mask=True),
        ),
        "ast": (
            tf.ASTModel(tf.ASTConfig(**small, max_length=256, num_mel_bins=64)),
            tf.ASTFeatureExtractor(num_mel_bins=64, max_length=256),
        ),
    }
    out = {}
    for name, (model, fe) in specs.items():
        d = root / name
        model.save_pretrained(d)
        fe.save_pretrained(d)
        out[name] = d
    tf.utils.logging.enable_progress_bar()
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embeddings and digests are cached by default: keep them out of the user's cache."""
    monkeypatch.setenv("SONOTYPE_CACHE", str(tmp_path_factory.mktemp("sonotype-cache")))
    monkeypatch.delenv("SONOTYPE_BACKBONES", raising=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return _tiny_models(tmp_path_factory.mktemp("backbones"))


def _waves(seed: int = 0, lengths: tuple[int, ...] = (16000, 24000, 9000)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


# -- configuration and errors -------------------------------------------------------------


def test_config_round_trip_and_validation() -> None:
    cfg = BackboneConfig("openai/whisper-base", layer=3, pooling="meanstd", finetune_layers=2)
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg
    assert not cfg.keeps_layers and BackboneConfig("x", layer="weighted").keeps_layers
    for bad, match in [
        ({"model": ""}, "hub id or a local directory"),
        ({"model": "x", "layer": "first"}, "backbone.layer"),
        ({"model": "x", "layer": True}, "backbone.layer"),
        ({"model": "x", "pooling": "max"}, "backbone.pooling"),
        ({"model": "x", "max_seconds": 0}, "max_seconds"),
        ({"model": "x", "finetune_layers": -1}, "finetune_layers"),
        ({"model": "x", "colour": 1}, "unknown BackboneConfig key"),
    ]:
        with pytest.raises(ConfigError, match=match):
            BackboneConfig.from_dict(bad)


def test_missing_transformers_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import now raises ImportError
    with pytest.raises(SonotypeError, match=r"install it with: pip\sinstall 'sonotype\[backbones\]'"):
        require_transformers()
    with pytest.raises(SonotypeError, match="sonotype"):
        load_backbone(BackboneConfig("openai/whisper-base"))


def test_missing_weights_in_a_local_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"lacks config\.json, preprocessor_config\.json, model\.safetensors"):
        load_backbone(BackboneConfig(str(tmp_path)))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"lacks preprocessor_config\.json, model\.safetensors$|lacks preprocessor"):
        load_backbone(BackboneConfig(str(tmp_path)))


def test_hub_model_not_in_cache_offline_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for local_only in (True, False):  # offline mode wins over local_files_only=False
        with pytest.raises(ModelError) as err:
            load_backbone(BackboneConfig("microsoft/wavlm-base-plus", local_files_only=local_only))
        msg = str(err.value)
        assert "config.json" in msg and "model.safetensors" in msg
        assert "hf download microsoft/wavlm-base-plus" in msg and "local_files_only" in msg


# -- extraction ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["whisper", "wav2vec2", "wavlm", "ast"])
def test_embed_shapes_layers_and_batch_equals_alone(models: dict[str, Path], name: str) -> None:
    cfg = BackboneConfig(str(models[name]), batch_size=3)
    bb = load_backbone(cfg)
    assert (bb.n_hidden, bb.dim, bb.weights_digest is not None) == (3, 32, True)
    assert batchable(bb) == (name != "wav2vec2")
    waves = _waves()
    X = embed(bb, waves, SR, cfg)
    assert X.shape == (3, 32) and X.dtype == np.float32 and np.isfinite(X).all()
    alone = np.concatenate([embed(bb, [w], SR, cfg) for w in waves])
    np.testing.assert_allclose(X, alone, atol=2e-5)  # a clip's embedding does not depend on its batch
    assert np.abs(X[0] - X[1]).max() > 1e-3  # and different clips differ
    Xall = embed(bb, waves, SR, BackboneConfig(cfg.model, layer="all"))
    assert Xall.shape == (3, 3, 32)
    np.testing.assert_allclose(Xall[:, -1], X, atol=2e-5)
    np.testing.assert_allclose(Xall[:, 1], embed(bb, waves, SR, BackboneConfig(cfg.model, layer=1)), atol=2e-5)
    Xms = embed(bb, waves, SR, BackboneConfig(cfg.model, pooling="meanstd"))
    assert Xms.shape == (3, 64) and (Xms[:, 32:] >= 0).all()
    np.testing.assert_allclose(Xms[:, :32], X, atol=2e-5)
    with pytest.raises(ConfigError, match="out of range"):
        embed(bb, waves, SR, BackboneConfig(cfg.model, layer=5))
    with pytest.raises(ConfigError, match="attention"):
        embed(bb, waves, SR, BackboneConfig(cfg.model, pooling="attention"))
    with pytest.raises(ConfigError, match="build_waveform_dataset"):
        build_embedding_dataset([], BackboneConfig(cfg.model, finetune_layers=1), backbone=bb)


def test_embed_resamples_to_the_backbone_rate(models: dict[str, Path]) -> None:
    cfg = BackboneConfig(str(models["wavlm"]))
    bb = load_backbone(cfg)
    t = np.arange(22050) / 22050
    y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    (w,) = prepare_waveforms(bb, [y], 22050, cfg)
    assert w.size == 16000
    np.testing.assert_allclose(embed(bb, [y], 22050, cfg), embed(bb, [w], SR, cfg), atol=1e-5)


def test_mean_pooling_ignores_padding() -> None:
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = pool(x, valid, "meanstd")
    np.testing.assert_allclose(out[0, :3], x[0, :2].mean(0))
    np.testing.assert_allclose(out[0, 3:], x[0, :2].std(0, unbiased=False))
    np.testing.assert_allclose(out[1, :3], x[1].mean(0))


def test_whisper_runs_on_real_length_and_matches_the_stock_encoder_at_30s(models: dict[str, Path]) -> None:
    tf = pytest.importorskip("transformers")
    cfg = BackboneConfig(str(models["whisper"]))
    bb = load_backbone(cfg)
    assert "WhisperEncoder" in type(bb.model).__name__ and type(bb.model).__module__ == "sonotype.backbones.whisper"
    # the reference: transformers' own encoder and feature extractor on the same files
    enc = tf.WhisperModel.from_pretrained(models["whisper"]).get_encoder().eval()
    fe = tf.WhisperFeatureExtractor.from_pretrained(models["whisper"])
    (w30,) = _waves(1, (30 * SR,))
    with torch.no_grad():
        # exactly 30 s: our real-length path and Hugging Face's padded forward are the same computation
        states, valid = hidden_states(bb, [w30])
        ref = enc(fe(w30, sampling_rate=SR, return_tensors="pt")["input_features"], output_hidden_states=True)
        assert valid.shape == (1, 1500) and bool(valid.all())
        assert len(ref.hidden_states) == len(states) == 3
        for a, b in zip(ref.hidden_states, states, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        # 2 s: 100 positions instead of 1500; mel frames are those of the padded input (bar the
        # last, whose STFT window reaches into the padding); only attention to padding differs
        w2 = w30[: 2 * SR]
        short, valid2 = hidden_states(bb, [w2])
        padded = enc(fe(w2, sampling_rate=SR, return_tensors="pt")["input_features"]).last_hidden_state
    assert short[-1].shape == (1, 100, 32) and bool(valid2.all())
    mel = fe(w2, sampling_rate=SR, padding="longest", return_tensors="np")["input_features"][0]
    mel30 = fe(w2, sampling_rate=SR, return_tensors="np")["input_features"][0]
    assert mel.shape == (80, 200)
    np.testing.assert_array_equal(mel[:, :-1], mel30[:, :199])
    # the first layer's input (conv + positions) agrees away from the end; attention then mixes in padding
    torch.testing.assert_close(short[0][:, :99], _whisper_embed(enc, mel30)[:, :99], rtol=0, atol=1e-5)
    assert (short[-1] - padded[:, :100]).abs().max() > 1e-3


def _whisper_embed(enc: torch.nn.Module, mel: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        x = torch.from_numpy(mel)[None]
        h = torch.nn.functional.gelu(enc.conv2(torch.nn.functional.gelu(enc.conv1(x)))).permute(0, 2, 1)
        return h + enc.embed_positions.weight[: h.shape[1]]


# -- corpus embeddings, cache, heads ------------------------------------------------------


def _synthetic_clips(root: Path, n_per_class: int = 6) -> list[Clip]:
    """Two classes a random network can tell apart: low hum vs bright noise."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n_per_class):
        t = np.arange(int(SR * (0.6 + 0.1 * i))) / SR
        hum = 0.4 * np.sin(2 * np.pi * (110 + 10 * i) * t) + 0.01 * rng.standard_normal(t.size)
        hiss = 0.2 * rng.standard_normal(t.size)
        for label, y in (("hum", hum), ("hiss", hiss)):
            p = write_wav(root / f"{label}_{i}.wav", y.astype(np.float32), SR)
            clips.append(Clip(str(p), label, f"g{i}", "synthetic"))
    return clips


@pytest.mark.realdata
def test_embedding_dataset_on_ravdess_is_cached(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(data_dir("ravdess", "Actor_01").glob("*.flac"))[:3] + sorted(
        data_dir("ravdess", "Actor_02").glob("*.flac")
    )[:3]
    clips = [Clip(str(f), f.name.split("-")[2], f.parent.name, "ravdess") for f in files]
    bad = write_wav(tmp_path / "bad.wav", np.zeros(10, np.float32), SR)
    bad.write_bytes(b"RIFF not really")
    clips.append(Clip(str(bad), "01", "x", "ravdess"))
    cfg = BackboneConfig(str(models["whisper"]), batch_size=4, max_seconds=3.0)
    ds = build_embedding_dataset(clips, cfg, cache_dir=tmp_path / "cache", progress=True)
    assert ds.X.shape == (6, 32) and ds.X.dtype == np.float32
    assert ds.item_clip.tolist() == list(range(6)) and [c.path for c in ds.clips] == [str(f) for f in files]
    assert len(ds.skipped) == 1 and ds.skipped[0].path == str(bad)
    assert ds.feature_names[:2] == ["emb_mean_0", "emb_mean_1"]
    stored = sorted((tmp_path / "cache" / "embeddings").rglob("*.npz"))
    assert len(stored) == 6

    import sonotype.items.embeddings as dsmod

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("cache miss: the backbone ran again")

    monkeypatch.setattr(dsmod, "embed_all_layers", boom)
    again = build_embedding_dataset(clips[:6], cfg, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.X, ds.X)
    layers = build_embedding_dataset(clips[:6], BackboneConfig(cfg.model, max_seconds=3.0, layer="all"),
                                     cache_dir=tmp_path / "cache")  # another layer: same cache entries
    assert layers.X.shape == (6, 3, 32)
    np.testing.assert_array_equal(layers.X[:, -1], ds.X)
    with pytest.raises(AssertionError, match="cache miss"):  # other settings are another key
        build_embedding_dataset(clips[:1], BackboneConfig(cfg.model, max_seconds=2.0), cache_dir=tmp_path / "cache")


def _head(shape: tuple[int, int], n_classes: int) -> torch.nn.Module:
    from sonotype.models.heads import LayerWeightedMLP
    from sonotype.models.registry import MODELS, build_model

    if "layer-weighted-mlp" in MODELS:
        return build_model("layer-weighted-mlp", shape, n_classes, seed=0, hidden=[16], dropout=0.0)
    torch.manual_seed(0)  # registry line not added yet: the same model by class
    net = LayerWeightedMLP(shape, n_classes, hidden=(16,), dropout=0.0)
    net.input_shape = shape
    net.sonotype_spec = {"name": "layer-weighted-mlp", "input_shape": list(shape), "n_classes": n_classes,
                         "params": {"hidden": [16], "dropout": 0.0}}
    return net


def test_train_layer_weighted_head_save_reload_predict(models: dict[str, Path], tmp_path: Path) -> None:
    from sonotype.audio import load as load_audio
    from sonotype.backbones.load import backbone_record
    from sonotype.backbones.runtime import featurizer_for
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.scaling import Standardizer
    from sonotype.inference.modelio import read_model_dir, save_model

    clips = _synthetic_clips(tmp_path / "audio")
    cfg = BackboneConfig(str(models["wavlm"]), layer="all", batch_size=6)
    bb = load_backbone(cfg)
    ds = build_embedding_dataset(clips, cfg, backbone=bb)
    assert ds.X.shape == (12, 3, 32)
    labels = sorted({c.label for c in ds.clips})
    y = np.array([labels.index(c.label) for c in ds.clips])
    scaler = Standardizer().fit(ds.X)
    Xs = scaler.transform(ds.X).astype(np.float32)
    net = _head((3, 32), 2)
    res = fit(net, Xs, y, config=TrainConfig(lr=1e-2, max_epochs=30, batch_size=4, seed=0), n_classes=2,
              progress=False)
    assert res.history[-1]["accuracy"] >= 0.9
    assert math.isclose(float(net.layer_weights().sum()), 1.0, rel_tol=1e-5)
    proba = predict_proba(net, Xs)
    assert (proba.argmax(1) == y).mean() >= 0.9

    record = backbone_record(cfg)  # from the files alone, without loading the weights
    assert record == describe(bb, cfg)
    save_model(tmp_path / "model", network=net, labels=labels, feature_config=FeatureConfig(),
               representation=RepresentationConfig(), scaler=scaler, backbone=record)
    meta, tensors = read_model_dir(tmp_path / "model")
    assert meta["backbone"]["identity"]["weights_digest"] == bb.weights_digest
    again = _head((3, 32), 2)
    again.load_state_dict(tensors["network"])
    # prediction side: the recorded backbone is reloaded, checked, and embeds a file as in training
    feat = featurizer_for(meta)
    y0, _ = load_audio(clips[0].path, sr=feat.sample_rate)
    item = feat.items(y0)
    assert item.shape == (1, 3, 32)
    np.testing.assert_allclose(item[0], ds.X[0], atol=1e-5)
    p0 = predict_proba(again, scaler.transform(item).astype(np.float32))
    np.testing.assert_allclose(p0[0], proba[0], atol=1e-5)
    # another backbone (other weights, same shape) is refused
    other = dict(meta, backbone={**meta["backbone"], "config": {**meta["backbone"]["config"],
                                                               "model": str(models["wav2vec2"])}})
    with pytest.raises(ModelError, match="weights_digest"):
        featurizer_for(other)
    with pytest.raises(ModelError, match=r"cannot be loaded.*lacks"):
        featurizer_for(dict(meta, backbone={**meta["backbone"], "config": {"model": str(tmp_path)}}))


def test_finetune_top_layer_at_a_smaller_learning_rate(models: dict[str, Path], tmp_path: Path) -> None:
    clips = _synthetic_clips(tmp_path / "audio", n_per_class=4)
    cfg = BackboneConfig(str(models["wavlm"]), finetune_layers=1, finetune_lr=1e-4, pooling="attention")
    from sonotype.audio import load as load_audio
    from sonotype.items.embeddings import build_waveform_dataset

    waves = [load_audio(c.path, sr=SR)[0] for c in clips]
    bb_cfg = cfg.to_dict()
    net = FineTuneClassifier((2, SR), 2, backbone=bb_cfg, lr_scale=1e-4 / 1e-2, hidden=16, dropout=0.0)
    ds = build_waveform_dataset(clips, cfg, seconds=1.0, backbone=net.backbone)
    X = ds.X
    y = np.array([c.label == "hum" for c in ds.clips], dtype=np.int64)
    assert X.shape == (8, 2, SR) and X[0, 1].sum() == len(waves[0]) < SR  # 0.6 s clip: padded, masked
    np.testing.assert_array_equal(X[0, 0, : len(waves[0])], waves[0])
    layers = net.backbone.model.encoder.layers

    def linear_weights(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {n: m.weight.detach().clone() for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}

    before_top = linear_weights(layers[-1])
    before_low = {k: v.detach().clone() for k, v in layers[0].state_dict().items()}
    trainable = {k for k, p in net.named_parameters() if p.requires_grad}
    assert all(k.startswith(("deltas.", "attn.", "head.")) for k in trainable)
    assert {k.split(".")[0] for k in trainable} == {"deltas", "attn", "head"}
    state_keys = set(net.state_dict())
    assert not any("encoder.layers.0" in k for k in state_keys)  # frozen weights are not saved
    res = fit(net, X, y, config=TrainConfig(lr=1e-2, max_epochs=3, batch_size=4, seed=0, plateau_patience=None),
              n_classes=2, progress=False)
    assert len(res.history) == 3 and np.isfinite(res.history[-1]["loss"])
    steps = 3 * 2  # epochs x batches
    changes = [(w - before_top[n]).abs().max().item() for n, w in linear_weights(layers[-1]).items()]
    assert max(changes) > 0  # the top layer was fine-tuned
    assert max(changes) <= 1e-4 * steps * 1.01  # at finetune_lr per Adam step, not at the head's 1e-2
    for k, v in layers[0].state_dict().items():
        torch.testing.assert_close(v, before_low[k], rtol=0, atol=0)  # lower layers frozen
    # saved like any model (head + deltas only), rebuilt from model.json on a freshly loaded backbone
    from sonotype.backbones.load import backbone_record
    from sonotype.backbones.runtime import featurizer_for, network_for
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.inference.modelio import read_model_dir, save_model

    save_model(tmp_path / "ft", network=net, labels=["hiss", "hum"], feature_config=FeatureConfig(),
               representation=RepresentationConfig(), backbone=backbone_record(cfg))
    meta, tensors = read_model_dir(tmp_path / "ft")
    assert meta["architecture"]["name"] == "backbone-finetune"
    assert set(tensors["network"]) == set(net.state_dict())
    feat = featurizer_for(meta)
    twin = network_for(meta["architecture"], feat)
    twin.load_state_dict(tensors["network"])
    net.eval()
    twin.eval()
    item = feat.items(waves[0])
    assert item.shape == (1, 2, SR)
    np.testing.assert_array_equal(item, X[:1])
    with torch.no_grad():
        xb = torch.from_numpy(X[:3])
        torch.testing.assert_close(twin(xb), net(xb), rtol=0, atol=1e-5)


# -- prediction from a saved model directory ---------------------------------------------


def test_load_model_predicts_files_with_frozen_and_fine_tuned_backbones(models: dict[str, Path], tmp_path: Path) -> None:
    import json

    from sonotype.backbones.load import backbone_record
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.scaling import Standardizer
    from sonotype.inference.modelio import save_model
    from sonotype.inference.predict import load_model
    from sonotype.items.embeddings import build_waveform_dataset

    clips = _synthetic_clips(tmp_path / "audio", n_per_class=3)
    labels = ["hiss", "hum"]
    # frozen: every layer's mean embedding -> layer-weighted head, saved with its scaler
    cfg = BackboneConfig(str(models["wavlm"]), layer="all")
    ds = build_embedding_dataset(clips, cfg)
    y = np.array([labels.index(c.label) for c in ds.clips])
    scaler = Standardizer().fit(ds.X)
    net = _head((3, 32), 2)
    fit(net, scaler.transform(ds.X).astype(np.float32), y, config=TrainConfig(lr=1e-2, max_epochs=5, batch_size=3),
        n_classes=2, progress=False)
    want = predict_proba(net, scaler.transform(ds.X).astype(np.float32))
    save_model(tmp_path / "frozen", network=net, labels=labels, feature_config=FeatureConfig(),
               representation=RepresentationConfig(), scaler=scaler, backbone=backbone_record(cfg))
    clf = load_model(tmp_path / "frozen")
    assert clf.sample_rate == SR and clf.min_samples == 401
    pred = clf.predict(clips[1].path)
    np.testing.assert_allclose([pred.probabilities[k] for k in labels], want[1], atol=1e-5)
    assert pred.label == labels[int(want[1].argmax())] and len(pred.segments) == 1
    # fine-tuned: Whisper's top layer + attention pooling, trained on waveform arrays
    ft_cfg = BackboneConfig(str(models["whisper"]), finetune_layers=1, pooling="attention")
    ft = FineTuneClassifier((2, SR), 2, backbone=ft_cfg.to_dict(), lr_scale=0.01, hidden=8)
    wds = build_waveform_dataset(clips, ft_cfg, seconds=1.0, backbone=ft.backbone)
    fit(ft, wds.X, y, config=TrainConfig(lr=1e-2, max_epochs=1, batch_size=3), n_classes=2, progress=False)
    ft_want = predict_proba(ft, wds.X[:1])[0]
    save_model(tmp_path / "ft", network=ft, labels=labels, feature_config=FeatureConfig(),
               representation=RepresentationConfig(), backbone=backbone_record(ft_cfg))
    ft_pred = load_model(tmp_path / "ft").predict(clips[0].path)
    np.testing.assert_allclose([ft_pred.probabilities[k] for k in labels], ft_want, atol=1e-5)
    # a model whose recorded backbone is not the one found is refused, naming the difference
    mj = tmp_path / "frozen" / "model.json"
    meta = json.loads(mj.read_text())
    meta["backbone"]["config"]["model"] = str(models["wav2vec2"])
    mj.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"does not match.*weights_digest"):
        load_model(tmp_path / "frozen")
    meta["backbone"]["config"]["model"] = "nobody/not-cached"
    mj.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"cannot be loaded.*hf download nobody/not-cached"):
        load_model(tmp_path / "frozen")


@pytest.mark.parametrize("finetune", [0, 1])
def test_run_experiment_with_a_backbone_end_to_end(models: dict[str, Path], tmp_path: Path, finetune: int) -> None:
    """The pipeline with `backbone:` set: embeddings (or fine-tuning) -> head -> saved model -> predict."""
    from sonotype.corpora.demo import generate_demo
    from sonotype.inference.predict import load_model
    from sonotype.pipeline.config import load_config
    from sonotype.pipeline.experiment import run_experiment

    root = generate_demo(tmp_path / "demo", seed=0, n_speakers=3, takes=2, seconds=1.0)
    head = "layer-weighted-mlp" if not finetune else "mlp"
    sets = [f"corpus.root={root}", f"cache_dir={tmp_path / 'cache'}", "protocol=holdout:0.34", "train.max_epochs=3",
            "train.num_threads=1", "evaluate.bootstrap=0", "augment.copies=0",
            f"backbone={{model: {models['wavlm']}, layer: all, pooling: mean, max_seconds: 1.0, finetune_layers: {finetune}}}"]
    if finetune:
        sets.append("model.params={hidden: 16}")
    else:
        sets.append(f"model.name={head}")
    cfg = load_config(None, ["corpus.name=demo", *sets])
    m = run_experiment(cfg, tmp_path / "run", progress=False)
    assert m["n_test_clips"] > 0 and 0.0 <= m["balanced_accuracy"] <= 1.0
    meta = (tmp_path / "run" / "model" / "model.json").read_text()
    assert str(models["wavlm"]) in meta  # the backbone is recorded
    import json

    doc = json.loads(meta)
    assert doc["features"] is None and doc["representation"] is None  # no unused frame settings (sr 22050, ...)
    assert m["representation"] == "backbone" and m["extract_seconds"] > 0 and m["train_seconds"] > 0
    assert m["backbone"]["digest"] == doc["backbone"]["identity"]["weights_digest"]
    assert (m["backbone"]["model"], m["backbone"]["layers"], m["backbone"]["pooling"]) == (str(models["wavlm"]), "all", "mean")
    clf = load_model(tmp_path / "run" / "model")
    wav = sorted(root.rglob("*.wav"))[0]
    pred = clf.predict(wav)
    assert pred.label in clf.labels and abs(sum(pred.probabilities.values()) - 1) < 1e-5


# -- encoders you can trust: checked checkpoints, references, digests, moved folders ------------


def _rekey(src: Path, dst: Path, rename) -> Path:
    """A copy of backbone folder ``src`` whose safetensors keys are ``rename(key)`` (None drops one)."""
    import shutil

    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    for f in ("config.json", "preprocessor_config.json"):
        shutil.copy(src / f, dst / f)
    state = load_file(str(src / "model.safetensors"))
    save_file({rename(k): v.contiguous() for k, v in state.items() if rename(k) is not None}, str(dst / "model.safetensors"))
    return dst


def _bare(key: str) -> str | None:
    """What a bare WhisperEncoder.save_pretrained writes: encoder keys without any prefix."""
    for p in ("model.encoder.", "encoder."):
        if key.startswith(p):
            return key[len(p):]
    return None


def test_a_bare_whisper_encoder_save_is_refused_naming_cause_and_fix(models: dict[str, Path], tmp_path: Path) -> None:
    bad = _rekey(models["whisper"], tmp_path / "bare", _bare)
    with pytest.raises(ModelError) as err:
        load_backbone(BackboneConfig(str(bad)))
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg
    assert "of the encoder's 37 parameters are not in the checkpoint" in msg  # every one: 2 layers x 15 + 7
    assert "missing: conv1.weight" in msg and "unexpected: conv1.bias" in msg
    assert "bare WhisperEncoder" in msg and "'model.encoder.' + k" in msg
    from sonotype.backbones.load import backbone_record

    with pytest.raises(ModelError, match="bare WhisperEncoder"):  # the record is refused too, before any training
        backbone_record(BackboneConfig(str(bad)))
    # one tensor short is refused as well, by name
    short = _rekey(models["whisper"], tmp_path / "short", lambda k: None if k == "encoder.layers.1.fc2.bias" else k)
    with pytest.raises(ModelError, match=r"1 of the encoder's 37 parameters .*missing: layers\.1\.fc2\.bias"):
        load_backbone(BackboneConfig(str(short)))


def test_a_mis_keyed_ssl_checkpoint_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    bad = _rekey(models["wavlm"], tmp_path / "wavlm", lambda k: "other." + k)
    with pytest.raises(ModelError, match=r"parameters are not in the checkpoint; missing: .*random weights"):
        load_backbone(BackboneConfig(str(bad)))


def test_digest_is_of_the_encoder_tensors_not_the_files(models: dict[str, Path], tmp_path: Path) -> None:
    full = load_backbone(BackboneConfig(str(models["whisper"])))  # WhisperModel: encoder.* and decoder.*
    enc_only = _rekey(models["whisper"], tmp_path / "enc", lambda k: "model." + k if k.startswith("encoder.") else None)
    copy = load_backbone(BackboneConfig(str(enc_only)))
    assert copy.weights_digest == full.weights_digest and len(full.weights_digest) == 32
    half = _rekey(models["whisper"], tmp_path / "half", lambda k: k)
    from safetensors.torch import load_file, save_file

    state = load_file(str(half / "model.safetensors"))
    state["encoder.layer_norm.bias"] = state["encoder.layer_norm.bias"] + 1e-3
    save_file(state, str(half / "model.safetensors"))
    assert load_backbone(BackboneConfig(str(half))).weights_digest != full.weights_digest


def test_bad_references_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    cases = [
        ("./no/such/folder", ModelError, rf"backbone folder {tmp_path}/no/such/folder does not exist; if it moved, pass "
                                          r"--backbone-dir"),
        ("bad id with spaces", ConfigError, r"not a folder .*not a known name \(whisper-tiny.*not a valid Hugging Face hub id"),
        ("org/na--me", ConfigError, "not a valid Hugging Face hub id"),
        ("whisper-base", ModelError, r"'whisper-base' \(openai/whisper-base\) is not downloaded.*sonotype backbone fetch "
                                     r"whisper-base"),
        ("models/whisper-base", ModelError, rf"no folder at {tmp_path}/models/whisper-base.*backbone fetch"),
    ]
    for ref, exc, match in cases:
        with pytest.raises(exc, match=match) as err:
            load_backbone(BackboneConfig(ref))
        assert "\n" not in str(err.value) and "HFValidationError" not in str(err.value), ref
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ModelError, match="is a file; a backbone is a folder"):
        load_backbone(BackboneConfig("afile"))


def test_relative_folders_are_recorded_absolute_and_moved_ones_found_by_digest(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from sonotype.backbones.load import backbone_record
    from sonotype.features.scaling import Standardizer
    from sonotype.inference.modelio import read_model_dir, save_model
    from sonotype.inference.predict import load_model

    shutil.copytree(models["whisper"], tmp_path / "work" / "enc")
    monkeypatch.chdir(tmp_path / "work")
    clips = _synthetic_clips(tmp_path / "audio", n_per_class=2)
    cfg = BackboneConfig("enc", pooling="meanstd")
    ds = build_embedding_dataset(clips, cfg)
    record = backbone_record(cfg)
    assert record["config"]["model"] == str(tmp_path / "work" / "enc")  # resolved, not "enc"
    net = _head_flat(ds.X.shape[1])
    save_model(tmp_path / "model", network=net, labels=["hiss", "hum"], feature_config=None, representation=None,
               scaler=Standardizer().fit(ds.X), backbone=record)
    meta, _ = read_model_dir(tmp_path / "model")
    assert meta["features"] is None and meta["representation"] is None  # no unused frame settings
    monkeypatch.chdir(tmp_path)  # from elsewhere: the absolute record still works
    want = load_model(tmp_path / "model").predict(clips[0].path).probabilities
    assert load_model(tmp_path / "model").info()["features"] is None
    shutil.move(tmp_path / "work" / "enc", tmp_path / "moved" / "deep" / "enc")
    with pytest.raises(ModelError, match=rf"does not exist.*No folder in .* holds an encoder with digest "
                                         rf"{record['identity']['weights_digest']}; pass --backbone-dir"):
        load_model(tmp_path / "model")
    got = load_model(tmp_path / "model", backbone_dirs=[tmp_path / "moved"])
    assert got.backbone.backbone.path == str(tmp_path / "moved" / "deep" / "enc")
    np.testing.assert_allclose(list(got.predict(clips[0].path).probabilities.values()), list(want.values()), atol=1e-6)
    monkeypatch.setenv("SONOTYPE_BACKBONES", str(tmp_path / "moved"))
    assert load_model(tmp_path / "model").backbone.backbone.path == str(tmp_path / "moved" / "deep" / "enc")
    # the CLI: --backbone-dir on predict
    from typer.testing import CliRunner

    from sonotype.cli import app

    monkeypatch.delenv("SONOTYPE_BACKBONES")
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "model"), clips[0].path, "--json",
                                   "--backbone-dir", str(tmp_path / "moved")])
    assert res.exit_code == 0, res.output
    assert '"label"' in res.output


def _head_flat(width: int) -> torch.nn.Module:
    from sonotype.models.registry import build_model

    return build_model("mlp", (width,), 2, hidden=[8])


def test_layer_and_pooling_changes_cost_no_encoder_pass(models: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sonotype.backbones.extract as ext

    calls = []
    real = ext._STATES["whisper"]
    monkeypatch.setitem(ext._STATES, "whisper", lambda bb, waves: calls.append(len(waves)) or real(bb, waves))
    clips = _synthetic_clips(tmp_path / "audio", n_per_class=3)
    base = BackboneConfig(str(models["whisper"]), batch_size=4)
    bb = load_backbone(base)
    stats: dict = {}
    first = build_embedding_dataset(clips, base, backbone=bb, stats=stats)  # cache_dir None: the default cache
    assert sum(calls) == 6 and stats["computed"] == 6 and stats["audio_seconds"] > 3
    from sonotype.utils.paths import default_cache_dir

    assert len(list(default_cache_dir().glob("embeddings/v2/*/*.npz"))) == 6  # $SONOTYPE_CACHE (see _own_cache)
    calls.clear()
    variants = {}
    for layer in ("last", 0, 1, "all"):
        for pooling in ("mean", "meanstd"):
            st: dict = {}
            variants[layer, pooling] = build_embedding_dataset(clips, BackboneConfig(base.model, layer=layer, pooling=pooling),
                                                               backbone=bb, stats=st).X
            assert st["cached"] == 6 and st["computed"] == 0
    assert calls == []  # eight settings, not one encoder pass
    np.testing.assert_array_equal(variants["last", "mean"], first.X)
    assert variants["all", "meanstd"].shape == (6, 3, 64) and variants[1, "mean"].shape == (6, 32)
    np.testing.assert_array_equal(variants["all", "meanstd"][:, 1, :32], variants[1, "mean"])
    fresh = embed(bb, [load_audio_16k(clips[0].path)], SR, BackboneConfig(base.model, layer=0, pooling="meanstd"))
    np.testing.assert_allclose(variants[0, "meanstd"][0], fresh[0], atol=1e-5)
    calls.clear()
    # the same encoder from another folder (same digest) hits the same entries
    import shutil

    shutil.copytree(models["whisper"], tmp_path / "copy")
    st = {}
    build_embedding_dataset(clips, BackboneConfig(str(tmp_path / "copy")), stats=st)
    assert st["cached"] == 6 and calls == []
    build_embedding_dataset(clips[:2], base, backbone=bb, cache=False)
    assert sum(calls) == 2  # cache=False: computed


def load_audio_16k(path: str) -> np.ndarray:
    from sonotype.audio import load as load_audio

    return load_audio(path, sr=SR)[0]


def test_progress_lines_when_stderr_is_not_a_terminal(models: dict[str, Path], tmp_path: Path) -> None:
    import io

    from rich.console import Console

    clips = _synthetic_clips(tmp_path / "audio", n_per_class=5)
    buf = io.StringIO()
    build_embedding_dataset(clips, BackboneConfig(str(models["whisper"]), batch_size=1), progress=True,
                            console=Console(file=buf, force_terminal=False), cache=False)
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        build_embedding_dataset(clips, BackboneConfig(str(models["whisper"]), batch_size=1), progress=True,
                                console=Console(file=io.StringIO(), force_terminal=False), cache=False)
    lines = err.getvalue().strip().splitlines()
    assert 5 <= len(lines) <= 12, lines  # about one line per 10 %, and a last one
    assert lines[0].startswith("embedding whisper: 1/10 clips (10%)") or lines[0].startswith("embedding whisper: 2/10")
    assert "clips/s" in lines[0] and "audio-s/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("embedding whisper: 10/10 clips (100%)") and "done in" in lines[-1]


def test_whisper_loads_without_importing_transformers(models: dict[str, Path]) -> None:
    import subprocess

    code = (f"import sys; from sonotype.backbones.config import BackboneConfig; from sonotype.backbones.load import load_backbone; "
            f"bb = load_backbone(BackboneConfig({str(models['whisper'])!r})); "
            "print('transformers' in sys.modules, bb.n_hidden)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "3"]


# -- the real encoder (../shared/models/whisper-base) -----------------------------------------

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "whisper-base"
needs_real = pytest.mark.skipif(not (REAL / "model.safetensors").is_file(), reason="needs ../shared/models/whisper-base")


@pytest.mark.realdata
@needs_real
def test_real_whisper_mis_keyed_copy_is_refused(tmp_path: Path) -> None:
    bad = _rekey(REAL, tmp_path / "bare", _bare)  # 41 MB, as a bare WhisperEncoder.save_pretrained writes it
    with pytest.raises(ModelError, match=r"97 of the encoder's 97 parameters are not in the checkpoint.*bare WhisperEncoder"):
        load_backbone(BackboneConfig(str(bad)))


@pytest.mark.realdata
@needs_real
def test_real_whisper_matches_transformers_on_a_ravdess_clip() -> None:
    tf = pytest.importorskip("transformers")
    clip = sorted(data_dir("ravdess", "Actor_01").glob("*.flac"))[0]
    y = load_audio_16k(str(clip))
    bb = load_backbone(BackboneConfig(str(REAL)))
    assert (bb.n_hidden, bb.dim) == (7, 512)
    ours = embed(bb, [y], SR, BackboneConfig(str(REAL), layer="all", pooling="meanstd"))
    import dataclasses

    ref_enc = tf.WhisperModel.from_pretrained(REAL).get_encoder().eval()
    ref_fe = tf.WhisperFeatureExtractor.from_pretrained(REAL)
    ref = embed(dataclasses.replace(bb, model=ref_enc, feature_extractor=ref_fe), [y], SR,
                BackboneConfig(str(REAL), layer="all", pooling="meanstd"))
    assert ours.shape == (1, 7, 1024)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.realdata
@needs_real
def test_real_whisper_reproduces_a_stored_reference_embedding() -> None:
    """Recorded with this code on 03-01-01-01-01-01-01.flac (after the transformers parity test above passed)."""
    clip = data_dir("ravdess", "Actor_01") / "03-01-01-01-01-01-01.flac"
    bb = load_backbone(BackboneConfig(str(REAL)))
    assert bb.weights_digest == "f4b429617cd45c03a3843706876837f9"  # the encoder tensors of ../shared/models
    X = embed(bb, [load_audio_16k(str(clip))], SR, BackboneConfig(str(REAL), layer="all", pooling="meanstd"))[0]
    mean_norms = [16.0529, 12.2908, 12.5122, 13.2391, 17.1589, 26.5497, 18.7674]
    std_norms = [11.3172, 6.9586, 7.4238, 8.3581, 52.7593, 55.9860, 24.0812]
    np.testing.assert_allclose(np.linalg.norm(X[:, :512], axis=1), mean_norms, rtol=2e-4)
    np.testing.assert_allclose(np.linalg.norm(X[:, 512:], axis=1), std_norms, rtol=2e-4)
    np.testing.assert_allclose(X[-1, :4], [-0.07113, -0.20209, 0.05432, 0.05352], atol=2e-4)


def test_frame_features_print_progress_lines_off_terminal(tmp_path: Path) -> None:
    import contextlib
    import io

    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.extract import build_dataset

    clips = _synthetic_clips(tmp_path / "audio", n_per_class=5)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # not a terminal: no bar, plain lines
        ds = build_dataset(clips, FeatureConfig(sr=SR), RepresentationConfig(), progress=True)
    assert len(ds.clips) == 10
    lines = err.getvalue().strip().splitlines()
    assert lines[0].startswith("features: 1/10 files (10%)") and "files/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("features: 10/10 files (100%)") and "done in" in lines[-1]
    assert 5 <= len(lines) <= 11


def test_progress_line_says_stopped_when_extraction_ends_early(tmp_path: Path, monkeypatch) -> None:
    """An error (or Ctrl-C) mid-extraction ends with "stopped after", never "done in"."""
    import contextlib
    import io

    import sonotype.features.extract as fx
    from sonotype.features.config import FeatureConfig, RepresentationConfig
    from sonotype.features.extract import build_dataset

    clips = _synthetic_clips(tmp_path / "audio", n_per_class=5)
    real, calls = fx.extract_clip, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fx, "extract_clip", flaky)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(KeyboardInterrupt):
        build_dataset(clips, FeatureConfig(sr=SR), RepresentationConfig(), progress=True, jobs=1)
    last = err.getvalue().strip().splitlines()[-1]
    assert last.startswith("features: 3/10 files (30%)") and " - stopped after " in last and "done" not in last
