"""`sonotype features NAME ROOT`: settings file, cache, summary with skipped files, .npz output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from conftest import write_wav
from sonotype.cli import app


def _tree(root: Path) -> None:
    t = np.arange(16000) / 16000
    for label, f0 in (("low", 200.0), ("high", 2000.0)):
        for i in range(2):
            write_wav(root / label / f"{label}_{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * (1 + 0.1 * i) * t)).astype(np.float32), 16000)
    (root / "low" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")


def test_features_command_end_to_end(tmp_path: Path) -> None:
    _tree(tmp_path / "corpus")
    settings = tmp_path / "feat.yaml"
    settings.write_text(
        "features:\n  sr: 16000\n  n_fft: 1024\n  hop_length: 256\n  features: [rms, mfcc]\n  n_mfcc: 8\n"
        "representation:\n  kind: stats\n  stats: [mean, std]\n"
    )
    out = tmp_path / "ds.npz"
    args = ["features", "folder", str(tmp_path / "corpus"), "--set", str(settings), "--cache", str(tmp_path / "cache"),
            "--jobs", "1", "--out", str(out)]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "5 files" in res.output and "1 skipped" in res.output and "broken.wav" in res.output
    with np.load(out, allow_pickle=False) as z:
        assert z["X"].shape == (4, 18) and z["X"].dtype == np.float32
        assert list(z["feature_names"][:3]) == ["rms_mean", "rms_std", "mfcc_01_mean"]
        assert sorted(set(z["clip_label"])) == ["high", "low"]
        assert list(z["skipped_path"]) == [str(tmp_path / "corpus" / "low" / "broken.wav")]
        cfg = json.loads(str(z["config"]))
        assert cfg["features"]["n_mfcc"] == 8 and cfg["representation"]["stats"] == ["mean", "std"]
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert "4 hits, 0 computed" in again.output


def test_features_command_reports_bad_settings(tmp_path: Path) -> None:
    _tree(tmp_path / "corpus")
    bad = tmp_path / "bad.yaml"
    bad.write_text("features:\n  n_fftt: 1024\n")
    res = CliRunner().invoke(app, ["features", "folder", str(tmp_path / "corpus"), "--set", str(bad), "--no-cache"])
    assert res.exit_code != 0
    assert "n_fftt" in str(res.exception) or "n_fftt" in res.output
