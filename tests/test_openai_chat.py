"""The OpenAI Chat Completions dialect: recorded streams, the official SDK as oracle, hand-written edge
cases (parallel and interleaved tool calls, every mid-stream error shape, truncation), and the encoder's
round trip."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import (
    LocalError,
    Message,
    RemoteProtocolError,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    Usage,
    accumulate,
    events_from_message,
    wire,
)
from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
)
from midstream.message import RedactedThinkingBlock
from midstream.wire.openai_chat import OpenAIChatDecoder
from wiresupport import assert_split_invariant, decode_chunks, recorded

DIALECT = "openai-chat"


# -- stream builders ---------------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    choices: list[Any] | None = None,
    usage: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` like the API writes it."""
    body: dict[str, Any] = {
        "id": "chatcmpl-hand",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
    }
    if choices is None:
        choices = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    body["choices"] = choices
    body["usage"] = usage
    body.update(extra)
    return body


def sse(*payloads: Any) -> bytes:
    """SSE framing: dicts become ``data: {json}``, strings are written as they are."""
    out = []
    for payload in payloads:
        if isinstance(payload, str):
            out.append(payload)
        else:
            out.append(f"data: {json.dumps(payload)}\n\n")
    return "".join(out).encode()


DONE = "data: [DONE]\n\n"


def call_start(index: int | None, call_id: str | None, name: str, args: str = "") -> dict[str, Any]:
    frag: dict[str, Any] = {}
    if index is not None:
        frag["index"] = index
    if call_id is not None:
        frag["id"] = call_id
    frag["type"] = "function"
    frag["function"] = {"name": name, "arguments": args}
    return {"tool_calls": [frag]}


def call_args(index: int | None, args: str, call_id: str | None = None) -> dict[str, Any]:
    frag: dict[str, Any] = {}
    if index is not None:
        frag["index"] = index
    if call_id is not None:
        frag["id"] = call_id
    frag["function"] = {"arguments": args}
    return {"tool_calls": [frag]}


def decode(data: bytes, runs: int = 50) -> tuple[list[Event], Message]:
    events = assert_split_invariant(DIALECT, data, random_runs=runs)
    return events, accumulate(events)


USAGE_CHUNK = chunk(
    choices=[],
    usage={
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 7, "audio_tokens": 0},
    },
)


# -- recorded streams ------------------------------------------------------------------------------


def test_recorded_text_include_usage() -> None:
    events, msg = decode(recorded("openai_chat_text_include_usage.txt"), runs=200)
    assert events[0] == ResponseStart(
        provider=DIALECT, model="gpt-4o-2024-08-06", id="chatcmpl-C2P1wP1damHwC6sXvGAIh5PMvH6wM"
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "The",
        " capital",
        " of",
        " Mexico",
        " is",
        " Mexico",
        " City",
        ".",
    ]
    assert msg.blocks == (TextBlock(text="The capital of Mexico is Mexico City."),)
    assert msg.stop_reason == "end_turn"
    assert msg.raw_stop_reason == "stop"
    assert msg.usage == Usage(input_tokens=14, output_tokens=8, cache_read_tokens=0, reasoning_tokens=0)
    assert msg.usage.total_tokens == 22
    assert msg.terminal == "completed"
    assert msg.error is None


def test_recorded_tool_call_arg_fragments() -> None:
    events, msg = decode(recorded("openai_chat_tool_call_arg_fragments.txt"), runs=200)
    assert [e.fragment for e in events if isinstance(e, ToolArgsDelta)] == [
        '{"',
        "city",
        '":"',
        "Mexico",
        " City",
        '"}',
    ]
    assert msg.id == "chatcmpl-C2QD2NQfRbWW5ww5we2oDjS1mgHtK"
    assert msg.blocks == (
        ToolCall(
            id="call_LwxJUB9KppVyogRRLQsamRJv",
            name="get_weather",
            raw_input='{"city":"Mexico City"}',
            input={"city": "Mexico City"},
        ),
    )
    assert msg.stop_reason == "tool_use"
    assert msg.raw_stop_reason == "tool_calls"
    assert msg.usage == Usage(input_tokens=423, output_tokens=15, cache_read_tokens=0, reasoning_tokens=0)
    assert msg.terminal == "completed"


