"""The tool calls of one response: following them while they stream, then running the ready ones.

:class:`ResponseCalls` follows the calls of one streamed attempt (block index -> :class:`CallState`):
it opens each tool's streamed-field sinks at the block's start, feeds them the field events, and turns
the stream's verdict into a lifecycle event: :class:`~midstream.agent.events.ToolReady` once the input
also passed the tool's own validation, else :class:`~midstream.agent.events.ToolInvalidInput`.

:class:`CallRunner` runs one ready call after its response completed: the permission step (hooks),
re-validation of an input a hook rewrote, then the :class:`~midstream.agent.effects.EffectLedger`
(at most once per call id, journaled, deduplicated by idempotency key) under the concurrency bound and
the per-call timeout, then ``PostToolUse`` / ``PostToolUseFailure``. It returns the
:class:`~midstream.client.request.ToolResult` for the model (``is_error`` for anything but a result).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from midstream.agent.effects import EffectLedger, EffectRecord, Execution, current_call, to_jsonable
from midstream.agent.events import (
    InvalidInputReason,
    ToolDenied,
    ToolFailed,
    ToolFinished,
    ToolInvalidInput,
    ToolReady,
    ToolStarted,
)
from midstream.agent.hooks import HookOutcome, HookReport, Hooks
from midstream.agent.monitor import StreamingMonitor
from midstream.agent.tools import CallStreams, Tool
from midstream.client.request import ToolResult
from midstream.config import Settings
from midstream.core.toolargs import (
    ToolCallInvalid,
    ToolCallReady,
    ToolFieldDelta,
    ToolFieldStart,
    ToolInputError,
)
from midstream.events import BlockStart
from midstream.message import Message, ToolCall
from midstream.metrics import observers, tool_probe

__all__ = [
    "CallRunner",
    "CallState",
    "ResponseCalls",
    "invalid_result",
    "result_content",
    "settle",
    "wait_through_cancel",
]

Emit = Callable[[Any], None]
Notify = Callable[[tuple[HookOutcome, ...], str | None], None]


def result_content(result: Any) -> str:
    """What the model is told a tool returned: a string as is, anything else as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(to_jsonable(result), ensure_ascii=False)


@dataclass
class CallState:
    """One tool call of a streamed attempt: its tool, sinks, and verdict (``input`` once ready)."""

    index: int
    call_id: str
    name: str
    tool: Tool | None
    streams: CallStreams | None = None
    input: dict[str, Any] | None = None
    args: Any = None
    invalid: ToolInvalidInput | None = None

    def discard(self) -> None:
        """Drop whatever the streamed fields wrote (safe after a commit: nothing is left open)."""
        if self.streams is not None:
            self.streams.discard()


def _invalid(
    call_id: str, name: str, reason: InvalidInputReason, raw: str, error: str, wrapper: str
) -> ToolInvalidInput:
    return ToolInvalidInput(
        call_id=call_id, name=name, reason=reason, raw=raw, error=error, wrapped={wrapper: raw}
    )


