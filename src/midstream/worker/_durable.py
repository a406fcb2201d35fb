"""A run's effects journal and checkpoints in Redis, next to its log, fenced by its producer lease.

Keys (same hash tag as the run's log, so one cluster slot holds them all)::

    ms:{run}:ckpt     string: {"seq", "generation", "checkpoint"}: the latest checkpoint
    ms:{run}:fx       list of effect records (JSON), oldest first
    ms:{run}:fxkey    hash: idempotency key -> the newest record for it

Every write is a Lua script that first compares the lease generation in ``ms:{run}:meta``: a worker
whose lease was superseded can neither move the checkpoint nor journal an effect (so the ledger never
starts its tool: the ``started`` record is written before a tool runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from midstream.agent.checkpoint import Checkpoint
from midstream.agent.effects import EffectRecord
from midstream.relay.errors import LeaseLost, RunNotFound, StoreError
from midstream.relay.log import DEFAULT_RUN_TTL, Lease
from midstream.relay.stores import RedisLog

__all__ = ["RedisDurability", "RedisJournal"]

_FENCE = """
local g = redis.call('HGET', KEYS[1], 'generation')
if not g then return redis.error_reply('NOTFOUND') end
if tonumber(g) ~= tonumber(ARGV[1]) then return redis.error_reply('LEASELOST') end
"""
_SAVE = (
    _FENCE
    + """
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
)
_JOURNAL = (
    _FENCE
    + """
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
"""
)


def _refusal(run: str, generation: int, text: str) -> Exception:
    return RunNotFound(run) if text == "NOTFOUND" else LeaseLost(run, generation)


class RedisJournal:
    """The :class:`~midstream.agent.effects.Journal` of one run in Redis, written under ``lease``.

    Synchronous, as the journal protocol is (one round trip to a local Redis per record). An append
    through a superseded lease raises :class:`~midstream.relay.errors.LeaseLost` and writes nothing.
    """

    def __init__(self, client: Any, log: RedisLog, lease: Lease, *, ttl: float = DEFAULT_RUN_TTL) -> None:
        self._r, self.lease, self._ttl = client, lease, ttl
        self._meta = log.key(lease.run, "meta")
        self._list, self._index = log.key(lease.run, "fx"), log.key(lease.run, "fxkey")
        self._script = client.register_script(_JOURNAL)

    def append(self, record: EffectRecord) -> None:
        """Persist ``record`` (fenced by the lease)."""
        from redis.exceptions import RedisError, ResponseError

        text = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"), default=str)
        args = [self.lease.generation, text, record.idempotency_key, int(self._ttl * 1000)]
        try:
            self._script(keys=[self._meta, self._list, self._index], args=args)
        except ResponseError as exc:
            raise _refusal(self.lease.run, self.lease.generation, str(exc)) from None
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot journal an effect of run {self.lease.run!r}: {exc}") from exc

    def latest(self, key: str) -> EffectRecord | None:
        """The newest record with idempotency key ``key``."""
        text = self._get(lambda: self._r.hget(self._index, key))
        return None if text is None else EffectRecord.from_json(json.loads(text))

    def already_done(self, key: str) -> EffectRecord | None:
        """The newest record for ``key`` if its effect is in place (done, or compensation failed)."""
        record = self.latest(key)
        return record if record is not None and record.status in ("done", "compensation_failed") else None

    def records(self, page: int = 256) -> Iterator[EffectRecord]:
        """Every record of the run, oldest first, ``page`` at a time."""
        start = 0
        while True:
            rows = self._get(lambda at=start: self._r.lrange(self._list, at, at + page - 1))
            for text in rows:
                yield EffectRecord.from_json(json.loads(text))
            if len(rows) < page:
                return
            start += page

    def _get(self, make: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return make()
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot read the journal of run {self.lease.run!r}: {exc}") from exc

    def close(self) -> None:
        """Nothing to release (the connection pool belongs to :class:`RedisDurability`)."""


class RedisDurability:
    """Checkpoints and effects journals of runs in the Redis of ``log`` (see the module docstring);
    the :class:`~midstream.relay.runner.Durability` of a worker."""

    def __init__(self, log: RedisLog, *, ttl: float = DEFAULT_RUN_TTL) -> None:
        import redis
        import redis.asyncio as aioredis

        self.log, self.ttl = log, ttl
        self._sync = redis.Redis.from_url(log.url, decode_responses=True, socket_timeout=10)
        self._async = aioredis.Redis.from_url(log.url, decode_responses=True, socket_timeout=10)
        self._save = self._async.register_script(_SAVE)

    def journal(self, lease: Lease) -> RedisJournal:
        """The run's journal, fenced by ``lease``."""
        return RedisJournal(self._sync, self.log, lease, ttl=self.ttl)

    async def save(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` as the run's latest, with ``lease.seq``; fenced by ``lease``."""
        from redis.exceptions import RedisError, ResponseError

        body = {"seq": lease.seq, "generation": lease.generation, "checkpoint": checkpoint.to_dict()}
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
        keys = [self.log.key(lease.run, "meta"), self.log.key(lease.run, "ckpt")]
        try:
            await self._save(keys=keys, args=[lease.generation, text, int(self.ttl * 1000)])
        except ResponseError as exc:
            raise _refusal(lease.run, lease.generation, str(exc)) from None
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot save the checkpoint of run {lease.run!r}: {exc}") from exc

    async def load(self, run: str) -> tuple[Checkpoint | None, int]:
        """The run's latest checkpoint and the seq of the last entry it covers (``None, 0``: none)."""
        from redis.exceptions import RedisError

        try:
            text = await self._async.get(self.log.key(run, "ckpt"))
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot read the checkpoint of run {run!r}: {exc}") from exc
        if text is None:
            return None, 0
        body = json.loads(text)
        return Checkpoint.from_dict(body["checkpoint"]), int(body["seq"])

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._async.aclose()
        self._sync.close()