def test_recorded_parallel_tool_calls() -> None:
    events, msg = decode(recorded("openai_chat_parallel_tool_calls.txt"), runs=200)
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert [(s.index, s.type, s.id, s.name) for s in starts] == [
        (0, "tool_call", "call_q2UyBRP7eXNTzAoR8lEhjc9Z", "get_country"),
        (1, "tool_call", "call_b51ijcpFkDiTQG1bQzsrmtW5", "get_product_name"),
    ]
    assert msg.blocks == (
        ToolCall(id="call_q2UyBRP7eXNTzAoR8lEhjc9Z", name="get_country", raw_input="{}", input={}),
        ToolCall(id="call_b51ijcpFkDiTQG1bQzsrmtW5", name="get_product_name", raw_input="{}", input={}),
    )
    assert msg.stop_reason == "tool_use"
    assert msg.usage == Usage(input_tokens=364, output_tokens=40, cache_read_tokens=0, reasoning_tokens=0)
    assert msg.terminal == "completed"
    assert msg.model == "gpt-4o-2024-08-06"


# -- the official SDK reading the same bytes -------------------------------------------------------


def sdk_final(data: bytes) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = openai.OpenAI(
        api_key="test",
        base_url="http://test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]) as s:
        for _ in s:
            pass
        return s.get_final_completion()


def assert_matches_sdk(data: bytes, msg: Message) -> None:
    final = sdk_final(data)
    choice = final.choices[0]
    assert final.id == msg.id
    assert final.model == msg.model
    assert (choice.message.content or "") == msg.text
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [(t.id, t.name) for t in msg.tool_calls]
    assert [c.function.arguments for c in calls] == [t.raw_input for t in msg.tool_calls]
    assert [json.loads(c.function.arguments or "{}") for c in calls] == [t.input for t in msg.tool_calls]
    assert choice.finish_reason == msg.raw_stop_reason
    if final.usage is None:
        assert msg.usage == Usage()
    else:
        assert final.usage.prompt_tokens == msg.usage.input_tokens
        assert final.usage.completion_tokens == msg.usage.output_tokens
        assert final.usage.total_tokens == msg.usage.total_tokens
        assert final.usage.prompt_tokens_details.cached_tokens == msg.usage.cache_read_tokens
        assert final.usage.completion_tokens_details.reasoning_tokens == msg.usage.reasoning_tokens


@pytest.mark.parametrize(
    "name",
    [
        "openai_chat_text_include_usage.txt",
        "openai_chat_tool_call_arg_fragments.txt",
        "openai_chat_parallel_tool_calls.txt",
    ],
)
def test_sdk_agrees_on_recorded(name: str) -> None:
    data = recorded(name)
    assert_matches_sdk(data, accumulate(decode_chunks(DIALECT, [data])))


def test_sdk_reads_encoder_output() -> None:
    msg = Message(
        provider=DIALECT,
        id="chatcmpl-enc",
        model="gpt-4o-mini",
        blocks=(
            TextBlock(text='Checking both: ü ✓ "quoted"\nnext line'),
            ToolCall(id="call_a", name="get_weather", raw_input='{"city": "Paris"}', input={"city": "Paris"}),
            ToolCall(id="call_b", name="get_time", raw_input='{"tz":"CET"}', input={"tz": "CET"}),
        ),
        stop_reason="tool_use",
        raw_stop_reason="tool_calls",
        usage=Usage(input_tokens=50, output_tokens=30, cache_read_tokens=10, reasoning_tokens=0),
        terminal="completed",
    )
    data = wire.encoder(DIALECT).encode_message(msg)
    assert_matches_sdk(data, msg)
    assert accumulate(decode_chunks(DIALECT, [data])) == msg


def test_sdk_raises_on_the_error_we_decode() -> None:
    data = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), PLAIN_ERROR, DONE)
    with pytest.raises(openai.APIError, match="server experienced an error"):
        sdk_final(data)


# -- the encoder writes what the API writes --------------------------------------------------------


