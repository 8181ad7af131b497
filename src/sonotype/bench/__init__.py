"""Benchmarks run as commands (never tests): features, encoders, corpus-scale extraction."""
