"""The Redis store: Redis Streams shared by any number of relay processes (``redis://host:port/db``).

Keys (the ``{run}`` hash tag keeps a run's keys on one cluster slot)::

    ms:{run}:meta   hash: state, last, terminal, created, updated, expires, cancel, owner, generation,
                    lease_until, meta (JSON)
    ms:{run}:log    stream, entry ids ``0-<seq>``: a re-sent seq is refused by the stream itself
    ms:{run}:ctl    stream of control entries: ``cancel`` (with its reason) and ``closed``
    ms:runs         sorted set of run ids by creation time (for listing)

Writes are Lua scripts, so the lease check, the ``XADD ... MAXLEN ~`` and the expiry happen in one
atomic step. Live reads use **one** ``XREAD BLOCK`` task per process on its own connection, over the
log and control streams of every run that has a reader or a producer in this process; it fans entries
out to the local readers (which then need no extra round trip) and cancel requests to local producers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from midstream.errors import LocalError
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

__all__ = ["RedisLog"]

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS') end
redis.call('HSET', KEYS[1], 'state', 'running', 'last', 0, 'created', ARGV[1], 'updated', ARGV[1],
  'expires', ARGV[2], 'generation', 0, 'lease_until', 0, 'meta', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[3]) end
return 1
"""
_ACQUIRE = """
local m = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'last')
if not m[1] then return redis.error_reply('NOTFOUND') end
if m[1] == 'ended' then return redis.error_reply('CLOSED') end
if m[2] and m[2] ~= ARGV[1] and tonumber(m[3]) > tonumber(ARGV[2]) then
  return redis.error_reply('HELD ' .. m[2])
end
local g = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', ARGV[3], 'updated', ARGV[2])
return {g, tonumber(m[4])}
"""
_RENEW = """
local g = redis.call('HGET', KEYS[1], 'generation')
if not g then return redis.error_reply('NOTFOUND') end
if tonumber(g) ~= tonumber(ARGV[1]) then return redis.error_reply('LEASELOST') end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""
_APPEND = """
local m = redis.call('HMGET', KEYS[1], 'generation', 'state', 'last')
if not m[1] then return redis.error_reply('NOTFOUND') end
if tonumber(m[1]) ~= tonumber(ARGV[1]) then return redis.error_reply('LEASELOST') end
if m[2] == 'ended' then return redis.error_reply('CLOSED') end
if tonumber(ARGV[2]) ~= tonumber(m[3]) + 1 then return redis.error_reply('DUPLICATE') end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '0-' .. ARGV[2],
  'k', ARGV[3], 'd', ARGV[4], 'a', ARGV[5], 'p', ARGV[6], 't', ARGV[7])
redis.call('HSET', KEYS[1], 'last', ARGV[2], 'updated', ARGV[7])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return tonumber(ARGV[2])
"""
_CLOSE = """
local m = redis.call('HMGET', KEYS[1], 'generation', 'state')
if not m[1] then return redis.error_reply('NOTFOUND') end
if tonumber(m[1]) ~= tonumber(ARGV[1]) then return redis.error_reply('LEASELOST') end
if m[2] ~= 'ended' then
  redis.call('HSET', KEYS[1], 'state', 'ended', 'terminal', ARGV[2], 'updated', ARGV[3], 'expires', ARGV[5])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'type', 'closed')
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return 1
"""
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'state') == 'ended' then return 0 end
if redis.call('HSETNX', KEYS[1], 'cancel', ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'type', 'cancel', 'reason', ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
_EXPIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(ARGV[1]) <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], 'expires', ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return 1
"""
_FIELDS = ("state", "last", "terminal", "created", "updated", "expires", "cancel", "owner", "meta")
_RECENT = 1024


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[2])


