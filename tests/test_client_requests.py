"""Request builders against the official SDKs: the same call, captured on both sides, must be the same
request (URL, body bytes, and the headers that matter).

The SDK side is always written by hand in the provider's own documented shapes, so it is an independent
oracle: anthropic and openai through ``httpx2.MockTransport``, google-genai likewise, boto3 through a
botocore ``before-send`` hook with the signing clock fixed. Ollama has no SDK here: its body is compared
with the documented request shape. Assistant turns are real responses decoded from the recorded streams,
so thinking signatures and redacted reasoning are the providers' own bytes.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import anthropic
import boto3
import httpx2
import openai
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from google import genai
from google.genai import types as gtypes
from pydantic import BaseModel

from midstream import wire
from midstream.client.providers import (
    BASE_URL_ENV,
    DEFAULT_BASE_URLS,
    ENV_KEYS,
    PROVIDERS,
    HTTPRequest,
    MissingCredentials,
    build_request,
)
from midstream.client.request import ChatRequest, ToolResult, ToolSpec, UserText
from midstream.core.accumulate import accumulate
from midstream.errors import LocalError
from midstream.message import Message, TextBlock, ThinkingBlock, ToolCall
from midstream.sim import running
from wiresupport import decode_chunks, recorded

KEY = "sk-test-SECRET-0123456789abcdef"
AWS_ID, AWS_SECRET, AWS_TOKEN = (
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "SESSION-TOKEN-SECRET",
)
FIXED_NOW = datetime.datetime(2026, 3, 4, 5, 6, 7)
AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_BEARER_TOKEN_BEDROCK",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or AWS setting may leak in from the machine; botocore's chain must find nothing fast."""
    for name in {
        *ENV_KEYS.values(),
        *BASE_URL_ENV.values(),
        "GOOGLE_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        *AWS_ENV,
    }:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


# -- tools, in the three forms a caller may give, and their schemas written out by hand ---------------


class Weather(BaseModel):
    """Weather for a city."""

    city: str
    days: int = 1


def local_time(city: str, utc: bool = False) -> str:
    """Current time in a city."""
    return ""


LOOKUP = {
    "name": "lookup",
    "description": "Look a word up.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
}
WEATHER_SCHEMA = {
    "description": "Weather for a city.",
    "properties": {
        "city": {"title": "City", "type": "string"},
        "days": {"default": 1, "title": "Days", "type": "integer"},
    },
    "required": ["city"],
    "type": "object",
}
TIME_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "utc": {"type": "boolean", "default": False}},
    "required": ["city"],
}
TOOLS: list[Any] = [ToolSpec.from_model(Weather, eager=True), local_time, LOOKUP]
TOOL_TEXTS = [
    ("Weather", "Weather for a city.", WEATHER_SCHEMA),
    ("local_time", "Current time in a city.", TIME_SCHEMA),
    ("lookup", "Look a word up.", LOOKUP["input_schema"]),
]


def message_of(dialect: str, name: str) -> Message:
    """A real assistant response: a recorded stream, decoded and accumulated."""
    message = accumulate(decode_chunks(dialect, [recorded(name)]))
    assert message.terminal == "completed"
    return message


# -- capturing what each SDK sends ---------------------------------------------------------------------


def _mock_client(seen: list[httpx2.Request], body: bytes, content_type: str) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def sdk_anthropic(**params: Any) -> httpx2.Request:
    seen: list[httpx2.Request] = []
    http = _mock_client(seen, b'event: message_stop\ndata: {"type":"message_stop"}\n\n', "text/event-stream")
    client = anthropic.Anthropic(api_key=KEY, http_client=http, max_retries=0)
    result = client.messages.create(**params)
    if hasattr(result, "close"):
        result.close()  # a non-streamed call gets the stream text back as is; the request is what matters
    return seen[0]


def sdk_openai(endpoint: str, base_url: str | None = None, **params: Any) -> httpx2.Request:
    seen: list[httpx2.Request] = []
    http = _mock_client(seen, b"data: [DONE]\n\n", "text/event-stream")
    client = openai.OpenAI(api_key=KEY, base_url=base_url, http_client=http, max_retries=0)
    api = client.chat.completions if endpoint == "chat" else client.responses
    result = api.create(**params)
    if hasattr(result, "close"):
        result.close()
    return seen[0]


def sdk_gemini(model: str, contents: Any, config: gtypes.GenerateContentConfig) -> httpx2.Request:
    seen: list[httpx2.Request] = []
    chunk = b'data: {"candidates": [{"content": {"parts": [{"text": "ok"}],"role": "model"}}]}\r\n\r\n'
    http = _mock_client(seen, chunk, "text/event-stream")
    client = genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(httpx_client=http))
    for _ in client.models.generate_content_stream(model=model, contents=contents, config=config):
        pass
    return seen[0]


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    """SigV4 signs the time: both signers read this one."""
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED_NOW):
        yield


