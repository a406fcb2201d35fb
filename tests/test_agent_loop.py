"""The agent loop against the simulator: tools run only after their response completed, results go back,
concurrency is bounded, unusable input never runs, hooks decide (and cannot break the run), streamed
fields are committed or discarded, checkpoints resume without repeating a call, and the sync wrapper."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentsupport import Recorder, check_one_ending, client, collect, fast, index, of, run, run_agent
from midstream.agent import (
    Agent,
    HookNotice,
    Hooks,
    IterationStart,
    RunEnd,
    ToolDenied,
    ToolFailed,
    ToolFinished,
    ToolInvalidInput,
    ToolReady,
    ToolStarted,
    tool,
)
from midstream.agent.checkpoint import Checkpoint
from midstream.agent.hooks import HookInput, HookResult
from midstream.agent.tools import TempFileSink, current_call
from midstream.client.stream import Client
from midstream.core.toolargs import ToolCallInvalid, ToolFieldDelta
from midstream.errors import LocalError
from midstream.events import ResponseEnd
from midstream.sim import ScenarioBook, SimURL

BOOK = ScenarioBook.model_validate(
    yaml.safe_load(
        r"""
scenarios:
  - name: weather
    match: {last_user: "(?i)weather"}
    turns:
      - blocks:
          - text: "Checking both cities."
          - tool_call: {name: get_weather, input: {city: Paris}}
          - tool_call: {name: get_weather, input: {city: Tokyo}}
      - when_tool_result: "(?i)denied|failed|not usable|schema"
        blocks: [{text: "A tool did not work."}]
      - blocks: [{text: "Paris and Tokyo are sunny."}]
  - name: many
    match: {last_user: "(?i)many"}
    turns:
      - blocks:
          - tool_call: {name: slow, input: {n: 1}}
          - tool_call: {name: slow, input: {n: 2}}
          - tool_call: {name: slow, input: {n: 3}}
          - tool_call: {name: slow, input: {n: 4}}
      - blocks: [{text: "All four are done."}]
  - name: broken
    match: {last_user: "(?i)broken json"}
    turns:
      - blocks:
          - tool_call: {name: get_weather, raw: '{"city": "Paris",}'}
          - tool_call: {name: get_weather, input: {city: Tokyo}}
      - blocks: [{text: "One of them worked."}]
  - name: wrong-type
    match: {last_user: "(?i)wrong type"}
    turns:
      - blocks: [{tool_call: {name: get_weather, input: {city: 42}}}]
      - blocks: [{text: "That did not work."}]
  - name: unknown
    match: {last_user: "(?i)unknown tool"}
    turns:
      - blocks: [{tool_call: {name: launch_rocket, input: {}}}]
      - blocks: [{text: "There is no such tool."}]
  - name: forever
    match: {last_user: "(?i)forever"}
    turns:
      - blocks: [{tool_call: {name: get_weather, input: {city: Oslo}}}]
  - name: explode
    match: {last_user: "(?i)explode"}
    turns:
      - blocks: [{tool_call: {name: explode, input: {}}}]
      - blocks: [{text: "It exploded."}]
  - name: file
    match: {last_user: "(?i)write the file"}
    turns:
      - blocks: [{tool_call: {name: write_file, input: {path: notes.txt, content: "line one\nline two\n"}}}]
      - blocks: [{text: "Written."}]
"""
    )
)


class World:
    """The tools of these tests and what they saw."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.inputs: list[dict[str, Any]] = []
        self.active = 0
        self.peak = 0

    def tools(self) -> list[Any]:
        @tool
        def get_weather(city: str) -> str:
            """The weather in a city."""
            self.calls[city] += 1
            self.inputs.append({"city": city})
            return f"{city}: sunny"

        @tool
        async def slow(n: int) -> str:
            """Takes a while."""
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.05)
            self.active -= 1
            self.calls[f"slow{n}"] += 1
            return f"slow {n} done"

        @tool
        def explode() -> str:
            """Always fails."""
            raise RuntimeError("kaboom")

        return [get_weather, slow, explode]


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


