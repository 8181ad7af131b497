"""Argument checks at the public boundary: a bad value raises :class:`ParameterError` naming it.

Shared so that every function says the same thing about the same mistake, and so that no raw
numpy/scipy ``ValueError``/``IndexError``/``OverflowError`` reaches a caller from deep inside.
A bad *shape* or *type* of array is the caller's mistake (``ParameterError``); bad *contents*
(NaN, too short) make the signal unusable (``AudioError``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from sonotype.errors import AudioError, ParameterError

__all__ = ["finite", "mono_signal", "positive_int", "sample_rate"]


def finite(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, finite and inside the given bounds (open or closed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        raise ParameterError(f"{name} must be a finite number{where}, got {value!r}")
    return v


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; integral floats (22050.0) are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def sample_rate(value: Any, name: str = "sr") -> int:
    """A sample rate: a positive whole number of Hz."""
    return positive_int(name, value)


def mono_signal(y: Any, *, path: object = None) -> np.ndarray:
    """``y`` as a contiguous mono float32 signal.

    1-D is taken as is; 2-D is averaged over its channel axis, the shorter one (``(channels,
    n)`` or ``(n, channels)``); integer PCM is scaled to [-1, 1] as soundfile does. Any other
    shape or a non-numeric array is a :class:`ParameterError`; NaN or infinity an
    :class:`AudioError` (naming ``path``).
    """
    arr = np.asarray(y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ParameterError(f"audio must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ParameterError("audio must be real-valued, got a complex array")
    if np.issubdtype(arr.dtype, np.integer):  # PCM integers -> [-1, 1]
        arr = arr.astype(np.float32) / float(-np.iinfo(arr.dtype).min)
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        arr = arr.mean(axis=0 if arr.shape[0] <= arr.shape[1] else 1)
    if arr.ndim != 1:
        raise ParameterError(f"audio array must be (samples,) or 2-D with a channel axis, got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(arr, dtype=np.float32)