def sdk_bedrock(
    session_token: str | None = None, region: str = "us-east-1", **params: Any
) -> AWSPreparedRequest:
    seen: list[AWSPreparedRequest] = []

    def before_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        seen.append(request)
        headers = {"content-type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, 200, headers, raw=io.BytesIO(b""))

    session = boto3.session.Session(
        aws_access_key_id=AWS_ID,
        aws_secret_access_key=AWS_SECRET,
        aws_session_token=session_token,
        region_name=region,
    )
    client = session.client("bedrock-runtime")
    client.meta.events.register("before-send.bedrock-runtime.*", before_send)
    client.converse_stream(**params)
    return seen[0]


def assert_same(ours: HTTPRequest, theirs: httpx2.Request, headers: tuple[str, ...]) -> None:
    """Same method, URL (path and query), JSON body (byte for byte) and the named headers."""
    assert ours.method == theirs.method
    assert ours.url == str(theirs.url)
    assert json.loads(ours.body) == json.loads(theirs.content)
    assert ours.body == theirs.content  # key order and separators too
    for name in headers:
        assert ours.headers.get(name) == theirs.headers.get(name), name


def build(provider: str, request: ChatRequest, **options: Any) -> HTTPRequest:
    options.setdefault("api_key", None if provider == "bedrock" else KEY)  # Bedrock: SigV4 by default
    options.setdefault("base_url", None)
    return build_request(provider, request, **options)


# -- Anthropic --------------------------------------------------------------------------------------

ANTHROPIC_HEADERS = (
    "authorization",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "accept",
)


def test_anthropic_text() -> None:
    request = ChatRequest.create("claude-test", "Hello", system="Be brief.", max_tokens=256)
    ours = build("anthropic", request)
    theirs = sdk_anthropic(
        model="claude-test",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
    )
    assert_same(ours, theirs, ANTHROPIC_HEADERS)
    assert ours.url == "https://api.anthropic.com/v1/messages"
    assert ours.headers["authorization"] == f"Bearer {KEY}"
    assert ours.headers["anthropic-version"] == "2026-10-21"
    assert json.loads(ours.body)["stream"] is True
    assert ours.dialect == "anthropic"


def test_anthropic_tools_eager_thinking_and_choice() -> None:
    request = ChatRequest.create(
        "claude-test",
        "Weather in Oslo?",
        tools=TOOLS,
        max_tokens=4096,
        thinking_budget=2048,
        tool_choice="auto",
    )
    ours = build("anthropic", request)
    tools: list[dict[str, Any]] = [
        {"name": name, "description": text, "input_schema": schema} for name, text, schema in TOOL_TEXTS
    ]
    tools[0]["eager_input_streaming"] = True  # only the tool asked to stream eagerly
    theirs = sdk_anthropic(
        model="claude-test",
        max_tokens=4096,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        tool_choice={"type": "auto"},
        tools=tools,
        stream=True,
    )
    assert_same(ours, theirs, ANTHROPIC_HEADERS)
    assert "anthropic-beta" not in ours.headers  # per-tool eager streaming needs no beta header


def test_anthropic_forced_tool_and_eager_override() -> None:
    request = ChatRequest.create("claude-x", "go", tools=[LOOKUP], tool_choice="lookup", eager=True)
    body = json.loads(build("anthropic", request).body)
    assert body["tool_choice"] == {"type": "tool", "name": "lookup"}
    assert body["tools"][0]["eager_input_streaming"] is True
    assert body["max_tokens"] == 1024


def test_anthropic_conversation_replay() -> None:
    thinking = message_of("anthropic", "anthropic_thinking.txt")
    redacted = message_of("anthropic", "anthropic_redacted_thinking.txt")
    server = message_of("anthropic", "anthropic_server_tool_then_tool_use.txt")
    call = server.tool_calls[0]
    request = ChatRequest.create(
        "claude-test",
        [
            "How do I cross the street?",
            thinking,
            "And the magic string?",
            redacted,
            "USD to EUR?",
            server,
            ToolResult(call.id, "0.92", is_error=False),
            ToolResult("toolu_other", "boom", is_error=True),
            "Thanks.",
        ],
        tools=[LOOKUP],
    )
    ours = build("anthropic", request)
    sig = thinking.blocks[0]
    assert isinstance(sig, ThinkingBlock) and sig.signature is not None
    server_blocks = [b for b in server.blocks if not isinstance(b, (TextBlock, ToolCall))]
    messages = [
        {"role": "user", "content": "How do I cross the street?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": sig.thinking, "signature": sig.signature},
                {"type": "text", "text": thinking.text},
            ],
        },
        {"role": "user", "content": "And the magic string?"},
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": redacted.blocks[0].data},  # type: ignore[union-attr]
                {"type": "redacted_thinking", "data": redacted.blocks[1].data},  # type: ignore[union-attr]
                {"type": "text", "text": redacted.text},
            ],
        },
        {"role": "user", "content": "USD to EUR?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": "Let me search for a tool that can provide current exchange rate information.",
                },
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_01S5swZdBmTzLDVzwcT5LbHp",
                    "name": "tool_search_tool_bm25",
                    "input": {"query": "USD EUR exchange rate currency conversion"},
                },
                server_blocks[1].content,  # type: ignore[union-attr]
                {
                    "type": "text",
                    "text": "I found the right tool! "
                    "Let me fetch the current USD to EUR exchange rate for you.",
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01EFn5wTNBYA8Reni8rbmnHT",
                    "name": "get_exchange_rate",
                    "input": {"from_currency": "USD", "to_currency": "EUR"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01EFn5wTNBYA8Reni8rbmnHT", "content": "0.92"},
                {"type": "tool_result", "tool_use_id": "toolu_other", "content": "boom", "is_error": True},
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]
    theirs = sdk_anthropic(
        model="claude-test", max_tokens=1024, messages=messages, tools=[LOOKUP], stream=True
    )
    assert_same(ours, theirs, ANTHROPIC_HEADERS)
    # The providers' own bytes go back untouched.
    assert sig.signature.startswith("EvMCCkYICxgCKkCHP2cSuEdcJK/0rF") and len(sig.signature) == 504
    assert sig.signature.encode() in ours.body
    assert b'"data":"EqkECkYIBxgCKkA8AZ4noDfV5VcOJe/p3JTRB6Xz5297' in ours.body


def test_anthropic_not_streamed() -> None:
    request = ChatRequest.create("claude-x", "Hello")
    ours = build("anthropic", request, stream=False)
    theirs = sdk_anthropic(model="claude-x", max_tokens=1024, messages=[{"role": "user", "content": "Hello"}])
    assert_same(ours, theirs, ANTHROPIC_HEADERS)
    assert "stream" not in json.loads(ours.body)


# -- OpenAI Chat Completions ------------------------------------------------------------------------

OPENAI_HEADERS = ("authorization", "content-type", "accept", "api-key")
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": name, "description": text, "parameters": schema}}
    for name, text, schema in TOOL_TEXTS
]


