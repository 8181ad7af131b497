"""Clips -> one pooled backbone embedding per clip, cached on disk like frame features.

The cache (the frame-feature cache's root: ``cache_dir``, default ``$SONOTYPE_CACHE`` or
``~/.cache/sonotype``) stores, per clip, every layer's mean *and* standard deviation over
the clip's real frames, (L, 2D): what every precomputable pooling needs (``mean`` is the
first half, ``meanstd`` all of it). The key is the encoder's digest (the tensors, not the
folder's name or place), the input settings (preprocessor, rate, ``max_seconds``), and the
clip's audio content and span. So a later run with another ``layer`` or ``pooling``, or
the same encoder from another folder, costs no encoder pass; a changed audio file misses.
The runtime that computed an entry (``backbone.runtime``: onnx, onnx-int8, bf16) is part of
its key, so approximate embeddings never stand in for torch float32 ones, nor the reverse.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.audio import info
from sonotype.audio import load as load_audio
from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.embed import embed_all_layers, layer_view
from sonotype.backbones.engines import cache_tag, effective_runtime
from sonotype.backbones.finetune import waveform_array
from sonotype.backbones.load import Backbone, load_backbone
from sonotype.corpora.base import Clip, Skipped
from sonotype.errors import AudioError, ConfigError
from sonotype.features.cache import FeatureCache, warn_unreadable
from sonotype.features.extract import Dataset
from sonotype.utils.progress import LineProgress

__all__ = [
    "EMBED_CACHE_VERSION",
    "EmbeddingCache",
    "build_embedding_dataset",
    "build_waveform_dataset",
    "embedding_names",
]

EMBED_CACHE_VERSION = 2  # 2: .npz (zip CRC-32 catches a garbled file; a bare .npy loaded it silently)


class EmbeddingCache:
    """Per-clip (L, 2D) statistics under ``root/embeddings/v<version>/``; counts hits and writes."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self._digests = FeatureCache(root)  # content digests, memoised on disk; root None = the default
        self.root = self._digests.root
        self.hits = 0
        self.writes = 0

    def key(self, backbone: Backbone, cfg: BackboneConfig, clip: Clip, *, runtime: str = "torch") -> str:
        """The clip's entry; ``runtime`` (the one that runs, :func:`~.engines.effective_runtime`)
        keys every runtime but torch apart (torch keys are those of caches made before runtimes)."""
        material = {
            "version": EMBED_CACHE_VERSION,
            "encoder": backbone.weights_digest,
            "model_type": backbone.model_type,
            "shape": [backbone.n_hidden, backbone.dim],
            "input": {"sampling_rate": backbone.sampling_rate, "preprocessor": backbone.preprocessor,
                      "max_seconds": cfg.max_seconds},
            "audio": self._digests.digest(clip.path),
            "start": float(clip.start),
            "duration": None if clip.duration is None else float(clip.duration),
        }
        if runtime != "torch":
            material["runtime"] = cache_tag(runtime)
        return hashlib.blake2b(json.dumps(material, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()

    def file_for(self, key: str) -> Path:
        return self.root / "embeddings" / f"v{EMBED_CACHE_VERSION}" / key[:2] / f"{key}.npz"

    def load(self, key: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The stored array, or None when missing, unreadable or of another shape.

        An existing file that cannot be read back (truncated, garbled) warns
        (:class:`~sonotype.features.cache.CacheWarning`) and is recomputed, never fatal.
        """

        f = self.file_for(key)
        try:
            with np.load(f, allow_pickle=False) as z:
                x = np.asarray(z["x"])
        except FileNotFoundError:
            return None
        except PermissionError as exc:  # the folder's, not the entry's: once, then without storing
            self._digests.disable(exc)
            return None
        except Exception as exc:  # BadZipFile, EOFError, MemoryError, ...: recompute
            warn_unreadable(f, exc)
            return None
        if x.shape != shape or x.dtype != np.float32:
            return None
        self.hits += 1
        return x

    def store(self, key: str, x: np.ndarray) -> None:
        """Write one entry; a cache that cannot be written warns once and the run goes on (it recomputes)."""
        buf = io.BytesIO()
        np.savez(buf, x=np.ascontiguousarray(x, dtype=np.float32))
        if self._digests.write(self.file_for(key), buf.getvalue()):
            self.writes += 1


def pooled_view(stats: np.ndarray, pooling: str, dim: int) -> np.ndarray:
    """From stored (..., L, 2D) mean+std statistics to ``pooling``'s (..., L, D or 2D)."""
    if pooling == "mean":
        return stats[..., :dim]
    if pooling == "meanstd":
        return stats
    raise ConfigError(
        f"pooling {pooling!r} cannot be precomputed; frozen embeddings take 'mean' or 'meanstd' "
        "('attention' is learned and needs fine-tuning, backbone.finetune_layers > 0)"
    )


def embedding_names(backbone: Backbone, cfg: BackboneConfig) -> list[str]:
    """Column names of one item's last axis: ``emb_mean_0``... (and ``emb_std_*`` for meanstd)."""
    names = [f"emb_mean_{i}" for i in range(backbone.dim)]
    if cfg.pooling == "meanstd":
        names += [f"emb_std_{i}" for i in range(backbone.dim)]
    return names


def _seconds(clip: Clip, cfg: BackboneConfig) -> float:
    """The clip's length as encoded (from the file header; 0 for an unreadable file, skipped later)."""

    dur = clip.duration
    if dur is None:
        try:
            dur = info(clip.path).duration - float(clip.start)
        except (AudioError, OSError):
            return 0.0
    return float(dur) if cfg.max_seconds is None else min(float(dur), float(cfg.max_seconds))


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
    cache: bool = True,
    progress: bool = False,
    backbone: Backbone | None = None,
    console: Any = None,
    stats: dict[str, Any] | None = None,
) -> Any:
    """One embedding item per clip, as a :class:`sonotype.features.extract.Dataset`.

    Parameters
    ----------
    clips : sequence of Clip
    cfg : BackboneConfig
    cache_dir : path, optional
        Cache root, shared with the frame features; None = the default cache
        (``$SONOTYPE_CACHE`` or ``~/.cache/sonotype``).
    cache : bool
        False computes everything and stores nothing.
    progress : bool
        Show progress on stderr: a bar on a terminal, lines with rate and ETA otherwise.
    backbone : Backbone, optional
        An already loaded backbone (default: :func:`load_backbone` of ``cfg``).
    console : rich.console.Console, optional
    stats : dict, optional
        Filled with ``clips``, ``cached``, ``computed``, ``audio_seconds`` (encoded) and
        ``seconds`` (wall time of this call).

    Returns
    -------
    sonotype.features.extract.Dataset
        ``X`` float32 (N, D) (``meanstd``: (N, 2D)) or (N, L, D) for ``layer="all"``/
        ``"weighted"``; ``item_clip`` = 0..N-1; unreadable clips go to ``skipped``.
    """

    if cfg.fused:
        return _fused_dataset(clips, cfg, cache_dir=cache_dir, cache=cache, progress=progress, console=console,
                              stats=stats)
    t0 = time.perf_counter()
    if cfg.finetune_layers:
        raise ConfigError(
            f"backbone.finetune_layers={cfg.finetune_layers}: fine-tuning trains on waveforms, not on "
            "precomputed embeddings (use build_waveform_dataset and FineTuneClassifier)"
        )
    pooled_view(np.zeros((1, 2)), cfg.pooling, 1)  # refuse 'attention' before any work
    bb = backbone if backbone is not None else load_backbone(cfg)
    clips = list(clips)
    shape = (bb.n_hidden, 2 * bb.dim)
    store = EmbeddingCache(cache_dir) if cache else None
    every = replace(cfg, pooling="meanstd")  # what the cache holds: mean and std of every layer
    runtime = effective_runtime(cfg)
    found, keys, todo, skipped = _cached_embeddings(store, bb, cfg, clips, runtime, shape)

    name = Path(bb.model_id).name or bb.model_id
    show = _Progress(progress, console, len(clips), name)
    audio_seconds = 0.0
    try:
        show.advance(len(clips) - len(todo), cached=True)
        todo = sorted(todo, key=lambda i: -_seconds(clips[i], cfg))  # similar lengths share a batch: less padding
        chunk = max(1, int(cfg.batch_size)) * 4  # bounded memory: load a few batches at a time
        for s in range(0, len(todo), chunk):
            waves, owners = [], []
            for i in todo[s : s + chunk]:
                try:
                    waves.append(_load_clip(clips[i], bb.sampling_rate, cfg))
                    owners.append(i)
                except AudioError as exc:
                    skipped.append(Skipped(clips[i].path, exc.reason))
                    show.advance(1)
            if not waves:
                continue
            mean_s = sum(len(w) for w in waves) / bb.sampling_rate / len(waves)
            out = embed_all_layers(bb, waves, bb.sampling_rate, every,
                                   on_batch=lambda n, m=mean_s: show.advance(n, audio_seconds=n * m))
            for i, x in zip(owners, out, strict=True):
                found[i] = x
                if store is not None:
                    store.store(keys[i], x)
            audio_seconds += mean_s * len(waves)
    except BaseException:  # an error or Ctrl-C: the progress line says how far it got, not "done"
        show.close(stopped=True)
        raise
    show.close()

    ok = [i for i in range(len(clips)) if i in found]
    width = bb.dim * (2 if cfg.pooling == "meanstd" else 1)
    if ok:
        full = pooled_view(np.stack([found[i] for i in ok]), cfg.pooling, bb.dim)
        X = layer_view(full, cfg.layer).astype(np.float32, copy=False)
    else:
        X = np.zeros((0, width), dtype=np.float32)
    if stats is not None:
        stats.update(clips=len(clips), cached=len(clips) - len(todo), computed=len(todo),
                     audio_seconds=round(audio_seconds, 3), seconds=round(time.perf_counter() - t0, 3))
    return Dataset(
        X=np.ascontiguousarray(X),
        item_clip=np.arange(len(ok), dtype=np.int64),
        clips=[clips[i] for i in ok],
        skipped=skipped,
        feature_names=embedding_names(bb, cfg),
    )


def _fused_dataset(clips: Sequence[Clip], cfg: BackboneConfig, **kw: Any) -> Any:
    """A fusion's items: every encoder's clip embedding (each cached on its own), concatenated.

    A clip one encoder cannot read is skipped for all; column names carry the encoder's name.
    Items must be one vector per clip (``layer`` "all"/"weighted" keeps per-layer matrices of
    different widths, which do not concatenate).
    """
    if cfg.keeps_layers:
        raise ConfigError(f"backbone.layer {cfg.layer!r} keeps every layer; a fusion of encoders needs one vector "
                          "per encoder (layer: last or an index)")
    stats = kw.pop("stats", None)
    parts, per = [], []
    for member in cfg.members:
        sub: dict[str, Any] = {}
        parts.append(build_embedding_dataset(clips, member, stats=sub, **kw))
        per.append({"model": member.model, **sub})
    kept = set.intersection(*({c.path + f"@{c.start}" for c in ds.clips} for ds in parts))
    rows = []
    for ds in parts:
        keep = np.asarray([c.path + f"@{c.start}" in kept for c in ds.clips], dtype=bool)
        rows.append(ds.X[keep])
    first = parts[0]
    ok = [c for c in first.clips if c.path + f"@{c.start}" in kept]
    skipped = list({s.path: s for ds in parts for s in ds.skipped}.values())
    names = [f"{Path(str(m.model)).name}:{n}" for m, ds in zip(cfg.members, parts, strict=True) for n in ds.feature_names]
    if stats is not None:
        stats.update(clips=len(clips), encoders=per, cached=min(p.get("cached", 0) for p in per),
                     computed=max(p.get("computed", 0) for p in per),
                     audio_seconds=sum(p.get("audio_seconds", 0.0) for p in per),
                     seconds=round(sum(p.get("seconds", 0.0) for p in per), 3))
    X = np.concatenate(rows, axis=-1) if ok else np.zeros((0, sum(r.shape[-1] for r in rows)), np.float32)
    return Dataset(X=np.ascontiguousarray(X, dtype=np.float32), item_clip=np.arange(len(ok), dtype=np.int64),
                   clips=ok, skipped=skipped, feature_names=names)


def _cached_embeddings(
    store: EmbeddingCache | None, bb: Backbone, cfg: BackboneConfig, clips: list[Clip], runtime: str,
    shape: tuple[int, int],
) -> tuple[dict[int, np.ndarray], dict[int, str], list[int], list[Skipped]]:
    """What the cache holds already: (clip index -> all-layer embedding, cache keys, indices still
    to compute, clips whose files cannot be read)."""
    found: dict[int, np.ndarray] = {}
    keys: dict[int, str] = {}
    todo: list[int] = []
    skipped: list[Skipped] = []
    for i, clip in enumerate(clips):
        if store is not None:
            try:
                keys[i] = store.key(bb, cfg, clip, runtime=runtime)
            except OSError as exc:
                skipped.append(Skipped(clip.path, f"unreadable: {exc}"))
                continue
            hit = store.load(keys[i], shape)
            if hit is not None:
                found[i] = hit
                continue
        todo.append(i)
    return found, keys, todo, skipped


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
    :class:`~sonotype.backbones.finetune.FineTuneClassifier` on it without a feature scaler (the
    backbone's own feature extractor normalises its input).
    """

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


class _Progress:
    """A rich bar on a terminal, :class:`~sonotype.utils.progress.LineProgress` lines otherwise."""

    def __init__(self, show: bool, console: Any, total: int, name: str) -> None:
        self.bar = self.task = self.lines = None
        if not show or total == 0:
            return
        from rich.console import Console  # console output only

        console = console or Console(stderr=True)
        if not console.is_terminal:
            self.lines = LineProgress(total, f"embedding {name}", unit="clips")
            return
        from rich.progress import (  # console output only
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )  # console output only

        self.bar = Progress(TextColumn("[bold]embedding[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console)
        self.task = self.bar.add_task(name, total=total)
        self.bar.start()

    def advance(self, n: int, *, audio_seconds: float = 0.0, cached: bool = False) -> None:
        if n <= 0:
            return
        if self.lines is not None:
            self.lines.advance(n, audio_seconds=audio_seconds, cached=cached)
        elif self.bar is not None:
            self.bar.update(self.task, advance=n)

    def close(self, stopped: bool = False) -> None:
        if self.lines is not None:
            self.lines.close(stopped)
        elif self.bar is not None:
            self.bar.stop()
