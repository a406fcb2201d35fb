"""The simulator's Anthropic endpoint, read by the official ``anthropic`` SDK and by midstream.

Every SDK request carries ``x-midstream-seed``; the same request sent again with httpx2 then gets the
same bytes, which midstream decodes and accumulates: both readings must agree.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import anthropic
import httpx2
import pytest

from midstream import wire
from midstream.message import Message, TextBlock, ThinkingBlock, ToolCall
from midstream.sim import SimURL, running
from simsupport import ARTICLE_INPUT, decode, example_book, fresh, our_blocks

KEY = "sk-ant-test-SECRET"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
    },
}
ARTICLE_TOOL = {
    "name": "save_article",
    "description": "Store an article.",
    "input_schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "content": {"type": "string"}},
    },
}


def _client(url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=KEY, **options)


def _raw(url: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    response = httpx2.post(f"{url}/v1/messages", json={**body, "stream": True}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    return response.content


def _decode(data: bytes) -> Message:
    return decode("anthropic", data)


def _sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [(e.event or "", json.loads(e.data)) for e in wire.SSEDecoder().feed(data)]


def _sdk_blocks(message: anthropic.types.Message) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for block in message.content:
        if block.type == "text":
            out.append(("text", block.text))
        elif block.type == "thinking":
            out.append(("thinking", block.thinking, block.signature))
        elif block.type == "tool_use":
            out.append(("tool_call", block.id, block.name, block.input))
    return out


def _both(
    url: str, body: dict[str, Any], seed: str, **headers: str
) -> tuple[anthropic.types.Message, Message, bytes]:
    """The SDK's final message and midstream's Message for the same request (same seed, same bytes)."""
    headers = {"x-midstream-seed": seed, **headers}
    with _client(url).messages.stream(**body, extra_headers=headers) as stream:
        sdk = stream.get_final_message()
    data = _raw(url, body, headers)
    return sdk, _decode(data), data


def _assert_same(sdk: anthropic.types.Message, ours: Message) -> None:
    assert ours.id == sdk.id and ours.model == sdk.model
    assert our_blocks(ours) == _sdk_blocks(sdk)
    assert ours.raw_stop_reason == sdk.stop_reason
    assert ours.usage.input_tokens == sdk.usage.input_tokens
    assert ours.usage.output_tokens == sdk.usage.output_tokens


# -- content -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [s.name for s in example_book().scenarios])
def test_the_sdk_reads_every_scenario(sim: SimURL, scenario: str) -> None:
    body = {
        "model": "claude-sim-1",
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "hello"}],
    }
    sdk, ours, _ = _both(sim, body, f"every-{scenario}", **{"x-midstream-scenario": scenario})
    _assert_same(sdk, ours)
    assert ours.terminal == "completed" and ours.blocks


def test_text(sim: SimURL) -> None:
    body = {"model": "claude-sim-1", "max_tokens": 200, "messages": [{"role": "user", "content": "markup?"}]}
    sdk, ours, _ = _both(sim, body, "text")
    _assert_same(sdk, ours)
    assert ours.text == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."
    assert ours.stop_reason == "end_turn" and ours.terminal == "completed"
    assert ours.id is not None and re.fullmatch(r"msg_01\w{22}", ours.id)


def test_thinking_and_parallel_tool_calls(sim: SimURL) -> None:
    body = {
        "model": "claude-sim-1",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What's the weather in Paris and Tokyo?"}],
    }
    sdk, ours, data = _both(sim, body, "weather")
    _assert_same(sdk, ours)
    thinking, text, paris, tokyo = ours.blocks
    assert isinstance(thinking, ThinkingBlock) and thinking.signature
    assert thinking.thinking == "The user asks about the weather in two cities; I can call the tool twice."
    assert text == TextBlock(text="Let me check both cities.")
    assert isinstance(paris, ToolCall) and isinstance(tokyo, ToolCall)
    assert (paris.name, paris.input) == ("get_weather", {"city": "Paris", "unit": "celsius"})
    assert tokyo.input == {"city": "Tokyo", "unit": "celsius"}
    assert paris.id.startswith("toolu_01") and paris.id != tokyo.id
    assert ours.stop_reason == "tool_use"
    # Parallel calls are sequential blocks: each one stops before the next one starts.
    order = [(name, obj.get("index")) for name, obj in _sse(data) if name.startswith("content_block_s")]
    assert order == [(f"content_block_{k}", i) for i in range(4) for k in ("start", "stop")]


def test_thinking_is_sent_only_when_asked_for(sim: SimURL) -> None:
    body = {
        "model": "claude-sim-1",
        "max_tokens": 500,
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    sdk, ours, _ = _both(sim, body, "no-thinking")
    _assert_same(sdk, ours)
    assert [b.kind for b in ours.blocks] == ["text", "tool_call", "tool_call"]


def test_a_scenario_reacts_to_tool_results(sim: SimURL) -> None:
    first = _client(sim).messages.create(
        model="claude-sim-1",
        max_tokens=500,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Paris and Tokyo?"}],
    )
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 2

    def answer(result: str) -> str:
        messages: list[Any] = [
            {"role": "user", "content": "weather in Paris and Tokyo?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": c.id, "content": result} for c in calls],
            },
        ]
        body = {"model": "claude-sim-1", "max_tokens": 500, "tools": [WEATHER_TOOL], "messages": messages}
        sdk, ours, _ = _both(sim, body, f"turn2-{result}")
        _assert_same(sdk, ours)
        return ours.text

    assert answer("18 C, sunny") == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."
    assert answer("service unavailable") == "The weather service is unavailable right now."


def test_scenario_header_and_default_answer(sim: SimURL) -> None:
    body = {"model": "claude-sim-1", "max_tokens": 100, "messages": [{"role": "user", "content": "hi there"}]}
    sdk, ours, _ = _both(sim, body, "default")
    _assert_same(sdk, ours)
    assert ours.text == "This is the midstream simulator. You said: hi there"
    sdk, ours, _ = _both(sim, body, "forced", **{"x-midstream-scenario": "markup"})
    _assert_same(sdk, ours)
    assert ours.text.startswith("Use <b>bold</b>")
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"isbn": {"type": "string"}}}}
    sdk, ours, _ = _both(sim, {**body, "tools": [tool]}, "default-tool")
    _assert_same(sdk, ours)
    assert ours.tool_calls[0].input == {"isbn": "example isbn"}


def test_tool_without_arguments(sim: SimURL) -> None:
    tool = {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    body = {
        "model": "claude-x",
        "max_tokens": 100,
        "tools": [tool],
        "messages": [{"role": "user", "content": "what time?"}],
    }
    sdk, ours, _ = _both(sim, body, "now")
    _assert_same(sdk, ours)
    assert ours.tool_calls[0].input == {} and ours.tool_calls[0].raw_input == "{}"


# -- tool argument streaming -------------------------------------------------------------------------


def _fragments(data: bytes, index: int) -> list[str]:
    return [
        obj["delta"]["partial_json"]
        for name, obj in _sse(data)
        if name == "content_block_delta"
        and obj["index"] == index
        and obj["delta"]["type"] == "input_json_delta"
    ]


def _article_body(max_tokens: int, tool: dict[str, Any] = ARTICLE_TOOL) -> dict[str, Any]:
    return {
        "model": "claude-sim-1",
        "max_tokens": max_tokens,
        "tools": [tool],
        "messages": [{"role": "user", "content": "Please save the article."}],
    }


def test_buffered_tool_input_releases_whole_members(sim: SimURL) -> None:
    sdk, ours, data = _both(sim, _article_body(1000), "buffered")
    _assert_same(sdk, ours)
    assert ours.tool_calls[0].input == ARTICLE_INPUT
    assert _fragments(data, 1) == [
        "",
        '{"title": "Partial safety"',
        ', "content": ' + json.dumps(ARTICLE_INPUT["content"]),
        ', "tags": ["streaming", "agents"]',
        ', "draft": false',
        "}",
    ]


@pytest.mark.parametrize("how", ["tool flag", "beta header"])
def test_eager_tool_input_streams_fragments(sim: SimURL, how: str) -> None:
    tool, headers = ARTICLE_TOOL, {}
    if how == "tool flag":
        tool = {**ARTICLE_TOOL, "eager_input_streaming": True}
    else:
        headers = {"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"}
    sdk, ours, data = _both(sim, _article_body(1000, tool), f"eager-{how}", **headers)
    _assert_same(sdk, ours)
    fragments = _fragments(data, 1)
    assert "".join(fragments) == ours.tool_calls[0].raw_input
    assert len(fragments) > 40  # many small pieces, not one per member
    assert fragments[0] == "" and fragments[11:15] == [
        ' "',
        "Streamin",
        "g",
        " makes",
    ]  # pieces end inside string values


def test_max_tokens_in_buffered_tool_input_never_shows_the_cut_value(sim: SimURL) -> None:
    sdk, ours, data = _both(sim, _article_body(20), "cut-buffered")
    assert sdk.stop_reason == "max_tokens" and ours.stop_reason == "max_tokens"
    assert ours.terminal == "truncated" and sdk.usage.output_tokens == ours.usage.output_tokens == 20
    call = ours.tool_calls[0]
    assert "".join(_fragments(data, 1)) == call.raw_input == '{"title": "Partial safety"'
    assert call.input is None and call.complete is False  # midstream never calls it complete
    assert sdk.content[1].type == "tool_use" and sdk.content[1].input == {"title": "Partial safety"}
    assert sdk.content[0].type == "text" and ours.text == sdk.content[0].text == "I'll save the article now."


def test_max_tokens_in_eager_tool_input_stops_mid_value(sim: SimURL) -> None:
    tool = {**ARTICLE_TOOL, "eager_input_streaming": True}
    sdk, ours, data = _both(sim, _article_body(24, tool), "cut-eager")
    events = _sse(data)
    # Anthropic's truncated shape: the last input_json_delta, then message_delta and message_stop.
    assert [name for name, _ in events[-3:]] == ["content_block_delta", "message_delta", "message_stop"]
    assert ("content_block_stop", {"type": "content_block_stop", "index": 1}) not in events
    call = ours.tool_calls[0]
    assert call.raw_input == '{"title": "Partial safety", "content": "Streaming makes an assistan'
    assert call.input is None and call.error == "truncated"
    assert sdk.stop_reason == "max_tokens" and ours.terminal == "truncated"
    assert ours.text == sdk.content[0].text  # type: ignore[union-attr]


def test_max_tokens_in_text(sim: SimURL) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "an essay please"}],
    }
    sdk, ours, data = _both(sim, body, "cut-text")
    _assert_same(sdk, ours)
    assert ours.text == "Rivers begin as springs and snowmelt high in"
    assert ours.stop_reason == "max_tokens" and ours.terminal == "truncated"
    # Anthropic closes a text block cut by max_tokens normally.
    assert ("content_block_stop", {"type": "content_block_stop", "index": 0}) in _sse(data)


# -- errors ------------------------------------------------------------------------------------------


def test_mid_stream_overloaded_error(sim: SimURL) -> None:
    body = {"model": "claude-x", "max_tokens": 300, "messages": [{"role": "user", "content": "an essay"}]}
    headers = {"x-midstream-fault": "error_after_events=6;error=overloaded", "x-midstream-seed": "ovl"}
    seen = ""
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        _client(sim).messages.stream(**body, extra_headers=headers) as stream,
    ):
        for text in stream.text_stream:
            seen += text
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    data = _raw(sim, body, headers)
    name, obj = _sse(data)[-1]
    assert name == "error" and obj["error"] == {
        "details": None,
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    assert obj["request_id"].startswith("req_")
    ours = _decode(data)
    assert ours.terminal == "failed" and ours.error.error_kind == "overloaded" and ours.error.retryable
    assert ours.text == seen == "Rivers begin as springs"  # start, block start, 4 tokens


@pytest.mark.parametrize(
    ("status", "header"),
    [
        (429, "retry_after_ms=40"),
        (500, "retry_after=0.04"),
        (503, "retry_after_ms=40"),
        (529, "retry_after_ms=40"),
    ],
)
def test_http_errors_are_retried_by_the_sdk_with_the_servers_delay(
    sim: SimURL, status: int, header: str
) -> None:
    fresh(sim)
    body = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "markup"}]}
    fault = f"http_status={status};{header};times=2"
    message = _client(sim, max_retries=2).messages.create(**body, extra_headers={"x-midstream-fault": fault})
    assert message.content[0].type == "text" and message.content[0].text.startswith("Use <b>bold</b>")
    log = sim.requests()
    assert [r["status"] for r in log] == [status, status, 200]
    gaps = [b["received_ms"] - a["received_ms"] for a, b in itertools.pairwise(log)]
    assert all(gap >= 35 for gap in gaps), gaps  # the SDK waited as told (40 ms)


def test_http_error_body_and_headers(sim: SimURL) -> None:
    fresh(sim)
    response = httpx2.post(
        f"{sim}/v1/messages",
        json={"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-midstream-fault": "http_status=529;retry_after=7;retry_after_ms=7000"},
    )
    assert response.status_code == 529
    assert response.headers["retry-after"] == "7" and response.headers["retry-after-ms"] == "7000"
    body = response.json()
    assert body["type"] == "error" and body["error"] == {
        "type": "overloaded_error",
        "message": "simulated 529",
    }
    assert body["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize(
    ("status", "error_type", "sdk_error"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (504, "timeout_error", anthropic.InternalServerError),
    ],
)
def test_a_simulated_status_carries_the_providers_type_for_it(
    sim: SimURL, status: int, error_type: str, sdk_error: type[Exception]
) -> None:
    """A fault's status picks the error type Anthropic writes for it, not a generic server error."""
    fresh(sim)
    fault = f"http_status={status};times=9"
    with pytest.raises(sdk_error) as info:
        _client(sim, max_retries=0).messages.create(
            model="claude-x",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-midstream-fault": fault},
        )
    body = getattr(info.value, "body", None)
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": error_type, "message": f"simulated {status}"}


