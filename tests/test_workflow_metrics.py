"""The streaming metrics file: every definition against values computed by hand on a scripted run."""

from __future__ import annotations

import json
import os
import stat

import pytest

from midstream.agent.events import FallbackNotice, IterationStart, ToolInvalidInput
from midstream.config import AlertSettings, Settings
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady
from midstream.errors import LocalError
from midstream.events import BlockStart, ResponseStart, ToolArgsDelta
from midstream.workflow.metrics import SCHEMA, ErrorLog, MetricsFile, StreamingTally


def _script() -> list[tuple[str, object, float]]:
    """Three calls: architect eager and large, developer buffered and large, qa eager, small, cut."""
    big = '{"document": "' + "a" * 2984 + '"}'  # 3000 bytes in three pieces
    assert len(big) == 3000
    return [
        (
            "architect",
            IterationStart(iteration=1, max_tokens=8000, tools=("handoff",), eager=("handoff",)),
            0.0,
        ),
        ("architect", ResponseStart(provider="anthropic"), 0.0),
        ("architect", BlockStart(index=0, type="tool_call", id="t1", name="handoff"), 0.0),
        ("architect", ToolArgsDelta(index=0, fragment=big[:1000]), 0.5),
        (
            "architect",
            ToolArgsDelta(index=0, fragment=""),
            0.7,
        ),  # an empty fragment is no chunk and no first byte
        ("architect", ToolArgsDelta(index=0, fragment=big[1000:2000]), 1.0),
        ("architect", ToolArgsDelta(index=0, fragment=big[2000:]), 2.0),
        ("architect", ToolCallReady(index=0, id="t1", name="handoff", input={"document": "a" * 2984}), 2.0),
        ("developer", IterationStart(iteration=1, max_tokens=8000, tools=("handoff",), eager=()), 10.0),
        ("developer", ResponseStart(provider="anthropic"), 10.0),
        ("developer", BlockStart(index=0, type="tool_call", id="t2", name="handoff"), 10.0),
        ("developer", ToolArgsDelta(index=0, fragment="d" * 4000), 14.0),
        ("developer", ToolCallReady(index=0, id="t2", name="handoff", input={}), 14.0),
        ("qa", IterationStart(iteration=1, max_tokens=100, tools=("report",), eager=("report",)), 20.0),
        ("qa", ResponseStart(provider="anthropic"), 20.0),
        ("qa", BlockStart(index=0, type="tool_call", id="t3", name="report"), 20.0),
        ("qa", ToolArgsDelta(index=0, fragment="q" * 100), 20.2),
        ("qa", ToolArgsDelta(index=0, fragment="q" * 100), 21.0),
        ("qa", ToolCallInvalid(index=0, id="t3", name="report", raw="q" * 200, reason="truncated"), 21.0),
        ("qa", FallbackNotice(tool="report", invalid=1, iteration=1), 21.0),
    ]


def _tally() -> StreamingTally:
    tally = StreamingTally(large_param_bytes=2048)
    for agent, event, now in _script():
        tally.observe(agent, event, now)
    return tally


def test_each_definition_matches_the_hand_computed_value(tmp_path) -> None:
    data = MetricsFile(tmp_path / "streaming-metrics.json").update(_tally(), now=0)
    # architect: first byte 500 ms, complete 2000 ms -> reduction 1 - 500/2000 = 0.75 (the only large
    # eager call); developer is buffered (its consumer waits 4000 ms); qa is eager but small and cut.
    assert data["latency_reduction"] == pytest.approx(0.75)
    assert data["average_chunk_size"] == pytest.approx((3000 + 4000 + 200) / (3 + 1 + 2))
    assert data["incomplete_json_rate"] == pytest.approx(1 / 3)
    assert data["fallback_rate"] == pytest.approx(1 / 2)  # one fallback, two eager calls
    agents = data["agents"]
    assert agents["architect"]["avg_latency"] == pytest.approx(500)
    assert agents["architect"]["improvement"] == pytest.approx(0.75)
    assert agents["developer"]["avg_latency"] == pytest.approx(4000)
    assert agents["developer"]["improvement"] is None
    assert agents["qa"]["avg_latency"] == pytest.approx(200)
    assert agents["qa"]["improvement"] is None
    assert (agents["qa"]["calls"], agents["qa"]["eager_calls"], agents["qa"]["chunks"]) == (1, 1, 2)
    assert data["schema"] == SCHEMA and data["runs"] == 1
    assert data["updated"] == "1970-01-01T00:00:00Z"
    assert data["last_run"]["latency_reduction"] == data["latency_reduction"]


