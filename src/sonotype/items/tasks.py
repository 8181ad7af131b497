"""The corpus-scale tasks run by :mod:`sonotype.items.engine`: feature and embedding datasets.

Each shard of clips becomes one :func:`~sonotype.items.engine.map_shards` task whose arrays are
packed, stored under its :func:`~sonotype.items.engine.shard_key` and gathered back in manifest
order; :func:`dataset_for_run` picks the engine a run's config asks for. The names stay
importable from :mod:`sonotype.items.engine`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sonotype.backbones.config import BackboneConfig
from sonotype.backbones.embed import layer_view
from sonotype.backbones.load import load_backbone
from sonotype.backbones.native import FAMILIES, native_outputs, read_native_config
from sonotype.corpora.base import Clip, Skipped
from sonotype.features.cache import CACHE_VERSION
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.extract import Dataset
from sonotype.features.extract import build_dataset as local_build
from sonotype.items.embeddings import build_embedding_dataset as local_embeddings
from sonotype.items.embeddings import embedding_names, pooled_view
from sonotype.items.engine import EngineConfig, MapStats, ShardStore, map_shards, shard_key, shard_of
from sonotype.utils.paths import default_cache_dir
from sonotype.utils.progress import LineProgress
from sonotype.utils.shards import ShardWriter, wants_memmap

__all__ = ["build_dataset", "build_embedding_dataset", "dataset_for_run"]


def features_task(items: list[dict[str, Any]], ctx: dict[str, Any]) -> dict[str, np.ndarray]:
    """One shard of clips -> represented items, exactly as :func:`sonotype.features.extract.build_dataset` makes them."""

    clips = [Clip.from_dict(c) for c in items]
    ds = local_build(clips, FeatureConfig.from_dict(ctx["features"]), RepresentationConfig.from_dict(ctx["representation"]),
                     cache_dir=ctx.get("cache_dir"), jobs=1)
    return _pack(clips, ds)


def _pack(clips: list[Any], ds: Any) -> dict[str, np.ndarray]:
    ok = np.zeros(len(clips), dtype=bool)  # which clips made it, in order (paths may repeat)
    k = 0
    for i, c in enumerate(clips):
        if k < len(ds.clips) and ds.clips[k] is c:
            ok[i] = True
            k += 1
    reasons = {s.path: s.reason for s in ds.skipped}
    return {
        "X": np.ascontiguousarray(ds.X, dtype=np.float32),
        "item_clip": np.asarray(ds.item_clip, dtype=np.int64),
        "ok": ok,
        "reason": np.asarray([reasons.get(c.path, "") if not o else "" for c, o in zip(clips, ok)], dtype=str),
        "names": np.asarray(ds.feature_names, dtype=str),
    }


def _gather(
    clips: list[Any],
    shards: list[list[Any]],
    results: Iterator[tuple[int, dict[str, np.ndarray]]],
    *,
    view: Callable[[np.ndarray], np.ndarray] | None = None,
    memmap: Any = False,
    folder: str | os.PathLike | None = None,
) -> Any:
    """Shard results -> one Dataset, as if built in one pass.

    ``view`` maps each shard's items (e.g. the layer asked for). With ``memmap`` (true, or
    auto once the items pass :func:`sonotype.utils.shards.memmap_limit_bytes`) the items go to
    ``.npy`` shards in ``folder`` as they arrive and ``X`` is a
    :class:`~sonotype.utils.shards.ShardedArray`: the set is never whole in memory.
    """

    items, owners, ok_clips, skipped = [], [], [], []
    names: list[str] = []
    held = 0
    writer: ShardWriter | None = None
    for k, r in results:
        shard = shards[k]
        base = len(ok_clips)
        for c, good, why in zip(shard, r["ok"].tolist(), r["reason"].tolist()):
            if good:
                ok_clips.append(c)
            else:
                skipped.append(Skipped(c.path, str(why)))
        if not r["X"].shape[0]:
            continue
        x = r["X"] if view is None else view(r["X"])
        if writer is None and folder is not None and wants_memmap(memmap, held + x.nbytes):
            writer = ShardWriter(folder)
            for b in items:  # what was held so far goes to disk first, in order
                writer.append(b)
            items, held = [], 0
        if writer is not None:
            writer.append(x)
        else:
            items.append(x)
            held += x.nbytes
        owners.append(r["item_clip"] + base)
        names = names or [str(n) for n in r["names"]]
    if writer is not None:
        X: Any = writer.close()
        item_clip = np.concatenate(owners)
    elif items:
        X, item_clip = np.concatenate(items, axis=0), np.concatenate(owners)
    else:
        X, item_clip = np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return Dataset(X=X, item_clip=item_clip, clips=ok_clips, skipped=skipped, feature_names=names)


def _arrays_folder(store: ShardStore | None, keys: list[str] | None, kind: str) -> Path:
    """Where memory-mapped items go: ``<local cache>/arrays/<kind>-<hash of the shard keys>``."""

    root = Path(store.local_root() or default_cache_dir()) if store is not None else default_cache_dir()
    tag = hashlib.blake2b(json.dumps(keys or [os.getpid(), time.time()]).encode(), digest_size=12).hexdigest()
    return root / "arrays" / f"{kind}-{tag}"


def _progress(total: int, enabled: bool, what: str) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    if not enabled or total == 0:
        return None, lambda: None

    lines = LineProgress(total, what, unit="clips")
    return (lambda n: lines.advance(n)), lines.close


def build_dataset(
    clips: Sequence[Any],
    fcfg: Any,
    rcfg: Any,
    *,
    engine: EngineConfig | str | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
    stats: MapStats | None = None,
    memmap: Any = False,
) -> Any:
    """:func:`sonotype.features.extract.build_dataset` over shards on an engine; the same Dataset.

    ``cache`` (folder or fsspec URL) stores each shard's items; when it is a local folder
    the workers also use its per-clip frame cache, shared with the local engine.
    ``memmap`` (auto | true | false): items in memory-mapped shards (see :func:`_gather`).
    """

    cfg = EngineConfig.from_any(engine)
    clips = list(clips)
    shards = shard_of(clips, int(cfg.shard_size))
    store = ShardStore(cache, "features") if cache is not None else None
    settings = {"frames": CACHE_VERSION, "features": fcfg.to_dict(), "representation": rcfg.to_dict()}
    keys = [shard_key("features", settings, s) for s in shards] if store is not None else None
    ctx = {"features": fcfg.to_dict(), "representation": rcfg.to_dict(),
           "cache_dir": store.local_root() if store is not None else None}
    advance, close = _progress(len(clips), progress, f"features ({cfg.name})")
    try:
        results = map_shards(features_task, [[c.to_dict() for c in s] for s in shards], context=ctx, engine=cfg,
                             store=store, keys=keys, stats=stats, on_shard=advance)
        return _gather(clips, shards, results, memmap=memmap, folder=_arrays_folder(store, keys, "features"))
    finally:
        close()


# -- embeddings -----------------------------------------------------------------------------
_BACKBONES: dict[str, Any] = {}


def embedding_task(items: list[dict[str, Any]], ctx: dict[str, Any]) -> dict[str, np.ndarray]:
    """One shard -> every layer's mean+std (n, L, 2D); the backbone is loaded once per worker."""
    cfg = BackboneConfig.from_dict(ctx["backbone"])
    tag = json.dumps(ctx["backbone"], sort_keys=True)
    if tag not in _BACKBONES:
        _BACKBONES.clear()
        _BACKBONES[tag] = load_backbone(cfg)
    clips = [Clip.from_dict(c) for c in items]
    every = BackboneConfig.from_dict({**ctx["backbone"], "layer": "all", "pooling": "meanstd"})
    root = ctx.get("cache_dir")
    ds = local_embeddings(clips, every, cache_dir=root, cache=root is not None, backbone=_BACKBONES[tag])
    return _pack(clips, ds)


