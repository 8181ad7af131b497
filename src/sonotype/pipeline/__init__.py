"""Experiments: run configs, folds, final models, baselines, the AudioClassifier estimator, defaults."""
