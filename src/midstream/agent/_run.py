"""A run of an :class:`~midstream.agent.loop.Agent`: the driver behind :class:`Run`.

One task drives the run: ``SessionStart`` and ``UserPromptSubmit`` hooks, then iterations (a response,
streamed with its retries, then the tools it completed), then the ending. Events go to a queue (the
run's async iterator) and to the ``on_event`` callbacks as they happen. Cancellation is a flag and an
event rather than a task cancel: the open stream is cancelled (so its closing events still arrive), and
every other wait (hooks, backoff, tools) races the event; the driver then unwinds to the cleanup
(compensation, the ``Cancel`` hook) and the one :class:`~midstream.agent.events.RunEnd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from midstream.agent._calls import (
    CallRunner,
    CallState,
    ResponseCalls,
    invalid_result,
    settle,
)
from midstream.agent._recovery import describe, echo, judge, merge_prefill
from midstream.agent.checkpoint import Checkpoint
from midstream.agent.driven import Driven
from midstream.agent.effects import EffectLedger, EffectRecord
from midstream.agent.events import (
    CancelNotice,
    FallbackNotice,
    HookNotice,
    IterationStart,
    RetryNotice,
    RunEnd,
    RunEvent,
    RunPhase,
    ToolCompensated,
    ToolInvalidInput,
)
from midstream.agent.hooks import HookEvent, HookOutcome, HookReport
from midstream.client.errors import StreamInterrupted
from midstream.client.request import ChatRequest, ToolResult, Turn, UserText, as_turns
from midstream.client.stream import AsyncClient, AsyncStream, StreamEvent
from midstream.core.toolargs import ToolEvent
from midstream.errors import RemoteError
from midstream.events import is_content
from midstream.message import Message, Terminal, TextBlock
from midstream.metrics import observers, run_probe

if TYPE_CHECKING:
    from midstream.agent.loop import Agent

__all__ = ["EventCallback", "Run", "RunProgress", "RunResult"]

log = logging.getLogger("midstream.agent")

T = TypeVar("T")
EventCallback = Callable[[RunEvent], object]
"""An ``on_event`` callback: called with every event, in order, on the run's event loop."""


@dataclass(slots=True, kw_only=True)
class RunProgress:
    """A run's state: what it has done so far, apart from the machinery that drives it.

    The driver's steps (:class:`Run`'s methods) read and move it; a checkpoint is made from it.
    ``phase`` moves only through ``Run._enter``.
    """

    phase: RunPhase = "starting"
    iteration: int = 0
    """Iterations started (a response and the tools it completed)."""
    clean_iteration: int = 0
    """The last iteration whose every message is complete (what a checkpoint resumes from)."""
    turns: list[Turn] = field(default_factory=list)
    """The conversation at the last clean boundary."""
    step_results: dict[str, ToolResult] = field(default_factory=dict)
    """Results of the calls of the current response so far, by call id."""
    max_tokens: int
    """The current ``max_tokens`` (raised by a retry after a cut)."""
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)
    """Tools switched to buffered streaming after invalid eager input."""
    compensations: list[EffectRecord] = field(default_factory=list)
    context: str = ""
    """Additional context from the ``SessionStart`` / ``UserPromptSubmit`` hooks."""
    last: Message | None = None
    """The last response's Message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How a run ended. ``message`` is the last assistant response (the final answer when
    ``completed``; partial otherwise); ``turns`` the conversation at its last clean boundary.

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> from midstream.sim import running
        >>> with running(speed=0) as url:
        ...     client = midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5")
        ...     result = midstream.Agent(client, tools=[get_weather]).run_sync("Weather in Paris?")
        >>> result.terminal, result.iterations, result.text[:12]
        ('completed', 2, 'Thanks, I ha')
    """

    terminal: Terminal
    reason: str | None
    message: Message | None
    iterations: int
    turns: tuple[Turn, ...]
    session_id: str
    retries: int = 0
    fallbacks: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()
    compensations: tuple[EffectRecord, ...] = ()
    error: BaseException | None = None

    @property
    def text(self) -> str:
        """The final answer's text (empty unless the run completed: partial text is not an answer)."""
        return self.message.text if self.message is not None and self.terminal == "completed" else ""


