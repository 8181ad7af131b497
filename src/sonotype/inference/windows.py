"""A signal cut into fixed windows as it arrives: the one windowing rule of files read block by block, streams and live audio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonotype.errors import ParameterError

__all__ = ["Window", "Windower"]


@dataclass(frozen=True)
class Window:
    """One window of the signal at the model's rate: sample offsets and the audio."""

    start: int
    end: int
    samples: np.ndarray


class Windower:
    """Cut a signal that arrives in chunks into the windows :func:`sonotype.audio.segment`
    (``last="keep"``) cuts from the whole signal, holding about one window of audio.

    Parameters
    ----------
    sr : int
        Rate of the pushed samples.
    window, hop : float
        Window length and step in seconds.
    min_samples : int
        A final partial window shorter than this is dropped (unless it is the only one).
    """

    def __init__(self, sr: int, window: float, hop: float, *, min_samples: int = 1) -> None:
        self.sr = int(sr)
        self.w = max(1, int(round(window * sr)))
        self.h = max(1, int(round(hop * sr)))
        self.min_samples = int(min_samples)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # sample index of _buf[0]
        self._next = 0  # start of the next full window
        self.n = 0  # samples pushed so far
        self.n_full = 0  # full windows emitted
        self._finished = False

    @property
    def buffered(self) -> int:
        """Samples held, waiting for their window to fill."""
        return int(self._buf.size)

    def push(self, chunk: np.ndarray) -> list[Window]:
        """Add samples; return the windows whose last sample has now arrived."""
        if self._finished:
            raise ParameterError("push after finish: this stream has ended")
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        out: list[Window] = []
        if not chunk.size:
            return out
        self.n += chunk.size
        self._buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk
        while self._buf_start + self._buf.size >= self._next + self.w:
            off = self._next - self._buf_start
            out.append(Window(self._next, self._next + self.w, self._buf[off : off + self.w]))
            self._next += self.h
            self.n_full += 1
        trim = min(self._buf.size, max(0, self._next - self._buf_start))
        self._buf, self._buf_start = self._buf[trim:], self._buf_start + trim
        return out

    def finish(self) -> list[Window]:
        """End of the signal: the tail no full window covers, kept at its real length."""
        self._finished = True
        n, w, h = self.n, self.w, self.h
        tail = 0 if self.n_full == 0 else self._next
        if ((self.n_full == 0 or self._next - h + w < n) and tail < n
                and (self.n_full == 0 or n - tail >= self.min_samples)):
            return [Window(tail, n, self._buf[tail - self._buf_start :])]
        return []
