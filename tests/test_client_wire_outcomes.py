"""The client's outcome does not depend on how the network split the body, error cases included, and
the response size limit (``max_response_bytes``) stops a response that grows past it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream import wire
from midstream.client.errors import ProviderError, StreamInterrupted
from midstream.client.stream import DEFAULT_MAX_RESPONSE_BYTES, AsyncClient, Client
from midstream.config import Settings, SettingsError, load_settings
from midstream.core.accumulate import accumulate
from midstream.core.retry import RetryPolicy
from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError
from midstream.events import BlockStart, BlockStop, ResponseEnd, ResponseStart, TextDelta
from midstream.message import Message, TextBlock, Usage
from midstream.sim import running

KEY = "sk-test-outcomes-0123456789"
FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
ANSWER = Message(
    provider="anthropic",
    id="msg_1",
    model="m",
    blocks=(TextBlock(text="The whole answer."),),
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
    assert isinstance(error, StreamInterrupted) and isinstance(error.cause, RemoteProtocolError)
    assert message.terminal == "failed" and message.text == "The whole answer."
    assert error.partial == message
    assert calls == 1, "content was shown: never retried"


# -- max_response_bytes ------------------------------------------------------------------------------

LONG = Message(
    provider="anthropic",
    id="msg_2",
    model="m",
    blocks=(TextBlock(text="word " * 2000),),
    stop_reason="end_turn",
    raw_stop_reason="end_turn",
    usage=Usage(input_tokens=3, output_tokens=2000),
    terminal="completed",
)
# One delta per word, as a model streams it.
LONG_EVENTS = [
    ResponseStart(provider="anthropic", model="m", id="msg_2", usage=Usage(input_tokens=3, output_tokens=1)),
    BlockStart(index=0, type="text"),
    *(TextDelta(0, "word ") for _ in range(2000)),
    BlockStop(0),
    ResponseEnd(
        stop_reason="end_turn", raw_stop_reason="end_turn", usage=Usage(input_tokens=3, output_tokens=2000)
    ),
]
LONG_BODY = wire.encoder("anthropic", realism=False).encode_all(LONG_EVENTS)


def _pieces(data: bytes, size: int = 512) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class _Body:
    """A response body that counts how many of its chunks were read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.pulled = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def _limited_client(body: _Body, cls: type = Client, **options: Any) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        content: Any = body.__aiter__() if cls is AsyncClient else body
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    return cls(
        "anthropic",
        api_key=KEY,
        base_url="http://sim.invalid",
        model="m",
        transport=httpx2.MockTransport(handler),
        retry=FAST,
        **options,
    )


def test_a_response_past_max_response_bytes_stops_failed_with_the_partial_message() -> None:
    body = _Body(_pieces(LONG_BODY))
    limit = 4096
    with _limited_client(body, max_response_bytes=limit) as c:
        stream = c.stream("hi")
        with pytest.raises(LimitExceeded) as info, stream:
            for _ in stream:
                pass
    error = info.value
    assert (error.limit, error.value) == ("max_response_bytes", limit)
    assert "max_response_bytes" in str(error) and "None" in str(error)  # says how to raise or lift it
    message = stream.message
    assert error.partial == message and message.terminal == "failed" and message.partial
    assert message.blocks and not message.blocks[0].complete
    assert 0 < len(message.text) < len(LONG.text)
    assert body.pulled == limit // 512 + 1 < len(body.chunks)  # stopped reading at the bound


def test_max_response_bytes_none_lifts_the_limit_and_the_default_is_generous() -> None:
    body = _Body(_pieces(LONG_BODY))
    with _limited_client(body, max_response_bytes=None) as c, c.stream("hi") as stream:
        assert stream.final().text == LONG.text
    with _limited_client(_Body(_pieces(LONG_BODY))) as c:
        assert c.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 256 * 1024 * 1024


