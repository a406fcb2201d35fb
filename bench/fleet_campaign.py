"""The fleet campaign: 2 ``serve --queue`` front-ends and 3 workers on one redis-server, runs with tools,
workers killed with SIGKILL every few seconds, readers that drop their connection and resume, cancels.

Run ``python bench/fleet_campaign.py`` (500 runs) or ``--quick`` (40 runs); ``--json`` prints the
figures as one JSON object. What it checks, from sources independent of each other:

* **lost**: runs that never ended (the store's status), after every worker was given time;
* **one terminal**: every run's log holds exactly one ``run_end``, its last entry;
* **gaps / duplicates**: every reader (following over SSE from a random front-end, dropping the
  connection at random and resuming with ``Last-Event-ID`` on a random front-end) saw seqs 1..n
  exactly once each, and the same entries as the store;
* **double effects**: the tools push every real execution to Redis on their own (not through the
  journal): a non-idempotent effect executed twice for one run and idempotency key is a double effect;
  an idempotent one executed again with the same key is counted as a retry (the service deduplicates).

The tools and scenarios are the test suite's (``tests/fleetsupport.py``): an errand (a lookup, then a
booking, then a long answer: three responses), a booking, an idempotent card charge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx2
import redis

from fleetsupport import executions, fleet_book, front_end, worker
from midstream.relay.stores import RedisLog
from midstream.relay.testing import redis_server
from midstream.sim import running as sim_running
from midstream.wire.sse import SSEDecoder
from midstream.worker import RunQueue

PROMPTS = ("run the errand", "book a slot", "charge the card")


class Fleet:
    def __init__(self, redis_url: str, sim_url: str, workers: int, lease_ttl: float) -> None:
        self.redis_url, self.sim_url, self.lease_ttl = redis_url, sim_url, lease_ttl
        self.fronts = [front_end(redis_url), front_end(redis_url)]
        self.started = 0
        self.workers = [self._worker() for _ in range(workers)]
        self.kills = 0
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def _worker(self) -> tuple[str, Any]:
        self.started += 1
        owner = f"campaign-worker-{self.started}"
        return owner, worker(self.redis_url, self.sim_url, "--owner", owner, lease_ttl=self.lease_ttl)

    def busy(self) -> set[str]:
        """The workers holding queue entries (runs) right now, from the consumer group's pending list."""
        queue = RunQueue(self.redis_url)
        try:
            summary = self._redis.xpending(queue.stream, queue.group)
        except redis.RedisError:
            return set()
        return {c["name"] for c in summary.get("consumers") or () if int(c["pending"]) > 0}

    def kill_one(self, rng: random.Random) -> None:
        """kill -9 a worker that holds runs (any worker when none does), and start a fresh one."""
        busy = self.busy()
        holding = [i for i, (owner, _) in enumerate(self.workers) if owner in busy]
        _, victim = self.workers.pop(rng.choice(holding) if holding else rng.randrange(len(self.workers)))
        victim.kill()
        self.kills += 1
        self.workers.append(self._worker())

    def stop(self) -> None:
        for process in [p for _, p in self.workers] + self.fronts:
            process.stop()
        self._redis.close()


async def read_run(
    client: httpx2.AsyncClient, fronts: list[str], run: str, rng: random.Random, stats: Counter[str]
) -> list[int]:
    """Follow ``run`` to its end; disconnect at random and resume where it stopped. The seqs seen."""
    seen: list[int] = []
    while True:
        url = f"{rng.choice(fronts)}/v1/runs/{run}/events"
        headers = {"last-event-id": str(seen[-1])} if seen else {}
        drop_after = rng.randint(3, 40) if rng.random() < 0.3 else None
        decoder, got, ended = SSEDecoder(), 0, False
        try:
            async with client.stream("GET", url, headers=headers, timeout=60) as response:
                if response.status_code == 204:
                    return seen
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        if event.id is None or event.event == "resync":
                            stats["resyncs"] += event.event == "resync"
                            continue
                        seen.append(int(event.id))
                        got += 1
                        ended = ended or event.event == "run_end"
                    if drop_after is not None and got >= drop_after and not ended:
                        stats["disconnects"] += 1
                        break
        except httpx2.HTTPError:
            stats["reader_errors"] += 1
            await asyncio.sleep(0.2)
        if ended:
            return seen


