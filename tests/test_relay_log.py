"""The EventLog contract, run against every store: memory, SQLite and a real redis-server."""

# ruff: noqa: F811  (pytest fixtures imported from relaysupport)

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

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
from midstream.relay.log import HEARTBEAT, EventLog, Resync
from midstream.relay.stores import open_log
from relaysupport import StoreMaker, make_store, redis_url, run  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _fill(log: EventLog, run_id: str, n: int, owner: str = "p") -> list[int]:
    await log.create(run_id, meta={"prompt": "hi"})
    lease = await log.acquire(run_id, owner)
    return [await log.append(lease, "text_delta", {"index": 0, "text": f"t{i}"}) for i in range(n)]


def test_append_assigns_seqs_from_one_and_reads_them_back(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            assert await log.status("r") is None
            created = await log.create("r", meta={"prompt": "hi"})
            assert (created.state, created.last_seq, created.meta) == ("running", 0, {"prompt": "hi"})
            with pytest.raises(RunExists):
                await log.create("r")
            lease = await log.acquire("r", "p")
            seqs = [await log.append(lease, "text_delta", {"index": 0, "text": c}, agent="a") for c in "abc"]
            assert seqs == [1, 2, 3] and lease.seq == 3
            entries = await log.entries("r")
            assert [(e.seq, e.kind, e.data["text"], e.agent, e.parent) for e in entries] == [
                (1, "text_delta", "a", "a", None),
                (2, "text_delta", "b", "a", None),
                (3, "text_delta", "c", "a", None),
            ]
            assert entries[0].payload() == {
                "kind": "text_delta",
                "index": 0,
                "text": "a",
                "run": "r",
                "seq": 1,
                "agent": "a",
            }
            assert (await log.status("r")).last_seq == 3  # type: ignore[union-attr]

    run(go())


def test_read_after_every_cursor_is_exact(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            await _fill(log, "r", 40)
            full = await log.entries("r")
            for after in range(0, 42):
                assert [e.seq for e in await log.entries("r", after)] == [e.seq for e in full[after:]]

    run(go())


def test_unknown_run_raises_not_found(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            with pytest.raises(RunNotFound):
                await log.entries("nope")
            with pytest.raises(RunNotFound):
                await log.cancel("nope")
            with pytest.raises(RunNotFound):
                await log.acquire("nope", "p")
            with pytest.raises(RunNotFound):
                await log.expire("nope", 1)

    run(go())


def test_the_lease_fences_out_a_superseded_producer(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store(clock=(clock := Clock())) as log:
            await log.create("r")
            old = await log.acquire("r", "A", ttl=10)
            await log.append(old, "text_delta", {"text": "1"})
            with pytest.raises(LeaseHeld):
                await log.acquire("r", "B", ttl=10)
            clock.now += 11  # A stopped renewing: B may take over
            new = await log.acquire("r", "B", ttl=10)
            assert new.generation > old.generation and new.seq == 1
            with pytest.raises(LeaseLost):
                await log.append(old, "text_delta", {"text": "stale"})
            with pytest.raises(LeaseLost):
                await log.renew(old)
            with pytest.raises(LeaseLost):
                await log.close(old, "completed")
            assert await log.append(new, "text_delta", {"text": "2"}) == 2
            await log.renew(new)
            assert [e.data["text"] for e in await log.entries("r")] == ["1", "2"]

    run(go())


def test_a_resent_append_is_rejected_not_duplicated(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            await log.create("r")
            lease = await log.acquire("r", "p")
            await log.append(lease, "text_delta", {"text": "a"})
            await log.append(lease, "text_delta", {"text": "b"})
            with pytest.raises(DuplicateAppend) as err:
                await log.append(lease, "text_delta", {"text": "b again"}, seq=2)
            assert err.value.seq == 2
            assert [e.data["text"] for e in await log.entries("r")] == ["a", "b"]
            assert await log.append(lease, "text_delta", {"text": "c"}) == 3

    run(go())


def test_close_ends_the_run_and_keeps_it_replayable(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            await _fill(log, "r", 3)
            lease = await log.acquire("r", "p")
            status = await log.close(lease, "completed")
            assert (status.state, status.terminal, status.last_seq) == ("ended", "completed", 3)
            assert status.expires_at is not None
            await log.close(lease, "failed")  # idempotent: the first terminal stays
            assert (await log.status("r")).terminal == "completed"  # type: ignore[union-attr]
            with pytest.raises(RunClosed):
                await log.append(lease, "text_delta", {"text": "late"})
            with pytest.raises(RunClosed):
                await log.acquire("r", "q")
            assert [e.seq for e in await log.entries("r")] == [1, 2, 3]
            assert await log.cancel("r") is False  # nothing to cancel any more

    run(go())


def test_follow_tails_live_appends_and_stops_at_the_end(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as writer:
            reader = make_store()  # another instance: another process for SQLite and Redis
            await writer.create("r")
            lease = await writer.acquire("r", "p")
            await writer.append(lease, "text_delta", {"text": "0"})
            seen: list[Any] = []

            async def follow() -> None:
                async for item in reader.read("r", 0, follow=True, heartbeat=0.05):
                    seen.append(item)

            task = asyncio.create_task(follow())
            for i in range(1, 30):
                await writer.append(lease, "text_delta", {"text": str(i)})
                if i % 7 == 0:
                    await asyncio.sleep(0.12)  # idle: the follower gets heartbeats
            await writer.close(lease, "completed")
            await asyncio.wait_for(task, 10)
            entries = [x for x in seen if isinstance(x, LogEntry)]
            assert [e.seq for e in entries] == list(range(1, 31))
            assert HEARTBEAT in seen
            if reader is not writer:
                await reader.aclose()

    run(go())


def test_many_followers_see_the_same_log(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            await log.create("r")
            lease = await log.acquire("r", "p")

            async def follow(after: int) -> list[int]:
                return [e.seq async for e in log.read("r", after, follow=True) if isinstance(e, LogEntry)]

            tasks = [asyncio.create_task(follow(k)) for k in (0, 0, 3, 10)]
            for i in range(50):
                await log.append(lease, "text_delta", {"text": str(i)})
                if i % 10 == 0:
                    await asyncio.sleep(0)
            await log.close(lease, "completed")
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert results == [
                list(range(1, 51)),
                list(range(1, 51)),
                list(range(4, 51)),
                list(range(11, 51)),
            ]

    run(go())


def test_a_trimmed_cursor_gets_resync_then_every_kept_entry(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store(max_entries=10) as log:
            await _fill(log, "r", 400)
            items = [item async for item in log.read("r", 0)]
            assert isinstance(items[0], Resync) and items[0].earliest > 1
            seqs = [e.seq for e in items[1:] if isinstance(e, LogEntry)]
            assert seqs == list(range(items[0].earliest, 401))  # no silent gap after the resync
            assert len(items) == 1 + len(seqs)
            tail = [item async for item in log.read("r", 395)]
            assert [e.seq for e in tail if isinstance(e, LogEntry)] == [396, 397, 398, 399, 400]
            assert not any(isinstance(e, Resync) for e in tail)

    run(go())


def test_expire_forgets_the_run(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as log:
            await _fill(log, "gone", 2)
            await _fill(log, "soon", 2)
            await log.expire("gone", 0)
            assert await log.status("gone") is None
            with pytest.raises(RunNotFound):
                await log.entries("gone")
            await log.expire("soon", 0.2)
            for _ in range(100):
                if await log.status("soon") is None:
                    break
                await asyncio.sleep(0.05)
            assert await log.status("soon") is None
            assert [s.run for s in await log.runs()] == []
            await log.create("gone")  # the id is free again

    run(go())


def test_an_ended_run_expires_after_the_replay_ttl(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store(replay_ttl=0.3) as log:
            await _fill(log, "r", 2)
            await log.close(await log.acquire("r", "p"), "completed")
            assert len(await log.entries("r")) == 2
            for _ in range(100):
                if await log.status("r") is None:
                    break
                await asyncio.sleep(0.05)
            assert await log.status("r") is None

    run(go())


def test_cancel_is_seen_by_the_producer_of_another_instance(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store() as producer:
            front = make_store()
            await producer.create("r")
            await producer.acquire("r", "p")
            waiting = asyncio.create_task(producer.cancelled("r"))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            assert await front.cancel("r", "stop pressed") is True
            assert await front.cancel("r", "again") is False  # idempotent
            assert await asyncio.wait_for(waiting, 10) == "stop pressed"
            assert (await producer.status("r")).cancel_requested == "stop pressed"  # type: ignore[union-attr]
            assert await asyncio.wait_for(producer.cancelled("r"), 10) == "stop pressed"
            if front is not producer:
                await front.aclose()

    run(go())


def test_runs_lists_the_newest_first(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store(clock=(clock := Clock())) as log:
            for name in ("a", "b", "c"):
                clock.now += 1
                await log.create(name)
            assert [s.run for s in await log.runs()] == ["c", "b", "a"]
            assert [s.run for s in await log.runs(limit=2)] == ["c", "b"]

    run(go())


def test_open_log_names_each_store(tmp_path: Any) -> None:
    assert open_log("memory").name == "memory"
    store = open_log(f"sqlite://{tmp_path}/x.db")
    assert store.name == "sqlite"
    run(store.aclose())
    assert (tmp_path / "x.db").stat().st_mode & 0o077 == 0  # not readable by others
    with pytest.raises(LocalError):
        open_log("postgres://x")


def test_an_unreachable_redis_is_a_store_error(redis_url: str) -> None:
    from midstream.relay.testing import free_port

    async def go() -> None:
        log = open_log(f"redis://127.0.0.1:{free_port()}/0")
        with pytest.raises(StoreError):
            await log.status("r")
        await log.aclose()

    run(go())


def test_the_relay_exports_are_pinned_and_load_lazily() -> None:
    import subprocess
    import sys

    import midstream.relay

    assert sorted(midstream.relay.__all__) == sorted(midstream.relay._EXPORTS)
    for name in midstream.relay.__all__:
        assert getattr(midstream.relay, name) is not None
    code = "import sys, midstream.relay.entry; print('starlette' in sys.modules, 'redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_latest_finds_the_newest_run_of_a_tag(make_store: StoreMaker) -> None:
    async def go() -> None:
        async with make_store(clock=(clock := Clock())) as log:
            assert await log.latest("chat-1") is None
            await log.create("m1", tag="chat-1")
            clock.now += 1
            await log.create("m2", tag="chat-1")
            clock.now += 1
            await log.create("other", tag="chat-2")
            await log.create("untagged")
            assert await log.latest("chat-1") == "m2"
            assert await log.latest("chat-2") == "other"
            await log.expire("m2", 0)
            assert await log.latest("chat-1") in (None, "m1")  # Redis keeps only the newest

    run(go())


def test_many_redis_followers_share_a_few_connections(redis_url: str) -> None:
    from midstream.relay.stores import RedisLog

    async def go() -> None:
        async with RedisLog(redis_url, prefix="many", max_connections=4) as log:
            await log.create("r")
            lease = await log.acquire("r", "p")

            async def follow() -> list[int]:
                return [e.seq async for e in log.read("r", 0, follow=True) if isinstance(e, LogEntry)]

            tasks = [asyncio.create_task(follow()) for _ in range(200)]
            await asyncio.sleep(0.2)
            await log.append(lease, "text_delta", {"text": "x"})
            await log.close(lease, "completed")
            assert await asyncio.wait_for(asyncio.gather(*tasks), 30) == [[1]] * 200

    run(go())
