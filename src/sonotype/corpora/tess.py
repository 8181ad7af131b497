"""TESS: Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, 2010).

Two actresses, OAF (older, 64) and YAF (younger, 26), say "Say the word ___" for 200 target
words in seven emotions: 2,800 files of 24,414 Hz PCM WAV. Licence CC BY-NC-ND 4.0.
Home: https://borealisdata.ca/dataset.xhtml?persistentId=doi:10.5683/SP2/E8H2MF

Layout::

    <SPEAKER>_<emotion>/<SPEAKER>_<word>_<emotion>.wav     e.g. OAF_Fear/OAF_back_fear.wav

The folder names are inconsistent in the original (``OAF_Fear``, ``OAF_Pleasant_surprise``,
``YAF_pleasant_surprised``) and are ignored: emotion and speaker come from the file name
alone. The emotion is the last word of the stem (``ps`` = pleasant surprise -> *surprised*).
The original release has one misnamed file, ``OAF_neutral/OA_bite_neutral.wav``: a prefix
``OA``/``YA`` inside a folder of that speaker is read as ``OAF``/``YAF`` and the clip gets
``meta["note"]``. Group = speaker, so a speaker-independent split needs both speakers on
opposite sides (the honest TESS protocol is train on one voice, test on the other).
"""

from __future__ import annotations

from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.emotions import CODES

__all__ = ["DATAVERSE_DOI", "DATAVERSE_SERVER", "fetch", "prepare"]

NAME = "tess"
DATAVERSE_SERVER = "https://borealisdata.ca"
DATAVERSE_DOI = "doi:10.5683/SP2/E8H2MF"
SPEAKERS = {"OAF": ("older", 64), "YAF": ("younger", 26)}
_TRUNCATED = {"OA": "OAF", "YA": "YAF"}


def fetch(dest: Path, *, progress: bool = True) -> Path:
    """Download all TESS files from the University of Toronto dataverse (MD5 checked per file).

    Parameters
    ----------
    dest : pathlib.Path
        The corpus folder to fill.
    progress : bool
        Show download progress.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Examples
    --------
    >>> prepare(fetch(Path("data/tess")))  # doctest: +SKIP
    """
    from sonotype.corpora.download import fetch_dataverse

    return fetch_dataverse(DATAVERSE_SERVER, DATAVERSE_DOI, dest, progress=progress)


@register(NAME, group="speaker")
def prepare(root: Path) -> Manifest:
    """Build the TESS manifest from ``<root>/**/<SPEAKER>_<word>_<emotion>.wav``.

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
    >>> touch("OAF_angry/OAF_back_angry.wav")
    >>> touch("YAF_sad/YAF_dog_sad.wav")
    >>> [(c.label, c.group) for c in prepare(root)]
    [('angry', 'OAF'), ('sad', 'YAF')]
    """
    root = check_root(root)
    files, skipped = scan_files(root)
    clips: list[Clip] = []
    codes = CODES[NAME]
    for f in files:
        parts = f.stem.split("_")
        if len(parts) < 3:
            skipped.append(Skipped(str(f), "name is not <SPEAKER>_<word>_<emotion>"))
            continue
        prefix, code, word = parts[0], parts[-1].lower(), "_".join(parts[1:-1])
        if code not in codes:
            skipped.append(Skipped(str(f), f"unknown emotion {parts[-1]!r} (known: {', '.join(codes)})"))
            continue
        meta: dict[str, object] = {}
        speaker = prefix.upper()
        if speaker not in SPEAKERS:
            folder_speaker = f.parent.name.split("_")[0].upper()
            if _TRUNCATED.get(speaker) == folder_speaker:
                meta["note"] = f"file prefix {prefix!r} read as {folder_speaker} (folder {f.parent.name})"
                speaker = folder_speaker
            else:
                skipped.append(Skipped(str(f), f"unknown speaker prefix {prefix!r} (expected OAF or YAF)"))
                continue
        age_group, age = SPEAKERS[speaker]
        meta.update(code=code, speaker=speaker, word=word, gender="female", age_group=age_group, age=age)
        clips.append(Clip(str(f), codes[code], speaker, NAME, meta=meta))
    return build_manifest(
        NAME, root, clips, skipped, layout="<SPEAKER>_<emotion>/<SPEAKER>_<word>_<emotion>.wav",
        example="OAF_Fear/OAF_back_fear.wav",
    )
