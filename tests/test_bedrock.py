"""The Bedrock dialect: recorded ConverseStream captures, hand-built frames, errors, and the encoder."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.errors import EventStreamFrameError, LocalError, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
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
    Terminal,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    Usage,
)
from midstream.wire.bedrock import STOP_REASONS, BedrockDecoder, BedrockEncoder
from midstream.wire.eventstream import EventStreamDecoder, encode_message
from wiresupport import assert_split_invariant, recorded, split_at

PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# -- building and reading frames -----------------------------------------------------------------------


def frame(event_type: str, body: dict[str, Any]) -> bytes:
    """A Converse event frame as the service writes it (padding key included)."""
    payload = json.dumps({**body, "p": "abcdef"}, sort_keys=True, separators=(",", ":"))
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, payload.encode())


def exception(name: str, message: str) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())


def delta(index: int, body: dict[str, Any]) -> bytes:
    return frame("contentBlockDelta", {"contentBlockIndex": index, "delta": body})


def stop(index: int) -> bytes:
    return frame("contentBlockStop", {"contentBlockIndex": index})


START = frame("messageStart", {"role": "assistant"})


def metadata(**usage: int) -> bytes:
    return frame("metadata", {"metrics": {"latencyMs": 100}, "usage": usage})


def message_stop(reason: str) -> bytes:
    return frame("messageStop", {"stopReason": reason})


def decode(chunks: Iterable[bytes], **options: Any) -> list[Event]:
    dec = wire.decoder("bedrock", **options)
    events: list[Event] = []
    for chunk in chunks:
        events.extend(dec.feed(chunk))
    events.extend(dec.close())
    return events


def message_of(data: bytes, **options: Any) -> Message:
    return accumulate(decode([data], **options))


def botocore_frames(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return [(dict(m.headers), m.payload) for m in buf]


def wire_payloads(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload without its padding) of every frame."""
    out = []
    for headers, payload in botocore_frames(data):
        body = json.loads(payload)
        body.pop("p", None)
        out.append((headers[":event-type"], body))
    return out


# -- recorded captures --------------------------------------------------------------------------------

TOOL_USE_TEXT = (
    "<thinking> To find the temperature of the capital of France, I need to first determine the capital "
    "of France and then get the current temperature in that city. The capital of France is Paris. I will "
    'use the "get_temperature" tool to find the current temperature in Paris.</thinking>\n'
)


def test_recorded_tool_use() -> None:
    events = assert_split_invariant("bedrock", recorded("bedrock_converse_stream_tool_use.bin"))
    assert events[0] == ResponseStart(provider="bedrock")
    assert events[1] == BlockStart(index=0, type="text", raw_type="text")
    assert events[-2] == UsageUpdate(Usage(input_tokens=471, output_tokens=91))
    m = accumulate(events)
    assert m.provider == "bedrock" and m.id is None and m.model is None
    assert m.text == TOOL_USE_TEXT
    assert m.blocks[1:] == (
        ToolCall(
            id="tooluse_lAG_zP8QRHmSYOwZzzaCqA",
            name="get_temperature",
            raw_input='{"city":"Paris"}',
            input={"city": "Paris"},
        ),
    )
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "tool_use", "completed")
    assert m.usage == Usage(input_tokens=471, output_tokens=91)
    assert m.usage.total_tokens == 562


def test_recorded_thinking() -> None:
    m = accumulate(assert_split_invariant("bedrock", recorded("bedrock_converse_stream_thinking.bin")))
    thinking, text = m.blocks
    assert isinstance(thinking, ThinkingBlock) and thinking.complete
    assert thinking.thinking == (
        'The user has greeted me with a simple "Hello". I should respond in a friendly and welcoming manner.'
        " This is a straightforward greeting, so I'll respond warmly and ask how I can help them today."
    )
    assert thinking.signature is not None
    assert thinking.signature.startswith("Eu0CCkgIBxABGAIqQJDccbDQkr81n7QjZ0Fi43umSvw0")
    assert thinking.signature.endswith("LMIm1o471iEYAQ==") and len(thinking.signature) == 496
    assert text == TextBlock(text="Hello! It's nice to meet you. How can I help you today?")
    assert (m.stop_reason, m.terminal) == ("end_turn", "completed")
    assert m.usage == Usage(input_tokens=36, output_tokens=73)


