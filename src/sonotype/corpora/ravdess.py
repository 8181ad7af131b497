"""RAVDESS: Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone & Russo 2018).

24 professional actors (odd numbers male, even female), two statements, eight emotions.
Audio-only speech: 1,440 files (60 per actor); audio-only song: 1,012 files (actors 01-24
except 18). Licence CC BY-NC-SA 4.0. Home: https://zenodo.org/records/1188976

Layout (as unzipped)::

    Actor_01/03-01-06-01-02-01-01.wav      (any audio extension; ours are FLAC)

File name ``MM-VV-EE-II-SS-RR-AA``: modality (01 full-AV, 02 video-only, 03 audio-only),
vocal channel (01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad,
05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal, 02 strong; neutral
has no strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the
door"), repetition (01, 02), actor (01-24). Group = actor: the same voice must never be on
both sides of a split.
"""

from __future__ import annotations

import re
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.corpora.download import Resource
from sonotype.corpora.emotions import CODES
from sonotype.errors import CorpusError

__all__ = ["DOWNLOADS", "prepare"]

NAME = "ravdess"
DOWNLOADS = (
    Resource(
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        filename="Audio_Speech_Actors_01-24.zip",
        md5="bc696df654c87fed845eb13823edef8a",  # publisher's value on the Zenodo record, 208,468,073 bytes
    ),
)
# The song archive's md5 is shown on the same Zenodo record but was not available offline when
# this was written; until it is added, the download is accepted only as a verified complete
# transfer (Zenodo sends Content-Length) and recorded with its sha256.
SONG_DOWNLOAD = Resource(
    url="https://zenodo.org/records/1188976/files/Audio_Song_Actors_01-24.zip?download=1",
    filename="Audio_Song_Actors_01-24.zip",
)

_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_ACTOR_DIR_RE = re.compile(r"^Actor_(\d{2})$", re.IGNORECASE)
MODALITY = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNEL = {"01": "speech", "02": "song"}
EMOTION = CODES["ravdess"]  # the unified vocabulary is the RAVDESS one
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def parse_name(stem: str) -> dict[str, object]:
    """Decode a RAVDESS file stem into its factors.

    Raises
    ------
    ValueError
        With the reason when the stem is not a valid RAVDESS code.

    Examples
    --------
    >>> parse_name("03-01-06-01-02-01-12")["emotion"]
    'fearful'
    """
    m = _NAME_RE.match(stem)
    if m is None:
        raise ValueError("name is not MM-VV-EE-II-SS-RR-AA (seven two-digit codes)")
    mod, chan, emo, inten, stmt, rep, actor = m.groups()
    checks = [
        ("modality", mod, MODALITY),
        ("vocal channel", chan, VOCAL_CHANNEL),
        ("emotion", emo, EMOTION),
        ("intensity", inten, INTENSITY),
        ("statement", stmt, STATEMENT),
        ("repetition", rep, {"01": 1, "02": 2}),
    ]
    for what, code, table in checks:
        if code not in table:
            raise ValueError(f"unknown {what} code {code!r}")
    if emo == "01" and inten == "02":
        raise ValueError("neutral has no strong intensity (code 01-02)")
    n_actor = int(actor)
    if not 1 <= n_actor <= 24:
        raise ValueError(f"actor {actor} outside 01-24")
    return {
        "code": emo,
        "emotion": EMOTION[emo],
        "modality": MODALITY[mod],
        "vocal_channel": VOCAL_CHANNEL[chan],
        "intensity": INTENSITY[inten],
        "statement": int(stmt),
        "repetition": int(rep),
        "actor": n_actor,
        "gender": "male" if n_actor % 2 else "female",
    }


@register(NAME, group="actor")
def prepare(root: Path, *, vocal_channel: str = "both") -> Manifest:
    """Build the RAVDESS manifest; ``vocal_channel`` is ``"speech"``, ``"song"`` or ``"both"``.

    Files of the channel not asked for are listed in ``skipped`` (reason says so), as are
    names that are not valid RAVDESS codes and files in an ``Actor_NN`` folder of another actor.

    Parameters
    ----------
    root : pathlib.Path
        The corpus folder.
    vocal_channel : {"speech", "song", "both"}

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
    >>> touch("Actor_01/03-01-05-01-01-01-01.wav")
    >>> touch("Actor_02/03-01-03-02-02-01-02.wav")
    >>> [(c.label, c.group) for c in prepare(root)]
    [('angry', 'Actor_01'), ('happy', 'Actor_02')]
    """
    if vocal_channel not in ("speech", "song", "both"):
        raise CorpusError(f"ravdess: vocal_channel must be 'speech', 'song' or 'both', got {vocal_channel!r}")
    root = check_root(root)
    files, skipped = scan_files(root)
    clips: list[Clip] = []
    for f in files:
        try:
            meta = parse_name(f.stem)
        except ValueError as exc:
            skipped.append(Skipped(str(f), f"not a RAVDESS name: {exc}"))
            continue
        folder = _ACTOR_DIR_RE.match(f.parent.name)
        if folder and int(folder.group(1)) != meta["actor"]:
            skipped.append(
                Skipped(
                    str(f), f"actor {meta['actor']:02d} in the name but the file is in folder {f.parent.name}"
                )
            )
            continue
        if vocal_channel != "both" and meta["vocal_channel"] != vocal_channel:
            skipped.append(
                Skipped(str(f), f"{meta['vocal_channel']} file left out (vocal_channel={vocal_channel!r})")
            )
            continue
        label = str(meta.pop("emotion"))
        clips.append(Clip(str(f), label, f"Actor_{meta['actor']:02d}", NAME, meta=meta))
    return build_manifest(NAME, root, clips, skipped, layout="Actor_NN/03-01-EE-II-SS-RR-AA.wav", example="Actor_12/03-01-05-01-02-01-12.wav")
