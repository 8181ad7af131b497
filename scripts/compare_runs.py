"""Paired bootstrap of two finished runs on the same test clips: is run A better than run B?

Usage: python scripts/compare_runs.py RUN_A RUN_B [--resamples 1000]
Reads each run's predictions.csv (one row per test clip), pairs the clips by path and resamples
them (seed 0) for the difference in balanced accuracy, with its 95 % interval.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score


def _rows(run: Path) -> dict[str, tuple[str, str]]:
    with open(run / "predictions.csv", newline="", encoding="utf-8") as f:
        return {r["clip_id"]: (r["true"], r["predicted"]) for r in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    ra, rb = _rows(args.a), _rows(args.b)
    keys = sorted(set(ra) & set(rb))
    if len(keys) != len(ra) or len(keys) != len(rb):
        raise SystemExit(f"the runs test different clips ({len(ra)}, {len(rb)}, {len(keys)} shared)")
    y = np.array([ra[k][0] for k in keys])
    pa, pb = np.array([ra[k][1] for k in keys]), np.array([rb[k][1] for k in keys])
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(args.resamples):
        i = rng.integers(0, len(y), len(y))
        diffs.append(balanced_accuracy_score(y[i], pa[i]) - balanced_accuracy_score(y[i], pb[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    d = balanced_accuracy_score(y, pa) - balanced_accuracy_score(y, pb)
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
    print(json.dumps({"a": str(args.a), "b": str(args.b), "n": len(y), "difference": round(d, 3),
                      "interval": [round(lo, 3), round(hi, 3)], "verdict": verdict}))


if __name__ == "__main__":
    main()
