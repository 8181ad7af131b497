"""`sonotype info` and `sonotype plot`: output, JSON facts and clean errors (exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from conftest import data_dir, write_wav
from sonotype.cli import app, main

runner = CliRunner()


@pytest.fixture
def stereo(tmp_path: Path) -> Path:
    """0.5 s stereo at 8 kHz: left a full-scale-0.5 sine, right silent."""
    sr = 8000
    left = 0.5 * np.sin(2 * np.pi * 250 * np.arange(sr // 2) / sr)
    return write_wav(
        tmp_path / "st.flac", np.stack([left, np.zeros_like(left)], axis=1), sr, subtype="PCM_24"
    )


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the console entry point (with its error handling) and return (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sonotype", *args])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0), capsys.readouterr().err


def test_info_json(stereo: Path) -> None:
    res = runner.invoke(app, ["info", str(stereo), "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.stdout)
    assert {k: facts[k] for k in ("samplerate", "channels", "frames", "format", "subtype")} == {
        "samplerate": 8000, "channels": 2, "frames": 4000, "format": "FLAC", "subtype": "PCM_24",
    }  # fmt: skip
    assert facts["duration"] == pytest.approx(0.5)
    assert facts["peak_dbfs"] == pytest.approx(-6.02, abs=0.02)  # 20 log10(0.5)
    # RMS over both channels: sine RMS 0.5/sqrt(2), halved in power by the silent channel -> 0.25
    assert facts["rms_dbfs"] == pytest.approx(-12.04, abs=0.05)
    assert facts["silent"] is False


def test_info_table(stereo: Path) -> None:
    res = runner.invoke(app, ["info", str(stereo)])
    assert res.exit_code == 0, res.output
    for text in ("FLAC / PCM_24", "8000 Hz", "4,000", "0.500 s", "-6.02 dBFS"):
        assert text in res.stdout


def test_info_silence(tmp_path: Path) -> None:
    p = write_wav(tmp_path / "zero.wav", np.zeros(800, np.float32), 8000)
    facts = json.loads(runner.invoke(app, ["info", str(p), "--json"]).stdout)
    assert facts["silent"] is True and facts["peak_dbfs"] is None and facts["rms_dbfs"] is None
    assert "silence" in runner.invoke(app, ["info", str(p)]).stdout


@pytest.mark.realdata
def test_info_real_tess_aiff() -> None:
    p = data_dir("tess", "YAF_angry", "YAF_germ_angry.wav")
    facts = json.loads(runner.invoke(app, ["info", str(p), "--json"]).stdout)
    assert facts["format"] == "AIFF" and facts["samplerate"] == 24414 and facts["frames"] == 53847


def test_plot_writes_png(tmp_path: Path, stereo: Path) -> None:
    out = tmp_path / "pics" / "mel.png"
    res = runner.invoke(
        app, ["plot", str(stereo), "--kind", "mel", "-o", str(out), "--n-fft", "512", "--hop-length", "128"]
    )
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.stdout.replace("\n", "")
    img = imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 800 and img[..., :3].std() > 0.05


def test_plot_default_output_name(tmp_path: Path, stereo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["plot", str(stereo), "--kind", "waveform"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "st.waveform.png").stat().st_size > 5000


def test_plot_bad_kind_is_usage_error(stereo: Path) -> None:
    res = runner.invoke(app, ["plot", str(stereo), "--kind", "sonogram"])
    assert res.exit_code == 2
    assert "sonogram" in res.output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"just some text, not a recording\n" * 8, "not an audio file: the content is text"),
        (None, "file not found"),
    ],
)
def test_bad_file_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    reason: str,
) -> None:
    p = tmp_path / "bad.wav"
    if content is not None:
        p.write_bytes(content)
    for args in (["info", str(p)], ["plot", str(p), "-o", str(tmp_path / "x.png")]):
        code, err = _main(monkeypatch, capsys, *args)
        assert code == 2
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:")
        assert reason in lines[0] and "bad.wav" in lines[0]
        assert "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_console_script_truncated_wav(tmp_path: Path) -> None:
    ok = write_wav(tmp_path / "ok.wav", np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(ok.read_bytes()[:4000])
    exe = Path(sys.executable).with_name("sonotype")
    if not exe.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    res = subprocess.run([str(exe), "info", str(cut)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "truncated WAV file" in res.stderr and res.stderr.count("\n") == 1
