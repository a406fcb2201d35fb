"""The streaming monitor: per-tool metrics of how tool calls stream, and warnings past thresholds.

Feed :meth:`StreamingMonitor.observe` every stream event and every tool event
(:class:`~midstream.core.toolargs.ToolCallReady` / :class:`~midstream.core.toolargs.ToolCallInvalid`)
of a run; tell it about fallbacks and executions with :meth:`~StreamingMonitor.record_fallback` and
:meth:`~StreamingMonitor.record_execution`; ``monitor.install(hooks)`` adds two hooks (``StreamStart``,
``FirstToken``) that measure the time to first token. Per tool it keeps: calls, ready, invalid JSON,
incomplete (truncated) and schema-invalid inputs, argument bytes (total and largest), the time from a
call's block start to its verdict, eager-to-buffered fallbacks, executions and failures.

Example::

    monitor = StreamingMonitor(settings.metrics)
    monitor.install(hooks)
    for event in events:                      # stream events and tool events, in order
        monitor.observe(event)
    print(monitor.table())
    monitor.as_dict()["tools"]["search"]["ready_ms_max"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from midstream.config import MetricsSettings
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady
from midstream.events import BlockStart, ResponseStart, ToolArgsDelta

if TYPE_CHECKING:
    from midstream.agent.hooks import HookInput, Hooks

__all__ = ["StreamingMonitor", "ToolMetrics"]


@dataclass(slots=True, kw_only=True)
class ToolMetrics:
    """Counters of one tool. Times are milliseconds, sizes UTF-8 bytes of the raw argument text."""

    tool: str
    calls: int = 0
    ready: int = 0
    invalid_json: int = 0
    incomplete: int = 0
    schema_errors: int = 0
    args_bytes_total: int = 0
    args_bytes_max: int = 0
    ready_ms_total: float = 0.0
    ready_ms_max: float = 0.0
    fallbacks: int = 0
    executions: int = 0
    failures: int = 0
    execution_ms_total: float = 0.0

    @property
    def ready_ms_mean(self) -> float | None:
        """Mean time from block start to verdict, over the calls that got one."""
        verdicts = self.ready + self.invalid_json + self.incomplete + self.schema_errors
        return self.ready_ms_total / verdicts if verdicts else None

    def as_dict(self) -> dict[str, Any]:
        """Every counter, plus ``ready_ms_mean``."""
        out = asdict(self)
        out["ready_ms_mean"] = self.ready_ms_mean
        return out


@dataclass(slots=True)
class _OpenCall:
    tool: str
    started: float
    size: int = 0


@dataclass
class StreamingMonitor:
    """Records per-tool streaming metrics; thresholds come from ``settings`` (``[metrics]``).

    ``clock`` returns seconds (monotonic); inject one in tests.
    """

    settings: MetricsSettings = field(default_factory=MetricsSettings)
    clock: Callable[[], float] = time.monotonic
    tools: dict[str, ToolMetrics] = field(default_factory=dict)
    ttft_ms: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _open: dict[int, _OpenCall] = field(default_factory=dict)
    _stream_started: float | None = None

    def metrics(self, tool: str) -> ToolMetrics:
        """The counters of ``tool`` (created empty on first use)."""
        found = self.tools.get(tool)
        if found is None:
            found = self.tools[tool] = ToolMetrics(tool=tool)
        return found

    def observe(self, event: object) -> None:
        """One stream event or tool event; others are ignored."""
        if not self.settings.enabled:
            return
        if isinstance(event, ResponseStart):
            self._open.clear()  # block indices restart with every response
        elif isinstance(event, BlockStart) and event.type == "tool_call":
            name = event.name or "?"
            self._open[event.index] = _OpenCall(name, self.clock())
            self.metrics(name).calls += 1
        elif isinstance(event, ToolArgsDelta):
            call = self._open.get(event.index)
            if call is not None:
                call.size += len(event.fragment.encode("utf-8"))
        elif isinstance(event, ToolCallReady | ToolCallInvalid):
            self._verdict(event)

    def _verdict(self, event: ToolCallReady | ToolCallInvalid) -> None:
        call = self._open.pop(event.index, None)
        name = call.tool if call is not None else (event.name or "?")
        stats = self.metrics(name)
        if isinstance(event, ToolCallReady):
            stats.ready += 1
        elif event.reason == "truncated":
            stats.incomplete += 1
        elif event.reason == "schema":
            stats.schema_errors += 1
        else:
            stats.invalid_json += 1
        if call is None:
            return
        elapsed = (self.clock() - call.started) * 1000
        stats.ready_ms_total += elapsed
        stats.ready_ms_max = max(stats.ready_ms_max, elapsed)
        stats.args_bytes_total += call.size
        stats.args_bytes_max = max(stats.args_bytes_max, call.size)
        self._check_call(name, elapsed, call.size, stats)

    def _check_call(self, name: str, elapsed: float, size: int, stats: ToolMetrics) -> None:
        limits = self.settings
        if limits.tool_ready_ms_warn is not None and elapsed > limits.tool_ready_ms_warn:
            self._warn(f"{name}: arguments took {elapsed:.0f} ms (warn above {limits.tool_ready_ms_warn:g})")
        if limits.tool_args_bytes_warn is not None and size > limits.tool_args_bytes_warn:
            self._warn(f"{name}: {size} bytes of arguments (warn above {limits.tool_args_bytes_warn})")
        bad = stats.invalid_json + stats.incomplete
        if limits.invalid_json_warn is not None and bad == limits.invalid_json_warn:
            self._warn(f"{name}: {bad} invalid or incomplete inputs")

    def record_fallback(self, tool: str) -> None:
        """``tool`` fell back from eager to buffered argument streaming."""
        self.metrics(tool).fallbacks += 1

    def record_execution(self, tool: str, *, ok: bool, seconds: float = 0.0) -> None:
        """``tool`` ran (``ok``: it returned; else it failed), taking ``seconds``."""
        stats = self.metrics(tool)
        stats.executions += 1
        stats.failures += 0 if ok else 1
        stats.execution_ms_total += seconds * 1000

    def stream_started(self) -> None:
        """A request was sent: the time to first token counts from now."""
        self._stream_started = self.clock()

    def first_token(self) -> float | None:
        """The first token arrived: records and returns the time to first token (ms), if started."""
        if self._stream_started is None:
            return None
        ttft = (self.clock() - self._stream_started) * 1000
        self._stream_started = None
        self.ttft_ms.append(ttft)
        warn = self.settings.ttft_ms_warn
        if warn is not None and ttft > warn:
            self._warn(f"time to first token {ttft:.0f} ms (warn above {warn:g})")
        return ttft

    def install(self, hooks: Hooks) -> None:
        """Register the ``StreamStart`` / ``FirstToken`` hooks that measure time to first token."""

        async def on_stream_start(event: HookInput) -> None:
            self.stream_started()

        async def on_first_token(event: HookInput) -> None:
            self.first_token()

        hooks.add("StreamStart", on_stream_start, name="StreamingMonitor.stream_start")
        hooks.add("FirstToken", on_first_token, name="StreamingMonitor.first_token")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    def as_dict(self) -> dict[str, Any]:
        """``{"tools": {name: counters}, "ttft_ms": [...], "warnings": [...]}``: JSON-ready."""
        return {
            "tools": {name: stats.as_dict() for name, stats in sorted(self.tools.items())},
            "ttft_ms": list(self.ttft_ms),
            "warnings": list(self.warnings),
        }

    def table(self) -> str:
        """The per-tool counters as a plain-text table, one row per tool."""
        headers = (
            "tool",
            "calls",
            "ready",
            "invalid",
            "incomplete",
            "schema",
            "bytes max",
            "ready ms max",
            "fallbacks",
            "runs",
            "failed",
        )
        rows = [
            (
                s.tool,
                s.calls,
                s.ready,
                s.invalid_json,
                s.incomplete,
                s.schema_errors,
                s.args_bytes_max,
                f"{s.ready_ms_max:.0f}",
                s.fallbacks,
                s.executions,
                s.failures,
            )
            for _, s in sorted(self.tools.items())
        ]
        cells = [tuple(str(c) for c in row) for row in (headers, *rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        return "\n".join(_row(row, widths) for row in cells)


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    # the tool name reads best left-aligned, numbers right-aligned
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)