def test_recorded_redacted_thinking() -> None:
    m = accumulate(
        assert_split_invariant("bedrock", recorded("bedrock_converse_stream_redacted_thinking.bin"))
    )
    first, second, text = m.blocks
    assert isinstance(first, RedactedThinkingBlock) and isinstance(second, RedactedThinkingBlock)
    # kept exactly as sent: the base64 text of the provider's opaque reasoning data
    assert first.data.startswith("RXRrRUNrZ0lCeEFCR0FJcVFKVGZxUy9Q") and first.data.endswith("cDhuc0JnQg==")
    assert len(first.data) == 1080 and len(second.data) == 752
    assert second.data.endswith("ZUo4SVlBUT09")
    assert base64.b64decode(first.data).startswith(b"EtkECkgIBxABGAIq")
    assert isinstance(text, TextBlock)
    assert text.text.startswith("I notice you've sent what appears to be some kind of command")
    assert text.text.endswith("What would you like to talk about today?")
    assert (m.stop_reason, m.terminal) == ("end_turn", "completed")
    assert m.usage == Usage(input_tokens=92, output_tokens=253)


CAPTURES = [
    "bedrock_converse_stream_tool_use.bin",
    "bedrock_converse_stream_thinking.bin",
    "bedrock_converse_stream_redacted_thinking.bin",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_encoder_writes_the_capture_frame_for_frame(name: str) -> None:
    data = recorded(name)
    events = decode([data])
    ours = BedrockEncoder(realism=False).encode_all(events)
    expected = wire_payloads(data)
    for event_type, body in expected:
        if event_type == "metadata":
            body["metrics"] = {"latencyMs": 0}  # timing is not an event; without realism it is 0
    assert wire_payloads(ours) == expected
    # Same headers in the same order, and byte-exact payloads once the padding is gone.
    for (headers, payload), (their_headers, _), (_, body) in zip(
        botocore_frames(ours), botocore_frames(data), expected, strict=True
    ):
        assert list(headers.items()) == list(their_headers.items())
        assert payload == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_message_round_trips_through_the_realistic_encoder(name: str) -> None:
    m = message_of(recorded(name))
    data = BedrockEncoder(seed=3).encode_message(m)
    assert message_of(data) == m
    pads = [json.loads(payload)["p"] for _, payload in botocore_frames(data)]
    assert all(p and PAD.startswith(p) for p in pads)
    assert len(set(pads)) > 1


# -- frame order and endings --------------------------------------------------------------------------


def test_metadata_before_message_stop() -> None:
    normal = [START, delta(0, {"text": "hi"}), stop(0), message_stop("end_turn"), metadata(inputTokens=3)]
    reversed_ = [*normal[:3], normal[4], normal[3]]
    dec = BedrockDecoder()
    assert [dec.feed(f) for f in reversed_][3:] == [
        [UsageUpdate(Usage(input_tokens=3))],
        [ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn")],
    ]
    dec = BedrockDecoder()
    assert [dec.feed(f) for f in normal][3:] == [
        [],  # messageStop is held for the metadata that follows it
        [UsageUpdate(Usage(input_tokens=3)), ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn")],
    ]
    expected = Message(
        provider="bedrock",
        blocks=(TextBlock(text="hi"),),
        stop_reason="end_turn",
        raw_stop_reason="end_turn",
        usage=Usage(input_tokens=3),
        terminal="completed",
    )
    assert message_of(b"".join(normal)) == expected
    assert message_of(b"".join(reversed_)) == expected
    assert_split_invariant("bedrock", b"".join(reversed_), random_runs=30)


def test_message_stop_without_metadata_still_completes() -> None:
    m = message_of(START + delta(0, {"text": "x"}) + stop(0) + message_stop("stop_sequence"))
    assert (m.stop_reason, m.terminal, m.usage) == ("stop_sequence", "completed", Usage())


def test_eof_inside_a_block_is_truncated() -> None:
    data = (
        START
        + delta(0, {"text": "par"})
        + frame(
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"name": "f", "toolUseId": "t1"}}},
        )
        + delta(1, {"toolUse": {"input": '{"a":'}})
    )
    events = assert_split_invariant("bedrock", data, random_runs=20)
    assert events[-3:] == [
        BlockStop(0, complete=False),
        BlockStop(1, complete=False),
        ResponseEnd(terminal="truncated"),
    ]
    m = accumulate(events)
    assert m.terminal == "truncated" and m.stop_reason is None
    assert m.blocks == (
        TextBlock(text="par", complete=False),
        ToolCall(id="t1", name="f", raw_input='{"a":', input=None, complete=False, error="truncated"),
    )


