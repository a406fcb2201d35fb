"""The streaming metrics file (``streaming-metrics.json``), its alerts, and the ``streaming-errors`` log.

:class:`StreamingTally` is sans-IO: feed it ``(agent, event, now)`` for every event of every agent of a
workflow (``now`` in seconds from any monotonic clock) and it keeps one :class:`ParamTiming` per tool
call. :meth:`MetricsFile.update` folds a finished run's tally into the file, atomically (a temporary
file in the same directory, then ``os.replace``): readers see the old file or the new one, never half.
The file keeps raw sums under ``totals`` so that runs accumulate; every derived value is recomputed
from them.

**Definitions** (the file's numbers are plain numbers: ratios in 0..1, times in milliseconds, sizes in
UTF-8 bytes; ``null`` where nothing was measured). For one tool call, ``t0`` is its block start,
``first`` the arrival of the first non-empty argument fragment, ``last`` its verdict (block stop):

* ``first_byte_ms = first - t0``: when the argument starts reaching its consumer;
* ``complete_ms = last - t0``: when its last byte has arrived, the earliest a buffered consumer could
  start;
* a call's **consumer latency** is ``first_byte_ms`` when it streamed eagerly, else ``complete_ms``;
* a call's **reduction** (eager calls only) is ``1 - first_byte_ms / complete_ms``.

File keys:

* ``latency_reduction``: the mean reduction over eager calls whose argument has at least
  ``large_param_bytes`` bytes and a verdict (the notes' "latency reduction for large parameters");
* ``average_chunk_size``: argument bytes / argument fragments, over every call;
* ``incomplete_json_rate``: calls whose input was truncated or not JSON / calls with a verdict;
* ``fallback_rate``: eager-to-buffered fallbacks / eager calls;
* ``agents.<name>.avg_latency``: the mean consumer latency of the agent's calls (ms);
* ``agents.<name>.improvement``: the mean reduction of the agent's large eager calls (as above);
* ``agents.<name>``: also ``calls``, ``eager_calls``, ``large_eager_calls``, ``bytes``, ``chunks``;
* ``alerts``: the thresholds crossed at the last update (see :class:`~midstream.config.AlertSettings`):
  an agent's ``avg_latency`` above ``latency_ms``, ``incomplete_json_rate`` or ``fallback_rate`` above
  theirs (rates are judged only once ``min_calls`` calls were seen);
* ``runs``, ``updated`` (ISO 8601, UTC), ``schema`` (``midstream.streaming-metrics/1``), ``thresholds``,
  ``last_run`` (the same metrics for the last run alone) and ``totals`` (the sums behind everything).

Example::

    tally = StreamingTally(large_param_bytes=2048)
    for agent, event, now in observed:            # every event of every agent, with its time
        tally.observe(agent, event, now)
    file = MetricsFile("streaming-metrics.json")
    data = file.update(tally)                     # read, fold in, write atomically
    data["latency_reduction"], data["agents"]["architect"]["avg_latency"]
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from midstream.agent.events import FallbackNotice, IterationStart, ToolInvalidInput
from midstream.config import AlertSettings
from midstream.core.toolargs import InvalidReason, ToolCallInvalid, ToolCallReady
from midstream.errors import LocalError
from midstream.events import BlockStart, ResponseStart, ToolArgsDelta

__all__ = [
    "SCHEMA",
    "Alert",
    "ErrorLog",
    "MetricsFile",
    "ParamTiming",
    "StreamingTally",
    "check_alerts",
    "derive",
    "merge_adaptive",
]

SCHEMA = "midstream.streaming-metrics/1"
"""The ``schema`` value of the metrics file this module writes."""

Verdict = Literal["ready", InvalidReason]


@dataclass(slots=True, kw_only=True)
class ParamTiming:
    """One tool call's argument as it streamed: times in seconds of the tally's clock."""

    agent: str
    tool: str
    eager: bool
    started: float
    first: float | None = None
    last: float | None = None
    bytes: int = 0
    chunks: int = 0
    verdict: Verdict | None = None

    @property
    def first_byte_ms(self) -> float | None:
        """When the argument starts reaching its consumer (ms after the block start)."""
        return None if self.first is None else (self.first - self.started) * 1000

    @property
    def complete_ms(self) -> float | None:
        """When its last byte has arrived (ms after the block start)."""
        return None if self.last is None else (self.last - self.started) * 1000

    @property
    def consumer_ms(self) -> float | None:
        """``first_byte_ms`` when eager, else ``complete_ms`` (``None`` without a verdict)."""
        if self.last is None:
            return None
        if self.eager and self.first is not None:
            return self.first_byte_ms
        return self.complete_ms

    @property
    def reduction(self) -> float | None:
        """``1 - first_byte_ms / complete_ms`` for an eager call with a verdict, else ``None``."""
        first, complete = self.first_byte_ms, self.complete_ms
        if not self.eager or first is None or complete is None or complete <= 0:
            return None
        return 1.0 - first / complete


def _zero_agent() -> dict[str, float]:
    return {
        "calls": 0,
        "eager_calls": 0,
        "large_eager_calls": 0,
        "bytes": 0,
        "chunks": 0,
        "latency_ms_sum": 0.0,
        "latency_n": 0,
        "reduction_sum": 0.0,
    }


def _zero_totals() -> dict[str, Any]:
    return {
        "calls": 0,
        "verdicts": 0,
        "incomplete": 0,
        "eager_calls": 0,
        "fallbacks": 0,
        "bytes": 0,
        "chunks": 0,
        "large_eager_calls": 0,
        "reduction_sum": 0.0,
        "agents": {},
    }


@dataclass(kw_only=True)
class StreamingTally:
    """Per-call argument timings and fallbacks of one workflow run (sans-IO: times are given)."""

    large_param_bytes: int = 2048
    params: list[ParamTiming] = field(default_factory=list)
    fallbacks: int = 0
    _open: dict[tuple[str, int], ParamTiming] = field(default_factory=dict)
    _eager: dict[str, frozenset[str]] = field(default_factory=dict)

    def observe(self, agent: str, event: object, now: float) -> None:
        """One event of ``agent``'s run at time ``now`` (seconds); events it does not use are ignored."""
        if isinstance(event, IterationStart):
            self._eager[agent] = frozenset(event.eager)
        elif isinstance(event, ResponseStart):
            for key in [k for k in self._open if k[0] == agent]:
                del self._open[key]  # a new response: block indices start again
        elif isinstance(event, BlockStart) and event.type == "tool_call":
            tool = event.name or "?"
            opened = ParamTiming(
                agent=agent, tool=tool, eager=tool in self._eager.get(agent, ()), started=now
            )
            self._open[(agent, event.index)] = opened
            self.params.append(opened)
        elif isinstance(event, ToolArgsDelta):
            timing = self._open.get((agent, event.index))
            if timing is not None and event.fragment:
                timing.bytes += len(event.fragment.encode("utf-8"))
                timing.chunks += 1
                if timing.first is None:
                    timing.first = now
        elif isinstance(event, ToolCallReady | ToolCallInvalid):
            closed = self._open.pop((agent, event.index), None)
            if closed is not None:
                closed.last = now
                closed.verdict = "ready" if isinstance(event, ToolCallReady) else event.reason
        elif isinstance(event, FallbackNotice):
            self.fallbacks += 1

    def totals(self) -> dict[str, Any]:
        """The raw sums of this tally, in the shape of the file's ``totals``."""
        out = _zero_totals()
        for p in self.params:
            agent = out["agents"].setdefault(p.agent, _zero_agent())
            out["calls"] += 1
            agent["calls"] += 1
            out["bytes"] += p.bytes
            out["chunks"] += p.chunks
            agent["bytes"] += p.bytes
            agent["chunks"] += p.chunks
            if p.eager:
                out["eager_calls"] += 1
                agent["eager_calls"] += 1
            if p.verdict is not None:
                out["verdicts"] += 1
                out["incomplete"] += p.verdict in ("truncated", "invalid_json")
            latency = p.consumer_ms
            if latency is not None:
                agent["latency_ms_sum"] += latency
                agent["latency_n"] += 1
            reduction = p.reduction
            if reduction is not None and p.bytes >= self.large_param_bytes:
                out["large_eager_calls"] += 1
                out["reduction_sum"] += reduction
                agent["large_eager_calls"] += 1
                agent["reduction_sum"] += reduction
        out["fallbacks"] = self.fallbacks
        return out


