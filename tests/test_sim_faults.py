"""Faults, pacing and hygiene of the simulator: a client that goes away stops generation, abrupt
disconnects, stalls, malformed frames, slow first bytes, the latency model, bad requests, and
credentials that never reach the request log or the logs."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import boto3
import httpx2
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.errors import RemoteProtocolError
from midstream.sim import ScenarioBook, SimURL, running
from midstream.sim.stream import RequestRecord, SimStream
from simsupport import EXAMPLES, decode

# Long enough (6 s paced) that no catch-up burst of a starved simulator gets near its end.
LONG_TEXT = " ".join(f"word{n}" for n in range(3000))
BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {
                "name": "long",
                "match": {"last_user": "(?i)long"},
                "latency": {"ttft_ms": 20, "tokens_per_second": 500, "jitter": 0.1},
                "turns": [{"blocks": [{"text": LONG_TEXT}]}],
            },
            {
                "name": "paced",
                "match": {"last_user": "(?i)paced"},
                "latency": {"ttft_ms": 150, "tokens_per_second": 100, "jitter": 0.2},
                "turns": [{"blocks": [{"text": "one two three four five six seven eight nine ten"}]}],
            },
            {
                "name": "short",
                "match": {"last_user": "(?i)short"},
                "turns": [
                    {"blocks": [{"text": "A short answer that has a few words in it for the faults."}]}
                ],
            },
        ]
    }
)

_USER = [{"role": "user", "content": "short"}]
# provider -> (path, body)
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "anthropic": ("/v1/messages", {"model": "c", "max_tokens": 500, "stream": True, "messages": _USER}),
    "openai-chat": ("/v1/chat/completions", {"model": "g", "stream": True, "messages": _USER}),
    "openai-responses": ("/v1/responses", {"model": "g", "stream": True, "input": "short"}),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "short"}]}]},
    ),
    "bedrock": (
        "/model/amazon.nova-pro-v1:0/converse-stream",
        {"messages": [{"role": "user", "content": [{"text": "short"}]}]},
    ),
    "ollama": ("/api/chat", {"model": "llama3.2", "messages": _USER}),
}


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


def _record(url: SimURL, number: int = -1) -> dict[str, Any]:
    return url.requests()[number]


# -- the client goes away ----------------------------------------------------------------------------


def test_a_client_that_stops_reading_halfway_stops_generation(paced: SimURL) -> None:
    client = anthropic.Anthropic(base_url=paced, api_key="sk-ant-test", max_retries=0)
    received = 0
    with client.messages.stream(
        model="claude-sim-1", max_tokens=1000, messages=[{"role": "user", "content": "something long"}]
    ) as stream:
        for event in stream:
            received += event.type == "text"
            if received == 40:
                break  # leaving the block closes the connection
    time.sleep(0.3)  # 150 more tokens of the answer, had generation gone on
    record = _record(paced)
    assert record["scenario"] == "long" and record["disconnected"] is True
    assert record["completed"] is False and record["disconnected_ms"] is not None
    # Stopped far before the end. How far past the 40th event the simulator got is the machine's timing
    # (a starved simulator catches up in a burst); tokens_after_disconnect is the exact check.
    assert 40 <= record["tokens_generated"] < 3000 // 2
    assert record["tokens_after_disconnect"] == 0
    time.sleep(0.2)
    assert _record(paced)["tokens_generated"] == record["tokens_generated"]  # nothing more was generated


@pytest.mark.anyio
async def test_a_body_that_stops_because_the_client_left_is_not_completed() -> None:
    # The disconnect can land in the same loop tick as the end of a sleep in the body: the cancel does
    # not reach the body then, it sees ``disconnected`` itself and ends. The shielded sleep pins that tick.
    record = RequestRecord(
        id=1, provider="anthropic", path="/v1/messages", model="m", scenario=None, stream=True
    )
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"event: ping\n\n"
        with anyio.CancelScope(shield=True):
            gone.set()  # the client leaves while the body sleeps
            await asyncio.sleep(0.05)
        if not record.disconnected:
            yield b"event: more\n\n"

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        await asyncio.sleep(0)

    async def serve() -> None:
        await SimStream(record, body(), "text/event-stream", {})({"type": "http"}, receive, send)

    await serve()
    assert record.disconnected and record.disconnected_ms is not None
    assert record.completed is False and record.finished_ms is None
    assert not any(m.get("more_body") is False for m in sent)  # the body was never ended as whole


def test_a_request_is_completed_or_disconnected_never_both() -> None:
    record = RequestRecord(
        id=1, provider="anthropic", path="/v1/messages", model="m", scenario=None, stream=True
    )
    assert record.finish() is True and record.completed and record.finished_ms is not None
    record.leave()  # a disconnect after the whole body was written is not a disconnect
    assert not record.disconnected and record.disconnected_ms is None
    gone = RequestRecord(
        id=2, provider="anthropic", path="/v1/messages", model="m", scenario=None, stream=True
    )
    gone.leave()
    assert gone.finish() is False and not gone.completed and gone.finished_ms is None
    assert gone.disconnected and gone.disconnected_ms is not None


def test_a_raw_client_closing_mid_stream_is_seen_too(paced: SimURL) -> None:
    path, body = REQUESTS["ollama"]
    with httpx2.stream(
        "POST", f"{paced}{path}", json={**body, "messages": [{"role": "user", "content": "long"}]}
    ) as r:
        for number, _ in enumerate(r.iter_lines(), start=1):
            if number == 25:
                break
    time.sleep(0.3)
    record = _record(paced)
    assert record["provider"] == "ollama" and record["disconnected"] is True
    assert record["tokens_generated"] < 150 and record["tokens_after_disconnect"] == 0


def test_a_client_that_reads_everything_is_not_disconnected(paced: SimURL) -> None:
    path, body = REQUESTS["anthropic"]
    data = httpx2.post(f"{paced}{path}", json=body).content
    record = _record(paced)
    assert record["completed"] is True and record["disconnected"] is False
    assert record["tokens_generated"] == decode("anthropic", data).usage.output_tokens == 14


# -- faults ------------------------------------------------------------------------------------------


def _collect(url: str, provider: str, fault: str) -> tuple[bytes, Exception | None]:
    path, body = REQUESTS[provider]
    data, error = b"", None
    try:
        with httpx2.stream(
            "POST", f"{url}{path}", json=body, headers={"x-midstream-fault": fault}
        ) as response:
            for chunk in response.iter_raw():
                data += chunk
    except httpx2.TransportError as exc:
        error = exc
    return data, error


@pytest.mark.parametrize("provider", sorted(REQUESTS))
def test_abrupt_disconnect_after_n_bytes(sim: SimURL, provider: str) -> None:
    data, error = _collect(sim, provider, "disconnect_after_bytes=700")
    assert isinstance(error, httpx2.RemoteProtocolError)  # the body ended without its last chunk
    assert len(data) == 700
    assert _record(sim)["fault"] == "disconnect after 700 bytes"
    decoder = wire.decoder(provider)
    events = decoder.feed(data) + decoder.close()
    message = accumulate(events)
    # A cut body is never complete: the unfinished event, line or frame is dropped and every provider
    # ends truncated (cut short), not failed.
    assert message.partial
    assert message.terminal == "truncated"


@pytest.mark.parametrize("provider", sorted(REQUESTS))
def test_malformed_frame(sim: SimURL, provider: str) -> None:
    data, error = _collect(sim, provider, "malformed_after_events=3")
    assert error is None and _record(sim)["fault"] == "malformed frame"
    decoder = wire.decoder(provider)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(data)
        decoder.close()
    message = accumulate(decoder.close())
    assert message.terminal == "failed" and message.error.error_kind == "protocol"


@pytest.mark.parametrize("provider", sorted(REQUESTS))
@pytest.mark.parametrize("kind", ["overloaded", "rate_limited", "server"])
def test_mid_stream_error_in_each_providers_shape(sim: SimURL, provider: str, kind: str) -> None:
    data, error = _collect(sim, provider, f"error_after_events=4;error={kind}")
    assert error is None
    message = decode(provider, data)
    assert message.terminal == "failed" and message.error is not None and message.error.retryable
    # OpenAI has no "overloaded" error: its servers say server_error.
    expected = "server" if kind == "overloaded" and provider.startswith("openai") else kind
    assert message.error.error_kind == expected
    assert message.text == "A short"  # start, block start, two tokens, then the error
    assert _record(sim)["fault"] == f"mid-stream {kind}"


def test_stall(sim: SimURL) -> None:
    path, body = REQUESTS["openai-chat"]
    arrivals: list[tuple[float, bytes]] = []
    start = time.monotonic()
    headers = {"x-midstream-fault": "stall_ms=300;stall_after_events=3"}
    with httpx2.stream("POST", f"{sim}{path}", json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - start, chunk))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.28  # one long pause ...
    assert sorted(gaps)[-2] < 0.2  # ... and only one
    assert decode("openai-chat", b"".join(c for _, c in arrivals)).terminal == "completed"
    assert _record(sim)["fault"] == "stall 300 ms"


def test_a_stall_trips_the_sdks_read_timeout(sim: SimURL) -> None:
    client = openai.OpenAI(
        base_url=f"{sim}/v1", api_key="sk-test", max_retries=0, timeout=httpx2.Timeout(5, read=0.1)
    )
    with pytest.raises(openai.APITimeoutError):  # noqa: SIM117
        with client.chat.completions.stream(
            model="g",
            messages=[{"role": "user", "content": "short"}],
            extra_headers={"x-midstream-fault": "stall_ms=400;stall_after_events=2"},
        ) as stream:
            for _ in stream:
                pass


def test_slow_first_byte_holds_back_the_headers_too(sim: SimURL) -> None:
    path, body = REQUESTS["anthropic"]
    start = time.monotonic()
    with httpx2.stream(
        "POST", f"{sim}{path}", json=body, headers={"x-midstream-fault": "first_byte_delay_ms=250"}
    ) as r:
        headers_at = time.monotonic() - start
        r.read()
    assert headers_at >= 0.24
    assert _record(sim)["first_byte_ms"] >= 240
    client = anthropic.Anthropic(
        base_url=sim, api_key="k", max_retries=0, timeout=httpx2.Timeout(5, read=0.1)
    )
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(
            model="c",
            max_tokens=10,
            messages=[{"role": "user", "content": "short"}],
            extra_headers={"x-midstream-fault": "first_byte_delay_ms=400"},
        )


def test_latency_model(paced: SimURL) -> None:
    path, body = REQUESTS["openai-chat"]
    body = {**body, "messages": [{"role": "user", "content": "paced"}]}
    start = time.monotonic()
    first_text = None
    with httpx2.stream("POST", f"{paced}{path}", json=body) as response:
        for line in response.iter_lines():
            if first_text is None and '"content":"one"' in line:
                first_text = time.monotonic() - start
    assert first_text is not None and first_text >= 0.11  # ttft 150 ms, jitter 20 %
    record = _record(paced)
    assert record["first_byte_ms"] < 100  # the response starts at once; the first token takes ttft
    assert record["finished_ms"] >= 120 + 9 * 8  # then nine more tokens at 100/s, jitter 20 %
    with running(BOOK, speed=0) as instant:
        httpx2.post(f"{instant}{path}", json=body).raise_for_status()
        assert _record(instant)["finished_ms"] < record["finished_ms"] / 2  # speed 0 skips every delay


def test_scenario_faults_from_the_example_file() -> None:
    with running(EXAMPLES / "faults.yaml", speed=0) as url:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=2)
        message = client.messages.create(
            model="c", max_tokens=100, messages=[{"role": "user", "content": "are you overloaded?"}]
        )
        assert message.content[0].type == "text" and message.content[0].text == "Third time lucky."
        assert [r["status"] for r in url.requests()] == [529, 529, 200]
        data = httpx2.post(
            f"{url}/v1/messages",
            json={
                "model": "c",
                "max_tokens": 100,
                "stream": True,
                "messages": [{"role": "user", "content": "invalid json"}],
            },
        ).content
    call = decode("anthropic", data).tool_calls[0]
    assert call.raw_input == '{"query": "partial safety", "limit": 5,}' and call.error == "invalid_json"


# -- bad requests ------------------------------------------------------------------------------------


def test_bad_requests_get_a_400_in_the_providers_shape(sim: SimURL) -> None:
    broken = httpx2.post(
        f"{sim}/v1/messages", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx2.post(
        f"{sim}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-midstream-scenario": "no-such-scenario"},
    )
    assert unknown.status_code == 400 and "no scenario named" in unknown.json()["error"]["message"]
    fault = httpx2.post(
        f"{sim}/api/chat", json={"model": "m", "messages": []}, headers={"x-midstream-fault": "stall_ms=soon"}
    )
    assert fault.status_code == 400 and "x-midstream-fault" in fault.json()["error"]
    method = httpx2.post(f"{sim}/v1beta/models/gemini:noSuchMethod", json={})
    assert method.status_code == 404 and method.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"name": "t", "input_schema": {"type": "object", "properties": ["a"]}}]},
        {"tools": [{"name": "t", "input_schema": {"type": "object", "properties": {"a": "string"}}}]},
        {"tools": [{"name": "t", "input_schema": {"type": "integer", "minimum": "x"}}]},
        {"max_tokens": "lots"},
    ],
)
def test_odd_request_shapes_get_a_400_not_a_crash(sim: SimURL, extra: dict[str, Any]) -> None:
    body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    answer = httpx2.post(f"{sim}/v1/messages", json=body | extra)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert sim.simulator.records[-1].status == 400 and sim.simulator.records[-1].completed is True


def test_a_deeply_nested_request_gets_a_400(sim: SimURL) -> None:
    deep = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = httpx2.post(f"{sim}/v1/messages", content=deep, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"


# -- credentials -------------------------------------------------------------------------------------


def test_credentials_are_never_stored_or_logged(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with running(BOOK, speed=0) as url:
        anthropic.Anthropic(base_url=url, api_key="sk-ant-SECRET-1", max_retries=0).messages.create(
            model="c", max_tokens=50, messages=[{"role": "user", "content": "short"}]
        )
        openai.OpenAI(base_url=f"{url}/v1", api_key="sk-SECRET-2", max_retries=0).chat.completions.create(
            model="g", messages=[{"role": "user", "content": "short"}]
        )
        client = genai.Client(api_key="AIza-SECRET-3", http_options=types.HttpOptions(base_url=url))
        client.models.generate_content(model="gemini-2.5-flash", contents="short")
        boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="AKIA-SECRET-4",
            aws_secret_access_key="SECRET-5",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        ).converse(modelId="m", messages=[{"role": "user", "content": [{"text": "short"}]}])
        auth = {"authorization": "Bearer sk-SECRET-6", "x-api-key": "sk-SECRET-7"}
        httpx2.post(f"{url}/v1/messages", content=b"{bad", headers=auth)  # the 400 path
        _collect(url, "anthropic", "disconnect_after_bytes=10")  # the abrupt-disconnect path
        httpx2.post(f"{url}/v1beta/models/g:generateContent?key=SECRET-8", json={})
        log = json.dumps(url.requests()) + httpx2.get(f"{url}/_sim/requests").text
    assert len(json.loads(log[: log.index("]") + 1])) == 7
    server_logs = "\n".join(
        r.getMessage() + str(r.exc_info)
        for r in caplog.records
        if r.name.startswith(("uvicorn", "midstream", "starlette"))
    )
    out, err = capfd.readouterr()
    for text in (log, server_logs, out, err):
        assert "SECRET" not in text