def test_max_tokens_inside_a_tool_call() -> None:
    data = (
        START
        + frame(
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"toolUse": {"name": "f", "toolUseId": "t1"}}},
        )
        + delta(0, {"toolUse": {"input": '{"q":"ab'}})
        + message_stop("max_tokens")
        + metadata(inputTokens=5, outputTokens=9, totalTokens=14)
    )
    m = message_of(data)
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("max_tokens", "max_tokens", "truncated")
    assert m.blocks == (
        ToolCall(id="t1", name="f", raw_input='{"q":"ab', input=None, complete=False, error="truncated"),
    )
    assert m.usage == Usage(input_tokens=5, output_tokens=9)


@pytest.mark.parametrize(("raw", "expected"), [*STOP_REASONS.items(), ("brand_new_reason", "other")])
def test_stop_reasons(raw: str, expected: StopReason) -> None:
    m = message_of(START + message_stop(raw) + metadata(outputTokens=1))
    assert (m.stop_reason, m.raw_stop_reason) == (expected, raw)
    truncating = raw in ("max_tokens", "model_context_window_exceeded")
    assert m.terminal == ("truncated" if truncating else "completed")


def test_stop_reason_table_is_the_documented_one() -> None:
    assert STOP_REASONS["guardrail_intervened"] == "content_filter"
    assert STOP_REASONS["content_filtered"] == "content_filter"
    assert STOP_REASONS["malformed_model_output"] == "other"
    assert STOP_REASONS["malformed_tool_use"] == "other"
    assert STOP_REASONS["model_context_window_exceeded"] == "context_window_exceeded"


def test_cache_counts_are_part_of_input_tokens() -> None:
    data = (
        START
        + message_stop("end_turn")
        + metadata(
            inputTokens=10, cacheReadInputTokens=100, cacheWriteInputTokens=5, outputTokens=7, totalTokens=122
        )
    )
    assert message_of(data).usage == Usage(
        input_tokens=115, output_tokens=7, cache_read_tokens=100, cache_write_tokens=5
    )


# -- blocks -------------------------------------------------------------------------------------------


def test_fragmented_tool_input_keeps_every_fragment() -> None:
    fragments = ['{"ci', 'ty": "Pa', "ris", '", "n": 2}']
    data = (
        START
        + frame(
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"toolUse": {"name": "w", "toolUseId": "tooluse_1"}}},
        )
        + b"".join(delta(0, {"toolUse": {"input": f}}) for f in fragments)
        + stop(0)
        + message_stop("tool_use")
    )
    events = assert_split_invariant("bedrock", data, random_runs=20)
    assert [e for e in events if isinstance(e, ToolArgsDelta)] == [ToolArgsDelta(0, f) for f in fragments]
    (call,) = accumulate(events).tool_calls
    assert call == ToolCall(
        id="tooluse_1", name="w", raw_input='{"city": "Paris", "n": 2}', input={"city": "Paris", "n": 2}
    )


def test_server_tool_use_and_its_result() -> None:
    use_start = {"toolUse": {"name": "web_search", "toolUseId": "srv_1", "type": "server_tool_use"}}
    result_start = {"toolResult": {"toolUseId": "srv_1", "type": "web_search_result", "status": "success"}}
    data = (
        START
        + frame("contentBlockStart", {"contentBlockIndex": 0, "start": use_start})
        + delta(0, {"toolUse": {"input": '{"query":"x"}'}})
        + stop(0)
        + frame("contentBlockStart", {"contentBlockIndex": 1, "start": result_start})
        + delta(1, {"toolResult": [{"text": "first "}]})
        + delta(1, {"toolResult": [{"json": {"n": 1}}]})
        + stop(1)
        + delta(2, {"text": "done"})
        + stop(2)
        + message_stop("end_turn")
    )
    m = accumulate(assert_split_invariant("bedrock", data, random_runs=20))
    assert m.blocks == (
        ServerToolBlock(
            raw_type="server_tool_use",
            id="srv_1",
            name="web_search",
            raw_input='{"query":"x"}',
            input={"query": "x"},
        ),
        ServerToolBlock(
            raw_type="toolResult",
            id="srv_1",
            name=None,
            content={
                "toolUseId": "srv_1",
                "type": "web_search_result",
                "status": "success",
                "content": [{"text": "first "}, {"json": {"n": 1}}],
            },
        ),
        TextBlock(text="done"),
    )
    assert m.tool_calls == []


