"""What both adapters share: the translator protocol, replay from a cursor, and SSE framing.

An adapter turns the payloads of one run's log (:meth:`midstream.relay.entry.LogEntry.payload`, in seq
order) into a client protocol's chunks. It is a pure, deterministic function of the log read so far,
so a reader that reconnects is served by running a fresh adapter over the log again and skipping what
it already has: by cursor (``after``: the SSE id of the last chunk it saw) or by chunk count
(``skip``, the AI SDK workflow transport's ``startIndex``).

Cursors are exact at chunk granularity. One log entry may produce several chunks: the last chunk of an
entry has the SSE id ``<seq>`` (so ``after=<seq>`` works like the native log's ``Last-Event-ID``);
the chunks before it have ``<seq>.<n>`` (n from 1), so a connection cut between two chunks of one entry
resumes with neither a gap nor a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Protocol

from midstream.relay.entry import LogEntry
from midstream.relay.log import Heartbeat, Resync

__all__ = [
    "PING",
    "Chunk",
    "Entry",
    "Translator",
    "areplay",
    "parse_cursor",
    "replay",
    "sse_body",
    "sse_event",
]

Chunk = dict[str, Any]
"""One protocol chunk or event: a JSON object."""

Entry = LogEntry | Mapping[str, Any]
"""A log entry, or its payload (:meth:`LogEntry.payload`, e.g. as read back from JSON)."""


def _payload(entry: Entry) -> Mapping[str, Any]:
    return entry.payload() if isinstance(entry, LogEntry) else entry


class Translator(Protocol):
    """A stateful translator of one run's log: ``feed`` each payload in seq order, ``close`` at the end
    of a log that stopped without its ``run_end``."""

    @property
    def finished(self) -> bool:
        """True once the stream is complete: nothing may follow."""
        ...

    def feed(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """The chunks one log payload produces (possibly none)."""
        ...

    def close(self) -> list[Chunk]:
        """The chunks that end a stream whose log ended without ``run_end``."""
        ...

    def lost(self, earliest: int, run: str = "run") -> list[Chunk]:
        """The chunks that end a stream whose log lost its start (entries of ``run`` before
        ``earliest`` were trimmed): the message cannot be rebuilt, so it ends with an error instead of
        a silent gap."""
        ...


def parse_cursor(value: str | int | None) -> tuple[int, int]:
    """``(seq, n)`` for an SSE id or ``?after=`` value: ``"12"`` -> ``(12, 0)`` (all of entry 12 seen),
    ``"12.2"`` -> ``(12, 2)`` (its first two chunks seen); ``None`` or ``""`` -> ``(0, 0)``.

    >>> parse_cursor("12.2"), parse_cursor(7), parse_cursor(None)
    ((12, 2), (7, 0), (0, 0))
    """
    if value is None or value == "":
        return (0, 0)
    text = str(value).strip()
    seq, _, part = text.partition(".")
    try:
        out = (int(seq), int(part) if part else 0)
    except ValueError:
        raise ValueError(f"not a stream cursor: {value!r} (expected <seq> or <seq>.<n>)") from None
    if out[0] < 0 or out[1] < 0:
        raise ValueError(f"not a stream cursor: {value!r} (negative)")
    return out


def _ids(seq: int, chunks: list[Chunk]) -> Iterator[tuple[str, int, Chunk]]:
    last = len(chunks)
    for n, chunk in enumerate(chunks, 1):
        yield (str(seq) if n == last else f"{seq}.{n}"), n, chunk


class _Cursor:
    def __init__(self, after: str | int | None, skip: int) -> None:
        if skip < 0:
            raise ValueError("skip counts chunks from the start: it cannot be negative")
        self.seq, self.part = parse_cursor(after)
        self.skip, self.seen = skip, 0

    def keep(self, seq: int, n: int) -> bool:
        if seq < self.seq or (seq == self.seq and (self.part == 0 or n <= self.part)):
            return False
        self.seen += 1
        return self.seen > self.skip

    def kept(self, seq: int, chunks: list[Chunk]) -> list[tuple[str, Chunk]]:
        """``(sse_id, chunk)`` for the chunks of entry ``seq`` a reader at this cursor has not seen."""
        return [(sse_id, chunk) for sse_id, n, chunk in _ids(seq, chunks) if self.keep(seq, n)]

    def feed(self, translator: Translator, entry: Entry, seq: int) -> tuple[int, list[tuple[str, Chunk]]]:
        """Translate one entry (``seq`` is the previous entry's): its seq and what the reader gets."""
        payload = _payload(entry)
        seq = int(payload.get("seq", seq + 1))
        return seq, self.kept(seq, translator.feed(payload))


def replay(
    translator: Translator,
    payloads: Iterable[Entry],
    *,
    after: str | int | None = None,
    skip: int = 0,
    close: bool = False,
) -> Iterator[tuple[str, Chunk]]:
    """``(sse_id, chunk)`` for every chunk of ``payloads`` that a reader at the cursor has not seen.

    ``after`` drops the chunks up to that SSE id (see :func:`parse_cursor`); ``skip`` then drops the
    first ``skip`` chunks that remain. ``close=True`` ends a log that stopped without ``run_end``. The
    translator must be fresh: resume is replay + skip.
    """
    cursor = _Cursor(after, skip)
    seq = 0
    for entry in payloads:
        seq, kept = cursor.feed(translator, entry, seq)
        yield from kept
    if close and not translator.finished:
        seq += 1  # the closing chunks follow the last entry
        yield from cursor.kept(seq, translator.close())


async def areplay(
    translator: Translator,
    payloads: AsyncIterable[Entry],
    *,
    after: str | int | None = None,
    skip: int = 0,
) -> AsyncIterator[tuple[str, Chunk]]:
    """:func:`replay` over an async source (a log read with ``follow``); stops once the translator
    finished, so a follow read ends with the protocol's own ending."""
    cursor = _Cursor(after, skip)
    seq = 0
    async for entry in payloads:
        seq, kept = cursor.feed(translator, entry, seq)
        for item in kept:
            yield item
        if translator.finished:
            return


PING = b": ping\n\n"
"""An SSE comment: keeps an idle connection open; every SSE parser skips it."""


async def sse_body(
    translator: Translator,
    items: AsyncIterable[Entry | Resync | Heartbeat],
    *,
    after: str | int | None = None,
    skip: int = 0,
    close: bool = False,
) -> AsyncIterator[bytes]:
    """The SSE bytes for what an :class:`~midstream.relay.log.EventLog` read yields: entries through
    the translator (as :func:`areplay`), a heartbeat as :data:`PING`, and a ``Resync`` (the log's
    start was trimmed: the message cannot be rebuilt) as the translator's :meth:`Translator.lost`.
    ``close=True`` ends a source that stopped before ``run_end`` (the run's log expired, or its
    producer died) with the translator's :meth:`Translator.close` chunks, so the protocol ends too;
    without it the body just stops, as a dropped connection would, and the client may resume."""
    cursor = _Cursor(after, skip)
    seq = 0
    async for item in items:
        if isinstance(item, Heartbeat):
            yield PING
            continue
        if isinstance(item, Resync):
            for chunk in translator.lost(item.earliest, item.run):
                yield sse_event(chunk)
            return
        seq, kept = cursor.feed(translator, item, seq)
        for sse_id, chunk in kept:
            yield sse_event(chunk, sse_id)
        if translator.finished:
            return
    if close and not translator.finished:
        for chunk in translator.close():
            yield sse_event(chunk)


def sse_event(chunk: Chunk, sse_id: str | None = None) -> bytes:
    """One SSE event: ``data: <json>`` and, when given, ``id: <sse_id>`` (clients that ignore ids, as
    the AI SDK and AG-UI clients do, are unaffected; a reader that keeps them can resume exactly).

    >>> sse_event({"type": "text-delta", "id": "t1", "delta": "Hi"}, "7")
    b'data: {"type":"text-delta","id":"t1","delta":"Hi"}\\nid: 7\\n\\n'
    """
    line = "data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) + "\n"
    if sse_id is not None:
        line += f"id: {sse_id}\n"
    return (line + "\n").encode()
