"""The Anthropic Messages dialect: recorded streams, the official SDK as oracle, encoder round trips."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstream import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Message,
    RedactedThinkingBlock,
    RemoteProtocolError,
    ResponseEnd,
    ServerToolBlock,
    StreamError,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ToolArgsDelta,
    ToolCall,
    Unknown,
    UnknownBlock,
    Usage,
    UsageUpdate,
    accumulate,
    wire,
)
from midstream.errors import LimitExceeded, classify_error
from midstream.wire.anthropic import AnthropicEncoder, AnthropicEventMapper, _loads
from wiresupport import RECORDED, assert_split_invariant, decode_chunks, recorded

FILES = sorted(p.name for p in RECORDED.glob("anthropic_*.txt"))


def decode(data: bytes) -> Message:
    return accumulate(decode_chunks("anthropic", [data]))


def sse(*payloads: dict[str, Any] | str) -> bytes:
    """An SSE body of Anthropic events (``event:`` taken from the payload's type)."""
    out = []
    for p in payloads:
        if isinstance(p, str):
            out.append(p.encode())
        else:
            out.append(wire.encode_sse(json.dumps(p), event=p["type"]))
    return b"".join(out)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    },
}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def stop(index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


END = [
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 7},
    },
    {"type": "message_stop"},
]


# -- recorded streams ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_recorded_split_invariant(name: str) -> None:
    events = assert_split_invariant("anthropic", recorded(name))
    assert events[0].kind == "response_start"
    assert events[-1].kind == "response_end"
    assert sum(e.kind == "response_end" for e in events) == 1


def test_text_basic() -> None:
    m = decode(recorded("anthropic_text_basic.txt"))
    assert (m.provider, m.id, m.model) == (
        "anthropic",
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK",
        "claude-3-opus-latest",
    )
    assert m.blocks == (TextBlock(text="Hello there!"),)
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("end_turn", "end_turn", "completed")
    assert m.usage == Usage(input_tokens=11, output_tokens=6)


def test_text_basic_without_final_blank_line_still_completes() -> None:
    # The fixture ends right after the message_stop JSON, with no blank line: still a whole event.
    data = recorded("anthropic_text_basic.txt")
    assert data.endswith(b'{"type":"message_stop"}')
    assert decode(data).terminal == "completed"
    assert decode(data + b"\n\n").terminal == "completed"
    # Cut inside that JSON, it is not.
    cut = decode(data[:-3])
    assert (cut.terminal, cut.stop_reason, cut.raw_stop_reason) == ("truncated", "end_turn", "end_turn")


def test_tool_use() -> None:
    m = decode(recorded("anthropic_tool_use.txt"))
    assert m.id == "msg_019Q1hrJbZG26Fb9BQhrkHEr"
    assert m.model == "claude-sonnet-4-20250514"
    assert m.blocks == (
        TextBlock(text="I'll check the current weather in Paris for you."),
        ToolCall(
            id="toolu_01NRLabsLyVHZPKxbKvkfSMn",
            name="get_weather",
            raw_input='{"location": "Paris"}',
            input={"location": "Paris"},
        ),
    )
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "tool_use", "completed")
    assert m.usage == Usage(input_tokens=377, output_tokens=65, cache_read_tokens=0, cache_write_tokens=0)


def test_tool_use_fragments_exact() -> None:
    events = decode_chunks("anthropic", [recorded("anthropic_tool_use.txt")])
    fragments = [e.fragment for e in events if isinstance(e, ToolArgsDelta)]
    assert fragments == ["", '{"locati', 'on": "P', "ar", 'is"}']


