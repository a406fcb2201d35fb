"""The blackboard on Redis, through the relay's store: agents in different processes share one board.

Same contract as :class:`~midstream.workflow.blackboard.MemoryBlackboard` (partial updates for
subscribers, complete versions for readers, compare-and-set on the version). Keys, under the store's
prefix (``{board}`` keeps a board on one cluster slot)::

    ms:bb:{board}:v:<key>    hash: version, value (JSON), writer
    ms:bb:{board}:keys       set of the keys written
    ms:bb:{board}:updates    stream of updates (JSON), capped at about ``max_updates`` entries

A commit is one Lua script (check the version, store the value, append the ``complete`` update), so
two processes racing on one version cannot both win. Partial updates are appended in order by one
task per board object; a commit waits for the partial updates queued before it. Subscribers read the
updates stream with ``XREAD BLOCK`` (one task per board object) from the moment they subscribed.

Example::

    log = RedisLog("redis://127.0.0.1:6379/0")
    board = RedisBlackboard(log, board="release-42")
    flow = Workflow(agents, client=client, blackboard=board)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from functools import partial
from typing import Any

from midstream.errors import LocalError
from midstream.relay._redis import RedisLog
from midstream.relay.errors import StoreError
from midstream.workflow.blackboard import Blackboard, BlackboardUpdate, Entry, PendingWrite, VersionConflict

__all__ = ["RedisBlackboard"]

_COMMIT = """
local found = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= found then return {0, found} end
local v = found + 1
redis.call('HSET', KEYS[1], 'version', v, 'value', ARGV[2], 'writer', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
local u = cjson.decode(ARGV[5])
u['version'] = v
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'u', cjson.encode(u))
return {1, v}
"""
_PUBLISH = """
local found = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local u = cjson.decode(ARGV[1])
u['version'] = found + tonumber(ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'u', cjson.encode(u))
return found
"""


class RedisBlackboard(Blackboard):
    """A blackboard stored in Redis: give it the relay's :class:`~midstream.relay.RedisLog` (its
    connections and key prefix are shared) or a ``redis://`` URL."""

    def __init__(
        self,
        store: RedisLog | str,
        *,
        board: str = "default",
        max_updates: int = 10_000,
        max_pending: int = 10_000,
    ) -> None:
        super().__init__(max_pending=max_pending)
        if not board or "}" in board:
            raise LocalError(f"bad blackboard name {board!r}")
        self._own = isinstance(store, str)
        self.store = RedisLog(store) if isinstance(store, str) else store
        self.board, self.max_updates = board, max_updates
        self._base = f"{self.store.prefix}:bb:{{{board}}}"
        self._r = self.store._r
        self._commit_script = self._r.register_script(_COMMIT)
        self._publish_script = self._r.register_script(_PUBLISH)
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any], int] | None] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._position = "$"

    def __repr__(self) -> str:
        return f"RedisBlackboard({self.store.url!r}, board={self.board!r})"

    def _value_key(self, key: str) -> str:
        return f"{self._base}:v:{key}"

    @property
    def _updates(self) -> str:
        return f"{self._base}:updates"

    async def _do(self, make: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await make()
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self.store.url}: {exc}") from exc

    async def read(self, key: str) -> Entry | None:
        found = await self._do(lambda: self._r.hgetall(self._value_key(key)))
        if not found:
            return None
        return Entry(
            key=key,
            version=int(found["version"]),
            value=json.loads(found["value"]),
            writer=found.get("writer") or None,
        )

    async def keys(self) -> list[str]:
        return sorted(await self._do(lambda: self._r.smembers(f"{self._base}:keys")))

    # -- writes --------------------------------------------------------------------------------

    def _queue(self, key: str, update: dict[str, Any], bump: int) -> None:
        self._outbox.put_nowait((key, update, bump))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while not self._outbox.empty():
            item = self._outbox.get_nowait()
            try:
                if item is not None:
                    key, update, bump = item
                    keys = [self._value_key(key), self._updates]
                    args: list[str | int] = [json.dumps(update), bump, self.max_updates]
                    await self._do(partial(self._publish_script, keys=keys, args=args))
            finally:
                self._outbox.task_done()

    def _publish_partial(self, pending: PendingWrite, path: tuple[str | int, ...], delta: str) -> None:
        update = _update(
            pending.key, "partial", pending.write_id, pending.writer, path=list(path), delta=delta
        )
        self._queue(pending.key, update, 1)

    def _publish_discard(self, pending: PendingWrite) -> None:
        self._queue(pending.key, _update(pending.key, "discarded", pending.write_id, pending.writer), 0)

    async def _commit(
        self, key: str, value: Any, expect: int | None, writer: str | None, write_id: str
    ) -> Entry:
        if self._sender is not None:
            await self._outbox.join()  # the partial updates queued before this commit go first
        update = _update(key, "complete", write_id, writer, value=value)
        keys = [self._value_key(key), f"{self._base}:keys", self._updates]
        args: list[str | int] = [
            "" if expect is None else str(expect),
            json.dumps(value),
            writer or "",
            key,
            json.dumps(update),
            self.max_updates,
        ]
        ok, version = await self._do(lambda: self._commit_script(keys=keys, args=args))
        if not ok:
            assert expect is not None
            raise VersionConflict(key, expect, int(version))
        return Entry(key=key, version=int(version), value=value, writer=writer)

    # -- subscriptions ---------------------------------------------------------------------------

    def _on_subscribe(self) -> None:
        if self._listener is None or self._listener.done():
            # From now: stream ids are the Redis server's milliseconds, and this machine's clock is its.
            self._position = f"{int(time.time() * 1000)}-0"
            self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        blocking = self.store._blocking
        while self._subscriptions:
            try:
                rows: Any = await blocking.xread({self._updates: self._position}, block=1000, count=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection: try again shortly
                await asyncio.sleep(0.2)
                continue
            for _, entries in rows or []:
                for entry_id, fields in entries:
                    self._position = entry_id
                    self._deliver(_parse(fields["u"]))

    async def aclose(self) -> None:
        await super().aclose()
        for task in (self._listener, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._own:
            await self.store.aclose()


def _update(key: str, state: str, write_id: str, writer: str | None, **rest: Any) -> dict[str, Any]:
    return {"key": key, "state": state, "write_id": write_id, "writer": writer, "version": 0, **rest}


def _parse(text: str) -> BlackboardUpdate:
    data = json.loads(text)
    return BlackboardUpdate(
        key=data["key"],
        state=data["state"],
        version=int(data["version"]),
        write_id=data["write_id"],
        writer=data.get("writer") or None,
        path=tuple(data.get("path") or ()),
        delta=data.get("delta") or "",
        value=data.get("value"),
    )
