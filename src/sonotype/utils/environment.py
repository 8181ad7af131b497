"""What a run ran on: CPU, cores, platform, library versions, BLAS libraries and thread counts.

A run repeats exactly (same seed) on the same machine with the same software and thread
counts. On another CPU or BLAS the matrix products round differently (kernels differ between,
say, AMD EPYC and Intel Xeon), training follows a slightly different path, and figures can
move by a few hundredths. ``run_experiment`` stores :func:`environment` in ``metrics.json`` so
that two runs' figures can be compared knowing where they came from.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from typing import Any

__all__ = ["bf16_native", "cpu_model", "environment"]

# Distribution names (as pip knows them) whose versions can change a run's numbers.
_PACKAGES = ("sonotype", "numpy", "scipy", "torch", "librosa", "scikit-learn", "soundfile", "threadpoolctl")


def cpu_model() -> str:
    """The CPU's model name: ``/proc/cpuinfo`` on Linux, else what ``platform`` knows.

    Returns
    -------
    str
        E.g. ``"AMD EPYC 7B13"``; ``"unknown"`` when nothing says.

    Examples
    --------
    >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def bf16_native() -> bool:
    """Whether torch's oneDNN computes bfloat16 natively on this CPU (AVX512-BF16 or AMX).

    Returns
    -------
    bool
        False where bfloat16 would be emulated (slower than float32).

    Examples
    --------
    >>> bf16_native() in (True, False)
    True
    """
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else False


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _blas() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process (threadpoolctl), without file paths."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # a declared dependency, but the record must never break a run
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture", "threading_layer")
    return [{k: lib[k] for k in keep if lib.get(k) is not None} for lib in threadpool_info()]


def _torch_libraries() -> dict[str, str]:
    """torch's own BLAS and oneDNN (linked into torch, so threadpoolctl does not list them)."""
    import torch

    text = torch.__config__.show()
    out = {}
    for key, pattern in (("blas", r"BLAS_INFO=(\w+)"), ("mkl", r"Math Kernel Library Version ([\w.\-]+)"),
                         ("onednn", r"MKL-DNN v([\w.]+)")):
        m = re.search(pattern, text)
        if m:
            out[key] = m.group(1)
    return out


def environment() -> dict[str, Any]:
    """A JSON-ready record of the machine and software a run used.

    Keys: ``cpu`` (model name), ``cpu_count`` (logical CPUs) and ``cpus_usable`` (those this
    process may run on), ``platform``, ``python``, ``versions`` (sonotype, numpy, scipy, torch,
    librosa, scikit-learn, soundfile, threadpoolctl; ``None`` if not installed), ``blas`` (each
    loaded BLAS/OpenMP library: internal_api, version, num_threads, architecture, ...),
    ``torch_libraries`` (torch's built-in BLAS, MKL and oneDNN versions), ``torch_threads``, ``torch_cpu_capability`` (the SIMD level torch dispatches to, e.g. AVX2)
    and ``bf16_native``. Reads only local facts: no network, a few milliseconds.

    Returns
    -------
    dict

    Examples
    --------
    >>> env = environment()
    >>> {"cpu", "versions", "blas", "torch_threads"} <= set(env), env["versions"]["numpy"] is not None
    (True, True)
    """
    import torch

    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        capability = None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _PACKAGES},
        "blas": _blas(),
        "torch_libraries": _torch_libraries(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": capability,
        "bf16_native": bf16_native(),
    }