def test_max_tokens_tool_input_cut() -> None:
    events = decode_chunks("anthropic", [recorded("anthropic_max_tokens_tool_input_cut.txt")])
    # No content_block_stop for block 1 on the wire: the timeline closes it as incomplete.
    assert BlockStop(0, complete=True) in events
    assert BlockStop(1, complete=False) in events
    m = accumulate(events)
    assert m.id == "msg_01UdjYBBipA9omjYhicnevgq"
    text, call = m.blocks
    assert text == TextBlock(
        text="I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file "
        "called taxes.txt. Let me do that for you now."
    )
    assert isinstance(call, ToolCall)
    assert (call.id, call.name) == ("toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file")
    assert call.raw_input == (
        '{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH '
        'MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes'
    )
    assert (call.input, call.complete, call.error) == (None, False, "truncated")
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("max_tokens", "max_tokens", "truncated")
    assert m.usage == Usage(input_tokens=450, output_tokens=124, cache_read_tokens=0, cache_write_tokens=0)


def test_refusal() -> None:
    events = decode_chunks("anthropic", [recorded("anthropic_refusal_handwritten.txt")])
    end = events[-1]
    assert isinstance(end, ResponseEnd)
    assert end.stop_details == {
        "type": "refusal",
        "category": "cyber",
        "explanation": "This request was refused due to policy.",
    }
    m = accumulate(events)
    assert m.blocks == (TextBlock(text=""),)
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("refusal", "refusal", "completed")
    assert m.usage == Usage(input_tokens=20, output_tokens=0)


def test_thinking() -> None:
    data = recorded("anthropic_thinking.txt")
    m = decode(data)
    assert (m.id, m.model) == ("msg_01ALwQ87pTS7hH1PjSdC9wJD", "claude-sonnet-4-20250514")
    thinking, text = m.blocks
    assert isinstance(thinking, ThinkingBlock) and isinstance(text, TextBlock)
    assert thinking.thinking.startswith("This is a straightforward question about pedestrian safety. ")
    assert thinking.thinking.endswith("basic safety information that could help prevent accidents.")
    assert len(thinking.thinking) == 202
    assert thinking.signature is not None and len(thinking.signature) == 504
    assert thinking.signature.startswith("EvMCCkYICxgCKkCHP2cSuEdcJK/0rFwqES/")
    assert thinking.signature.endswith("xUxgJbmyhGxb7XsYeb1vgb7wwzDvP/UhjfQYAQ==")
    assert f'"signature":"{thinking.signature}"'.encode() in data  # byte-exact
    assert text.text.startswith("Here are the basic steps for safely crossing the street:\n\n**")
    assert text.text.endswith("Always prioritize safety over speed when crossing streets.")
    assert len(text.text) == 1021
    assert (m.stop_reason, m.terminal) == ("end_turn", "completed")
    assert m.usage == Usage(input_tokens=43, output_tokens=282, cache_read_tokens=0, cache_write_tokens=0)


def test_redacted_thinking() -> None:
    data = recorded("anthropic_redacted_thinking.txt")
    m = decode(data)
    first, second, text = m.blocks
    assert isinstance(first, RedactedThinkingBlock) and isinstance(second, RedactedThinkingBlock)
    assert len(first.data) == 744 and first.data.startswith("EqkECkYIBxgCKkA8AZ4noDfV5VcOJe/p3JTRB6Xz")
    assert first.data.endswith("00tD/X67EWkkWuR0AhDIXXjpot45vnBd4ewJ/hgB")
    assert second.data == (
        "EtgBCkYIBxgCKkDQfGkwzflEJP5asG3oQfJXcTwJLoRznn8CmuczWCsJ36dv93X9H0NCeaJRbi5BrCA2DyMgFnRKRuzZx8VT"
        "v5axEgwkFmcHJk8BSiZMZRQaDDYv2KZPfbFgRa2QjyIwm47f5YYsSK9CT/oh/WWpU1HJJVHr8lrC6HG1ItRdtMvYQYmEGy+K"
        "hyfcIACfbssVKkDGv/NKqNMOAcu0bd66gJ2+R1R0PX11Jxn2Nd1JtZqkxx7vMT/PXtHDhm9jkDZ2k/6RjRRFuab/DBV3yRYd"
        "Z1J0GAE="
    )
    assert f'"data":"{first.data}"'.encode() in data
    assert isinstance(text, TextBlock)
    assert text.text.startswith("I notice that you've sent what appears to be some kind of test string")
    assert text.text.endswith("How can I assist you today with a legitimate task or question?")
    assert (m.stop_reason, m.terminal) == ("end_turn", "completed")
    assert m.usage == Usage(input_tokens=92, output_tokens=189, cache_read_tokens=0, cache_write_tokens=0)


