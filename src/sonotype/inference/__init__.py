"""Saved models and the one prediction path: files, arrays, windows, batches, live audio."""
