"""The blackboard: shared state of a workflow, written through streamed tool arguments.

Keys hold versioned values. A write may stream: :meth:`Blackboard.begin` opens a :class:`PendingWrite`
whose :meth:`~PendingWrite.feed` publishes **partial** updates (the JSON path and the text delta) to
subscribers as the value streams; :meth:`~PendingWrite.commit` stores the complete, validated value as
the next version and publishes it; :meth:`~PendingWrite.discard` tells subscribers to drop what they
were shown. The three roles of the notes:

* a writer (agent A) writes, and its update streams;
* a **subscriber** (agent B, a view) gets every update as it happens, partial ones marked ``partial``;
* a **reader** (agent C) gets the latest *complete* version with :meth:`Blackboard.read`, never a
  partial value: a value becomes readable only at its commit.

Conflicting writers use compare-and-set: ``commit(value, expect=n)`` (or ``write(..., expect=n)``)
stores version ``n + 1`` only while the key is still at version ``n`` (0: absent), else raises
:class:`VersionConflict` naming the version found. Without ``expect`` the last commit wins.

:class:`MemoryBlackboard` is in-process. ``midstream.relay.blackboard.RedisBlackboard`` keeps the same
contract on Redis, so agents in different processes share one board.

Example::

    board = MemoryBlackboard()
    updates = board.subscribe()                       # an async iterator of BlackboardUpdate
    pending = board.begin("architecture", writer="architect")
    pending.feed(("document",), "# Services\n")       # subscribers see it now, readers do not
    entry = await pending.commit({"document": "# Services\n..."}, expect=0)
    (await board.read("architecture")).version        # 1
"""

from __future__ import annotations

import asyncio
import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from midstream.core.partial_json import JsonPath
from midstream.errors import LocalError

__all__ = [
    "Blackboard",
    "BlackboardUpdate",
    "Entry",
    "MemoryBlackboard",
    "PendingWrite",
    "Subscription",
    "VersionConflict",
]

UpdateState = Literal["partial", "complete", "discarded"]


class VersionConflict(LocalError):
    """A compare-and-set commit found the key at another version than expected."""

    def __init__(self, key: str, expected: int, found: int) -> None:
        super().__init__(f"blackboard key {key!r} is at version {found}, not {expected}: read it again")
        self.key, self.expected, self.found = key, expected, found


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A complete version of a key: what readers get."""

    key: str
    version: int
    value: Any
    writer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlackboardUpdate:
    """What subscribers get. ``state``: ``partial`` (``path`` and the text ``delta`` of a streaming
    write; ``version`` is the one it will have if it commits now), ``complete`` (the committed
    ``value`` at ``version``) or ``discarded`` (the streaming write ``write_id`` will never commit)."""

    kind: ClassVar[Literal["blackboard"]] = "blackboard"
    key: str
    state: UpdateState
    version: int
    write_id: str
    writer: str | None = None
    path: tuple[str | int, ...] = ()
    delta: str = ""
    value: Any = None

    @property
    def partial(self) -> bool:
        """True for a piece of a value still streaming."""
        return self.state == "partial"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the path as a list)."""
        return {
            "key": self.key,
            "state": self.state,
            "version": self.version,
            "write_id": self.write_id,
            "writer": self.writer,
            "path": list(self.path),
            "delta": self.delta,
            "value": self.value,
        }


class Subscription:
    """An async iterator of updates; bounded (``max_pending``): a subscriber that falls that far behind
    loses its oldest partial updates first (complete ones are kept), and ``dropped`` counts them."""

    def __init__(self, board: Blackboard, keys: frozenset[str] | None, max_pending: int) -> None:
        self._board, self.keys, self.max_pending = board, keys, max_pending
        self._items: list[BlackboardUpdate] = []
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def wants(self, key: str) -> bool:
        """Whether this subscription follows ``key``."""
        return self.keys is None or key in self.keys

    def put(self, update: BlackboardUpdate) -> None:
        """Deliver one update (called by the board, on its event loop)."""
        if self._closed or not self.wants(update.key):
            return
        self._items.append(update)
        if len(self._items) > self.max_pending:
            drop = next((i for i, u in enumerate(self._items) if u.partial), 0)
            del self._items[drop]
            self.dropped += 1
        self._ready.set()

    def pending(self) -> list[BlackboardUpdate]:
        """Take every update delivered so far without waiting."""
        items, self._items = self._items, []
        self._ready.clear()
        return items

    def close(self) -> None:
        """Stop receiving; iteration ends once what was delivered is consumed."""
        self._closed = True
        self._board._unsubscribe(self)
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BlackboardUpdate:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            await self._ready.wait()
            if not self._items:
                self._ready.clear()
        item = self._items.pop(0)
        if not self._items:
            self._ready.clear()
        return item


class PendingWrite:
    """A write in progress (see the module docstring); one ``commit`` or ``discard`` ends it."""

    def __init__(self, board: Blackboard, key: str, write_id: str, writer: str | None) -> None:
        self.board, self.key, self.write_id, self.writer = board, key, write_id, writer
        self.state: Literal["open", "committed", "discarded"] = "open"

    def feed(self, path: JsonPath | Iterable[str | int], delta: str) -> None:
        """Publish a piece of the value at ``path`` to subscribers (readers do not see it)."""
        if self.state != "open":
            raise LocalError(f"PendingWrite.feed() after the write was {self.state}")
        if delta:
            self.board._publish_partial(self, tuple(path), delta)

    async def commit(self, value: Any, *, expect: int | None = None) -> Entry:
        """Store ``value`` as the key's next version (compare-and-set on ``expect`` when given)."""
        if self.state != "open":
            raise LocalError(f"PendingWrite.commit() after the write was {self.state}")
        try:
            entry = await self.board._commit(self.key, value, expect, self.writer, self.write_id)
        except VersionConflict:
            self.discard()
            raise
        self.state = "committed"
        return entry

    def discard(self) -> None:
        """The value will not be committed: subscribers are told to drop its partial updates."""
        if self.state != "open":
            return
        self.state = "discarded"
        self.board._publish_discard(self)


