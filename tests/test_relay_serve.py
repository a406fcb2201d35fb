"""``midstream serve`` processes on one Redis: start on A, read and cancel on B; kill -9 a reader's relay."""

# ruff: noqa: F811  (pytest fixtures imported from relaysupport)
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import payloads, read_sse, redis_url, relay_book  # noqa: F401
from websupport import Serve, serve_env


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(relay_book(), speed=1.0) as url:
        yield url


@pytest.fixture
def pair(redis_url: str, sim: SimURL, tmp_path: Path) -> Iterator[tuple[Serve, Serve]]:
    env = serve_env(tmp_path)
    common = ["--store", redis_url, "--base-url", sim, "--model", "sim-model"]
    common += ["--tools", "midstream.cli.examples:TOOLS", "--heartbeat", "0.5"]
    a = Serve(*common, env=env)
    try:
        b = Serve(*common, env=env)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


def _start(url: str, prompt: str) -> str:
    body = {"prompt": prompt, "settings": {"errors": {"backoff": {"scale": 0.001}}}}
    response = httpx2.post(f"{url}/v1/runs", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _until_text(url: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, events = read_sse(url, stop_after=6)
        got = payloads(events)
        if any(p["kind"] == "text_delta" for p in got):
            return got
    raise AssertionError("no text arrived")


def test_a_run_started_on_a_is_read_and_cancelled_through_b(pair: tuple[Serve, Serve], sim: SimURL) -> None:
    a, b = pair
    run_id = _start(a.url, "a slow answer, please")
    on_b = f"{b.url}/v1/runs/{run_id}/events"
    _until_text(on_b)
    answer = httpx2.post(f"{b.url}/v1/runs/{run_id}/cancel", json={"reason": "stop pressed on B"}, timeout=10)
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    got = payloads(read_sse(on_b)[1])
    assert got[-1]["kind"] == "run_end" and got[-1]["terminal"] == "cancelled"
    assert next(p for p in got if p["kind"] == "cancel")["reason"] == "stop pressed on B"
    assert httpx2.get(f"{a.url}/v1/runs/{run_id}", timeout=10).json()["terminal"] == "cancelled"
    record = _slow_record(sim)
    assert record["disconnected"] and not record["completed"]
    assert record["tokens_after_disconnect"] == 0
    assert payloads(read_sse(f"{a.url}/v1/runs/{run_id}/events")[1]) == got  # one log, both relays


def test_kill_9_of_a_readers_relay_the_reader_continues_on_the_other(pair: tuple[Serve, Serve]) -> None:
    a, b = pair
    run_id = _start(a.url, "slow, please")  # produced by A
    seen = _until_text(f"{b.url}/v1/runs/{run_id}/events")  # read through B
    os.killpg(b.proc.pid, signal.SIGKILL)
    b.proc.wait()
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{b.url}/v1/runs/{run_id}", timeout=2)
    _, rest = read_sse(f"{a.url}/v1/runs/{run_id}/events", last_event_id=seen[-1]["seq"])
    resumed = seen + payloads(rest)
    full = payloads(read_sse(f"{a.url}/v1/runs/{run_id}/events")[1])
    assert resumed == full and full[-1]["kind"] == "run_end"
    assert [p["seq"] for p in resumed] == list(range(1, len(full) + 1))


def _slow_record(sim: SimURL) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        slow = [r for r in sim.requests() if r["scenario"] == "slow"]
        if (slow and slow[-1]["disconnected"]) or time.monotonic() > deadline:
            return slow[-1]
        time.sleep(0.05)