def _strip_obfuscation(data: bytes) -> bytes:
    return re.sub(rb',"obfuscation":"[A-Za-z0-9]*"', b"", data)


@pytest.mark.parametrize(
    ("name", "created", "fingerprint"),
    [
        ("openai_chat_text_include_usage.txt", 1754688908, "fp_ff25b2783a"),
        ("openai_chat_tool_call_arg_fragments.txt", 1754693440, "fp_07871e2ad8"),
    ],
)
def test_encoder_reproduces_captures(name: str, created: int, fingerprint: str) -> None:
    data = recorded(name)
    events = decode_chunks(DIALECT, [data])
    enc = wire.encoder(DIALECT, created=created, system_fingerprint=fingerprint)
    out = enc.encode_all(events)
    # Byte for byte, except the random padding.
    assert _strip_obfuscation(out) == _strip_obfuscation(data)
    assert out.count(b'"obfuscation":"') == data.count(b'"obfuscation":"') == data.count(b"\n\n") - 1


def test_encoder_realism_is_seeded() -> None:
    msg = accumulate(decode_chunks(DIALECT, [recorded("openai_chat_text_include_usage.txt")]))
    one = wire.encoder(DIALECT, seed=1).encode_message(msg)
    assert one == wire.encoder(DIALECT, seed=1).encode_message(msg)
    assert one != wire.encoder(DIALECT, seed=2).encode_message(msg)
    lengths = {len(m) for m in re.findall(rb'"obfuscation":"([A-Za-z0-9]*)"', one)}
    assert lengths and max(lengths) <= 15
    plain = wire.encoder(DIALECT, realism=False).encode_message(msg)
    assert b"obfuscation" not in plain
    assert b"audio_tokens" not in plain
    assert plain.endswith(b"data: [DONE]\n\n")
    assert accumulate(decode_chunks(DIALECT, [plain])) == msg


def test_encoder_first_delta_shapes() -> None:
    text = Message(
        provider=DIALECT,
        id="c1",
        model="m",
        blocks=(TextBlock(text="hi"),),
        stop_reason="end_turn",
        raw_stop_reason="stop",
        terminal="completed",
    )
    first = wire.encoder(DIALECT, realism=False).encode_message(text).split(b"\n\n")[0]
    assert json.loads(first[6:])["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    tool = Message(
        provider=DIALECT,
        id="c2",
        model="m",
        blocks=(ToolCall(id="call_1", name="f", raw_input="", input={}),),
        stop_reason="tool_use",
        raw_stop_reason="tool_calls",
        terminal="completed",
    )
    first = wire.encoder(DIALECT, realism=False).encode_message(tool).split(b"\n\n")[0]
    assert json.loads(first[6:])["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        ],
        "refusal": None,
    }


def test_encoder_unrepresentable_content() -> None:
    signed = Message(
        provider=DIALECT,
        id="c",
        model="m",
        blocks=(ThinkingBlock("hmm", "sig"), TextBlock(text="ok")),
        stop_reason="end_turn",
        raw_stop_reason="stop",
        terminal="completed",
    )
    with pytest.raises(LocalError, match="signature"):
        wire.encoder(DIALECT).encode_message(signed)
    redacted = Message(
        provider=DIALECT,
        id="c",
        model="m",
        blocks=(RedactedThinkingBlock("xx"), TextBlock(text="ok")),
        stop_reason="end_turn",
        raw_stop_reason="stop",
        terminal="completed",
    )
    with pytest.raises(LocalError, match="redacted_thinking"):
        wire.encoder(DIALECT).encode_message(redacted)
    lenient = wire.encoder(DIALECT, strict=False).encode_message(redacted)
    assert accumulate(decode_chunks(DIALECT, [lenient])).blocks == (TextBlock(text="ok"),)
    lenient = wire.encoder(DIALECT, strict=False).encode_message(signed)
    assert accumulate(decode_chunks(DIALECT, [lenient])).blocks == (
        ThinkingBlock("hmm"),
        TextBlock(text="ok"),
    )
    with pytest.raises(LocalError):
        wire.encoder(DIALECT).encode(TextDelta(0, "before start"))