def agent_for(url: str, world: World, transport: Any = None, **options: Any) -> Agent:
    options.setdefault("settings", fast())
    extra = options.pop("tools", [])
    return Agent(client(url, transport=transport), [*world.tools(), *extra], **options)


def test_tools_run_after_their_response_completed_and_results_go_back(sim: SimURL) -> None:
    world, recorder = World(), Recorder()

    async def body() -> tuple[list[Any], Any]:
        return await run_agent(agent_for(sim, world, recorder), "weather in Paris and Tokyo?")

    events, result = run(body())
    assert result.terminal == "completed" and result.text == "Paris and Tokyo are sunny."
    assert result.iterations == 2 and world.calls == {"Paris": 1, "Tokyo": 1}
    first_end = index(events, lambda e: isinstance(e, ResponseEnd))
    ready = [i for i, e in enumerate(events) if isinstance(e, ToolReady)]
    started = [i for i, e in enumerate(events) if isinstance(e, ToolStarted)]
    assert len(ready) == 2 and max(ready) < first_end < min(started)  # ready while streaming, run after
    assert [e.iteration for e in of(events, IterationStart)] == [1, 2]
    end = check_one_ending(events)
    assert end.terminal == "completed" and end.iterations == 2 and end.message is not None
    results = recorder.bodies[1]["messages"][2]["content"]
    ids = [e.call_id for e in of(events, ToolReady)]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [
        (ids[0], "Paris: sunny"),
        (ids[1], "Tokyo: sunny"),
    ]
    assert not any(r.get("is_error") for r in results)
    assert set(result.executed) == set(ids) and len(result.turns) == 4
    assert len(sim.simulator.records) >= 2


def test_parallel_calls_run_concurrently_within_the_bound(sim: SimURL) -> None:
    for bound, expected in ((2, 2), (4, 4), (1, 1)):
        world = World()
        settings = fast(tools={"max_concurrency": bound})
        events, result = run(run_agent(agent_for(sim, world, settings=settings), "many tools"))
        assert result.text == "All four are done." and world.peak == expected
        assert sum(world.calls.values()) == 4 and len(of(events, ToolFinished)) == 4


def test_invalid_json_is_never_executed_and_goes_back_wrapped(sim: SimURL) -> None:
    world, recorder = World(), Recorder()
    events, result = run(run_agent(agent_for(sim, world, recorder), "broken json please"))
    raw = '{"city": "Paris",}'
    (invalid,) = of(events, ToolInvalidInput)
    assert (
        invalid.reason == "invalid_json" and invalid.raw == raw and invalid.wrapped == {"INVALID_JSON": raw}
    )
    assert world.calls == {"Tokyo": 1} and result.text == "One of them worked."
    assert len(of(events, ToolStarted)) == 1
    assistant = recorder.bodies[1]["messages"][1]["content"]
    assert assistant[0]["input"] == {"INVALID_JSON": raw} and assistant[1]["input"] == {"city": "Tokyo"}
    error_result, ok_result = recorder.bodies[1]["messages"][2]["content"]
    assert (
        error_result["is_error"] is True
        and '{"INVALID_JSON": "{\\"city\\": \\"Paris\\",}"}' in error_result["content"]
    )
    assert ok_result["content"] == "Tokyo: sunny" and "is_error" not in ok_result
    assert result.turns[1].message is not None
    assert result.turns[1].message.tool_calls[0].input == {"INVALID_JSON": raw}  # recorded as such


def test_wrong_types_and_unknown_tools_are_never_executed(sim: SimURL) -> None:
    world = World()
    events, result = run(run_agent(agent_for(sim, world), "wrong type for the city"))
    (invalid,) = of(events, ToolInvalidInput)
    assert invalid.reason == "schema" and "city" in invalid.error and not world.calls
    assert result.text == "That did not work."
    events, result = run(run_agent(agent_for(sim, world), "call an unknown tool"))
    (invalid,) = of(events, ToolInvalidInput)
    assert invalid.reason == "unknown_tool" and invalid.name == "launch_rocket"
    assert result.text == "There is no such tool." and not of(events, ToolStarted)


