"""ESC-50: environmental sound classification (Piczak, 2015).

2,000 clips of 5 s, 44.1 kHz mono WAV, 50 classes of 40 (animals, natural soundscapes, human
non-speech sounds, domestic and urban noises), in 5 official folds. Licence CC BY-NC 3.0
(the ESC-10 subset CC BY 3.0). Home: https://github.com/karolpiczak/ESC-50

Layout (as unzipped from GitHub, also one level down as ``ESC-50-master/``)::

    meta/esc50.csv          filename, fold, target, category, esc10, src_file, take
    audio/<fold>-<src_file>-<take>-<target>.wav

The metadata CSV is the source of truth: label = ``category``, group = ``src_file`` (the clips
cut from one freesound recording must stay on one side of a split), ``meta["split"] =
"fold<N>"`` so that the ``official`` protocol tests each of the five folds in turn. Files are
matched by stem, so a converted copy (FLAC beside or instead of the CSV's ``.wav``) loads;
a row whose file is absent is listed in ``skipped``. ``esc10=True`` keeps the ESC-10 subset.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.download import Resource
from sonotype.errors import CorpusError

__all__ = ["COLUMNS", "DOWNLOADS", "prepare"]

NAME = "esc50"
# The default branch moves, so no checksum can be pinned; the sha256 is printed after download.
DOWNLOADS = (
    Resource(
        url="https://github.com/karolpiczak/ESC-50/archive/master.zip",
        filename="ESC-50-master.zip",
    ),
)
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def _meta_csv(root: Path) -> Path:
    for cand in (root / "meta" / "esc50.csv", *sorted(root.glob("*/meta/esc50.csv"))):
        if cand.is_file():
            return cand
    raise CorpusError(f"esc50: no meta/esc50.csv under {root} (expected meta/esc50.csv and audio/*.wav)")


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = sorted(set(COLUMNS) - set(reader.fieldnames or ()))
        if missing:
            raise CorpusError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
        return list(reader)


@register(NAME, group="source recording")
def prepare(root: Path, *, esc10: bool = False) -> Manifest:
    """Build the ESC-50 manifest from ``meta/esc50.csv`` and the audio files it names (see the module docstring).

    Parameters
    ----------
    root : pathlib.Path
        The corpus folder (or the one holding ``ESC-50-master/``).
    esc10 : bool
        Keep only the ESC-10 subset.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "meta").mkdir(); (root / "audio").mkdir()
    >>> rows = [",".join(COLUMNS), "1-100032-A-0.wav,1,0,dog,True,100032,A", "4-1234-B-1.wav,4,1,rooster,False,1234,B"]
    >>> _ = (root / "meta" / "esc50.csv").write_text(chr(10).join(rows))
    >>> for name in ("1-100032-A-0", "4-1234-B-1"):
    ...     sf.write(root / "audio" / f"{name}.wav", np.zeros(800, np.float32), 8000)
    >>> [(c.label, c.group, c.meta["split"]) for c in prepare(root)]
    [('dog', '100032', 'fold1'), ('rooster', '1234', 'fold4')]
    >>> len(prepare(root, esc10=True))
    1
    """
    root = check_root(root)
    meta_csv = _meta_csv(root)
    base = meta_csv.parent.parent
    audio_dir = base / "audio" if (base / "audio").is_dir() else base
    files, skipped = scan_files(audio_dir, metadata=("esc50.csv", "readme.md", "license"))
    by_stem: dict[str, list[Path]] = {}
    for f in files:
        by_stem.setdefault(f.stem, []).append(f)
    clips: list[Clip] = []
    listed: set[str] = set()
    for i, row in enumerate(_read_rows(meta_csv), 2):
        name = (row["filename"] or "").strip()
        stem = Path(name).stem
        listed.add(stem)
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError:
            raise CorpusError(f"{meta_csv}:{i}: fold and target must be integers, got {row['fold']!r}, {row['target']!r}") from None
        is_esc10 = (row["esc10"] or "").strip().lower() == "true"
        if esc10 and not is_esc10:
            continue
        paths = sorted(by_stem.get(stem, []))
        if not paths:
            skipped.append(Skipped(str(audio_dir / name), f"listed in {meta_csv.name} (row {i}) but no audio file with stem {stem!r}"))
            continue
        keep = paths[0]
        skipped.extend(Skipped(str(p), f"duplicate of {keep} (same stem, other format)") for p in paths[1:])
        meta = {"fold": fold, "split": f"fold{fold}", "target": target, "esc10": is_esc10,
                "src_file": row["src_file"], "take": row["take"]}
        clips.append(Clip(str(keep), row["category"].strip(), str(row["src_file"]).strip(), NAME, meta=meta))
    skipped.extend(
        Skipped(str(p), f"not listed in {meta_csv.name}") for stem, ps in sorted(by_stem.items())
        if stem not in listed for p in ps
    )
    return build_manifest(NAME, root, clips, skipped, layout="meta/esc50.csv + audio/<fold>-<src>-<take>-<target>.wav")
