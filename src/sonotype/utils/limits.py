"""Every resource limit of sonotype in one place: windows, decoding, uploads, the service, workers.

A request (HTTP, WebSocket) or a command (``predict --window/--hop``) may ask for work out
of proportion to its input: a hop of 1e-9 s asks for a billion windows per second of audio,
a 447 KB FLAC of silence at 192 kHz stereo decodes to 2 GB, ``--jobs 1000`` asks for a
thousand processes. Each such knob has one limit here, with its default, its meaning and
its override: ``SONOTYPE_LIMIT_<NAME>`` in the environment, or ``--limit NAME=VALUE`` on
``sonotype serve``. The service shows the limits in force at ``GET /v1/model``.

Examples
--------
>>> lim = Limits()
>>> lim.min_hop_s, lim.max_windows
(0.01, 5000)
>>> Limits.from_env({"SONOTYPE_LIMIT_MAX_WINDOWS": "100"}).max_windows
100
>>> check_windows(lim, window=1.0, hop=1e-9)
Traceback (most recent call last):
...
sonotype.errors.ParameterError: hop=1e-09 s is below this limit's floor of 0.01 s (min_hop_s)
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields

from sonotype.errors import ParameterError

__all__ = ["ENV_PREFIX", "LIMIT_HELP", "Limits", "cap_jobs", "check_samples", "check_windows", "describe",
           "usable_cores"]

ENV_PREFIX = "SONOTYPE_LIMIT_"

# One line per limit: what it bounds (shown by ``serve --help`` and in the docs).
LIMIT_HELP: dict[str, str] = {
    "min_hop_s": "smallest window step (s), on every path: HTTP, WebSocket, predict --window/--hop",
    "max_window_s": "longest window (s) on every path",
    "max_windows": "most windows one request or one predicted file may ask for (duration / hop)",
    "max_windows_per_stream_s": "most windows per second of audio a /v1/stream may ask for (1 / hop)",
    "max_upload_mb": "largest request body (MB); 413 beyond",
    "max_duration_s": "longest audio per file (s); 413 beyond",
    "max_samples": "most samples per file at the file's own rate x channels, checked before decoding; 413 beyond",
    "spool_kb": "uploads larger than this (KB) are spooled to a temporary file, not held in memory",
    "decode_workers": "requests decoded and classified at once",
    "queue": "requests waiting for a worker; beyond it 503 with Retry-After",
    "retry_after_s": "the Retry-After (s) of a 503",
    "header_timeout_s": "a connection must send its complete request headers within this (s)",
    "keep_alive_s": "an idle keep-alive connection is closed after this (s)",
    "read_timeout_s": "a request body must arrive within this (s); 408 beyond",
    "max_stream_s": "longest /v1/stream (s); closed 1008 beyond",
    "max_stream_buffer_s": "most audio (s) a stream may have waiting for classification; closed 1008 beyond",
}


@dataclass(frozen=True)
class Limits:
    """The limits in force (see :data:`LIMIT_HELP` for each field's meaning).

    The defaults admit every sensible use (a 10-minute 48 kHz stereo recording, a 10 ms hop
    on a one-minute clip, a stream at 100 windows per second) while bounding the memory of
    one request to about the model's rate x ``max_duration_s`` float32 samples and its CPU to
    ``max_windows`` network items.
    """

    min_hop_s: float = 0.01
    max_window_s: float = 3600.0
    max_windows: int = 5000
    max_windows_per_stream_s: float = 100.0
    max_upload_mb: float = 20.0
    max_duration_s: float = 600.0
    max_samples: int = 600 * 48_000 * 2
    spool_kb: int = 1024
    decode_workers: int = 2
    queue: int = 16
    retry_after_s: int = 2
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    read_timeout_s: float = 60.0
    max_stream_s: float = 4 * 3600.0
    max_stream_buffer_s: float = 60.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ParameterError(f"limit {f.name} must be a finite number > 0, got {v!r}")
            if f.type in ("int", int) and v != int(v):
                raise ParameterError(f"limit {f.name} must be a whole number, got {v!r}")

    def replace(self, **changes: object) -> Limits:
        """A copy with ``changes`` (values as numbers or strings, as a CLI or the environment gives them)."""
        known = {f.name: f for f in fields(self)}
        typed: dict[str, object] = {}
        for name, raw in changes.items():
            if name not in known:
                raise ParameterError(f"unknown limit {name!r}; known: {', '.join(known)}")
            typed[name] = _number(name, raw, whole=known[name].type in ("int", int))
        return dataclasses.replace(self, **typed)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: Limits | None = None) -> Limits:
        """``base`` (default: the defaults) with every ``SONOTYPE_LIMIT_<NAME>`` of ``environ`` applied."""
        env = os.environ if environ is None else environ
        base = cls() if base is None else base
        names = {f.name for f in fields(cls)}
        found = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        unknown = sorted(set(found) - names)
        if unknown:
            raise ParameterError(f"unknown limit(s) in the environment: {', '.join(ENV_PREFIX + u.upper() for u in unknown)}")
        return base.replace(**found)

    def to_env(self) -> dict[str, str]:
        """The ``SONOTYPE_LIMIT_*`` variables that recreate these limits (for worker processes)."""
        return {ENV_PREFIX + k.upper(): repr(v) for k, v in self.to_dict().items()}

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


def _number(name: str, raw: object, *, whole: bool) -> float | int:
    try:
        v = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(f"limit {name} must be a number, got {raw!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"limit {name} must be a finite number > 0, got {raw!r}")
    if whole:
        if v != int(v):
            raise ParameterError(f"limit {name} must be a whole number, got {raw!r}")
        return int(v)
    return v


def describe(limits: Limits | None = None) -> str:
    """One line per limit, ``name=value: meaning``, for ``--help`` texts and logs."""
    lim = Limits() if limits is None else limits
    return "; ".join(f"{k}={v if isinstance(v, int) else format(v, 'g')}: {LIMIT_HELP[k]}"
                     for k, v in lim.to_dict().items())


def check_windows(limits: Limits, *, window: float | None, hop: float | None, duration: float | None = None,
                  stream: bool = False) -> tuple[float | None, float | None]:
    """Check a window/hop request against ``limits``; return ``(window, hop)`` as floats.

    ``hop`` defaults to ``window``. Refused (:class:`ParameterError`, naming the limit): a
    non-finite or non-positive value, a window over ``max_window_s``, a hop under
    ``min_hop_s``, more than ``max_windows`` windows over ``duration`` seconds, and for a
    stream more than ``max_windows_per_stream_s`` windows per second.
    """
    if window is None:
        if hop is not None:
            raise ParameterError(f"hop={hop:g} needs a window as well")
        return None, None
    for name, v in (("window", window), ("hop", hop)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ParameterError(f"{name} must be a finite number of seconds > 0, got {v!r}")
    window = float(window)
    name = "hop" if hop is not None else "window (the hop when none is given)"
    hop = window if hop is None else float(hop)
    if window > limits.max_window_s:
        raise ParameterError(f"window={window:g} s is over this limit of {limits.max_window_s:g} s (max_window_s)")
    if hop > limits.max_window_s:
        raise ParameterError(f"hop={hop:g} s is over this limit of {limits.max_window_s:g} s (max_window_s)")
    if hop < limits.min_hop_s:
        raise ParameterError(f"{name}={hop:g} s is below this limit's floor of {limits.min_hop_s:g} s (min_hop_s)")
    if stream and 1.0 / hop > limits.max_windows_per_stream_s:
        raise ParameterError(f"{name}={hop:g} s gives {1.0 / hop:g} windows per second of audio; at most "
                             f"{limits.max_windows_per_stream_s:g} (max_windows_per_stream_s)")
    if duration is not None and duration / hop > limits.max_windows:
        raise ParameterError(f"{name}={hop:g} s over {duration:.1f} s of audio gives {math.ceil(duration / hop)} "
                             f"windows; at most {limits.max_windows} (max_windows)")
    return window, hop


def check_samples(limits: Limits, *, samplerate: int, channels: int, frames: int, what: str = "audio") -> None:
    """Refuse (:class:`ParameterError`) audio whose decoded size breaks ``max_duration_s`` or
    ``max_samples`` (frames x channels at the file's own rate), before anything is decoded."""
    duration = frames / float(samplerate)
    if duration > limits.max_duration_s:
        raise ParameterError(f"{what} lasts {duration:.1f} s; at most {limits.max_duration_s:g} s (max_duration_s)")
    n = frames * channels
    if n > limits.max_samples:
        raise ParameterError(f"{what} holds {n:,} samples ({frames:,} frames x {channels} channel(s) at "
                             f"{samplerate} Hz); at most {limits.max_samples:,} (max_samples)")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS/Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def cap_jobs(jobs: int, *, what: str = "--jobs") -> int:
    """``jobs`` capped at :func:`usable_cores`, with one warning (a note) when it was more."""
    cores = usable_cores()
    if jobs > cores:
        warnings.warn(f"{what} {jobs} is more than the {cores} usable CPU core(s): using {cores} worker(s)",
                      UserWarning, stacklevel=2)
        return cores
    return jobs
