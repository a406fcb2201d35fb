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
import contextlib
import contextvars
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from midstream.agent.effects import current_call
from midstream.agent.events import (
    FallbackNotice,
    RetryNotice,
    RunEnd,
    RunEvent,
    ToolCompensated,
    ToolInvalidInput,
    ToolReady,
)
from midstream.agent.loop import Agent, Run, RunResult
from midstream.agent.tools import Tool
from midstream.client.stream import AsyncClient, Client
from midstream.config import Settings, load_settings
from midstream.core.toolargs import ToolFieldComplete
from midstream.errors import LocalError, RemoteError
from midstream.events import BlockStart
from midstream.message import Terminal
from midstream.workflow.blackboard import (
    Blackboard,
    BlackboardUpdate,
    MemoryBlackboard,
    PendingWrite,
    StreamedWrite,
    Subscription,
)
from midstream.workflow.events import (
    AdaptiveChange,
    HandoffDropped,
    HandoffEnd,
    HandoffStart,
    WorkflowEnd,
    WorkflowEvent,
)
from midstream.workflow.metrics import (
    Alert,
    ErrorLog,
    MetricsFile,
    ParamTiming,
    StreamingTally,
    check_alerts,
    derive,
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

HANDOFF = "handoff"
BOARD_WRITE = "blackboard_write"
BOARD_READ = "blackboard_read"
_CURRENT: contextvars.ContextVar[WorkflowRun | None] = contextvars.ContextVar(
    "midstream_workflow", default=None
)
_DONE = object()

FlowCallback = Callable[[WorkflowEvent], object]


class HandoffFailed(RemoteError):
    """The receiver of a handoff did not complete: the sender gets this as an error tool result."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRunSummary:
    """One agent run of a workflow: who, started by whom, when (seconds since the workflow started)."""

    agent: str
    run: str
    parent: str | None
    started: float
    ended: float | None
    terminal: Terminal | None
    reason: str | None = None
    handoff_call: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResult:
    """How a workflow run ended: the entry agent's (or the last pipeline stage's) ending and answer,
    every agent run, the run's metrics (what was written to the metrics file, or computed) and alerts."""

    terminal: Terminal
    reason: str | None
    text: str
    runs: tuple[AgentRunSummary, ...]
    metrics: dict[str, Any]
    alerts: tuple[Alert, ...] = ()
    seconds: float = 0.0
    params: tuple[ParamTiming, ...] = ()
    """Every tool call's argument timing in this run (what the metrics were computed from)."""


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
        start_handoffs: Literal["validated", "executed"] = "validated",
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
        if start_handoffs not in ("validated", "executed"):
            raise LocalError(f"start_handoffs is 'validated' or 'executed', not {start_handoffs!r}")
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
            flow = _CURRENT.get()
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
                flow = _CURRENT.get()
                if flow is not None and call is not None:
                    flow._own_write(pending, agent, call.run_id or "")
            entry = await pending.commit(input["value"], expect=input.get("expect_version"))
            return f"stored {entry.key!r} as version {entry.version}"

        async def blackboard_read(input: dict[str, Any]) -> str:
            entry = await board.read(input["key"])
            if entry is None:
                return f"the blackboard has no {input['key']!r} yet"
            return json.dumps({"key": entry.key, "version": entry.version, "value": entry.value})

        def sink(call_id: str, path: tuple[str | int, ...]) -> _BoardSink:
            return _BoardSink(_CURRENT.get(), board, agent, call_id, path)

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
        if tool.name in chosen or tool.eager:
            continue
        typical = spec.typical_bytes.get(tool.name)
        if typical is None and tool.name in (HANDOFF, BOARD_WRITE):
            typical = handoff_bytes
        if typical is not None and streaming.eager.policy == "size":
            chosen[tool.name] = streaming.eager_for(tool.name, agent=spec.name, typical_bytes=typical)
    eager = streaming.eager.model_copy(update={"tools": chosen})
    return agent.settings.model_copy(update={"streaming": streaming.model_copy(update={"eager": eager})})


