"""What real provider streams carry, each from a fixture written from the provider's documented wire
shape, decoded whole, byte by byte and in random splits, and checked against the official SDK's own
accumulator where it has one."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from midstream import wire
from midstream.agent.serialize import block_from_dict, block_to_dict
from midstream.client.providers import build_request
from midstream.client.request import ChatRequest
from midstream.core.accumulate import accumulate, events_from_message
from midstream.core.toolargs import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    ToolCallInvalid,
    ToolCallReady,
    ToolTracker,
)
from midstream.events import BlockStart, BlockStop, ResponseEnd, ResponseStart, ToolArgsDelta, Unknown
from midstream.message import (
    Message,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
    Usage,
)
from midstream.sim import ScenarioBook, running
from wiresupport import assert_split_invariant


def sse(*events: dict[str, Any], event_names: bool = True, newline: str = "\n") -> bytes:
    """Frame event objects the way the providers do: ``event: <type>`` (optional) and one ``data`` line."""
    out = []
    for event in events:
        name = f"event: {event['type']}{newline}" if event_names else ""
        out.append(f"{name}data: {json.dumps(event, separators=(',', ':'))}{newline}{newline}")
    return "".join(out).encode()


def decode(dialect: str, body: bytes) -> Message:
    return accumulate(assert_split_invariant(dialect, body, random_runs=40))


def _transport(body: bytes) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


# -- Anthropic ----------------------------------------------------------------------------------------

A_START = {
    "type": "message_start",
    "message": {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 1},
    },
}


def a_end(reason: str = "end_turn", usage: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": usage or {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]


def a_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def a_block(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def a_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def anthropic_sdk(body: bytes, *, beta: bool = False) -> Any:
    client = anthropic.Anthropic(api_key="test", base_url="http://test", http_client=_transport(body))
    messages: Any = client.beta.messages if beta else client.messages
    with messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "x"}]) as s:
        return s.get_final_message()


def test_anthropic_server_tool_without_arguments_has_input_empty_object() -> None:
    """Item 1: ``server_tool_use`` with ``input: {}`` and one empty ``input_json_delta``."""
    body = sse(
        A_START,
        a_block(0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "tool_search", "input": {}}),
        a_delta(0, {"type": "input_json_delta", "partial_json": ""}),
        a_stop(0),
        a_block(1, {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}),
        a_delta(1, {"type": "input_json_delta", "partial_json": ""}),
        a_stop(1),
        *a_end("tool_use"),
    )
    m = decode("anthropic", body)
    server, call = m.blocks
    assert isinstance(server, ServerToolBlock) and isinstance(call, ToolCall)
    assert server.input == {} and call.input == {}  # one rule for both
    ref = anthropic_sdk(body)
    assert [b.input for b in ref.content] == [server.input, call.input]


def test_anthropic_server_tool_cut_off_has_no_input() -> None:
    body = sse(
        A_START,
        a_block(0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        a_delta(0, {"type": "input_json_delta", "partial_json": ""}),
    )
    (server,) = decode("anthropic", body).blocks
    assert isinstance(server, ServerToolBlock) and server.input is None and not server.complete


SUMMARY = "The user asked for a trip plan; we settled on Lisbon, 3 nights, budget 900 EUR."


def test_anthropic_compaction_block_keeps_its_summary() -> None:
    """Item 2: a ``compaction`` block whose content streams in ``compaction_delta``."""
    body = sse(
        A_START,
        a_block(0, {"type": "compaction", "content": None}),
        a_delta(0, {"type": "compaction_delta", "content": SUMMARY}),
        a_stop(0),
        a_block(1, {"type": "text", "text": ""}),
        a_delta(1, {"type": "text_delta", "text": "Lisbon it is."}),
        a_stop(1),
        *a_end(),
    )
    m = decode("anthropic", body)
    compaction, text = m.blocks
    assert isinstance(compaction, UnknownBlock) and isinstance(text, TextBlock)
    assert compaction.raw_type == "compaction" and compaction.complete
    assert compaction.deltas == ({"type": "compaction_delta", "content": SUMMARY},)
    assert compaction.merged() == {"type": "compaction", "content": SUMMARY}
    ref = anthropic_sdk(body, beta=True)
    assert ref.content[0].type == "compaction" and ref.content[0].content == compaction.merged()["content"]
    assert ref.content[1].text == text.text
    # It goes back to the API on the next turn, summary included.
    request = ChatRequest.create("m", ["plan my trip", m, "go on"])
    sent = json.loads(build_request("anthropic", request, api_key="k", base_url=None).body)["messages"]
    assert sent[1]["content"][0] == {"type": "compaction", "content": SUMMARY}


def test_anthropic_unknown_block_keeps_every_delta_in_order() -> None:
    """An unknown block type's unknown deltas all end up in the Message, in order."""
    deltas = [{"type": "sparkle_delta", "s": str(n)} for n in range(3)]
    body = sse(
        A_START,
        a_block(0, {"type": "hologram", "x": [1]}),
        *(a_delta(0, d) for d in deltas),
        a_stop(0),
        *a_end(),
    )
    events = assert_split_invariant("anthropic", body, random_runs=40)
    assert [e for e in events if isinstance(e, Unknown)] == [
        Unknown(raw_type=d["type"], payload=d, index=0) for d in deltas
    ]
    (block,) = accumulate(events).blocks
    assert block == UnknownBlock(
        raw_type="hologram", data={"type": "hologram", "x": [1]}, deltas=tuple(deltas)
    )
    # The encoder writes the deltas back: the simulator replays such a block exactly.
    again = wire.encoder("anthropic").encode_message(accumulate(events))
    assert accumulate(assert_split_invariant("anthropic", again, random_runs=5)).blocks == (block,)
    assert accumulate(events_from_message(accumulate(events))).blocks == (block,)


