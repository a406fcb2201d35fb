"""Put the relay together and run it: ``midstream serve`` and :func:`running` (for tests and scripts).

:func:`build` makes the Starlette app from plain options: a store URL (see
:mod:`midstream.relay.stores`), an :class:`~midstream.relay.runner.AgentFactory` and the HTTP
settings. :func:`running` serves it from a background thread on a free loopback port::

    with running("memory", factory=AgentFactory(provider="anthropic", base_url=sim_url,
                                                  api_key="sim-key", model="claude-sonnet-4-5")) as url:
        httpx2.post(f"{url}/v1/runs", json={"prompt": "Hello"})
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette

from midstream.agent.tools import Tool
from midstream.errors import LocalError
from midstream.relay.app import create_app
from midstream.relay.log import DEFAULT_REPLAY_TTL, EventLog
from midstream.relay.runner import AgentFactory, Executor, LocalExecutor
from midstream.relay.stores import open_log
from midstream.sim.serving import base_url, in_thread, listen
from midstream.telemetry import with_metrics

__all__ = ["RelayURL", "build", "load_tools", "running"]


def load_tools(spec: str) -> list[Tool | Callable[..., Any]]:
    """Tools from a Python entry point ``module:attribute`` naming a list of tools (``Tool`` objects
    or typed functions) or a single one, e.g. ``midstream.cli.examples:TOOLS``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise LocalError(f"tools must be given as module:attribute, not {spec!r}")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise LocalError(f"cannot load tools from {spec!r}: {exc}") from exc
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not all(isinstance(t, Tool) or callable(t) for t in items):
        raise LocalError(f"{spec!r} is not a tool or a list of tools")
    return items


def build(
    store: str | EventLog | None = None,
    *,
    factory: AgentFactory | None = None,
    heartbeat: float = 15.0,
    replay_ttl: float = DEFAULT_REPLAY_TTL,
    owner: str | None = None,
    max_runs: int | None = None,
    executor: Callable[[EventLog], Executor] | None = None,
) -> Starlette:
    """The relay app on ``store`` (a URL or an open :class:`EventLog`); runs execute in this process
    through ``factory``, at most ``max_runs`` at once (None: the relay serves events and cancels,
    and starts no runs), or wherever ``executor(log)`` sends them (a queue of workers)."""
    log = store if isinstance(store, EventLog) else open_log(store, replay_ttl=replay_ttl)
    chosen: Executor | None = None
    if executor is not None:
        chosen = executor(log)
    elif factory is not None:
        chosen = LocalExecutor(log, factory, owner=owner, max_runs=max_runs)
    app = create_app(log, chosen, heartbeat=heartbeat)
    with_metrics(app)  # GET /metrics: this process's streams, runs and tool calls, in Prometheus naming
    return app


class RelayURL(str):
    """The base URL of a relay started by :func:`running` (a ``str``), with its app."""

    app: Starlette


@contextlib.contextmanager
def running(
    store: str | EventLog | None = "memory",
    *,
    factory: AgentFactory | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    heartbeat: float = 15.0,
    replay_ttl: float = DEFAULT_REPLAY_TTL,
    startup_timeout: float = 10.0,
    max_runs: int | None = None,
    executor: Callable[[EventLog], Executor] | None = None,
) -> Iterator[RelayURL]:
    """Serve the relay from a background thread on ``host:port`` (0: a free port); yield its URL.
    It stops, cancelling its runs and closing the store, when the block exits. ``max_runs`` and
    ``executor`` are :func:`build`'s."""
    app = build(
        store,
        factory=factory,
        heartbeat=heartbeat,
        replay_ttl=replay_ttl,
        max_runs=max_runs,
        executor=executor,
    )
    sock = listen(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    url = RelayURL(base_url(host, sock))
    url.app = app
    with in_thread(config, sock, name="the relay", startup_timeout=startup_timeout):
        yield url
