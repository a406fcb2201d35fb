"""The client yields exactly what decoding the whole body at once gives, whatever the chunking.

For every recorded provider stream in ``../shared/recorded`` (and each cut short at a random point), the
events a ``Client`` and an ``AsyncClient`` yield, tool events included, are the events of the dialect's
decoder fed the whole body, each followed by what the tool tracker derives from it; the Message is their
fold; a response that failed raises after its events. Checked in random chunkings and byte by byte
through a custom transport (no socket: the async client bounds each read itself), and on a real socket
(deadlines kept by the watchdog), plain and gzip-compressed (the compressed body is read decompressed).
"""

from __future__ import annotations

import gzip
import itertools
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream import wire
from midstream.client.providers import decoder_options
from midstream.client.stream import AsyncClient, Client
from midstream.core.accumulate import accumulate
from midstream.core.retry import RetryPolicy
from midstream.core.toolargs import ToolTracker
from midstream.events import Event, ResponseEnd
from wiresupport import RECORDED, sse_from_jsonl

KEY = "sk-test-chunkings-0123456789"
AWS = ("AKIDCHUNKINGS0123456", "chunkings-secret-0123456789")
PROVIDERS = {
    "anthropic": "anthropic",
    "openai_chat": "openai-chat",
    "openai_responses": "openai-responses",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "ollama": "ollama",
}
CONTENT_TYPES = {"bedrock": "application/vnd.amazon.eventstream", "ollama": "application/x-ndjson"}
FILES = sorted(
    path.name
    for path in RECORDED.iterdir()
    if any(path.name.startswith(prefix) for prefix in PROVIDERS) and not path.name.endswith(".md")
)


def _provider(name: str) -> str:
    return next(provider for prefix, provider in PROVIDERS.items() if name.startswith(prefix))


def _body(name: str, cut: bool) -> bytes:
    data = sse_from_jsonl(name) if name.endswith(".jsonl") else (RECORDED / name).read_bytes()
    if cut:  # the connection ends part way: wherever it falls, the outcome is the whole-body decoder's
        data = data[: random.Random(name).randrange(1, len(data))]
    return data


def _expected(provider: str, body: bytes) -> list[Any]:
    decoder = wire.decoder(provider, **decoder_options(provider))
    tracker = ToolTracker({})
    out: list[Any] = []
    for event in decoder.feed(body) + decoder.close():
        out.append(event)
        out.extend(tracker.feed(event))
    return out


def _chunkings(body: bytes, seed: int) -> Iterator[list[bytes]]:
    rng = random.Random(seed)
    yield [body]
    for most in (3, 40, 700):
        cuts = sorted({0, len(body), *(rng.randrange(len(body)) for _ in range(len(body) // most + 1))})
        yield [body[a:b] for a, b in itertools.pairwise(cuts)]
    if len(body) <= 3000:
        yield [body[i : i + 1] for i in range(len(body))]


def _options(provider: str) -> dict[str, Any]:
    options: dict[str, Any] = {"model": "m", "retry": RetryPolicy(max_retries=0)}
    if provider == "bedrock":
        options |= {"region": "us-east-1", "aws_credentials": AWS}
    else:
        options["api_key"] = KEY
    return options


def _check(provider: str, body: bytes, seen: list[Any], message: Any, metrics_events: int) -> None:
    expected = _expected(provider, body)
    events = [item for item in seen if not isinstance(item, BaseException)]
    assert list(map(repr, events)) == list(
        map(repr, expected)
    )  # repr: a tool verdict's error is an exception
    assert message == accumulate([e for e in expected if isinstance(e, Event)])
    assert metrics_events == sum(isinstance(e, Event) for e in expected)
    end = expected[-1]
    assert isinstance(end, ResponseEnd)
    raised = [item for item in seen if isinstance(item, BaseException)]
    assert len(raised) == (end.terminal == "failed") and (not raised or seen[-1] is raised[0])


def _read_sync(client: Client) -> tuple[list[Any], Any, int]:
    seen: list[Any] = []
    stream = client.stream("hi")
    try:
        with stream:
            for event in stream:
                seen.append(event)
    except Exception as exc:
        seen.append(exc)
    return seen, stream.message, stream.metrics.events


async def _read_async(client: AsyncClient) -> tuple[list[Any], Any, int]:
    seen: list[Any] = []
    stream = client.stream("hi")
    try:
        async with stream:
            async for event in stream:
                seen.append(event)
    except Exception as exc:
        seen.append(exc)
    return seen, stream.message, stream.metrics.events


def _mock(provider: str, chunks: list[bytes]) -> httpx2.MockTransport:
    headers = {"content-type": CONTENT_TYPES.get(provider, "text/event-stream")}

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, content=iter(list(chunks)))

    return httpx2.MockTransport(handler)


def _amock(provider: str, chunks: list[bytes]) -> httpx2.MockTransport:
    headers = {"content-type": CONTENT_TYPES.get(provider, "text/event-stream")}

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, content=body())

    return httpx2.MockTransport(handler)


# -- without a socket: a custom transport delivers the chunks exactly as cut -------------------------


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize("name", FILES)
def test_sync_client_in_any_chunking(name: str, cut: bool) -> None:
    provider, body = _provider(name), _body(name, cut)
    for chunks in _chunkings(body, seed=len(body)):
        with Client(provider, transport=_mock(provider, chunks), **_options(provider)) as client:
            _check(provider, body, *_read_sync(client))


@pytest.mark.anyio
@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize("name", FILES)
async def test_async_client_in_any_chunking(name: str, cut: bool) -> None:
    provider, body = _provider(name), _body(name, cut)
    for chunks in _chunkings(body, seed=len(body) + 1):
        async with AsyncClient(provider, transport=_amock(provider, chunks), **_options(provider)) as client:
            _check(provider, body, *(await _read_async(client)))


# -- on a socket, plain and compressed ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        chunks, headers = self.server.plan
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    plan: tuple[list[bytes], dict[str, str]] = ([], {})


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _socket_plans(
    provider: str, body: bytes, compressed: bool
) -> Iterator[tuple[list[bytes], dict[str, str]]]:
    headers = {"content-type": CONTENT_TYPES.get(provider, "text/event-stream")}
    if compressed:
        headers["content-encoding"] = "gzip"
        body = gzip.compress(body)
    for chunks in _chunkings(body, seed=len(body) + 2):
        yield chunks, headers


ON_A_SOCKET = [name for name in FILES if name.startswith(("anthropic_thinking", "openai", "bedrock"))]


def _url(httpd: _Server) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", ON_A_SOCKET)
def test_sync_client_on_a_socket(server: _Server, name: str, compressed: bool) -> None:
    provider, body = _provider(name), _body(name, False)
    with Client(provider, base_url=_url(server), **_options(provider)) as client:
        for plan in _socket_plans(provider, body, compressed):
            server.plan = plan
            _check(provider, body, *_read_sync(client))


@pytest.mark.anyio
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", ON_A_SOCKET)
async def test_async_client_on_a_socket(server: _Server, name: str, compressed: bool) -> None:
    provider, body = _provider(name), _body(name, False)
    async with AsyncClient(provider, base_url=_url(server), **_options(provider)) as client:
        for plan in _socket_plans(provider, body, compressed):
            server.plan = plan
            _check(provider, body, *(await _read_async(client)))


def test_every_recorded_file_is_checked() -> None:
    names = {path.name for path in Path(RECORDED).iterdir() if not path.name.endswith(".md")}
    assert names == set(FILES) and len(FILES) >= 20
