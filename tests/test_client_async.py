"""The async streaming client against the simulator: every provider, tool calls, retries before content,
failures after it, timeouts, and cancellation by leaving the block, by ``cancel()`` and by cancelling
the task (the simulator sees the disconnect and generates nothing after it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import anyio
import httpx2
import pytest

from midstream.client.errors import (
    ProviderError,
    StreamInterrupted,
    StreamInterruptedByTimeout,
    StreamTimeout,
)
from midstream.client.stream import AsyncClient, AsyncStream, Client
from midstream.client.timeouts import Timeouts
from midstream.core.retry import RetryPolicy
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady, ToolFieldComplete, ToolFieldDelta
from midstream.events import BlockStop, ResponseEnd, ResponseStart, StreamError, TextDelta
from midstream.sim import ScenarioBook, SimURL
from midstream.sim.stream import RequestRecord
from simsupport import disconnect_delay, fault, last, trickling_error_server

T = TypeVar("T")
PROVIDERS = [
    "anthropic",
    "openai-chat",
    "openai-responses",
    "gemini",
    "bedrock",
    "ollama",
    "openai-compatible",
]
KEY = "sk-test-async-0123456789"
STORY = "Partial safety means never mistaking a prefix for the whole."
ARTICLE = {"title": "Partial safety", "content": "Every frame a client holds is incomplete.", "draft": False}
# Long enough (7.5 s paced) that no catch-up burst of a starved simulator can finish it before a cancel
# sent early in it arrives: the cancel tests can count on text still to come.
LONG = " ".join(f"word{n}" for n in range(3000))
PACE = {"ttft_ms": 20, "tokens_per_second": 400, "jitter": 0.1}
LONG_ARTICLE = {**ARTICLE, "content": LONG}
BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {"name": "story", "match": {"last_user": "(?i)story"}, "turns": [{"blocks": [{"text": STORY}]}]},
            {
                "name": "article",
                "match": {"last_user": "(?i)article", "tools": ["save_article"]},
                "turns": [{"blocks": [{"tool_call": {"name": "save_article", "input": ARTICLE}}]}],
            },
            {
                "name": "long",
                "match": {"last_user": "(?i)long"},
                "latency": PACE,
                "turns": [{"blocks": [{"text": LONG}]}],
            },
            {
                "name": "long-tool",
                "match": {"last_user": "(?i)write", "tools": ["save_article"]},
                "latency": PACE,
                "turns": [{"blocks": [{"tool_call": {"name": "save_article", "input": LONG_ARTICLE}}]}],
            },
        ]
    }
)
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.02)
DISCONNECT_BOUND = 0.25  # seconds; the target is 50 ms p95, measured by bench/ttft.py


def save_article(title: str, content: str, draft: bool = True) -> str:
    """Save an article."""
    return "saved"


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


pytestmark = pytest.mark.usefixtures("fresh_sims")


def client(url: str, provider: str = "anthropic", **options: Any) -> AsyncClient:
    options.setdefault("retry", FAST)
    return AsyncClient(provider, api_key=KEY, base_url=url, model="sim-model", **options)


async def drain(stream: AsyncStream) -> list[Any]:
    events: list[Any] = []
    try:
        async for event in stream:
            events.append(event)
    except Exception as exc:
        events.append(exc)
    return events


def assert_stopped_generating(record: RequestRecord) -> None:
    generated = record.tokens_generated
    time.sleep(0.1)
    assert record.tokens_generated == generated and record.tokens_after_disconnect == 0
    assert record.completed is False


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.anyio
async def test_text_from_every_provider(sim: SimURL, provider: str) -> None:
    async with client(sim, provider) as c, c.stream("tell a story") as stream:
        events = [e async for e in stream]
    message = stream.message
    assert message.text == STORY and message.terminal == "completed"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 11)
    assert isinstance(events[0], ResponseStart) and isinstance(events[-1], ResponseEnd)
    assert stream.metrics.bytes == last(sim).bytes_sent and stream.metrics.events == len(events)
    assert stream.metrics.ttft is not None and stream.metrics.terminal == "completed"


@pytest.mark.parametrize("provider", ["anthropic", "openai-chat", "gemini", "bedrock"])
@pytest.mark.anyio
async def test_tool_call(sim: SimURL, provider: str) -> None:
    async with client(sim, provider) as c, c.stream("save the article", tools=[save_article]) as stream:
        events = await drain(stream)
    (ready,) = [e for e in events if isinstance(e, ToolCallReady)]
    assert ready.input == ARTICLE and ready.name == "save_article"
    assert [e.path for e in events if isinstance(e, ToolFieldComplete)] == [
        ("title",),
        ("content",),
        ("draft",),
    ]


@pytest.mark.anyio
async def test_text_stream_and_final(sim: SimURL) -> None:
    async with client(sim, "ollama") as c:
        async with c.stream("tell a story") as stream:
            text = "".join([t async for t in stream.text_stream])
        async with c.stream("tell a story") as again:
            message = await again.final()
        assert (text, message.text) == (STORY, STORY)


@pytest.mark.anyio
async def test_http_errors_are_retried_then_raised(sim: SimURL) -> None:
    async with client(sim, "openai-responses") as c:
        stream = c.stream("tell a story", headers=fault("http_status=429;times=9"))
        with pytest.raises(ProviderError) as info:
            async with stream:
                pass
        assert info.value.status == 429 and info.value.kind == "rate_limited"
    assert [r.status for r in sim.simulator.records] == [429, 429, 429] and stream.metrics.retries == 2


@pytest.mark.anyio
async def test_retries_honour_retry_after_ms(sim: SimURL) -> None:
    async with client(sim, "bedrock") as c:
        async with c.stream("tell a story", headers=fault("http_status=529;retry_after_ms=20;times=2")) as s:
            await s.final()
        stream = s
    assert stream.message.text == STORY and stream.metrics.retries == 2
    assert [r.status for r in sim.simulator.records] == [529, 529, 200]


class FirstOnly(httpx2.AsyncHTTPTransport):
    """Adds a fault header to the first request only."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec, self.left = spec, 1

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.left:
            self.left -= 1
            request.headers["x-midstream-fault"] = self.spec
        return await super().handle_async_request(request)


