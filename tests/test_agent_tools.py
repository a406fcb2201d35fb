"""Tools: schema from signature and docstring, validation, invocation, options, streamed fields."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from midstream.agent.tools import (
    CallStreams,
    StreamSink,
    TempFileSink,
    Tool,
    ToolInputError,
    parse_docstring,
    tool,
)
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady, ToolTracker
from midstream.errors import LocalError
from midstream.events import BlockStart, BlockStop, ResponseStart, ToolArgsDelta


@tool
def search(
    query: str, limit: Annotated[int, Field(ge=1, le=50)] = 5, mode: Literal["fast", "deep"] = "fast"
) -> str:
    """Search the index for documents.

    Args:
        query: the words to look for,
            in any order
        limit: how many hits at most
        mode (str): how hard to look

    Returns:
        the hits, one a line
    """
    return f"{query}:{limit}:{mode}"


def test_schema_from_signature_and_docstring() -> None:
    assert search.name == "search"
    assert search.description == "Search the index for documents."
    assert search.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "description": "the words to look for, in any order"},
            "limit": {
                "type": "integer",
                "default": 5,
                "minimum": 1,
                "maximum": 50,
                "description": "how many hits at most",
            },
            "mode": {
                "type": "string",
                "enum": ["fast", "deep"],
                "default": "fast",
                "description": "how hard to look",
            },
        },
        "required": ["query"],
    }
    spec = search.spec
    assert (spec.name, spec.description, spec.eager) == ("search", search.description, False)
    assert spec.input_schema is search.input_schema
    assert search.to_spec(eager=True).eager is True
    assert search.to_spec().eager is False


def test_docstring_styles() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("Just a summary.") == ("Just a summary.", {})
    summary, params = parse_docstring(
        """Write a file.

        :param path: where
        :param str content: what,
            all of it
        :returns: the size
        """
    )
    assert summary == "Write a file."
    assert params == {"path": "where", "content": "what, all of it"}


def test_validate_defaults_coercion_and_errors() -> None:
    assert search.validate({"query": "x"}) == {"query": "x", "limit": 5, "mode": "fast"}
    assert search.validate({"query": "x", "limit": "7"}) == {"query": "x", "limit": 7, "mode": "fast"}
    with pytest.raises(ToolInputError) as info:
        search.validate({"limit": 0, "mode": "slow", "extra": 1})
    message = str(info.value)
    assert "query: Field required" in message
    assert "limit: Input should be greater than or equal to 1" in message
    assert "mode: Input should be 'fast' or 'deep'" in message
    assert "extra: unexpected field" in message
    assert info.value.path == ("query",)
    with pytest.raises(ToolInputError, match="must be an object"):
        search.validate(["x"])  # type: ignore[arg-type]


class Point(BaseModel):
    x: int
    y: int = 0


@pytest.mark.anyio
async def test_nested_models_are_validated_into_instances() -> None:
    @tool
    async def plot(points: list[Point], label: str | None = None) -> int:
        """Plot points."""
        return sum(p.x + p.y for p in points)

    assert plot.is_async
    args = plot.validate({"points": [{"x": 1}, {"x": 2, "y": 3}]})
    assert args["points"] == [Point(x=1), Point(x=2, y=3)]
    assert args["label"] is None
    assert await plot.invoke(args) == 6
    assert "$defs" in plot.input_schema and plot.input_schema["required"] == ["points"]
    with pytest.raises(ToolInputError, match=r"points\.0\.x"):
        plot.validate({"points": [{"y": 1}]})


@pytest.mark.anyio
async def test_sync_tools_run_in_a_thread_and_async_on_the_loop() -> None:
    seen: dict[str, str] = {}

    @tool
    def blocking(n: int) -> int:
        seen["sync"] = threading.current_thread().name
        return n * 2

    @tool
    async def cooperative(n: int) -> int:
        seen["async"] = threading.current_thread().name
        await asyncio.sleep(0)
        return n + 1

    async def main() -> tuple[Any, Any]:
        return await blocking.run({"n": 4}), await cooperative.run({"n": 4})

    assert await main() == (8, 5)
    assert not blocking.is_async and cooperative.is_async
    assert seen["async"] == threading.main_thread().name
    assert seen["sync"] != threading.main_thread().name


@pytest.mark.anyio
async def test_parameter_names_that_pydantic_uses_itself() -> None:
    @tool
    def odd(json: str, copy: int, schema: dict[str, Any], model_name: str = "m", _private: int = 0) -> str:
        return f"{json}{copy}{sorted(schema)}{model_name}{_private}"

    assert sorted(odd.input_schema["properties"]) == ["_private", "copy", "json", "model_name", "schema"]
    args = odd.validate({"json": "j", "copy": 2, "schema": {"b": 1, "a": 2}, "_private": 5})
    assert args == {"json": "j", "copy": 2, "schema": {"b": 1, "a": 2}, "model_name": "m", "_private": 5}
    assert await odd.invoke(args) == "j2['a', 'b']m5"
    with pytest.raises(ToolInputError, match="p0: unexpected field"):
        odd.validate({"json": "j", "copy": 2, "schema": {}, "p0": 1})


def test_tool_object_stays_callable() -> None:
    assert search("q", limit=2) == "q:2:fast"


@pytest.mark.anyio
async def test_explicit_json_schema_gets_the_dict() -> None:
    received: list[Any] = []

    def handler(payload: dict[str, Any]) -> str:
        received.append(payload)
        return "ok"

    t = Tool(
        handler,
        name="lookup",
        description="Look a key up.",
        schema={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    )
    assert t.spec.input_schema["required"] == ["key"]
    assert await t.run({"key": "a"}) == "ok"
    assert received == [{"key": "a"}]
    with pytest.raises(ToolInputError, match="missing required field 'key'"):
        t.validate({})
    with pytest.raises(ToolInputError, match="expected string"):
        t.validate({"key": 3})


@pytest.mark.anyio
async def test_explicit_model_schema_gets_the_instance() -> None:
    class Move(BaseModel):
        """Move a piece."""

        to: str
        steps: int = 1

    t = Tool(lambda move: (move.to, move.steps), name="move", schema=Move)
    assert t.input_schema["required"] == ["to"]
    assert "title" not in t.input_schema
    assert await t.run({"to": "e4"}) == ("e4", 1)
    with pytest.raises(ToolInputError, match="steps"):
        t.validate({"to": "e4", "steps": "many"})


@pytest.mark.anyio
async def test_async_callable_object() -> None:
    class Adder:
        async def __call__(self, a: int, b: int) -> int:
            return a + b

    t = Tool(Adder(), name="add")
    assert t.is_async
    assert t.input_schema["required"] == ["a", "b"]
    assert await t.run({"a": 1, "b": 2}) == 3


def test_option_misuse_is_reported_at_decoration() -> None:
    def f(path: str, content: str) -> None: ...

    with pytest.raises(LocalError, match="side_effect"):
        Tool(f, compensate=lambda record: None)
    with pytest.raises(LocalError, match="needs a sink"):
        Tool(f, streams=("content",))
    with pytest.raises(LocalError, match="not an input field"):
        Tool(f, streams=("body",), sink=TempFileSink.factory("out.txt"))
    with pytest.raises(LocalError, match="tool name"):
        Tool(f, name="has space")
    with pytest.raises(LocalError, match="keyword"):
        Tool(lambda *args: None, name="star")


def test_idempotency_keys() -> None:
    t = Tool(lambda a, b: None, name="t", side_effect=True)
    assert t.idempotency_key({"a": 1, "b": [1, 2]}) == t.idempotency_key({"b": [1, 2], "a": 1})
    assert t.idempotency_key({"a": 1}) != t.idempotency_key({"a": 2})
    assert len(t.idempotency_key({})) == 64
    other = Tool(lambda a, b: None, name="u", side_effect=True)
    assert other.idempotency_key({"a": 1}) != t.idempotency_key({"a": 1})
    custom = Tool(lambda a, b: None, name="c", side_effect=True, key=lambda input: f"order-{input['a']}")
    assert custom.idempotency_key({"a": 9, "b": 0}) == "order-9"


def test_options_are_kept() -> None:
    def undo(record: Any) -> None: ...

    @tool(eager=True, side_effect=True, compensate=undo, idempotent=True, name="put")
    def put_value(key: str, value: str) -> None:
        """Store a value."""

    assert (put_value.name, put_value.eager, put_value.side_effect, put_value.idempotent) == (
        "put",
        True,
        True,
        True,
    )
    assert put_value.can_compensate and put_value.compensate is undo
    assert put_value.spec.eager is True
    assert search.open_streams("x") is None


# -- streamed fields ------------------------------------------------------------------------------------


def _events(fragments: list[str], complete: bool = True) -> list[Any]:
    """Stream events of one write_file call: start, argument fragments, stop."""
    stream: list[Any] = [
        ResponseStart(provider="anthropic"),
        BlockStart(index=0, type="tool_call", id="call_1", name="write_file"),
    ]
    stream += [ToolArgsDelta(0, f) for f in fragments]
    stream.append(BlockStop(0, complete=complete))
    tracker = ToolTracker({"write_file": {"type": "object", "required": ["path", "content"]}})
    return [out for ev in stream for out in tracker.feed(ev)]


def _write_file_tool(tmp_path: Path) -> Tool:
    @tool(
        streams=("content",),
        sink=TempFileSink.factory(lambda i: tmp_path / i["path"], directory=tmp_path / "tmp"),
    )
    def write_file(path: str, content: str) -> int:
        return len(content)

    return write_file


BODY = 'line one\nline "two"\n\u00e9t\u00e9 \U0001f600\n'
FRAGMENTS = [
    '{"content": "line one\\nli',
    'ne \\"two\\"\\n\\u00e9t\u00e9 ',
    '\U0001f600\\n", "pa',
    'th": "out.txt"}',
]


def test_streamed_field_commits_on_ready(tmp_path: Path) -> None:
    write_file = _write_file_tool(tmp_path)
    streams = write_file.open_streams("call_1")
    assert isinstance(streams, CallStreams)
    events = _events(FRAGMENTS)
    for ev in events[:-1]:
        streams.feed(ev)
    temp_files = list((tmp_path / "tmp").iterdir())
    assert (
        len(temp_files) == 1 and temp_files[0].read_text(encoding="utf-8") == BODY
    )  # written while streaming
    assert not (tmp_path / "out.txt").exists()
    ready = events[-1]
    assert isinstance(ready, ToolCallReady)
    committed = streams.commit(ready.input)
    assert committed == {"content": tmp_path / "out.txt"}
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == BODY
    assert list((tmp_path / "tmp").iterdir()) == []
    assert streams.errors == []


def test_streamed_field_discarded_when_truncated(tmp_path: Path) -> None:
    write_file = _write_file_tool(tmp_path)
    streams = write_file.open_streams("call_1")
    assert streams is not None
    events = _events(FRAGMENTS[:2], complete=False)
    for ev in events:
        streams.feed(ev)
    assert isinstance(events[-1], ToolCallInvalid) and events[-1].reason == "truncated"
    streams.discard()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "out.txt").exists()


def test_mismatched_text_is_not_committed(tmp_path: Path) -> None:
    write_file = _write_file_tool(tmp_path)
    streams = write_file.open_streams("call_1")
    assert streams is not None
    for ev in _events(FRAGMENTS):
        streams.feed(ev)
    # a hook rewrote the content: the streamed text is no longer what the call says
    assert streams.commit({"path": "out.txt", "content": "something else"}) == {}
    assert not (tmp_path / "out.txt").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


class _RecordingSink:
    def __init__(self, log: list[str], fail_on: str | None = None) -> None:
        self.log = log
        self.fail_on = fail_on

    def write(self, text: str) -> None:
        if text == self.fail_on:
            raise OSError("disk full")
        self.log.append(f"write:{text}")

    def commit(self, input: Any = None) -> str:
        self.log.append("commit")
        return "done"

    def discard(self) -> None:
        self.log.append("discard")


def test_sink_protocol_and_failing_write_is_isolated() -> None:
    log: list[str] = []
    assert isinstance(_RecordingSink(log), StreamSink)
    t = Tool(
        lambda a, b: None,
        name="two",
        streams=("a", "b"),
        sink=lambda call_id, path: _RecordingSink(log, fail_on="bad" if path == ("b",) else None),
    )
    streams = t.open_streams("c")
    assert streams is not None
    from midstream.core.toolargs import ToolFieldDelta, ToolFieldStart

    for ev in [
        ToolFieldStart(0, ("a",)),
        ToolFieldDelta(0, ("a",), "x"),
        ToolFieldStart(0, ("b",)),
        ToolFieldDelta(0, ("b",), "bad"),
        ToolFieldDelta(0, ("b",), "more"),
        ToolFieldDelta(0, ("c",), "z"),
    ]:
        streams.feed(ev)
    assert [key for key, _ in streams.errors] == ["b"]
    assert streams.commit({"a": "x", "b": "badmore"}) == {"a": "done"}
    assert log == ["write:x", "discard", "commit"]


def test_temp_file_sink_direct(tmp_path: Path) -> None:
    sink = TempFileSink("call/../1", ("body",), destination=tmp_path / "sub" / "f.txt")
    sink.write("ab")
    sink.write("c")
    assert sink.temp_path is not None and sink.temp_path.parent == tmp_path / "sub"
    assert ".." not in sink.temp_path.name
    assert sink.commit() == tmp_path / "sub" / "f.txt"
    assert (tmp_path / "sub" / "f.txt").read_text() == "abc"
    with pytest.raises(LocalError):
        sink.write("d")
    sink.discard()  # no-op after commit
    assert (tmp_path / "sub" / "f.txt").read_text() == "abc"

    empty = TempFileSink("c2", ("body",), destination=tmp_path / "empty.txt")
    empty.commit()
    assert (tmp_path / "empty.txt").read_text() == ""

    later = TempFileSink("c3", ("body",), destination=lambda i: tmp_path / i["name"])
    later.write("x")
    with pytest.raises(LocalError, match="pass it to commit"):
        later.commit()
    later.discard()
    assert later.temp_path is not None and not later.temp_path.exists()
