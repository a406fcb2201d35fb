"""The simulator as a drop-in for real clients: tool_choice, structured output, stored Responses, side
endpoints, the providers' own refusals and error forms, each through the official SDKs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import anthropic
import boto3
import httpx2
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types as gtypes
from pydantic import BaseModel, Field

from midstream.sim import SimURL, running
from midstream.sim.conversations import ResponseStore
from midstream.sim.scenarios import example_for_schema
from midstream.wire import request_dialect
from midstream.wire.request import schema_problem

LOOKUP = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
BOOK = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer", "minimum": 2}},
    "required": ["city", "nights"],
}


class Trip(BaseModel):
    """A structured answer with the constraints pydantic writes into its schema."""

    city: str = Field(min_length=12)
    nights: int = Field(ge=3, le=9)
    tags: list[str] = Field(min_length=2)
    kind: str | None = None


def _anthropic(sim: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim, api_key="sk-sim", max_retries=0)


def _openai(sim: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sim}/v1", api_key="sk-sim", max_retries=0)


def _gemini(sim: str) -> genai.Client:
    options = gtypes.HttpOptions(base_url=sim, retry_options=gtypes.HttpRetryOptions(attempts=1))
    return genai.Client(api_key="sim", http_options=options)


def _bedrock(sim: str) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=sim,
        region_name="us-east-1",
        aws_access_key_id="AKIASIM",
        aws_secret_access_key="sim",
        config=Config(retries={"max_attempts": 1}),
    )


def _anthropic_tools() -> list[Any]:
    return [
        {"name": "lookup", "description": "look up", "input_schema": LOOKUP},
        {"name": "book", "description": "book", "input_schema": BOOK},
    ]


def _chat_tools() -> list[Any]:
    return [
        {"type": "function", "function": {"name": "lookup", "parameters": LOOKUP}},
        {"type": "function", "function": {"name": "book", "parameters": BOOK}},
    ]


# -- 1. tool_choice ------------------------------------------------------------------------------------


def test_anthropic_tool_choice(sim: SimURL) -> None:
    client = _anthropic(sim)
    ask: Any = {"model": "claude-x", "max_tokens": 500, "tools": _anthropic_tools()}
    hello = [{"role": "user", "content": "plan a trip"}]
    named = client.messages.create(**ask, messages=hello, tool_choice={"type": "tool", "name": "book"})
    assert [b.type for b in named.content] == ["tool_use"]  # a forced call has no text before it
    assert named.content[0].name == "book" and named.content[0].input == {"city": "example city", "nights": 2}
    assert named.stop_reason == "tool_use"
    none = client.messages.create(**ask, messages=hello, tool_choice={"type": "none"})
    assert [b.type for b in none.content] == ["text"] and none.stop_reason == "end_turn"
    auto = client.messages.create(**ask, messages=hello)
    assert [b.type for b in auto.content] == ["text", "tool_use"] and auto.content[1].name == "lookup"
    # After a tool result, "any" still calls a tool: the one the conversation has not called yet.
    turn = [
        *hello,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
    ]
    forced = client.messages.create(**ask, messages=turn, tool_choice={"type": "any"})
    assert [(b.type, getattr(b, "name", None)) for b in forced.content] == [("tool_use", "book")]
    assert client.messages.create(**ask, messages=turn).content[0].type == "text"
    with pytest.raises(anthropic.BadRequestError, match="tool_choice"):
        client.messages.create(**ask, messages=hello, tool_choice={"type": "tool", "name": "fly"})


def test_a_scenario_under_tool_choice(sim: SimURL) -> None:
    """A scripted turn that calls a tool answers in text under "none"; "required" keeps only its calls."""
    client = _openai(sim)
    weather = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    ask: Any = {
        "model": "gpt-x",
        "tools": weather,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    free = client.chat.completions.create(**ask).choices[0].message
    assert free.content and [c.function.name for c in free.tool_calls or []] == ["get_weather", "get_weather"]
    quiet = client.chat.completions.create(**ask, tool_choice="none").choices[0]
    assert quiet.message.tool_calls is None and quiet.finish_reason == "stop" and quiet.message.content
    forced = client.chat.completions.create(**ask, tool_choice="required").choices[0].message
    assert forced.content is None and len(forced.tool_calls or []) == 2


def test_openai_chat_and_responses_tool_choice(sim: SimURL) -> None:
    client = _openai(sim)
    ask: Any = {"model": "gpt-x", "tools": _chat_tools(), "messages": [{"role": "user", "content": "go"}]}
    named = client.chat.completions.create(
        **ask, tool_choice={"type": "function", "function": {"name": "book"}}
    )
    message = named.choices[0].message
    assert message.content is None and [c.function.name for c in message.tool_calls or []] == ["book"]
    assert json.loads((message.tool_calls or [])[0].function.arguments) == {
        "city": "example city",
        "nights": 2,
    }
    assert client.chat.completions.create(**ask, tool_choice="none").choices[0].message.tool_calls is None
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-x", messages=ask["messages"], tool_choice="required")
    assert caught.value.param == "tool_choice"
    flat = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}
        for t in ask["tools"]
    ]
    answer = client.responses.create(
        model="gpt-x", input="go", tools=flat, tool_choice={"type": "function", "name": "book"}
    )
    assert [(i.type, getattr(i, "name", None)) for i in answer.output] == [("function_call", "book")]
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "book"}]}
    assert (
        client.responses.create(model="gpt-x", input="go", tools=flat, tool_choice=allowed).output[0].name
        == "book"
    )  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-x", input="go", tools=flat, tool_choice={"type": "function", "name": "fly"}
        )
    assert caught.value.param == "tool_choice.name"


def test_gemini_and_bedrock_tool_choice(sim: SimURL) -> None:
    declarations = [
        gtypes.FunctionDeclaration(name="lookup", parameters_json_schema=LOOKUP),
        gtypes.FunctionDeclaration(name="book", parameters_json_schema=BOOK),
    ]

    def config(mode: str, names: list[str] | None = None) -> gtypes.GenerateContentConfig:
        calling = gtypes.FunctionCallingConfig(mode=mode, allowed_function_names=names)  # type: ignore[arg-type]
        return gtypes.GenerateContentConfig(
            tools=[gtypes.Tool(function_declarations=declarations)],
            tool_config=gtypes.ToolConfig(function_calling_config=calling),
        )

    client = _gemini(sim)
    any_book = client.models.generate_content(model="gemini-x", contents="go", config=config("ANY", ["book"]))
    assert [c.name for c in any_book.function_calls or []] == ["book"] and not any_book.text
    none = client.models.generate_content(model="gemini-x", contents="go", config=config("NONE"))
    assert not none.function_calls and none.text
    with pytest.raises(genai.errors.ClientError) as caught:
        client.models.generate_content(model="gemini-x", contents="go", config=config("AUTO", ["book"]))
    assert caught.value.code == 400 and "allowed_function_names" in str(caught.value.message)

    bedrock = _bedrock(sim)
    specs = [
        {"toolSpec": {"name": n, "inputSchema": {"json": s}}} for n, s in (("lookup", LOOKUP), ("book", BOOK))
    ]
    messages = [{"role": "user", "content": [{"text": "go"}]}]
    forced = bedrock.converse(
        modelId="anthropic.claude-x",
        messages=messages,
        toolConfig={"tools": specs, "toolChoice": {"tool": {"name": "book"}}},
    )
    blocks = forced["output"]["message"]["content"]
    assert [b["toolUse"]["name"] for b in blocks] == ["book"] and forced["stopReason"] == "tool_use"
    structure = {"jsonSchema": {"name": "trip", "schema": json.dumps(Trip.model_json_schema())}}
    shaped = bedrock.converse(
        modelId="anthropic.claude-x",
        messages=messages,
        outputConfig={"textFormat": {"type": "json_schema", "structure": structure}},
    )
    assert Trip.model_validate_json(shaped["output"]["message"]["content"][0]["text"]).nights >= 3


# -- 2. structured output ------------------------------------------------------------------------------


def test_openai_parse_gets_an_answer_valid_against_the_schema(sim: SimURL) -> None:
    client = _openai(sim)
    messages: Any = [{"role": "user", "content": "plan a trip"}]
    parsed = client.chat.completions.parse(model="gpt-x", messages=messages, response_format=Trip)
    trip = parsed.choices[0].message.parsed
    assert isinstance(trip, Trip) and len(trip.city) >= 12 and 3 <= trip.nights <= 9 and len(trip.tags) >= 2
    with client.chat.completions.stream(model="gpt-x", messages=messages, response_format=Trip) as stream:
        deltas = [e for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion().choices[0].message.parsed
    assert len(deltas) > 3 and final == trip  # streamed as text deltas of the JSON, as OpenAI streams it
    answer = client.responses.parse(model="gpt-x", input="plan a trip", text_format=Trip)
    assert answer.output_parsed == trip
    loose = client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "answer in JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        client.chat.completions.create(
            model="gpt-x", messages=messages, response_format={"type": "json_object"}
        )


class Visit(BaseModel):
    """What Anthropic's structured outputs can say in a schema (its SDK moves bounds into descriptions)."""

    city: str
    nights: int
    tags: list[str]
    kind: str | None = None


