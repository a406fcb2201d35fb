"""Serialization of conversations and checkpoints: lossless round trips, clean boundaries, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream.agent.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from midstream.agent.serialize import (
    SerializeError,
    block_from_dict,
    from_dict,
    message_from_dict,
    message_to_dict,
    request_from_dict,
    request_to_dict,
    to_dict,
    turn_from_dict,
)
from midstream.client.request import ChatRequest, ToolResult, ToolSpec, Turn, UserText
from midstream.core.accumulate import accumulate
from midstream.events import StreamError
from midstream.message import (
    STOP_REASONS,
    TERMINALS,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
    Usage,
)
from wiresupport import decode_chunks, recorded

EVERY_BLOCK = Message(
    provider="anthropic",
    id="msg_01",
    model="claude-x",
    blocks=(
        ThinkingBlock("let me think \u00e9", signature="sig==", complete=True),
        RedactedThinkingBlock("EncryptedBlob=="),
        TextBlock(text="see [1]", citations=({"type": "web", "url": "https://e.x", "cited_text": "x"},)),
        ServerToolBlock(
            raw_type="server_tool_use",
            id="srv_1",
            name="web_search",
            raw_input='{"query": "q"}',
            input={"query": "q"},
        ),
        ServerToolBlock(
            raw_type="web_search_tool_result", id="srv_1", name=None, content=[{"title": "T", "url": "u"}]
        ),
        ToolCall(
            id="toolu_1",
            name="search",
            raw_input='{"q": "a", "n": [1, 2.5, null]}',
            input={"q": "a", "n": [1, 2.5, None]},
        ),
        ToolCall(
            id="toolu_2", name="write", raw_input='{"path": "a', input=None, complete=False, error="truncated"
        ),
        UnknownBlock(raw_type="container_upload", data={"file_id": "f1"}),
        TextBlock(text="", complete=False),
    ),
    stop_reason="max_tokens",
    raw_stop_reason="max_tokens",
    usage=Usage(input_tokens=120, output_tokens=30, cache_read_tokens=100, reasoning_tokens=None),
    terminal="truncated",
    error=None,
)


def roundtrip_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def test_every_block_type_round_trips() -> None:
    data = message_to_dict(EVERY_BLOCK)
    assert [b["kind"] for b in data["blocks"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "server_tool",
        "server_tool",
        "tool_call",
        "tool_call",
        "unknown",
        "text",
    ]
    assert data["usage"] == {"input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 100}
    back = message_from_dict(roundtrip_json(data))
    assert back == EVERY_BLOCK
    assert isinstance(back.blocks[2], TextBlock) and isinstance(back.blocks[2].citations, tuple)


def test_stream_error_round_trips_with_its_seq() -> None:
    error = StreamError(
        error_kind="overloaded",
        message="Overloaded",
        retryable=True,
        status=529,
        raw={"type": "overloaded_error"},
        seq=7,
    )
    failed = Message(
        provider="anthropic", blocks=(TextBlock(text="par", complete=False),), terminal="failed", error=error
    )
    back = message_from_dict(roundtrip_json(message_to_dict(failed)))
    assert back == failed
    assert isinstance(back.error, StreamError) and back.error.seq == 7
    other = Message(provider="x", terminal="failed", error={"message": "custom"})
    assert message_from_dict(roundtrip_json(message_to_dict(other))) == other


@pytest.mark.parametrize(
    "name",
    [
        "anthropic_server_tool_then_tool_use.txt",
        "anthropic_redacted_thinking.txt",
        "anthropic_thinking.txt",
        "anthropic_tool_use.txt",
        "anthropic_max_tokens_tool_input_cut.txt",
    ],
)
def test_recorded_responses_round_trip(name: str) -> None:
    message = accumulate(decode_chunks("anthropic", [recorded(name)]))
    assert message.blocks
    assert message_from_dict(roundtrip_json(message_to_dict(message))) == message


def test_turns_and_requests_round_trip() -> None:
    request = ChatRequest.create(
        "model-1",
        [
            "first question",
            EVERY_BLOCK,
            ToolResult("toolu_1", "3 hits", name="search"),
            ToolResult("toolu_2", '{"INVALID_JSON": "{\\"path\\": \\"a"}', is_error=True),
            "and then?",
        ],
        system="be brief",
        tools=[
            ToolSpec("search", {"type": "object", "properties": {"q": {"type": "string"}}}, "Search.", True)
        ],
        max_tokens=2048,
        thinking_budget=1024,
        temperature=0.5,
        tool_choice="search",
    )
    data = roundtrip_json(request_to_dict(request))
    assert request_from_dict(data) == request
    assert from_dict(data) == request
    assert [turn_from_dict(t) for t in data["turns"]] == list(request.turns)
    template = request_to_dict(request, turns=False)
    assert "turns" not in template
    assert request_from_dict(template, turns=request.turns) == request
    for part in (UserText("hi"), ToolResult("c", "r", "n", True)):
        assert from_dict(roundtrip_json(to_dict(part))) == part
    assert from_dict(to_dict(request.turns[1])) == request.turns[1]


def test_bad_data_is_named() -> None:
    with pytest.raises(SerializeError, match="unknown kind 'video'"):
        block_from_dict({"kind": "video"})
    with pytest.raises(SerializeError, match="tool_call block: missing field 'raw_input'"):
        block_from_dict({"kind": "tool_call", "id": "a", "name": "b"})
    with pytest.raises(SerializeError, match="expected type 'message', got 'turn'"):
        message_from_dict({"type": "turn"})
    with pytest.raises(SerializeError, match="usage"):
        message_from_dict({"type": "message", "provider": "p", "blocks": [], "usage": {"tokens": 1}})
    with pytest.raises(SerializeError, match="blocks must be a list"):
        message_from_dict({"type": "message", "provider": "p", "blocks": "x"})
    with pytest.raises(SerializeError, match="role"):
        turn_from_dict({"type": "turn", "role": "system", "parts": []})
    with pytest.raises(SerializeError, match="expected an object"):
        from_dict([1])  # type: ignore[arg-type]


# -- generated messages ---------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)
texts = st.text(max_size=20)
ids = st.text(st.characters(codec="ascii"), min_size=1, max_size=10)

blocks = st.one_of(
    st.builds(
        TextBlock, text=texts, citations=st.lists(json_objects, max_size=2).map(tuple), complete=st.booleans()
    ),
    st.builds(ThinkingBlock, texts, st.none() | texts, st.booleans()),
    st.builds(RedactedThinkingBlock, texts, st.booleans()),
    st.builds(
        ToolCall,
        id=ids,
        name=ids,
        raw_input=texts,
        input=st.none() | json_objects,
        complete=st.booleans(),
        error=st.sampled_from([None, "truncated", "invalid_json"]),
    ),
    st.builds(
        ServerToolBlock,
        raw_type=ids,
        id=st.none() | ids,
        name=st.none() | ids,
        raw_input=texts,
        input=json_values,
        content=json_values,
        complete=st.booleans(),
    ),
    st.builds(UnknownBlock, raw_type=ids, data=json_values, complete=st.booleans()),
)
counts = st.none() | st.integers(0, 10**7)
messages = st.builds(
    Message,
    provider=ids,
    id=st.none() | ids,
    model=st.none() | ids,
    blocks=st.lists(blocks, max_size=5).map(tuple),
    stop_reason=st.none() | st.sampled_from(STOP_REASONS),
    raw_stop_reason=st.none() | texts,
    usage=st.builds(
        Usage,
        input_tokens=counts,
        output_tokens=counts,
        cache_read_tokens=counts,
        cache_write_tokens=counts,
        reasoning_tokens=counts,
    ),
    terminal=st.sampled_from(TERMINALS),
    error=st.none()
    | st.builds(
        StreamError,
        error_kind=st.sampled_from(["overloaded", "server", "unknown"]),
        message=texts,
        retryable=st.booleans(),
        status=st.none() | st.integers(400, 599),
        raw=json_values,
    ),
)


@settings(max_examples=80, deadline=None)
@given(messages)
def test_generated_messages_round_trip(message: Message) -> None:
    assert message_from_dict(roundtrip_json(message_to_dict(message))) == message


# -- checkpoints ----------------------------------------------------------------------------------------

COMPLETE = Message(
    provider="openai-chat",
    id="chatcmpl-1",
    model="gpt-x",
    blocks=(
        TextBlock(text="I will search."),
        ToolCall(id="call_a", name="search", raw_input='{"q":"x"}', input={"q": "x"}),
        ToolCall(id="call_b", name="search", raw_input='{"q":"y"}', input={"q": "y"}),
    ),
    stop_reason="tool_use",
    raw_stop_reason="tool_calls",
    usage=Usage(input_tokens=10, output_tokens=5),
    terminal="completed",
)


def conversation() -> tuple[Turn, ...]:
    return (
        Turn("user", (UserText("find x and y"),)),
        Turn("assistant", message=COMPLETE),
        Turn("user", (ToolResult("call_a", "found x", "search"),)),
    )


def test_checkpoint_save_and_load(tmp_path: Path) -> None:
    request = ChatRequest.create(
        "gpt-x", "find x and y", system="s", tools=[ToolSpec("search")], max_tokens=64
    )
    checkpoint = Checkpoint(
        turns=conversation(),
        iteration=2,
        executed_call_ids=("call_a",),
        session_id="run-1",
        request=request,
        metadata={"retries": 1, "fallbacks": ["write_file"]},
    )
    path = save_checkpoint(tmp_path / "deep" / "run.json", checkpoint)
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left
    loaded = load_checkpoint(path)
    assert loaded.turns == checkpoint.turns
    assert (loaded.iteration, loaded.executed_call_ids, loaded.session_id) == (2, ("call_a",), "run-1")
    assert loaded.metadata == {"retries": 1, "fallbacks": ["write_file"]}
    assert loaded.created > 0
    assert loaded.request is not None and loaded.request.turns == checkpoint.turns
    assert loaded.request.system == "s" and loaded.request.max_tokens == 64
    assert [c.id for c in loaded.pending_tool_calls] == ["call_b"]
    document = json.loads(path.read_text())
    assert document["type"] == "checkpoint" and document["version"] == 1
    assert "turns" not in document["request"]
    again = Checkpoint.from_dict(loaded.to_dict())
    assert again == loaded


def test_pending_tool_calls() -> None:
    assert Checkpoint(turns=conversation()[:2]).pending_tool_calls == list(COMPLETE.tool_calls)
    assert (
        Checkpoint(turns=conversation()[:2], executed_call_ids=("call_a", "call_b")).pending_tool_calls == []
    )
    assert Checkpoint(turns=conversation()[:1]).pending_tool_calls == []


def test_partial_output_is_never_checkpointed() -> None:
    cut = Message(
        provider="anthropic",
        blocks=(ToolCall(id="t", name="w", raw_input='{"a', input=None, complete=False, error="truncated"),),
        stop_reason="max_tokens",
        terminal="truncated",
    )
    with pytest.raises(CheckpointError, match="turn 1 is a truncated response"):
        Checkpoint(turns=(Turn("user", (UserText("x"),)), Turn("assistant", message=cut)))
    with pytest.raises(CheckpointError, match="negative"):
        Checkpoint(turns=(), iteration=-1)


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    Checkpoint(turns=conversation(), iteration=1).save(path)
    Checkpoint(turns=conversation(), iteration=2).save(path)
    assert Checkpoint.load(path).iteration == 2
    with pytest.raises(CheckpointError, match="not JSON-serializable"):
        Checkpoint(turns=(), metadata={"x": object()}).save(path)
    assert Checkpoint.load(path).iteration == 2  # the failed save left the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_bad_checkpoint_files(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with pytest.raises(CheckpointError, match="cannot read"):
        Checkpoint.load(path)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{path}: cannot read"):
        Checkpoint.load(path)
    path.write_text(json.dumps({"type": "checkpoint", "version": 99, "turns": []}))
    with pytest.raises(CheckpointError, match="unsupported checkpoint version 99"):
        Checkpoint.load(path)
    path.write_text(json.dumps({"type": "something"}))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        Checkpoint.load(path)
    path.write_text(
        json.dumps({"type": "checkpoint", "version": 1, "turns": [{"type": "turn", "role": "x"}]})
    )
    with pytest.raises(CheckpointError, match="bad checkpoint: turn: role"):
        Checkpoint.load(path)
    path.write_text(json.dumps({"type": "checkpoint", "version": 1, "turns": [], "executed_call_ids": [1]}))
    with pytest.raises(CheckpointError, match="executed_call_ids"):
        Checkpoint.load(path)
