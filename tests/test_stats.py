"""``midstream stats``: figures from hand-written logs (hand-computed), filters, alerts, and the
command end to end on a relay store, an effects journal and a metrics file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

from midstream.agent.effects import EffectRecord, JsonlJournal
from midstream.cli import app
from midstream.cli._stats import RunFigures, Thresholds, collect, parse_since, run_figures
from midstream.errors import LocalError
from midstream.relay.entry import LogEntry
from midstream.relay.serve import running
from midstream.sim import SimURL
from relaysupport import FAST_SETTINGS, sim_factory


def log(run: str, *rows: tuple[float, str, dict[str, Any]], agent: str | None = None) -> list[LogEntry]:
    return [
        LogEntry(run=run, seq=i, kind=kind, data=data, at=at, agent=agent)
        for i, (at, kind, data) in enumerate(rows, 1)
    ]


WEATHER = log(
    "r1",
    (100.0, "run_start", {"prompt": "weather?", "agent": "planner"}),
    (100.1, "iteration_start", {"iteration": 1}),
    (100.4, "response_start", {}),
    (100.5, "text_delta", {"index": 0, "text": "Let me"}),  # TTFT 0.4
    (100.6, "block_start", {"index": 1, "type": "tool_call", "name": "get_weather"}),
    (100.6, "tool_args_delta", {"index": 1, "fragment": ""}),  # empty: not a byte
    (100.8, "tool_args_delta", {"index": 1, "fragment": '{"city"'}),  # first arg byte 0.7
    (100.9, "tool_args_delta", {"index": 1, "fragment": ': "Paris"}'}),
    (101.0, "tool_started", {"call_id": "c1", "name": "get_weather"}),
    (101.2, "tool_finished", {"call_id": "c1", "name": "get_weather"}),
    (101.3, "iteration_start", {"iteration": 2}),
    (101.5, "retry", {"iteration": 2, "attempt": 1, "delay": 0.5, "reason": "stream_error"}),
    (102.2, "response_start", {}),
    (102.3, "text_delta", {"index": 0, "text": "It is"}),  # TTFT 102.3 - (101.5 + 0.5) = 0.3
    (102.4, "fallback", {"tool": "get_weather", "count": 1}),
    (102.5, "tool_invalid_input", {"call_id": "c2", "name": "save_article", "reason": "truncated"}),
    (103.0, "run_end", {"terminal": "completed"}),
)


def test_a_runs_figures_match_the_hand_computed_ones() -> None:
    figures = run_figures("r1", WEATHER)
    assert figures is not None
    assert figures.agent == "planner" and figures.terminal == "completed"
    assert figures.ttft == pytest.approx([0.4, 0.3])
    assert figures.first_arg == [("get_weather", pytest.approx(0.7))]
    assert figures.retries == 1 and figures.fallbacks == ["get_weather"]
    assert figures.tool_calls == {"get_weather": 1} and figures.invalid == {"save_article": 1}
    assert figures.duration == pytest.approx(3.0)
    assert run_figures("empty", []) is None


def test_a_run_still_going_has_no_duration_and_counts_as_running() -> None:
    figures = run_figures("r2", WEATHER[:5])
    assert figures is not None and figures.terminal is None and figures.duration is None
    assert collect([figures])["terminals"] == {"running": 1}


def _run(run: str, agent: str, started: float, ttft: list[float], **counts: Any) -> RunFigures:
    figures = RunFigures(run, agent, started, terminal="completed", ttft=ttft)
    for key, value in counts.items():
        setattr(figures, key, value)
    return figures


def test_the_summary_filters_by_time_and_agent_and_computes_percentiles() -> None:
    from collections import Counter

    runs = [
        _run("a", "dev", 10.0, [0.1, 0.2]),
        _run("b", "qa", 20.0, [0.3], tool_calls=Counter({"save": 3}), invalid=Counter({"save": 1})),
        _run("c", "dev", 30.0, [0.4, 0.5, 0.6], fallbacks=["save"], retries=2),
    ]
    whole = collect(runs)
    assert whole["runs"] == 3 and whole["ttft"]["count"] == 6
    assert whole["ttft"]["p50_ms"] == pytest.approx(300.0) and whole["ttft"]["p95_ms"] == pytest.approx(600.0)
    assert whole["rates"]["invalid_json_rate"] == pytest.approx(1 / 4)
    assert whole["rates"]["fallback_rate"] == pytest.approx(1 / 4)
    assert whole["agents"]["dev"]["retries"] == 2 and whole["agents"]["dev"]["fallbacks"] == 1
    firing = {a["name"] for a in whole["alerts"] if a["firing"]}
    assert firing == {"invalid_json_rate", "fallback_rate"}
    dev = collect(runs, agent="dev")
    assert dev["runs"] == 2 and set(dev["agents"]) == {"dev"}
    recent = collect(runs, since=15.0)
    assert [t["run"] for t in recent["trend"]] == ["b", "c"]
    assert [t["run"] for t in collect(runs, last=1)["trend"]] == ["c"]
    slow = collect(runs, thresholds=Thresholds(ttft_ms=500.0, invalid_json_rate=1.0, fallback_rate=1.0))
    assert [a["name"] for a in slow["alerts"] if a["firing"]] == ["ttft_p95_ms"]


def test_since_reads_durations_dates_and_seconds() -> None:
    assert parse_since("90s", now=1000.0) == 910.0
    assert parse_since("2h", now=10_000.0) == 2800.0
    assert parse_since("1d", now=100_000.0) == 13_600.0
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since("1970-01-02") == 86_400.0
    assert parse_since("1970-01-01T01:00:00") == 3600.0
    assert parse_since(None) is None
    with pytest.raises(LocalError, match="--since"):
        parse_since("yesterday")


@pytest.fixture
def recorded(sim: SimURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite run store holding three finished runs of the example agent."""
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(tmp_path / "articles"))
    store = f"sqlite://{tmp_path}/runs.db"
    with running(store, factory=sim_factory(sim)) as relay:
        for prompt in ("What is the weather in Paris and Tokyo?", "Hello", "What is the weather in Paris?"):
            made = httpx2.post(f"{relay}/v1/runs", json={"prompt": prompt, "settings": FAST_SETTINGS}).json()
            httpx2.get(f"{relay}/v1/runs/{made['id']}/events", timeout=30)  # until it ends
    yield store


