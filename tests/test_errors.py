"""One meaning per exception class: bad arguments raise ParameterError naming the parameter and
value, at the public boundary; bad signal contents raise AudioError; no raw numpy/scipy error
escapes; and predict and featurize say the same thing about the same bad array."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import sonotype
from sonotype import audio
from sonotype.errors import (
    AudioError,
    ConfigError,
    CorpusError,
    DownloadError,
    ModelError,
    ParameterError,
    SonotypeError,
)
from sonotype.features import FeatureConfig, RepresentationConfig, featurize
from sonotype.features import spectral as S
from sonotype.features.frames import compute_frames
from sonotype.features.represent import window_frames
from sonotype.features.spectral import Spectrum
from sonotype.features.tonal import estimate_tuning, tonnetz
from sonotype.splits.split import make_splits
from test_predict import FC, SR, _train

SRC = Path(__file__).resolve().parents[1] / "src" / "sonotype"
NAN, INF = float("nan"), float("inf")


def test_no_bare_sonotype_error_is_raised_anywhere():
    """Every deliberate error is one of the specific children, so callers can catch by meaning."""
    bare = []
    for f in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                fn = node.exc.func
                if isinstance(fn, ast.Name) and fn.id == "SonotypeError":
                    bare.append(f"{f.relative_to(SRC)}:{node.lineno}")
    assert not bare, f"raise a specific child of SonotypeError instead: {bare}"


def test_the_classes_are_distinct_children():
    kids = [ParameterError, AudioError, ConfigError, CorpusError, ModelError, DownloadError]
    assert all(issubclass(k, SonotypeError) for k in kids)
    assert all(not issubclass(a, b) for a in kids for b in kids if a is not b)


@pytest.fixture(scope="module")
def sp() -> Spectrum:
    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    return Spectrum(y, FeatureConfig())


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda sp: S.contrast(sp, quantile=5.0), ("quantile", "5.0")),
        (lambda sp: S.contrast(sp, quantile=0.0), ("quantile", "0.0")),
        (lambda sp: S.contrast(sp, quantile=NAN), ("quantile", "nan")),
        (lambda sp: S.contrast(sp, quantile="0.1"), ("quantile", "'0.1'")),
        (lambda sp: S.flatness(sp, amin=0.0), ("amin", "0.0")),
        (lambda sp: S.flatness(sp, amin=-1.0), ("amin", "-1.0")),
        (lambda sp: S.power_to_db(np.ones(3), amin=0.0), ("amin", "0.0")),
        (lambda sp: S.power_to_db(np.ones(3), top_db=-1.0), ("top_db", "-1.0")),
        (lambda sp: S.mfcc_delta(sp, order=0), ("order", "0")),
        (lambda sp: S.mfcc_delta(sp, order=1.5), ("order", "1.5")),
        (lambda sp: S.mfcc_delta(sp, order=9), ("order=9", "width=9")),
        (lambda sp: S.mfcc_delta(sp, width=4), ("width", "4")),
        (lambda sp: S.mfcc_delta(sp, width=1), ("width", "1")),
        (lambda sp: Spectrum(np.zeros((2, 4096)), FeatureConfig()).mag, ("mono", "(2, 4096)")),
        (lambda sp: compute_frames(np.zeros((2, 22050), np.float32), FeatureConfig()), ("mono", "(2, 22050)")),
        (lambda sp: tonnetz(np.zeros(12)), ("tonnetz", "(12,)")),
        (lambda sp: estimate_tuning(np.zeros(100), sr=22050, n_fft=2048), ("(frames, 1025)", "(100,)")),
        (lambda sp: estimate_tuning(sp.power, sr=22050, n_fft=2048, fmin=500, fmax=100), ("fmin=500", "fmax=100")),
        (lambda sp: window_frames(100, 22050, 0, RepresentationConfig(kind="windows", window=1.0)), ("hop_length", "0")),
        (lambda sp: window_frames(100, -1, 512, RepresentationConfig(kind="windows", window=1.0)), ("sr", "-1")),
    ],
)
def test_feature_functions_name_the_bad_parameter(sp, call, names):
    with pytest.raises(ParameterError) as info:
        call(sp)
    for part in names:
        assert part in str(info.value)


def test_good_feature_arguments_still_work(sp):
    assert S.contrast(sp, quantile=0.5).shape == (sp.n_frames, 7)
    assert np.array_equal(S.power_to_db(np.ones(0)), np.ones(0))  # empty in, empty out
    d = S.mfcc_delta(sp, order=2, width=5)
    assert d.shape == sp.mfcc.shape and np.all(np.isfinite(d))
    short = Spectrum(np.zeros(2048, np.float32), FeatureConfig())  # 5 frames: no order-5 filter fits
    assert not S.mfcc_delta(short, order=5, width=9).any()


@pytest.fixture()
def wav(tmp_path: Path) -> Path:
    import soundfile as sf

    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(8000, np.float32), 8000)
    return p


@pytest.mark.parametrize(
    ("kw", "names"),
    [
        ({"sr": 0}, ("sr", "0")),
        ({"sr": -5}, ("sr", "-5")),
        ({"sr": 1.5}, ("sr", "1.5")),
        ({"sr": "22050"}, ("sr", "'22050'")),
        ({"offset": NAN}, ("offset", "nan")),
        ({"offset": INF}, ("offset", "inf")),
        ({"offset": -1}, ("offset", "-1")),
        ({"duration": NAN}, ("duration", "nan")),
        ({"duration": 0}, ("duration", "0")),
        ({"min_samples": -1}, ("min_samples", "-1")),
    ],
)
def test_load_names_the_bad_parameter(wav, kw, names):
    with pytest.raises(ParameterError) as info:
        audio.load(wav, **kw)
    for part in names:
        assert part in str(info.value)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ((np.zeros(100), 100, NAN), {}, "window=nan"),
        ((np.zeros(100), 100, INF), {}, "window=inf"),
        ((np.zeros(100), 100, 1.0), {"hop": -1.0}, "hop=-1.0"),
        ((np.zeros(100), NAN, 1.0), {}, "sr=nan"),
        ((np.float32(1.0), 100, 1.0), {}, r"time axis, got shape \(\)"),
        ((np.zeros(100), 100, 1.0), {"last": "trim"}, "'trim'"),
    ],
)
def test_segment_names_the_bad_parameter(args, kw, match):
    with pytest.raises(ParameterError, match=match):
        audio.segment(*args, **kw)


@pytest.mark.parametrize(
    ("y", "rates", "match"),
    [
        (np.zeros(100, np.float32), (22050, NAN), "nan"),  # soxr would spin for ever on a NaN rate
        (np.zeros(100, np.float32), (0, 22050), "0 -> 22050"),
        (np.zeros((2, 2, 100), np.float32), (22050, 16000), r"\(2, 2, 100\)"),
    ],
)
def test_resample_refuses_bad_rates_and_shapes(y, rates, match):
    with pytest.raises(ParameterError, match=match):
        audio.resample(y, *rates)


LABELS, GROUPS = ["a", "b"] * 10, [f"g{i % 5}" for i in range(20)]


@pytest.mark.parametrize(
    ("args", "cls", "match"),
    [
        ((5, GROUPS), ParameterError, "labels must be a sequence.*got int"),
        ((None, GROUPS), ParameterError, "labels must be a sequence.*got NoneType"),
        ((LABELS, "abc"), ParameterError, "groups must be a sequence.*got str"),
        ((np.zeros((2, 10)), GROUPS), ParameterError, r"labels must be one-dimensional.*\(2, 10\)"),
        ((LABELS, GROUPS, "kfold:50"), ParameterError, "k=50 needs at least 50 groups, got 5"),
        ((LABELS, GROUPS, "kfold:0"), ConfigError, "k"),
        ((LABELS, GROUPS, 5), ConfigError, "protocol must be"),
    ],
)
def test_make_splits_errors(args, cls, match):
    with pytest.raises(cls, match=match):
        make_splits(*args)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    d = _train(tmp_path_factory.mktemp("m"), "m", RepresentationConfig(kind="stats", stats=["mean", "std"]), "mlp-small")
    return sonotype.load_model(d)


GOOD = np.zeros(SR, np.float32)
BAD_ARRAYS = [
    pytest.param(np.zeros((2, 2, SR), np.float32), ParameterError, r"\(2, 2, 8000\)", id="3-D"),
    pytest.param(np.float32(0.5), ParameterError, r"shape \(\)", id="0-D"),
    pytest.param(np.array(["a", "b"]), ParameterError, "numeric", id="strings"),
    pytest.param(np.zeros(SR, np.complex64), ParameterError, "complex", id="complex"),
    pytest.param(np.array([0.0, NAN] * (SR // 2), np.float32), AudioError, "NaN", id="NaN"),
    pytest.param(np.array([INF] * SR, np.float32), AudioError, "NaN or infinite", id="inf"),
    pytest.param(np.zeros(10, np.float32), AudioError, "too short", id="too-short"),
]


@pytest.mark.parametrize(("y", "cls", "match"), BAD_ARRAYS)
def test_predict_and_featurize_raise_the_same_class_for_the_same_array(model, y, cls, match):
    with pytest.raises(cls, match=match):
        model.predict(y, SR)
    with pytest.raises(cls, match=match):
        featurize(y, SR, FC, model.representation)


@pytest.mark.parametrize("sr", [0, -1, 1.5, NAN, "8000"])
def test_predict_and_featurize_agree_on_bad_sample_rates(model, sr):
    with pytest.raises(ParameterError, match="sr"):
        model.predict(GOOD, sr)
    with pytest.raises(ParameterError, match="sr"):
        featurize(GOOD, sr, FC, model.representation)


def test_channel_layouts_and_int_pcm_are_read_alike(model):
    """(channels, n) and (n, channels) are averaged over the short axis; int16 PCM is scaled by 1/32768."""
    rng = np.random.default_rng(3)
    st = rng.uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    want = featurize(st.mean(axis=0), SR, FC, model.representation)
    np.testing.assert_array_equal(featurize(st, SR, FC, model.representation), want)
    np.testing.assert_array_equal(featurize(st.T, SR, FC, model.representation), want)
    y = (rng.uniform(-0.5, 0.5, SR) * 32767).astype(np.int16)
    np.testing.assert_allclose(
        featurize(y, SR, FC, model.representation),
        featurize(y.astype(np.float32) / 32768, SR, FC, model.representation),
        rtol=1e-6,
    )
    assert model.predict(y, SR).probabilities == pytest.approx(
        model.predict(y.astype(np.float32) / 32768, SR).probabilities, abs=1e-6
    )


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (np.zeros((2, 33), np.float32), r"shape \(33,\), but the model was built for input_shape \(30,\)"),
        (np.zeros((2, 3, 30), np.float32), r"shape \(3, 30\), but the model was built for input_shape \(30,\)"),
        (np.zeros(30, np.float32), r"need shape \(N, \.\.\.\), got \(30,\)"),
        (np.array([["a"] * 30]), "real numeric array"),
    ],
)
def test_forward_items_names_the_expected_shape(model, items, match):
    """Checked before the scaler: a wrong width is the caller's ParameterError, not a ModelError."""
    with pytest.raises(ParameterError, match=match):
        model.forward_items(items)


@pytest.mark.parametrize("window", [NAN, INF, 0.0, -1.0, "1"])
def test_predict_window_is_checked(model, window):
    with pytest.raises(ParameterError, match="window"):
        model.predict(np.zeros(2 * SR, np.float32), SR, window=window)