def test_anthropic_thinking_tokens_are_reasoning_tokens() -> None:
    """Item 5: ``usage.output_tokens_details.thinking_tokens`` -> ``Usage.reasoning_tokens``."""
    body = sse(
        A_START,
        a_block(0, {"type": "text", "text": ""}),
        a_delta(0, {"type": "text_delta", "text": "42"}),
        a_stop(0),
        *a_end(usage={"output_tokens": 120, "output_tokens_details": {"thinking_tokens": 100}}),
    )
    m = decode("anthropic", body)
    assert m.usage == Usage(input_tokens=20, output_tokens=120, reasoning_tokens=100)
    ref = anthropic_sdk(body)
    assert ref.usage.output_tokens_details.thinking_tokens == m.usage.reasoning_tokens
    assert ref.usage.output_tokens == m.usage.output_tokens
    # The encoder writes it back where the API puts it.
    again = wire.encoder("anthropic").encode_message(m)
    assert accumulate(assert_split_invariant("anthropic", again, random_runs=5)).usage == m.usage


# -- OpenAI-compatible Chat Completions --------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "compat-1",
        "choices": [choice],
        **extra,
    }


def chat_body(*chunks: dict[str, Any], done: bool = True) -> bytes:
    return sse(*chunks, event_names=False) + (b"data: [DONE]\n\n" if done else b"")


def chat_decode(body: bytes, **options: Any) -> Message:
    return accumulate(assert_split_invariant("openai-chat", body, random_runs=40, **options))


def chat_sdk(body: bytes) -> Any:
    client = openai.OpenAI(api_key="test", base_url="http://test/v1", http_client=_transport(body))
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as s:
        for _ in s:
            pass
        return s.get_final_completion()


def _detail(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0, **extra}


CORTEX = chat_body(
    chunk({"role": "assistant", "content": "", "reasoning_details": [_detail("The user wants ")]}),
    chunk({"reasoning_details": [_detail("a greeting.", signature="sig-1")]}),
    chunk({"content": "Hello"}),
    chunk({"content": " there."}),
    chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}),
)


