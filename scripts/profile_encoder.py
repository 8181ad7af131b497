"""Where an exported encoder's time goes, by onnxruntime operator (one thread).

    python scripts/profile_encoder.py ../shared/models/whisper-base ../shared/data/ravdess [--runtime onnx-int8]

Prints the warm speed (x real time per core, profiling off) and each operator type's share of
the kernel time (profiling on): the bound on what any kernel-level speed-up can give, since
the int8 matrix products cannot run faster than this CPU's integer units allow.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("speech")
    ap.add_argument("--runtime", default="onnx-int8", choices=["onnx", "onnx-int8"])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import onnxruntime as ort

    from sonotype.bench.backbone import _clips
    from sonotype.backbones.config import BackboneConfig
    from sonotype.backbones.engines import export_onnx
    from sonotype.backbones.extract import whisper_inputs
    from sonotype.backbones.load import load_backbone

    torch.set_num_threads(1)
    bb = load_backbone(BackboneConfig(args.model, layer="all", pooling="meanstd", device="cpu"))
    if bb.kind != "whisper":
        raise SystemExit(f"{args.model}: this profile feeds Whisper's log-mel input; got a {bb.kind} encoder")
    waves, _ = _clips(args.speech, args.clips, bb.sampling_rate, 0)
    audio_s = sum(len(w) for w in waves) / bb.sampling_rate
    waves.sort(key=len)  # similar lengths share a batch, as in extraction
    feeds = []
    for i in range(0, len(waves), args.batch_size):
        x, n = whisper_inputs(bb, waves[i : i + args.batch_size])
        feeds.append({"mel": x.numpy(), "n": n.numpy().astype(np.int64)})
    path = export_onnx(bb, args.runtime)

    def session(profile: bool) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if profile:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path("/tmp") / "sonotype-ort-profile")
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    plain = session(False)
    for f in feeds:
        plain.run(None, f)
    best = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        for f in feeds:
            plain.run(None, f)
        best = min(best, time.process_time() - t0)
    print(f"{args.runtime}: {audio_s:.1f} s of audio, {audio_s / best:.1f}x real time per core "
          f"({best / audio_s:.4f} CPU-s per audio-s), graph only")

    prof = session(True)
    for f in feeds:
        prof.run(None, f)
    events = json.loads(Path(prof.end_profiling()).read_text())
    by_op: Counter[str] = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
    total = sum(by_op.values())
    for op, us in by_op.most_common(12):
        print(f"  {op:28s} {100 * us / total:5.1f} %  ({us / total * best / audio_s:.4f} CPU-s per audio-s)")


if __name__ == "__main__":
    main()
