"""In-memory OpenTelemetry SDK pipelines for the telemetry tests: spans and metrics read back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Pipeline:
    """A tracer and a meter provider that keep what they receive in memory."""

    spans_out: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    @classmethod
    def make(cls) -> Pipeline:
        spans = InMemorySpanExporter()
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(spans))
        reader = InMemoryMetricReader()
        return cls(spans, reader, tracing, MeterProvider(metric_readers=[reader]))

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_out.get_finished_spans())

    def span(self, prefix: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name.startswith(prefix)]
        return found

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric ``name`` (empty if it was never recorded)."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out

    def metric_names(self) -> set[str]:
        data = self.reader.get_metrics_data()
        return {
            m.name
            for r in (data.resource_metrics if data is not None else ())
            for s in r.scope_metrics
            for m in s.metrics
        }

    def everything(self) -> str:
        """Every span (attributes and events) and metric point as text: what a backend would store."""
        parts = [span.to_json() for span in self.spans()]
        data = self.reader.get_metrics_data()
        if data is not None:
            parts.append(data.to_json())
        return "\n".join(parts)


def spans_by_id(pipeline: Pipeline) -> Iterator[tuple[int, ReadableSpan]]:
    for span in pipeline.spans():
        assert span.context is not None
        yield span.context.span_id, span