def test_chat_reasoning_details_are_thinking() -> None:
    """Item 6: ``delta.reasoning_details`` text items are read as thinking, with their signature."""
    m = chat_decode(CORTEX, finish_required=False)
    assert m.thinking == "The user wants a greeting." and m.text == "Hello there."
    assert m.blocks[0].signature == "sig-1"  # type: ignore[union-attr]
    ref = chat_sdk(CORTEX).choices[0].message
    (detail,) = ref.model_extra["reasoning_details"]
    assert detail["text"] == m.thinking and detail["signature"] == "sig-1"
    assert ref.content == m.text


def test_chat_reasoning_sent_twice_is_read_once() -> None:
    """OpenRouter sends ``reasoning`` and ``reasoning_details`` with the same text, and encrypted items."""
    body = chat_body(
        chunk(
            {
                "role": "assistant",
                "content": "",
                "reasoning": "Think",
                "reasoning_details": [_detail("Think")],
            }
        ),
        chunk({"reasoning": "ing.", "reasoning_details": [_detail("ing.")]}),
        chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "gAAA==", "index": 1}]}),
        chunk({"reasoning_details": [{"type": "reasoning.summary", "summary": "Brief.", "index": 2}]}),
        chunk({"content": "Done."}),
        chunk({}, "stop"),
    )
    m = chat_decode(body)
    ref = chat_sdk(body).choices[0].message
    details = ref.model_extra["reasoning_details"]
    assert m.thinking == "Thinking.Brief." == ref.model_extra["reasoning"] + details[2]["summary"]
    assert [b.kind for b in m.blocks] == ["thinking", "redacted_thinking", "text"]
    assert m.blocks[1].data == details[1]["data"] == "gAAA=="  # type: ignore[union-attr]
    assert m.terminal == "completed" and m.text == ref.content