@pytest.mark.parametrize("spec", ["error_after_events=2", "disconnect_after_bytes=60"])
@pytest.mark.anyio
async def test_a_failure_before_content_is_retried_invisibly(sim: SimURL, spec: str) -> None:
    async with client(sim, transport=FirstOnly(spec)) as c, c.stream("tell a story") as stream:
        events = await drain(stream)
    assert stream.message.text == STORY and stream.metrics.retries == 1
    assert sum(isinstance(e, ResponseStart) for e in events) == 1
    assert not any(isinstance(e, StreamError) for e in events)


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "ollama"])
@pytest.mark.anyio
async def test_a_mid_stream_error_after_content(sim: SimURL, provider: str) -> None:
    async with (
        client(sim, provider) as c,
        c.stream("tell a story", headers=fault("error_after_events=6")) as s,
    ):
        events = await drain(s)
    error = events[-1]
    assert isinstance(error, StreamInterrupted) and isinstance(error.cause, ProviderError)
    assert error.partial.terminal == "failed" and error.partial.text and STORY.startswith(error.partial.text)
    assert isinstance(events[-2], ResponseEnd) and events[-2].terminal == "failed"
    assert len(sim.simulator.records) == 1


@pytest.mark.anyio
async def test_first_byte_timeout(paced: SimURL) -> None:
    async with client(paced, timeouts=Timeouts(first_byte=0.15), retry=RetryPolicy(max_retries=0)) as c:
        with pytest.raises(StreamTimeout) as info:
            async with c.stream("tell a story", headers=fault("first_byte_delay_ms=1500")):
                pass
        assert info.value.which == "first_byte" and not isinstance(info.value, StreamInterrupted)


@pytest.mark.anyio
async def test_idle_timeout_after_content(paced: SimURL) -> None:
    stalled = fault("stall_ms=3000;stall_after_events=8")
    async with client(paced, timeouts=Timeouts(idle=0.15)) as c, c.stream("long", headers=stalled) as s:
        error = (await drain(s))[-1]
    assert isinstance(error, StreamInterruptedByTimeout) and error.which == "idle"
    assert error.partial.text and LONG.startswith(error.partial.text)
    disconnect_delay(last(paced), 0.0)
    assert_stopped_generating(last(paced))