class _Cancelled(Exception):
    """Internal: the run was cancelled; unwinds to the cleanup."""


@dataclass(frozen=True, slots=True)
class _End:
    terminal: Terminal
    reason: str | None
    message: Message | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Attempt:
    message: Message
    error: BaseException | None
    calls: ResponseCalls


class Run(Driven[RunEvent, RunResult]):
    """One run of an :class:`Agent`: ``async for event in run``, ``await run``, ``run.cancel()``.

    Events are buffered from the start, so iterating late misses nothing (one iterator per run).
    Awaiting returns the :class:`RunResult`; cancelling the task that awaits cancels the run.

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> from midstream.sim import running
        >>> import asyncio
        >>> async def watch(url):
        ...     client = midstream.AsyncClient("anthropic", base_url=url, model="claude-sonnet-4-5")
        ...     run = midstream.Agent(client, tools=[get_weather]).run("Weather in Paris?")
        ...     kinds = [type(event).__name__ async for event in run]
        ...     return kinds, await run
        >>> with running(speed=0) as url:
        ...     kinds, result = asyncio.run(watch(url))
        >>> "ToolCallReady" in kinds, result.terminal
        (True, 'completed')
    """

    def __init__(
        self,
        agent: Agent,
        prompt: str | None,
        *,
        history: Sequence[Any] = (),
        max_iterations: int | None = None,
        on_event: EventCallback | Sequence[EventCallback] | None = None,
        session_id: str | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint: Checkpoint | None = None,
        client: AsyncClient | None = None,
        on_checkpoint: Callable[[Checkpoint], object] | None = None,
    ) -> None:
        self.agent = agent
        self.prompt = prompt
        self.history: tuple[Turn, ...] = as_turns(history) if history else ()
        self.session_id = session_id or f"run-{uuid.uuid4().hex[:12]}"
        self.max_iterations = max_iterations or agent.settings.agent.max_iterations
        self._client = client or agent.client
        self._callbacks: list[EventCallback] = (
            [] if on_event is None else [on_event] if callable(on_event) else list(on_event)
        )
        self._checkpoint_path = checkpoint_path
        self._on_checkpoint = on_checkpoint
        self._cancel_event = asyncio.Event()
        self._resumed = checkpoint
        already = checkpoint.executed_call_ids if checkpoint is not None else ()
        self.ledger = EffectLedger(
            agent.journal,
            run_id=self.session_id,
            skip_compensated=agent.skip_compensated,
            already_run=already,
            keys=checkpoint.metadata.get("effect_keys") if checkpoint is not None else None,
        )
        self._runner = CallRunner(
            hooks=agent.hooks,
            ledger=self.ledger,
            settings=agent.settings,
            session_id=self.session_id,
            monitor=agent.monitor,
            emit=self._emit,
            notify=self._notify,
            record=self._record,
            stopped=self._cancel_event.is_set,
        )
        self._queue: asyncio.Queue[RunEvent | object] = asyncio.Queue()
        self._cancel_reason: str | None = None
        self._compensate = True
        self._closing = False
        self._exhausted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stream: AsyncStream | None = None
        self._state: ResponseCalls | None = None
        self._pending: list[str] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.progress = RunProgress(max_tokens=agent.max_tokens)
        """What the run has done so far (its state, apart from the machinery that drives it)."""
        self.outcome: RunResult | None = None
        """The result, once the run has ended."""
        self.callback_errors = 0

    def __repr__(self) -> str:
        state = self.outcome.terminal if self.outcome is not None else self.progress.phase
        return f"<Run {self.session_id} {state}>"

    # -- the public surface ----------------------------------------------------------------------

    def start(self) -> Run:
        """Start the run on the running event loop (idempotent)."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._drive(), name=f"midstream-{self.session_id}")
        return self

    def on_event(self, callback: EventCallback) -> EventCallback:
        """Register another callback (also usable as a decorator); it sees events from now on."""
        self._callbacks.append(callback)
        return callback

    @property
    def done(self) -> bool:
        """True once the run has ended (its :class:`RunEnd` was emitted)."""
        return self.outcome is not None

    def cancel(self, reason: str = "cancelled by the caller", *, compensate: bool = True) -> None:
        """Stop the run (from any thread; a no-op once it is ending). See the module docstring.

        ``compensate=False`` undoes nothing: for a run another process has taken over (it goes on
        from the effects this one completed), the side effects stay and no new call starts."""
        if self._closing or self._cancel_reason is not None:
            return
        self._cancel_reason = reason
        self._compensate = compensate
        loop = self._loop
        if loop is None:
            self._cancel_event.set()  # not started: it ends cancelled as soon as it starts
            return
        try:
            same = asyncio.get_running_loop() is loop
        except RuntimeError:
            same = False
        if same:
            self._cancel_now()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over anyway
                loop.call_soon_threadsafe(self._cancel_now)

    def checkpoint(self) -> Checkpoint:
        """The run at its last clean boundary (complete messages only; results of the calls of the last
        response so far in ``metadata["results"]``, executed call ids in ``executed_call_ids``)."""
        results = {
            cid: {"content": r.content, "is_error": r.is_error, "name": r.name}
            for cid, r in self.progress.step_results.items()
        }
        metadata = {
            "agent": self.agent.name,
            "max_tokens": self.progress.max_tokens,
            "buffered": sorted(self.agent.buffered),
            "results": results,
            "effect_keys": self.ledger.keys,
        }
        return Checkpoint(
            turns=tuple(self.progress.turns),
            iteration=self.progress.clean_iteration,
            executed_call_ids=tuple(sorted(self.ledger.run_call_ids)),
            session_id=self.session_id,
            request=self._request(""),
            metadata=metadata,
        )

    # -- events ------------------------------------------------------------------------------------

    def _enter(self, phase: RunPhase) -> None:
        """The one place that moves the run's phase (what a cancel reports it interrupted)."""
        self.progress.phase = phase

    def _emit(self, event: RunEvent) -> None:
        self.agent.monitor.observe(event)
        self._queue.put_nowait(event)
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:  # a consumer's bug must not break the run
                self.callback_errors += 1
                log.exception("an on_event callback failed on %s", type(event).__name__)

    def _notify(self, outcomes: tuple[HookOutcome, ...], call_id: str | None) -> None:
        for outcome in outcomes:
            self._emit(HookNotice(outcome, call_id))

    async def _hook(self, event: HookEvent, **fields: Any) -> HookReport:
        hooks = self.agent.hooks
        if not hooks.registered(event):
            return HookReport(event=event)
        report = await self._guard(hooks.run(event, session_id=self.session_id, **fields))
        self._notify(report.outcomes, None)
        return report

    async def _closing_hook(self, event: HookEvent, **fields: Any) -> None:
        """A hook of the ending (``Cancel``, ``Stop``): not interruptible, isolated like every hook."""
        if self.agent.hooks.registered(event):
            report = await self.agent.hooks.run(event, session_id=self.session_id, **fields)
            self._notify(report.outcomes, None)

    # -- cancellation --------------------------------------------------------------------------------

    def _cancel_now(self) -> None:
        if self._closing:
            return
        self._cancel_event.set()
        if self._stream is not None:
            self._stream.cancel()  # the connection closes now; the stream ends ``cancelled``

    def _check(self) -> None:
        if self._cancel_event.is_set():
            raise _Cancelled

    async def _guard(self, work: Awaitable[T]) -> T:
        """Await ``work`` unless the run is cancelled first (then ``work`` is cancelled)."""
        task = asyncio.ensure_future(work)
        if not await settle([task], self._cancel_event):
            raise _Cancelled
        return task.result()

    # -- the driver ------------------------------------------------------------------------------------

    async def _drive(self) -> None:
        # Telemetry: the run's span is current in this task (its streams and tools nest under it).
        probe = run_probe(self) if observers() else None
        try:
            await self._drive_run()
        finally:
            if probe is not None:
                probe.end(self.outcome)

    async def _drive_run(self) -> None:
        try:
            end = await self._main()
        except _Cancelled:
            end = await self._cancelled()
        except asyncio.CancelledError:  # the run's own task was cancelled from outside
            self._cancel_reason = self._cancel_reason or "the run's task was cancelled"
            self._cancel_event.set()
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._end(await self._cancelled())
            raise
        except Exception as exc:
            log.debug("the run failed", exc_info=True)
            end = _End("failed", describe(exc), self.progress.last, exc)
        await self._end(end)

    async def _main(self) -> _End:
        self._check()
        start = await self._hook(
            "SessionStart", prompt=self.prompt, source="resume" if self._resumed is not None else "startup"
        )
        self.progress.context = start.context
        if self._resumed is not None:
            await self._resume(self._resumed)
        else:
            assert self.prompt is not None
            submit = await self._hook("UserPromptSubmit", prompt=self.prompt)
            if submit.denied:
                return _End("cancelled", f"the prompt was blocked: {submit.reason or 'by a hook'}")
            parts = [UserText(self.prompt)] + ([UserText(submit.context)] if submit.context else [])
            self.progress.turns = _after(self.history, Turn("user", tuple(parts)))
            self._boundary()
        while True:
            if self.progress.iteration >= self.max_iterations:
                return _End(
                    "truncated", f"max_iterations ({self.max_iterations}) reached", self.progress.last
                )
            self.progress.iteration += 1
            answer = await self._respond()
            if isinstance(answer, _End):
                return answer
            assert self._state is not None
            self.progress.turns.append(Turn("assistant", message=echo(answer, self.agent.settings.errors)))
            self._boundary()
            if not answer.tool_calls:
                return _End("completed", answer.stop_reason, answer)
            results = await self._tools(answer, self._state)
            self.progress.turns.append(Turn("user", tuple(results)))
            self.progress.step_results = {}
            self._boundary()

    def _boundary(self) -> None:
        self.progress.clean_iteration = self.progress.iteration
        self._save()

    def _save(self) -> None:
        """A clean point: the checkpoint goes to the file and to ``on_checkpoint``, if any."""
        if self._checkpoint_path is None and self._on_checkpoint is None:
            return
        checkpoint = self.checkpoint()
        if self._checkpoint_path is not None:
            checkpoint.save(self._checkpoint_path)
        if self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)

    async def _end(self, end: _End) -> None:
        self._closing = True
        self._enter("ending")
        if self._background:
            await asyncio.wait(set(self._background))
        await self._closing_hook(
            "Stop", stop_reason=end.reason, terminal=end.terminal, iterations=self.progress.iteration
        )
        error = None if end.error is None else describe(end.error)
        self.outcome = RunResult(
            terminal=end.terminal,
            reason=end.reason,
            message=end.message,
            iterations=self.progress.iteration,
            turns=tuple(self.progress.turns),
            session_id=self.session_id,
            retries=self.progress.retries,
            fallbacks=tuple(self.progress.fallbacks),
            executed=tuple(sorted(self._runner.started)),
            compensations=tuple(self.progress.compensations),
            error=end.error,
        )
        self._emit(
            RunEnd(
                terminal=end.terminal,
                reason=end.reason,
                iterations=self.progress.iteration,
                message=end.message,
                error=error,
            )
        )
        self._end_events()

    async def _cancelled(self) -> _End:
        reason = self._cancel_reason or "cancelled"
        not_started = tuple(cid for cid in self._pending if cid not in self._runner.started)
        self._emit(CancelNotice(reason, self.progress.phase, not_started))
        for task in self._background:  # a FirstToken hook still running has nothing left to say
            task.cancel()
        if self._state is not None:
            self._state.discard_all()
        if self._compensate:
            records = await self.ledger.compensate_all()
        else:
            self.ledger.close()
            records = []
        for record in records:
            self._emit(ToolCompensated.from_record(record))
        self.progress.compensations.extend(records)
        await self._closing_hook("Cancel", reason=reason, compensated=[r.call_id for r in records])
        return _End("cancelled", reason, self.progress.last)

    # -- one iteration: a response, with its retries -------------------------------------------------

    def _request(self, prefix: str) -> ChatRequest:
        turns = tuple(self.progress.turns)
        if prefix:  # the partial answer, for the model to continue
            partial = Message(
                provider=self._client.provider, blocks=(TextBlock(text=prefix),), terminal="failed"
            )
            turns += (Turn("assistant", message=partial),)
        system = "\n\n".join(s for s in (self.agent.system, self.progress.context) if s) or None
        return ChatRequest(
            self.agent.model,
            turns,
            system=system,
            tools=self.agent.tool_specs(),
            max_tokens=self.progress.max_tokens,
            thinking_budget=self.agent.thinking_budget,
        )

    async def _respond(self) -> Message | _End:
        specs = self.agent.tool_specs()
        eager = tuple(s.name for s in specs if s.eager)
        self._emit(
            IterationStart(
                iteration=self.progress.iteration,
                max_tokens=self.progress.max_tokens,
                tools=tuple(s.name for s in specs),
                eager=eager,
            )
        )
        retries, prefix = 0, ""
        errors = self.agent.settings.errors
        while True:
            request = self._request(prefix)
            attempt = await self._attempt(request, retries, prefix)
            message = merge_prefill(prefix, attempt.message)
            self.progress.last = message
            self._eager_fallbacks(attempt.calls, request)
            if attempt.error is not None:
                await self._hook(
                    "StreamError",
                    error=describe(attempt.error),
                    kind=getattr(attempt.error, "kind", None),
                    attempt=retries,
                )
            verdict = judge(
                attempt.message,
                attempt.error,
                settings=errors,
                retries=retries,
                max_tokens=self.progress.max_tokens,
                provider=self._client.provider,
                prefix=prefix,
            )
            if verdict.action == "accept":
                self._state = attempt.calls
                return message
            attempt.calls.discard_all()
            if verdict.action == "end":
                assert verdict.terminal is not None
                return _End(verdict.terminal, verdict.why, message, attempt.error)
            assert verdict.reason is not None
            delay = errors.backoff.delay(retries)
            retries += 1
            self.progress.retries += 1
            self.progress.max_tokens = verdict.max_tokens
            prefix = verdict.prefix if verdict.mode == "prefill" else ""
            error = None if attempt.error is None else describe(attempt.error)
            self._emit(
                RetryNotice(
                    iteration=self.progress.iteration,
                    attempt=retries,
                    reason=verdict.reason,
                    delay=delay,
                    max_tokens=self.progress.max_tokens,
                    mode=verdict.mode,
                    kept=len(prefix),
                    error=error,
                )
            )
            self._enter("waiting")
            await self._guard(asyncio.sleep(delay))

    async def _attempt(self, request: ChatRequest, retries: int, prefix: str) -> _Attempt:
        self._check()
        self._enter("hooks")
        await self._hook("StreamStart", provider=self._client.provider, model=request.model, attempt=retries)
        self._check()
        calls = ResponseCalls(self.agent.tools, self.agent.settings.errors.invalid_json_wrapper)
        self._state = calls
        stream = self._client.stream(request, timeouts=self.agent.timeouts)
        self._stream = stream
        self._enter("streaming")
        self.agent.monitor.stream_started()
        error: BaseException | None = None
        try:
            try:
                first = True
                async for event in stream:
                    if first and not isinstance(event, ToolEvent) and is_content(event):
                        first = False
                        self._first_token()
                    self._on_stream(event, calls)
                    if self._cancel_event.is_set():
                        break
            except StreamInterrupted as exc:
                error = exc
            except RemoteError as exc:  # before any content: the client already retried
                error = exc
            finally:
                await stream.aclose()
            if self._cancel_event.is_set():
                await self._drain(stream, calls)
                self.progress.last = merge_prefill(prefix, stream.message)
                raise _Cancelled
        finally:
            self._stream = None
        message = error.partial if isinstance(error, StreamInterrupted) else stream.message
        return _Attempt(message, error, calls)

    def _on_stream(self, event: StreamEvent, calls: ResponseCalls) -> None:
        self._emit(event)
        for lifecycle in calls.feed(event):
            self._emit(lifecycle)

    async def _drain(self, stream: AsyncStream, calls: ResponseCalls) -> None:
        """The closing events of a cancelled stream (open blocks stopped incomplete, the ending)."""
        try:
            async for event in stream:
                self._on_stream(event, calls)
        except Exception:  # the stream had failed already: its error was handled
            pass

    def _first_token(self) -> None:
        ttft = self.agent.monitor.first_token()
        if self.agent.hooks.registered("FirstToken"):
            # In the background: a slow hook must not hold the stream (its idle timeout keeps running).
            task = asyncio.ensure_future(self._hook_report("FirstToken", ttft_ms=ttft))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _hook_report(self, event: HookEvent, **fields: Any) -> None:
        report = await self.agent.hooks.run(event, session_id=self.session_id, **fields)
        self._notify(report.outcomes, None)

    def _eager_fallbacks(self, calls: ResponseCalls, request: ChatRequest) -> None:
        eager = {spec.name for spec in request.tools if spec.eager}
        for name in calls.invalid_json_tools():
            count = self.agent.blame_eager(name) if name in eager else 0
            if count:
                self.progress.fallbacks.append(name)
                self._emit(FallbackNotice(name, count, self.progress.iteration))

    # -- the tools of a completed response ------------------------------------------------------------

    async def _tools(
        self, message: Message, calls: ResponseCalls, prior: Mapping[str, ToolResult] | None = None
    ) -> list[ToolResult]:
        self._enter("tools")
        wrapper = self.agent.settings.errors.invalid_json_wrapper
        results: dict[str, ToolResult] = dict(prior or {})
        runnable: list[CallState] = []
        for call in message.tool_calls:
            if call.id in results:
                continue
            state = calls.by_id(call.id)
            if state is not None and state.input is not None and state.invalid is None:
                runnable.append(state)
                continue
            if state is None:  # no verdict was seen for it: it cannot run
                reason: Any = "truncated" if call.error == "truncated" else "invalid_json"
                self._emit(
                    ToolInvalidInput(
                        call_id=call.id,
                        name=call.name,
                        reason=reason,
                        raw=call.raw_input,
                        error=call.error or "",
                        wrapped={wrapper: call.raw_input},
                    )
                )
            results[call.id] = invalid_result(call, None if state is None else state.invalid, wrapper)
        self.progress.step_results = dict(results)
        self._pending = [state.call_id for state in runnable]
        bound = asyncio.Semaphore(self.agent.settings.tools.max_concurrency)
        tasks: list[asyncio.Task[ToolResult]] = []
        for state in runnable:
            tasks.append(asyncio.ensure_future(self._runner.run(state, bound)))
        if not await settle(list(tasks), self._cancel_event):
            raise _Cancelled
        for state, task in zip(runnable, tasks, strict=True):
            results[state.call_id] = task.result()
        self._pending = []
        return [results[call.id] for call in message.tool_calls]

    def _record(self, call_id: str, result: ToolResult) -> None:
        self.progress.step_results[call_id] = result
        self._save()  # a call that has its result is a clean point too

    async def _resume(self, saved: Checkpoint) -> None:
        """Pick a checkpointed run up: its turns, budget, fallbacks, then the calls still pending."""
        self.progress.turns = list(saved.turns)
        self.progress.iteration = self.progress.clean_iteration = saved.iteration
        meta = saved.metadata
        self.progress.max_tokens = int(meta.get("max_tokens", self.progress.max_tokens))
        self.agent.buffered.update(meta.get("buffered", ()))
        last = self.progress.turns[-1].message if self.progress.turns else None
        if last is None or not last.tool_calls:
            return
        saved_results = {
            cid: ToolResult(cid, r["content"], r.get("name", ""), bool(r.get("is_error")))
            for cid, r in dict(meta.get("results", {})).items()
        }
        wrapper = self.agent.settings.errors.invalid_json_wrapper
        calls = ResponseCalls.from_message(last, self.agent.tools, wrapper)
        self._state = calls
        results = await self._tools(last, calls, saved_results)
        self.progress.turns.append(Turn("user", tuple(results)))
        self.progress.step_results = {}
        self._boundary()


def _after(history: Sequence[Turn], turn: Turn) -> list[Turn]:
    """``history`` then the user ``turn``; a history ending with a user turn takes its parts instead
    (providers expect user and assistant turns to alternate)."""
    if history and history[-1].role == "user" and turn.role == "user":
        return [*history[:-1], Turn("user", history[-1].parts + turn.parts)]
    return [*history, turn]