def test_anthropic_gemini_ollama_structured_output(sim: SimURL) -> None:
    parsed = _anthropic(sim).messages.parse(
        model="claude-x",
        max_tokens=800,
        messages=[{"role": "user", "content": "plan a trip"}],
        output_format=Visit,
    )
    assert isinstance(parsed.parsed_output, Visit) and parsed.content[0].type == "text"
    config = gtypes.GenerateContentConfig(response_mime_type="application/json", response_schema=Trip)
    client = _gemini(sim)  # kept: a client that is garbage-collected closes its connections
    answer = client.models.generate_content(model="gemini-x", contents="plan a trip", config=config)
    trip = answer.parsed
    assert isinstance(trip, Trip) and len(trip.city) >= 12 and trip.nights >= 3 and len(trip.tags) >= 2
    body = {"model": "llama3", "stream": False, "messages": [{"role": "user", "content": "trip"}]}
    ollama = httpx2.post(f"{sim}/api/chat", json={**body, "format": Trip.model_json_schema()}).json()
    again = Trip.model_validate_json(ollama["message"]["content"])
    # The same answer, but for the optional field: pydantic's schema gives it a default, Gemini's does not.
    assert again.model_dump(exclude={"kind"}) == trip.model_dump(exclude={"kind"})
    assert isinstance(
        json.loads(
            httpx2.post(f"{sim}/api/chat", json={**body, "format": "json"}).json()["message"]["content"]
        ),
        dict,
    )


