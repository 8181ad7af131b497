"""Progress as plain lines, for when stderr is not a terminal (logs, CI, ``nohup``, pipes).

A rich bar redraws itself in place and shows nothing useful in a log file, so a long
extraction used to print nothing for minutes. :class:`LineProgress` prints one line
every ~10 % of the work or every 10 s, whichever comes first, with the rate and the ETA,
and a last line with the total time.
"""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["LineProgress", "format_duration", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether standard error is a terminal (progress bars) rather than a file or pipe (log lines).

    Returns
    -------
    bool
        False also when stderr is closed or replaced by an object without ``isatty``.

    Examples
    --------
    >>> isinstance(stderr_is_terminal(), bool)
    True
    """
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str

    Examples
    --------
    >>> format_duration(42.4), format_duration(185), format_duration(3720)
    ('42s', '3m05s', '1h02m')
    """
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class LineProgress:
    """Counts work done and prints ``what: done/total unit (pct), rate, ETA`` lines.

    Parameters
    ----------
    total : int
        Units of work (clips, files).
    what : str
        What is being done, e.g. ``"embedding whisper-base"``.
    unit : str
    every_fraction, every_seconds : float
        Print when this share of the total or this much time has passed since the last line.
    stream : file, optional
        Default ``sys.stderr``.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = LineProgress(4, "extracting", stream=out, every_fraction=0.5)
    >>> for _ in range(4):
    ...     p.advance()
    >>> p.close()
    >>> out.getvalue().splitlines()[-1].startswith("extracting: 4/4 clips (100%)")
    True
    """

    def __init__(self, total: int, what: str, *, unit: str = "clips", every_fraction: float = 0.1,
                 every_seconds: float = 10.0, stream: IO[str] | None = None) -> None:
        self.total = max(0, int(total))
        self.what, self.unit = what, unit
        self.every_fraction, self.every_seconds = every_fraction, every_seconds
        self.stream = stream
        self.done = 0
        self.cached = 0  # units done without work (cache hits): not counted in the rate
        self.audio_seconds = 0.0
        self._start = self._t0 = self._last_t = time.monotonic()
        self._last_done = 0
        self._closed = False

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(text, file=stream, flush=True)

    def advance(self, n: int = 1, *, audio_seconds: float = 0.0, cached: bool = False) -> None:
        """Record ``n`` more units done (``audio_seconds`` of audio processed by them;
        ``cached``: found ready, so left out of the rate and the ETA)."""
        self.done += int(n)
        if cached:
            self.cached += int(n)
            self._t0 = time.monotonic()  # the rate counts from the first real work
        self.audio_seconds += float(audio_seconds)
        now = time.monotonic()
        due_share = self.total and (self.done - self._last_done) >= self.every_fraction * self.total
        if self.done >= self.total or due_share or now - self._last_t >= self.every_seconds:
            if self.done < self.total:
                self._write(self.line(now))
            self._last_t, self._last_done = now, self.done

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        worked = self.done - self.cached
        rate = worked / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.0f}%)"
        if self.cached:
            text += f", {self.cached} from the cache"
        if worked:
            text += f", {rate:.2f} {self.unit}/s"
        if self.audio_seconds:
            text += f", {self.audio_seconds / elapsed:.1f} audio-s/s"
        if worked and self.done < self.total:
            text += f", ETA {format_duration((self.total - self.done) / rate)}"
        return text

    def close(self, stopped: bool = False, hint: str = "") -> None:
        """Print the final line once: how far it got and the time taken.

        ``stopped``: the work ended early (an error, Ctrl-C), so the line says "stopped after",
        never "done", followed by ``hint`` (e.g. how to continue).
        """
        if self._closed:
            return
        self._closed = True
        took = format_duration(time.monotonic() - self._start)
        end = f"stopped after {took}" + (f"; {hint}" if hint else "") if stopped else f"done in {took}"
        self._write(f"{self.line()} - {end}")
