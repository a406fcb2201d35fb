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

__all__ = ["MetricsRecorder", "StreamMetrics", "percentile"]


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


class MetricsRecorder:
    """Collects one stream's observations. Feed it clock readings; read :meth:`snapshot`."""

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

    def end(self, now: float, terminal: Terminal) -> None:
        """The stream ended in ``terminal`` (only the first call counts)."""
        if self._end is None:
            self._end = now
            self.terminal = terminal

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
