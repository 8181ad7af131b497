"""ESC-50 loader: metadata CSV as truth, files matched by stem, official folds as the protocol."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import data_dir, write_wav
from sonotype.corpora.registry import download_corpus, group_name, load_corpus
from sonotype.errors import CorpusError, ParameterError
from sonotype.splits.split import make_splits, resolve_auto

SR = 8000
HEADER = "filename,fold,target,category,esc10,src_file,take\n"
# (fold, src_file, take, target, category, esc10)
ROWS = [
    (f, 1000 + 10 * f + s, take, t, cat, esc)
    for f in (1, 2, 3)
    for s, (t, cat, esc) in enumerate([(0, "dog", True), (10, "rain", True), (20, "crow", False)])
    for take in ("A", "B")
]


def _tree(root: Path, *, ext: str = ".wav", drop: int | None = None) -> Path:
    (root / "meta").mkdir(parents=True)
    lines = [HEADER]
    rng = np.random.default_rng(0)
    for i, (fold, src, take, target, cat, esc) in enumerate(ROWS):
        name = f"{fold}-{src}-{take}-{target}"
        lines.append(f"{name}.wav,{fold},{target},{cat},{esc},{src},{take}\n")
        if i != drop:
            write_wav(root / "audio" / f"{name}{ext}", 0.1 * rng.standard_normal(SR // 2).astype(np.float32), SR)
    (root / "meta" / "esc50.csv").write_text("".join(lines))
    return root


def test_generated_tree_labels_groups_and_folds(tmp_path):
    m = load_corpus("esc50", _tree(tmp_path))
    assert len(m) == 18 and not m.skipped
    assert m.class_counts() == {"crow": 6, "dog": 6, "rain": 6}
    c = next(c for c in m if Path(c.path).name == "2-1021-B-10.wav")
    assert (c.label, c.group) == ("rain", "1021")
    assert c.meta == {"fold": 2, "split": "fold2", "target": 10, "esc10": True, "src_file": "1021", "take": "B"}
    assert group_name("esc50") == "source recording"


def test_flac_copies_load_by_stem_and_missing_rows_are_skipped(tmp_path):
    m = load_corpus("esc50", _tree(tmp_path, ext=".flac", drop=3))
    assert len(m) == 17 and all(c.path.endswith(".flac") for c in m)
    assert len(m.skipped) == 1
    assert m.skipped[0].path.endswith("1-1011-B-10.wav") and "no audio file with stem" in m.skipped[0].reason


def test_esc10_option_keeps_the_subset(tmp_path):
    m = load_corpus("esc50", _tree(tmp_path), esc10=True)
    assert m.labels == ["dog", "rain"] and len(m) == 12


def test_unlisted_file_is_reported_and_missing_csv_refused(tmp_path):
    root = _tree(tmp_path / "a")
    write_wav(root / "audio" / "extra.wav", np.zeros(100, np.float32), SR)
    m = load_corpus("esc50", root)
    assert [s.reason for s in m.skipped] == ["not listed in esc50.csv"]
    (tmp_path / "b").mkdir()
    with pytest.raises(CorpusError, match=r"no meta/esc50\.csv"):
        load_corpus("esc50", tmp_path / "b")


def test_unzipped_github_layout_one_level_down(tmp_path):
    _tree(tmp_path / "ESC-50-master")
    assert len(load_corpus("esc50", tmp_path)) == 18


def test_official_protocol_is_leave_one_fold_out(tmp_path):
    m = load_corpus("esc50", _tree(tmp_path))
    labels, groups, folds = [c.label for c in m], [c.group for c in m], [c.meta["split"] for c in m]
    assert resolve_auto(labels, groups, folds).name == "official"
    splits = make_splits(labels, groups, "official", assignments=folds)
    assert [s.name for s in splits] == ["fold1 (1/3)", "fold2 (2/3)", "fold3 (3/3)"]
    for k, s in enumerate(splits, 1):
        assert {m.clips[i].meta["fold"] for i in s.test} == {k}
        assert k not in {m.clips[i].meta["fold"] for i in (*s.train, *s.val)}
        assert len(s.train) + len(s.val) == 12
    # one fold alone is no split: auto falls back to grouped folds, official says why
    one = [i for i, c in enumerate(m) if c.meta["fold"] == 1]
    sub = ([labels[i] for i in one], [groups[i] for i in one], [folds[i] for i in one])
    assert resolve_auto(*sub).name != "official"
    with pytest.raises(ParameterError, match="at least 2 folds"):
        make_splits(*sub[:2], "official", assignments=sub[2])


def test_download_unpacks_the_github_zip(tmp_path, monkeypatch):
    import zipfile

    import sonotype.corpora.download as dl
    import sonotype.corpora.esc50 as esc

    res = esc.DOWNLOADS[0]
    assert res.url == "https://github.com/karolpiczak/ESC-50/archive/master.zip"
    assert res.sha256 is None and res.md5 is None  # the branch moves: nothing to pin
    tree = _tree(tmp_path / "src" / "ESC-50-master")
    seen: list[tuple[str, str | None]] = []

    def fake_download(url, path, *, sha256=None, md5=None, progress=True):
        seen.append((url, sha256))
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as z:
            for f in sorted(tree.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(tree.parent).as_posix())
        return path

    monkeypatch.setattr(dl, "download", fake_download)
    root = download_corpus("esc50", tmp_path / "data", progress=False)
    assert seen == [(res.url, None)]
    m = load_corpus("esc50", root)
    assert len(m) == 18 and not m.skipped


@pytest.mark.realdata
def test_esc50_real_fold4():
    m = load_corpus("esc50", data_dir("esc50"))
    assert len(m) == 400 and not m.skipped
    assert len(m.labels) == 50 and set(m.class_counts().values()) == {8}
    assert all(c.path.endswith(".flac") and c.meta["fold"] == 4 for c in m)
    sizes = Counter(c.group for c in m)
    assert len(sizes) == 297 and max(sizes.values()) == 8
    c = next(c for c in m if Path(c.path).stem == "4-102844-A-49")
    assert (c.label, c.group, c.meta["take"]) == ("hand_saw", "102844", "A")
    assert len(load_corpus("esc50", data_dir("esc50"), esc10=True)) == 80