@pytest.mark.anyio
async def test_total_timeout(paced: SimURL) -> None:
    async with client(paced, timeouts=Timeouts(total=1.0)) as c, c.stream("long") as s:
        error = (await drain(s))[-1]
    assert isinstance(error, StreamInterruptedByTimeout) and error.which == "total"


class StallFirst(httpx2.AsyncHTTPTransport):
    """The first request asks the simulator to stall after the response's first event."""

    def __init__(self) -> None:
        super().__init__()
        self.left = 1

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.left:
            self.left -= 1
            request.headers["x-midstream-fault"] = "stall_ms=3000;stall_after_events=1"
        return await super().handle_async_request(request)


@pytest.mark.anyio
async def test_an_idle_timeout_before_content_is_retried_on_a_fresh_connection(paced: SimURL) -> None:
    async with client(paced, timeouts=Timeouts(idle=0.15), transport=StallFirst()) as c:
        async with c.stream("long") as stream:
            message = await stream.final()
        assert stream.metrics.retries == 1 and message.text and LONG.startswith(message.text)
        async with c.stream("long") as again:  # the pool is none the worse for the connection shut
            assert (await again.final()).text == message.text
    assert [r.completed for r in paced.simulator.records] == [False, True, True]


def _stalling(after: bytes) -> httpx2.MockTransport:
    """A custom transport (no socket for the client to shut): ``after``, then nothing for 30 s."""

    async def body() -> Any:
        yield after
        await asyncio.sleep(30)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.MockTransport(handler)


STARTED = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
)


@pytest.mark.anyio
async def test_deadlines_and_cancel_hold_behind_a_transport_without_a_socket() -> None:
    timeouts, retry = Timeouts(idle=0.1), RetryPolicy(max_retries=0)
    async with AsyncClient(
        "anthropic", api_key=KEY, model="m", transport=_stalling(STARTED), timeouts=timeouts, retry=retry
    ) as c:
        async with c.stream("hi") as stream:
            error = (await drain(stream))[-1]
        assert isinstance(error, StreamInterruptedByTimeout) and error.which == "idle"
        assert error.partial.text == "Hi"
    async with AsyncClient("anthropic", api_key=KEY, model="m", transport=_stalling(STARTED)) as c:
        async with c.stream("hi") as stream:
            asyncio.get_running_loop().call_later(0.1, stream.cancel)
            events = await drain(stream)
        assert isinstance(events[-1], ResponseEnd) and events[-1].terminal == "cancelled"
        assert stream.message.text == "Hi"


@pytest.mark.anyio
async def test_leaving_the_block_early_disconnects(paced: SimURL) -> None:
    async with client(paced) as c, c.stream("long") as stream:
        n = 0
        async for _ in stream:
            n += 1
            if n == 40:
                break
        left = time.monotonic()
    assert disconnect_delay(last(paced), left) <= DISCONNECT_BOUND
    assert_stopped_generating(last(paced))
    assert stream.message.terminal == "cancelled" and LONG.startswith(stream.message.text)


@pytest.mark.anyio
async def test_cancel_inside_the_loop(paced: SimURL) -> None:
    async with client(paced) as c, c.stream("long") as stream:
        seen: list[Any] = []
        cancelled = 0.0
        async for event in stream:
            seen.append(event)
            if len(seen) == 30:
                stream.cancel()
                cancelled = time.monotonic()
    assert [type(e) for e in seen[30:]] == [BlockStop, ResponseEnd] and seen[-1].terminal == "cancelled"
    assert disconnect_delay(last(paced), cancelled) <= DISCONNECT_BOUND
    assert_stopped_generating(last(paced))


@pytest.mark.anyio
async def test_cancelling_the_task_closes_the_connection(paced: SimURL) -> None:
    async with client(paced) as c:
        stream = c.stream("long", headers=fault("stall_ms=5000;stall_after_events=10"))

        async def read() -> None:
            async with stream:
                async for _ in stream:
                    pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.2)  # the reader is waiting in the stall by now
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stream.message.terminal == "cancelled" and stream.message.partial
    assert disconnect_delay(last(paced), cancelled) <= DISCONNECT_BOUND
    assert_stopped_generating(last(paced))


