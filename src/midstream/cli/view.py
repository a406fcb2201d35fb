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

The cost of following a stream is linear in its size: the view keeps text as it arrives (appended,
never rebuilt from snapshots), and while the response streams it renders only a bounded tail of each
text and field (:data:`TAIL` characters, with the size of what is above), so a repaint costs the same
for a 16 MB field as for a short one; nested tool-input values are previewed from the parser's
snapshot only while the call's input is small (:data:`SNAPSHOT_LIMIT`), else from the tail of the raw
arguments. :attr:`LiveView.work` counts the characters the view copied and laid out.

It does no I/O. :class:`LiveDisplay` draws it on a terminal: redraws are throttled to a frame rate, the
live region is cropped to the screen (newest lines kept), and the whole view is printed once at the
end, so the scrollback holds the complete response (an answer longer than :data:`MARKDOWN_LIMIT` is
printed as plain text). On a console that is not a terminal nothing is redrawn and
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
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from midstream.message import Terminal
from midstream.metrics import StreamMetrics

__all__ = ["MARKDOWN_LIMIT", "SNAPSHOT_LIMIT", "TAIL", "LiveDisplay", "LiveView", "play"]

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

TAIL = 8192
"""Characters of a growing text or field the view keeps and shows while the response streams."""
SNAPSHOT_LIMIT = 16 * 1024
"""Tool input (characters) up to which a nested value is previewed from the parser's snapshot."""
_PREVIEW = 1024  # characters of a field's tail a tool panel may show (about two lines are)
MARKDOWN_LIMIT = 256 * 1024
"""An answer longer than this is printed at the end as plain text (markdown layout is not linear)."""


class _Tail:
    """Append-only text: how much arrived (``size``) and its last :data:`TAIL` characters.

    Pieces are kept in a list and folded into the tail only when they exceed twice its length, so
    each character is copied a bounded number of times however small the pieces are.
    """

    __slots__ = ("_parts", "_pending", "size", "work")

    def __init__(self, text: str = "") -> None:
        self._parts: list[str] = [text] if text else []
        self._pending = len(text)
        self.size = len(text)
        self.work = len(text)

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._pending += len(text)
        self.size += len(text)
        self.work += len(text)
        if self._pending > 2 * TAIL:
            self._fold()

    def _fold(self) -> None:
        last, kept = [], 0
        for part in reversed(self._parts):  # only the pieces that reach into the tail are joined
            last.append(part)
            kept += len(part)
            if kept >= TAIL:
                break
        joined = "".join(reversed(last))[-TAIL:]
        self.work += kept
        self._parts, self._pending = [joined], len(joined)

    @property
    def text(self) -> str:
        """The last :data:`TAIL` characters (all of them for a short text)."""
        if len(self._parts) > 1:
            self._fold() if self._pending > TAIL else self._join()
        return self._parts[0] if self._parts else ""

    def _join(self) -> None:
        joined = "".join(self._parts)
        self.work += len(joined)
        self._parts = [joined]

    def last(self, n: int) -> str:
        """The last ``n`` characters (at most :data:`TAIL`), joining only the pieces they span."""
        picked, kept = [], 0
        for part in reversed(self._parts):
            picked.append(part)
            kept += len(part)
            if kept >= n:
                break
        self.work += min(kept, n)
        return "".join(reversed(picked))[-n:] if picked else ""

    @property
    def cut(self) -> int:
        """How many characters are not in :attr:`text`."""
        return self.size - min(self.size, TAIL)