class _BoardSink:
    """The streamed ``value`` of a ``blackboard_write`` call, published as partial updates once its
    ``key`` is known (text before that is held); ``commit`` hands the pending write to the tool."""

    def __init__(
        self,
        flow: WorkflowRun | None,
        board: Blackboard,
        agent: str,
        call_id: str,
        path: tuple[str | int, ...],
    ) -> None:
        self.flow, self.board, self.agent, self.call_id, self.path = flow, board, agent, call_id, path
        self._held: list[str] = []
        self._out: StreamedWrite | None = None
        hold = 0.0 if flow is None else flow.flow.agents[agent].settings.streaming.buffer_timeout_ms
        self._hold_ms = hold

    def _open(self, key: str) -> StreamedWrite:
        if self._out is None:
            pending = self.board.begin(key, writer=self.agent)
            if self.flow is not None:
                self.flow._own_write(pending, self.agent, self.flow._run_of_call(self.call_id))
            clock = self.flow.flow.clock if self.flow is not None else time.monotonic
            self._out = StreamedWrite(pending, self.path, self._hold_ms, clock)
            for text in self._held:
                self._out.write(text)
            self._held = []
        return self._out

    def write(self, text: str) -> None:
        key = None if self.flow is None else self.flow._board_keys.get(self.call_id)
        if self._out is None and key is None:
            self._held.append(text)
            return
        out = self._out if self._out is not None else self._open(key or "")
        out.write(text)

    def commit(self, input: Mapping[str, Any] | None = None) -> PendingWrite | None:
        if self._out is None:
            if input is None:
                return None
            out = self._open(str(input["key"]))
        else:
            out = self._out
        out.flush()
        return out.pending

    def discard(self) -> None:
        if self._out is not None:
            self._out.pending.discard()
        self._held = []


@dataclass
class _Live:
    agent: str
    run: Run
    parent: str | None
    started: float
    call_id: str | None = None
    ended: float | None = None


