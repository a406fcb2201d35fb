"""What every exporter measures, once: the figures of a stream, an agent run and a tool call, turned
into named measurements. :class:`Measuring` leaves only "add to a counter" and "record in a histogram"
to its subclasses (OpenTelemetry, Prometheus)."""

from __future__ import annotations

import contextvars
import functools
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from midstream.events import BlockStart, Event, ResponseStart, ToolArgsDelta
from midstream.message import Message
from midstream.metrics import Observer, RunProbe, StreamProbe
from midstream.telemetry import _names as n

Attributes = Mapping[str, str | int | float | bool]


@dataclass(slots=True)
class RunTally:
    """What the streams of one agent run add up to (shared through a context variable)."""

    run: Any = None
    inference_calls: int = 0


CURRENT_RUN: contextvars.ContextVar[RunTally | None] = contextvars.ContextVar("midstream_run", default=None)


@functools.lru_cache(maxsize=64)
def _server_of(url: str) -> tuple[tuple[str, str | int], ...]:
    return tuple(server_of(url).items())


def server_of(url: str) -> dict[str, str | int]:
    """``server.address`` and ``server.port`` of a request URL (no path, no query: they may hold keys)."""
    parts = urlsplit(url)
    out: dict[str, str | int] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    if port:
        out["server.port"] = port
    return out


def error_type(message: Message) -> str | None:
    """``error.type`` of a response: the error kind of a failed one, ``None`` otherwise."""
    if message.terminal == "completed":
        return None
    error = message.error
    kind = getattr(error, "error_kind", None)
    if kind:
        return str(kind)
    return None if message.terminal in ("truncated",) else message.terminal


@dataclass(slots=True)
class StreamFigures:
    """The per-stream figures the probe gathers from the events (per tool: first argument byte)."""

    tools: dict[int, str] = field(default_factory=dict)
    first_arg: dict[int, float] = field(default_factory=dict)

    def feed(self, since_start: float, events: Iterable[Event]) -> None:
        # One dict lookup per event: text deltas, the bulk of a stream, fall through at once.
        react = _REACT.get
        for event in events:
            step = react(type(event))
            if step is not None:
                step(self, event, since_start)

    def _args(self, event: Any, since_start: float) -> None:
        if event.fragment and event.index not in self.first_arg:
            self.first_arg[event.index] = since_start

    def _block(self, event: Any, since_start: float) -> None:
        if event.type == "tool_call":
            self.tools[event.index] = event.name or "?"

    def _restart(self, event: Any, since_start: float) -> None:  # a retry starts over
        self.tools.clear()
        self.first_arg.clear()

    def first_arg_bytes(self) -> list[tuple[str, float]]:
        return [(self.tools.get(index, "?"), seconds) for index, seconds in sorted(self.first_arg.items())]


_REACT: dict[type, Callable[[StreamFigures, Any, float], None]] = {
    ToolArgsDelta: StreamFigures._args,
    BlockStart: StreamFigures._block,
    ResponseStart: StreamFigures._restart,
}


class MeasuredStream(StreamProbe):
    """Gathers one stream's figures and hands them to :meth:`Measuring.stream_ended`."""

    wants_events = True

    def __init__(self, owner: Measuring, session: Any, model: str | None) -> None:
        self.owner = owner
        self.session = session
        self.model = model
        self.figures = StreamFigures()
        self.start = session.metrics.start
        self.base = self._attributes()
        self.message: Message | None = None
        tally = CURRENT_RUN.get()
        if tally is not None:
            tally.inference_calls += 1

    def events(self, now: float, events: Iterable[Event]) -> None:
        self.figures.feed(now - self.start, events)

    def end(self, now: float) -> None:
        self.owner.stream_ended(self, now)

    def attributes(self) -> dict[str, str | int | float | bool]:
        """The metric attributes every measurement of this stream carries (a fresh copy)."""
        return dict(self.base)

    def _attributes(self) -> dict[str, str | int | float | bool]:
        s = self.session
        out: dict[str, str | int | float | bool] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": n.provider_name(s.provider),
        }
        if self.model:
            out["gen_ai.request.model"] = self.model
        out.update(_server_of(s.request.url))
        return out


class MeasuredCall(RunProbe):
    """A run or a tool call: its start time, and how to end it."""

    def __init__(self, owner: Measuring, kind: str, subject: Any, attributes: dict[str, Any]) -> None:
        self.owner = owner
        self.kind = kind
        self.subject = subject
        self.attributes = attributes
        self.started = time.monotonic()
        self.token: contextvars.Token[RunTally | None] | None = None
        current = CURRENT_RUN.get()
        if kind == "run" and (current is None or current.run is not subject):
            current = RunTally(subject)  # one tally per run, whichever observers follow it
            self.token = CURRENT_RUN.set(current)
        self.tally = current if current is not None else RunTally()

    def end(self, outcome: Any = None, error: BaseException | None = None) -> None:
        if self.token is not None:
            CURRENT_RUN.reset(self.token)
            self.token = None
        seconds = time.monotonic() - self.started
        if self.kind == "run":
            self.owner.run_ended(self, outcome, seconds)
        elif self.kind == "workflow":
            self.owner.workflow_ended(self, outcome, seconds)
        else:
            self.owner.tool_ended(self, outcome, seconds)