def test_encoder_stream_error_round_trip() -> None:
    data = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "partial"}), PLAIN_ERROR)
    msg = accumulate(decode_chunks(DIALECT, [data]))
    assert msg.terminal == "failed"
    again = wire.encoder(DIALECT).encode_message(msg)
    assert again.endswith(
        b'data: {"error":' + json.dumps(PLAIN_ERROR["error"], separators=(",", ":")).encode() + b"}\n\n"
    )
    assert accumulate(decode_chunks(DIALECT, [again])) == msg
    # Without the provider's payload the encoder writes an OpenAI-shaped error of the same kind.
    ev = [
        ResponseStart(provider=DIALECT, model="m", id="c"),
        StreamError(error_kind="rate_limited", message="slow down", retryable=True, status=429, raw=None),
    ]
    out = wire.encoder(DIALECT).encode_all(ev)
    decoded = [e for e in decode_chunks(DIALECT, [out]) if isinstance(e, StreamError)]
    assert decoded == [
        StreamError(
            error_kind="rate_limited",
            message="slow down",
            retryable=True,
            status=429,
            raw=json.loads(out[6:])["error"],
        )
    ]


# -- hand-written streams: tool calls --------------------------------------------------------------


def test_interleaved_parallel_tool_calls() -> None:
    data = sse(
        chunk({"role": "assistant", "content": None}),
        chunk(call_start(0, "call_a", "search")),
        chunk(call_start(1, "call_b", "lookup")),
        chunk(call_args(0, '{"q":')),
        chunk(call_args(1, '{"id":')),
        chunk(call_args(0, '"cats"}')),
        chunk(call_args(1, "42}")),
        chunk({}, "tool_calls"),
        DONE,
    )
    events, msg = decode(data)
    assert [(e.index, e.fragment) for e in events if isinstance(e, ToolArgsDelta)] == [
        (0, '{"q":'),
        (1, '{"id":'),
        (0, '"cats"}'),
        (1, "42}"),
    ]
    assert msg.blocks == (
        ToolCall(id="call_a", name="search", raw_input='{"q":"cats"}', input={"q": "cats"}),
        ToolCall(id="call_b", name="lookup", raw_input='{"id":42}', input={"id": 42}),
    )
    assert msg.terminal == "completed"


def test_repeated_index_with_new_id_is_a_new_call() -> None:
    # Some compatible servers number every call 0; the new id is what tells calls apart.
    data = sse(
        chunk(call_start(0, "call_1", "a", '{"x":1}')),
        chunk(call_start(0, "call_2", "b", "")),
        chunk(call_args(0, '{"y":2}')),
        chunk({}, "tool_calls"),
        DONE,
    )
    events, msg = decode(data)
    assert [(s.index, s.id) for s in events if isinstance(s, BlockStart)] == [(0, "call_1"), (1, "call_2")]
    assert msg.blocks == (
        ToolCall(id="call_1", name="a", raw_input='{"x":1}', input={"x": 1}),
        ToolCall(id="call_2", name="b", raw_input='{"y":2}', input={"y": 2}),
    )


def test_tool_calls_without_index() -> None:
    data = sse(
        chunk(call_start(None, "call_1", "a")),
        chunk(call_args(None, '{"k"')),  # no index, no id: the last call opened
        chunk(call_start(None, "call_2", "b")),
        chunk(call_args(None, ":1}", call_id="call_1")),  # by id, although call_2 is newer
        chunk(call_args(None, "{}")),
        chunk({}, "tool_calls"),
        DONE,
    )
    _, msg = decode(data)
    assert msg.blocks == (
        ToolCall(id="call_1", name="a", raw_input='{"k":1}', input={"k": 1}),
        ToolCall(id="call_2", name="b", raw_input="{}", input={}),
    )


def test_text_then_tool_calls_and_id_repeated_on_every_fragment() -> None:
    data = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check."}),
        chunk(call_start(0, "call_1", "f")),
        chunk(call_args(0, '{"a":', call_id="call_1")),
        chunk(
            {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "true}"}}]}
        ),
        chunk({}, "tool_calls"),
        DONE,
    )
    events, msg = decode(data)
    assert [(s.index, s.type) for s in events if isinstance(s, BlockStart)] == [(0, "text"), (1, "tool_call")]
    assert msg.blocks == (
        TextBlock(text="Let me check."),
        ToolCall(id="call_1", name="f", raw_input='{"a":true}', input={"a": True}),
    )


