"""``midstream worker``: execute the runs that ``midstream serve --queue`` front-ends enqueue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
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
) -> None:
    """Execute runs from the queue of a Redis store, as one of any number of workers.

    Each run is owned by one worker under a lease it renews every third of --lease-ttl. A worker
    that dies (even kill -9) loses its runs after --lease-ttl: another worker claims each one,
    resumes it from its last checkpoint (the log shows a `resumed` entry), and never repeats a side
    effect the effects journal shows done. Start front-ends with `midstream serve --store ... --queue`.
    Ctrl-C (or SIGTERM) stops taking runs and waits up to --grace seconds for those executing here;
    the runs still executing then are handed to the other workers (they resume them after
    --lease-ttl), or with --cancel-on-stop end cancelled.
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
            asyncio.run(_work(store, factory, grace=grace, handoff=handoff, **options))
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


async def _work(store: str, factory: Any, *, grace: float, handoff: bool, **options: Any) -> None:
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
        typer.echo(f"midstream worker {work.owner} on {log!r}: up to {work.concurrency} runs at once")
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
