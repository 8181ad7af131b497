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


MODELS = Path(os.environ.get("SONOTYPE_MODELS", Path(__file__).resolve().parents[1].parent / "shared" / "models"))


@pytest.fixture(scope="session")
def real_encoders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backbones folder with the real musicnn-msd and efficientat-mn04 converted (once per session)
    from ../shared/models, and whisper-base beside them; skips when the weights are absent."""
    from sonotype.backbones import efficientat, musicnn

    m, e, w = MODELS / "musicnn-msd", MODELS / "efficientat-mn04", MODELS / "whisper-base"
    if not (m / ".index").is_file() or not (e / "mn04_as_mAP_432.pt").is_file():
        pytest.skip(f"real encoder weights not found at {MODELS} (set SONOTYPE_MODELS or place ../shared/models "
                    "beside the checkout)")
    root = tmp_path_factory.mktemp("encoders")
    labels = [s for s in (m / "labels.txt").read_text().splitlines() if s.strip()]
    musicnn.convert(m / ".index", m / ".data-00000-of-00001", labels, root / "musicnn-msd")
    efficientat.convert(e / "mn04_as_mAP_432.pt", e / "class_labels_indices.csv", root / "efficientat-mn04")
    if (w / "model.safetensors").is_file():
        (root / "whisper-base").symlink_to(w, target_is_directory=True)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long end-to-end runs (``@pytest.mark.slow``) run in CI (``CI`` set) or with ``SONOTYPE_SLOW=1``;
    a plain ``make test`` skips them, naming how to run them, and stays under 10 minutes."""
    if os.environ.get("CI") or os.environ.get("SONOTYPE_SLOW") or config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow end-to-end run: runs in CI (CI=true) or with SONOTYPE_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def tiny_tagger(root: Path, labels: list[str], *, weight_sd: float, bias_sd: float | None = None) -> Path:
    """A random EfficientAT tagger folder (width 0.1, converted as a release is), for plumbing tests:
    its classifier weights drawn with ``weight_sd`` (and biases with ``bias_sd``) so the probabilities spread."""
    import csv

    import torch

    from sonotype.backbones import efficientat as E

    torch.manual_seed(0)
    model = E.MN(0.1, len(labels)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, weight_sd)
                if bias_sd is not None:
                    m.bias.normal_(0, bias_sd)
    torch.save(model.state_dict(), root / "tiny.pt")
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        w.writerows([i, f"/m/{i}", n] for i, n in enumerate(labels))
    return E.convert(root / "tiny.pt", root / "labels.csv", root / "tiny-tagger", name="tiny", width_mult=0.1)