def test_max_iterations_ends_the_run_truncated(sim: SimURL) -> None:
    world = World()
    events, result = run(run_agent(agent_for(sim, world), "forever", max_iterations=3))
    assert result.terminal == "truncated" and result.reason == "max_iterations (3) reached"
    assert result.iterations == 3 and world.calls == {"Oslo": 3} and result.text == ""
    assert check_one_ending(events).terminal == "truncated"


def test_a_failing_tool_is_an_error_result_and_post_tool_use_failure(sim: SimURL) -> None:
    world, recorder, seen = World(), Recorder(), []
    hooks = Hooks()
    hooks.add("PostToolUseFailure", lambda e: seen.append(e.to_json()))
    events, result = run(run_agent(agent_for(sim, world, recorder, hooks=hooks), "explode"))
    (failed,) = of(events, ToolFailed)
    assert failed.reason == "error" and failed.error == "RuntimeError: kaboom" and failed.started
    assert result.text == "It exploded."
    (answer,) = recorder.bodies[1]["messages"][2]["content"]
    assert answer["is_error"] is True and "kaboom" in answer["content"]
    assert seen[0]["tool_name"] == "explode" and seen[0]["error"] == "RuntimeError: kaboom"


def test_a_tool_past_its_timeout_fails_and_the_run_goes_on(sim: SimURL) -> None:
    @tool(name="get_weather")
    async def hanging(city: str) -> str:
        """Never answers in time."""
        await asyncio.sleep(10)
        return "late"

    agent = Agent(client(sim), [hanging], settings=fast(tools={"timeout": 0.05}))
    started = time.monotonic()
    events, result = run(run_agent(agent, "weather?"))
    assert time.monotonic() - started < 8  # the tool's 10 s were not waited for
    assert [e.reason for e in of(events, ToolFailed)] == ["timeout", "timeout"]
    assert result.text == "A tool did not work."


# -- hooks -------------------------------------------------------------------------------------------


def test_deny_blocks_a_tool(sim: SimURL) -> None:
    world, recorder = World(), Recorder()
    hooks = Hooks()

    @hooks.on("PreToolUse", matcher="get_.*")
    def no_weather(event: HookInput) -> HookResult:
        return HookResult("deny", reason="no weather today")

    events, result = run(run_agent(agent_for(sim, world, recorder, hooks=hooks), "weather?"))
    assert not world.calls and not of(events, ToolStarted)
    assert [e.reason for e in of(events, ToolDenied)] == ["no weather today"] * 2
    results = recorder.bodies[1]["messages"][2]["content"]
    assert all(r["is_error"] and "denied: no weather today" in r["content"] for r in results)
    assert result.terminal == "completed" and result.text == "A tool did not work."
    notices = [e for e in of(events, HookNotice) if e.event == "PreToolUse"]
    assert len(notices) == 2 and all(n.outcome.decision == "deny" and n.call_id for n in notices)


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_hooks_that_raise_hang_or_exit_non_zero_do_not_break_the_run(sim: SimURL, tmp_path: Path) -> None:
    world = World()
    hooks = Hooks(default_timeout=5.0)

    async def hangs(event: HookInput) -> None:
        await asyncio.sleep(30)

    for event in ("SessionStart", "UserPromptSubmit", "StreamStart", "FirstToken", "Stop", "PostToolUse"):
        hooks.add(event, lambda e: 1 / 0, name=f"raises on {event}")
    hooks.add("PreToolUse", lambda e: 1 / 0, name="raises")
    hooks.add("PreToolUse", hangs, timeout=0.05, name="hangs")
    hooks.add_command("PreToolUse", script(tmp_path, "fails.sh", "echo broken >&2\nexit 1\n"))
    hooks.add_command("PreToolUse", "echo 'not json'")
    started = time.monotonic()
    events, result = run(run_agent(agent_for(sim, world, hooks=hooks), "weather?"))
    assert time.monotonic() - started < 20  # the hanging hook's 30 s were not waited for
    assert result.terminal == "completed" and world.calls == {"Paris": 1, "Tokyo": 1}
    statuses = Counter((n.event, n.status) for n in of(events, HookNotice))
    assert statuses[("PreToolUse", "timeout")] == 2 and statuses[("PreToolUse", "error")] == 6
    assert statuses[("FirstToken", "error")] == 2 and statuses[("Stop", "error")] == 1
    assert hooks.stats["error"] >= 12 and hooks.stats["timeout"] == 2
    failed = [n.outcome.reason for n in of(events, HookNotice) if n.outcome.hook.startswith("command: /")]
    assert failed == ["exit code 1: broken"] * 2