def test_legacy_function_call() -> None:
    data = sse(
        chunk({"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": ""}}),
        chunk({"function_call": {"arguments": '{"a":1}'}}),
        chunk({}, "function_call"),
        DONE,
    )
    events, msg = decode(data)
    assert msg.blocks == (ToolCall(id="", name="f", raw_input='{"a":1}', input={"a": 1}),)
    assert [s.raw_type for s in events if isinstance(s, BlockStart)] == ["function_call"]
    assert (msg.stop_reason, msg.raw_stop_reason) == ("tool_use", "function_call")


def test_length_mid_tool_call_is_truncated() -> None:
    data = sse(
        chunk({"role": "assistant", "content": "Sure"}),
        chunk(call_start(0, "call_1", "write_file")),
        chunk(call_args(0, '{"path":"a.txt","body":"hel')),
        chunk({}, "length"),
        USAGE_CHUNK,
        DONE,
    )
    events, msg = decode(data)
    assert BlockStop(1, complete=False) in events
    assert msg.blocks == (
        TextBlock(text="Sure", complete=False),
        ToolCall(
            id="call_1",
            name="write_file",
            raw_input='{"path":"a.txt","body":"hel',
            input=None,
            complete=False,
            error="truncated",
        ),
    )
    assert msg.stop_reason == "max_tokens"
    assert msg.raw_stop_reason == "length"
    assert msg.terminal == "truncated"
    assert msg.usage == Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64, reasoning_tokens=7)


# -- hand-written streams: ends, errors ------------------------------------------------------------


def test_eof_without_done_keeps_the_finish_reason() -> None:
    data = sse(chunk({"content": "All done."}), chunk({}, "stop"), USAGE_CHUNK)
    events, msg = decode(data)
    assert events[-1].stop_reason == "end_turn"  # type: ignore[union-attr]
    assert msg.blocks == (TextBlock(text="All done."),)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("end_turn", "stop", "truncated")
    assert msg.usage.input_tokens == 100


def test_eof_mid_answer() -> None:
    # The last event lacks its blank line: per the SSE standard it never happened.
    data = sse(chunk({"content": "Half"}), 'data: {"id":"x","choices":[]}\n')
    _, msg = decode(data)
    assert msg.blocks == (TextBlock(text="Half", complete=False),)
    assert (msg.stop_reason, msg.terminal) == (None, "truncated")


def test_done_without_finish_reason_is_truncated() -> None:
    _, msg = decode(sse(chunk({"content": "abc"}), DONE))
    assert msg.blocks == (TextBlock(text="abc", complete=False),)
    assert (msg.stop_reason, msg.terminal) == (None, "truncated")


def test_empty_body_and_bare_done() -> None:
    assert accumulate(decode_chunks(DIALECT, [b""])).terminal == "truncated"
    events = decode_chunks(DIALECT, [sse(DONE)])
    assert [e.kind for e in events] == ["response_start", "response_end"]


PLAIN_ERROR = {
    "error": {
        "message": "The server experienced an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


@pytest.mark.parametrize("tail", ["", DONE], ids=["plain", "then_done"])
def test_plain_midstream_error(tail: str) -> None:
    data = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), PLAIN_ERROR, tail)
    events, msg = decode(data)
    errors = [e for e in events if isinstance(e, StreamError)]
    assert errors == [
        StreamError(
            error_kind="server",
            message="The server experienced an error while processing your request. Sorry about that!",
            retryable=True,
            status=None,
            raw=PLAIN_ERROR["error"],
        )
    ]
    assert [e.kind for e in events][-3:] == ["block_stop", "stream_error", "response_end"]
    assert msg.blocks == (TextBlock(text="Hel", complete=False),)
    assert (msg.terminal, msg.stop_reason) == ("failed", "error")
    assert msg.error == errors[0]


