"""sonotype.reporting.plots: every kind draws the signal's own data, at the size its figure spec says.

Each picture is checked against the figure that wrote it (spied on ``_figure``): the PNG has
the spec's pixel size and dpi and is that figure's rendering, pixel for pixel; the figure's
titles and axis labels are the kind's, its image data equals librosa's own computation on the
same samples, and the PNG shows that data where the axes put it (the colour of each image
cell is the colour map's colour of its value). A plot of the wrong data, on swapped axes or
with the wrong labels fails.
"""

from __future__ import annotations

import io
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from matplotlib.collections import QuadMesh

from conftest import write_wav
from sonotype.errors import AudioError, ParameterError
from sonotype.reporting import plots
from sonotype.reporting.plots import KINDS, plot_audio

N_FFT, HOP = 2048, 512
# kind -> (title, y label, colour-bar label or None); every kind's x axis is "Time (s)".
SPEC = {
    "waveform": ("Waveform", "Amplitude (full scale)", None),
    "spectrogram": ("Spectrogram (STFT)", "Frequency (Hz)", "Level (dB re max)"),
    "mel": ("Mel spectrogram", "Frequency (Hz, mel scale)", "Power (dB re max)"),
    "chroma": ("Chromagram", "Pitch class", "Relative energy (0-1)"),
    "mfcc": ("MFCC (20 coefficients)", "MFCC index", "Coefficient value (range of 1-19)"),
    "centroid": ("Spectral centroid", "Frequency (Hz)", "Level (dB re max)"),
    "rolloff": ("Spectral roll-off", "Frequency (Hz)", "Level (dB re max)"),
}


def _pixels(kind: str, dpi: int = 100) -> tuple[int, int]:
    """(height, width) of a picture: figsize 10 x 3.5 in (waveform), 10 x 4.5 in, 14 x 15 in (all)."""
    w, h = {"waveform": (10, 3.5), "all": (14, 15)}.get(kind, (10, 4.5))
    return round(h * dpi), round(w * dpi)


@pytest.fixture(scope="module")
def chirp_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s: a 220 -> 3520 Hz sweep plus a 440 Hz tone, at 16 kHz."""
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    sweep = np.sin(2 * np.pi * (220 * t + (3520 - 220) / (2 * 1.5) * t**2))
    y = (0.4 * sweep + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_wav(tmp_path_factory.mktemp("plots") / "chirp.wav", y, sr)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures plot_audio draws, in order."""
    figs = []
    real = plots._figure

    def spy(*a, **kw):
        figs.append(real(*a, **kw))
        return figs[-1]

    monkeypatch.setattr(plots, "_figure", spy)
    return figs


def _read_png(src) -> tuple[np.ndarray, tuple[float, float]]:
    from PIL import Image

    with Image.open(src) as im:
        return np.asarray(im.convert("RGB")), im.info.get("dpi")


def _check_png(path: Path, fig, kind: str, dpi: int = 100) -> np.ndarray:
    """The file is ``fig`` rendered at ``dpi``: the spec's pixel size, the dpi recorded, its pixels."""
    assert path.is_file()
    img, meta_dpi = _read_png(path)
    assert img.shape[:2] == _pixels(kind, dpi)
    assert meta_dpi == pytest.approx((dpi, dpi), abs=0.01)
    buf = io.BytesIO()
    fig.set_layout_engine("none")  # keep the layout it was saved with (a new pass moves edges a little)
    fig.savefig(buf, format="png", dpi=dpi)
    np.testing.assert_array_equal(img, _read_png(buf)[0])
    return img


def _main_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _check_labels(fig, kinds: list[str]) -> None:
    axes = _main_axes(fig)
    assert len(axes) == len(kinds)
    bars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars == [SPEC[k][2] for k in kinds if SPEC[k][2]]
    for ax, k in zip(axes, kinds, strict=True):
        title, ylabel, _ = SPEC[k]
        assert (ax.get_title() or ax.get_title(loc="left")) == title and ax.get_ylabel() == ylabel
        assert ax.get_xlabel() == "Time (s)"


def _reference(kind: str, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """What each kind must show, computed here from the samples with librosa directly."""
    if kind == "waveform":
        return {}
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    out = {"image": librosa.amplitude_to_db(S, ref=np.max)}
    if kind == "mel" or kind == "mfcc":
        mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP,
                                                                    n_mels=128), ref=np.max)
        out["image"] = mel_db if kind == "mel" else librosa.feature.mfcc(S=mel_db, sr=sr, n_mfcc=20)
    elif kind == "chroma":
        out["image"] = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP, tuning=0.0)
    elif kind == "centroid":
        out["centroid"] = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP)[0]
    elif kind == "rolloff":
        for pct in (85, 15):
            out[f"roll-off {pct} %"] = librosa.feature.spectral_rolloff(
                y=y, sr=sr, n_fft=N_FFT, hop_length=HOP, roll_percent=pct / 100)[0]
    return out


