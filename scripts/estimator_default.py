"""AudioClassifier() with no arguments on a corpus, by group folds: the figure to compare with `sonotype train`.

Usage: python scripts/estimator_default.py CORPUS ROOT [--folds K] [--cache DIR] [--kind auto|speech|music|sounds]
Prints the resolved configuration source and the pooled balanced accuracy over the folds
(each test fold predicted with its own speakers' groups, as `sonotype train` standardises them).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold

from sonotype.corpora.registry import load_corpus
from sonotype.pipeline.estimator import AudioClassifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("root")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--kind", default="auto")
    a = ap.parse_args()
    m = load_corpus(a.corpus, a.root)
    paths = np.array([c.path for c in m.clips])
    y = np.array([c.label for c in m.clips])
    g = np.array([c.group for c in m.clips])
    pred = np.empty(len(y), dtype=object)
    t0 = time.perf_counter()
    source = ""
    for tr, te in StratifiedGroupKFold(a.folds, shuffle=True, random_state=0).split(paths, y, g):
        clf = AudioClassifier(cache_dir=a.cache, kind=a.kind).fit(list(paths[tr]), list(y[tr]), groups=list(g[tr]))
        source = clf.config_source_
        pred[te] = clf.predict(list(paths[te]), groups=list(g[te]))
    print(json.dumps({"corpus": a.corpus, "config_source": source, "folds": a.folds,
                      "balanced_accuracy": round(float(balanced_accuracy_score(y, pred.astype(str))), 4),
                      "accuracy": round(float(accuracy_score(y, pred.astype(str))), 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