def test_server_tool_then_tool_use() -> None:
    m = decode(recorded("anthropic_server_tool_then_tool_use.txt"))
    assert (m.id, m.model) == ("msg_01E3Wn1NynZw9FALZ68znj9S", "claude-sonnet-4-6")
    result_content = {
        "type": "tool_search_tool_result",
        "tool_use_id": "srvtoolu_01S5swZdBmTzLDVzwcT5LbHp",
        "content": {
            "type": "tool_search_tool_search_result",
            "tool_references": [{"type": "tool_reference", "tool_name": "get_exchange_rate"}],
        },
    }
    assert m.blocks == (
        TextBlock(text="Let me search for a tool that can provide current exchange rate information."),
        ServerToolBlock(
            raw_type="server_tool_use",
            id="srvtoolu_01S5swZdBmTzLDVzwcT5LbHp",
            name="tool_search_tool_bm25",
            raw_input='{"query": "USD EUR exchange rate currency conversion"}',
            input={"query": "USD EUR exchange rate currency conversion"},
        ),
        ServerToolBlock(
            raw_type="tool_search_tool_result",
            id="srvtoolu_01S5swZdBmTzLDVzwcT5LbHp",
            name=None,
            content=result_content,
        ),
        TextBlock(text="I found the right tool! Let me fetch the current USD to EUR exchange rate for you."),
        ToolCall(
            id="toolu_01EFn5wTNBYA8Reni8rbmnHT",
            name="get_exchange_rate",
            raw_input='{"from_currency": "USD", "to_currency": "EUR"}',
            input={"from_currency": "USD", "to_currency": "EUR"},
        ),
    )
    assert [c.id for c in m.tool_calls] == ["toolu_01EFn5wTNBYA8Reni8rbmnHT"]
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "tool_use", "completed")
    assert m.usage == Usage(input_tokens=1591, output_tokens=175, cache_read_tokens=0, cache_write_tokens=0)


# -- the official SDK as oracle --------------------------------------------------------------------


def sdk_final_message(body: bytes) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "x"}]) as s:
        return s.get_final_message()


def assert_agrees_with_sdk(m: Message, ref: Any) -> None:
    assert m.id == ref.id and m.model == ref.model
    assert m.raw_stop_reason == ref.stop_reason
    u = ref.usage
    cache_write, cache_read = u.cache_creation_input_tokens, u.cache_read_input_tokens
    assert m.usage.input_tokens == u.input_tokens + (cache_write or 0) + (cache_read or 0)
    assert (m.usage.output_tokens, m.usage.cache_write_tokens, m.usage.cache_read_tokens) == (
        u.output_tokens,
        cache_write,
        cache_read,
    )
    assert len(m.blocks) == len(ref.content)
    for ours, theirs in zip(m.blocks, ref.content, strict=True):
        if theirs.type == "text":
            assert isinstance(ours, TextBlock) and ours.text == theirs.text
        elif theirs.type == "thinking":
            assert isinstance(ours, ThinkingBlock)
            assert (ours.thinking, ours.signature) == (theirs.thinking, theirs.signature)
        elif theirs.type == "redacted_thinking":
            assert isinstance(ours, RedactedThinkingBlock) and ours.data == theirs.data
        elif theirs.type in ("tool_use", "server_tool_use"):
            assert isinstance(ours, ToolCall | ServerToolBlock)
            assert (ours.id, ours.name) == (theirs.id, theirs.name)
            if ours.complete:
                assert ours.input == theirs.input
        else:
            assert isinstance(ours, ServerToolBlock | UnknownBlock)
            assert ours.raw_type == theirs.type


@pytest.mark.parametrize("name", FILES)
def test_sdk_agrees_on_recorded(name: str) -> None:
    data = recorded(name)
    assert_agrees_with_sdk(decode(data), sdk_final_message(data))