def _check_data(ax, kind: str, y: np.ndarray, sr: int) -> None:
    """The axes show the reference data of ``kind`` for the samples ``y``."""
    ref = _reference(kind, y, sr)
    frames = 1 + len(y) // HOP
    if kind == "waveform":
        peak = max(float(np.max(np.abs(y))), 1e-3)
        assert ax.get_ylim() == pytest.approx((-1.1 * peak, 1.1 * peak))
        (env,) = ax.collections  # the envelope: +-|y| at every sample
        v = np.concatenate([p.vertices for p in env.get_paths()])
        assert v[:, 1].max() == pytest.approx(float(np.max(np.abs(y))), rel=1e-3, abs=1e-6)
        assert v[:, 0].min() == pytest.approx(0.0, abs=1e-3) and v[:, 0].max() == pytest.approx(len(y) / sr, abs=1e-3)
        return
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    img = np.ma.getdata(mesh.get_array())
    assert img.shape == ref["image"].shape and img.shape[1] == frames
    np.testing.assert_allclose(img, ref["image"], atol=1e-3 if kind != "mfcc" else 1e-2)
    times = librosa.frames_to_time(np.arange(frames), sr=sr, hop_length=HOP)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == set(ref) - {"image"}
    for label, line in lines.items():
        np.testing.assert_allclose(line.get_xdata(), times, atol=1e-9)
        np.testing.assert_allclose(line.get_ydata(), ref[label], rtol=1e-4, atol=1e-3)


def _check_mesh_pixels(ax, img: np.ndarray, n: int = 30) -> None:
    """At ``n`` image cells (clear of the drawn lines) whose centre pixel lies wholly inside them, that
    PNG pixel has the colour map's colour of the cell's value: the data is where it belongs."""
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    vals = np.ma.getdata(mesh.get_array())
    coords = mesh.get_coordinates()
    disp = ax.transData.transform(coords.reshape(-1, 2)).reshape(coords.shape)
    line_y = [ax.transData.transform(np.c_[ln.get_xdata(), ln.get_ydata()])[:, 1] for ln in ax.get_lines()]
    height = img.shape[0]
    order = np.random.default_rng(0).permutation(vals.size)
    checked = 0
    for flat in order:
        i, j = divmod(int(flat), vals.shape[1])
        x0, x1 = sorted((disp[i, j, 0], disp[i, j + 1, 0]))
        y0, y1 = sorted((disp[i, j, 1], disp[i + 1, j, 1]))
        if any(y0 - 4 < ly[j] < y1 + 4 for ly in line_y):
            continue
        # The pixel at the cell's centre, if it lies wholly inside the cell (half a pixel to spare).
        col, row = int((x0 + x1) / 2), int(height - (y0 + y1) / 2)
        if not (x0 + 0.5 <= col and col + 1 <= x1 - 0.5 and y0 + 0.5 <= height - row - 1 and height - row <= y1 - 0.5):
            continue
        px = img[row, col].astype(float)
        want = np.asarray(mesh.cmap(mesh.norm(vals[i, j]))[:3]) * 255
        assert np.abs(px - want).max() <= 3, (i, j, vals[i, j], px, want)
        checked += 1
        if checked == n:
            return
    raise AssertionError(f"only {checked} image cells large enough to check")


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_the_signal(tmp_path: Path, chirp_wav: Path, drawn: list, kind: str) -> None:
    out = plot_audio(chirp_wav, kind=kind, out=tmp_path / f"{kind}.png")
    assert out == tmp_path / f"{kind}.png"
    (fig,) = drawn
    img = _check_png(out, fig, kind)
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"
    assert fig._suptitle.get_text() == "chirp.wav - 1.50 s at 16000 Hz"
    _check_labels(fig, [kind])
    y, sr = sf.read(chirp_wav, dtype="float32")
    (ax,) = _main_axes(fig)
    _check_data(ax, kind, y, sr)
    if kind != "waveform":
        _check_mesh_pixels(ax, img)


def test_the_sweep_is_drawn_where_it_is(tmp_path: Path, chirp_wav: Path, drawn: list) -> None:
    """At 0.75 s the sweep is at 220 + 2200 * 0.75 = 1870 Hz: bright there, dark at 6 kHz, on the PNG."""
    out = plot_audio(chirp_wav, kind="spectrogram", out=tmp_path / "s.png")
    img = _read_png(out)[0].astype(float) / 255
    (ax,) = _main_axes(drawn[0])

    def level(t: float, f: float) -> float:
        x, y = ax.transData.transform((t, f))
        return float(img[int(img.shape[0] - y), int(x)].mean())

    assert level(0.75, 1870.0) > 0.75 and level(0.75, 6000.0) < 0.25
    assert level(0.2, 660.0) > 0.75 and level(1.3, 3080.0) > 0.75  # and it rises with time
    assert level(0.2, 3080.0) < 0.5 and level(1.3, 660.0) < 0.5


