"""Benchmark smoke run: two short generated files, every reported figure present and sane."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from sonotype.bench.features import generate_music, generate_speech, relative_error, run_benchmark
from sonotype.cli import app


def test_run_benchmark_smoke() -> None:
    r = run_benchmark(None, files=2, jobs=1, repeats=1, music_seconds=2.0, speech_seconds=1.0)
    for key in ("seed_seconds_per_file", "ratio_one_core", "ratio_all_cores", "logmel_ratio", "max_relative_error"):
        assert np.isfinite(r[key]) and r[key] >= 0, key
    assert r["files"] == 2 and r["audio_seconds"] == 4.0
    assert r["max_relative_error"] < 1e-4  # the same numbers as the seeds' pipeline
    assert r["seed_x_realtime"] > 0 and r["logmel_files"] == 8


def test_bench_cli_json() -> None:
    args = ["bench", "features", "--json", "--files", "2", "--jobs", "1", "--repeats", "1", "--seconds", "2"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["files"] == 2 and r["max_relative_error"] < 1e-4


def test_generators_are_seeded_and_bounded() -> None:
    a = generate_music(1.0, 22050, np.random.default_rng(3))
    b = generate_music(1.0, 22050, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and np.abs(a).max() <= 0.8 + 1e-6
    s = generate_speech(0.5, 16000, np.random.default_rng(0))
    assert s.shape == (8000,) and np.abs(s).max() <= 0.5 + 1e-6


def test_relative_error_is_per_group() -> None:
    ref = np.ones(37)
    ours = ref.copy()
    ours[6] += 1e-3  # one MFCC mean off by 1e-3 of the group's largest value
    assert abs(relative_error(ours, ref) - 1e-3) < 1e-12
