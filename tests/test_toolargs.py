"""ToolArgs / ToolTracker: field events while arguments stream, one strict verdict at the block's stop."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from midstream.core.accumulate import accumulate
from midstream.core.toolargs import (
    ToolArgs,
    ToolCallInvalid,
    ToolCallReady,
    ToolEvent,
    ToolFieldComplete,
    ToolFieldDelta,
    ToolFieldStart,
    ToolInputError,
    ToolTracker,
    validate,
    with_tool_events,
)
from midstream.errors import IncompleteJSON, InvalidJSON, LimitExceeded, LocalError
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    TextDelta,
    ToolArgsDelta,
)


def run(fragments: list[str], complete: bool = True, **options: Any) -> tuple[list[ToolEvent], ToolEvent]:
    """Feed fragments to a fresh ToolArgs(3), stop it; (events before the stop, the verdict)."""
    args = ToolArgs(3, id="call_1", name="search", **options)
    events = [ev for fragment in fragments for ev in args.feed(fragment)]
    assert not any(isinstance(ev, ToolCallReady | ToolCallInvalid) for ev in events)
    (verdict,) = args.stop(complete)
    assert args.result is verdict
    return events, verdict


# -- the prefix trap and truncation -----------------------------------------------------------------


def test_a_prefix_that_parses_elsewhere_is_not_ready_before_the_stop() -> None:
    args = ToolArgs(0, name="search")
    first = args.feed('{"query": "x"')
    # a lenient parser would call {"query": "x"} done here; the field is complete, the call is not
    assert first[-1] == ToolFieldComplete(0, ("query",), "x")
    assert not any(isinstance(ev, ToolCallReady) for ev in first)
    assert args.snapshot() == {"query": "x"} and not args.is_complete(())
    second = args.feed(', "limit": 5}')
    assert second == [ToolFieldStart(0, ("limit",)), ToolFieldComplete(0, ("limit",), 5)]
    assert args.result is None
    assert args.stop(True) == [
        ToolCallReady(
            index=0,
            id=None,
            name="search",
            input={"query": "x", "limit": 5},
            validated={"query": "x", "limit": 5},
        )
    ]


def test_a_whole_document_followed_by_more_text_is_invalid() -> None:
    _events, verdict = run(['{"query": "x"}', ', "limit": 5}'])
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "invalid_json"
    assert isinstance(verdict.error, InvalidJSON)
    assert (verdict.error.position, verdict.error.reason) == (14, "extra data after the top-level value")
    assert verdict.raw == '{"query": "x"}, "limit": 5}'


def test_a_document_that_parsed_but_whose_block_did_not_close_is_truncated() -> None:
    events, verdict = run(['{"query": "x",', ' "limit": 5}'], complete=False)
    assert events[-1] == ToolFieldComplete(3, ("limit",), 5)
    assert isinstance(verdict, ToolCallInvalid)
    assert (verdict.reason, verdict.raw) == ("truncated", '{"query": "x", "limit": 5}')
    assert isinstance(verdict.error, IncompleteJSON)


def test_text_that_stops_mid_value_is_truncated_even_if_the_block_closed() -> None:
    _, verdict = run(['{"query": "x", "lim'])
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "truncated"
    assert isinstance(verdict.error, IncompleteJSON) and verdict.error.position == 19


@pytest.mark.parametrize("raw", ["", "  \n"])
def test_no_argument_text_is_an_empty_object(raw: str) -> None:
    assert run([raw])[1] == ToolCallReady(index=3, id="call_1", name="search", input={}, validated={})
    assert run([])[1] == ToolCallReady(index=3, id="call_1", name="search", input={}, validated={})
    assert isinstance(run([raw], complete=False)[1], ToolCallInvalid)


@pytest.mark.parametrize("raw", ["[1]", '"x"', "3", "null", '{"a": NaN}', "{'a': 1}", '{"a": 1,}'])
def test_non_objects_and_bad_json_are_invalid_json(raw: str) -> None:
    _, verdict = run([raw])
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "invalid_json"
    assert verdict.wrapped == {"INVALID_JSON": raw}
    assert json.loads(json.dumps(verdict.wrapped)) == {"INVALID_JSON": raw}


def test_bad_json_mid_stream_waits_for_the_stop_and_keeps_the_raw_text() -> None:
    args = ToolArgs(1)
    assert args.feed('{"a": tx') == []
    assert args.feed('ue, "b": "more"}') == []  # nothing after the error, no exception either
    assert args.raw == '{"a": txue, "b": "more"}'
    assert args.result is None
    (verdict,) = args.stop()
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "invalid_json"
    assert isinstance(verdict.error, InvalidJSON) and verdict.error.position == 7


def test_limits_make_the_call_invalid() -> None:
    _, verdict = run(['{"a": "' + "x" * 100 + '"}'], max_bytes=50)
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "invalid_json"
    assert isinstance(verdict.error, LimitExceeded) and verdict.error.limit == "max_bytes"
    _, deep = run(['{"a": ' + "[" * 10 + "]" * 10 + "}"], max_depth=5)
    assert isinstance(deep, ToolCallInvalid) and isinstance(deep.error, LimitExceeded)


def test_misuse_is_a_local_error() -> None:
    args = ToolArgs(0)
    args.feed("{}")
    args.stop()
    with pytest.raises(LocalError):
        args.feed("x")
    with pytest.raises(LocalError):
        args.stop()


# -- field events -----------------------------------------------------------------------------------

WRITE = (
    '{"path": "src/a.py", "content": "def f():\\n    return \\"\\u00e9\\"\\n", "mode": 420, '
    '"tags": ["x", 2], "opts": {"force": true}}'
)


def field_view(events: list[ToolEvent]) -> list[tuple[Any, ...]]:
    """Events with adjacent deltas of one field joined (the split only changes how text is cut)."""
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if isinstance(ev, ToolFieldDelta) and out and out[-1][:2] == ("delta", ev.path):
            out[-1] = ("delta", ev.path, out[-1][2] + ev.text)
        elif isinstance(ev, ToolFieldDelta):
            out.append(("delta", ev.path, ev.text))
        elif isinstance(ev, ToolFieldStart):
            out.append(("start", ev.path))
        elif isinstance(ev, ToolFieldComplete):
            out.append(("complete", ev.path, ev.value))
    return out


EXPECTED_FIELDS = [
    ("start", ("path",)),
    ("delta", ("path",), "src/a.py"),
    ("complete", ("path",), "src/a.py"),
    ("start", ("content",)),
    ("delta", ("content",), 'def f():\n    return "\u00e9"\n'),
    ("complete", ("content",), 'def f():\n    return "\u00e9"\n'),
    ("start", ("mode",)),
    ("complete", ("mode",), 420),
    ("start", ("tags",)),
    ("start", ("tags", 0)),
    ("delta", ("tags", 0), "x"),
    ("complete", ("tags", 0), "x"),
    ("start", ("tags", 1)),
    ("complete", ("tags", 1), 2),
    ("complete", ("tags",), ["x", 2]),
    ("start", ("opts",)),
    ("start", ("opts", "force")),
    ("complete", ("opts", "force"), True),
    ("complete", ("opts",), {"force": True}),
]


def test_field_events_of_a_file_write_call() -> None:
    events, verdict = run([WRITE])
    assert all(ev.index == 3 for ev in events)
    assert field_view(events) == EXPECTED_FIELDS
    assert isinstance(verdict, ToolCallReady) and verdict.input == json.loads(WRITE)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, len(WRITE)), max_size=25))
def test_field_events_do_not_depend_on_the_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(WRITE)]
    fragments = [WRITE[a:b] for a, b in itertools.pairwise(bounds)]
    events, verdict = run(fragments)
    assert field_view(events) == EXPECTED_FIELDS
    assert isinstance(verdict, ToolCallReady) and verdict.input == json.loads(WRITE)


def test_a_field_streams_its_text_as_it_arrives() -> None:
    args = ToolArgs(2)
    assert args.feed('{"content": "li') == [
        ToolFieldStart(2, ("content",)),
        ToolFieldDelta(2, ("content",), "li"),
    ]
    assert args.feed("ne\\") == [ToolFieldDelta(2, ("content",), "ne")]  # the cut escape waits
    assert args.feed("n2") == [ToolFieldDelta(2, ("content",), "\n2")]
    assert not args.is_complete(("content",))
    assert args.feed('"') == [ToolFieldComplete(2, ("content",), "line\n2")]
    assert args.is_complete(("content",))


# -- schemas ----------------------------------------------------------------------------------------

SEARCH = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 50},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "mode": {"enum": ["fast", "deep"]},
        "filters": {"type": "array", "items": {"$ref": "#/$defs/filter"}, "maxItems": 2},
        "after": {"type": ["string", "null"]},
        "lang": {"type": "string", "nullable": True},
        "version": {"const": 2},
        "score": {"type": "number", "exclusiveMinimum": 0},
        "target": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "pick": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 10}]},
    },
    "required": ["query"],
    "additionalProperties": False,
    "$defs": {
        "filter": {
            "type": "object",
            "properties": {"field": {"type": "string"}, "value": {}},
            "required": ["field"],
        }
    },
}


@pytest.mark.parametrize(
    "value",
    [
        {"query": "q"},
        {"query": "q", "limit": 5, "mode": "deep", "filters": [{"field": "a", "value": [1]}]},
        {"query": "q", "limit": 5.0, "after": None, "lang": None, "version": 2, "score": 0.1},
        {"query": "q", "target": 3, "pick": 12.5},
    ],
)
def test_valid_input_passes_the_json_schema(value: dict[str, Any]) -> None:
    _, verdict = run([json.dumps(value)], schema=SEARCH)
    assert verdict == ToolCallReady(index=3, id="call_1", name="search", input=value, validated=value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "missing required field 'query'"),
        ({"query": 3}, "expected string, got int at /query"),
        ({"query": ""}, "string shorter than 1 at /query"),
        ({"query": "q" * 51}, "string longer than 50 at /query"),
        ({"query": "q", "limit": True}, "expected integer, got bool at /limit"),  # true is not 1
        ({"query": "q", "limit": 1.5}, "expected integer, got float at /limit"),
        ({"query": "q", "limit": 0}, "0 is less than 1 at /limit"),
        ({"query": "q", "limit": 101}, "101 is more than 100 at /limit"),
        ({"query": "q", "mode": "slow"}, "'slow' is not one of ['fast', 'deep'] at /mode"),
        ({"query": "q", "extra": 1}, "unexpected field 'extra'"),
        ({"query": "q", "filters": [{"value": 1}]}, "missing required field 'field' at /filters/0"),
        ({"query": "q", "filters": [{"field": "a"}] * 3}, "more than 2 items at /filters"),
        ({"query": "q", "after": 5}, "expected string or null, got int at /after"),
        ({"query": "q", "version": True}, "True is not 2 at /version"),
        ({"query": "q", "score": 0}, "0 is not more than 0 at /score"),
        ({"query": "q", "target": None}, "matches none of anyOf at /target"),
        ({"query": "q", "pick": 12}, "matches 2 of oneOf, not exactly one at /pick"),
    ],
)
def test_schema_failures_name_the_field(value: dict[str, Any], message: str) -> None:
    _, verdict = run([json.dumps(value)], schema=SEARCH)
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "schema"
    assert isinstance(verdict.error, ToolInputError)
    assert str(verdict.error) == message
    assert verdict.raw == json.dumps(value)


def test_schema_is_not_checked_on_a_truncated_call() -> None:
    _, verdict = run(['{"query": 3'], complete=False, schema=SEARCH)
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "truncated"


class WriteFile(BaseModel):
    path: str
    content: str
    mode: int = Field(default=0o644, ge=0)


def test_a_pydantic_model_validates_and_is_returned() -> None:
    _, verdict = run(['{"path": "a.txt", "content": "hi"}'], schema=WriteFile)
    assert isinstance(verdict, ToolCallReady)
    assert verdict.input == {"path": "a.txt", "content": "hi"}
    assert verdict.validated == WriteFile(path="a.txt", content="hi", mode=0o644)


def test_a_pydantic_failure_is_a_schema_failure() -> None:
    _, verdict = run(['{"path": "a.txt", "mode": -1}'], schema=WriteFile)
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "schema"
    assert isinstance(verdict.error, ValidationError)
    assert {e["loc"] for e in verdict.error.errors()} == {("content",), ("mode",)}


def test_validate_rejects_what_is_not_a_schema() -> None:
    with pytest.raises(LocalError):
        validate({}, 42)  # type: ignore[arg-type]
    assert validate({"a": 1}, {}) == {"a": 1}
    with pytest.raises(ToolInputError):
        validate({"a": 1}, {"not": {"type": "object"}})


# -- the stream-level tracker -----------------------------------------------------------------------


def stream(*events: Event) -> list[Event | ToolEvent]:
    return list(with_tool_events(events, {"search": SEARCH}))


def test_tracker_follows_parallel_tool_blocks() -> None:
    out = stream(
        ResponseStart(provider="p"),
        BlockStart(index=0, type="text"),
        TextDelta(0, '{"not": "a tool"}'),
        BlockStop(0),
        BlockStart(index=1, type="tool_call", id="a", name="search"),
        BlockStart(index=2, type="tool_call", id="b", name="other"),
        ToolArgsDelta(1, '{"query": "x"'),
        ToolArgsDelta(2, '{"any": '),
        ToolArgsDelta(1, "}"),
        ToolArgsDelta(2, "[1]}"),
        BlockStop(2),
        BlockStop(1),
        BlockStart(index=3, type="server_tool", id="s", name="web_search"),
        ToolArgsDelta(3, '{"query": "y"}'),
        BlockStop(3),
        ResponseEnd(stop_reason="tool_use"),
    )
    verdicts = [ev for ev in out if isinstance(ev, ToolCallReady | ToolCallInvalid)]
    assert verdicts == [
        ToolCallReady(
            index=2, id="b", name="other", input={"any": [1]}, validated={"any": [1]}
        ),  # no schema: strict JSON only
        ToolCallReady(index=1, id="a", name="search", input={"query": "x"}, validated={"query": "x"}),
    ]
    # each verdict right after its BlockStop; the server tool and the text block give nothing
    assert out.index(verdicts[0]) == out.index(BlockStop(2)) + 1
    assert out.index(verdicts[1]) == out.index(BlockStop(1)) + 1
    assert not any(getattr(ev, "index", None) in (0, 3) for ev in out if not isinstance(ev, Event))


def test_tracker_applies_the_tool_schema() -> None:
    out = stream(
        ResponseStart(provider="p"),
        BlockStart(index=0, type="tool_call", id="a", name="search"),
        ToolArgsDelta(0, '{"query": "x", "limit": 500}'),
        BlockStop(0),
        ResponseEnd(stop_reason="tool_use"),
    )
    (verdict,) = [ev for ev in out if isinstance(ev, ToolCallInvalid)]
    assert verdict.reason == "schema" and str(verdict.error) == "500 is more than 100 at /limit"


def test_tracker_closes_calls_left_open_as_truncated() -> None:
    tracker = ToolTracker()
    tracker.feed(BlockStart(index=0, type="tool_call", id="a", name="f"))
    tracker.feed(ToolArgsDelta(0, "{}"))
    assert set(tracker.open_calls) == {0}
    (verdict,) = tracker.feed(ResponseEnd(stop_reason="max_tokens", terminal="truncated"))
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "truncated"
    assert tracker.open_calls == {}


# -- real recorded provider streams -----------------------------------------------------------------


def decoded(name: str) -> list[Event]:
    pytest.importorskip("midstream.wire.anthropic")
    from wiresupport import decode_chunks, recorded

    return decode_chunks("anthropic", [recorded(name)])


def test_recorded_anthropic_tool_call_becomes_ready() -> None:
    events = decoded("anthropic_tool_use.txt")
    out = list(with_tool_events(events, {"get_weather": {"type": "object", "required": ["location"]}}))
    tool = [ev for ev in out if not isinstance(ev, Event)]
    assert field_view(tool[:-1]) == [
        ("start", ("location",)),
        ("delta", ("location",), "Paris"),
        ("complete", ("location",), "Paris"),
    ]
    assert [ev.text for ev in tool if isinstance(ev, ToolFieldDelta)] == ["P", "ar", "is"]  # as streamed
    ready = tool[-1]
    assert isinstance(ready, ToolCallReady)
    assert ready == ToolCallReady(
        index=1,
        id="toolu_01NRLabsLyVHZPKxbKvkfSMn",
        name="get_weather",
        input={"location": "Paris"},
        validated=ready.validated,
    )
    assert accumulate(events).tool_calls[0].input == ready.input  # the Message agrees


def test_recorded_anthropic_max_tokens_cut_is_never_ready() -> None:
    events = decoded("anthropic_max_tokens_tool_input_cut.txt")
    out = list(with_tool_events(events))
    tool = [ev for ev in out if not isinstance(ev, Event)]
    assert not any(isinstance(ev, ToolCallReady) for ev in tool)
    invalid = tool[-1]
    assert isinstance(invalid, ToolCallInvalid)
    assert (invalid.index, invalid.name, invalid.reason) == (1, "make_file", "truncated")
    assert invalid.raw.startswith('{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE')
    assert invalid.raw.endswith('"",\n"Filing taxes')
    completed = [(ev.path, ev.value) for ev in tool if isinstance(ev, ToolFieldComplete)]
    assert completed == [
        (("filename",), "taxes.txt"),
        (("lines_of_text", 0), "# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s"),
        (("lines_of_text", 1), ""),
        (("lines_of_text", 2), "## INTRODUCTION"),
        (("lines_of_text", 3), ""),
    ]
    # the last line is a preview only: streamed, never completed
    assert [ev.text for ev in tool if isinstance(ev, ToolFieldDelta) and ev.path == ("lines_of_text", 4)] == [
        "Filing taxes"
    ]
    call = accumulate(events).tool_calls[0]
    assert (call.input, call.error, call.raw_input) == (None, "truncated", invalid.raw)


def test_recorded_server_tool_then_tool_use() -> None:
    events = decoded("anthropic_server_tool_then_tool_use.txt")
    verdicts = [ev for ev in with_tool_events(events) if isinstance(ev, ToolCallReady | ToolCallInvalid)]
    assert verdicts == [
        ToolCallReady(
            index=4,
            id="toolu_01EFn5wTNBYA8Reni8rbmnHT",
            name="get_exchange_rate",
            input={"from_currency": "USD", "to_currency": "EUR"},
            validated={"from_currency": "USD", "to_currency": "EUR"},
        )
    ]
    message = accumulate(events)
    server = next(b for b in message.blocks if getattr(b, "raw_type", "") == "server_tool_use")
    assert server.input == {"query": "USD EUR exchange rate currency conversion"}  # type: ignore[union-attr]


# -- accumulate() uses the same parser --------------------------------------------------------------


def test_accumulate_parses_tool_input_incrementally() -> None:
    doc = json.dumps({"items": [{"k": i, "v": "x" * (i % 7)} for i in range(300)], "s": "\U0001f600" * 5})
    rng = random.Random(3)
    fragments, i = [], 0
    while i < len(doc):
        step = rng.randint(1, 9)
        fragments.append(doc[i : i + step])
        i += step
    events: list[Event] = [
        ResponseStart(provider="p"),
        BlockStart(index=0, type="tool_call", id="t", name="f"),
        *(ToolArgsDelta(0, f) for f in fragments),
        BlockStop(0),
        ResponseEnd(stop_reason="tool_use"),
    ]
    call = accumulate(events).tool_calls[0]
    assert call.input == json.loads(doc) and call.raw_input == doc and call.error is None