def test_openrouter_error_inside_a_chunk() -> None:
    error_chunk = chunk(
        {"content": ""},
        "error",
        provider="openai",
        error={"code": 502, "message": "Provider disconnected unexpectedly"},
    )
    data = sse(
        ": OPENROUTER PROCESSING\n\n",
        chunk({"role": "assistant", "content": "The answer"}),
        ": OPENROUTER PROCESSING\n\n",
        error_chunk,
        DONE,
    )
    events, msg = decode(data)
    assert events[0] == ResponseStart(provider=DIALECT, model="gpt-test", id="chatcmpl-hand")
    assert msg.error == StreamError(
        error_kind="server",
        message="Provider disconnected unexpectedly",
        retryable=True,
        status=502,
        raw=error_chunk["error"],
    )
    assert msg.blocks == (TextBlock(text="The answer", complete=False),)
    assert msg.terminal == "failed"


@pytest.mark.parametrize(
    ("error", "kind", "retryable", "status"),
    [
        ({"code": "server_error", "message": "boom"}, "server", True, None),
        ({"code": 429, "message": "slow"}, "rate_limited", True, 429),
        ({"code": "401", "message": "who"}, "auth", False, 401),
        ({"message": "q", "type": "insufficient_quota", "code": "insufficient_quota"}, "quota", False, None),
        ({"message": "x", "type": "weird", "code": "rate_limit_exceeded"}, "rate_limited", True, None),
        ({"message": "x", "type": "weird"}, "unknown", False, None),
    ],
)
def test_error_classification(error: dict[str, Any], kind: str, retryable: bool, status: int | None) -> None:
    events = decode_chunks(DIALECT, [sse({"error": error})])
    (got,) = [e for e in events if isinstance(e, StreamError)]
    assert (got.error_kind, got.retryable, got.status, got.raw) == (kind, retryable, status, error)


def test_string_error_and_error_event() -> None:
    events = decode_chunks(DIALECT, [sse({"error": "model overloaded", "error_type": "overloaded"})])
    (got,) = [e for e in events if isinstance(e, StreamError)]
    assert (got.error_kind, got.message, got.retryable) == ("overloaded", "model overloaded", True)
    events = decode_chunks(DIALECT, [b'event: error\ndata: {"message":"bad"}\n\n'])
    (got,) = [e for e in events if isinstance(e, StreamError)]
    assert (got.message, got.raw) == ("bad", {"message": "bad"})


def test_falsy_error_key_is_a_normal_chunk() -> None:
    _, msg = decode(sse(chunk({"content": "ok"}, error=None), chunk({}, "stop", error={}), DONE))
    assert (msg.text, msg.terminal) == ("ok", "completed")


@pytest.mark.parametrize(
    "payload",
    [
        b"data: {not json}\n\n",
        b"data: [1, 2]\n\n",
        b'data: {"choices": {}}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "a"}]}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}\n\n',
    ],
)
def test_malformed_payloads_are_protocol_errors(payload: bytes) -> None:
    dec = wire.decoder(DIALECT)
    with pytest.raises(RemoteProtocolError):
        dec.feed(sse(chunk({"content": "a"})) + payload)
    end = dec.close()
    assert isinstance(end[-2], StreamError) and end[-2].error_kind == "protocol"
    assert isinstance(end[-1], ResponseEnd) and end[-1].terminal == "failed"


# -- hand-written streams: everything else --------------------------------------------------------


def test_unknown_shapes_pass_through() -> None:
    other_choice = {
        "index": 1,
        "delta": {"content": "second answer"},
        "logprobs": None,
        "finish_reason": None,
    }
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1}]}
    data = sse(
        {"object": "keepalive", "n": 1},
        chunk(
            choices=[
                {"index": 0, "delta": {"content": "Hi", "audio": {"id": "a1"}}, "logprobs": logprobs},
                other_choice,
            ]
        ),
        chunk({}, "stop", moderation={"input": {}}),
        DONE,
        sse(chunk({"content": "late"})).decode(),
    )
    _, msg = decode(data)
    # The dialect's own output: what the timeline then does with Unknown events is its business.
    raw = OpenAIChatDecoder().feed(data)
    unknown = [(e.raw_type, e.payload) for e in raw if isinstance(e, Unknown)]
    assert unknown == [
        ("keepalive", {"object": "keepalive", "n": 1}),
        ("delta.audio", {"id": "a1"}),
        ("logprobs", logprobs),
        ("choice", other_choice),
        ("moderation", {"input": {}}),
        ("chat.completion.chunk", chunk({"content": "late"})),
    ]
    assert msg.text == "Hi"
    assert msg.terminal == "completed"


