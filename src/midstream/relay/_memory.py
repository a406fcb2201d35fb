"""The memory store: one process, a ring buffer per run, in-process wake-ups. For tests and ``serve``
without persistence; everything is lost when the process ends."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from midstream.relay.entry import LogEntry
from midstream.relay.errors import DuplicateAppend, LeaseHeld, LeaseLost, RunClosed, RunExists, RunNotFound
from midstream.relay.log import DEFAULT_REPLAY_TTL, DEFAULT_RUN_TTL, EventLog, Lease, RunStatus

__all__ = ["MemoryLog"]

DEFAULT_MEMORY_ENTRIES = 10_000


@dataclass(slots=True)
class _Run:
    status: RunStatus
    entries: deque[LogEntry]
    generation: int = 0
    lease_until: float = 0.0
    order: int = 0


class MemoryLog(EventLog):
    """:class:`~midstream.relay.log.EventLog` in this process's memory (``memory://``).

    ``clock`` (default ``time.time``) is injectable so tests can expire runs without sleeping.
    """

    name: ClassVar[str] = "memory"

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MEMORY_ENTRIES,
        replay_ttl: float = DEFAULT_REPLAY_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_entries=max_entries, replay_ttl=replay_ttl)
        self._runs: dict[str, _Run] = {}
        self._tags: dict[str, str] = {}
        self._clock = clock
        self._created = 0

    def __repr__(self) -> str:
        return f"MemoryLog(runs={len(self._runs)})"

    def _get(self, run: str) -> _Run:
        found = self._runs.get(run)
        if found is None:
            raise RunNotFound(run)
        expires = found.status.expires_at
        if expires is not None and expires <= self._clock():
            del self._runs[run]
            self._notify(run)
            raise RunNotFound(run)
        return found

    def _owned(self, lease: Lease) -> _Run:
        r = self._get(lease.run)
        if r.generation != lease.generation:
            raise LeaseLost(lease.run, lease.generation)
        return r

    def _set(self, r: _Run, **changes: Any) -> None:
        r.status = replace(r.status, updated_at=self._clock(), **changes)

    async def create(
        self,
        run: str,
        *,
        meta: Mapping[str, Any] | None = None,
        ttl: float = DEFAULT_RUN_TTL,
        tag: str | None = None,
    ) -> RunStatus:
        try:
            self._get(run)
        except RunNotFound:
            pass
        else:
            raise RunExists(run)
        now = self._clock()
        status = RunStatus(
            run, "running", 0, created_at=now, updated_at=now, expires_at=now + ttl, meta=dict(meta or {})
        )
        self._created += 1
        self._runs[run] = _Run(status, deque(maxlen=self.max_entries), order=self._created)
        if tag is not None:
            self._tags[tag] = run
        return status

    async def latest(self, tag: str) -> str | None:
        run = self._tags.get(tag)
        if run is None or await self.status(run) is None:
            self._tags.pop(tag, None)
            return None
        return run

    async def acquire(self, run: str, owner: str, *, ttl: float = 30.0) -> Lease:
        r = self._get(run)
        if r.status.ended:
            raise RunClosed(run)
        now = self._clock()
        if r.status.owner not in (None, owner) and r.lease_until > now:
            raise LeaseHeld(run, r.status.owner or "")
        r.generation += 1
        r.lease_until = now + ttl
        self._set(r, owner=owner)
        return Lease(run, owner, r.generation, r.status.last_seq)

    async def renew(self, lease: Lease, *, ttl: float = 30.0) -> None:
        self._owned(lease).lease_until = self._clock() + ttl

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
        r = self._owned(lease)
        if r.status.ended:
            raise RunClosed(lease.run)
        seq = lease.seq + 1 if seq is None else seq
        if seq != r.status.last_seq + 1:
            raise DuplicateAppend(lease.run, seq)
        now = self._clock()
        r.entries.append(
            LogEntry(run=lease.run, seq=seq, kind=kind, data=data, agent=agent, parent=parent, at=now)
        )
        self._set(r, last_seq=seq)
        lease.seq = seq
        self._notify(lease.run)
        return seq

    async def close(self, lease: Lease, terminal: str) -> RunStatus:
        r = self._owned(lease)
        if not r.status.ended:
            self._set(r, state="ended", terminal=terminal, expires_at=self._clock() + self.replay_ttl)
            self._notify(lease.run)
            self._notify_cancel(lease.run)
        return r.status

    async def status(self, run: str) -> RunStatus | None:
        try:
            return self._get(run).status
        except RunNotFound:
            return None

    async def expire(self, run: str, ttl: float) -> None:
        r = self._get(run)
        self._set(r, expires_at=self._clock() + ttl)
        if ttl <= 0:
            del self._runs[run]
            self._notify(run)

    async def cancel(self, run: str, reason: str = "cancelled") -> bool:
        r = self._get(run)
        if r.status.ended or r.status.cancel_requested is not None:
            return False
        self._set(r, cancel_requested=reason)
        self._notify_cancel(run)
        return True

    async def runs(self, limit: int = 50) -> list[RunStatus]:
        now = self._clock()
        alive = [r for r in self._runs.values() if r.status.expires_at is None or r.status.expires_at > now]
        alive.sort(key=lambda r: r.order, reverse=True)
        return [r.status for r in alive[:limit]]

    async def _range(self, run: str, after: int, limit: int, *, live: bool = False) -> list[LogEntry]:
        entries = self._get(run).entries
        if not entries:
            return []
        first = entries[0].seq
        start = max(0, after + 1 - first)
        return [entries[i] for i in range(start, min(len(entries), start + limit))]
