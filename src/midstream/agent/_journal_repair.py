"""Checking and repairing an effects journal on disk (``midstream journal check`` / ``repair``).

A repair never forgets an effect it can still name: in a JSON-lines journal each damaged line is
replaced by a marker that keeps its text, and a marker whose text holds an idempotency key makes that
effect *uncertain* (see :class:`~midstream.agent.effects.JsonlJournal`). An SQLite journal is copied
row by row into a fresh file; rows SQLite cannot read any more are counted and reported. The damaged
original is kept next to the file as ``<name>.bak`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from midstream.agent._journal import (
    _COLUMNS,
    _SCHEMA,
    JournalDamage,
    _from_row,
    _parse_line,
    damage_marker,
    is_sqlite_path,
    scan_jsonl,
)

__all__ = ["JournalReport", "check_journal", "repair_journal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalReport:
    """What :func:`check_journal` found (or :func:`repair_journal` left).

    ``records`` counts readable records, ``statuses`` their statuses; ``uncertain`` lists the keys
    whose newest record is ``started`` (a run stopped during the effect); ``damage`` the damaged JSON
    lines (a torn last line included); ``repaired`` the lines already replaced by markers;
    ``problems`` what SQLite reported; ``lost`` the rows a repair could not read; ``backup`` where a
    repair kept the original.
    """

    path: str
    kind: Literal["jsonl", "sqlite"]
    records: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()
    damage: tuple[JournalDamage, ...] = ()
    repaired: int = 0
    problems: tuple[str, ...] = ()
    lost: int = 0
    backup: str | None = None

    @property
    def ok(self) -> bool:
        """True when a run may use the journal as it is (a torn last line is a crash's normal trace)."""
        return not self.problems and all(d.torn for d in self.damage)

    def lines(self) -> list[str]:
        """The report as lines of text for a terminal."""
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items())) or "none"
        out = [f"{self.path} ({self.kind}): {self.records} records ({counts})"]
        for damage in self.damage:
            what = "torn by a crash (its effect is uncertain)" if damage.torn else "damaged"
            out.append(f"  line {damage.line}: {what}: {damage.reason}")
        out.extend(f"  {problem}" for problem in self.problems)
        if self.repaired:
            out.append(f"  {self.repaired} line(s) repaired earlier: their effects count as uncertain")
        if self.uncertain:
            out.append(f"  {len(self.uncertain)} effect(s) uncertain: started, end never recorded")
        if self.lost:
            out.append(f"  {self.lost} row(s) could not be read: effects they recorded may run again")
        if self.backup:
            out.append(f"  the original is kept at {self.backup}")
        out.append("  ok: a run may use it" if self.ok else "  damaged: run `midstream journal repair`")
        return out


def check_journal(path: str | os.PathLike[str]) -> JournalReport:
    """Read the whole journal at ``path`` and report on it; nothing is written. A missing file is an
    ``OSError``."""
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such journal file")
    if is_sqlite_path(target):
        return _check_sqlite(target)
    statuses: Counter[str] = Counter()
    latest: dict[str, str] = {}
    damage: list[JournalDamage] = []
    repaired = 0
    for item in scan_jsonl(target):
        if isinstance(item, JournalDamage):
            if item.marked:
                repaired += 1
            else:
                damage.append(item)
            record = item.as_record()
            if record is not None:
                latest[record.idempotency_key] = "started"
            continue
        statuses[item.status] += 1
        latest[item.idempotency_key] = item.status
    uncertain = tuple(key for key, status in latest.items() if status == "started")
    return JournalReport(
        path=str(target),
        kind="jsonl",
        records=sum(statuses.values()),
        statuses=dict(statuses),
        uncertain=uncertain,
        damage=tuple(damage),
        repaired=repaired,
    )


def repair_journal(path: str | os.PathLike[str]) -> JournalReport:
    """Make the journal at ``path`` readable again, keeping what can be kept (see the module docs);
    returns the report of the repaired file, with ``backup`` (and ``lost`` for SQLite)."""
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such journal file")
    backup = target.with_name(target.name + ".bak")
    _copy_private(target, backup)
    if is_sqlite_path(target):
        lost = _repair_sqlite(target)
        report = _check_sqlite(target)
        return _with(report, backup=str(backup), lost=lost)
    with _staged(target) as out, target.open("rb") as source:
        offset = 0
        for number, raw in enumerate(source, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            item = _parse_line(raw, number, start)
            if isinstance(item, JournalDamage) and not item.marked:
                out.write(damage_marker(item).encode("utf-8") + b"\n")
            else:
                out.write(raw.rstrip(b"\r\n") + b"\n")
    return _with(check_journal(target), backup=str(backup))


def _with(report: JournalReport, **changes: Any) -> JournalReport:
    fields = {name: getattr(report, name) for name in JournalReport.__dataclass_fields__}
    fields.update(changes)
    return JournalReport(**fields)


def _copy_private(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as inp:
        while chunk := inp.read(1 << 20):
            out.write(chunk)


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Any]:
    """A 0600 file next to ``target`` that replaces it atomically when the block ends well."""
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _check_sqlite(path: Path) -> JournalReport:
    problems: list[str] = []
    statuses: Counter[str] = Counter()
    latest: dict[str, str] = {}
    try:
        db = _read_only(path)
    except sqlite3.DatabaseError as exc:
        return JournalReport(path=str(path), kind="sqlite", problems=(f"SQLite cannot open it: {exc}",))
    with contextlib.closing(db):
        try:
            verdict = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
            if verdict != ["ok"]:
                problems.extend(f"integrity: {line}" for line in verdict[:20])
            for row in db.execute(f"SELECT {_COLUMNS} FROM effects ORDER BY seq"):
                record = _from_row(row)
                statuses[record.status] += 1
                latest[record.idempotency_key] = record.status
        except (sqlite3.DatabaseError, ValueError) as exc:
            problems.append(f"SQLite: {exc}")
    uncertain = tuple(key for key, status in latest.items() if status == "started")
    return JournalReport(
        path=str(path),
        kind="sqlite",
        records=sum(statuses.values()),
        statuses=dict(statuses),
        uncertain=uncertain,
        problems=tuple(problems),
    )


def _salvage(path: Path) -> tuple[list[tuple[Any, ...]], int]:
    """The rows of the damaged database that can still be read (with their ``seq``), and how many
    could not."""
    rows: list[tuple[Any, ...]] = []
    try:
        db = _read_only(path)
    except sqlite3.DatabaseError:
        return rows, 0
    with contextlib.closing(db):
        try:
            top = db.execute("SELECT max(seq) FROM effects").fetchone()[0] or 0
        except sqlite3.DatabaseError:
            try:
                top = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'effects'").fetchone()[0]
            except (sqlite3.DatabaseError, TypeError):
                return rows, 0
        lost = 0
        query = f"SELECT seq, {_COLUMNS} FROM effects WHERE seq = ?"
        for seq in range(1, int(top) + 1):
            try:
                row = db.execute(query, (seq,)).fetchone()
                if row is not None:
                    _from_row(row[1:])
                    rows.append(row)
            except (sqlite3.DatabaseError, ValueError):
                lost += 1
    return rows, lost


def _repair_sqlite(path: Path) -> int:
    rows, lost = _salvage(path)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(staging, isolation_level=None)) as db:
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            db.executemany(
                f"INSERT INTO effects (seq, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            db.execute("COMMIT")
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    for suffix in ("-journal", "-wal", "-shm"):  # they belonged to the damaged file
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return lost