class WorkflowRun:
    """One run of a :class:`Workflow`: ``async for event in run`` (:class:`WorkflowEvent`), ``await run``
    (:class:`WorkflowResult`), ``run.cancel()``. Events are buffered from the start."""

    def __init__(
        self, flow: Workflow, prompt: str, *, on_event: FlowCallback | Sequence[FlowCallback] | None = None
    ) -> None:
        self.flow = flow
        self.prompt = prompt
        self.id = f"wf-{uuid.uuid4().hex[:12]}"
        self._callbacks: list[FlowCallback] = (
            [] if on_event is None else [on_event] if callable(on_event) else list(on_event)
        )
        self.tally = StreamingTally(large_param_bytes=flow.settings.metrics.large_param_bytes)
        self.live: dict[str, _Live] = {}
        self._early: dict[str, _Live] = {}  # handoff call id -> receiver started at validation
        self._board_calls: dict[tuple[str, int], str] = {}  # (run, block index) -> blackboard_write call
        self._board_keys: dict[str, str] = {}  # blackboard_write call id -> its key, once complete
        self._call_runs: dict[str, str] = {}  # tool call id -> the run that made it
        self._writes: dict[str, tuple[str, str]] = {}  # blackboard write id -> (agent, run)
        self._queue: asyncio.Queue[WorkflowEvent | object] = asyncio.Queue()
        self._clients: dict[int, AsyncClient] = {}
        self._task: asyncio.Task[None] | None = None
        self._cancel_reason: str | None = None
        self._exhausted = False
        self._t0 = 0.0
        self._subscription: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._learned: dict[str, dict[str, Any]] = {}  # the adaptive policy's decisions in this run
        self.outcome: WorkflowResult | None = None
        self.callback_errors = 0

    def __repr__(self) -> str:
        state = self.outcome.terminal if self.outcome is not None else "running"
        return f"<WorkflowRun {self.id} {state}>"

    # -- the public surface ----------------------------------------------------------------------

    def start(self) -> WorkflowRun:
        """Start on the running event loop (idempotent)."""
        if self._task is None:
            context = contextvars.copy_context()
            context.run(_CURRENT.set, self)
            self._task = asyncio.get_running_loop().create_task(self._drive(), name=self.id, context=context)
        return self

    def __aiter__(self) -> WorkflowRun:
        return self

    async def __anext__(self) -> WorkflowEvent:
        self.start()
        if self._exhausted:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _DONE:
            self._exhausted = True
            raise StopAsyncIteration
        return cast(WorkflowEvent, item)

    def __await__(self) -> Any:
        return self.result().__await__()

    async def result(self) -> WorkflowResult:
        """Wait for the end; cancelling the waiting task cancels the workflow (and waits for it)."""
        task = self.start()._task
        assert task is not None
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.cancel("the task waiting for the workflow was cancelled")
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
            raise
        assert self.outcome is not None
        return self.outcome

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        """Cancel every running agent run; each compensates its own side effects."""
        if self._cancel_reason is not None or self.outcome is not None:
            return
        self._cancel_reason = reason
        for live in list(self.live.values()):
            live.run.cancel(reason)

    # -- running agents ----------------------------------------------------------------------------

    def _client(self, agent: str) -> AsyncClient:
        source = self.flow._client_of(self.flow.specs[agent])
        if isinstance(source, AsyncClient):
            return source
        found = self._clients.get(id(source))
        if found is None:
            found = self._clients[id(source)] = source.to_async()
        return found

    def _now(self) -> float:
        return self.flow.clock() - self._t0

    def _start(self, agent: str, prompt: str, parent: str | None, call_id: str | None = None) -> _Live:
        run_id = f"{agent}-{uuid.uuid4().hex[:8]}"
        made: list[_Live] = []  # the run emits nothing before it starts, and then ``made`` holds it

        def on_event(event: RunEvent) -> None:
            self._on_event(made[0], event)

        run = Run(
            self.flow.agents[agent], prompt, session_id=run_id, on_event=on_event, client=self._client(agent)
        )
        live = _Live(agent, run, parent, self._now(), call_id)
        made.append(live)
        self.live[run_id] = live
        if self._cancel_reason is not None:
            run.cancel(self._cancel_reason)
        run.start()
        return live

    def _start_handoff(self, sender: _Live, call_id: str, input: Mapping[str, Any], when: Any) -> _Live:
        receiver = str(input["agent"])
        document = str(input.get("document") or "")
        prompt = f"[handoff from {sender.agent} to {receiver}]\nTask: {input['task']}"
        if document:
            prompt += f"\n\n{document}"
        live = self._start(receiver, prompt, sender.run.session_id, call_id)
        size = len(json.dumps(dict(input), ensure_ascii=False).encode("utf-8"))
        start = HandoffStart(
            call_id=call_id,
            sender=sender.agent,
            receiver=receiver,
            run=live.run.session_id,
            when=when,
            bytes=size,
        )
        self._emit(WorkflowEvent(sender.agent, sender.run.session_id, sender.parent, start, self._now()))
        return live

    async def _await_handoff(self, sender: str, run_id: str, call_id: str, input: Mapping[str, Any]) -> str:
        live = self._early.pop(call_id, None)
        if live is None:
            sender_live = self.live[run_id]
            live = self._start_handoff(sender_live, call_id, input, "executed")
        result = await live.run.result()  # cancelling this wait cancels the receiver too
        if result.terminal != "completed":
            raise HandoffFailed(f"{live.agent} ended {result.terminal}: {result.reason or 'no reason given'}")
        return result.text

    def _drop_early(self, run_id: str, reason: str) -> None:
        for call_id, live in list(self._early.items()):
            if live.parent == run_id:
                del self._early[call_id]
                if live.run.done:  # it finished already: what it did is undone all the same
                    task = asyncio.ensure_future(self._undo(live))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                else:
                    live.run.cancel(reason)
                dropped = HandoffDropped(
                    call_id=call_id, receiver=live.agent, run=live.run.session_id, reason=reason
                )
                sender = self.live[run_id]
                self._emit(WorkflowEvent(sender.agent, run_id, sender.parent, dropped, self._now()))

    async def _undo(self, live: _Live) -> None:
        """Compensate the side effects of a finished receiver whose handoff was dropped."""
        for record in await live.run.ledger.compensate_all():
            event = ToolCompensated.from_record(record)
            self._emit(WorkflowEvent(live.agent, live.run.session_id, live.parent, event, self._now()))

    def _run_of_call(self, call_id: str) -> str:
        return self._call_runs.get(call_id, "")

    def _own_write(self, pending: PendingWrite, agent: str, run_id: str) -> None:
        self._writes[pending.write_id] = (agent, run_id)

    def _on_event(self, live: _Live, event: RunEvent) -> None:
        run_id = live.run.session_id
        self.tally.observe(live.agent, event, self.flow.clock())
        self._emit(WorkflowEvent(live.agent, run_id, live.parent, event, self._now()))
        if isinstance(event, BlockStart) and event.type == "tool_call" and event.id:
            self._call_runs[event.id] = run_id
            if event.name == BOARD_WRITE:
                self._board_calls[(run_id, event.index)] = event.id
        elif isinstance(event, ToolFieldComplete) and event.path == ("key",):
            call_id = self._board_calls.get((run_id, event.index))
            if call_id is not None and isinstance(event.value, str):
                self._board_keys[call_id] = event.value
        elif isinstance(event, ToolReady):
            if (
                event.name == HANDOFF
                and self.flow.start_handoffs == "validated"
                and self._cancel_reason is None
            ):
                self._early[event.call_id] = self._start_handoff(
                    live, event.call_id, event.input, "validated"
                )
        elif isinstance(event, ToolInvalidInput) and self.flow.errors_log is not None:
            self.flow.errors_log.record(live.agent, run_id, event)
        elif isinstance(event, RetryNotice):
            self._drop_early(run_id, "the response that handed off was not kept: it is asked for again")
            if event.reason == "max_tokens":
                learned = self._learned.setdefault(live.agent, {})
                learned["max_tokens"] = max(int(learned.get("max_tokens", 0)), event.max_tokens)
        elif isinstance(event, RunEnd):
            live.ended = self._now()
            self._drop_early(run_id, f"the agent that handed off ended {event.terminal}")
            if live.call_id is not None:
                end = HandoffEnd(
                    call_id=live.call_id,
                    receiver=live.agent,
                    run=run_id,
                    terminal=event.terminal,
                    reason=event.reason,
                )
                self._emit(WorkflowEvent(live.agent, run_id, live.parent, end, self._now()))
        elif isinstance(event, FallbackNotice):  # the agent streams that tool buffered from now on
            learned = self._learned.setdefault(live.agent, {})
            learned["buffered"] = sorted({*learned.get("buffered", ()), event.tool})

    def _emit(self, item: WorkflowEvent) -> None:
        self._queue.put_nowait(item)
        for callback in self._callbacks:
            try:
                callback(item)
            except Exception:  # a consumer's bug must not break the workflow
                self.callback_errors += 1

    def _board_update(self, update: BlackboardUpdate) -> None:
        owner = self._writes.get(update.write_id)
        if owner is None:
            return  # another workflow's (or process's) write
        agent, run_id = owner
        live = self.live.get(run_id)
        self._emit(WorkflowEvent(agent, run_id, None if live is None else live.parent, update, self._now()))

    async def _pump_board(self, sub: Subscription) -> None:
        async for update in sub:
            self._board_update(update)

    # -- the driver ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        self._t0 = self.flow.clock()
        self._subscription = self.flow.blackboard.subscribe()
        self._pump = asyncio.ensure_future(self._pump_board(self._subscription))
        last: _Live | None = None
        result: RunResult | None = None
        try:
            last = self._start(self.flow.entry, self.prompt, None)
            result = await last.run.result()
            for stage in self.flow.pipeline[1:]:
                if result.terminal != "completed" or any(lv.agent == stage for lv in self.live.values()):
                    break
                nxt = self._start(stage, result.text, last.run.session_id)
                start = HandoffStart(
                    call_id="", sender=last.agent, receiver=stage, run=nxt.run.session_id, when="pipeline"
                )
                self._emit(WorkflowEvent(last.agent, last.run.session_id, last.parent, start, self._now()))
                last, result = nxt, await nxt.run.result()
        except asyncio.CancelledError:
            self.cancel("the workflow's task was cancelled")
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await self._settle()
        self._finish(last, result)

    async def _settle(self) -> None:
        """Every agent run ends (unclaimed early receivers are stopped), the board is drained."""
        for call_id, live in list(self._early.items()):
            del self._early[call_id]
            live.run.cancel("the workflow ended before the handoff was used")
        while True:
            running = [lv.run for lv in self.live.values() if not lv.run.done]
            if not running:
                break
            await asyncio.gather(*(r.result() for r in running), return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        assert self._subscription is not None and self._pump is not None
        for update in self._subscription.pending():
            self._board_update(update)
        self._subscription.close()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()

    def _finish(self, last: _Live | None, result: RunResult | None) -> None:
        metrics, alerts = self._metrics()
        if self.flow.adaptive:
            for change in self.flow.adapt(self._learned):
                self._emit(WorkflowEvent(change.agent, "", None, change, self._now()))
        for alert in alerts:
            agent = alert.agent or self.flow.entry
            self._emit(WorkflowEvent(agent, "", None, alert, self._now()))
            monitor = self.flow.agents[agent].monitor if agent in self.flow.agents else None
            if monitor is not None:
                monitor.warnings.append(f"alert: {alert.message}")
            if self.flow.on_alert is not None:
                with contextlib.suppress(Exception):
                    self.flow.on_alert(alert)
        reason: str | None
        if result is None:
            terminal: Terminal = "cancelled" if self._cancel_reason else "failed"
            reason = self._cancel_reason or "the workflow did not start"
            text = ""
        else:
            terminal, reason, text = result.terminal, result.reason, result.text
        if self._cancel_reason is not None and terminal == "completed":
            terminal, reason, text = "cancelled", self._cancel_reason, ""
        runs = tuple(
            AgentRunSummary(
                agent=lv.agent,
                run=run_id,
                parent=lv.parent,
                started=lv.started,
                ended=lv.ended,
                terminal=None if lv.run.outcome is None else lv.run.outcome.terminal,
                reason=None if lv.run.outcome is None else lv.run.outcome.reason,
                handoff_call=lv.call_id,
            )
            for run_id, lv in self.live.items()
        )
        self.outcome = WorkflowResult(
            terminal=terminal,
            reason=reason,
            text=text,
            runs=runs,
            metrics=metrics,
            alerts=tuple(alerts),
            seconds=self._now(),
            params=tuple(self.tally.params),
        )
        end = WorkflowEnd(terminal=terminal, reason=reason, text=text, runs=len(runs))
        agent = last.agent if last is not None else self.flow.entry
        self._emit(WorkflowEvent(agent, "" if last is None else last.run.session_id, None, end, self._now()))
        self._queue.put_nowait(_DONE)

    def _metrics(self) -> tuple[dict[str, Any], list[Alert]]:
        file = self.flow.metrics_file
        limits = self.flow.settings.metrics.alerts
        if file is not None:
            data = file.update(self.tally, adaptive=self._learned if self.flow.adaptive else None)
            totals = data["totals"]
            return data, check_alerts(derive(totals), totals, limits)
        totals = self.tally.totals()
        derived = derive(totals)
        return {**derived, "totals": totals}, check_alerts(derived, totals, limits)
