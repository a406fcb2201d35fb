"""The sync streaming client against the simulator: every provider's text and tool calls, HTTP errors,
retries (invisible before content, absent after it), mid-stream failures, each timeout, cancellation
(the simulator sees the disconnect and generates nothing after it), and the metrics; plus the sans-IO
deadline and metrics arithmetic with a fake clock."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from midstream.client.errors import (
    ProviderError,
    StreamInterrupted,
    StreamInterruptedByTimeout,
    StreamTimeout,
    TransportError,
)
from midstream.client.stream import Client, Stream
from midstream.client.timeouts import Deadlines, Timeouts, Watchdog
from midstream.core.retry import RetryPolicy
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady, ToolFieldComplete, ToolFieldDelta
from midstream.errors import LocalError, RemoteProtocolError
from midstream.events import (
    BlockStop,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
    ToolArgsDelta,
)
from midstream.message import Message
from midstream.metrics import MetricsRecorder, percentile
from midstream.sim import ScenarioBook, SimURL
from midstream.sim.stream import RequestRecord
from simsupport import disconnect_delay, fault, last, trickling_error_server

PROVIDERS = [
    "anthropic",
    "openai-chat",
    "openai-responses",
    "gemini",
    "bedrock",
    "ollama",
    "openai-compatible",
]
KEY = "sk-test-client-0123456789"
STORY = "Partial safety means never mistaking a prefix for the whole."
ARTICLE = {
    "title": "Partial safety",
    "content": "Every frame a client holds is incomplete.",
    "tags": ["streaming", "agents"],
    "draft": False,
}
# Long enough (7.5 s paced) that no catch-up burst of a starved simulator can finish it before a cancel
# sent early in it arrives: the cancel tests can count on text still to come.
LONG = " ".join(f"word{n}" for n in range(3000))
PACE = {"ttft_ms": 20, "tokens_per_second": 400, "jitter": 0.1}
CALL = {"tool_call": {"name": "save_article", "input": ARTICLE}}
LONG_CALL = {"tool_call": {"name": "save_article", "input": {**ARTICLE, "content": LONG}}}
BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {"name": "story", "match": {"last_user": "(?i)story"}, "turns": [{"blocks": [{"text": STORY}]}]},
            {
                "name": "article",
                "match": {"last_user": "(?i)article", "tools": ["save_article"]},
                "turns": [{"blocks": [{"text": "Saving it."}, CALL]}],
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
                "turns": [{"blocks": [LONG_CALL]}],
            },
        ]
    }
)
RAW_STOP = {
    "anthropic": "end_turn",
    "openai-chat": "stop",
    "openai-responses": "completed",
    "gemini": "STOP",
    "bedrock": "end_turn",
    "ollama": "stop",
    "openai-compatible": "stop",
}
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.02)
DISCONNECT_BOUND = 0.25  # seconds; the target is 50 ms p95, measured by bench/ttft.py


def save_article(title: str, content: str, tags: list[str], draft: bool = True) -> str:
    """Save an article."""
    return "saved"


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


pytestmark = pytest.mark.usefixtures("fresh_sims")


def client(url: str, provider: str = "anthropic", **options: Any) -> Client:
    options.setdefault("retry", FAST)
    return Client(provider, api_key=KEY, base_url=url, model="sim-model", **options)


def drain(stream: Stream) -> list[Any]:
    events: list[Any] = []
    try:
        for event in stream:
            events.append(event)
    except Exception as exc:
        events.append(exc)
    return events


def normalized(events: list[Any]) -> list[Any]:
    return [
        e for e in events if isinstance(e, StreamError | ResponseStart | ResponseEnd | TextDelta | BlockStop)
    ]


def assert_stopped_generating(url: SimURL, record: RequestRecord) -> None:
    assert record.tokens_after_disconnect == 0
    generated = record.tokens_generated
    time.sleep(0.1)  # longer than several tokens of the paced answer
    assert record.tokens_generated == generated and record.tokens_after_disconnect == 0
    assert record.completed is False


# -- every provider --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_from_every_provider(sim: SimURL, provider: str) -> None:
    with client(sim, provider) as c, c.stream("tell a story") as stream:
        events = list(stream)
    message = stream.message
    assert message.text == STORY and message.terminal == "completed" and not message.partial
    assert message.stop_reason == "end_turn" and message.raw_stop_reason == RAW_STOP[provider]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 11)
    assert isinstance(events[0], ResponseStart) and isinstance(events[-1], ResponseEnd)
    assert sum(isinstance(e, ResponseEnd) for e in events) == 1
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == STORY
    record, metrics = last(sim), stream.metrics
    assert record.completed and not record.disconnected and record.scenario == "story"
    assert metrics.bytes == record.bytes_sent and metrics.chunks >= 1
    assert metrics.events == len(events)  # no tool events here: every event is a normalized one
    assert metrics.mean_chunk_size == pytest.approx(metrics.bytes / metrics.chunks)
    assert metrics.retries == 0 and metrics.terminal == "completed" and metrics.provider
    assert metrics.ttft is not None and metrics.duration is not None and 0 < metrics.ttft <= metrics.duration
    assert metrics.time_to_first_tool_byte is None
    assert stream.done and stream.final() == message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_call_from_every_provider(sim: SimURL, provider: str) -> None:
    with client(sim, provider) as c, c.stream("save the article", tools=[save_article]) as stream:
        events = list(stream)
    ready = [e for e in events if isinstance(e, ToolCallReady)]
    assert len(ready) == 1 and ready[0].name == "save_article" and ready[0].input == ARTICLE
    fields = [e.path for e in events if isinstance(e, ToolFieldComplete)]
    assert fields == [("title",), ("content",), ("tags", 0), ("tags", 1), ("tags",), ("draft",)]
    content = "".join(e.text for e in events if isinstance(e, ToolFieldDelta) and e.path == ("content",))
    assert content == ARTICLE["content"]
    assert events.index(ready[0]) > max(i for i, e in enumerate(events) if isinstance(e, ToolFieldComplete))
    message = stream.message
    assert message.text == "Saving it." and message.stop_reason == "tool_use"
    assert message.tool_calls[0].input == ARTICLE and message.tool_calls[0].name == "save_article"
    metrics = stream.metrics
    assert metrics.ttft is not None and metrics.time_to_first_tool_byte is not None
    assert metrics.ttft <= metrics.time_to_first_tool_byte
    assert metrics.events == sum(
        not type(e).__name__.startswith("Tool") or isinstance(e, ToolArgsDelta) for e in events
    )


def test_text_stream_then_final(sim: SimURL) -> None:
    with client(sim, "openai-chat") as c, c.stream("tell a story") as stream:
        assert "".join(stream.text_stream) == STORY
        assert stream.final().text == STORY


def test_iterating_without_a_with_block(sim: SimURL) -> None:
    with client(sim, "gemini") as c:
        stream = c.stream("tell a story")
        assert stream.final().text == STORY  # the request goes out at the first read


def test_max_tokens_cuts_a_tool_call_which_is_never_ready(sim: SimURL) -> None:
    with (
        client(sim, "openai-chat") as c,
        c.stream("save the article", tools=[save_article], max_tokens=12) as s,
    ):
        events = list(s)
    assert not any(isinstance(e, ToolCallReady) for e in events)
    invalid = [e for e in events if isinstance(e, ToolCallInvalid)]
    assert len(invalid) == 1 and invalid[0].reason == "truncated"
    message = s.final()  # truncated is an honest ending, not an error
    assert message.terminal == "truncated" and message.partial and message.stop_reason == "max_tokens"
    assert message.tool_calls[0].input is None and message.tool_calls[0].error == "truncated"


def test_a_model_is_required() -> None:
    with Client("anthropic", api_key=KEY) as c, pytest.raises(LocalError, match="no model"):
        c.stream("hi")


# -- HTTP errors and retries -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_http_error_is_a_provider_error_and_not_retried(sim: SimURL, provider: str) -> None:
    with client(sim, provider) as c:
        stream = c.stream("tell a story", headers=fault("http_status=400;times=9"))
        with pytest.raises(ProviderError) as info, stream:
            pass
    error = info.value
    assert error.status == 400 and error.retryable is False and error.provider
    assert "simulated 400" in str(error) and error.payload
    assert error.partial is not None and error.partial.terminal == "failed"
    assert len(sim.simulator.records) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_retried_then_raised(sim: SimURL, provider: str) -> None:
    with client(sim, provider) as c:
        stream = c.stream("tell a story", headers=fault("http_status=429;times=9"))
        with pytest.raises(ProviderError) as info, stream:
            pass
    assert info.value.status == 429 and info.value.kind == "rate_limited" and info.value.retryable
    assert [r.status for r in sim.simulator.records] == [429, 429, 429]
    assert stream.metrics.retries == 2 and stream.metrics.terminal == "failed"


def test_retries_honour_retry_after_ms(sim: SimURL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="midstream.client")
    with (
        client(sim) as c,
        c.stream("tell a story", headers=fault("http_status=529;retry_after_ms=40;times=2")) as s,
    ):
        message = s.final()
    assert message.text == STORY and message.terminal == "completed"
    assert [r.status for r in sim.simulator.records] == [529, 529, 200]
    assert s.metrics.retries == 2
    retries = [r.getMessage() for r in caplog.records if r.name == "midstream.client"]
    assert len(retries) == 2 and all("in 0.040 s" in m and "HTTP 529" in m for m in retries)
    assert "retry 1 of 2" in retries[0] and "retry 2 of 2" in retries[1]


def test_retries_honour_retry_after_seconds(sim: SimURL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="midstream.client")
    with (
        client(sim, "gemini") as c,
        c.stream("tell a story", headers=fault("http_status=503;retry_after=0.05")) as s,
    ):
        assert s.final().text == STORY
    (message,) = [r.getMessage() for r in caplog.records if r.name == "midstream.client"]
    assert "the server asked for 0.050 s" in message


class BodyOnlyDelays(httpx2.HTTPTransport):
    """Google's way: how long to wait is in the error body's RetryInfo, no Retry-After header."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        for name in ("retry-after", "retry-after-ms"):
            if name in response.headers:
                del response.headers[name]
        return response


