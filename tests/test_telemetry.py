"""OpenTelemetry spans and metrics under the GenAI conventions, read back from in-memory exporters,
for a text stream, a tool call, a retry, a cancel and nested agents; content and keys stay out."""

from __future__ import annotations

import asyncio
import doctest
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import midstream
from midstream.agent.effects import MemoryJournal
from midstream.cli.examples import TOOLS
from midstream.core.retry import RetryPolicy
from midstream.metrics import observers, remove_observer
from midstream.sim import SimURL
from midstream.telemetry import _names as names
from midstream.telemetry import _otel, _prom, instrument, logs
from simsupport import fault, fresh
from telemetrysupport import Pipeline, spans_by_id

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.02)
SECRET = "sk-ant-telemetry-test-0123456789abcdef"


@pytest.fixture
def otel() -> Iterator[Pipeline]:
    pipeline = Pipeline.make()
    with instrument(pipeline.tracer_provider, pipeline.meter_provider, capture_content=False):
        yield pipeline
    assert not observers()


def _stream(sim: SimURL, prompt: str = "Hello", **options: object) -> midstream.Message:
    with midstream.Client(
        "anthropic", api_key=SECRET, base_url=sim, model="claude-sonnet-4-5", retry=FAST
    ) as client:
        return client.stream(prompt, **options).final()  # type: ignore[arg-type]


def test_nothing_is_observed_until_instrumented(sim: SimURL) -> None:
    assert not observers()
    with midstream.Client("anthropic", base_url=sim, model="claude-4") as client:
        stream = client.stream("Hi")
        assert stream._s.metrics.probe is None
        stream.final()


def test_a_text_stream_is_one_chat_span_with_the_conventions_attributes(sim: SimURL, otel: Pipeline) -> None:
    message = _stream(sim)
    span = otel.span("chat ")
    attrs = span.attributes or {}
    assert span.name == "chat claude-sonnet-4-5"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == (message.raw_stop_reason,)
    assert attrs["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    assert attrs["gen_ai.usage.input_tokens"] == message.usage.input_tokens
    assert attrs["midstream.terminal"] == "completed"
    assert attrs["server.address"] == "127.0.0.1"
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < span.end_time - span.start_time  # type: ignore[operator]
    assert [e.name for e in span.events] == ["midstream.attempt"]


def test_a_text_stream_records_the_inference_metrics_with_the_advised_buckets(
    sim: SimURL, otel: Pipeline
) -> None:
    message = _stream(sim)
    (duration,) = otel.points("gen_ai.client.inference.duration")
    assert duration.count == 1
    assert list(duration.explicit_bounds) == list(names.DURATION_BUCKETS)
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": message.model,
        "server.address": "127.0.0.1",
        "server.port": int(sim.rsplit(":", 1)[1]),
    }
    (ttfc,) = otel.points("gen_ai.client.inference.time_to_first_chunk")
    span = otel.span("chat ")
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(
        (span.attributes or {})["gen_ai.response.time_to_first_chunk"]
    )
    (output_tokens,) = otel.points("gen_ai.client.inference.usage.output_tokens")
    assert output_tokens.value == message.usage.output_tokens
    (streams,) = otel.points("midstream.streams")
    assert streams.value == 1 and streams.attributes["midstream.terminal"] == "completed"
    assert "gen_ai.client.operation.duration" not in otel.metric_names()


def test_the_v1_41_names_behind_the_switch(sim: SimURL) -> None:
    pipeline = Pipeline.make()
    with instrument(pipeline.tracer_provider, pipeline.meter_provider, naming="v1.41"):
        message = _stream(sim)
    emitted = pipeline.metric_names()
    assert {"gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk"} <= emitted
    assert not any(name.startswith("gen_ai.client.inference") for name in emitted)
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in pipeline.points("gen_ai.client.token.usage")}
    assert usage == {"input": message.usage.input_tokens, "output": message.usage.output_tokens}


def test_a_retry_is_a_span_event_and_a_counter(sim: SimURL, otel: Pipeline) -> None:
    fresh(sim)  # the fault counts requests: start from none
    message = _stream(sim, "tell a story", headers=fault("http_status=529;times=1"))
    assert message.terminal == "completed"
    span = otel.span("chat ")
    assert [e.name for e in span.events] == ["midstream.attempt", "midstream.retry", "midstream.attempt"]
    retry = span.events[1].attributes or {}
    assert "529" in str(retry["midstream.retry.reason"]) and retry["midstream.retry.delay"] >= 0
    (retries,) = otel.points("midstream.stream.retries")
    assert retries.value == 1
    assert (span.attributes or {})["midstream.retries"] == 1


