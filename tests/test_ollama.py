"""The Ollama dialect: NDJSON from /api/chat and /api/generate, decoded and written back."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import (
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    StopReason,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    Usage,
)
from midstream.wire.ollama import OllamaDecoder, OllamaEncoder, go_json
from wiresupport import assert_split_invariant, decode_chunks, recorded

MODEL = "qwen3:8b"


def ndjson(*chunks: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for c in chunks)


def chat(content: str = "", *, done: bool = False, **message: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "created_at": "2025-06-01T10:00:00.123456789Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": done,
    }


FINAL_METRICS = {
    "total_duration": 5589157167,
    "load_duration": 3013701500,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 1051987000,
    "eval_count": 259,
    "eval_duration": 1476830000,
}


def final(done_reason: str | None = "stop", **fields: Any) -> dict[str, Any]:
    chunk = chat(done=True)
    if done_reason is not None:
        chunk["done_reason"] = done_reason
    chunk.update(FINAL_METRICS)
    chunk.update(fields)
    return chunk


def decode(data: bytes) -> tuple[list[Event], Message]:
    events = assert_split_invariant("ollama", data, random_runs=40)
    return events, accumulate(events)


# -- recorded documentation examples -------------------------------------------------------------------


def test_recorded_generate_stream() -> None:
    events, message = decode(recorded("ollama_generate_stream_docs_example.ndjson"))
    assert events[0] == ResponseStart(provider="ollama", model="gemma4", id=None)
    assert message.provider == "ollama"
    assert message.model == "gemma4"
    assert message.id is None
    assert message.blocks == (TextBlock(text="That's a fantastic question!"),)
    assert message.text == "That's a fantastic question!"
    assert message.stop_reason == "end_turn"
    assert message.raw_stop_reason == "stop"
    assert message.usage == Usage()  # the example carries no counts
    assert message.terminal == "completed"
    assert message.error is None
    # the last text arrives in the done chunk itself, before the block closes
    assert events[-3:] == [TextDelta(0, "!"), BlockStop(0, complete=True), events[-1]]


def test_recorded_generate_midstream_error() -> None:
    events, message = decode(recorded("ollama_generate_midstream_error_docs_example.ndjson"))
    assert message.model == "gemma4"
    assert message.blocks == (TextBlock(text=" Yes.Ican", complete=False),)
    assert message.terminal == "failed"
    assert message.stop_reason == "error"
    assert message.raw_stop_reason is None
    assert message.partial
    error = message.error
    assert isinstance(error, StreamError)
    assert error.message == "an error was encountered while running the model"
    assert error.error_kind == "server"
    assert error.retryable is True
    assert error.status is None
    assert error.raw == {"error": "an error was encountered while running the model"}
    assert [e.kind for e in events[-3:]] == ["block_stop", "stream_error", "response_end"]


# -- hand-written /api/chat streams --------------------------------------------------------------------


def test_chat_thinking_then_text_then_thinking_again() -> None:
    data = ndjson(
        chat(thinking="The user wants "),
        chat(thinking="a greeting."),
        chat("Hello"),
        chat(" there!"),
        chat(thinking="Add a question?"),
        chat("How are you?"),
        final(),
    )
    events, message = decode(data)
    assert message.blocks == (
        ThinkingBlock("The user wants a greeting."),
        TextBlock(text="Hello there!"),
        ThinkingBlock("Add a question?"),
        TextBlock(text="How are you?"),
    )
    assert message.thinking == "The user wants a greeting.Add a question?"
    starts = [(e.index, e.type) for e in events if isinstance(e, BlockStart)]
    assert starts == [(0, "thinking"), (1, "text"), (2, "thinking"), (3, "text")]
    # each block closes, complete, when the other kind starts
    assert events[3:7] == [
        ThinkingDelta(0, "a greeting."),
        BlockStop(0),
        BlockStart(index=1, type="text", raw_type="content"),
        TextDelta(1, "Hello"),
    ]
    assert message.stop_reason == "end_turn"
    assert message.usage == Usage(input_tokens=26, output_tokens=259)
    assert message.terminal == "completed"


def test_chat_tool_calls_with_and_without_id() -> None:
    weather = {"city": "Zürich", "days": 3, "units": {"temp": "c"}}
    data = ndjson(
        chat("Let me look that up."),
        chat(
            tool_calls=[
                {"id": "call_7fxk2m1q", "function": {"index": 0, "name": "get_weather", "arguments": weather}}
            ]
        ),
        chat(
            tool_calls=[
                {"function": {"index": 1, "name": "get_time", "arguments": {"tz": "Europe/Zurich"}}},
                {"function": {"name": "ping", "arguments": {}}},
            ]
        ),
        final(prompt_eval_count=120, eval_count=48),
    )
    events, message = decode(data)
    text, first, second, third = message.blocks
    assert text == TextBlock(text="Let me look that up.")
    assert first == ToolCall(
        id="call_7fxk2m1q",
        name="get_weather",
        raw_input='{"city":"Zürich","days":3,"units":{"temp":"c"}}',
        input={"city": "Zürich", "days": 3, "units": {"temp": "c"}},
    )
    # no id on the wire: a deterministic one, counting the response's tool calls from 0
    assert second == ToolCall(
        id="call_1", name="get_time", raw_input='{"tz":"Europe/Zurich"}', input={"tz": "Europe/Zurich"}
    )
    assert third == ToolCall(id="call_2", name="ping", raw_input="{}", input={})
    assert message.stop_reason == "tool_use"
    assert message.raw_stop_reason == "stop"
    assert message.usage == Usage(input_tokens=120, output_tokens=48)
    assert message.terminal == "completed"
    tool_events = [e for e in events if isinstance(e, ToolArgsDelta)]
    assert [e.fragment for e in tool_events] == [
        '{"city":"Zürich","days":3,"units":{"temp":"c"}}',
        '{"tz":"Europe/Zurich"}',
        "{}",
    ]


def test_tool_call_without_arguments_has_empty_input() -> None:
    data = ndjson(chat(tool_calls=[{"function": {"name": "now", "arguments": None}}]), final())
    _, message = decode(data)
    assert message.blocks == (ToolCall(id="call_0", name="now", raw_input="", input={}),)


def test_generate_tool_calls_and_thinking_at_top_level() -> None:
    base = {"model": MODEL, "created_at": "2025-06-01T10:00:00Z"}
    a = {"a": 1}
    data = ndjson(
        {**base, "response": "", "thinking": "Need a tool.", "done": False},
        {**base, "response": "", "done": False, "tool_calls": [{"function": {"name": "f", "arguments": a}}]},
        {**base, "response": "", "done": True, "done_reason": "stop", "eval_count": 9},
    )
    events, message = decode(data)
    assert message.blocks == (
        ThinkingBlock("Need a tool."),
        ToolCall(id="call_0", name="f", raw_input='{"a":1}', input={"a": 1}),
    )
    assert message.stop_reason == "tool_use"
    assert message.usage == Usage(output_tokens=9)
    assert events[1] == BlockStart(index=0, type="thinking", raw_type="thinking")


def test_done_reason_length_is_truncated() -> None:
    data = ndjson(chat("The first ten prime numbers are 2, 3, 5"), final("length", eval_count=12))
    _, message = decode(data)
    assert message.stop_reason == "max_tokens"
    assert message.raw_stop_reason == "length"
    assert message.terminal == "truncated"
    assert message.partial
    assert message.blocks == (TextBlock(text="The first ten prime numbers are 2, 3, 5", complete=False),)
    assert message.usage == Usage(input_tokens=26, output_tokens=12)


def test_length_closes_only_the_cut_block_incomplete() -> None:
    data = ndjson(
        chat("", thinking="Primes: 2, 3"),
        chat("Answer: 2, 3, 5, 7"),
        chat(" and 11"),
        final("length", eval_count=12),
    )
    events, message = decode(data)
    # The thinking block ended when the answer began; the answer is what the token limit cut.
    assert BlockStop(0, complete=True) in events
    assert events[-5:-2] == [
        TextDelta(1, " and 11"),
        BlockStop(1, complete=False),
        UsageUpdate(Usage(input_tokens=26, output_tokens=12)),
    ]
    assert BlockStop(1, complete=True) not in events
    assert message.blocks == (
        ThinkingBlock("Primes: 2, 3"),
        TextBlock(text="Answer: 2, 3, 5, 7 and 11", complete=False),
    )
    # Thinking cut by the limit is incomplete the same way; a finished call before it is not touched.
    call = {"id": "c1", "function": {"name": "f", "arguments": {}}}
    _, cut = decode(ndjson(chat("", tool_calls=[call]), chat("", thinking="next"), final("length")))
    assert [b.complete for b in cut.blocks] == [True, False]


@pytest.mark.parametrize(
    ("done_reason", "stop_reason"),
    [("load", "end_turn"), ("unload", "end_turn"), ("unexpected_reason", "other"), (None, "end_turn")],
)
def test_other_done_reasons(done_reason: str | None, stop_reason: str) -> None:
    _, message = decode(ndjson(chat("x"), final(done_reason)))
    assert message.stop_reason == stop_reason
    assert message.raw_stop_reason == done_reason
    assert message.terminal == "completed"


def test_final_chunk_without_message_and_metrics_event() -> None:
    last = {"model": MODEL, "created_at": "2025-06-01T10:00:01Z", "done": True, "done_reason": "stop"}
    last.update(FINAL_METRICS)
    events, message = decode(ndjson(chat("Hi."), last))
    assert message.blocks == (TextBlock(text="Hi."),)
    assert message.usage == Usage(input_tokens=26, output_tokens=259)
    assert message.terminal == "completed"
    assert events[-3:] == [
        UsageUpdate(Usage(input_tokens=26, output_tokens=259)),
        Unknown(
            raw_type="ollama.metrics",
            payload={
                "total_duration": 5589157167,
                "load_duration": 3013701500,
                "prompt_eval_duration": 1051987000,
                "eval_duration": 1476830000,
            },
        ),
        ResponseEnd(
            stop_reason="end_turn",
            raw_stop_reason="stop",
            usage=Usage(input_tokens=26, output_tokens=259),
            terminal="completed",
        ),
    ]


def test_midstream_error_overloaded() -> None:
    error_line = {"error": "server busy, please try again.  maximum pending requests exceeded"}
    _, message = decode(ndjson(chat(thinking="Let me"), error_line))
    assert message.blocks == (ThinkingBlock("Let me", complete=False),)
    assert message.terminal == "failed"
    assert message.error == StreamError(
        error_kind="overloaded",
        message="server busy, please try again.  maximum pending requests exceeded",
        retryable=True,
        status=None,
        raw=error_line,
    )


def test_error_before_any_chunk() -> None:
    events, message = decode(ndjson({"error": "model 'llama9' not found"}))
    assert events[0] == ResponseStart(provider="ollama")
    assert message.terminal == "failed"
    assert message.error.error_kind == "not_found"
    assert message.error.retryable is False
    assert message.blocks == ()


def test_eof_without_done_is_truncated() -> None:
    events, message = decode(ndjson(chat("Partial ans"), chat("wer")))
    assert message.blocks == (TextBlock(text="Partial answer", complete=False),)
    assert message.terminal == "truncated"
    assert message.stop_reason is None
    assert message.error is None
    assert events[-2:] == [BlockStop(0, complete=False), ResponseEnd(terminal="truncated")]


def test_a_line_cut_at_eof_truncates_the_response() -> None:
    # The connection dropped mid-line: the half line is dropped and the response is cut short.
    data = ndjson(chat("Partial ")) + ndjson(chat("answer"))[:-9]
    events, message = decode(data)
    assert message.text == "Partial "
    assert message.terminal == "truncated"
    assert not any(e.kind == "stream_error" for e in events)


def test_last_line_without_newline_is_decoded() -> None:
    data = ndjson(chat("ok")) + json.dumps(final()).encode()
    _, message = decode(data)
    assert message.terminal == "completed"
    assert message.text == "ok"


def test_unknown_object_passes_through() -> None:
    unknown = {"status": "pulling manifest"}
    assert OllamaDecoder().feed(ndjson(unknown))[0] == Unknown(raw_type="ollama.chunk", payload=unknown)
    events, message = decode(ndjson(unknown, chat("a"), final()))
    assert (
        Unknown(raw_type="ollama.chunk", payload=unknown) in events
    )  # placed around the start by the timeline
    assert message.text == "a"
    assert message.terminal == "completed"


@pytest.mark.parametrize(
    "bad_line",
    [
        b'{"model":"m","created_at":"x","message":{"role":"assistant","content":"a"},"done":fal\n',
        b"[1, 2, 3]\n",
        b'{"model":"m","message":{"role":"assistant","content":5},"done":false}\n',
        b'{"model":"m","message":"hello","done":false}\n',
        b'{"model":"m","message":{"content":"","tool_calls":[{"name":"f"}]},"done":false}\n',
        b'{"model":"m","response":"a","done":"yes"}\n',
        b'{"model":"m","response":"","done":true,"eval_count":"12"}\n',
        b'{"model":"m","response":"","done":true,"eval_count":true}\n',
        b'{"model":"m","response":NaN,"done":false}\n',
        b"[" * 100_000 + b"\n",
    ],
)
def test_malformed_lines_are_protocol_errors(bad_line: bytes) -> None:
    dec = wire.decoder("ollama")
    dec.feed(ndjson(chat("fine so far")))
    with pytest.raises(RemoteProtocolError):
        dec.feed(bad_line)
    closing = dec.close()
    assert isinstance(closing[-2], StreamError)
    assert closing[-2].error_kind == "protocol"
    assert isinstance(closing[-1], ResponseEnd)
    assert closing[-1].terminal == "failed"
    assert BlockStop(0, complete=False) in closing


def test_chunk_after_done_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_chunks("ollama", [ndjson(chat("a"), final(), chat(""))])


def test_line_limit() -> None:
    dec = wire.decoder("ollama", max_line=64)
    with pytest.raises(LimitExceeded):
        dec.feed(ndjson(chat("x" * 100)))


def test_registry_knows_ollama() -> None:
    assert "ollama" in wire.DIALECTS
    assert isinstance(wire.encoder("ollama"), OllamaEncoder)


# -- encoder -------------------------------------------------------------------------------------------

BASE = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_encoder_writes_go_json_exactly() -> None:
    message = Message(
        provider="ollama",
        model="llama3.2",
        blocks=(
            TextBlock(text='a<b>&c\u2028é"\n\x01'),
            ToolCall(id="call_k3x9", name="search", raw_input='{"q":"<x> & y"}', input={"q": "<x> & y"}),
        ),
        stop_reason="tool_use",
        raw_stop_reason="stop",
        usage=Usage(input_tokens=26, output_tokens=259),
        terminal="completed",
    )
    got = OllamaEncoder(realism=False, created_at=BASE).encode_message(message)
    expected = (
        r'{"model":"llama3.2","created_at":"2024-05-06T07:08:09.01Z","message":{"role":"assistant",'
        r'"content":"a\u003cb\u003e\u0026c\u2028é\"\n\u0001"},"done":false}'
        "\n"
        r'{"model":"llama3.2","created_at":"2024-05-06T07:08:09.02Z","message":{"role":"assistant",'
        r'"content":"","tool_calls":[{"id":"call_k3x9","function":{"index":0,"name":"search",'
        r'"arguments":{"q":"\u003cx\u003e \u0026 y"}}}]},"done":false}'
        "\n"
        r'{"model":"llama3.2","created_at":"2024-05-06T07:08:09.03Z","message":{"role":"assistant",'
        r'"content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":259}'
        "\n"
    ).encode()
    assert got == expected
    _, decoded = decode(got)
    assert decoded == message


def test_encoder_generate_api_and_thinking() -> None:
    message = Message(
        provider="ollama",
        model="deepseek-r1",
        blocks=(ThinkingBlock("hmm"), TextBlock(text="Yes.", complete=False)),
        stop_reason="max_tokens",
        raw_stop_reason="length",
        usage=Usage(input_tokens=3, output_tokens=4),
        terminal="truncated",
    )
    got = OllamaEncoder(api="generate", realism=False, created_at=BASE).encode_message(message)
    assert got.decode().splitlines() == [
        '{"model":"deepseek-r1","created_at":"2024-05-06T07:08:09.01Z","response":"","thinking":"hmm","done":false}',
        '{"model":"deepseek-r1","created_at":"2024-05-06T07:08:09.02Z","response":"Yes.","done":false}',
        '{"model":"deepseek-r1","created_at":"2024-05-06T07:08:09.03Z","response":"","done":true,'
        '"done_reason":"length","prompt_eval_count":3,"eval_count":4}',
    ]


def test_go_json_escapes() -> None:
    assert go_json("<>&") == r'"\u003c\u003e\u0026"'
    assert go_json("\u2028\u2029") == r'"\u2028\u2029"'
    assert go_json("\ud800") == r'"\ud800"'  # a lone surrogate stays decodable, as an escape
    assert go_json({"b": 1, "a": [True, None, 1.5]}) == '{"b":1,"a":[true,null,1.5]}'
    assert go_json("日本\t") == '"日本\\t"'


def test_realistic_stamps_and_durations_are_seeded() -> None:
    message = Message(
        provider="ollama",
        model="m",
        blocks=(TextBlock(text="one"),),
        stop_reason="end_turn",
        raw_stop_reason="stop",
        usage=Usage(input_tokens=5, output_tokens=1),
        terminal="completed",
    )
    first = OllamaEncoder(seed=7, created_at=BASE).encode_message(message)
    assert first == OllamaEncoder(seed=7, created_at=BASE).encode_message(message)
    assert first != OllamaEncoder(seed=8, created_at=BASE).encode_message(message)
    lines = [json.loads(line) for line in first.splitlines()]
    assert [line["created_at"][:19] for line in lines] == ["2024-05-06T07:08:09"] * 2
    assert lines[0]["created_at"] < lines[1]["created_at"]
    done = lines[-1]
    assert list(done) == [
        "model",
        "created_at",
        "message",
        "done",
        "done_reason",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    parts = done["load_duration"] + done["prompt_eval_duration"] + done["eval_duration"]
    assert done["eval_duration"] > 0
    assert parts <= done["total_duration"] < parts + 50_000_000


def test_decoded_metrics_are_written_back() -> None:
    events, _ = decode(ndjson(chat("Hi."), final()))
    for realism in (True, False):
        out = OllamaEncoder(realism=realism).encode_all(events)
        done = json.loads(out.splitlines()[-1])
        assert {k: v for k, v in done.items() if k.endswith(("_duration", "_count"))} == FINAL_METRICS


def test_encoder_rejects_bad_tool_input_and_bad_api() -> None:
    for raw in ('{"a": 1', "[1, 2]", '"text"', '{"x": NaN}'):
        message = Message(
            provider="ollama",
            blocks=(ToolCall(id="c", name="f", raw_input=raw, input=None, error="invalid_json"),),
        )
        with pytest.raises(LocalError):
            OllamaEncoder().encode_message(message)
    with pytest.raises(LocalError):
        OllamaEncoder(api="embed")  # type: ignore[arg-type]


def test_encoder_skips_what_ollama_cannot_carry() -> None:
    message = Message(
        provider="anthropic",
        model="m",
        blocks=(
            ThinkingBlock("think", signature="sig=="),
            RedactedThinkingBlock("opaque"),
            ServerToolBlock(
                raw_type="server_tool_use",
                id="srv_1",
                name="web_search",
                raw_input='{"q":"x"}',
                input={"q": "x"},
            ),
            TextBlock(text="answer"),
            ToolCall(id="t1", name="f", raw_input='{"a":', input=None, complete=False, error="truncated"),
        ),
        stop_reason="max_tokens",
        raw_stop_reason="max_tokens",
        terminal="truncated",
    )
    out = OllamaEncoder(realism=False).encode_message(message)
    assert b"sig==" not in out
    assert b"opaque" not in out
    assert b"web_search" not in out
    assert b"tool_calls" not in out  # an unfinished call is never written as a whole one
    _, decoded = decode(out)
    # "length" cuts whichever block the body ends in: here the answer, since the cut call is not written.
    assert decoded.blocks == (ThinkingBlock("think"), TextBlock(text="answer", complete=False))
    assert decoded.stop_reason == "max_tokens"
    assert decoded.raw_stop_reason == "length"  # another provider's reason, said Ollama's way


def test_encoder_error_and_eof_endings() -> None:
    error = StreamError(
        error_kind="server", message="runner crashed", retryable=True, raw={"error": "runner crashed"}
    )
    events: list[Event] = [
        ResponseStart(provider="ollama", model="m"),
        BlockStart(index=0, type="text"),
        TextDelta(0, "par"),
        error,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]
    out = OllamaEncoder(realism=False).encode_all(events)
    assert out.splitlines()[-1] == b'{"error":"runner crashed"}'
    _, decoded = decode(out)
    assert decoded.error == error
    truncated = OllamaEncoder(realism=False).encode_all([*events[:3], ResponseEnd(terminal="truncated")])
    assert b'"done":true' not in truncated
    assert decode(truncated)[1].terminal == "truncated"


# -- round trip ------------------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from('<>&\u2028\u2029"\\\n\r\t\x00')),
    min_size=1,
    max_size=30,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Our own table (not the decoder's): done_reason -> (stop reason without / with tool calls).
STOPS: dict[str, tuple[StopReason, StopReason]] = {
    "stop": ("end_turn", "tool_use"),
    "length": ("max_tokens", "max_tokens"),
    "load": ("end_turn", "end_turn"),
    "unload": ("end_turn", "end_turn"),
    "cancelled_by_runner": ("other", "other"),
}
ERRORS = [
    ("an error was encountered while running the model", "server", True),
    ("server busy, please try again.  maximum pending requests exceeded", "overloaded", True),
]


@st.composite
def tool_calls(draw: st.DrawFn) -> ToolCall:
    arguments = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=4))
    call_id = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12))
    raw = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    return ToolCall(id=call_id, name=draw(st.text(max_size=12)), raw_input=raw, input=arguments)


@st.composite
def ollama_messages(draw: st.DrawFn) -> Message:
    blocks: list[Block] = []
    for kind in draw(st.lists(st.sampled_from(["text", "thinking", "tool"]), max_size=6)):
        previous = blocks[-1].kind if blocks else None
        if kind == "tool":
            blocks.append(draw(tool_calls()))
        elif kind != previous:  # two text blocks in a row are one on Ollama's wire
            blocks.append(TextBlock(text=draw(TEXT)) if kind == "text" else ThinkingBlock(draw(TEXT)))
    model = draw(st.none() | TEXT)
    ending = draw(st.sampled_from(["done", "done", "error", "eof"]))
    if ending == "done":
        reason = draw(st.sampled_from(sorted(STOPS)))
        stop = STOPS[reason][any(isinstance(b, ToolCall) for b in blocks)]
        usage = Usage(
            input_tokens=draw(st.none() | st.integers(1, 10**6)),
            output_tokens=draw(st.none() | st.integers(1, 10**6)),
        )
        # "length" cuts the text or thinking block still streaming: it never reads as finished.
        if stop == "max_tokens" and blocks and not isinstance(blocks[-1], ToolCall):
            blocks[-1] = replace(blocks[-1], complete=False)
        return Message(
            provider="ollama",
            model=model,
            blocks=tuple(blocks),
            stop_reason=stop,
            raw_stop_reason=reason,
            usage=usage,
            terminal="truncated" if stop == "max_tokens" else "completed",
        )
    # The stream stops early: the block still streaming stays incomplete; with nothing sent, no model.
    if blocks and not isinstance(blocks[-1], ToolCall):
        blocks[-1] = replace(blocks[-1], complete=False)
    if not blocks:
        model = None
    if ending == "eof":
        return Message(provider="ollama", model=model, blocks=tuple(blocks), terminal="truncated")
    text, kind, retryable = draw(st.sampled_from(ERRORS))
    error = StreamError(error_kind=kind, message=text, retryable=retryable, status=None, raw={"error": text})  # type: ignore[arg-type]
    return Message(
        provider="ollama",
        model=model,
        blocks=tuple(blocks),
        stop_reason="error",
        terminal="failed",
        error=error,
    )


@settings(max_examples=80, deadline=None)
@given(
    message=ollama_messages(),
    api=st.sampled_from(["chat", "generate"]),
    realism=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_round_trip(message: Message, api: Any, realism: bool, seed: int) -> None:
    data = OllamaEncoder(api=api, realism=realism, seed=seed).encode_message(message)
    assert accumulate(decode_chunks("ollama", [data])) == message
    for line in data.splitlines():
        assert not set(line) & set(b"<>&"), "Go escapes <, > and & in every string"
        json.loads(line)


@settings(max_examples=40, deadline=None)
@given(message=ollama_messages(), cuts=st.lists(st.integers(0, 4000), max_size=20))
def test_round_trip_any_split(message: Message, cuts: list[int]) -> None:
    data = OllamaEncoder(seed=1).encode_message(message)
    points = sorted({c for c in cuts if 0 < c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert accumulate(decode_chunks("ollama", chunks)) == message


def test_signature_delta_is_dropped_without_breaking_the_block() -> None:
    events: list[Event] = [
        ResponseStart(provider="ollama", model="m"),
        BlockStart(index=0, type="thinking"),
        ThinkingDelta(0, "a"),
        SignatureDelta(0, "sig"),
        BlockStop(0),
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="stop"),
    ]
    out = OllamaEncoder(realism=False).encode_all(events)
    assert accumulate(decode_chunks("ollama", [out])).blocks == (ThinkingBlock("a"),)