def test_a_shell_hook_receives_the_documented_json_and_exit_2_blocks(sim: SimURL, tmp_path: Path) -> None:
    world = World()
    dump = tmp_path / "seen"
    dump.mkdir()
    hooks = Hooks()
    hooks.add_command("PreToolUse", f"cat > $(mktemp -p {dump})", matcher="get_weather")
    hooks.add_command(
        "PreToolUse",
        script(tmp_path, "block.sh", 'grep -q Tokyo && { echo "not Tokyo" >&2; exit 2; }\nexit 0\n'),
    )
    agent = agent_for(sim, world, hooks=hooks)
    run_ = agent.run("weather?")
    events, _ = run(collect(run_))
    seen = [json.loads(path.read_text()) for path in dump.iterdir()]
    ids = {e.input["city"]: e.call_id for e in of(events, ToolReady)}
    assert sorted(seen, key=lambda s: s["tool_input"]["city"]) == [
        {"hook_event_name": "PreToolUse", "session_id": run_.session_id, "tool_name": "get_weather",
         "tool_input": {"city": city}, "tool_call_id": ids[city], "prompt": None}
        for city in ("Paris", "Tokyo")
    ]  # fmt: skip
    assert list(seen[0]) == [
        "hook_event_name",
        "session_id",
        "tool_name",
        "tool_input",
        "tool_call_id",
        "prompt",
    ]
    (denied,) = of(events, ToolDenied)
    assert denied.call_id == ids["Tokyo"] and denied.reason == "not Tokyo"
    assert world.calls == {"Paris": 1}


def test_session_start_and_prompt_submit_add_context(sim: SimURL, tmp_path: Path) -> None:
    world, recorder = World(), Recorder()
    hooks = Hooks()
    hooks.add_command("SessionStart", "echo 'The user is in Lyon.'")
    hooks.add("UserPromptSubmit", lambda e: {"additional_context": f"Prompt length {len(e.prompt or '')}."})
    run(run_agent(agent_for(sim, world, recorder, hooks=hooks, system="Be brief."), "weather?"))
    first = recorder.bodies[0]
    assert first["system"] == "Be brief.\n\nThe user is in Lyon."
    assert first["messages"][0]["content"] == [
        {"type": "text", "text": "weather?"},
        {"type": "text", "text": "Prompt length 8."},
    ]


def test_a_blocked_prompt_sends_nothing(sim: SimURL) -> None:
    world, recorder = World(), Recorder()
    hooks = Hooks()
    hooks.add("UserPromptSubmit", lambda e: HookResult("deny", reason="off topic"))
    events, result = run(run_agent(agent_for(sim, world, recorder, hooks=hooks), "weather?"))
    assert result.terminal == "cancelled" and result.reason == "the prompt was blocked: off topic"
    assert recorder.bodies == [] and check_one_ending(events).iterations == 0


def test_hooks_may_rewrite_the_input_which_is_validated_again(sim: SimURL) -> None:
    world = World()
    hooks = Hooks()
    hooks.add(
        "PreToolUse",
        lambda e: {"updated_input": {"city": "Lyon"}} if e.tool_input == {"city": "Paris"} else None,
    )
    hooks.add(
        "PreToolUse", lambda e: {"updated_input": {"city": 5}} if e.tool_input == {"city": "Tokyo"} else None
    )
    events, _ = run(run_agent(agent_for(sim, world, hooks=hooks), "weather?"))
    assert world.calls == {"Lyon": 1}
    assert [e.input for e in of(events, ToolStarted)] == [{"city": "Lyon"}]
    (invalid,) = of(events, ToolInvalidInput)
    assert invalid.reason == "schema" and invalid.raw == '{"city": 5}'


