"""Per-stream metrics: time to first token, time to first tool-argument byte, chunk gaps and friends.

:class:`MetricsRecorder` is sans-IO: the client passes it a clock reading with every observation, so
the figures can be tested with a fake clock. :class:`StreamMetrics` is the immutable snapshot a
stream exposes as ``stream.metrics``.

Times are seconds. ``ttft`` and ``duration`` count from the moment the call began, so retries and
their waits are included (that is what the caller waited); the byte, chunk, event and gap figures
describe the attempt that produced the response. The first content event is defined by
:func:`midstream.events.is_content` (the same boundary after which no retry happens).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from midstream.events import Event, ToolArgsDelta, is_content
from midstream.message import Terminal

__all__ = [
    "MetricsRecorder",
    "Observer",
    "RunProbe",
    "StreamMetrics",
    "StreamProbe",
    "add_observer",
    "observers",
    "percentile",
    "remove_observer",
]


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``fraction`` in ``[0, 1]``); ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamMetrics:
    """What one stream did, measured by the client. ``None``: not (yet) observed.

    Example:

        >>> from midstream.sim import running
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
        ...     with client.stream("Hello", model="claude-sonnet-4-5") as stream:
        ...         _ = stream.final()
        >>> metrics = stream.metrics
        >>> metrics.terminal, metrics.ttft > 0, metrics.bytes > 0
        ('completed', True, True)
    """

    provider: str | None = None
    ttft: float | None = None  # to the first content event
    time_to_first_tool_byte: float | None = None  # to the first non-empty tool-argument fragment
    time_to_first_byte: float | None = None  # to the first body byte of the final attempt
    gap_p50: float | None = None  # between consecutive body chunks
    gap_p95: float | None = None
    gap_max: float | None = None
    duration: float | None = None  # to the end of the stream (so far, while it runs)
    bytes: int = 0
    chunks: int = 0
    events: int = 0  # normalized events decoded
    mean_chunk_size: float | None = None
    retries: int = 0
    terminal: Terminal | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def summary(self) -> str:
        """One line for humans: ``TTFT 212 ms · first tool byte 340 ms · ...``."""
        parts = [f"TTFT {_ms(self.ttft)}"]
        if self.time_to_first_tool_byte is not None:
            parts.append(f"first tool byte {_ms(self.time_to_first_tool_byte)}")
        parts.append(f"gaps p50 {_ms(self.gap_p50)} p95 {_ms(self.gap_p95)}")
        parts.append(f"total {_ms(self.duration)}")
        parts.append(f"{self.bytes} B in {self.chunks} chunks, {self.events} events")
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.terminal is not None:
            parts.append(self.terminal)
        return " · ".join(parts)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000.0:.0f} ms"


# -- the telemetry seam ------------------------------------------------------------------------------
#
# Exporters (OpenTelemetry, Prometheus: :mod:`midstream.telemetry`) register an :class:`Observer`.
# With none registered, the client and the agent pay one empty-tuple test per stream, run and tool
# call, and nothing per event.


class StreamProbe:
    """Follows one streamed call for an observer. Every method is a no-op here; override what you need.

    ``session`` is the client's sans-IO session (its ``acc.message`` is the Message so far, its
    ``metrics`` this recorder); ``now`` readings come from the client's monotonic clock.
    """

    wants_events = False
    """True: :meth:`events` is called with every batch of released events (costs a call per chunk)."""

    def attempt(self, now: float, *, retry: bool) -> None:
        """A request is sent now (``retry``: it replaces a failed attempt)."""

    def retry(self, reason: str, delay: float) -> None:
        """The failed attempt will be retried after ``delay`` seconds, because of ``reason``."""

    def events(self, now: float, events: Iterable[Event]) -> None:
        """Events released to the caller at ``now`` (only if :attr:`wants_events`)."""

    def end(self, now: float) -> None:
        """The stream ended (once); its figures are final."""


class RunProbe:
    """Follows one agent run or one tool execution for an observer (no-ops here).

    :meth:`end` is called exactly once, in the task that created the probe.
    """

    def end(self, outcome: Any = None, error: BaseException | None = None) -> None:
        """It ended: ``outcome`` is the ``RunResult`` of a run, or the status of a tool call."""


class Observer:
    """What an exporter implements to follow streams, agent runs and tool calls (no-ops here).

    Register one with :func:`add_observer`; :mod:`midstream.telemetry` ships the OpenTelemetry and
    Prometheus ones.
    """

    def stream(self, session: Any, *, model: str | None, chat: Any = None) -> StreamProbe | None:
        """A call is about to stream through ``session`` (``chat``: the ``ChatRequest``, if known):
        a probe to follow it, or ``None``."""
        return None

    def run(self, run: Any) -> RunProbe | None:
        """An agent ``run`` (a ``midstream.agent.Run``) starts, in its own task."""
        return None

    def tool(self, name: str, call_id: str, run_id: str, input: Any) -> RunProbe | None:
        """A tool call is about to execute, in the task that executes it."""
        return None

    def workflow(self, name: str, run_id: str) -> RunProbe | None:
        """A workflow run starts, in its own task (its agents' runs start from it)."""
        return None

    def count(self, name: str, value: int = 1, **attributes: str) -> None:
        """A midstream-specific counter went up (``resumes``, ``compensations``, ...)."""

    def record(self, name: str, value: float, **attributes: str) -> None:
        """A midstream-specific measurement (``replay_lag``, ...), in seconds."""


_observers: tuple[Observer, ...] = ()


def observers() -> tuple[Observer, ...]:
    """The registered observers, oldest first."""
    return _observers


def add_observer(observer: Observer) -> None:
    """Register ``observer`` (a no-op if it is already registered)."""
    global _observers
    if observer not in _observers:
        _observers = (*_observers, observer)


def remove_observer(observer: Observer) -> None:
    """Unregister ``observer`` (a no-op if it is not registered)."""
    global _observers
    _observers = tuple(o for o in _observers if o is not observer)


class _StreamFanOut(StreamProbe):
    __slots__ = ("probes",)

    def __init__(self, probes: list[StreamProbe]) -> None:
        self.probes = probes
        self.wants_events = any(p.wants_events for p in probes)

    def attempt(self, now: float, *, retry: bool) -> None:
        for probe in self.probes:
            probe.attempt(now, retry=retry)

    def retry(self, reason: str, delay: float) -> None:
        for probe in self.probes:
            probe.retry(reason, delay)

    def events(self, now: float, events: Iterable[Event]) -> None:
        batch = list(events)
        for probe in self.probes:
            if probe.wants_events:
                probe.events(now, batch)

    def end(self, now: float) -> None:
        for probe in self.probes:
            probe.end(now)


class _RunFanOut(RunProbe):
    __slots__ = ("probes",)

    def __init__(self, probes: list[RunProbe]) -> None:
        self.probes = probes

    def end(self, outcome: Any = None, error: BaseException | None = None) -> None:
        for probe in reversed(self.probes):  # the innermost context is restored first
            probe.end(outcome, error)


def stream_probe(session: Any, model: str | None, chat: Any = None) -> StreamProbe | None:
    """The probe of every observer for a new streamed call (``None`` when nobody observes)."""
    probes = [p for o in _observers if (p := o.stream(session, model=model, chat=chat)) is not None]
    if not probes:
        return None
    return probes[0] if len(probes) == 1 else _StreamFanOut(probes)


def run_probe(run: Any) -> RunProbe | None:
    """The probe of every observer for an agent run starting in the current task."""
    probes = [p for o in _observers if (p := o.run(run)) is not None]
    if not probes:
        return None
    return probes[0] if len(probes) == 1 else _RunFanOut(probes)


def tool_probe(name: str, call_id: str, run_id: str, input: Any) -> RunProbe | None:
    """The probe of every observer for a tool call executing in the current task."""
    probes = [p for o in _observers if (p := o.tool(name, call_id, run_id, input)) is not None]
    if not probes:
        return None
    return probes[0] if len(probes) == 1 else _RunFanOut(probes)


def workflow_probe(name: str, run_id: str) -> RunProbe | None:
    """The probe of every observer for a workflow run starting in the current task."""
    probes = [p for o in _observers if (p := o.workflow(name, run_id)) is not None]
    if not probes:
        return None
    return probes[0] if len(probes) == 1 else _RunFanOut(probes)


def count(name: str, value: int = 1, **attributes: str) -> None:
    """Tell every observer a midstream-specific counter went up."""
    for observer in _observers:
        observer.count(name, value, **attributes)


def record(name: str, value: float, **attributes: str) -> None:
    """Tell every observer a midstream-specific measurement (seconds)."""
    for observer in _observers:
        observer.record(name, value, **attributes)


class MetricsRecorder:
    """Collects one stream's observations. Feed it clock readings; read :meth:`snapshot`.

    ``probe`` (set by the client when an :class:`Observer` is registered) is told about attempts and
    the end; with :attr:`StreamProbe.wants_events`, about every batch of released events too.
    """

    probe: StreamProbe | None = None

    def __init__(self, start: float, provider: str | None = None) -> None:
        self.provider = provider
        self.start = start
        self.retries = 0
        self.ttft: float | None = None
        self.first_tool_byte: float | None = None
        self.terminal: Terminal | None = None
        self._end: float | None = None
        self._attempt_start = start
        self._reset_attempt()

    def _reset_attempt(self) -> None:
        self.bytes = 0
        self.chunks = 0
        self.events = 0
        self.first_byte: float | None = None
        self._last_chunk: float | None = None
        self._gaps: list[float] = []

    def attempt(self, now: float, *, retry: bool) -> None:
        """A request is sent now; ``retry``: it replaces a failed one, whose chunks are forgotten."""
        if retry:
            self.retries += 1
            self._reset_attempt()
        self._attempt_start = now
        if self.probe is not None:
            self.probe.attempt(now, retry=retry)

    def chunk(self, now: float, size: int) -> None:
        """A body chunk of ``size`` bytes arrived."""
        if self._last_chunk is None:
            self.first_byte = now - self.start
        else:
            self._gaps.append(now - self._last_chunk)
        self._last_chunk = now
        self.bytes += size
        self.chunks += 1

    def events_seen(self, now: float, events: Iterable[Event]) -> None:
        """Events released to the caller at ``now`` (after decoding their chunk)."""
        count = 0
        for event in events:
            count += 1
            if self.ttft is None and is_content(event):
                self.ttft = now - self.start
            if self.first_tool_byte is None and isinstance(event, ToolArgsDelta) and event.fragment:
                self.first_tool_byte = now - self.start
        self.events += count
        probe = self.probe
        if probe is not None and probe.wants_events:
            probe.events(now, events)

    @property
    def gaps(self) -> list[float]:
        """Every gap between consecutive body chunks of the current attempt (seconds)."""
        return self._gaps

    def end(self, now: float, terminal: Terminal) -> None:
        """The stream ended in ``terminal`` (only the first call counts)."""
        if self._end is None:
            self._end = now
            self.terminal = terminal
            if self.probe is not None:
                self.probe.end(now)

    def snapshot(self, now: float) -> StreamMetrics:
        """The figures so far (``duration`` runs until :meth:`end`)."""
        end = self._end if self._end is not None else now
        gaps = self._gaps
        return StreamMetrics(
            provider=self.provider,
            ttft=self.ttft,
            time_to_first_tool_byte=self.first_tool_byte,
            time_to_first_byte=self.first_byte,
            gap_p50=percentile(gaps, 0.50),
            gap_p95=percentile(gaps, 0.95),
            gap_max=max(gaps) if gaps else None,
            duration=end - self.start,
            bytes=self.bytes,
            chunks=self.chunks,
            events=self.events,
            mean_chunk_size=self.bytes / self.chunks if self.chunks else None,
            retries=self.retries,
            terminal=self.terminal,
        )
