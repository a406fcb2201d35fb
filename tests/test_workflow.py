"""Workflows on the simulator: handoffs start at validation (not before), a truncated handoff never
starts its receiver and is retried, cancel cascades with compensation, blackboard writes stream to
subscribers while readers see only complete versions, every event is tagged, metrics and alerts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import midstream
from midstream.agent.events import (
    RetryNotice,
    RunEnd,
    ToolCompensated,
    ToolFinished,
    ToolInvalidInput,
    ToolReady,
)
from midstream.config import Settings
from midstream.core.toolargs import ToolCallReady
from midstream.events import ResponseEnd, ToolArgsDelta
from midstream.sim import ScenarioBook, SimURL
from midstream.workflow import (
    AdaptiveChange,
    AgentSpec,
    BlackboardUpdate,
    HandoffDropped,
    HandoffEnd,
    HandoffStart,
    MemoryBlackboard,
    Workflow,
    WorkflowEnd,
    WorkflowEvent,
)
from midstream.workflow.metrics import Alert

CODE = "".join(
    f"def handler_{i}(request):\n    return respond(request, status={200 + i})\n\n" for i in range(40)
)
SHORT_DOC = "Plan: " + " ".join(f"step {i} checks the login form" for i in range(30))


def _to(receiver: str, sender: str) -> str:
    return rf"^\[handoff from {sender} to {receiver}\]"


BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {
                "name": "developer",
                "match": {"last_user": "^Implement"},
                "turns": [
                    {
                        "blocks": [
                            {"text": "Here is the code."},
                            {
                                "tool_call": {
                                    "name": "handoff",
                                    "input": {"agent": "qa", "task": "Test the handlers", "document": CODE},
                                }
                            },
                            {"text": "QA has the code now."},
                        ]
                    },
                    {"blocks": [{"text": "QA reports all handlers pass."}]},
                ],
            },
            {
                "name": "qa",
                "match": {"last_user": _to("qa", "developer")},
                "turns": [{"blocks": [{"text": "40 pass."}]}],
            },
            {
                "name": "planner",
                "match": {"last_user": "^Plan"},
                "turns": [
                    {
                        "blocks": [
                            {
                                "tool_call": {
                                    "name": "handoff",
                                    "input": {
                                        "agent": "tester",
                                        "task": "Run the plan",
                                        "document": SHORT_DOC,
                                    },
                                }
                            }
                        ]
                    },
                    {"blocks": [{"text": "The plan ran."}]},
                ],
            },
            {
                "name": "tester",
                "match": {"last_user": _to("tester", "planner")},
                "turns": [{"blocks": [{"text": "ok"}]}],
            },
            {
                "name": "lead",
                "match": {"last_user": "^Release"},
                "turns": [
                    {"blocks": [{"tool_call": {"name": "record", "input": {"item": "lead-tag"}}}]},
                    {
                        "blocks": [
                            {
                                "tool_call": {
                                    "name": "handoff",
                                    "input": {
                                        "agent": "worker",
                                        "task": "Deploy",
                                        "document": "manifest " * 40,
                                    },
                                }
                            }
                        ]
                    },
                    {"blocks": [{"text": "Released."}]},
                ],
            },
            {
                "name": "worker",
                "match": {"last_user": _to("worker", r"\w+")},
                "turns": [
                    {"blocks": [{"tool_call": {"name": "record", "input": {"item": "worker-deploy"}}}]},
                    {"blocks": [{"text": "Deployed. " * 200}]},
                ],
            },
            {
                "name": "architect",
                "match": {"last_user": "^Design"},
                "turns": [
                    {
                        "blocks": [
                            {
                                "tool_call": {
                                    "name": "blackboard_write",
                                    "input": {"key": "architecture", "value": CODE},
                                }
                            }
                        ]
                    },
                    {"blocks": [{"text": "The architecture is on the blackboard."}]},
                ],
            },
            {
                "name": "speculator",
                "match": {"last_user": "^Speculate"},
                "turns": [
                    {
                        "blocks": [
                            {
                                "tool_call": {
                                    "name": "handoff",
                                    "input": {"agent": "worker", "task": "Deploy", "document": "manifest"},
                                }
                            },
                            {"tool_call": {"name": "record", "input": {"item": "note " * 200}}},
                        ]
                    },
                    {"blocks": [{"text": "Done."}]},
                ],
            },
            {
                "name": "analyst",
                "match": {"last_user": "^Brief"},
                "turns": [{"blocks": [{"text": "A brief."}]}],
            },
            {
                "name": "pm",
                "match": {"last_user": "^A brief"},
                "turns": [{"blocks": [{"text": "Three stories."}]}],
            },
        ]
    }
)

FAST = Settings.from_mapping({"errors": {"backoff": {"scale": 0.001}}})


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


def _client(url: SimURL) -> midstream.Client:
    return midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5")


def _quick(url: SimURL, **options: Any) -> Workflow:
    agents = [AgentSpec(name="developer", handoffs=["qa"]), AgentSpec(name="qa")]
    return Workflow(agents, entry="developer", client=_client(url), settings=FAST, **options)


def _collect(flow: Workflow, prompt: str) -> tuple[Any, list[WorkflowEvent]]:
    events: list[WorkflowEvent] = []
    result = flow.run_sync(prompt, on_event=events.append)
    return result, events


def _index(events: list[WorkflowEvent], test: Any) -> int:
    return next(i for i, e in enumerate(events) if test(e))


def test_the_receiver_starts_when_the_handoff_validates_not_before(sim: SimURL) -> None:
    flow = _quick(sim)
    live_while_streaming: list[int] = []
    holder: dict[str, Any] = {}

    def watch(item: WorkflowEvent) -> None:
        if item.agent == "developer" and isinstance(item.event, ToolArgsDelta):
            live_while_streaming.append(len(holder["run"].live))

    async def main() -> tuple[Any, list[WorkflowEvent]]:
        run = flow.run("Implement the handlers", on_event=watch)
        holder["run"] = run
        events = [item async for item in run]
        return await run, events

    result, events = asyncio.run(main())
    assert result.terminal == "completed" and result.text == "QA reports all handlers pass."
    assert live_while_streaming and set(live_while_streaming) == {1}  # only the sender while it streams
    ready = _index(events, lambda e: isinstance(e.event, ToolCallReady) and e.agent == "developer")
    start = _index(events, lambda e: isinstance(e.event, HandoffStart))
    sender_end = _index(events, lambda e: isinstance(e.event, ResponseEnd) and e.agent == "developer")
    first_qa = _index(events, lambda e: e.agent == "qa")
    assert ready < start < sender_end  # validated: started before the sender's response ended
    assert start < first_qa
    handoff = events[start].event
    assert (handoff.sender, handoff.receiver, handoff.when) == ("developer", "qa", "validated")
    assert isinstance(events[ready + 1].event, ToolReady)  # the tool's own schema passed too
    results = [e.event for e in events if isinstance(e.event, ToolFinished) and e.agent == "developer"]
    assert [r.content for r in results] == ["40 pass."]  # the receiver's answer is the tool result
    assert [e.event.terminal for e in events if isinstance(e.event, HandoffEnd)] == ["completed"]
    assert isinstance(events[-1].event, WorkflowEnd)


def test_executed_mode_starts_the_receiver_after_the_response(sim: SimURL) -> None:
    result, events = _collect(_quick(sim, start_handoffs="executed"), "Implement the handlers")
    start = _index(events, lambda e: isinstance(e.event, HandoffStart))
    sender_end = _index(events, lambda e: isinstance(e.event, ResponseEnd) and e.agent == "developer")
    assert sender_end < start and events[start].event.when == "executed"
    assert result.terminal == "completed"


def test_every_event_is_tagged_with_agent_run_and_parent(sim: SimURL) -> None:
    result, events = _collect(_quick(sim), "Implement the handlers")
    runs = {r.agent: r for r in result.runs}
    assert set(runs) == {"developer", "qa"}
    assert runs["developer"].parent is None and runs["qa"].parent == runs["developer"].run
    for item in events[:-1]:
        if isinstance(item.event, HandoffStart | HandoffEnd | Alert):
            continue
        assert item.run == runs[item.agent].run and item.parent == runs[item.agent].parent
    assert [r.terminal for r in result.runs] == ["completed", "completed"]


def test_a_truncated_handoff_never_starts_the_receiver_and_is_retried(sim: SimURL, tmp_path) -> None:
    agents = [AgentSpec(name="planner", handoffs=["tester"], max_tokens=120), AgentSpec(name="tester")]
    log = tmp_path / "streaming-errors.jsonl"
    flow = Workflow(agents, client=_client(sim), settings=FAST, errors_log=log)
    result, events = _collect(flow, "Plan the login tests")
    cut = _index(events, lambda e: isinstance(e.event, ToolInvalidInput))
    assert events[cut].event.reason == "truncated"
    retry = _index(events, lambda e: isinstance(e.event, RetryNotice))
    starts = [i for i, e in enumerate(events) if isinstance(e.event, HandoffStart)]
    assert len(starts) == 1 and cut < retry < starts[0]  # only the retried, whole call started it
    assert events[retry].event.reason == "max_tokens" and events[retry].event.max_tokens > 120
    assert [r.agent for r in result.runs] == ["planner", "tester"]
    assert result.terminal == "completed"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["reason"] == "truncated" and records[0]["agent"] == "planner"
    assert records[0]["wrapped"]["INVALID_JSON"].startswith('{"agent": "tester"')


def _recorder(done: list[str]) -> midstream.Tool:
    def undo(record: Any) -> None:
        done.remove(record.input["item"])

    @midstream.tool(side_effect=True, compensate=undo)
    def record(item: str) -> str:
        """Record an item."""
        done.append(item)
        return f"recorded {item}"

    return record


def test_cancel_cascades_with_compensation_in_every_running_agent(sim: SimURL) -> None:
    done: list[str] = []
    tool = _recorder(done)
    agents = [
        AgentSpec(name="lead", handoffs=["worker"], tools=[tool]),
        AgentSpec(name="worker", tools=[tool]),
    ]
    flow = Workflow(agents, client=_client(sim), settings=FAST)
    holder: dict[str, Any] = {}

    def cancel_when_the_worker_did_its_part(item: WorkflowEvent) -> None:
        if item.agent == "worker" and isinstance(item.event, ToolFinished):
            assert done == ["lead-tag", "worker-deploy"]
            holder["run"].cancel("stop the release")

    async def main() -> Any:
        run = flow.run("Release 4.2", on_event=cancel_when_the_worker_did_its_part)
        holder["run"] = run
        events = [item async for item in run]
        return await run, events

    result, events = asyncio.run(main())
    assert result.terminal == "cancelled" and result.text == ""
    assert done == []  # both effects undone
    undone = [(e.agent, e.event.status) for e in events if isinstance(e.event, ToolCompensated)]
    assert sorted(undone) == [("lead", "compensated"), ("worker", "compensated")]
    ends = {e.agent: e.event.terminal for e in events if isinstance(e.event, RunEnd)}
    assert ends == {"lead": "cancelled", "worker": "cancelled"}


def test_a_receiver_whose_handoff_response_is_not_kept_is_stopped_and_undone(sim: SimURL) -> None:
    done: list[str] = []
    tool = _recorder(done)
    agents = [
        AgentSpec(name="speculator", handoffs=["worker"], tools=[tool], max_tokens=150),
        AgentSpec(name="worker", tools=[tool]),
    ]
    result, events = _collect(Workflow(agents, client=_client(sim), settings=FAST), "Speculate")
    # The handoff validated and started a worker; then the response was cut (max_tokens) in the next
    # call and asked for again: that worker is dropped (cancelled or undone), the retry starts another.
    dropped = [e.event for e in events if isinstance(e.event, HandoffDropped)]
    starts = [e.event for e in events if isinstance(e.event, HandoffStart)]
    assert len(dropped) == 1 and "asked for again" in dropped[0].reason
    assert len(starts) == 2 and dropped[0].run == starts[0].run != starts[1].run
    retry = _index(events, lambda e: isinstance(e.event, RetryNotice))
    assert _index(events, lambda e: isinstance(e.event, HandoffDropped)) > retry
    first = [e.event for e in events if e.run == starts[0].run and isinstance(e.event, ToolFinished)]
    undone = [e.event for e in events if e.run == starts[0].run and isinstance(e.event, ToolCompensated)]
    assert len(undone) == len(first)  # whatever the dropped worker did was compensated
    assert result.terminal == "completed"
    assert done.count("worker-deploy") == 1  # the kept worker's effect stays, the dropped one's does not


def test_blackboard_writes_stream_to_subscribers_and_are_read_complete(sim: SimURL) -> None:
    board = MemoryBlackboard()
    flow = Workflow([AgentSpec(name="architect")], client=_client(sim), settings=FAST, blackboard=board)
    result, events = _collect(flow, "Design the services")
    updates = [e for e in events if isinstance(e.event, BlackboardUpdate)]
    assert len(updates) > 2 and all(u.agent == "architect" for u in updates)
    partial = [u.event for u in updates if u.event.partial]
    assert "".join(p.delta for p in partial) == CODE and {p.path for p in partial} == {("value",)}
    assert updates[-1].event.state == "complete" and updates[-1].event.version == 1
    ready = _index(events, lambda e: isinstance(e.event, ToolReady))
    first_partial = _index(events, lambda e: isinstance(e.event, BlackboardUpdate))
    assert first_partial < ready  # subscribers had it while it streamed
    entry = asyncio.run(board.read("architecture"))
    assert entry is not None and (entry.version, entry.value, entry.writer) == (1, CODE, "architect")
    assert result.terminal == "completed"


def test_live_subscriber_sees_partials_while_reader_sees_nothing(sim: SimURL) -> None:
    board = MemoryBlackboard()
    flow = Workflow([AgentSpec(name="architect")], client=_client(sim), settings=FAST, blackboard=board)
    seen: list[tuple[bool, int]] = []

    def watch(item: WorkflowEvent) -> None:  # runs as the update happens
        if isinstance(item.event, ToolArgsDelta):
            seen.append((True, board.version("architecture")))

    flow.run_sync("Design the services", on_event=watch)
    assert seen and {v for _, v in seen} == {0}  # nothing readable while the value streamed


def test_metrics_file_alerts_and_monitor_warnings(sim: SimURL, tmp_path) -> None:
    settings = Settings.from_mapping(
        {
            "errors": {"backoff": {"scale": 0.001}},
            "metrics": {
                "file": str(tmp_path / "ctx" / "streaming-metrics.json"),
                "alerts": {"latency_ms": 1e-6},
            },
        }
    )
    alerts: list[Alert] = []
    agents = [AgentSpec(name="developer", handoffs=["qa"]), AgentSpec(name="qa")]
    flow = Workflow(agents, client=_client(sim), settings=settings, on_alert=alerts.append)
    result, events = _collect(flow, "Implement the handlers")
    data = json.loads((tmp_path / "ctx" / "streaming-metrics.json").read_text())
    assert data == result.metrics and data["runs"] == 1
    developer = data["agents"]["developer"]
    assert developer["calls"] == 1 and developer["eager_calls"] == 1 and developer["bytes"] > 2048
    assert 0 < developer["improvement"] < 1 and data["latency_reduction"] == developer["improvement"]
    assert data["incomplete_json_rate"] == 0 and data["fallback_rate"] == 0
    assert [a.agent for a in alerts] == ["developer"] and alerts[0].metric == "latency_ms"
    assert [e.event for e in events if isinstance(e.event, Alert)] == alerts
    assert any("alert: developer" in w for w in flow.agents["developer"].monitor.warnings)
    flow.run_sync("Implement the handlers")
    assert json.loads((tmp_path / "ctx" / "streaming-metrics.json").read_text())["runs"] == 2


def test_a_pipeline_stage_that_does_not_hand_off_passes_its_answer_on(sim: SimURL) -> None:
    flow = Workflow(
        [AgentSpec(name="analyst"), AgentSpec(name="pm")], pipeline=["analyst", "pm"], client=_client(sim)
    )
    result, events = _collect(flow, "Brief for the shop")
    assert result.text == "Three stories." and [r.agent for r in result.runs] == ["analyst", "pm"]
    starts = [e.event for e in events if isinstance(e.event, HandoffStart)]
    assert [(s.sender, s.receiver, s.when) for s in starts] == [("analyst", "pm", "pipeline")]
    assert "handoff" in flow.agents["analyst"].tools  # the stage could have handed off itself


def test_the_size_policy_and_enable_for_agents_choose_eager_per_agent(sim: SimURL) -> None:
    settings = Settings.from_mapping(
        {
            "streaming": {
                "fine_grained_tool_streaming": {"enabled": True, "performance": {"enable_for_agents": ["qa"]}}
            }
        }
    )

    @midstream.tool
    def small(flag: bool) -> str:
        """A small control call."""
        return "ok"

    agents = [
        AgentSpec(name="developer", handoffs=["qa"]),
        AgentSpec(name="qa", tools=[small], typical_bytes={"small": 64}, handoffs=["developer"]),
    ]
    flow = Workflow(agents, client=_client(sim), settings=settings)
    eager = {name: {s.name for s in agent.tool_specs() if s.eager} for name, agent in flow.agents.items()}
    assert eager == {"developer": set(), "qa": {"handoff", "blackboard_write"}}


def test_bad_workflows_are_refused_with_a_reason(sim: SimURL) -> None:
    with pytest.raises(midstream.LocalError, match="no agent is called 'qa'"):
        Workflow([AgentSpec(name="developer", handoffs=["qa"])], client=_client(sim))
    with pytest.raises(midstream.LocalError, match="two agents are called"):
        Workflow([AgentSpec(name="a"), AgentSpec(name="a")], client=_client(sim))
    with pytest.raises(midstream.LocalError, match="has no client"):
        Workflow([AgentSpec(name="a")])


def test_a_workflow_in_one_relay_log_tags_every_entry(sim: SimURL) -> None:
    from midstream.relay import MemoryLog
    from midstream.relay.workflow import record_workflow

    flow = Workflow(
        [AgentSpec(name="architect", handoffs=["qa"]), AgentSpec(name="qa")],
        client=_client(sim),
        settings=FAST,
    )

    async def main() -> tuple[Any, list[Any]]:
        log = MemoryLog()
        result = await record_workflow(log, flow.run("Design the services"), run_id="wf-1")
        return result, await log.entries("wf-1")

    result, entries = asyncio.run(main())
    assert result.terminal == "completed"
    assert [e.kind for e in entries].count("run_end") == 1 and entries[-1].kind == "run_end"
    assert entries[-2].kind == "workflow_end" and entries[-1].data["terminal"] == "completed"
    board = [e for e in entries if e.kind == "blackboard"]
    assert board and all(e.agent == "architect" for e in board)
    assert [e.data["state"] for e in board][-1] == "complete" and board[0].data["state"] == "partial"
    assert {e.kind for e in entries if e.agent == "architect"} >= {
        "tool_field_delta",
        "agent_end",
        "blackboard",
    }
    assert all(
        e.data.get("agent_run", "").startswith(e.agent) for e in entries if e.agent and "agent_run" in e.data
    )


def test_the_adaptive_policy_is_off_by_default_and_learns_budgets_when_on(sim: SimURL, tmp_path) -> None:
    def planner_flow(adaptive: bool) -> Workflow:
        settings = Settings.from_mapping(
            {
                "errors": {"backoff": {"scale": 0.001}},
                "metrics": {"file": str(tmp_path / f"m-{adaptive}.json"), "adaptive": adaptive},
            }
        )
        agents = [AgentSpec(name="planner", handoffs=["tester"], max_tokens=120), AgentSpec(name="tester")]
        return Workflow(agents, client=_client(sim), settings=settings)

    def retries(events: list[WorkflowEvent]) -> list[int]:
        return [e.event.max_tokens for e in events if isinstance(e.event, RetryNotice)]

    off = planner_flow(False)
    for _ in range(2):  # off: every run is cut again and retried again
        _, events = _collect(off, "Plan the login tests")
        assert retries(events) and off.agents["planner"].max_tokens == 120
    on = planner_flow(True)
    result, events = _collect(on, "Plan the login tests")
    learned = retries(events)[-1]
    changes = [e.event for e in events if isinstance(e.event, AdaptiveChange)]
    assert [(c.agent, c.what, c.old, c.new) for c in changes] == [("planner", "max_tokens", 120, learned)]
    assert result.metrics["adaptive"] == {"planner": {"max_tokens": learned}}
    _, events = _collect(on, "Plan the login tests")
    assert retries(events) == []  # the later run starts with the budget that worked
    again = planner_flow(True)  # a new process: the metrics file carries the decision
    assert again.agents["planner"].max_tokens == learned
