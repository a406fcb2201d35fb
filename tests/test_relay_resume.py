"""The resume matrix: for recorded and simulated runs, disconnect the reader after every seq, resume
(by Last-Event-ID, by ?after=), and compare with an uninterrupted read: no gap, no duplicate, and the
Messages a client rebuilds from the resumed log equal those of the uninterrupted read (and, for the
recorded runs, those of the provider stream decoded directly)."""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream import Message, accumulate, wire
from midstream.agent.serialize import usage_from_dict
from midstream.core.toolargs import with_tool_events
from midstream.events import Event
from midstream.relay.entry import entry_data
from midstream.relay.serve import RelayURL, running
from midstream.relay.stores import SQLiteLog
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import FAST_SETTINGS, payloads, read_sse, relay_book, run, sim_factory
from wiresupport import recorded, sse_from_jsonl

RECORDED_RUNS = {
    "anthropic-tool-use": ("anthropic", "anthropic_tool_use.txt"),
    "anthropic-max-tokens-cut": ("anthropic", "anthropic_max_tokens_tool_input_cut.txt"),
    "anthropic-thinking": ("anthropic", "anthropic_thinking.txt"),
    "openai-chat-parallel-tools": ("openai-chat", "openai_chat_parallel_tool_calls.txt"),
    "openai-responses-text-then-call": ("openai-responses", "openai_responses_text_then_function_call.txt"),
    "gemini-text": ("gemini", "gemini_sse_text.txt"),
    "openai-responses-quota-error": (
        "openai-responses",
        "openai_responses_error_insufficient_quota.chunks.jsonl",
    ),
}


def _body(name: str) -> bytes:
    if name.endswith(".chunks.jsonl"):
        return sse_from_jsonl(name, event_names=True)
    return recorded(name)


def _decoded(run_id: str) -> list[Event]:
    dialect, name = RECORDED_RUNS[run_id]
    decoder = wire.decoder(dialect)
    return [*decoder.feed(_body(name)), *decoder.close()]


STREAM_EVENTS: dict[str, type[Any]] = {cls.kind: cls for cls in typing.get_args(Event)}


def stream_event(payload: dict[str, Any]) -> Event | None:
    """The stream event a log payload carries (None for tool and lifecycle entries): the inverse of
    ``entry_data`` for :mod:`midstream.events`, built from the payload's JSON alone."""
    cls = STREAM_EVENTS.get(payload["kind"])
    if cls is None:
        return None
    fields = {f.name: payload[f.name] for f in dataclasses.fields(cls) if f.name in payload}
    if "usage" in fields:
        fields["usage"] = usage_from_dict(fields["usage"])
    return typing.cast(Event, cls(**fields))


def messages(ps: list[dict[str, Any]]) -> list[Message]:
    """The Message of every response in the log, rebuilt with ``accumulate`` from its stream events (a
    response begins at ``response_start``; a retry or a new iteration begins another)."""
    responses: list[list[Event]] = []
    for p in ps:
        event = stream_event(p)
        if event is None:
            continue
        if p["kind"] == "response_start" or not responses:
            responses.append([])
        responses[-1].append(event)
    return [accumulate(events) for events in responses]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(relay_book(), speed=1.0) as url:
        yield url


@pytest.fixture(scope="module")
def relay(sim: SimURL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayURL]:
    path = tmp_path_factory.mktemp("relay") / "relay.db"
    run(_record_all(path))
    with running(f"sqlite://{path}", factory=sim_factory(sim)) as url:
        yield url


async def _record_all(path: Path) -> None:
    """Each recorded provider stream, decoded, written as one run's log (as a producer would)."""
    async with SQLiteLog(path) as log:
        for run_id in RECORDED_RUNS:
            await log.create(run_id)
            lease = await log.acquire(run_id, "recorder")
            for event in with_tool_events(_decoded(run_id)):
                kind, data = entry_data(event)
                await log.append(lease, kind, data)
            await log.close(lease, "recorded")


