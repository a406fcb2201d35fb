"""Shared helpers for tests that run the simulator: the example scenarios and reading what it sends
(the ``sim`` and ``paced`` fixtures are in ``conftest.py``)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.message import Message, TextBlock, ThinkingBlock, ToolCall
from midstream.sim import ScenarioBook, SimURL
from midstream.sim.stream import RequestRecord
from midstream.testing import simulator_fixture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scenarios"

# What the showcase scenario's ``save_article`` call sends.
ARTICLE_INPUT = {
    "title": "Partial safety",
    "content": "Streaming makes an assistant feel fast, but every frame a client holds is incomplete. A tool "
    "call whose arguments are still arriving must not run, and a value cut by max_tokens must not pass for a "
    "complete one.",
    "tags": ["streaming", "agents"],
    "draft": False,
}


def example_book() -> ScenarioBook:
    """The example scenarios (``weather.yaml`` and ``showcase.yaml``) as one book."""
    books = [ScenarioBook.load(EXAMPLES / name) for name in ("weather.yaml", "showcase.yaml")]
    return ScenarioBook(scenarios=[s for book in books for s in book.scenarios])


def simulator(book: ScenarioBook | None = None, *, speed: float = 0, name: str = "sim") -> Any:
    """A module-scoped simulator fixture named ``name`` serving ``book`` (the example scenarios when
    ``None``), for a module that needs a simulator besides ``sim`` and ``paced`` (``conftest.py``):
    assign it to a module attribute of the same name."""
    return simulator_fixture(example_book() if book is None else book, speed=speed, name=name)


def fresh(url: str) -> None:
    """Clear the simulator's request log (and with it the fault counters of its scenarios)."""
    httpx2.delete(f"{url}/_sim/requests")


def fault(spec: str) -> dict[str, str]:
    """The request header that asks the simulator for the fault ``spec``."""
    return {"x-midstream-fault": spec}


def last(url: SimURL) -> RequestRecord:
    """The simulator's record of the last request it received."""
    return url.simulator.records[-1]


def disconnect_delay(record: RequestRecord, since: float) -> float:
    """Seconds from ``since`` (our clock) until the simulator saw the client go (waits up to 5 s)."""
    deadline = time.monotonic() + 5.0  # generous for a loaded machine; it returns as soon as it shows
    while record.disconnected_ms is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert record.disconnected is True and record.disconnected_ms is not None
    # Both sides read time.monotonic() in this process; the record counts from the request's arrival.
    return record.arrived + record.disconnected_ms / 1000.0 - since


def decode(dialect: str, data: bytes) -> Message:
    """The Message a whole ``dialect`` body accumulates to."""
    decoder = wire.decoder(dialect)
    return accumulate(decoder.feed(data) + decoder.close())


def our_blocks(message: Message, *, raw_input: bool = False) -> list[tuple[Any, ...]]:
    """The text, thinking and tool-call blocks of ``message`` as tuples, to compare with what an SDK
    read; a tool call carries its parsed ``input``, or with ``raw_input`` its exact argument text."""
    out: list[tuple[Any, ...]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            out.append(("text", block.text))
        elif isinstance(block, ThinkingBlock):
            out.append(("thinking", block.thinking, block.signature))
        elif isinstance(block, ToolCall):
            out.append(("tool_call", block.id, block.name, block.raw_input if raw_input else block.input))
    return out


@dataclass
class Trickle:
    """A :func:`trickling_error_server`: its URL, and what it saw of the client."""

    url: str
    sent: int = 0
    """Body bytes sent before the connection ended."""
    client_hung_up: bool = False
    """The client closed the connection while the body was still trickling (not the server giving up)."""
    ended: threading.Event = field(default_factory=threading.Event)
    """Set when the server stops sending: the client hung up, or 5 s passed."""


@contextlib.contextmanager
def trickling_error_server(status: int = 503, length: int = 200, every: float = 0.1) -> Iterator[Trickle]:
    """A server that answers ``status`` at once, then sends its error body one byte every ``every``
    seconds (for at most 5 s, then it gives up and closes): a body that would take ``length * every``
    seconds to read. The :class:`Trickle` says whether the client hung up first."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    trickle = Trickle(f"http://127.0.0.1:{listener.getsockname()[1]}")

    def serve() -> None:
        try:
            trickle_body()
        finally:
            trickle.ended.set()

    def trickle_body() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                head = f"HTTP/1.1 {status} Oops\r\ncontent-type: application/json\r\n"
                conn.sendall(f"{head}content-length: {length}\r\n\r\n".encode())
                until = time.monotonic() + 5.0
                while not stop.wait(every) and time.monotonic() < until:
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        trickle.client_hung_up = True
                        return
                    trickle.sent += 1
                    # A closed peer shows as readable with nothing to read.
                    readable, _, _ = select.select([conn], [], [], 0)
                    if readable and not conn.recv(1, socket.MSG_PEEK):
                        trickle.client_hung_up = True
                        return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield trickle
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=6.0)