def test_reasoning_refusal_and_annotations() -> None:
    citation = {"type": "url_citation", "url_citation": {"url": "https://example.com", "title": "Ex"}}
    data = sse(
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"reasoning_content": "Think"}),
        chunk({"reasoning": "ing."}),
        chunk({"content": "Answer"}),
        chunk({"refusal": "I can't add more."}),
        chunk({"annotations": [citation]}),
        chunk({}, "stop"),
        USAGE_CHUNK,
        DONE,
    )
    events, msg = decode(data)
    assert [(s.index, s.type, s.raw_type) for s in events if isinstance(s, BlockStart)] == [
        (0, "thinking", "thinking"),
        (1, "text", "text"),
        (2, "text", "refusal"),
    ]
    assert [e for e in events if isinstance(e, CitationDelta)] == [CitationDelta(1, citation)]
    assert msg.blocks == (
        ThinkingBlock("Thinking."),
        TextBlock(text="Answer", citations=(citation,)),
        TextBlock(text="I can't add more."),
    )
    assert msg.usage.reasoning_tokens == 7


def test_content_with_finish_and_usage_in_one_chunk() -> None:
    # vLLM and others put the last piece, the finish reason and the usage in one chunk.
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "prompt_cache_hit_tokens": 4}
    data = sse(chunk({"content": "a"}), chunk({"content": "b"}, "stop", usage=usage), DONE)
    events, msg = decode(data)
    assert [e.kind for e in events[-4:]] == ["text_delta", "block_stop", "usage_update", "response_end"]
    assert msg.text == "ab"
    assert msg.usage == Usage(input_tokens=9, output_tokens=3, cache_read_tokens=4)


def test_content_after_finish_opens_a_new_block() -> None:
    _, msg = decode(sse(chunk({"content": "a"}, "stop"), chunk({"content": "b"}), DONE))
    assert msg.blocks == (TextBlock(text="a"), TextBlock(text="b", complete=False))


@pytest.mark.parametrize(
    ("finish", "stop", "terminal"),
    [
        ("stop", "end_turn", "completed"),
        ("length", "max_tokens", "truncated"),
        ("tool_calls", "tool_use", "completed"),
        ("function_call", "tool_use", "completed"),
        ("content_filter", "content_filter", "completed"),
        ("error", "error", "failed"),
        ("eos", "other", "completed"),
    ],
)
def test_finish_reasons(finish: str, stop: str, terminal: str) -> None:
    _, msg = decode(sse(chunk({"content": "x"}), chunk({}, finish), DONE), runs=5)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == (stop, finish, terminal)
    assert msg.blocks[0].complete is (finish not in ("length", "error"))


# -- round trip ------------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_FINISHES = [
    ("end_turn", "stop"),
    ("tool_use", "tool_calls"),
    ("tool_use", "function_call"),
    ("content_filter", "content_filter"),
    ("other", "eos"),
    ("max_tokens", "length"),
]