def test_sdk_on_cut_tool_input_shows_a_partial_parse_we_refuse() -> None:
    data = recorded("anthropic_max_tokens_tool_input_cut.txt")
    ref = sdk_final_message(data)
    # The SDK presents the prefix as if it were an input; we keep the raw text and no input.
    assert ref.content[1].input == {
        "filename": "taxes.txt",
        "lines_of_text": [
            "# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",
            "",
            "## INTRODUCTION",
            "",
        ],
    }
    call = decode(data).blocks[1]
    assert isinstance(call, ToolCall) and call.input is None and call.error == "truncated"


@pytest.mark.parametrize("realism", [True, False])
def test_sdk_reads_encoder_output(realism: bool) -> None:
    m = Message(
        provider="anthropic",
        id="msg_x",
        model="claude-test",
        blocks=(
            ThinkingBlock("hmm", "c2ln"),
            RedactedThinkingBlock("ZGF0YQ=="),
            TextBlock(text="héllo ✓"),
            ServerToolBlock(
                raw_type="server_tool_use",
                id="srvtoolu_1",
                name="web_search",
                raw_input='{"query":"x"}',
                input={"query": "x"},
            ),
            ServerToolBlock(
                raw_type="web_search_tool_result",
                id="srvtoolu_1",
                name=None,
                content={"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            ),
            ToolCall(id="toolu_1", name="get", raw_input='{"a":[1,2]}', input={"a": [1, 2]}),
            ToolCall(id="toolu_2", name="noargs", raw_input="", input={}),
        ),
        stop_reason="tool_use",
        raw_stop_reason="tool_use",
        usage=Usage(input_tokens=130, output_tokens=40, cache_read_tokens=100, cache_write_tokens=20),
        terminal="completed",
    )
    body = wire.encoder("anthropic", realism=realism).encode_message(m)
    assert decode(body) == m
    ref = sdk_final_message(body)
    assert_agrees_with_sdk(m, ref)
    assert ref.usage.input_tokens == 10  # Anthropic counts input without cache


# -- encoder ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_reencode_recorded_events(name: str) -> None:
    events = decode_chunks("anthropic", [recorded(name)])
    for realism in (True, False):
        again = wire.encoder("anthropic", realism=realism).encode_all(events)
        assert accumulate(decode_chunks("anthropic", [again])) == accumulate(events)


def test_encoder_writes_the_captured_lines() -> None:
    data = recorded("anthropic_tool_use.txt")
    events = decode_chunks("anthropic", [data])
    body = AnthropicEncoder(realism=False).encode_all(events).decode()
    captured = data.decode().split("\n")
    for line in body.split("\n"):
        if line.startswith('data: {"type":"content_block_') and '"type":"tool_use"' not in line:
            assert line in captured
    assert body.startswith(
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr",'
        '"type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],'
        '"stop_reason":null,"stop_sequence":null,"stop_details":null,"usage":{"input_tokens":377,'
        '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}\n\n'
    )
    assert (
        'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
        '"id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{}}}'
    ) in body
    assert body.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert "ping" not in body and " }" not in body


def test_encoder_realism() -> None:
    m = decode(recorded("anthropic_tool_use.txt"))
    body = AnthropicEncoder(realism=True, seed=1).encode_message(m).decode()
    assert body == AnthropicEncoder(realism=True, seed=1).encode_message(m).decode()
    assert body != AnthropicEncoder(realism=True, seed=2).encode_message(m).decode()
    frames = body.split("\n\n")
    assert frames[1].startswith("event: content_block_start")
    assert frames[2] == 'event: ping\ndata: {"type": "ping"}'
    assert body.count("event: ping") == 1
    pads = [len(p) for p in re.findall(r"( +)}$", body, flags=re.M)]
    assert pads and all(1 <= p <= 15 for p in pads)
    assert '"partial_json":""' in body  # the API's empty first fragment


def test_encoder_error_ends_the_stream() -> None:
    err = StreamError(
        error_kind="overloaded",
        message="Overloaded",
        retryable=True,
        raw={
            "type": "error",
            "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"},
        },
    )
    enc = AnthropicEncoder(realism=False)
    head = enc.encode_all(decode_chunks("anthropic", [sse(START, TEXT_START, text_delta("Hi"))])[:-2])
    tail = enc.encode(err) + enc.encode(ResponseEnd(stop_reason="end_turn")) + enc.encode(TextDelta(0, "x"))
    assert tail == (
        b'event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    m = decode(head + tail)
    assert (m.terminal, m.text, m.error) == ("failed", "Hi", err)


# -- round trip over generated Messages ------------------------------------------------------------

_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_objects = st.dictionaries(st.text(max_size=6), _json, max_size=4)


def _raw(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@st.composite
def _tool_call(draw: st.DrawFn, complete: bool) -> ToolCall:
    value = draw(_objects)
    raw = draw(st.sampled_from(["", _raw(value)])) if value == {} else _raw(value)
    if complete:
        return ToolCall(id="toolu_" + draw(_ids), name=draw(_ids), raw_input=raw, input=value)
    raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    return ToolCall(
        id="toolu_" + draw(_ids),
        name=draw(_ids),
        raw_input=raw,
        input=None,
        complete=False,
        error="truncated",
    )


@st.composite
def _server_call(draw: st.DrawFn, complete: bool) -> ServerToolBlock:
    value = draw(_objects)
    return ServerToolBlock(
        raw_type="server_tool_use",
        id="srvtoolu_" + draw(_ids),
        name=draw(_ids),
        raw_input=_raw(value),
        input=value if complete else None,
        complete=complete,
    )


@st.composite
def _server_result(draw: st.DrawFn, complete: bool) -> ServerToolBlock:
    kind = (
        draw(st.sampled_from(["web_search", "web_fetch", "code_execution", "tool_search"])) + "_tool_result"
    )
    tool_use_id = "srvtoolu_" + draw(_ids)
    content = {"type": kind, "tool_use_id": tool_use_id, "content": draw(_json)}
    return ServerToolBlock(raw_type=kind, id=tool_use_id, name=None, content=content, complete=complete)


def _block(complete: bool) -> st.SearchStrategy[Any]:
    citations = st.lists(
        st.fixed_dictionaries({"type": st.just("char_location"), "cited_text": st.text(max_size=8)}),
        max_size=2,
    ).map(tuple)
    return st.one_of(
        st.builds(TextBlock, text=st.text(max_size=30), citations=citations, complete=st.just(complete)),
        st.builds(ThinkingBlock, st.text(max_size=30), st.none() | st.text(max_size=20), st.just(complete)),
        st.builds(RedactedThinkingBlock, st.text("ABCabc0123+/=", max_size=30), st.just(complete)),
        _tool_call(complete),
        _server_call(complete),
        _server_result(complete),
        st.builds(
            UnknownBlock,
            raw_type=st.just("container_upload"),
            data=st.fixed_dictionaries({"type": st.just("container_upload"), "file_id": _ids}),
            complete=st.just(complete),
        ),
        st.builds(
            UnknownBlock,
            raw_type=st.just("compaction"),
            data=st.just({"type": "compaction", "content": None}),
            complete=st.just(complete),
            deltas=st.lists(
                st.fixed_dictionaries({"type": st.just("compaction_delta"), "content": st.text(max_size=20)}),
                max_size=2,
            ).map(tuple),
        ),
    )


_FINISHED = ["end_turn", "tool_use", "stop_sequence", "pause_turn", "refusal", "a_future_reason"]


@st.composite
def messages(draw: st.DrawFn) -> Message:
    ending = draw(
        st.sampled_from(["completed", "max_tokens", "model_context_window_exceeded", "cut", "failed"])
    )
    blocks = draw(st.lists(_block(True), max_size=4))
    if ending != "completed" and draw(st.booleans()):
        blocks.append(draw(_block(False)))
    usage = Usage(
        input_tokens=draw(st.integers(0, 10**6)),
        output_tokens=draw(st.integers(0, 10**5)),
        cache_read_tokens=draw(st.none() | st.integers(0, 1000)),
        cache_write_tokens=draw(st.none() | st.integers(0, 1000)),
    )
    raw_stop: str | None
    error = None
    if ending == "failed":
        error_type = draw(st.sampled_from(["overloaded_error", "api_error", "rate_limit_error", "new_error"]))
        raw_error: dict[str, Any] = {
            "type": "error",
            "error": {"details": None, "type": error_type, "message": draw(st.text())},
        }
        if draw(st.booleans()):
            raw_error["request_id"] = "req_" + draw(_ids)
        kind, retryable = classify_error(error_type)
        error = StreamError(
            error_kind=kind, message=raw_error["error"]["message"], retryable=retryable, raw=raw_error
        )
        stop_reason, raw_stop, terminal = "error", None, "failed"
    elif ending in ("max_tokens", "model_context_window_exceeded"):
        raw_stop, terminal = ending, "truncated"
        stop_reason = "max_tokens" if ending == "max_tokens" else "context_window_exceeded"
    else:
        raw_stop = (
            draw(st.sampled_from(_FINISHED) | st.none())
            if ending == "cut"
            else draw(st.sampled_from(_FINISHED))
        )
        stop_reason = None if raw_stop is None else (raw_stop if raw_stop in _FINISHED[:-1] else "other")
        terminal = "truncated" if ending == "cut" else "completed"
    return Message(
        provider="anthropic",
        id=draw(st.none() | _ids.map("msg_".__add__)),
        model=draw(st.none() | _ids),
        blocks=tuple(blocks),
        stop_reason=stop_reason,
        raw_stop_reason=raw_stop,
        usage=usage,
        terminal=terminal,
        error=error,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=messages(), realism=st.booleans(), seed=st.integers(0, 2**16))
def test_round_trip(m: Message, realism: bool, seed: int) -> None:
    body = wire.encoder("anthropic", realism=realism, seed=seed).encode_message(m)
    assert decode(body) == m
    events = assert_split_invariant("anthropic", body, random_runs=3, seed=seed)
    assert accumulate(events) == m


# -- unknowns, errors, bad bytes -------------------------------------------------------------------


def test_unknown_event_block_and_delta_pass_through() -> None:
    future_event = {"type": "message_annotation", "note": 1}
    odd_block = {"type": "content_block_start", "index": 1, "content_block": {"type": "hologram", "x": [1]}}
    odd_delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "sparkle_delta", "s": "*"}}
    to_odd_block = text_delta("into the hologram", index=1)
    events = decode_chunks(
        "anthropic",
        [
            sse(
                START,
                future_event,
                TEXT_START,
                text_delta("a"),
                odd_delta,
                stop(0),
                odd_block,
                to_odd_block,
                stop(1),
                *END,
            )
        ],
    )
    assert Unknown(raw_type="message_annotation", payload=future_event) in events
    assert Unknown(raw_type="sparkle_delta", payload=odd_delta) in events
    assert Unknown(raw_type="text_delta", payload=to_odd_block["delta"], index=1) in events
    m = accumulate(events)
    hologram = UnknownBlock(
        raw_type="hologram", data={"type": "hologram", "x": [1]}, deltas=(to_odd_block["delta"],)
    )
    assert m.blocks == (TextBlock(text="a"), hologram)
    assert m.terminal == "completed"


def test_ping_emits_nothing() -> None:
    ping = 'event: ping\ndata: {"type": "ping"}\n\n'
    with_pings = decode_chunks("anthropic", [sse(ping, START, ping, TEXT_START, ping, stop(0), ping, *END)])
    without = decode_chunks("anthropic", [sse(START, TEXT_START, stop(0), *END)])
    assert with_pings == without


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (
            {
                "type": "error",
                "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"},
            },
            "overloaded",
            True,
        ),
        (
            {
                "type": "error",
                "error": {"type": "rate_limit_error", "message": "slow down"},
                "request_id": "req_011CRQ",
            },
            "rate_limited",
            True,
        ),
        (
            {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
            "invalid_request",
            False,
        ),
    ],
)
def test_error_event_mid_stream(error: dict[str, Any], kind: str, retryable: bool) -> None:
    padded = wire.encode_sse(json.dumps(error, separators=(",", ":"))[:-1] + " }", event="error").decode()
    events = assert_split_invariant(
        "anthropic", sse(START, TEXT_START, text_delta("par"), padded), random_runs=20
    )
    errors = [e for e in events if isinstance(e, StreamError)]
    assert len(errors) == 1
    assert (errors[0].error_kind, errors[0].retryable, errors[0].raw) == (kind, retryable, error)
    assert errors[0].message == error["error"]["message"]
    m = accumulate(events)
    assert (m.terminal, m.stop_reason) == ("failed", "error")
    assert m.blocks == (TextBlock(text="par", complete=False),)
    assert m.error == errors[0]