@dataclass
class _Field:
    """One top-level field of a tool call's input, as far as it has arrived."""

    tail: _Tail = field(default_factory=_Tail)  # a string's text so far
    value: str | None = None  # the complete value as text (a string, or other JSON as written)
    preview: str | None = None  # a nested value in progress, from the snapshot or the raw arguments
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
    raw: _Tail = field(default_factory=_Tail)  # the argument text as it arrives
    raw_bytes: int = 0
    nested: str | int | None = None  # the field whose nested value is arriving (previewed at render)

    def field_event(self, event: ToolFieldStart | ToolFieldDelta | ToolFieldComplete) -> None:
        key = event.path[0]
        entry = self.fields.get(key)
        if entry is None:
            entry = self.fields[key] = _Field()
        top = len(event.path) == 1
        if isinstance(event, ToolFieldDelta) and top:
            entry.tail.add(event.text)
        elif isinstance(event, ToolFieldComplete) and top:
            entry.complete, entry.preview = True, None
            entry.is_string = isinstance(event.value, str)
            entry.value = event.value if entry.is_string else _json(event.value)
            if self.nested == key:
                self.nested = None
        elif not top or (isinstance(event, ToolFieldStart) and not entry.tail.size and not entry.complete):
            self.nested = key  # previewed when the view is drawn, not at every event

    def previews(self) -> int:
        """Fill the preview of the nested field in progress; returns the characters it cost."""
        key = self.nested
        entry = self.fields.get(key) if key is not None else None
        if entry is None or entry.complete:
            return 0
        if self.args is not None and self.raw.size <= SNAPSHOT_LIMIT:
            try:
                value = self.args.snapshot()[key]
            except (KeyError, IndexError, TypeError):
                return self.raw.size
            entry.is_string = isinstance(value, str)
            entry.preview = value if entry.is_string else _json(value)
            return self.raw.size + len(entry.preview)
        entry.is_string = False
        entry.preview = self.raw.last(_PREVIEW)  # large input: the raw tail, not a snapshot of all of it
        return 0  # counted by the tail


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
    _texts: dict[int, _Tail] = field(default_factory=dict)
    _thinking: _Tail = field(default_factory=_Tail)
    _work: int = 0

    @property
    def work(self) -> int:
        """Characters the view has copied and laid out so far: what following a stream cost it, linear
        in the stream's size (a test of that counts this, not time)."""
        tails = [*self._texts.values(), self._thinking]
        tails += [t for c in self._calls.values() for t in (c.raw, *(f.tail for f in c.fields.values()))]
        return self._work + sum(t.work for t in tails)

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
        if isinstance(event, TextDelta):
            tail = self._texts.get(event.index)
            if tail is not None:
                tail.add(event.text)
        elif isinstance(event, ThinkingDelta):
            self._thinking.add(event.text)
        elif isinstance(event, ToolArgsDelta):
            call = self._calls.get(event.index)
            if call is not None:
                call.raw.add(event.fragment)
                call.raw_bytes += len(event.fragment.encode("utf-8", "surrogatepass"))
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
                self._texts[event.index] = _Tail()
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
        if self.terminal is None:  # streaming: bounded tails, whatever the size so far
            thinking, cut_thinking = self._thinking.text, self._thinking.cut
            tails = list(self._texts.values())
            text = "".join(tail.text for tail in tails)
            cut = sum(tail.cut for tail in tails)
        else:  # the end: everything, once
            message = self._acc.message
            thinking, cut_thinking, text, cut = message.thinking, 0, message.text, 0
        if thinking:
            if cut_thinking:
                yield Text(f"… {cut_thinking:,} characters of thinking above", style="dim")
            yield Text(thinking, style="dim italic")
        if text:
            self._work += len(text) + len(thinking)
            if cut:
                yield Text(f"… {cut:,} characters above", style="dim")
            if not self.markdown or len(text) > MARKDOWN_LIMIT:
                yield Text(text)
            else:
                yield Markdown(heal(text) if self._open_text else text)
        for call in self._calls.values():
            self._work += call.previews()
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
        if entry.complete and entry.value is not None:
            text = entry.value
            if len(text) > budget:
                shown = Text(text[: budget - 20].rstrip() + "…")
                shown.append(f" ({len(text):,} chars)", style="dim")
                return shown
            return Text(text)
        if entry.tail.size or entry.preview is None:
            text, size = entry.tail.last(min(budget, _PREVIEW)), entry.tail.size
        else:
            text, size = entry.preview, len(entry.preview)
        shown = Text("…" + text[-budget:] if size > budget else text)
        if streaming:
            shown.append(_CURSOR, style="yellow")
        if size > budget:
            shown.append(f" ({size:,} chars so far)", style="dim")
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
        return f"streaming… {call.raw_bytes:,} bytes", "yellow"

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
