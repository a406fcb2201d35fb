"""The event log contract: one append-only log per run, resumable by ``seq``.

An :class:`EventLog` keeps, for every run, its entries (``seq`` 1, 2, 3, ... with no gaps), its status
(running or ended, the terminal state, the last seq, a cancel request) and a producer lease. What every
store guarantees (the shared contract tests run each store through the same list):

* **Exactly one producer.** ``acquire`` hands out a :class:`Lease` with a generation; a newer lease
  supersedes older ones, and an append or close through a superseded lease raises
  :class:`~midstream.relay.errors.LeaseLost` (fencing: a producer that was presumed dead cannot write).
* **Seqs are assigned once.** ``append`` writes ``lease.seq + 1``; a re-sent append of a seq already
  in the log raises :class:`~midstream.relay.errors.DuplicateAppend` and writes nothing.
* **Reads are exact.** ``read(run, after)`` yields the entries with ``seq > after`` in order. If some
  of them were trimmed (the per-run cap), it first yields :class:`Resync` with the earliest seq still
  kept, then continues from there: never a silent gap. ``follow=True`` keeps reading until the run ends
  and every entry was yielded; ``heartbeat=s`` yields :data:`HEARTBEAT` after ``s`` idle seconds.
* **Ended runs replay.** ``close`` records the terminal state and starts the replay TTL; until it
  expires, reads replay the log to its end. After it, the run is gone (:class:`RunNotFound`).
* **Cancel from anywhere.** ``cancel(run)`` records the request (idempotent) where every process using
  the same store sees it; ``cancelled(run)`` waits for it. The producer cancels its work; the log then
  ends like any other run (with the agent's ``cancel`` and ``run_end`` entries).

Example (the memory store; the SQLite and Redis stores behave the same)::

    log = MemoryLog()
    await log.create("r1")
    lease = await log.acquire("r1", owner="me")
    await log.append(lease, "text_delta", {"index": 0, "text": "Hi"})   # -> 1
    await log.close(lease, "completed")
    [e.seq async for e in log.read("r1")]                                 # -> [1]
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Final, Literal

from midstream.relay.entry import LogEntry
from midstream.relay.errors import RunNotFound

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_REPLAY_TTL",
    "HEARTBEAT",
    "EventLog",
    "Heartbeat",
    "Lease",
    "ReadItem",
    "Resync",
    "RunState",
    "RunStatus",
]

DEFAULT_REPLAY_TTL: Final = 24 * 3600.0
"""How long an ended run stays replayable (seconds)."""
DEFAULT_MAX_ENTRIES: Final = 10_000
"""How many entries a run keeps; older ones are trimmed (readers behind them get a ``resync``)."""
DEFAULT_RUN_TTL: Final = 7 * 24 * 3600.0
"""How long a run that never ends stays in the store."""

RunState = Literal["running", "ended"]


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What the store knows about a run. ``cancel_requested`` is the reason of a cancel request."""

    run: str
    state: RunState
    last_seq: int
    terminal: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    cancel_requested: str | None = None
    owner: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """True once ``close`` was called."""
        return self.state == "ended"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form served by ``GET /v1/runs/{id}``."""
        out = asdict(self)
        out["id"] = out.pop("run")
        out["meta"] = dict(self.meta)
        return out


@dataclass(slots=True)
class Lease:
    """The right to append to one run. ``generation`` fences older producers out; ``seq`` is the last
    seq appended (the next append writes ``seq + 1``)."""

    run: str
    owner: str
    generation: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Resync:
    """Entries after the reader's cursor were trimmed; reading continues at ``earliest``."""

    kind: ClassVar[str] = "resync"
    run: str
    earliest: int


class Heartbeat:
    """Yielded by a following read after ``heartbeat`` seconds without an entry."""

    kind: ClassVar[str] = "heartbeat"

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()
ReadItem = LogEntry | Resync | Heartbeat

_PAGE = 512


