"""The live terminal view: a Rich renderable that follows a response's events as they arrive.

:class:`LiveView` is fed events (``feed``) and renders the response so far: answer text, thinking
dimmed, one panel per tool call whose raw argument text grows as it streams, and a status line that
says honestly whether the response is still streaming, complete, truncated, failed or cancelled.
It does no I/O itself; :func:`play` drives it with Rich's ``Live``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from midstream.core.accumulate import Accumulator
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, StreamError

__all__ = ["LiveView", "play"]

_TERMINAL_STYLE = {
    "completed": "bold green",
    "truncated": "bold yellow",
    "failed": "bold red",
    "cancelled": "bold magenta",
}


@dataclass
class _ToolPanel:
    index: int
    name: str
    id: str
    complete: bool | None = None  # None while streaming


@dataclass
class LiveView:
    """Renders one response from its events. Feed events in order; render at any time."""

    title: str = "response"
    events: int = 0
    _acc: Accumulator = field(default_factory=Accumulator)
    _tools: dict[int, _ToolPanel] = field(default_factory=dict)
    _header: str = ""
    _end: ResponseEnd | None = None
    _error: StreamError | None = None

    def feed(self, event: Event) -> None:
        """Take one event into the view."""
        self.events += 1
        self._acc.feed(event)
        if isinstance(event, ResponseStart):
            self._header = " · ".join(x for x in (event.provider, event.model, event.id) if x)
        elif isinstance(event, BlockStart) and event.type == "tool_call":
            self._tools[event.index] = _ToolPanel(event.index, event.name or "?", event.id or "")
        elif isinstance(event, BlockStop) and event.index in self._tools:
            self._tools[event.index].complete = event.complete
        elif isinstance(event, ResponseEnd):
            self._end = event
        elif isinstance(event, StreamError):
            self._error = event

    def __rich__(self) -> RenderableType:
        message = self._acc.message
        parts: list[RenderableType] = [Text(self._header or self.title, style="bold cyan")]
        if message.thinking:
            parts.append(Text(message.thinking, style="dim italic"))
        if message.text:
            parts.append(Text(message.text))
        calls = {c.id: c for c in message.tool_calls}
        for panel in self._tools.values():
            call = calls.get(panel.id)
            raw = call.raw_input if call else ""
            if panel.complete is None:
                state, style = "streaming…", "yellow"
            elif call is not None and call.input is not None:
                state, style = "complete, valid JSON", "green"
            else:
                reason = call.error if call else "incomplete"
                state, style = f"not executable: {reason}", "red"
            parts.append(
                Panel(Text(raw or "∅"), title=f"tool {panel.name}", subtitle=state, border_style=style)
            )
        parts.append(self._status())
        return Group(*parts)

    def _status(self) -> Text:
        if self._end is None:
            return Text(f"streaming… {self.events} events", style="yellow")
        usage = self._end.usage
        line = Text(self._end.terminal, style=_TERMINAL_STYLE.get(self._end.terminal, "bold"))
        line.append(f"  stop={self._end.raw_stop_reason or self._end.stop_reason}")
        line.append(f"  in={usage.input_tokens} out={usage.output_tokens}  {self.events} events")
        if self._error is not None:
            line.append(f"  error: {self._error.error_kind}: {self._error.message}", style="red")
        return line


def play(
    events: Iterable[Event],
    *,
    console: Console | None = None,
    title: str = "response",
    pause: Callable[[Event], float] | None = None,
) -> LiveView:
    """Render ``events`` live as they are produced; ``pause(event)`` seconds are waited after each."""
    view = LiveView(title=title)
    with Live(view, console=console, refresh_per_second=20, transient=False) as live:
        for event in events:
            view.feed(event)
            live.refresh()
            delay = pause(event) if pause else 0.0
            if delay > 0:
                time.sleep(delay)
    return view
