"""Time the EfficientAT mn04 encoder on one CPU core: x real time on 5 s ESC-50 clips and a 30 s clip.

Usage: ``PYTHONPATH=src python scripts/bench_efficientat.py [--shared ../shared] [--clips 40]``

Reads the weights from ``<shared>/models/efficientat-mn04`` (converted to a temporary folder)
and the audio from ``<shared>/data``. Times include reading nothing from disk: resampling,
the log-mel front end and the network, as ``embed`` / ``tag`` run them.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from sonotype.backbones import efficientat as E


def _times(fn, repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of ``repeat`` warm calls: on a shared machine the CPU time
    (one thread, so CPU seconds = compute) shows the cost without the waits for other jobs."""
    fn()  # warm
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def _rate(label: str, seconds: float, times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    return (f"  {label:<18}{seconds / statistics.median(wall):6.0f}x real time (median wall), "
            f"{seconds / min(wall):6.0f}x (best wall), {seconds / statistics.median(cpu):6.0f}x (median CPU time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    models, data = args.shared / "models" / "efficientat-mn04", args.shared / "data"
    with tempfile.TemporaryDirectory() as tmp:
        enc = E.load(E.convert(models / "mn04_as_mAP_432.pt", models / "class_labels_indices.csv", Path(tmp) / "mn04"))

    with open(data / "esc50" / "meta" / "esc50.csv", newline="") as f:
        names = [r["filename"] for r in csv.DictReader(f)][: args.clips]
    clips = [sf.read(str(data / "esc50" / "audio" / n.replace(".wav", ".flac")), dtype="float32") for n in names]
    sr = clips[0][1]
    waves = [y for y, _ in clips]
    seconds = sum(len(y) for y in waves) / sr
    one = _times(lambda: [enc.embed(y, sr) for y in waves], max(1, args.repeat // 3))
    batch = _times(lambda: enc.embed_batch(waves, sr), max(1, args.repeat // 3))
    print(f"ESC-50, {len(waves)} clips of 5 s at {sr} Hz, 1 thread:")
    print(_rate("embed one by one:", seconds, one))
    print(_rate("embed_batch:", seconds, batch))

    gtzan = sorted((data / "gtzan" / "genres_original").glob("*/*.wav"))[0]
    y30, sr30 = sf.read(str(gtzan), dtype="float32")
    dur = len(y30) / sr30
    wall, cpu = _times(lambda: enc.tag(y30, sr30), args.repeat)
    print(f"{gtzan.name}, {dur:.1f} s at {sr30} Hz, 1 thread: tag {statistics.median(wall) * 1e3:.0f} ms median wall "
          f"({min(wall) * 1e3:.0f} best, {max(wall) * 1e3:.0f} worst), {statistics.median(cpu) * 1e3:.0f} ms median CPU")
    print(_rate("tag:", dur, (wall, cpu)))
    print("  top 5:", "; ".join(f"{n} {p:.2f}" for n, p in enc.tag(y30, sr30)))


if __name__ == "__main__":
    main()