def test_a_failed_stream_has_an_error_status_and_type(sim: SimURL, otel: Pipeline) -> None:
    with pytest.raises(midstream.ProviderError) as info:
        _stream(sim, "tell a story", headers=fault("http_status=400;times=9"))
    span = otel.span("chat ")
    assert span.status.status_code.name == "ERROR"
    assert (span.attributes or {})["error.type"] == info.value.kind
    (duration,) = otel.points("gen_ai.client.inference.duration")
    assert duration.attributes["error.type"] == info.value.kind


def test_a_cancelled_stream_ends_its_span_cancelled(paced: SimURL, otel: Pipeline) -> None:
    with (
        midstream.Client("anthropic", base_url=paced, model="claude-4") as client,
        client.stream("tell a story") as stream,
    ):
        for event in stream:
            if isinstance(event, midstream.TextDelta):
                stream.cancel()
    span = otel.span("chat ")
    assert (span.attributes or {})["midstream.terminal"] == "cancelled"
    assert (span.attributes or {})["error.type"] == "cancelled"
    (streams,) = otel.points("midstream.streams")
    assert streams.attributes["midstream.terminal"] == "cancelled"


def _agent(sim: SimURL, name: str = "weather-agent", **options: object) -> midstream.Agent:
    client = midstream.AsyncClient("anthropic", api_key=SECRET, base_url=sim, model="claude-sonnet-4-5")
    return midstream.Agent(client, tools=list(TOOLS), name=name, **options)  # type: ignore[arg-type]


def test_an_agent_run_nests_its_requests_and_tool_calls(sim: SimURL, otel: Pipeline) -> None:
    result = _agent(sim).run_sync("What is the weather in Paris and Tokyo?")
    assert result.terminal == "completed"
    run = otel.span("invoke_agent")
    chats = [s for s in otel.spans() if s.name.startswith("chat ")]
    tools = [s for s in otel.spans() if s.name.startswith("execute_tool")]
    assert run.name == "invoke_agent weather-agent"
    assert len(chats) == 2 and len(tools) == 2
    assert run.context is not None
    for child in chats + tools:
        assert child.parent is not None and child.parent.span_id == run.context.span_id
        assert child.context is not None and child.context.trace_id == run.context.trace_id
    assert {(t.attributes or {})["gen_ai.tool.name"] for t in tools} == {"get_weather"}
    assert all((t.attributes or {})["gen_ai.tool.call.id"] for t in tools)
    assert (run.attributes or {})["gen_ai.conversation.id"] == result.session_id
    (calls,) = otel.points("gen_ai.invoke_agent.inference_calls")
    assert calls.sum == 2
    (tool_calls,) = otel.points("gen_ai.invoke_agent.tool_calls")
    assert tool_calls.sum == 2
    (tool_duration,) = otel.points("gen_ai.execute_tool.duration")
    assert tool_duration.count == 2 and tool_duration.attributes["gen_ai.tool.name"] == "get_weather"
    (agent_duration,) = otel.points("gen_ai.invoke_agent.duration")
    assert agent_duration.count == 1 and agent_duration.attributes["gen_ai.agent.name"] == "weather-agent"
    first_arg = otel.points("midstream.tool.time_to_first_arg_byte")
    assert first_arg and all(p.attributes["gen_ai.tool.name"] == "get_weather" for p in first_arg)


def test_a_sub_agent_started_by_a_tool_is_a_child_of_that_tool_call(sim: SimURL, otel: Pipeline) -> None:
    inner = _agent(sim, "helper")

    @midstream.tool
    async def get_weather(city: str, unit: str = "celsius") -> str:
        """Ask the helper agent about a city's weather.

        Args:
            city: the city
            unit: the unit
        """
        return (await inner.run(f"Hello from {city}")).text

    client = midstream.AsyncClient("anthropic", base_url=sim, model="claude-sonnet-4-5")
    result = midstream.Agent(client, tools=[get_weather], name="lead").run_sync("Weather in Paris and Tokyo?")
    assert result.terminal == "completed"
    spans = dict(spans_by_id(otel))
    lead = otel.span("invoke_agent lead")
    helpers = [s for s in spans.values() if s.name == "invoke_agent helper"]
    assert lead.parent is None and lead.context is not None and len(helpers) == 2
    for helper in helpers:
        assert helper.parent is not None
        tool = spans[helper.parent.span_id]
        assert tool.name == "execute_tool get_weather"
        assert tool.parent is not None and tool.parent.span_id == lead.context.span_id
        assert helper.context is not None and helper.context.trace_id == lead.context.trace_id
        children = [s.name for s in spans.values() if s.parent and s.parent.span_id == helper.context.span_id]
        assert "chat claude-sonnet-4-5" in children and set(children) <= {
            "chat claude-sonnet-4-5",
            "execute_tool get_weather",
        }


