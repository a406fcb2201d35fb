"""Every fast path of the decode loop against the general path it short-cuts: same output, same errors.

The decoders take shortcuts for the common case (SSE frames as pairs, deltas passed by the timeline
without a table lookup, the Accumulator's exact-type checks, each dialect's common chunk shape); each
must be invisible. Whole input, byte by byte and random splits are the conformance suites' job; here
the two paths meet on generated input, good and bad.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstream import Accumulator, Timeline, wire
from midstream.errors import LimitExceeded, RemoteProtocolError
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
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
from midstream.message import Usage
from midstream.wire._base import Decoder
from midstream.wire._fast_events import FIELDS, text_delta, tool_args_delta
from midstream.wire._payload import loads
from midstream.wire.anthropic import AnthropicEventMapper
from midstream.wire.gemini import _Response as GeminiResponse
from midstream.wire.ollama import OllamaDecoder
from midstream.wire.openai_chat import OpenAIChatDecoder
from midstream.wire.openai_responses import OpenAIResponsesDecoder
from midstream.wire.sse import SSEDecoder, SSEFrameDecoder
from wiresupport import random_splits

# -- SSE frames as pairs --------------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "data: x",
        "data:y",
        "data",
        "data: ",
        "event: e",
        "event:",
        "id: 1",
        "retry: 5",
        ": comment",
        "",
        "",
        "other: z",
        "data: é",
        "\ufeffdata: bom",
    ]
)
_EOLS = st.sampled_from(["\n", "\r\n", "\r"])


def _run(decoder: Any, chunks: list[bytes]) -> tuple[list[tuple[str, str]], str | None, int | None, str]:
    out: list[Any] = []
    error = ""
    try:
        for chunk in chunks:
            decoder.feed(chunk, out)
        out.extend(decoder.close())
    except LimitExceeded as exc:
        error = str(exc)
    pairs = [item if isinstance(item, tuple) else (item.event, item.data) for item in out]
    return pairs, decoder.last_event_id, decoder.retry, error


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(_LINES, _EOLS), max_size=30), seed=st.integers(0, 2**16))
def test_frame_decoder_gives_the_events_of_the_decoder(lines: list[tuple[str, str]], seed: int) -> None:
    body = "".join(line + eol for line, eol in lines).encode()
    chunks = random_splits(body, random.Random(seed))
    for limits in ({}, {"max_line": 6, "max_event": 8}):
        assert _run(SSEFrameDecoder(**limits), chunks) == _run(SSEDecoder(**limits), chunks)


# -- the timeline's delta shortcut ----------------------------------------------------------------

_BLOCK_TYPES: list[BlockType] = ["text", "thinking", "tool_call", "server_tool", "unknown"]


def _event(draw: Any) -> Event:
    index = draw(st.integers(0, 3))
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return BlockStart(index=index, type=draw(st.sampled_from(_BLOCK_TYPES)))
    if choice == 1:
        return BlockStop(index)
    if choice == 2:
        return ResponseStart(provider="p")
    if choice == 3:
        return UsageUpdate(Usage(output_tokens=index))
    if choice == 4:
        return ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn")
    if choice == 5:
        return Unknown(raw_type="x", payload=None, index=index)
    if choice == 6:
        return ThinkingDelta(index, "t")
    if choice == 7:
        return SignatureDelta(index, "s")
    if choice == 8:
        return ToolArgsDelta(index, "{")
    return TextDelta(index, "a")


@st.composite
def _events(draw: Any) -> list[Event]:
    start: list[Event] = [ResponseStart(provider="p")] if draw(st.booleans()) else []
    return start + [_event(draw) for _ in range(draw(st.integers(0, 40)))]


def _one_by_one(events: list[Event]) -> tuple[list[Event], str]:
    timeline, out = Timeline("p"), []
    try:
        for event in events:
            out.extend(timeline.feed(event))
    except RemoteProtocolError as exc:
        return out, str(exc)
    return out + timeline.close(), ""


def _batched(events: list[Event]) -> tuple[list[Event], str]:
    timeline, out = Timeline("p"), []
    try:
        timeline.feed_all(events, out)
    except RemoteProtocolError as exc:
        return out, str(exc)
    return out + timeline.close(), ""


@settings(max_examples=500, deadline=None)
@given(events=_events())
def test_feed_all_is_feed_one_by_one(events: list[Event]) -> None:
    assert _batched(events) == _one_by_one(events)


class _Scripted:
    """A dialect decoder that returns the next prepared list of events for each chunk fed."""

    def __init__(self, batches: list[list[Event]]) -> None:
        self._batches = iter(batches)

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        out = [] if out is None else out
        out.extend(next(self._batches))
        return out

    def close(self) -> list[Event]:
        return []


@settings(max_examples=500, deadline=None)
@given(events=_events(), cuts=st.lists(st.integers(0, 40), max_size=10))
def test_the_decoders_whole_chunk_shortcut_is_feed_one_by_one(events: list[Event], cuts: list[int]) -> None:
    # Decoder.feed returns a chunk of deltas for open blocks as the dialect gave it, without feed_all.
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(events)}), len(events)]
    batches = [events[a:b] for a, b in itertools.pairwise(bounds)]
    decoder, out, error = Decoder(_Scripted(batches), "p"), [], ""
    try:
        for _ in batches:
            out.extend(decoder.feed(b"."))
    except RemoteProtocolError as exc:
        out.extend(decoder.take_owed())
        error = str(exc)
    expected, expected_error = _one_by_one(events)
    if error:
        assert (out, error) == (expected, expected_error)
    else:
        assert out + decoder.close() == expected and not expected_error


@pytest.mark.parametrize(
    "chunk",
    [
        [TextDelta(1, "a")],  # another index than the open block's
        [TextDelta(0, "a"), TextDelta(1, "b")],
        [ToolArgsDelta(0, "{")],  # another type
        [ThinkingDelta(0, "t")],
    ],
)
def test_the_decoders_whole_chunk_shortcut_refuses_what_the_timeline_refuses(chunk: list[Event]) -> None:
    opening: list[Event] = [ResponseStart(provider="p"), BlockStart(index=0, type="text")]
    decoder = Decoder(_Scripted([opening, chunk]), "p")
    decoder.feed(b".")
    with pytest.raises(RemoteProtocolError, match="block"):
        decoder.feed(b".")


@pytest.mark.parametrize("kind", [TextDelta, ThinkingDelta, ToolArgsDelta])
def test_a_delta_for_a_block_of_another_type_is_still_refused(kind: Any) -> None:
    timeline = Timeline("p")
    with pytest.raises(RemoteProtocolError, match="block 0"):
        timeline.feed_all([ResponseStart(provider="p"), BlockStart(index=0, type="unknown"), kind(0, "x")])


_BLOCK_OF: dict[Any, BlockType] = {TextDelta: "text", ThinkingDelta: "thinking", ToolArgsDelta: "tool_call"}


@pytest.mark.parametrize("kind", [TextDelta, ThinkingDelta, ToolArgsDelta])
@pytest.mark.parametrize("ending", ["block_stop", "response_end", "stream_error", "cancel"])
def test_a_delta_after_its_block_or_response_ended_is_still_refused(kind: Any, ending: str) -> None:
    timeline = Timeline("p")
    timeline.feed_all([ResponseStart(provider="p"), BlockStart(index=0, type=_BLOCK_OF[kind]), kind(0, "x")])
    if ending == "block_stop":
        timeline.feed_all([BlockStop(0)])
    elif ending == "response_end":
        timeline.feed_all([ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn")])
    elif ending == "stream_error":
        timeline.feed_all([StreamError(error_kind="server", message="x", retryable=False, raw=None)])
    else:
        timeline.cancel()
    with pytest.raises(RemoteProtocolError):
        timeline.feed_all([kind(0, "y")])


# -- the Accumulator's exact-type checks ----------------------------------------------------------


class _MyText(TextDelta):
    """A subclass takes the general path, and folds the same."""


def test_accumulator_folds_subclassed_deltas_like_their_base() -> None:
    plain, sub = Accumulator(), Accumulator()
    head: list[Event] = [ResponseStart(provider="p"), BlockStart(index=0, type="text")]
    for event in [*head, TextDelta(0, "a"), TextDelta(0, "b"), BlockStop(0)]:
        plain.feed(event)
    for event in [*head, _MyText(0, "a"), TextDelta(0, "b"), BlockStop(0)]:
        sub.feed(event)
    assert sub.message == plain.message


# -- each dialect's common chunk ------------------------------------------------------------------
#
# A stream is an opening (whatever opens a text block and a tool call) followed by a random sequence
# of chunks near the common shape, each a small step away from it (another key, another index, a
# finish reason, a wrong type, ...). The decoder with its shortcut and without must agree on every
# event and on the error, if any.


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


_CHAT_OPEN = [
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
    },
    {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                },
            }
        ]
    },
]
_CHAT_STEPS = [
    {"choices": [{"index": 0, "delta": {"content": "a"}}]},
    {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None, "logprobs": None}]},
    {"choices": [{"index": 0, "delta": {"content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": 5}}]},
    {"choices": [{"index": 0, "delta": {"content": None}}]},
    {"choices": [{"index": 1, "delta": {"content": "b"}}]},
    {"choices": [{"index": False, "delta": {"content": "b"}}]},
    {"choices": [{"delta": {"content": "c"}}]},
    {"choices": [{"index": 0, "delta": {"content": "d", "role": "assistant"}}]},
    {"choices": [{"index": 0, "delta": {"content": "e"}, "finish_reason": "length"}]},
    {"choices": [{"index": 0, "delta": {"content": "e"}, "logprobs": {"content": []}}]},
    {"choices": [{"index": 0, "delta": {"content": "f"}}], "usage": {"prompt_tokens": 1}},
    {"choices": [{"index": 0, "delta": {"content": "f"}}], "x_groq": {"id": "x"}},
    {"choices": [{"index": 0, "delta": {"content": "f"}}], "moderation": {"flagged": False}},
    {"choices": [{"index": 0, "delta": {"content": "g"}}], "error": {"message": "x", "type": "server_error"}},
    {"choices": [{"index": 0, "delta": {"content": "g"}}, {"index": 1, "delta": {"content": "h"}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": "1"}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": True, "function": {"arguments": "1"}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 7}}]}}]},
    {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "g", "arguments": "x"}}]}}
        ]
    },
    {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "id": "call_2", "function": {"arguments": "y"}}]},
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "z"}}] * 2}}]},
    {"choices": [{"index": 0, "delta": {"refusal": "no"}}]},
    {"choices": [{"index": 0, "delta": {"reasoning": "hm"}}]},
    {"choices": []},
    {"choices": None},
    {"choices": [5]},
    {"choices": [{"index": 0, "delta": None}]},
    {"choices": [{"index": 0, "delta": {}}], "finish_reason": "stop"},
]


def _chat(steps: list[Any]) -> bytes:
    return b"".join(_sse(obj) for obj in _CHAT_OPEN + steps) + b"data: [DONE]\n\n"


_OLLAMA_STEPS = [
    {"model": "m", "message": {"role": "assistant", "content": "a"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": ""}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": 5}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "b", "thinking": "t"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "b", "thinking": None}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "", "thinking": "t"}, "done": False},
    {
        "model": "m",
        "message": {
            "role": "assistant",
            "content": "c",
            "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
        },
        "done": False,
    },
    {"model": "m", "message": {"role": "assistant", "content": "c", "tool_calls": None}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "d"}},
    {"model": "m", "message": {"role": "assistant", "content": "d"}, "done": 0},
    {"model": "m", "message": {"role": "assistant", "content": "e"}, "done": True, "done_reason": "stop"},
    {"model": "m", "message": "text", "done": False},
    {"model": "m", "response": "f", "done": False},
    {"error": "boom", "message": {"content": "x"}, "done": False},
]


def _ollama(steps: list[Any]) -> bytes:
    opening = [{"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": False}]
    end = [
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
    ]
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in opening + steps + end)


def _gemini_chunk(parts: Any, **extra: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, **extra}], "responseId": "r"}


_USAGE = {"promptTokenCount": 3, "candidatesTokenCount": 1}
_GEMINI_STEPS = [
    _gemini_chunk([{"text": "a"}]),
    _gemini_chunk([{"text": ""}]),
    _gemini_chunk([{"text": 5}]),
    _gemini_chunk([{"text": "b", "thought": True}]),
    _gemini_chunk([{"text": "c", "thoughtSignature": "c2ln"}]),
    _gemini_chunk([{"text": "d"}, {"text": "e"}]),
    _gemini_chunk([{"functionCall": {"name": "f", "args": {"x": 1}}}]),
    _gemini_chunk(["text"]),
    _gemini_chunk([{"text": "f"}], finishReason="STOP"),
    _gemini_chunk([{"text": "g"}], finishReason="MAX_TOKENS"),
    {**_gemini_chunk([{"text": "h"}]), "usageMetadata": _USAGE},
    {**_gemini_chunk([{"text": "h"}]), "usageMetadata": {**_USAGE, "candidatesTokenCount": 2}},
    {**_gemini_chunk([{"text": "i"}]), "usageMetadata": None},
    {**_gemini_chunk([{"text": "i"}]), "usageMetadata": {"promptTokenCount": "7"}},
    {**_gemini_chunk([{"text": "j"}]), "extra": 1},
]


def _gemini(steps: list[Any]) -> bytes:
    opening = [{**_gemini_chunk([{"text": "Hi"}]), "usageMetadata": _USAGE, "modelVersion": "m"}]
    return b"".join(f"data: {json.dumps(obj)}\r\n\r\n".encode() for obj in opening + steps)


_RESPONSES_OPEN: list[tuple[str, dict[str, Any]]] = [
    ("response.created", {"response": {"id": "r", "model": "m", "output": []}}),
    (
        "response.output_item.added",
        {"output_index": 0, "item": {"id": "m1", "type": "message", "content": []}},
    ),
    (
        "response.content_part.added",
        {"output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}},
    ),
    ("response.output_text.delta", {"output_index": 0, "content_index": 0, "delta": "Hi"}),
    (
        "response.output_item.added",
        {
            "output_index": 1,
            "item": {"id": "f1", "type": "function_call", "call_id": "c", "name": "f", "arguments": ""},
        },
    ),
    ("response.function_call_arguments.delta", {"output_index": 1, "delta": '{"a'}),
]
_TEXT = "response.output_text.delta"
_ARGS = "response.function_call_arguments.delta"
_RESPONSES_STEPS: list[tuple[str, dict[str, Any]]] = [
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": "a"}),
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": ""}),
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": 5}),
    (_TEXT, {"output_index": 0, "content_index": 1, "delta": "b"}),
    (_TEXT, {"output_index": 2, "content_index": 0, "delta": "b"}),
    (_TEXT, {"output_index": True, "content_index": 0, "delta": "c"}),
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": "d", "sequence_number": None}),
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": "d", "sequence_number": "x"}),
    (_TEXT, {"output_index": 0, "content_index": 0, "delta": "d", "sequence_number": True}),
    ("response.output_text.done", {"output_index": 0, "content_index": 0, "text": "Hi"}),
    (_ARGS, {"output_index": 1, "delta": '"'}),
    (_ARGS, {"output_index": 3, "delta": "x"}),
    (_ARGS, {"output_index": 0, "delta": "x"}),
    ("response.function_call_arguments.done", {"output_index": 1, "arguments": '{"a"}'}),
    ("response.refusal.delta", {"output_index": 0, "content_index": 0, "delta": "no"}),
]


def _responses(steps: list[tuple[str, dict[str, Any]]]) -> bytes:
    end = ("response.completed", {"response": {"id": "r", "status": "completed", "output": []}})
    events = [*_RESPONSES_OPEN, *steps, end]
    return b"".join(
        _sse({"type": kind, "sequence_number": n, **fields}, kind) for n, (kind, fields) in enumerate(events)
    )


def _outcome(dialect: str, body: bytes) -> tuple[list[Event], str]:
    decoder = wire.decoder(dialect)
    out: list[Event] = []
    try:
        for chunk in random_splits(body, random.Random(len(body))):
            out.extend(decoder.feed(chunk))
        out.extend(decoder.close())
    except RemoteProtocolError as exc:
        return out + decoder.close(), str(exc)
    return out, ""


_DIALECT_CASES: dict[str, tuple[type, Any, list[Any], Any]] = {
    "openai-chat": (OpenAIChatDecoder, False, _CHAT_STEPS, _chat),
    "openai-responses": (OpenAIResponsesDecoder, None, _RESPONSES_STEPS, _responses),
    "gemini": (GeminiResponse, False, _GEMINI_STEPS, _gemini),
    "ollama": (OllamaDecoder, False, _OLLAMA_STEPS, _ollama),
}


@pytest.mark.parametrize("dialect", sorted(_DIALECT_CASES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_common_chunk_shortcut_decodes_as_the_general_path(
    dialect: str, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, declined, steps, body_of = _DIALECT_CASES[dialect]
    body = body_of(data.draw(st.lists(st.sampled_from(steps), max_size=12)))
    fast = _outcome(dialect, body)
    with monkeypatch.context() as patch:
        patch.setattr(owner, "_common", lambda *args: declined)
        general = _outcome(dialect, body)
    assert fast == general


@pytest.mark.parametrize("dialect", sorted(_DIALECT_CASES))
def test_the_common_chunk_shortcut_is_taken(dialect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison above is only worth something if the shortcut runs on the common chunk.
    owner, declined, steps, body_of = _DIALECT_CASES[dialect]
    taken: list[bool] = []
    common = owner._common

    def spy(*args: Any) -> Any:
        result = common(*args)
        taken.append(result is not declined)
        return result

    monkeypatch.setattr(owner, "_common", spy)
    _outcome(dialect, body_of([steps[0]] * 3))
    assert any(taken)


# Anthropic's decoder reads a text delta inline; the event mapper (what Bedrock's Anthropic transport
# uses, one event object at a time) is the general path it must agree with, errors included.

_ANTHROPIC_OPEN: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "m", "model": "x", "usage": {"input_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t", "name": "f"},
    },
    {"type": "content_block_start", "index": 2, "content_block": {"type": "compaction"}},
]


def _anthropic_delta(index: Any, delta: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


_ANTHROPIC_STEPS: list[dict[str, Any]] = [
    _anthropic_delta(0, {"type": "text_delta", "text": "a"}),
    _anthropic_delta(0, {"type": "text_delta", "text": ""}),
    _anthropic_delta(0, {"type": "text_delta", "text": 5}),
    _anthropic_delta(0, {"type": "text_delta"}),
    _anthropic_delta(0, {"text": "b"}),
    _anthropic_delta(0, {"type": "thinking_delta", "thinking": "t"}),
    _anthropic_delta(True, {"type": "text_delta", "text": "c"}),
    _anthropic_delta("0", {"type": "text_delta", "text": "c"}),
    _anthropic_delta(1, {"type": "text_delta", "text": "d"}),
    _anthropic_delta(1, {"type": "input_json_delta", "partial_json": '{"a'}),
    _anthropic_delta(3, {"type": "text_delta", "text": "e"}),
    _anthropic_delta(2, {"type": "text_delta", "text": "f"}),
    _anthropic_delta(0, "text_delta"),
    _anthropic_delta(0, None),
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "g"}},
    {"type": "content_block_delta", "index": 0},
    {"type": "content_block_start", "index": 3, "content_block": {"type": "compaction"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "ping"},
]


class _AnthropicMapperOnly:
    """SSE frames, the payload policy and :class:`AnthropicEventMapper`, one event object at a time."""

    def __init__(self) -> None:
        self._sse = SSEFrameDecoder()
        self._mapper = AnthropicEventMapper()

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        out = [] if out is None else out
        for _, payload in self._sse.feed(data):
            out.extend(self._mapper.on_event(loads(payload)))
        return out

    def close(self) -> list[Event]:
        return self._mapper.close()


def _anthropic_outcome(decoder: Decoder, body: bytes) -> tuple[list[Event], str]:
    out: list[Event] = []
    try:
        for chunk in random_splits(body, random.Random(len(body))):
            out.extend(decoder.feed(chunk))
        out.extend(decoder.close())
    except RemoteProtocolError as exc:
        return out + decoder.close(), str(exc)
    return out, ""


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.sampled_from(_ANTHROPIC_STEPS), max_size=12), typed=st.booleans())
def test_anthropic_text_deltas_read_inline_decode_as_the_event_mapper(
    steps: list[dict[str, Any]], typed: bool
) -> None:
    objects = [*_ANTHROPIC_OPEN, *steps, {"type": "message_stop"}]
    body = b"".join(_sse(obj, obj["type"] if typed else None) for obj in objects)
    general = Decoder(_AnthropicMapperOnly(), "anthropic")
    assert _anthropic_outcome(wire.decoder("anthropic"), body) == _anthropic_outcome(general, body)


# -- the events built without their constructors --------------------------------------------------


@pytest.mark.parametrize(("cls", "make"), [(TextDelta, text_delta), (ToolArgsDelta, tool_args_delta)])
def test_the_fast_event_makers_build_what_the_constructors_build(cls: Any, make: Any) -> None:
    # Every field of the class is set (a field added to the event fails here), nothing is skipped.
    assert {f.name for f in dataclasses.fields(cls)} == set(FIELDS[cls])
    assert not hasattr(cls, "__post_init__")
    for args in [(0, "a"), (7, ""), (2**60, "é{")]:
        for seq in (None, 3):
            made, built = make(*args, seq), cls(*args, seq=seq)
            assert type(made) is cls
            assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
            assert made.seq == built.seq
            assert dataclasses.replace(made) == built
            with pytest.raises(dataclasses.FrozenInstanceError):
                made.index = 1
