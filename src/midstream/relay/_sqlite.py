"""The SQLite store, the embedded default: one file in WAL mode, shared by any number of processes.

Readers in this process are woken at once by the appends made here; readers in other processes look
at the file every ``poll_interval`` seconds (SQLite has no notifications). The statements are short
and run on the event loop's thread: an append is one conditional ``UPDATE`` and one ``INSERT`` in one
transaction, so a superseded lease or a re-sent seq can never write.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from midstream.relay.entry import LogEntry
from midstream.relay.errors import (
    DuplicateAppend,
    LeaseHeld,
    LeaseLost,
    RunClosed,
    RunExists,
    RunNotFound,
    StoreError,
)
from midstream.relay.log import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_REPLAY_TTL,
    DEFAULT_RUN_TTL,
    EventLog,
    Lease,
    RunStatus,
)

__all__ = ["SQLiteLog", "default_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run TEXT PRIMARY KEY, state TEXT NOT NULL, last INTEGER NOT NULL, terminal TEXT,
  created REAL NOT NULL, updated REAL NOT NULL, expires REAL, cancel TEXT,
  owner TEXT, generation INTEGER NOT NULL DEFAULT 0, lease_until REAL NOT NULL DEFAULT 0,
  meta TEXT NOT NULL DEFAULT '{}', tag TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE TABLE IF NOT EXISTS entries (
  run TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
  agent TEXT, parent TEXT, at REAL NOT NULL, PRIMARY KEY (run, seq)
) WITHOUT ROWID;
"""
_STATUS_COLUMNS = "run, state, last, terminal, created, updated, expires, cancel, owner, meta"
_TRIM_EVERY = 64


