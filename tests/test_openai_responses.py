"""OpenAI Responses API dialect: recorded streams, the official SDK as oracle, edge cases, round trips."""

from __future__ import annotations

import dataclasses
import json
import string
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate, parse_tool_input
from midstream.errors import LimitExceeded, RemoteProtocolError
from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
    ToolArgsDelta,
    Unknown,
)
from midstream.message import (
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
from wiresupport import assert_split_invariant, decode_chunks, recorded, split_at, sse_from_jsonl

DIALECT = "openai-responses"
FUNCTION_CALL = "openai_responses_function_call.txt"
TEXT_THEN_CALL = "openai_responses_text_then_function_call.txt"
NO_SEQNUM = "openai_responses_function_call_2025-03_no_seqnum.txt"
QUOTA_ERROR = "openai_responses_error_insufficient_quota.chunks.jsonl"
NARRATION = "I\u2019ll check the capital lookup tool for \u201cPotatoLand.\u201d"  # the capture's text
COMPLETED = {"id": "resp_1", "status": "completed"}


def sse(*payloads: dict[str, Any]) -> bytes:
    """Frame payloads the way the Responses API does: ``event: <type>`` then ``data: <json>``."""
    return b"".join(
        wire.encode_sse(json.dumps(p, separators=(",", ":")), event=str(p["type"])) for p in payloads
    )


def created(seq: int = 0, rid: str = "resp_1", model: str = "gpt-5") -> dict[str, Any]:
    response = {"id": rid, "object": "response", "status": "in_progress", "model": model, "output": []}
    return {"type": "response.created", "sequence_number": seq, "response": response}


def fc_item(status: str = "in_progress", arguments: str = "", n: int = 1) -> dict[str, Any]:
    return {
        "id": f"fc_{n}",
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": f"call_{n}",
        "name": f"tool_{n}",
    }


def decode(data: bytes) -> tuple[list[Event], Message]:
    events = assert_split_invariant(DIALECT, data, random_runs=30)
    return events, accumulate(events)


def sdk_final_response(data: bytes) -> Any:
    """What the official SDK's ``responses.stream(...).get_final_response()`` makes of ``data``."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = openai.OpenAI(
        api_key="test",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.responses.stream(model="gpt-test", input="hi") as stream:
        return stream.get_final_response()


# -- recorded streams ----------------------------------------------------------------------------


def test_recorded_reasoning_then_function_call() -> None:
    events = assert_split_invariant(DIALECT, recorded(FUNCTION_CALL))
    m = accumulate(events)
    assert (m.provider, m.model) == (DIALECT, "gpt-5-2025-08-07")
    assert m.id == "resp_0050471a34b36ae60068c97b94a480819587a9d70cf2979b33"
    assert [type(b) for b in m.blocks] == [RedactedThinkingBlock, ToolCall]
    redacted = m.blocks[0]
    assert isinstance(redacted, RedactedThinkingBlock)
    # The encrypted content at output_item.done, not the (different) one at output_item.added.
    assert redacted.data.startswith("gAAAAABoyXvxI6jwG5j6rvTGC7PD6JN5758K")
    assert redacted.data.endswith("IVgXKYQko02bg-rk3VE=") and len(redacted.data) == 3896
    assert m.tool_calls == [
        ToolCall(
            id="call_CWXgs68YprAjp6t0371hiPOI",
            name="final_result",
            raw_input='{"result":6666}',
            input={"result": 6666},
        )
    ]
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "completed", "completed")
    assert m.usage == Usage(input_tokens=53, output_tokens=469, cache_read_tokens=0, reasoning_tokens=448)
    assert m.text == "" and m.error is None
    assert [e.seq for e in events if isinstance(e, ToolArgsDelta)] == [5, 6, 7, 8, 9, 10]
    fragments = [e.fragment for e in events if isinstance(e, ToolArgsDelta)]
    assert fragments == ['{"', "result", '":', "666", "6", "}"]
    assert events[0].seq == 0 and events[-1].seq == 13
    assert all(e.seq is not None for e in events)


def test_recorded_text_then_function_call_2026_key_order() -> None:
    events = assert_split_invariant(DIALECT, recorded(TEXT_THEN_CALL))
    m = accumulate(events)
    assert m.model == "gpt-5.5-2026-04-23"
    assert m.id == "resp_0fabc13af1ee0049006a691dfdab8881a1a75f2db7ff78cb83"
    assert [type(b) for b in m.blocks] == [RedactedThinkingBlock, TextBlock, ToolCall]
    assert isinstance(m.blocks[0], RedactedThinkingBlock)
    assert m.blocks[0].data.startswith("gAAAAABqaR3-pGgSyJcPT3y2_26v61vCZmE9M2P6")
    assert m.blocks[0].data.endswith("qnYrFieJls_UcqGK8PU=") and len(m.blocks[0].data) == 1080
    assert m.text == NARRATION and m.blocks[1] == TextBlock(text=NARRATION, phase="commentary")
    assert m.tool_calls == [
        ToolCall(
            id="call_LabG58Uhrq9kZvR52BYKjToD",
            name="get_capital",
            raw_input='{"country":"PotatoLand"}',
            input={"country": "PotatoLand"},
        )
    ]
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "completed", "completed")
    assert m.usage == Usage(
        input_tokens=63, output_tokens=69, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=26
    )
    text_seqs = [e.seq for e in events if isinstance(e, TextDelta)]
    assert text_seqs == list(range(6, 19))
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert [(s.type, s.raw_type, s.seq) for s in starts] == [
        ("redacted_thinking", "reasoning", 3),
        ("text", "output_text", 5),
        ("tool_call", "function_call", 22),
    ]
    assert events[-1].seq == 32


def test_recorded_2025_03_without_sequence_numbers() -> None:
    events = assert_split_invariant(DIALECT, recorded(NO_SEQNUM))
    m = accumulate(events)
    assert (m.model, m.id) == ("gpt-4o-2024-08-06", "resp_67e554a155508191900ee113293c4c830794405d35281ae2")
    assert m.blocks == (
        ToolCall(
            id="call_kL0PCQV7M2WMoVX8V8OtYSAL",
            name="get_capital",
            raw_input='{"country":"France"}',
            input={"country": "France"},
        ),
    )
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("tool_use", "completed", "completed")
    assert m.usage == Usage(input_tokens=255, output_tokens=16, cache_read_tokens=0, reasoning_tokens=0)
    assert all(e.seq is None for e in events)


def test_recorded_insufficient_quota_error() -> None:
    events = assert_split_invariant(DIALECT, sse_from_jsonl(QUOTA_ERROR, event_names=True))
    m = accumulate(events)
    assert m.id == "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424"
    assert m.model == "gpt-5-nano-2025-08-07"
    assert m.blocks == ()
    assert (m.terminal, m.stop_reason) == ("failed", "error")
    error = m.error
    assert isinstance(error, StreamError)
    assert (error.error_kind, error.retryable, error.seq) == ("quota", False, 2)
    assert error.message.startswith("You exceeded your current quota, please check your plan")
    assert error.raw["type"] == "insufficient_quota" and error.raw["param"] is None
    assert [type(e) for e in events] == [ResponseStart, StreamError, ResponseEnd]


@pytest.mark.parametrize("name", [FUNCTION_CALL, TEXT_THEN_CALL, NO_SEQNUM])
def test_sdk_oracle_on_recorded(name: str) -> None:
    data = recorded(name)
    m = accumulate(decode_chunks(DIALECT, [data]))
    final = sdk_final_response(data)
    assert final.output_text == m.text
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [(c.id, c.name, c.raw_input) for c in m.tool_calls]
    assert final.usage.input_tokens == m.usage.input_tokens
    assert final.usage.input_tokens_details.cached_tokens == m.usage.cache_read_tokens
    assert final.usage.output_tokens == m.usage.output_tokens
    assert final.usage.output_tokens_details.reasoning_tokens == m.usage.reasoning_tokens
    assert final.id == m.id and final.model == m.model


def test_sdk_oracle_on_recorded_error() -> None:
    data = sse_from_jsonl(QUOTA_ERROR, event_names=True)
    m = accumulate(decode_chunks(DIALECT, [data]))
    with pytest.raises(openai.APIError) as info:
        sdk_final_response(data)
    assert m.error is not None and info.value.message == m.error.message
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "insufficient_quota"


# -- hand-written streams ------------------------------------------------------------------------


def test_incomplete_max_output_tokens_mid_function_call() -> None:
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": fc_item()},
        {
            "type": "response.function_call_arguments.delta",
            "sequence_number": 2,
            "item_id": "fc_1",
            "output_index": 0,
            "delta": '{"city": ',
        },
        {
            "type": "response.function_call_arguments.delta",
            "sequence_number": 3,
            "item_id": "fc_1",
            "output_index": 0,
            "delta": '"Pa',
        },
        {
            "type": "response.incomplete",
            "sequence_number": 4,
            "response": {
                "id": "resp_1",
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "output": [fc_item("incomplete", '{"city": "Pa')],
                "usage": {
                    "input_tokens": 40,
                    "input_tokens_details": {"cached_tokens": 32},
                    "output_tokens": 16,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 56,
                },
            },
        },
    )
    events, m = decode(data)
    assert m.tool_calls == [
        ToolCall(
            id="call_1",
            name="tool_1",
            raw_input='{"city": "Pa',
            input=None,
            complete=False,
            error="truncated",
        )
    ]
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("max_tokens", "max_output_tokens", "truncated")
    assert m.usage == Usage(input_tokens=40, output_tokens=16, cache_read_tokens=32, reasoning_tokens=0)
    stops = [e for e in events if isinstance(e, BlockStop)]
    assert stops == [BlockStop(0, complete=False)]
    end = events[-1]
    assert isinstance(end, ResponseEnd) and end.stop_details == {"reason": "max_output_tokens"}


def test_incomplete_content_filter_after_finished_text() -> None:
    msg = {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    part = {"type": "output_text", "annotations": [], "text": ""}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": msg},
        {"type": "response.content_part.added", "sequence_number": 2, **where, "part": part},
        {"type": "response.output_text.delta", "sequence_number": 3, **where, "delta": "Sure, here"},
        {
            "type": "response.output_item.done",
            "sequence_number": 4,
            "output_index": 0,
            "item": {**msg, "status": "incomplete", "content": [{**part, "text": "Sure, here"}]},
        },
        {
            "type": "response.incomplete",
            "sequence_number": 5,
            "response": {
                "id": "resp_1",
                "status": "incomplete",
                "incomplete_details": {"reason": "content_filter"},
            },
        },
    )
    _, m = decode(data)
    assert m.blocks == (TextBlock(text="Sure, here", complete=False),)
    assert (m.stop_reason, m.raw_stop_reason, m.terminal) == ("content_filter", "content_filter", "truncated")


def test_error_event_sdk_shape() -> None:
    error = {
        "type": "error",
        "sequence_number": 3,
        "code": "rate_limit_exceeded",
        "message": "Slow down",
        "param": None,
    }
    msg = {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": msg},
        {"type": "response.output_text.delta", "sequence_number": 2, **where, "delta": "Hel"},
        error,
    )
    _, m = decode(data)
    assert m.terminal == "failed" and m.stop_reason == "error"
    assert m.blocks == (TextBlock(text="Hel", complete=False),)
    assert m.error == StreamError(error_kind="rate_limited", message="Slow down", retryable=True, raw=error)
    assert m.error.seq == 3


def test_error_event_captured_shape_then_failed() -> None:
    inner = {
        "type": "server_error",
        "code": "server_error",
        "message": "The server had an error",
        "param": None,
    }
    data = sse(
        created(),
        {"type": "error", "sequence_number": 1, "error": inner},
        {
            "type": "response.failed",
            "sequence_number": 2,
            "response": {
                "id": "resp_1",
                "status": "failed",
                "error": {"code": "server_error", "message": "boom"},
                "usage": {"input_tokens": 5, "output_tokens": 0},
            },
        },
    )
    events, m = decode(data)
    assert [type(e) for e in events] == [ResponseStart, StreamError, ResponseEnd]
    assert m.error == StreamError(
        error_kind="server", message="The server had an error", retryable=True, raw=inner
    )
    assert m.terminal == "failed" and m.usage == Usage()


def test_response_failed_without_error_event() -> None:
    data = sse(
        created(),
        {
            "type": "response.failed",
            "sequence_number": 1,
            "response": {
                "id": "resp_1",
                "status": "failed",
                "error": {"code": "invalid_prompt", "message": "no"},
            },
        },
    )
    _, m = decode(data)
    assert m.terminal == "failed"
    assert m.error == StreamError(
        error_kind="unknown", message="no", retryable=False, raw={"code": "invalid_prompt", "message": "no"}
    )


def test_unknown_events_and_server_tool_items() -> None:
    ws_added = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
    ws_done = {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "weather"},
    }
    searching = {
        "type": "response.web_search_call.searching",
        "sequence_number": 2,
        "output_index": 0,
        "item_id": "ws_1",
    }
    future = {"type": "response.hologram.delta", "sequence_number": 4, "delta": "?"}
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": ws_added},
        searching,
        {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": ws_done},
        future,
        {"type": "response.completed", "sequence_number": 5, "response": {**COMPLETED, "output": [ws_done]}},
    )
    events, m = decode(data)
    unknowns = [e for e in events if isinstance(e, Unknown)]
    assert unknowns == [
        Unknown(raw_type="response.web_search_call.searching", payload=searching),
        # The block opened at output_item.added (in output order); the finished item follows.
        Unknown(raw_type="response.output_item.done", payload=ws_done, index=0),
        Unknown(raw_type="response.hologram.delta", payload=future),
    ]
    assert [u.seq for u in unknowns] == [2, 3, 4]
    assert m.blocks == (ServerToolBlock(raw_type="web_search_call", id="ws_1", name=None, content=ws_done),)
    assert (m.stop_reason, m.terminal) == ("end_turn", "completed")


def test_server_tool_never_done_is_incomplete() -> None:
    ws_added = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
    added = {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": ws_added}
    data = sse(created(), added)
    _, m = decode(data)
    assert m.blocks == (
        ServerToolBlock(raw_type="web_search_call", id="ws_1", name=None, content=ws_added, complete=False),
    )
    assert m.terminal == "truncated"


def test_malformed_json_is_a_protocol_error() -> None:
    dec = wire.decoder(DIALECT)
    dec.feed(sse(created()))
    with pytest.raises(RemoteProtocolError):
        dec.feed(b"event: response.output_text.delta\ndata: {not json\n\n")
    tail = dec.close()
    assert isinstance(tail[-2], StreamError) and tail[-2].error_kind == "protocol"
    assert isinstance(tail[-1], ResponseEnd) and tail[-1].terminal == "failed"


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]",
        b'{"type": "response.output_text.delta", "output_index": "0", "content_index": 0, "delta": "x"}',
        b'{"type": "response.output_item.added", "output_index": 0, "item": null}',
        b'{"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": 5}',
    ],
)
def test_wrong_shapes_are_protocol_errors(payload: bytes) -> None:
    dec = wire.decoder(DIALECT)
    with pytest.raises(RemoteProtocolError):
        dec.feed(sse(created()) + b"data: " + payload + b"\n\n")


def test_eof_mid_arguments_and_mid_text() -> None:
    data = recorded(TEXT_THEN_CALL)
    cut = data.index(b'"sequence_number":27}')  # inside the delta after "Pot"
    _, m = decode(data[:cut])
    assert m.blocks[1] == TextBlock(text=NARRATION, phase="commentary")
    assert m.tool_calls == [
        ToolCall(
            id="call_LabG58Uhrq9kZvR52BYKjToD",
            name="get_capital",
            raw_input='{"country":"Pot',
            input=None,
            complete=False,
            error="truncated",
        )
    ]
    assert (m.terminal, m.stop_reason, m.usage) == ("truncated", None, Usage())
    cut = data.index(b"event: response.output_text.delta", data.index(b'"delta":" capital"'))
    _, m = decode(data[:cut])
    assert m.blocks[1] == TextBlock(text=NARRATION[:22], complete=False, phase="commentary")
    assert NARRATION[:22].endswith(" capital")
    assert m.tool_calls == [] and m.terminal == "truncated"


def test_done_events_without_deltas_carry_the_text() -> None:
    msg = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "annotations": [], "text": "Hi!"}],
    }
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": fc_item()},
        {
            "type": "response.function_call_arguments.done",
            "sequence_number": 2,
            "item_id": "fc_1",
            "output_index": 0,
            "arguments": '{"a":1}',
        },
        {"type": "response.output_item.done", "sequence_number": 3, "output_index": 1, "item": msg},
        {"type": "response.completed", "sequence_number": 4, "response": COMPLETED},
    )
    events, m = decode(data)
    assert [e for e in events if isinstance(e, ToolArgsDelta)] == [ToolArgsDelta(0, '{"a":1}')]
    assert m.blocks == (
        ToolCall(id="call_1", name="tool_1", raw_input='{"a":1}', input={"a": 1}),
        TextBlock(text="Hi!"),
    )
    assert m.stop_reason == "tool_use"


def test_reasoning_summaries_refusal_citations_parallel_calls() -> None:
    rs = {"id": "rs_1", "type": "reasoning", "summary": []}
    rs_at = {"item_id": "rs_1", "output_index": 0}
    summary = [{"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "Look up."}]
    msg = {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    at = {"item_id": "msg_1", "output_index": 1}
    cite = {"type": "url_citation", "start_index": 0, "end_index": 2, "title": "T", "url": "https://e.x"}
    text_part = {"type": "output_text", "annotations": [], "text": ""}
    args = "response.function_call_arguments.delta"
    payloads: list[dict[str, Any]] = [
        created(),
        {"type": "response.output_item.added", "output_index": 0, "item": rs},
        {"type": "response.reasoning_summary_part.added", **rs_at, "summary_index": 0, "part": summary[0]},
        {"type": "response.reasoning_summary_text.delta", **rs_at, "summary_index": 0, "delta": "**Plan**"},
        {"type": "response.reasoning_summary_text.done", **rs_at, "summary_index": 0, "text": "**Plan**"},
        {"type": "response.reasoning_summary_part.done", **rs_at, "summary_index": 0, "part": summary[0]},
        {"type": "response.reasoning_summary_part.added", **rs_at, "summary_index": 1, "part": summary[1]},
        {"type": "response.reasoning_summary_text.delta", **rs_at, "summary_index": 1, "delta": "Look up."},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**rs, "encrypted_content": "enc==", "summary": summary},
        },
        {"type": "response.output_item.added", "output_index": 1, "item": msg},
        {"type": "response.content_part.added", **at, "content_index": 0, "part": text_part},
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": "Ok"},
        {
            "type": "response.output_text.annotation.added",
            **at,
            "content_index": 0,
            "annotation_index": 0,
            "annotation": cite,
        },
        {"type": "response.output_text.done", **at, "content_index": 0, "text": "Ok"},
        {
            "type": "response.content_part.added",
            **at,
            "content_index": 1,
            "part": {"type": "refusal", "refusal": ""},
        },
        {"type": "response.refusal.delta", **at, "content_index": 1, "delta": "I can't do that."},
        {"type": "response.refusal.done", **at, "content_index": 1, "refusal": "I can't do that."},
        {"type": "response.output_item.added", "output_index": 2, "item": fc_item(n=2)},
        {"type": "response.output_item.added", "output_index": 3, "item": fc_item(n=3)},
        {"type": args, "item_id": "fc_3", "output_index": 3, "delta": '{"b":'},
        {"type": args, "item_id": "fc_2", "output_index": 2, "delta": '{"a":'},
        {"type": args, "item_id": "fc_3", "output_index": 3, "delta": "3}"},
        {"type": args, "item_id": "fc_2", "output_index": 2, "delta": "2}"},
        {"type": "response.output_item.done", "output_index": 3, "item": fc_item("completed", '{"b":3}', 3)},
        {"type": "response.output_item.done", "output_index": 2, "item": fc_item("completed", '{"a":2}', 2)},
        {"type": "response.completed", "response": COMPLETED},
    ]
    for seq, payload in enumerate(payloads):
        payload["sequence_number"] = seq
    events, m = decode(sse(*payloads))
    assert m.blocks == (
        ThinkingBlock("**Plan**"),
        ThinkingBlock("Look up."),
        RedactedThinkingBlock("enc=="),
        TextBlock(text="Ok", citations=(cite,)),
        TextBlock(text="I can't do that."),
        ToolCall(id="call_2", name="tool_2", raw_input='{"a":2}', input={"a": 2}),
        ToolCall(id="call_3", name="tool_3", raw_input='{"b":3}', input={"b": 3}),
    )
    assert (m.stop_reason, m.terminal) == ("tool_use", "completed")
    starts = {e.index: e for e in events if isinstance(e, BlockStart)}
    assert [starts[i].raw_type for i in range(7)] == [
        "summary_text",
        "summary_text",
        "reasoning",
        "output_text",
        "refusal",
        "function_call",
        "function_call",
    ]
    assert [e.seq for e in events if isinstance(e, CitationDelta)] == [12]
    # The second summary part had no .done events: the item's done closes it (seq of output_item.done).
    assert [e.seq for e in events if isinstance(e, BlockStop)][:3] == [4, 8, 8]


def test_reasoning_item_without_summary_or_encrypted_content() -> None:
    rs = {"id": "rs_1", "type": "reasoning", "summary": []}
    data = sse(
        created(),
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": rs},
        {"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": rs},
        {"type": "response.completed", "sequence_number": 3, "response": COMPLETED},
    )
    _, m = decode(data)
    assert m.blocks == (ThinkingBlock(""),) and m.stop_reason == "end_turn"


def test_missing_created_done_marker_and_limits() -> None:
    data = (
        sse(
            {
                "type": "response.output_text.delta",
                "sequence_number": 5,
                "item_id": "m",
                "output_index": 0,
                "content_index": 0,
                "delta": "hi",
            }
        )
        + b"data: [DONE]\n\n"
    )
    events, m = decode(data)
    assert isinstance(events[0], ResponseStart) and events[0].id is None
    assert m.blocks == (TextBlock(text="hi", complete=False),) and m.terminal == "truncated"
    queued = {"type": "response.queued", "sequence_number": 0, "response": {"id": "resp_q", "model": "m"}}
    events, m = decode(sse(queued, created(1, "resp_q", "m")))
    assert m.id == "resp_q" and [type(e) for e in events] == [ResponseStart, Unknown, ResponseEnd]
    dec = wire.decoder(DIALECT, max_line=64)
    with pytest.raises(LimitExceeded):
        dec.feed(sse(created()))


# -- encoder ---------------------------------------------------------------------------------------


def frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload) of every SSE event in ``data``."""
    dec = wire.SSEDecoder()
    return [(e.event, json.loads(e.data)) for e in [*dec.feed(data), *dec.close()]]


def recorded_message(name: str) -> Message:
    return accumulate(decode_chunks(DIALECT, [recorded(name)]))


def test_encoder_writes_the_real_sequence() -> None:
    m = recorded_message(TEXT_THEN_CALL)
    out = frames(wire.encoder(DIALECT).encode_message(m))
    assert [name for name, _ in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(name == payload["type"] for name, payload in out)
    assert [p["sequence_number"] for _, p in out] == list(range(len(out)))
    assert all(list(p)[:2] == ["type", "sequence_number"] for _, p in out)
    # Key order of the 2025-09 capture, event by event and for the whole response object.
    capture = dict(frames(recorded(FUNCTION_CALL)))
    ours = dict(out)
    for name in (
        "response.created",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.completed",
    ):
        assert list(ours[name]) == list(capture[name]), name
    assert list(ours["response.completed"]["response"]) == list(capture["response.completed"]["response"])
    done_item = capture["response.output_item.done"]["item"]
    assert list(ours["response.output_item.done"]["item"]) == list(done_item)
    completed = ours["response.completed"]["response"]
    assert completed["status"] == "completed"
    assert [item["type"] for item in completed["output"]] == ["reasoning", "message", "function_call"]
    assert completed["output"][1]["content"][0]["text"] == m.text
    assert completed["output"][2]["call_id"] == "call_LabG58Uhrq9kZvR52BYKjToD"
    assert completed["usage"] == {
        "input_tokens": 63,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 69,
        "output_tokens_details": {"reasoning_tokens": 26},
        "total_tokens": 132,
    }


def test_encoder_obfuscation_and_seed() -> None:
    m = recorded_message(TEXT_THEN_CALL)
    realistic = wire.encoder(DIALECT, seed=7).encode_message(m)
    deltas = [p for name, p in frames(realistic) if name.endswith(".delta")]
    assert deltas and all((len(p["delta"]) + len(p["obfuscation"])) % 16 == 0 for p in deltas)
    assert all(list(p)[-1] == "obfuscation" for p in deltas)
    assert realistic == wire.encoder(DIALECT, seed=7).encode_message(m)
    assert realistic != wire.encoder(DIALECT, seed=8).encode_message(m)
    plain = wire.encoder(DIALECT, realism=False).encode_message(m)
    assert b"obfuscation" not in plain
    assert [p["item"]["id"] for n, p in frames(plain) if n == "response.output_item.added"] == [
        "rs_1",
        "msg_2",
        "fc_3",
    ]


def test_encoder_reencodes_a_live_stream() -> None:
    # A decoded stream (many deltas, Unknown events) re-encoded incrementally decodes to the same Message.
    for name in (FUNCTION_CALL, TEXT_THEN_CALL, NO_SEQNUM):
        events = decode_chunks(DIALECT, [recorded(name)])
        enc = wire.encoder(DIALECT)
        data = b"".join(enc.encode(e) for e in events)
        assert accumulate(decode_chunks(DIALECT, [data])) == accumulate(events)
        start = ResponseStart(provider=DIALECT)  # a second response starts over, as on a new encoder
        assert enc.encode(start) == wire.encoder(DIALECT).encode(start)
    future: dict[str, Any] = {"type": "response.hologram.delta", "sequence_number": 9, "delta": "?"}
    events = [
        ResponseStart(provider=DIALECT, id="resp_9", model="m"),
        Unknown(raw_type=future["type"], payload=future),
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="completed"),
    ]
    out = frames(wire.encoder(DIALECT).encode_all(events))
    assert out[2] == (
        "response.hologram.delta",
        {"type": "response.hologram.delta", "sequence_number": 2, "delta": "?"},
    )


def test_encoder_incomplete_and_failed_endings() -> None:
    truncated = Message(
        provider=DIALECT,
        id="resp_1",
        model="gpt-5",
        blocks=(
            TextBlock(text="Hello"),
            ToolCall(id="call_1", name="f", raw_input='{"a":', input=None, complete=False, error="truncated"),
        ),
        stop_reason="max_tokens",
        raw_stop_reason="max_output_tokens",
        usage=Usage(input_tokens=10, output_tokens=20),
        terminal="truncated",
    )
    data = wire.encoder(DIALECT).encode_message(truncated)
    last_name, last = frames(data)[-1]
    assert last_name == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [i["status"] for i in last["response"]["output"]] == ["completed", "incomplete"]
    assert b"function_call_arguments.done" not in data
    assert accumulate(decode_chunks(DIALECT, [data])) == truncated
    sdk_failed = Message(
        provider=DIALECT,
        id="resp_2",
        model="gpt-5",
        blocks=(TextBlock(text="Par", complete=False),),
        stop_reason="error",
        terminal="failed",
        error=StreamError(error_kind="rate_limited", message="Slow down", retryable=True),
    )
    data = wire.encoder(DIALECT).encode_message(sdk_failed)
    names = [name for name, _ in frames(data)]
    assert names[-2:] == ["error", "response.failed"] and "response.output_item.done" not in names
    m = accumulate(decode_chunks(DIALECT, [data]))
    assert m.blocks == sdk_failed.blocks and (m.terminal, m.stop_reason) == ("failed", "error")
    assert m.error is not None
    assert (m.error.error_kind, m.error.message, m.error.retryable) == ("rate_limited", "Slow down", True)
    assert m.error.raw == {
        "type": "rate_limit_exceeded",
        "code": "rate_limit_exceeded",
        "message": "Slow down",
        "param": None,
    }


# -- round trip ------------------------------------------------------------------------------------

_ids = st.text(string.ascii_letters + string.digits, min_size=1, max_size=10)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_objects = st.dictionaries(st.text(max_size=6), _json, max_size=3)
_raw_inputs = st.one_of(
    _objects.map(json.dumps),
    _objects.map(lambda d: json.dumps(d, separators=(",", ":"))),
    st.just(""),
    st.text(max_size=12),  # not JSON: kept raw, input None
)
_citations = st.lists(
    st.builds(
        lambda url, title: {
            "type": "url_citation",
            "start_index": 0,
            "end_index": 1,
            "title": title,
            "url": url,
        },
        _ids.map("https://{}.example".format),
        st.text(max_size=8),
    ),
    max_size=2,
).map(tuple)


def _tool_call(call_id: str, name: str, raw: str, complete: bool) -> ToolCall:
    value, error = parse_tool_input(raw, complete)
    return ToolCall(
        id=f"call_{call_id}", name=name, raw_input=raw, input=value, complete=complete, error=error
    )


def _server(ws_id: str, query: str, complete: bool) -> ServerToolBlock:
    item = {
        "id": f"ws_{ws_id}",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": query},
    }
    return ServerToolBlock(
        raw_type="web_search_call", id=f"ws_{ws_id}", name=None, content=item, complete=complete
    )


def _unique(position: int, block: Any) -> Any:
    if isinstance(block, ToolCall):
        return dataclasses.replace(block, id=f"{block.id}_{position}")
    if isinstance(block, ServerToolBlock):
        item_id = f"{block.id}_{position}"
        return dataclasses.replace(block, id=item_id, content={**block.content, "id": item_id})
    return block


def _block(complete: bool) -> st.SearchStrategy[Any]:
    options = [
        st.builds(TextBlock, text=st.text(max_size=30), citations=_citations, complete=st.just(complete)),
        st.builds(ThinkingBlock, st.text(max_size=30), st.none(), st.just(complete)),
        st.builds(_tool_call, _ids, _ids, _raw_inputs, st.just(complete)),
        st.builds(_server, _ids, st.text(max_size=10), st.just(complete)),
    ]
    if complete:  # encrypted reasoning arrives whole at output_item.done: it is never partial
        options.append(st.builds(RedactedThinkingBlock, st.text(string.ascii_letters + "-_=", min_size=1)))
    return st.one_of(*options)


_counts = st.none() | st.integers(0, 10**6)
_usages = st.builds(
    Usage,
    input_tokens=_counts,
    output_tokens=_counts,
    cache_read_tokens=_counts,
    cache_write_tokens=_counts,
    reasoning_tokens=_counts,
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    """Messages this dialect can carry (stop reasons as the decoder derives them)."""
    blocks = draw(st.lists(_block(True), max_size=6))
    ending = draw(st.sampled_from(["completed", "max_output_tokens", "content_filter", "eof"]))
    if ending != "completed" and draw(st.booleans()):
        blocks.append(draw(_block(False)))
    blocks = [_unique(i, b) for i, b in enumerate(blocks)]  # call and item ids are unique per response
    stop: StopReason | None
    terminal: Terminal = "truncated"
    if ending == "completed":
        calls = any(isinstance(b, ToolCall) for b in blocks)
        stop = "tool_use" if calls else "end_turn"
        raw, terminal, usage = "completed", "completed", draw(_usages)
    elif ending == "eof":
        stop, raw, usage = None, None, Usage()
    else:
        stop = "max_tokens" if ending == "max_output_tokens" else "content_filter"
        raw, usage = ending, draw(_usages)
    return Message(
        provider=DIALECT,
        id=f"resp_{draw(_ids)}",
        model=draw(_ids),
        blocks=tuple(blocks),
        stop_reason=stop,
        raw_stop_reason=raw,
        usage=usage,
        terminal=terminal,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages(), realism=st.booleans(), seed=st.integers(0, 2**16))
def test_round_trip(message: Message, realism: bool, seed: int) -> None:
    data = wire.encoder(DIALECT, realism=realism, seed=seed).encode_message(message)
    assert accumulate(decode_chunks(DIALECT, [data])) == message


@settings(max_examples=25, deadline=None)
@given(message=messages(), cuts=st.lists(st.integers(1, 10**5), max_size=20))
def test_round_trip_in_random_splits(message: Message, cuts: list[int]) -> None:
    data = wire.encoder(DIALECT).encode_message(message)
    assert accumulate(decode_chunks(DIALECT, split_at(data, [c % len(data) for c in cuts]))) == message


@settings(max_examples=25, deadline=None)
@given(message=messages())
def test_sdk_reads_encoded_messages(message: Message) -> None:
    data = wire.encoder(DIALECT).encode_message(message)
    if message.terminal != "completed":
        with pytest.raises(RuntimeError):  # no response.completed: the SDK has no final response
            sdk_final_response(data)
        return
    final = sdk_final_response(data)
    assert final.output_text == message.text
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [(c.id, c.name, c.raw_input) for c in message.tool_calls]
    assert final.id == message.id
