"""Who executes a run: the seam between the HTTP front end and the agent that produces the log.

The front end creates a run in the :class:`~midstream.relay.log.EventLog` and hands its
:class:`RunRequest` to an :class:`Executor`. :class:`LocalExecutor` runs it in this process (the
embedded default of ``midstream serve``): it takes the run's producer lease, runs an
:class:`~midstream.agent.loop.Agent`, coalesces tiny deltas and appends every event, watches the
store's control channel so a cancel made through *any* relay process stops the agent (the provider
connection closes, pending tools never start, completed side effects are compensated), and closes
the log with the run's terminal state. A fleet of workers consuming a queue
(:mod:`midstream.worker`) is another executor behind the same two methods; its workers run each run
through :meth:`LocalExecutor.execute` with a :class:`Durability` (checkpoints and the effects
journal in the shared store), so a run whose worker died can be resumed by another.

``max_runs`` bounds the runs executing in one process: ``start`` beyond it raises
:class:`~midstream.relay.errors.TooManyRuns` (the HTTP API's 429) and starts nothing.

The log of a run is ``run_start`` (the request, without settings), then every event of the agent run
(stream events, tool field events, lifecycle events) and finally ``run_end``: always exactly one,
even when the agent could not be built. Should executing the run raise anything else (a bug), the
agent is cancelled, the log ends with ``run_end`` ``failed`` whose ``error`` names the exception's
type, and the traceback goes to the ``midstream.relay`` logger only: readers never wait for the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from midstream.agent.checkpoint import Checkpoint
from midstream.agent.effects import Journal
from midstream.agent.events import RunEnd
from midstream.agent.loop import Agent
from midstream.agent.tools import Tool
from midstream.client.stream import AsyncClient
from midstream.config import Settings
from midstream.errors import LocalError
from midstream.message import Message, TextBlock
from midstream.relay.coalesce import Coalescer, CoalesceSettings, Item
from midstream.relay.entry import entry_data
from midstream.relay.errors import DuplicateAppend, LeaseError, RelayError, StoreError, TooManyRuns
from midstream.relay.log import EventLog, Lease
from midstream.wire.profiles import PROFILES

__all__ = ["AgentFactory", "Durability", "Executor", "HistoryMessage", "LocalExecutor", "RunRequest"]

log = logging.getLogger("midstream.relay")


class HistoryMessage(BaseModel):
    """One earlier message of the conversation a run continues: who said it and its text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: str = Field(max_length=200_000)


class RunRequest(BaseModel):
    """The body of ``POST /v1/runs``.

    ``history`` is the conversation before ``prompt`` (text messages, oldest first), which the model
    sees before the prompt; the chat front ends (``/api/chat``, ``/api/ag-ui``) fill it from the
    messages they are sent. ``settings`` are per-run agent settings (the sections of
    ``midstream.toml``) laid over the server's; ``hooks`` are refused here (they run commands: only
    the server's own settings file defines them). ``coalesce`` sets ``buffer_timeout_ms`` (0: off)
    and ``max_bytes``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, max_length=200_000)
    history: tuple[HistoryMessage, ...] = Field(default=(), max_length=1000)
    provider: str | None = None
    model: str | None = Field(default=None, max_length=200)
    agent: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] | None = None
    coalesce: dict[str, Any] | None = None
    max_iterations: int | None = Field(default=None, ge=1, le=100)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is not None and value not in PROFILES:  # read now: a provider may be registered later
            raise ValueError(f"unknown provider {value!r}; one of: {', '.join(PROFILES)}")
        return value

    @field_validator("settings")
    @classmethod
    def _no_hooks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and "hooks" in value:
            raise ValueError("hooks cannot be set per run; put them in the server's settings file")
        if value is not None:
            Settings.from_mapping(value, source="settings")  # every key known, every value valid
        return value

    @field_validator("coalesce")
    @classmethod
    def _coalesce(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        CoalesceSettings.coerce(value)
        return value

    def history_for(self, provider: str) -> list[Any]:
        """:attr:`history` as :meth:`Agent.run <midstream.agent.loop.Agent.run>` takes it: user text,
        and the assistant's answers as completed Messages of ``provider``."""
        return [
            {"role": "user", "content": m.content}
            if m.role == "user"
            else Message(provider=provider, blocks=(TextBlock(text=m.content),), terminal="completed")
            for m in self.history
            if m.content
        ]

    def start_data(self) -> dict[str, Any]:
        """The ``run_start`` entry: what was asked, by whom (settings left out)."""
        return {
            "prompt": self.prompt,
            "provider": self.provider,
            "model": self.model,
            "agent": self.agent,
        }