async def campaign(
    runs: int, fleet: Fleet, *, rate: float, kill_every: float, cancel_share: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    fronts = [f.url for f in fleet.fronts]
    stats: Counter[str] = Counter()
    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=50)
    started = time.monotonic()
    async with httpx2.AsyncClient(limits=limits) as client:

        async def cancel_later(run: str) -> None:
            await asyncio.sleep(rng.uniform(0.1, 5.0))
            url = f"{rng.choice(fronts)}/v1/runs/{run}/cancel"
            await client.post(url, json={"reason": "campaign"}, timeout=30)

        async def chaos() -> None:
            while True:
                await asyncio.sleep(rng.uniform(kill_every * 0.5, kill_every * 1.5))
                await asyncio.to_thread(fleet.kill_one, rng)

        killer = asyncio.create_task(chaos())
        readers: list[asyncio.Task[list[int]]] = []
        cancels: list[asyncio.Task[None]] = []
        ids: list[str] = []
        for i in range(runs):
            await asyncio.sleep(rng.expovariate(rate))
            prompt = PROMPTS[i % len(PROMPTS)]
            body = {"prompt": f"{prompt} (#{i})", "settings": {"errors": {"backoff": {"scale": 0.001}}}}
            response = await client.post(f"{rng.choice(fronts)}/v1/runs", json=body, timeout=30)
            response.raise_for_status()
            run = response.json()["id"]
            ids.append(run)
            readers.append(
                asyncio.create_task(read_run(client, fronts, run, random.Random(rng.random()), stats))
            )
            if rng.random() < cancel_share:
                cancels.append(asyncio.create_task(cancel_later(run)))
        try:
            done, pending = await asyncio.wait(readers, timeout=max(120.0, runs * 1.0))
        finally:
            killer.cancel()
            with contextlib.suppress(BaseException):
                await killer
        for task in pending:
            task.cancel()
        await asyncio.gather(*cancels, return_exceptions=True)
        seen = [t.result() if t in done and not t.cancelled() else [] for t in readers]
    elapsed = time.monotonic() - started
    return await verify(fleet, ids, seen, stats, elapsed)


async def verify(
    fleet: Fleet, ids: list[str], seen: list[list[int]], stats: Counter[str], elapsed: float
) -> dict[str, Any]:
    out: Counter[str] = Counter()
    terminals: Counter[str] = Counter()
    async with RedisLog(fleet.redis_url) as log:
        for run, reader in zip(ids, seen, strict=True):
            status = await log.status(run)
            if status is None or not status.ended:
                out["lost"] += 1
                continue
            entries = [e async for e in log.read(run)]
            kinds = [getattr(e, "kind", "?") for e in entries]
            seqs = [getattr(e, "seq", -1) for e in entries]
            terminals[str(status.terminal)] += 1
            out["resumes"] += kinds.count("resumed")
            if kinds.count("run_end") != 1 or kinds[-1] != "run_end":
                out["bad_terminals"] += 1
            if seqs != list(range(1, len(seqs) + 1)):
                out["store_gaps"] += 1
            if reader != seqs:
                out["reader_gaps_or_duplicates"] += 1
            by_key: Counter[tuple[str, str]] = Counter()
            for record in executions(fleet.redis_url, run):
                by_key[(record["tool"], record["key"])] += 1
                out["executions"] += 1
            for (tool, _key), count in by_key.items():
                if count > 1 and tool == "book_slot":
                    out["double_effects"] += 1
                elif count > 1 and tool == "charge_card":
                    out["idempotent_retries"] += 1
    return {
        "runs": len(ids),
        "seconds": round(elapsed, 1),
        "kills": fleet.kills,
        "resumes": out["resumes"],
        "terminals": dict(terminals),
        "cancelled": terminals["cancelled"],
        "executions": out["executions"],
        "lost": out["lost"],
        "double_effects": out["double_effects"],
        "idempotent_retries_same_key": out["idempotent_retries"],
        "bad_terminals": out["bad_terminals"],
        "store_gaps": out["store_gaps"],
        "reader_gaps_or_duplicates": out["reader_gaps_or_duplicates"],
        "reader_disconnects": stats["disconnects"],
        "reader_errors": stats["reader_errors"],
        "resyncs": stats["resyncs"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="40 runs (the version make test runs)")
    parser.add_argument("--rate", type=float, default=8.0, help="runs started per second (on average)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kill -9")
    parser.add_argument("--lease-ttl", type=float, default=1.5)
    parser.add_argument("--cancel-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    runs = 40 if args.quick else args.runs
    for noisy in ("asyncio", "uvicorn.error"):  # a killed worker's sockets and half-sent requests
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    with redis_server() as redis_url, sim_running(fleet_book(), speed=1.0) as sim_url:
        fleet = Fleet(redis_url, sim_url, args.workers, args.lease_ttl)
        try:
            figures = asyncio.run(
                campaign(
                    runs,
                    fleet,
                    rate=4.0 if args.quick else args.rate,
                    kill_every=args.kill_every,
                    cancel_share=args.cancel_share,
                    seed=args.seed,
                )
            )
        finally:
            fleet.stop()
    if args.json:
        print(json.dumps(figures))
        return
    print(f"fleet campaign: 2 serve --queue + {args.workers} workers on one redis-server, seed {args.seed}")
    for name, value in figures.items():
        print(f"  {name:28} {value}")


if __name__ == "__main__":
    main()
