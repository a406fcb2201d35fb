"""The command line: help, replay, chat against the simulator, the demo, and a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midstream.cli import app
from wiresupport import RECORDED

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "examples" / "tools.json"
runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "100", **(env or {})})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ([], ["chat", "demo", "replay", "sim"]),
        (
            ["chat"],
            [
                "--provider",
                "--model",
                "--base-url",
                "--tools",
                "--eager",
                "--buffered",
                "--max-tokens",
                "--json",
                "--sim",
            ],
        ),
        (["demo"], ["--speed"]),
        (["replay"], ["--dialect", "--speed", "--json"]),
        (["sim"], ["--port", "--scenarios"]),
    ],
)
def test_help(command: list[str], options: list[str]) -> None:
    code, output = run(*command, "--help")
    assert code == 0
    for option in options:
        assert option in output


def test_replay_json_has_events_and_tool_events() -> None:
    code, output = run("replay", str(RECORDED / "anthropic_tool_use.txt"), "--dialect", "anthropic", "--json")
    assert code == 0
    lines = [json.loads(line) for line in output.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "response_start" and kinds[-1] == "response_end"
    assert lines[0]["id"] == "msg_019Q1hrJbZG26Fb9BQhrkHEr"
    deltas = [line["text"] for line in lines if line["kind"] == "tool_field_delta"]
    assert deltas == ["P", "ar", "is"] and all(
        line["path"] == ["location"] for line in lines if line["kind"] == "tool_field_delta"
    )
    ready = [line for line in lines if line["kind"] == "tool_call_ready"]
    assert ready == [
        {
            "kind": "tool_call_ready",
            "index": 1,
            "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
            "name": "get_weather",
            "input": {"location": "Paris"},
        }
    ]
    assert lines[-1]["terminal"] == "completed" and lines[-1]["usage"]["output_tokens"] == 65


def test_replay_view_shows_the_cut_call_not_executed() -> None:
    code, output = run(
        "replay", str(RECORDED / "anthropic_max_tokens_tool_input_cut.txt"), "-d", "anthropic", "--speed", "0"
    )
    assert code == 3  # truncated
    assert "make_file" in output and "✗ not executed: input truncated" in output
    assert "truncated (partial output)  stop=max_tokens" in output


def test_replay_of_a_missing_file_fails_cleanly() -> None:
    code, output = run("replay", "no-such-file.txt", "-d", "anthropic")
    assert code == 2 and "cannot read no-such-file.txt" in output


def test_chat_against_the_simulator_shows_the_tool_panel() -> None:
    code, output = run("chat", "--sim", "--speed", "0", "--tools", str(TOOLS), "Save an article about rivers")
    assert code == 0
    assert "anthropic · claude-sonnet-4-5" in output
    assert "save_article" in output and "✓ title   example title" in output
    assert "✓ complete, valid input: ready to run" in output
    assert "completed  stop=tool_use" in output and "TTFT" in output


@pytest.mark.parametrize("provider", ["anthropic", "bedrock", "gemini"])
def test_chat_with_a_thinking_budget_leaves_room_for_the_answer(provider: str) -> None:
    """--thinking above the default output budget is not refused (Anthropic requires max_tokens > budget)."""
    args = ["chat", "--sim", "--speed", "0", "--json", "--provider", provider, "--thinking", "2000", "Hello"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["kind"] == "metrics" and lines[-1]["terminal"] == "completed"
    if provider == "anthropic":  # an explicit budget below the thinking's: the provider's own refusal
        explicit = runner.invoke(app, [*args[:-1], "--max-tokens", "1500", "Hello"])
        assert explicit.exit_code == 1 and "`max_tokens` must be greater than" in explicit.output


def test_chat_json_lines_end_with_metrics() -> None:
    result = runner.invoke(
        app,
        [
            "chat",
            "--sim",
            "--speed",
            "0",
            "--json",
            "--provider",
            "openai-chat",
            "--tools",
            str(TOOLS),
            "--max-tokens",
            "12",
            "Save an article",
        ],
    )
    assert result.exit_code == 3  # truncated
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # the simulator notice is on stderr
    assert lines[0]["kind"] == "response_start" and lines[0]["provider"] == "openai-chat"
    invalid = [line for line in lines if line["kind"] == "tool_call_invalid"]
    assert [(i["name"], i["reason"]) for i in invalid] == [("save_article", "truncated")]
    end = next(line for line in lines if line["kind"] == "response_end")
    assert end["stop_reason"] == "max_tokens" and end["terminal"] == "truncated"
    assert lines[-1]["kind"] == "metrics" and lines[-1]["terminal"] == "truncated"
    assert lines[-1]["provider"] == "openai-chat" and lines[-1]["ttft"] > 0


def test_chat_failing_mid_stream_shows_the_partial_answer() -> None:
    faults = ROOT / "examples" / "scenarios" / "faults.yaml"
    code, output = run("chat", "--sim", "--speed", "0", "--scenarios", str(faults), "break mid-stream")
    assert code == 1
    assert "This answer will not finish," in output
    assert "failed (partial output)" in output and "error: overloaded: Overloaded" in output
    assert "stream failed after content arrived" in output


def test_chat_without_a_key_names_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    result = runner.invoke(app, ["chat", "hello"], env={**env, "ANTHROPIC_API_KEY": ""})
    assert result.exit_code == 2
    assert "ANTHROPIC_API_KEY" in result.output


def test_chat_with_a_bad_tools_file(tmp_path: Path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text('{"tools": 3}')
    code, output = run("chat", "--sim", "--tools", str(bad), "hi")
    assert code == 2 and "expected a list of tool objects" in output


def test_demo_runs_every_step() -> None:
    code, output = run("demo", "--speed", "8")
    assert code == 0, output
    steps = [
        "1 · Text streaming",
        "2 · A 500-word tool argument",
        "3 · A tool input cut by max_tokens",
        "4 · Cancel mid-stream",
        "Metrics",
    ]
    positions = [output.index(step) for step in steps]
    assert positions == sorted(positions)
    assert output.count("→ save_article ran: saved “Partial safety” (503 words).") == 2
    assert "→ save_article was not executed: its input was cut short." in output
    assert "✗ not executed: input truncated" in output
    assert "0 after the disconnect" in output, output[output.index("4 ·") :]
    for terminal in ("completed", "truncated", "cancelled"):
        assert f"│ {terminal}" in output


# -- in a real terminal ----------------------------------------------------------------------------

TMUX = shutil.which("tmux")


class Terminal:
    """A tmux server of our own (its own socket), one 100x40 pane running a shell."""

    def __init__(self) -> None:
        self.socket = f"midstream-test-{uuid.uuid4().hex[:8]}"
        # A clean size: COLUMNS / LINES inherited from the test run would override the pane's.
        self.tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "40", "env -u COLUMNS -u LINES sh")
        self.tmux("set-option", "-t", "t", "history-limit", "5000")

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", line, "Enter")

    def screen(self, history: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t", *(["-S", "-"] if history else []))

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The whole scrollback once ``pattern`` (a regex) appears in it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen(history=True)
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} did not appear:\n{self.screen(history=True)}")

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def midstream_command() -> str:
    script = Path(sys.executable).parent / "midstream"
    return str(script) if script.exists() else f"{sys.executable} -m midstream.cli"


@pytest.mark.slow
def test_in_a_terminal_demo_chat_and_ctrl_c(terminal: Terminal) -> None:
    cmd = midstream_command()
    terminal.type(f"cd {ROOT} && {cmd} demo --speed 4; echo demo-exit=$?")
    screen = terminal.wait_for(r"demo-exit=\d", timeout=90)
    assert "demo-exit=0" in screen
    for text in (
        "1 · Text streaming",
        "2 · A 500-word tool argument",
        "Seconds from the request",
        "✗ not executed: input truncated",
        "0 after the disconnect",
        "Metrics (stream.metrics)",
    ):
        assert text in screen
    assert "Traceback" not in screen

    terminal.type("clear")
    terminal.type(f"{cmd} chat --sim --speed 0 --tools {TOOLS} 'Save an article'; echo chat-exit=$?")
    screen = terminal.wait_for(r"chat-exit=\d")
    assert "chat-exit=0" in screen
    assert "╭─ save_article" in screen and "ready to run" in screen

    # Ctrl-C in the middle of a slow answer: cancelled, said so, and the terminal is left usable.
    terminal.type("clear")
    terminal.type(f"{cmd} chat --sim --speed 0.25 'Tell me a long story'; echo chat-exit=$?")
    terminal.wait_for("streaming… [1-9]")
    terminal.tmux("send-keys", "-t", "t", "C-c")
    screen = terminal.wait_for(r"chat-exit=\d")
    assert "chat-exit=130" in screen
    assert "cancelled (partial output)" in screen
    assert "cancelled: the connection was closed" in screen
    assert "Traceback" not in screen
    terminal.type("stty -a | tr ' ' '\\n' | grep -x -e echo -e icanon -e -echo -e -icanon; echo stty-done")
    screen = terminal.wait_for("^stty-done$")
    assert "\necho\n" in screen and "\nicanon\n" in screen
    assert terminal.tmux("display-message", "-p", "-t", "t", "#{cursor_flag}").strip() == "1"
