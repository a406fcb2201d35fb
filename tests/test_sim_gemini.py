"""The simulator's Gemini endpoints (Gemini API and Vertex AI), read by ``google-genai`` and by midstream:
the same request (pinned with ``x-midstream-seed``) must read the same both ways."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from midstream.message import Message
from midstream.sim import SimURL, running
from simsupport import ARTICLE_INPUT, decode, example_book, fresh

KEY = "AIza-test-SECRET"
MODEL = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city.",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
    },
)


def _client(url: str, **options: Any) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url, **options))


def _config(seed: str, **fields: Any) -> types.GenerateContentConfig:
    headers = {"x-midstream-seed": seed, **fields.pop("headers", {})}
    return types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers), **fields)


def _stream(url: str, contents: Any, config: types.GenerateContentConfig) -> dict[str, Any]:
    client = _client(url)  # kept alive while reading: a collected client closes its connection pool
    return _sdk_read(client.models.generate_content_stream(model=MODEL, contents=contents, config=config))


def _decode(data: bytes) -> Message:
    return decode("gemini", data)


def _sdk_read(chunks: Iterable[types.GenerateContentResponse]) -> dict[str, Any]:
    """What a google-genai user collects from the streamed chunks."""
    out: dict[str, Any] = {"text": "", "thinking": "", "calls": [], "finish": None, "usage": None, "id": None}
    for chunk in chunks:
        out["id"], out["usage"] = chunk.response_id, chunk.usage_metadata
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is None:
            continue
        for part in (candidate.content.parts if candidate.content else None) or []:
            if part.function_call is not None and part.function_call.name:
                out["calls"].append((part.function_call.name, part.function_call.args))
            elif part.text:
                out["thinking" if part.thought else "text"] += part.text
        if candidate.finish_reason is not None:
            out["finish"] = candidate.finish_reason.value
    return out


def _request_body(contents: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": contents}]}], **extra}


def _raw(
    url: str, body: dict[str, Any], seed: str, *, alt: str | None = "sse", path: str = "v1beta"
) -> bytes:
    query = f"?alt={alt}" if alt else ""
    response = httpx2.post(
        f"{url}/{path}/models/{MODEL}:streamGenerateContent{query}",
        json=body,
        headers={"x-midstream-seed": seed},
    )
    assert response.status_code == 200
    return response.content


def _assert_same(sdk: dict[str, Any], ours: Message) -> None:
    assert ours.id == sdk["id"]
    assert (ours.text, ours.thinking) == (sdk["text"], sdk["thinking"])
    assert [(c.name, c.input) for c in ours.tool_calls] == sdk["calls"]
    assert ours.raw_stop_reason == sdk["finish"]
    usage = sdk["usage"]
    assert ours.usage.input_tokens == usage.prompt_token_count
    assert ours.usage.output_tokens == (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)


@pytest.mark.parametrize("scenario", [s.name for s in example_book().scenarios])
def test_the_sdk_reads_every_scenario(sim: SimURL, scenario: str) -> None:
    headers = {"x-midstream-scenario": scenario}
    config = _config(
        f"every-{scenario}", headers=headers, thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    sdk = _stream(sim, "hello", config)
    body = _request_body("hello", generationConfig={"thinkingConfig": {"includeThoughts": True}})
    response = httpx2.post(
        f"{sim}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-midstream-seed": f"every-{scenario}", **headers},
    )
    ours = _decode(response.content)
    _assert_same(sdk, ours)
    assert ours.terminal == "completed" and ours.blocks


def test_text_with_escaping_and_crlf(sim: SimURL) -> None:
    sdk = _stream(sim, "markup", _config("t"))
    data = _raw(sim, _request_body("markup"), "t")
    ours = _decode(data)
    _assert_same(sdk, ours)
    assert ours.text == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."
    assert ours.stop_reason == "end_turn" and ours.terminal == "completed"
    assert b"\\u003c" in data and b"\\u003e" in data and b"<" not in data  # Gemini's HTML-safe escaping
    assert data.count(b"\r\n\r\n") == data.count(b"data: ") and b"\n\n" not in data.replace(b"\r\n", b"")
    assert b'{"candidates": [{"content": {"parts": [{"text": "Use"}],"role": "model"}}],' in data
    assert " 東京".encode() in data  # non-ASCII stays raw UTF-8


def test_realism_off_writes_plain_json() -> None:
    with running(example_book(), speed=0, realism=False) as url:
        data = _raw(url, _request_body("markup"), "plain")
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        response = httpx2.post(f"{url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=body)
        assert response.headers["content-disposition"] == "attachment"
    assert b"\\u003c" not in data and b" <" in data and b"promptTokensDetails" not in data
    assert _decode(data).text == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."


def test_thinking_and_function_calls(sim: SimURL) -> None:
    config = _config(
        "weather",
        tools=[types.Tool(function_declarations=[WEATHER])],
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    sdk = _stream(sim, "weather?", config)
    body = _request_body(
        "weather?",
        tools=[
            {"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object"}}]}
        ],
        generationConfig={"thinkingConfig": {"includeThoughts": True}},
    )
    data = _raw(sim, body, "weather")
    ours = _decode(data)
    _assert_same(sdk, ours)
    assert ours.thinking == "The user asks about the weather in two cities; I can call the tool twice."
    assert [(c.name, c.input) for c in ours.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert ours.stop_reason == "tool_use" and ours.raw_stop_reason == "STOP"
    assert ours.usage.reasoning_tokens == 17 == sdk["usage"].thoughts_token_count
    # Whole calls, no ids on the Gemini API: midstream names them from the response id.
    assert b'"functionCall": {"name": "get_weather","args": {"city": "Paris","unit": "celsius"}}' in data
    assert ours.tool_calls[1].id == f"call_{ours.id}_1"


def test_default_call_from_an_openapi_schema(sim: SimURL) -> None:
    declaration = types.FunctionDeclaration(
        name="find_book",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={
                "isbn": types.Schema(type=types.Type.STRING),
                "copies": types.Schema(type=types.Type.INTEGER),
            },
        ),
    )
    config = _config("default", tools=[types.Tool(function_declarations=[declaration])])
    sdk = _stream(sim, "find it", config)
    assert sdk["calls"] == [("find_book", {"isbn": "example isbn", "copies": 1})]
    assert sdk["text"] == "I'll use find_book for that."


def test_multi_turn_with_a_function_response(sim: SimURL) -> None:
    contents: list[Any] = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "P"}))],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(name="get_weather", response={"sky": "sunny"})
                )
            ],
        ),
    ]
    config = _config("turn2", tools=[types.Tool(function_declarations=[WEATHER])])
    sdk = _stream(sim, contents, config)
    assert sdk["text"] == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."


def test_max_output_tokens(sim: SimURL) -> None:
    config = _config("cut", max_output_tokens=8)
    sdk = _stream(sim, "an essay", config)
    body = _request_body("an essay", generationConfig={"maxOutputTokens": 8})
    ours = _decode(_raw(sim, body, "cut"))
    _assert_same(sdk, ours)
    assert sdk["finish"] == "MAX_TOKENS" and ours.stop_reason == "max_tokens" and ours.terminal == "truncated"
    assert ours.text == "Rivers begin as springs and snowmelt high in"


def test_non_streaming_and_json_array(sim: SimURL) -> None:
    config = _config("whole", tools=[types.Tool(function_declarations=[WEATHER])])
    client = _client(sim)
    whole = client.models.generate_content(model=MODEL, contents="weather?", config=config)
    assert whole.text == "Let me check both cities."
    assert [(c.name, c.args) for c in whole.function_calls or []] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    body = _request_body("weather?", tools=[{"functionDeclarations": [{"name": "get_weather"}]}])
    array = _raw(sim, body, "array", alt=None)
    assert array.startswith(b"[{\n  ") and array.endswith(b"\n}\n]") and b"\n,\r\n{" in array
    sse = _raw(sim, body, "array")
    assert _decode(array) == _decode(sse)
    assert isinstance(json.loads(array), list)


def test_vertex_streams_partial_arguments() -> None:
    declaration = types.FunctionDeclaration(name="save_article", parameters_json_schema={"type": "object"})
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(stream_function_call_arguments=True)
        ),
    )
    with running(example_book(), speed=0) as url:
        client = genai.Client(vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=url))
        chunks = list(
            client.models.generate_content_stream(
                model="gemini-3-pro", contents="save the article", config=config
            )
        )
        body = _request_body(
            "save the article",
            tools=[{"functionDeclarations": [{"name": "save_article"}]}],
            toolConfig={"functionCallingConfig": {"streamFunctionCallArguments": True}},
        )
        data = _raw(url, body, "vertex", path="v1/projects/p/locations/us-central1/publishers/google")
        assert url.requests()[0]["path"].startswith("/v1beta1/publishers/google/models/gemini-3-pro")
    calls = [p.function_call for c in chunks for p in c.candidates[0].content.parts if p.function_call]  # type: ignore[union-attr, index]
    assert calls[0].name == "save_article" and calls[0].will_continue is True
    pieces = [a.string_value for call in calls for a in call.partial_args or [] if a.json_path == "$.content"]
    assert len(pieces) > 2 and "".join(p or "" for p in pieces) == ARTICLE_INPUT["content"]
    assert calls[-1] == types.FunctionCall()  # the empty call that ends it
    assert b'"partialArgs": [{"jsonPath": "$.title","stringValue": "' in data
    ours = _decode(data)
    assert ours.tool_calls[0].input == ARTICLE_INPUT and ours.stop_reason == "tool_use"


def test_mid_stream_error_is_a_raw_error_object(sim: SimURL) -> None:
    fault = {"x-midstream-fault": "error_after_events=5;error=overloaded"}
    seen = ""
    with pytest.raises(errors.ServerError) as caught:
        config = _config("err", headers=fault)
        client = _client(sim)
        for chunk in client.models.generate_content_stream(model=MODEL, contents="essay", config=config):
            seen += chunk.text or ""
    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"
    response = httpx2.post(
        f"{sim}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        json=_request_body("essay"),
        headers={**fault, "x-midstream-seed": "err"},
    )
    assert response.content.endswith(b'{\n  "error": {\n    "code": 503,\n    "message": "Overloaded",\n'
                                     b'    "status": "UNAVAILABLE"\n  }\n}\n')  # fmt: skip
    ours = _decode(response.content)
    assert ours.terminal == "failed" and ours.error.error_kind == "overloaded"
    assert ours.text == seen == "Rivers begin as"


def test_http_errors_and_the_sdks_own_retry(sim: SimURL) -> None:
    fresh(sim)
    client = _client(sim)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=MODEL, contents="hi", config=_config("e", headers={"x-midstream-fault": "http_status=429"})
        )
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    retrying = _client(
        sim, retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    )
    fault = {"x-midstream-fault": "http_status=503;times=2;retry_after_ms=10"}
    answer = retrying.models.generate_content(model=MODEL, contents="hi", config=_config("r", headers=fault))
    assert answer.text == "This is the midstream simulator. You said: hi"
    assert [r["status"] for r in sim.requests()] == [429, 503, 503, 200]
