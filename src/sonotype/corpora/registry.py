"""Every corpus loader by name: ``load_corpus("ravdess", root)`` picks the loader from this table.

Each corpus module registers its ``prepare(root, **options)`` with
:func:`sonotype.corpora.base.register`; the imports below are the explicit list of corpora
(registration is never a side effect of some other import).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from sonotype.corpora import cremad, demo, dusha, emodb, esc50, folder, fsdd, gtzan, ravdess, savee, tess
from sonotype.corpora import download as transfer
from sonotype.corpora.base import CORPORA, DOWNLOAD_DIR, GROUPS, CorpusLoader, Manifest, check_root
from sonotype.corpora.download import Resource, say_progress
from sonotype.errors import CorpusError, DownloadError

__all__ = ["LOADER_MODULES", "download_corpus", "get_loader", "group_name", "load_corpus"]

# The corpus modules, in the order `sonotype corpus list` shows them.
LOADER_MODULES = (folder, gtzan, ravdess, tess, savee, cremad, emodb, dusha, fsdd, esc50, demo)
_BY_NAME = {m.__name__.rpartition(".")[2]: m for m in LOADER_MODULES}


def group_name(corpus: str) -> str:
    """What a group of ``corpus`` is (``"actor"`` for RAVDESS); ``"group"`` for an unknown corpus.

    Parameters
    ----------
    corpus : str
        A registered corpus name.

    Returns
    -------
    str
        Singular, lower case.
    """
    if corpus == "mixed":  # several corpora in one run: groups are corpus:speaker
        return "speaker"
    return GROUPS.get(corpus, "group")


def get_loader(name: str) -> CorpusLoader:
    """The loader registered as ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    callable
        ``prepare(root, **options) -> Manifest``.

    Examples
    --------
    >>> get_loader("no-such-corpus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sonotype.errors.CorpusError: unknown corpus 'no-such-corpus'; known: ...
    """
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}") from None


def load_corpus(name: str, root: str | os.PathLike, **options: Any) -> Manifest:
    """Turn a corpus root folder into a :class:`Manifest` with the named loader.

    Unknown options are refused with a :class:`CorpusError` naming the accepted ones, so a
    typo in a recipe fails loudly instead of being ignored.

    Parameters
    ----------
    name : str
        A registered corpus (``demo``, ``folder``, ``ravdess``, ...).
    root : path-like
        The corpus folder.
    **options
        The loader's keyword options.

    Returns
    -------
    Manifest

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
    >>> m = load_corpus("folder", root, group_regex=r"^(.+)_\\d+$")
    >>> m.class_counts(), m.group_counts()
    ({'cat': 2, 'dog': 2}, {'ann': 2, 'bob': 2})
    """
    p = check_root(root)
    loader = get_loader(name)
    params = inspect.signature(loader).parameters
    if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
        accepted = [k for k, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise CorpusError(
                f"corpus {name!r} has no option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
            )
    return loader(p, **options)


def download_corpus(
    name: str, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True
) -> Path:
    """Fetch and unpack corpus ``name`` into ``dest`` using the module's ``DOWNLOADS``.

    Archives go to ``dest/.sonotype-downloads/`` (which loaders never scan) and are unpacked into ``dest``; a marker file records
    finished extractions so a second run does no work. Corpora with no public address raise
    :class:`DownloadError` whose message gives the manual steps. ``sha256`` pins the digest of
    a corpus that has exactly one archive (for copies whose digest you recorded yourself).
    """
    get_loader(name)  # unknown names -> CorpusError listing the known ones
    module = _BY_NAME.get(name)
    if module is None:
        raise CorpusError(f"corpus {name!r} has no module with download information")
    root = Path(dest)
    manual = getattr(module, "MANUAL", None)
    if manual:
        raise DownloadError(f"{name} cannot be downloaded automatically.\n{manual.strip().format(dest=root)}")
    fetch = getattr(module, "fetch", None)
    if callable(fetch):
        if sha256 is not None:
            raise DownloadError(
                f"{name} is fetched file by file with published checksums; --sha256 does not apply"
            )
        return fetch(root, progress=progress)
    resources: tuple[Resource, ...] = getattr(module, "DOWNLOADS", ())
    if not resources:
        raise DownloadError(f"{name}: no download address is known; place the files under {root} yourself")
    if sha256 is not None:
        if len(resources) != 1:
            raise DownloadError(
                f"{name}: --sha256 needs a corpus with exactly one archive, {name} has {len(resources)}"
            )
        resources = (replace(resources[0], sha256=sha256),)
    for res in resources:
        archive = transfer.download(
            res.url, root / DOWNLOAD_DIR / res.filename, sha256=res.sha256, md5=res.md5, progress=progress
        )
        marker = root / DOWNLOAD_DIR / f"{res.filename}.extracted"
        if res.extract and not marker.exists():
            say_progress(progress, f"extracting {archive.name} -> {root}")
            transfer.extract(archive, root)
            marker.write_text(archive.name + "\n")
    return root
