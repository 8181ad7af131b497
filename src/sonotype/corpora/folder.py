"""Generic class-per-folder corpus: ``<root>/<label>/<any/sub/path>/<file>.<audio ext>``.

The label is the name of the first folder under the root. Without other knowledge each file
is its own group (nothing to leak), which is wrong whenever several files share a speaker or
a recording: pass ``group_regex``, a regular expression with one capture group applied to
the file stem, to say what must stay together (``r"^([a-z]+)_"`` for ``alice_03.wav``).

Files directly in the root (no class folder) and files whose stem the regex does not match
are reported as skipped. Any extension in :data:`sonotype.audio.AUDIO_EXTENSIONS` counts.
"""

from __future__ import annotations

import re
from pathlib import Path

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register, scan_files
from sonotype.errors import CorpusError

__all__ = ["prepare"]

NAME = "folder"


@register(NAME, group="file")
def prepare(root: Path, *, group_regex: str | None = None, corpus: str = NAME) -> Manifest:
    """Build a manifest from a class-per-subfolder tree.

    Parameters
    ----------
    root : Path
        Folder holding one sub-folder per class.
    group_regex : str, optional
        Regex with exactly one group over the file stem; the match is the clip's group.
        Default: the file path (every file its own group).
    corpus : str
        Name written into each clip's ``corpus`` field.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> for label in ("cat", "dog"):
    ...     (root / label).mkdir()
    ...     for name in ("ann_1", "ann_2", "bob_1"):
    ...         sf.write(root / label / f"{name}.wav", np.zeros(800, np.float32), 8000)
    >>> m = prepare(root, group_regex=r"^(.+)_\\d+$")
    >>> m.class_counts(), m.group_counts()
    ({'cat': 3, 'dog': 3}, {'ann': 4, 'bob': 2})
    """
    root = check_root(root)
    pattern = None
    if group_regex is not None:
        try:
            pattern = re.compile(group_regex)
        except re.error as exc:
            raise CorpusError(
                f"group_regex {group_regex!r} is not a valid regular expression ({exc})"
            ) from None
        if pattern.groups != 1:
            raise CorpusError(
                f"group_regex {group_regex!r} must have exactly one capture group, has {pattern.groups}"
            )
    files, skipped = scan_files(root)
    clips: list[Clip] = []
    for f in files:
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            skipped.append(Skipped(str(f), "file directly in the root: no class folder"))
            continue
        label = rel.parts[0]
        group = str(f)
        if pattern is not None:
            m = pattern.search(f.stem)
            if m is None or not m.group(1):
                skipped.append(
                    Skipped(str(f), f"group_regex {group_regex!r} does not match the name {f.stem!r}")
                )
                continue
            group = m.group(1)
        clips.append(Clip(str(f), label, group, corpus, meta={"relpath": rel.as_posix()}))
    return build_manifest(corpus, root, clips, skipped, layout="<root>/<class>/<file>", example="<root>/angry/clip01.wav")
