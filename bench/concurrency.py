"""Many concurrent streams against one local server: midstream vs the official anthropic SDK.

Run ``python bench/concurrency.py`` (200, 1,000 and 4,000 streams) or ``--quick`` (200 only), or
``--streams 500 2000`` for other loads. The simulator runs in its own process (one uvicorn worker on
loopback), serving a paced Anthropic answer (first token after 200 ms, then 20 tokens at 100 tokens/s:
about 0.4 s a stream). Each contender runs in a fresh process of its own, one after the other, and
starts every stream at once with asyncio:

* ``midstream``: ``AsyncClient("anthropic").stream()``, default pool (``max_connections=1000``) and
  timeouts, iterated to the end;
* ``midstream before``: the client as it was: httpx2's default pool of 100 connections, and a wait for
  a free one bounded by the 10 s connect timeout (``max_connections=100``, ``Timeouts(pool=10)``); the
  two midstream rows also size the default pool on measurement rather than by copying;
* ``anthropic SDK``: ``AsyncAnthropic().messages.stream()`` with its defaults (httpx2 pool of 1,000),
  its ``text_stream`` iterated to the end.

Reported per contender: the share of streams that completed, TTFT p50 / p95 (from the moment the
stream was started, queueing for a connection included, to its first text), the process's CPU time
(user + system) for the whole load, and its peak RSS. Both clients retry as they do by default. On a
shared machine the absolute figures move from run to run; compare the rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ANSWER = " ".join(f"tok{n}" for n in range(20))
SCENARIO = {
    "name": "bench",
    "match": {"last_user": "bench"},
    "latency": {"ttft_ms": 200, "tokens_per_second": 100, "jitter": 0.0},
    "turns": [{"blocks": [{"text": ANSWER}]}],
}
CONTENDERS = ("midstream", "midstream before", "anthropic SDK")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


# -- one contender, in its own process ---------------------------------------------------------------


async def _midstream(url: str, n: int, before: bool) -> list[tuple[bool, float | None, str]]:
    from midstream.client.stream import AsyncClient
    from midstream.client.timeouts import Timeouts
    from midstream.events import TextDelta

    options: dict[str, Any] = {"max_connections": 100, "timeouts": Timeouts(pool=10.0)} if before else {}
    async with AsyncClient("anthropic", api_key="bench", base_url=url, model="m", **options) as c:

        async def one() -> tuple[bool, float | None, str]:
            start, first = time.perf_counter(), None
            try:
                async with c.stream("bench", max_tokens=100) as stream:
                    async for event in stream:
                        if first is None and isinstance(event, TextDelta):
                            first = time.perf_counter() - start
                return stream.message.terminal == "completed", first, ""
            except Exception as exc:
                return False, first, f"{type(exc).__name__}: {str(exc)[:60]}"

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def _sdk(url: str, n: int) -> list[tuple[bool, float | None, str]]:
    import anthropic

    async with anthropic.AsyncAnthropic(base_url=url, api_key="bench") as client:

        async def one() -> tuple[bool, float | None, str]:
            start, first = time.perf_counter(), None
            messages: Any = [{"role": "user", "content": "bench"}]
            try:
                async with client.messages.stream(model="m", max_tokens=100, messages=messages) as stream:
                    async for _ in stream.text_stream:
                        if first is None:
                            first = time.perf_counter() - start
                    final = await stream.get_final_message()
                return final.stop_reason == "end_turn", first, ""
            except Exception as exc:
                return False, first, f"{type(exc).__name__}: {str(exc)[:60]}"

        return list(await asyncio.gather(*(one() for _ in range(n))))


def worker(contender: str, url: str, n: int) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    if contender == "anthropic SDK":
        results = asyncio.run(_sdk(url, n))
    else:
        results = asyncio.run(_midstream(url, n, before=contender.endswith("before")))
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    ttfts = [first for ok, first, _ in results if ok and first is not None]
    errors = Counter(error for ok, _, error in results if not ok)
    return {
        "contender": contender,
        "streams": n,
        "ok": sum(ok for ok, _, _ in results),
        "p50": percentile(ttfts, 0.5),
        "p95": percentile(ttfts, 0.95),
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss_mb": after.ru_maxrss / 1024,
        "wall": wall,
        "errors": dict(errors.most_common(3)),
    }


# -- the driver ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator() -> Iterator[str]:
    """The simulator in a process of its own; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "bench.json"
        book.write_text(json.dumps({"scenarios": [SCENARIO]}))
        code = (
            "import sys, time\n"
            "from midstream.sim import running\n"
            "with running(sys.argv[1], speed=1.0) as url:\n"
            "    print(url, flush=True)\n"
            "    time.sleep(86400)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", code, str(book)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            yield proc.stdout.readline().strip()
        finally:
            proc.terminate()
            proc.wait(10)


def run_one(contender: str, url: str, n: int) -> dict[str, Any]:
    args = [sys.executable, __file__, "--worker", contender, url, str(n)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{contender} at {n} streams failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(rows: list[dict[str, Any]]) -> str:
    head = "| streams | client | success | TTFT p50 | TTFT p95 | CPU | peak RSS | wall |"
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['streams']:,} | {r['contender']} | {100 * r['ok'] / r['streams']:.1f}% "
            f"| {r['p50'] * 1000:,.0f} ms | {r['p95'] * 1000:,.0f} ms | {r['cpu']:.1f} s "
            f"| {r['rss_mb']:.0f} MB | {r['wall']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 streams only")
    parser.add_argument("--streams", type=int, nargs="*", help="the loads to run (default 200 1000 4000)")
    parser.add_argument("--worker", nargs=3, metavar=("CONTENDER", "URL", "N"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        contender, url, n = options.worker
        print(json.dumps(worker(contender, url, int(n))))
        return
    loads = options.streams or ([200] if options.quick else [200, 1000, 4000])
    rows: list[dict[str, Any]] = []
    with simulator() as url:
        for n in loads:
            for contender in CONTENDERS:
                row = run_one(contender, url, n)
                rows.append(row)
                if row["errors"]:
                    print(f"  {contender} at {n}: {row['errors']}", file=sys.stderr)
                time.sleep(1)  # let the server's sockets settle between runs
    print(f"midstream vs the anthropic SDK, {os.cpu_count()} CPUs, one simulator process")
    print(table(rows))


if __name__ == "__main__":
    main()