def test_redacted_content_in_several_fragments_is_joined_by_bytes() -> None:
    parts = [base64.b64encode(b"abcd").decode(), base64.b64encode(b"ef").decode()]
    data = START + b"".join(delta(0, {"reasoningContent": {"redactedContent": p}}) for p in parts) + stop(0)
    m = message_of(data + message_stop("end_turn"))
    assert m.blocks == (RedactedThinkingBlock(base64.b64encode(b"abcdef").decode()),)


def test_single_redacted_fragment_is_kept_byte_exact() -> None:
    # Not canonical base64 (and not base64 at all): one fragment is passed on exactly as sent.
    data = START + delta(0, {"reasoningContent": {"redactedContent": "QUJDRA= =x"}}) + stop(0)
    assert message_of(data).blocks == (RedactedThinkingBlock("QUJDRA= =x", complete=True),)


def test_redacted_block_cut_off_is_incomplete_and_keeps_its_place() -> None:
    data = START + delta(0, {"reasoningContent": {"redactedContent": "QUJD"}}) + delta(1, {"text": "t"})
    m = message_of(data)
    assert m.blocks == (RedactedThinkingBlock("QUJD", complete=False), TextBlock(text="t", complete=False))
    assert m.terminal == "truncated"


def test_signature_only_reasoning_block_and_citations() -> None:
    citation = {"title": "doc", "location": {"documentChar": {"start": 0, "end": 3}}}
    data = (
        START
        + delta(0, {"reasoningContent": {"signature": "sig=="}})
        + stop(0)
        + delta(1, {"citation": citation})
        + delta(1, {"text": "abc"})
        + stop(1)
        + message_stop("end_turn")
    )
    m = message_of(data)
    assert m.blocks == (ThinkingBlock("", "sig=="), TextBlock(text="abc", citations=(citation,)))


def test_unknown_frames_pass_through() -> None:
    other = encode_message({":message-type": "ping-ish", ":event-type": "x"}, b"")
    data = (
        START
        + frame("futureEvent", {"a": 1})
        + delta(0, {"image": {"format": "png"}})
        + stop(0)
        + other
        + message_stop("end_turn")
    )
    events = decode([data])
    unknown = [e for e in events if isinstance(e, Unknown)]
    assert [u.raw_type for u in unknown] == [
        "futureEvent",
        "contentBlockDelta.image",
        "contentBlockStop",  # a stop for a block that never sent anything to open it
        ":message-type:ping-ish",
    ]
    assert unknown[0].payload == {"a": 1, "p": "abcdef"}
    assert accumulate(events).terminal == "completed"
    # Re-encoding the decoded stream writes the frames it did not understand back out as they came.
    again = wire_payloads(BedrockEncoder(realism=False).encode_all(events))
    assert again[1:4] == [
        ("futureEvent", {"a": 1}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"image": {"format": "png"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
    ]


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "retryable"),
    [
        ("throttlingException", "rate_limited", True),
        ("modelStreamErrorException", "server", True),
        ("internalServerException", "server", True),
        ("serviceUnavailableException", "overloaded", True),
        ("modelTimeoutException", "timeout", True),
        ("validationException", "invalid_request", False),
        ("somethingNewException", "unknown", False),
    ],
)
def test_exception_frames(name: str, kind: str, retryable: bool) -> None:
    data = START + delta(0, {"text": "partial"}) + exception(name, "Too many requests, please wait.")
    events = assert_split_invariant("bedrock", data, random_runs=20)
    error = StreamError(
        error_kind=kind,  # type: ignore[arg-type]
        message="Too many requests, please wait.",
        retryable=retryable,
        raw={"__type": name, "message": "Too many requests, please wait."},
    )
    assert events[-3:] == [
        BlockStop(0, complete=False),
        error,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]
    m = accumulate(events)
    assert (m.terminal, m.error, m.blocks) == ("failed", error, (TextBlock(text="partial", complete=False),))


