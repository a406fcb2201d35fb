"""``midstream stats``: what the runs on record did, in the terminal.

It reads three sources, each optional:

* the relay's **run store** (``--store``, the one ``midstream serve`` writes): every run's log. From
  the log's append times (``at``) it measures, per response, the **time to first token** (from the
  request, i.e. the ``iteration_start`` or the end of a retry's wait, to the first text, thinking or
  tool-argument delta) and, per tool call, the **time to first argument byte**; per run the retries,
  fallbacks, tool calls, invalid inputs and compensations. Deltas the relay coalesced are stamped when
  appended, so a figure can be late by at most the coalescing window (``buffer_timeout_ms``).
* the **effects journal** (``--journal``): tool executions, failures and compensations per tool.
* the **streaming metrics file** (``--metrics-file``, ``streaming-metrics.json``): its figures are
  shown as they are, with its alerts.

:func:`collect` turns them into one JSON-ready summary (``--json`` prints it); :func:`render` draws it
with Rich tables and plotext plots (a TTFT histogram, and the trend over the last runs).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from midstream.agent.effects import EffectRecord, open_journal
from midstream.cli._conventions import EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE
from midstream.errors import LocalError, MidstreamError
from midstream.metrics import percentile
from midstream.relay.entry import LogEntry
from midstream.relay.stores import open_log

__all__ = ["RunFigures", "Thresholds", "collect", "parse_since", "render", "run_figures", "stats"]

CONTENT = frozenset({"text_delta", "thinking_delta", "tool_args_delta"})


TTFT_MS, INVALID_JSON_RATE, FALLBACK_RATE = 5000.0, 0.05, 0.10


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Alert thresholds: TTFT p95 (ms), invalid or incomplete tool input rate, fallback rate (the
    defaults of the streaming metrics file's alerts)."""

    ttft_ms: float = TTFT_MS
    invalid_json_rate: float = INVALID_JSON_RATE
    fallback_rate: float = FALLBACK_RATE


@dataclass(slots=True)
class RunFigures:
    """What one run's log says. Times are seconds."""

    run: str
    agent: str
    started: float
    terminal: str | None = None
    duration: float | None = None
    ttft: list[float] = field(default_factory=list)  # one per response
    first_arg: list[tuple[str, float]] = field(default_factory=list)  # (tool, seconds) per call
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)
    tool_calls: Counter[str] = field(default_factory=Counter)
    tools_failed: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    compensated: Counter[str] = field(default_factory=Counter)
    retries_by_tool: Counter[str] = field(default_factory=Counter)

    @property
    def mean_ttft(self) -> float | None:
        return sum(self.ttft) / len(self.ttft) if self.ttft else None


def run_figures(run: str, entries: Iterable[LogEntry]) -> RunFigures | None:
    """The figures of one run from its log entries (``None`` for an empty log)."""
    figures: RunFigures | None = None
    request_at: float | None = None  # when the current request went out
    tools: dict[int, str] = {}
    seen_args: set[int] = set()
    first_content = False
    last_at = 0.0
    for entry in entries:
        data, kind, at = entry.data, entry.kind, entry.at
        if figures is None:
            agent = entry.agent or (data.get("agent") if kind == "run_start" else None) or "agent"
            figures = RunFigures(run, str(agent), at)
        last_at = at
        if kind in ("iteration_start", "retry"):
            delay = float(data.get("delay") or 0.0) if kind == "retry" else 0.0
            request_at, first_content = at + delay, False
            if kind == "retry":
                figures.retries += 1
            tools, seen_args = {}, set()
        elif kind == "response_start":
            tools, seen_args = {}, set()
        elif kind == "block_start" and data.get("type") == "tool_call":
            tools[int(data.get("index", 0))] = str(data.get("name") or "?")
        elif kind in CONTENT and request_at is not None:
            if not first_content:
                first_content = True
                figures.ttft.append(max(0.0, at - request_at))
            index = int(data.get("index", 0))
            if kind == "tool_args_delta" and data.get("fragment") and index not in seen_args:
                seen_args.add(index)
                figures.first_arg.append((tools.get(index, "?"), max(0.0, at - request_at)))
        else:
            _lifecycle(figures, kind, data)
    if figures is not None and figures.terminal is not None:
        figures.duration = last_at - figures.started
    return figures


