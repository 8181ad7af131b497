"""FSDD: Free Spoken Digit Dataset (Jackobovski et al.).

Spoken digits 0-9, 8 kHz mono WAV: 3,000 recordings, 6 speakers x 10 digits x 50 takes.
Licence CC BY-SA 4.0. Home: https://github.com/Jakobovski/free-spoken-digit-dataset

Layout::

    recordings/<digit>_<speaker>_<take>.wav        e.g. 7_jackson_32.wav

Label = the digit (as a string), group = the speaker. When a ``recordings`` folder exists
only it is scanned (the repository also holds scripts and notebooks).
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from .download import Resource

__all__ = ["DOWNLOADS", "prepare"]

NAME = "fsdd"
# The default branch moves, so no checksum can be pinned; the sha256 is printed after download.
DOWNLOADS = (
    Resource(
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip",
        filename="free-spoken-digit-dataset-master.zip",
    ),
)
_NAME_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


@register(NAME)
def prepare(root: Path) -> Manifest:
    """Build the FSDD manifest from ``<root>/recordings/*.wav`` (also one level down, as unzipped from GitHub; else the root)."""
    root = check_root(root)
    found = [d for d in (root / "recordings", *sorted(root.glob("*/recordings"))) if d.is_dir()]
    scan_root = found[0] if found else root
    files, skipped = scan_files(scan_root)
    clips: list[Clip] = []
    for f in files:
        m = _NAME_RE.match(f.stem)
        if m is None:
            skipped.append(Skipped(str(f), "name is not <digit>_<speaker>_<take> (e.g. 7_jackson_32)"))
            continue
        digit, speaker, take = m.groups()
        clips.append(
            Clip(
                str(f),
                digit,
                speaker,
                NAME,
                meta={"digit": int(digit), "speaker": speaker, "take": int(take)},
            )
        )
    return build_manifest(NAME, root, clips, skipped, layout="recordings/<digit>_<speaker>_<take>.wav", example="recordings/7_jackson_32.wav")
