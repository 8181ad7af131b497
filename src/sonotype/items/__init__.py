"""Clips to items: features, embeddings or waveforms, per-speaker standardisation, local and Ray engines."""
