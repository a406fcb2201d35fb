"""Honest endings and small bounds: `completed` implies every block complete; a tool-argument field once
complete never changes (duplicate keys are invalid); counts and indices are bounded; a byte-order mark
alone in the first chunk loses nothing; an encoder reused for a second message writes a valid stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from midstream import wire
from midstream.agent.serialize import usage_to_dict
from midstream.core.accumulate import accumulate
from midstream.core.toolargs import ToolArgs, ToolCallInvalid, ToolCallReady, ToolFieldComplete
from midstream.errors import RemoteProtocolError
from midstream.events import BlockStart, BlockStop, ResponseEnd, ResponseStart, TextDelta, UsageUpdate
from midstream.message import Message, TextBlock, ToolCall, Usage
from midstream.wire.timeline import Timeline
from wiresupport import decode_chunks, recorded

# -- defect 6: completed implies every block complete ------------------------------------------------


def test_a_response_ended_with_a_block_open_is_truncated_not_completed() -> None:
    timeline = Timeline("anthropic")
    events = [ResponseStart(provider="anthropic"), BlockStart(index=0, type="text"), TextDelta(0, "Hel")]
    out = timeline.feed_all([*events, ResponseEnd(stop_reason="end_turn")])
    assert out[-2] == BlockStop(0, complete=False)
    assert isinstance(out[-1], ResponseEnd) and out[-1].terminal == "truncated"
    message = accumulate(out)
    assert message.terminal == "truncated" and message.partial and not message.blocks[0].complete


def sse(*frames: dict[str, Any]) -> bytes:
    return b"".join(wire.encode_sse(json.dumps(f), event=f.get("type")) for f in frames)


MESSAGE = {"id": "m", "type": "message", "role": "assistant", "model": "x", "content": [], "usage": {}}

# In each dialect: a stream whose provider ends the response while a block is still open.
UNCLOSED: dict[str, bytes] = {
    "anthropic": sse(
        {"type": "message_start", "message": MESSAGE},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ),
    "openai-responses": sse(
        {"type": "response.created",
         "response": {"id": "r", "model": "x", "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "id": "i", "role": "assistant", "content": [], "status": "in_progress"}},
        {"type": "response.content_part.added", "output_index": 0, "item_id": "i", "content_index": 0,
         "part": {"type": "output_text", "text": ""}},
        {"type": "response.output_text.delta", "output_index": 0, "item_id": "i", "content_index": 0,
         "delta": "Hel"},
        {"type": "response.completed",
         "response": {"id": "r", "model": "x", "status": "completed", "output": []}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("dialect", sorted(UNCLOSED))
def test_no_dialect_calls_a_response_with_an_open_block_completed(dialect: str) -> None:
    message = accumulate(decode_chunks(dialect, [UNCLOSED[dialect]]))
    assert message.text == "Hel" and not message.blocks[0].complete
    assert message.terminal == "truncated"


# -- defect 6: a field once complete never changes ---------------------------------------------------


def test_duplicate_keys_in_tool_arguments_are_invalid_json() -> None:
    args = ToolArgs(0, id="t", name="f")
    events = args.feed('{"city": "Paris", "days": 3, ') + args.feed('"city": "Lyon"}')
    completes = [(e.path, e.value) for e in events if isinstance(e, ToolFieldComplete)]
    assert completes == [(("city",), "Paris"), (("days",), 3)]  # "city" is never reported again
    (verdict,) = args.stop()
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "invalid_json"
    assert "duplicate key 'city'" in str(verdict.error)


def test_the_same_key_in_different_objects_is_fine() -> None:
    args = ToolArgs(0, id="t", name="f")
    args.feed('{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]}')
    (verdict,) = args.stop()
    assert isinstance(verdict, ToolCallReady) and verdict.input["c"][1] == {"x": 4}


# -- defect 7: bounded counts and indices -------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        UsageUpdate(Usage(output_tokens=10**4299)),
        UsageUpdate(Usage(input_tokens=-(10**30))),
        BlockStart(index=10**4000, type="text"),
    ],
)
def test_huge_counts_and_indices_are_protocol_errors(event: Any) -> None:
    timeline = Timeline("anthropic")
    timeline.feed(ResponseStart(provider="anthropic"))
    with pytest.raises(RemoteProtocolError, match="out of range"):
        timeline.feed(event)


def test_a_4300_digit_usage_count_fails_the_stream_and_everything_still_prints() -> None:
    frames = sse(
        {"type": "message_start", "message": MESSAGE},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 0}},
    ).replace(b'"output_tokens": 0', b'"output_tokens": ' + b"9" * 4300)  # fmt: skip
    dec = wire.decoder("anthropic")
    with pytest.raises(RemoteProtocolError):
        dec.feed(frames)
    message = accumulate(dec.close())
    assert message.terminal == "failed" and message.error is not None
    assert message.error.error_kind == "protocol" and "out of range" in message.error.message
    assert len(repr(message)) < 10_000 and json.dumps(usage_to_dict(message.usage))


# -- defect 7: a byte-order mark alone in the first chunk ---------------------------------------------


@pytest.mark.parametrize("name", ["gemini_jsonarray_text_capture.txt", "gemini_sse_text.txt"])
def test_a_bom_alone_in_the_first_chunk_loses_nothing(name: str) -> None:
    body = recorded(name)
    whole = accumulate(decode_chunks("gemini", [body]))
    bom = b"\xef\xbb\xbf"
    for chunks in ([bom, body], [bom[:1], bom[1:], body], [bom[:2], bom[2:] + body], [bom + b" ", body]):
        assert accumulate(decode_chunks("gemini", chunks)) == whole


# -- defect 7: an encoder reused for a second message -------------------------------------------------

FIRST = Message(
    provider="x",
    blocks=(TextBlock(text="first answer"),),
    stop_reason="end_turn",
    usage=Usage(input_tokens=1, output_tokens=2),
)
SECOND = Message(
    provider="x",
    blocks=(TextBlock(text="second"), ToolCall(id="call_2", name="f", raw_input='{"a":1}', input={"a": 1})),
    stop_reason="tool_use",
    usage=Usage(input_tokens=3, output_tokens=4),
)


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_an_encoder_reused_for_a_second_message_writes_a_valid_stream(dialect: str) -> None:
    reused = wire.encoder(dialect)
    reused.encode_message(FIRST)
    again = reused.encode_message(SECOND)
    assert again == wire.encoder(dialect).encode_message(SECOND)  # as a fresh encoder writes it


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_an_encoder_fed_a_second_response_event_by_event_starts_over(dialect: str) -> None:
    from midstream.wire.canonical import events_from_message

    reused = wire.encoder(dialect)
    reused.encode_all(events_from_message(FIRST))
    data = reused.encode_all(events_from_message(SECOND))
    assert data == wire.encoder(dialect).encode_all(events_from_message(SECOND))
