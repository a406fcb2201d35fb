"""The command line behaves as users of gh, uv, httpie or llm expect.

One exit-status table for every command (in ``--help``), ``-h`` and ``--version``, ``python -m
midstream``, shell completion, an unknown provider refused before anything starts, a port in use or a
bad host as one line and status 2, negative speeds rejected, ``replay`` detecting the dialect and
refusing garbage, and a notice whenever the simulator answers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

import midstream
from midstream.cli import app
from midstream.cli._conventions import EXIT_CODES, exit_code
from wiresupport import RECORDED

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["chat", "demo", "replay", "sim", "run"]
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})


# -- exit statuses -----------------------------------------------------------------------------------


def test_one_exit_table_maps_every_terminal_state() -> None:
    assert {name: code for name, (code, _) in EXIT_CODES.items()} == {
        "completed": 0,
        "failed": 1,
        "usage": 2,
        "truncated": 3,
        "cancelled": 130,
    }
    assert [exit_code(t) for t in ("completed", "failed", "truncated", "cancelled", None)] == [
        0,
        1,
        3,
        130,
        1,
    ]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_shows_the_exit_table_and_no_type_tags(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Exit status (every command):" in result.output
    for code, meaning in EXIT_CODES.values():
        assert f"{code:<4} {meaning}" in result.output
    assert "<bool>" not in result.output  # a flag takes no value


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_dash_h_is_help(command: list[str]) -> None:
    assert invoke(*command, "-h").output == invoke(*command, "--help").output


def test_chat_and_run_help_say_where_keys_come_from() -> None:
    for command in ("chat", "run"):
        output = invoke(command, "--help").output
        assert "ANTHROPIC_API_KEY" in output and "ANTHROPIC_BASE_URL" in output and "OLLAMA_HOST" in output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"midstream {midstream.__version__}\n"


def test_python_dash_m_midstream() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "midstream", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "Usage: python -m midstream [OPTIONS] COMMAND" in done.stdout and "replay" in done.stdout


def test_shell_completion_is_offered() -> None:
    output = invoke("--help").output
    assert "--install-completion" in output and "--show-completion" in output


def test_chat_truncated_exits_3() -> None:
    result = invoke("chat", "--sim", "--speed", "0", "--max-tokens", "3", "Tell me a long story")
    assert result.exit_code == 3, result.output
    assert "truncated (partial output)" in result.output


def test_chat_completed_exits_0_and_says_the_simulator_answered() -> None:
    result = invoke("chat", "--sim", "--speed", "0", "Hello")
    assert result.exit_code == 0, result.output
    assert (
        "simulator: answers come from the embedded provider simulator at http://127.0.0.1:" in result.stderr
    )
    assert "completed" in result.stdout


def test_chat_json_keeps_the_notice_out_of_stdout() -> None:
    result = invoke("chat", "--sim", "--speed", "0", "--json", "Hello")
    assert result.exit_code == 0
    kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
    assert kinds[0] == "response_start" and kinds[-1] == "metrics"
    assert "simulator:" in result.stderr


def test_run_without_sim_asks_the_provider_and_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    result = invoke("run", "What's the weather in Paris?")
    assert result.exit_code == 2
    assert "no key for anthropic: set ANTHROPIC_API_KEY" in result.output and "--sim" in result.output
    assert "simulator:" not in result.output


def test_run_with_sim_says_so() -> None:
    result = invoke("run", "--sim", "--speed", "0", "What's the weather in Paris?")
    assert result.exit_code == 0, result.output
    assert "simulator: answers come from the embedded provider simulator" in result.stderr


# -- providers, speeds -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["chat", "run"])
def test_an_unknown_provider_is_refused_first_with_the_valid_names(command: str) -> None:
    result = invoke(command, "--provider", "foo", "--sim", "hi")
    assert result.exit_code == 2
    assert "unknown provider 'foo'" in result.output
    assert (
        "anthropic, openai-chat, openai-responses, gemini, bedrock, ollama, openai-compatible"
        in result.output
    )
    assert "--model is needed" not in result.output and "simulator:" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "hi", "--sim"],
        ["run", "hi", "--sim"],
        ["sim"],
        ["replay", str(RECORDED / "anthropic_tool_use.txt")],
    ],
    ids=["chat", "run", "sim", "replay"],
)
def test_a_negative_speed_is_refused(command: list[str]) -> None:
    result = invoke(*command, "--speed", "-1")
    assert result.exit_code == 2
    assert "Invalid value for '--speed'" in result.output


# -- sim: port in use, bad host, --port 0 ------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_sim_on_a_port_in_use_is_one_line_and_status_2(busy_port: int) -> None:
    result = invoke("sim", "--port", str(busy_port))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use"


@pytest.mark.parametrize("host", ["no-such-host.invalid", "999.1.1.1"])
def test_sim_on_a_bad_host_is_one_line_and_status_2(host: str) -> None:
    result = invoke("sim", "--host", host)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot listen on {host!r}: not an address or a known host name"


def test_sim_with_port_0_picks_a_free_port_and_prints_the_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "midstream", "sim", "--port", "0", "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("midstream simulator listening on http://127.0.0.1:")
        port = int(first.split("http://127.0.0.1:")[1].split()[0])
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- replay: detection, garbage, the wrong dialect, exit statuses ------------------------------------


def test_replay_detects_the_dialect_and_says_which() -> None:
    result = invoke("replay", str(RECORDED / "openai_chat_text_include_usage.txt"), "--speed", "0")
    assert result.exit_code == 0, result.output
    assert "dialect: openai-chat (detected from SSE payloads" in result.stderr
    assert "completed" in result.stdout


def test_replay_detects_bedrock_from_the_eventstream_prelude() -> None:
    result = invoke("replay", str(RECORDED / "bedrock_converse_stream_tool_use.bin"), "--json")
    assert result.exit_code == 0
    assert "dialect: bedrock (detected from an AWS eventstream prelude" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["kind"] == "response_end"


def test_replay_of_garbage_says_so_and_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("<html><body>502 Bad Gateway</body></html>\n")
    result = invoke("replay", str(junk))
    assert result.exit_code == 1
    assert f"nothing in {junk} is recognisable as a provider stream" in result.output
    assert "truncated" not in result.output


def test_replay_with_the_wrong_dialect_names_the_right_one() -> None:
    capture = RECORDED / "openai_chat_text_include_usage.txt"
    result = invoke("replay", str(capture), "--dialect", "anthropic")
    assert result.exit_code == 2
    assert f"{capture} looks like openai-chat" in result.output and "not anthropic" in result.output


def test_replay_with_a_dialect_given_on_unrecognisable_bytes_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n\nworld\n")
    result = invoke("replay", str(junk), "--dialect", "anthropic", "--speed", "0")
    assert result.exit_code == 1
    assert f"nothing in {junk} decoded as a stream of the anthropic dialect" in result.output


def test_replay_an_unknown_dialect_lists_the_valid_ones() -> None:
    result = invoke("replay", str(RECORDED / "anthropic_tool_use.txt"), "--dialect", "claude")
    assert (
        result.exit_code == 2
        and "unknown dialect 'claude'" in result.output
        and "openai-responses" in result.output
    )


def test_replay_of_a_truncated_stream_exits_3() -> None:
    capture = RECORDED / "anthropic_max_tokens_tool_input_cut.txt"
    assert invoke("replay", str(capture), "--speed", "0").exit_code == 3


def test_replay_of_a_stream_cut_mid_way_exits_3(tmp_path: Path) -> None:
    data = (RECORDED / "anthropic_text_basic.txt").read_bytes()
    cut = tmp_path / "cut.txt"
    cut.write_bytes(data[: len(data) // 2])
    result = invoke("replay", str(cut), "--speed", "0")
    assert result.exit_code == 3 and "truncated (partial output)" in result.output


def test_replay_of_a_failed_stream_exits_1() -> None:
    capture = RECORDED / "ollama_generate_midstream_error_docs_example.ndjson"
    result = invoke("replay", str(capture), "--speed", "0", "--json")
    assert json.loads(result.stdout.splitlines()[-1])["terminal"] == "failed"
    assert result.exit_code == 1


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_the_docs_show_the_same_exit_table(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    table = text[text.index("| status | meaning |") :].split("\n\n")[0].strip().splitlines()[2:]
    rows = [tuple(cell.strip() for cell in row.strip("|").split("|")) for row in table]
    assert rows == [(str(code), meaning) for code, meaning in EXIT_CODES.values()]


def test_the_command_list_cuts_no_summary() -> None:
    listing = invoke("--help").output.split("Commands:")[1].split("Exit status")[0]
    rows = [line.strip() for line in listing.splitlines() if line.strip()]
    assert {row.split()[0] for row in rows} >= set(COMMANDS)
    assert not [row for row in rows if row.endswith("...")]
