"""What tracing costs: the client with no observer, with OpenTelemetry's no-op providers, with the SDK
recording to in-memory exporters, and with the relay's Prometheus observer.

Run ``python bench/telemetry.py`` (``--quick`` for a short run). Two workloads, both through
``midstream.Client`` over an ``httpx2.MockTransport`` (no network, so the figures are the library's own
work):

* **decode**: the decode benchmark's stream (``bench/decode.py``: ~20,000 SSE events of text and
  tool-argument deltas, 1-4 KiB chunks), one stream per round: per-chunk costs dominate.
* **client**: many short answers (one text block of 20 deltas), one stream each: per-stream costs
  (a span, a dozen metric points) dominate.

Each condition runs once per round, interleaved, so machine noise hits them alike; the best round
counts, and each is reported as a ratio to "no observer". Times are this process's CPU time
(``time.process_time``): the work is all in this process (the transport is a mock), and CPU time does
not count the moments a busy machine gives the CPU to someone else. Target: under 5% with the no-op
providers.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import build_events, chunked  # the decode benchmark's stream
from midstream import Client, wire
from midstream.events import BlockStart, BlockStop, ResponseEnd, ResponseStart, TextDelta, Usage
from midstream.telemetry import PrometheusObserver, instrument


def short_answer() -> bytes:
    events = [
        ResponseStart(provider="anthropic", model="claude-bench", id="msg_1", usage=Usage(input_tokens=12)),
        BlockStart(index=0, type="text"),
        *[TextDelta(0, f"word{i} ") for i in range(20)],
        BlockStop(0),
        ResponseEnd(
            stop_reason="end_turn",
            raw_stop_reason="end_turn",
            usage=Usage(input_tokens=12, output_tokens=20),
            terminal="completed",
        ),
    ]
    return wire.encoder("anthropic", realism=True, seed=0).encode_all(events)


def client_for(chunks: list[bytes]) -> Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))

    transport = httpx2.MockTransport(handler)
    return Client(
        "anthropic", api_key="bench", base_url="http://test", transport=transport, model="claude-bench"
    )


def workload(client: Client, streams: int) -> Callable[[], int]:
    def run() -> int:
        events = 0
        for _ in range(streams):
            with client.stream("go") as stream:
                for _ in stream:
                    events += 1
        return events

    return run


def conditions() -> dict[str, Callable[[], AbstractContextManager[Any]]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    def sdk() -> AbstractContextManager[Any]:
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return instrument(tracing, meters)

    return {
        "no observer": nullcontext,
        "OTel no-op providers": lambda: instrument(),  # the API's global providers: no SDK configured
        "OTel SDK, in-memory exporters": sdk,
        "Prometheus observer (serve)": lambda: PrometheusObserver().observing(),
    }


def race(run: Callable[[], int], rounds: int) -> Iterator[tuple[str, float]]:
    made = conditions()
    best = dict.fromkeys(made, float("inf"))
    counts: dict[str, int] = {}
    names = list(made)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # each goes first in turn
            gc.collect()
            with made[name]():
                start = time.process_time()
                counts[name] = run()
                best[name] = min(best[name], time.process_time() - start)
    assert len(set(counts.values())) == 1, counts  # every condition read the same events
    yield from best.items()


def report(title: str, results: list[tuple[str, float]], per: int) -> None:
    base = results[0][1]
    print(f"\n{title}")
    for name, seconds in results:
        overhead = (seconds / base - 1.0) * 100.0
        each = seconds * 1000 / per
        print(f"  {name:<32} {each:9.3f} ms per stream   {seconds / base:6.3f}x  ({overhead:+.1f}%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and streams (seconds, not minutes)"
    )
    args = parser.parse_args()
    rounds, short = (4, 200) if args.quick else (12, 1000)
    rng = random.Random(20)
    body = wire.encoder("anthropic", realism=True, seed=0).encode_all(build_events(rng))
    with client_for(chunked(body, rng)) as client:
        results = list(race(workload(client, 1), rounds))
    n_events = body.count(b"\n\n")
    report(f"decode: one {len(body):,}-byte stream of {n_events:,} SSE events per round", results, 1)
    with client_for([short_answer()]) as client:
        results = list(race(workload(client, short), rounds))
    report(f"client: {short} short streams (20 text deltas each) per round", results, short)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