def test_a_scenario_scripts_the_json(tmp_path: Any) -> None:
    scripted = {
        "scenarios": [
            {
                "name": "trip",
                "match": {"last_user": "trip"},
                "turns": [
                    {"blocks": [{"text": '{"city": "Reykjavik!!!!", "nights": 4, "tags": ["a", "b"]}'}]}
                ],
            }
        ]
    }
    path = tmp_path / "trip.json"
    path.write_text(json.dumps(scripted))
    with running(path, speed=0) as url:
        trip = _openai(url).chat.completions.parse(
            model="gpt-x", messages=[{"role": "user", "content": "trip"}], response_format=Trip
        )
    assert trip.choices[0].message.parsed == Trip(city="Reykjavik!!!!", nights=4, tags=["a", "b"])


def test_example_for_schema_is_valid_against_what_pydantic_writes() -> None:
    class Leg(BaseModel):
        origin: str = Field(max_length=3)
        stops: tuple[int, str]
        when: str = Field(json_schema_extra={"format": "date-time"})

    class Plan(BaseModel):
        legs: list[Leg] = Field(min_length=2, max_length=2)
        budget: float = Field(gt=100, multiple_of=0.5)
        first: Leg
        note: str | None

    value = example_for_schema(Plan.model_json_schema())
    plan = Plan.model_validate(value)
    assert len(plan.legs) == 2 and plan.budget > 100 and plan.first.origin == "exa"