def test_alerts_at_the_notes_thresholds_and_custom_ones(tmp_path) -> None:
    data = MetricsFile(tmp_path / "m.json").update(_tally())
    assert {(a["metric"], a["agent"]) for a in data["alerts"]} == {
        ("incomplete_json_rate", None),
        ("fallback_rate", None),
    }
    strict = AlertSettings(latency_ms=3000, incomplete_json_rate=None, fallback_rate=0.6)
    data = MetricsFile(tmp_path / "n.json", alerts=strict).update(_tally())
    assert [(a["metric"], a["agent"], a["value"]) for a in data["alerts"]] == [
        ("latency_ms", "developer", 4000.0)
    ]
    assert "developer: average latency 4000 ms is above 3000 ms" in data["alerts"][0]["message"]
    quiet = AlertSettings(min_calls=4)  # rates are not judged on three calls
    assert MetricsFile(tmp_path / "o.json", alerts=quiet).update(_tally())["alerts"] == []


def test_runs_accumulate_and_each_write_is_whole(tmp_path) -> None:
    path = tmp_path / "deep" / "streaming-metrics.json"
    file = MetricsFile(path)
    file.update(_tally())
    second = StreamingTally()
    for agent, event, now in _script()[:8]:  # the architect's call again, alone
        second.observe(agent, event, now)
    data = file.update(second)
    assert data["runs"] == 2
    assert data["agents"]["architect"]["calls"] == 2
    assert data["latency_reduction"] == pytest.approx(0.75)
    assert data["incomplete_json_rate"] == pytest.approx(1 / 4)
    assert data["last_run"]["incomplete_json_rate"] == 0
    assert json.loads(path.read_text()) == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_settings_name_the_file_and_the_thresholds() -> None:
    settings = Settings.from_mapping(
        {"metrics": {"file": "ctx/streaming-metrics.json", "alerts": {"latency_ms": 2500}}}
    )
    assert settings.metrics.file == "ctx/streaming-metrics.json"
    assert settings.metrics.alerts.latency_ms == 2500
    assert settings.metrics.alerts.fallback_rate == 0.10
    with pytest.raises(LocalError, match=r"metrics\.alerts\.fallback_rate"):
        Settings.from_mapping({"metrics": {"alerts": {"fallback_rate": 2}}})


def test_someone_elses_file_is_not_overwritten(tmp_path) -> None:
    path = tmp_path / "streaming-metrics.json"
    path.write_text('{"latency_reduction": "67%"}')
    with pytest.raises(LocalError, match="not a metrics file"):
        MetricsFile(path).update(_tally())
    assert path.read_text() == '{"latency_reduction": "67%"}'


def test_error_log_keeps_the_wrapped_raw_input_private(tmp_path) -> None:
    log = ErrorLog(tmp_path / "streaming-errors.jsonl")
    bad = ToolInvalidInput(
        call_id="t3",
        name="report",
        reason="truncated",
        raw='{"plan": "half',
        wrapped={"INVALID_JSON": '{"plan": "half'},
    )
    log.record("qa", "run-1", bad, now=5.0)
    log.record("qa", "run-1", bad, now=6.0)
    records = log.read()
    assert [r["at"] for r in records] == [5.0, 6.0]
    assert records[0]["wrapped"] == {"INVALID_JSON": '{"plan": "half'}
    assert (records[0]["agent"], records[0]["reason"], records[0]["tool"]) == ("qa", "truncated", "report")
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