def _lifecycle(figures: RunFigures, kind: str, data: Mapping[str, Any]) -> None:
    name = str(data.get("name") or data.get("tool") or "?")
    if kind == "fallback":
        figures.fallbacks.append(name)
    elif kind == "tool_started":
        figures.tool_calls[name] += 1
    elif kind == "tool_failed":
        figures.tools_failed[name] += 1
    elif kind == "tool_invalid_input":
        figures.invalid[name] += 1
    elif kind == "tool_compensated":
        figures.compensated[name] += 1
    elif kind == "run_end":
        figures.terminal = str(data.get("terminal"))


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``--since``: a duration back from now (``90s``, ``30m``, ``6h``, ``7d``), an ISO date or time
    (``2026-12-01``, ``2026-12-01T08:00:00``, read as UTC), or Unix seconds; ``None`` for none."""
    if not text:
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip()
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LocalError(
            f"--since {text!r}: give a duration (30m, 6h, 7d), an ISO date or time, or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- reading the sources ------------------------------------------------------------------------------


async def _read_store(url: str, limit: int) -> list[RunFigures]:
    log = open_log(url)
    try:
        found = []
        for status in await log.runs(limit=limit):
            figures = run_figures(status.run, await log.entries(status.run))
            if figures is not None:
                found.append(figures)
        return found
    finally:
        await log.aclose()


def read_store(url: str, limit: int = 1000) -> list[RunFigures]:
    """The figures of the newest ``limit`` runs of the store at ``url``, oldest first."""
    runs = asyncio.run(_read_store(url, limit))
    return sorted(runs, key=lambda r: r.started)


def read_journal(path: Path) -> list[EffectRecord]:
    """Every record of an effects journal (a missing file is a usage error)."""
    if not path.exists():
        raise LocalError(f"no journal at {path}")
    journal = open_journal(path)
    try:
        return list(journal.records())
    finally:
        journal.close()


def read_metrics_file(path: Path) -> dict[str, Any]:
    """The streaming metrics file, as JSON (a missing or unreadable file is a usage error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalError(f"cannot read the metrics file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise LocalError(f"the metrics file {path} is not a JSON object")
    return data


# -- the summary -------------------------------------------------------------------------------------


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1000.0 for v in values]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else None,
        "values_ms": [round(v, 3) for v in ms],
    }


def collect(
    runs: Sequence[RunFigures],
    journal: Sequence[EffectRecord] = (),
    metrics_file: Mapping[str, Any] | None = None,
    *,
    since: float | None = None,
    agent: str | None = None,
    last: int = 20,
    thresholds: Thresholds = Thresholds(),
) -> dict[str, Any]:
    """The JSON-ready summary ``midstream stats`` prints (filtered by ``since`` and ``agent``)."""
    chosen = [
        r for r in runs if (since is None or r.started >= since) and (agent is None or r.agent == agent)
    ]
    run_ids = {r.run for r in chosen}
    records = [
        r for r in journal if (since is None or r.time >= since) and (agent is None or r.run_id in run_ids)
    ]
    ttft = [t for r in chosen for t in r.ttft]
    first_arg = [s for r in chosen for _, s in r.first_arg]
    calls = sum(sum(r.tool_calls.values()) + sum(r.invalid.values()) for r in chosen)
    invalid = sum(sum(r.invalid.values()) for r in chosen)
    fallbacks = sum(len(r.fallbacks) for r in chosen)
    summary: dict[str, Any] = {
        "runs": len(chosen),
        "terminals": dict(Counter(r.terminal or "running" for r in chosen)),
        "ttft": _distribution(ttft),
        "first_arg_byte": _distribution(first_arg),
        "first_arg_byte_by_tool": {
            tool: _distribution([s for r in chosen for t, s in r.first_arg if t == tool])
            for tool in sorted({t for r in chosen for t, _ in r.first_arg})
        },
        "agents": _per_agent(chosen),
        "tools": _per_tool(chosen, records),
        "rates": {
            "invalid_json_rate": invalid / calls if calls else 0.0,
            "fallback_rate": fallbacks / calls if calls else 0.0,
        },
        "trend": [
            {
                "run": r.run,
                "agent": r.agent,
                "started": r.started,
                "terminal": r.terminal,
                "ttft_ms": None if r.mean_ttft is None else r.mean_ttft * 1000.0,
                "duration_s": r.duration,
                "retries": r.retries,
            }
            for r in chosen[-last:]
        ],
    }
    summary["alerts"] = _alerts(summary, thresholds, metrics_file)
    summary["thresholds"] = asdict(thresholds)
    if metrics_file is not None:
        summary["metrics_file"] = dict(metrics_file)
    return summary


def _per_agent(runs: Sequence[RunFigures]) -> dict[str, Any]:
    grouped: dict[str, list[RunFigures]] = defaultdict(list)
    for r in runs:
        grouped[r.agent].append(r)
    return {
        name: {
            "runs": len(rs),
            "retries": sum(r.retries for r in rs),
            "fallbacks": sum(len(r.fallbacks) for r in rs),
            "ttft_p50_ms": percentile([t * 1000.0 for r in rs for t in r.ttft], 0.5),
            "ttft_p95_ms": percentile([t * 1000.0 for r in rs for t in r.ttft], 0.95),
            "failed": sum(1 for r in rs if r.terminal == "failed"),
        }
        for name, rs in sorted(grouped.items())
    }