class Blackboard(ABC):
    """The blackboard contract (see the module docstring); subclasses store versions."""

    def __init__(self, *, max_pending: int = 10_000) -> None:
        self.max_pending = max_pending
        self._subscriptions: list[Subscription] = []
        self._writes = 0

    def subscribe(self, keys: Iterable[str] | None = None) -> Subscription:
        """Follow ``keys`` (default: every key) from now on."""
        sub = Subscription(self, None if keys is None else frozenset(keys), self.max_pending)
        self._subscriptions.append(sub)
        self._on_subscribe()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def _on_subscribe(self) -> None:  # noqa: B027 - a hook for stores that listen elsewhere
        pass

    def _deliver(self, update: BlackboardUpdate) -> None:
        for sub in list(self._subscriptions):
            sub.put(update)

    def begin(self, key: str, *, writer: str | None = None) -> PendingWrite:
        """Open a streaming write of ``key``."""
        if not key:
            raise LocalError("a blackboard key cannot be empty")
        self._writes += 1
        return PendingWrite(self, key, f"{id(self):x}-{self._writes}", writer)

    async def write(
        self, key: str, value: Any, *, expect: int | None = None, writer: str | None = None
    ) -> Entry:
        """Commit ``value`` in one step (no partial updates)."""
        return await self.begin(key, writer=writer).commit(value, expect=expect)

    @abstractmethod
    async def read(self, key: str) -> Entry | None:
        """The latest complete version of ``key`` (``None``: never written)."""

    @abstractmethod
    async def keys(self) -> list[str]:
        """Every key written so far, sorted."""

    @abstractmethod
    def _publish_partial(self, pending: PendingWrite, path: tuple[str | int, ...], delta: str) -> None: ...

    @abstractmethod
    def _publish_discard(self, pending: PendingWrite) -> None: ...

    @abstractmethod
    async def _commit(
        self, key: str, value: Any, expect: int | None, writer: str | None, write_id: str
    ) -> Entry: ...

    async def aclose(self) -> None:
        """Close every subscription (and any connection)."""
        for sub in list(self._subscriptions):
            sub.close()


class MemoryBlackboard(Blackboard):
    """An in-process blackboard. Values are deep-copied in and out: a reader cannot change what
    another reader gets."""

    def __init__(self, *, max_pending: int = 10_000) -> None:
        super().__init__(max_pending=max_pending)
        self._entries: dict[str, Entry] = {}

    async def read(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        return (
            None
            if entry is None
            else Entry(
                key=entry.key, version=entry.version, value=copy.deepcopy(entry.value), writer=entry.writer
            )
        )

    async def keys(self) -> list[str]:
        return sorted(self._entries)

    def version(self, key: str) -> int:
        """The key's current version (0: absent), synchronously."""
        entry = self._entries.get(key)
        return 0 if entry is None else entry.version

    def _publish_partial(self, pending: PendingWrite, path: tuple[str | int, ...], delta: str) -> None:
        self._deliver(
            BlackboardUpdate(
                key=pending.key,
                state="partial",
                version=self.version(pending.key) + 1,
                write_id=pending.write_id,
                writer=pending.writer,
                path=path,
                delta=delta,
            )
        )

    def _publish_discard(self, pending: PendingWrite) -> None:
        self._deliver(
            BlackboardUpdate(
                key=pending.key,
                state="discarded",
                version=self.version(pending.key),
                write_id=pending.write_id,
                writer=pending.writer,
            )
        )

    async def _commit(
        self, key: str, value: Any, expect: int | None, writer: str | None, write_id: str
    ) -> Entry:
        found = self.version(key)
        if expect is not None and expect != found:
            raise VersionConflict(key, expect, found)
        entry = Entry(key=key, version=found + 1, value=copy.deepcopy(value), writer=writer)
        self._entries[key] = entry
        self._deliver(
            BlackboardUpdate(
                key=key,
                state="complete",
                version=entry.version,
                write_id=write_id,
                writer=writer,
                value=value,
            )
        )
        return entry


@dataclass
class StreamedWrite:
    """Passes a streamed field's text to a :class:`PendingWrite`, holding it up to ``hold_ms`` (the
    settings' ``streaming.buffer_timeout_ms``) to pass it on in fewer, larger pieces. Text still held
    when the field ends goes out with :meth:`flush` (the commit never waits for a timer)."""

    pending: PendingWrite
    path: tuple[str | int, ...]
    hold_ms: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _held: list[str] = field(default_factory=list)
    _since: float | None = None

    def write(self, text: str) -> None:
        """One piece of the field's text."""
        if not text:
            return
        self._held.append(text)
        now = self.clock()
        if self._since is None:
            self._since = now
        if (now - self._since) * 1000 >= self.hold_ms:
            self.flush()

    def flush(self) -> None:
        """Publish what is held."""
        if self._held and self.pending.state == "open":
            self.pending.feed(self.path, "".join(self._held))
        self._held, self._since = [], None