def test_openai_chat_text_with_usage() -> None:
    request = ChatRequest.create("gpt-5", "Hello", system="Be brief.", max_tokens=256)
    ours = build("openai-chat", request)
    theirs = sdk_openai(
        "chat",
        model="gpt-5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_completion_tokens=256,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert_same(ours, theirs, OPENAI_HEADERS)
    assert ours.url == "https://api.openai.com/v1/chat/completions"
    body = json.loads(ours.body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_openai_chat_tools_choice_temperature_reasoning() -> None:
    request = ChatRequest.create(
        "gpt-5", "Weather?", tools=TOOLS, tool_choice="lookup", temperature=0.2, thinking_budget=4000
    )
    ours = build("openai-chat", request)
    theirs = sdk_openai(
        "chat",
        model="gpt-5",
        messages=[{"role": "user", "content": "Weather?"}],
        max_completion_tokens=1024,
        reasoning_effort="medium",
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        tools=OPENAI_TOOLS,
    )
    assert_same(ours, theirs, OPENAI_HEADERS)


def test_openai_chat_conversation_replay() -> None:
    calls = message_of("openai-chat", "openai_chat_parallel_tool_calls.txt")
    first, second = calls.tool_calls
    request = ChatRequest.create(
        "gpt-5",
        [
            "Where am I and what is this?",
            calls,
            ToolResult(first.id, "Mexico"),
            ToolResult(second.id, "Pan"),
            "ok",
        ],
        tool_choice="any",
    )
    ours = build("openai-chat", request)
    theirs = sdk_openai(
        "chat",
        model="gpt-5",
        messages=[
            {"role": "user", "content": "Where am I and what is this?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_q2UyBRP7eXNTzAoR8lEhjc9Z",
                        "type": "function",
                        "function": {"name": "get_country", "arguments": "{}"},
                    },
                    {
                        "id": "call_b51ijcpFkDiTQG1bQzsrmtW5",
                        "type": "function",
                        "function": {"name": "get_product_name", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_q2UyBRP7eXNTzAoR8lEhjc9Z", "content": "Mexico"},
            {"role": "tool", "tool_call_id": "call_b51ijcpFkDiTQG1bQzsrmtW5", "content": "Pan"},
            {"role": "user", "content": "ok"},
        ],
        max_completion_tokens=1024,
        stream=True,
        stream_options={"include_usage": True},
        tool_choice="required",
    )
    assert_same(ours, theirs, OPENAI_HEADERS)


def test_openai_compatible_server() -> None:
    request = ChatRequest.create("qwen3", "Hello", tools=[LOOKUP], thinking_budget=1000, max_tokens=64)
    ours = build("openai-compatible", request, base_url="http://localhost:1234/v1")
    theirs = sdk_openai(
        "chat",
        base_url="http://localhost:1234/v1",
        model="qwen3",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=64,  # what most compatible servers read
        stream=True,
        stream_options={"include_usage": True},
        tools=[OPENAI_TOOLS[2]],
    )
    assert_same(ours, theirs, OPENAI_HEADERS)
    assert ours.dialect == "openai-chat"
    assert "authorization" not in build("openai-compatible", request, api_key=None).headers


def test_openai_chat_not_streamed() -> None:
    ours = build("openai-chat", ChatRequest.create("gpt-5", "Hi"), stream=False)
    assert json.loads(ours.body) == {
        "model": "gpt-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 1024,
    }


# -- OpenAI Responses -------------------------------------------------------------------------------


def test_openai_responses_text_tools_reasoning() -> None:
    request = ChatRequest.create(
        "gpt-5", "Weather?", system="Be brief.", tools=TOOLS, thinking_budget=100, tool_choice="any"
    )
    ours = build("openai-responses", request)
    theirs = sdk_openai(
        "responses",
        model="gpt-5",
        input=[{"role": "user", "content": "Weather?"}],
        instructions="Be brief.",
        max_output_tokens=1024,
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
        tool_choice="required",
        tools=[
            {"type": "function", "name": name, "description": text, "parameters": schema, "strict": False}
            for name, text, schema in TOOL_TEXTS
        ],
    )
    assert_same(ours, theirs, OPENAI_HEADERS)
    assert ours.url == "https://api.openai.com/v1/responses"
    assert ours.dialect == "openai-responses"


ANSWER_TEXT = "I\u2019ll check the capital lookup tool for \u201cPotatoLand.\u201d"


def test_openai_responses_conversation_replay() -> None:
    answer = message_of("openai-responses", "openai_responses_text_then_function_call.txt")
    call = answer.tool_calls[0]
    request = ChatRequest.create(
        "gpt-5", ["Capital of PotatoLand?", answer, ToolResult(call.id, "Spudville"), "Thanks"]
    )
    ours = build("openai-responses", request)
    theirs = sdk_openai(
        "responses",
        model="gpt-5",
        input=[
            {"role": "user", "content": "Capital of PotatoLand?"},
            {"role": "assistant", "content": ANSWER_TEXT, "phase": "commentary"},  # as captured
            {
                "type": "function_call",
                "call_id": "call_LabG58Uhrq9kZvR52BYKjToD",
                "name": "get_capital",
                "arguments": '{"country":"PotatoLand"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_LabG58Uhrq9kZvR52BYKjToD",
                "output": "Spudville",
            },
            {"role": "user", "content": "Thanks"},
        ],
        max_output_tokens=1024,
        stream=True,
    )
    assert_same(ours, theirs, OPENAI_HEADERS)
    assert "\u201cPotatoLand.\u201d".encode() in ours.body  # raw UTF-8, as the SDK writes it


# -- Gemini -----------------------------------------------------------------------------------------

GEMINI_HEADERS = ("x-goog-api-key", "content-type", "authorization")


def _declarations() -> list[gtypes.FunctionDeclaration]:
    return [
        gtypes.FunctionDeclaration(name=name, description=text, parameters_json_schema=schema)
        for name, text, schema in TOOL_TEXTS
    ]


def test_gemini_text_and_thinking() -> None:
    request = ChatRequest.create(
        "gemini-2.5-flash", "Hello", system="Be brief.", max_tokens=300, thinking_budget=512
    )
    ours = build("gemini", request)
    config = gtypes.GenerateContentConfig(
        system_instruction="Be brief.",
        max_output_tokens=300,
        thinking_config=gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=512),
    )
    theirs = sdk_gemini("gemini-2.5-flash", "Hello", config)
    assert_same(ours, theirs, GEMINI_HEADERS)
    assert ours.url == (
        "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert ours.headers["x-goog-api-key"] == KEY
    assert "authorization" not in ours.headers


def test_gemini_tools_choice_temperature() -> None:
    request = ChatRequest.create(
        "models/gemini-2.5-pro", "Weather?", tools=TOOLS, tool_choice="lookup", temperature=0.5
    )
    ours = build("gemini", request)
    config = gtypes.GenerateContentConfig(
        temperature=0.5,
        max_output_tokens=1024,
        tools=[gtypes.Tool(function_declarations=_declarations())],
        tool_config=gtypes.ToolConfig(
            function_calling_config=gtypes.FunctionCallingConfig(
                mode="ANY", allowed_function_names=["lookup"]
            )
        ),
    )
    theirs = sdk_gemini("models/gemini-2.5-pro", "Weather?", config)
    assert_same(ours, theirs, GEMINI_HEADERS)
    # Gemini API has no per-tool eager streaming: nothing Vertex-only is sent.
    assert b"streamFunctionCallArguments" not in ours.body


def test_gemini_conversation_with_thought_signature() -> None:
    answer = message_of("gemini", "gemini_sse_function_call_thought_signature.txt")
    call = answer.tool_calls[0]
    assert call.id == "call_QUVVadTSNJ6_qtsPvN7J8Q0_0"  # made up by midstream: Gemini sent no id
    sig = answer.blocks[0]
    assert isinstance(sig, ThinkingBlock) and sig.signature is not None
    request = ChatRequest.create(
        "gemini-3-pro",
        ["Which country?", answer, ToolResult(call.id, "Mexico"), "And the error?"],
        tools=[LOOKUP],
    )
    ours = build("gemini", request)
    contents = [
        gtypes.Content(role="user", parts=[gtypes.Part(text="Which country?")]),
        gtypes.Content(
            role="model",
            parts=[
                gtypes.Part(
                    function_call=gtypes.FunctionCall(name="get_country", args={}),
                    thought_signature=base64.b64decode(sig.signature),
                )
            ],
        ),
        gtypes.Content(
            role="user",
            parts=[
                gtypes.Part(
                    function_response=gtypes.FunctionResponse(
                        name="get_country", response={"output": "Mexico"}
                    )
                ),
                gtypes.Part(text="And the error?"),
            ],
        ),
    ]
    config = gtypes.GenerateContentConfig(
        max_output_tokens=1024,
        tools=[gtypes.Tool(function_declarations=[_declarations()[2]])],
    )
    theirs = sdk_gemini("gemini-3-pro", contents, config)
    # google-genai writes the signature's bytes in URL-safe base64; Google's JSON reads both alphabets,
    # and midstream sends back exactly the text Gemini sent (standard alphabet here).
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(sig.signature)).decode()
    assert urlsafe != sig.signature and urlsafe.encode() in theirs.content
    theirs = httpx2.Request(
        theirs.method,
        theirs.url,
        headers=theirs.headers,
        content=theirs.content.replace(urlsafe.encode(), sig.signature.encode()),
    )
    assert_same(ours, theirs, GEMINI_HEADERS)
    assert sig.signature.startswith("EpwICpkIAXLI2nxlU6gsWZaZHRYkX1") and len(sig.signature) == 1408
    assert f'"thoughtSignature": "{sig.signature}"'.encode() in ours.body
    assert b"call_QUVVadTSNJ6" not in ours.body  # the made-up id never reaches Gemini


def test_gemini_signature_placement_and_real_ids() -> None:
    answer = Message(
        provider="gemini",
        id="r1",
        blocks=(
            ThinkingBlock("plan", signature="U0lHMQ=="),
            TextBlock(text="Checking."),
            ToolCall(id="fc-7", name="lookup", raw_input='{"word":"x"}', input={"word": "x"}),
            ThinkingBlock("", signature="U0lHMg=="),
        ),
        terminal="completed",
    )
    request = ChatRequest.create("g", ["q", answer, ToolResult("fc-7", "found", is_error=True)])
    contents = json.loads(build("gemini", request).body)["contents"]
    assert contents[1] == {
        "parts": [
            {"text": "plan", "thought": True},
            {"text": "Checking.", "thoughtSignature": "U0lHMQ=="},
            {"functionCall": {"args": {"word": "x"}, "id": "fc-7", "name": "lookup"}},
            {"text": "", "thoughtSignature": "U0lHMg=="},
        ],
        "role": "model",
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"id": "fc-7", "name": "lookup", "response": {"error": "found"}}}
    ]


def test_gemini_not_streamed_and_google_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "google-env-SECRET")
    ours = build_request(
        "gemini", ChatRequest.create("gemini-x", "Hi"), api_key=None, base_url=None, stream=False
    )
    assert ours.url == "https://generativelanguage.googleapis.com/v1/models/gemini-x:generateContent"
    assert ours.headers["x-goog-api-key"] == "google-env-SECRET"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-env-SECRET")  # the Gemini name wins
    again = build_request("gemini", ChatRequest.create("gemini-x", "Hi"), api_key=None, base_url=None)
    assert again.headers["x-goog-api-key"] == "gemini-env-SECRET"


