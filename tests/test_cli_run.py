"""``midstream run``: an agent with the example tools against the embedded simulator, its live lines,
JSON lines, the settings file, the effects journal across re-runs, recovery, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midstream.agent.effects import JsonlJournal
from midstream.cli import app
from midstream.cli.examples import get_weather, save_article, search

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(autouse=True)
def articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "articles"
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(directory))
    return directory


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--sim", *args, "--speed", "0"], env={"COLUMNS": "120"})
    return result.exit_code, result.output


def fast_settings(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "midstream.toml"
    path.write_text("[errors.backoff]\nscale = 0.001\n" + extra)
    return str(path)


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for option in ("--settings", "--provider", "--base-url", "--journal", "--max-iterations", "--json"):
        assert option in result.output
    assert "run" in runner.invoke(app, ["--help"]).output


def test_a_run_with_tools_shows_its_lifecycle() -> None:
    code, output = run(
        "What is the weather in Paris and Tokyo?", "--settings", str(ROOT / "examples/midstream.toml")
    )
    assert code == 0, output
    lines = output.splitlines()
    assert any(line.startswith("hook SessionStart") and "added context" in line for line in lines)
    assert sum(line.startswith("✓ ready") for line in lines) == 2
    assert sum(line.startswith("▶ started") for line in lines) == 2
    paris = get_weather(city="Paris")
    assert any(
        line.startswith("■ finished") and f'"temperature": {paris["temperature"]}' in line for line in lines
    )
    assert "── iteration 2" in output and lines[-1] == "run completed after 2 iteration(s) (end_turn)"
    assert "I have the forecasts for Paris and Tokyo" in output


def test_json_lines() -> None:
    result = runner.invoke(app, ["run", "--sim", "search for partial safety", "--json", "--speed", "0"])
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]  # the simulator notice is on stderr
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "iteration_start" and kinds[-1] == "run_end" and kinds.count("run_end") == 1
    (started,) = [e for e in events if e["kind"] == "tool_started"]
    assert started["name"] == "search" and started["input"] == {"query": "partial safety", "limit": 3}
    (finished,) = [e for e in events if e["kind"] == "tool_finished"]
    assert finished["result"] == search(query="partial safety", limit=3)
    assert events[-1]["terminal"] == "completed" and events[-1]["message"]["text"].startswith("I found three")
    assert "response_start" in kinds and "tool_field_delta" in kinds and "tool_call_ready" in kinds


def test_the_journal_keeps_a_re_run_from_repeating_a_side_effect(tmp_path: Path, articles: Path) -> None:
    journal = tmp_path / "effects.jsonl"
    code, output = run("save the article", "--journal", str(journal))
    assert code == 0 and "▶ started   save_article" in output
    assert (
        (articles / "partial-safety.md").read_text().startswith("# Partial safety\n\ntags: streaming, agents")
    )
    code, output = run("save the article", "--journal", str(journal))
    assert code == 0 and "already done (journal)" in output and "▶ started" not in output
    with JsonlJournal(journal) as opened:
        assert [r.status for r in opened.records()] == ["started", "done"]
    assert save_article.side_effect and save_article.can_compensate


def test_a_tool_input_cut_by_max_tokens_is_not_executed_then_retried(tmp_path: Path, articles: Path) -> None:
    code, output = run("save the article", "--max-tokens", "40", "--settings", fast_settings(tmp_path))
    assert code == 0, output
    assert "✗ not executed save_article (truncated)" in output
    assert "↻ retry 1 (max_tokens) in 0.0 s, max_tokens 80, restarting the answer" in output
    assert output.count("▶ started   save_article") == 1 and (articles / "partial-safety.md").exists()


def test_truncated_and_failed_runs_have_their_exit_codes(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, "[errors]\nretry_on_incomplete = false\n")
    code, output = run("save the article", "--max-tokens", "20", "--settings", settings)
    assert code == 3 and "run truncated" in output and "▶ started" not in output
    code, output = run("What is the weather?", "--max-iterations", "1")
    assert code == 3 and "max_iterations (1) reached" in output


def test_the_client_section_of_the_settings_reaches_the_client(tmp_path: Path) -> None:
    """``[client]`` limits apply to the run's requests: a tiny response limit stops the first answer."""
    code, output = run("What is the weather?", "--settings", fast_settings(tmp_path))
    assert code == 0, output
    tight = fast_settings(tmp_path, "[client]\nmax_response_bytes = 200\n")
    code, output = run("What is the weather?", "--settings", tight)
    assert code == 1 and "max_response_bytes=200" in output, output


def test_bad_settings_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "midstream.toml"
    bad.write_text("[errors]\nmax_retries = -1\n")
    code, output = run("hello", "--settings", str(bad))
    assert code == 2 and "errors.max_retries" in output and "greater than or equal to 0" in output
    code, output = run("hello", "--provider", "nope")
    assert code == 2 and "unknown provider 'nope'" in output and "--model" not in output
    code, output = run("hello", "--provider", "nope", "--model", "m")
    assert code == 2 and "unknown provider 'nope'" in output


def test_the_lifecycle_lines_of_a_response_follow_its_view() -> None:
    code, output = run(
        "What is the weather in Paris and Tokyo?", "--settings", str(ROOT / "examples/midstream.toml")
    )
    assert code == 0, output
    lines = output.splitlines()
    first_response = next(i for i, line in enumerate(lines) if line.startswith("anthropic · "))
    first_ready = next(i for i, line in enumerate(lines) if line.startswith("✓ ready"))
    first_panel = next(i for i, line in enumerate(lines) if "─ get_weather " in line)
    ended = next(i for i, line in enumerate(lines) if line.startswith("completed  stop=tool_use"))
    assert lines[first_response - 1].startswith("── iteration 1")
    assert first_response < first_panel < ended < first_ready
    started = next(i for i, line in enumerate(lines) if line.startswith("▶ started"))
    assert started > max(i for i, line in enumerate(lines) if line.startswith("✓ ready"))
