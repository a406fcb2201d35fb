"""The simulator's OpenAI endpoints (Chat Completions and Responses), read by the official ``openai``
SDK and by midstream: the same request (pinned with ``x-midstream-seed``) must read the same both ways."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response

from midstream import wire
from midstream.message import Message, TextBlock, ThinkingBlock, ToolCall
from midstream.sim import SimURL, running
from simsupport import decode, example_book, fresh

KEY = "sk-test-SECRET"
WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMS}}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}]
ARTICLE_CHAT = [{"type": "function", "function": {"name": "save_article", "parameters": {"type": "object"}}}]
ARTICLE_RESPONSES = [{"type": "function", "name": "save_article", "parameters": {"type": "object"}}]


def _client(url: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, **options)


def _raw(url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    response = httpx2.post(f"{url}/v1/{path}", json={**body, "stream": True}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    return response.content


def _payloads(data: bytes) -> list[tuple[str | None, Any]]:
    return [
        (e.event, json.loads(e.data) if e.data != "[DONE]" else e.data) for e in wire.SSEDecoder().feed(data)
    ]


# -- Chat Completions --------------------------------------------------------------------------------


def _chat_both(url: str, body: dict[str, Any], seed: str) -> tuple[Any, Message, bytes]:
    body = dict(body)
    headers = {"x-midstream-seed": seed, **body.pop("extra_headers", {})}
    with _client(url).chat.completions.stream(**body, extra_headers=headers) as stream:
        try:
            sdk = stream.get_final_completion()
        except openai.LengthFinishReasonError as exc:  # the SDK's stream wrapper refuses truncated answers
            sdk = exc.completion
    data = _raw(url, "chat/completions", body, headers)
    return sdk, decode("openai-chat", data), data


def _assert_same_chat(sdk: Any, ours: Message) -> None:
    choice = sdk.choices[0]
    assert ours.id == sdk.id and ours.model == sdk.model
    assert ours.text == (choice.message.content or "")
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert [(c.id, c.name, c.raw_input) for c in ours.tool_calls] == calls
    assert ours.raw_stop_reason == choice.finish_reason
    if sdk.usage is None:
        assert ours.usage.output_tokens is None
    else:
        assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
            sdk.usage.prompt_tokens,
            sdk.usage.completion_tokens,
        )


def _chat_body(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-sim",
        "messages": [{"role": "user", "content": content}],
        "stream_options": {"include_usage": True},
        **extra,
    }


@pytest.mark.parametrize("scenario", [s.name for s in example_book().scenarios])
def test_the_sdk_reads_every_scenario(sim: SimURL, scenario: str) -> None:
    headers = {"x-midstream-scenario": scenario}
    chat = {**_chat_body("hello"), "extra_headers": headers}
    sdk, ours, _ = _chat_both(sim, chat, f"every-{scenario}")
    _assert_same_chat(sdk, ours)
    assert ours.terminal == "completed"
    body = {"model": "gpt-sim", "input": "hello", "reasoning": {"summary": "auto"}, "extra_headers": headers}
    final, message, _ = _responses_both(sim, body, f"every-{scenario}")
    _assert_same_response(final, message)
    assert message.terminal == "completed" and final.status == "completed"


def test_chat_text(sim: SimURL) -> None:
    sdk, ours, data = _chat_both(sim, _chat_body("markup"), "text")
    _assert_same_chat(sdk, ours)
    assert ours.text == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."
    assert ours.stop_reason == "end_turn" and ours.terminal == "completed"
    assert ours.id is not None and re.fullmatch(r"chatcmpl-\w{24}", ours.id)
    text = data.decode()
    assert '"content":" <"' in text and '"content":" 東京"' in text  # raw UTF-8, nothing escaped


def test_chat_parallel_tool_calls_without_reasoning_text(sim: SimURL) -> None:
    sdk, ours, data = _chat_both(sim, _chat_body("weather in Paris and Tokyo?", tools=CHAT_TOOLS), "weather")
    _assert_same_chat(sdk, ours)
    assert ours.text == "Let me check both cities." and ours.thinking == ""
    assert [(c.name, c.input) for c in ours.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert ours.tool_calls[0].raw_input == '{"city":"Paris","unit":"celsius"}'
    assert ours.stop_reason == "tool_use" and sdk.choices[0].finish_reason == "tool_calls"
    assert b"reasoning" not in data  # Chat Completions never streams reasoning text
    starts = [
        call["index"]
        for _, obj in _payloads(data)
        if isinstance(obj, dict) and obj["choices"]
        for call in obj["choices"][0]["delta"].get("tool_calls", [])
        if "id" in call
    ]
    assert starts == [0, 1]


def test_chat_multi_turn(sim: SimURL) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": "Let me check both cities.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    ]
    body = {"model": "gpt-sim", "messages": messages, "tools": CHAT_TOOLS}
    sdk, ours, _ = _chat_both(sim, body, "turn2")
    _assert_same_chat(sdk, ours)
    assert ours.text == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."


def test_chat_max_tokens_cuts_the_tool_arguments(sim: SimURL) -> None:
    body = _chat_body("save the article", tools=ARTICLE_CHAT, max_completion_tokens=20)
    sdk, ours, _ = _chat_both(sim, body, "cut")
    _assert_same_chat(sdk, ours)
    assert sdk.choices[0].finish_reason == "length" and ours.stop_reason == "max_tokens"
    assert ours.terminal == "truncated" and ours.usage.output_tokens == 20
    call = ours.tool_calls[0]
    assert call.raw_input == '{"title":"Partial safety","content":"Streaming makes an'
    assert call.input is None and call.complete is False


def test_chat_usage_chunk_and_obfuscation_follow_the_request(sim: SimURL) -> None:
    realistic = _raw(sim, "chat/completions", _chat_body("markup"), {})
    payloads = [obj for _, obj in _payloads(realistic)]
    assert payloads[-1] == "[DONE]"
    usage_chunk = payloads[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 23
    assert all("obfuscation" in obj for obj in payloads[:-1])
    head = ["id", "object", "created", "model", "service_tier", "system_fingerprint"]
    assert list(payloads[0]) == [*head, "choices", "usage", "obfuscation"]
    body = {"model": "gpt-sim", "messages": [{"role": "user", "content": "markup"}]}
    plain = _raw(sim, "chat/completions", {**body, "stream_options": {"include_obfuscation": False}}, {})
    plain_payloads = [obj for _, obj in _payloads(plain)]
    assert b"obfuscation" not in plain
    assert all(obj["choices"] for obj in plain_payloads[:-1])  # no usage chunk when not asked for
    assert decode("openai-chat", plain).text == decode("openai-chat", realistic).text


def test_chat_mid_stream_error(sim: SimURL) -> None:
    headers = {"x-midstream-fault": "error_after_events=5;error=server"}
    with pytest.raises(openai.APIError, match="The server had an error"):  # noqa: SIM117
        with _client(sim).chat.completions.stream(**_chat_body("essay"), extra_headers=headers) as stream:
            for _ in stream:
                pass
    data = _raw(sim, "chat/completions", _chat_body("essay"), headers)
    assert data.endswith(b'"type":"server_error","param":null,"code":null}}\n\n')
    ours = decode("openai-chat", data)
    assert ours.terminal == "failed" and ours.error.error_kind == "server" and ours.text == "Rivers begin as"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_chat_http_errors_are_retried_with_the_servers_delay(sim: SimURL, status: int) -> None:
    fresh(sim)
    fault = f"http_status={status};retry_after_ms=40;times=2"
    completion = _client(sim, max_retries=2).chat.completions.create(
        model="gpt-sim",
        messages=[{"role": "user", "content": "markup"}],
        extra_headers={"x-midstream-fault": fault},
    )
    assert (completion.choices[0].message.content or "").startswith("Use <b>bold</b>")
    log = sim.requests()
    assert [r["status"] for r in log] == [status, status, 200]
    assert all(b["received_ms"] - a["received_ms"] >= 35 for a, b in itertools.pairwise(log))


def test_chat_gives_up_when_told_to_wait_too_long(sim: SimURL) -> None:
    fresh(sim)
    with pytest.raises(openai.RateLimitError):
        _client(sim, max_retries=2).chat.completions.create(
            model="gpt-sim",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-midstream-fault": "http_status=429;retry_after=3600;times=3"},
        )
    assert [r["status"] for r in sim.requests()] == [429]  # an hour is beyond the SDK's limit


def test_chat_non_streaming(sim: SimURL) -> None:
    body = _chat_body("weather in Paris?", tools=CHAT_TOOLS)
    headers = {"x-midstream-seed": "whole"}
    whole = _client(sim).chat.completions.create(**body, extra_headers=headers)
    ours = decode("openai-chat", _raw(sim, "chat/completions", body, headers))
    _assert_same_chat(whole, ours)


# -- Responses ---------------------------------------------------------------------------------------


def _responses_both(url: str, body: dict[str, Any], seed: str) -> tuple[Response, Message, bytes]:
    """The final response object the SDK saw (completed or incomplete) and midstream's Message."""
    body = dict(body)
    headers = {"x-midstream-seed": seed, **body.pop("extra_headers", {})}
    final: Response | None = None
    with _client(url).responses.stream(**body, extra_headers=headers) as stream:
        for event in stream:
            if event.type in ("response.completed", "response.incomplete"):
                final = event.response
    assert final is not None
    data = _raw(url, "responses", body, headers)
    return final, decode("openai-responses", data), data


