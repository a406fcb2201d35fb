"""Workflows: named agents that hand work to each other through a streamed ``handoff`` tool call.

A :class:`Workflow` holds agents (:class:`AgentSpec`: each its own client, model, system prompt, tools,
settings and the agents it may hand work to) and how a run begins: an ``entry`` agent (an orchestrator
that delegates), or a fixed ``pipeline`` (each stage hands off to the next; a stage that ends without
handing off passes its answer on as the next stage's prompt). Every agent that has receivers gets a
``handoff`` tool (``{"agent": ..., "task": ..., "document": ...}``: the document is the large parameter
that streams), and with a blackboard the ``blackboard_write`` / ``blackboard_read`` tools.

What a run guarantees, on top of each agent run's own guarantees (:mod:`midstream.agent.loop`):

* **A handoff starts its receiver when the handoff call is validated** -- its block closed, its input
  parsed strictly and passed the tool's schema -- not when the sender's whole response ends. That is
  safe because ``handoff`` is declared free of side effects: if the response carrying it is not kept
  (it is retried, or ends truncated, failed or cancelled), the receiver is stopped and compensates
  what it did (:class:`~midstream.workflow.events.HandoffDropped`). ``start_handoffs="executed"``
  starts receivers only when the sender's response completed, like any other tool.
* **A truncated handoff never starts its receiver**: its input never validates; the sender's recovery
  asks for the response again with a larger ``max_tokens`` (``errors.retry_on_incomplete``).
* The receiver's final answer returns to the sender as the ``handoff`` tool result (an answer that
  did not complete is an error result).
* **Every event is tagged** with its ``agent``, ``run`` and ``parent`` run
  (:class:`~midstream.workflow.events.WorkflowEvent`).
* **Cancel cascades**: :meth:`WorkflowRun.cancel` cancels every running agent run, and each
  compensates its own side effects, newest first; a sender cancelled while it waits for a receiver
  cancels that receiver too.
* At the end the run's streaming metrics are folded into the metrics file (``[metrics] file``), alerts
  past the thresholds become events, go to ``on_alert`` and to each agent's monitor warnings, and
  unusable tool input goes to the ``streaming-errors`` log (``[metrics] errors_log``).

**The adaptive policy** (``[metrics] adaptive = true``; off by default): an agent whose tool input was
cut by ``max_tokens`` starts its later runs with the budget its retry needed, and a tool that fell back
from eager to buffered streaming (``errors.eager_fallback_after`` invalid eager inputs) stays buffered
in later runs. The decisions are kept in the metrics file (``adaptive``) and read back by a new
``Workflow`` with the same file, so they outlive the process; each one is an
:class:`~midstream.workflow.events.AdaptiveChange` event.

Eager (fine-grained) argument streaming is chosen per agent and tool by the settings
(``streaming.enable_for_agents``, ``streaming.eager.tools``) and, where they say nothing, by the size
policy: ``handoff`` and ``blackboard_write`` usually carry large arguments (``handoff_bytes``), other
tools whatever :attr:`AgentSpec.typical_bytes` says.

Example::

    flow = Workflow(
        [AgentSpec(name="developer", handoffs=["qa"]), AgentSpec(name="qa")],
        pipeline=["developer", "qa"],
        client=Client("anthropic", model="claude-sonnet-4-5"),
    )
    result = flow.run_sync("Implement the login endpoint")
    result.terminal, [r.agent for r in result.runs]
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midstream.agent.effects import current_call
from midstream.agent.loop import Agent
from midstream.agent.tools import Tool
from midstream.client.stream import AsyncClient, Client
from midstream.config import Settings, load_settings
from midstream.errors import LocalError
from midstream.workflow._run import (
    BOARD_READ,
    BOARD_WRITE,
    CURRENT,
    HANDOFF,
    AgentRunSummary,
    BoardSink,
    FlowCallback,
    WorkflowResult,
    WorkflowRun,
)
from midstream.workflow.blackboard import (
    Blackboard,
    MemoryBlackboard,
    PendingWrite,
)
from midstream.workflow.events import (
    START_HANDOFFS,
    AdaptiveChange,
    HandoffFailed,
    StartHandoffs,
)
from midstream.workflow.metrics import (
    Alert,
    ErrorLog,
    MetricsFile,
)

__all__ = [
    "HANDOFF",
    "AgentRunSummary",
    "AgentSpec",
    "HandoffFailed",
    "Workflow",
    "WorkflowResult",
    "WorkflowRun",
]


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """One agent of a workflow. ``client`` defaults to the workflow's, ``settings`` to the workflow's;
    ``handoffs`` names the agents it may hand work to; ``typical_bytes`` gives tools' usual argument
    sizes to the eager-streaming size policy."""

    name: str
    system: str | None = None
    tools: Sequence[Tool | Callable[..., Any]] = ()
    handoffs: Sequence[str] = ()
    client: Client | AsyncClient | None = None
    model: str | None = None
    max_tokens: int = 4096
    settings: Settings | None = None
    blackboard: bool = True
    typical_bytes: Mapping[str, int] = field(default_factory=dict)


def _handoff_schema(receivers: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": list(receivers), "description": "who takes the work"},
            "task": {"type": "string", "description": "what to do, in a sentence or two"},
            "document": {
                "type": "string",
                "description": "everything the receiver needs: the design, the code, the plan",
            },
        },
        "required": ["agent", "task"],
        "additionalProperties": False,
    }


class Workflow:
    """Agents and how a run of them begins (see the module docstring).

    ``settings`` (a :class:`~midstream.config.Settings` or a settings file) applies to every agent
    without its own; ``blackboard`` is shared by the runs (default: a fresh in-process one);
    ``metrics_file`` / ``errors_log`` default to the settings' ``[metrics] file`` / ``errors_log``;
    ``on_alert`` gets each :class:`~midstream.workflow.metrics.Alert`; ``clock`` times the metrics.

    Example:

        >>> from midstream.sim import ScenarioBook, running
        >>> from midstream.workflow import AgentSpec
        >>> book = ScenarioBook.model_validate({"scenarios": [
        ...     {"name": "dev", "match": {"last_user": "^Implement"}, "turns": [
        ...         {"blocks": [{"tool_call": {"name": "handoff", "input": {
        ...             "agent": "qa", "task": "Test it", "document": "def add(a, b): return a + b"}}}]},
        ...         {"blocks": [{"text": "Done: QA passed it."}]}]},
        ...     {"name": "qa", "match": {"last_user": "to qa"},
        ...      "turns": [{"blocks": [{"text": "1 test passes."}]}]}]})
        >>> with running(book, speed=0) as url:
        ...     client = midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5")
        ...     agents = [AgentSpec(name="developer", handoffs=["qa"]), AgentSpec(name="qa")]
        ...     result = midstream.Workflow(agents, client=client).run_sync("Implement add()")
        >>> result.text, [(r.agent, r.terminal) for r in result.runs]
        ('Done: QA passed it.', [('developer', 'completed'), ('qa', 'completed')])
    """

    def __init__(
        self,
        agents: Iterable[AgentSpec],
        *,
        entry: str | None = None,
        pipeline: Sequence[str] | None = None,
        client: Client | AsyncClient | None = None,
        settings: Settings | str | os.PathLike[str] | None = None,
        blackboard: Blackboard | None = None,
        start_handoffs: StartHandoffs = "validated",
        metrics_file: str | os.PathLike[str] | None = None,
        errors_log: str | os.PathLike[str] | None = None,
        on_alert: Callable[[Alert], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        handoff_bytes: int = 8192,
        name: str = "workflow",
    ) -> None:
        if not isinstance(settings, Settings):
            settings = Settings() if settings is None else load_settings(Path(settings))
        self.settings = settings
        self.name = name
        specs = list(agents)
        self.specs: dict[str, AgentSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                raise LocalError(f"two agents are called {spec.name!r}")
            self.specs[spec.name] = spec
        if not self.specs:
            raise LocalError("a workflow needs at least one agent")
        self.pipeline = tuple(pipeline or ())
        if self.pipeline and entry is not None and entry != self.pipeline[0]:
            raise LocalError(f"entry={entry!r} is not the pipeline's first stage {self.pipeline[0]!r}")
        self.entry = entry or (self.pipeline[0] if self.pipeline else specs[0].name)
        self._receivers = {name: list(spec.handoffs) for name, spec in self.specs.items()}
        for stage, following in zip(self.pipeline, self.pipeline[1:], strict=False):
            if following not in self._receivers.get(stage, [following]):
                self._receivers[stage].append(following)
        for name in (self.entry, *self.pipeline, *(r for rs in self._receivers.values() for r in rs)):
            if name not in self.specs:
                raise LocalError(f"no agent is called {name!r} (agents: {', '.join(self.specs)})")
        if start_handoffs not in START_HANDOFFS:
            choices = " or ".join(map(repr, START_HANDOFFS))
            raise LocalError(f"start_handoffs is {choices}, not {start_handoffs!r}")
        self.start_handoffs = start_handoffs
        self.client = client
        self.blackboard: Blackboard = blackboard if blackboard is not None else MemoryBlackboard()
        metrics = self.settings.metrics
        chosen_file = metrics_file if metrics_file is not None else metrics.file
        chosen_log = errors_log if errors_log is not None else metrics.errors_log
        self.metrics_file = None if chosen_file is None else MetricsFile(chosen_file, alerts=metrics.alerts)
        self.errors_log = None if chosen_log is None else ErrorLog(chosen_log)
        self.on_alert = on_alert
        self.clock = clock
        self.handoff_bytes = handoff_bytes
        self.agents: dict[str, Agent] = {name: self._build(spec) for name, spec in self.specs.items()}
        self.adaptive = metrics.adaptive
        if self.adaptive and self.metrics_file is not None:
            saved = self.metrics_file.read()
            self.adapt((saved or {}).get("adaptive", {}))

    def adapt(self, decisions: Mapping[str, Mapping[str, Any]]) -> list[AdaptiveChange]:
        """Apply the adaptive policy's decisions (per agent: ``max_tokens``, ``buffered`` tools) to the
        agents' later runs; returns what changed."""
        changes: list[AdaptiveChange] = []
        for name, decision in decisions.items():
            agent = self.agents.get(name)
            if agent is None:
                continue
            budget = decision.get("max_tokens")
            if budget is not None and int(budget) > agent.max_tokens:
                changes.append(
                    AdaptiveChange(agent=name, what="max_tokens", old=agent.max_tokens, new=int(budget))
                )
                agent.max_tokens = int(budget)
            for tool in decision.get("buffered") or ():
                if tool in agent.tools and tool not in agent.buffered:
                    agent.buffered.add(tool)
                    changes.append(AdaptiveChange(agent=name, what="buffered", tool=tool))
        return changes

    def __repr__(self) -> str:
        start = " -> ".join(self.pipeline) if self.pipeline else self.entry
        return f"Workflow({self.name!r}, {start}, agents={list(self.specs)})"

    def receivers(self, agent: str) -> list[str]:
        """The agents ``agent`` may hand work to."""
        return list(self._receivers.get(agent, ()))

    def _client_of(self, spec: AgentSpec) -> Client | AsyncClient:
        client = spec.client or self.client
        if client is None:
            raise LocalError(f"agent {spec.name!r} has no client: give the Workflow or its AgentSpec one")
        return client

    def _build(self, spec: AgentSpec) -> Agent:
        settings = spec.settings or self.settings
        tools: list[Tool | Callable[..., Any]] = list(spec.tools)
        receivers = self.receivers(spec.name)
        if receivers:
            tools.append(self._handoff_tool(spec.name, receivers))
        if spec.blackboard:
            tools.extend(self._board_tools(spec.name))
        agent = Agent(
            self._client_of(spec),
            tools,
            settings=settings,
            name=spec.name,
            model=spec.model,
            system=spec.system,
            max_tokens=spec.max_tokens,
        )
        agent.settings = _with_size_policy(agent, spec, self.handoff_bytes)
        return agent

    def _handoff_tool(self, sender: str, receivers: Sequence[str]) -> Tool:
        async def handoff(input: dict[str, Any]) -> str:
            flow = CURRENT.get()
            call = current_call()
            if flow is None or call is None:
                raise LocalError("the handoff tool runs only inside a workflow run")
            return await flow._await_handoff(sender, call.run_id or "", call.call_id, input)

        names = ", ".join(receivers)
        return Tool(
            handoff,
            name=HANDOFF,
            description=f"Hand work to another agent ({names}) and get its answer back.",
            schema=_handoff_schema(receivers),
            side_effect=False,
        )

    def _board_tools(self, agent: str) -> list[Tool]:
        board = self.blackboard

        async def blackboard_write(input: dict[str, Any]) -> str:
            call = current_call()
            committed = call.committed.get("value") if call is not None else None
            pending = committed if isinstance(committed, PendingWrite) else None
            if pending is None:
                pending = board.begin(input["key"], writer=agent)
                flow = CURRENT.get()
                if flow is not None and call is not None:
                    flow._own_write(pending, agent, call.run_id or "")
            entry = await pending.commit(input["value"], expect=input.get("expect_version"))
            return f"stored {entry.key!r} as version {entry.version}"

        async def blackboard_read(input: dict[str, Any]) -> str:
            entry = await board.read(input["key"])
            if entry is None:
                return f"the blackboard has no {input['key']!r} yet"
            return json.dumps({"key": entry.key, "version": entry.version, "value": entry.value})

        def sink(call_id: str, path: tuple[str | int, ...]) -> BoardSink:
            return BoardSink(CURRENT.get(), board, agent, call_id, path)

        write_schema = {
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 1, "description": "what is written (write it first)"},
                "value": {"type": "string", "description": "the content"},
                "expect_version": {
                    "type": "integer",
                    "description": "write only if the key is still at this version (0: absent)",
                },
            },
            "required": ["key", "value"],
            "additionalProperties": False,
        }
        read_schema = {
            "type": "object",
            "properties": {"key": {"type": "string", "minLength": 1}},
            "required": ["key"],
            "additionalProperties": False,
        }
        return [
            Tool(
                blackboard_write,
                name=BOARD_WRITE,
                description="Write shared state on the blackboard; other agents see it as it streams.",
                schema=write_schema,
                streams=("value",),
                sink=sink,
            ),
            Tool(
                blackboard_read,
                name=BOARD_READ,
                description="Read the latest complete version of a blackboard key.",
                schema=read_schema,
                eager=False,  # its input is one key name: nothing to see early, whatever the default
            ),
        ]

    def run(
        self, prompt: str, *, on_event: FlowCallback | Sequence[FlowCallback] | None = None
    ) -> WorkflowRun:
        """Start a run (lazily: at the first iteration, ``await`` or :meth:`WorkflowRun.start`)."""
        return WorkflowRun(self, prompt, on_event=on_event)

    def run_sync(self, prompt: str, **options: Any) -> WorkflowResult:
        """:meth:`run` on a fresh event loop, to the end (Ctrl-C cancels it, with compensation)."""

        async def main() -> WorkflowResult:
            run = self.run(prompt, **options)
            try:
                return await run.result()
            except asyncio.CancelledError:
                if run.outcome is None:
                    raise
                return run.outcome

        return asyncio.run(main())


def _with_size_policy(agent: Agent, spec: AgentSpec, handoff_bytes: int) -> Settings:
    """The agent's settings with an eager choice for each tool the settings leave open."""
    streaming = agent.settings.streaming
    chosen = dict(streaming.eager.tools)
    for tool in agent.tools.values():
        if tool.name in chosen or tool.eager is not None:  # the tool chose for itself
            continue
        typical = spec.typical_bytes.get(tool.name)
        if typical is None and tool.name in (HANDOFF, BOARD_WRITE):
            typical = handoff_bytes
        if typical is not None and streaming.eager.policy == "size":
            chosen[tool.name] = streaming.eager_for(tool.name, agent=spec.name, typical_bytes=typical)
    eager = streaming.eager.model_copy(update={"tools": chosen})
    return agent.settings.model_copy(update={"streaming": streaming.model_copy(update={"eager": eager})})
