"""The driver of a workflow run (see :mod:`midstream.workflow.flow` for what a run guarantees).

:class:`WorkflowRun` starts agent runs (the entry agent, and each receiver of a handoff: when its call
validates, or when the sender's tool runs), tags every event with its agent, run and parent, drops
receivers whose handoff response was not kept, cascades cancel, pumps the blackboard's updates of its
own writes into the events, and at the end folds the run's metrics into the metrics file, raises the
alerts and applies the adaptive policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from midstream.agent.driven import Driven
from midstream.agent.events import (
    FallbackNotice,
    RetryNotice,
    RunEnd,
    RunEvent,
    ToolCompensated,
    ToolInvalidInput,
    ToolReady,
)
from midstream.agent.loop import Run, RunResult
from midstream.client.stream import AsyncClient
from midstream.core.toolargs import ToolFieldComplete
from midstream.events import BlockStart
from midstream.message import Terminal
from midstream.metrics import observers, workflow_probe
from midstream.workflow.blackboard import (
    Blackboard,
    BlackboardUpdate,
    PendingWrite,
    StreamedWrite,
    Subscription,
)
from midstream.workflow.events import (
    HandoffDropped,
    HandoffEnd,
    HandoffFailed,
    HandoffStart,
    WorkflowEnd,
    WorkflowEvent,
)
from midstream.workflow.metrics import Alert, ParamTiming, StreamingTally, check_alerts, derive

if TYPE_CHECKING:
    from midstream.workflow.flow import Workflow

__all__ = [
    "BOARD_READ",
    "BOARD_WRITE",
    "CURRENT",
    "HANDOFF",
    "AgentRunSummary",
    "BoardSink",
    "FlowCallback",
    "WorkflowResult",
    "WorkflowRun",
]

HANDOFF = "handoff"
BOARD_WRITE = "blackboard_write"
BOARD_READ = "blackboard_read"
CURRENT: contextvars.ContextVar[WorkflowRun | None] = contextvars.ContextVar(
    "midstream_workflow", default=None
)

FlowCallback = Callable[[WorkflowEvent], object]


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


class BoardSink:
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


class WorkflowRun(Driven[WorkflowEvent, WorkflowResult]):
    """One run of a :class:`Workflow`: ``async for event in run`` (:class:`WorkflowEvent`), ``await run``
    (:class:`WorkflowResult`), ``run.cancel()``. Events are buffered from the start."""

    _waiter_cancelled = "the task waiting for the workflow was cancelled"

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
            context.run(CURRENT.set, self)
            self._task = asyncio.get_running_loop().create_task(self._drive(), name=self.id, context=context)
        return self

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
        self._emit_from(sender, start)
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
                self._emit_from(self.live[run_id], dropped)

    async def _undo(self, live: _Live) -> None:
        """Compensate the side effects of a finished receiver whose handoff was dropped."""
        for record in await live.run.ledger.compensate_all():
            self._emit_from(live, ToolCompensated.from_record(record))

    def _run_of_call(self, call_id: str) -> str:
        return self._call_runs.get(call_id, "")

    def _own_write(self, pending: PendingWrite, agent: str, run_id: str) -> None:
        self._writes[pending.write_id] = (agent, run_id)

    def _on_event(self, live: _Live, event: RunEvent) -> None:
        run_id = live.run.session_id
        self.tally.observe(live.agent, event, self.flow.clock())
        self._emit_from(live, event)
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
                self._emit_from(live, end)
        elif isinstance(event, FallbackNotice):  # the agent streams that tool buffered from now on
            learned = self._learned.setdefault(live.agent, {})
            learned["buffered"] = sorted({*learned.get("buffered", ()), event.tool})

    def _emit_from(self, live: _Live, event: Any) -> None:
        """``event`` as one of ``live``'s: its agent, its run and the run that started it."""
        self._emit(
            WorkflowEvent(
                agent=live.agent, run=live.run.session_id, parent=live.parent, event=event, at=self._now()
            )
        )

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
        self._emit(
            WorkflowEvent(
                agent=agent,
                run=run_id,
                parent=None if live is None else live.parent,
                event=update,
                at=self._now(),
            )
        )

    async def _pump_board(self, sub: Subscription) -> None:
        async for update in sub:
            self._board_update(update)

    # -- the driver ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        # Telemetry: the workflow's span is current in this task (its agents' runs nest under it).
        probe = workflow_probe(self.flow.name, self.id) if observers() else None
        try:
            await self._drive_flow()
        finally:
            if probe is not None:
                probe.end(self.outcome)

    async def _drive_flow(self) -> None:
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
                self._emit_from(last, start)
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
                self._emit(
                    WorkflowEvent(agent=change.agent, run="", parent=None, event=change, at=self._now())
                )
        for alert in alerts:
            agent = alert.agent or self.flow.entry
            self._emit(WorkflowEvent(agent=agent, run="", parent=None, event=alert, at=self._now()))
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
        self._emit(
            WorkflowEvent(
                agent=agent,
                run="" if last is None else last.run.session_id,
                parent=None,
                event=end,
                at=self._now(),
            )
        )
        self._end_events()

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