def default_path() -> Path:
    """``$XDG_STATE_HOME/midstream/relay.db`` (``~/.local/state/midstream/relay.db`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "midstream" / "relay.db"


def _status(row: tuple[Any, ...]) -> RunStatus:
    run, state, last, terminal, created, updated, expires, cancel, owner, meta = row
    return RunStatus(run, state, last, terminal, created, updated, expires, cancel, owner, json.loads(meta))


class SQLiteLog(EventLog):
    """:class:`~midstream.relay.log.EventLog` in a SQLite file (``sqlite:///path``); ``":memory:"``
    for a private in-memory database. The directory is created private to the user (0700)."""

    name: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        replay_ttl: float = DEFAULT_REPLAY_TTL,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_entries=max_entries, replay_ttl=replay_ttl)
        self.poll_interval = poll_interval
        self._clock = clock
        target = default_path() if path is None else path
        self.path = str(target)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            if self.path != ":memory:":
                os.chmod(self.path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            if "tag" not in columns:  # a file written before runs had tags
                self._db.execute("ALTER TABLE runs ADD COLUMN tag TEXT")
            self._db.execute("CREATE INDEX IF NOT EXISTS runs_tag ON runs (tag, created)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteLog({self.path!r})"

    async def aclose(self) -> None:
        self._db.close()

    def _row(self, run: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(
            f"SELECT {_STATUS_COLUMNS}, generation, lease_until FROM runs WHERE run = ?", (run,)
        ).fetchone()
        if row is not None and row[6] is not None and row[6] <= self._clock():
            self._drop(run)
            return None
        return row

    def _drop(self, run: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM entries WHERE run = ?", (run,))
            self._db.execute("DELETE FROM runs WHERE run = ?", (run,))
        self._notify(run)

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _need(self, run: str) -> tuple[Any, ...]:
        row = self._row(run)
        if row is None:
            raise RunNotFound(run)
        return row

    async def create(
        self,
        run: str,
        *,
        meta: Mapping[str, Any] | None = None,
        ttl: float = DEFAULT_RUN_TTL,
        tag: str | None = None,
    ) -> RunStatus:
        self._row(run)  # drops an expired run of the same id
        now = self._clock()
        try:
            self._db.execute(
                "INSERT INTO runs (run, state, last, created, updated, expires, meta, tag) "
                "VALUES (?, 'running', 0, ?, ?, ?, ?, ?)",
                (run, now, now, now + ttl, json.dumps(dict(meta or {})), tag),
            )
        except sqlite3.IntegrityError:
            raise RunExists(run) from None
        return _status(self._need(run)[:10])

    async def latest(self, tag: str) -> str | None:
        row = self._db.execute(
            "SELECT run FROM runs WHERE tag = ? AND (expires IS NULL OR expires > ?) "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (tag, self._clock()),
        ).fetchone()
        return None if row is None else str(row[0])

    async def acquire(self, run: str, owner: str, *, ttl: float = 30.0) -> Lease:
        with self._tx():
            row = self._need(run)
            if row[1] == "ended":
                raise RunClosed(run)
            now = self._clock()
            if row[8] not in (None, owner) and row[11] > now:
                raise LeaseHeld(run, row[8])
            generation = row[10] + 1
            self._db.execute(
                "UPDATE runs SET owner = ?, generation = ?, lease_until = ?, updated = ? WHERE run = ?",
                (owner, generation, now + ttl, now, run),
            )
        return Lease(run, owner, generation, row[2])

    async def renew(self, lease: Lease, *, ttl: float = 30.0) -> None:
        cur = self._db.execute(
            "UPDATE runs SET lease_until = ? WHERE run = ? AND generation = ?",
            (self._clock() + ttl, lease.run, lease.generation),
        )
        if cur.rowcount == 0:
            self._need(lease.run)
            raise LeaseLost(lease.run, lease.generation)

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
        seq = lease.seq + 1 if seq is None else seq
        now = self._clock()
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._tx():
            cur = self._db.execute(
                "UPDATE runs SET last = ?, updated = ? "
                "WHERE run = ? AND generation = ? AND state = 'running' AND last = ?",
                (seq, now, lease.run, lease.generation, seq - 1),
            )
            if cur.rowcount == 0:
                self._refuse(lease, seq)
            self._db.execute(
                "INSERT INTO entries (run, seq, kind, data, agent, parent, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lease.run, seq, kind, text, agent, parent, now),
            )
            if seq > self.max_entries and seq % _TRIM_EVERY == 0:
                self._db.execute(
                    "DELETE FROM entries WHERE run = ? AND seq <= ?", (lease.run, seq - self.max_entries)
                )
        lease.seq = seq
        self._notify(lease.run)
        return seq

    def _refuse(self, lease: Lease, seq: int) -> None:
        row = self._need(lease.run)
        if row[10] != lease.generation:
            raise LeaseLost(lease.run, lease.generation)
        if row[1] == "ended":
            raise RunClosed(lease.run)
        raise DuplicateAppend(lease.run, seq)

    async def close(self, lease: Lease, terminal: str) -> RunStatus:
        now = self._clock()
        with self._tx():
            row = self._need(lease.run)
            if row[10] != lease.generation:
                raise LeaseLost(lease.run, lease.generation)
            if row[1] != "ended":
                self._db.execute(
                    "UPDATE runs SET state = 'ended', terminal = ?, updated = ?, expires = ? WHERE run = ?",
                    (terminal, now, now + self.replay_ttl, lease.run),
                )
        self._notify(lease.run)
        self._notify_cancel(lease.run)
        return _status(self._need(lease.run)[:10])

    async def status(self, run: str) -> RunStatus | None:
        row = self._row(run)
        return None if row is None else _status(row[:10])

    async def expire(self, run: str, ttl: float) -> None:
        self._need(run)
        if ttl <= 0:
            self._drop(run)
            return
        self._db.execute("UPDATE runs SET expires = ? WHERE run = ?", (self._clock() + ttl, run))

    async def cancel(self, run: str, reason: str = "cancelled") -> bool:
        self._need(run)
        cur = self._db.execute(
            "UPDATE runs SET cancel = ?, updated = ? WHERE run = ? AND cancel IS NULL AND state = 'running'",
            (reason, self._clock(), run),
        )
        self._notify_cancel(run)
        return cur.rowcount == 1

    async def runs(self, limit: int = 50) -> list[RunStatus]:
        now = self._clock()
        rows = self._db.execute(
            f"SELECT {_STATUS_COLUMNS} FROM runs WHERE expires IS NULL OR expires > ? "
            "ORDER BY created DESC LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_status(row) for row in rows]

    async def _range(self, run: str, after: int, limit: int, *, live: bool = False) -> list[LogEntry]:
        rows = self._db.execute(
            "SELECT seq, kind, data, agent, parent, at FROM entries WHERE run = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (run, after, limit),
        ).fetchall()
        return [
            LogEntry(run=run, seq=s, kind=k, data=json.loads(d), agent=a, parent=p, at=t)
            for s, k, d, a, p, t in rows
        ]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), re-entrant for one connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._outer:
            return
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
