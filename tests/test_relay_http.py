"""The relay's HTTP API against the simulator: start, read (live and replayed), resume, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from midstream.relay.serve import RelayURL, running
from midstream.relay.stores import SQLiteLog
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import (
    FAST_SETTINGS,
    payloads,
    read_sse,
    redis_url,  # noqa: F401
    relay_book,
    run,
    sim_factory,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(relay_book(), speed=1.0) as url:
        yield url


@pytest.fixture(autouse=True)
def _articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(tmp_path / "articles"))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def relay(request: pytest.FixtureRequest, sim: SimURL, tmp_path: Path) -> Iterator[RelayURL]:
    store = {"memory": "memory", "sqlite": f"sqlite://{tmp_path}/relay.db"}.get(request.param)
    if store is None:
        store = request.getfixturevalue("redis_url")
    with running(store, factory=sim_factory(sim), heartbeat=0.5) as url:
        yield url


def start(relay: str, prompt: str, **body: Any) -> str:
    response = httpx2.post(f"{relay}/v1/runs", json={"prompt": prompt, "settings": FAST_SETTINGS, **body})
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["location"] == made["url"] == f"/v1/runs/{made['id']}"
    return str(made["id"])


def test_a_runs_client_settings_reach_its_client(sim: SimURL) -> None:
    """A run's ``settings.client`` (laid over the server's) configure the client its agent streams with."""
    with running("memory", factory=sim_factory(sim), heartbeat=0.5) as relay:
        tight = {**FAST_SETTINGS, "client": {"max_response_bytes": 200}}
        run_id = start(relay, "What is the weather in Paris and Tokyo?", settings=tight)
        _, events = read_sse(events_url(relay, run_id))
    end = payloads(events)[-1]
    assert end["kind"] == "run_end" and end["terminal"] == "failed"
    assert "max_response_bytes=200" in json.dumps(end)


def events_url(relay: str, run_id: str) -> str:
    return f"{relay}/v1/runs/{run_id}/events"


def test_a_run_streams_every_event_once_in_seq_order(relay: RelayURL) -> None:
    run_id = start(relay, "What is the weather in Paris and Tokyo?")
    status, events = read_sse(events_url(relay, run_id))
    assert status == 200
    got = payloads(events)
    assert [p["seq"] for p in got] == list(range(1, len(got) + 1))
    assert all(p["run"] == run_id for p in got)
    assert [e.event for e in events if e.id] == [p["kind"] for p in got]
    assert [e.id for e in events if e.id] == [str(p["seq"]) for p in got]
    kinds = [p["kind"] for p in got]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and kinds.count("run_end") == 1
    assert got[0]["prompt"] == "What is the weather in Paris and Tokyo?"
    assert got[-1]["terminal"] == "completed"
    assert kinds.count("tool_started") == 2 and kinds.count("tool_finished") == 2
    assert events[0].retry == 3000  # the stream opens with its retry advice
    info = httpx2.get(f"{relay}/v1/runs/{run_id}").json()
    assert (info["state"], info["terminal"], info["last_seq"]) == ("ended", "completed", len(got))
    listed = httpx2.get(f"{relay}/v1/runs").json()["runs"]
    assert run_id in [r["id"] for r in listed]


def test_a_finished_run_replays_and_resumes_exactly(relay: RelayURL) -> None:
    run_id = start(relay, "hello there")
    _, live = read_sse(events_url(relay, run_id))
    full = payloads(live)
    _, replay = read_sse(events_url(relay, run_id))
    assert payloads(replay) == full
    for k in range(len(full)):
        by_header = payloads(read_sse(events_url(relay, run_id), last_event_id=k)[1])
        by_query = payloads(read_sse(events_url(relay, run_id), after=k)[1])
        assert by_header == by_query == full[k:]
    status, _ = read_sse(events_url(relay, run_id), last_event_id=len(full))
    assert status == 204  # at the end of a finished run: EventSource stops reconnecting


def test_unknown_runs_and_bad_cursors(relay: RelayURL) -> None:
    response = httpx2.get(events_url(relay, "r_nope"))
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
    stream = httpx2.get(events_url(relay, "r_nope"), headers={"accept": "text/event-stream"})
    assert stream.status_code == 204
    assert httpx2.get(f"{relay}/v1/runs/r_nope").status_code == 404
    assert httpx2.post(f"{relay}/v1/runs/r_nope/cancel").status_code == 404
    run_id = start(relay, "hello")
    assert httpx2.get(events_url(relay, run_id), params={"after": "x"}).status_code == 400
    assert httpx2.get(events_url(relay, run_id), headers={"last-event-id": "-1"}).status_code == 400


def test_invalid_run_requests_are_refused_with_reasons(relay: RelayURL) -> None:
    for body in (
        {},
        {"prompt": ""},
        {"prompt": "hi", "provider": "nope"},
        {"prompt": "hi", "settings": {"hooks": {"Stop": [{"command": "touch /tmp/x"}]}}},
        {"prompt": "hi", "coalesce": {"buffer_timeout_ms": -1}},
        {"prompt": "hi", "surprise": 1},
        {"prompt": "hi", "settings": {"errors": {"max_retries": -3}}},
        {"prompt": "hi", "settings": {"nonsense": {}}},
    ):
        response = httpx2.post(f"{relay}/v1/runs", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"]
    assert httpx2.post(f"{relay}/v1/runs", content=b"{not json").status_code == 422


def test_a_run_that_cannot_start_ends_failed_in_its_log(relay: RelayURL) -> None:
    run_id = start(relay, "hello", provider="ollama")  # no model for ollama on this server
    got = payloads(read_sse(events_url(relay, run_id))[1])
    assert [p["kind"] for p in got] == ["run_start", "run_end"]
    assert got[-1]["terminal"] == "failed" and "model" in got[-1]["reason"]


def test_a_provider_failure_ends_the_log_failed(relay: RelayURL) -> None:
    run_id = start(relay, "please fail")
    got = payloads(read_sse(events_url(relay, run_id))[1])
    assert got[-1]["kind"] == "run_end" and got[-1]["terminal"] == "failed"


def test_cancel_stops_the_provider_stream_and_ends_the_log_cancelled(relay: RelayURL, sim: SimURL) -> None:
    run_id = start(relay, "slow answer please")
    assert read_sse(events_url(relay, run_id), stop_after=4)[0] == 200
    deadline = time.monotonic() + 10
    while not any(
        p["kind"] == "text_delta" for p in payloads(read_sse(events_url(relay, run_id), stop_after=5)[1])
    ):
        assert time.monotonic() < deadline
    answer = httpx2.post(f"{relay}/v1/runs/{run_id}/cancel", json={"reason": "stop pressed"})
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    again = httpx2.post(f"{relay}/v1/runs/{run_id}/cancel")
    assert again.status_code == 202 and again.json()["cancel_requested"] is False
    got = payloads(read_sse(events_url(relay, run_id))[1])
    assert got[-1]["kind"] == "run_end" and got[-1]["terminal"] == "cancelled"
    assert [p["kind"] for p in got].count("cancel") == 1
    assert next(p for p in got if p["kind"] == "cancel")["reason"] == "stop pressed"
    record = _slow_request(sim, run_id, got)
    assert record["disconnected"] and not record["completed"]
    assert record["tokens_after_disconnect"] == 0


def _slow_request(sim: SimURL, run_id: str, got: list[dict[str, Any]]) -> dict[str, Any]:
    for _ in range(100):
        slow = [r for r in sim.requests() if r["scenario"] == "slow"]
        if slow and slow[-1]["disconnected"]:
            return slow[-1]
        time.sleep(0.05)
    return slow[-1]


def test_coalescing_merges_deltas_and_keeps_the_text(relay: RelayURL) -> None:
    plain = payloads(read_sse(events_url(relay, start(relay, "hello", coalesce={"buffer_timeout_ms": 0})))[1])
    merged = payloads(
        read_sse(events_url(relay, start(relay, "hello", coalesce={"buffer_timeout_ms": 2000})))[1]
    )

    def text(ps: list[dict[str, Any]]) -> str:
        return "".join(p["text"] for p in ps if p["kind"] == "text_delta")

    assert text(plain) == text(merged) != ""
    count = [sum(p["kind"] == "text_delta" for p in ps) for ps in (plain, merged)]
    assert count[1] < count[0]
    assert [p["kind"] for p in merged if p["kind"] != "text_delta"] == [
        p["kind"] for p in plain if p["kind"] != "text_delta"
    ]


def test_a_trimmed_cursor_gets_resync_and_an_idle_run_heartbeats(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"

    async def fill() -> None:
        async with SQLiteLog(path, max_entries=20) as log:
            await log.create("trimmed")
            lease = await log.acquire("trimmed", "test")
            for i in range(200):
                await log.append(lease, "text_delta", {"index": 0, "text": str(i)})
            await log.close(lease, "completed")
            await log.create("idle")

    run(fill())
    with running(f"sqlite://{path}", heartbeat=0.05) as relay:
        status, events = read_sse(events_url(relay, "trimmed"), after=3)
        assert status == 200
        resync = [e for e in events if e.event == "resync"]
        assert len(resync) == 1 and resync[0].id is None
        earliest = json.loads(resync[0].data)["earliest"]
        assert earliest > 4
        assert [p["seq"] for p in payloads(events)] == list(range(earliest, 201))
        with httpx2.stream("GET", events_url(relay, "idle"), timeout=5) as response:
            seen = b""
            for chunk in response.iter_bytes():
                seen += chunk
                if seen.count(b": ping") >= 2:
                    break
        assert b"retry: 3000" in seen


def test_a_reader_started_before_the_first_event_sees_everything(relay: RelayURL) -> None:
    run_id = start(relay, "slow please")
    _, first = read_sse(events_url(relay, run_id), stop_after=1)
    cursor = int(first[-1].id)
    collected = payloads(first)
    while True:
        status, more = read_sse(events_url(relay, run_id), last_event_id=cursor, stop_after=7)
        if status == 204:
            break
        got = payloads(more)
        collected += got
        cursor = got[-1]["seq"]
        if got[-1]["kind"] == "run_end":
            break
    full = payloads(read_sse(events_url(relay, run_id))[1])
    assert collected == full  # disconnected every 7 events while it was live: no gap, no duplicate


def test_the_index_and_health(relay: RelayURL) -> None:
    assert httpx2.get(f"{relay}/healthz").json()["ok"] is True
    assert "POST /v1/runs" in httpx2.get(f"{relay}/").json()["endpoints"].values()


def test_shutdown_cancels_running_runs(sim: SimURL, tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    with running(f"sqlite://{path}", factory=sim_factory(sim)) as relay:
        run_id = start(relay, "slow one")
        read_sse(events_url(relay, run_id), stop_after=3)

    async def check() -> Any:
        async with SQLiteLog(path) as log:
            return await log.status(run_id), (await log.entries(run_id))[-1]

    status, last = run(check())
    assert status.terminal == "cancelled" and last.kind == "run_end"
    _ = asyncio  # the module uses asyncio through run()
