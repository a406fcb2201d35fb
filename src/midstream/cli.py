"""The ``midstream`` command line."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from midstream import wire
from midstream.errors import MidstreamError
from midstream.events import Event, to_dict
from midstream.message import Message, TextBlock, ToolCall, Usage
from midstream.view import LiveView, play

app = typer.Typer(
    help="midstream: partial-safe LLM streaming. Decode any provider's stream into one typed event "
    "stream and watch it live.",
    no_args_is_help=True,
    add_completion=False,
)


def _chunks(data: bytes, rng: random.Random, low: int = 8, high: int = 96) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.randint(low, high)
        yield data[pos : pos + step]
        pos += step


def _decode_live(
    dialect: str, data: bytes, *, delay: float, seed: int = 0
) -> Iterator[Event]:
    """Decode ``data`` in random chunks, pausing ``delay`` seconds per chunk as a network would."""
    dec = wire.decoder(dialect)
    rng = random.Random(seed)
    for chunk in _chunks(data, rng):
        yield from dec.feed(chunk)
        if delay:
            time.sleep(delay)
    yield from dec.close()


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="A recorded response body (SSE, NDJSON, eventstream).")],
    dialect: Annotated[str, typer.Option("--dialect", "-d", help="Which provider wrote it.")],
    speed: Annotated[float, typer.Option(help="Playback speed; 0 plays as fast as possible.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines instead.")] = False,
) -> None:
    """Play a recorded provider stream through the decoder and the live view."""
    data = file.read_bytes()
    delay = 0.02 / speed if speed > 0 else 0.0
    try:
        if as_json:
            for event in _decode_live(dialect, data, delay=0.0):
                typer.echo(json.dumps(to_dict(event), ensure_ascii=False, default=str))
            return
        play(_decode_live(dialect, data, delay=delay), title=file.name)
    except MidstreamError as exc:
        typer.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


_ARTICLE = (
    "Streaming makes an assistant feel fast, but every frame a client holds is incomplete. "
    "A tool call whose arguments are still arriving must not run; a value cut by max_tokens "
    "must not pass for a complete one. "
)


def _scripted(provider: str) -> Message:
    args = {"title": "Partial safety", "content": _ARTICLE * 3, "tags": ["streaming", "agents"]}
    return Message(
        provider=provider,
        id="msg_demo",
        model="demo-model",
        blocks=(
            TextBlock("I'll save the article now; the call runs only once its input is whole."),
            ToolCall(
                id="call_demo_1",
                name="save_article",
                raw_input=json.dumps(args, separators=(",", ":")),
                input=args,
            ),
        ),
        stop_reason="tool_use",
        raw_stop_reason=None,
        usage=Usage(input_tokens=120, output_tokens=95),
        terminal="completed",
    )


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="Playback speed; 0 runs without pauses.")] = 1.0,
) -> None:
    """A short tour: one scripted response written by each provider's encoder, decoded live.

    Then the same stream cut in the middle of the tool arguments, which ends ``truncated`` and whose
    tool call is shown as not executable.
    """
    console = Console()
    delay = 0.01 / speed if speed > 0 else 0.0
    views: list[tuple[str, LiveView]] = []
    for dialect in wire.DIALECTS:
        try:
            message = _scripted(dialect)
            data = wire.encoder(dialect).encode_message(message)
        except MidstreamError:
            continue
        console.rule(f"[bold]{dialect}[/]: {len(data)} bytes on the wire")
        views.append((dialect, play(_decode_live(dialect, data, delay=delay), console=console)))
    if "anthropic" in wire.DIALECTS:
        data = wire.encoder("anthropic").encode_message(_scripted("anthropic"))
        cut = data.index(b"agents")  # inside the tool arguments
        console.rule("[bold]anthropic, connection lost mid tool-call[/]")
        play(_decode_live("anthropic", data[:cut], delay=delay), console=console)
    console.print(
        f"[bold]{len(views)} dialects decoded.[/] Tool calls run only on complete, valid input; "
        "a cut stream ends truncated."
    )


def main() -> None:
    """Entry point of the ``midstream`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
