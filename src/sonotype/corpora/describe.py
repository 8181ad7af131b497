"""Summaries of a manifest: what ``sonotype corpus show`` prints and ``--json`` emits."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sonotype.audio import info
from sonotype.corpora.base import Manifest
from sonotype.errors import AudioError

__all__ = ["describe"]


def describe(manifest: Manifest, *, read_headers: bool = True) -> dict[str, Any]:
    """Counts per class and group, durations and sample rates, and every skipped file.

    Parameters
    ----------
    manifest : Manifest
    read_headers : bool
        Read each file's header (fast: no audio is decoded) for durations, sample rates and
        channel counts. Unreadable files are not clips: they are left out of every count
        (``n_clips``, ``classes``, ``groups``, durations), listed in ``skipped`` with the
        reason, and counted by ``n_unreadable``. With False, no file is opened, every clip
        is counted and durations come only from clips that carry one.

    Returns
    -------
    dict
        ``corpus, root, n_clips, n_files, classes, groups, total_duration, mean_duration,
        min_duration, max_duration, sample_rates, channels, n_unreadable, skipped``;
        ``skipped`` is a list of ``{"path", "reason"}``. Durations in seconds.

    Examples
    --------
    >>> import tempfile
    >>> from sonotype.corpora import load_corpus
    >>> from sonotype.corpora.demo import generate_demo
    >>> d = describe(load_corpus("demo", generate_demo(tempfile.mkdtemp(), n_speakers=2, takes=1, seconds=0.5)))
    >>> d["n_clips"], d["sample_rates"], round(d["total_duration"], 1)
    (10, {16000: 10}, 5.0)
    """
    headers: dict[str, tuple[int, int, float] | None] = {}
    skipped = [{"path": s.path, "reason": s.reason} for s in manifest.skipped]
    if read_headers:
        for c in manifest:
            if c.path in headers:
                continue
            try:
                meta = info(c.path)
                headers[c.path] = (meta.samplerate, meta.channels, meta.duration)
            except AudioError as exc:
                headers[c.path] = None
                skipped.append({"path": c.path, "reason": f"unreadable: {exc.reason}"})
    usable = [c for c in manifest if not read_headers or headers.get(c.path) is not None]
    durations: list[float] = []
    for c in usable:
        h = headers.get(c.path)
        if c.duration is not None:
            durations.append(float(c.duration))
        elif h is not None:
            durations.append(max(0.0, h[2] - c.start))
    readable = [h for h in headers.values() if h is not None]
    return {
        "corpus": manifest.corpus,
        "root": manifest.root,
        "n_clips": len(usable),
        "n_files": len({c.path for c in usable}),
        "classes": dict(sorted(Counter(c.label for c in usable).items())),
        "groups": dict(sorted(Counter(c.group for c in usable).items())),
        "total_duration": round(sum(durations), 3),
        "mean_duration": round(sum(durations) / len(durations), 3) if durations else None,
        "min_duration": round(min(durations), 3) if durations else None,
        "max_duration": round(max(durations), 3) if durations else None,
        "sample_rates": dict(sorted(Counter(h[0] for h in readable).items())),
        "channels": dict(sorted(Counter(h[1] for h in readable).items())),
        "n_unreadable": sum(h is None for h in headers.values()),
        "skipped": skipped,
    }
