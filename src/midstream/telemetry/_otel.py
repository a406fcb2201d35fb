"""The OpenTelemetry observer: GenAI spans and metrics through ``opentelemetry-api`` only.

Imported only by :func:`midstream.telemetry.instrument`, so that without the ``otel`` extra nothing
here is loaded. The tracer and meter come from the providers given, or the global ones (a no-op until
an SDK is configured).
"""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from midstream.metrics import RunProbe, StreamProbe
from midstream.telemetry import _names as n
from midstream.telemetry._measure import Attributes, MeasuredCall, MeasuredStream, Measuring, error_type

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The conventions' switch for recording prompts, answers and tool arguments (off unless ``true``)."""

SCOPE = "midstream"


def capture_from_env() -> bool:
    """True when the environment opts in to content capture."""
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class OtelObserver(Measuring):
    """Spans (``chat {model}``, ``invoke_agent {name}``, ``execute_tool {name}``) and the metrics of
    :mod:`midstream.telemetry._names` on the given (or global) tracer and meter providers."""

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        naming: n.Naming = "latest",
        capture_content: bool = False,
        version: str = "",
    ) -> None:
        super().__init__(naming)
        self.tracer = trace.get_tracer(SCOPE, version, tracer_provider=tracer_provider)
        self.meter = otel_metrics.get_meter(SCOPE, version, meter_provider=meter_provider)
        self.capture_content = capture_content
        self._histograms: dict[str, Any] = {}
        self._counters: dict[str, Any] = {}
        self._providers = (tracer_provider, meter_provider)
        self._live = False

    @property
    def live(self) -> bool:
        """False while neither provider can record: both are the API's own (no-op or the global proxy
        before an SDK is set), and then streams, runs and tool calls are not followed at all. Once an
        SDK provider is in place it stays true (the API lets the global providers be set only once)."""
        if not self._live:
            tracing, metering = self._providers
            tracing = tracing if tracing is not None else trace.get_tracer_provider()
            metering = metering if metering is not None else otel_metrics.get_meter_provider()
            self._live = not (_api_only(tracing) and _api_only(metering))
        return self._live

    # -- metrics -----------------------------------------------------------------------------------

    def add(self, name: str, value: float, attributes: Attributes) -> None:
        counter = self._counters.get(name)
        if counter is None:
            unit, description = n.COUNTERS.get(name, ("1", ""))
            counter = self._counters[name] = self.meter.create_counter(
                name, unit=unit, description=description
            )
        counter.add(value, attributes=dict(attributes))

    def observe(self, name: str, value: float, attributes: Attributes) -> None:
        histogram = self._histograms.get(name)
        if histogram is None:
            unit, description, buckets = n.HISTOGRAMS.get(name, ("s", "", n.DURATION_BUCKETS))
            histogram = self._histograms[name] = self.meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
            )
        histogram.record(value, attributes=dict(attributes))

    # -- spans -------------------------------------------------------------------------------------

    def stream(self, session: Any, *, model: str | None, chat: Any = None) -> StreamProbe | None:
        if not self.live:
            return None
        probe = _SpanStream(self, session, model)
        attributes = {**probe.attributes(), "gen_ai.request.stream": True}
        if chat is not None:
            attributes["gen_ai.request.max_tokens"] = chat.max_tokens
        span = probe.span = self.tracer.start_span(
            f"chat {model}" if model else "chat", kind=SpanKind.CLIENT, attributes=attributes
        )
        if chat is not None and self.capture_content and span.is_recording():
            span.set_attributes(_input_content(chat))
        return probe

    def run(self, run: Any) -> RunProbe | None:
        if not self.live:
            return None
        probe = super().run(run)
        assert isinstance(probe, MeasuredCall)
        name = probe.attributes["gen_ai.agent.name"]
        attributes = {**probe.attributes, "gen_ai.conversation.id": run.session_id}
        span = self.tracer.start_span(f"invoke_agent {name}", kind=SpanKind.INTERNAL, attributes=attributes)
        return _SpanCall(probe, span)

    def tool(self, name: str, call_id: str, run_id: str, input: Any) -> RunProbe | None:
        if not self.live:
            return None
        probe = super().tool(name, call_id, run_id, input)
        assert isinstance(probe, MeasuredCall)
        attributes: dict[str, Any] = {
            **probe.attributes,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": run_id,
        }
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(input, ensure_ascii=False, default=str)
        span = self.tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes)
        return _SpanCall(probe, span)

    def workflow(self, name: str, run_id: str) -> RunProbe | None:
        if not self.live:
            return None
        probe = super().workflow(name, run_id)
        assert isinstance(probe, MeasuredCall)
        attributes = {**probe.attributes, "gen_ai.conversation.id": run_id}
        span = self.tracer.start_span(
            f"invoke_workflow {name}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        return _SpanCall(probe, span)

    def stream_ended(self, probe: MeasuredStream, now: float) -> None:
        super().stream_ended(probe, now)
        assert isinstance(probe, _SpanStream) and probe.message is not None
        span, recorder, message = probe.span, probe.session.metrics, probe.message
        if not span.is_recording():  # no SDK, or not sampled: nothing would keep the attributes
            span.end()
            return
        attributes: dict[str, Any] = {
            "midstream.terminal": message.terminal,
            "midstream.retries": recorder.retries,
        }
        if recorder.ttft is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = recorder.ttft
        if recorder.first_tool_byte is not None:
            attributes["midstream.time_to_first_tool_byte"] = recorder.first_tool_byte
        if message.id:
            attributes["gen_ai.response.id"] = message.id
        if message.model:
            attributes["gen_ai.response.model"] = message.model
        if message.raw_stop_reason or message.stop_reason:
            attributes["gen_ai.response.finish_reasons"] = [
                str(message.raw_stop_reason or message.stop_reason)
            ]
        for field_name, name in n.USAGE_ATTRIBUTES.items():
            value = getattr(message.usage, field_name)
            if value is not None:
                attributes[name] = value
        if self.capture_content:
            attributes["gen_ai.output.messages"] = _output_content(message)
        span.set_attributes(attributes)
        failed = error_type(message)
        if failed:
            span.set_attribute("error.type", failed)
            span.set_status(Status(StatusCode.ERROR, str(message.error) if message.error else failed))
        span.end()


class _SpanStream(MeasuredStream):
    span: Any = None

    def attempt(self, now: float, *, retry: bool) -> None:
        self.span.add_event("midstream.attempt", {"midstream.retry": retry})

    def retry(self, reason: str, delay: float) -> None:
        self.span.add_event(
            "midstream.retry", {"midstream.retry.reason": reason, "midstream.retry.delay": delay}
        )


class _SpanCall(RunProbe):
    """A run's or tool call's span, current in its task until :meth:`end`."""

    def __init__(self, measured: MeasuredCall, span: Any) -> None:
        self.measured = measured
        self.span = span
        self.token = otel_context.attach(trace.set_span_in_context(span))

    def end(self, outcome: Any = None, error: BaseException | None = None) -> None:
        otel_context.detach(self.token)
        span = self.span
        if self.measured.kind == "workflow":
            terminal = getattr(outcome, "terminal", None) or "failed"
            span.set_attribute("midstream.terminal", terminal)
            if terminal != "completed":
                span.set_attribute("error.type", terminal)
                span.set_status(Status(StatusCode.ERROR, terminal))
        elif self.measured.kind == "run":
            terminal = getattr(outcome, "terminal", None) or "failed"
            span.set_attributes(
                {
                    "midstream.terminal": terminal,
                    "midstream.iterations": getattr(outcome, "iterations", 0),
                    "midstream.retries": getattr(outcome, "retries", 0),
                    "midstream.fallbacks": list(getattr(outcome, "fallbacks", ())),
                    "midstream.compensations": len(getattr(outcome, "compensations", ())),
                    "midstream.inference_calls": self.measured.tally.inference_calls,
                }
            )
            for record in getattr(outcome, "compensations", ()):
                span.add_event(
                    "midstream.compensated",
                    {"gen_ai.tool.name": record.tool, "gen_ai.tool.call.id": record.call_id},
                )
            if terminal != "completed":
                span.set_attribute("error.type", terminal)
                span.set_status(Status(StatusCode.ERROR, str(getattr(outcome, "reason", None) or terminal)))
        elif outcome != "ok":
            span.set_attribute("error.type", str(outcome))
            span.set_status(Status(StatusCode.ERROR, str(outcome)))
        self.measured.end(outcome, error)
        span.end()


def _api_only(provider: Any) -> bool:
    """True for the API package's own providers (no-op, or the proxy before an SDK is set): an SDK's
    providers are defined outside ``opentelemetry.trace`` / ``opentelemetry.metrics``."""
    module = type(provider).__module__
    return module.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


def _input_content(chat: Any) -> dict[str, str]:
    """The prompt as the conventions' ``gen_ai.input.messages`` (and ``gen_ai.system_instructions``)."""
    messages: list[dict[str, Any]] = []
    for turn in chat.turns:
        if turn.message is not None:
            messages.append(json.loads(_output_content(turn.message))[0])
            continue
        parts: list[dict[str, Any]] = []
        for part in turn.parts:
            if hasattr(part, "tool_call_id"):
                parts.append(
                    {"type": "tool_call_response", "id": part.tool_call_id, "response": part.content}
                )
            else:
                parts.append({"type": "text", "content": part.text})
        messages.append({"role": turn.role, "parts": parts})
    out = {"gen_ai.input.messages": json.dumps(messages, ensure_ascii=False)}
    if chat.system:
        out["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": chat.system}])
    return out


def _output_content(message: Any) -> str:
    """An assistant Message as the conventions' ``gen_ai.output.messages``."""
    parts: list[dict[str, Any]] = []
    if message.text:
        parts.append({"type": "text", "content": message.text})
    for call in message.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.input})
    finish = str(message.raw_stop_reason or message.stop_reason or message.terminal)
    return json.dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}], ensure_ascii=False)
