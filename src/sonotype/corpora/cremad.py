"""CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014).

7,442 clips from 91 actors (48 male, 43 female, ages 20-74, several races and ethnicities),
12 sentences, six emotions and four intensity levels. Licence: Open Database License (ODbL)
with Database Contents License. Home: https://github.com/CheyneyComputerScience/CREMA-D
(audio stored with git-lfs).

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
import re
from pathlib import Path

from ..errors import CorpusError
from .base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from .emotions import CODES

__all__ = ["MANUAL", "prepare", "read_demographics"]

NAME = "cremad"
DEMOGRAPHICS = "VideoDemographics.csv"
# The repository's companion files: not audio, known, never reported.
METADATA = (DEMOGRAPHICS, "SentenceFilenames.csv", "finishedResponses.csv", "finishedEmoResponses.csv",
            "finishedResponsesWithRepeatWithPractice.csv", "summaryTable.csv", "tabulatedVotes.csv",
            "README.md", "LICENSE.txt", ".gitattributes")
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
MANUAL = """\
CREMA-D keeps its audio in git-lfs, which a plain HTTP download cannot resolve.
1. Install git-lfs, then:
     GIT_LFS_SKIP_SMUDGE=1 git clone https://github.com/CheyneyComputerScience/CREMA-D.git {dest}
     cd {dest} && git lfs pull --include "AudioWAV/*,VideoDemographics.csv"
2. Check with: sonotype corpus show cremad {dest}
"""
_NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


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
        m = _NAME_RE.match(f.stem)
        if m is None:
            skipped.append(Skipped(str(f), "name is not <actor>_<SENTENCE>_<EMOTION>_<INTENSITY> (e.g. 1001_DFA_ANG_XX)"))
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
    return build_manifest(NAME, root, clips, skipped, layout="AudioWAV/1001_DFA_ANG_XX.wav")
