"""What keeps the simulator answering under abuse: a deadline for each request's headers, and logs
that cannot flood the disk.

uvicorn closes an idle keep-alive connection, but not one that never finishes its request headers: a
few thousand slow clients would hold every file descriptor. :class:`GuardedH11Protocol` closes a
connection whose next request has not begun ``header_timeout`` seconds after the connection opened or
the previous response ended. :class:`RateLimit` lets through at most ``burst`` records per logger
every ``window`` seconds, and says how many it held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_CONNECTIONS", "GuardedH11Protocol", "RateLimit", "guarded"]

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send its request headers."""
DEFAULT_MAX_CONNECTIONS = 4096
"""Connections (and requests) served at once; beyond it uvicorn answers 503."""


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        waiting_for = self.cycle  # a new request replaces the cycle; until then nothing began
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late, waiting_for)

    def _headers_late(self, waiting_for: Any) -> None:
        if self.cycle is waiting_for and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()  # type: ignore[union-attr]
        super().connection_lost(exc)


def guarded(header_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class with ``header_timeout`` (one class per setting, for uvicorn's ``http=``)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})


class RateLimit(logging.Filter):
    """At most ``burst`` records per logger name in each ``window`` seconds; the first record let
    through after a held-back run says how many were held back."""

    def __init__(
        self, burst: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # name -> (window start, passed, held)

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        start, passed, held = self._windows.get(record.name, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self._windows[record.name] = (start, passed, held + 1)
            return False
        if held:
            record.msg = f"({held} similar log records were held back) {record.getMessage()}"
            record.args = None
        self._windows[record.name] = (start, passed + 1, 0)
        return True