def test_chat_usage_in_x_groq_and_top_level_cached_tokens() -> None:
    groq = chat_body(
        chunk({"content": "Hi"}),
        chunk({}, "stop", x_groq={"id": "req_1", "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
    )
    assert chat_decode(groq).usage == Usage(input_tokens=5, output_tokens=2)
    cached = chat_body(
        chunk({"content": "Hi"}),
        chunk({}, "stop"),
        {
            **chunk(),
            "choices": [],
            "usage": {"prompt_tokens": 50, "completion_tokens": 2, "cached_tokens": 40},
        },
    )
    m = chat_decode(cached)
    assert m.usage == Usage(input_tokens=50, output_tokens=2, cache_read_tokens=40)
    assert chat_sdk(cached).usage.prompt_tokens == m.usage.input_tokens


def test_chat_without_finish_reason_is_truncated_for_openai_and_complete_for_compatible_servers() -> None:
    """Item 7: Snowflake Cortex ends every response with ``[DONE]`` and no ``finish_reason``."""
    strict = chat_decode(CORTEX)
    assert strict.terminal == "truncated" and all(not b.complete for b in strict.blocks)
    lenient = chat_decode(CORTEX, finish_required=False)
    assert lenient.terminal == "completed" and all(b.complete for b in lenient.blocks)
    assert (lenient.stop_reason, lenient.raw_stop_reason) == ("end_turn", None)
    assert lenient.usage == Usage(input_tokens=9, output_tokens=7)
    # The SDK does not judge completeness; it has the same text and no finish reason.
    assert chat_sdk(CORTEX).choices[0].finish_reason is None


def test_chat_without_finish_reason_tool_call_is_ready_for_compatible_servers() -> None:
    start = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
    body = chat_body(
        chunk({"role": "assistant", "tool_calls": [start]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"tz":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"UTC"}'}}]}),
    )
    m = chat_decode(body, finish_required=False)
    (call,) = m.tool_calls
    assert call.input == {"tz": "UTC"} and call.complete and m.stop_reason == "tool_use"
    assert [json.loads(c.function.arguments) for c in chat_sdk(body).choices[0].message.tool_calls] == [
        call.input
    ]


def test_chat_cut_before_done_stays_truncated_for_compatible_servers() -> None:
    cut = CORTEX[: CORTEX.index(b"data: [DONE]")]
    m = chat_decode(cut, finish_required=False)
    assert m.terminal == "truncated" and m.text == "Hello there."


# -- one bound, one verdict (item 9) ------------------------------------------------------------------


def _verdicts(raw: str) -> tuple[str, str]:
    """The live verdict (ToolTracker) and accumulate()'s, for a tool call whose input text is ``raw``."""
    events: list[Any] = [ResponseStart(provider="p"), BlockStart(index=0, type="tool_call", id="c", name="t")]
    events += [ToolArgsDelta(0, raw[i : i + (1 << 20)]) for i in range(0, len(raw), 1 << 20)]
    events += [BlockStop(0), ResponseEnd(stop_reason="tool_use")]
    tracker = ToolTracker()
    live = [e for event in events for e in tracker.feed(event)]
    final = live[-1]
    assert isinstance(final, ToolCallReady | ToolCallInvalid)
    said = "ready" if isinstance(final, ToolCallReady) else final.reason
    (call,) = accumulate(events).tool_calls
    folded = "ready" if call.input is not None else str(call.error)
    return said, folded


def _object_of_bytes(size: int, filler: str) -> str:
    """A JSON object whose UTF-8 encoding is exactly ``size`` bytes (filler: a 1- or 2-byte char)."""
    head, tail = '{"a":"', '"}'
    room = size - len(head) - len(tail)
    width = len(filler.encode())
    text = filler * (room // width) + "x" * (room % width)
    raw = head + text + tail
    assert len(raw.encode()) == size
    return raw


@pytest.mark.parametrize("filler", ["x", "é"])
def test_tool_input_size_bound_gives_one_verdict_on_both_paths(filler: str) -> None:
    seen = set()
    for size in (DEFAULT_MAX_BYTES - 1, DEFAULT_MAX_BYTES, DEFAULT_MAX_BYTES + 1):
        live, folded = _verdicts(_object_of_bytes(size, filler))
        assert live == folded, f"{size} bytes: the stream said {live}, accumulate() said {folded}"
        seen.add(live)
    assert seen == {"ready", "invalid_json"}  # the bound really is among the sizes tried


def test_tool_input_depth_bound_gives_one_verdict_on_both_paths() -> None:
    seen = set()
    for depth in (DEFAULT_MAX_DEPTH - 1, DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH + 1):
        raw = '{"a":' * depth + "1" + "}" * depth
        live, folded = _verdicts(raw)
        assert live == folded, f"depth {depth}: the stream said {live}, accumulate() said {folded}"
        seen.add(live)
    assert seen == {"ready", "invalid_json"}


# -- OpenAI Responses ---------------------------------------------------------------------------------


def responses_body(*events: dict[str, Any]) -> bytes:
    numbered = [{**event, "sequence_number": n} for n, event in enumerate(events)]
    return sse(*numbered)


def _response(status: str, output: list[Any]) -> dict[str, Any]:
    usage = {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 42,
    }
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-x",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage if status == "completed" else None,
    }


def _message(item_id: str, text: str, phase: str | None = None, *, done: bool = True) -> dict[str, Any]:
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item: dict[str, Any] = {
        "id": item_id,
        "type": "message",
        "status": "completed" if done else "in_progress",
        "content": [part] if done else [],
        "role": "assistant",
    }
    if phase is not None:
        item["phase"] = phase
    return item


def _streamed_message(index: int, item_id: str, text: str, phase: str | None = None) -> list[dict[str, Any]]:
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": _message(item_id, "", phase, done=False),
        },
        {"type": "response.content_part.added", **where, "part": part},
        {"type": "response.output_text.delta", **where, "delta": text, "logprobs": []},
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": index, "item": _message(item_id, text, phase)},
    ]


def responses_sdk(body: bytes) -> Any:
    client = openai.OpenAI(
        api_key="test", base_url="http://test/v1", max_retries=0, http_client=_transport(body)
    )
    with client.responses.stream(model="gpt-x", input="hi") as stream:
        return stream.get_final_response()


LIST_ADDED = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "wiki", "tools": []}
LIST_DONE = {
    **LIST_ADDED,
    "tools": [{"name": "ask", "input_schema": {"type": "object"}, "annotations": None}],
}
SEARCH = {
    "id": "ws_1",
    "type": "web_search_call",
    "status": "completed",
    "action": {"type": "search", "query": "q"},
}