class _Waiters:
    """In-process wake-ups per run: ``wait`` returns when ``notify`` was called for the run."""

    def __init__(self) -> None:
        self._by_run: dict[str, set[asyncio.Future[None]]] = {}

    def add(self, run: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._by_run.setdefault(run, set()).add(fut)
        return fut

    def discard(self, run: str, fut: asyncio.Future[None]) -> None:
        waiting = self._by_run.get(run)
        if waiting is not None:
            waiting.discard(fut)
            if not waiting:
                del self._by_run[run]

    def notify(self, run: str) -> None:
        """Wake the waiters of ``run`` (called on the event loop's thread)."""
        for fut in self._by_run.pop(run, ()):
            if not fut.done():
                fut.set_result(None)

    def watched(self) -> list[str]:
        return list(self._by_run)


class EventLog(ABC):
    """The contract every store implements; see the module docstring for what it guarantees.

    ``max_entries`` caps each run's log (older entries are trimmed); ``replay_ttl`` is how long an
    ended run stays readable. Stores are used from one event loop; use ``async with`` or ``aclose``.
    """

    name: ClassVar[str] = "log"
    poll_interval: float = 0.0  # > 0: also look at the store this often (for writers in other processes)

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, replay_ttl: float = DEFAULT_REPLAY_TTL
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if replay_ttl <= 0:
            raise ValueError("replay_ttl must be positive")
        self.max_entries = max_entries
        self.replay_ttl = replay_ttl
        self._waiters = _Waiters()
        self._cancel_waiters = _Waiters()

    async def __aenter__(self) -> EventLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- what each store implements --------------------------------------------------------------

    @abstractmethod
    async def create(
        self,
        run: str,
        *,
        meta: Mapping[str, Any] | None = None,
        ttl: float = DEFAULT_RUN_TTL,
        tag: str | None = None,
    ) -> RunStatus:
        """Register a new, running run with no entries; raises ``RunExists`` if the id is taken.
        ``tag`` groups runs (the messages of one chat): :meth:`latest` finds the newest."""

    @abstractmethod
    async def latest(self, tag: str) -> str | None:
        """The newest run created with ``tag`` that is still in the store, or None."""

    @abstractmethod
    async def acquire(self, run: str, owner: str, *, ttl: float = 30.0) -> Lease:
        """Become the run's producer for ``ttl`` seconds (renew with :meth:`renew`). Succeeds when the
        run has no lease, its lease expired, or ``owner`` holds it; raises ``LeaseHeld`` otherwise,
        ``RunClosed`` for an ended run. Every success starts a new generation."""

    @abstractmethod
    async def renew(self, lease: Lease, *, ttl: float = 30.0) -> None:
        """Extend the lease; raises ``LeaseLost`` if it was superseded."""

    @abstractmethod
    async def append(
        self,
        lease: Lease,
        kind: str,
        data: Mapping[str, Any],
        *,
        agent: str | None = None,
        parent: str | None = None,
        seq: int | None = None,
    ) -> int:
        """Write one entry at ``seq`` (default ``lease.seq + 1``) and return it; ``lease.seq`` moves
        on. Raises ``LeaseLost``, ``RunClosed``, ``DuplicateAppend`` (seq already written) or
        ``RunNotFound``."""

    @abstractmethod
    async def close(self, lease: Lease, terminal: str) -> RunStatus:
        """End the run with ``terminal``; it stays replayable for ``replay_ttl``. Idempotent for the
        same lease; raises ``LeaseLost`` for a superseded one."""

    @abstractmethod
    async def status(self, run: str) -> RunStatus | None:
        """The run's status, or None when it is unknown or expired."""

    @abstractmethod
    async def expire(self, run: str, ttl: float) -> None:
        """Forget the run ``ttl`` seconds from now (0: at once). Raises ``RunNotFound``."""

    @abstractmethod
    async def cancel(self, run: str, reason: str = "cancelled") -> bool:
        """Ask the run's producer, wherever it runs, to stop. True if this call made the request,
        False if one was made already or the run has ended. Raises ``RunNotFound``."""

    @abstractmethod
    async def runs(self, limit: int = 50) -> list[RunStatus]:
        """The most recently created runs that are still in the store, newest first."""

    @abstractmethod
    async def _range(self, run: str, after: int, limit: int, *, live: bool = False) -> list[LogEntry]:
        """Up to ``limit`` entries with ``seq > after``, in order (the earliest kept first).
        ``live``: a follower asks; a store with a fan-out may answer from what it has seen."""

    async def aclose(self) -> None:  # noqa: B027
        """Release connections and background tasks."""

    # -- shared behaviour ------------------------------------------------------------------------

    async def cancelled(self, run: str) -> str:
        """Wait until a cancel of ``run`` is requested (from any process); return its reason."""
        self._watch_control(run)
        try:
            while True:
                fut = self._cancel_waiters.add(run)
                try:
                    status = await self.status(run)
                    if status is not None and status.cancel_requested is not None:
                        return status.cancel_requested
                    await asyncio.wait_for(asyncio.shield(fut), self.poll_interval or None)
                except TimeoutError:
                    pass
                finally:
                    self._cancel_waiters.discard(run, fut)
        finally:
            self._unwatch_control(run)

    async def read(
        self, run: str, after: int = 0, *, follow: bool = False, heartbeat: float | None = None
    ) -> AsyncIterator[ReadItem]:
        """The entries after ``after`` (see the module docstring). Raises ``RunNotFound`` at once
        for an unknown run; a run that expires while followed just ends the iteration."""
        if await self.status(run) is None:
            raise RunNotFound(run)
        if not follow:
            async for item in self._snapshot(run, after):
                yield item
            return
        cursor, live, last_yield = after, True, time.monotonic()
        self._watch(run, after)
        try:
            while True:
                # Register for the wake-up before looking, so an append in between is not missed.
                fut = self._waiters.add(run)
                try:
                    batch = await self._range(run, cursor, _PAGE, live=live)
                    live = True
                    if batch:
                        if batch[0].seq != cursor + 1:
                            yield Resync(run=run, earliest=batch[0].seq)
                        for entry in batch:
                            yield entry
                            cursor = entry.seq
                        last_yield = time.monotonic()
                        continue
                    if not (live and self._caught_up(run, cursor)):
                        status = await self.status(run)
                        if status is None or (status.ended and cursor >= status.last_seq):
                            return
                        if status.last_seq > cursor:  # written but not seen here: ask the store itself
                            live = False
                            continue
                    idle_left = None if heartbeat is None else heartbeat - (time.monotonic() - last_yield)
                    if idle_left is not None and idle_left <= 0:
                        yield HEARTBEAT
                        last_yield = time.monotonic()
                        continue
                    steps = [x for x in (idle_left, self.poll_interval or None) if x is not None]
                    try:
                        await asyncio.wait_for(asyncio.shield(fut), min(steps) if steps else None)
                    except TimeoutError:
                        live = False  # a writer in another process may not have woken us
                finally:
                    self._waiters.discard(run, fut)
        finally:
            self._unwatch(run)

    async def _snapshot(self, run: str, after: int) -> AsyncIterator[ReadItem]:
        cursor = after
        while True:
            batch = await self._range(run, cursor, _PAGE, live=False)
            if not batch:
                return
            if batch[0].seq != cursor + 1:
                yield Resync(run=run, earliest=batch[0].seq)
            for entry in batch:
                yield entry
                cursor = entry.seq

    async def entries(self, run: str, after: int = 0) -> list[LogEntry]:
        """Every entry kept after ``after`` (no follow), for tests and tools."""
        return [item async for item in self.read(run, after) if isinstance(item, LogEntry)]

    def _caught_up(self, run: str, cursor: int) -> bool:
        """True when this process's fan-out has seen the run's log up to ``cursor`` and no end of it,
        so a follower may wait for the next wake-up without asking the store (it still asks after
        every ``poll_interval``). Stores without a fan-out say False."""
        return False

    def _notify(self, run: str) -> None:
        """Wake this process's readers of ``run``."""
        self._waiters.notify(run)

    def _notify_cancel(self, run: str) -> None:
        """Wake this process's waiters for a cancel of ``run``."""
        self._cancel_waiters.notify(run)

    def _watch(self, run: str, after: int) -> None:  # noqa: B027
        """A local reader follows ``run`` from ``after`` (stores with a shared fan-out subscribe here)."""

    def _unwatch(self, run: str) -> None:  # noqa: B027
        """The reader of :meth:`_watch` stopped."""

    def _watch_control(self, run: str) -> None:  # noqa: B027
        """A local producer waits for cancel requests of ``run``."""

    def _unwatch_control(self, run: str) -> None:  # noqa: B027
        """The waiter of :meth:`_watch_control` stopped."""