def test_exception_as_first_frame() -> None:
    events = decode([exception("throttlingException", "slow down")])
    assert events[0] == ResponseStart(provider="bedrock")
    assert events[1].kind == "stream_error" and events[1].error_kind == "rate_limited"  # type: ignore[union-attr]
    assert accumulate(events).terminal == "failed"


def test_error_message_type_frame() -> None:
    headers = {":error-code": "InternalServerException", ":error-message": "boom", ":message-type": "error"}
    events = decode([START + encode_message(headers, b"")])
    assert events[1] == StreamError(
        error_kind="server",
        message="boom",
        retryable=True,
        raw={":error-code": "InternalServerException", ":error-message": "boom"},
    )


def test_encoder_exception_frame_is_what_botocore_expects() -> None:
    kind, retryable = classify_error("throttlingException")
    error = StreamError(
        error_kind=kind,
        message="wait",
        retryable=retryable,
        raw={"__type": "throttlingException", "message": "wait"},
    )
    ((headers, payload),) = botocore_frames(BedrockEncoder().encode(error))
    assert headers == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(payload) == {"message": "wait"}
    # An error that names no Bedrock exception is written as the closest one.
    ((headers, _),) = botocore_frames(
        BedrockEncoder().encode(StreamError(error_kind="overloaded", message="busy"))
    )
    assert headers[":exception-type"] == "serviceUnavailableException"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (encode_message({":event-type": "messageStart", ":message-type": "event"}, b"{nope"), "not JSON"),
        (
            encode_message({":event-type": "messageStop", ":message-type": "event"}, b"[1]"),
            "not a JSON object",
        ),
        (encode_message({":message-type": "event"}, b"{}"), "without an :event-type"),
        (delta(-1, {"text": "x"}), "contentBlockIndex"),
        (frame("contentBlockDelta", {"contentBlockIndex": "0", "delta": {"text": "x"}}), "contentBlockIndex"),
        (frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": "x"}), "delta is not an object"),
        (delta(0, {"toolUse": {"input": 5}}), "not a string"),
        (delta(0, {"text": 5}), "text delta is not a string"),
        (delta(0, {"reasoningContent": "x"}), "not an object"),
        (delta(0, {"reasoningContent": {"signature": None}}), "signature is not a string"),
        (
            frame("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"name": "f"}}}),
            "toolUseId",
        ),
        (delta(0, {"toolResult": [{"text": "x"}]}), "no start"),
        (frame("messageStop", {"stopReason": 3}), "not a string"),
        (frame("metadata", {"usage": {"inputTokens": "3"}}), "not an integer"),
        (START, "messageStart arrived twice"),
    ],
)
def test_malformed_payloads_are_protocol_errors(bad: bytes, match: str) -> None:
    dec = wire.decoder("bedrock")
    dec.feed(START)
    with pytest.raises(RemoteProtocolError, match=match):
        dec.feed(bad)
    tail = dec.close()
    assert tail[-2].kind == "stream_error" and tail[-2].error_kind == "protocol"  # type: ignore[union-attr]
    assert tail[-1] == ResponseEnd(stop_reason="error", terminal="failed")


def test_damaged_frame_is_an_eventstream_error() -> None:
    data = bytearray(START + delta(0, {"text": "hello"}))
    data[-10] ^= 0xFF
    dec = wire.decoder("bedrock")
    with pytest.raises(EventStreamFrameError, match="message CRC"):
        dec.feed(bytes(data))


def test_a_frame_cut_at_eof_truncates_the_response() -> None:
    # The connection dropped inside the metadata frame: what arrived stands, the cut frame is dropped,
    # and the response is truncated (cut short), not failed.
    data = START + delta(0, {"text": "hello"}) + stop(0) + message_stop("end_turn") + metadata(outputTokens=1)
    events = decode([data[:-5]])
    assert not any(e.kind == "stream_error" for e in events)
    message = accumulate(events)
    assert (message.text, message.terminal) == ("hello", "completed")
    # Cut before messageStop arrived whole: truncated.
    cut = START + delta(0, {"text": "hello"}) + stop(0) + message_stop("end_turn")
    message = accumulate(decode([cut[:-3]]))
    assert (message.text, message.terminal) == ("hello", "truncated")


