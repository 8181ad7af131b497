"""EmoDB: Berlin Database of Emotional Speech (Burkhardt et al., 2005).

Ten German actors (five female, five male) speak ten everyday sentences in seven emotions:
535 files, 16 kHz WAV. Free for research. Home: http://emodb.bilderbar.info/

Layout (``download.zip`` unpacked)::

    wav/03a01Wa.wav       speaker 03, text a01, emotion letter W, version a

Emotion letters are German initials: W Wut (anger), L Langeweile (boredom), E Ekel
(disgust), A Angst (fear), F Freude (happiness), T Trauer (sadness), N neutral.
Group = speaker (the two leading digits). When a ``wav`` folder exists only it is scanned
(the archive also holds label and syllable folders).
"""

from __future__ import annotations

import re
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.download import Resource
from sonotype.corpora.emotions import CODES

__all__ = ["DOWNLOADS", "prepare"]

NAME = "emodb"
# The publisher (emodb.bilderbar.info) publishes no checksum, and none was found in the
# projects that fetch this address (audb/audformat's emodb build scripts, nkululeko); the file is
# accepted only as a verified complete transfer (size equal to Content-Length) and recorded
# with its sha256 beside it (``.emodb-download.zip.complete``).
DOWNLOADS = (
    Resource(url="http://emodb.bilderbar.info/download/download.zip", filename="emodb-download.zip"),
)
# speaker -> (gender, age at recording), from the corpus documentation
SPEAKERS = {
    "03": ("male", 31),
    "08": ("female", 34),
    "09": ("female", 21),
    "10": ("male", 32),
    "11": ("male", 26),
    "12": ("male", 30),
    "13": ("female", 32),
    "14": ("female", 35),
    "15": ("male", 25),
    "16": ("female", 31),
}
TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_NAME_RE = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$")


@register(NAME, group="speaker")
def prepare(root: Path) -> Manifest:
    """Build the EmoDB manifest from ``<root>/wav/*.wav`` (or the root itself).

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
    >>> touch("wav/03a01Wa.wav")
    >>> touch("wav/08b02Fb.wav")
    >>> [(c.label, c.group) for c in prepare(root)]
    [('angry', '03'), ('happy', '08')]
    """
    root = check_root(root)
    scan_root = root / "wav" if (root / "wav").is_dir() else root
    files, skipped = scan_files(scan_root)
    codes = CODES[NAME]
    clips: list[Clip] = []
    for f in files:
        m = _NAME_RE.match(f.stem)
        if m is None:
            skipped.append(
                Skipped(str(f), "name is not <speaker NN><text a01><emotion letter><version> (e.g. 03a01Wa)")
            )
            continue
        speaker, text, letter, version = m.groups()
        if letter not in codes:
            skipped.append(Skipped(str(f), f"unknown emotion letter {letter!r} (known: {' '.join(codes)})"))
            continue
        if speaker not in SPEAKERS:
            skipped.append(Skipped(str(f), f"unknown speaker {speaker!r} (known: {' '.join(SPEAKERS)})"))
            continue
        gender, age = SPEAKERS[speaker]
        meta = {
            "code": letter,
            "speaker": speaker,
            "text": text,
            "version": version,
            "gender": gender,
            "age": age,
        }
        clips.append(Clip(str(f), codes[letter], speaker, NAME, meta=meta))
    return build_manifest(NAME, root, clips, skipped, layout="wav/<speaker><text><emotion><version>.wav", example="wav/03a01Wa.wav")
