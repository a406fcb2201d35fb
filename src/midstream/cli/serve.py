"""``midstream serve``: the relay's HTTP API, executing runs in this process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from midstream.cli._conventions import EXIT_FAILED, EXIT_USAGE, check_provider, note_simulator, usage_message
from midstream.errors import LocalError, MidstreamError

__all__ = ["serve"]

_STORE_HELP = (
    "Where run logs live: sqlite (default: a file under the user's state directory), "
    "sqlite:///path.db, memory, or redis://host:port/db (shared by several serve processes)."
)
_TOOLS_HELP = "Tools as a Python entry point module:attribute (default with --sim: the example tools)."
_PROVIDERS_HELP = "anthropic, openai-chat, openai-responses, gemini, bedrock, ollama or openai-compatible."

# The options of whoever executes runs (serve, worker): the agent's provider, tools and settings.
SimOption = Annotated[bool, typer.Option("--sim", help="Run against the embedded simulator (no key).")]
ScenariosOption = Annotated[Path | None, typer.Option(help="Scenario file for --sim.")]
SpeedOption = Annotated[float, typer.Option(help="Latency speed factor for --sim.")]
ProviderOption = Annotated[str, typer.Option(callback=check_provider, help=_PROVIDERS_HELP)]
ModelOption = Annotated[str | None, typer.Option(help="Default model (a default per provider).")]
BaseURLOption = Annotated[str | None, typer.Option(help="Provider server to talk to (not with --sim).")]
ToolsOption = Annotated[str | None, typer.Option(help=_TOOLS_HELP)]
SettingsOption = Annotated[
    Path | None, typer.Option("--settings", help="Agent settings file (midstream.toml or .json).")
]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one and prints it.")] = 8787,
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
    sim: SimOption = False,
    scenarios: ScenariosOption = None,
    speed: SpeedOption = 1.0,
    provider: ProviderOption = "anthropic",
    model: ModelOption = None,
    base_url: BaseURLOption = None,
    tools: ToolsOption = None,
    settings: SettingsOption = None,
    execute: Annotated[
        bool, typer.Option("--execute/--no-execute", help="Execute runs here, or only serve and cancel them.")
    ] = True,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Enqueue runs for `midstream worker` processes (needs a redis:// store)."
        ),
    ] = False,
    max_runs: Annotated[
        int | None, typer.Option(help="Runs executing here at once; more get 429 (default: no limit).")
    ] = None,
    max_active: Annotated[
        int,
        typer.Option(help="With --queue: runs enqueued or executing in the fleet; more get 429 (0: none)."),
    ] = 0,
    replay_ttl: Annotated[float, typer.Option(help="Seconds a finished run stays replayable.")] = 86400.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds of silence before an SSE ping comment.")] = 15.0,
    log_format: Annotated[
        str | None,
        typer.Option(help="Log midstream's INFO lines to stderr as text, or json (with run and trace ids)."),
    ] = None,
) -> None:
    """Serve the relay: start runs over HTTP and stream their events as resumable SSE.

    Open the printed URL in a browser for the web page: send a prompt, watch the answer and each
    tool call's fields type out, stop the run, list recent runs with their figures.

    POST /v1/runs starts an agent run; GET /v1/runs/{id}/events streams its events (resume with
    Last-Event-ID or ?after=<seq>; a finished run replays); POST /v1/runs/{id}/cancel stops it
    wherever it executes. Several serve processes on one --store redis://... serve the same runs;
    with --queue they execute nothing themselves: `midstream worker` processes on the same store do.
    GET /metrics gives this process's streams, runs and tool calls in the Prometheus text format.
    Ctrl-C stops the server; runs still executing here end cancelled.
    """
    import uvicorn

    from midstream.relay.serve import build
    from midstream.sim import serving

    if replay_ttl <= 0 or heartbeat <= 0:
        _fail("--replay-ttl and --heartbeat must be positive", EXIT_USAGE)
    if sim and base_url:
        _fail("--sim and --base-url exclude each other", EXIT_USAGE)
    if queue and not (store or "").startswith(("redis://", "rediss://", "unix://")):
        _fail("--queue needs a shared store: --store redis://host:port/db", EXIT_USAGE)
    if (max_runs is not None and max_runs < 1) or max_active < 0:
        _fail("--max-runs must be at least 1 and --max-active at least 0", EXIT_USAGE)
    if log_format not in (None, "text", "json"):
        _fail(f"--log-format is text or json, not {log_format!r}", EXIT_USAGE)
    if log_format is not None:
        from midstream.telemetry import configure_logging

        configure_logging("INFO", json=log_format == "json")
    try:
        with _provider_url(sim and not queue, scenarios, speed, base_url) as (url, api_key):
            run_here = execute and not queue
            factory = _factory(provider, model, url, api_key, tools, settings, sim) if run_here else None
            app = build(
                store,
                factory=factory,
                heartbeat=heartbeat,
                replay_ttl=replay_ttl,
                max_runs=max_runs,
                executor=_queue_executor(max_active) if queue else None,
            )
            sock = serving.listen(host, port)
            sock.listen(2048)  # connections queue from now on: the URL printed below answers at once
            where = serving.base_url(host, sock)
            source = "the embedded simulator" if sim else (url or f"{provider}'s API")
            typer.echo(f"midstream relay listening on {where}  (Ctrl-C stops it)")
            typer.echo(f"  web page: {where}/  (open it in a browser)")
            typer.echo(f"  store: {app.state.relay.log!r}")
            if queue:
                typer.echo("  runs: enqueued for `midstream worker` processes on the same store")
            else:
                typer.echo(
                    f"  runs: {'executed here against ' + source if execute else 'executed elsewhere'}"
                )
            typer.echo(
                f'  try:  curl -s {where}/v1/runs -d \'{{"prompt": "What is the weather in Paris?"}}\''
            )
            config = uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3
            )
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
            if not server.started:
                _fail("the relay could not start (see the error above)", EXIT_FAILED)
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


@contextlib.contextmanager
def _provider_url(
    sim: bool, scenarios: Path | None, speed: float, base_url: str | None
) -> Iterator[tuple[str | None, str | None]]:
    if not sim:
        yield base_url, None
        return
    from midstream.cli.examples import scenario_book
    from midstream.sim import ScenarioBook, running

    book = ScenarioBook.load(scenarios) if scenarios else scenario_book()
    with running(book, speed=speed) as url:
        note_simulator(url, how="--sim; drop it to ask the provider")
        yield url, "sim-key"


def _factory(
    provider: str,
    model: str | None,
    url: str | None,
    api_key: str | None,
    tools: str | None,
    settings: Path | None,
    sim: bool,
) -> Any:
    from midstream.cli.commands import DEFAULT_MODELS
    from midstream.config import load_settings
    from midstream.relay.runner import AgentFactory
    from midstream.relay.serve import load_tools

    chosen_tools = load_tools(tools) if tools else (load_tools("midstream.cli.examples:TOOLS") if sim else [])
    return AgentFactory(
        provider=provider,
        model=model,
        base_url=url,
        api_key=api_key,
        tools=chosen_tools,
        settings=load_settings(settings) if settings else None,
        default_models=DEFAULT_MODELS,
    )


def _queue_executor(max_active: int) -> Any:
    from midstream.relay.stores import RedisLog
    from midstream.worker import QueueExecutor, RunQueue

    def make(log: Any) -> Any:
        assert isinstance(log, RedisLog)
        return QueueExecutor(RunQueue(log.url, prefix=log.prefix), max_active=max_active)

    return make


def _fail(message: str, code: int) -> Any:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)
