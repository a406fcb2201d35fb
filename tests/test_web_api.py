"""What the relay adds for the web page: ``/`` for browsers, ``/web/<file>``, and a run's summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from midstream.relay.entry import LogEntry
from midstream.relay.serve import RelayURL, running
from midstream.relay.summary import TIMELINE_LIMIT, summarize
from midstream.relay.web import CSP
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import FAST_SETTINGS, payloads, read_sse, relay_book, sim_factory


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(relay_book(), speed=1.0) as url:
        yield url


@pytest.fixture
def relay(sim: SimURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RelayURL]:
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(tmp_path / "articles"))
    with running("memory", factory=sim_factory(sim), heartbeat=0.5) as url:
        yield url


def test_a_browser_gets_the_page_and_anyone_else_the_json_index(relay: RelayURL) -> None:
    page = httpx2.get(f"{relay}/", headers={"accept": "text/html,application/xhtml+xml"}, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP and "'unsafe-inline'" not in CSP
    assert '<script type="module" src="/web/app.js"></script>' in page.text
    index = httpx2.get(f"{relay}/", timeout=10)
    assert index.json()["endpoints"]["a run's figures and timeline"] == "GET /v1/runs/{id}/summary"


@pytest.mark.parametrize(
    ("name", "type_"),
    [("app.js", "text/javascript"), ("heal.js", "text/javascript"), ("style.css", "text/css")],
)
def test_the_pages_files_are_served_from_the_package(relay: RelayURL, name: str, type_: str) -> None:
    response = httpx2.get(f"{relay}/web/{name}", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith(type_)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "name", ["..%2Fweb.py", "..%2F..%2F__init__.py", "web.py", ".hidden.js", "missing.js"]
)
def test_nothing_else_is_served_under_web(relay: RelayURL, name: str) -> None:
    assert httpx2.get(f"{relay}/web/{name}", timeout=10).status_code == 404


def test_a_runs_summary_is_computed_from_its_log(relay: RelayURL) -> None:
    body = {"prompt": "weather in Paris and Tokyo", "settings": FAST_SETTINGS}
    run = httpx2.post(f"{relay}/v1/runs", json=body, timeout=10).json()["id"]
    log = payloads(read_sse(f"{relay}/v1/runs/{run}/events")[1])
    summary = httpx2.get(f"{relay}/v1/runs/{run}/summary", timeout=10).json()
    assert summary["id"] == run and summary["terminal"] == "completed" == log[-1]["terminal"]
    ends = [e for e in log if e["kind"] == "response_end"]
    assert summary["responses"] == len(ends) == 2
    assert summary["tokens"] == {
        "input": sum(e["usage"]["input_tokens"] for e in ends),
        "output": sum(e["usage"]["output_tokens"] for e in ends),
    }
    calls = [e for e in log if e["kind"] == "block_start" and e["type"] == "tool_call"]
    assert [(t["id"], t["name"], t["state"]) for t in summary["tools"]] == [
        (c["id"], "get_weather", "done") for c in calls
    ]
    assert all(t["first_arg_s"] is not None and t["first_arg_s"] >= 0 for t in summary["tools"])
    kinds = [row["kind"] for row in summary["timeline"]]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "text_delta" not in kinds
    assert [row["seq"] for row in summary["timeline"]] == sorted(row["seq"] for row in summary["timeline"])
    times = [row["t"] for row in summary["timeline"]]
    assert times == sorted(times) and summary["duration_s"] == times[-1]
    assert 0 < summary["ttft_s"] <= summary["duration_s"]
    assert httpx2.get(f"{relay}/v1/runs/r_missing/summary", timeout=10).status_code == 404


def entry(seq: int, kind: str, at: float, **data: object) -> LogEntry:
    return LogEntry(run="r", seq=seq, kind=kind, data=data, at=at)


def test_summary_counts_retries_fallbacks_and_keeps_the_timeline_bounded() -> None:
    entries = [entry(1, "run_start", 100.0, prompt="p")]
    entries += [entry(2, "retry", 101.0, reason="max_tokens"), entry(3, "fallback", 102.0, tool="save")]
    entries += [entry(4 + n, "iteration_start", 103.0, iteration=1) for n in range(TIMELINE_LIMIT + 10)]
    summary = summarize(entries)
    assert summary["retries"] == 1 and summary["fallbacks"] == 1 and summary["prompt"] == "p"
    assert len(summary["timeline"]) == TIMELINE_LIMIT and summary["timeline_cut"] == 13
    assert summary["terminal"] is None and summary["duration_s"] == 3.0  # still going: up to its last entry
    assert summarize([])["timeline"] == [] and summarize([])["ttft_s"] is None


def test_a_workflows_interleaved_agents_are_summed_and_timed_apart() -> None:
    def e(seq: int, kind: str, agent: str, at: float, **data: object) -> LogEntry:
        return LogEntry(run="r", seq=seq, kind=kind, data={**data, "agent_run": agent}, agent=agent, at=at)

    usage = {"input_tokens": 10, "output_tokens": 5}
    entries = [
        entry(1, "run_start", 0.0, prompt="p"),
        e(2, "response_start", "a", 0.1, usage={"input_tokens": 10, "output_tokens": 0}),
        e(3, "response_start", "b", 0.2, usage={"input_tokens": 7, "output_tokens": 0}),
        e(4, "block_start", "a", 0.3, index=0, type="tool_call", id="ta", name="save"),
        e(5, "block_start", "b", 0.4, index=0, type="tool_call", id="tb", name="search"),
        e(6, "tool_args_delta", "b", 0.6, index=0, fragment="{"),
        e(7, "tool_args_delta", "a", 0.9, index=0, fragment="{"),
        e(8, "response_end", "a", 1.0, usage=usage),
        e(9, "usage_update", "b", 1.1, usage={"input_tokens": 7, "output_tokens": 3}),
    ]
    summary = summarize(entries)
    assert [(t["id"], t["first_arg_s"]) for t in summary["tools"]] == [("ta", 0.6), ("tb", 0.2)]
    assert summary["tokens"] == {"input": 17, "output": 8} and summary["responses"] == 2
    assert [r.get("agent") for r in summary["timeline"] if r["kind"] == "first argument"] == ["b", "a"]
