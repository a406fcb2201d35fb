"""The relay: events/s from append to an SSE reader, added latency from append to a subscriber, and
memory per idle subscriber, for each store, next to a plain ``asyncio.Queue`` fan-out.

Run ``python bench/relay.py`` (``--quick`` for a short run). Everything runs in one process and one
event loop: the relay app is served by uvicorn on loopback, the producer appends through the store's
``append`` (lease-fenced, as ``midstream serve`` does), readers are an ``httpx2`` SSE stream or a
``log.read(follow=True)`` subscriber. A private ``redis-server`` is started on a free port; without
one, the Redis rows are skipped. Producer, server and readers share one CPU and the GIL, so the
figures are pessimistic.

* **events/s through append -> SSE**: ``N`` 40-byte text deltas appended back to back; from the
  first append to the moment the SSE reader has parsed the last one.
* **added latency**: one event every 2 ms; from just before ``append`` to the moment a subscriber
  of the same process has it (SQLite: the in-process wake-up; Redis: through the store's one
  ``XREAD BLOCK`` fan-out task, so a real round trip). Targets: <= 1 ms p95 in memory, <= 5 ms p95
  on SQLite and Redis.
* **memory per idle subscriber**: ``tracemalloc`` growth for ``K`` followers of an idle run (the
  store-side cost of one waiting reader, without the HTTP connection).

The baseline row (``asyncio.Queue``) is the floor for an in-process fan-out with no log at all:
the ratio column says how many times slower each store is than that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import socket
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable

import httpx2
import uvicorn

from midstream.relay.app import create_app
from midstream.relay.entry import LogEntry
from midstream.relay.log import EventLog
from midstream.relay.stores import MemoryLog, RedisLog, SQLiteLog
from midstream.relay.testing import RedisUnavailable, redis_server
from midstream.wire.sse import SSEDecoder

TEXT = "x" * 40


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def serving(log: EventLog) -> AsyncIterator[str]:
    app = create_app(log, None, close_on_shutdown=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def throughput(log: EventLog, n: int, tag: str) -> float:
    run = f"tp-{tag}-{time.monotonic_ns()}"
    await log.create(run)
    lease = await log.acquire(run, "bench")
    async with serving(log) as url, httpx2.AsyncClient(timeout=60) as client:
        done = asyncio.Event()
        got = 0

        async def read() -> None:
            nonlocal got
            decoder = SSEDecoder()
            async with client.stream("GET", f"{url}/v1/runs/{run}/events") as response:
                async for chunk in response.aiter_bytes():
                    got += sum(1 for e in decoder.feed(chunk) if e.id)
                    if got >= n:
                        done.set()
                        return

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        for _ in range(n):
            await log.append(lease, "text_delta", {"index": 0, "text": TEXT})
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
        await log.close(lease, "completed")
        await reader
    return n / elapsed


async def latency(log: EventLog, n: int, tag: str) -> list[float]:
    run = f"lat-{tag}-{time.monotonic_ns()}"
    await log.create(run)
    lease = await log.acquire(run, "bench")
    sent: dict[int, float] = {}
    delays: list[float] = []

    async def follow() -> None:
        async for item in log.read(run, 0, follow=True):
            if isinstance(item, LogEntry):
                delays.append((time.perf_counter() - sent[item.seq]) * 1000)

    reader = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    for seq in range(1, n + 1):
        sent[seq] = time.perf_counter()
        await log.append(lease, "text_delta", {"index": 0, "text": TEXT})
        await asyncio.sleep(0.002)
    await log.close(lease, "completed")
    await asyncio.wait_for(reader, 30)
    return delays[5:]  # the first few warm the connection


async def idle_memory(log: EventLog, k: int, tag: str) -> float:
    run = f"idle-{tag}-{time.monotonic_ns()}"
    await log.create(run)
    lease = await log.acquire(run, "bench")

    async def follow() -> None:
        async for _ in log.read(run, 0, follow=True):
            pass

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    tasks = [asyncio.create_task(follow()) for _ in range(k)]
    await asyncio.sleep(0.3)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    await log.close(lease, "completed")
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return grown / k


async def baseline(n: int) -> tuple[float, list[float]]:
    """An asyncio.Queue per subscriber: no log, no seq, no resume; the floor."""
    queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    start = time.perf_counter()
    for _ in range(n):
        queue.put_nowait((time.perf_counter(), TEXT))
    for _ in range(n):
        json.dumps({"text": (await queue.get())[1]})
    rate = n / (time.perf_counter() - start)
    delays: list[float] = []

    async def consume() -> None:
        for _ in range(n // 5):
            at, _ = await queue.get()
            delays.append((time.perf_counter() - at) * 1000)

    task = asyncio.create_task(consume())
    for _ in range(n // 5):
        queue.put_nowait((time.perf_counter(), TEXT))
        await asyncio.sleep(0.002)
    await task
    return rate, delays


async def bench(stores: dict[str, Callable[[], EventLog]], n: int, k: int) -> None:
    floor_rate, floor_delays = await baseline(n)
    print(f"{'store':<16}{'events/s':>11}{'x floor':>9}{'p50 ms':>9}{'p95 ms':>9}{'bytes/idle sub':>16}")
    print(
        f"{'asyncio.Queue':<16}{floor_rate:>11,.0f}{1.0:>9.1f}"
        f"{statistics.median(floor_delays):>9.3f}{pct(floor_delays, 0.95):>9.3f}{'-':>16}"
    )
    for name, make in stores.items():
        log = make()
        try:
            rate = await throughput(log, n, name)
            delays = await latency(log, max(100, n // 5), name)
            per_sub = await idle_memory(log, k, name)
        finally:
            await log.aclose()
        print(
            f"{name:<16}{rate:>11,.0f}{floor_rate / rate:>9.1f}"
            f"{statistics.median(delays):>9.3f}{pct(delays, 0.95):>9.3f}{per_sub:>16,.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and subscribers")
    options = parser.parse_args()
    n, k = (1000, 50) if options.quick else (10_000, 500)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stores: dict[str, Callable[[], EventLog]] = {
            "memory": lambda: MemoryLog(max_entries=100_000),
            "sqlite": lambda: SQLiteLog(f"{tmp}/relay.db", max_entries=100_000),
        }
        try:
            url = stack.enter_context(redis_server())
            stores["redis"] = lambda: RedisLog(url, max_entries=100_000)
        except RedisUnavailable as exc:
            print(f"(no Redis row: {exc})")
        asyncio.run(bench(stores, n, k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