def test_api_option() -> None:
    with pytest.raises(LocalError):
        BedrockDecoder(api="other")  # type: ignore[arg-type]
    with pytest.raises(LocalError):
        BedrockEncoder(api="auto")  # type: ignore[arg-type]
    # A Converse stream read as an invoke stream: every frame is an event it does not know.
    events = decode([START + delta(0, {"text": "x"})], api="invoke")
    assert [e.raw_type for e in events if isinstance(e, Unknown)] == ["messageStart", "contentBlockDelta"]


def test_frame_limits_reach_the_framing() -> None:
    with pytest.raises(RemoteProtocolError, match="payload"):
        decode([delta(0, {"text": "x" * 100})], max_payload=50)


# -- round trip ---------------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_ident = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_json_obj = st.dictionaries(_ident, st.one_of(st.integers(-1000, 1000), _text, st.booleans()), max_size=3)
_EXCEPTION_NAMES = ["throttlingException", "modelStreamErrorException", "validationException"]


@st.composite
def _blocks(draw: st.DrawFn, complete: bool) -> Block:
    kind = draw(st.sampled_from(["text", "thinking", "redacted", "tool", "server_use", "result"]))
    if kind == "text":
        cites = tuple(draw(st.lists(st.fixed_dictionaries({"title": _text}), max_size=2)))
        return TextBlock(text=draw(_text), citations=cites, complete=complete)
    if kind == "thinking":
        return ThinkingBlock(draw(_text), draw(st.none() | _text), complete=complete)
    if kind == "redacted":
        return RedactedThinkingBlock(
            base64.b64encode(draw(st.binary(max_size=30))).decode(), complete=complete
        )
    ident, name, args = draw(_ident), draw(_ident), draw(_json_obj)
    raw = json.dumps(args, ensure_ascii=False)
    if kind == "tool":
        if complete:
            return ToolCall(id=ident, name=name, raw_input=raw, input=args)
        cut = raw[: draw(st.integers(0, len(raw)))]
        return ToolCall(id=ident, name=name, raw_input=cut, input=None, complete=False, error="truncated")
    if kind == "server_use":
        return ServerToolBlock(
            raw_type="server_tool_use",
            id=ident,
            name=name,
            raw_input=raw,
            input=args if complete else None,
            complete=complete,
        )
    items = draw(
        st.lists(
            st.one_of(st.fixed_dictionaries({"text": _text}), st.fixed_dictionaries({"json": _json_obj}))
        )
    )
    content = {"toolUseId": ident, "status": "success", "content": items}
    return ServerToolBlock(raw_type="toolResult", id=ident, name=None, content=content, complete=complete)


@st.composite
def converse_messages(draw: st.DrawFn) -> Message:
    ending = draw(st.sampled_from(["stop", "eof", "error"]))
    completes = draw(st.lists(st.booleans(), max_size=5))
    blocks = tuple(draw(_blocks(done)) for done in completes)
    usage = Usage()
    if ending != "error":
        read, write = draw(st.none() | st.integers(0, 99)), draw(st.none() | st.integers(0, 99))
        base = draw(st.none() | st.integers(0, 999))
        usage = Usage(
            input_tokens=None if base is None else base + (read or 0) + (write or 0),
            output_tokens=draw(st.none() | st.integers(0, 999)),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    if ending == "error":
        name = draw(st.sampled_from(_EXCEPTION_NAMES))
        text = draw(_text)
        kind, retryable = classify_error(name)
        error = StreamError(
            error_kind=kind, message=text, retryable=retryable, raw={"__type": name, "message": text}
        )
        return Message(
            provider="bedrock",
            blocks=blocks,
            stop_reason="error",
            usage=usage,
            terminal="failed",
            error=error,
        )
    if ending == "eof":
        return Message(provider="bedrock", blocks=blocks, usage=usage, terminal="truncated")
    raw = draw(st.sampled_from(sorted(STOP_REASONS)))
    reason = STOP_REASONS[raw]
    cut = reason in ("max_tokens", "context_window_exceeded") or not all(b.complete for b in blocks)
    terminal: Terminal = "truncated" if cut else "completed"  # completed: every block complete
    return Message(
        provider="bedrock",
        blocks=blocks,
        stop_reason=reason,
        raw_stop_reason=raw,
        usage=usage,
        terminal=terminal,
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=converse_messages(),
    realism=st.booleans(),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(1, 5000)),
)
def test_converse_round_trip(m: Message, realism: bool, seed: int, cuts: list[int]) -> None:
    data = wire.encoder("bedrock", realism=realism, seed=seed).encode_message(m)
    assert accumulate(decode([data])) == m
    assert accumulate(decode(split_at(data, cuts))) == m
    # botocore reads the same frames we do
    ours = EventStreamDecoder().feed(data)
    assert [(m.headers, m.payload) for m in ours] == botocore_frames(data)
    if not realism:
        assert all("p" not in json.loads(payload) for _, payload in botocore_frames(data))


