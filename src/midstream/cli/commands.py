"""The ``midstream`` command line: ``chat``, ``demo``, ``replay``, ``sim``, ``run``, ``journal``,
``serve``, ``worker`` and ``workflow``.

Every command follows the conventions of :mod:`midstream.cli._conventions`: one exit-status table,
``-h``/``--help``, ``--version``, an unknown ``--provider`` refused before anything starts, and a notice
on stderr whenever the answers come from the embedded simulator (``--sim``).

``chat`` streams one answer from a provider (or from the embedded simulator with ``--sim``) through
the live view; ``demo`` is a short guided tour against the simulator, no key and no network needed;
``replay`` plays a recorded provider stream through the same view; ``sim`` runs the simulator server;
``run`` runs an agent with example tools, showing tool lifecycle events as they happen; ``journal
check`` / ``journal repair`` inspect and mend an effects journal; ``serve`` runs the relay
(:mod:`midstream.cli.serve`); ``worker`` executes the runs front-ends enqueue on Redis
(:mod:`midstream.cli.worker`); ``workflow`` runs a multi-agent workflow file (:mod:`midstream.cli.workflow`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console

from midstream import wire
from midstream.cli._conventions import (
    CLIENT_EPILOG,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_HELP,
    EXIT_USAGE,
    check_provider,
    exit_code,
    note_simulator,
    one_of,
    show_version,
    usage_message,
)
from midstream.cli._journal import journal_app
from midstream.cli._stats import stats as stats_command
from midstream.cli.serve import serve as serve_command
from midstream.cli.view import LiveDisplay, LiveView, play
from midstream.cli.worker import worker as worker_command
from midstream.cli.workflow import workflow as workflow_command
from midstream.client.errors import StreamInterrupted
from midstream.client.request import ToolSpec
from midstream.core.toolargs import ToolCallReady, ToolEvent, with_tool_events
from midstream.errors import LocalError, MidstreamError
from midstream.events import Event, ResponseEnd, to_dict
from midstream.wire.detect import detect
from midstream.wire.profiles import PROFILES

__all__ = ["app", "main"]

app = typer.Typer(
    epilog=EXIT_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: no type tags after flags
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(journal_app, name="journal", short_help="Check or repair an effects journal.")


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """midstream: partial-safe LLM streaming. Decode any provider's stream into one typed event stream
    and watch it live.

    Start with `midstream demo` (no key, no network); `midstream COMMAND -h` explains each command,
    `midstream --install-completion` sets up shell completion.
    """


DEFAULT_MODELS = {p.name: p.default_model for p in PROFILES.values() if p.default_model}


def event_json(event: Event | ToolEvent) -> str:
    """One event as a JSON line: ``{"kind": ..., <fields>}`` (tool events too; errors as text)."""
    if isinstance(event, ToolEvent):
        data: dict[str, Any] = {"kind": event.kind}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if f.name == "validated" and (value is None or value is getattr(event, "input", None)):
                continue
            data[f.name] = str(value) if isinstance(value, BaseException) else value
    else:
        data = to_dict(event)
    return json.dumps(data, ensure_ascii=False, default=str)


# -- replay ------------------------------------------------------------------------------------------


def _chunks(data: bytes, rng: random.Random, low: int = 8, high: int = 96) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.randint(low, high)
        yield data[pos : pos + step]
        pos += step


def _decode_live(dialect: str, data: bytes, *, delay: float, seed: int = 0) -> Iterator[Event]:
    """Decode ``data`` in random chunks, pausing ``delay`` seconds per chunk as a network would."""
    dec = wire.decoder(dialect)
    rng = random.Random(seed)
    for chunk in _chunks(data, rng):
        yield from dec.feed(chunk)
        if delay:
            time.sleep(delay)
    yield from dec.close()


_DIALECT_HELP = (
    f"Which provider wrote it ({', '.join(wire.DIALECTS)}); detected from the bytes when left out."
)


@app.command(epilog=EXIT_HELP, short_help="Play a recorded stream live; the dialect is detected.")
def replay(
    file: Annotated[Path, typer.Argument(help="A recorded response body (SSE, NDJSON, eventstream).")],
    dialect: Annotated[
        str | None,
        typer.Option("--dialect", "-d", callback=one_of(wire.DIALECTS, "dialect"), help=_DIALECT_HELP),
    ] = None,
    speed: Annotated[float, typer.Option(min=0, help="Playback speed; 0 plays as fast as possible.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines instead.")] = False,
) -> None:
    """Play a recorded provider stream through the decoder and the live view.

    Exits with the stream's terminal state (see below): a recording cut short is truncated (3), one that
    carries a provider error is failed (1), and a file with nothing recognisable in it is failed too.
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE)
    chosen = _replay_dialect(file, data, dialect)
    delay = 0.02 / speed if speed > 0 else 0.0
    ending = _Ending()
    try:
        if as_json:
            for event in with_tool_events(ending.watch(_decode_live(chosen, data, delay=0.0))):
                typer.echo(event_json(event))
        else:
            play(ending.watch(_decode_live(chosen, data, delay=delay)), title=file.name)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    if not ending.content:
        _fail(
            f"nothing in {file} decoded as a stream of the {chosen} dialect: no content, usage or stop",
            EXIT_FAILED,
        )
    code = exit_code(ending.terminal)
    if code:
        raise typer.Exit(code)


