"""API keys never appear in what the client shows: reprs, log records (every logger, at DEBUG),
exception messages, payloads and tracebacks, metrics, events, Messages and the simulator's request log.

Every test collects all of that into one text and greps it for each secret, including providers
that echo the key back in an error.
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from typing import Any

import httpx2
import pytest
from botocore.credentials import Credentials

from midstream.client.errors import ProviderError, StreamInterrupted, redact
from midstream.client.stream import Client, Stream
from midstream.client.timeouts import Timeouts
from midstream.core.retry import RetryPolicy
from midstream.events import TextDelta
from midstream.sim import ScenarioBook, SimURL
from midstream.wire import encode_sse

PROVIDERS = [
    "anthropic",
    "openai-chat",
    "openai-responses",
    "gemini",
    "bedrock",
    "ollama",
    "openai-compatible",
]
KEY = "sk-live-SUPERSECRET-7f3a9c1e5b"
AWS = Credentials("AKIAEXAMPLESECRETID", "aws/Secret+Key/EXAMPLE0123456789", "SessionTokenEXAMPLE0123456789")
SECRETS = [KEY, "SUPERSECRET", AWS.access_key, AWS.secret_key, AWS.token]
STORY = {"name": "story", "match": {"last_user": "(?i)story"}, "turns": [{"blocks": [{"text": "A story."}]}]}
BOOK = ScenarioBook.model_validate({"scenarios": [STORY]})
FAST = RetryPolicy(max_retries=1, initial_delay=0.01)


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


@pytest.fixture(autouse=True)
def _everything_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: midstream's, httpx2's, httpcore2's, the server's


def exception_text(exc: BaseException | None, seen: set[int] | None = None) -> str:
    """Everything an exception shows: message, repr, args, attributes, traceback, causes."""
    if exc is None:
        return ""
    seen = seen if seen is not None else set()
    if id(exc) in seen:
        return ""
    seen.add(id(exc))
    parts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    parts += [repr(value) for value in vars(exc).values()]
    for linked in (exc.__cause__, exc.__context__, getattr(exc, "cause", None)):
        if isinstance(linked, BaseException):
            parts.append(exception_text(linked, seen))
    return "\n".join(parts)


def stream_text(stream: Stream, events: list[Any]) -> str:
    metrics = stream.metrics
    return "\n".join(
        [repr(stream), repr(stream.request), repr(stream.request.redacted_headers()), repr(stream.message),
         repr(metrics), json.dumps(metrics.as_dict()), metrics.summary(), *map(repr, events)]
    )  # fmt: skip


def assert_clean(*texts: str) -> None:
    text = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: ...{text[max(0, text.find(secret) - 80) :][:200]}"


def make_client(url: str, provider: str, **options: Any) -> Client:
    extra = {"aws_credentials": AWS, "region": "us-east-1"} if provider == "bedrock" else {}
    return Client(provider, api_key=KEY, base_url=url, model="sim-model", retry=FAST, **extra, **options)


def attempt(c: Client, **options: Any) -> tuple[Stream, list[Any], BaseException | None]:
    stream = c.stream("tell a story", **options)
    events: list[Any] = []
    error: BaseException | None = None
    try:
        with stream:
            for event in stream:
                events.append(event)
    except Exception as exc:
        error = exc
    return stream, events, error


def sim_log(url: SimURL) -> str:
    return httpx2.get(f"{url}/_sim/requests").text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_output_of_any_outcome_shows_the_key(
    sim: SimURL, provider: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs: list[str] = []
    with make_client(sim, provider) as c:
        outputs += [repr(c), str(c), repr(vars(c))]
        for faults in (None, "http_status=401;times=9", "http_status=529;times=1", "error_after_events=5"):
            headers = {"x-midstream-fault": faults} if faults else None
            stream, events, error = attempt(c, headers=headers)
            outputs += [stream_text(stream, events), exception_text(error)]
            if faults and "401" in faults:
                assert isinstance(error, ProviderError) and error.status == 401
            if faults and "error_after" in faults:
                assert isinstance(error, StreamInterrupted)
        stream, events, error = attempt(c, timeouts=Timeouts(total=0.000001))
        outputs += [stream_text(stream, events), exception_text(error)]
    captured = capsys.readouterr()
    assert caplog.records  # the logs were captured, and are checked
    assert_clean(*outputs, caplog.text, sim_log(sim), captured.out, captured.err)


def test_transport_errors_do_not_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with make_client(f"http://127.0.0.1:{port}", "gemini") as c:
        stream, events, error = attempt(c)
    assert error is not None and "could not connect" in str(error)
    assert_clean(stream_text(stream, events), exception_text(error), caplog.text)


def echoing(request: httpx2.Request) -> httpx2.Response:
    """A server that repeats the credentials it was sent in its error (some proxies do)."""
    sent = " ".join(
        v for k, v in request.headers.items() if k.lower() in ("authorization", "x-api-key", "x-goog-api-key")
    )
    body = {"error": {"type": "authentication_error", "message": f"invalid credentials {sent} for key {KEY}"}}
    return httpx2.Response(401, json=body, headers={"request-id": "req_1", "x-echo": sent})


@pytest.mark.parametrize("provider", ["anthropic", "openai-chat", "gemini", "ollama"])
def test_a_provider_that_echoes_the_key_is_redacted(provider: str, caplog: pytest.LogCaptureFixture) -> None:
    with make_client("http://echo.invalid", provider, transport=httpx2.MockTransport(echoing)) as c:
        stream, events, error = attempt(c)
    assert isinstance(error, ProviderError) and error.kind == "auth" and error.status == 401
    assert "***" in str(error) and "***" in json.dumps(error.payload)
    assert_clean(stream_text(stream, events), exception_text(error), caplog.text)


def test_a_mid_stream_error_that_echoes_the_key_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    frames = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "m", "content": [], "usage": {"input_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": f"overloaded for {KEY}"}},
    ]  # fmt: skip
    body = b"".join(encode_sse(json.dumps(f), event=f["type"]) for f in frames)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with make_client("http://sse.invalid", "anthropic", transport=httpx2.MockTransport(handler)) as c:
        stream, events, error = attempt(c)
    assert isinstance(error, StreamInterrupted) and error.partial.text == "Hello"
    assert stream.message.error.message == "overloaded for ***"  # the event the caller saw, too
    assert any(isinstance(e, TextDelta) for e in events)
    assert isinstance(error.cause, ProviderError) and "***" in str(error.cause)
    texts = [exception_text(error), repr(error.partial.text), caplog.text]
    assert_clean(*texts)


@pytest.mark.parametrize(
    ("value", "secrets", "expected"),
    [
        ("Bearer sk-abcdef", ["sk-abcdef"], "Bearer ***"),
        ({"k": ["a sk-abcdef b", ("sk-abcdef",)]}, ["sk-abcdef"], {"k": ["a *** b", ("***",)]}),
        ({"sk-abcdef": 1}, ["sk-abcdef"], {"***": 1}),
        ("Bearer sk-abcdef", ["Bearer sk-abcdef", "sk-abcdef"], "***"),  # the longest match first
        ("the key", ["", "key"], "the key"),  # empty and very short strings are not secrets
        (42, ["sk-abcdef"], 42),
        ("nothing here", [], "nothing here"),
    ],
)
def test_redact(value: Any, secrets: list[str], expected: Any) -> None:
    assert redact(value, secrets) == expected
