"""The live terminal view: a Rich renderable that follows a response's events as they arrive.

:class:`LiveView` is fed events (:meth:`LiveView.feed`) and renders the response so far:

* the answer as markdown, healed while it is still being written (:func:`midstream.core.markdown.heal`:
  an open code fence, half a ``**bold**``, a table without its delimiter row render sanely) and
  rendered exactly as received once its block is complete;
* thinking, dimmed;
* one panel per tool call whose fields type out as their text arrives (the tool tracker's field
  events, :mod:`midstream.core.toolargs`) and are ticked one by one as each becomes complete; the
  panel ends with the call's verdict: ready, or **not executed** (truncated, invalid JSON, failed its
  schema, or the response did not finish);
* a status line that says honestly whether the response is streaming, completed, truncated, failed
  or cancelled (anything but completed is marked partial), and a metrics line when given one.

It does no I/O. :class:`LiveDisplay` draws it on a terminal: redraws are throttled, the live region is
cropped to the screen (newest lines kept), and the whole view is printed once at the end, so the
scrollback holds the complete response. On a console that is not a terminal nothing is redrawn and
only the final view is printed. :func:`play` drives a display from an iterable of events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from midstream.core.accumulate import Accumulator
from midstream.core.markdown import heal
from midstream.core.toolargs import (
    ToolArgs,
    ToolCallInvalid,
    ToolCallReady,
    ToolEvent,
    ToolFieldComplete,
    ToolFieldDelta,
    ToolFieldStart,
    ToolTracker,
)
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, StreamError
from midstream.message import Terminal
from midstream.metrics import StreamMetrics

__all__ = ["LiveDisplay", "LiveView", "play"]

ViewEvent = Event | ToolEvent

_TERMINAL_STYLE = {
    "completed": "bold green",
    "truncated": "bold yellow",
    "failed": "bold red",
    "cancelled": "bold magenta",
}
_INVALID = {
    "truncated": "input truncated",
    "invalid_json": "invalid JSON",
    "schema": "input fails the tool's schema",
}
_CURSOR = "▌"


@dataclass
class _Field:
    """One top-level field of a tool call's input, as far as it has arrived."""

    text: str = ""  # a string's text so far; for other values, set from the parser's snapshot
    is_string: bool = True
    complete: bool = False


@dataclass
class _Call:
    """One tool-call block: its fields while they stream, then its verdict."""

    index: int
    name: str
    id: str
    args: ToolArgs | None
    fields: dict[str | int, _Field] = field(default_factory=dict)
    verdict: ToolCallReady | ToolCallInvalid | None = None
    cut_short: str | None = None  # why the call cannot run if the response ended without a verdict

    def field_event(self, event: ToolFieldStart | ToolFieldDelta | ToolFieldComplete) -> None:
        key = event.path[0]
        entry = self.fields.setdefault(key, _Field())
        top = len(event.path) == 1
        if isinstance(event, ToolFieldDelta) and top:
            entry.text += event.text
        elif isinstance(event, ToolFieldComplete) and top:
            entry.complete = True
            entry.is_string = isinstance(event.value, str)
            entry.text = event.value if entry.is_string else _json(event.value)
        elif not top or (isinstance(event, ToolFieldStart) and entry.text == "" and not entry.complete):
            self._preview(key, entry)

    def _preview(self, key: str | int, entry: _Field) -> None:
        """A nested value (or one just started) shows the parser's snapshot of the top-level field."""
        if self.args is None:
            return
        snapshot = self.args.snapshot()
        try:
            value = snapshot[key]
        except (KeyError, IndexError, TypeError):
            return
        entry.is_string = isinstance(value, str)
        entry.text = value if entry.is_string else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@dataclass