def test_encoder_is_deterministic_per_seed() -> None:
    m = message_of(recorded("bedrock_converse_stream_tool_use.bin"))
    assert BedrockEncoder(seed=5).encode_message(m) == BedrockEncoder(seed=5).encode_message(m)
    assert BedrockEncoder(seed=5).encode_message(m) != BedrockEncoder(seed=6).encode_message(m)


def test_encoder_wire_shape() -> None:
    m = Message(
        provider="bedrock",
        blocks=(TextBlock(text=""), ToolCall(id="t", name="f", raw_input="", input={})),
        stop_reason="tool_use",
        raw_stop_reason="tool_use",
        usage=Usage(input_tokens=30, output_tokens=4, cache_read_tokens=20),
        terminal="completed",
    )
    frames = wire_payloads(BedrockEncoder(realism=False).encode_message(m))
    assert frames == [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ""}}),  # an empty block still opens
        ("contentBlockStop", {"contentBlockIndex": 0}),
        (
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"name": "f", "toolUseId": "t"}}},
        ),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "tool_use"}),
        (
            "metadata",
            {
                "metrics": {"latencyMs": 0},
                "usage": {
                    "inputTokens": 10,
                    "cacheReadInputTokens": 20,
                    "outputTokens": 4,
                    "totalTokens": 34,
                },
            },
        ),
    ]


def test_encoder_maps_foreign_stop_reasons() -> None:
    m = Message(
        provider="bedrock", stop_reason="content_filter", raw_stop_reason="SAFETY", terminal="completed"
    )
    frames = wire_payloads(BedrockEncoder(realism=False).encode_message(m))
    assert ("messageStop", {"stopReason": "content_filtered"}) in frames


# -- InvokeModelWithResponseStream --------------------------------------------------------------------


def _anthropic() -> Any:
    return pytest.importorskip("midstream.wire.anthropic")


def invoke_stream(sse_text: str, metrics: dict[str, int] | None) -> bytes:
    """An invoke body carrying the Anthropic events of an SSE capture, one ``chunk`` frame each."""
    out = []
    # The stored capture lacks the blank line after its last event; the SSE rules would drop it.
    for sse in wire.SSEDecoder().feed(sse_text.rstrip("\n").encode() + b"\n\n"):
        payload = json.loads(sse.data)
        if payload["type"] == "message_stop" and metrics is not None:
            payload["amazon-bedrock-invocationMetrics"] = metrics
        chunk = base64.b64encode(json.dumps(payload).encode()).decode()
        out.append(frame("chunk", {"bytes": chunk}))
    return b"".join(out)


def test_invoke_stream_of_a_recorded_anthropic_capture() -> None:
    _anthropic()
    text = recorded("anthropic_tool_use.txt").decode()
    metrics = {
        "inputTokenCount": 377,
        "outputTokenCount": 65,
        "invocationLatency": 900,
        "firstByteLatency": 300,
    }
    data = invoke_stream(text, metrics)
    events = assert_split_invariant("bedrock", data, random_runs=30)
    assert events[0].kind == "response_start" and events[0].provider == "bedrock"  # type: ignore[union-attr]
    m = accumulate(events)
    assert m.text == "I'll check the current weather in Paris for you."
    assert m.tool_calls == [
        ToolCall(
            id="toolu_01NRLabsLyVHZPKxbKvkfSMn",
            name="get_weather",
            raw_input='{"location": "Paris"}',
            input={"location": "Paris"},
        )
    ]
    assert (m.id, m.model) == ("msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514")
    assert (m.stop_reason, m.terminal) == ("tool_use", "completed")
    assert m.usage.input_tokens == 377 and m.usage.output_tokens == 65
    # The same content as the Anthropic dialect reads from the SSE capture itself.
    direct = accumulate(decode_anthropic(text.encode()))
    assert m.blocks == direct.blocks


