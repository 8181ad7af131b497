"""Every file and folder sonotype writes honours the umask (0644/0755 under 022), atomic writes included."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sonotype.corpora.demo import generate_demo
from sonotype.pipeline.config import load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import recipe_path
from sonotype.utils.io import atomic_dir, atomic_open, atomic_write_bytes, atomic_write_text


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=lambda m: f"umask{m:03o}")
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root: Path, *, with_root: bool = True) -> dict[str, int]:
    """Permission bits of ``root`` (unless ``with_root`` is false) and of everything under it."""
    out = {".": stat.S_IMODE(root.stat().st_mode)} if with_root else {}
    for p in sorted(root.rglob("*")):
        out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.lstat().st_mode)
    return out


def assert_honours(root: Path, mask: int, *, with_root: bool = True) -> None:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    wrong = {
        name: f"{mode:04o}"
        for name, mode in modes(root, with_root=with_root).items()
        if mode != (want_dir if (root / name).is_dir() else want_file)
    }
    assert not wrong, f"expected files {want_file:04o} and folders {want_dir:04o} under umask {mask:03o}: {wrong}"


def test_atomic_writes_honour_the_umask(umask, tmp_path):
    atomic_write_bytes(tmp_path / "out" / "a.bin", b"x")
    atomic_write_text(tmp_path / "out" / "b.txt", "y")
    with atomic_open(tmp_path / "out" / "c.npz") as f:
        np.savez(f, x=np.arange(3))
    with atomic_dir(tmp_path / "dir") as d:
        (d / "inner.txt").write_text("z")
        atomic_write_text(d / "sub" / "deep.json", "{}")
    assert_honours(tmp_path, umask, with_root=False)  # pytest makes tmp_path itself 0700
    assert (tmp_path / "out" / "b.txt").read_text() == "y"
    assert not list(tmp_path.rglob(".*.tmp")), "a temporary file was left behind"
    # replacing an existing file keeps the umask mode, not the temporary file's
    atomic_write_bytes(tmp_path / "out" / "a.bin", b"again")
    assert stat.S_IMODE((tmp_path / "out" / "a.bin").stat().st_mode) == 0o666 & ~umask


def test_a_failed_atomic_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "x.bin") as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_a_real_run_folder_and_cache_honour_the_umask(mask, tmp_path):
    corpus = generate_demo(tmp_path / "corpus", seed=0)  # written under the test's default umask
    old = os.umask(mask)
    try:
        cfg = load_config(
            recipe_path("demo"),
            [
                f"corpus.root={corpus}",
                f"cache_dir={tmp_path / 'cache'}",
                "protocol=holdout:0.25",
                "train.max_epochs=3",
                "train.patience=2",
                "evaluate.bootstrap=20",
                "train.num_threads=1",
            ],
        )
        run_experiment(cfg, tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    names = set(modes(tmp_path / "run"))
    for expected in ("config.yaml", "metrics.json", "predictions.csv", "report.html", "model/model.json"):
        assert expected in names, expected
    assert any(n.endswith(".png") or n.endswith(".svg") for n in names) or "report.html" in names
    assert_honours(tmp_path / "run", mask)
    assert_honours(tmp_path / "cache", mask)