def test_a_cancelled_run_counts_its_compensations(paced: SimURL, otel: Pipeline) -> None:
    journal = MemoryJournal()
    agent = _agent(paced, journal=journal)

    async def cancel_after_first_tool() -> midstream.RunResult:
        run = agent.run("What is the weather in Paris and Tokyo?")
        async for event in run:
            if type(event).__name__ == "ToolFinished":
                run.cancel("stop")
        return await run

    result = asyncio.run(cancel_after_first_tool())
    assert result.terminal == "cancelled"
    run = otel.span("invoke_agent")
    assert (run.attributes or {})["midstream.terminal"] == "cancelled"
    assert run.status.status_code.name == "ERROR"
    compensated = [e for e in run.events if e.name == "midstream.compensated"]
    assert len(compensated) == len(result.compensations)
    total = sum(p.value for p in otel.points("midstream.agent.compensations"))
    assert total == len(result.compensations)


def test_content_is_not_captured_by_default_and_keys_never(sim: SimURL, otel: Pipeline) -> None:
    result = _agent(sim).run_sync("What is the weather in Paris and Tokyo?")
    text = otel.everything()
    assert SECRET not in text
    assert "Paris" not in text and result.text[:20] not in text
    assert "gen_ai.input.messages" not in text and "gen_ai.tool.call.arguments" not in text


def test_content_is_captured_when_opted_in_and_keys_still_never(sim: SimURL) -> None:
    pipeline = Pipeline.make()
    with instrument(pipeline.tracer_provider, pipeline.meter_provider, capture_content=True):
        _agent(sim).run_sync("What is the weather in Paris and Tokyo?")
    chats = [s for s in pipeline.spans() if s.name.startswith("chat ")]
    sent = json.loads((chats[0].attributes or {})["gen_ai.input.messages"])  # type: ignore[arg-type]
    assert sent[0]["role"] == "user" and "Paris" in sent[0]["parts"][0]["content"]
    answer = json.loads((chats[0].attributes or {})["gen_ai.output.messages"])  # type: ignore[arg-type]
    calls = [part for part in answer[0]["parts"] if part["type"] == "tool_call"]
    assert answer[0]["role"] == "assistant" and {c["name"] for c in calls} == {"get_weather"}
    tool = next(s for s in pipeline.spans() if s.name.startswith("execute_tool"))
    assert json.loads((tool.attributes or {})["gen_ai.tool.call.arguments"])["city"] in ("Paris", "Tokyo")  # type: ignore[arg-type]
    assert SECRET not in pipeline.everything()


def test_the_environment_switches(monkeypatch: pytest.MonkeyPatch, sim: SimURL) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("MIDSTREAM_OTEL_NAMING", "v1.41")
    pipeline = Pipeline.make()
    with instrument(pipeline.tracer_provider, pipeline.meter_provider) as inst:
        _stream(sim)
    assert isinstance(inst.observer, _otel.OtelObserver)
    assert inst.observer.capture_content and inst.observer.naming == "v1.41"
    monkeypatch.setenv("MIDSTREAM_OTEL_NAMING", "v2")
    with pytest.raises(midstream.LocalError, match="naming"):
        instrument()


def test_the_module_examples_run() -> None:
    for module in (midstream.telemetry, _prom, logs):
        failures, tried = doctest.testmod(
            module, extraglobs={"midstream": midstream}, optionflags=doctest.ELLIPSIS
        )
        assert failures == 0 and tried > 0, module.__name__


def test_json_logs_carry_the_run_agent_and_span_ids_and_no_key(sim: SimURL, otel: Pipeline) -> None:
    fresh(sim)
    out = io.StringIO()
    handler = logs.configure_logging("INFO", json=True, stream=out)
    try:
        client = midstream.AsyncClient(
            "anthropic",
            api_key=SECRET,
            base_url=sim,
            model="claude-sonnet-4-5",
            retry=FAST,
            headers={"x-midstream-fault": "http_status=529;times=1"},
        )
        result = midstream.Agent(client, name="logged").run_sync("Hello")
    finally:
        logging.getLogger("midstream").removeHandler(handler)
        remove_observer(logs.IDS)
    assert result.terminal == "completed"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    (retry,) = [line for line in lines if line["logger"] == "midstream.client"]
    assert retry["level"] == "INFO" and "retrying the anthropic request" in retry["message"]
    assert retry["run_id"] == result.session_id and retry["agent"] == "logged"
    run = otel.span("invoke_agent logged")
    assert run.context is not None
    assert retry["trace_id"] == f"{run.context.trace_id:032x}"
    assert retry["span_id"] == f"{run.context.span_id:016x}"
    assert SECRET not in out.getvalue()


