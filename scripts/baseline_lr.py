"""Interim baseline (until the automatic one lands): librosa-style clip statistics + logistic regression.

C is chosen by inner stratified group CV on the training side only, over the same test folds as
sonotype's protocol. Usage: PYTHONPATH=src python scripts/baseline_lr.py CORPUS ROOT PROTOCOL SR [DROP,LABELS]
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sonotype.corpora import load_corpus
from sonotype.features import FeatureConfig, RepresentationConfig, build_dataset
from sonotype.splits.split import make_splits

corpus, root, protocol, sr = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
m = load_corpus(corpus, root)
if len(sys.argv) > 5:
    from sonotype.corpora.ops import apply_ops
    m = apply_ops(m, [{'drop': sys.argv[5].split(',')}])
fc = FeatureConfig(sr=sr, n_fft=2048 if sr > 16000 else 1024, hop_length=512 if sr > 16000 else 256,
                   features=["mfcc", "mfcc_delta", "centroid", "bandwidth", "rolloff", "contrast", "flatness", "zcr", "rms", "chroma"],
                   n_mfcc=40)
t = time.time()
ds = build_dataset(m.clips, fc, RepresentationConfig(kind="stats", stats=["mean", "std"]), cache_dir=os.environ.get("SONOTYPE_CACHE", "/tmp/sonocache"), jobs=1)
X = ds.X
y = np.array([c.label for c in ds.clips])
g = np.array([c.group for c in ds.clips])
splits = make_splits(list(y), list(g), protocol)
pred = np.empty(len(y), dtype=object)
for s in splits:
    tr = np.concatenate([s.train, s.val])
    n_inner = max(2, min(3, min(np.unique(y[tr], return_counts=True)[1])))
    gs = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
                      {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]},
                      cv=StratifiedGroupKFold(n_inner), scoring="balanced_accuracy")
    if len(np.unique(g[tr])) < 2:  # one training group (TESS by speaker): no inner group CV, C = 1
        gs = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0)).fit(X[tr], y[tr])
        gs.best_params_ = {"C": 1.0}
    else:
        gs.fit(X[tr], y[tr], groups=g[tr])
    pred[s.test] = gs.predict(X[s.test])
    print(s.name, gs.best_params_, round(balanced_accuracy_score(y[s.test], pred[s.test]), 3), flush=True)
print(json.dumps({"corpus": corpus, "protocol": protocol, "n": len(y), "balanced_accuracy": round(balanced_accuracy_score(y, pred), 3),
                  "accuracy": round(accuracy_score(y, pred), 3), "macro_f1": round(f1_score(y, pred, average="macro"), 3),
                  "dims": X.shape[1], "seconds": round(time.time() - t, 1)}))
