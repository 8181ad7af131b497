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

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.download import Resource

__all__ = ["DOWNLOADS", "prepare"]

NAME = "fsdd"
# No publisher checksum exists for this archive: it is GitHub's archive of the moving default
# branch (3,000 clips, 6 speakers). The only published digest found is tensorflow-datasets'
# for the older tag v1.0.9 (2,500 clips; tensorflow_datasets/audio/spoken_digit/checksums.tsv:
# sha256 8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0, 11,975,353 bytes),
# which would drop a speaker. So the download is accepted only as a verified complete transfer
# (size equal to Content-Length, or a properly ended chunked body) and recorded with its sha256;
# pin your copy with ``sonotype corpus download fsdd DEST --sha256 <digest>``.
DOWNLOADS = (
    Resource(
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip",
        filename="free-spoken-digit-dataset-master.zip",
    ),
)
_NAME_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


@register(NAME, group="speaker")
def prepare(root: Path) -> Manifest:
    """Build the FSDD manifest from ``<root>/recordings/*.wav`` (also one level down, as unzipped from GitHub; else the root).

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
    >>> touch("recordings/7_jackson_32.wav")
    >>> touch("recordings/3_theo_1.wav")
    >>> [(c.label, c.group) for c in prepare(root)]
    [('3', 'theo'), ('7', 'jackson')]
    """
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
