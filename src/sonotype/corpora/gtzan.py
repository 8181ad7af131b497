"""GTZAN music genres (Tzanetakis & Cook, 2002).

1,000 clips of 30 s, 22,050 Hz mono, ten genres x 100: blues classical country disco hiphop
jazz metal pop reggae rock. No licence was ever given; used for research and benchmarks.
The original host (marsyas.info) and most mirrors are gone, so there is no download here.

Layouts read::

    genres/<genre>/<genre>.000NN.au             original release
    genres_original/<genre>/<genre>.000NN.wav   Kaggle copy (also under Data/)
    <genre>/<genre>.000NN.<any audio ext>        the genre folders themselves

Group = track ``<genre>.000NN``: every copy and every window of one track must stay on one
side of a split. When one track is present in two formats (an ``.mp3`` beside the ``.wav``)
the lossless copy is kept and the other reported as ``duplicate of ...``. ``meta["index"]``
(0-99) expresses the seed split (files 0-89 train, 90-99 test). ``split_csv`` reads an
official split (``clip,split`` rows, e.g. the artist-filtered "fault-filtered" split of
Kereliuk, Sturm & Larsen 2015) into ``meta["split"]``; clips absent from it are skipped.
Known faults of the corpus (replicas, mislabellings, the corrupt Kaggle ``jazz.00054.wav``)
are documented by Sturm (2013); ``describe`` reports unreadable files.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.errors import CorpusError

__all__ = ["GENRES", "MANUAL", "prepare", "read_split"]

NAME = "gtzan"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
MANUAL = """\
GTZAN has no working official download (marsyas.info is gone).
1. Get a copy, e.g. the Kaggle dataset andradaolteanu/gtzan-dataset-music-genre-classification
   (kaggle datasets download andradaolteanu/gtzan-dataset-music-genre-classification), or a
   copy of the original genres.tar.gz from a colleague.
2. Unpack it under {dest} so that {dest}/genres/blues/blues.00000.au (or
   {dest}/genres_original/blues/blues.00000.wav) exists.
3. Check with: sonotype corpus show gtzan {dest}
"""
_NAME_RE = re.compile(r"^([a-z]+)\.(\d{5})$")
# Preference when one track exists in several formats: the original, then lossless, then lossy.
_FORMAT_RANK = {".au": 0, ".wav": 1, ".flac": 2, ".aiff": 3, ".aif": 3, ".ogg": 5, ".mp3": 6}
SPLITS = ("train", "valid", "test")


def _genres_dir(root: Path) -> Path:
    for cand in (root / "genres", root / "genres_original", root / "Data" / "genres_original"):
        if cand.is_dir():
            return cand
    return root


def read_split(path: str | Path) -> dict[str, str]:
    """Read a ``clip,split`` CSV (clip = ``<genre>.000NN``, split in train/valid/test).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        Clip -> split (file paths in the ``clip`` column are reduced to the clip name).

    Examples
    --------
    >>> import tempfile
    >>> csv_path = Path(tempfile.mkdtemp()) / "split.csv"
    >>> rows = ["clip,split", "blues.00001,train", "genres/jazz/jazz.00054.wav,test"]
    >>> _ = csv_path.write_text(chr(10).join(rows))
    >>> read_split(csv_path)
    {'blues.00001': 'train', 'jazz.00054': 'test'}
    """
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"gtzan: split file not found: {p}")
    out: dict[str, str] = {}
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"clip", "split"} <= set(reader.fieldnames):
            raise CorpusError(f"{p}: expected the columns clip,split, found {reader.fieldnames}")
        for i, row in enumerate(reader, 2):
            # "blues.00042", also "genres/blues/blues.00042.wav" -> "blues.00042"
            clip = re.sub(r"\.(au|wav|mp3|flac|ogg)$", "", Path((row["clip"] or "").strip()).name)
            split = (row["split"] or "").strip().lower()
            if split not in SPLITS:
                raise CorpusError(f"{p}:{i}: split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
            out[clip] = split
    return out


# Seed A's split: the first 90 files of each genre train, the last 10 test.
SEED_TRAIN_FILES = 90


@register(NAME, group="track")
def prepare(root: Path, *, split_csv: str | Path | None = None, seed_split: bool = False) -> Manifest:
    """Build the GTZAN manifest (see the module docstring for layouts and options).

    ``seed_split=True`` sets ``meta["split"]`` to the seeds' protocol: files 0-89 of each genre
    ``train``, 90-99 ``test`` (split by track, not by artist: GTZAN repeats artists).

    Parameters
    ----------
    root : pathlib.Path
        The corpus folder (any layout above).
    split_csv : path-like, optional
        An official split (:func:`read_split`).
    seed_split : bool
        The seeds' split into ``meta["split"]``.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("blues.00001", "blues.00095", "jazz.00002"):
    ...     (root / name[:-6]).mkdir(exist_ok=True)
    ...     sf.write(root / name[:-6] / f"{name}.wav", np.zeros(800, np.float32), 8000)
    >>> [(c.label, c.group, c.meta["split"]) for c in prepare(root, seed_split=True)]
    [('blues', 'blues.00001', 'train'), ('blues', 'blues.00095', 'test'), ('jazz', 'jazz.00002', 'train')]
    """
    root = check_root(root)
    if seed_split and split_csv is not None:
        raise CorpusError("gtzan: choose one of split_csv and seed_split, not both")
    split = None
    if split_csv is not None:
        split_path = Path(split_csv)
        if not split_path.is_absolute() and not split_path.exists() and (root / split_path).exists():
            split_path = root / split_path  # relative to the corpus root
        split = read_split(split_path)
    files, skipped = scan_files(_genres_dir(root))
    by_track: dict[str, list[Path]] = {}
    for f in files:
        m = _NAME_RE.match(f.stem)
        if m is None:
            skipped.append(Skipped(str(f), "name is not <genre>.000NN.<ext> (e.g. blues.00042.au)"))
            continue
        if m.group(1) != f.parent.name:
            skipped.append(
                Skipped(
                    str(f), f"genre {m.group(1)!r} in the name but the file is in folder {f.parent.name!r}"
                )
            )
            continue
        by_track.setdefault(f.stem, []).append(f)
    clips: list[Clip] = []
    for track, paths in sorted(by_track.items()):
        paths.sort(key=lambda p: (_FORMAT_RANK.get(p.suffix.lower(), 4), str(p)))
        keep = paths[0]
        skipped.extend(Skipped(str(p), f"duplicate of {keep} (same track, other format)") for p in paths[1:])
        genre, index = track.split(".")
        meta: dict[str, object] = {
            "track": track,
            "index": int(index),
            "format": keep.suffix.lower().lstrip("."),
        }
        if split is not None:
            if track not in split:
                skipped.append(Skipped(str(keep), f"not in the split file {split_csv}"))
                continue
            meta["split"] = split[track]
        elif seed_split:
            meta["split"] = "train" if int(index) < SEED_TRAIN_FILES else "test"
        clips.append(Clip(str(keep), genre, track, NAME, meta=meta))
    return build_manifest(NAME, root, clips, skipped, layout="genres/<genre>/<genre>.000NN.au", example="genres/blues/blues.00000.au")