def test_a_tone_lights_its_pitch_class_and_its_frequency(tmp_path: Path, drawn: list) -> None:
    """A 440 Hz tone (stereo in, folded to mono): chroma's A row is the top of every frame; the
    spectrogram's peak is the 440 Hz bin; the centroid line stays at 440 Hz."""
    sr = 8000
    y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    plot_audio(np.stack([y, y]), sr=sr, kind="chroma", out=tmp_path / "c.png")
    plot_audio(y, sr=sr, kind="spectrogram", out=tmp_path / "s.png")
    plot_audio(y, sr=sr, kind="centroid", out=tmp_path / "k.png")
    chroma, spec, cent = (_main_axes(f)[0] for f in drawn)
    assert drawn[0]._suptitle.get_text() == "signal - 1.00 s at 8000 Hz"
    rows = np.ma.getdata(chroma.collections[0].get_array()).argmax(0)
    assert rows.tolist() == [9] * rows.size  # C, C#, D, ..., A is index 9
    bins = np.ma.getdata(spec.collections[0].get_array()).argmax(0)
    assert set(bins.tolist()) == {round(440 / (sr / N_FFT))}
    (line,) = cent.get_lines()
    np.testing.assert_allclose(line.get_ydata()[2:-2], 440.0, rtol=0.02)  # away from the padded ends


def test_all_sheet_is_every_kind_at_its_size(tmp_path: Path, chirp_wav: Path, drawn: list) -> None:
    out = plot_audio(chirp_wav, kind="all", out=tmp_path / "all.png", dpi=60)
    (fig,) = drawn
    _check_png(out, fig, "all", dpi=60)
    _check_labels(fig, list(KINDS))
    y, sr = sf.read(chirp_wav, dtype="float32")
    for ax, kind in zip(_main_axes(fig), KINDS, strict=True):
        _check_data(ax, kind, y, sr)


def test_svg_and_resampled_file(tmp_path: Path, chirp_wav: Path, drawn: list) -> None:
    sr = 8000
    y = np.sin(2 * np.pi * 500 * np.arange(sr) / sr).astype(np.float32)
    svg = plot_audio(y, sr=sr, kind="waveform", out=tmp_path / "w.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "Time (s)" in svg and "Amplitude (full scale)" in svg
    assert 'width="720pt" height="252pt"' in svg  # 10 x 3.5 in
    # Loaded at 22,050 Hz: the figure is of the resampled audio, up to its 11,025 Hz Nyquist.
    from sonotype.audio import load

    out = plot_audio(chirp_wav, sr=22050, kind="centroid", out=tmp_path / "c.png")
    fig = drawn[-1]
    _check_png(out, fig, "centroid")
    assert fig._suptitle.get_text() == "chirp.wav - 1.50 s at 22050 Hz"
    (ax,) = _main_axes(fig)
    assert ax.get_ylim()[1] == pytest.approx(11025 + 22050 / N_FFT / 2)
    _check_data(ax, "centroid", load(chirp_wav, sr=22050)[0], 22050)


def test_silence_draws_a_flat_line(tmp_path: Path, drawn: list) -> None:
    short = write_wav(tmp_path / "short.wav", np.zeros(1000, np.float32), 16000)
    out = plot_audio(short, kind="waveform", out=tmp_path / "w.png")
    _check_png(out, drawn[0], "waveform")
    (ax,) = _main_axes(drawn[0])
    _check_data(ax, "waveform", np.zeros(1000, np.float32), 16000)  # +-1.1e-3 around a zero envelope


def test_errors(tmp_path: Path, chirp_wav: Path) -> None:
    with pytest.raises(ParameterError, match="'sonogram'"):
        plot_audio(chirp_wav, kind="sonogram", out=tmp_path / "x.png")
    with pytest.raises(ParameterError, match=r"'\.bmp'"):
        plot_audio(chirp_wav, kind="mel", out=tmp_path / "x.bmp")
    with pytest.raises(ParameterError, match="sr=None"):
        plot_audio(np.zeros(4096), kind="mel", out=tmp_path / "x.png")
    short = write_wav(tmp_path / "short.wav", np.zeros(1000, np.float32), 16000)
    with pytest.raises(AudioError, match="too short: 1000 samples, need at least 2048"):
        plot_audio(short, kind="mel", out=tmp_path / "x.png")
    with pytest.raises(AudioError, match="file not found"):
        plot_audio(tmp_path / "nope.wav", out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kind", ["centroid", "rolloff", "all"])
def test_line_legends_sit_outside_the_spectrogram(chirp_wav: Path, kind: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sonotype.audio import load
    from sonotype.reporting.plots import _Analysis, _figure

    y, sr = load(chirp_wav)
    fig = _figure(kind, _Analysis(y, sr, 2048, 512), "chirp")
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == (2 if kind == "all" else 1)
    texts = {t.get_text() for lg in legends for t in lg.get_texts()}
    assert texts & {"centroid", "roll-off 85 %"}
    for lg in legends:
        box = lg.get_window_extent(renderer)
        for ax in fig.axes:  # no legend covers any axes' data area (nor a colour bar)
            assert not box.overlaps(ax.get_window_extent(renderer)), (kind, ax.get_title(loc="left"))
