"""Shared fixtures of the relay tests: one real redis-server per test session, and store factories."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from midstream.relay.log import EventLog
from midstream.relay.stores import MemoryLog, RedisLog, SQLiteLog
from midstream.relay.testing import RedisUnavailable, redis_server

T = TypeVar("T")
STORES = ("memory", "sqlite", "redis")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except RedisUnavailable as exc:
        if os.environ.get("CI"):  # make test installs it: a CI run without it must not pass quietly
            raise
        pytest.skip(str(exc))


class StoreMaker:
    """Makes stores of one kind that share one backend (so a second instance plays another process)."""

    def __init__(self, kind: str, tmp: Path, redis: str | None) -> None:
        self.kind, self._path, self._redis = kind, tmp / "relay.db", redis
        self._prefix = f"t{uuid.uuid4().hex[:8]}"
        self._memory: MemoryLog | None = None

    def __call__(self, **options: Any) -> EventLog:
        if self.kind == "memory":
            if options or self._memory is None:
                self._memory = MemoryLog(**options)
            return self._memory
        if self.kind == "sqlite":
            return SQLiteLog(self._path, poll_interval=0.02, **options)
        assert self._redis is not None
        return RedisLog(self._redis, prefix=self._prefix, **options)


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreMaker:
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return StoreMaker(request.param, tmp_path, redis)


StoreFactory = Callable[..., EventLog]


# -- HTTP ------------------------------------------------------------------------------------------

SLOW_TEXT = " ".join(["This answer streams slowly so that it can be cancelled halfway through."] * 6)
FAST = "{ttft_ms: 0, tokens_per_second: 100000, jitter: 0}"
RELAY_SCENARIOS = f"""
scenarios:
  - name: hello
    match: {{last_user: "(?i)^hello"}}
    latency: {FAST}
    turns: [{{blocks: [{{text: "Hello! Every event of this answer has a seq, so a reader can resume."}}]}}]
  - name: weather
    match: {{last_user: "(?i)weather", tools: [get_weather]}}
    latency: {FAST}
    turns:
      - blocks:
          - text: "Let me check both cities."
          - tool_call: {{name: get_weather, input: {{city: Paris, unit: celsius}}}}
          - tool_call: {{name: get_weather, input: {{city: Tokyo, unit: celsius}}}}
      - blocks: [{{text: "Paris and Tokyo: see the forecasts above."}}]
  - name: article
    match: {{last_user: "(?i)article", tools: [save_article]}}
    latency: {FAST}
    turns:
      - blocks:
          - tool_call:
              name: save_article
              input: {{title: Relay, content: "A log per run, a seq per event, resume by seq."}}
      - blocks: [{{text: "Saved."}}]
  - name: slow
    match: {{last_user: "(?i)slow"}}
    latency: {{ttft_ms: 20, tokens_per_second: 40, jitter: 0}}
    turns:
      - blocks:
          - text: "{SLOW_TEXT}"
  - name: fail
    match: {{last_user: "(?i)fail"}}
    faults: {{http_status: 400, times: 1000}}
    turns: [{{blocks: [{{text: "never sent"}}]}}]
"""
FAST_SETTINGS = {"errors": {"backoff": {"scale": 0.001}}}


def relay_book() -> Any:
    import yaml

    from midstream.sim import ScenarioBook

    return ScenarioBook.model_validate(yaml.safe_load(RELAY_SCENARIOS))


def sim_factory(sim_url: str) -> Any:
    from midstream.cli.examples import TOOLS
    from midstream.relay.runner import AgentFactory

    return AgentFactory(
        provider="anthropic", model="sim-model", base_url=sim_url, api_key="sim-key", tools=TOOLS
    )


def read_sse(
    url: str,
    *,
    after: int | None = None,
    last_event_id: int | None = None,
    stop_after: int | None = None,
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, list[Any]]:
    """GET an events URL; the status and the SSE events read (all, or the first ``stop_after`` entries,
    then the connection is dropped)."""
    import httpx2

    from midstream.wire.sse import SSEDecoder

    if after is not None:  # added to the URL's own query (params= would replace it)
        url += ("&" if "?" in url else "?") + f"after={after}"
    sent = dict(headers or {})
    if last_event_id is not None:
        sent["last-event-id"] = str(last_event_id)
    events: list[Any] = []
    decoder = SSEDecoder()
    with httpx2.stream("GET", url, headers=sent, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response]
        for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                events.append(event)
                if stop_after is not None and sum(1 for e in events if _counted(e)) >= stop_after:
                    return 200, events
    return 200, events


def _counted(event: Any) -> bool:
    """An event that stands for a log entry or an adapter chunk (``id`` is the last id seen, so the
    ``resync`` notice and the AI SDK's ``[DONE]`` carry one too: they are left out by name)."""
    return event.id is not None and event.event != "resync" and event.data != "[DONE]"


def payloads(events: list[Any]) -> list[dict[str, Any]]:
    """The JSON payloads of the entries (or adapter chunks) among SSE events."""
    import json

    return [json.loads(e.data) for e in events if _counted(e)]


def chunks(events: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(id, chunk)`` for the adapter chunks among SSE events."""
    import json

    return [(e.id, json.loads(e.data)) for e in events if _counted(e)]