def test_plain_text_error_event() -> None:
    m = decode(sse(START, "event: error\ndata: upstream connect error\n\n"))
    assert m.terminal == "failed"
    assert isinstance(m.error, StreamError)
    assert (m.error.error_kind, m.error.message, m.error.retryable) == (
        "unknown",
        "upstream connect error",
        False,
    )


def test_eof_mid_stream_is_truncated() -> None:
    m = decode(sse(START, TEXT_START, text_delta("Hel")))
    assert (m.terminal, m.stop_reason, m.blocks) == (
        "truncated",
        None,
        (TextBlock(text="Hel", complete=False),),
    )


def test_eof_after_message_delta_keeps_stop_reason() -> None:
    m = decode(sse(START, TEXT_START, text_delta("Hi"), stop(0), END[0]))
    assert (m.terminal, m.stop_reason, m.raw_stop_reason) == ("truncated", "end_turn", "end_turn")
    assert m.usage == Usage(input_tokens=5, output_tokens=7)


def test_every_prefix_of_a_capture_ends_honestly() -> None:
    data = recorded("anthropic_tool_use.txt")
    whole = data.index(b'{"type":"message_stop"}') + len(b'{"type":"message_stop"}')
    for cut in range(0, len(data), 7):
        m = decode(data[:cut])
        assert m.terminal == ("completed" if cut >= whole else "truncated")
        for call in m.tool_calls:
            assert call.input is None or call.input == {"location": "Paris"}


