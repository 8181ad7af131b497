"""Shared fixtures: the real corpora beside the checkout, temporary folders, synthetic audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# ../shared/data beside the checkout; SONOTYPE_DATA overrides.
DATA = Path(os.environ.get("SONOTYPE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def data_dir(*parts: str) -> Path:
    """Path under the real-data folder, or skip the test with a clear message when absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real corpus data not found at {p} (set SONOTYPE_DATA or place ../shared/data beside the checkout)")
    return p


@pytest.fixture(autouse=True)
def _no_user_backbones(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's $SONOTYPE_BACKBONES would switch plain `train` runs to a pretrained encoder."""
    monkeypatch.delenv("SONOTYPE_BACKBONES", raising=False)


@pytest.fixture
def shared_data() -> Path:
    return data_dir()


def write_wav(path: Path, y: np.ndarray, sr: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.fixture
def tone() -> tuple[np.ndarray, int]:
    """One second of a 440 Hz sine at 22,050 Hz with a little noise (seeded)."""
    sr = 22050
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(sr)).astype(np.float32), sr