@pytest.mark.parametrize("bad", [0, -1, 1.5, "big", True])
def test_max_response_bytes_must_be_positive(bad: Any) -> None:
    with pytest.raises(LocalError, match="max_response_bytes"):
        Client("anthropic", api_key=KEY, max_response_bytes=bad)


@pytest.mark.anyio
async def test_the_async_client_has_the_same_limit() -> None:
    async def run() -> tuple[Any, Message]:
        body = _Body(_pieces(LONG_BODY))
        async with _limited_client(body, AsyncClient, max_response_bytes=2048) as c:
            stream = c.stream("hi")
            try:
                async with stream:
                    async for _ in stream:
                        pass
            except LimitExceeded as exc:
                return exc, stream.message
        raise AssertionError("no LimitExceeded")

    error, message = await run()
    assert error.limit == "max_response_bytes" and error.partial == message
    assert message.terminal == "failed" and message.text


def test_the_settings_file_sets_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "midstream.toml"
    path.write_text("[client]\nmax_response_bytes = 1024\n")
    options = load_settings(path).client.options()
    assert options["max_response_bytes"] == 1024
    with (
        _limited_client(_Body(_pieces(LONG_BODY)), **options) as c,
        pytest.raises(LimitExceeded, match=r"client\.max_response_bytes"),
        c.stream("hi") as stream,
    ):
        list(stream)
    path.write_text("[client]\nmax_response_bytes = 0\n")
    assert load_settings(path).client.options()["max_response_bytes"] is None  # 0: no limit
    assert "max_response_bytes" not in Settings().client.options()  # absent: the client's default
    path.write_text("[client]\nmax_response_bytes = -5\n")
    with pytest.raises(SettingsError, match=r"client\.max_response_bytes"):
        load_settings(path)


# -- the simulator's request cap ---------------------------------------------------------------------

_PATHS = {
    "anthropic": "/v1/messages",
    "openai-chat": "/v1/chat/completions",
    "openai-responses": "/v1/responses",
    "gemini": "/v1beta/models/m:streamGenerateContent?alt=sse",
    "bedrock": "/model/m/converse-stream",
    "ollama": "/api/chat",
}


@pytest.mark.parametrize("chunked", [False, True])
def test_the_simulator_refuses_a_request_body_past_its_cap(chunked: bool) -> None:
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    with running(speed=0, max_request_bytes=4096) as url:
        for provider, path in _PATHS.items():
            content: Any = iter([big[:1000], big[1000:]]) if chunked else big
            response = httpx2.post(
                f"{url}{path}", content=content, headers={"content-type": "application/json"}
            )
            assert response.status_code == 413, provider
            error = ProviderError.from_response(provider, 413, response.headers, response.content, [])
            assert error.status == 413 and "4096" in str(error), provider
            shape = response.json()
            if provider == "anthropic":
                assert shape["error"]["type"] == "request_too_large"
            elif provider.startswith("openai"):
                assert shape["error"]["type"] == "invalid_request_error"
            elif provider == "gemini":
                assert shape["error"]["code"] == 413
            elif provider == "bedrock":
                assert response.headers["x-amzn-errortype"].startswith("ValidationException")
            else:
                assert "4096" in shape["error"]
        small = {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": 9,
        }
        assert httpx2.post(f"{url}/v1/messages", json=small).status_code == 200


def test_a_response_cut_by_the_limit_is_the_same_whatever_the_chunking() -> None:
    messages = []
    for size in (1, 100, 512, 5000):
        with _limited_client(_Body(_pieces(LONG_BODY, size)), max_response_bytes=3000) as c:
            stream = c.stream("hi")
            with pytest.raises(LimitExceeded), stream:
                list(stream)
            messages.append(stream.message)
    assert all(m == messages[0] for m in messages) and messages[0].text
    fed = wire.decoder("anthropic").feed(LONG_BODY[:3000])  # exactly the bytes under the bound
    assert messages[0].text == accumulate(fed).text
