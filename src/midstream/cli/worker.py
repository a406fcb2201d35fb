"""``midstream worker``: execute the runs that ``midstream serve --queue`` front-ends enqueue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from midstream.cli._conventions import EXIT_FAILED, EXIT_USAGE, usage_message
from midstream.cli.serve import (
    BaseURLOption,
    ModelOption,
    ProviderOption,
    ScenariosOption,
    SettingsOption,
    SimOption,
    SpeedOption,
    ToolsOption,
    _factory,
    _fail,
    _provider_url,
)
from midstream.errors import LocalError, MidstreamError

__all__ = ["worker"]


def worker(
    store: Annotated[str, typer.Option(help="The Redis the front-ends enqueue on: redis://host:port/db.")],
    sim: SimOption = False,
    scenarios: ScenariosOption = None,
    speed: SpeedOption = 1.0,
    provider: ProviderOption = "anthropic",
    model: ModelOption = None,
    base_url: BaseURLOption = None,
    tools: ToolsOption = None,
    settings: SettingsOption = None,
    concurrency: Annotated[int, typer.Option(help="Runs executing in this worker at once.")] = 16,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds without renewal after which another worker resumes a run.")
    ] = 10.0,
    owner: Annotated[str | None, typer.Option(help="This worker's name in leases and logs.")] = None,
    grace: Annotated[float, typer.Option(help="Seconds a stopping worker waits for its runs.")] = 30.0,
    handoff: Annotated[
        bool,
        typer.Option(
            "--handoff/--cancel-on-stop",
            help="Runs still executing after --grace are resumed by other workers, or end cancelled.",
        ),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve this worker's streams, runs and tool calls at http://HOST:PORT/metrics "
            "(Prometheus text format; 0: a free port, printed at start). Off by default.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="The address --metrics-port listens on (all interfaces: 0.0.0.0).")
    ] = "127.0.0.1",
) -> None:
    """Execute runs from the queue of a Redis store, as one of any number of workers.

    Each run is owned by one worker under a lease it renews every third of --lease-ttl. A worker
    that dies (even kill -9) loses its runs after --lease-ttl: another worker claims each one,
    resumes it from its last checkpoint (the log shows a `resumed` entry), and never repeats a side
    effect the effects journal shows done. Start front-ends with `midstream serve --store ... --queue`.
    Ctrl-C (or SIGTERM) stops taking runs and waits up to --grace seconds for those executing here;
    the runs still executing then are handed to the other workers (they resume them after
    --lease-ttl), or with --cancel-on-stop end cancelled. A front-end's /metrics shows only its own
    process: give each worker --metrics-port for Prometheus to scrape the runs it executes.
    """
    if not store.startswith(("redis://", "rediss://", "unix://")):
        _fail("a worker needs the shared store: --store redis://host:port/db", EXIT_USAGE)
    if concurrency < 1 or lease_ttl <= 0:
        _fail("--concurrency must be at least 1 and --lease-ttl positive", EXIT_USAGE)
    if sim and base_url:
        _fail("--sim and --base-url exclude each other", EXIT_USAGE)
    try:
        with _provider_url(sim, scenarios, speed, base_url) as (url, api_key):
            factory = _factory(provider, model, url, api_key, tools, settings, sim)
            options = {"owner": owner, "concurrency": concurrency, "lease_ttl": lease_ttl}
            with _metrics(metrics_host, metrics_port) as metrics_url:
                work = _work(store, factory, grace=grace, handoff=handoff, metrics_url=metrics_url, **options)
                asyncio.run(work)
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


@contextlib.contextmanager
def _metrics(host: str, port: int | None) -> Iterator[str | None]:
    """``GET /metrics`` on ``host:port`` (a thread of its own) while the worker runs, and its URL;
    nothing without a port."""
    if port is None:
        yield None
        return
    from prometheus_client import start_http_server

    from midstream.telemetry import PrometheusObserver

    observer = PrometheusObserver()
    try:
        server, thread = start_http_server(port, addr=host, registry=observer.registry)
    except OSError as exc:
        raise LocalError(f"--metrics-port {port}: cannot listen on {host}: {exc.strerror or exc}") from None
    shown = f"[{host}]" if ":" in host else host
    try:
        with observer.observing():
            yield f"http://{shown}:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _work(
    store: str, factory: Any, *, grace: float, handoff: bool, metrics_url: str | None, **options: Any
) -> None:
    from midstream.relay.stores import RedisLog
    from midstream.worker import Worker

    log = RedisLog(store)
    try:
        await log.runs(limit=1)  # fail now if the store is unreachable
        work = Worker(log, factory, **options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, work.stop)
        said = f"midstream worker {work.owner} on {log!r}: up to {work.concurrency} runs at once"
        typer.echo(said + (f"; metrics at {metrics_url}" if metrics_url else ""))
        left: list[str] = []
        try:
            left = await work.run(grace=grace, handoff=handoff)
        finally:
            if not left:  # runs left to others must not see their connections close under them
                await work.aclose()
        typer.echo(
            f"midstream worker {work.owner} stopped: {work.started} runs started, {work.resumed} resumed"
        )
        if left:  # leave now, inside the loop: its teardown would cancel the runs
            typer.echo(f"  {len(left)} runs still executing are left to the other workers")
            sys.stdout.flush()
            os._exit(0)
    finally:
        await log.aclose()
