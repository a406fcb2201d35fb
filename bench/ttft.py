"""Time to first token through midstream vs raw httpx2, and cancel-to-disconnect latency.

Run ``python bench/ttft.py [--runs N]``. The simulator runs in this process (``midstream.sim.running``)
on loopback, paced (first token after 10 ms, then one token every 2 ms, no jitter), so each token
arrives in its own chunk as it would from a provider. Both figures share one process and one GIL
with the server, which makes them pessimistic.

**TTFT.** Each dialect's request is built once (``build_request``) and sent alternately by

* ``raw httpx2``: ``httpx2.Client.stream()`` + ``iter_raw()``, stopping at the first chunk that holds
  the first word of the answer (no parsing at all: the floor);
* ``midstream``: ``Client.stream_request()``, stopping at the first ``TextDelta`` (framing, JSON,
  dialect, timeline, tool tracker, accumulator, metrics, and the hold-back that makes retries
  invisible).

Both run over a transport that stamps the moment each body chunk leaves the connection, so besides
end-to-end TTFT (from the call to the first token) the *added latency* is measured directly: from the
arrival of the chunk holding the first token to the moment the caller has it. Target: midstream adds
at most 1 ms at p95.

**Cancel.** A 400-token answer is cancelled mid-stream in each way the client offers; the latency is
from the cancel (our clock) to the moment the simulator's request log says the client went away (the
same ``time.monotonic`` clock, same process). Target: at most 50 ms at p95, and no token generated
after the disconnect.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

from midstream.client.providers import build_request
from midstream.client.request import ChatRequest
from midstream.client.stream import AsyncClient, Client
from midstream.events import TextDelta
from midstream.sim import ScenarioBook, SimURL, running

DIALECTS = ["anthropic", "openai-chat", "openai-responses", "gemini", "bedrock", "ollama"]
ANSWER = "Zebras " + " ".join(f"graze{n}" for n in range(20))
MARK = b"Zebras"  # the first word, as it appears in every dialect's bytes
LONG = " ".join(f"word{n}" for n in range(400))
PACE = {"ttft_ms": 10, "tokens_per_second": 500, "jitter": 0.0}


def _scenario(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"last_user": name},
        "latency": PACE,
        "turns": [{"blocks": [{"text": text}]}],
    }


BOOK = ScenarioBook.model_validate({"scenarios": [_scenario("ttft", ANSWER), _scenario("long", LONG)]})
STALL = {"x-midstream-fault": "stall_ms=2000;stall_after_events=10"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


class Tap(httpx2.HTTPTransport):
    """Stamps (``perf_counter``) the moment each response body chunk comes off the connection."""

    last = 0.0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        inner, tap = response.stream, self

        class Stamped(httpx2.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                for chunk in inner:  # type: ignore[union-attr]
                    tap.last = time.perf_counter()
                    yield chunk

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        response.stream = Stamped()
        return response


def raw_ttft(http: httpx2.Client, tap: Tap, request: Any) -> tuple[float, float]:
    start = time.perf_counter()
    with http.stream(request.method, request.url, headers=request.headers, content=request.body) as response:
        for chunk in response.iter_raw():
            if MARK in chunk:
                now = time.perf_counter()
                return now - start, now - tap.last
    raise RuntimeError("the answer never came")


def midstream_ttft(client: Client, tap: Tap, request: Any) -> tuple[float, float]:
    start = time.perf_counter()
    with client.stream_request(request) as stream:
        for event in stream:
            if isinstance(event, TextDelta) and event.text:
                now = time.perf_counter()
                return now - start, now - tap.last
    raise RuntimeError("the answer never came")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f}"


def bench_ttft(url: SimURL, runs: int) -> list[float]:
    print(f"TTFT, {runs} runs per contender and dialect (ms; 'added' = first-token chunk -> caller)")
    print(
        f"{'dialect':<18}{'contender':<12}{'TTFT p50':>9}{'p95':>9}{'added p50':>11}{'p95':>9}{'max':>9}",
        end="",
    )
    print(f"{'TTFT vs raw p50':>17}{'p95':>9}")
    all_added: list[float] = []
    for dialect in DIALECTS:
        request = build_request(
            dialect, ChatRequest.create("sim-model", "ttft"), api_key="bench", base_url=url
        )
        raw_tap, mid_tap = Tap(), Tap()
        results: dict[str, list[tuple[float, float]]] = {"raw httpx2": [], "midstream": []}
        with httpx2.Client(transport=raw_tap) as http, Client(dialect, transport=mid_tap) as client:
            raw_ttft(http, raw_tap, request), midstream_ttft(client, mid_tap, request)  # warm up
            for _ in range(runs):
                results["raw httpx2"].append(raw_ttft(http, raw_tap, request))
                results["midstream"].append(midstream_ttft(client, mid_tap, request))
        raw = [p[0] for p in results["raw httpx2"]]
        for name, pairs in results.items():
            ttft, added = [p[0] for p in pairs], [p[1] for p in pairs]
            versus = ""
            if name == "midstream":
                all_added += added
                p50 = percentile(ttft, 0.5) - percentile(raw, 0.5)
                p95 = percentile(ttft, 0.95) - percentile(raw, 0.95)
                versus = f"{ms(p50):>17}{ms(p95):>9}"
            print(
                f"{dialect:<18}{name:<12}{ms(percentile(ttft, 0.5)):>9}{ms(percentile(ttft, 0.95)):>9}"
                f"{ms(percentile(added, 0.5)):>11}{ms(percentile(added, 0.95)):>9}{ms(max(added)):>9}{versus}"
            )
    return all_added


# -- cancel to disconnect ------------------------------------------------------------------------


def disconnect_latency(url: SimURL, since: float) -> tuple[float, int]:
    record = url.simulator.records[-1]
    deadline = time.monotonic() + 2.0
    while record.disconnected_ms is None and time.monotonic() < deadline:
        time.sleep(0.001)
    if record.disconnected_ms is None:
        raise RuntimeError("the simulator never saw the client go")
    time.sleep(0.02)  # a few more token intervals: anything generated now would be counted
    return record._t0 + record.disconnected_ms / 1000.0 - since, record.tokens_after_disconnect


def sync_break(client: Client) -> float:
    with client.stream("long", model="m") as stream:
        for n, _ in enumerate(stream):
            if n == 20:
                break
        at = time.monotonic()
    return at


def sync_cancel(client: Client) -> float:
    at = 0.0
    with client.stream("long", model="m") as stream:
        for n, _ in enumerate(stream):
            if n == 20:
                at = time.monotonic()
                stream.cancel()
    return at


def sync_thread_cancel(client: Client) -> float:
    at: list[float] = []
    with client.stream("long", model="m", headers=STALL) as stream:
        for n, _ in enumerate(stream):
            if n == 8:  # the stall comes next: cancel while the read is blocked in it

                def later() -> None:
                    time.sleep(0.03)
                    at.append(time.monotonic())
                    stream.cancel()

                threading.Thread(target=later).start()
    return at[0]


def raw_close(http: httpx2.Client, url: str) -> float:
    request = build_request("anthropic", ChatRequest.create("m", "long"), api_key="bench", base_url=url)
    with http.stream("POST", request.url, headers=request.headers, content=request.body) as response:
        for n, _ in enumerate(response.iter_raw()):
            if n == 20:
                at = time.monotonic()
                break  # dropping the iterator already closes the connection
    return at


async def async_cancel(client: AsyncClient) -> float:
    at = 0.0
    async with client.stream("long", model="m") as stream:
        n = 0
        async for _ in stream:
            n += 1
            if n == 20:
                at = time.monotonic()
                stream.cancel()
    return at


async def async_task_cancel(client: AsyncClient) -> float:
    stream = client.stream("long", model="m", headers=STALL)

    async def read() -> None:
        async with stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.1)  # well into the stall
    at = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return at


def bench_cancel(url: SimURL, runs: int) -> list[float]:
    print(f"\nCancel -> disconnect seen by the simulator, {runs} runs each (ms)")
    print(f"{'how':<44}{'p50':>9}{'p95':>9}{'max':>9}  tokens after")
    every: list[float] = []
    with Client("anthropic", api_key="bench", base_url=url) as client, httpx2.Client() as http:
        modes: list[tuple[str, Callable[[], float]]] = [
            ("raw httpx2: leave the block (peer)", lambda: raw_close(http, url)),
            ("sync: leave the with block", lambda: sync_break(client)),
            ("sync: cancel() in the loop", lambda: sync_cancel(client)),
            ("sync: cancel() from a thread, read blocked", lambda: sync_thread_cancel(client)),
        ]
        for name, action in modes:
            every += report(
                name, [disconnect_latency(url, action()) for _ in range(runs)], peer="raw" in name
            )

    async def run_async(action: Callable[[AsyncClient], Any]) -> list[tuple[float, int]]:
        out = []
        async with AsyncClient("anthropic", api_key="bench", base_url=url) as aclient:
            for _ in range(runs):
                at = await action(aclient)
                out.append(await asyncio.to_thread(disconnect_latency, url, at))
        return out

    every += report("async: cancel() in the loop", asyncio.run(run_async(async_cancel)))
    every += report("async: cancel the task, read blocked", asyncio.run(run_async(async_task_cancel)))
    return every


def report(name: str, results: list[tuple[float, int]], peer: bool = False) -> list[float]:
    latencies = [r[0] for r in results]
    after = sum(r[1] for r in results)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(f"{name:<44}{ms(p50):>9}{ms(p95):>9}{ms(max(latencies)):>9}  {after}")
    return [] if peer else latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per contender and dialect (TTFT)")
    parser.add_argument("--cancel-runs", type=int, default=40, help="runs per way of cancelling")
    args = parser.parse_args()
    with running(BOOK, speed=1.0) as url:
        added = bench_ttft(url, args.runs)
        cancels = bench_cancel(url, args.cancel_runs)
    added_p95, cancel_p95 = percentile(added, 0.95), percentile(cancels, 0.95)
    print(f"\nmidstream added latency, all dialects: p95 {ms(added_p95).strip()} ms (target <= 1 ms)")
    print(f"cancel -> disconnect, all of midstream's ways: p95 {ms(cancel_p95).strip()} ms (target <= 50 ms)")
    return 0 if added_p95 <= 0.001 and cancel_p95 <= 0.050 else 1


if __name__ == "__main__":
    raise SystemExit(main())
