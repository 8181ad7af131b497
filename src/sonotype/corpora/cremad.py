"""CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014).

7,442 clips from 91 actors (48 male, 43 female, ages 20-74, several races and ethnicities),
12 sentences, six emotions and four intensity levels. Licence: Open Database License (ODbL)
with Database Contents License. Home: https://github.com/CheyneyComputerScience/CREMA-D
(audio stored with git-lfs; ``sonotype corpus download cremad DIR`` resolves it).

Layout (repository)::

    AudioWAV/1001_DFA_ANG_XX.wav          actor_sentence_emotion_intensity
    VideoDemographics.csv                 ActorID, Age, Sex, Race, Ethnicity

Emotions ANG DIS FEA HAP NEU SAD; intensity LO MD HI, or XX (unspecified). Sentences:
IEO DFA IOM ITH ITS IWL IWW MTI TAI TIE TSI WSI. Group = actor. When ``AudioWAV`` exists
only it is scanned (``AudioMP3`` holds the same clips). The demographics file is looked up
in the root and its parent (or given as ``demographics=``); its columns land in ``meta``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

from ..errors import CorpusError
from .base import DOWNLOAD_DIR, Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from .download import Resource
from .emotions import CODES

__all__ = ["fetch", "prepare", "read_demographics", "read_lfs_pointer"]

NAME = "cremad"
DEMOGRAPHICS = "VideoDemographics.csv"
# The repository's companion files: not audio, known, never reported.
METADATA = (
    DEMOGRAPHICS,
    "SentenceFilenames.csv",
    "finishedResponses.csv",
    "finishedEmoResponses.csv",
    "finishedResponsesWithRepeatWithPractice.csv",
    "summaryTable.csv",
    "tabulatedVotes.csv",
    "README.md",
    "LICENSE.txt",
    ".gitattributes",
)
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
INTENSITY = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
# GitHub's archive of the repository holds git-lfs *pointers* (oid sha256 + size) for the
# audio; ``fetch`` replaces each AudioWAV pointer by the real file from the LFS media host,
# verified against the pointer's sha256. Alternative by hand:
#   GIT_LFS_SKIP_SMUDGE=1 git clone https://github.com/CheyneyComputerScience/CREMA-D.git
#   cd CREMA-D && git lfs pull --include "AudioWAV/*"
REPO_ARCHIVE = Resource(
    url="https://github.com/CheyneyComputerScience/CREMA-D/archive/refs/heads/master.zip",
    filename="CREMA-D-master.zip",
)
LFS_MEDIA = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
_LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
_NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def read_lfs_pointer(path: Path) -> tuple[str, int] | None:
    """``(sha256, size)`` when ``path`` is a git-lfs pointer file rather than the content, else None."""
    try:
        if path.stat().st_size > 1024:
            return None
        text = path.read_bytes()
    except OSError:
        return None
    if not text.startswith(_LFS_HEADER):
        return None
    fields = dict(line.split(" ", 1) for line in text.decode("ascii", "replace").splitlines() if " " in line)
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not size.isdigit():
        return None
    return oid.removeprefix("sha256:"), int(size)


def fetch(dest: Path, *, progress: bool = True) -> Path:
    """Download the repository archive, then every AudioWAV file from git-lfs (sha256 checked).

    Returns the repository folder (the corpus root). Files already fetched are not fetched
    again, so an interrupted run continues where it stopped.
    """
    from .download import download, extract

    root = Path(dest)
    archive = download(REPO_ARCHIVE.url, root / DOWNLOAD_DIR / REPO_ARCHIVE.filename, progress=progress)
    marker = root / DOWNLOAD_DIR / f"{REPO_ARCHIVE.filename}.extracted"
    if not marker.exists():
        extract(archive, root)
        marker.write_text(archive.name + "\n")
    repos = [d for d in (root, *sorted(root.iterdir())) if (d / "AudioWAV").is_dir()]
    if not repos:
        raise CorpusError(f"cremad: the archive unpacked into {root} has no AudioWAV folder")
    repo = repos[0]
    files = [*sorted((repo / "AudioWAV").iterdir()), repo / DEMOGRAPHICS]
    pointers = [(f, p) for f in files if (p := read_lfs_pointer(f)) is not None]
    for i, (f, (oid, _size)) in enumerate(pointers, 1):
        if progress and (i % 250 == 0 or i == len(pointers)):
            print(f"  git-lfs audio: {i}/{len(pointers)}", file=sys.stderr, flush=True)
        rel = f.relative_to(repo).as_posix()
        tmp = download(LFS_MEDIA + rel, f.with_name(f.name + ".lfs"), sha256=oid, progress=False)
        os.replace(tmp, f)
    return repo


def read_demographics(path: Path) -> dict[int, dict[str, object]]:
    """Read ``VideoDemographics.csv`` into ``{actor_id: {age, sex, race, ethnicity}}``."""
    out: dict[int, dict[str, object]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for i, row in enumerate(csv.DictReader(f), 2):
                try:
                    actor = int(row["ActorID"])
                    out[actor] = {
                        "age": int(row["Age"]),
                        "sex": row["Sex"].strip().lower(),
                        "race": row["Race"].strip(),
                        "ethnicity": row["Ethnicity"].strip(),
                    }
                except (KeyError, ValueError, AttributeError) as exc:
                    raise CorpusError(f"{path}:{i}: bad demographics row {row} ({exc})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from None
    return out


@register(NAME)
def prepare(root: Path, *, demographics: str | Path | None = None) -> Manifest:
    """Build the CREMA-D manifest; demographics join on the actor id when available."""
    root = check_root(root)
    if demographics is None:
        found = [p / DEMOGRAPHICS for p in (root, root.parent) if (p / DEMOGRAPHICS).is_file()]
        demo = read_demographics(found[0]) if found else {}
    else:
        demo = read_demographics(Path(demographics))
    scan_root = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    files, skipped = scan_files(scan_root, metadata=METADATA)
    codes = CODES[NAME]
    clips: list[Clip] = []
    for f in files:
        if read_lfs_pointer(f) is not None:
            skipped.append(
                Skipped(str(f), "git-lfs pointer, the audio was never fetched (run: git lfs pull)")
            )
            continue
        m = _NAME_RE.match(f.stem)
        if m is None:
            skipped.append(
                Skipped(str(f), "name is not <actor>_<SENTENCE>_<EMOTION>_<INTENSITY> (e.g. 1001_DFA_ANG_XX)")
            )
            continue
        actor, sentence, emo, level = m.groups()
        why = None
        if emo not in codes:
            why = f"unknown emotion code {emo!r} (known: {', '.join(codes)})"
        elif sentence not in SENTENCES:
            why = f"unknown sentence code {sentence!r}"
        elif level not in INTENSITY:
            why = f"unknown intensity code {level!r} (known: {', '.join(INTENSITY)})"
        if why:
            skipped.append(Skipped(str(f), why))
            continue
        meta: dict[str, object] = {
            "code": emo,
            "actor": int(actor),
            "sentence": sentence,
            "intensity": INTENSITY[level],
        }
        meta.update(demo.get(int(actor), {}))
        clips.append(Clip(str(f), codes[emo], actor, NAME, meta=meta))
    return build_manifest(NAME, root, clips, skipped, layout="AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav", example="AudioWAV/1001_DFA_ANG_XX.wav")
