"""``GET /metrics`` on the relay: scraped during a run and after it, parsed with the Prometheus text
parser; the same series as the OpenTelemetry metrics, in Prometheus naming."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from midstream.metrics import observers
from midstream.relay.serve import RelayURL, running
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from midstream.sim.scenarios import LatencySpec
from midstream.telemetry import PrometheusObserver, prometheus_name
from midstream.telemetry import _names as names
from relaysupport import FAST_SETTINGS, relay_book, sim_factory


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    book = relay_book()
    # The weather answers take a few tenths of a second each, so that the run is still going when the
    # test scrapes, however slow the machine (the relay's own book answers in a few milliseconds).
    weather = next(s for s in book.scenarios if s.name == "weather")
    paced = weather.model_copy(update={"latency": LatencySpec(ttft_ms=400, tokens_per_second=200, jitter=0)})
    book = book.model_copy(update={"scenarios": [paced if s is weather else s for s in book.scenarios]})
    with sim_running(book, speed=1.0) as url:
        yield url


@pytest.fixture
def relay(sim: SimURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RelayURL]:
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(tmp_path / "articles"))
    with running("memory", factory=sim_factory(sim), heartbeat=0.5) as url:
        yield url


def scrape(relay: str) -> dict[str, list[Sample]]:
    response = httpx2.get(f"{relay}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def sample(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found.value


def test_metrics_are_scraped_during_a_run_and_add_up_after_it(relay: RelayURL) -> None:
    made = httpx2.post(
        f"{relay}/v1/runs",
        json={"prompt": "What is the weather in Paris and Tokyo?", "settings": FAST_SETTINGS},
    )
    run_id = made.json()["id"]
    during = []
    while httpx2.get(f"{relay}/v1/runs/{run_id}").json()["state"] == "running":
        during.append(scrape(relay))
        time.sleep(0.05)
    assert during, "the run ended before a scrape"
    replayed = httpx2.get(f"{relay}/v1/runs/{run_id}/events", timeout=30).text  # the whole log, replayed
    after = scrape(relay)
    lag = after["midstream_relay_replay_lag_seconds"]
    assert sample(lag, "midstream_relay_replay_lag_seconds_count") == replayed.count(
        "\nid: "
    ) + replayed.startswith("id: ")

    # Families are named by the metric name without the _total / _bucket suffixes.
    duration = prometheus_name(names.LATEST.inference_duration, "s")
    assert duration == "gen_ai_client_inference_duration_seconds"
    inference = after[duration]
    assert sample(inference, f"{duration}_count", gen_ai_provider_name="anthropic") == 2
    bounds = sorted(float(s.labels["le"]) for s in inference if s.name == f"{duration}_bucket")
    assert bounds == sorted([*names.DURATION_BUCKETS, float("inf")])
    assert (
        sample(after["gen_ai_invoke_agent_duration_seconds"], "gen_ai_invoke_agent_duration_seconds_count")
        == 1
    )
    assert (
        sample(after["gen_ai_invoke_agent_inference_calls"], "gen_ai_invoke_agent_inference_calls_sum") == 2
    )
    tools = after["gen_ai_execute_tool_duration_seconds"]
    assert sample(tools, "gen_ai_execute_tool_duration_seconds_count", gen_ai_tool_name="get_weather") == 2
    assert sample(after["midstream_streams"], "midstream_streams_total", midstream_terminal="completed") == 2
    ttfc = after["gen_ai_client_inference_time_to_first_chunk_seconds"]
    assert sample(ttfc, "gen_ai_client_inference_time_to_first_chunk_seconds_count") == 2
    tokens = after["gen_ai_client_inference_usage_output_tokens"]
    assert sample(tokens, "gen_ai_client_inference_usage_output_tokens_total") > 0
    first_arg = after["midstream_tool_time_to_first_arg_byte_seconds"]
    assert (
        sample(
            first_arg, "midstream_tool_time_to_first_arg_byte_seconds_count", gen_ai_tool_name="get_weather"
        )
        == 2
    )
    # Counters never go down between scrapes.
    for scraped in during:
        for family, samples in scraped.items():
            for s in samples:
                if s.name.endswith(("_total", "_count")):
                    assert s.value <= sample(after[family], s.name, **s.labels)


def test_the_observer_is_registered_only_while_the_relay_runs(sim: SimURL) -> None:
    before = observers()
    with running("memory", factory=sim_factory(sim)) as url:
        mine = url.app.state.prometheus
        assert isinstance(mine, PrometheusObserver) and mine in observers()
    assert observers() == before


def test_series_with_and_without_an_error_share_one_family() -> None:
    observer = PrometheusObserver()
    observer.observe("gen_ai.execute_tool.duration", 0.05, {"gen_ai.tool.name": "a"})
    observer.observe("gen_ai.execute_tool.duration", 0.5, {"gen_ai.tool.name": "a", "error.type": "timeout"})
    observer.add("midstream.streams", 1, {"midstream.terminal": "completed"})
    families = {f.name: f for f in text_string_to_metric_families(observer.exposition().decode())}
    tool = families["gen_ai_execute_tool_duration_seconds"].samples
    assert sample(tool, "gen_ai_execute_tool_duration_seconds_count", error_type="") == 1
    assert sample(tool, "gen_ai_execute_tool_duration_seconds_count", error_type="timeout") == 1
    assert sample(tool, "gen_ai_execute_tool_duration_seconds_bucket", error_type="timeout", le="0.64") == 1
    assert sample(tool, "gen_ai_execute_tool_duration_seconds_bucket", error_type="timeout", le="0.32") == 0
    assert sample(tool, "gen_ai_execute_tool_duration_seconds_sum", error_type="") == pytest.approx(0.05)
    assert sample(families["midstream_streams"].samples, "midstream_streams_total") == 1