# -- Bedrock ----------------------------------------------------------------------------------------

BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def assert_same_signed(ours: HTTPRequest, theirs: AWSPreparedRequest) -> None:
    assert ours.url == theirs.url
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert ours.body == theirs.body
    theirs_headers = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in theirs.headers.items()
    }
    for name in ("content-type", "x-amz-date", "x-amz-security-token", "authorization"):
        assert ours.headers.get(name) == theirs_headers.get(name), name


def test_bedrock_text_signed_like_boto3(fixed_clock: None) -> None:
    request = ChatRequest.create(BEDROCK_MODEL, "Hello", system="Be brief.", max_tokens=200, temperature=0.3)
    ours = build_request(
        "bedrock",
        request,
        api_key=None,
        base_url=None,
        region="us-west-2",
        aws_credentials=(AWS_ID, AWS_SECRET),
    )
    theirs = sdk_bedrock(
        region="us-west-2",
        modelId=BEDROCK_MODEL,
        messages=[{"role": "user", "content": [{"text": "Hello"}]}],
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 200, "temperature": 0.3},
    )
    assert_same_signed(ours, theirs)
    assert ours.url == (
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    )
    auth = ours.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ID}/20260304/us-west-2/bedrock/aws4_request, ")
    assert "SignedHeaders=content-type;host;x-amz-date, Signature=" in auth
    assert ours.headers["x-amz-date"] == "20260304T050607Z"
    assert ours.dialect == "bedrock"