class LiveView:
    """Renders one response from its events. Feed events in order; render at any time.

    Tool events (:mod:`midstream.core.toolargs`) may be fed along with the normalized events, as the
    client yields them: the field previews come from the view's own tracker, and a verdict fed in
    (which may reflect the tool's schema) replaces the view's own. ``max_height`` crops the rendering
    to its newest lines (what :class:`LiveDisplay` uses while a response streams).
    """

    title: str = "response"
    events: int = 0
    metrics: StreamMetrics | None = None
    max_height: int | None = None
    markdown: bool = True
    _acc: Accumulator = field(default_factory=Accumulator)
    _tracker: ToolTracker = field(default_factory=ToolTracker)
    _calls: dict[int, _Call] = field(default_factory=dict)
    _open_text: set[int] = field(default_factory=set)
    _header: str = ""
    _end: ResponseEnd | None = None
    _error: StreamError | None = None
    _interrupted: Terminal | None = None

    @property
    def terminal(self) -> Terminal | None:
        """How the response ended (``None`` while it streams)."""
        if self._end is not None:
            return self._end.terminal
        return self._interrupted

    @property
    def calls(self) -> dict[int, ToolCallReady | ToolCallInvalid | None]:
        """Each tool call's verdict by block index (``None``: not decided yet)."""
        return {index: call.verdict for index, call in self._calls.items()}

    def feed(self, event: ViewEvent) -> None:
        """Take one event (normalized or tool event) into the view."""
        if isinstance(event, ToolCallReady | ToolCallInvalid):
            call = self._calls.get(event.index)
            if call is not None:
                call.verdict = event
            return
        if isinstance(event, ToolFieldStart | ToolFieldDelta | ToolFieldComplete):
            return  # the view's own tracker sees the same arguments
        self.events += 1
        self._acc.feed(event)
        self._follow(event)
        derived = self._tracker.feed(event)
        if isinstance(event, BlockStart) and event.index in self._calls:
            self._calls[event.index].args = self._tracker.open_calls.get(event.index)
        for tool_event in derived:
            self._tool_event(tool_event)

    def interrupt(self, terminal: Terminal = "cancelled") -> None:
        """The response was stopped from this side (Ctrl-C, cancel) before its events said so."""
        if self._end is None:
            self._interrupted = terminal
            for call in self._calls.values():
                if call.verdict is None:
                    call.cut_short = terminal

    def _follow(self, event: Event) -> None:
        if isinstance(event, ResponseStart):
            self._header = " · ".join(x for x in (event.provider, event.model, event.id) if x)
        elif isinstance(event, BlockStart):
            if event.type == "text":
                self._open_text.add(event.index)
            elif event.type == "tool_call":
                self._calls[event.index] = _Call(event.index, event.name or "?", event.id or "", None)
        elif isinstance(event, BlockStop):
            self._open_text.discard(event.index)
        elif isinstance(event, ResponseEnd):
            self._end = event
            self._open_text.clear()
        elif isinstance(event, StreamError):
            self._error = event

    def _tool_event(self, event: ToolEvent) -> None:
        call = self._calls.get(event.index)
        if call is None:
            return
        if isinstance(event, ToolCallReady | ToolCallInvalid):
            if call.verdict is None:
                call.verdict = event
        else:
            call.field_event(event)

    # -- rendering ---------------------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        header = Text(self._header or self.title, style="bold cyan")
        body = Group(*self._body(options.max_width))
        if self.max_height is None:
            yield header
            yield body
            return
        lines = console.render_lines(body, options.update(height=None), pad=False)
        room = max(self.max_height - 1, 1)
        yield header
        if len(lines) > room:
            hidden = len(lines) - room + 1
            yield Text(f"… {hidden} more lines above", style="dim")
            lines = lines[hidden:]
        for line in lines:
            yield from line
            yield Segment.line()

    def _body(self, width: int) -> Iterator[RenderableType]:
        message = self._acc.message
        if message.thinking:
            yield Text(message.thinking, style="dim italic")
        text = message.text
        if text:
            if not self.markdown:
                yield Text(text)
            else:
                yield Markdown(heal(text) if self._open_text else text)
        for call in self._calls.values():
            yield self._panel(call, width)
        yield self._status()
        if self.metrics is not None:
            yield Text(self.metrics.summary(), style="dim")

    def _panel(self, call: _Call, width: int) -> Panel:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for row in self._rows(call, budget=max(2 * (width - 24), 60)):  # about two lines per field
            grid.add_row(*row)
        state, style = self._verdict(call)
        return Panel(
            grid,
            title=f"[bold]{escape(call.name)}[/] [dim]{escape(call.id)}[/]",
            title_align="left",
            subtitle=state,
            subtitle_align="right",
            border_style=style,
        )

    def _rows(self, call: _Call, budget: int) -> Iterator[tuple[Text, str, Text]]:
        """One row per top-level field: a mark (complete, typing, cut), its name, its text so far."""
        ended = call.verdict is not None or call.cut_short is not None
        for key, entry in call.fields.items():
            if entry.complete:
                mark = Text("✓", style="green")
            else:
                mark = Text("✗", style="red") if ended else Text("…", style="yellow")
            yield mark, str(key), self._value(entry, budget, streaming=not ended)
        if isinstance(call.verdict, ToolCallInvalid) and call.verdict.reason == "invalid_json":
            raw = call.verdict.raw
            yield Text("✗", style="red"), "raw", Text(raw[:budget] + ("…" if len(raw) > budget else ""))
        elif not call.fields:
            waiting = Text("…", style="yellow")
            yield Text(""), "", Text("(no arguments)", style="dim") if ended else waiting

    @staticmethod
    def _value(entry: _Field, budget: int, *, streaming: bool) -> Text:
        text = entry.text
        if entry.complete:
            if len(text) > budget:
                shown = Text(text[: budget - 20].rstrip() + "…")
                shown.append(f" ({len(text):,} chars)", style="dim")
                return shown
            return Text(text)
        shown = Text("…" + text[-budget:] if len(text) > budget else text)
        if streaming:
            shown.append(_CURSOR, style="yellow")
        return shown

    def _verdict(self, call: _Call) -> tuple[str, str]:
        verdict = call.verdict
        if isinstance(verdict, ToolCallReady):
            return "✓ complete, valid input: ready to run", "green"
        if isinstance(verdict, ToolCallInvalid):
            reason = _INVALID.get(verdict.reason, verdict.reason)
            if verdict.reason == "schema" and verdict.error is not None:
                reason = f"{reason}: {verdict.error}"
            return f"✗ not executed: {reason}", "red"
        if call.cut_short is not None:
            return f"✗ not executed: response {call.cut_short}", "red"
        size = len(call.args.raw.encode()) if call.args is not None else 0
        return f"streaming… {size:,} bytes", "yellow"

    def _status(self) -> Text:
        terminal = self.terminal
        if terminal is None:
            return Text(f"streaming… {self.events} events", style="yellow")
        line = Text(terminal, style=_TERMINAL_STYLE.get(terminal, "bold"))
        if terminal != "completed":
            line.append(" (partial output)", style=_TERMINAL_STYLE.get(terminal, "bold"))
        end = self._end
        if end is not None and (end.raw_stop_reason or end.stop_reason):
            line.append(f"  stop={_stop_reason(end)}")
        if end is not None and end.usage.output_tokens:
            line.append(f"  in={end.usage.input_tokens} out={end.usage.output_tokens}")
        line.append(f"  {self.events} events")
        if self._error is not None:
            line.append(f"  error: {self._error.error_kind}: {self._error.message}", style="red")
        return line