def _ratio(num: float, den: float) -> float | None:
    return None if not den else num / den


def _add(base: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        if isinstance(value, Mapping):
            merged = dict(out.get(key) or {})
            for name, sums in value.items():
                merged[name] = _add(merged.get(name) or _zero_agent(), sums)
            out[key] = merged
        else:
            out[key] = out.get(key, 0) + value
    return out


def derive(totals: Mapping[str, Any]) -> dict[str, Any]:
    """The file's derived values from raw ``totals`` (see the module docstring for each definition)."""
    agents: dict[str, Any] = {}
    for name, a in sorted(totals.get("agents", {}).items()):
        agents[name] = {
            "avg_latency": _ratio(a["latency_ms_sum"], a["latency_n"]),
            "improvement": _ratio(a["reduction_sum"], a["large_eager_calls"]),
            "calls": a["calls"],
            "eager_calls": a["eager_calls"],
            "large_eager_calls": a["large_eager_calls"],
            "bytes": a["bytes"],
            "chunks": a["chunks"],
        }
    return {
        "latency_reduction": _ratio(totals["reduction_sum"], totals["large_eager_calls"]),
        "average_chunk_size": _ratio(totals["bytes"], totals["chunks"]),
        "incomplete_json_rate": _ratio(totals["incomplete"], totals["verdicts"]),
        "fallback_rate": _ratio(totals["fallbacks"], totals["eager_calls"]),
        "agents": agents,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A metric past its threshold: ``metric`` (``latency_ms``, ``incomplete_json_rate``,
    ``fallback_rate``), its ``value``, the ``threshold``, and the ``agent`` for a per-agent one."""

    kind: ClassVar[Literal["alert"]] = "alert"
    metric: str
    value: float
    threshold: float
    agent: str | None = None

    @property
    def message(self) -> str:
        """One line for a person."""
        who = f"{self.agent}: " if self.agent else ""
        if self.metric == "latency_ms":
            return f"{who}average latency {self.value:.0f} ms is above {self.threshold:g} ms"
        return f"{who}{self.metric.replace('_', ' ')} {self.value:.1%} is above {self.threshold:.1%}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "agent": self.agent,
            "message": self.message,
        }


def check_alerts(derived: Mapping[str, Any], totals: Mapping[str, Any], limits: AlertSettings) -> list[Alert]:
    """The thresholds ``derived`` crosses (rates only once ``limits.min_calls`` calls were seen)."""
    alerts: list[Alert] = []
    if limits.latency_ms is not None:
        for name, agent in derived["agents"].items():
            latency = agent["avg_latency"]
            if latency is not None and latency > limits.latency_ms:
                alerts.append(
                    Alert(metric="latency_ms", value=latency, threshold=limits.latency_ms, agent=name)
                )
    enough = totals["calls"] >= limits.min_calls
    for metric in ("incomplete_json_rate", "fallback_rate"):
        threshold = getattr(limits, metric)
        value = derived[metric]
        if enough and threshold is not None and value is not None and value > threshold:
            alerts.append(Alert(metric=metric, value=value, threshold=threshold))
    return alerts


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class MetricsFile:
    """``streaming-metrics.json``: cumulative over runs, rewritten atomically by :meth:`update`.

    A file that is missing starts empty; one that is not this schema's JSON is an error (it is not
    overwritten: it may be someone else's file).
    """

    def __init__(self, path: str | os.PathLike[str], *, alerts: AlertSettings | None = None) -> None:
        self.path = Path(path)
        self.limits = alerts or AlertSettings()

    def read(self) -> dict[str, Any] | None:
        """The file's content, or ``None`` when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LocalError(f"{self.path}: not a metrics file (invalid JSON: {exc.msg})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise LocalError(f"{self.path}: not a metrics file (its schema is not {SCHEMA!r})")
        return data

    def update(
        self,
        tally: StreamingTally,
        *,
        now: float | None = None,
        adaptive: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Fold one finished run into the file (atomically) and return what was written.

        ``adaptive`` (the adaptive policy's decisions, per agent: ``max_tokens``, ``buffered`` tools)
        is merged into the file's ``adaptive``: the larger budget, the union of buffered tools."""
        previous = self.read()
        run_totals = tally.totals()
        totals = _add(previous["totals"] if previous else _zero_totals(), run_totals)
        derived = derive(totals)
        alerts = check_alerts(derived, totals, self.limits)
        stamp = time.gmtime(time.time() if now is None else now)
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
            "runs": (previous["runs"] if previous else 0) + 1,
            **derived,
            "alerts": [a.as_dict() for a in alerts],
            "thresholds": self.limits.model_dump(),
            "large_param_bytes": tally.large_param_bytes,
            "last_run": derive(run_totals),
            "totals": totals,
        }
        learned = merge_adaptive(previous.get("adaptive", {}) if previous else {}, adaptive or {})
        if learned:
            data["adaptive"] = learned
        _atomic_write(self.path, json.dumps(data, indent=2, sort_keys=False) + "\n")
        return data


def merge_adaptive(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Two sets of adaptive decisions as one: per agent the larger ``max_tokens``, the union of the
    ``buffered`` tools."""
    out: dict[str, dict[str, Any]] = {name: dict(value) for name, value in old.items()}
    for name, value in new.items():
        mine = out.setdefault(name, {})
        if value.get("max_tokens") is not None:
            mine["max_tokens"] = max(int(mine.get("max_tokens") or 0), int(value["max_tokens"]))
        buffered = set(mine.get("buffered") or ()) | set(value.get("buffered") or ())
        if buffered:
            mine["buffered"] = sorted(buffered)
    return out


class ErrorLog:
    """The ``streaming-errors`` log: one JSON object per line for each tool input that was not usable,
    with the wrapped raw input (``{"INVALID_JSON": raw}``). Appended (one ``write`` per record), created
    readable by its owner only: raw tool input may hold anything the model wrote."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def record(self, agent: str, run: str, event: ToolInvalidInput, *, now: float | None = None) -> None:
        """Append one invalid input of ``agent``'s run ``run``."""
        line = {
            "at": time.time() if now is None else now,
            "agent": agent,
            "run": run,
            "tool": event.name,
            "call_id": event.call_id,
            "reason": event.reason,
            "error": event.error,
            "wrapped": event.wrapped,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record so far (an empty list when there is no log)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]