def test_bedrock_conversation_tools_thinking_session_token(
    fixed_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_TOKEN)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    thinking = message_of("bedrock", "bedrock_converse_stream_thinking.bin")
    redacted = message_of("bedrock", "bedrock_converse_stream_redacted_thinking.bin")
    tool_use = message_of("bedrock", "bedrock_converse_stream_tool_use.bin")
    call = tool_use.tool_calls[0]
    request = ChatRequest.create(
        BEDROCK_MODEL,
        [
            "Hello",
            thinking,
            "magic?",
            redacted,
            "Temperature in the capital of France?",
            tool_use,
            ToolResult(call.id, "24", is_error=True),
        ],
        tools=TOOLS,
        tool_choice="any",
        thinking_budget=1024,
        max_tokens=2048,
    )
    ours = build_request("bedrock", request, api_key=None, base_url=None)  # credentials from the environment
    sig = thinking.blocks[0]
    assert isinstance(sig, ThinkingBlock) and sig.signature is not None
    data = [b.data for b in redacted.blocks if not isinstance(b, TextBlock)]  # type: ignore[union-attr]
    theirs = sdk_bedrock(
        session_token=AWS_TOKEN,
        region="eu-central-1",
        modelId=BEDROCK_MODEL,
        messages=[
            {"role": "user", "content": [{"text": "Hello"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": sig.thinking, "signature": sig.signature}
                        }
                    },
                    {"text": thinking.text},
                ],
            },
            {"role": "user", "content": [{"text": "magic?"}]},
            {
                "role": "assistant",
                "content": [
                    *({"reasoningContent": {"redactedContent": base64.b64decode(d)}} for d in data),
                    {"text": redacted.text},
                ],
            },
            {"role": "user", "content": [{"text": "Temperature in the capital of France?"}]},
            {
                "role": "assistant",
                "content": [
                    {"text": tool_use.text},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_lAG_zP8QRHmSYOwZzzaCqA",
                            "name": "get_temperature",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_lAG_zP8QRHmSYOwZzzaCqA",
                            "content": [{"text": "24"}],
                            "status": "error",
                        }
                    }
                ],
            },
        ],
        inferenceConfig={"maxTokens": 2048},
        toolConfig={
            "tools": [
                {"toolSpec": {"name": name, "description": text, "inputSchema": {"json": schema}}}
                for name, text, schema in TOOL_TEXTS
            ],
            "toolChoice": {"any": {}},
        },
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    assert_same_signed(ours, theirs)
    assert ours.headers["x-amz-security-token"] == AWS_TOKEN
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in ours.headers["authorization"]
    assert sig.signature.startswith("Eu0CCkgIBxABGAIqQJDccbDQkr81n7") and sig.signature.encode() in ours.body
    assert data[0].startswith("RXRrRUNrZ0lCeEFCR0FJcVFKVGZxUy9Q") and data[0].encode() in ours.body