def test_text_logs_append_the_ids() -> None:
    record = logging.makeLogRecord({"name": "midstream.agent", "levelname": "WARNING", "msg": "slow hook"})
    logs.ContextFilter().filter(record)
    assert not hasattr(record, "run_id")  # no run in this task
    record.run_id = "run-1"
    assert logs._TextFormatter().format(record).endswith("slow hook  [run_id=run-1]")


def test_without_opentelemetry_the_library_runs_and_instrument_says_what_to_install(tmp_path: Path) -> None:
    script = tmp_path / "no_otel.py"
    script.write_text(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
        "import midstream, midstream.telemetry\n"
        "from midstream.sim import running\n"
        "with running(speed=0) as url, midstream.Client('anthropic', base_url=url, model='m') as client:\n"
        "    assert client.stream('Hi').final().terminal == 'completed'\n"
        "try:\n"
        "    midstream.telemetry.instrument()\n"
        "except midstream.LocalError as exc:\n"
        "    print(exc)\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry.')))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    hint, loaded = done.stdout.splitlines()
    assert "pip install 'midstream[otel]'" in hint
    assert loaded == "[]"


def test_a_workflow_is_one_span_holding_its_agents_runs(sim: SimURL, otel: Pipeline) -> None:
    from midstream.workflow import AgentSpec, Workflow

    client = midstream.Client("anthropic", base_url=sim, model="claude-sonnet-4-5")
    agents = [AgentSpec(name="developer"), AgentSpec(name="qa")]
    flow = Workflow(agents, pipeline=["developer", "qa"], client=client, name="quick")
    result = flow.run_sync("Hello")
    assert result.terminal == "completed"
    span = otel.span("invoke_workflow")
    assert span.name == "invoke_workflow quick" and span.context is not None and span.parent is None
    assert (span.attributes or {})["gen_ai.operation.name"] == "invoke_workflow"
    assert (span.attributes or {})["midstream.terminal"] == "completed"
    spans = dict(spans_by_id(otel))

    def ancestors(child: Any) -> list[str]:
        names = []
        while child.parent is not None:
            child = spans[child.parent.span_id]
            names.append(child.name)
        return names

    runs = {s.name: s for s in spans.values() if s.name.startswith("invoke_agent")}
    assert set(runs) == {"invoke_agent developer", "invoke_agent qa"}
    assert ancestors(runs["invoke_agent developer"]) == ["invoke_workflow quick"]
    # qa starts when the pipeline reaches it, or earlier through the developer's handoff: either way
    # it sits in the workflow's tree, under the run that started it.
    assert ancestors(runs["invoke_agent qa"])[-1] == "invoke_workflow quick"
    assert all(s.context is not None and s.context.trace_id == span.context.trace_id for s in spans.values())
    (duration,) = otel.points("gen_ai.invoke_workflow.duration")
    assert duration.count == 1 and duration.attributes["gen_ai.workflow.name"] == "quick"


def test_with_only_the_apis_own_providers_nothing_is_followed_until_an_sdk_is_set(tmp_path: Path) -> None:
    script = tmp_path / "proxy.py"
    script.write_text(
        "import midstream, midstream.telemetry\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from midstream.sim import running\n"
        "midstream.telemetry.instrument()  # the global providers: proxies, no SDK yet\n"
        "with running(speed=0) as url, midstream.Client('anthropic', base_url=url, model='m') as client:\n"
        "    stream = client.stream('Hi')\n"
        "    print(stream._s.metrics.probe)\n"
        "    stream.final()\n"
        "    spans = InMemorySpanExporter()\n"
        "    provider = TracerProvider()\n"
        "    provider.add_span_processor(SimpleSpanProcessor(spans))\n"
        "    trace.set_tracer_provider(provider)\n"
        "    client.stream('Hi').final()\n"
        "    print([span.name for span in spans.get_finished_spans()])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["None", "['chat m']"]


def test_explicit_no_op_providers_follow_nothing(sim: SimURL) -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    with (
        instrument(NoOpTracerProvider(), NoOpMeterProvider()),
        midstream.Client("anthropic", base_url=sim, model="m") as client,
    ):
        stream = client.stream("Hi")
        assert stream._s.metrics.probe is None
        assert stream.final().terminal == "completed"