@dataclass
class ResponseCalls:
    """The tool calls of one attempt, by block index; :meth:`feed` returns the lifecycle events."""

    tools: Mapping[str, Tool]
    wrapper: str
    calls: dict[int, CallState] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: Message, tools: Mapping[str, Tool], wrapper: str) -> ResponseCalls:
        """The calls of an already complete response (a resumed run): ready where the input is usable."""
        calls = cls(tools, wrapper)
        for index, call in enumerate(message.tool_calls):
            tool = tools.get(call.name)
            state = calls.calls[index] = CallState(index, call.id, call.name, tool)
            if tool is not None and call.input is not None and call.error is None:
                try:
                    state.args, state.input = tool.validate(call.input), dict(call.input)
                except ToolInputError:
                    state.input = None
        return calls

    def by_id(self, call_id: str) -> CallState | None:
        """The call with this id, if it streamed in this attempt."""
        return next((c for c in self.calls.values() if c.call_id == call_id), None)

    def feed(self, event: object) -> list[ToolReady | ToolInvalidInput]:
        """One stream event (normalized or tool event)."""
        if isinstance(event, BlockStart) and event.type == "tool_call":
            self._open(event)
        elif isinstance(event, ToolFieldStart | ToolFieldDelta):
            call = self.calls.get(event.index)
            if call is not None and call.streams is not None:
                call.streams.feed(event)
        elif isinstance(event, ToolCallReady):
            return [self._ready(event)]
        elif isinstance(event, ToolCallInvalid):
            return [self._reject(event)]
        return []

    def _open(self, event: BlockStart) -> None:
        name = event.name or ""
        tool = self.tools.get(name)
        call_id = event.id or f"call-{event.index}"
        streams = tool.open_streams(call_id) if tool is not None else None
        self.calls[event.index] = CallState(event.index, call_id, name, tool, streams)

    def _state(self, index: int, call_id: str | None, name: str | None) -> CallState:
        call = self.calls.get(index)
        if call is None:  # a verdict without a block start cannot happen with a timeline; be safe
            call = self.calls[index] = CallState(index, call_id or f"call-{index}", name or "", None)
        return call

    def _ready(self, event: ToolCallReady) -> ToolReady | ToolInvalidInput:
        call = self._state(event.index, event.id, event.name)
        raw = json.dumps(event.input, ensure_ascii=False)
        if call.tool is None:
            call.invalid = _invalid(
                call.call_id,
                call.name,
                "unknown_tool",
                raw,
                f"there is no tool named {call.name!r}",
                self.wrapper,
            )
        else:
            try:
                call.args = call.tool.validate(event.input)
            except ToolInputError as exc:
                call.invalid = _invalid(call.call_id, call.name, "schema", raw, str(exc), self.wrapper)
        if call.invalid is not None:
            call.discard()
            return call.invalid
        call.input = dict(event.input)
        return ToolReady(call_id=call.call_id, name=call.name, input=call.input, index=event.index)

    def _reject(self, event: ToolCallInvalid) -> ToolInvalidInput:
        call = self._state(event.index, event.id, event.name)
        call.discard()
        error = "" if event.error is None else str(event.error)
        call.invalid = _invalid(call.call_id, call.name, event.reason, event.raw, error, self.wrapper)
        return call.invalid

    def discard_all(self) -> None:
        """The attempt will not be acted on: every sink is discarded."""
        for call in self.calls.values():
            call.discard()

    def invalid_json_tools(self) -> list[str]:
        """Tools whose input in this attempt was not JSON (what eager streaming is blamed for)."""
        return [
            c.name
            for c in self.calls.values()
            if c.invalid is not None and c.invalid.reason == "invalid_json"
        ]


def invalid_result(call: ToolCall, invalid: ToolInvalidInput | None, wrapper: str) -> ToolResult:
    """The error result for a call that was not executed because its input was unusable."""
    reason = invalid.reason if invalid is not None else (call.error or "invalid_json")
    detail = f": {invalid.error}" if invalid is not None and invalid.error else ""
    echoed = json.dumps({wrapper: call.raw_input}, ensure_ascii=False)
    text = f"The tool input was not usable ({reason}{detail}); the call was not executed. Received: {echoed}"
    return ToolResult(call.id, text, call.name, is_error=True)


class _Observed:
    """A tool as the ledger sees it, reporting the moment its function is really entered."""

    def __init__(
        self, tool: Tool, on_start: Callable[[str | None], None], stopped: Callable[[], bool]
    ) -> None:
        self._tool = tool
        self._on_start = on_start
        self._stopped = stopped
        self.entered = False

    name = property(lambda self: self._tool.name)
    side_effect = property(lambda self: self._tool.side_effect)
    idempotent = property(lambda self: self._tool.idempotent)
    is_async = property(lambda self: self._tool.is_async)
    can_compensate = property(lambda self: self._tool.can_compensate)

    def validate(self, input: Mapping[str, Any]) -> Any:
        return self._tool.validate(input)

    def idempotency_key(self, input: Mapping[str, Any]) -> str:
        return self._tool.idempotency_key(input)

    async def invoke(self, args: Any) -> Any:
        if self._stopped():  # the run was cancelled between the ledger's bookkeeping and now
            raise asyncio.CancelledError("the run was cancelled before the tool started")
        self.entered = True
        call = current_call()
        self._on_start(call.idempotency_key if call is not None else None)
        return await self._tool.invoke(args)

    async def run_compensate(self, record: EffectRecord) -> Any:
        return await self._tool.run_compensate(record)