def _replay_dialect(file: Path, data: bytes, dialect: str | None) -> str:
    """The dialect to decode with: the one given (unless the bytes clearly say another), or detected."""
    found = detect(data)
    if dialect is None:
        if found is None:
            _fail(
                f"nothing in {file} is recognisable as a provider stream (SSE, NDJSON or AWS eventstream "
                f"from {', '.join(wire.DIALECTS)}); if you know which wrote it, pass --dialect",
                EXIT_FAILED,
            )
        sys.stderr.write(f"dialect: {found.dialect} (detected from {found.evidence})\n")
        return found.dialect
    if found is not None and found.dialect != dialect:
        _fail(
            f"{file} looks like {found.dialect} ({found.evidence}), not {dialect}: "
            "leave out --dialect to use what was detected",
            EXIT_USAGE,
        )
    return dialect


class _Ending:
    """Watches events go by: the terminal state, and whether anything but the frame came through."""

    def __init__(self) -> None:
        self.terminal: str | None = None
        self.content = False

    def watch(self, events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            if isinstance(event, ResponseEnd):
                self.terminal = event.terminal
                self.content |= event.stop_reason is not None or bool(event.usage.output_tokens)
            elif event.kind not in ("response_start", "unknown"):
                self.content = True
            yield event


# -- chat --------------------------------------------------------------------------------------------


def load_tools(path: Path) -> list[ToolSpec]:
    """Tools from a JSON or YAML file: a list (or ``{"tools": [...]}``) of ``{name, description,
    input_schema}`` objects; ``parameters`` is accepted for the schema, ``eager`` per tool."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise LocalError(f"cannot read tools from {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("tools", [data])
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise LocalError(f"{path}: expected a list of tool objects")
    return [ToolSpec.coerce(t) for t in data]


@dataclasses.dataclass
class _ChatOptions:
    prompt: str
    model: str
    tools: list[ToolSpec]
    eager: bool | None
    max_tokens: int
    system: str | None
    thinking: int | None


_PROVIDERS_HELP = ", ".join(list(PROFILES)[:-1]) + f" or {list(PROFILES)[-1]}."
_SIM_HELP = "Ask the embedded simulator (no key, no network) instead of the provider."
_EAGER_HELP = "Stream tool arguments unbuffered where the provider can (default: each tool's own setting)."
_THINKING_HELP = "Thinking budget in tokens (off by default)."
_ANSWER_TOKENS = 1024
_MAX_TOKENS_HELP = (
    f"Output budget (default: {_ANSWER_TOKENS}, plus the --thinking budget when given: Anthropic refuses "
    "a budget that leaves no room for the answer)."
)


@app.command(epilog=CLIENT_EPILOG, short_help="Stream one answer live from a provider (or --sim).")
def chat(
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="What to ask.")],
    provider: Annotated[str, typer.Option(callback=check_provider, help=_PROVIDERS_HELP)] = "anthropic",
    model: Annotated[str | None, typer.Option(help="Model name (a default per provider).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server to talk to instead of the provider's.")] = None,
    tools: Annotated[Path | None, typer.Option(help="Tools file (JSON or YAML list of tools).")] = None,
    eager: Annotated[bool | None, typer.Option("--eager/--buffered", help=_EAGER_HELP)] = None,
    max_tokens: Annotated[int | None, typer.Option(help=_MAX_TOKENS_HELP, show_default=False)] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    thinking: Annotated[int | None, typer.Option(min=1, help=_THINKING_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines for scripts.")] = False,
    sim: Annotated[bool, typer.Option("--sim", help=_SIM_HELP)] = False,
    scenarios: Annotated[Path | None, typer.Option(help="Scenario file for --sim.")] = None,
    speed: Annotated[float, typer.Option(min=0, help="Latency speed factor for --sim; 0: no delays.")] = 1.0,
) -> None:
    """Stream one answer live: text as markdown, thinking dimmed, a panel per tool call.

    Without --sim the provider's API answers (or --base-url's server). Ctrl-C cancels: the connection is
    closed at once and what was partial is said.
    """
    from midstream.client.stream import Client

    console = Console()
    try:
        chosen = model or DEFAULT_MODELS.get(provider)
        if chosen is None:
            raise LocalError(f"--model is needed for {provider}")
        if max_tokens is None:
            max_tokens = _ANSWER_TOKENS + (thinking or 0)
        options = _ChatOptions(
            prompt, chosen, load_tools(tools) if tools else [], eager, max_tokens, system, thinking
        )
        if sim:
            from midstream.sim import running

            with running(scenarios, speed=speed) as url, Client(provider, "sim-key", url) as client:
                note_simulator(url, how="--sim; drop it to ask the provider")
                code = _chat(client, options, console, as_json)
        else:
            with Client(provider, base_url=base_url) as client:
                code = _chat(client, options, console, as_json)
    except KeyboardInterrupt:
        console.print("cancelled before the response began: nothing was received.", style="magenta")
        raise typer.Exit(EXIT_CANCELLED) from None
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    if code:
        raise typer.Exit(code)


def _chat(client: Any, options: _ChatOptions, console: Console, as_json: bool) -> int:
    """Stream the answer; the exit status of its terminal state (:func:`exit_code`)."""
    stream = client.stream(
        options.prompt,
        model=options.model,
        tools=options.tools,
        eager=options.eager,
        max_tokens=options.max_tokens,
        system=options.system,
        thinking_budget=options.thinking,
    )
    view = LiveView()
    interrupted, failed = False, None
    with stream:
        if as_json:
            interrupted, failed = _follow(stream, lambda e: typer.echo(event_json(e)))
            typer.echo(json.dumps({"kind": "metrics", **stream.metrics.as_dict()}))
        else:
            with LiveDisplay(view, console=console) as display:
                interrupted, failed = _follow(stream, display.feed)
                view.metrics = stream.metrics
    if interrupted:
        _say_partial(console, view, stream.message, as_json)
        return EXIT_CANCELLED
    if failed is not None:
        console.print(f"[red]error:[/] {failed}", highlight=False)
        return EXIT_FAILED
    return exit_code(stream.message.terminal)


def _follow(stream: Any, sink: Any) -> tuple[bool, StreamInterrupted | None]:
    """Pass every event to ``sink``; on Ctrl-C cancel and pass the cancelled ending too."""
    try:
        for event in stream:
            sink(event)
    except KeyboardInterrupt:
        stream.cancel()
        for event in stream:
            sink(event)
        return True, None
    except StreamInterrupted as exc:
        return False, exc
    return False, None


def _say_partial(console: Console, view: LiveView, message: Any, as_json: bool) -> None:
    not_run = sum(1 for v in view.calls.values() if not isinstance(v, ToolCallReady))
    calls = len(message.tool_calls)
    text = (
        f"cancelled: the connection was closed. Partial output: {len(message.text)} characters of text"
        f"{f', {calls} tool call(s), {not_run} not executed' if calls else ''}; "
        f"the response is marked {message.terminal}."
    )
    if as_json:
        sys.stderr.write(text + "\n")
    else:
        console.print(text, style="magenta", highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


# -- demo --------------------------------------------------------------------------------------------


@app.command(epilog=EXIT_HELP, short_help="A guided tour: no key, no network.")
def demo(
    speed: Annotated[float, typer.Option(help="Simulator speed factor; 2 runs twice as fast.")] = 1.0,
) -> None:
    """A guided tour against the embedded simulator (no key, no network), each step titled.

    1. text streaming with its time to first token; 2. a save_article call with a ~500-word argument,
    streamed buffered and then eager, compared side by side; 3. a tool input cut by max_tokens, shown
    incomplete and not executed; 4. a cancel mid-stream, confirmed by the simulator; then metrics.
    """
    from midstream.cli._tour import run_tour

    if speed <= 0:
        _fail("--speed must be positive", 2)
    run_tour(Console(), speed=speed)


# -- sim ---------------------------------------------------------------------------------------------


@app.command(epilog=EXIT_HELP, short_help="Run the provider simulator as a local server.")
def sim(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one and prints it.")] = 0,
    scenarios: Annotated[
        Path | None, typer.Option(help="Scenario file (YAML or JSON); see examples/scenarios/.")
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0, help="Latency speed factor; 0 streams without delays.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for ids, padding and jitter.")] = 0,
    realism: Annotated[
        bool, typer.Option(help="Write each provider's byte-level quirks (padding, obfuscation, ...).")
    ] = True,
) -> None:
    """Run the provider simulator: Anthropic, OpenAI, Gemini, Bedrock and Ollama endpoints, no key needed.

    Point any SDK's base URL at it. GET /_sim/requests lists what it served.
    """
    from midstream.sim import running

    try:
        with running(scenarios, host=host, port=port, speed=speed, seed=seed, realism=realism) as url:
            typer.echo(f"midstream simulator listening on {url}  (Ctrl-C stops it)")
            typer.echo(f"  Anthropic  base_url={url}        OpenAI  base_url={url}/v1")
            typer.echo(f"  Gemini     base_url={url}        Ollama  host={url}")
            typer.echo(f"  Bedrock    endpoint_url={url}    requests: {url}/_sim/requests")
            while True:
                time.sleep(3600)
    except MidstreamError as exc:
        _fail(str(exc), EXIT_USAGE)


# -- serve -------------------------------------------------------------------------------------------

app.command(
    "serve", epilog=CLIENT_EPILOG, short_help="Serve the relay: runs over HTTP, events as resumable SSE."
)(serve_command)
app.command(
    "worker", epilog=CLIENT_EPILOG, short_help="Execute queued runs from a Redis store, as one of a fleet."
)(worker_command)
app.command(
    "workflow", epilog=CLIENT_EPILOG, short_help="Run a multi-agent workflow file, one lane per agent."
)(workflow_command)

app.command("stats", short_help="TTFT, first argument byte, retries and alerts of the runs on record.")(
    stats_command
)

# -- run ---------------------------------------------------------------------------------------------


@app.command("run", epilog=CLIENT_EPILOG, short_help="Run an agent with example tools, live.")
def run_agent(
    prompt: Annotated[str, typer.Argument(help="What to ask the agent.")],
    settings: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (midstream.toml or midstream.json).")
    ] = None,
    provider: Annotated[str, typer.Option(callback=check_provider, help=_PROVIDERS_HELP)] = "anthropic",
    model: Annotated[str | None, typer.Option(help="Model name (a default per provider).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server to talk to instead of the provider's.")] = None,
    sim: Annotated[bool, typer.Option("--sim", help=_SIM_HELP)] = False,
    journal: Annotated[
        Path | None, typer.Option(help="Effects journal (.jsonl or .db): a re-run skips what it did.")
    ] = None,
    max_iterations: Annotated[int | None, typer.Option(help="Model round trips at most.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Output budget of each response.")] = 1024,
    scenarios: Annotated[Path | None, typer.Option(help="Scenario file for --sim.")] = None,
    speed: Annotated[float, typer.Option(min=0, help="Latency speed factor for --sim; 0: no delays.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print every event as a JSON line.")] = False,
) -> None:
    """Run an agent with example tools (get_weather, search, save_article) and watch it live.

    Without --sim the provider's API answers (or --base-url's server); with --sim the embedded simulator
    does (no key, no network). Tools run only on complete, valid input; Ctrl-C cancels: the stream
    closes, no pending tool starts and completed side effects are undone.
    """
    from midstream.agent.events import agent_event_dict
    from midstream.agent.loop import Agent
    from midstream.cli._console import RunConsole
    from midstream.cli.examples import TOOLS, scenario_book
    from midstream.client.stream import Client
    from midstream.config import Settings, load_settings
    from midstream.core.toolargs import ToolEvent as _ToolEvent
    from midstream.events import Event as _Event
    from midstream.sim import ScenarioBook, running

    console = Console()
    view = RunConsole(console)

    def show_json(event: Any) -> None:
        if isinstance(event, _Event | _ToolEvent):
            typer.echo(event_json(event))
        else:
            typer.echo(json.dumps(agent_event_dict(event), ensure_ascii=False, default=str))

    def go(client: Any) -> Any:
        agent = Agent(client, TOOLS, settings=loaded, journal=journal, model=chosen, max_tokens=max_tokens)
        on_event = show_json if as_json else view
        try:
            return agent.run_sync(prompt, max_iterations=max_iterations, on_event=on_event)
        finally:
            view.close()

    try:
        chosen = model or DEFAULT_MODELS.get(provider)
        if chosen is None:
            raise LocalError(f"--model is needed for {provider}")
        loaded = Settings() if settings is None else load_settings(settings)
        pool = loaded.client.options()  # [client]: the connection pool and the timeouts
        if sim:
            book = ScenarioBook.load(scenarios) if scenarios else scenario_book()
            with running(book, speed=speed) as url:
                note_simulator(url, how="--sim; drop it to ask the provider")
                with Client(provider, "sim-key", url, model=chosen, **pool) as client:
                    result = go(client)
        else:
            with Client(provider, base_url=base_url, model=chosen, **pool) as client:
                result = go(client)
    except LocalError as exc:
        _fail(usage_message(exc), EXIT_USAGE)
    except MidstreamError as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    if isinstance(result.error, LocalError):  # a misconfiguration, not a failure of the provider
        _fail(usage_message(result.error), EXIT_USAGE)
    code = exit_code(result.terminal)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``midstream`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
