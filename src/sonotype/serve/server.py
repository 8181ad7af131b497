"""Run the app under uvicorn with the timeouts a network needs.

uvicorn closes idle keep-alive connections (``keep_alive_s``) but never times out a
request whose headers are half sent: a thousand slowloris connections hold a thousand
file descriptors for ever, and when the descriptors run out asyncio logs every failed
``accept()`` with a traceback, thousands of times a second. So:

- :class:`HeaderTimeoutH11` is uvicorn's h11 protocol with one more timer: a connection
  must deliver complete request headers within ``header_timeout_s`` of its first byte
  awaited (the connection's start, or the end of the last response), else it is closed.
  The timer is not restarted by each byte, so trickling does not keep it alive.
- :class:`RateLimitFilter` lets one "out of system resource" accept error through per
  ``every_s`` seconds and counts the ones it swallowed.

:func:`run` binds both; ``sonotype serve`` calls it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sonotype.utils.limits import Limits

__all__ = ["HeaderTimeoutH11", "RateLimitFilter", "install_log_filter", "run"]

log = logging.getLogger("sonotype.serve")


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers are not complete
    within :attr:`header_timeout_s` (a class attribute: uvicorn builds the protocol itself)."""

    header_timeout_s: float = Limits.header_timeout_s  # set by run(); worker processes: app_from_env()
    timeouts = 0  # connections closed for slow headers (all instances; read by tests and the bench)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # waiting for (the rest of) a request's headers: the clock runs
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # the keep-alive timer now watches the idle connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            type(self).timeouts += 1
            self.transport.close()


class RateLimitFilter(logging.Filter):
    """Pass one record whose message contains ``needle`` per ``every_s`` seconds; the next one
    passed says how many were swallowed. ``clock`` is injectable for tests."""

    def __init__(self, needle: str, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.needle, self.every_s, self.clock = needle, every_s, clock
        self.last = -float("inf")
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.needle not in record.getMessage():
            return True
        now = self.clock()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} more like it in the last {now - self.last:.0f} s)"
            record.exc_info = None  # the traceback was shown the first time
            self.suppressed = 0
        self.last = now
        return True


def install_log_filter(every_s: float = 10.0) -> RateLimitFilter:
    """Rate-limit asyncio's accept errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) on its logger."""
    f = RateLimitFilter("out of system resource", every_s)
    logging.getLogger("asyncio").addFilter(f)
    return f


def run(app: Any, *, host: str, port: int, limits: Limits, log_level: str = "info", workers: int = 1,
        factory: bool = False) -> None:
    """Serve ``app`` (an app, or with ``factory`` an import string) with the limits' timeouts."""
    HeaderTimeoutH11.header_timeout_s = limits.header_timeout_s
    install_log_filter()
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=workers if factory else None,
                factory=factory, http=HeaderTimeoutH11, loop="asyncio",
                timeout_keep_alive=int(max(1, round(limits.keep_alive_s))),
                h11_max_incomplete_event_size=16 * 1024)