@st.composite
def representable_messages(draw: st.DrawFn) -> Message:
    """Messages Chat Completions can carry: at most one text and one thinking block (no signature),
    tool calls with distinct ids, a finish reason, and either no usage or the counts OpenAI reports."""
    stop, raw = draw(st.sampled_from(_FINISHES))
    complete = raw != "length"
    eof = complete and draw(st.booleans())  # the connection ended before [DONE]
    blocks: list[Any] = []
    if draw(st.booleans()):
        blocks.append(TextBlock(text=draw(_text), complete=complete))
    if draw(st.booleans()):
        blocks.append(ThinkingBlock(draw(_text), complete=complete))
    ids = draw(st.lists(st.from_regex(r"call_[A-Za-z0-9]{1,12}", fullmatch=True), max_size=3, unique=True))
    for call_id in ids:
        args = draw(st.none() | st.dictionaries(_text, _json_value, max_size=3))
        raw_input = (
            ""
            if args is None
            else json.dumps(args, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
        )
        value = ({} if args is None else json.loads(raw_input)) if complete else None
        blocks.append(
            ToolCall(
                id=call_id,
                name=draw(_text),
                raw_input=raw_input,
                input=value,
                complete=complete,
                error=None if complete else "truncated",
            )
        )
    blocks = draw(st.permutations(blocks))
    counts = st.integers(min_value=0, max_value=10**6)
    usage = draw(
        st.just(Usage())
        | st.builds(
            Usage,
            input_tokens=counts,
            output_tokens=counts,
            cache_read_tokens=counts,
            reasoning_tokens=counts,
        )
    )
    return Message(
        provider=DIALECT,
        id=draw(st.from_regex(r"chatcmpl-[A-Za-z0-9]{1,20}", fullmatch=True)),
        model=draw(st.sampled_from(["gpt-4o-2024-08-06", "gpt-4.1-mini", "deepseek-reasoner"])),
        blocks=tuple(blocks),
        stop_reason=stop,
        raw_stop_reason=raw,
        usage=usage,
        terminal="truncated" if eof or not complete else "completed",
    )


@settings(max_examples=75, deadline=None)
@given(msg=representable_messages(), realism=st.booleans(), seed=st.integers(0, 2**32))
def test_round_trip(msg: Message, realism: bool, seed: int) -> None:
    data = wire.encoder(DIALECT, realism=realism, seed=seed).encode_message(msg)
    assert data.endswith(b"data: [DONE]\n\n") is (
        msg.terminal == "completed" or msg.stop_reason == "max_tokens"
    )
    assert accumulate(decode_chunks(DIALECT, [data])) == msg
    # Split anywhere, the same.
    cut = seed % max(1, len(data))
    assert accumulate(decode_chunks(DIALECT, [data[:cut], data[cut:]])) == msg


def test_round_trip_of_a_live_stream_keeps_every_fragment() -> None:
    # Replaying decoded events (not a Message) keeps the provider's fragmentation.
    events = decode_chunks(DIALECT, [recorded("openai_chat_tool_call_arg_fragments.txt")])
    again = decode_chunks(DIALECT, [wire.encoder(DIALECT, seed=5).encode_all(events)])
    assert again == events
    assert events_from_message(accumulate(again))[1] == BlockStart(
        index=0, type="tool_call", id="call_LwxJUB9KppVyogRRLQsamRJv", name="get_weather", raw_type="tool_use"
    )


def test_encoder_accepts_reasoning_field_and_signature_free_thinking() -> None:
    events = [
        ResponseStart(provider=DIALECT, model="m", id="c"),
        BlockStart(index=0, type="thinking"),
        ThinkingDelta(0, "hm"),
        BlockStop(0),
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="stop"),
    ]
    out = wire.encoder(DIALECT, realism=False, reasoning_field="reasoning").encode_all(events)
    assert b'"delta":{"reasoning":"hm"}' in out
    assert accumulate(decode_chunks(DIALECT, [out])).blocks == (ThinkingBlock("hm"),)
    with pytest.raises(LocalError):
        wire.encoder(DIALECT).encode_all([*events[:3], SignatureDelta(0, "s")])


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        ("openai-chat", b"data: " + b"[" * 100_000 + b"\n\n"),
        ("openai-responses", b"event: x\ndata: " + b"[" * 100_000 + b"\n\n"),
        ("gemini", b"data: " + b"[" * 100_000 + b"\r\n\r\n"),
    ],
)
def test_payload_nested_too_deeply_is_a_protocol_error(dialect: str, body: bytes) -> None:
    # json.loads raises RecursionError on such nesting; it must not escape as a bare crash.
    dec = wire.decoder(dialect)
    with pytest.raises(RemoteProtocolError):
        dec.feed(body)
    events = dec.close()
    assert events[-1].kind == "response_end"
    assert accumulate(events).terminal == "failed"