def test_ask_needs_a_permission_request_that_allows(sim: SimURL) -> None:
    world = World()
    hooks = Hooks()
    hooks.add("PreToolUse", lambda e: HookResult("ask", reason="sure?"))
    hooks.add(
        "PermissionRequest", lambda e: HookResult("allow") if e.tool_input == {"city": "Paris"} else None
    )
    events, _ = run(run_agent(agent_for(sim, world, hooks=hooks), "weather?"))
    assert world.calls == {"Paris": 1}
    (denied,) = of(events, ToolDenied)
    assert denied.reason == "sure?"


def test_a_broken_event_callback_does_not_break_the_run(sim: SimURL) -> None:
    world, seen = World(), []

    def broken(event: Any) -> None:
        seen.append(event)
        if isinstance(event, ToolStarted):
            raise ValueError("consumer bug")

    run_ = agent_for(sim, world).run("weather?", on_event=broken)
    events, result = run(collect(run_))
    assert result.terminal == "completed" and run_.callback_errors == 2
    assert seen == events  # the callback and the iterator see the same events, in the same order


# -- streamed fields ------------------------------------------------------------------------------------


def file_tool(directory: Path, eager: bool) -> Any:
    @tool(
        eager=eager,
        streams=("content",),
        sink=TempFileSink.factory(lambda i: directory / i["path"], directory=directory),
    )
    def write_file(path: str, content: str) -> str:
        """Write a file."""
        call = current_call()
        assert call is not None
        committed = call.committed["content"]
        return f"{committed.name}: {committed.read_text() == content}"

    return write_file


def test_a_streamed_field_is_committed_when_the_call_runs(sim: SimURL, tmp_path: Path) -> None:
    world = World()
    agent = agent_for(sim, world, tools=[file_tool(tmp_path, eager=True)])
    events, result = run(run_agent(agent, "write the file"))
    assert (tmp_path / "notes.txt").read_text() == "line one\nline two\n"
    assert [e.content for e in of(events, ToolFinished)] == ["notes.txt: True"]
    assert result.text == "Written." and not list(tmp_path.glob(".midstream-*"))


def test_a_streamed_field_of_a_call_cut_short_is_discarded(sim: SimURL, tmp_path: Path) -> None:
    world = World()
    settings = fast(errors={"retry_on_incomplete": False})
    agent = agent_for(sim, world, tools=[file_tool(tmp_path, eager=True)], settings=settings, max_tokens=15)
    partial_files: list[str] = []

    def look(event: Any) -> None:
        if isinstance(event, ToolFieldDelta):
            partial_files.extend(p.read_text() for p in tmp_path.glob(".midstream-*.part"))

    events, result = run(run_agent(agent, "write the file", on_event=look))
    (invalid,) = of(events, ToolCallInvalid)
    assert invalid.reason == "truncated" and invalid.raw.startswith('{"path": "notes.txt", "content": "line')
    assert partial_files and partial_files[-1].startswith("line")  # the sink was writing as it streamed
    assert result.terminal == "truncated" and not of(events, ToolStarted)
    assert list(tmp_path.iterdir()) == []  # no file, and no temporary file left


# -- checkpoints and the sync wrapper -------------------------------------------------------------------


def test_checkpoint_then_resume_runs_each_call_once(sim: SimURL, tmp_path: Path) -> None:
    world, recorder = World(), Recorder()
    settings = fast(tools={"max_concurrency": 1})
    saved: list[Checkpoint] = []

    async def body() -> tuple[Any, Any]:
        agent = agent_for(sim, world, recorder, settings=settings)
        run_ = agent.run("weather?", checkpoint_path=tmp_path / "run.json")

        @run_.on_event
        def stop_after_the_first_tool(event: Any) -> None:
            if isinstance(event, ToolFinished):
                saved.append(run_.checkpoint())
                run_.cancel("stopping after one tool")

        first = await run_
        again = await agent.resume(tmp_path / "run.json")
        return first, again

    first, again = run(body())
    assert first.terminal == "cancelled" and world.calls == {"Paris": 1, "Tokyo": 1}
    (checkpoint,) = saved
    assert checkpoint.iteration == 1 and len(checkpoint.turns) == 2
    assert checkpoint.metadata["results"] and len(checkpoint.executed_call_ids) == 1
    assert [c.input for c in checkpoint.pending_tool_calls] == [{"city": "Tokyo"}]
    assert again.terminal == "completed" and again.text == "Paris and Tokyo are sunny."
    results = recorder.bodies[-1]["messages"][2]["content"]
    assert [r["content"] for r in results] == ["Paris: sunny", "Tokyo: sunny"]
    assert len(again.executed) == 1 and again.session_id == first.session_id