def test_empty_body_is_truncated() -> None:
    m = decode(b"")
    assert (m.provider, m.terminal, m.blocks) == ("anthropic", "truncated", ())


def test_start_content_is_not_lost() -> None:
    events = decode_chunks(
        "anthropic",
        [
            sse(
                START,
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": "Pre", "citations": [{"type": "c", "n": 1}]},
                },
                text_delta("fix"),
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "citations_delta", "citation": {"type": "c", "n": 2}},
                },
                stop(0),
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"k": "v"}},
                },
                stop(1),
                *END,
            )
        ],
    )
    assert CitationDelta(0, {"type": "c", "n": 2}) in events
    m = accumulate(events)
    assert m.blocks == (
        TextBlock(text="Prefix", citations=({"type": "c", "n": 1}, {"type": "c", "n": 2})),
        ToolCall(id="toolu_9", name="f", raw_input='{"k":"v"}', input={"k": "v"}),
    )


def test_cache_counts_are_summed_into_input() -> None:
    start = json.loads(json.dumps(START))
    start["message"]["usage"] = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 40,
        "cache_read_input_tokens": 500,
        "output_tokens": 1,
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": 4, "output_tokens": 9},
    }
    events = decode_chunks("anthropic", [sse(start, delta, END[1])])
    assert events[0].usage == Usage(
        input_tokens=543,
        output_tokens=1,
        cache_read_tokens=500,  # type: ignore[union-attr]
        cache_write_tokens=40,
    )
    # A later frame reporting only input_tokens keeps the cache counts it did not repeat.
    assert accumulate(events).usage == Usage(
        input_tokens=544, output_tokens=9, cache_read_tokens=500, cache_write_tokens=40
    )