@dataclass(kw_only=True)
class CallRunner:
    """Runs ready calls for one run (see the module docstring)."""

    hooks: Hooks
    ledger: EffectLedger
    settings: Settings
    session_id: str
    monitor: StreamingMonitor
    emit: Emit
    notify: Notify
    record: Callable[[str, ToolResult], None]
    """Told each call's result before its event is emitted (a checkpoint taken then includes it)."""
    stopped: Callable[[], bool]
    """True once the run is cancelled: nothing may start from then on."""
    started: set[str] = field(default_factory=set)

    def _result(self, call: CallState, content: str, *, error: bool = False) -> ToolResult:
        result = ToolResult(call.call_id, content, call.name, is_error=error)
        self.record(call.call_id, result)
        return result

    async def run(self, call: CallState, bound: asyncio.Semaphore) -> ToolResult:
        """Authorize, execute and report one ready call; the result for the model."""
        assert call.tool is not None and call.input is not None
        permission = await self.hooks.authorize_tool(
            tool_name=call.name,
            tool_input=dict(call.input),
            tool_call_id=call.call_id,
            session_id=self.session_id,
        )
        self.notify(permission.outcomes, call.call_id)
        if not permission.allowed:
            call.discard()
            reason = permission.reason or "denied"
            result = self._result(call, f"The call was denied: {reason}", error=True)
            self.emit(ToolDenied(call.call_id, call.name, reason))
            return result
        input, args = call.input, call.args
        if permission.tool_input != call.input:  # a hook rewrote it: it must pass the schema again
            try:
                args, input = call.tool.validate(permission.tool_input), dict(permission.tool_input)
            except ToolInputError as exc:
                call.discard()
                raw = json.dumps(permission.tool_input, ensure_ascii=False)
                wrapper = self.settings.errors.invalid_json_wrapper
                text = f"The input a hook rewrote fails the tool's schema: {exc}; the call was not executed."
                result = self._result(call, text, error=True)
                self.emit(_invalid(call.call_id, call.name, "schema", raw, str(exc), wrapper))
                return result
        async with bound:
            if self.stopped():  # cancelled while this call waited for its turn: it never starts
                call.discard()
                raise asyncio.CancelledError("the run was cancelled")
            return await self._execute(call, input, args)

    async def _execute(self, call: CallState, input: dict[str, Any], args: Any) -> ToolResult:
        # Telemetry: the call's span is current while the tool runs (a stream it opens nests under it).
        probe = tool_probe(call.name, call.call_id, self.session_id, input) if observers() else None
        outcome: str = "cancelled"
        try:
            result = await self._run_tool(call, input, args)
            outcome = "error" if result.is_error else "ok"
            return result
        finally:
            if probe is not None:
                probe.end(outcome)

    async def _run_tool(self, call: CallState, input: dict[str, Any], args: Any) -> ToolResult:
        assert call.tool is not None

        def started(key: str | None) -> None:
            self.started.add(call.call_id)
            self.emit(ToolStarted(call_id=call.call_id, name=call.name, input=input, idempotency_key=key))

        observed = _Observed(call.tool, started, self.stopped)
        began = time.monotonic()
        work = self.ledger.execute(observed, call.call_id, input, args=args, streams=call.streams)
        timeout = self.settings.tools.timeout
        try:
            execution = await (work if timeout is None else asyncio.wait_for(work, timeout))
        except asyncio.CancelledError:
            self._cancelled(call, observed.entered, time.monotonic() - began)
            raise
        except TimeoutError:
            execution = Execution(
                call_id=call.call_id,
                tool=call.name,
                status="failed",
                error=TimeoutError(f"no result in {timeout} s"),
            )
            return await self._failed(call, execution, "timeout", observed.entered, time.monotonic() - began)
        seconds = time.monotonic() - began
        if execution.ok:
            return await self._finished(call, execution, seconds)
        reason: Any = execution.status if execution.status in ("uncertain", "duplicate") else "error"
        if isinstance(execution.error, asyncio.CancelledError):
            reason = "cancelled"
        return await self._failed(call, execution, reason, observed.entered, seconds)

    def _cancelled(self, call: CallState, entered: bool, seconds: float) -> None:
        """The run was cancelled while this call ran: say whether its effect happened after all (the
        tool may have finished before the cancel reached it; the ledger journaled it either way)."""
        done = next((r for r in self.ledger.executed if r.call_id == call.call_id), None)
        if done is None:
            self.emit(
                ToolFailed(
                    call_id=call.call_id,
                    name=call.name,
                    reason="cancelled",
                    error="the run was cancelled",
                    started=entered,
                )
            )
            return
        content = result_content(done.result)
        self.emit(
            ToolFinished(
                call_id=call.call_id,
                name=call.name,
                status="done",
                result=done.result,
                content=content,
                seconds=seconds,
            )
        )

    async def _finished(self, call: CallState, execution: Execution, seconds: float) -> ToolResult:
        skipped = execution.status == "skipped"
        if skipped and execution.result is None:
            content = "This call was already done by an earlier run; it was not repeated."
        else:
            content = result_content(execution.result)
        status: Any = "skipped" if skipped else "done"
        result = self._result(call, content)
        self.emit(
            ToolFinished(
                call_id=call.call_id,
                name=call.name,
                status=status,
                result=execution.result,
                content=content,
                seconds=seconds,
            )
        )
        if not skipped:
            self.monitor.record_execution(call.name, ok=True, seconds=seconds)
        await self._post("PostToolUse", call, tool_response=to_jsonable(execution.result))
        return result

    async def _failed(
        self, call: CallState, execution: Execution, reason: Any, entered: bool, seconds: float
    ) -> ToolResult:
        error = execution.error
        text = (
            ""
            if error is None
            else (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        )
        result = self._result(call, f"The tool failed ({reason}): {text}", error=True)
        self.emit(
            ToolFailed(call_id=call.call_id, name=call.name, reason=reason, error=text, started=entered)
        )
        if entered:
            self.monitor.record_execution(call.name, ok=False, seconds=seconds)
        await self._post("PostToolUseFailure", call, error=text, reason=reason)
        return result

    async def _post(self, event: Any, call: CallState, **data: Any) -> HookReport:
        report = await self.hooks.run(
            event,
            tool_name=call.name,
            tool_input=call.input,
            tool_call_id=call.call_id,
            session_id=self.session_id,
            **data,
        )
        self.notify(report.outcomes, call.call_id)
        return report


async def settle(tasks: Sequence[asyncio.Future[Any]], stop: asyncio.Event) -> bool:
    """Wait until every task is done, or ``stop`` is set; then cancel the rest and wait for them too.

    Returns False when ``stop`` was set (even if everything finished meanwhile: cancel wins). Waiting
    for cancelled tasks to settle matters: a sync tool's thread cannot be stopped, and its effect must
    be journaled before compensation.
    """
    pending: set[asyncio.Future[Any]] = set(tasks)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while pending and not stop.is_set():
            _, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    finally:
        waiter.cancel()
    if not stop.is_set():
        return True
    for task in pending:
        task.cancel()
    await _wait_all(pending)
    return False


async def _wait_all(futures: set[asyncio.Future[Any]]) -> None:
    while futures:
        try:
            _, futures = await asyncio.wait(futures)
        except asyncio.CancelledError:  # the caller is being torn down: keep waiting, then re-raise
            await asyncio.wait(futures)
            raise


async def wait_through_cancel(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to finish even if the waiter is cancelled again meanwhile."""
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            continue
