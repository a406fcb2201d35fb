"""The live view of a workflow: one lane per agent (what ``midstream workflow`` shows).

:class:`LaneView` is a workflow ``on_event`` callback. On a terminal it redraws a table with one lane
per agent: its state, the text it is writing, the tool field typing out (path, size so far, the last
characters), its handoffs and blackboard writes. Elsewhere (a pipe, a file) it prints one line per
thing that happened (a handoff, a blackboard commit, a run's end, a retry, an alert), so a log reads
in order. :meth:`LaneView.summary` is the table printed at the end: per agent its runs, when it
started and ended, and its streaming metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from midstream.agent.events import (
    CancelNotice,
    FallbackNotice,
    IterationStart,
    RetryNotice,
    RunEnd,
    ToolCompensated,
    ToolFinished,
    ToolInvalidInput,
    ToolStarted,
)
from midstream.core.toolargs import ToolFieldDelta, ToolFieldStart
from midstream.events import BlockStart, TextDelta
from midstream.message import TERMINALS
from midstream.workflow import (
    HANDOFF,
    AdaptiveChange,
    Alert,
    BlackboardUpdate,
    HandoffDropped,
    HandoffEnd,
    HandoffStart,
    WorkflowEnd,
    WorkflowEvent,
    WorkflowResult,
)

__all__ = ["LaneView"]

_STYLE = {"completed": "green", "truncated": "yellow", "failed": "red", "cancelled": "magenta"}


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _tail(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-(width - 1) :]


@dataclass
class _Lane:
    agent: str
    state: str = "waiting"
    runs: int = 0
    started: float | None = None
    ended: float | None = None
    text: str = ""
    current: str = ""
    field_bytes: int = 0
    field_tail: str = ""
    notes: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.notes = [*self.notes[-1:], line]


class LaneView:
    """Renders a workflow run on ``console`` (see the module docstring); call :meth:`close` at the end."""

    def __init__(self, console: Console, agents: list[str], *, live: bool | None = None) -> None:
        self.console = console
        self.lanes = {name: _Lane(name) for name in agents}
        self.live = console.is_terminal if live is None else live
        self._display: Live | None = None
        if self.live:
            self._display = Live(console=console, get_renderable=self.render, refresh_per_second=8)
            self._display.start()

    def _say(self, at: float, agent: str, line: str) -> None:
        if agent in self.lanes:
            self.lanes[agent].note(line)
        if not self.live:
            self.console.print(f"[dim]{at:7.2f}s[/dim] [bold]{escape(agent)}[/bold] {line}", highlight=False)

    def __call__(self, item: WorkflowEvent) -> None:
        lane = self.lanes.get(item.agent)
        event = item.event
        if lane is None:
            if isinstance(event, Alert):
                self._say(item.at, "workflow", f"[red]alert[/red]: {escape(event.message)}")
            return
        if isinstance(event, IterationStart):
            if lane.started is None or lane.state in TERMINALS:
                lane.runs += 1 if event.iteration == 1 else 0
            lane.started = item.at if lane.started is None else lane.started
            lane.state, lane.text, lane.current = "streaming", "", ""
        elif isinstance(event, TextDelta):
            lane.text += event.text
        elif isinstance(event, BlockStart) and event.type == "tool_call":
            lane.current, lane.field_bytes, lane.field_tail = f"{event.name}", 0, ""
        elif isinstance(event, ToolFieldStart | ToolFieldDelta):
            path = ".".join(str(p) for p in event.path)
            lane.current = f"{lane.current.split(' ')[0]} {path}"
            if isinstance(event, ToolFieldDelta):
                lane.field_bytes += len(event.text.encode("utf-8"))
                lane.field_tail = (lane.field_tail + event.text)[-200:]
        elif isinstance(event, ToolStarted):
            receiver = event.input.get("agent") if event.name == HANDOFF else None
            lane.state = f"waiting for {receiver}" if receiver else f"running {event.name}"
            lane.current = ""
        elif isinstance(event, ToolFinished):
            lane.state = "streaming"
        else:
            self._lifecycle(item, lane, event)

    def _lifecycle(self, item: WorkflowEvent, lane: _Lane, event: Any) -> None:
        if isinstance(event, HandoffStart):
            how = {"validated": "at validation", "executed": "after the response", "pipeline": "pipeline"}
            self._say(
                item.at,
                item.agent,
                f"→ [cyan]{escape(event.receiver)}[/cyan] handoff ({_size(event.bytes)}), "
                f"started {how[event.when]}",
            )
            if event.receiver in self.lanes:
                self.lanes[event.receiver].state = "starting"
        elif isinstance(event, HandoffEnd):
            self._say(item.at, item.agent, f"answer back to its sender ({event.terminal})")
        elif isinstance(event, HandoffDropped):
            self._say(
                item.at,
                item.agent,
                f"[yellow]dropped[/yellow] {escape(event.receiver)}: {escape(event.reason)}",
            )
        elif isinstance(event, BlackboardUpdate) and not event.partial:
            what = f"v{event.version}" if event.state == "complete" else event.state
            size = _size(len(str(event.value or "").encode("utf-8")))
            self._say(item.at, item.agent, f"blackboard [cyan]{escape(event.key)}[/cyan] {what} ({size})")
        elif isinstance(event, RetryNotice):
            self._say(
                item.at, item.agent, f"[yellow]retry[/yellow] {event.reason}, max_tokens {event.max_tokens}"
            )
        elif isinstance(event, FallbackNotice):
            self._say(
                item.at, item.agent, f"[yellow]{escape(event.tool)} falls back to buffered streaming[/yellow]"
            )
        elif isinstance(event, ToolInvalidInput):
            self._say(
                item.at,
                item.agent,
                f"[yellow]{escape(event.name)} input {event.reason}: not executed[/yellow]",
            )
        elif isinstance(event, ToolCompensated):
            self._say(item.at, item.agent, f"undid {escape(event.name)} ({event.status})")
        elif isinstance(event, CancelNotice):
            lane.state = "cancelling"
        elif isinstance(event, RunEnd):
            lane.state, lane.ended, lane.current = event.terminal, item.at, ""
            style = _STYLE.get(event.terminal, "white")
            self._say(item.at, item.agent, f"[{style}]{event.terminal}[/{style}]")
        elif isinstance(event, Alert):
            self._say(item.at, item.agent, f"[red]alert[/red]: {escape(event.message)}")
        elif isinstance(event, AdaptiveChange):
            if event.what == "max_tokens":
                change = f"max_tokens {event.old} → {event.new} for later runs"
            else:
                change = f"{escape(event.tool or '')} streams buffered in later runs"
            self._say(item.at, item.agent, f"[cyan]adaptive[/cyan]: {change}")
        elif isinstance(event, WorkflowEnd):
            pass

    def render(self) -> RenderableType:
        """The lanes as a table (what the live display redraws)."""
        table = Table(expand=True, show_lines=True)
        table.add_column("agent", no_wrap=True, style="bold")
        table.add_column("state", no_wrap=True)
        table.add_column("streaming now", ratio=1)
        table.add_column("handoffs · blackboard", ratio=1)
        for lane in list(self.lanes.values()):
            style = _STYLE.get(lane.state, "cyan" if lane.state != "waiting" else "dim")
            state = Text(lane.state, style=style)
            if lane.current:
                now = Text(f"{lane.current} {_size(lane.field_bytes)} ", style="bold")
                now.append(_tail(lane.field_tail, 40), style="dim")
            else:
                now = Text(_tail(lane.text), style="")
            notes = Text.from_markup("\n".join(lane.notes)) if lane.notes else Text("")
            table.add_row(lane.agent, state, now, notes)
        return table

    def close(self) -> None:
        """Stop redrawing (the last frame stays on screen)."""
        if self._display is not None:
            self._display.stop()
            self._display = None

    def summary(self, result: WorkflowResult) -> Table:
        """Per agent: runs, start and end, consumer latency and improvement from the run's metrics."""
        agents = result.metrics.get("last_run", result.metrics).get("agents", {})
        table = Table(title=f"workflow {result.terminal} in {result.seconds:.1f} s", title_justify="left")
        for name in ("agent", "runs", "started", "ended", "param latency", "improvement", "streamed"):
            table.add_column(name, justify="left" if name == "agent" else "right")
        for name in self.lanes:
            runs = [r for r in result.runs if r.agent == name]
            stats = agents.get(name, {})
            latency = stats.get("avg_latency")
            improvement = stats.get("improvement")
            table.add_row(
                name,
                str(len(runs)),
                f"{min(r.started for r in runs):.1f} s" if runs else "-",
                f"{max(r.ended or 0 for r in runs):.1f} s" if runs else "-",
                "-" if latency is None else f"{latency:.0f} ms",
                "-" if improvement is None else f"{improvement:.0%}",
                _size(stats.get("bytes", 0)) if stats else "-",
            )
        return table