def test_retries_honour_gemini_retry_info(sim: SimURL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="midstream.client")
    rate_limited = fault("http_status=429;retry_after_ms=70")
    with (
        client(sim, "gemini", transport=BodyOnlyDelays()) as c,
        c.stream("tell a story", headers=rate_limited) as s,
    ):
        assert s.final().text == STORY
    (message,) = [r.getMessage() for r in caplog.records if r.name == "midstream.client"]
    assert "the server asked for 0.070 s" in message


def test_without_a_server_delay_retries_back_off(sim: SimURL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="midstream.client")
    with client(sim, "ollama") as c, c.stream("tell a story", headers=fault("http_status=500;times=2")) as s:
        assert s.final().text == STORY
    messages = [r.getMessage() for r in caplog.records if r.name == "midstream.client"]
    assert len(messages) == 2 and all("backoff" in m for m in messages)


def test_max_retries_zero(sim: SimURL) -> None:
    with client(sim, retry=None, max_retries=0) as c:
        stream = c.stream("tell a story", headers=fault("http_status=529;times=1"))
        with pytest.raises(ProviderError), stream:
            pass
    assert len(sim.simulator.records) == 1


class FirstOnly(httpx2.HTTPTransport):
    """Adds a fault header to the first ``n`` requests only, so the retry can succeed."""

    def __init__(self, spec: str, n: int = 1) -> None:
        super().__init__()
        self.spec, self.left = spec, n

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.left > 0:
            self.left -= 1
            request.headers["x-midstream-fault"] = self.spec
        return super().handle_request(request)


