"""``midstream workflow``: the example workflows on the simulator, lanes in a pipe, JSON lines, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midstream.cli import app
from midstream.config import SettingsError
from midstream.workflow.spec import load_workflow

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"


def _invoke(*args: str, cwd: Path) -> object:
    import os

    before = os.getcwd()
    os.chdir(cwd)  # the example settings write streaming-metrics.json where the command runs
    try:
        return runner.invoke(app, ["workflow", *args, "--speed", "0"], env={"COLUMNS": "120"})
    finally:
        os.chdir(before)


def test_quick_flow_in_a_pipe_prints_lanes_summary_and_metrics(tmp_path: Path) -> None:
    result = _invoke(str(EXAMPLES / "quick.toml"), "Implement the checkout handlers", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "developer → qa handoff (14.3 KB), started at validation" in out
    assert "answer: Implemented and tested: QA found no failures." in out
    assert "workflow completed" in out and "metrics: streaming-metrics.json" in out
    data = json.loads((tmp_path / "streaming-metrics.json").read_text())
    assert data["agents"]["developer"]["eager_calls"] == 1 and data["runs"] == 1


def test_standard_flow_as_json_lines_tags_every_event(tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    result = _invoke(
        str(EXAMPLES / "standard.toml"),
        "Build the checkout platform",
        "--json",
        "--metrics",
        str(metrics),
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"agent", "run", "parent", "kind"} <= set(line) for line in lines)
    starts = [(e["sender"], e["receiver"], e["when"]) for e in lines if e["kind"] == "handoff_start"]
    assert starts == [
        ("orchestrator", "analyst", "validated"),
        ("orchestrator", "pm", "validated"),
        ("orchestrator", "architect", "validated"),
        ("architect", "developer", "validated"),
        ("developer", "qa", "validated"),
        ("qa", "devops", "validated"),
    ]
    board = [e for e in lines if e["kind"] == "blackboard" and e["state"] == "complete"]
    assert [(e["agent"], e["key"], e["version"]) for e in board] == [("devops", "deployment", 1)]
    assert lines[-1]["kind"] == "workflow_end" and lines[-1]["terminal"] == "completed"
    data = json.loads(metrics.read_text())
    # the notes' enablement: analyst and PM stream buffered, the rest eagerly
    assert data["agents"]["architect"]["eager_calls"] == 1
    assert "analyst" not in data["agents"] or data["agents"]["analyst"]["eager_calls"] == 0
    assert 8 * 1024 <= data["agents"]["developer"]["bytes"] <= 20 * 1024


def test_buffered_and_executed_modes_for_comparison(tmp_path: Path) -> None:
    result = _invoke(
        str(EXAMPLES / "quick.toml"),
        "Implement it",
        "--buffered",
        "--start",
        "executed",
        "--json",
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["when"] for e in lines if e["kind"] == "handoff_start"] == ["executed"]
    assert all(e["eager"] == [] for e in lines if e["kind"] == "iteration_start")


def test_a_bad_workflow_file_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('entry = "boss"\nmodel = "m"\n[agents.worker]\nhandoffs = ["nobody"]\n')
    result = _invoke(str(bad), "go", cwd=tmp_path)
    assert result.exit_code == 2
    assert "no agent is called 'boss'" in result.output
    with pytest.raises(SettingsError, match=r"agents\.worker\.max_tokens"):
        bad.write_text("[agents.worker]\nmax_tokens = -1\n")
        load_workflow(bad)
    assert _invoke(str(EXAMPLES / "quick.toml"), "go", "--start", "soon", cwd=tmp_path).exit_code == 2


def test_help_explains_the_command() -> None:
    result = runner.invoke(app, ["workflow", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "one lane" in result.output or "lane" in result.output
    assert "--start" in result.output and "--buffered" in result.output