def test_responses_items_finished_only_by_completed_are_backfilled() -> None:
    """Item 3: an item announced and never done, and one never announced, come from response.completed."""
    output = [LIST_DONE, _message("msg_1", "Hi."), SEARCH, _message("msg_2", "Bye.")]
    body = responses_body(
        {"type": "response.created", "response": _response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": LIST_ADDED},
        *_streamed_message(1, "msg_1", "Hi."),
        # output 2 is never announced; output 3 is announced and its text never streams
        {"type": "response.output_item.added", "output_index": 3, "item": _message("msg_2", "", done=False)},
        {"type": "response.completed", "response": _response("completed", output)},
    )
    m = decode("openai-responses", body)
    assert m.terminal == "completed" and all(b.complete for b in m.blocks)
    listed, hi, search, bye = m.blocks
    assert isinstance(listed, ServerToolBlock) and listed.content == LIST_DONE
    assert isinstance(search, ServerToolBlock) and search.content == SEARCH
    assert hi == TextBlock(text="Hi.") and bye == TextBlock(text="Bye.")
    ref = responses_sdk(body)
    assert [item.type for item in ref.output] == [listed.raw_type, "message", search.raw_type, "message"]
    assert ref.output[0].model_dump(exclude_none=True) == listed.content | {
        "tools": [{"name": "ask", "input_schema": {"type": "object"}}]
    }
    assert [ref.output[1].content[0].text, ref.output[3].content[0].text] == [hi.text, bye.text]


def test_responses_item_never_finished_in_a_cut_stream_stays_incomplete() -> None:
    body = responses_body(
        {"type": "response.created", "response": _response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": LIST_ADDED},
    )
    (listed,) = decode("openai-responses", body).blocks
    assert listed == ServerToolBlock(
        raw_type="mcp_list_tools", id="mcpl_1", name=None, content=LIST_ADDED, complete=False
    )


def test_responses_message_phase_is_kept_and_sent_back() -> None:
    """Item 4: ``phase`` on assistant message items is kept on the text block and sent back."""
    call = {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "arguments": "{}",
        "call_id": "call_1",
        "name": "now",
    }
    output = [_message("msg_1", "Checking.", "commentary"), call, _message("msg_2", "Noon.", "final_answer")]
    body = responses_body(
        {"type": "response.created", "response": _response("in_progress", [])},
        *_streamed_message(0, "msg_1", "Checking.", "commentary"),
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**call, "status": "in_progress", "arguments": ""},
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 1,
            "delta": "{}",
        },
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 1,
            "arguments": "{}",
        },
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        *_streamed_message(2, "msg_2", "Noon.", "final_answer"),
        {"type": "response.completed", "response": _response("completed", output)},
    )
    m = decode("openai-responses", body)
    first, _, last = m.blocks
    assert first == TextBlock(text="Checking.", phase="commentary") and last == TextBlock(
        text="Noon.", phase="final_answer"
    )
    ref = responses_sdk(body)
    assert [ref.output[0].phase, ref.output[2].phase] == [first.phase, last.phase]  # type: ignore[union-attr]
    # Sent back on the next turn, on each assistant message.
    request = ChatRequest.create("gpt-x", ["what time is it", m, "thanks"])
    sent = json.loads(build_request("openai-responses", request, api_key="k", base_url=None).body)["input"]
    assistant = [item for item in sent if item.get("role") == "assistant"]
    assert [(a["content"], a["phase"]) for a in assistant] == [
        ("Checking.", "commentary"),
        ("Noon.", "final_answer"),
    ]
    # The encoder (the simulator's writer) sends it as the API does; the agent's history keeps it.
    again = wire.encoder("openai-responses").encode_message(m)
    assert accumulate(assert_split_invariant("openai-responses", again, random_runs=5)).blocks == m.blocks
    assert block_from_dict(json.loads(json.dumps(block_to_dict(first)))) == first


