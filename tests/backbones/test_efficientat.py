"""EfficientAT mn04: front-end parity, a tiny random network end to end, and the real AudioSet weights."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import get_window, lfilter

from conftest import DATA, data_dir
from sonotype.backbones import efficientat as E
from sonotype.errors import ModelError, ParameterError

REAL = DATA.parent / "models" / "efficientat-mn04"
TINY_WIDTH, TINY_LABELS = 0.1, ["alpha", "beta, gamma", "delta", "epsilon", "zeta"]


# ----------------------------------------------------------------------------------- front end
def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """EfficientAT's eval front end from first principles: scipy filter, numpy frames and FFT,
    Kaldi triangles drawn by interpolation in the mel domain, all float64."""
    sr, n_fft, hop = 32000, 1024, 320
    fmax = sr // 2 - 2000 // 2  # AugmentMelSTFT(fmax=None, fmax_aug_range=2000) at eval time
    y = lfilter([1.0, -0.97], [1.0], x.astype(np.float64))[1:]  # y[n] = x[n+1] - 0.97 x[n]
    y = np.pad(y, n_fft // 2, mode="reflect")
    win = np.zeros(n_fft)
    win[112:912] = get_window("hann", 800, fftbins=False)  # symmetric, centred in the FFT frame
    frames = sliding_window_view(y, n_fft)[::hop] * win
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, 513)

    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    edges = np.linspace(mel(0.0), mel(fmax), 128 + 2)
    bin_mel = np.array([mel(k * sr / n_fft) for k in range(n_fft // 2)])
    bank = np.zeros((128, n_fft // 2 + 1))  # the Nyquist bin gets no weight (EfficientAT's padding)
    for b in range(128):
        bank[b, : n_fft // 2] = np.interp(bin_mel, edges[b : b + 3], [0.0, 1.0, 0.0], left=0.0, right=0.0)
    return (np.log(bank @ power.T + 1e-5) + 4.5) / 5.0


@pytest.mark.parametrize("n", [5 * 32000, 32000 + 123, 700])
def test_log_mel_matches_an_independent_float64_computation(n: int) -> None:
    t = np.arange(n) / 32000
    rng = np.random.default_rng(n)
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t + 1500 * t**2)) + 0.01 * rng.standard_normal(n)
    chirp[: n // 5] *= 1e-3  # a near-silent start: bands close to the 1e-5 floor
    got = E.log_mel(chirp.astype(np.float32))
    ref = _reference_log_mel(chirp.astype(np.float32))
    assert got.shape == ref.shape == (128, 1 + (n - 1) // 320) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_front_end_settings_are_the_originals_eval_settings() -> None:
    assert (E.SAMPLE_RATE, E.N_FFT, E.WIN_LENGTH, E.HOP_LENGTH, E.N_MELS) == (32000, 1024, 800, 320, 128)
    assert (E.FMIN, E.FMAX, E.PREEMPHASIS) == (0.0, 15000.0, 0.97)
    banks = E.kaldi_mel_banks()
    assert banks.shape == (128, 513) and not banks[:, -1].any() and np.isclose(banks.max(), 1.0, atol=0.05)
    with pytest.raises(ParameterError, match="1-D"):
        E.log_mel(np.zeros((2, 100)))


# ------------------------------------------------------------------------------- tiny network
def _tiny_pt(folder: Path, drop: str | None = None) -> tuple[Path, Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = E.MN(TINY_WIDTH, len(TINY_LABELS)).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is really tested
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, torch.nn.Linear):  # logits spread enough to rank the classes
                m.weight.normal_(0, 0.3)
    state = model.state_dict()
    if drop:
        del state[drop]
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "tiny.pt")
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        w.writerows([i, f"/m/{i}", name] for i, name in enumerate(TINY_LABELS))
    return folder / "tiny.pt", folder / "labels.csv", model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    root = tmp_path_factory.mktemp("effat")
    pt, labels, model = _tiny_pt(root / "src")
    return E.convert(pt, labels, root / "tiny", name="tiny", width_mult=TINY_WIDTH), model


def _clip(seconds: float, sr: int = 22050, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_mn04_architecture_matches_the_released_state_dict_layout() -> None:
    sd = E.MN(0.4, 527).state_dict()
    assert len(sd) == 312 and sd["features.16.0.weight"].shape == (384, 64, 1, 1)
    assert sd["features.4.block.2.conc_se_layers.0.fc1.weight"].shape == (8, 32)
    assert sd["classifier.2.weight"].shape == (512, 384) and sd["classifier.5.weight"].shape == (527, 512)
    assert "features.1.block.2.0.weight" not in sd  # block 1 has no expansion conv


def test_tiny_round_trip_shapes_and_identical_outputs(tiny: tuple[Path, torch.nn.Module]) -> None:
    folder, model = tiny
    enc = E.load(folder)
    y = _clip(5.0)
    out = enc.embed(y, 22050)
    assert {k: v.shape for k, v in out.items()} == {
        "pooled": (96,), "features.3": (8,), "features.6": (8,), "features.12": (16,), "features.15": (16,),
        "probabilities": (5,)}
    direct = E.EfficientATEncoder(model, TINY_LABELS).embed(y, 22050)
    for k in out:
        np.testing.assert_array_equal(out[k], direct[k])
    # the BatchNorm-folded inference copy computes the same function as the module itself
    import soxr

    mel = torch.from_numpy(E.log_mel(soxr.resample(y, 22050, 32000, quality="HQ")))[None, None]
    with torch.inference_mode():
        ref = model(mel)
    np.testing.assert_allclose(out["pooled"], ref["pooled"][0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], ref["probabilities"][0].numpy(), atol=1e-5)
    tags = enc.tag(y, 22050, top=3)
    assert [n for n, _ in tags] == [TINY_LABELS[i] for i in np.argsort(-out["probabilities"])[:3]]
    assert enc.labels[1] == "beta, gamma"


def test_batch_equals_alone_and_long_clips_average_windows(tiny: tuple[Path, torch.nn.Module]) -> None:
    enc = E.load(tiny[0])
    waves = [_clip(2.0, seed=1), _clip(3.0, seed=2), _clip(2.0, seed=3)]
    batch = enc.embed_batch(waves, 22050)
    for w, b in zip(waves, batch):
        alone = enc.embed(w, 22050)
        for k in alone:
            np.testing.assert_allclose(b[k], alone[k], rtol=1e-5, atol=1e-6)
    sr = E.SAMPLE_RATE  # no resampling, so windows cut here are the ones embed cuts: 61 s -> 6 x ~10 s
    long = _clip(61.0, sr=sr) * np.linspace(0.01, 1.0, 61 * sr, dtype=np.float32)  # windows differ
    windows = [enc.embed(p, sr) for p in np.array_split(long, 6)]
    got = enc.embed(long, sr)
    assert not np.allclose(windows[0]["features.3"], windows[1]["features.3"], atol=1e-2)
    for k in got:
        np.testing.assert_allclose(got[k], np.mean([w[k] for w in windows], axis=0), rtol=1e-4, atol=1e-6)
    with pytest.raises(ParameterError, match="mono"):
        enc.embed(np.zeros((2, 1000), np.float32), sr)


def test_tampered_tensors_are_refused(tiny: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny[0], bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-3] ^= 0x01  # one bit of the last tensor's bytes (the JSON header is at the start)
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="digest"):
        E.load(bad)


def test_convert_names_a_missing_key_and_refuses_a_fake_mn04(tmp_path: Path) -> None:
    pt, labels, _ = _tiny_pt(tmp_path / "src", drop="features.7.block.1.1.running_var")
    with pytest.raises(ModelError, match=r"missing keys \['features\.7\.block\.1\.1\.running_var'\]"):
        E.convert(pt, labels, tmp_path / "out", name="tiny", width_mult=TINY_WIDTH)
    pt, labels, _ = _tiny_pt(tmp_path / "src2")
    with pytest.raises(ModelError, match=r"not an EfficientAT mn \(width 0.4\)"):  # tiny tensors as mn04
        E.convert(pt, labels, tmp_path / "out", name="tiny", width_mult=0.4)
    state = torch.load(pt, weights_only=True)
    torch.save({**state, "classifier.5.bias": torch.zeros(6)}, tmp_path / "src2" / "shape.pt")
    with pytest.raises(ModelError, match=r"'classifier.5.bias' is torch.float32 \(6,\), expected torch.float32 \(5,\)"):
        E.convert(tmp_path / "src2" / "shape.pt", labels, tmp_path / "out", name="tiny", width_mult=TINY_WIDTH)
    with pytest.raises(ModelError, match="not the released mn04_as"):
        E.convert(pt, labels, tmp_path / "out", width_mult=TINY_WIDTH)
    out = E.convert(pt, labels, tmp_path / "out", name="tiny", width_mult=TINY_WIDTH)
    with pytest.raises(ModelError, match="already exists"):
        E.convert(pt, labels, out, name="tiny", width_mult=TINY_WIDTH)
    E.convert(pt, labels, out, name="tiny", width_mult=TINY_WIDTH, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src", "src2"]  # no temporary left
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_tensor_digest_depends_on_values_names_and_dtypes() -> None:
    a = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3), "y": torch.tensor(3)}
    d = E.tensor_digest(a)
    assert d == E.tensor_digest(dict(reversed(list(a.items()))))
    assert d != E.tensor_digest({"x": a["x"].reshape(3, 2), "y": a["y"]})
    assert d != E.tensor_digest({"x": a["x"].double(), "y": a["y"]})
    assert d != E.tensor_digest({"z": a["x"], "y": a["y"]})


# --------------------------------------------------------------------------------- real weights
# (category, clip of ESC-50 fold 4, AudioSet classes of which one must be in the top 5)
REAL_CLIPS = [
    ("cow", "4-181955-A-3", {"Cattle, bovinae", "Moo"}),
    ("dog", "4-183992-A-0", {"Dog", "Bark"}),
    ("rooster", "4-164064-A-1", {"Chicken, rooster", "Crowing, cock-a-doodle-doo"}),
    ("rain", "4-160999-A-10", {"Rain", "Rain on surface"}),
    ("siren", "4-102871-A-42", {"Siren"}),
    ("church_bells", "4-140034-A-46", {"Church bell"}),
    ("keyboard_typing", "4-158653-A-32", {"Computer keyboard", "Typing"}),
    ("crying_baby", "4-167077-B-20", {"Baby cry, infant cry"}),
    ("toilet_flush", "4-123680-A-18", {"Toilet flush"}),
    ("thunderstorm", "4-125072-A-19", {"Thunder"}),
    ("fireworks", "4-119647-C-48", {"Fireworks"}),
    ("crow", "4-145081-A-9", {"Crow", "Caw"}),
    ("sneezing", "4-157297-A-21", {"Sneeze"}),
    ("train", "4-165791-A-45", {"Train"}),
    ("door_wood_knock", "4-182034-A-30", {"Knock"}),
]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> E.EfficientATEncoder:
    if not (REAL / "mn04_as_mAP_432.pt").is_file():
        pytest.skip(f"EfficientAT mn04 weights not found at {REAL} (place ../shared/models beside the checkout)")
    out = E.convert(REAL / "mn04_as_mAP_432.pt", REAL / "class_labels_indices.csv", tmp_path_factory.mktemp("mn04") / "mn04")
    return E.load(out)


@pytest.mark.realdata
def test_real_state_dict_digest_is_the_release(real: E.EfficientATEncoder) -> None:
    state = torch.load(REAL / "mn04_as_mAP_432.pt", weights_only=True, map_location="cpu")
    assert E.tensor_digest(state) == E.MN04_TENSOR_DIGEST == real.config["tensor_digest"]
    assert len(real.labels) == 527 and real.labels[0] == "Speech" and real.config["license"] == "MIT"


@pytest.mark.realdata
def test_real_weights_tag_esc50_clips(real: E.EfficientATEncoder) -> None:
    audio = data_dir("esc50", "audio")
    waves = []
    for category, stem, expected in REAL_CLIPS:
        y, sr = sf.read(str(audio / f"{stem}.flac"), dtype="float32")
        top = real.tag(y, sr, top=5)
        names = [n for n, _ in top]
        assert expected & set(names), f"{category} {stem}: expected one of {expected} in the top 5, got {top}"
        assert max(p for n, p in top if n in expected) > 0.3, f"{category} {stem}: weak {top}"
        waves.append(y)
    # a batch of equal-length 5 s clips gives each clip's own numbers
    batch = real.embed_batch(waves[:4], sr)
    for w, b in zip(waves[:4], batch):
        np.testing.assert_allclose(b["probabilities"], real.embed(w, sr)["probabilities"], atol=1e-5)
        assert b["pooled"].shape == (384,) and b["features.15"].shape == (64,)