# -- 3. stored Responses ---------------------------------------------------------------------------------


def test_previous_response_id_continues_the_stored_conversation(sim: SimURL) -> None:
    client = _openai(sim)
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    first = client.responses.create(model="gpt-x", input="weather in Paris?", tools=tools)
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 2
    results: Any = [
        {"type": "function_call_output", "call_id": c.call_id, "output": "18 C, sunny"} for c in calls
    ]
    # Only the tool results are sent: the question and the calls come from the stored response.
    second = client.responses.create(model="gpt-x", previous_response_id=first.id, input=results, tools=tools)
    assert second.output_text == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."
    assert client.responses.retrieve(second.id).output_text == second.output_text
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-x", previous_response_id="resp_nope", input="hi")
    assert caught.value.code == "previous_response_not_found" and caught.value.param == "previous_response_id"
    unstored = client.responses.create(model="gpt-x", input="hi", store=False)
    with pytest.raises(openai.BadRequestError, match="not found"):
        client.responses.create(model="gpt-x", previous_response_id=unstored.id, input="again")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_repeats_what_its_request_set(sim: SimURL, stream: bool) -> None:
    """The response object carries the request's parameters back, as OpenAI's does (defaults otherwise)."""
    client = _openai(sim)
    tools: Any = [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}
    ]
    first = client.responses.create(model="gpt-x", input="weather in Paris?", tools=tools)
    asked: dict[str, Any] = {
        "previous_response_id": first.id,
        "instructions": "Answer briefly.",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 300,
        "metadata": {"team": "blue"},
        "store": False,
        "tools": tools,
        "tool_choice": "none",
        "reasoning": {"summary": "auto"},
    }
    if stream:
        with client.responses.stream(model="gpt-x", input="thanks", **asked) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(model="gpt-x", input="thanks", **asked)
    assert response.previous_response_id == first.id and response.store is False
    assert response.instructions == "Answer briefly." and response.metadata == {"team": "blue"}
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.2, 0.9, 300)
    assert response.tool_choice == "none" and [t.name for t in response.tools] == ["get_weather"]
    assert response.reasoning is not None and response.reasoning.summary == "auto"
    assert response.reasoning.effort is None  # not asked: the default, next to what was
    assert first.previous_response_id is None and first.store is True and first.temperature == 1.0
    assert abs(response.created_at - time.time()) < 24 * 3600  # a real creation time, not a constant


def test_non_streamed_chat_and_ollama_answers_carry_their_creation_time(sim: SimURL) -> None:
    chat = _openai(sim).chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert abs(chat.created - time.time()) < 24 * 3600
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    whole = httpx2.post(f"{sim}/api/chat", json={**body, "stream": False}, timeout=10).json()
    lines = httpx2.post(f"{sim}/api/chat", json=body, timeout=10).text.splitlines()
    streamed = json.loads(lines[-1])["created_at"]
    # Go's RFC 3339 with nanoseconds, trailing zeros trimmed, as the streamed lines have it
    for stamp in (whole["created_at"], streamed):
        seconds, _, fraction = stamp.removesuffix("Z").partition(".")
        moment = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        assert abs(moment.timestamp() - time.time()) < 24 * 3600 and stamp.endswith("Z")
        assert fraction.isdigit() and not fraction.endswith("0") if fraction else True


