"""The record of what a run ran on: real values of this machine, JSON-ready, in metrics and report."""

from __future__ import annotations

import json
import os
import platform

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from sonotype.reporting.report import write_report
from sonotype.utils.environment import bf16_native, cpu_model, environment


def test_environment_describes_this_process() -> None:
    env = environment()
    assert json.loads(json.dumps(env)) == env  # plain JSON types only
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
        assert not names or env["cpu"] in names
    assert env["cpu"] == cpu_model() and env["cpu"]
    assert env["cpu_count"] == os.cpu_count() and 1 <= env["cpus_usable"] <= env["cpu_count"]
    assert env["python"] == platform.python_version()
    v = env["versions"]
    assert v["numpy"] == np.__version__ and v["torch"] == torch.__version__
    assert all(v[k] for k in ("sonotype", "scipy", "librosa", "scikit-learn"))
    assert env["bf16_native"] is bf16_native() and isinstance(env["bf16_native"], bool)
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch_libraries"].get("blas")  # e.g. "mkl" for the x86-64 wheels


def test_blas_entries_are_threadpoolctls_without_paths() -> None:
    env = environment()
    libs = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert libs, "numpy loads a BLAS"
    got = [b for b in env["blas"] if b["user_api"] == "blas"]
    assert [(b["internal_api"], b["version"], b["num_threads"]) for b in got] == \
        [(b["internal_api"], b["version"], b["num_threads"]) for b in libs]
    assert not any("filepath" in b for b in env["blas"])  # no machine paths in a shared metrics.json


def test_torch_thread_count_is_the_current_one() -> None:
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert environment()["torch_threads"] == 1
    finally:
        torch.set_num_threads(old)
    assert environment()["torch_threads"] == old


@pytest.mark.parametrize("with_env", [True, False])
def test_report_says_where_it_ran(tmp_path, with_env: bool) -> None:
    m = {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5}
    if with_env:
        m["environment"] = {**environment(), "cpu": "AMD EPYC <7763>"}
    page = write_report(tmp_path, config={}, metrics=m, plots=[], title="t").read_text()
    if with_env:
        assert "ran on: AMD EPYC &lt;7763&gt;" in page and f"torch {torch.__version__}" in page
    else:
        assert "ran on:" not in page
