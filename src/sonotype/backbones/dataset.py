"""Clips -> one pooled backbone embedding per clip, cached on disk like frame features.

The cache stores every layer's pooled embedding, (L, D), per clip, under a key made of
the backbone's identity (hub id + resolved commit, or the weights digest of a local
directory), the pooling and length settings, and the clip's audio content and span. A
later run with another ``layer`` reuses it; a changed model file or audio file misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load as load_audio
from ..corpora.base import Clip, Skipped
from ..errors import AudioError, ConfigError
from ..io import atomic_write_bytes
from .config import BackboneConfig
from .extract import embed_all_layers, layer_view
from .finetune import waveform_array
from .load import Backbone, load_backbone

__all__ = [
    "EMBED_CACHE_VERSION",
    "EmbeddingCache",
    "build_embedding_dataset",
    "build_waveform_dataset",
    "embedding_names",
]

EMBED_CACHE_VERSION = 2  # 2: .npz (zip CRC-32 catches a garbled file; a bare .npy loaded it silently)


class EmbeddingCache:
    """Per-clip (L, D) embeddings under ``root/embeddings/v<version>/``; counts hits and writes."""

    def __init__(self, root: str | os.PathLike) -> None:
        from ..features.cache import FeatureCache

        self.root = Path(root)
        self._digests = FeatureCache(root)  # content digests, memoised on disk
        self.hits = 0
        self.writes = 0

    def key(self, backbone: Backbone, cfg: BackboneConfig, clip: Clip) -> str:
        material = {
            "version": EMBED_CACHE_VERSION,
            "backbone": backbone.identity,
            "pooling": cfg.pooling,
            "max_seconds": cfg.max_seconds,
            "audio": self._digests.digest(clip.path),
            "start": float(clip.start),
            "duration": None if clip.duration is None else float(clip.duration),
        }
        return hashlib.blake2b(json.dumps(material, sort_keys=True).encode(), digest_size=16).hexdigest()

    def file_for(self, key: str) -> Path:
        return self.root / "embeddings" / f"v{EMBED_CACHE_VERSION}" / key[:2] / f"{key}.npz"

    def load(self, key: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The stored array, or None when missing, unreadable or of another shape.

        An existing file that cannot be read back (truncated, garbled) warns
        (:class:`~sonotype.features.cache.CacheWarning`) and is recomputed, never fatal.
        """
        from ..features.cache import warn_unreadable

        f = self.file_for(key)
        try:
            with np.load(f, allow_pickle=False) as z:
                x = np.asarray(z["x"])
        except FileNotFoundError:
            return None
        except Exception as exc:  # BadZipFile, EOFError, MemoryError, ...: recompute
            warn_unreadable(f, exc)
            return None
        if x.shape != shape or x.dtype != np.float32:
            return None
        self.hits += 1
        return x

    def store(self, key: str, x: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, x=np.ascontiguousarray(x, dtype=np.float32))
        with contextlib.suppress(OSError):  # a read-only cache still works, it just recomputes
            atomic_write_bytes(self.file_for(key), buf.getvalue())
            self.writes += 1


def embedding_names(backbone: Backbone, cfg: BackboneConfig) -> list[str]:
    """Column names of one item's last axis: ``emb_mean_0``... (and ``emb_std_*`` for meanstd)."""
    names = [f"emb_mean_{i}" for i in range(backbone.dim)]
    if cfg.pooling == "meanstd":
        names += [f"emb_std_{i}" for i in range(backbone.dim)]
    return names


def _load_clip(clip: Clip, sr: int, cfg: BackboneConfig) -> np.ndarray:
    dur = clip.duration
    if cfg.max_seconds is not None:
        dur = cfg.max_seconds if dur is None else min(dur, cfg.max_seconds)
    y, _ = load_audio(clip.path, sr=sr, offset=clip.start, duration=dur)
    return y