def test_the_command_reads_a_store_a_journal_and_a_metrics_file(recorded: str, tmp_path: Path) -> None:
    journal_path = tmp_path / "effects.jsonl"
    with JsonlJournal(journal_path) as journal:
        for status in ("started", "done", "compensated"):
            journal.append(EffectRecord("c9", "save_article", "k9", status, time=2e9))  # type: ignore[arg-type]
    metrics_path = tmp_path / "streaming-metrics.json"
    metrics_path.write_text(
        json.dumps(
            {
                "schema": "midstream.streaming-metrics/1",
                "runs": 4,
                "latency_reduction": 0.62,
                "fallback_rate": 0.0,
                "agents": {"architect": {"calls": 3, "avg_latency": 812.5, "improvement": 0.71}},
                "alerts": [],
            }
        )
    )
    runner = CliRunner()
    args = ["stats", "--store", recorded, "--journal", str(journal_path), "--metrics-file", str(metrics_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["runs"] == 3 and summary["terminals"] == {"completed": 3}
    assert summary["ttft"]["count"] >= 3 and summary["ttft"]["p50_ms"] > 0
    assert (
        summary["first_arg_byte_by_tool"]["get_weather"]["count"] == summary["tools"]["get_weather"]["calls"]
    )
    assert summary["tools"]["save_article"]["journal"] == {"started": 1, "done": 1, "compensated": 1}
    assert summary["metrics_file"]["fallback_rate"] == 0.0
    text = runner.invoke(app, args)
    assert text.exit_code == 0
    assert "time to first token" in text.output and "first argument byte: get_weather" in text.output
    assert "ok    ttft_p95_ms" in text.output
    assert "TTFT over the last 3 runs" in text.output
    assert "latency_reduction 62.0%" in text.output and "architect" in text.output
    assert "812 ms" in text.output and "71.0%" in text.output
    firing = runner.invoke(app, [*args, "--ttft-ms", "0.001"])
    assert firing.exit_code == 1 and "ALERT ttft_p95_ms" in firing.output
    alert = {
        "metric": "fallback_rate",
        "value": 0.2,
        "threshold": 0.1,
        "message": "fallback rate 20.0% is above 10.0%",
    }
    metrics_path.write_text(json.dumps({"alerts": [alert]}))
    from_file = runner.invoke(app, args)
    assert (
        from_file.exit_code == 1
        and "ALERT (metrics file) fallback rate 20.0% is above 10.0%" in from_file.output
    )
    none = runner.invoke(app, [*args, "--agent", "nobody", "--json"])
    assert json.loads(none.output)["runs"] == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["stats", "--store", "none", "--journal", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no journal" in missing.output
    bad = runner.invoke(app, ["stats", "--store", "none", "--since", "soon"])
    assert bad.exit_code == 2 and "--since" in bad.output
