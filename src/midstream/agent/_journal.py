"""Effect records and the journals that keep them (see :mod:`midstream.agent.effects`, which exports
every public name here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, runtime_checkable

__all__ = [
    "EFFECT_STATUSES",
    "IN_PLACE",
    "EffectRecord",
    "EffectStatus",
    "Journal",
    "JsonlJournal",
    "MemoryJournal",
    "SqliteJournal",
    "idempotency_key",
    "open_journal",
    "to_jsonable",
]

log = logging.getLogger("midstream.agent.effects")

EffectStatus = Literal["started", "done", "failed", "compensated", "compensation_failed"]
EFFECT_STATUSES: tuple[EffectStatus, ...] = (
    "started",
    "done",
    "failed",
    "compensated",
    "compensation_failed",
)


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """One journal line: what happened to the effect with ``idempotency_key``, and when (epoch s).

    ``input`` is the call's JSON input; ``result`` the tool's result made JSON-safe (``done``);
    ``error`` the failure's text (``failed``, ``compensation_failed``).
    """

    call_id: str
    tool: str
    idempotency_key: str
    status: EffectStatus
    input: Any = None
    result: Any = None
    error: str | None = None
    time: float = 0.0
    run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (every field)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EffectRecord:
        """The record of :meth:`to_json`; raises ``ValueError`` on a wrong shape."""
        try:
            status = data["status"]
            if status not in EFFECT_STATUSES:
                raise ValueError(f"unknown effect status {status!r}")
            return cls(
                call_id=str(data["call_id"]),
                tool=str(data["tool"]),
                idempotency_key=str(data["idempotency_key"]),
                status=status,
                input=data.get("input"),
                result=data.get("result"),
                error=data.get("error"),
                time=float(data.get("time", 0.0)),
                run_id=data.get("run_id"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an effect record: {exc}") from None


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: pydantic models dumped, dataclasses as dicts, others ``str()``."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def idempotency_key(tool: str, input: Any) -> str:
    """A stable key for "this tool with this input": SHA-256 hex of the canonical JSON of both.

    Canonical means sorted keys and no insignificant whitespace, so the key does not depend on the
    order in which the model wrote the fields.
    """
    text = json.dumps([tool, input], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- journals ----------------------------------------------------------------------------------------


@runtime_checkable
class Journal(Protocol):
    """Where effect records persist. Methods are synchronous and safe to call from threads."""

    def append(self, record: EffectRecord) -> None:
        """Persist ``record`` (durable once this returns, as far as the store allows)."""

    def latest(self, key: str) -> EffectRecord | None:
        """The newest record with idempotency key ``key``."""

    def already_done(self, key: str) -> EffectRecord | None:
        """The newest record for ``key`` if the effect is in place (``done`` or
        ``compensation_failed``), else ``None``: a re-run skips such an effect."""

    def records(self) -> Iterator[EffectRecord]:
        """Every record, oldest first, read as a stream."""

    def close(self) -> None:
        """Release the store."""


IN_PLACE: frozenset[str] = frozenset({"done", "compensation_failed"})
"""Statuses meaning the effect is in place: a re-run must not do it again."""


class _IndexedJournal:
    """Shared logic: a lock and an index of the newest record per key."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._latest: dict[str, EffectRecord] | None = None

    def _load_index(self) -> dict[str, EffectRecord]:
        if self._latest is None:
            index: dict[str, EffectRecord] = {}
            for record in self.records():
                index[record.idempotency_key] = record
            self._latest = index
        return self._latest

    def records(self) -> Iterator[EffectRecord]:  # pragma: no cover - overridden
        raise NotImplementedError

    def latest(self, key: str) -> EffectRecord | None:
        """The newest record with idempotency key ``key``."""
        with self._lock:
            return self._load_index().get(key)

    def already_done(self, key: str) -> EffectRecord | None:
        """The newest record for ``key`` if its effect is in place (done, or compensation failed)."""
        record = self.latest(key)
        return record if record is not None and record.status in IN_PLACE else None

    def _remember(self, record: EffectRecord) -> None:
        self._load_index()[record.idempotency_key] = record

    def __enter__(self) -> _IndexedJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store."""


class MemoryJournal(_IndexedJournal):
    """A journal in memory: for tests, and for runs that need dedupe but no persistence."""

    def __init__(self) -> None:
        super().__init__()
        self._records: list[EffectRecord] = []

    def append(self, record: EffectRecord) -> None:
        """Keep ``record``."""
        with self._lock:
            self._records.append(record)
            self._remember(record)

    def records(self) -> Iterator[EffectRecord]:
        """Every record, oldest first."""
        with self._lock:
            snapshot = list(self._records)
        yield from snapshot


class JsonlJournal(_IndexedJournal):
    """A journal in a JSON-lines file, one :meth:`EffectRecord.to_json` object a line, appended.

    Each record is written with one ``write`` and flushed (``fsync=True`` also syncs it to disk). A
    last line torn by a crash is skipped when reading, and the next record starts on a fresh line.
    Lines that do not parse are skipped and counted in :attr:`skipped_lines`. The key index is built
    from the file once, then kept up to date by this object's appends: one writing process per file.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.skipped_lines = 0
        self._file: IO[str] | None = None

    def append(self, record: EffectRecord) -> None:
        """Append ``record`` as one line."""
        line = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._load_index()
            handle = self._open_for_append()
            handle.write(line)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
            self._remember(record)

    def _open_for_append(self) -> IO[str]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = self._ends_without_newline()
            self._file = self.path.open("a", encoding="utf-8")
            if torn:
                self._file.write("\n")
        return self._file

    def _ends_without_newline(self) -> bool:
        try:
            with self.path.open("rb") as raw:
                raw.seek(0, os.SEEK_END)
                if raw.tell() == 0:
                    return False
                raw.seek(-1, os.SEEK_END)
                return raw.read(1) != b"\n"
        except FileNotFoundError:
            return False

    def records(self) -> Iterator[EffectRecord]:
        """Every record in the file, oldest first, one line at a time."""
        if self._file is not None:
            self._file.flush()
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                record = self._parse(line)
                if record is not None:
                    yield record

    def _parse(self, line: str) -> EffectRecord | None:
        if not line.strip():
            return None
        try:
            return EffectRecord.from_json(json.loads(line))
        except ValueError:  # json.JSONDecodeError is a ValueError
            self.skipped_lines += 1
            log.warning("%s: skipping a journal line that does not parse", self.path)
            return None

    def close(self) -> None:
        """Close the file (it reopens on the next append)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    result TEXT,
    error TEXT,
    time REAL NOT NULL,
    run_id TEXT
);
CREATE INDEX IF NOT EXISTS effects_by_key ON effects (idempotency_key, seq);
"""
_COLUMNS = "call_id, tool, idempotency_key, status, input, result, error, time, run_id"


