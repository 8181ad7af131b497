"""musicnn (MSD) embedding speed on one core, as x real time, on real 30 s GTZAN clips.

    python scripts/bench_musicnn.py ../shared/models/musicnn-msd ../shared/data/gtzan [--batch 1 2 4]

Converts the TensorFlow checkpoint into a temporary folder, then times
``MusicnnEncoder.embed`` (resampling, log-mel and network) per clip with one torch thread.
Both wall-clock and process CPU time are reported: on a shared machine the CPU time is the
steadier figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from sonotype.backbones import musicnn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="folder with the .index / .data-00000-of-00001 / labels.txt")
    ap.add_argument("gtzan", type=Path)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--clips", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    labels = [x for x in (args.model / "labels.txt").read_text(encoding="utf-8").splitlines() if x]
    files = sorted(args.gtzan.glob("genres_original/*/*.wav"))[:: 3][: args.clips]
    waves = [sf.read(f, dtype="float32") for f in files]
    audio = sum(len(y) / sr for y, sr in waves)
    with tempfile.TemporaryDirectory() as tmp:
        enc = musicnn.load(musicnn.convert(args.model / ".index", args.model / ".data-00000-of-00001",
                                           labels, Path(tmp) / "musicnn-msd"))
    enc.embed(*waves[0])  # warm-up: oneDNN primitive creation, filter-bank cache
    t0, c0 = time.perf_counter(), time.process_time()
    for y, sr in waves:
        enc.patches(y, sr)
    front_wall = time.perf_counter() - t0
    for batch in args.batch:
        enc.batch = batch
        enc.embed(*waves[0])
        t0, c0 = time.perf_counter(), time.process_time()
        for y, sr in waves:
            enc.embed(y, sr)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"batch {batch}: {len(waves)} clips, {audio:.0f} s of audio: wall {wall:.2f} s = {audio / wall:.0f}x "
              f"real time, CPU {cpu:.2f} s = {audio / cpu:.0f}x (front end with resampling {front_wall:.2f} s wall)")


if __name__ == "__main__":
    main()