def test_errors_the_sdk_gives_up_on(sim: SimURL) -> None:
    fresh(sim)
    with pytest.raises(anthropic.RateLimitError):
        _client(sim, max_retries=1).messages.create(
            model="claude-x",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-midstream-fault": "http_status=429;retry_after_ms=10;times=5"},
        )
    assert [r["status"] for r in sim.requests()] == [429, 429]


# -- non-streaming and bytes -------------------------------------------------------------------------


def test_non_streaming_answer_has_the_same_content(sim: SimURL) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    headers = {"x-midstream-seed": "nonstream"}
    whole = _client(sim).messages.create(**body, extra_headers=headers)
    ours = _decode(_raw(sim, body, headers))
    assert _sdk_blocks(whole) == our_blocks(ours)
    assert whole.stop_reason == "tool_use" and whole.usage.output_tokens == ours.usage.output_tokens


def test_realism_padding_and_ping() -> None:
    body = {"model": "claude-x", "max_tokens": 300, "messages": [{"role": "user", "content": "essay"}]}
    book = example_book()
    with running(book, speed=0) as real, running(book, speed=0, realism=False) as plain:
        realistic = _raw(real, body, {})
        bare = _raw(plain, body, {})
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in realistic
    assert re.search(rb"\} {1,15}\}\n\n", realistic)  # padding before the final brace
    assert b"ping" not in bare and not re.search(rb" +\}\n", bare)
    assert _decode(realistic).text == _decode(bare).text
