"""Typed manifests: a corpus root becomes a list of :class:`Clip` plus the files skipped.

Every loader returns a :class:`Manifest`. A clip's ``group`` is whatever must never sit on
both sides of a split (speaker, actor, track). Files that do not fit the corpus naming are
recorded in ``Manifest.skipped`` with a reason - never silently dropped.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sonotype.audio import AUDIO_EXTENSIONS
from sonotype.errors import CorpusError
from sonotype.utils.html import bar, esc, table
from sonotype.utils.io import atomic_write_text, file_kind

__all__ = [
    "CORPORA",
    "Clip",
    "CorpusLoader",
    "Manifest",
    "Skipped",
    "build_manifest",
    "check_root",
    "register",
    "scan_files",
]


@dataclass(frozen=True)
class Clip:
    """One labelled piece of audio.

    ``start``/``duration`` (seconds) select a part of the file; ``duration=None`` reads to
    the end. ``meta`` holds corpus-specific facts (gender, intensity, statement, split...).

    Attributes
    ----------
    path : str
        The audio file.
    label : str
        Its class.
    group : str
        Speaker, actor, track or session: never on both sides of a split.
    corpus : str
        The loader's name.
    start : float
        Seconds into the file.
    duration : float, optional
        Seconds read (None: to the end).
    meta : dict
        Corpus-specific facts (not compared, not hashed).

    Examples
    --------
    >>> c = Clip("a.wav", "happy", "actor01", start=2.0, duration=1.5)
    >>> c.clip_id, c.with_label("joy").label
    ('a.wav@2.000+1.5', 'joy')
    """

    path: str
    label: str
    group: str
    corpus: str = ""
    start: float = 0.0
    duration: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def clip_id(self) -> str:
        """Stable identifier: the path, plus the part when the clip is a cut of a file."""
        if self.start == 0.0 and self.duration is None:
            return self.path
        return f"{self.path}@{self.start:.3f}+{self.duration if self.duration is not None else 'end'}"

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (the manifest's JSONL record).

        Returns
        -------
        dict
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Clip:
        """Rebuild from :meth:`to_dict` (unknown keys are ignored).

        Parameters
        ----------
        d : dict

        Returns
        -------
        Clip
        """
        return cls(**{k: d[k] for k in ("path", "label", "group", "corpus", "start", "duration", "meta") if k in d})

    def with_label(self, label: str) -> Clip:
        """A copy with another label.

        Parameters
        ----------
        label : str

        Returns
        -------
        Clip
        """
        return replace(self, label=label)


@dataclass(frozen=True)
class Skipped:
    """A file the loader could not use, and why.

    Attributes
    ----------
    path : str
    reason : str

    Examples
    --------
    >>> Skipped("notes.txt", "not an audio file (extension '.txt')").reason
    "not an audio file (extension '.txt')"
    """

    path: str
    reason: str


@dataclass
class Manifest:
    """The clips of a corpus (after any label operations) and the files skipped on the way.

    In a notebook it shows as clips per class (with bars) and per class and group.

    Attributes
    ----------
    corpus : str
        The loader's name.
    root : str
        The corpus folder.
    clips : list of Clip
        Sorted by path.
    skipped : list of Skipped
        Files left out, with the reason.

    Examples
    --------
    >>> m = Manifest("toy", "/data", [Clip("a.wav", "cat", "ann"), Clip("b.wav", "dog", "ann"),
    ...                               Clip("c.wav", "dog", "bob")])
    >>> len(m), m.labels, m.class_counts(), m.group_counts()
    (3, ['cat', 'dog'], {'cat': 1, 'dog': 2}, {'ann': 2, 'bob': 1})
    >>> "clips per class and group" in m._repr_html_()
    True
    """

    corpus: str
    root: str
    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted({c.label for c in self.clips})

    def class_counts(self) -> dict[str, int]:
        """Clips per label, sorted by label.

        Returns
        -------
        dict
        """
        return dict(sorted(Counter(c.label for c in self.clips).items()))

    def group_counts(self) -> dict[str, int]:
        """Clips per group, sorted by group.

        Returns
        -------
        dict
        """
        return dict(sorted(Counter(c.group for c in self.clips).items()))

    def _repr_html_(self) -> str:
        """A notebook summary: clips per class (with bars) and per class and group."""

        classes, groups = self.class_counts(), self.group_counts()
        head = (f"<b>Manifest</b> {esc(self.corpus or '(unnamed)')}: {len(self.clips)} clips, {len(classes)} classes, "
                f"{len(groups)} groups" + (f", {len(self.skipped)} files skipped" if self.skipped else ""))
        if not self.clips:
            return f"<div>{head}</div>"
        top = max(classes.values())
        per_class_groups = Counter(lab for lab, _ in {(c.label, c.group) for c in self.clips})
        rows = [[esc(lab), str(n), bar(n / top), str(per_class_groups[lab])] for lab, n in classes.items()]
        out = head + table(["class", "clips", "", "groups"], rows)
        if len(groups) <= _GROUP_COLUMNS:
            cross = Counter((c.label, c.group) for c in self.clips)
            rows = [[esc(lab), *(str(cross[lab, g]) if cross[lab, g] else "" for g in groups)] for lab in classes]
            out += table(["class \\ group", *groups], rows, caption="clips per class and group")
        else:
            n = sorted(groups.values())
            out += (f"<div>clips per group: min {n[0]}, median {n[len(n) // 2]}, max {n[-1]} "
                    f"({len(groups)} groups; too many to tabulate)</div>")
        return f"<div>{out}</div>"

    def replace_clips(self, clips: Iterable[Clip], skipped: Iterable[Skipped] = ()) -> Manifest:
        """A new manifest with other clips, keeping the skipped list (plus ``skipped``).

        Parameters
        ----------
        clips : iterable of Clip
        skipped : iterable of Skipped
            Added to the skipped list.

        Returns
        -------
        Manifest
        """
        return Manifest(self.corpus, self.root, list(clips), [*self.skipped, *skipped])

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """Write one JSON object per clip (atomic).

        Parameters
        ----------
        path : path-like
        """

        lines = [json.dumps(c.to_dict(), sort_keys=True) for c in self.clips]
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, *, corpus: str = "", root: str = "") -> Manifest:
        """Read a manifest written by :meth:`to_jsonl`.

        Parameters
        ----------
        path : path-like
        corpus, root : str
            Not stored in the file; given here.

        Returns
        -------
        Manifest
        """
        clips = []
        for i, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                try:
                    clips.append(Clip.from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError, KeyError) as exc:
                    raise CorpusError(f"{path}:{i}: not a clip record ({exc})") from None
        return cls(corpus, root, clips)


# Up to this many groups, the notebook view tabulates clips per class and group.
_GROUP_COLUMNS = 24

CorpusLoader = Callable[..., Manifest]
# Where ``download_corpus`` keeps archives inside a corpus root; never scanned by loaders.
DOWNLOAD_DIR = ".sonotype-downloads"
CORPORA: dict[str, CorpusLoader] = {}
# What one group of each corpus is (``actor``, ``track``...), for protocol sentences in reports.
GROUPS: dict[str, str] = {}


def register(name: str, *, group: str = "group") -> Callable[[CorpusLoader], CorpusLoader]:
    """Class-free registry: ``@register("tess", group="speaker")`` on a ``prepare(root, **options)`` function.

    Parameters
    ----------
    name : str
        The corpus name recipes and ``load_corpus`` use.
    group : str
        What a clip's group is in this corpus (speaker, actor, track), the unit that never
        straddles a split; reports say "leave-one-actor-out" with it.

    Returns
    -------
    callable
        A decorator that registers the loader and returns it unchanged.

    Examples
    --------
    >>> @register("toy-example")
    ... def prepare(root):
    ...     return Manifest("toy-example", str(root), [])
    >>> CORPORA["toy-example"] is prepare
    True
    >>> del CORPORA["toy-example"]
    """

    def deco(fn: CorpusLoader) -> CorpusLoader:
        CORPORA[name] = fn
        GROUPS[name] = group
        return fn

    return deco


def check_root(root: str | os.PathLike) -> Path:
    """Return ``root`` as an absolute :class:`Path`, or raise :class:`CorpusError` if it is no folder.

    Parameters
    ----------
    root : path-like

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> check_root("/no/such/corpus")
    Traceback (most recent call last):
    ...
    sonotype.errors.CorpusError: corpus root not found: /no/such/corpus
    """
    p = Path(root).expanduser()
    if not p.exists():
        raise CorpusError(f"corpus root not found: {p}")
    if not p.is_dir():
        raise CorpusError(f"corpus root is not a folder: {p}")
    return p.resolve()


def scan_files(
    root: Path, *, metadata: Iterable[str] = (), audio_extensions: Iterable[str] | None = None
) -> tuple[list[Path], list[Skipped]]:
    """Walk ``root`` (sorted, recursive) and split its files into audio files and the rest.

    Files whose name is in ``metadata`` (known companion files of the corpus, compared
    case-insensitively) are left out quietly; every other non-audio file is returned as a
    :class:`Skipped` entry, so nothing vanishes without a trace.

    Only what ``os.stat`` says is a regular file can be a clip: FIFOs, devices and sockets
    (even named ``*.wav``), broken links and symlink loops are reported skips, found here
    without opening anything (a FIFO would block whatever reads or hashes it). A linked
    folder is followed when it leads outside ``root``; one that leads back to a folder
    above it (a loop) or elsewhere inside ``root`` (scanned there) is a reported skip, and
    no folder is scanned twice.

    Parameters
    ----------
    root : pathlib.Path
    metadata : iterable of str
        Companion file names left out quietly.
    audio_extensions : iterable of str, optional
        Suffixes counted as audio (default: every format sonotype reads).

    Returns
    -------
    audio : list of pathlib.Path
        Sorted.
    skipped : list of Skipped

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> for label in ("cat", "dog"):
    ...     (root / label).mkdir()
    ...     for spk in ("ann", "bob"):
    ...         sf.write(root / label / f"{spk}_1.wav", np.zeros(800, np.float32), 8000)
    >>> _ = (root / "README.txt").write_text("hi")
    >>> os.mkfifo(root / "cat" / "pipe.wav")
    >>> (root / "dog" / "again").symlink_to(root)
    >>> audio, skipped = scan_files(root)
    >>> len(audio), [Path(s.path).name for s in skipped]
    (4, ['README.txt', 'pipe.wav', 'again'])
    >>> [s.reason.split(" (")[0].split(":")[0] for s in skipped]
    ['not an audio file', 'a FIFO', 'symlink loop']
    """

    exts = frozenset(e.lower() for e in (audio_extensions or AUDIO_EXTENSIONS))
    known = {m.lower() for m in metadata}
    audio: list[Path] = []
    skipped: list[Skipped] = []
    root = Path(root)
    real_root = os.path.realpath(root)
    top = os.stat(root)
    seen: dict[tuple[int, int], Path] = {(top.st_dev, top.st_ino): root}
    stack: list[tuple[Path, dict[tuple[int, int], Path]]] = [(root, {(top.st_dev, top.st_ino): root})]
    while stack:
        folder, above = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(str(folder), f"folder cannot be read ({exc.strerror or exc})"))
            continue
        subdirs: list[tuple[Path, dict[tuple[int, int], Path]]] = []
        for e in entries:
            f = Path(e.path)
            link = e.is_symlink()
            if not link and e.is_file(follow_symlinks=False):  # the common case, from the directory entry: no stat
                mode = stat.S_IFREG
            else:
                try:
                    st = os.stat(f)  # follows links; never opens
                    mode = st.st_mode
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        why = "symlink loop (too many levels of symbolic links)"
                    elif link:
                        why = f"broken symbolic link (target {os.readlink(f)!r} not found)"
                    else:
                        why = f"cannot be read ({exc.strerror or exc})"
                    skipped.append(Skipped(str(f), why))
                    continue
            if stat.S_ISDIR(mode):
                if e.name == DOWNLOAD_DIR:
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in above:
                    skipped.append(Skipped(str(f), f"symlink loop: leads back to {above[ident]}"))
                elif link and _inside(os.path.realpath(f), real_root):
                    skipped.append(Skipped(str(f), f"link to {os.path.realpath(f)}, a folder of the corpus "
                                                   "(scanned there)"))
                elif ident in seen:
                    skipped.append(Skipped(str(f), f"the same folder as {seen[ident]} (scanned there)"))
                else:
                    seen[ident] = f
                    subdirs.append((f, {**above, ident: f}))
            elif not stat.S_ISREG(mode):
                skipped.append(Skipped(str(f), f"{file_kind(mode)}, not a regular file (never opened)"))
            elif f.suffix.lower() in exts:
                audio.append(f)
            elif e.name.lower() not in known:
                why = f"not an audio file (extension {f.suffix!r})" if f.suffix else "not an audio file (no extension)"
                skipped.append(Skipped(str(f), why))
        stack.extend(reversed(subdirs))  # depth first, in name order (as os.walk top-down)
    return sorted(audio), skipped


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def build_manifest(
    corpus: str, root: Path, clips: list[Clip], skipped: list[Skipped], *, layout: str, example: str | None = None
) -> Manifest:
    """Sort clips by path (deterministic order) and refuse a root that yields no clip.

    A root with nothing in it, or whose every file was skipped (another corpus's naming, a
    filter that leaves nothing), is almost surely the wrong folder or the wrong loader: a
    :class:`CorpusError` names the file naming the loader expected (``layout``, with an
    ``example`` name) and the commonest reason files were skipped.

    Parameters
    ----------
    corpus : str
    root : pathlib.Path
    clips : list of Clip
    skipped : list of Skipped
    layout : str
        The naming the loader expects, for the error message.
    example : str, optional
        An example file name, for the error message.

    Returns
    -------
    Manifest

    Examples
    --------
    >>> build_manifest("toy", Path("/data"), [Clip("b.wav", "x", "g"), Clip("a.wav", "x", "g")], [],
    ...                layout="<label>/*.wav").clips[0].path
    'a.wav'
    """
    if not clips and not skipped:
        raise CorpusError(f"{corpus}: no audio files found under {root} (expected {layout})")
    if not clips:
        raise CorpusError(_no_clip_message(corpus, root, skipped, layout, example))
    return Manifest(corpus, str(root), sorted(clips, key=lambda c: (c.path, c.start)), skipped)


def _no_clip_message(corpus: str, root: Path, skipped: list[Skipped], layout: str, example: str | None) -> str:
    reasons = Counter(s.reason for s in skipped)
    reason, n = reasons.most_common(1)[0]
    first = next(s for s in skipped if s.reason == reason)
    try:
        shown = Path(first.path).relative_to(root).as_posix()
    except ValueError:
        shown = first.path
    like = example or layout
    expected = f" (layout {layout})" if example and layout != example else ""
    return (
        f"{corpus} found no file named like {like} under {root}{expected}; "
        f"{len(skipped)} file(s) skipped, {n} of them as {shown}: {reason}. Is this the right corpus?"
    )