def build_embedding_dataset(
    clips: Sequence[Any],
    cfg: Any,
    *,
    engine: EngineConfig | str | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
    stats: MapStats | None = None,
    memmap: Any = False,
) -> Any:
    """Backbone embeddings over shards on an engine (:func:`sonotype.items.embeddings.build_embedding_dataset`).

    Workers store every layer's mean and std per shard; the driver takes the ``layer`` and
    ``pooling`` asked for. Values equal the local engine's to float rounding: clips are
    batched within a shard, not across the corpus.
    """

    ecfg = EngineConfig.from_any(engine)
    pooled_view(np.zeros((1, 2)), cfg.pooling, 1)  # refuse 'attention' before any work
    bb = load_backbone(cfg)  # its digest keys the shards; its shape names the columns
    clips = list(clips)
    shards = shard_of(clips, int(ecfg.shard_size))
    store = ShardStore(cache, "embeddings") if cache is not None else None
    settings = {"encoder": bb.weights_digest, "shape": [bb.n_hidden, bb.dim], "sr": bb.sampling_rate,
                "preprocessor": bb.preprocessor, "max_seconds": cfg.max_seconds}
    keys = [shard_key("embeddings", settings, s) for s in shards] if store is not None else None
    ctx = {"backbone": cfg.to_dict(), "cache_dir": store.local_root() if store is not None else None}
    advance, close = _progress(len(clips), progress, f"embedding ({ecfg.name})")
    try:
        results = map_shards(embedding_task, [[c.to_dict() for c in s] for s in shards], context=ctx, engine=ecfg,
                             store=store, keys=keys, stats=stats, on_shard=advance)

        def view(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(layer_view(pooled_view(x, cfg.pooling, bb.dim), cfg.layer), dtype=np.float32)

        tag = [*(keys or []), json.dumps([cfg.layer, cfg.pooling])]
        ds = _gather(clips, shards, results, view=view, memmap=memmap,
                     folder=_arrays_folder(store, tag if keys else None, "embeddings"))
    finally:
        close()
    if not len(ds.clips):
        ds.X = np.zeros((0, bb.dim * (2 if cfg.pooling == "meanstd" else 1)), dtype=np.float32)
    ds.item_clip = np.arange(len(ds.clips), dtype=np.int64)
    ds.feature_names = embedding_names(bb, cfg)
    return ds


def _run_backbone(run_cfg: Any) -> Any:
    """The run's backbone as a BackboneConfig (a typed section, or a mapping from older callers), or None."""

    bb = getattr(run_cfg, "backbone", None)
    if bb is None or isinstance(bb, BackboneConfig):
        return bb
    return BackboneConfig.from_dict(dict(bb))


def _estimated_bytes(run_cfg: Any, clips: list[Any]) -> float:
    """Bytes of the run's items, for ``train.memmap: auto``: one clip extracted (features), or
    the encoder's recorded shape (``config.json``: layers x width) for embeddings."""
    if not clips:
        return 0.0
    bcfg = _run_backbone(run_cfg)
    if bcfg is not None:
        total = 0.0
        for member in bcfg.members:  # a fusion: the sum of its encoders' items
            try:
                c = json.loads((Path(str(member.model)).expanduser() / "config.json").read_text())
            except (OSError, ValueError):
                return 0.0  # a hub id not fetched yet: no estimate, kept in memory
            native = read_native_config(Path(str(member.model)).expanduser())
            if native is not None:
                total += len(clips) * sum(w for _, w in native_outputs(FAMILIES[native["family"]], native,
                                                                        member.outputs)) * 4
                continue
            c = {**c, **(c.get("encoder") or {})} if isinstance(c.get("encoder"), dict) else c
            width = int(c.get("hidden_size") or c.get("d_model") or 0) * (2 if member.pooling == "meanstd" else 1)
            layers = int(c.get("num_hidden_layers") or c.get("encoder_layers") or 0) + 1 if member.keeps_layers else 1
            total += len(clips) * layers * width * 4
        return float(total)

    first = local_build(clips[:1], run_cfg.features, run_cfg.representation, cache_dir=run_cfg.cache_dir)
    return float(first.X.nbytes * len(clips))


def dataset_for_run(run_cfg: Any, clips: list[Any], progress: bool) -> Any | None:
    """The run's dataset on its ``engine`` and, where ``train.memmap`` says so, on disk.

    None when neither applies: the ordinary local path builds it.
    """

    ecfg = run_cfg.engine.with_jobs(run_cfg.jobs)
    memmap = getattr(run_cfg.train, "memmap", False)
    bb = _run_backbone(run_cfg)
    if bb is not None and bb.finetune_layers > 0:
        return None  # waveforms for fine-tuning are read locally
    if ecfg.name == "local" and not (memmap is True or wants_memmap(memmap, _estimated_bytes(run_cfg, clips))):
        return None

    cache = run_cfg.cache_dir or str(default_cache_dir())
    if bb is not None:
        return build_embedding_dataset(clips, bb, engine=ecfg, cache=cache, progress=progress, memmap=memmap)
    return build_dataset(clips, run_cfg.features, run_cfg.representation, engine=ecfg, cache=cache, progress=progress,
                         memmap=memmap)
