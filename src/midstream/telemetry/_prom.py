"""The Prometheus observer: the same measurements as the OpenTelemetry one, in Prometheus naming,
exposed as the text format by ``GET /metrics`` on ``midstream serve``.

Why ``prometheus-client`` rather than the OpenTelemetry Prometheus exporter: the library depends on
``opentelemetry-api`` only (an SDK is the application's choice), and the exporter needs the SDK's
metric pipeline in the relay's process. ``prometheus-client`` is small, has no dependencies, and its
exposition and parser are the reference ones. The series are aggregated here (the label set of a
series may vary: ``error.type`` only on failures) and handed to ``prometheus-client`` at scrape time.

Naming follows the OpenTelemetry-to-Prometheus rules: dots become underscores, the unit is a suffix
(``_seconds``; annotations such as ``{token}`` are dropped), counters end in ``_total``::

    gen_ai.client.inference.time_to_first_chunk (s)  ->  gen_ai_client_inference_time_to_first_chunk_seconds
    gen_ai.client.inference.usage.input_tokens       ->  gen_ai_client_inference_usage_input_tokens_total
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from midstream.metrics import add_observer, remove_observer
from midstream.telemetry import _names as n
from midstream.telemetry._measure import Attributes, Measuring

__all__ = ["CONTENT_TYPE", "PrometheusObserver", "prometheus_name"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of the exposition (the Prometheus text format)."""

_UNITS = {"s": "seconds", "By": "bytes"}


def prometheus_name(name: str, unit: str) -> str:
    """A metric's Prometheus name: dots to underscores and the unit as a suffix (counters get
    ``_total`` from ``prometheus-client``)."""
    base = name.replace(".", "_").replace("-", "_")
    suffix = _UNITS.get(unit, "")
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


def _label(key: str) -> str:
    return key.replace(".", "_")


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        return out


class PrometheusObserver(Measuring):
    """Aggregates every measurement in memory; :meth:`exposition` renders them in the text format.

    Example:

        >>> from midstream.sim import running
        >>> from midstream.telemetry import PrometheusObserver
        >>> observer = PrometheusObserver()
        >>> with observer.observing(), running(speed=0) as url:
        ...     with midstream.Client("anthropic", base_url=url, model="claude-4") as client:
        ...         _ = client.stream("Hi").final()
        >>> b"gen_ai_client_inference_time_to_first_chunk_seconds_bucket" in observer.exposition()
        True
    """

    def __init__(self, naming: n.Naming = "latest") -> None:
        super().__init__(naming)
        self._lock = threading.Lock()
        self._histograms: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = {}
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # prometheus-client calls collect() at every scrape

    def add(self, name: str, value: float, attributes: Attributes) -> None:
        key = _key(attributes)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def observe(self, name: str, value: float, attributes: Attributes) -> None:
        key = _key(attributes)
        buckets = n.HISTOGRAMS.get(name, ("s", "", n.DURATION_BUCKETS))[2]
        with self._lock:
            series = self._histograms.setdefault(name, {})
            histogram = series.get(key)
            if histogram is None:
                histogram = series[key] = _Histogram(tuple(float(b) for b in buckets))
            histogram.observe(value)

    def collect(self) -> Iterator[Metric]:
        """The metric families, for ``prometheus-client`` (called at every scrape)."""
        with self._lock:
            histograms = {k: {s: _copy(h) for s, h in v.items()} for k, v in self._histograms.items()}
            counters = {k: dict(v) for k, v in self._counters.items()}
        for name, hseries in sorted(histograms.items()):
            unit, doc, _ = n.HISTOGRAMS.get(name, ("s", "", ()))
            labels = _union(hseries)
            family = HistogramMetricFamily(prometheus_name(name, unit), doc or name, labels=labels)
            for key, h in hseries.items():
                family.add_metric(_values(key, labels), h.cumulative(), h.total)
            yield family
        for name, cseries in sorted(counters.items()):
            unit, doc = n.COUNTERS.get(name, ("1", ""))
            labels = _union(cseries)
            counter = CounterMetricFamily(prometheus_name(name, unit), doc or name, labels=labels)
            for key, value in cseries.items():
                counter.add_metric(_values(key, labels), value)
            yield counter

    def exposition(self) -> bytes:
        """Every series in the Prometheus text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)

    @contextlib.contextmanager
    def observing(self) -> Iterator[PrometheusObserver]:
        """Registered as an observer for the duration of the block."""
        add_observer(self)
        try:
            yield self
        finally:
            remove_observer(self)


def _key(attributes: Attributes) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((_label(k), str(v)) for k, v in attributes.items()))


def _union(series: dict[tuple[tuple[str, str], ...], Any]) -> list[str]:
    return sorted({label for key in series for label, _ in key})


def _values(key: tuple[tuple[str, str], ...], labels: list[str]) -> list[str]:
    found = dict(key)
    return [found.get(label, "") for label in labels]


def _copy(h: _Histogram) -> _Histogram:
    return _Histogram(h.buckets, list(h.counts), h.total, h.count)


def with_metrics(app: Any, observer: PrometheusObserver | None = None) -> PrometheusObserver:
    """Add ``GET /metrics`` to a Starlette ``app``; ``observer`` (a new one by default) observes this
    process while the app runs (from its startup to its shutdown)."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    chosen = observer if observer is not None else PrometheusObserver()

    async def metrics(request: Request) -> Response:
        return Response(chosen.exposition(), media_type=CONTENT_TYPE)

    app.router.routes.append(Route("/metrics", metrics, methods=["GET"]))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        with chosen.observing():
            async with inner(a) as state:
                yield state

    app.router.lifespan_context = lifespan
    app.state.prometheus = chosen
    return chosen