@pytest.mark.anyio
async def test_cancel_from_another_task_interrupts_a_read(paced: SimURL) -> None:
    async with client(paced) as c:
        async with c.stream("long", headers=fault("stall_ms=5000;stall_after_events=10")) as stream:
            loop = asyncio.get_running_loop()
            at: list[float] = []
            loop.call_later(0.2, lambda: (at.append(time.monotonic()), stream.cancel()))
            events = await drain(stream)
        cancelled = at[0]
    assert isinstance(events[-1], ResponseEnd) and events[-1].terminal == "cancelled"
    assert disconnect_delay(last(paced), cancelled) <= DISCONNECT_BOUND


@pytest.mark.anyio
async def test_a_cancelled_tool_call_is_never_ready(paced: SimURL) -> None:
    async with client(paced) as c, c.stream("write it", tools=[save_article], eager=True) as stream:
        events: list[Any] = []
        async for event in stream:
            events.append(event)
            if isinstance(event, ToolFieldDelta) and event.path == ("content",):
                stream.cancel()
    assert not any(isinstance(e, ToolCallReady) for e in events)
    (invalid,) = [e for e in events if isinstance(e, ToolCallInvalid)]
    assert invalid.reason == "truncated" and stream.message.tool_calls[0].input is None
    assert any(isinstance(e, TextDelta) for e in events) is False


@pytest.mark.anyio
async def test_a_sync_client_converts_to_an_async_one(sim: SimURL) -> None:
    timeouts, retry = Timeouts(connect=3.0, first_byte=4.0, idle=5.0, total=6.0), RetryPolicy(max_retries=5)
    sync = Client(
        "openai-chat",
        api_key=KEY,
        base_url=sim,
        model="sim-model",
        timeouts=timeouts,
        retry=retry,
        headers={"x-team": "blue"},
        max_response_bytes=1 << 20,
    )
    converted = sync.to_async()
    sync.close()
    assert isinstance(converted, AsyncClient)
    assert (converted.provider, converted.base_url, converted.model) == ("openai-chat", sim, "sim-model")
    assert converted.timeouts is timeouts and converted.retry is retry
    assert converted.max_response_bytes == 1 << 20
    assert converted.headers == {"x-team": "blue"} and converted.headers is not sync.headers
    assert KEY not in repr(converted)

    # the sync client is closed: the async one has its own pool
    async with converted, converted.stream("tell a story") as stream:
        message, headers = await stream.final(), stream.request.headers
    assert message.text == STORY and message.terminal == "completed"
    assert headers["authorization"] == f"Bearer {KEY}" and headers["x-team"] == "blue"


@pytest.mark.anyio
async def test_to_async_keeps_bedrock_credentials_and_takes_a_transport() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(400, json={"message": "no"})

    creds = ("AKIDEXAMPLE0000", "secret-0123456789")
    sync = Client("bedrock", region="eu-west-3", aws_credentials=creds, model="m", max_retries=0)
    converted = sync.to_async(transport=httpx2.MockTransport(handler))
    sync.close()
    assert converted.region == "eu-west-3"

    async with converted:
        with pytest.raises(ProviderError):
            async with converted.stream("hi"):
                pass
    (request,) = seen
    assert request.url.host == "bedrock-runtime.eu-west-3.amazonaws.com"
    assert "Credential=AKIDEXAMPLE0000/" in request.headers["authorization"]


@pytest.mark.anyio
async def test_a_trickling_error_body_is_bounded_by_the_first_byte_timeout() -> None:
    timeouts = Timeouts(first_byte=0.5, total=None)
    with trickling_error_server() as trickle:
        async with client(trickle.url, timeouts=timeouts, retry=RetryPolicy(max_retries=0)) as c:
            with pytest.raises(ProviderError) as info:
                async with c.stream("tell a story"):
                    pass
        assert await anyio.to_thread.run_sync(trickle.ended.wait, 6.0)
        assert info.value.status == 503
        # The client gave up on the body and hung up; it did not wait for the server to stop trickling.
        assert trickle.client_hung_up and trickle.sent < 200