@pytest.mark.parametrize(
    "bad",
    [
        "event: content_block_delta\ndata: {not json}\n\n",
        "event: content_block_delta\ndata: [1, 2]\n\n",
        'event: content_block_delta\ndata: {"type":"content_block_delta",'
        '"delta":{"type":"text_delta","text":"x"}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":7}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":"x"}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":'
        '"tool_use","name":"f"}}\n\n',
        'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":"9"}}\n\n',
        "event: content_block_delta\ndata: " + "[" * 100_000 + "]" * 100_000 + "\n\n",
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n',  # index 0 twice
    ],
)
def test_malformed_payloads_raise_remote_protocol_error(bad: str) -> None:
    dec = wire.decoder("anthropic")
    dec.feed(sse(START, TEXT_START))
    with pytest.raises(RemoteProtocolError):
        dec.feed(bad.encode())
    end = dec.close()[-1]
    assert isinstance(end, ResponseEnd) and end.terminal == "failed"


def test_line_limit() -> None:
    dec = wire.decoder("anthropic", max_line=200)
    with pytest.raises(LimitExceeded):
        dec.feed(sse(START, TEXT_START, text_delta("x" * 500)))


def test_mapper_for_other_transports() -> None:
    mapper = AnthropicEventMapper("bedrock")
    out = mapper.on_event(START) + mapper.on_event(TEXT_START) + mapper.on_event(text_delta("hi"))
    assert out[0].provider == "bedrock"  # type: ignore[union-attr]
    assert out[1:] == [BlockStart(index=0, type="text", raw_type="text"), TextDelta(0, "hi")]
    assert mapper.on_event({"type": "ping"}) == []
    assert mapper.on_event(END[0]) == [UsageUpdate(Usage(output_tokens=7))]
    assert mapper.on_event(END[1]) == [ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn")]
    assert mapper.close() == []
    cut = AnthropicEventMapper()
    cut.on_event(START)
    cut.on_event(END[0])
    assert cut.close() == [
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="truncated")
    ]
    with pytest.raises(RemoteProtocolError):
        cut.on_event([1])  # type: ignore[arg-type]