def test_bedrock_api_key_is_a_bearer_token_like_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-SECRET")
    request = ChatRequest.create(BEDROCK_MODEL, "Hello")
    ours = build_request("bedrock", request, api_key=None, base_url=None)
    theirs = sdk_bedrock(
        modelId=BEDROCK_MODEL,
        messages=[{"role": "user", "content": [{"text": "Hello"}]}],
        inferenceConfig={"maxTokens": 1024},
    )
    assert ours.headers["authorization"] == "Bearer bedrock-api-key-SECRET"
    assert theirs.headers["Authorization"] in (
        "Bearer bedrock-api-key-SECRET",
        b"Bearer bedrock-api-key-SECRET",
    )
    assert ours.body == theirs.body and ours.url == theirs.url
    assert "x-amz-date" not in ours.headers


def test_bedrock_explicit_api_key_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "env-SECRET")
    request = ChatRequest.create(BEDROCK_MODEL, "Hi")
    explicit = build_request(
        "bedrock", request, api_key="arg-SECRET", base_url=None, aws_credentials=(AWS_ID, AWS_SECRET)
    )
    assert explicit.headers["authorization"] == "Bearer arg-SECRET"
    # Credentials given in code beat a key in the environment.
    signed = build_request(
        "bedrock", request, api_key=None, base_url=None, aws_credentials=(AWS_ID, AWS_SECRET)
    )
    assert signed.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_bedrock_without_credentials() -> None:
    with pytest.raises(MissingCredentials) as caught:
        build_request("bedrock", ChatRequest.create(BEDROCK_MODEL, "Hi"), api_key=None, base_url=None)
    assert caught.value.env_var == "AWS_BEARER_TOKEN_BEDROCK"
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_bedrock_credentials_forms(fixed_clock: None) -> None:
    from botocore.credentials import Credentials

    request = ChatRequest.create(BEDROCK_MODEL, "Hi")
    forms: list[Any] = [
        (AWS_ID, AWS_SECRET, AWS_TOKEN),
        {"aws_access_key_id": AWS_ID, "aws_secret_access_key": AWS_SECRET, "aws_session_token": AWS_TOKEN},
        Credentials(AWS_ID, AWS_SECRET, AWS_TOKEN),
    ]
    signed = [
        build_request("bedrock", request, api_key=None, base_url=None, aws_credentials=f).headers
        for f in forms
    ]
    assert signed[0] == signed[1] == signed[2]
    with pytest.raises(LocalError) as caught:
        build_request("bedrock", request, api_key=None, base_url=None, aws_credentials=AWS_SECRET)
    assert AWS_SECRET not in str(caught.value)


# -- Ollama (no SDK here: the documented request shape) ---------------------------------------------


def test_ollama_documented_shape() -> None:
    call = ToolCall(
        id="call_1", name="get_weather", raw_input='{"city":"Toronto"}', input={"city": "Toronto"}
    )
    answer = Message(provider="ollama", blocks=(ThinkingBlock("Look it up."), call), terminal="completed")
    request = ChatRequest.create(
        "llama3.2",
        ["What is the weather in Toronto?", answer, ToolResult("call_1", "11 degrees celsius"), "Thanks"],
        system="Be brief.",
        tools=[LOOKUP],
        thinking_budget=1,
        max_tokens=128,
        temperature=0.1,
    )
    ours = build("ollama", request, api_key=None)
    assert ours.url == "http://localhost:11434/api/chat"
    assert ours.dialect == "ollama"
    assert "authorization" not in ours.headers
    assert ours.headers["content-type"] == "application/json"
    assert (
        ours.body
        == json.dumps(
            {
                "model": "llama3.2",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is the weather in Toronto?"},
                    {
                        "role": "assistant",
                        "content": "",
                        "thinking": "Look it up.",
                        "tool_calls": [
                            {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}
                        ],
                    },
                    {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
                    {"role": "user", "content": "Thanks"},
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "description": "Look a word up.",
                            "parameters": LOOKUP["input_schema"],
                        },
                    }
                ],
                "stream": True,
                "think": True,
                "options": {"num_predict": 128, "temperature": 0.1},
            },
            separators=(",", ":"),
        ).encode()
    )
    assert json.loads(build("ollama", request, api_key=None, stream=False).body)["stream"] is False
    assert (
        build("ollama", request, api_key="ollama-SECRET").headers["authorization"] == "Bearer ollama-SECRET"
    )