class RedisLog(EventLog):
    """:class:`~midstream.relay.log.EventLog` on Redis Streams; every process on the same Redis sees
    the same runs, entries and cancel requests. ``prefix`` namespaces the keys; ``max_connections``
    bounds the command connections (plus one for the fan-out task)."""

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ms",
        max_entries: int = DEFAULT_MAX_ENTRIES,
        replay_ttl: float = DEFAULT_REPLAY_TTL,
        poll_interval: float = 2.0,
        max_connections: int = 32,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_entries=max_entries, replay_ttl=replay_ttl)
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - redis is a dependency
            raise StoreError("the Redis store needs the redis package: pip install redis") from exc
        self.url, self.prefix, self.poll_interval, self._clock = url, prefix, poll_interval, clock
        try:
            # Commands wait for one of ``max_connections`` connections instead of failing: a relay
            # with thousands of readers must not open thousands of connections.
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=5,
                max_connections=max_connections,
                timeout=30,
            )
            self._r = aioredis.Redis(connection_pool=pool)
            self._blocking = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
        except ValueError as exc:
            raise LocalError(f"bad Redis URL {url!r}: {exc}") from exc
        self._scripts = {
            name: self._r.register_script(text)
            for name, text in (
                ("create", _CREATE),
                ("acquire", _ACQUIRE),
                ("renew", _RENEW),
                ("append", _APPEND),
                ("close", _CLOSE),
                ("cancel", _CANCEL),
                ("expire", _EXPIRE),
            )
        }
        self._wake = f"{prefix}:wake:{uuid.uuid4().hex}"
        self._positions: dict[str, str] = {}  # stream key -> last id read by the fan-out task
        self._refs: dict[str, int] = {}
        self._recent: dict[str, deque[LogEntry]] = {}
        self._ended: set[str] = set()  # runs whose ``closed`` control entry the fan-out task saw
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"RedisLog({self.url!r}, prefix={self.prefix!r})"

    def _key(self, run: str, part: str) -> str:
        return f"{self.prefix}:{{{run}}}:{part}"

    def key(self, run: str, part: str) -> str:
        """The Redis key of ``part`` of ``run`` (``meta``, ``log``, ``ctl``, or another part kept
        next to them, such as a worker's checkpoint: the hash tag puts them on one cluster slot)."""
        return self._key(run, part)

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import RedisError, ResponseError

        try:
            return await self._scripts[script](keys=keys, args=args)
        except ResponseError:
            raise
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self.url}: {exc}") from exc

    async def _do(self, make: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await make()
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self.url}: {exc}") from exc

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        with contextlib.suppress(Exception):
            await self._r.delete(self._wake)
        await self._blocking.aclose()
        await self._r.aclose()

    # -- writes ----------------------------------------------------------------------------------

    async def create(
        self,
        run: str,
        *,
        meta: Mapping[str, Any] | None = None,
        ttl: float = DEFAULT_RUN_TTL,
        tag: str | None = None,
    ) -> RunStatus:
        from redis.exceptions import ResponseError

        now = self._clock()
        args = [repr(now), repr(now + ttl), _ms(ttl), json.dumps(dict(meta or {})), run, tag or ""]
        keys = [self._key(run, "meta"), f"{self.prefix}:runs", self._tag_key(tag or "")]
        try:
            await self._call("create", keys, args)
        except ResponseError:
            raise RunExists(run) from None
        status = await self.status(run)
        if status is None:
            raise RunNotFound(run)
        return status

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}:tag:{tag}"

    async def latest(self, tag: str) -> str | None:
        run: str | None = await self._do(lambda: self._r.get(self._tag_key(tag)))
        if run is None or await self.status(run) is None:
            return None
        return run

    async def acquire(self, run: str, owner: str, *, ttl: float = 30.0) -> Lease:
        from redis.exceptions import ResponseError

        now = self._clock()
        try:
            generation, last = await self._call(
                "acquire", [self._key(run, "meta")], [owner, repr(now), repr(now + ttl)]
            )
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("HELD"):
                raise LeaseHeld(run, text[5:]) from None
            raise (RunClosed(run) if text == "CLOSED" else RunNotFound(run)) from None
        return Lease(run, owner, int(generation), int(last))

    async def renew(self, lease: Lease, *, ttl: float = 30.0) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._call(
                "renew", [self._key(lease.run, "meta")], [lease.generation, repr(self._clock() + ttl)]
            )
        except ResponseError as exc:
            if str(exc) == "NOTFOUND":
                raise RunNotFound(lease.run) from None
            raise LeaseLost(lease.run, lease.generation) from None

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
        from redis.exceptions import ResponseError

        seq = lease.seq + 1 if seq is None else seq
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        keys = [self._key(lease.run, "meta"), self._key(lease.run, "log")]
        args = [
            lease.generation,
            seq,
            kind,
            text,
            agent or "",
            parent or "",
            repr(self._clock()),
            self.max_entries,
        ]
        try:
            await self._call("append", keys, args)
        except ResponseError as exc:
            raise self._refusal(lease, seq, str(exc)) from None
        lease.seq = seq
        return seq

    @staticmethod
    def _refusal(lease: Lease, seq: int, text: str) -> Exception:
        if text == "LEASELOST":
            return LeaseLost(lease.run, lease.generation)
        if text == "CLOSED":
            return RunClosed(lease.run)
        if text == "NOTFOUND":
            return RunNotFound(lease.run)
        return DuplicateAppend(lease.run, seq)

    async def close(self, lease: Lease, terminal: str) -> RunStatus:
        from redis.exceptions import ResponseError

        now = self._clock()
        keys = [self._key(lease.run, part) for part in ("meta", "log", "ctl")]
        args = [lease.generation, terminal, repr(now), _ms(self.replay_ttl), repr(now + self.replay_ttl)]
        try:
            await self._call("close", keys, args)
        except ResponseError as exc:
            raise self._refusal(lease, lease.seq, str(exc)) from None
        status = await self.status(lease.run)
        if status is None:
            raise RunNotFound(lease.run)
        return status

    async def expire(self, run: str, ttl: float) -> None:
        keys = [self._key(run, part) for part in ("meta", "log", "ctl")] + [f"{self.prefix}:runs"]
        ms = _ms(ttl) if ttl > 0 else 0
        if await self._call("expire", keys, [ms, repr(self._clock() + ttl), run]) == -1:
            raise RunNotFound(run)

    async def cancel(self, run: str, reason: str = "cancelled") -> bool:
        keys = [self._key(run, "meta"), self._key(run, "ctl")]
        done = await self._call("cancel", keys, [reason])
        if done == -1:
            raise RunNotFound(run)
        return bool(done == 1)

    # -- reads -----------------------------------------------------------------------------------

    async def status(self, run: str) -> RunStatus | None:
        values = await self._do(lambda: self._r.hmget(self._key(run, "meta"), list(_FIELDS)))
        return _status(run, values)

    async def runs(self, limit: int = 50) -> list[RunStatus]:
        ids: list[str] = await self._do(lambda: self._r.zrevrange(f"{self.prefix}:runs", 0, limit * 2))
        pipe = self._r.pipeline(transaction=False)
        for run in ids:
            pipe.hmget(self._key(run, "meta"), list(_FIELDS))
        rows = await self._do(pipe.execute) if ids else []
        out: list[RunStatus | str] = []
        gone: list[str] = []
        for run, values in zip(ids, rows, strict=True):
            status = _status(run, values)
            if status is None:
                gone.append(run)
            else:
                out.append(status)
        if gone:
            await self._do(lambda: self._r.zrem(f"{self.prefix}:runs", *gone))
        return [s for s in out if isinstance(s, RunStatus)][:limit]

    async def _range(self, run: str, after: int, limit: int, *, live: bool = False) -> list[LogEntry]:
        recent = self._recent.get(run) if live else None
        if recent and recent[0].seq <= after + 1 <= recent[-1].seq:
            start = after + 1 - recent[0].seq
            return [recent[i] for i in range(start, min(len(recent), start + limit))]
        if recent and recent[-1].seq == after:
            return []  # the fan-out task is at the same point: it wakes the reader when more comes
        key = self._key(run, "log")
        rows = await self._do(lambda: self._r.xrange(key, min=f"0-{after + 1}", max="+", count=limit))
        return [_entry(run, entry_id, fields) for entry_id, fields in rows]

    # -- the fan-out task ------------------------------------------------------------------------

    def _subscribe(self, key: str, start: str) -> None:
        self._refs[key] = self._refs.get(key, 0) + 1
        self._positions.setdefault(key, start)  # a later reader catches up by XRANGE, not by a rewind
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._fan_out(), name="midstream-redis-xread"
            )
        else:
            asyncio.get_running_loop().create_task(self._kick())

    def _unsubscribe(self, key: str) -> None:
        left = self._refs.get(key, 0) - 1
        if left > 0:
            self._refs[key] = left
            return
        self._refs.pop(key, None)
        self._positions.pop(key, None)
        if key.endswith(":log"):
            self._recent.pop(key[len(self.prefix) + 2 : -5], None)
        elif key.endswith(":ctl"):
            self._ended.discard(key[len(self.prefix) + 2 : -5])

    def _caught_up(self, run: str, cursor: int) -> bool:
        recent = self._recent.get(run)
        if not recent or run in self._ended or self._reader is None or self._reader.done():
            return False
        return recent[-1].seq == cursor

    def _watch(self, run: str, after: int) -> None:
        self._subscribe(self._key(run, "log"), f"0-{after}")
        self._subscribe(self._key(run, "ctl"), "0-0")

    def _unwatch(self, run: str) -> None:
        self._unsubscribe(self._key(run, "log"))
        self._unsubscribe(self._key(run, "ctl"))

    def _watch_control(self, run: str) -> None:
        self._subscribe(self._key(run, "ctl"), "0-0")

    def _unwatch_control(self, run: str) -> None:
        self._unsubscribe(self._key(run, "ctl"))

    async def _kick(self) -> None:
        with contextlib.suppress(Exception):
            await self._r.xadd(self._wake, {"w": "1"}, maxlen=1)
            await self._r.expire(self._wake, 3600)

    async def _fan_out(self) -> None:
        wake_at = "$"
        while self._positions:
            streams: Any = {self._wake: wake_at, **self._positions}
            try:
                replies: Any = await self._blocking.xread(streams, count=_RECENT, block=5000)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is unreachable: readers fall back to polling
                await asyncio.sleep(self.poll_interval)
                continue
            for key, rows in replies or ():
                if not rows:
                    continue
                if key == self._wake:
                    wake_at = rows[-1][0]
                    continue
                if key in self._positions:
                    self._positions[key] = rows[-1][0]
                run = key[len(self.prefix) + 2 : key.rindex("}")]
                if key.endswith(":log"):
                    self._remember(run, rows)
                    self._notify(run)
                else:
                    if any(fields.get("type") == "closed" for _, fields in rows):
                        self._ended.add(run)
                    self._notify(run)
                    self._notify_cancel(run)
        self._reader = None

    def _remember(self, run: str, rows: list[Any]) -> None:
        recent = self._recent.setdefault(run, deque(maxlen=_RECENT))
        for entry_id, fields in rows:
            entry = _entry(run, entry_id, fields)
            if recent and entry.seq != recent[-1].seq + 1:
                recent.clear()
            recent.append(entry)


def _entry(run: str, entry_id: str, fields: Mapping[str, str]) -> LogEntry:
    return LogEntry(
        run=run,
        seq=_seq(entry_id),
        kind=fields["k"],
        data=json.loads(fields["d"]),
        agent=fields.get("a") or None,
        parent=fields.get("p") or None,
        at=float(fields.get("t") or 0.0),
    )


def _status(run: str, values: list[str | None]) -> RunStatus | None:
    state, last, terminal, created, updated, expires, cancel, owner, meta = values
    if state is None:
        return None
    return RunStatus(
        run,
        "ended" if state == "ended" else "running",
        int(last or 0),
        terminal,
        float(created or 0),
        float(updated or 0),
        float(expires) if expires else None,
        cancel,
        owner,
        json.loads(meta or "{}"),
    )