def _same_as_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            _loads(text)
        return
    assert repr(_loads(text)) == repr(expected)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        ' {"a":1}',
        '{"a":1} ',
        '{"a":1}\n',
        '{"a":1}x',
        "",
        " ",
        "\ufeff{}",
        "NaN",
        "[1]",
        '"s"',
        '{"a":',
    ],
)
def test_payload_parsing_is_json_loads(text: str) -> None:
    _same_as_json_loads(text)


@settings(max_examples=100, deadline=None)
@given(value=_json, before=st.sampled_from(["", " ", "\t"]), after=st.sampled_from(["", " ", "}", "x"]))
def test_payload_parsing_is_json_loads_generated(value: Any, before: str, after: str) -> None:
    _same_as_json_loads(before + json.dumps(value) + after)


_BAD_STOP = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":3,'
    b'"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hel"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":7}\n\n'
)


@pytest.mark.parametrize("ending", ["close", "fail", "cancel"])
def test_protocol_error_mid_chunk_still_closes_out_consistently(ending: str) -> None:
    # The whole body in one chunk: the bad stop raises, and the events the timeline had already
    # accepted from that chunk (the start, block 0, "Hel") come with the closing events, so the
    # consumer never sees a BlockStop for a block it did not see start.
    dec = wire.decoder("anthropic")
    with pytest.raises(RemoteProtocolError):
        dec.feed(_BAD_STOP)
    if ending == "close":
        events = dec.close()
    elif ending == "fail":
        events = dec.fail(StreamError(error_kind="transport", message="gone"))
    else:
        events = dec.cancel()
    assert events[0].kind == "response_start"
    assert events[1] == BlockStart(index=0, type="text", raw_type="text")
    assert events[2] == TextDelta(0, "Hel")
    assert events[3] == BlockStop(0, complete=False)
    message = accumulate(events)
    assert message.text == "Hel"
    assert message.blocks[0].complete is False
    assert message.terminal == ("cancelled" if ending == "cancel" else "failed")
    assert dec.close() == []
