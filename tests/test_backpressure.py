"""Backpressure: a reader of the log that stops reading never holds its producer back (the log is the
buffer, capped per run: the reader resyncs); an ``AsyncClient`` stream whose consumer stops reading
stops reading the socket.

For the client, the server here writes an endless Anthropic answer as fast as the socket takes it and
counts the bytes the kernel accepted. While the consumer iterates, that count races ahead; once it
stops iterating, the client's socket buffers fill, the server's sends block, and the count stops:
nothing piles up in the client's memory. When the consumer goes on, so does the stream.
"""

# ruff: noqa: F811  (pytest fixtures imported from relaysupport)
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from midstream import AsyncClient, TextDelta
from relaysupport import StoreMaker, make_store, redis_url  # noqa: F401  (fixtures)

BOUND = 32 << 20  # bytes: far above the kernel's socket buffers, far below an unbounded reader's haul


def _sse(kind: str, data: dict[str, object]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


class EndlessServer:
    """One connection: headers, the start of an answer, then text deltas until the client leaves."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            with conn:
                conn.recv(65536)
                conn.settimeout(0.2)
                head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []}
                start = _sse("message_start", {"message": {**message, "usage": {"input_tokens": 1}}})
                block = _sse(
                    "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
                )
                delta = _sse(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "x" * 200}}
                )
                pending = head + start + block
                while not self.stop.is_set():
                    try:
                        self.sent += conn.send(pending)
                        pending = delta
                    except TimeoutError:
                        continue  # the client is not reading: wait for room

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def endless() -> Iterator[EndlessServer]:
    server = EndlessServer()
    try:
        yield server
    finally:
        server.close()


def _settled(server: EndlessServer) -> int:
    """The byte count once it stopped moving (it stops when the client's buffers are full)."""
    last = -1
    for _ in range(100):
        time.sleep(0.05)
        if server.sent == last:
            return last
        last = server.sent
    return server.sent


@pytest.mark.anyio
async def test_a_consumer_that_stops_reading_stops_the_socket_reads(endless: EndlessServer) -> None:
    client = AsyncClient("anthropic", api_key="k", base_url=endless.url, model="m")
    stream = client.stream("go on forever")
    seen = 0
    async for event in stream:
        seen += isinstance(event, TextDelta)
        if seen == 50:
            break  # the consumer stops iterating; the stream stays open
    stalled = await asyncio.to_thread(_settled, endless)
    assert stalled < BOUND
    assert await asyncio.to_thread(_settled, endless) - stalled < 256 << 10  # and it stays stalled
    # The consumer goes on: the stream continues where it was, through what the socket buffers held
    # (megabytes here, so a fixed count of deltas may be read from them alone) and past it, which the
    # server only gets to send once the client reads its socket again.
    backlog = stalled // 200 + 2_000  # deltas: more than the buffers can hold (each is over 200 bytes)
    async for event in stream:
        seen += isinstance(event, TextDelta)
        if endless.sent > stalled or seen >= backlog:
            break
    assert endless.sent > stalled
    await stream.aclose()
    await client.aclose()


# -- a slow reader never slows the producer: the log is the buffer ------------------------------------


@pytest.mark.anyio
async def test_a_reader_that_stops_reading_does_not_hold_the_producer_back(make_store: StoreMaker) -> None:
    log = make_store(max_entries=500)
    await log.create("r1")
    lease = await log.acquire("r1", "producer")
    await log.append(lease, "run_start", {"prompt": "hi"})
    stalled = log.read("r1", follow=True).__aiter__()
    first = await stalled.__anext__()  # the reader takes one entry, then stops reading
    for n in range(2_000):  # the producer goes on at its own pace, four times past the per-run cap
        await log.append(lease, "text_delta", {"index": 0, "text": f"{n} "})
    await log.close(lease, "completed")
    assert getattr(first, "seq", None) == 1
    rest = [item async for item in stalled]  # when it reads again: a resync, then what is still kept
    assert rest[0].kind == "resync" and [e.seq for e in rest[1:]] == list(range(rest[0].earliest, 2_002))
    await log.aclose()
