"""What the agent tests share: a transport that records request bodies and injects faults per request,
fast settings, and small helpers to run an agent and look at its events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx2

from midstream.agent import Agent, Run, RunResult
from midstream.agent.events import RunEnd
from midstream.client.stream import AsyncClient
from midstream.config import Settings

T = TypeVar("T")
FaultRule = Callable[[int, dict[str, Any]], str | None]


class Recorder(httpx2.AsyncHTTPTransport):
    """Records each request's JSON body; ``faults(n, body)`` (n from 0) may return an
    ``x-midstream-fault`` header value for that request."""

    def __init__(self, faults: FaultRule | dict[int, str] | None = None) -> None:
        super().__init__()
        if isinstance(faults, dict):
            table = dict(faults)
            self.faults: FaultRule | None = lambda n, body: table.get(n)
        else:
            self.faults = faults
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        n = len(self.bodies)
        self.bodies.append(body)
        spec = self.faults(n, body) if self.faults is not None else None
        if spec:
            request.headers["x-midstream-fault"] = spec
        return await super().handle_async_request(request)


def fast(**sections: dict[str, Any]) -> Settings:
    """Settings with the backoff scaled down (2 s then 4 s become 2 ms then 4 ms), plus ``sections``."""
    data: dict[str, Any] = {"errors": {"backoff": {"scale": 0.001}}}
    for name, values in sections.items():
        merged = dict(data.get(name, {}))
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        data[name] = merged
    return Settings.from_mapping(data)


def client(url: str, provider: str = "anthropic", transport: Any = None, **options: Any) -> AsyncClient:
    return AsyncClient(provider, "sim-key", url, model="sim-model", transport=transport, **options)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def collect(run_: Run) -> tuple[list[Any], RunResult]:
    events = [event async for event in run_]
    return events, await run_


def of(events: list[Any], *kinds: type) -> list[Any]:
    return [e for e in events if isinstance(e, kinds)]


def index(events: list[Any], predicate: Callable[[Any], bool]) -> int:
    return next(i for i, e in enumerate(events) if predicate(e))


def check_one_ending(events: list[Any]) -> RunEnd:
    ends = of(events, RunEnd)
    assert len(ends) == 1 and events[-1] is ends[0]
    end: RunEnd = ends[0]
    return end


async def run_agent(agent: Agent, prompt: str, **options: Any) -> tuple[list[Any], RunResult]:
    return await collect(agent.run(prompt, **options))