# -- replay across providers, and invalid tool input ------------------------------------------------


def test_other_providers_reasoning_is_not_replayed() -> None:
    thinking = message_of("anthropic", "anthropic_thinking.txt")
    request = ChatRequest.create("m", ["q", thinking, "more"])
    for provider in ("openai-chat", "openai-responses", "gemini", "bedrock", "ollama"):
        body = build(provider, request, aws_credentials=(AWS_ID, AWS_SECRET)).body
        assert b"EvMCCkYICxgCKkCHP2cS" not in body, provider  # the signature
        assert b"straightforward question about pedestrian" not in body, provider  # the thinking text
        assert b"basic steps for safely crossing" in body, provider  # the answer is kept


def test_truncated_tool_input_is_wrapped_and_valid_input_echoed_exactly() -> None:
    cut = ToolCall(
        id="toolu_cut", name="save", raw_input='{"title": "Fil', input=None, complete=False, error="truncated"
    )
    ok = ToolCall(id="toolu_ok", name="lookup", raw_input='{"word":  "x"}', input={"word": "x"})
    answer = Message(provider="anthropic", blocks=(ok, cut), terminal="truncated", stop_reason="max_tokens")
    request = ChatRequest.create(
        "m", ["q", answer, ToolResult("toolu_ok", "1"), ToolResult("toolu_cut", "no")]
    )
    anthropic_body = json.loads(build("anthropic", request).body)
    assert anthropic_body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_ok", "name": "lookup", "input": {"word": "x"}},
        {"type": "tool_use", "id": "toolu_cut", "name": "save", "input": {"INVALID_JSON": '{"title": "Fil'}},
    ]
    chat_calls = json.loads(build("openai-chat", request).body)["messages"][1]["tool_calls"]
    assert [c["function"]["arguments"] for c in chat_calls] == [
        '{"word":  "x"}',  # byte for byte, spaces included
        '{"INVALID_JSON":"{\\"title\\": \\"Fil"}',
    ]
    gemini_parts = json.loads(build("gemini", request).body)["contents"][1]["parts"]
    assert gemini_parts[1]["functionCall"]["args"] == {"INVALID_JSON": '{"title": "Fil'}
    results = json.loads(build("gemini", request).body)["contents"][2]["parts"]
    assert [r["functionResponse"]["name"] for r in results] == ["lookup", "save"]  # names found by call id


# -- credentials, redaction, URLs -------------------------------------------------------------------

REQUIRED = ("anthropic", "openai-chat", "openai-responses", "gemini")


@pytest.mark.parametrize("provider", REQUIRED)
def test_missing_key_names_the_variable(provider: str) -> None:
    with pytest.raises(MissingCredentials) as caught:
        build_request(provider, ChatRequest.create("m", "hi"), api_key=None, base_url=None)
    assert isinstance(caught.value, LocalError)
    assert caught.value.env_var == ENV_KEYS[provider]
    assert ENV_KEYS[provider] in str(caught.value)


@pytest.mark.parametrize("provider", REQUIRED)
def test_key_from_environment_and_explicit_key_wins(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEYS[provider], "env-SECRET")
    from_env = build_request(provider, ChatRequest.create("m", "hi"), api_key=None, base_url=None)
    assert "env-SECRET" in json.dumps(from_env.headers)
    explicit = build_request(provider, ChatRequest.create("m", "hi"), api_key="arg-SECRET", base_url=None)
    assert "arg-SECRET" in json.dumps(explicit.headers) and "env-SECRET" not in json.dumps(explicit.headers)


def test_openai_compatible_does_not_borrow_the_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai-SECRET")
    req = build_request("openai-compatible", ChatRequest.create("m", "hi"), api_key=None, base_url=None)
    assert "authorization" not in req.headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_keys_never_shown(provider: str, fixed_clock: None) -> None:
    key = AWS_TOKEN if provider == "bedrock" else KEY
    req = build(
        provider,
        ChatRequest.create("m", "hi"),
        aws_credentials=(AWS_ID, AWS_SECRET, AWS_TOKEN),
        extra_headers={"X-Custom-Token": "custom-SECRET", "X-Midstream-Scenario": "weather"},
    )
    assert key in json.dumps(req.headers)  # it is sent...
    shown = repr(req) + str(req.redacted_headers()) + req.url + req.body.decode()
    for secret in (key, AWS_SECRET, "custom-SECRET"):
        assert secret not in shown  # ...and never shown
    assert req.redacted_headers()["x-midstream-scenario"] == "weather"
    assert req.redacted_headers()["x-custom-token"] == "***"


