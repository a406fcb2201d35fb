"""The live terminal view of an agent run (what ``midstream run`` shows).

:class:`RunConsole` is an ``on_event`` callback: each response streams through the live view of
:mod:`midstream.cli.view` (text, thinking, a panel per tool call with its verdict), and the run's
lifecycle (iterations, tools ready / started / finished / failed / denied / not executed /
compensated, hooks that did something, retries, fallbacks, cancel, the ending) is printed as one
line per event between them. A line that happens while a response is on screen (a call's verdict, a
hook of its first token) is held until that response has been printed whole, so the scrollback reads
in order: the response, then what it led to.
"""

from __future__ import annotations

import json
from typing import Any, assert_never

from rich.console import Console
from rich.markup import escape

from midstream.agent.events import (
    AgentEvent,
    CancelNotice,
    FallbackNotice,
    HookNotice,
    IterationStart,
    RetryNotice,
    RunEnd,
    RunEvent,
    ToolCompensated,
    ToolDenied,
    ToolFailed,
    ToolFinished,
    ToolInvalidInput,
    ToolReady,
    ToolStarted,
)
from midstream.cli.view import LiveDisplay, LiveView
from midstream.events import ResponseEnd, ResponseStart

__all__ = ["RunConsole"]

_END_STYLE = {
    "completed": "bold green",
    "truncated": "bold yellow",
    "failed": "bold red",
    "cancelled": "bold magenta",
}


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunConsole:
    """Renders a run on ``console``; pass it as ``on_event``, call :meth:`close` when the run is over."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._display: LiveDisplay | None = None
        self._held: list[str] = []
        self.lines = 0

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, ResponseStart):
            self.close()
            self._display = LiveDisplay(LiveView(), console=self.console)
            self._display.__enter__()
        if isinstance(event, AgentEvent):
            line = _line(event)
            if line is not None:
                self.lines += 1
                if self._display is not None:
                    self._held.append(line)
                else:
                    self.console.print(line, highlight=False)
            return
        if self._display is not None:
            self._display.feed(event)
            if isinstance(event, ResponseEnd):
                self.close()

    def close(self) -> None:
        """End the live region of the response being shown, if any (it is printed once, whole), then
        print the lines held while it was shown."""
        display, self._display = self._display, None
        if display is not None:
            display.__exit__(None, None, None)
        held, self._held = self._held, []
        for line in held:
            self.console.print(line, highlight=False)


def _iteration(e: IterationStart) -> str:
    eager = f" · eager: {', '.join(e.eager)}" if e.eager else ""
    return f"[bold cyan]── iteration {e.iteration}[/] [dim]max_tokens {e.max_tokens}{escape(eager)}[/]"


def _ready(e: ToolReady) -> str:
    return f"[green]✓ ready[/]     {escape(e.name)} {escape(_short(e.input))} [dim]{escape(e.call_id)}[/]"


def _started(e: ToolStarted) -> str:
    return f"[cyan]▶ started[/]   {escape(e.name)} [dim]{escape(e.call_id)}[/]"


def _finished(e: ToolFinished) -> str:
    what = "already done (journal)" if e.status == "skipped" else f"{e.seconds * 1000:.0f} ms"
    return f"[green]■ finished[/]  {escape(e.name)} [dim]{what}[/] → {escape(_short(e.content))}"


def _failed(e: ToolFailed) -> str:
    return f"[red]✗ failed[/]    {escape(e.name)} ({e.reason}) {escape(_short(e.error))}"


def _denied(e: ToolDenied) -> str:
    return f"[red]✗ denied[/]    {escape(e.name)}: {escape(e.reason)}"


def _invalid(e: ToolInvalidInput) -> str:
    return f"[yellow]✗ not executed[/] {escape(e.name)} ({e.reason}) {escape(_short(e.wrapped, 60))}"


def _compensated(e: ToolCompensated) -> str:
    style = "magenta" if e.status == "compensated" else "red"
    extra = f": {e.error}" if e.error else ""
    return f"[{style}]↺ {e.status}[/] {escape(e.name)} [dim]{escape(e.call_id)}{escape(extra)}[/]"


def _hook(e: HookNotice) -> str | None:
    o = e.outcome
    if o.status == "ok" and o.decision is None and not o.additional_context and o.updated_input is None:
        return None  # a hook with nothing to say stays quiet
    detail = o.decision or ("added context" if o.additional_context else o.status)
    why = f": {o.reason}" if o.reason else ""
    style = "dim" if o.status == "ok" else "red"
    return f"[{style}]hook {o.event} · {escape(o.hook)} · {escape(detail)}{escape(why)}[/]"


def _retry(e: RetryNotice) -> str:
    mode = f"continuing {e.kept} characters" if e.mode == "prefill" else "restarting the answer"
    return (
        f"[yellow]↻ retry {e.attempt}[/] ({e.reason}) in {e.delay:.1f} s, max_tokens {e.max_tokens}, {mode}"
    )


def _fallback(e: FallbackNotice) -> str:
    return (
        f"[yellow]⇣ {escape(e.tool)}[/] falls back to buffered streaming after {e.invalid} invalid input(s)"
    )


def _cancel(e: CancelNotice) -> str:
    pending = f"; {len(e.not_started)} pending call(s) never start" if e.not_started else ""
    return f"[magenta]■ cancel[/] while {e.phase}: {escape(e.reason)}{pending}"


def _end(e: RunEnd) -> str:
    style = _END_STYLE.get(e.terminal, "bold")
    why = f" ({escape(e.reason)})" if e.reason else ""
    return f"[{style}]run {e.terminal}[/] after {e.iterations} iteration(s){why}"


def _line(e: AgentEvent) -> str | None:
    """The line printed for a lifecycle event (``None``: nothing worth a line)."""
    if isinstance(e, IterationStart):
        return _iteration(e)
    if isinstance(e, ToolReady):
        return _ready(e)
    if isinstance(e, ToolStarted):
        return _started(e)
    if isinstance(e, ToolFinished):
        return _finished(e)
    if isinstance(e, ToolFailed):
        return _failed(e)
    if isinstance(e, ToolDenied):
        return _denied(e)
    if isinstance(e, ToolInvalidInput):
        return _invalid(e)
    if isinstance(e, ToolCompensated):
        return _compensated(e)
    if isinstance(e, HookNotice):
        return _hook(e)
    if isinstance(e, RetryNotice):
        return _retry(e)
    if isinstance(e, FallbackNotice):
        return _fallback(e)
    if isinstance(e, CancelNotice):
        return _cancel(e)
    if isinstance(e, RunEnd):
        return _end(e)
    assert_never(e)
