"""The relay's protocol adapters, checked by the real clients: real agent runs against the simulator
are logged, translated to the AI SDK UI Message Stream and to AG-UI, framed as SSE and read by the AI
SDK's transport + reducer and by AG-UI's HttpAgent (parser, verifier, reducer) under Node. Each
client's final state must equal what the run accumulated (its turns and tool results), and a reader
cut anywhere and resumed (replay + skip) must end in the same state: no gap, no duplicate."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jsrunner import run_clients
from midstream.client.request import ToolResult
from midstream.message import Message, TextBlock, ThinkingBlock
from midstream.relay.adapters import (
    SSE_DONE,
    UI_MESSAGE_STREAM_HEADER,
    AGUIEvents,
    ChatRequestError,
    RunAgentInputError,
    UIMessageStream,
    aisdk,
    parse_chat_request,
    parse_cursor,
    parse_run_agent_input,
    replay,
    sse_event,
)
from midstream.relay.adapters import agui as agui_adapter
from midstream.relay.entry import LogEntry
from midstream.sim import running
from relaylogs import BOOK, RunLog, record_all

PROMPT = "hello"
USER = {"id": "u1", "role": "user", "content": PROMPT}
RUN_INPUT = parse_run_agent_input({"threadId": "thread-1", "runId": "run-1", "messages": [USER]})


@pytest.fixture(scope="module")
def logs() -> dict[str, RunLog]:
    with running(BOOK, speed=0) as url:
        return record_all(url)


# -- what the run accumulated -------------------------------------------------------------------------


def steps_of(log: RunLog) -> list[Message]:
    """The responses the run kept, one per model round trip, and the last partial one if it ended
    mid-iteration."""
    result = log.result
    kept = [t.message for t in result.turns if t.role == "assistant" and t.message is not None]
    last = result.message
    if last is not None and result.terminal != "completed" and last.id not in {m.id for m in kept}:
        kept.append(last)
    return kept


def results_of(log: RunLog) -> dict[str, ToolResult]:
    return {
        part.tool_call_id: part
        for turn in log.result.turns
        if turn.role == "user"
        for part in turn.parts
        if isinstance(part, ToolResult)
    }


def expected_ui(log: RunLog) -> list[dict[str, Any]]:
    results = results_of(log)
    out = []
    for message in steps_of(log):
        tools = []
        for call in message.tool_calls:
            res = results.get(call.id)
            if res is not None and not res.is_error:
                tools.append((call.id, call.name, "output-available", call.input, res.content))
            elif res is not None and "denied" in res.content:
                tools.append((call.id, call.name, "output-denied", None, None))
            else:
                tools.append((call.id, call.name, "output-error", None, None))
        out.append(
            {
                "text": "".join(b.text for b in message.blocks if isinstance(b, TextBlock)),
                "reasoning": "".join(b.thinking for b in message.blocks if isinstance(b, ThinkingBlock)),
                "tools": tools,
            }
        )
    return out


def ui_state(message: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for part in message["parts"]:
        kind = part["type"]
        if kind == "step-start":
            steps.append({"text": "", "reasoning": "", "tools": []})
        elif kind == "text":
            steps[-1]["text"] += part["text"]
        elif kind == "reasoning":
            steps[-1]["reasoning"] += part["text"]
        elif kind.startswith("tool-"):
            ok = part["state"] == "output-available"
            steps[-1]["tools"].append(
                (
                    part["toolCallId"],
                    kind.removeprefix("tool-"),
                    part["state"],
                    part.get("input") if ok else None,
                    part.get("output") if ok else None,
                )
            )
    return steps


def expected_agui(log: RunLog) -> list[tuple[Any, ...]]:
    results = results_of(log)
    out: list[tuple[Any, ...]] = []
    for message in steps_of(log):
        for block in message.blocks:
            if isinstance(block, ThinkingBlock):
                out.append(("reasoning", block.thinking))
        calls = tuple((c.id, c.name, c.raw_input) for c in message.tool_calls)
        if message.text or calls:
            out.append(("assistant", message.text, calls))
        for call in message.tool_calls:
            res = results.get(call.id)
            out.append(("tool", call.id, res.content if res is not None and not res.is_error else "ERROR"))
    return out


def agui_state(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in messages:
        if m["role"] == "reasoning":
            out.append(("reasoning", m["content"]))
        elif m["role"] == "assistant":
            calls = tuple(
                (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("toolCalls", [])
            )
            out.append(("assistant", m.get("content") or "", calls))
        elif m["role"] == "tool":
            error = m["content"].startswith(("invalid input", "not run", "failed", "denied"))
            out.append(("tool", m["toolCallId"], "ERROR" if error else m["content"]))
    return out


# -- framing ------------------------------------------------------------------------------------------


def ui_chunks(log: RunLog, version: int = 7) -> list[tuple[str, dict[str, Any]]]:
    return list(replay(UIMessageStream(version=version), log.payloads))


def agui_chunks(log: RunLog) -> list[tuple[str, dict[str, Any]]]:
    return list(replay(AGUIEvents(RUN_INPUT), log.payloads))


def ui_sse(chunks: list[tuple[str, dict[str, Any]]], done: bool = True) -> str:
    body = b"".join(sse_event(chunk, sse_id) for sse_id, chunk in chunks)
    return (body + (SSE_DONE if done else b"")).decode()


def agui_sse(chunks: list[tuple[str, dict[str, Any]]]) -> str:
    return b"".join(sse_event(chunk, sse_id) for sse_id, chunk in chunks).decode()


def random_pieces(text: str, rng: random.Random) -> list[str]:
    """The text as network reads of random sizes (1 byte to 200)."""
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 200)
        out.append(text[i : i + n])
        i += n
    return out


def ui_case(text: str, client: str = "ai-sdk", mode: str = "send") -> dict[str, Any]:
    return {"client": client, "pieces": [text], "mode": mode, "prompt": PROMPT}


def agui_case(text: str) -> dict[str, Any]:
    return {"client": "ag-ui", "pieces": [text], "messages": [USER], "threadId": "thread-1", "runId": "run-1"}


ALL = [
    "text",
    "parallel-tools",
    "invalid-json",
    "schema-invalid",
    "unknown-tool",
    "max-tokens-retry",
    "max-tokens-truncated",
    "stream-error-restart",
    "stream-error-prefill",
    "denied",
    "cancel-in-tool",
    "cancel-mid-text",
    "failure",
]


# -- the AI SDK -----------------------------------------------------------------------------------------


def test_every_run_reads_in_the_ai_sdk_client_as_midstream_accumulated_it(logs: dict[str, RunLog]) -> None:
    rng = random.Random(7)
    cases = []
    for name in ALL:
        text = ui_sse(ui_chunks(logs[name]))
        cases.append(ui_case(text))
        cases.append({**ui_case(text), "pieces": random_pieces(text, rng)})
    results = run_clients(cases)
    for i, name in enumerate(ALL):
        whole, split = results[2 * i], results[2 * i + 1]
        assert split["message"] == whole["message"], name
        log = logs[name]
        terminal = log.result.terminal
        assert ui_state(whole["message"]) == expected_ui(log), name
        assert whole["message"]["id"] == f"msg-run-{name}"
        assert whole["chunkTypes"][0] == "start"
        ending = {"completed": ["finish-step", "finish"], "truncated": ["finish-step", "finish"]}
        ending |= {"cancelled": ["finish-step", "abort"], "failed": ["finish-step", "error", "finish"]}
        assert whole["chunkTypes"][-len(ending[terminal]) :] == ending[terminal], name
        if terminal == "failed":
            assert len(whole["errors"]) == 1 and "malformed" in whole["errors"][0]
        else:
            assert whole["errors"] == [], name
        if terminal in ("completed", "truncated"):
            metadata = whole["message"]["metadata"]
            assert metadata["terminal"] == terminal
            assert metadata["usage"]["output_tokens"] > 0


def test_tool_input_is_available_only_when_validated(logs: dict[str, RunLog]) -> None:
    names = [
        "invalid-json",
        "max-tokens-retry",
        "max-tokens-truncated",
        "stream-error-restart",
        "schema-invalid",
        "unknown-tool",
    ]
    results = run_clients([ui_case(ui_sse(ui_chunks(logs[n]))) for n in names])
    for name, got in zip(names, results, strict=True):
        invalid = {p["call_id"] for p in logs[name].payloads if p["kind"] == "tool_invalid_input"}
        ready = {p["call_id"] for p in logs[name].payloads if p["kind"] == "tool_ready"}
        assert invalid, name
        for call_id in invalid:
            states = got["toolStates"][call_id]
            assert "input-available" not in states, (name, states)
            assert states[-1] == "output-error", (name, states)
        for call_id in ready:
            assert "input-available" in got["toolStates"][call_id]
    # The cut call of a retried response was shown as an error, then the step was reset: the final
    # message has only the retried call, complete.
    final = results[1]["message"]
    cut = {p["call_id"] for p in logs["max-tokens-retry"].payloads if p["kind"] == "tool_invalid_input"}
    assert not [p for p in final["parts"] if p.get("toolCallId") in cut]
    assert "reset-step" in results[1]["chunkTypes"]
    # With no retry left, the cut call stays, as an error whose input is the raw text received.
    part = next(p for p in results[2]["message"]["parts"] if p.get("toolCallId") in results[2]["toolStates"])
    assert part["state"] == "output-error"
    assert part["input"].startswith('{"title": "Rivers", "body": "Rivers carry')
    assert part["errorText"].startswith("truncated: ")


def test_field_previews_are_transient_data_parts(logs: dict[str, RunLog]) -> None:
    chunks = [c for _, c in ui_chunks(logs["parallel-tools"])]
    fields = [c for c in chunks if c["type"] == "data-midstream-field"]
    assert fields and all(c["transient"] for c in fields)
    paris = [c for c in fields if c["data"]["event"] == "complete" and c["data"]["value"] == "Paris"]
    assert len(paris) == 1 and paris[0]["data"]["path"] == ["city"]
    assert paris[0]["id"] == f"{paris[0]['data']['toolCallId']}:city"
    got = run_clients([ui_case(ui_sse(ui_chunks(logs["parallel-tools"])))])[0]
    assert "data-midstream-field" in got["transient"]
    assert not [p for p in got["message"]["parts"] if p["type"].startswith("data-")]


def test_cancel_is_an_abort_and_calls_that_never_ran_say_so(logs: dict[str, RunLog]) -> None:
    chunks = [c for _, c in ui_chunks(logs["cancel-in-tool"])]
    assert chunks[-1] == {"type": "abort", "reason": "stopped by the user"}
    failed = [c for c in chunks if c["type"] == "tool-output-error"]
    assert len(failed) == 1 and failed[0]["errorText"].startswith("cancelled")
    assert not [c for c in chunks if c["type"] == "finish"]


def test_an_ai_sdk_6_client_gets_no_reset_step_and_sees_the_retry_marked(logs: dict[str, RunLog]) -> None:
    cases = [ui_case(ui_sse(ui_chunks(logs[n], version=6)), client="ai-sdk-v6") for n in ALL]
    cases.append(ui_case(ui_sse(ui_chunks(logs["max-tokens-retry"])), client="ai-sdk-v6"))
    results = run_clients(cases)
    for name, got in zip(ALL, results[:-1], strict=True):
        assert "reset-step" not in got["chunkTypes"]
        if logs[name].result.terminal != "failed":
            assert got["errors"] == [], name
        if not any(p["kind"] == "retry" and p["mode"] == "restart" for p in logs[name].payloads):
            assert ui_state(got["message"]) == expected_ui(logs[name]), name
            continue
        parts = got["message"]["parts"]
        marker = next(i for i, p in enumerate(parts) if p["type"] == "data-midstream-retry")
        discarded = [p for p in parts[:marker] if p.get("toolCallId")]
        assert discarded and all(p["state"] == "output-error" for p in discarded)
    # The AI SDK 7 stream is not for a version 6 client: it rejects the reset-step chunk.
    assert results[-1]["errors"], "an AI SDK 6 client accepted reset-step"


def test_the_use_chat_request_body_is_read(logs: dict[str, RunLog]) -> None:
    got = run_clients([ui_case(ui_sse(ui_chunks(logs["text"])))])[0]
    (request,) = got["requests"]
    assert request["method"] == "POST"
    body = parse_chat_request(json.loads(request["body"]))
    assert (body.chat_id, body.prompt, body.trigger, body.history) == ("chat-1", PROMPT, "submit-message", ())
    conversation = {
        "id": "c9",
        "trigger": "submit-message",
        "model": "sim-model",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "id": "a1",
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool-get_weather",
                        "toolCallId": "t1",
                        "state": "output-available",
                        "input": {"city": "Paris"},
                        "output": "Paris: sunny",
                    },
                ],
            },
            {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "And Tokyo?"}]},
        ],
    }
    body = parse_chat_request(conversation)
    assert body.prompt == "And Tokyo?"
    assert body.extra == {"model": "sim-model"}
    assert body.history[0] == ("user", "Weather in Paris?")
    role, text = body.history[1]
    assert role == "assistant" and text.startswith("Checking.\n")
    assert json.loads(text.split("\n", 1)[1]) == {
        "tool": "get_weather",
        "input": {"city": "Paris"},
        "output": "Paris: sunny",
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "JSON object"),
        ({"messages": []}, "chat id"),
        ({"id": "c", "messages": []}, "no messages"),
        ({"id": "c", "messages": [{"role": "robot", "parts": []}]}, "role"),
        ({"id": "c", "messages": [{"id": "a", "role": "assistant", "parts": []}]}, "no user message"),
        ({"id": "c", "messages": [{"id": "u", "role": "user", "parts": "hi"}]}, "parts"),
        (
            {"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": " "}]}]},
            "no text",
        ),
        (
            {"id": "c", "trigger": "explode", "messages": [{"id": "u", "role": "user", "parts": []}]},
            "trigger",
        ),
    ],
)
def test_a_bad_chat_body_is_a_typed_error(body: Any, error: str) -> None:
    with pytest.raises(ChatRequestError, match=error):
        parse_chat_request(body)


def test_headers_and_framing() -> None:
    assert UI_MESSAGE_STREAM_HEADER == "x-vercel-ai-ui-message-stream"
    assert aisdk.HEADERS[UI_MESSAGE_STREAM_HEADER] == "v1"
    assert aisdk.HEADERS["content-type"] == "text/event-stream"
    assert sse_event({"type": "finish"}) == b'data: {"type":"finish"}\n\n'
    assert sse_event({"delta": "é\n"}, "3.1") == 'data: {"delta":"é\\n"}\nid: 3.1\n\n'.encode()
    assert SSE_DONE == b"data: [DONE]\n\n"


# -- AG-UI ----------------------------------------------------------------------------------------------


def test_every_run_reads_in_the_ag_ui_client_as_midstream_accumulated_it(logs: dict[str, RunLog]) -> None:
    rng = random.Random(11)
    cases = []
    for name in ALL:
        text = agui_sse(agui_chunks(logs[name]))
        cases += [agui_case(text), {**agui_case(text), "pieces": random_pieces(text, rng)}]
    results = run_clients(cases)
    for i, name in enumerate(ALL):
        whole, split = results[2 * i], results[2 * i + 1]
        assert split["messages"] == whole["messages"], name
        log = logs[name]
        assert whole["messages"][0] == USER
        assert agui_state(whole["messages"][1:]) == expected_agui(log), name
        assert whole["types"][0] == "RUN_STARTED"
        if log.result.terminal == "failed":
            assert whole["types"][-1] == "RUN_ERROR"
            assert whole["errors"] and "malformed" in whole["errors"][0]
            continue
        assert whole["errors"] == [], name
        assert whole["types"][-1] == "RUN_FINISHED"
        assert whole["result"] == {"terminal": log.result.terminal, "reason": log.result.reason}
        cancelled = "midstream.cancelled" in whole["custom"]
        assert cancelled == (log.result.terminal == "cancelled"), name


def test_ag_ui_tool_calls_end_only_when_validated(logs: dict[str, RunLog]) -> None:
    for name in (
        "invalid-json",
        "max-tokens-truncated",
        "stream-error-restart",
        "schema-invalid",
        "unknown-tool",
    ):
        events = [e for _, e in agui_chunks(logs[name])]
        invalid = {p["call_id"] for p in logs[name].payloads if p["kind"] == "tool_invalid_input"}
        for call_id in invalid:
            mine = [
                e
                for e in events
                if e.get("toolCallId") == call_id or e.get("value", {}).get("toolCallId") == call_id
            ]
            kinds = [e["type"] if e["type"] != "CUSTOM" else e["name"] for e in mine]
            end = kinds.index("TOOL_CALL_END")
            assert kinds[end - 1] == "midstream.tool_invalid", (name, kinds)
            assert kinds[end + 1] == "TOOL_CALL_RESULT"
    # A discarded retry is removed from the client's conversation by a snapshot.
    events = [e for _, e in agui_chunks(logs["stream-error-restart"])]
    snapshot = next(e for e in events if e["type"] == "MESSAGES_SNAPSHOT")
    assert snapshot["messages"] == [USER]


def test_the_run_agent_input_is_read(logs: dict[str, RunLog]) -> None:
    got = run_clients([agui_case(agui_sse(agui_chunks(logs["text"])))])[0]
    (request,) = got["requests"]
    run_input = parse_run_agent_input(json.loads(request["body"]))
    assert (run_input.thread_id, run_input.run_id, run_input.prompt) == ("thread-1", "run-1", PROMPT)
    assert run_input.messages == (USER,)
    body = {
        "threadId": "t",
        "runId": "r",
        "parentRunId": "p",
        "messages": [
            {"id": "1", "role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {"id": "2", "role": "assistant", "content": "Checking."},
            {"id": "3", "role": "user", "content": "Paris"},
        ],
        "tools": [{"name": "get_weather", "description": "the weather"}],
        "context": [],
        "forwardedProps": {"x": 1},
    }
    run_input = parse_run_agent_input(body)
    assert run_input.prompt == "Paris"
    assert run_input.history == (("user", "Weather?"), ("assistant", "Checking."))
    assert run_input.parent_run_id == "p" and run_input.tools[0]["name"] == "get_weather"
    events = AGUIEvents(run_input).feed({"kind": "iteration_start", "iteration": 1, "run": "x", "seq": 1})
    assert events[0] == {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "parentRunId": "p"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("x", "JSON object"),
        ({"runId": "r", "messages": []}, "threadId"),
        ({"threadId": "t", "runId": "r", "messages": "hi"}, "messages"),
        ({"threadId": "t", "runId": "r", "messages": [{"role": "user", "content": "x"}]}, "id"),
        (
            {"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "assistant", "content": "x"}]},
            "no user",
        ),
        ({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": 5}]}, "content"),
    ],
)
def test_a_bad_run_agent_input_is_a_typed_error(body: Any, error: str) -> None:
    with pytest.raises(RunAgentInputError, match=error):
        parse_run_agent_input(body)


# -- resume: replay + skip ----------------------------------------------------------------------------


def cursors(chunks: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[int, str | None]]:
    yield 0, None
    for i, (sse_id, _) in enumerate(chunks, 1):
        yield i, sse_id


@pytest.mark.parametrize("protocol", ["ai-sdk", "ag-ui"])
def test_resume_from_any_cursor_or_count_has_no_gap_and_no_duplicate(
    logs: dict[str, RunLog], protocol: str
) -> None:
    def fresh() -> UIMessageStream | AGUIEvents:
        return UIMessageStream() if protocol == "ai-sdk" else AGUIEvents(RUN_INPUT)

    for name in ALL:
        payloads = logs[name].payloads
        whole = list(replay(fresh(), payloads))
        assert whole == list(replay(fresh(), payloads)), "the translation is not deterministic"
        ids = [sse_id for sse_id, _ in whole]
        assert len(set(ids)) == len(ids)
        order = [(seq, part or float("inf")) for seq, part in map(parse_cursor, ids)]
        assert order == sorted(order)  # "12.1", "12.2", then "12" (the entry's last chunk)
        for seen, cursor in cursors(whole):
            assert whole[:seen] + list(replay(fresh(), payloads, after=cursor)) == whole, (name, cursor)
            assert list(replay(fresh(), payloads, skip=seen)) == whole[seen:], (name, seen)
        for payload in payloads:  # a reader that kept the native log's seq (Last-Event-ID / ?after=)
            seq = payload["seq"]
            before = [c for c in whole if parse_cursor(c[0])[0] <= seq]
            assert before + list(replay(fresh(), payloads, after=seq)) == whole


def test_a_reader_cut_after_every_seq_ends_in_the_same_client_state(logs: dict[str, RunLog]) -> None:
    cases, expect = [], []
    for name in ALL:
        payloads = logs[name].payloads
        ui_whole, ag_whole = ui_chunks(logs[name]), agui_chunks(logs[name])
        for payload in payloads:
            seq = payload["seq"]
            # The AI SDK's useChat resume: the first connection dies after `seq`, the reconnect
            # (GET /api/chat/{id}/stream) replays the message from its start into a fresh state.
            first = list(replay(UIMessageStream(), payloads[:seq]))
            cases.append(ui_case(ui_sse(first, done=False)))
            cases.append(ui_case(ui_sse(ui_whole), mode="resume"))
            expect.append(("ai-sdk", name))
            # A reader that keeps the cursor: what it got, then the rest after the cursor.
            ag_first = list(replay(AGUIEvents(RUN_INPUT), payloads[:seq]))
            rest = list(replay(AGUIEvents(RUN_INPUT), payloads, after=seq))
            assert ag_first + rest == ag_whole
            cases.append(agui_case(agui_sse(ag_first + rest)))
            expect.append(("ag-ui", name))
    results = iter(run_clients(cases))
    for client, name in expect:
        if client == "ai-sdk":
            cut, resumed = next(results), next(results)
            assert not [e for e in cut["errors"] if "malformed" not in e], (name, cut["errors"])
            assert [r["method"] for r in resumed["requests"]] == ["GET"]
            assert resumed["requests"][0]["url"] == "http://relay.test/api/chat/chat-1/stream"
            assert ui_state(resumed["message"]) == expected_ui(logs[name]), name
        else:
            got = next(results)
            assert agui_state(got["messages"][1:]) == expected_agui(logs[name]), name


def test_close_ends_a_log_that_stopped_without_run_end(logs: dict[str, RunLog]) -> None:
    payloads = logs["parallel-tools"].payloads
    cut = [p for p in payloads if p["seq"] <= 25]  # mid tool call
    ui = list(replay(UIMessageStream(), cut, close=True))
    ag = list(replay(AGUIEvents(RUN_INPUT), cut, close=True))
    assert ui[-1][1] == {"type": "abort", "reason": "the log ended before the run did"}
    assert ag[-1][1]["type"] == "RUN_FINISHED" and ag[-1][1]["result"]["terminal"] == "unknown"
    got = run_clients([ui_case(ui_sse(ui)), agui_case(agui_sse(ag))])
    assert got[0]["errors"] == [] and got[1]["errors"] == []
    states = [p["state"] for p in got[0]["message"]["parts"] if p["type"].startswith("tool-")]
    assert states == ["output-error"]


async def _follow(entries: list[Any]) -> AsyncIterator[Any]:
    for entry in entries:
        await asyncio.sleep(0)
        yield entry


def _body(stream: AsyncIterator[bytes]) -> bytes:
    async def main() -> bytes:
        return b"".join([piece async for piece in stream])

    return asyncio.run(main())


def test_sse_stream_serves_log_entries_as_the_response_body(logs: dict[str, RunLog]) -> None:
    payloads = logs["parallel-tools"].payloads
    entries = [
        LogEntry(
            run=p["run"],
            seq=p["seq"],
            kind=p["kind"],
            data={k: v for k, v in p.items() if k not in ("kind", "run", "seq")},
        )
        for p in payloads
    ]
    whole = ui_chunks(logs["parallel-tools"])
    body = _body(aisdk.sse_stream(_follow(entries)))
    assert body.decode() == ui_sse(whole)
    # A follow read that goes on past the run's end is not read further: the message is finished.
    assert _body(aisdk.sse_stream(_follow([*payloads, *payloads]))) == body
    # Resumed by cursor or by count; cut before the end: no [DONE], as a dropped connection.
    half = len(whole) // 2
    assert _body(aisdk.sse_stream(_follow(payloads), after=whole[half - 1][0])).decode() == ui_sse(
        whole[half:]
    )
    assert _body(aisdk.sse_stream(_follow(payloads), skip=half)).decode() == ui_sse(whole[half:])
    assert not _body(aisdk.sse_stream(_follow(payloads[:20]))).endswith(SSE_DONE)
    ag = _body(agui_adapter.sse_stream(_follow(entries), RUN_INPUT))
    assert ag.decode() == agui_sse(agui_chunks(logs["parallel-tools"]))
    got = run_clients([ui_case(body.decode()), agui_case(ag.decode())])
    assert ui_state(got[0]["message"]) == expected_ui(logs["parallel-tools"])
    assert agui_state(got[1]["messages"][1:]) == expected_agui(logs["parallel-tools"])


def test_a_run_served_by_the_relay_reads_the_same_in_both_clients() -> None:
    """A log as the relay writes it (its run_start entry, coalesced deltas), read back over its SSE."""
    import httpx2

    from midstream.relay.serve import running as relay_running
    from relaysupport import FAST_SETTINGS, payloads, read_sse, relay_book, sim_factory

    with running(relay_book(), speed=0) as sim, relay_running("memory", factory=sim_factory(sim)) as relay:
        body = {"prompt": "What is the weather in Paris and Tokyo?", "settings": FAST_SETTINGS}
        made = httpx2.post(f"{relay}/v1/runs", json=body).json()
        status, events = read_sse(f"{relay}/v1/runs/{made['id']}/events")
    assert status == 200
    log = payloads(events)
    assert log[0]["kind"] == "run_start" and log[-1]["kind"] == "run_end"
    text = log[-1]["message"]["text"]
    outputs = {p["call_id"]: p["content"] for p in log if p["kind"] == "tool_finished"}
    results = {p["call_id"]: p["result"] for p in log if p["kind"] == "tool_finished"}
    assert len(outputs) == 2 and all(isinstance(r, dict) for r in results.values())
    ui = list(replay(UIMessageStream(), log))
    ag = list(replay(AGUIEvents(RUN_INPUT), log))
    got_ui, got_ag = run_clients([ui_case(ui_sse(ui)), agui_case(agui_sse(ag))])
    assert got_ui["errors"] == [] and got_ag["errors"] == []
    steps = ui_state(got_ui["message"])
    assert steps[-1]["text"] == text
    assert {t[0]: t[4] for t in steps[0]["tools"]} == results  # the AI SDK keeps the structured result
    assert {t[2] for t in steps[0]["tools"]} == {"output-available"}
    messages = got_ag["messages"]
    assert messages[-1] == {"id": messages[-1]["id"], "role": "assistant", "content": text}
    assert {m["toolCallId"]: m["content"] for m in messages if m["role"] == "tool"} == outputs


def test_a_cancel_after_a_side_effect_shows_its_compensation(logs: dict[str, RunLog]) -> None:
    log = logs["compensated"]
    booked = next(p["call_id"] for p in log.payloads if p["kind"] == "tool_finished")
    slow = next(p["call_id"] for p in log.payloads if p["kind"] == "tool_failed")
    ui, ag = ui_chunks(log), agui_chunks(log)
    got_ui, got_ag = run_clients([ui_case(ui_sse(ui)), agui_case(agui_sse(ag))])
    assert got_ui["errors"] == [] and got_ag["errors"] == []
    parts = {p.get("toolCallId") or p.get("id"): p for p in got_ui["message"]["parts"]}
    assert parts[booked]["state"] == "output-available"  # it ran ...
    undone = parts[f"compensated-{booked}"]  # ... and was undone: a part that stays in the message
    assert undone["type"] == "data-midstream-compensated" and undone["data"]["status"] == "compensated"
    assert parts[slow]["state"] == "output-error" and parts[slow]["errorText"].startswith("cancelled")
    assert got_ui["chunkTypes"][-1] == "abort"
    assert got_ag["custom"][-2:] == ["midstream.tool_compensated", "midstream.cancelled"]
    tools = {m["toolCallId"]: m["content"] for m in got_ag["messages"] if m["role"] == "tool"}
    assert tools == {booked: "booked A-12", slow: "failed (cancelled): the run was cancelled"}
    assert got_ag["result"] == {"terminal": "cancelled", "reason": "stopped by the user"}


async def _write(store: Any, run_id: str, payloads: list[dict[str, Any]], pause: float = 0.0) -> None:
    await store.create(run_id)
    lease = await store.acquire(run_id, "producer")
    for p in payloads:
        data = {k: v for k, v in p.items() if k not in ("kind", "run", "seq")}
        await store.append(lease, p["kind"], data)
        await asyncio.sleep(pause)
    await store.close(lease, payloads[-1]["terminal"])


def test_sse_stream_reads_an_event_log_with_heartbeats_and_a_trimmed_start(logs: dict[str, RunLog]) -> None:
    from midstream.relay.adapters import PING
    from midstream.relay.stores import MemoryLog

    log = logs["parallel-tools"]
    whole_ui, whole_ag = ui_sse(ui_chunks(log)), agui_sse(agui_chunks(log))

    async def live() -> tuple[bytes, bytes]:
        store = MemoryLog()
        writer = asyncio.ensure_future(_write(store, "r1", log.payloads, pause=0.002))
        await asyncio.sleep(0.01)  # the readers start mid-run and follow
        ui = aisdk.sse_stream(store.read("r1", follow=True, heartbeat=0.001))
        ag = agui_adapter.sse_stream(store.read("r1", follow=True, heartbeat=0.001), RUN_INPUT)
        bodies = await asyncio.gather(_join(ui), _join(ag))
        await writer
        return bodies[0], bodies[1]

    ui_body, ag_body = asyncio.run(live())
    assert PING in ui_body and PING in ag_body  # idle moments while following
    assert ui_body.replace(PING, b"").decode().replace("msg-r1", f"msg-{log.payloads[0]['run']}") == whole_ui
    assert ag_body.replace(PING, b"").decode() == whole_ag.replace(f'"run-{log.name}"', '"run-1"')
    got = run_clients([ui_case(ui_body.decode()), agui_case(ag_body.decode())])
    assert ui_state(got[0]["message"]) == expected_ui(log) and got[0]["errors"] == []
    assert agui_state(got[1]["messages"][1:]) == expected_agui(log) and got[1]["errors"] == []

    async def trimmed() -> tuple[bytes, bytes]:
        store = MemoryLog(max_entries=10)
        await _write(store, "r2", log.payloads)
        ui = await _join(aisdk.sse_stream(store.read("r2")))
        ag = await _join(agui_adapter.sse_stream(store.read("r2"), RUN_INPUT))
        return ui, ag

    ui_body, ag_body = asyncio.run(trimmed())
    assert ui_body.endswith(SSE_DONE)  # the message ended (aborted): there is nothing to resume
    assert b'"messageId":"msg-r2"' in ui_body and b'"runId":"run-1"' in ag_body
    got = run_clients([ui_case(ui_body.decode()), agui_case(ag_body.decode())])
    assert got[0]["chunkTypes"] == ["start", "error", "abort"]
    assert "no longer holds its start" in got[0]["errors"][0]
    assert got[1]["types"] == ["RUN_STARTED", "RUN_ERROR"] and "trimmed" in got[1]["errors"][0]


async def _join(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in stream])
