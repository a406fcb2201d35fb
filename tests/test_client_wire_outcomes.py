"""The client's outcome does not depend on how the network split the body, error cases included, and
the response size limit (``max_response_bytes``) stops a response that grows past it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from midstream import wire
from midstream.client.errors import MidStreamError
from midstream.client.stream import Client
from midstream.core.retry import RetryPolicy
from midstream.errors import RemoteProtocolError
from midstream.message import Message, TextBlock, Usage

KEY = "sk-test-outcomes-0123456789"
FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
ANSWER = Message(
    provider="anthropic",
    id="msg_1",
    model="m",
    blocks=(TextBlock("The whole answer."),),
    stop_reason="end_turn",
    raw_stop_reason="end_turn",
    usage=Usage(input_tokens=3, output_tokens=4),
    terminal="completed",
)
BODY = wire.encoder("anthropic", realism=False).encode_message(ANSWER)
GARBAGE = b"event: content_block_delta\ndata: {nope\n\n"


def _client(chunks: list[bytes], calls: list[int], **options: Any) -> Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=iter(list(chunks)))

    options.setdefault("retry", FAST)
    return Client(
        "anthropic",
        api_key=KEY,
        base_url="http://sim.invalid",
        model="m",
        transport=httpx2.MockTransport(handler),
        **options,
    )


def _run(chunks: list[bytes], **options: Any) -> tuple[list[Any], Message, int]:
    calls: list[int] = []
    with _client(chunks, calls, **options) as c:
        stream = c.stream("hi")
        seen: list[Any] = []
        try:
            with stream:
                seen.extend(stream)
        except Exception as exc:
            seen.append(exc)
        return seen, stream.message, len(calls)


def _splits(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    yield [data[:7], data[7:]]


@pytest.mark.parametrize("split", range(3))
def test_a_finished_response_then_garbage_completes_whatever_the_split(split: int) -> None:
    chunks = list(_splits(BODY + GARBAGE))[split]
    seen, message, calls = _run(chunks)
    assert not any(isinstance(e, Exception) for e in seen)
    assert message.terminal == "completed" and message.text == "The whole answer."
    assert calls == 1


@pytest.mark.parametrize("split", range(3))
def test_content_then_garbage_fails_with_the_content_whatever_the_split(split: int) -> None:
    cut = BODY.index(b"event: content_block_stop")
    chunks = list(_splits(BODY[:cut] + GARBAGE))[split]
    seen, message, calls = _run(chunks)
    error = seen[-1]
    assert isinstance(error, MidStreamError) and isinstance(error.cause, RemoteProtocolError)
    assert message.terminal == "failed" and message.text == "The whole answer."
    assert error.partial == message
    assert calls == 1, "content was shown: never retried"
