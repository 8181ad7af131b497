"""``sonotype bench backbone``: every encoder runtime timed on the same clips, and how far it strays.

Speed is per core: one thread (torch and onnxruntime) and the process's CPU time, so the
figure holds on a machine shared with other jobs (wall time would count their load).
``x_realtime_per_core`` = audio seconds / CPU seconds of a warm pass (the export and the
first call, which builds onnxruntime's session, are timed apart as ``setup_seconds``).
``max_cosine_distance`` is the largest cosine distance, over the clips, every hidden
state and both frozen poolings (the mean; mean and standard deviation: what the embedding
cache stores), between a runtime's pooled embeddings and torch float32's.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonotype.backbones.config import RUNTIMES, BackboneConfig
from sonotype.backbones.extract import embed_all_layers
from sonotype.backbones.load import load_backbone
from sonotype.errors import ConfigError

__all__ = ["bench_backbone", "cosine_distances"]


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity along the last axis (float64; 0 for two zero vectors)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(1.0 - cos, 0.0, 2.0)


def _clips(speech: str | os.PathLike | None, n: int, sr: int, seed: int) -> tuple[list[np.ndarray], str]:
    """``n`` clips spread evenly over a folder's sorted audio files, or generated speech-like ones."""
    from sonotype.audio import AUDIO_EXTENSIONS, load

    if speech is None:
        from sonotype.bench.features import generate_speech

        rng = np.random.default_rng(seed)
        return [generate_speech(float(rng.uniform(2.5, 4.5)), sr, rng) for _ in range(n)], "generated speech-like"
    root = Path(speech)
    if not root.is_dir():
        raise ConfigError(f"--speech {root}: not a folder of audio files")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise ConfigError(f"--speech {root}: no audio files under it")
    pick = np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int))
    return [load(files[i], sr=sr)[0] for i in pick], str(root)


def _timed(bb: Any, waves: list[np.ndarray], cfg: BackboneConfig, repeats: int, force_bf16: bool) -> tuple[np.ndarray, float, float]:
    """(pooled stats, best CPU seconds of a warm pass, set-up CPU seconds: export + first call)."""
    t0 = time.process_time()
    embed_all_layers(bb, waves[:2], bb.sampling_rate, cfg, force_bf16=force_bf16)
    setup = time.process_time() - t0
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.process_time()
        out = embed_all_layers(bb, waves, bb.sampling_rate, cfg, force_bf16=force_bf16)
        best = min(best, time.process_time() - t0)
    assert out is not None
    return out, best, setup


def bench_backbone(
    model: str | os.PathLike,
    *,
    speech: str | os.PathLike | None = None,
    clips: int = 24,
    runtimes: tuple[str, ...] | list[str] = RUNTIMES,
    batch_size: int = 8,
    repeats: int = 1,
    threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Time each runtime of ``backbone.runtime`` on the same clips against torch float32.

    Parameters
    ----------
    model : path or name
        A backbone folder (or known name / hub id found locally).
    speech : path, optional
        Folder of clips (e.g. RAVDESS); default: generated speech-like signals.
    clips : int
        How many clips (spread evenly over the folder's files).
    runtimes : sequence of str
        Which runtimes; torch float32 always runs (it is the reference).
    threads : int
        Threads for torch and onnxruntime; 1 measures per-core speed.

    Returns
    -------
    dict
        ``{"runtimes": {NAME: {"x_realtime_per_core", "max_cosine_distance", ...}}, ...}``;
        ``bf16`` on a CPU without native bf16 is timed emulated and marked ``"native": false``.
    """
    from sonotype.utils.environment import bf16_native, cpu_model

    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise ConfigError(f"unknown runtime(s) {', '.join(bad)}; choose from {', '.join(RUNTIMES)}")
    if clips < 1:
        raise ConfigError(f"--clips must be >= 1, got {clips}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        base = BackboneConfig(str(model), layer="all", pooling="meanstd", batch_size=batch_size, device="cpu")
        bb = load_backbone(base)
        waves, source = _clips(speech, clips, bb.sampling_rate, seed)
        audio_s = sum(len(w) for w in waves) / bb.sampling_rate
        ref, ref_s, ref_setup = _timed(bb, waves, base, repeats, False)
        rows: dict[str, dict[str, Any]] = {}
        for rt in dict.fromkeys(["torch", *runtimes]):
            native = True
            if rt == "torch":
                out, cpu_s, setup = ref, ref_s, ref_setup
            else:
                native = rt != "bf16" or bf16_native()
                out, cpu_s, setup = _timed(bb, waves, replace(base, runtime=rt), repeats, force_bf16=True)
            # (clips, hidden states), for mean+std and for the mean alone: the largest of both
            dist = np.maximum(cosine_distances(out, ref), cosine_distances(out[..., : bb.dim], ref[..., : bb.dim]))
            last = cosine_distances(out[:, -1, : bb.dim], ref[:, -1, : bb.dim])
            row: dict[str, Any] = {
                "x_realtime_per_core": round(audio_s / cpu_s, 2),  # CPU time sums every thread: per core
                "max_cosine_distance": float(f"{dist.max():.3g}"),
                "max_cosine_distance_last_layer_mean": float(f"{last.max():.3g}"),
                "cpu_seconds": round(cpu_s, 3),
                "cpu_seconds_per_audio_hour": round(cpu_s / audio_s * 3600, 1),
                "speedup_vs_torch": round(ref_s / cpu_s, 2),
                "setup_seconds": round(setup, 2),
            }
            if not native:
                row["native"] = False
                row["note"] = ("emulated: this CPU has no native bfloat16, so backbone.runtime bf16 runs torch "
                               "float32 here (this row times what it would cost)")
            rows[rt] = row
    finally:
        torch.set_num_threads(old_threads)
    usable = {k: v for k, v in rows.items() if v.get("native", True)}
    fastest = max(usable, key=lambda k: usable[k]["x_realtime_per_core"])
    return {
        "model": str(model),
        "model_type": bb.model_type,
        "digest": bb.weights_digest,
        "clips": len(waves),
        "source": source,
        "audio_seconds": round(audio_s, 2),
        "threads": int(threads),
        "batch_size": int(batch_size),
        "cpu": cpu_model(),
        "bf16_native": bf16_native(),
        "fastest": fastest,
        "runtimes": rows,
    }
