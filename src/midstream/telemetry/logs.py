"""Structured logs: one JSON object per line, with the run, agent and tool call ids of the code that
logged, and the trace and span ids of the current OpenTelemetry span, so that a log line and its span
are found from each other.

midstream logs through the standard :mod:`logging` module under the ``midstream`` logger (retries,
hook failures, callback errors, journal damage); nothing it logs holds a key, a prompt or an answer.
:func:`configure_logging` attaches one handler to that logger::

    from midstream.telemetry import configure_logging
    configure_logging(json=True)   # {"time": "...", "level": "INFO", "logger": "midstream.client", ...}

``midstream serve --log-format json`` does the same.
"""

from __future__ import annotations

import contextvars
import json as jsonlib
import logging
import sys
import time
from typing import IO, Any

from midstream.metrics import Observer, RunProbe, add_observer

__all__ = ["ContextFilter", "JsonFormatter", "configure_logging", "log_context"]


_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "midstream_log", default=None
)


def log_context() -> dict[str, str]:
    """The ids of the run (``run_id``, ``agent``) and tool call (``tool``, ``tool_call_id``) the current
    task works for, plus ``trace_id`` / ``span_id`` when an OpenTelemetry span is current."""
    out = dict(_CONTEXT.get() or {})
    span_ids = _span_ids()
    if span_ids:
        out.update(span_ids)
    return out


def _span_ids() -> dict[str, str] | None:
    trace = sys.modules.get("opentelemetry.trace")  # only if something already loaded OpenTelemetry
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class _Scope(RunProbe):
    def __init__(self, ids: dict[str, str]) -> None:
        self.token = _CONTEXT.set({**(_CONTEXT.get() or {}), **ids})

    def end(self, outcome: Any = None, error: BaseException | None = None) -> None:
        _CONTEXT.reset(self.token)


class _IdObserver(Observer):
    """Keeps the current run's and tool call's ids in a context variable for :class:`ContextFilter`."""

    def run(self, run: Any) -> RunProbe | None:
        return _Scope({"run_id": run.session_id, "agent": run.agent.name})

    def tool(self, name: str, call_id: str, run_id: str, input: Any) -> RunProbe | None:
        return _Scope({"tool": name, "tool_call_id": call_id})


IDS = _IdObserver()


class ContextFilter(logging.Filter):
    """Adds :func:`log_context`'s ids to every record (as attributes; absent ids are not set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    ids :class:`ContextFilter` added, any ``extra=`` fields, and ``exception`` (the traceback text).

    Example:

        >>> import logging
        >>> record = logging.makeLogRecord({"name": "midstream.client", "levelname": "INFO",
        ...     "msg": "retrying in %.1f s", "args": (0.5,), "created": 0.0, "run_id": "run-1"})
        >>> import json
        >>> line = JsonFormatter().format(record)
        >>> line[:60]
        '{"time": "1970-01-01T00:00:00.000Z", "level": "INFO", "logge'
        >>> json.loads(line)["message"], json.loads(line)["run_id"]
        ('retrying in 0.5 s', 'run-1')
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.created % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return jsonlib.dumps(out, ensure_ascii=False)


def configure_logging(
    level: int | str = "INFO", *, json: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the ``midstream`` loggers' records at ``level`` and above to ``stream`` (stderr), as JSON
    lines (``json``) or plain text with the ids appended; returns the handler (remove it to undo).

    The run / agent / tool-call ids are tracked from now on (an observer is registered).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    logger = logging.getLogger("midstream")
    logger.addHandler(handler)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    add_observer(IDS)
    return handler


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        keys = ("run_id", "agent", "tool_call_id", "trace_id")
        ids = [f"{key}={getattr(record, key)}" for key in keys if getattr(record, key, None) is not None]
        return f"{text}  [{' '.join(ids)}]" if ids else text