def client_state(ps: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client rebuilds from the payloads: text and tool input per block, ready calls, the end."""
    blocks: dict[tuple[int, int], dict[str, Any]] = {}
    response = 0
    state: dict[str, Any] = {"ready": [], "end": None, "kinds": []}
    for p in ps:
        state["kinds"].append(p["kind"])
        if p["kind"] == "response_start":
            response += 1
        elif p["kind"] in ("text_delta", "thinking_delta", "tool_args_delta"):
            block = blocks.setdefault((response, p["index"]), {"text": "", "args": ""})
            block["args" if p["kind"] == "tool_args_delta" else "text"] += p.get("text") or p.get(
                "fragment", ""
            )
        elif p["kind"] in ("tool_call_ready", "tool_ready"):
            state["ready"].append((p["kind"], p.get("id") or p.get("call_id"), p["input"]))
        elif p["kind"] in ("run_end", "response_end"):
            state["end"] = (p["kind"], p.get("terminal"))
    state["blocks"] = {f"{r}:{i}": b for (r, i), b in sorted(blocks.items())}
    return state


def _matrix(relay: str, run_id: str) -> list[dict[str, Any]]:
    url = f"{relay}/v1/runs/{run_id}/events"
    full = payloads(read_sse(url)[1])
    assert full, run_id
    expected = client_state(full)
    expected_messages = messages(full)
    for k in range(1, len(full) + 1):
        status, head = read_sse(url, stop_after=k)  # the connection drops after seq k
        got = payloads(head)
        assert status == 200 and [p["seq"] for p in got] == list(range(1, k + 1))
        cursor = {"last_event_id": k} if k % 2 else {"after": k}
        status, tail = read_sse(url, **cursor)  # type: ignore[arg-type]
        if k == len(full):
            assert status == 204  # nothing left: EventSource stops
            continue
        resumed = got + payloads(tail)
        assert resumed == full, f"{run_id}: resumed after {k}"
        assert client_state(resumed) == expected
        assert messages(resumed) == expected_messages, f"{run_id}: Messages after resuming at {k}"
    return full


@pytest.mark.parametrize("run_id", list(RECORDED_RUNS))
def test_recorded_runs_resume_exactly_after_every_seq(relay: RelayURL, run_id: str) -> None:
    full = _matrix(relay, run_id)
    assert [p["seq"] for p in full] == list(range(1, len(full) + 1))
    assert messages(full) == [accumulate(_decoded(run_id))]  # the log loses nothing of the stream


def _start(relay: str, prompt: str, **body: Any) -> str:
    response = httpx2.post(f"{relay}/v1/runs", json={"prompt": prompt, "settings": FAST_SETTINGS, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


SIMULATED = {
    "text": ("hello, relay", {}),
    "parallel-tools": ("What is the weather in Paris and Tokyo?", {}),
    "max-tokens-retry": ("save the article", {"max_tokens": 12}),
    "failure": ("this one should fail", {}),
}


@pytest.mark.parametrize("name", list(SIMULATED))
def test_simulated_runs_resume_exactly_after_every_seq(relay: RelayURL, name: str) -> None:
    prompt, options = SIMULATED[name]
    run_id = _start(relay, prompt, **options)
    full = _matrix(relay, run_id)
    kinds = [p["kind"] for p in full]
    assert kinds[-1] == "run_end"
    if name == "max-tokens-retry":
        assert "retry" in kinds and kinds.count("tool_started") == 1
    if name == "parallel-tools":
        assert kinds.count("tool_ready") == 2
    if name == "failure":
        assert full[-1]["terminal"] == "failed"
    else:  # the last Message rebuilt from the log is the one the agent ended with
        last, ended = messages(full)[-1], full[-1]["message"]
        assert (last.text, last.terminal, last.stop_reason) == (
            ended["text"],
            ended["terminal"],
            ended["stop_reason"],
        )


def test_a_cancelled_run_resumes_exactly_after_every_seq(relay: RelayURL) -> None:
    run_id = _start(relay, "slow and then cancelled")
    url = f"{relay}/v1/runs/{run_id}/events"
    deadline = time.monotonic() + 15
    while not any(p["kind"] == "text_delta" for p in payloads(read_sse(url, stop_after=6)[1])):
        assert time.monotonic() < deadline
    assert httpx2.post(f"{relay}/v1/runs/{run_id}/cancel").status_code == 202
    full = _matrix(relay, run_id)
    assert full[-1]["terminal"] == "cancelled"
    assert messages(full)[-1].text  # the text streamed before the cancel is in the rebuilt Message


def test_a_live_reader_disconnecting_every_few_events_misses_nothing(relay: RelayURL) -> None:
    run_id = _start(relay, "slow, live", coalesce={"buffer_timeout_ms": 0})
    url = f"{relay}/v1/runs/{run_id}/events"
    collected: list[dict[str, Any]] = []
    for step in range(10_000):
        cursor = {"last_event_id": collected[-1]["seq"]} if collected and step % 2 else {}
        if collected and not cursor:
            cursor = {"after": collected[-1]["seq"]}
        status, events = read_sse(url, stop_after=3, **cursor)  # type: ignore[arg-type]
        if status == 204:
            break
        collected += payloads(events)
        if collected[-1]["kind"] == "run_end":
            break
    full = payloads(read_sse(url)[1])
    assert collected == full and client_state(collected) == client_state(full)
    assert messages(collected) == messages(full) and messages(full)[-1].text.startswith("This answer")