def test_simulator_scenario_asks_for_a_phase() -> None:
    book = ScenarioBook.model_validate(
        {
            "scenarios": [
                {
                    "name": "phased",
                    "match": {"last_user": "phase"},
                    "turns": [{"blocks": [{"text": "Looking.", "phase": "commentary"}, {"text": "Found."}]}],
                }
            ]
        }
    )
    with running(book, speed=0) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test")
        with client.responses.stream(model="sim", input="phase please") as stream:
            ref = stream.get_final_response()
    assert [(item.content[0].text, item.phase) for item in ref.output] == [
        ("Looking.", "commentary"),
        ("Found.", None),
    ]


# -- Gemini -------------------------------------------------------------------------------------------

SEARCH_CALL = {"id": "tc_1", "toolType": "GOOGLE_SEARCH_WEB", "args": {"queries": ["weather Lisbon"]}}
SEARCH_RESULT = {"id": "tc_1", "toolType": "GOOGLE_SEARCH_WEB", "response": {"results": [{"title": "Sunny"}]}}


def gemini_chunk(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 8, "candidatesTokenCount": 5, "totalTokenCount": 13}
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-3-pro",
        "responseId": "r1",
    }


def test_gemini_builtin_tool_parts_are_server_tool_blocks() -> None:
    """Item 8: Gemini 3 built-in tools' ``toolCall`` / ``toolResponse`` parts, with their signature."""
    body = sse(
        gemini_chunk([{"toolCall": SEARCH_CALL, "thoughtSignature": "c2ln"}]),
        gemini_chunk([{"toolResponse": SEARCH_RESULT}]),
        gemini_chunk([{"text": "Sunny in Lisbon."}], "STOP"),
        event_names=False,
        newline="\r\n",
    )
    m = decode("gemini", body)
    carrier, call, result, text = m.blocks
    assert carrier == ThinkingBlock("", signature="c2ln")  # the signature travels on the toolCall part
    assert call == ServerToolBlock(
        raw_type="toolCall",
        id="tc_1",
        name="GOOGLE_SEARCH_WEB",
        raw_input='{"queries":["weather Lisbon"]}',
        input={"queries": ["weather Lisbon"]},
        content=SEARCH_CALL,
    )
    assert result == ServerToolBlock(
        raw_type="toolResponse", id="tc_1", name="GOOGLE_SEARCH_WEB", content=SEARCH_RESULT
    )
    assert text == TextBlock(text="Sunny in Lisbon.") and m.terminal == "completed"
    # Written back as the API sent them: by the encoder (the simulator) and in the next request.
    again = wire.encoder("gemini").encode_message(m)
    assert accumulate(assert_split_invariant("gemini", again, random_runs=5)).blocks == m.blocks
    request = ChatRequest.create("gemini-3-pro", ["weather?", m, "thanks"])
    sent = json.loads(build_request("gemini", request, api_key="k", base_url=None).body)["contents"][1]
    assert sent["parts"][:2] == [
        {"toolCall": SEARCH_CALL, "thoughtSignature": "c2ln"},
        {"toolResponse": SEARCH_RESULT},
    ]
