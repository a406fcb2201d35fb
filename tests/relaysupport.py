"""Shared fixtures of the relay tests: one real redis-server per test session, and store factories."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from midstream.relay.log import EventLog
from midstream.relay.stores import MemoryLog, RedisLog, SQLiteLog
from midstream.relay.testing import RedisUnavailable, redis_server

T = TypeVar("T")
STORES = ("memory", "sqlite", "redis")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except RedisUnavailable as exc:
        if os.environ.get("CI"):  # make test installs it: a CI run without it must not pass quietly
            raise
        pytest.skip(str(exc))


class StoreMaker:
    """Makes stores of one kind that share one backend (so a second instance plays another process)."""

    def __init__(self, kind: str, tmp: Path, redis: str | None) -> None:
        self.kind, self._path, self._redis = kind, tmp / "relay.db", redis
        self._prefix = f"t{uuid.uuid4().hex[:8]}"
        self._memory: MemoryLog | None = None

    def __call__(self, **options: Any) -> EventLog:
        if self.kind == "memory":
            if options or self._memory is None:
                self._memory = MemoryLog(**options)
            return self._memory
        if self.kind == "sqlite":
            return SQLiteLog(self._path, poll_interval=0.02, **options)
        assert self._redis is not None
        return RedisLog(self._redis, prefix=self._prefix, **options)


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreMaker:
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return StoreMaker(request.param, tmp_path, redis)


StoreFactory = Callable[..., EventLog]
