"""Client benchmark: CPU per streamed answer, midstream.Client against raw httpx2 reading the same bytes.

Run ``python bench/client.py`` (``--quick`` for fewer rounds). A server in its own process (so its CPU is
not counted) answers every POST with the same pre-recorded Anthropic stream: a 5,000-token answer
written by midstream's encoder with the API's padding, sent chunked, one write per SSE event (how
providers stream; ``--chunks kib`` writes 16 KiB pieces instead, cut anywhere). The contenders, each
with one client kept across rounds (connection reused), read the whole answer:

* ``midstream Client.stream()``: request building, httpx2, SSE, JSON, dialect, timeline, tool tracking,
  metrics, then ``final()`` (the Message);
* ``raw httpx2 iter_bytes()``: ``httpx2.Client.stream("POST")`` and every body chunk read, nothing
  decoded: the floor of any client on httpx2's reading API, and the reference of the ratios;
* ``raw httpx2 response.stream``: the same, iterating the response's byte stream itself (one generator
  fewer than ``iter_raw``, two fewer than ``iter_bytes``), which is how midstream reads an
  uncompressed body: the floor of what midstream does;
* ``anthropic SDK messages.stream()``: ``get_final_message()``, for reference;
* ``midstream AsyncClient.stream()`` and ``raw httpx2 aiter_bytes()``: the same two on asyncio (one
  event loop kept across rounds).

Reported: the client process's CPU time (``time.process_time``) per stream, min and median over
interleaved rounds, and the ratio to raw httpx2 of the same kind (sync or async).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2

import midstream
from midstream import Usage, wire
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, TextDelta, UsageUpdate

TOKENS = 5_000
_WORDS = str.split(
    "the of and to in is you that it was for on are as with they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other"
)

_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = open(sys.argv[1], "rb").read()
if sys.argv[3] == "event":
    EVENTS = [event + b"\n\n" for event in BODY.split(b"\n\n") if event]
else:
    EVENTS = [BODY[i : i + 16384] for i in range(0, len(BODY), 16384)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in EVENTS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def answer() -> bytes:
    rng = random.Random(5)
    events: list[Event] = [
        ResponseStart(
            provider="anthropic",
            model="claude-bench",
            id="msg_bench",
            usage=Usage(input_tokens=40, output_tokens=1),
        ),
        BlockStart(index=0, type="text", raw_type="text"),
        *(TextDelta(0, " " + rng.choice(_WORDS)) for _ in range(TOKENS)),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=40, output_tokens=TOKENS)),
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn"),
    ]
    return wire.encoder("anthropic", realism=True, seed=0).encode_all(events)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def complete(result: Any, size: int) -> bool:
    """Whether a contender got the whole answer: every byte (raw httpx2), or every token (a Message
    or the SDK's). Checked outside the timed call, so no contender pays for the bench's own check."""
    if isinstance(result, int):
        return result == size
    if isinstance(result, midstream.Message):
        return result.terminal == "completed" and len(result.text.split()) == TOKENS
    return len("".join(block.text for block in result.content).split()) == TOKENS


def contenders(url: str, loop: asyncio.AbstractEventLoop) -> list[tuple[str, Callable[[], Any]]]:
    ours = midstream.Client("anthropic", base_url=url, model="claude-bench")
    raw = httpx2.Client()
    ours_async = midstream.AsyncClient("anthropic", base_url=url, model="claude-bench")
    raw_async = httpx2.AsyncClient()
    sdk = anthropic.Anthropic(api_key="bench", base_url=url)
    request = {
        "model": "claude-bench",
        "max_tokens": 8000,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }

    def run_midstream() -> Any:
        with ours.stream("go", max_tokens=8000) as stream:
            for _ in stream:
                pass
            return stream.final()  # checked after the clock stops (see ``complete``)

    def run_raw() -> int:
        size = 0
        with raw.stream("POST", f"{url}/v1/messages", json=request) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
        return size

    def run_raw_stream() -> int:
        size = 0
        with raw.stream("POST", f"{url}/v1/messages", json=request) as response:
            for chunk in response.stream:  # type: ignore[union-attr]
                size += len(chunk)
        return size

    def run_sdk() -> Any:
        message: Any = {"role": "user", "content": "go"}
        with sdk.messages.stream(model="claude-bench", max_tokens=8000, messages=[message]) as stream:
            return stream.get_final_message()

    async def midstream_async() -> Any:
        async with ours_async.stream("go", max_tokens=8000) as stream:
            async for _ in stream:
                pass
            return await stream.final()

    async def raw_async_bytes() -> int:
        size = 0
        async with raw_async.stream("POST", f"{url}/v1/messages", json=request) as response:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
        return size

    return [
        ("midstream Client.stream()", run_midstream),
        ("raw httpx2 iter_bytes()", run_raw),
        ("raw httpx2 response.stream", run_raw_stream),
        ("anthropic SDK messages.stream()", run_sdk),
        ("midstream AsyncClient.stream()", lambda: loop.run_until_complete(midstream_async())),
        ("raw httpx2 aiter_bytes()", lambda: loop.run_until_complete(raw_async_bytes())),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument(
        "--chunks",
        choices=("event", "kib"),
        default="event",
        help="the server writes one SSE event per chunk (default) or 16 KiB pieces",
    )
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    body = answer()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answer.sse"
        path.write_bytes(body)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(path), str(port), args.chunks],
            stdout=subprocess.PIPE,
            text=True,
        )
        loop = asyncio.new_event_loop()
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            runs = contenders(f"http://127.0.0.1:{port}", loop)
            for _, run in runs:  # warm: connections open, imports done
                run()
            times: list[list[float]] = [[] for _ in runs]
            for _ in range(rounds):
                for i, (_, run) in enumerate(runs):
                    start = time.process_time()
                    result = run()
                    times[i].append(time.process_time() - start)
                    assert complete(result, len(body)), runs[i][0]
        finally:
            loop.close()
            server.terminate()
            server.wait(10)
    best = {name: min(spent) for (name, _), spent in zip(runs, times, strict=True)}
    floors = {False: best["raw httpx2 iter_bytes()"], True: best["raw httpx2 aiter_bytes()"]}
    writes = "one write per event" if args.chunks == "event" else "16 KiB writes"
    print(
        f"one {TOKENS:,}-token Anthropic answer ({len(body):,} bytes, {body.count(b'data: '):,} events, "
        f"{writes}), client CPU per stream, {rounds} rounds; load average {_load()}"
    )
    print(f"{'contender':<34} {'min ms':>8} {'median':>8} {'vs raw httpx2':>14}")
    for (name, _), spent in zip(runs, times, strict=True):
        floor = floors["Async" in name or "aiter" in name]
        print(
            f"{name:<34} {min(spent) * 1e3:>8.2f} {statistics.median(spent) * 1e3:>8.2f} "
            f"{min(spent) / floor:>13.2f}x"
        )
    return 0


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
