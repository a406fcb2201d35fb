"""Hooks: decisions and how they combine, isolation of bad hooks, shell hooks, the streaming monitor."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from midstream.agent.hooks import (
    HOOK_EVENTS,
    HookInput,
    HookResult,
    Hooks,
    StreamingMonitor,
)
from midstream.config import MetricsSettings, Settings
from midstream.core.toolargs import ToolTracker
from midstream.errors import LocalError
from midstream.events import BlockStart, BlockStop, ResponseStart, ToolArgsDelta


def test_the_events_are_exactly_those_of_the_issue() -> None:
    assert HOOK_EVENTS == (
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PermissionRequest",
        "PostToolUse",
        "PostToolUseFailure",
        "Stop",
        "StreamStart",
        "FirstToken",
        "StreamError",
        "Cancel",
    )
    with pytest.raises(LocalError, match="unknown hook event"):
        Hooks().add("BeforeTool", lambda e: None)  # type: ignore[arg-type]
    with pytest.raises(LocalError, match="regular expression"):
        Hooks().add("PreToolUse", lambda e: None, matcher="(")
    with pytest.raises(LocalError, match="positive"):
        Hooks().add("PreToolUse", lambda e: None, timeout=0)


@pytest.mark.anyio
async def test_deny_blocks_a_tool() -> None:
    hooks = Hooks(session_id="s1")
    seen: list[HookInput] = []

    @hooks.on("PreToolUse", matcher="delete_.*")
    def no_deletes(event: HookInput) -> HookResult:
        seen.append(event)
        return HookResult("deny", reason="deleting is not allowed")

    denied = await hooks.authorize_tool(tool_name="delete_file", tool_input={"path": "x"}, tool_call_id="c1")
    assert not denied.allowed
    assert denied.reason == "deleting is not allowed"
    assert [o.hook for o in denied.outcomes] == [no_deletes.__qualname__]
    assert seen[0].tool_name == "delete_file" and seen[0].session_id == "s1" and seen[0].tool_call_id == "c1"
    allowed = await hooks.authorize_tool(tool_name="delete_files_not", tool_input={}, tool_call_id="c2")
    assert not allowed.allowed  # fullmatch: delete_files_not matches delete_.*
    other = await hooks.authorize_tool(tool_name="read_file", tool_input={"path": "x"})
    assert other.allowed and other.outcomes == () and other.tool_input == {"path": "x"}


@pytest.mark.anyio
async def test_combining_any_deny_wins_then_ask_then_allow() -> None:
    hooks = Hooks()
    hooks.add("PreToolUse", lambda e: {"decision": "allow", "reason": "fine"})
    hooks.add("PreToolUse", lambda e: None)
    hooks.add("PreToolUse", lambda e: {"decision": "ask", "reason": "sure?"}, matcher="write")
    hooks.add("PreToolUse", lambda e: {"decision": "deny", "reason": "no"}, matcher="rm")
    hooks.add("PreToolUse", lambda e: {"decision": "deny", "reason": "never"}, matcher="rm|write_not")

    report = await hooks.run("PreToolUse", tool_name="rm", tool_input={})
    assert (report.decision, report.reason, report.denied) == ("deny", "no; never", True)
    report = await hooks.run("PreToolUse", tool_name="write", tool_input={})
    assert (report.decision, report.reason) == ("ask", "sure?")
    report = await hooks.run("PreToolUse", tool_name="read", tool_input={})
    assert (report.decision, report.reason) == ("allow", "fine")
    assert len(report.outcomes) == 2


@pytest.mark.anyio
async def test_ask_goes_to_permission_request() -> None:
    hooks = Hooks()
    hooks.add("PreToolUse", lambda e: HookResult("ask", reason="writes outside the project"))
    no_answer = await hooks.authorize_tool(tool_name="write", tool_input={"p": 1})
    assert (no_answer.allowed, no_answer.asked, no_answer.reason) == (
        False,
        True,
        "writes outside the project",
    )
    asked: list[HookInput] = []

    @hooks.on("PermissionRequest")
    async def grant(event: HookInput) -> HookResult:
        asked.append(event)
        return HookResult("allow", reason="the user said yes", updated_input={"p": 2})

    granted = await hooks.authorize_tool(tool_name="write", tool_input={"p": 1}, tool_call_id="c9")
    assert (granted.allowed, granted.asked, granted.reason) == (True, True, "the user said yes")
    assert granted.tool_input == {"p": 2}
    assert asked[0].data["reason"] == "writes outside the project" and asked[0].tool_call_id == "c9"
    assert [r.event for r in granted.reports] == ["PreToolUse", "PermissionRequest"]


@pytest.mark.anyio
async def test_modified_input_is_applied_in_order() -> None:
    hooks = Hooks()
    seen: list[dict[str, Any] | None] = []

    def add_limit(event: HookInput) -> dict[str, Any]:
        seen.append(event.tool_input)
        return {"updated_input": {**(event.tool_input or {}), "limit": 10}}

    async def lower_query(event: HookInput) -> HookResult:
        seen.append(event.tool_input)
        assert event.tool_input is not None
        return HookResult(updated_input={**event.tool_input, "query": event.tool_input["query"].lower()})

    hooks.add("PreToolUse", add_limit)
    hooks.add("PreToolUse", lower_query)
    original = {"query": "HeLLo"}
    report = await hooks.run("PreToolUse", tool_name="search", tool_input=original)
    assert seen == [{"query": "HeLLo"}, {"query": "HeLLo", "limit": 10}]
    assert report.tool_input == {"query": "hello", "limit": 10}
    assert report.input_modified and report.decision is None
    assert original == {"query": "HeLLo"}
    untouched = await Hooks().run("PreToolUse", tool_name="search", tool_input=original)
    assert not untouched.input_modified and untouched.tool_input is original


@pytest.mark.anyio
async def test_additional_context_from_session_start_and_prompt_submit() -> None:
    hooks = Hooks()
    hooks.add("SessionStart", lambda e: HookResult(additional_context="repo: midstream"))
    hooks.add("SessionStart", lambda e: {"additional_context": "branch: main"})
    hooks.add("UserPromptSubmit", lambda e: {"additional_context": f"prompt had {len(e.prompt or '')} chars"})
    start = await hooks.run("SessionStart", source="startup")
    assert start.additional_context == ("repo: midstream", "branch: main")
    assert start.context == "repo: midstream\n\nbranch: main"
    submit = await hooks.run("UserPromptSubmit", prompt="fix it")
    assert submit.context == "prompt had 6 chars"


@pytest.mark.anyio
async def test_matcher_is_ignored_for_events_without_a_tool() -> None:
    hooks = Hooks()
    hooks.add("Stop", lambda e: {"reason": "seen"}, matcher="only_this_tool")
    assert len((await hooks.run("Stop", stop_reason="end_turn")).outcomes) == 1
    hooks.add("PostToolUse", lambda e: None, matcher="")
    hooks.add("PostToolUse", lambda e: None, matcher="*")
    assert len((await hooks.run("PostToolUse", tool_name="anything")).outcomes) == 2


@pytest.mark.anyio
async def test_raising_hanging_and_nonsense_hooks_do_not_break_the_run() -> None:
    hooks = Hooks(default_timeout=5.0)

    def raises(event: HookInput) -> None:
        raise RuntimeError("hook bug")

    async def hangs(event: HookInput) -> None:
        await asyncio.sleep(60)

    woke = threading.Event()

    def sleeps(event: HookInput) -> None:
        time.sleep(3)  # a sync hook that blocks: it runs in a daemon thread, the run does not wait
        woke.set()

    hooks.add("PreToolUse", raises)
    hooks.add("PreToolUse", hangs, timeout=0.05)
    hooks.add("PreToolUse", sleeps, timeout=0.05)
    hooks.add("PreToolUse", lambda e: "deny", name="returns a str")
    hooks.add("PreToolUse", lambda e: {"decision": "maybe"}, name="bad decision")
    hooks.add("PreToolUse", lambda e: {"decision": "deny", "reason": "still counted"}, name="denier")
    report = await hooks.run("PreToolUse", tool_name="t", tool_input={})
    assert not woke.is_set()  # the report came while the blocking hook still slept
    assert [(o.hook, o.status) for o in report.outcomes] == [
        (raises.__qualname__, "error"),
        (hangs.__qualname__, "timeout"),
        (sleeps.__qualname__, "timeout"),
        ("returns a str", "error"),
        ("bad decision", "error"),
        ("denier", "ok"),
    ]
    assert report.outcomes[0].reason == "RuntimeError: hook bug"
    assert report.outcomes[1].reason == "no answer within 0.05 s"
    assert report.outcomes[1].duration >= 0.05
    assert "decision must be one of" in (report.outcomes[4].reason or "")
    assert (report.decision, report.reason) == ("deny", "still counted")
    assert len(report.failures) == 5
    assert hooks.stats == {"ok": 1, "error": 3, "timeout": 2}


@pytest.mark.anyio
async def test_failing_hooks_fail_open() -> None:
    hooks = Hooks()
    hooks.add("PreToolUse", lambda e: 1 / 0)
    permission = await hooks.authorize_tool(tool_name="t", tool_input={"a": 1})
    assert permission.allowed and permission.outcomes[0].status == "error"


@pytest.mark.anyio
async def test_cancellation_of_the_caller_propagates() -> None:
    hooks = Hooks()
    entered = asyncio.Event()

    async def slow(event: HookInput) -> None:
        entered.set()
        await asyncio.sleep(60)

    hooks.add("Stop", slow)

    async def main() -> None:
        task = asyncio.create_task(hooks.run("Stop"))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    await main()
    assert hooks.stats == {}


# -- shell hooks ----------------------------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.anyio
async def test_shell_hook_receives_the_documented_json(tmp_path: Path) -> None:
    dump = script(
        tmp_path,
        "dump.sh",
        f'cat > "{tmp_path}/stdin.json"\n'
        f'echo "$MIDSTREAM_HOOK_EVENT $MIDSTREAM_SESSION_ID" > "{tmp_path}/env.txt"\n',
    )
    hooks = Hooks(session_id="run-7")
    hooks.add_command("PreToolUse", dump, matcher="write_file")
    report = await hooks.run(
        "PreToolUse",
        tool_name="write_file",
        tool_input={"path": "a.txt", "n": [1, 2]},
        tool_call_id="toolu_01",
        iteration=2,
    )
    assert report.outcomes[0].status == "ok" and report.decision is None
    assert report.outcomes[0].hook.startswith("command: ")
    received = json.loads((tmp_path / "stdin.json").read_text())
    assert received == {
        "hook_event_name": "PreToolUse",
        "session_id": "run-7",
        "tool_name": "write_file",
        "tool_input": {"path": "a.txt", "n": [1, 2]},
        "tool_call_id": "toolu_01",
        "prompt": None,
        "iteration": 2,
    }
    assert (tmp_path / "env.txt").read_text() == "PreToolUse run-7\n"


@pytest.mark.anyio
async def test_shell_exit_2_blocks_with_stderr_as_reason(tmp_path: Path) -> None:
    block = script(tmp_path, "block.sh", "cat > /dev/null\necho 'no writes on Fridays' >&2\nexit 2\n")
    hooks = Hooks()
    hooks.add_command("PreToolUse", block)
    permission = await hooks.authorize_tool(tool_name="write_file", tool_input={})
    assert not permission.allowed
    assert permission.reason == "no writes on Fridays"
    assert permission.outcomes[0].status == "ok" and permission.outcomes[0].decision == "deny"


@pytest.mark.anyio
async def test_shell_other_exit_codes_are_failures_not_blocks(tmp_path: Path) -> None:
    hooks = Hooks()
    hooks.add_command("PreToolUse", "echo oops >&2; exit 1")
    hooks.add_command("PreToolUse", "definitely-not-a-command-xyz")
    hooks.add_command("PreToolUse", "echo 'not json'")
    permission = await hooks.authorize_tool(tool_name="t", tool_input={})
    assert permission.allowed
    statuses = [(o.status, o.reason) for o in permission.outcomes]
    assert statuses[0] == ("error", "exit code 1: oops")
    assert statuses[1][0] == "error" and (statuses[1][1] or "").startswith("exit code 127")
    assert statuses[2][0] == "error" and "not a JSON decision" in (statuses[2][1] or "")


@pytest.mark.anyio
async def test_shell_json_decision_and_plain_text_context(tmp_path: Path) -> None:
    hooks = Hooks()
    hooks.add_command(
        "PreToolUse",
        "cat > /dev/null; "
        """echo '{"decision": "allow", "reason": "checked", "updated_input": {"x": 2}, "extra": 1}'""",
    )
    report = await hooks.run("PreToolUse", tool_name="t", tool_input={"x": 1})
    assert (report.decision, report.reason, report.tool_input) == ("allow", "checked", {"x": 2})
    hooks.add_command("SessionStart", "echo 'Today is build day.'")
    start = await hooks.run("SessionStart")
    assert start.context == "Today is build day."


def _state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
    except FileNotFoundError:
        return "gone"
    return "?"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.anyio
async def test_shell_hook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hooks = Hooks()
    hooks.add_command("Stop", f'sleep 30 & echo $! > "{pidfile}"; wait', timeout=0.3)
    started = time.monotonic()
    report = await hooks.run("Stop")
    assert time.monotonic() - started < 20  # far less than the 30 s the command would take
    assert report.outcomes[0].status == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _state(pid) in ("gone", "Z")  # the whole process group was killed


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.anyio
async def test_a_background_child_left_by_a_finished_shell_hook_is_killed_at_the_timeout(
    tmp_path: Path,
) -> None:
    # The shell itself exits at once, but the child it left holds stdout open: the hook times out, and
    # the child must not outlive it.
    pidfile = tmp_path / "pid"
    hooks = Hooks()
    hooks.add_command("Stop", f'sleep 30 & echo $! > "{pidfile}"', timeout=0.5)
    report = await hooks.run("Stop")
    assert report.outcomes[0].status == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _state(pid) in ("gone", "Z")


@pytest.mark.anyio
async def test_hooks_from_settings(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    settings = Settings.from_mapping(
        {
            "hooks": {
                "PreToolUse": [
                    {"matcher": "write_.*", "command": f"cat >> '{out}'; echo >> '{out}'", "timeout": 5}
                ],
                "Cancel": [{"command": f"cat >> '{out}'; echo >> '{out}'"}],
            }
        }
    )
    hooks = Hooks.from_settings(settings, session_id="s")
    command = f"cat >> '{out}'; echo >> '{out}'"
    assert len(command) > 60
    assert len(hooks) == 2 and hooks.registered("Cancel") == [f"command: {command[:57]}..."]
    await hooks.run("PreToolUse", tool_name="read_file", tool_input={})
    await hooks.run("PreToolUse", tool_name="write_file", tool_input={})
    await hooks.run("Cancel", reason="user")
    lines = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert [(d["hook_event_name"], d["tool_name"]) for d in lines] == [
        ("PreToolUse", "write_file"),
        ("Cancel", None),
    ]
    assert lines[1]["reason"] == "user"


# -- streaming monitor ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_streaming_monitor_records_per_tool_metrics() -> None:
    clock = Clock()
    monitor = StreamingMonitor(
        MetricsSettings(tool_ready_ms_warn=400, tool_args_bytes_warn=20, invalid_json_warn=1), clock=clock
    )
    tracker = ToolTracker()
    stream: list[tuple[float, Any]] = [
        (0.0, ResponseStart(provider="anthropic")),
        (0.0, BlockStart(index=0, type="tool_call", id="a", name="search")),
        (0.1, ToolArgsDelta(0, '{"query": ')),
        (0.1, BlockStart(index=1, type="tool_call", id="b", name="write_file")),
        (0.2, ToolArgsDelta(0, '"\u00e9t\u00e9"}')),
        (0.3, BlockStop(0)),
        (0.3, ToolArgsDelta(1, '{"path": "a", "content": "xxxxxxxxxx')),
        (0.9, BlockStop(1, complete=False)),
        (1.0, ResponseStart(provider="anthropic")),  # the retry: indices start again
        (1.0, BlockStart(index=0, type="tool_call", id="c", name="write_file")),
        (1.1, ToolArgsDelta(0, '{"path": "a", "content": "x"}}')),
        (1.2, BlockStop(0)),
    ]
    for at, event in stream:
        clock.now = 100.0 + at
        monitor.observe(event)
        for derived in tracker.feed(event):
            monitor.observe(derived)
    monitor.record_fallback("write_file")
    monitor.record_execution("search", ok=True, seconds=0.25)
    monitor.record_execution("search", ok=False)
    search, write = monitor.tools["search"], monitor.tools["write_file"]
    assert (search.calls, search.ready, search.invalid_json, search.incomplete) == (1, 1, 0, 0)
    assert search.args_bytes_total == 18  # UTF-8 bytes of '{"query": "été"}' (16 characters)
    assert search.ready_ms_max == pytest.approx(300)
    assert (search.executions, search.failures, search.execution_ms_total) == (2, 1, pytest.approx(250))
    assert (write.calls, write.ready, write.incomplete, write.invalid_json, write.fallbacks) == (
        2,
        0,
        1,
        1,
        1,
    )
    assert write.args_bytes_max == 36 and write.args_bytes_total == 36 + 30
    assert write.ready_ms_max == pytest.approx(800)
    assert write.ready_ms_mean == pytest.approx((800 + 200) / 2)
    assert monitor.warnings == [
        "write_file: arguments took 800 ms (warn above 400)",
        "write_file: 36 bytes of arguments (warn above 20)",
        "write_file: 1 invalid or incomplete inputs",
        "write_file: 30 bytes of arguments (warn above 20)",
    ]
    data = monitor.as_dict()
    assert data["tools"]["write_file"]["incomplete"] == 1
    assert json.loads(json.dumps(data)) == data
    table = monitor.table().splitlines()
    assert table[0].split()[:3] == ["tool", "calls", "ready"]
    assert table[1].split()[:6] == ["search", "1", "1", "0", "0", "0"]
    assert table[2].split()[:6] == ["write_file", "2", "0", "1", "1", "0"]


@pytest.mark.anyio
async def test_streaming_monitor_time_to_first_token_through_hooks() -> None:
    clock = Clock()
    monitor = StreamingMonitor(MetricsSettings(ttft_ms_warn=500), clock=clock)
    hooks = Hooks()
    monitor.install(hooks)
    assert hooks.registered() == ["StreamingMonitor.stream_start", "StreamingMonitor.first_token"]

    async def main() -> None:
        await hooks.run("StreamStart", provider="anthropic")
        clock.now += 0.25
        await hooks.run("FirstToken")
        await hooks.run("FirstToken")  # a second first token without a new stream is ignored
        await hooks.run("StreamStart")
        clock.now += 0.75
        await hooks.run("FirstToken")

    await main()
    assert monitor.ttft_ms == [pytest.approx(250), pytest.approx(750)]
    assert monitor.warnings == ["time to first token 750 ms (warn above 500)"]


def test_streaming_monitor_can_be_disabled() -> None:
    monitor = StreamingMonitor(MetricsSettings(enabled=False))
    monitor.observe(BlockStart(index=0, type="tool_call", id="a", name="t"))
    assert monitor.tools == {}


def test_hook_input_json_keeps_common_keys_first() -> None:
    event = HookInput(
        hook_event_name="PostToolUse",
        session_id="s",
        tool_name="t",
        tool_input={"a": 1},
        tool_call_id="c",
        prompt=None,
        data={"tool_response": "ok", "tool_name": "spoof"},
    )
    assert list(event.to_json()) == [
        "hook_event_name",
        "session_id",
        "tool_name",
        "tool_input",
        "tool_call_id",
        "prompt",
        "tool_response",
    ]
    assert event.to_json()["tool_name"] == "t"
    assert os.environ.get("MIDSTREAM_HOOK_EVENT") is None  # the hook's environment does not leak back
