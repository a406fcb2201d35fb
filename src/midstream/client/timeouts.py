"""The timeouts of a streamed call, which one bounds each wait, and the watchdog that enforces them.

* ``pool``: waiting for a free connection of the client's pool, when every one is busy streaming (a
  queued stream is not a connect failure: it waits for a stream to end, so the default is long);
* ``connect``: making the connection (TCP and TLS);
* ``first_byte``: from sending the request to the first byte of the response body (headers included);
* ``idle``: the longest silence allowed between two chunks of the body;
* ``total``: the whole call, retries and their waits included.

:class:`Deadlines` is the arithmetic (sans-IO: every method takes the clock reading). A blocking read
cannot be given a new deadline once it started, and an async one bounded by a cancel scope per read
pays for the scope on every chunk, so both clients register a stream with the :class:`Watchdog`, a
single daemon thread that shuts the socket of a stream whose deadline passed; the read then returns
at once and the stream reports which timeout fired. (An async stream with no socket of its own, behind
a custom transport, bounds each read with a cancel scope instead.) A timeout raises
:class:`StreamTimeout`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from midstream.client.errors import StreamInterruptedByTimeout, StreamTimeout, TimeoutName

__all__ = [
    "WATCHDOG",
    "Deadlines",
    "StreamInterruptedByTimeout",
    "StreamTimeout",
    "TimeoutName",
    "Timeouts",
    "Watchdog",
    "Watched",
]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds for each timeout; ``None`` disables it.

    The defaults allow a slow reasoning model to think before its first byte and between chunks,
    and stop a call that hangs for good.

    Example:

        >>> timeouts = midstream.Timeouts(first_byte=30.0, idle=10.0)
        >>> timeouts.seconds("first_byte"), timeouts.connect
        (30.0, 10.0)
        >>> client = midstream.Client("anthropic", timeouts=timeouts)
    """

    connect: float | None = 10.0
    first_byte: float | None = 120.0
    idle: float | None = 90.0
    total: float | None = 600.0
    pool: float | None = 600.0

    def seconds(self, which: TimeoutName) -> float | None:
        """The configured value of ``which``."""
        value: float | None = getattr(self, which)
        return value


def _earliest(*candidates: tuple[float | None, TimeoutName]) -> tuple[float | None, TimeoutName]:
    best: tuple[float | None, TimeoutName] = (None, candidates[-1][1])
    for at, which in candidates:
        if at is not None and (best[0] is None or at < best[0]):
            best = (at, which)
    return best


class Deadlines:
    """Which timeout bounds the current wait, and when it expires (clock readings in seconds).

    ``start`` is when the call began (the ``total`` timeout counts from it); :meth:`attempt` marks
    when each request is sent (``first_byte`` counts from it).
    """

    def __init__(self, timeouts: Timeouts, start: float) -> None:
        self.timeouts = timeouts
        self.total_at = None if timeouts.total is None else start + timeouts.total
        self.attempt_at = start

    def attempt(self, now: float) -> None:
        """A request is being sent now."""
        self.attempt_at = now

    def time_left(self, now: float) -> float | None:
        """Seconds until the ``total`` deadline (``None``: no total timeout)."""
        return None if self.total_at is None else self.total_at - now

    def connect(self, now: float) -> tuple[float | None, TimeoutName]:
        """(seconds allowed, name) for making the connection."""
        return self._relative(now, self._after(now, self.timeouts.connect), "connect")

    def pool(self, now: float) -> tuple[float | None, TimeoutName]:
        """(seconds allowed, name) for getting a free connection from the pool."""
        return self._relative(now, self._after(now, self.timeouts.pool), "pool")

    def first_byte(self, now: float) -> tuple[float | None, TimeoutName]:
        """(seconds allowed, name) for the response to begin."""
        return self._relative(now, self._after(self.attempt_at, self.timeouts.first_byte), "first_byte")

    def read_deadline(self, now: float, started: bool) -> tuple[float | None, TimeoutName]:
        """(absolute deadline, name) for the next body chunk; ``started``: a chunk already arrived."""
        if started:
            return _earliest((self._after(now, self.timeouts.idle), "idle"), (self.total_at, "total"))
        own = self._after(self.attempt_at, self.timeouts.first_byte)
        return _earliest((own, "first_byte"), (self.total_at, "total"))

    def idle_deadline(self, now: float) -> float:
        """The deadline for the next chunk after one arrived ``now`` (``math.inf``: none); the streams
        inline it on their per-chunk path."""
        idle = self.timeouts.idle
        at = math.inf if idle is None else now + idle
        total_at = self.total_at
        return total_at if total_at is not None and total_at < at else at

    def expired(self, now: float, started: bool) -> TimeoutName:
        """Which timeout a wait for body bytes that is over ``now`` ran into."""
        if self.total_at is not None and now >= self.total_at:
            return "total"
        return "idle" if started else "first_byte"

    def _relative(self, now: float, at: float | None, which: TimeoutName) -> tuple[float | None, TimeoutName]:
        deadline, name = _earliest((at, which), (self.total_at, "total"))
        return (None if deadline is None else max(deadline - now, 0.0)), name

    @staticmethod
    def _after(start: float, seconds: float | None) -> float | None:
        return None if seconds is None else start + seconds