def test_run_sync_with_a_sync_client(sim: SimURL) -> None:
    world, events = World(), []
    with Client("openai-chat", "sim-key", sim, model="sim-model") as sync_client:
        agent = Agent(sync_client, world.tools(), settings=fast())
        result = agent.run_sync("weather?", on_event=events.append)
        again = agent.run_sync("weather?")
    assert result.terminal == again.terminal == "completed" and result.text == "Paris and Tokyo are sunny."
    assert world.calls == {"Paris": 2, "Tokyo": 2} and isinstance(events[-1], RunEnd)
    metrics = agent.monitor.tools["get_weather"]
    assert (metrics.calls, metrics.ready, metrics.executions) == (4, 4, 4)


def test_agent_misuse_is_a_local_error(sim: SimURL) -> None:
    world = World()
    with pytest.raises(LocalError, match="two tools"):
        Agent(client(sim), [*world.tools(), *world.tools()])
    with pytest.raises(LocalError, match="no model"):
        Agent(Client("anthropic", "key", sim), [])
    with pytest.raises(LocalError, match="max_tokens"):
        Agent(client(sim), [], max_tokens=0)


# -- the eager default ------------------------------------------------------------------------------


def _three_tools() -> list[Any]:
    @tool
    def plain(text: str) -> str:
        """No streaming choice of its own."""
        return text

    @tool(eager=False)
    def kept(text: str) -> str:
        """Asks for buffered arguments."""
        return text

    @tool(eager=True)
    def asked(text: str) -> str:
        """Asks for eager arguments."""
        return text

    return [plain, kept, asked]


@pytest.mark.parametrize(("default", "plain_eager"), [(True, True), (False, False), (None, False)])
def test_the_eager_default_in_settings_reaches_tools_that_did_not_choose(
    sim: SimURL, default: bool | None, plain_eager: bool
) -> None:
    """``[streaming.eager] default`` decides for a tool without ``eager=``; a tool's own choice stays."""
    settings = fast() if default is None else fast(streaming={"eager": {"default": default}})
    recorder = Recorder()
    agent = Agent(client(sim, transport=recorder), _three_tools(), settings=settings)
    expected = {"plain": plain_eager, "kept": False, "asked": True}
    assert {s.name: s.eager for s in agent.tool_specs()} == expected
    events, _ = run(run_agent(agent, "hello"))
    (start, *_) = of(events, IterationStart)
    assert set(start.eager) == {"asked", *(["plain"] if plain_eager else [])}
    sent = {t["name"]: t.get("eager_input_streaming", False) for t in recorder.bodies[0]["tools"]}
    assert sent == expected  # what Anthropic is asked for


# -- history ------------------------------------------------------------------------------------------


def test_a_run_with_history_sends_the_conversation_before_the_prompt(sim: SimURL) -> None:
    world, recorder = World(), Recorder()
    _, first = run(run_agent(agent_for(sim, world), "weather in Paris and Tokyo?"))
    assert first.terminal == "completed" and first.message is not None
    history = ["weather in Paris and Tokyo?", first.message, {"role": "user", "content": "thanks!"}]
    _, result = run(run_agent(agent_for(sim, world, recorder), "and tomorrow?", history=history))
    assert result.terminal == "completed"
    messages = recorder.bodies[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "weather in Paris and Tokyo?"
    assert messages[1]["content"] == [{"type": "text", "text": first.message.text}]
    # the history's trailing user turn and the prompt are one user turn: turns alternate
    assert [p["text"] for p in messages[2]["content"]] == ["thanks!", "and tomorrow?"]


def test_history_must_be_messages_the_request_can_carry(sim: SimURL) -> None:
    agent = agent_for(sim, World())
    with pytest.raises(LocalError, match="cannot use 42 as a message"):
        agent.run("hi", history=[42])