def _per_tool(runs: Sequence[RunFigures], records: Sequence[EffectRecord]) -> dict[str, Any]:
    names = {t for r in runs for t in (*r.tool_calls, *r.invalid, *r.fallbacks, *r.compensated)}
    names |= {rec.tool for rec in records}
    journal = {name: Counter(rec.status for rec in records if rec.tool == name) for name in names}
    return {
        name: {
            "calls": sum(r.tool_calls[name] for r in runs),
            "failed": sum(r.tools_failed[name] for r in runs),
            "invalid": sum(r.invalid[name] for r in runs),
            "fallbacks": sum(r.fallbacks.count(name) for r in runs),
            "compensated": sum(r.compensated[name] for r in runs),
            "journal": dict(journal[name]),
        }
        for name in sorted(names)
    }


def _alerts(
    summary: Mapping[str, Any], limits: Thresholds, metrics_file: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    checks = [
        ("ttft_p95_ms", summary["ttft"]["p95_ms"], limits.ttft_ms),
        ("invalid_json_rate", summary["rates"]["invalid_json_rate"], limits.invalid_json_rate),
        ("fallback_rate", summary["rates"]["fallback_rate"], limits.fallback_rate),
    ]
    out = [
        {"name": name, "value": value, "threshold": limit, "firing": value is not None and value > limit}
        for name, value, limit in checks
    ]
    for alert in (metrics_file or {}).get("alerts", []) or []:
        if isinstance(alert, Mapping):
            out.append({"source": "metrics_file", "firing": True, **alert})
    return out


# -- drawing -----------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f} ms"


def render(summary: Mapping[str, Any], console: Any, *, width: int = 72) -> None:
    """Draw the summary on a Rich ``console``: distributions, a TTFT histogram, per-agent and per-tool
    tables, alerts, and the trend over the last runs."""
    from rich.table import Table
    from rich.text import Text

    terminals = ", ".join(f"{n} {k}" for k, n in sorted(summary["terminals"].items())) or "none"
    console.print(f"[bold]{summary['runs']} runs[/bold]  ({terminals})")
    table = Table(title="Latency", title_justify="left")
    for column in ("", "count", "p50", "p95", "p99", "max"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("time to first token", summary["ttft"])]
    rows += [(f"first argument byte: {t}", d) for t, d in summary["first_arg_byte_by_tool"].items()]
    for label, d in rows:
        table.add_row(
            label, str(d["count"]), _ms(d["p50_ms"]), _ms(d["p95_ms"]), _ms(d["p99_ms"]), _ms(d["max_ms"])
        )
    console.print(table)
    values = summary["ttft"]["values_ms"]
    if values:
        console.print(Text.from_ansi(_histogram(values, width)))
    agents = Table(title="Agents", title_justify="left")
    for column in ("agent", "runs", "failed", "retries", "fallbacks", "TTFT p50", "TTFT p95"):
        agents.add_column(column, justify="left" if column == "agent" else "right")
    for name, a in summary["agents"].items():
        agents.add_row(
            name, str(a["runs"]), str(a["failed"]), str(a["retries"]), str(a["fallbacks"]),
            _ms(a["ttft_p50_ms"]), _ms(a["ttft_p95_ms"]),
        )  # fmt: skip
    console.print(agents)
    if summary["tools"]:
        tools = Table(title="Tools", title_justify="left")
        for column in ("tool", "calls", "failed", "invalid", "fallbacks", "compensated", "journal"):
            tools.add_column(column, justify="left" if column in ("tool", "journal") else "right")
        for name, t in summary["tools"].items():
            journal = ", ".join(f"{k} {v}" for k, v in sorted(t["journal"].items())) or "-"
            tools.add_row(
                name, str(t["calls"]), str(t["failed"]), str(t["invalid"]), str(t["fallbacks"]),
                str(t["compensated"]), journal,
            )  # fmt: skip
        console.print(tools)
    _render_alerts(summary, console)
    trend = [t["ttft_ms"] for t in summary["trend"] if t["ttft_ms"] is not None]
    if len(trend) >= 2:
        console.print(Text.from_ansi(_trend(trend, width)))
    if "metrics_file" in summary:
        _render_metrics_file(summary["metrics_file"], console)


FILE_KEYS = (
    "runs",
    "latency_reduction",
    "average_chunk_size",
    "incomplete_json_rate",
    "fallback_rate",
    "updated",
)
"""The streaming metrics file's headline keys, in the order shown."""


def _render_metrics_file(data: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    shown = [f"{key} {_value(data[key])}" for key in FILE_KEYS if key in data]
    console.print("Streaming metrics file: " + (", ".join(shown) or "no figures"))
    agents = data.get("agents")
    if isinstance(agents, Mapping) and agents:
        table = Table(title="Streaming metrics per agent (metrics file)", title_justify="left")
        for column in ("agent", "calls", "avg latency", "improvement"):
            table.add_column(column, justify="left" if column == "agent" else "right")
        for name, figures in sorted(agents.items()):
            if isinstance(figures, Mapping):
                table.add_row(
                    str(name),
                    _value(figures.get("calls")),
                    _ms(figures.get("avg_latency")),
                    _value(figures.get("improvement"), percent=True),
                )
        console.print(table)


def _value(value: Any, *, percent: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if percent or 0.0 <= value <= 1.0 else f"{value:,.1f}"
    return str(value)


def _render_alerts(summary: Mapping[str, Any], console: Any) -> None:
    for alert in summary["alerts"]:
        if alert.get("source") == "metrics_file":
            text = alert.get("message") or json.dumps(alert, default=str)
            console.print(f"[red]ALERT[/red] (metrics file) {text}")
            continue
        value, limit = alert["value"], alert["threshold"]
        shown = (
            "-" if value is None else (f"{value:,.0f}" if alert["name"].endswith("_ms") else f"{value:.1%}")
        )
        bound = f"{limit:,.0f}" if alert["name"].endswith("_ms") else f"{limit:.0%}"
        state = "[red]ALERT[/red]" if alert["firing"] else "[green]ok[/green]   "
        console.print(f"{state} {alert['name']} {shown} (threshold {bound})")


def _histogram(values_ms: Sequence[float], width: int) -> str:
    import plotext as plt  # type: ignore[import-untyped]

    plt.clear_figure()
    plt.plotsize(width, 12)
    plt.theme("clear")
    plt.hist(list(values_ms), bins=min(20, max(5, len(values_ms) // 2)))
    plt.title("time to first token (ms)")
    plt.xlabel("ms")
    return str(plt.build())


def _trend(ttft_ms: Sequence[float], width: int) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, 10)
    plt.theme("clear")
    plt.plot(list(range(1, len(ttft_ms) + 1)), list(ttft_ms), marker="braille")
    plt.title(f"TTFT over the last {len(ttft_ms)} runs (mean per run, ms)")
    plt.xlabel("run")
    return str(plt.build())


# -- the command -------------------------------------------------------------------------------------


def stats(
    store: Annotated[
        str | None,
        typer.Option(
            help="The relay's run store (as for serve: sqlite:///path.db, redis://...; default sqlite; "
            "none: read no store, only --journal / --metrics-file)."
        ),
    ] = None,
    journal: Annotated[Path | None, typer.Option(help="An effects journal (.jsonl or SQLite).")] = None,
    metrics_file: Annotated[Path | None, typer.Option(help="A streaming-metrics.json file.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs since: 30m, 6h, 7d, an ISO date, or Unix s.")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only the runs of this agent.")] = None,
    last: Annotated[int, typer.Option(min=1, help="Runs in the trend plot.")] = 20,
    limit: Annotated[int, typer.Option(min=1, help="Newest runs read from the store.")] = 1000,
    ttft_ms: Annotated[float, typer.Option(help="Alert when TTFT p95 is above (ms).")] = TTFT_MS,
    invalid_json_rate: Annotated[
        float, typer.Option(help="Alert when the invalid or incomplete tool-input rate is above.")
    ] = INVALID_JSON_RATE,
    fallback_rate: Annotated[
        float, typer.Option(help="Alert when the eager-to-buffered fallback rate is above.")
    ] = FALLBACK_RATE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON, for scripts.")] = False,
) -> None:
    """What the runs on record did: TTFT and first-argument-byte distributions (p50 / p95 / p99 and a
    histogram), retries and fallbacks per agent and per tool, alerts against thresholds, and the trend
    over the last runs.

    Reads the relay's run store (what `midstream serve` wrote), and optionally an effects journal and a
    streaming metrics file. Times come from the log's append times: coalesced deltas can make them late
    by at most the coalescing window. Exit status: 0 no alert firing, 1 an alert fires, 2 usage error.
    """
    try:
        runs = read_store(store or "sqlite", limit) if store != "none" else []
        records = read_journal(journal) if journal is not None else []
        metrics = read_metrics_file(metrics_file) if metrics_file is not None else None
        limits = Thresholds(ttft_ms, invalid_json_rate, fallback_rate)
        summary = collect(
            runs, records, metrics, since=parse_since(since), agent=agent, last=last, thresholds=limits
        )
    except (LocalError, MidstreamError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        from rich.console import Console

        render(summary, Console(highlight=False))
    firing = any(alert["firing"] for alert in summary["alerts"])
    raise typer.Exit(EXIT_FAILED if firing else EXIT_COMPLETED)
