"""Effect records and the journals that keep them (see :mod:`midstream.agent.effects`, which exports
every public name here)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, get_args, runtime_checkable

from midstream.errors import LocalError

__all__ = [
    "EFFECT_STATUSES",
    "IN_PLACE",
    "EffectRecord",
    "EffectStatus",
    "Journal",
    "JournalDamage",
    "JournalError",
    "JsonlJournal",
    "MemoryJournal",
    "SqliteJournal",
    "idempotency_key",
    "is_sqlite_path",
    "open_journal",
    "scan_jsonl",
    "to_jsonable",
]

log = logging.getLogger("midstream.agent.effects")

EffectStatus = Literal["started", "done", "failed", "compensated", "compensation_failed"]
EFFECT_STATUSES: tuple[EffectStatus, ...] = get_args(EffectStatus)


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

    def load(self) -> None:
        """Read the whole journal now (it builds the key index): a damaged one raises
        :class:`JournalError` here rather than at the first tool call."""
        with self._lock:
            self._load_index()

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

    The file is created ``0600`` (it holds every tool input and result). Each record is written with
    one ``write`` and flushed (``fsync=True`` also syncs it to disk). The key index is built from the
    file once, then kept up to date by this object's appends: one writing process per file.

    Damage is told apart from a crash:

    * a **torn last line** (no newline, does not parse) is what a crash during a write leaves. Its
      effect is *uncertain*: the record is read as ``started`` for the idempotency key found in the
      torn text, so a re-run asks the tool's policy (an ``idempotent`` tool runs again, any other is
      reported ``uncertain``), never silently re-runs it. :attr:`torn` describes the line. The next
      append replaces the torn text by a ``{"damaged": ...}`` marker line that keeps it.
    * **any other damage** (a complete line that does not parse, invalid UTF-8, a wrong shape) raises
      :class:`JournalError` naming the file and line; nothing runs on such a journal until
      ``midstream journal repair`` (:func:`repair_journal`) turned each damaged line into a marker.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.torn: JournalDamage | None = None
        self._torn_at: int | None = None
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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            handle = os.fdopen(fd, "a", encoding="utf-8")
            if self._torn_at is not None and self.torn is not None:
                # Seal the crash's torn line: keep its text in a marker, so the file parses again.
                handle.flush()
                os.truncate(fd, self._torn_at)
                handle.write(damage_marker(self.torn) + "\n")
                handle.flush()
                self._torn_at = None
            elif self._ends_without_newline():
                handle.write("\n")
            self._file = handle
        return self._file

    def _ends_without_newline(self) -> bool:
        with self.path.open("rb") as raw:
            raw.seek(0, os.SEEK_END)
            if raw.tell() == 0:
                return False
            raw.seek(-1, os.SEEK_END)
            return raw.read(1) != b"\n"

    def records(self) -> Iterator[EffectRecord]:
        """Every record in the file, oldest first, one line at a time (a damaged line whose key can
        be read comes out as an uncertain ``started`` record; see the class docs)."""
        if self._file is not None:
            self._file.flush()
        for item in scan_jsonl(self.path):
            if isinstance(item, JournalDamage):
                if item.torn:
                    if self._file is None:
                        self.torn, self._torn_at = item, item.offset
                    log.warning(
                        "%s: line %d was torn by a crash: its effect is uncertain", self.path, item.line
                    )
                elif not item.marked:
                    raise JournalError(str(self.path), item.line, item.reason)
                record = item.as_record()
                if record is not None:
                    yield record
            else:
                yield item

    def close(self) -> None:
        """Close the file (it reopens on the next append)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class JournalError(LocalError, ValueError):
    """A journal is damaged beyond a torn last line (or is not a journal at all). ``path`` names the
    file, ``line`` the first damaged line (``None`` for SQLite). Nothing runs on it until
    ``midstream journal check PATH`` / ``midstream journal repair PATH`` dealt with it."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = path if line is None else f"{path}, line {line}"
        super().__init__(
            f"{where}: the effects journal is damaged ({reason}); "
            f"run `midstream journal check {path}`, then `midstream journal repair {path}`"
        )
        self.path = path
        self.line = line
        self.reason = reason


_MARKER = "damaged"
_TEXT_CAP = 4096


@dataclass(frozen=True, slots=True)
class JournalDamage:
    """A line of a JSON-lines journal that is not a record: ``line`` (1-based), ``offset`` (bytes),
    ``reason``, the ``text`` (decoded leniently, at most 4 KiB), ``torn`` when it is the last line
    and has no newline (a crash's signature), ``marked`` when it is a repaired line's marker."""

    line: int
    offset: int
    reason: str
    text: str
    torn: bool = False
    marked: bool = False

    def as_record(self) -> EffectRecord | None:
        """The uncertain ``started`` record this damage stands for, when the text names a key."""
        fields = {name: _field(self.text, name) for name in ("call_id", "tool", "idempotency_key", "run_id")}
        key = fields["idempotency_key"]
        if not key:
            return None
        return EffectRecord(
            call_id=fields["call_id"] or "?",
            tool=fields["tool"] or "?",
            idempotency_key=key,
            status="started",
            error=f"journal line {self.line} is damaged ({self.reason}): the effect's end is unknown",
            run_id=fields["run_id"],
        )


def _field(text: str, name: str) -> str | None:
    match = re.search(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match is None:
        return None
    try:
        value = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def damage_marker(damage: JournalDamage) -> str:
    """The marker line that stands for a damaged line once sealed or repaired (its text kept)."""
    body = {_MARKER: damage.text, "line": damage.line, "reason": damage.reason, "torn": damage.torn}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def scan_jsonl(path: Path) -> Iterator[EffectRecord | JournalDamage]:
    """Each line of a JSON-lines journal as a record or as :class:`JournalDamage` (markers too),
    oldest first; a missing file has none."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            item = _parse_line(raw, number, start)
            if isinstance(item, JournalDamage) and not item.marked and not raw.endswith(b"\n"):
                item = dataclasses.replace(item, torn=True)
            yield item


def _parse_line(raw: bytes, number: int, offset: int) -> EffectRecord | JournalDamage:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lenient = raw.decode("utf-8", "replace")[:_TEXT_CAP]
        return JournalDamage(number, offset, f"invalid UTF-8 at byte {exc.start}", lenient)
    try:
        data = json.loads(text)
    except ValueError as exc:
        return JournalDamage(number, offset, f"not JSON: {exc}", text.rstrip("\n")[:_TEXT_CAP])
    if isinstance(data, dict) and _MARKER in data:
        reason = str(data.get("reason", "damaged"))
        line = data.get("line")
        return JournalDamage(
            line if isinstance(line, int) else number, offset, reason, str(data[_MARKER]), marked=True
        )
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return EffectRecord.from_json(data)
    except ValueError as exc:
        return JournalDamage(number, offset, f"not an effect record: {exc}", text.rstrip("\n")[:_TEXT_CAP])


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
            # Created 0600 before SQLite opens it: its rollback journal and WAL files copy the mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            with self._guard():
                self._db.executescript(_SCHEMA)
        except JournalError:
            self._db.close()
            raise

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's damage errors into a :class:`JournalError` naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise JournalError(self.path, None, f"SQLite: {exc}") from exc

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
        with self._lock, self._guard():
            self._db.execute(f"INSERT INTO effects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def latest(self, key: str) -> EffectRecord | None:
        """The newest record with idempotency key ``key``."""
        with self._lock, self._guard():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM effects WHERE idempotency_key = ? ORDER BY seq DESC LIMIT 1", (key,)
            ).fetchone()
        try:
            return None if row is None else _from_row(row)
        except ValueError as exc:
            raise JournalError(self.path, None, f"a row of key {key}: {exc}") from None

    def already_done(self, key: str) -> EffectRecord | None:
        """The newest record for ``key`` if its effect is in place (done, or compensation failed)."""
        record = self.latest(key)
        return record if record is not None and record.status in IN_PLACE else None

    def records(self) -> Iterator[EffectRecord]:
        """Every record, oldest first, fetched ``batch`` rows at a time."""
        last = 0
        while True:
            with self._lock, self._guard():
                query = f"SELECT seq, {_COLUMNS} FROM effects WHERE seq > ? ORDER BY seq LIMIT ?"
                rows = self._db.execute(query, (last, self.batch)).fetchall()
            if not rows:
                return
            for row in rows:
                last = row[0]
                try:
                    yield _from_row(row[1:])
                except ValueError as exc:
                    raise JournalError(self.path, None, f"row {last}: {exc}") from None

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
    """A journal for ``path``: SQLite for ``.db`` / ``.sqlite`` / ``.sqlite3``, JSON lines otherwise.

    The file is read at once: a damaged journal raises :class:`JournalError` here, before a run starts.
    """
    if is_sqlite_path(path):
        return SqliteJournal(path)
    journal = JsonlJournal(path)
    journal.load()
    return journal


def is_sqlite_path(path: str | Path) -> bool:
    """True when :func:`open_journal` stores ``path`` in SQLite (by its suffix)."""
    return str(path) == ":memory:" or Path(path).suffix.lower() in (".db", ".sqlite", ".sqlite3")