def _stop_reason(end: ResponseEnd) -> str:
    """The normalized reason, as ``--json`` has it; the provider's own in parentheses when different."""
    normalized, raw = end.stop_reason, end.raw_stop_reason
    if normalized is None:
        return str(raw)
    return normalized if raw in (None, normalized) else f"{normalized} ({raw})"


class LiveDisplay:
    """Draws a :class:`LiveView` while events arrive; a context manager.

    On a terminal, redraws at most ``fps`` times a second inside Rich's ``Live`` (transient), cropped to
    the screen; on exit, however it happens (Ctrl-C included), the live region is removed and the whole
    view printed once. Elsewhere (a pipe, a file) only the final view is printed.
    """

    def __init__(
        self,
        view: LiveView | None = None,
        *,
        console: Console | None = None,
        fps: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view or LiveView()
        self.console = console or Console()
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._clock = clock
        self._live: Live | None = None
        self._last = -1e9

    def __enter__(self) -> LiveDisplay:
        if self.console.is_terminal:
            self.view.max_height = max(self.console.size.height - 1, 4)
            self._live = Live(
                self.view,
                console=self.console,
                auto_refresh=False,
                transient=True,
                vertical_overflow="crop",
            )
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, KeyboardInterrupt):
            self.view.interrupt("cancelled")
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.view.max_height = None
        self.console.print(self.view)

    def feed(self, event: ViewEvent) -> None:
        """One event into the view; redraw if the last redraw is old enough."""
        self.view.feed(event)
        if self._live is not None:
            now = self._clock()
            if now - self._last >= self._interval:
                self._last = now
                self._live.refresh()

    def refresh(self) -> None:
        """Redraw now."""
        if self._live is not None:
            self._last = self._clock()
            self._live.refresh()


def play(
    events: Iterable[ViewEvent],
    *,
    console: Console | None = None,
    title: str = "response",
    pause: Callable[[ViewEvent], float] | None = None,
) -> LiveView:
    """Render ``events`` live as they are produced; ``pause(event)`` seconds are waited after each."""
    view = LiveView(title=title)
    with LiveDisplay(view, console=console) as display:
        for event in events:
            display.feed(event)
            delay = pause(event) if pause else 0.0
            if delay > 0:
                time.sleep(delay)
    return view
