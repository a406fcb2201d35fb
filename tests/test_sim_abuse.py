"""The simulator under abuse: every bad request gets the provider's own 4xx error shape (never a 500 or a
dropped connection), slow connections are closed, connections are bounded, and logs are rate-limited."""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from midstream.sim import SimURL, running
from midstream.sim._guard import RateLimit
from simsupport import example_book, simulator

sim = simulator()

ANTHROPIC = {"model": "m", "max_tokens": 50, "stream": True}


def anthropic(content: str) -> dict[str, Any]:
    return {**ANTHROPIC, "messages": [{"role": "user", "content": content}]}


HI = json.dumps(anthropic("hi")).encode()
GEMINI = "/v1beta/models/m:streamGenerateContent?alt=sse"
FAULTS = [
    "http_status=99",
    "http_status=0",
    "http_status=-1",
    "http_status=600",
    "http_status=1000",
    "http_status=4294967296",
    "stall_ms=-5",
    "times=-1",
    "error_after_events=-1",
    "first_byte_delay_ms=99999999999",
]
BAD: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("a lone surrogate", "/v1/messages", json.dumps(anthropic("hi \ud800 there")).encode(), {}),
    ("a lone surrogate in UTF-8", "/v1/messages", HI.replace(b'"hi"', b'"\xed\xa0\x80"'), {}),
    ("gemini, a lone surrogate", GEMINI,
     json.dumps({"contents": [{"parts": [{"text": "\ud800"}]}]}).encode(), {}),
    ("bedrock, a lone surrogate", "/model/m/converse-stream",
     json.dumps({"messages": [{"role": "user", "content": [{"text": "\udfff"}]}]}).encode(), {}),
    ("Infinity", "/v1/messages", HI.replace(b'"max_tokens": 50', b'"max_tokens": Infinity'), {}),
    ("a number out of range", "/v1/messages", HI.replace(b"50", b"1e400"), {}),
    *[(f"fault {spec}", "/v1/messages", HI, {"x-midstream-fault": spec}) for spec in FAULTS],
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "body", "headers"), BAD, ids=[case[0] for case in BAD])
def test_every_bad_request_gets_the_providers_4xx_shape(
    sim: SimURL, name: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = httpx2.post(
        f"{sim}{path}", content=body, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 400, response.text
    error = response.json()
    if path.startswith("/v1/messages"):
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    elif path.startswith("/v1beta"):
        assert error["error"]["status"] == "INVALID_ARGUMENT"
    else:
        assert "message" in error


@pytest.mark.parametrize(
    "schema", [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}, {"type": "null"}]
)
@pytest.mark.parametrize("provider", ["ollama", "anthropic", "openai-chat"])
def test_unusual_tool_schemas_get_a_whole_stream(sim: SimURL, provider: str, schema: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "hello"}]
    if provider == "ollama":
        tools: Any = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        path, body = "/api/chat", {"model": "m", "stream": True, "messages": messages, "tools": tools}
    elif provider == "anthropic":
        path, body = (
            "/v1/messages",
            {**ANTHROPIC, "messages": messages, "tools": [{"name": "f", "input_schema": schema}]},
        )
    else:
        tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        path, body = (
            "/v1/chat/completions",
            {"model": "m", "stream": True, "messages": messages, "tools": tools},
        )
    from midstream import wire
    from midstream.core.accumulate import accumulate

    response = httpx2.post(f"{sim}{path}", json=body)
    assert response.status_code == 200
    events = wire.decoder(provider)
    message = accumulate([*events.feed(response.content), *events.close()])
    assert message.terminal == "completed" and message.tool_calls[0].input == {}


@pytest.fixture
def guarded_sim() -> Iterator[SimURL]:
    with running(example_book(), speed=0, header_timeout=0.3, body_timeout=0.5, max_connections=3) as url:
        yield url


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_connection_that_never_finishes_its_headers_is_closed(guarded_sim: SimURL) -> None:
    slow = socket.create_connection(address(guarded_sim), timeout=10)
    slow.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    assert slow.recv(1024) == b""  # the server hung up instead of waiting for ever
    slow.close()
    assert httpx2.get(f"{guarded_sim}/_sim/requests").status_code == 200  # still answering


def test_a_body_trickled_in_too_slowly_gets_a_408_and_the_connection_closes(guarded_sim: SimURL) -> None:
    body = json.dumps({**ANTHROPIC, "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    slow = socket.create_connection(address(guarded_sim), timeout=10)
    # One byte every 50 ms, never idle for long and never done in time, and not one byte more once the
    # answer arrives: a byte sent to a closed connection draws a reset, which would discard the answer
    # still unread on this side.
    answer = b""
    try:
        slow.sendall(head)
        for byte in body[:-1]:
            readable, _, _ = select.select([slow], [], [], 0.05)
            if readable:
                break
            slow.sendall(bytes([byte]))
        while chunk := slow.recv(65536):  # until the server hangs up
            answer += chunk
    finally:
        slow.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    error = json.loads(payload)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "0.5 s" in error["error"]["message"]
    (record,) = [r for r in httpx2.get(f"{guarded_sim}/_sim/requests").json() if r["status"] == 408]
    assert record["path"] == "/v1/messages" and record["completed"] and not record["disconnected"]


def test_connections_beyond_the_limit_are_refused_with_503(guarded_sim: SimURL) -> None:
    held = [socket.create_connection(address(guarded_sim), timeout=10) for _ in range(3)]
    try:
        with httpx2.Client() as client:
            response = client.get(f"{guarded_sim}/_sim/requests")
        assert response.status_code == 503
    finally:
        for sock in held:
            sock.close()


def test_logs_are_rate_limited() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, window=10.0, clock=lambda: now[0])
    records = [
        logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, "boom %d", (i,), None) for i in range(100)
    ]
    passed = [r for r in records if limit.filter(r)]
    assert [r.getMessage() for r in passed] == ["boom 0", "boom 1", "boom 2"]
    now[0] = 11.0
    later = logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, "boom %d", (100,), None)
    assert limit.filter(later) and later.getMessage() == "(97 similar log records were held back) boom 100"