def test_bad_key_rejected_without_echo() -> None:
    with pytest.raises(LocalError) as caught:
        build("anthropic", ChatRequest.create("m", "hi"), api_key="sk-SECRET\r\nx-evil: 1")
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("provider", sorted(set(PROVIDERS) - {"openai-compatible"}))
def test_a_request_json_cannot_carry_is_a_local_error(provider: str) -> None:
    odd_schema = ChatRequest.create("m", "hi", tools=[{"name": "t", "input_schema": {"enum": {1, 2}}}])
    nan = float("nan")
    nan_schema = ChatRequest.create("m", "hi", tools=[{"name": "t", "input_schema": {"maximum": nan}}])
    for request in (odd_schema, nan_schema):
        with pytest.raises(LocalError, match="cannot be sent as JSON"):
            build(provider, request, aws_credentials=(AWS_ID, AWS_SECRET))


def test_user_dicts_take_text_content_and_reject_the_rest() -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]
    (turn,) = ChatRequest.create("m", [{"role": "user", "content": parts}]).turns
    assert turn.parts == (UserText("Hello"), UserText("there"))
    for content in ([{"type": "image_url", "image_url": {"url": "https://x"}}], 42, None):
        with pytest.raises(LocalError, match="content"):
            ChatRequest.create("m", [{"role": "user", "content": content}])


def test_unknown_provider() -> None:
    with pytest.raises(LocalError, match="unknown provider 'cohere'"):
        build("cohere", ChatRequest.create("m", "hi"))


def test_dialects_are_wire_decoders() -> None:
    assert set(PROVIDERS) == set(ENV_KEYS) == set(DEFAULT_BASE_URLS)
    for provider in PROVIDERS:
        req = build(provider, ChatRequest.create("m", "hi"), aws_credentials=(AWS_ID, AWS_SECRET))
        assert req.dialect in wire.DIALECTS
        assert req.method == "POST"


@pytest.mark.parametrize(
    ("provider", "base", "url"),
    [
        ("openai-chat", "http://127.0.0.1:9000", "http://127.0.0.1:9000/v1/chat/completions"),
        ("openai-chat", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/v1/chat/completions"),
        ("openai-chat", "https://gw.example/openai/v1/", "https://gw.example/openai/v1/chat/completions"),
        ("openai-responses", "http://h:1", "http://h:1/v1/responses"),
        ("openai-compatible", "http://h:8080", "http://h:8080/v1/chat/completions"),
        ("anthropic", "https://gw.example/anthropic/", "https://gw.example/anthropic/v1/messages"),
        ("gemini", "http://h:1", "http://h:1/v1/models/m:streamGenerateContent?alt=sse"),
        ("ollama", "http://h:1/", "http://h:1/api/chat"),
        ("bedrock", "http://h:1", "http://h:1/model/m/converse-stream"),
    ],
)
def test_base_urls(provider: str, base: str, url: str) -> None:
    req = build(provider, ChatRequest.create("m", "hi"), base_url=base, aws_credentials=(AWS_ID, AWS_SECRET))
    assert req.url == url


def test_extra_headers_are_added_last_and_signed() -> None:
    req = build("anthropic", ChatRequest.create("m", "hi"), extra_headers={"Anthropic-Beta": "b1,b2"})
    assert req.headers["anthropic-beta"] == "b1,b2"
    signed = build(
        "bedrock",
        ChatRequest.create("m", "hi"),
        extra_headers={"X-Midstream-Scenario": "s"},
        aws_credentials=(AWS_ID, AWS_SECRET),
    )
    assert signed.headers["x-midstream-scenario"] == "s"
    assert "x-midstream-scenario" in signed.headers["authorization"].split("SignedHeaders=")[1]


# -- the simulator reads every request ------------------------------------------------------------


def test_every_provider_against_the_simulator() -> None:
    """Each request goes to the simulator's root URL and comes back as the provider's stream: the
    default answer calls the first offered tool, and after its result answers in text."""
    with running(speed=0) as sim, httpx2.Client() as http:
        for provider in PROVIDERS:
            first = ChatRequest.create("sim-model", "Weather in Oslo?", tools=[Weather], max_tokens=200)
            message = _send(http, build(provider, first, base_url=sim, aws_credentials=(AWS_ID, AWS_SECRET)))
            assert message.terminal == "completed", provider
            (call,) = message.tool_calls
            assert call.name == "Weather" and call.input is not None and "city" in call.input, provider
            second = ChatRequest.create(
                "sim-model",
                ["Weather in Oslo?", message, ToolResult(call.id, "Sunny, 21 C", name="Weather")],
                tools=[Weather],
            )
            reply = _send(http, build(provider, second, base_url=sim, aws_credentials=(AWS_ID, AWS_SECRET)))
            assert reply.terminal == "completed" and reply.text and not reply.tool_calls, provider
        records = sim.requests()
    assert [r["provider"] for r in records] == [
        p
        for p in (
            "anthropic",
            "openai-chat",
            "openai-responses",
            "gemini",
            "bedrock",
            "ollama",
            "openai-chat",
        )
        for _ in range(2)
    ]


def _send(http: httpx2.Client, req: HTTPRequest) -> Message:
    response = http.request(req.method, req.url, headers=req.headers, content=req.body)
    assert response.status_code == 200, response.text
    decoder = wire.decoder(req.dialect)
    events = [*decoder.feed(response.content), *decoder.close()]
    return accumulate(events)