class SqliteJournal:
    """A journal in an SQLite database (a file, or ``":memory:"``), table ``effects``.

    Every append is its own committed transaction; lookups by key use an index; :meth:`records`
    streams rows in batches.
    """

    def __init__(self, path: str | Path, *, batch: int = 256) -> None:
        self.path = str(path)
        self.batch = batch
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def append(self, record: EffectRecord) -> None:
        """Insert ``record`` (committed when this returns)."""
        row = (
            record.call_id,
            record.tool,
            record.idempotency_key,
            record.status,
            json.dumps(record.input),
            json.dumps(record.result),
            record.error,
            record.time,
            record.run_id,
        )
        with self._lock:
            self._db.execute(f"INSERT INTO effects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def latest(self, key: str) -> EffectRecord | None:
        """The newest record with idempotency key ``key``."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM effects WHERE idempotency_key = ? ORDER BY seq DESC LIMIT 1", (key,)
            ).fetchone()
        return None if row is None else _from_row(row)

    def already_done(self, key: str) -> EffectRecord | None:
        """The newest record for ``key`` if its effect is in place (done, or compensation failed)."""
        record = self.latest(key)
        return record if record is not None and record.status in IN_PLACE else None

    def records(self) -> Iterator[EffectRecord]:
        """Every record, oldest first, fetched ``batch`` rows at a time."""
        last = 0
        while True:
            with self._lock:
                query = f"SELECT seq, {_COLUMNS} FROM effects WHERE seq > ? ORDER BY seq LIMIT ?"
                rows = self._db.execute(query, (last, self.batch)).fetchall()
            if not rows:
                return
            for row in rows:
                last = row[0]
                yield _from_row(row[1:])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _from_row(row: tuple[Any, ...]) -> EffectRecord:
    call_id, tool, key, status, input_json, result_json, error, at, run_id = row
    return EffectRecord.from_json(
        {
            "call_id": call_id,
            "tool": tool,
            "idempotency_key": key,
            "status": status,
            "input": json.loads(input_json) if input_json is not None else None,
            "result": json.loads(result_json) if result_json is not None else None,
            "error": error,
            "time": at,
            "run_id": run_id,
        }
    )


def open_journal(path: str | Path) -> Journal:
    """A journal for ``path``: SQLite for ``.db`` / ``.sqlite`` / ``.sqlite3``, JSON lines otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in (".db", ".sqlite", ".sqlite3") or str(path) == ":memory:":
        return SqliteJournal(path)
    return JsonlJournal(path)
