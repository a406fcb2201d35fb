"""A failure inside the relay's executor (not the provider's, not the store's) still ends the run's
log: the reader gets ``run_end`` ``failed`` naming the exception's type, and the stream closes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream.relay import runner
from midstream.relay.runner import AgentFactory, RunRequest
from midstream.relay.serve import running
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import FAST_SETTINGS, payloads, read_sse, relay_book, sim_factory

SECRET = "sk-never-shown-0123456789"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(relay_book(), speed=1.0) as url:
        yield url


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory" if request.param == "memory" else f"sqlite://{tmp_path}/relay.db"


class BrokenSetup(AgentFactory):
    """Building the agent raises something the executor does not expect."""

    def __call__(self, request: RunRequest) -> Any:
        raise RuntimeError(f"the tool registry is corrupt (key {SECRET})")


def _read_to_the_end(relay: str, prompt: str) -> list[dict[str, Any]]:
    response = httpx2.post(f"{relay}/v1/runs", json={"prompt": prompt, "settings": FAST_SETTINGS})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    # No heartbeat within the read timeout: a log that never closes fails the read instead of hanging.
    status, events = read_sse(f"{relay}/v1/runs/{run_id}/events", timeout=10)
    assert status == 200
    got = payloads(events)
    assert [p["seq"] for p in got] == list(range(1, len(got) + 1))
    info = httpx2.get(f"{relay}/v1/runs/{run_id}").json()
    assert (info["state"], info["terminal"], info["last_seq"]) == ("ended", "failed", len(got))
    return got


def test_an_agent_setup_that_raises_ends_the_log_failed(store: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="midstream.relay")
    with running(store, factory=BrokenSetup(), heartbeat=60) as relay:
        got = _read_to_the_end(relay, "hello")
    assert [p["kind"] for p in got] == ["run_start", "run_end"]
    end = got[-1]
    assert end["terminal"] == "failed" and end["error"] == "RuntimeError"
    assert "RuntimeError" in end["reason"]
    assert SECRET not in str(got)  # the exception's text stays on the server
    assert SECRET in caplog.text and "Traceback" in caplog.text


def test_a_failure_in_the_executor_loop_mid_run_ends_the_log_failed(
    store: str, sim: SimURL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = runner.entry_data

    def encode(event: Any) -> tuple[str, dict[str, Any]]:
        kind, data = real(event)
        if kind == "tool_ready":
            raise LookupError(f"no encoder for {kind} ({SECRET})")
        return kind, data

    monkeypatch.setattr(runner, "entry_data", encode)
    caplog.set_level(logging.ERROR, logger="midstream.relay")
    with running(store, factory=sim_factory(sim), heartbeat=60) as relay:
        got = _read_to_the_end(relay, "What is the weather in Paris and Tokyo?")
    kinds = [p["kind"] for p in got]
    assert kinds[0] == "run_start" and kinds.count("run_end") == 1 and kinds[-1] == "run_end"
    assert "tool_ready" not in kinds and "tool_started" not in kinds
    assert "tool_args_delta" in kinds  # what was read before the failure is in the log
    text = "".join(p["text"] for p in got if p["kind"] == "text_delta")
    assert text == "Let me check both cities."
    end = got[-1]
    assert end["terminal"] == "failed" and end["error"] == "LookupError" and "LookupError" in end["reason"]
    assert end["iterations"] == kinds.count("iteration_start") >= 1
    assert SECRET not in str(got)
    assert SECRET in caplog.text
