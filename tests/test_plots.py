"""sonotype.reporting.plots: every kind writes a readable, non-blank picture of plausible size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from conftest import write_wav
from sonotype.errors import AudioError, ParameterError
from sonotype.reporting.plots import KINDS, plot_audio


@pytest.fixture(scope="module")
def chirp_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s: a 220 -> 3520 Hz sweep plus a 440 Hz tone, at 16 kHz."""
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    sweep = np.sin(2 * np.pi * (220 * t + (3520 - 220) / (2 * 1.5) * t**2))
    y = (0.4 * sweep + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_wav(tmp_path_factory.mktemp("plots") / "chirp.wav", y, sr)


def _check_png(path: Path, min_w: int, min_h: int) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 5000
    img = imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert w <= 3000 and h <= 3000
    rgb = img[..., :3]
    # not blank: many distinct colours, not a single flat colour
    assert float(rgb.std()) > 0.05
    assert len(np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8), axis=0)) > 50
    return img


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_png(tmp_path: Path, chirp_wav: Path, kind: str) -> None:
    out = plot_audio(chirp_wav, kind=kind, out=tmp_path / f"{kind}.png")
    assert out == tmp_path / f"{kind}.png"
    img = _check_png(out, 800, 300)
    assert img.shape[1] > img.shape[0]  # a landscape strip
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_all_sheet_is_larger(tmp_path: Path, chirp_wav: Path) -> None:
    img = _check_png(plot_audio(chirp_wav, kind="all", out=tmp_path / "all.png", dpi=60), 800, 800)
    single = imread(plot_audio(chirp_wav, kind="mel", out=tmp_path / "mel.png", dpi=60))
    assert img.shape[0] > 2 * single.shape[0]


def test_array_input_and_other_formats(tmp_path: Path) -> None:
    sr = 8000
    y = np.sin(2 * np.pi * 500 * np.arange(sr) / sr).astype(np.float32)
    _check_png(plot_audio(np.stack([y, y]), sr=sr, kind="spectrogram", out=tmp_path / "a.png"), 800, 300)
    svg = plot_audio(y, sr=sr, kind="waveform", out=tmp_path / "w.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "Time (s)" in svg.read_text()


def test_resampled_file(tmp_path: Path, chirp_wav: Path) -> None:
    _check_png(plot_audio(chirp_wav, sr=22050, kind="centroid", out=tmp_path / "c.png"), 800, 300)


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
    _check_png(plot_audio(short, kind="waveform", out=tmp_path / "w.png"), 800, 300)  # silence draws
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
