"""Telemetry: OpenTelemetry GenAI spans and metrics, Prometheus series, structured logs.

midstream measures through one seam (:class:`midstream.metrics.Observer`): the client tells observers
when a streamed call starts, retries and ends; the agent when a run and a tool call start and end.
Nothing is observed until an observer is registered, and then the cost is per stream, run or tool call,
never per event (only the first-argument-byte figure looks at each batch of events). With only the
OpenTelemetry API's own providers (no SDK configured yet) nothing is followed at all.

**OpenTelemetry** (``pip install 'midstream[otel]'``: ``opentelemetry-api`` only; configure an SDK in
your application): :func:`instrument` emits, following the GenAI semantic conventions,

* spans: ``chat {model}`` per streamed request (attempts and retries as span events), ``invoke_agent
  {name}`` per agent run, ``execute_tool {name}`` per tool execution, ``invoke_workflow {name}`` per
  workflow run, nested (a run's requests and tool calls are its children; a workflow's agent runs are
  its children, a handoff's receiver the sender's; a sub-agent started by a tool is the tool span's
  child), with
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.request.stream``,
  ``gen_ai.response.time_to_first_chunk``, ``gen_ai.response.finish_reasons``, ``gen_ai.usage.*``;
* metrics: ``gen_ai.client.inference.duration`` / ``.time_to_first_chunk`` / ``.time_per_output_chunk``
  (the advised buckets), the token counters ``gen_ai.client.inference.usage.*``,
  ``gen_ai.invoke_agent.duration`` / ``.inference_calls`` / ``.tool_calls``,
  ``gen_ai.execute_tool.duration``, ``gen_ai.invoke_workflow.duration``, and midstream's own:
  ``midstream.tool.time_to_first_arg_byte``,
  ``midstream.stream.max_chunk_gap``, ``midstream.streams`` (by terminal state),
  ``midstream.stream.retries``, ``midstream.tool.invalid_json`` / ``.incomplete_json``,
  ``midstream.agent.fallbacks`` / ``.compensations`` / ``.resumes``, ``midstream.relay.replay_lag``.

``naming="v1.41"`` (or ``MIDSTREAM_OTEL_NAMING=v1.41``) emits the v1.41 names instead
(``gen_ai.client.operation.*``, ``gen_ai.client.token.usage``) for backends that still read them.
Prompts, answers and tool arguments are recorded only with ``capture_content=True`` (or the
conventions' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``); keys never are.

Example:

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> from midstream.sim import running
    >>> exporter = InMemorySpanExporter()
    >>> tracing = TracerProvider()
    >>> tracing.add_span_processor(SimpleSpanProcessor(exporter))
    >>> with midstream.telemetry.instrument(tracer_provider=tracing), running(speed=0) as url:
    ...     with midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5") as client:
    ...         _ = client.stream("Hi").final()
    >>> span = exporter.get_finished_spans()[0]
    >>> span.name, span.attributes["gen_ai.provider.name"], span.attributes["gen_ai.request.stream"]
    ('chat claude-sonnet-4-5', 'anthropic', True)

**Prometheus**: :class:`PrometheusObserver` keeps the same series in Prometheus naming;
``midstream serve`` exposes them at ``GET /metrics``.

**Logs**: :func:`configure_logging` (JSON lines with the run, agent, tool-call, trace and span ids).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, get_args

from midstream.errors import LocalError
from midstream.metrics import Observer, add_observer, remove_observer
from midstream.telemetry._names import Naming
from midstream.telemetry._prom import CONTENT_TYPE, PrometheusObserver, prometheus_name, with_metrics
from midstream.telemetry.logs import ContextFilter, JsonFormatter, configure_logging, log_context

__all__ = [
    "CONTENT_TYPE",
    "ContextFilter",
    "Instrumentation",
    "JsonFormatter",
    "Naming",
    "PrometheusObserver",
    "configure_logging",
    "instrument",
    "log_context",
    "prometheus_name",
    "with_metrics",
]

NAMING_ENV = "MIDSTREAM_OTEL_NAMING"


class Instrumentation:
    """An OpenTelemetry observer while registered: :meth:`uninstrument` (or leaving the ``with``
    block) stops it. ``observer`` is the registered :class:`~midstream.metrics.Observer`."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstrument()

    def uninstrument(self) -> None:
        """Stop observing (spans already started still end)."""
        remove_observer(self.observer)


def instrument(
    tracer_provider: Any = None,
    meter_provider: Any = None,
    *,
    naming: Naming | None = None,
    capture_content: bool | None = None,
) -> Instrumentation:
    """Emit OpenTelemetry spans and metrics for every stream, agent run and tool call from now on.

    ``tracer_provider`` / ``meter_provider``: the SDK providers to use (default: the global ones).
    ``naming``: ``"latest"`` (default) or ``"v1.41"`` (default from ``MIDSTREAM_OTEL_NAMING``).
    ``capture_content``: record prompts, answers and tool arguments (default from
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, off). Raises :class:`LocalError` when
    ``opentelemetry-api`` is not installed.
    """
    try:
        from midstream.telemetry._otel import OtelObserver, capture_from_env
    except ImportError as exc:
        raise LocalError(
            f"OpenTelemetry is not installed ({exc}): pip install 'midstream[otel]', and an SDK to export"
        ) from None
    chosen = naming or os.environ.get(NAMING_ENV, "").strip() or "latest"
    if chosen not in get_args(Naming):
        raise LocalError(f"naming must be {' or '.join(map(repr, get_args(Naming)))}, not {chosen!r}")
    try:
        own = version("midstream")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = ""
    observer = OtelObserver(
        tracer_provider,
        meter_provider,
        naming=chosen,  # type: ignore[arg-type]
        capture_content=capture_from_env() if capture_content is None else capture_content,
        version=own,
    )
    add_observer(observer)
    return Instrumentation(observer)