class AgentFactory:
    """Builds the :class:`Agent` for a request from the server's configuration.

    The server fixes what a request may not choose (base URL, key, tools, hooks); a request may pick
    the provider, model, agent name, settings, iteration and token limits. ``tools`` are the tools
    every run gets; ``api_key`` None means each provider's usual environment variable.
    """

    def __init__(
        self,
        *,
        provider: str = "anthropic",
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        settings: Settings | None = None,
        default_models: Mapping[str, str] | None = None,
        max_tokens: int = 1024,
    ) -> None:
        self.provider, self.model, self.base_url = provider, model, base_url
        self._api_key = api_key
        self.tools = list(tools)
        self.settings = settings or Settings()
        self.default_models = dict(default_models or {})
        self.max_tokens = max_tokens

    def __call__(self, request: RunRequest) -> Agent:
        provider = request.provider or self.provider
        model = request.model or (self.model if provider == self.provider else None)
        model = model or self.default_models.get(provider)
        if not model:
            raise LocalError(f'no model for provider {provider!r}: pass "model" in the request')
        settings = self.settings
        if request.settings:
            merged = _merge(settings.model_dump(), request.settings)
            settings = Settings.from_mapping(merged, source="settings")
        client = AsyncClient(provider, self._api_key, self.base_url, model=model, **settings.client.options())
        return Agent(
            client,
            self.tools,
            settings=settings,
            name=request.agent,
            model=model,
            max_tokens=request.max_tokens or self.max_tokens,
        )


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, table by table (a key ``over`` does not name keeps its value)."""
    out = dict(base)
    for key, value in over.items():
        inner = out.get(key)
        out[key] = _merge(inner, value) if isinstance(inner, dict) and isinstance(value, Mapping) else value
    return out


class Executor(Protocol):
    """Executes runs whose log was created; ``start`` returns once the run is under way."""

    async def start(self, run: str, request: RunRequest) -> None:
        """Begin executing ``run`` (its log exists and has no producer yet)."""
        ...

    async def aclose(self) -> None:
        """Cancel what is still running here and wait for the logs to close."""
        ...


class Durability(Protocol):
    """Where a run's effects journal and checkpoints live, so that another process can resume it
    (the worker's Redis implementation is :class:`midstream.worker.RedisDurability`)."""

    def journal(self, lease: Lease) -> Journal:
        """The run's effects journal; its writes are fenced by ``lease`` (a superseded producer's
        write raises :class:`~midstream.relay.errors.LeaseLost`, so its tool never starts)."""
        ...

    async def save(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` as the run's latest, with ``lease.seq`` (every entry before it is in
        the log); fenced by ``lease`` like an append."""
        ...


class _Snapshot:
    """A checkpoint taken by the agent run, queued after the events that led to it."""

    __slots__ = ("checkpoint",)

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint


class LocalExecutor:
    """Runs agents in this process's event loop; see the module docstring.

    ``owner`` names this process in the producer leases (default: host and pid). ``lease_ttl`` is how
    long a lease lasts without renewal (renewed every third of it). ``max_runs`` (None: no limit)
    bounds the runs executing here at once. ``durability`` keeps each run's journal and checkpoints
    where another process finds them.
    """

    def __init__(
        self,
        log: EventLog,
        factory: Callable[[RunRequest], Agent],
        *,
        owner: str | None = None,
        lease_ttl: float = 30.0,
        max_runs: int | None = None,
        durability: Durability | None = None,
    ) -> None:
        if max_runs is not None and max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.log, self.factory = log, factory
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl = lease_ttl
        self.max_runs = max_runs
        self.durability = durability
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, Any] = {}  # run id -> the agent Run executing it

    @property
    def running(self) -> list[str]:
        """The runs executing here now."""
        return [run for run, task in self._tasks.items() if not task.done()]

    async def start(self, run: str, request: RunRequest) -> None:
        if self.max_runs is not None and len(self.running) >= self.max_runs:
            raise TooManyRuns(self.max_runs, "process")
        lease = await self.log.acquire(run, self.owner, ttl=self.lease_ttl)
        self.execute(lease, request)

    def execute(
        self,
        lease: Lease,
        request: RunRequest,
        *,
        checkpoint: Checkpoint | None = None,
        started: bool = False,
    ) -> asyncio.Task[None]:
        """Execute the run of ``lease`` in the background and return its task: from ``checkpoint``
        when given (a resumed run), writing ``run_start`` unless ``started`` (it is in the log)."""
        run = lease.run
        work = self._execute(lease, request, checkpoint=checkpoint, started=started)
        task = asyncio.get_running_loop().create_task(work, name=f"relay-{run}")
        self._tasks[run] = task
        task.add_done_callback(lambda _t: self._tasks.pop(run, None))
        return task

    async def wait(self, run: str) -> None:
        """Wait until ``run`` finished executing here (no-op if it does not run here)."""
        task = self._tasks.get(run)
        if task is not None:
            await asyncio.shield(task)

    async def aclose(self, *, grace: float = 10.0) -> None:
        """Cancel every run executing here the way a cancel request would (its log ends
        ``cancelled``, side effects compensated); after ``grace`` seconds, stop waiting."""
        for agent_run in list(self._runs.values()):
            agent_run.cancel("the relay is shutting down")
        tasks = list(self._tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(BaseException):
                    await task

    async def _execute(
        self, lease: Lease, request: RunRequest, *, checkpoint: Checkpoint | None, started: bool
    ) -> None:
        writer = _Writer(self.log, lease, request.agent)
        writer.started = started
        try:
            try:
                agent = self.factory(request)
            except (LocalError, ValueError) as exc:
                reason = f"the run could not start: {exc}"
                if not started:
                    await writer.write([("run_start", request.start_data())])
                await writer.write([("run_end", {"terminal": "failed", "reason": reason, "iterations": 0})])
                await self.log.close(lease, "failed")
                return
            if self.durability is not None:
                agent.journal = self.durability.journal(lease)
            if not started:
                begun = {**request.start_data(), "provider": agent.client.provider, "model": agent.model}
                await writer.write([("run_start", {**begun, "agent": agent.name})])
            try:
                terminal = await self._drive(agent, request, writer, checkpoint)
            finally:
                await agent.client.aclose()
            await self.log.close(lease, terminal)
        except LeaseError:
            log.warning("run %s: another producer took over; this one stopped", lease.run)
        except (RelayError, StoreError) as exc:
            log.error("run %s: the event log failed: %s", lease.run, exc)
        except Exception as exc:  # a bug here must still end the log, or readers wait for the TTL
            log.exception("run %s: the relay failed while executing it", lease.run)
            await self._end_failed(writer, request, exc)

    async def _end_failed(self, writer: _Writer, request: RunRequest, exc: Exception) -> None:
        """End the log of a run whose execution raised: ``run_end`` ``failed`` naming the exception's
        type (its message may hold secrets: it goes to the server log only), then close."""
        name = type(exc).__name__
        reason = f"the relay failed while executing the run ({name}); the server log has the details"
        end = RunEnd(terminal="failed", reason=reason, iterations=writer.iterations, error=name)
        try:
            if not writer.started:
                await writer.write([("run_start", request.start_data())])
            if writer.terminal is None:
                await writer.write([entry_data(end)])
            await self.log.close(writer.lease, writer.terminal or "failed")
        except LeaseError:
            log.warning("run %s: another producer took over; this one stopped", writer.lease.run)
        except (RelayError, StoreError) as error:
            log.error("run %s: the event log failed while ending the run: %s", writer.lease.run, error)

    async def _drive(
        self, agent: Agent, request: RunRequest, writer: _Writer, checkpoint: Checkpoint | None
    ) -> str:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        snapshots = None if self.durability is None else lambda c: events.put_nowait(_Snapshot(c))
        if checkpoint is not None:
            run = agent.resume(
                checkpoint,
                max_iterations=request.max_iterations,
                on_event=events.put_nowait,
                on_checkpoint=snapshots,
            )
        else:
            run = agent.run(
                request.prompt,
                history=request.history_for(agent.client.provider),
                max_iterations=request.max_iterations,
                on_event=events.put_nowait,
                session_id=writer.lease.run,
                on_checkpoint=snapshots,
            )
        run.start()
        self._runs[writer.lease.run] = run
        coalescer = Coalescer(CoalesceSettings.coerce(request.coalesce))
        watch = loop.create_task(self.log.cancelled(writer.lease.run))
        watch.add_done_callback(lambda task: _cancel_on_request(task, run))
        renew = loop.create_task(self._renew(writer.lease, run))
        try:
            while True:
                deadline = coalescer.deadline
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    event = await asyncio.wait_for(events.get(), timeout)
                except TimeoutError:
                    await writer.write(coalescer.due(loop.time()))
                    continue
                if isinstance(event, _Snapshot):  # every event before it goes to the log first
                    assert self.durability is not None
                    await writer.write(coalescer.flush())
                    await self.durability.save(writer.lease, event.checkpoint)
                    continue
                kind, data = entry_data(event)
                try:
                    await writer.write(coalescer.push(kind, data, now=loop.time()))
                except (RelayError, StoreError) as exc:
                    _stop(run, exc, "the event log cannot be written")
                    raise
                if kind == "run_end":
                    break
            await writer.write(coalescer.flush())
            result = await run
            return str(result.terminal)
        except asyncio.CancelledError:
            run.cancel("the relay is shutting down")
            with contextlib.suppress(BaseException):
                await run
            raise
        except Exception as exc:  # the agent must not go on with nobody writing its events
            _stop(run, exc, "the relay failed while executing the run")
            with contextlib.suppress(BaseException):
                await run
            with contextlib.suppress(Exception):  # what was read before the failure stays in the log
                await writer.write(coalescer.flush())
            raise
        finally:
            self._runs.pop(writer.lease.run, None)
            watch.cancel()
            renew.cancel()

    async def _renew(self, lease: Lease, run: Any) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await self.log.renew(lease, ttl=self.lease_ttl)
            except LeaseError as exc:
                _stop(run, exc, "another producer took over this run")
                return
            except StoreError as exc:
                log.warning("run %s: cannot renew the lease: %s", lease.run, exc)


def _stop(run: Any, exc: Exception, reason: str) -> None:
    """Stop the agent run after ``exc``. A lost lease means another producer goes on with the run
    from the effects this one completed: they are not compensated."""
    if isinstance(exc, LeaseError):
        run.cancel("another producer took over this run", compensate=False)
    else:
        run.cancel(reason)


def _cancel_on_request(watch: asyncio.Task[str], run: Any) -> None:
    """The store said a cancel was requested: stop the agent run with the request's reason."""
    if not watch.cancelled() and watch.exception() is None:
        run.cancel(watch.result())


class _Writer:
    """Appends items under the lease; a store error is retried with the same seq (a retry whose first
    attempt did land is refused as a duplicate, which counts as written)."""

    def __init__(self, log: EventLog, lease: Lease, agent: str | None, retries: int = 3) -> None:
        self.log, self.lease, self.agent, self.retries = log, lease, agent, retries
        self.started = False  # run_start written
        self.iterations = 0  # iteration_start entries written
        self.terminal: str | None = None  # the terminal of the run_end written

    async def write(self, items: list[Item]) -> None:
        for kind, data in items:
            await self._append(kind, data)
            if kind == "run_start":
                self.started = True
            elif kind == "iteration_start":
                self.iterations += 1
            elif kind == "run_end":
                self.terminal = str(data.get("terminal") or "failed")

    async def _append(self, kind: str, data: Mapping[str, Any]) -> None:
        seq = self.lease.seq + 1
        for attempt in range(self.retries + 1):
            try:
                await self.log.append(self.lease, kind, data, agent=self.agent, seq=seq)
                return
            except DuplicateAppend:
                if attempt == 0:
                    raise
                self.lease.seq = seq
                return
            except StoreError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