def _sdk_items(response: Response) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for item in response.output:
        if item.type == "reasoning":
            out.extend(("thinking", part.text) for part in item.summary)
        elif item.type == "message":
            out.extend(("text", part.text) for part in item.content if part.type == "output_text")
        elif item.type == "function_call":
            out.append(("tool_call", item.call_id, item.name, item.arguments))
    return out


def _our_items(message: Message) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for block in message.blocks:
        if isinstance(block, ThinkingBlock):
            out.append(("thinking", block.thinking))
        elif isinstance(block, TextBlock):
            out.append(("text", block.text))
        elif isinstance(block, ToolCall):
            out.append(("tool_call", block.id, block.name, block.raw_input))
    return out


def _assert_same_response(sdk: Response, ours: Message) -> None:
    assert ours.id == sdk.id and ours.model == sdk.model
    assert _our_items(ours) == _sdk_items(sdk)
    assert sdk.usage is not None
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        sdk.usage.input_tokens,
        sdk.usage.output_tokens,
    )


def test_responses_reasoning_summary_text_and_tool_calls(sim: SimURL) -> None:
    body = {
        "model": "gpt-sim",
        "input": "weather in Paris and Tokyo?",
        "tools": RESPONSES_TOOLS,
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    sdk, ours, data = _responses_both(sim, body, "weather")
    _assert_same_response(sdk, ours)
    assert sdk.status == "completed" and ours.stop_reason == "tool_use"
    assert ours.thinking == "The user asks about the weather in two cities; I can call the tool twice."
    assert ours.usage.reasoning_tokens == 17
    assert [(c.name, c.input) for c in ours.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    types = [name for name, _ in _payloads(data)]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"


def test_responses_without_a_summary_request_send_no_reasoning(sim: SimURL) -> None:
    body = {"model": "gpt-sim", "input": "weather in Paris?", "tools": RESPONSES_TOOLS}
    sdk, ours, _ = _responses_both(sim, body, "no-summary")
    _assert_same_response(sdk, ours)
    assert [b.kind for b in ours.blocks] == ["text", "tool_call", "tool_call"]


def test_responses_multi_turn(sim: SimURL) -> None:
    items: list[Any] = [
        {"role": "user", "content": "weather in Paris and Tokyo?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "the service is unavailable"},
    ]
    sdk, ours, _ = _responses_both(
        sim, {"model": "gpt-sim", "input": items, "tools": RESPONSES_TOOLS}, "turn2"
    )
    _assert_same_response(sdk, ours)
    assert ours.text == "The weather service is unavailable right now."


def test_responses_max_output_tokens(sim: SimURL) -> None:
    body = {
        "model": "gpt-sim",
        "input": "save the article",
        "tools": ARTICLE_RESPONSES,
        "max_output_tokens": 20,
    }
    sdk, ours, _ = _responses_both(sim, body, "cut")
    assert sdk.status == "incomplete" and sdk.incomplete_details is not None
    assert sdk.incomplete_details.reason == "max_output_tokens"
    assert ours.stop_reason == "max_tokens" and ours.terminal == "truncated"
    assert ours.text == "I'll save the article now." == _sdk_items(sdk)[0][1]
    call = ours.tool_calls[0]
    assert call.raw_input == '{"title":"Partial safety","content":"Streaming makes an'
    assert call.input is None and call.complete is False
    assert [item.status for item in sdk.output] == ["completed", "incomplete"]  # type: ignore[union-attr]
    assert sdk.usage is not None and sdk.usage.output_tokens == ours.usage.output_tokens == 20


def test_responses_sequence_numbers_and_obfuscation() -> None:
    body = {"model": "gpt-sim", "input": "markup"}
    with running(example_book(), speed=0) as real, running(example_book(), speed=0, realism=False) as plain:
        realistic = _raw(real, "responses", body, {})
        bare = _raw(plain, "responses", body, {})
    events = _payloads(realistic)
    assert [obj["sequence_number"] for _, obj in events] == list(range(len(events)))
    assert all(name == obj["type"] for name, obj in events)
    deltas = [obj for name, obj in events if name == "response.output_text.delta"]
    assert deltas and all((len(d["delta"]) + len(d["obfuscation"])) % 16 == 0 for d in deltas)
    assert b"obfuscation" not in bare and b'"sequence_number":0' in bare
    assert decode("openai-responses", bare).text == decode("openai-responses", realistic).text


def test_responses_mid_stream_error_then_failed(sim: SimURL) -> None:
    headers = {"x-midstream-fault": "error_after_events=5;error=overloaded"}
    body = {"model": "gpt-sim", "input": "essay"}
    with pytest.raises(openai.APIError, match="The server had an error"):  # noqa: SIM117
        with _client(sim).responses.stream(**body, extra_headers=headers) as stream:
            for _ in stream:
                pass
    data = _raw(sim, "responses", body, headers)
    names = [name for name, _ in _payloads(data)]
    assert names[-2:] == ["error", "response.failed"]
    ours = decode("openai-responses", data)
    assert ours.terminal == "failed" and ours.error.error_kind == "server"


@pytest.mark.parametrize(
    ("status", "header"), [(429, "retry_after=0.04"), (500, "retry_after_ms=40"), (503, "retry_after_ms=40")]
)
def test_responses_http_errors_retried(sim: SimURL, status: int, header: str) -> None:
    fresh(sim)
    response = _client(sim, max_retries=2).responses.create(
        model="gpt-sim", input="markup", extra_headers={"x-midstream-fault": f"http_status={status};{header}"}
    )
    assert response.output_text.startswith("Use <b>bold</b>")
    log = sim.requests()
    assert [r["status"] for r in log] == [status, 200]
    assert log[1]["received_ms"] - log[0]["received_ms"] >= 35


def test_responses_non_streaming_is_the_final_response_object(sim: SimURL) -> None:
    body = {
        "model": "gpt-sim",
        "input": "save the article",
        "tools": ARTICLE_RESPONSES,
        "max_output_tokens": 20,
    }
    whole = _client(sim).responses.create(**body)
    assert whole.status == "incomplete" and whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in whole.output] == ["message", "function_call"]
    call = whole.output[1]
    assert call.type == "function_call" and call.status == "incomplete"
    assert call.arguments == '{"title":"Partial safety","content":"Streaming makes an'