@pytest.mark.parametrize(
    "spec",
    [
        "error_after_events=2;error=overloaded",  # after the start of the response, before any text
        "disconnect_after_bytes=60",  # the connection drops inside the first frame
    ],
)
def test_a_failure_before_content_is_retried_invisibly(sim: SimURL, spec: str) -> None:
    with client(sim, transport=FirstOnly(spec)) as c, c.stream("tell a story") as stream:
        events = list(stream)
    assert stream.message.text == STORY and stream.message.terminal == "completed"
    assert sum(isinstance(e, ResponseStart) for e in events) == 1  # the failed attempt never showed
    assert not any(isinstance(e, StreamError) for e in events)
    assert stream.metrics.retries == 1
    first, second = sim.simulator.records
    assert first.fault is not None and second.fault is None and second.completed


def test_a_failure_before_content_that_persists(sim: SimURL) -> None:
    with client(sim) as c:
        stream = c.stream("tell a story", headers=fault("error_after_events=1"))
        with stream, pytest.raises(ProviderError) as info:
            events = drain(stream)
            raise events[-1]
    assert info.value.status is None and info.value.kind == "overloaded" and info.value.retryable
    assert len(sim.simulator.records) == 3 and stream.metrics.retries == 2
    kinds = [type(e).__name__ for e in normalized(events)]
    assert kinds == ["ResponseStart", "StreamError", "ResponseEnd"]  # the last attempt, closed honestly
    assert stream.message.terminal == "failed"


