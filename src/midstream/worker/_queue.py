"""The queue of run requests: a Redis Stream read by a consumer group of workers.

Keys (one hash tag, so the enqueue script touches one cluster slot)::

    ms:{queue}:runs      stream of run requests: ``run`` (the id), ``request`` (RunRequest JSON)
    ms:{queue}:active    sorted set: the runs enqueued and not finished, by enqueue time

A front-end (``midstream serve --queue``) enqueues with :class:`QueueExecutor`; the fleet limit is
checked in the same script (a full fleet is :class:`~midstream.relay.errors.TooManyRuns`, the 429).
Workers read new entries with ``XREADGROUP``; an entry stays pending for its worker while the run
executes, and the worker keeps it fresh (``XCLAIM ... JUSTID`` to itself). When a worker dies its
entries go idle; after ``min_idle`` another worker takes them with ``XAUTOCLAIM`` and resumes the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from midstream.relay.errors import StoreError, TooManyRuns
from midstream.relay.runner import RunRequest

__all__ = ["Claim", "QueueExecutor", "RunQueue"]

_ENQUEUE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if tonumber(ARGV[1]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
  return redis.error_reply('FULL')
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return redis.call('XADD', KEYS[1], '*', 'run', ARGV[3], 'request', ARGV[4])
"""
GROUP = "workers"
STALE = 24 * 3600.0  # an active entry older than this is forgotten (its run's worker never finished it)


@dataclass(frozen=True, slots=True)
class Claim:
    """A queue entry a worker holds: the stream ``id``, the ``run`` and its ``request``."""

    id: str
    run: str
    request: str


class RunQueue:
    """The run queue on the Redis at ``url`` (see the module docstring)."""

    def __init__(self, url: str, *, prefix: str = "ms", group: str = GROUP) -> None:
        import redis.asyncio as aioredis

        self.url, self.prefix, self.group = url, prefix, group
        self.stream = f"{prefix}:{{queue}}:runs"
        self.active_key = f"{prefix}:{{queue}}:active"
        self._r = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
        self._enqueue = self._r.register_script(_ENQUEUE)
        self._cursor = "0-0"

    async def _do(self, make: Any) -> Any:
        from redis.exceptions import RedisError, ResponseError

        try:
            return await make()
        except ResponseError:
            raise  # a script's refusal: the caller reads it
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self.url}: {exc}") from exc

    async def ensure_group(self) -> None:
        """Create the stream and the consumer group if they do not exist."""
        from redis.exceptions import ResponseError

        try:
            await self._r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreError(f"Redis at {self.url}: {exc}") from exc

    async def enqueue(self, run: str, request: RunRequest, *, limit: int = 0) -> str:
        """Add ``run`` to the queue; ``limit`` > 0 refuses it with ``TooManyRuns`` when that many
        runs are enqueued or executing. Returns the stream entry id."""
        from redis.exceptions import ResponseError

        now = time.time()
        args: list[Any] = [limit, repr(now), run, request.model_dump_json(exclude_none=True)]
        args.append(repr(now - STALE))
        try:
            entry: str = await self._do(lambda: self._enqueue(keys=[self.stream, self.active_key], args=args))
        except ResponseError:
            raise TooManyRuns(limit, "fleet") from None
        return entry

    async def read(self, consumer: str, count: int, *, block: float = 1.0) -> list[Claim]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block`` seconds."""
        streams: Any = {self.stream: ">"}
        reply = await self._do(
            lambda: self._r.xreadgroup(self.group, consumer, streams, count=count, block=int(block * 1000))
        )
        return [_claim(entry_id, fields) for _, rows in reply or () for entry_id, fields in rows if fields]

    async def reclaim(self, consumer: str, count: int, *, min_idle: float) -> list[Claim]:
        """Up to ``count`` entries idle for ``min_idle`` seconds (their worker stopped keeping them
        fresh), now pending for ``consumer``."""
        reply = await self._do(
            lambda: self._r.xautoclaim(
                self.stream, self.group, consumer, int(min_idle * 1000), self._cursor, count=count
            )
        )
        self._cursor, rows = reply[0], reply[1]
        return [_claim(entry_id, fields) for entry_id, fields in rows if fields]

    async def touch(self, consumer: str, ids: list[str]) -> None:
        """Reset the idle time of entries ``consumer`` holds (its runs are alive)."""
        if ids:
            held: Any = ids
            await self._do(lambda: self._r.xclaim(self.stream, self.group, consumer, 0, held, justid=True))

    async def finish(self, claim: Claim) -> None:
        """The run ended (or names no run any more): the entry leaves the queue and the run stops
        counting as active."""
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, claim.id)
        pipe.xdel(self.stream, claim.id)
        pipe.zrem(self.active_key, claim.run)
        await self._do(pipe.execute)

    async def active(self) -> int:
        """How many runs are enqueued or executing."""
        count: int = await self._do(lambda: self._r.zcard(self.active_key))
        return count

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._r.aclose()


def _claim(entry_id: str, fields: dict[str, str]) -> Claim:
    return Claim(entry_id, fields.get("run", ""), fields.get("request", "{}"))


class QueueExecutor:
    """The :class:`~midstream.relay.runner.Executor` of a stateless front-end: ``start`` enqueues
    the run for the workers. ``max_active`` (0: no limit) bounds the runs enqueued or executing in
    the whole fleet; beyond it ``start`` raises ``TooManyRuns`` (the HTTP API answers 429)."""

    def __init__(self, queue: RunQueue, *, max_active: int = 0) -> None:
        self.queue, self.max_active = queue, max_active

    async def start(self, run: str, request: RunRequest) -> None:
        await self.queue.enqueue(run, request, limit=self.max_active)

    async def aclose(self) -> None:
        await self.queue.aclose()
