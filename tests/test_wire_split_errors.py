"""Every dialect delivers every good frame before an error: the events do not depend on the split.

For any good stream, any garbage suffix (or a cut), and any split of the bytes into chunks, the events a
consumer sees (what ``feed`` returned before it raised, then what ``close`` returns) are identical.
"""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.events import TextDelta
from midstream.message import Message, TextBlock, ToolCall, Usage
from wiresupport import decode_until_error, recorded, split_at, sse_from_jsonl

_MESSAGE = Message(
    provider="x",
    id="resp_1",
    model="m-1",
    blocks=(
        TextBlock(text="Hello, wörld"),
        ToolCall(id="call_1", name="lookup", raw_input='{"q":"a b","n":2}', input={"q": "a b", "n": 2}),
    ),
    stop_reason="tool_use",
    raw_stop_reason=None,
    usage=Usage(input_tokens=10, output_tokens=5),
    terminal="completed",
)


def _encoded(dialect: str) -> bytes:
    return wire.encoder(dialect).encode_message(_MESSAGE)


def _eventstream_garbage() -> bytes:
    # A frame whose prelude CRC is wrong.
    prelude = (32).to_bytes(4, "big") + (0).to_bytes(4, "big")
    bad_crc = (zlib.crc32(prelude) ^ 1).to_bytes(4, "big")
    return prelude + bad_crc + b"\x00" * 20


GOOD: dict[str, list[bytes]] = {
    "anthropic": [
        recorded("anthropic_text_basic.txt"),
        recorded("anthropic_tool_use.txt"),
        recorded("anthropic_thinking.txt"),
        _encoded("anthropic"),
    ],
    "openai-chat": [
        recorded("openai_chat_text_include_usage.txt"),
        recorded("openai_chat_parallel_tool_calls.txt"),
        _encoded("openai-chat"),
    ],
    "openai-responses": [
        recorded("openai_responses_text_then_function_call.txt"),
        recorded("openai_responses_function_call.txt"),
        _encoded("openai-responses"),
    ],
    "gemini": [
        recorded("gemini_sse_text.txt"),
        recorded("gemini_sse_function_call_thought_signature.txt"),
        recorded("gemini_jsonarray_text_capture.txt"),
        sse_from_jsonl("gemini_vertex_stream_function_call_partial_args.chunks.jsonl", newline="\r\n"),
        _encoded("gemini"),
    ],
    "bedrock": [
        recorded("bedrock_converse_stream_tool_use.bin"),
        recorded("bedrock_converse_stream_thinking.bin"),
        _encoded("bedrock"),
    ],
    "ollama": [recorded("ollama_generate_stream_docs_example.ndjson"), _encoded("ollama")],
}

# Bytes that break each dialect's protocol when they follow (or replace the end of) a stream.
GARBAGE: dict[str, list[bytes]] = {
    "anthropic": [b"event: content_block_delta\ndata: {nope\n\n", b"data: [1,2]\n\n"],
    "openai-chat": [b"data: {nope\n\n", b'data: {"choices": 5}\n\n'],
    "openai-responses": [b"event: response.output_text.delta\ndata: {nope\n\n", b"data: 17\n\n"],
    "gemini": [b"data: {nope\r\n\r\n", b'data: {"candidates": 3}\r\n\r\n', b"]]]", b"\x00{"],
    "bedrock": [_eventstream_garbage(), b"\xff" * 16],
    "ollama": [b"{nope\n", b"[1]\n", b'{"message": 3}\n'],
}

SPLITTABLE = st.lists(st.integers(min_value=1, max_value=100_000), max_size=40)


def _case(dialect: str) -> st.SearchStrategy[bytes]:
    good = st.sampled_from(GOOD[dialect])
    garbage = st.sampled_from(GARBAGE[dialect]) | st.binary(min_size=1, max_size=24)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        body = draw(good)
        shape = draw(st.sampled_from(["suffix", "cut", "cut+garbage", "inside"]))
        if shape == "suffix":
            return body + draw(garbage)
        cut = draw(st.integers(min_value=0, max_value=len(body)))
        if shape == "cut":
            return body[:cut]
        if shape == "cut+garbage":
            return body[:cut] + draw(garbage)
        return body[:cut] + draw(garbage) + body[cut:]

    return build()


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_good_streams_decode_completed(dialect: str) -> None:
    """The property below compares like with like: each good stream really decodes whole."""
    for body in GOOD[dialect]:
        events = decode_until_error(dialect, [body])
        assert accumulate(events).terminal in ("completed", "failed"), dialect  # ollama's error example


@pytest.mark.parametrize("dialect", wire.DIALECTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_stream_any_error_any_split_same_events(dialect: str, data: st.DataObject) -> None:
    body = data.draw(_case(dialect))
    whole = decode_until_error(dialect, [body])
    cuts = data.draw(SPLITTABLE)
    assert decode_until_error(dialect, split_at(body, [c % (len(body) + 1) for c in cuts])) == whole


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_good_stream_then_garbage_in_one_chunk_keeps_everything(dialect: str) -> None:
    """The example the property grew from: a whole stream plus garbage, in one chunk or byte by byte."""
    body = GOOD[dialect][-1]
    for garbage in GARBAGE[dialect]:
        data = body + garbage
        whole = decode_until_error(dialect, [data])
        bytewise = decode_until_error(dialect, [data[i : i + 1] for i in range(len(data))])
        assert whole == bytewise
        message = accumulate(whole)
        # Gemini has no terminal frame: its response ends at EOF, so bytes that break the stream
        # before EOF fail it (SSE lines it ignores do not); every other dialect had already ended,
        # which nothing after changes.
        assert message.terminal in (("failed", "completed") if dialect == "gemini" else ("completed",))
        assert message.text == "Hello, wörld"


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_garbage_mid_stream_fails_after_the_good_frames(dialect: str) -> None:
    body = GOOD[dialect][-1]
    whole_events = decode_until_error(dialect, [body])
    for garbage in GARBAGE[dialect]:
        # Cut right after the first text arrived: the garbage follows good content in the same chunk.
        first_text = next(i for i in range(len(body)) if _fed_text(dialect, body[:i]))
        data = body[:first_text] + garbage
        whole = decode_until_error(dialect, [data])
        bytewise = decode_until_error(dialect, [data[i : i + 1] for i in range(len(data))])
        assert whole == bytewise
        message = accumulate(whole)
        assert message.text, "the text before the garbage was lost"
        assert message.terminal in ("failed", "truncated")
        assert whole != whole_events


def _fed_text(dialect: str, data: bytes) -> bool:
    """True once ``data`` has delivered answer text (without the end-of-input close)."""
    return any(isinstance(e, TextDelta) and e.text for e in wire.decoder(dialect).feed(data))


def test_property_sees_errors() -> None:
    """The harness really reaches the error path (a decoder that never raised would pass vacuously)."""
    body = GOOD["openai-chat"][0] + b"data: {nope\n\n"
    events = decode_until_error("openai-chat", [body])
    assert accumulate(events).terminal == "completed"
    events = decode_until_error("openai-chat", [b"data: {nope\n\n"])
    message = accumulate(events)
    assert message.terminal == "failed"
    assert message.error is not None and message.error.error_kind == "protocol"
    assert json.dumps(message.error.message)