class Watched(Protocol):
    """What the watchdog needs from a stream: its current deadline and a way to stop it."""

    deadline: float  # math.inf: nothing to wait for

    def expire(self) -> None:
        """The deadline passed: stop the blocked read (called from the watchdog thread)."""


class Watchdog:
    """One daemon thread that calls :meth:`Watched.expire` on streams whose deadline has passed.

    A stream moves its own deadline after every chunk by assigning ``deadline`` (a float, so no lock);
    the watchdog wakes at the earliest deadline it knows, rechecks, and sleeps again if it moved later.
    A stream whose deadline moves before :attr:`next_wake` calls :meth:`poke` (that happens once per
    stream, when the first chunk trades the first-byte deadline for the idle one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._streams: set[Watched] = set()
        self._thread: threading.Thread | None = None
        self.next_wake = 0.0  # when the thread wakes next (clock reading)

    def watch(self, stream: Watched) -> None:
        """Start watching ``stream`` (its ``deadline`` is read from now on)."""
        with self._cond:
            self._streams.add(stream)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="midstream-watchdog", daemon=True)
                self._thread.start()
            elif self.next_wake > 0.0 and stream.deadline < self.next_wake:
                # Only a sleeping thread needs waking, and only for an earlier deadline: waking it
                # for nothing would make the reading thread wait for the interpreter lock.
                self._cond.notify()

    def unwatch(self, stream: Watched) -> None:
        """Stop watching ``stream``: once this returns, the watchdog will not call its ``expire``."""
        with self._cond:
            self._streams.discard(stream)

    def poke(self) -> None:
        """A deadline moved earlier: recompute when to wake."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                expired, wait = self._due()
                for stream in expired:
                    self._streams.discard(stream)
                    # Under the lock: a stream that unwatches itself before it lets its connection go
                    # back to the pool cannot have that connection shut after it did.
                    stream.expire()
                if not expired:
                    self.next_wake = self._clock() + wait
                    self._cond.wait(timeout=wait)
                    self.next_wake = 0.0

    def _due(self) -> tuple[list[Watched], float]:
        now = self._clock()
        expired: list[Watched] = []
        earliest = math.inf
        for stream in self._streams:
            deadline = stream.deadline
            if deadline <= now:
                expired.append(stream)
            else:
                earliest = min(earliest, deadline)
        # Wake at least every minute: a daemon thread with nothing to do costs nothing meanwhile.
        return expired, min(earliest - now, 60.0) if earliest != math.inf else 60.0


WATCHDOG = Watchdog()
"""The process-wide watchdog of streams (sync ones, and async ones with a socket of their own)."""