def decode_anthropic(data: bytes) -> list[Event]:
    dec = wire.decoder("anthropic")
    return dec.feed(data) + dec.close()


def test_invoke_metrics_override_usage() -> None:
    _anthropic()
    text = recorded("anthropic_tool_use.txt").decode()
    metrics = {"inputTokenCount": 400, "outputTokenCount": 70, "cacheReadInputTokenCount": 10}
    m = message_of(invoke_stream(text, metrics))
    assert m.usage.input_tokens == 410 and m.usage.output_tokens == 70 and m.usage.cache_read_tokens == 10
    assert message_of(invoke_stream(text, None)).usage.output_tokens == 65


def test_invoke_exception_frame() -> None:
    _anthropic()
    text = recorded("anthropic_tool_use.txt").decode()
    data = invoke_stream(text, None)
    cut = data[: len(data) // 2]
    frames = EventStreamDecoder().feed(cut)
    whole = b"".join(encode_message(f.headers, f.payload) for f in frames)
    m = message_of(whole + exception("modelStreamErrorException", "model failed"))
    assert m.terminal == "failed" and m.error is not None and m.error.error_kind == "server"


def test_invoke_bad_chunk() -> None:
    _anthropic()
    with pytest.raises(RemoteProtocolError, match="base64"):
        decode([frame("chunk", {"bytes": "!!!"})])
    with pytest.raises(RemoteProtocolError, match="bytes"):
        decode([frame("chunk", {"nothing": 1})])


@st.composite
def invoke_messages(draw: st.DrawFn) -> Message:
    blocks: list[Block] = []
    for kind in draw(st.lists(st.sampled_from(["text", "thinking", "redacted", "tool"]), max_size=4)):
        if kind == "text":
            blocks.append(TextBlock(text=draw(_text)))
        elif kind == "thinking":
            blocks.append(ThinkingBlock(draw(_text), draw(_text)))
        elif kind == "redacted":
            blocks.append(RedactedThinkingBlock(draw(_ident)))
        else:
            args = draw(_json_obj)
            blocks.append(
                ToolCall(id=draw(_ident), name=draw(_ident), raw_input=json.dumps(args), input=args)
            )
    raw = draw(st.sampled_from(["end_turn", "tool_use", "stop_sequence", "max_tokens"]))
    usage = Usage(input_tokens=draw(st.integers(1, 999)), output_tokens=draw(st.integers(1, 999)))
    terminal: Terminal = "truncated" if raw == "max_tokens" else "completed"
    return Message(
        provider="bedrock",
        id=draw(_ident),
        model=draw(_ident),
        blocks=tuple(blocks),
        stop_reason=raw,  # type: ignore[arg-type]
        raw_stop_reason=raw,
        usage=usage,
        terminal=terminal,
    )


@settings(max_examples=50, deadline=None)
@given(m=invoke_messages(), realism=st.booleans())
def test_invoke_round_trip(m: Message, realism: bool) -> None:
    _anthropic()
    data = BedrockEncoder(api="invoke", realism=realism).encode_message(m)
    assert {headers[":event-type"] for headers, _ in botocore_frames(data)} == {"chunk"}
    assert accumulate(decode([data])) == m
    last = json.loads(base64.b64decode(json.loads(botocore_frames(data)[-1][1])["bytes"]))
    assert last["type"] == "message_stop"
    assert last["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == m.usage.output_tokens


def test_invoke_encoder_writes_errors_as_exception_frames() -> None:
    _anthropic()
    kind, retryable = classify_error("throttlingException")
    error = StreamError(
        error_kind=kind,
        message="slow",
        retryable=retryable,
        raw={"__type": "throttlingException", "message": "slow"},
    )
    m = Message(
        provider="bedrock",
        id="m",
        model="x",
        blocks=(TextBlock(text="a", complete=False),),
        stop_reason="error",
        terminal="failed",
        error=error,
    )
    data = BedrockEncoder(api="invoke", realism=False).encode_message(m)
    assert botocore_frames(data)[-1][0][":message-type"] == "exception"
    got = accumulate(decode([data]))
    assert (got.terminal, got.error, got.text) == ("failed", error, "a")