# -- failures after content ------------------------------------------------------------------------

MID_STREAM_KINDS = {
    "anthropic": "overloaded",
    "openai-chat": "server",  # OpenAI has no "overloaded" error type
    "openai-responses": "server",
    "gemini": "overloaded",
    "bedrock": "overloaded",
    "ollama": "overloaded",
    "openai-compatible": "server",
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_mid_stream_error_after_content_carries_the_partial_message(sim: SimURL, provider: str) -> None:
    with client(sim, provider) as c, c.stream("tell a story", headers=fault("error_after_events=6")) as s:
        events = drain(s)
    error = events[-1]
    assert isinstance(error, StreamInterrupted) and not isinstance(error, StreamTimeout)
    partial = error.partial
    assert partial.terminal == "failed" and partial.partial
    assert partial.text and STORY.startswith(partial.text) and partial.text != STORY
    assert isinstance(error.cause, ProviderError) and error.cause.kind == MID_STREAM_KINDS[provider]
    assert error.kind == MID_STREAM_KINDS[provider]
    closing = normalized(events[:-1])[-2:]
    assert isinstance(closing[0], StreamError) and isinstance(closing[1], ResponseEnd)
    assert closing[1].terminal == "failed"
    assert len(sim.simulator.records) == 1  # never retried after content
    with pytest.raises(StreamInterrupted):
        s.final()


def test_a_dropped_connection_after_content(sim: SimURL) -> None:
    with (
        client(sim, "ollama") as c,
        c.stream("tell a story", headers=fault("disconnect_after_bytes=500")) as s,
    ):
        events = drain(s)
    error = events[-1]
    assert isinstance(error, StreamInterrupted) and isinstance(error.cause, TransportError)
    assert error.partial.text and STORY.startswith(error.partial.text)
    assert error.partial.error.error_kind == "transport" and error.kind == "transport"
    assert len(sim.simulator.records) == 1


def test_malformed_bytes_are_a_protocol_error_never_retried(sim: SimURL) -> None:
    with client(sim, "openai-responses") as c:
        stream = c.stream("tell a story", headers=fault("malformed_after_events=1"))
        with pytest.raises(RemoteProtocolError), stream:
            list(stream)
        assert len(sim.simulator.records) == 1 and stream.message.terminal == "failed"
        with c.stream("tell a story", headers=fault("malformed_after_events=6")) as s:
            error = drain(s)[-1]
    assert isinstance(error, StreamInterrupted) and isinstance(error.cause, RemoteProtocolError)
    assert error.partial.error.error_kind == "protocol"


# -- timeouts --------------------------------------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[str]:
    """A listener whose accept queue is full: a new connection attempt hangs until it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for sock in [*fillers, listener]:
        sock.close()


def test_connect_timeout(unreachable: str) -> None:
    with client(unreachable, timeouts=Timeouts(connect=0.2), retry=RetryPolicy(max_retries=0)) as c:
        stream = c.stream("tell a story")
        with pytest.raises(StreamTimeout) as info, stream:
            pass
    assert info.value.which == "connect" and info.value.seconds == 0.2
    assert not isinstance(info.value, StreamInterrupted)


def test_first_byte_timeout_is_retried_then_raised(paced: SimURL) -> None:
    timeouts = Timeouts(first_byte=0.15)
    with client(paced, timeouts=timeouts, retry=RetryPolicy(max_retries=1, initial_delay=0.01)) as c:
        stream = c.stream("tell a story", headers=fault("first_byte_delay_ms=1500;times=9"))
        with pytest.raises(StreamTimeout) as info, stream:
            pass
    assert info.value.which == "first_byte" and not isinstance(info.value, StreamInterrupted)
    assert len(paced.simulator.records) == 2 and stream.metrics.retries == 1


def test_idle_timeout_after_content(paced: SimURL) -> None:
    with client(paced, timeouts=Timeouts(idle=0.15)) as c:
        stream = c.stream("long", headers=fault("stall_ms=3000;stall_after_events=8"))
        with stream:
            events = drain(stream)
    error = events[-1]
    assert isinstance(error, StreamInterruptedByTimeout) and isinstance(error, StreamTimeout)
    assert isinstance(error, StreamInterrupted) and error.which == "idle" and error.seconds == 0.15
    assert error.partial.text and LONG.startswith(error.partial.text) and error.partial.terminal == "failed"
    assert error.partial.error.error_kind == "timeout"
    record = last(paced)
    disconnect_delay(record, 0.0)
    assert_stopped_generating(paced, record)


def test_idle_timeout_before_content(paced: SimURL) -> None:
    with client(paced, timeouts=Timeouts(idle=0.15), retry=RetryPolicy(max_retries=0)) as c:
        stream = c.stream("long", headers=fault("stall_ms=3000;stall_after_events=1"))
        with stream, pytest.raises(StreamTimeout) as info:
            raise drain(stream)[-1]
    assert info.value.which == "idle" and not isinstance(info.value, StreamInterrupted)


def test_total_timeout(paced: SimURL) -> None:
    with client(paced, timeouts=Timeouts(total=1.0)) as c, c.stream("long") as stream:
        error = drain(stream)[-1]
    assert isinstance(error, StreamInterruptedByTimeout) and error.which == "total"
    assert error.partial.text and error.partial.text != LONG


# -- cancellation ----------------------------------------------------------------------------------


def test_leaving_the_block_early_disconnects(paced: SimURL) -> None:
    with client(paced) as c:
        with c.stream("long") as stream:
            for n, _ in enumerate(stream):
                if n == 40:
                    break
            left = time.monotonic()
        assert disconnect_delay(last(paced), left) <= DISCONNECT_BOUND
    assert_stopped_generating(paced, last(paced))
    message = stream.message
    assert message.terminal == "cancelled" and message.partial and LONG.startswith(message.text)
    assert stream.metrics.terminal == "cancelled"


def test_cancel_inside_the_loop_ends_the_events_honestly(paced: SimURL) -> None:
    with client(paced) as c, c.stream("long") as stream:
        seen = []
        for event in stream:
            seen.append(event)
            if len(seen) == 30:
                stream.cancel()
                cancelled = time.monotonic()
    assert disconnect_delay(last(paced), cancelled) <= DISCONNECT_BOUND
    assert_stopped_generating(paced, last(paced))
    tail = seen[30:]
    assert [type(e) for e in tail] == [BlockStop, ResponseEnd]
    assert tail[0].complete is False and tail[1].terminal == "cancelled"
    assert stream.final().terminal == "cancelled"  # no error: the caller chose to stop


def test_cancel_from_another_thread_interrupts_a_blocked_read(paced: SimURL) -> None:
    at: dict[str, float] = {}
    with client(paced) as c, c.stream("long", headers=fault("stall_ms=5000;stall_after_events=10")) as stream:

        def cancel_soon() -> None:
            time.sleep(0.2)  # the reader is blocked in the stall by now
            at["cancel"] = time.monotonic()
            stream.cancel()

        threading.Thread(target=cancel_soon).start()
        events = list(stream)
    assert isinstance(events[-1], ResponseEnd) and events[-1].terminal == "cancelled"
    assert disconnect_delay(last(paced), at["cancel"]) <= DISCONNECT_BOUND
    assert_stopped_generating(paced, last(paced))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_closes_the_connection(paced: SimURL) -> None:
    at: dict[str, float] = {}
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        time.sleep(0.2)
        at["sigint"] = time.monotonic()
        signal.pthread_kill(main, signal.SIGINT)

    with client(paced) as c:
        stream = c.stream("long", headers=fault("stall_ms=5000;stall_after_events=10"))
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt), stream:
            for _ in stream:
                pass
    assert stream.message.terminal == "cancelled" and stream.message.partial
    assert disconnect_delay(last(paced), at["sigint"]) <= DISCONNECT_BOUND
    assert_stopped_generating(paced, last(paced))


def test_a_cancelled_tool_call_is_never_ready(paced: SimURL) -> None:
    with client(paced) as c, c.stream("write it", tools=[save_article], eager=True) as stream:
        events = []
        for event in stream:
            events.append(event)
            if isinstance(event, ToolFieldDelta) and event.path == ("content",):
                stream.cancel()
    assert not any(isinstance(e, ToolCallReady) for e in events)
    (invalid,) = [e for e in events if isinstance(e, ToolCallInvalid)]
    assert invalid.reason == "truncated" and invalid.raw.startswith('{"title"')
    assert stream.message.tool_calls[0].input is None and stream.message.terminal == "cancelled"


def test_cancel_before_sending_sends_nothing(sim: SimURL) -> None:
    with client(sim) as c:
        stream = c.stream("tell a story")
        stream.cancel()
        with stream:
            events = list(stream)
    assert [type(e) for e in events] == [ResponseStart, ResponseEnd] and events[-1].terminal == "cancelled"
    assert len(sim.simulator.records) == 0


# -- transport errors ------------------------------------------------------------------------------


def test_connection_refused_is_retried_then_a_transport_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with client(f"http://127.0.0.1:{port}") as c:
        stream = c.stream("tell a story")
        with pytest.raises(TransportError, match="could not connect to anthropic"), stream:
            pass
    assert stream.metrics.retries == 2 and stream.message.terminal == "failed"


def test_a_trickling_error_body_is_bounded_by_the_first_byte_timeout() -> None:
    timeouts, once = Timeouts(first_byte=0.5, total=None), RetryPolicy(max_retries=0)
    with trickling_error_server() as trickle, client(trickle.url, timeouts=timeouts, retry=once) as c:
        stream = c.stream("tell a story")
        with pytest.raises(ProviderError) as info, stream:
            pass
        assert trickle.ended.wait(6.0)
    assert info.value.status == 503 and stream.message.terminal == "failed"
    # The client gave up on the body and hung up; it did not wait for the server to stop trickling.
    assert trickle.client_hung_up and trickle.sent < 200


def test_x_should_retry_is_obeyed() -> None:
    answers: list[tuple[int, str]] = []
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        status, verdict = answers[len(calls)]
        calls.append(status)
        return httpx2.Response(status, headers={"x-should-retry": verdict}, json={"error": "nope"})

    with client("http://sim.invalid", transport=httpx2.MockTransport(handler)) as c:
        answers[:] = [(500, "false")]
        with pytest.raises(ProviderError) as info, c.stream("tell a story"):
            pass
        assert calls == [500] and info.value.retryable is False
        calls.clear()
        answers[:] = [(400, "true")] * 3  # a 400 the server says is worth retrying
        with pytest.raises(ProviderError) as info, c.stream("tell a story"):
            pass
        assert calls == [400, 400, 400] and info.value.retryable is True


def test_a_response_that_is_not_a_stream_is_a_protocol_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="<html>a captive portal</html>\n")

    with client("http://sim.invalid", "ollama", transport=httpx2.MockTransport(handler)) as c:
        stream = c.stream("tell a story")
        with pytest.raises(RemoteProtocolError), stream:
            list(stream)
    assert stream.message.terminal == "failed" and stream.message.error.error_kind == "protocol"


# -- the sans-IO arithmetic: deadlines, metrics, the watchdog -------------------------------------


def test_deadlines() -> None:
    d = Deadlines(Timeouts(connect=5, first_byte=10, idle=3, total=12), start=100.0)
    assert d.connect(100.0) == (5.0, "connect")
    assert d.connect(108.0) == (4.0, "total")
    d.attempt(101.0)
    assert d.first_byte(101.0) == (10.0, "first_byte")
    d.attempt(103.0)
    assert d.first_byte(103.0) == (9.0, "total")  # the whole call ends at 112, before 113
    assert d.read_deadline(103.5, started=False) == (112.0, "total")
    assert d.read_deadline(105.0, started=True) == (108.0, "idle")
    assert d.read_deadline(110.0, started=True) == (112.0, "total")
    assert d.idle_deadline(105.0) == 108.0 and d.idle_deadline(110.0) == 112.0
    assert d.expired(108.0, started=True) == "idle"
    assert d.expired(108.0, started=False) == "first_byte"
    assert d.expired(112.0, started=True) == "total"
    assert d.time_left(107.0) == 5.0
    assert d.connect(113.0) == (0.0, "total")


def test_deadlines_without_timeouts() -> None:
    d = Deadlines(Timeouts(connect=None, first_byte=None, idle=None, total=None), start=0.0)
    assert d.connect(1.0) == (None, "total") and d.first_byte(1.0) == (None, "total")
    assert d.read_deadline(1.0, started=True) == (None, "total")
    assert d.idle_deadline(1.0) == float("inf") and d.time_left(1.0) is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([3.0], 0.95, 3.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([4.0, 1.0, 3.0, 2.0], 0.95, 4.0),
     ([float(n) for n in range(1, 101)], 0.95, 95.0), ([float(n) for n in range(1, 101)], 0.5, 50.0),
     ([5.0, 1.0], 0.0, 1.0), ([5.0, 1.0], 1.0, 5.0)],
)  # fmt: skip
def test_percentile(values: list[float], fraction: float, expected: float | None) -> None:
    assert percentile(values, fraction) == expected


def test_metrics_with_a_fake_clock() -> None:
    m = MetricsRecorder(100.0, provider="anthropic")
    m.attempt(100.0, retry=False)
    m.chunk(100.1, 50)
    m.events_seen(100.1, [ResponseStart(provider="anthropic")])
    m.chunk(100.3, 20)
    m.events_seen(100.3, [TextDelta(0, ""), TextDelta(0, "Hi")])
    m.chunk(100.35, 30)
    m.events_seen(100.35, [ToolArgsDelta(1, ""), ToolArgsDelta(1, '{"a"')])
    snap = m.snapshot(100.4)
    assert snap.duration == pytest.approx(0.4) and snap.terminal is None
    m.end(100.5, "completed")
    m.end(100.9, "failed")  # only the first ending counts
    s = m.snapshot(200.0)
    assert s.ttft == pytest.approx(0.3) and s.time_to_first_tool_byte == pytest.approx(0.35)
    assert s.time_to_first_byte == pytest.approx(0.1)
    assert (
        s.gap_p50 == pytest.approx(0.05)
        and s.gap_p95 == pytest.approx(0.2)
        and s.gap_max == pytest.approx(0.2)
    )
    assert (s.bytes, s.chunks, s.events, s.retries) == (100, 3, 5, 0)
    assert s.mean_chunk_size == pytest.approx(100 / 3)
    assert s.duration == pytest.approx(0.5) and s.terminal == "completed"
    assert s.summary().startswith("TTFT 300 ms · first tool byte 350 ms · gaps p50 50 ms p95 200 ms")
    assert s.as_dict()["bytes"] == 100


def test_metrics_of_a_retried_call_count_from_the_start() -> None:
    m = MetricsRecorder(0.0)
    m.attempt(0.0, retry=False)
    m.chunk(0.2, 999)
    m.events_seen(0.2, [ResponseStart(provider="p"), TextDelta(0, "")])
    m.attempt(1.0, retry=True)  # the first attempt's bytes are forgotten
    m.chunk(1.5, 10)
    m.events_seen(1.5, [TextDelta(0, "x")])
    s = m.snapshot(2.0)
    assert s.retries == 1 and s.bytes == 10 and s.chunks == 1 and s.events == 1 and s.gap_p50 is None
    assert s.ttft == pytest.approx(1.5) and s.time_to_first_byte == pytest.approx(1.5)
    assert "1 retry" in s.summary()


def test_the_watchdog_expires_what_is_due_and_only_that() -> None:
    clock = [0.0]
    dog = Watchdog(clock=lambda: clock[0])
    fired: list[str] = []
    done = threading.Event()

    class Watched:
        def __init__(self, name: str, deadline: float) -> None:
            self.name, self.deadline = name, deadline

        def expire(self) -> None:
            fired.append(self.name)
            done.set()

    soon, later = Watched("soon", 5.0), Watched("later", 50.0)
    dog.watch(soon)
    dog.watch(later)
    clock[0] = 6.0
    dog.poke()
    assert done.wait(5.0)
    assert fired == ["soon"]
    dog.unwatch(later)
    clock[0] = 60.0
    dog.poke()
    time.sleep(0.05)
    assert fired == ["soon"]


def test_unwatch_waits_for_an_expire_in_progress() -> None:
    """A stream that unwatches itself before handing its connection back must not have the watchdog
    shut that connection afterwards: unwatch returns only once an expire already under way is done."""
    clock = [0.0]
    dog = Watchdog(clock=lambda: clock[0])
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    class Slow:
        deadline = 50.0  # the watchdog's own timeout, in real seconds, is this far away

        def expire(self) -> None:
            entered.set()
            release.wait(10.0)

    stream = Slow()
    dog.watch(stream)
    # The clock moves once the watchdog sleeps (it sets next_wake under its lock, then waits): moved
    # before its first look, the stream would expire at once, the watchdog would hold its lock in
    # expire(), and poke() below would wait for that to end.
    for _ in range(5000):
        if dog.next_wake > 0.0:
            break
        time.sleep(0.001)
    assert dog.next_wake > 0.0
    clock[0] = 60.0
    dog.poke()
    assert entered.wait(5.0)
    threading.Thread(target=lambda: (dog.unwatch(stream), returned.set()), daemon=True).start()
    assert not returned.wait(0.2)  # still shutting: unwatch waits
    release.set()
    assert returned.wait(5.0)


def test_a_partial_message_is_never_complete() -> None:
    # The error classes carry a Message whose terminal says it is partial; a sanity check of the type.
    error = StreamInterrupted("x", partial=Message(provider="p", terminal="failed"))
    assert error.partial.partial and error.kind == "unknown"