def build_embedding_dataset(
    clips: Sequence[Clip],
    cfg: BackboneConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    backbone: Backbone | None = None,
    console: Any = None,
) -> Any:
    """One embedding item per clip, as a :class:`sonotype.features.Dataset`.

    Parameters
    ----------
    clips : sequence of Clip
    cfg : BackboneConfig
    cache_dir : path, optional
        Cache root (the same as the frame-feature cache's); None = no disk cache.
    progress : bool
        Show a progress bar over clips (rich, on stderr).
    backbone : Backbone, optional
        An already loaded backbone (default: :func:`load_backbone` of ``cfg``).
    console : rich.console.Console, optional

    Returns
    -------
    sonotype.features.Dataset
        ``X`` float32 (N, D) (``meanstd``: (N, 2D)) or (N, L, D) for ``layer="all"``/
        ``"weighted"``; ``item_clip`` = 0..N-1; unreadable clips go to ``skipped``.
    """
    from ..features import Dataset

    if cfg.finetune_layers:
        raise ConfigError(
            f"backbone.finetune_layers={cfg.finetune_layers}: fine-tuning trains on waveforms, not on "
            "precomputed embeddings (use build_waveform_dataset and FineTuneClassifier)"
        )
    bb = backbone if backbone is not None else load_backbone(cfg)
    clips = list(clips)
    width = bb.dim * (2 if cfg.pooling == "meanstd" else 1)
    shape = (bb.n_hidden, width)
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    pooled: dict[int, np.ndarray] = {}
    keys: dict[int, str] = {}
    todo: list[int] = []
    skipped: list[Skipped] = []
    bad: set[int] = set()
    for i, clip in enumerate(clips):
        if cache is not None:
            try:
                keys[i] = cache.key(bb, cfg, clip)
            except OSError as exc:
                skipped.append(Skipped(clip.path, f"unreadable: {exc}"))
                bad.add(i)
                continue
            hit = cache.load(keys[i], shape)
            if hit is not None:
                pooled[i] = hit
                continue
        todo.append(i)

    bar, task = _progress(progress, console, len(clips), bb.model_id)
    try:
        if bar is not None:
            bar.update(task, advance=len(pooled) + len(bad))
        chunk = max(1, int(cfg.batch_size)) * 4  # bounded memory: load a few batches at a time
        for s in range(0, len(todo), chunk):
            waves, owners = [], []
            for i in todo[s : s + chunk]:
                try:
                    waves.append(_load_clip(clips[i], bb.sampling_rate, cfg))
                    owners.append(i)
                except AudioError as exc:
                    skipped.append(Skipped(clips[i].path, exc.reason))
                    bad.add(i)
                    if bar is not None:
                        bar.update(task, advance=1)
            if not waves:
                continue
            on_batch = None if bar is None else (lambda n: bar.update(task, advance=n))
            out = embed_all_layers(bb, waves, bb.sampling_rate, cfg, on_batch=on_batch)
            for i, x in zip(owners, out, strict=True):
                pooled[i] = x
                if cache is not None:
                    cache.store(keys[i], x)
    finally:
        if bar is not None:
            bar.stop()

    ok = [i for i in range(len(clips)) if i in pooled]
    if ok:
        X = layer_view(np.stack([pooled[i] for i in ok]), cfg.layer).astype(np.float32, copy=False)
    else:
        X = np.zeros((0, width), dtype=np.float32)
    return Dataset(
        X=X,
        item_clip=np.arange(len(ok), dtype=np.int64),
        clips=[clips[i] for i in ok],
        skipped=skipped,
        feature_names=embedding_names(bb, cfg),
    )


def build_waveform_dataset(
    clips: Sequence[Clip],
    cfg: BackboneConfig,
    *,
    seconds: float | None = None,
    backbone: Backbone | None = None,
) -> Any:
    """Fine-tuning input: one waveform item (2, S) per clip (see :func:`waveform_array`).

    ``X`` is float32 (N, 2, S) with S = ``seconds`` (default ``cfg.max_seconds``) x the
    backbone's rate: 8 bytes per
    sample, so 1,000 clips of 4 s at 16 kHz take 0.5 GB. Train a
    :class:`~sonotype.backbones.FineTuneClassifier` on it without a feature scaler (the
    backbone's own feature extractor normalises its input).
    """
    from ..features import Dataset

    seconds = cfg.max_seconds if seconds is None else seconds
    if seconds is None:
        raise ConfigError("fine-tuning needs a fixed input length: set backbone.max_seconds (or seconds=)")
    bb = backbone if backbone is not None else load_backbone(cfg)
    clips = list(clips)
    waves, ok, skipped = [], [], []
    for clip in clips:
        try:
            waves.append(_load_clip(clip, bb.sampling_rate, cfg))
            ok.append(clip)
        except AudioError as exc:
            skipped.append(Skipped(clip.path, exc.reason))
    X = waveform_array(waves, bb.sampling_rate, bb, cfg, seconds=seconds)
    return Dataset(X=X, item_clip=np.arange(len(ok), dtype=np.int64), clips=ok, skipped=skipped,
                   feature_names=["samples", "mask"])


def _progress(show: bool, console: Any, total: int, name: str) -> tuple[Any, Any]:
    if not show:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]embedding[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    task = bar.add_task(Path(name).name or name, total=total)
    bar.start()
    return bar, task