def test_the_store_is_a_bounded_lru() -> None:
    store = ResponseStore(limit=2)
    for n in range(3):
        store.put(f"r{n}", [{"role": "user", "content": str(n)}], {"output": [{"type": "message", "n": n}]})
        if n == 1:
            assert store.items("r0") is not None  # used: r1 is now the least recently used
    assert len(store) == 2 and store.items("r1") is None
    assert store.items("r0") == [{"role": "user", "content": "0"}, {"type": "message", "n": 0}]


# -- 4. side endpoints and unknown routes ----------------------------------------------------------------


def test_side_endpoints(sim: SimURL) -> None:
    httpx2.delete(f"{sim}/_sim/requests")
    messages: Any = [{"role": "user", "content": "count these five words"}]
    counted = _anthropic(sim).messages.count_tokens(model="claude-x", messages=messages)
    used = _anthropic(sim).messages.create(model="claude-x", max_tokens=20, messages=messages).usage
    assert counted.input_tokens == used.input_tokens > 1  # what an answer to them reports
    oai = _openai(sim)
    assert [m.id for m in oai.models.list()] == ["gpt-4.1-mini"] and oai.models.retrieve(
        "gpt-x"
    ).id == "gpt-x"
    assert [m.id for m in _anthropic(sim).models.list()] == ["claude-sonnet-4-5"]
    client = _gemini(sim)
    assert client.models.get(model="gemini-x").name == "models/gemini-x"
    gemini_count = client.models.count_tokens(
        model="gemini-x", contents="count these five words"
    ).total_tokens
    assert gemini_count == counted.input_tokens
    converse = {"converse": {"messages": [{"role": "user", "content": [{"text": "count these five words"}]}]}}
    assert (
        _bedrock(sim).count_tokens(modelId="anthropic.claude-x", input=converse)["inputTokens"]
        == gemini_count
    )
    tags = httpx2.get(f"{sim}/api/tags").json()["models"]
    assert [m["name"] for m in tags] == ["llama3.2:latest"]
    assert "tools" in httpx2.post(f"{sim}/api/show", json={"model": "llama3.2"}).json()["capabilities"]
    assert httpx2.get(f"{sim}/api/version").json()["version"] and httpx2.get(f"{sim}/api/ps").json() == {
        "models": []
    }
    # Every request is in the simulator's request log, side endpoints included, under its provider.
    logged = [
        (r["provider"], r["path"], r["status"], r["stream"])
        for r in httpx2.get(f"{sim}/_sim/requests").json()
    ]
    assert logged == [
        ("anthropic", "/v1/messages/count_tokens", 200, False),
        ("anthropic", "/v1/messages", 200, False),
        ("openai-chat", "/v1/models", 200, False),
        ("openai-chat", "/v1/models/gpt-x", 200, False),
        ("anthropic", "/v1/models", 200, False),
        ("gemini", "/v1/models/gemini-x", 200, False),
        ("gemini", "/v1/models/gemini-x:countTokens", 200, False),
        ("bedrock", "/model/anthropic.claude-x/count-tokens", 200, False),
        ("ollama", "/api/tags", 200, False),
        ("ollama", "/api/show", 200, False),
        ("ollama", "/api/version", 200, False),
        ("ollama", "/api/ps", 200, False),
    ]


