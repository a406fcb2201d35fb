"""``midstream workflow FILE PROMPT``: run a multi-agent workflow file and watch one lane per agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from midstream.cli._conventions import (
    EXIT_FAILED,
    EXIT_USAGE,
    exit_code,
    note_simulator,
    usage_message,
)
from midstream.errors import LocalError, MidstreamError

__all__ = ["workflow"]

_START_HELP = (
    "When a handoff starts its receiver: 'validated' (as soon as the handoff call is complete and valid) "
    "or 'executed' (once the sender's response completed)."
)


def _event_json(item: Any) -> str:
    from midstream.agent.events import agent_event_dict
    from midstream.cli.commands import event_json
    from midstream.core.toolargs import ToolEvent
    from midstream.events import Event
    from midstream.workflow.events import flow_event_dict

    event = item.event
    own = flow_event_dict(event)
    if own is not None:
        data = own
    elif isinstance(event, Event | ToolEvent):
        data = json.loads(event_json(event))
    else:
        data = agent_event_dict(event)
    data.update(agent=item.agent, run=item.run, parent=item.parent, at=round(item.at, 4))
    return json.dumps(data, ensure_ascii=False, default=str)


def workflow(
    file: Annotated[Path, typer.Argument(help="A workflow file (TOML, YAML or JSON): agents and handoffs.")],
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="What to ask the entry agent.")],
    sim: Annotated[
        bool, typer.Option("--sim/--no-sim", help="Answer from the embedded simulator (the default; no key).")
    ] = True,
    scenarios: Annotated[
        Path | None, typer.Option(help="Scenario file for the simulator (default: the workflow file's).")
    ] = None,
    speed: Annotated[float, typer.Option(min=0, help="Simulator latency speed factor; 0: no delays.")] = 1.0,
    base_url: Annotated[
        str | None, typer.Option(help="With --no-sim: a server instead of the provider's.")
    ] = None,
    start: Annotated[str, typer.Option(help=_START_HELP)] = "validated",
    buffered: Annotated[
        bool, typer.Option("--buffered", help="No eager argument streaming for any agent (to compare).")
    ] = False,
    metrics: Annotated[
        Path | None, typer.Option(help="The metrics file (default: the settings' metrics.file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every event as a JSON line.")] = False,
) -> None:
    """Run a workflow: the entry agent (or the pipeline's first stage) gets PROMPT and hands work on.

    By default the embedded simulator answers, with the workflow file's scenarios. On a terminal each
    agent has a lane: what it streams, the tool field typing out, its handoffs and blackboard writes; in
    a pipe, one line per handoff, write and ending. At the end: a table per agent, the alerts, and the
    metrics file. Ctrl-C cancels every agent; each undoes what it did.
    """
    from midstream.client.stream import Client
    from midstream.workflow.events import START_HANDOFFS
    from midstream.workflow.spec import load_workflow

    console = Console()
    if start not in START_HANDOFFS:
        _fail(f"--start is {' or '.join(map(repr, START_HANDOFFS))}, not {start!r}", EXIT_USAGE)
    try:
        spec = load_workflow(file)
        book_path = scenarios or spec.scenarios_path
        if spec.model is None and any(entry.model is None for entry in spec.agents.values()):
            raise LocalError(f"{file}: give a model (at the top, or for each agent)")
        settings = spec.load_settings()
        if buffered:
            settings = settings.model_copy(
                update={"streaming": settings.streaming.model_copy(update={"enabled": False})}
            )
        options: dict[str, Any] = {"settings": settings, "start_handoffs": start}
        pool = settings.client.options()  # [client]: the connection pool and the timeouts
        if metrics is not None:
            options["metrics_file"] = metrics
        if sim:
            from midstream.sim import ScenarioBook, running

            book = ScenarioBook.load(book_path) if book_path is not None else None
            with running(book, speed=speed) as url:
                note_simulator(url, how="the default; --no-sim asks the providers")
                clients = {p: Client(p, "sim-key", url, model=spec.model, **pool) for p in spec.providers()}
                result = _run(spec, clients, options, prompt, console, as_json)
        else:
            clients = {p: Client(p, base_url=base_url, model=spec.model, **pool) for p in spec.providers()}
            result = _run(spec, clients, options, prompt, console, as_json)
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    code = exit_code(result.terminal)
    if code:
        raise typer.Exit(code)


def _run(
    spec: Any, clients: dict[str, Any], options: dict[str, Any], prompt: str, console: Console, as_json: bool
) -> Any:
    from midstream.cli._lanes import LaneView

    try:
        flow = spec.build(clients, **options)
        if as_json:
            return flow.run_sync(prompt, on_event=lambda item: typer.echo(_event_json(item)))
        view = LaneView(console, list(flow.specs))
        try:
            result = flow.run_sync(prompt, on_event=view)
        finally:
            view.close()
        console.print(view.summary(result))
        for alert in result.alerts:
            console.print(f"[red]alert[/red]: {alert.message}", highlight=False)
        if result.text:
            console.print(f"[bold]answer[/bold]: {result.text}", highlight=False)
        elif result.reason:
            console.print(f"[bold]{result.terminal}[/bold]: {result.reason}", highlight=False)
        if flow.metrics_file is not None:
            console.print(f"metrics: {flow.metrics_file.path}", highlight=False)
        return result
    finally:
        for client in clients.values():
            client.close()


def _fail(message: str, code: int) -> Any:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
