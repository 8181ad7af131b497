"""SAVEE: Surrey Audio-Visual Expressed Emotion (Haq & Jackson, 2009).

Four male British speakers (DC, JE, JK, KL), 120 utterances each: seven emotions, 15 sentences
per emotion and 30 for neutral -> 480 files (neutral 120, the others 60). Free for research;
the download requires registration at http://kahlan.eps.surrey.ac.uk/savee/ (a copy is also
on Kaggle as ``ejlok1/surrey-audiovisual-expressed-emotion-savee``).

Two layouts are read, also mixed in one tree::

    AudioData/DC/a01.wav        original release (code + two-digit take, speaker = folder)
    ALL/DC_a01.wav              flat Kaggle copy (speaker prefix)

Codes: a anger, d disgust, f fear, h happiness, n neutral, sa sadness, su surprise.
Group = speaker. The same utterance present in both layouts is kept once; the other copy
is reported as a duplicate. When an ``AudioData`` folder exists only it is scanned (the
release also holds video and annotation folders).
"""

from __future__ import annotations

import re
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.emotions import CODES

__all__ = ["MANUAL", "prepare"]

NAME = "savee"
SPEAKERS = ("DC", "JE", "JK", "KL")
MANUAL = """\
SAVEE is distributed after registration only.
1. Register at http://kahlan.eps.surrey.ac.uk/savee/Register.html and download AudioData.zip
   (or the Kaggle copy: kaggle datasets download ejlok1/surrey-audiovisual-expressed-emotion-savee).
2. Unzip it under {dest} so that {dest}/AudioData/DC/a01.wav (or {dest}/ALL/DC_a01.wav) exists.
3. Check with: sonotype corpus show savee {dest}
"""
_FLAT_RE = re.compile(r"^([A-Za-z]{2})_(sa|su|a|d|f|h|n)(\d{2})$")
_ORIG_RE = re.compile(r"^(sa|su|a|d|f|h|n)(\d{2})$")


@register(NAME, group="speaker")
def prepare(root: Path) -> Manifest:
    """Build the SAVEE manifest from either layout (see the module docstring).

    Parameters
    ----------
    root : pathlib.Path
        The corpus folder.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> def touch(rel):
    ...     (root / rel).parent.mkdir(parents=True, exist_ok=True)
    ...     sf.write(root / rel, np.zeros(800, np.float32), 8000)
    >>> touch("AudioData/DC/a01.wav")
    >>> touch("AudioData/JK/sa03.wav")
    >>> [(c.label, c.group) for c in prepare(root)]
    [('angry', 'DC'), ('sad', 'JK')]
    """
    root = check_root(root)
    scan_root = root / "AudioData" if (root / "AudioData").is_dir() else root
    files, skipped = scan_files(scan_root, metadata=("info.txt",))
    seen: dict[tuple[str, str, int], str] = {}
    clips: list[Clip] = []
    codes = CODES[NAME]
    for f in files:
        m = _FLAT_RE.match(f.stem)
        if m:
            speaker, code, take = m.group(1).upper(), m.group(2), int(m.group(3))
            layout = "flat"
        elif (m := _ORIG_RE.match(f.stem)) and f.parent.name.upper() in SPEAKERS:
            speaker, code, take = f.parent.name.upper(), m.group(1), int(m.group(2))
            layout = "original"
        else:
            skipped.append(
                Skipped(
                    str(f), "name is not <SPEAKER>_<code><NN> or <SPEAKER>/<code><NN> (codes a d f h n sa su)"
                )
            )
            continue
        if speaker not in SPEAKERS:
            skipped.append(
                Skipped(str(f), f"unknown speaker {speaker!r} (expected one of {', '.join(SPEAKERS)})")
            )
            continue
        key = (speaker, code, take)
        if key in seen:
            skipped.append(Skipped(str(f), f"duplicate of {seen[key]}"))
            continue
        seen[key] = str(f)
        meta = {"code": code, "speaker": speaker, "take": take, "gender": "male", "layout": layout}
        clips.append(Clip(str(f), codes[code], speaker, NAME, meta=meta))
    return build_manifest(
        NAME, root, clips, skipped, layout="AudioData/<SPEAKER>/<code><NN>.wav or <SPEAKER>_<code><NN>.wav",
        example="AudioData/DC/a01.wav",
    )