def test_unknown_routes_get_a_404_in_the_providers_shape(sim: SimURL) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _openai(sim).embeddings.create(model="e", input="x")
    assert caught.value.body == {
        "message": "Invalid URL (POST /v1/embeddings)",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }
    with pytest.raises(anthropic.NotFoundError) as anthropic_caught:
        _anthropic(sim).beta.files.list()
    assert anthropic_caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    gemini = httpx2.post(f"{sim}/v1beta/cachedContents", json={}).json()
    assert gemini["error"]["status"] == "NOT_FOUND" and gemini["error"]["code"] == 404
    assert httpx2.post(f"{sim}/api/embed", json={}).json() == {"error": "404 page not found"}
    bedrock = httpx2.post(f"{sim}/model/m/invoke", json={})
    assert bedrock.status_code == 404 and bedrock.headers["x-amzn-errortype"].startswith(
        "UnknownOperationException"
    )
    wrong_method = httpx2.get(f"{sim}/v1/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"


# -- 5. refusals like the provider's ---------------------------------------------------------------------


def test_requests_refused_as_the_provider_refuses_them(sim: SimURL) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _openai(sim).responses.create(model="gpt-x", input="hi", max_output_tokens=10)
    assert caught.value.code == "integer_below_min_value" and caught.value.param == "max_output_tokens"
    assert "Expected a value >= 16, but got 10 instead" in caught.value.message
    refused = httpx2.post(
        f"{sim}/v1/messages", json={"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert refused.status_code == 400 and refused.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    bad_schema = {"name": "t", "input_schema": {"type": "object", "properties": {"a": "string"}}}
    with pytest.raises(anthropic.BadRequestError, match="JSON schema is invalid"):
        _anthropic(sim).messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}], tools=[bad_schema]
        )  # type: ignore[list-item]
    gemini = httpx2.post(f"{sim}/v1beta/models/gemini-x:generateContent", json={"contents": []}).json()
    assert (
        gemini["error"]["status"] == "INVALID_ARGUMENT"
        and "contents is not specified" in gemini["error"]["message"]
    )
    with pytest.raises(Exception, match="maxTokens") as bedrock_caught:
        _bedrock(sim).converse(
            modelId="m",
            messages=[{"role": "user", "content": [{"text": "x"}]}],
            inferenceConfig={"maxTokens": 0},
        )
    assert type(bedrock_caught.value).__name__ in ("ValidationException", "ParamValidationError")
    assert httpx2.post(f"{sim}/api/chat", json={"messages": []}).json() == {"error": "model is required"}
    records = sim.requests()
    assert {r["status"] for r in records[-3:]} == {400}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}}, None),
        ({"type": "objekt"}, "'objekt' is not a JSON Schema type"),
        ({"properties": ["a"]}, "properties must be an object"),
        ({"items": {"minimum": "x"}}, "schema.items.minimum must be a number"),
        ({"anyOf": [{"type": "string"}, 3]}, "schema.anyOf[1] must be an object"),
        ({"required": "a"}, "required must be a list"),
        (True, None),
    ],
)
def test_schema_problems(schema: Any, problem: str | None) -> None:
    found = schema_problem(schema)
    assert found == problem if problem is None else problem in (found or "")


# -- 6. error forms -------------------------------------------------------------------------------------


def test_gemini_error_forms_and_retry_info(sim: SimURL) -> None:
    url = f"{sim}/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "tell me about rivers"}]}]}
    raw = httpx2.post(url, json=body, headers={"x-midstream-fault": "error_after_events=3"}).content
    assert raw.endswith(b'"status": "UNAVAILABLE"\n  }\n}\n') and b'data: {"error"' not in raw
    data = httpx2.post(
        url, json=body, headers={"x-midstream-fault": "error_after_events=3;error_form=data"}
    ).content
    assert data.endswith(b"\r\n\r\n") and b'data: {"error": {"code": 503' in data
    limited = httpx2.post(
        url, json=body, headers={"x-midstream-fault": "http_status=429;retry_after=19;times=1000"}
    )
    error = limited.json()["error"]
    assert limited.status_code == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "19s"}]
    spec = "error_after_events=2;error=rate_limited;retry_after_ms=1500;error_form=data"
    mid = httpx2.post(url, json=body, headers={"x-midstream-fault": spec}).content
    assert b'"retryDelay": "1.5s"' in mid


def test_every_dialect_reads_an_empty_body_leniently() -> None:
    for dialect in ("anthropic", "openai-chat", "openai-responses", "gemini", "bedrock", "ollama"):
        view = request_dialect(dialect).read({}, {})
        assert view.tools == [] and view.tool_choice.mode == "auto" and view.output is None
