"""Folding events into a Message, the tool-input outcomes, and the inverse ``events_from_message``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import Accumulator, Timeline, accumulate, events_from_message
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
    UsageUpdate,
)
from midstream.message import (
    STOP_REASONS,
    TERMINALS,
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
    Usage,
)
from midstream.wire.timeline import terminal_for

START = ResponseStart(provider="anthropic", model="claude-x", id="msg_1", usage=Usage(input_tokens=12))
END = ResponseEnd(
    stop_reason="end_turn", raw_stop_reason="end_turn", usage=Usage(input_tokens=12, output_tokens=30)
)


def response(*blocks: Event, end: Event = END) -> list[Event]:
    return [START, *blocks, end]


def tool_call(raw: list[str], *, complete: bool | None = True) -> ToolCall:
    """The ToolCall folded from one tool block with these fragments (``complete=None``: never stopped)."""
    events: list[Event] = [START, BlockStart(index=0, type="tool_call", id="toolu_1", name="search")]
    events += [ToolArgsDelta(0, f) for f in raw]
    if complete is not None:
        events.append(BlockStop(0, complete=complete))
    [block] = accumulate(events).blocks
    assert isinstance(block, ToolCall)
    return block


# -- each block type --------------------------------------------------------------------------------


def test_text_block_with_citations() -> None:
    cite = {"type": "web_search_result_location", "url": "https://e.x", "cited_text": "x"}
    message = accumulate(
        response(
            BlockStart(index=0, type="text"),
            TextDelta(0, "Hel"),
            CitationDelta(0, cite),
            TextDelta(0, "lo \u2713"),
            BlockStop(0),
        )
    )
    assert message == Message(
        provider="anthropic",
        id="msg_1",
        model="claude-x",
        blocks=(TextBlock(text="Hello \u2713", citations=(cite,)),),
        stop_reason="end_turn",
        raw_stop_reason="end_turn",
        usage=Usage(input_tokens=12, output_tokens=30),
        terminal="completed",
    )
    assert message.text == "Hello \u2713"
    assert not message.partial


def test_thinking_block_with_signature_in_parts() -> None:
    [block] = accumulate(
        response(
            BlockStart(index=0, type="thinking"),
            ThinkingDelta(0, "Let me "),
            ThinkingDelta(0, "think."),
            ThinkingDelta(0, ""),
            SignatureDelta(0, "EqQBCkYIAx"),
            SignatureDelta(0, "gCKkBz=="),
            BlockStop(0),
        )
    ).blocks
    assert block == ThinkingBlock("Let me think.", "EqQBCkYIAxgCKkBz==")


def test_thinking_without_signature_has_none_and_empty_signature_is_kept() -> None:
    [plain] = accumulate(
        response(BlockStart(index=0, type="thinking"), ThinkingDelta(0, "a"), BlockStop(0))
    ).blocks
    assert plain == ThinkingBlock("a", None)
    [empty] = accumulate(
        response(BlockStart(index=0, type="thinking"), SignatureDelta(0, ""), BlockStop(0))
    ).blocks
    assert empty == ThinkingBlock("", "")


def test_redacted_thinking_is_kept_byte_exact() -> None:
    data = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfFXcDjb+sVuE/Q=="
    [block] = accumulate(
        response(
            BlockStart(index=0, type="redacted_thinking", raw_type="redacted_thinking", data=data),
            BlockStop(0),
        )
    ).blocks
    assert block == RedactedThinkingBlock(data)


def test_tool_call_block() -> None:
    message = accumulate(
        response(
            BlockStart(index=0, type="text"),
            TextDelta(0, "Searching."),
            BlockStop(0),
            BlockStart(index=1, type="tool_call", id="toolu_1", name="search", raw_type="tool_use"),
            ToolArgsDelta(1, ""),
            ToolArgsDelta(1, '{"q": "sy'),
            ToolArgsDelta(1, 'dney", "limit": 5}'),
            BlockStop(1),
            end=ResponseEnd(stop_reason="tool_use", raw_stop_reason="tool_use"),
        )
    )
    assert message.blocks[1] == ToolCall(
        id="toolu_1",
        name="search",
        raw_input='{"q": "sydney", "limit": 5}',
        input={"q": "sydney", "limit": 5},
    )
    assert message.tool_calls == [message.blocks[1]]
    assert message.stop_reason == "tool_use"


def test_server_tool_call_and_result_blocks() -> None:
    result = [{"type": "web_search_result", "url": "https://e.x", "title": "E"}]
    message = accumulate(
        response(
            BlockStart(
                index=0, type="server_tool", id="srvtoolu_1", name="web_search", raw_type="server_tool_use"
            ),
            ToolArgsDelta(0, '{"query": '),
            ToolArgsDelta(0, '"weather"}'),
            BlockStop(0),
            BlockStart(
                index=1, type="server_tool", id="srvtoolu_1", raw_type="web_search_tool_result", data=result
            ),
            BlockStop(1),
        )
    )
    call, res = message.blocks
    assert isinstance(call, ServerToolBlock)
    assert (call.raw_type, call.id, call.name) == ("server_tool_use", "srvtoolu_1", "web_search")
    assert call.raw_input == '{"query": "weather"}'
    assert call.input == {"query": "weather"}
    assert call.complete
    assert isinstance(res, ServerToolBlock)
    assert (res.raw_type, res.id, res.content, res.raw_input, res.complete) == (
        "web_search_tool_result",
        "srvtoolu_1",
        result,
        "",
        True,
    )
    # server tools are the provider's business, not the caller's tool calls
    assert message.tool_calls == []


def test_unknown_block_is_kept_whole() -> None:
    payload = {"type": "container_upload", "file_id": "f_1"}
    [block] = accumulate(
        response(BlockStart(index=0, type="unknown", raw_type="container_upload", data=payload), BlockStop(0))
    ).blocks
    assert block == UnknownBlock(raw_type="container_upload", data=payload)


def test_unknown_events_and_usage_updates_do_not_make_blocks() -> None:
    message = accumulate(
        response(
            Unknown(raw_type="ping"),
            UsageUpdate(Usage(input_tokens=12, output_tokens=3)),
            Unknown(raw_type="x", payload={}),
        )
    )
    assert message.blocks == ()
    assert message.usage == END.usage


def test_blocks_are_in_start_order_and_interleaving_is_folded_per_block() -> None:
    message = accumulate(
        response(
            BlockStart(index=0, type="tool_call", id="a", name="f"),
            BlockStart(index=1, type="tool_call", id="b", name="g"),
            ToolArgsDelta(1, '{"y":'),
            ToolArgsDelta(0, '{"x":'),
            ToolArgsDelta(0, "1}"),
            ToolArgsDelta(1, "2}"),
            BlockStop(1),
            BlockStop(0),
        )
    )
    assert [(c.id, c.input) for c in message.tool_calls] == [("a", {"x": 1}), ("b", {"y": 2})]


def test_feeding_a_batch_folds_the_same_as_feeding_each_event() -> None:
    events = response(
        BlockStart(index=0, type="thinking"),
        ThinkingDelta(0, "hm"),
        SignatureDelta(0, "sig"),
        BlockStop(0),
        BlockStart(index=1, type="text"),
        TextDelta(1, "Hel"),
        TextDelta(1, "lo"),
        BlockStop(1),
        BlockStart(index=2, type="tool_call", id="a", name="f"),
        ToolArgsDelta(2, '{"x":'),
        ToolArgsDelta(2, "1}"),
        BlockStop(2),
    )
    one, batch = Accumulator(), Accumulator()
    for event in events:
        one.feed(event)
    for start, stop in ((0, 3), (3, 4), (4, 11), (11, len(events))):  # as network chunks cut them
        batch.feed_all(events[start:stop])
    assert batch.message == one.message and one.message.text == "Hello"
    assert batch.terminal == one.message.terminal == "completed"
    assert Accumulator().terminal == Accumulator().message.terminal == "truncated"
    assert one.message.tool_calls[0].input == {"x": 1}


# -- tool input outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (['{"a": 1, "b": [true, null, "x"]}'], {"a": 1, "b": [True, None, "x"]}),
        (["{", '"a"', ":", " 1", "}"], {"a": 1}),
        (['{"nested": {"k": {"v": 1.5e3}}}'], {"nested": {"k": {"v": 1500.0}}}),
        (['{"s": "\\u00e9\\n"}'], {"s": "\u00e9\n"}),
        ([" {} "], {}),
    ],
)
def test_complete_valid_input_is_parsed(raw: list[str], expected: dict[str, Any]) -> None:
    call = tool_call(raw)
    assert call.input == expected
    assert call.raw_input == "".join(raw)
    assert (call.complete, call.error) == (True, None)


@pytest.mark.parametrize("raw", [[""], [], ["  ", "\n"]])
def test_empty_input_is_an_empty_object(raw: list[str]) -> None:
    call = tool_call(raw)
    assert (call.input, call.error, call.complete) == ({}, None, True)


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": tru}',
        '{"a": 1} {"b": 2}',  # two documents
        '{"a": 1} x',
        "{'a': 1}",
        '{"a": NaN}',  # not JSON, even though Python's json accepts it by default
        '{"a": Infinity}',
        '{"a": -Infinity}',
        "[1, 2]",  # JSON, but not an object
        '"text"',
        "42",
        "null",
        "true",
    ],
)
def test_invalid_or_non_object_input_is_invalid_json(raw: str) -> None:
    call = tool_call([raw])
    assert (call.input, call.error) == (None, "invalid_json")
    assert call.raw_input == raw


def test_input_cut_mid_value_in_a_closed_block_is_truncated() -> None:
    # Anthropic's buffered tool input cut by max_tokens: the block closes, the JSON never does.
    call = tool_call(['{"a": 1'])
    assert (call.input, call.error, call.complete) == (None, "truncated", True)


def test_incomplete_input_is_truncated() -> None:
    call = tool_call(['{"q": "par'], complete=False)
    assert (call.input, call.error, call.complete) == (None, "truncated", False)
    assert call.raw_input == '{"q": "par'


def test_a_prefix_that_parses_is_not_an_input_when_the_block_stopped_incomplete() -> None:
    # {"q":"a"} parses, but the provider had more to say (",\"limit\":5}" never came).
    call = tool_call(['{"q":', '"a"}'], complete=False)
    assert call.input is None
    assert call.error == "truncated"
    assert not call.complete


def test_a_block_never_stopped_has_no_input() -> None:
    call = tool_call(['{"q": "a"}'], complete=None)
    assert (call.input, call.error, call.complete) == (None, "truncated", False)


def test_empty_input_of_a_truncated_block_is_not_an_empty_object() -> None:
    assert tool_call([], complete=False).input is None
    assert tool_call([], complete=None).input is None


# -- message properties -----------------------------------------------------------------------------


def test_text_thinking_and_tool_calls_properties() -> None:
    message = Message(
        provider="p",
        blocks=(
            ThinkingBlock("plan ", "s"),
            TextBlock(text="one "),
            ToolCall(id="t1", name="f", raw_input="{}", input={}),
            RedactedThinkingBlock("xx"),
            ThinkingBlock("more"),
            ServerToolBlock(raw_type="server_tool_use", id="s1", name="web_search"),
            TextBlock(text="two"),
            ToolCall(id="t2", name="g", raw_input="{", input=None, complete=False, error="truncated"),
            UnknownBlock(raw_type="u"),
        ),
        terminal="completed",
    )
    assert message.text == "one two"
    assert message.thinking == "plan more"
    assert [c.id for c in message.tool_calls] == ["t1", "t2"]


@pytest.mark.parametrize(("terminal", "partial"), [(t, t != "completed") for t in TERMINALS])
def test_partial_unless_completed(terminal: Any, partial: bool) -> None:
    assert Message(provider="p", terminal=terminal).partial is partial


def test_message_defaults_to_truncated() -> None:
    assert Message(provider="p").terminal == "truncated"
    assert Message(provider="p").partial


# -- snapshots and endings --------------------------------------------------------------------------


def test_snapshot_before_response_end_is_truncated_and_blocks_incomplete() -> None:
    acc = Accumulator()
    for event in (
        START,
        BlockStart(index=0, type="text"),
        TextDelta(0, "Hi"),
        BlockStop(0),
        BlockStart(index=1, type="tool_call", id="t", name="f"),
        ToolArgsDelta(1, '{"a": 1}'),
    ):
        acc.feed(event)
    snap = acc.message
    assert snap.terminal == "truncated"
    assert snap.partial
    assert snap.stop_reason is None
    assert snap.blocks[0] == TextBlock(text="Hi")
    assert snap.blocks[1] == ToolCall(
        id="t", name="f", raw_input='{"a": 1}', input=None, complete=False, error="truncated"
    )
    assert snap.usage == Usage(input_tokens=12)
    # the snapshot is a value: feeding more does not change it
    acc.feed(BlockStop(1))
    acc.feed(END)
    assert snap.blocks[1].input is None
    final = acc.message
    assert final.terminal == "completed"
    assert final.blocks[1] == ToolCall(id="t", name="f", raw_input='{"a": 1}', input={"a": 1})


def test_empty_accumulator() -> None:
    assert Accumulator("openai-chat").message == Message(provider="openai-chat")
    assert accumulate([]) == Message(provider="unknown")


def test_usage_follows_start_then_updates_then_end() -> None:
    acc = Accumulator()
    acc.feed(ResponseStart(provider="p", usage=Usage(input_tokens=5)))
    assert acc.message.usage == Usage(input_tokens=5)
    acc.feed(UsageUpdate(Usage(input_tokens=5, output_tokens=2)))
    assert acc.message.usage == Usage(input_tokens=5, output_tokens=2)
    acc.feed(ResponseEnd(stop_reason="end_turn", usage=Usage(input_tokens=5, output_tokens=9)))
    assert acc.message.usage == Usage(input_tokens=5, output_tokens=9)


def test_failed_response_keeps_the_error() -> None:
    error = StreamError(
        error_kind="overloaded", message="Overloaded", retryable=True, raw={"type": "overloaded_error"}
    )
    timeline = Timeline("anthropic")
    events = timeline.feed_all(
        [
            START,
            BlockStart(index=0, type="text"),
            TextDelta(0, "Half an ans"),
            BlockStart(index=1, type="tool_call", id="t", name="f"),
            ToolArgsDelta(1, '{"a": 1}'),
            error,
        ]
    )
    message = accumulate(events + timeline.close())
    assert message.terminal == "failed"
    assert message.error == error
    assert message.stop_reason == "error"
    assert message.blocks == (
        TextBlock(text="Half an ans", complete=False),
        ToolCall(id="t", name="f", raw_input='{"a": 1}', input=None, complete=False, error="truncated"),
    )


def test_eof_through_the_timeline_truncates_and_withholds_tool_input() -> None:
    timeline = Timeline("anthropic")
    events = timeline.feed_all(
        [START, BlockStart(index=0, type="tool_call", id="t", name="f"), ToolArgsDelta(0, '{"q": "a"}')]
    )
    message = accumulate(events + timeline.close())
    assert message.terminal == "truncated"
    assert message.tool_calls == [
        ToolCall(id="t", name="f", raw_input='{"q": "a"}', input=None, complete=False, error="truncated")
    ]


def test_max_tokens_through_the_timeline() -> None:
    timeline = Timeline("anthropic")
    events = timeline.feed_all(
        [
            START,
            BlockStart(index=0, type="text"),
            TextDelta(0, "cut"),
            BlockStop(0),
            ResponseEnd(stop_reason="max_tokens", raw_stop_reason="max_tokens"),
        ]
    )
    message = accumulate(events)
    assert (message.terminal, message.stop_reason, message.partial) == ("truncated", "max_tokens", True)


# -- events_from_message ----------------------------------------------------------------------------


def test_events_from_message_canonical_sequence() -> None:
    error = StreamError(error_kind="server", message="boom")
    message = Message(
        provider="p",
        id="r",
        model="m",
        blocks=(
            TextBlock(text="hi", citations=({"c": 1},)),
            ThinkingBlock("t", "sig"),
            RedactedThinkingBlock("d"),
            ToolCall(id="t1", name="f", raw_input='{"a":1}', input={"a": 1}),
            ServerToolBlock(raw_type="web_search_tool_result", id="s1", name=None, content=[1]),
            UnknownBlock(raw_type="u", data={"k": 1}),
            TextBlock(text=""),
        ),
        stop_reason="error",
        raw_stop_reason="x",
        usage=Usage(input_tokens=1, output_tokens=2),
        terminal="failed",
        error=error,
    )
    assert events_from_message(message) == [
        ResponseStart(provider="p", model="m", id="r"),
        BlockStart(index=0, type="text", raw_type="text"),
        TextDelta(0, "hi"),
        CitationDelta(0, {"c": 1}),
        BlockStop(0),
        BlockStart(index=1, type="thinking", raw_type="thinking"),
        ThinkingDelta(1, "t"),
        SignatureDelta(1, "sig"),
        BlockStop(1),
        BlockStart(index=2, type="redacted_thinking", raw_type="redacted_thinking", data="d"),
        BlockStop(2),
        BlockStart(index=3, type="tool_call", id="t1", name="f", raw_type="tool_use"),
        ToolArgsDelta(3, '{"a":1}'),
        BlockStop(3),
        BlockStart(index=4, type="server_tool", id="s1", raw_type="web_search_tool_result", data=[1]),
        BlockStop(4),
        BlockStart(index=5, type="unknown", raw_type="u", data={"k": 1}),
        BlockStop(5),
        BlockStart(index=6, type="text", raw_type="text"),
        BlockStop(6),
        UsageUpdate(Usage(input_tokens=1, output_tokens=2)),
        error,
        ResponseEnd(
            stop_reason="error",
            raw_stop_reason="x",
            usage=Usage(input_tokens=1, output_tokens=2),
            terminal="failed",
        ),
    ]
    assert accumulate(events_from_message(message)) == message


_KEYS = st.text(max_size=6)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_OBJECTS = st.dictionaries(_KEYS, _JSON, max_size=4)
_TEXT = st.text(max_size=30)
_ID = st.none() | st.text(min_size=1, max_size=10)


@st.composite
def _tool_call(draw: st.DrawFn) -> ToolCall:
    obj = draw(st.none() | _OBJECTS)
    raw = "" if obj is None else json.dumps(obj, indent=draw(st.sampled_from([None, 1])))
    return ToolCall(id=draw(_TEXT), name=draw(_TEXT), raw_input=raw, input={} if obj is None else obj)


@st.composite
def _server_tool(draw: st.DrawFn) -> ServerToolBlock:
    obj = draw(st.none() | _OBJECTS)
    content = draw(_JSON)
    # A call (no content) that closed without input text has input {}, like a tool call; a result has none.
    value = obj if obj is not None else ({} if content is None else None)
    return ServerToolBlock(
        raw_type=draw(st.sampled_from(["server_tool_use", "web_search_tool_result", "code_execution"])),
        id=draw(_ID),
        name=draw(_ID),
        raw_input="" if obj is None else json.dumps(obj),
        input=value,
        content=content,
    )


_BLOCKS: st.SearchStrategy[Block] = st.one_of(
    st.builds(TextBlock, text=_TEXT, citations=st.lists(_OBJECTS, max_size=2).map(tuple)),
    st.builds(ThinkingBlock, _TEXT, st.none() | _TEXT),
    st.builds(RedactedThinkingBlock, _TEXT),
    _tool_call(),
    _server_tool(),
    st.builds(
        UnknownBlock,
        raw_type=st.text(min_size=1, max_size=10),
        data=_JSON,
        deltas=st.lists(st.fixed_dictionaries({"type": st.text(max_size=5), "v": _JSON}), max_size=2).map(
            tuple
        ),
    ),
)
_USAGE = st.builds(
    Usage,
    input_tokens=st.none() | st.integers(0, 10**6),
    output_tokens=st.none() | st.integers(0, 10**6),
    cache_read_tokens=st.none() | st.integers(0, 10**6),
    cache_write_tokens=st.none() | st.integers(0, 10**6),
    reasoning_tokens=st.none() | st.integers(0, 10**6),
)
_MESSAGES = st.builds(
    Message,
    provider=st.sampled_from(["anthropic", "openai-chat", "gemini"]),
    id=_ID,
    model=_ID,
    blocks=st.lists(_BLOCKS, max_size=5).map(tuple),
    stop_reason=st.none() | st.sampled_from(STOP_REASONS),
    raw_stop_reason=st.none() | _TEXT,
    usage=_USAGE,
    terminal=st.sampled_from(TERMINALS),
    error=st.none()
    | st.builds(StreamError, error_kind=st.sampled_from(["server", "overloaded"]), message=_TEXT),
)


@settings(max_examples=100, deadline=None)
@given(message=_MESSAGES)
def test_accumulate_inverts_events_from_message(message: Message) -> None:
    assert accumulate(events_from_message(message)) == message


@settings(max_examples=100, deadline=None)
@given(message=_MESSAGES)
def test_events_from_message_are_a_well_formed_response(message: Message) -> None:
    """Through the timeline too, the canonical events rebuild the message (when its ending is consistent)."""
    timeline = Timeline(message.provider)
    events = timeline.feed_all(events_from_message(message)) + timeline.close()
    assert [type(e) for e in events].count(ResponseEnd) == 1
    folded = accumulate(events)
    assert folded.blocks == message.blocks
    assert folded.usage == message.usage
    if message.error is None and terminal_for(message.stop_reason, message.terminal) == message.terminal:
        assert folded == message