class Measuring(Observer):
    """An observer that turns what it sees into counters and histograms (``names``: the naming)."""

    def __init__(self, naming: n.Naming = "latest") -> None:
        if naming not in n.NAMINGS:
            raise ValueError(f"naming must be one of {', '.join(n.NAMINGS)}, not {naming!r}")
        self.naming = naming
        self.names = n.NAMINGS[naming]

    @abstractmethod
    def add(self, name: str, value: float, attributes: Attributes) -> None:
        """Add ``value`` to the counter ``name``."""

    @abstractmethod
    def observe(self, name: str, value: float, attributes: Attributes) -> None:
        """Record ``value`` in the histogram ``name``."""

    # -- the observer interface -------------------------------------------------------------------

    def stream(self, session: Any, *, model: str | None, chat: Any = None) -> StreamProbe | None:
        return MeasuredStream(self, session, model)

    def run(self, run: Any) -> RunProbe | None:
        agent = run.agent
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent.name,
            "gen_ai.provider.name": n.provider_name(agent.client.provider),
        }
        if agent.model:
            attributes["gen_ai.request.model"] = agent.model
        if getattr(run, "_resumed", None) is not None:
            self.add(n.RESUMES, 1, {"gen_ai.agent.name": agent.name})
        return MeasuredCall(self, "run", run, attributes)

    def tool(self, name: str, call_id: str, run_id: str, input: Any) -> RunProbe | None:
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        return MeasuredCall(self, "tool", (call_id, run_id, input), attributes)

    def workflow(self, name: str, run_id: str) -> RunProbe | None:
        attributes = {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": name}
        return MeasuredCall(self, "workflow", run_id, attributes)

    def count(self, name: str, value: int = 1, **attributes: str) -> None:
        self.add(name, value, attributes)

    def record(self, name: str, value: float, **attributes: str) -> None:
        self.observe(name, value, attributes)

    # -- the measurements ----------------------------------------------------------------------------

    def stream_ended(self, probe: MeasuredStream, now: float) -> None:
        """Record a finished stream's measurements (``probe.message`` is its final Message)."""
        s, names = probe.session, self.names
        recorder = s.metrics
        message = probe.message = s.acc.message  # built on each access: once is enough
        attributes = probe.attributes()
        if message.model:
            attributes["gen_ai.response.model"] = message.model
        failed = error_type(message)
        with_error = {**attributes, "error.type": failed} if failed else attributes
        self.observe(names.inference_duration, now - recorder.start, with_error)
        if recorder.ttft is not None:
            self.observe(names.time_to_first_chunk, recorder.ttft, attributes)
        for gap in recorder.gaps:
            self.observe(names.time_per_output_chunk, gap, attributes)
        if recorder.gaps:
            self.observe(n.MAX_CHUNK_GAP, max(recorder.gaps), attributes)
        self._usage(message, attributes)
        self.add(n.STREAMS, 1, {**attributes, "midstream.terminal": message.terminal})
        if recorder.retries:
            self.add(n.RETRIES, recorder.retries, attributes)
        for tool, seconds in probe.figures.first_arg_bytes():
            self.observe(n.FIRST_ARG_BYTE, seconds, {**attributes, "gen_ai.tool.name": tool})
        for call in message.tool_calls:
            if call.error == "truncated":
                self.add(n.INCOMPLETE_JSON, 1, {**attributes, "gen_ai.tool.name": call.name})
            elif call.error is not None:
                self.add(n.INVALID_JSON, 1, {**attributes, "gen_ai.tool.name": call.name})

    def _usage(self, message: Message, attributes: Attributes) -> None:
        usage = message.usage
        if self.names.usage_counters:
            for field_name, name in n.USAGE_COUNTERS.items():
                value = getattr(usage, field_name)
                if value is not None:
                    self.add(name, value, attributes)
            return
        for token_type, value in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if value is not None:
                self.observe(n.TOKEN_USAGE_V1_41, value, {**attributes, "gen_ai.token.type": token_type})

    def run_ended(self, probe: MeasuredCall, result: Any, seconds: float) -> None:
        """Record a finished agent run (``result``: its ``RunResult``, ``None`` if it never ended)."""
        attributes = dict(probe.attributes)
        terminal = getattr(result, "terminal", None) or "failed"
        if terminal != "completed":
            attributes["error.type"] = terminal
        self.observe(n.INVOKE_AGENT_DURATION, seconds, attributes)
        base = {k: v for k, v in attributes.items() if k != "error.type"}
        self.observe(n.INVOKE_AGENT_INFERENCE_CALLS, probe.tally.inference_calls, base)
        self.observe(n.INVOKE_AGENT_TOOL_CALLS, len(getattr(result, "executed", ())), base)
        agent = {"gen_ai.agent.name": str(probe.attributes["gen_ai.agent.name"])}
        for tool in getattr(result, "fallbacks", ()):
            self.add(n.FALLBACKS, 1, {**agent, "gen_ai.tool.name": tool})
        for record in getattr(result, "compensations", ()):
            self.add(n.COMPENSATIONS, 1, {**agent, "gen_ai.tool.name": record.tool})

    def tool_ended(self, probe: MeasuredCall, status: Any, seconds: float) -> None:
        """Record a finished tool execution (``status``: ``ok``, ``error`` or ``cancelled``)."""
        attributes = dict(probe.attributes)
        if status != "ok":
            attributes["error.type"] = str(status)
        self.observe(n.EXECUTE_TOOL_DURATION, seconds, attributes)

    def workflow_ended(self, probe: MeasuredCall, result: Any, seconds: float) -> None:
        """Record a finished workflow run (``result``: its result, with a ``terminal``)."""
        attributes = dict(probe.attributes)
        terminal = getattr(result, "terminal", None) or "failed"
        if terminal != "completed":
            attributes["error.type"] = terminal
        self.observe(n.INVOKE_WORKFLOW_DURATION, seconds, attributes)
