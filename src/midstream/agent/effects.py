"""Side effects: a journal that outlives the run, and a per-run ledger that can undo what it did.

Every execution of a side-effecting tool (``side_effect=True``, see :mod:`midstream.agent.tools`) is
written to a :class:`Journal` as a sequence of :class:`EffectRecord` lines sharing one idempotency
key::

    started -> done -> (compensated | compensation_failed)
            -> failed

The **idempotency key** is :func:`idempotency_key` (a SHA-256 of the tool name and the canonical JSON
of its input) unless the tool supplies its own; within one run the n-th identical call (n > 0) gets
``"<key>#<n>"``, so two deliberate identical calls stay two effects while a re-run, making the same
calls in the same order, meets the same keys. Before running a call the :class:`EffectLedger` asks the
journal: an effect already ``done`` is skipped (its recorded result is returned); one left ``started``
by a crash is run again only if the tool is ``idempotent`` (otherwise the call is reported
``uncertain`` and not run: it may have happened).

On cancel, :meth:`EffectLedger.compensate_all` runs each tool's ``compensate(record)`` for the effects
this run completed, in reverse order of completion, recording ``compensated`` or
``compensation_failed`` (also used when a tool has no ``compensate``: the effect remains). The ledger
then refuses to start anything else.

A run resumed from a checkpoint meets again the calls that were running when the earlier run
stopped (their ids are ``already_run``, their results were never saved): a side-effecting call among
them is settled by the journal when it holds the effect's ``done`` (``skipped``, the recorded result);
one the journal shows ``started`` runs again only if the tool is ``idempotent`` (with the same key);
any other such call is reported ``uncertain`` with the reason: it is never silently repeated.

Journals: :class:`JsonlJournal` (one JSON object a line), :class:`SqliteJournal` (stdlib
``sqlite3``), :class:`MemoryJournal`; :func:`open_journal` picks one by file suffix. Reading is
streaming (:meth:`Journal.records` yields), lookups by key use an index. A line torn by a crash makes
its effect uncertain; any other damage raises :class:`JournalError` until :func:`repair_journal`
(``midstream journal repair``) dealt with it; :func:`check_journal` reports without writing.

**What a journal stores**, in a file created with mode 0600: for every side-effecting call, the
call id, the tool's name, the idempotency key, the run id, a timestamp, the tool's whole input (as
the model wrote it, after validation), its result (made JSON-safe) and, on failure, the error's
text. Inputs and results may hold anything a tool handles (file contents, customer data, tokens a
tool was given): keep the journal where such data may live, and delete it when its runs are over.

Example::

    journal = JsonlJournal("effects.jsonl")
    ledger = EffectLedger(journal, run_id="run-1")
    execution = await ledger.execute(write_file, "call_1", {"path": "a.txt", "text": "hi"})
    if execution.status == "skipped":
        ...                                  # done by an earlier run; execution.result is its result
    await ledger.compensate_all()            # on cancel: undo, newest first
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from midstream.agent._journal import (
    EFFECT_STATUSES,
    IN_PLACE,
    EffectRecord,
    EffectStatus,
    Journal,
    JournalDamage,
    JournalError,
    JsonlJournal,
    MemoryJournal,
    SqliteJournal,
    idempotency_key,
    open_journal,
    to_jsonable,
)
from midstream.agent._journal_repair import JournalReport, check_journal, repair_journal
from midstream.errors import LocalError, renamed

__all__ = [
    "EFFECT_STATUSES",
    "CallContext",
    "EffectLedger",
    "EffectRecord",
    "EffectStatus",
    "EffectUncertainError",
    "Execution",
    "ExecutionStatus",
    "Journal",
    "JournalDamage",
    "JournalError",
    "JournalReport",
    "JsonlJournal",
    "LedgerTool",
    "MemoryJournal",
    "SqliteJournal",
    "check_journal",
    "current_call",
    "idempotency_key",
    "open_journal",
    "repair_journal",
    "to_jsonable",
]

log = logging.getLogger("midstream.agent.effects")

ExecutionStatus = Literal["done", "failed", "skipped", "duplicate", "uncertain"]


# -- the per-run ledger --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallContext:
    """The call a tool function is running for (see :func:`current_call`)."""

    call_id: str
    tool: str
    idempotency_key: str | None
    run_id: str | None
    committed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What the call's streamed fields committed (field path -> the sink's commit result)."""


class CommittableStreams(Protocol):
    """The streamed fields of a call (:class:`midstream.agent.tools.CallStreams` provides it)."""

    def commit(self, input: Mapping[str, Any]) -> dict[str, Any]: ...
    def discard(self) -> None: ...


_CURRENT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("midstream_call", default=None)


def current_call() -> CallContext | None:
    """Inside a tool function run by :meth:`EffectLedger.execute`: its call id and idempotency key
    (pass the key on to an API that accepts one). ``None`` elsewhere."""
    return _CURRENT.get()


class LedgerTool(Protocol):
    """What the ledger needs of a tool (:class:`midstream.agent.tools.Tool` provides it)."""

    @property
    def name(self) -> str: ...
    @property
    def side_effect(self) -> bool: ...
    @property
    def idempotent(self) -> bool: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def can_compensate(self) -> bool: ...

    def validate(self, input: Mapping[str, Any]) -> Any: ...
    def idempotency_key(self, input: Mapping[str, Any]) -> str: ...
    async def invoke(self, args: Any) -> Any: ...
    async def run_compensate(self, record: EffectRecord) -> Any: ...


class EffectUncertainError(LocalError):
    """A non-idempotent effect was started by an earlier run that never recorded its end: running it
    again might do it twice, so it is not run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """What :meth:`EffectLedger.execute` did with one call.

    ``status``: ``done`` (ran, ``result``), ``failed`` (ran and raised, ``error``), ``skipped`` (an
    earlier run did it: ``result`` is the recorded one), ``duplicate`` (this call id already ran in this
    run: nothing done), ``uncertain`` (see :class:`EffectUncertainError`: nothing done).
    """

    call_id: str
    tool: str
    status: ExecutionStatus
    result: Any = None
    error: BaseException | None = None
    record: EffectRecord | None = None

    @property
    def ok(self) -> bool:
        """True when the call has a result to send back (done now or by an earlier run)."""
        return self.status in ("done", "skipped")


_UNSET: Any = object()


class EffectLedger:
    """The side effects of one run: runs calls at most once, journals them, and undoes them on cancel.

    ``skip_compensated=True`` also skips effects an earlier run did and then compensated (default:
    they run again, since they were undone). ``already_run`` seeds the call ids an earlier run started
    (a run resumed from a :class:`~midstream.agent.checkpoint.Checkpoint` passes its
    ``executed_call_ids``): met again, such a call is settled as the module docs say, never reported a
    duplicate. ``keys`` (call id -> idempotency key: :attr:`keys` of the earlier ledger, kept in the
    checkpoint) gives such a call the key it had, and numbers later identical calls after it.
    Safe for concurrent ``execute`` calls on one event loop.
    """

    def __init__(
        self,
        journal: Journal | None = None,
        *,
        run_id: str | None = None,
        clock: Callable[[], float] = time.time,
        skip_compensated: bool = False,
        already_run: Iterable[str] = (),
        keys: Mapping[str, str] | None = None,
    ) -> None:
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.run_id = run_id
        self.clock = clock
        self.skip_compensated = skip_compensated
        self._seen: set[str] = set(already_run)
        self._resumed: set[str] = set(self._seen)
        self._keys: dict[str, str] = dict(keys or {})  # call id -> the idempotency key it was given
        self._occurrences: dict[str, int] = {}
        for key in self._keys.values():  # a resumed run numbers the next identical call as the first did
            base, mark, n = key.rpartition("#")
            if not mark or not n.isdigit():
                base, n = key, "0"
            self._occurrences[base] = max(self._occurrences.get(base, 0), int(n) + 1)
        self._done: list[tuple[LedgerTool, EffectRecord]] = []
        self._inflight: set[asyncio.Future[Any]] = set()
        self._closed = False

    @property
    def executed(self) -> list[EffectRecord]:
        """The ``done`` records of side effects this run performed, in order of completion."""
        return [record for _, record in self._done]

    @property
    def closed(self) -> bool:
        """True once :meth:`compensate_all` ran: nothing may start any more."""
        return self._closed

    def has_run(self, call_id: str) -> bool:
        """True if ``execute`` was called for ``call_id`` in this run (or it was ``already_run``)."""
        return call_id in self._seen

    @property
    def run_call_ids(self) -> frozenset[str]:
        """Every call id ``execute`` accepted (plus ``already_run``): what a checkpoint saves."""
        return frozenset(self._seen)

    @property
    def keys(self) -> dict[str, str]:
        """The idempotency key of every side-effecting call so far, by call id (what a checkpoint
        saves, so that a resumed run gives a call the key it had and numbers new calls on)."""
        return dict(self._keys)

    def key_for(self, tool: LedgerTool, input: Mapping[str, Any]) -> str:
        """The idempotency key of the next call of ``tool`` with ``input`` in this run."""
        base = tool.idempotency_key(input)
        count = self._occurrences.get(base, 0)
        self._occurrences[base] = count + 1
        return base if count == 0 else f"{base}#{count}"

    async def execute(
        self,
        tool: LedgerTool,
        call_id: str,
        input: Mapping[str, Any],
        *,
        args: Any = _UNSET,
        streams: CommittableStreams | None = None,
    ) -> Execution:
        """Run ``tool`` for call ``call_id`` with its JSON ``input`` (validated by ``tool.validate``
        unless ``args`` is given; a :class:`~midstream.core.toolargs.ToolInputError` is raised before
        anything is recorded).

        A call id runs at most once per ledger. Side-effecting tools are journaled and deduplicated
        (see the module docs). ``streams`` (the call's streamed fields) are committed right before the
        tool runs, inside its journaled span, and discarded when it does not run. A tool's exception
        (or a failed commit) becomes a ``failed`` execution; cancellation propagates, after the journal
        got the call's end: a sync tool's thread cannot be stopped, so it is awaited and its effect
        recorded (and compensable); an async tool is cancelled cooperatively.
        """
        if self._closed:
            raise LocalError("the run was compensated: no tool call may start")
        resumed = call_id in self._resumed
        if call_id in self._seen and not resumed:
            _discard(streams)
            error = LocalError(f"call {call_id!r} already ran in this run: it is not run twice")
            return Execution(call_id=call_id, tool=tool.name, status="duplicate", error=error)
        if args is _UNSET:
            args = tool.validate(input)
        self._seen.add(call_id)
        self._resumed.discard(call_id)
        key = (self._keys.get(call_id) or self.key_for(tool, input)) if tool.side_effect else None
        if key is not None:
            self._keys[call_id] = key
        if key is None and resumed:
            _discard(streams)
            return self._resumed_call(tool, call_id, "the tool keeps no journal")
        if key is not None:
            prior = self.journal.latest(key)
            earlier = self._earlier(tool, call_id, prior, resumed)
            if earlier is not None:
                _discard(streams)
                return earlier
            self._append(call_id, tool.name, key, "started", input=input)
        return await self._run(tool, CallContext(call_id, tool.name, key, self.run_id), args, input, streams)

    def _earlier(
        self, tool: LedgerTool, call_id: str, prior: EffectRecord | None, resumed: bool
    ) -> Execution | None:
        """What an earlier run's record of this effect decides (``None``: run it)."""
        if prior is None:
            return self._resumed_call(tool, call_id, "the journal holds no record of it") if resumed else None
        if resumed and prior.status not in IN_PLACE:
            if prior.status == "started" and tool.idempotent:
                return None  # the tool's declared policy: it runs again, with the same idempotency key
            return self._resumed_call(tool, call_id, f"the journal's last word on it is {prior.status!r}")
        in_place = prior.status in IN_PLACE or (self.skip_compensated and prior.status == "compensated")
        if in_place:
            return Execution(
                call_id=call_id, tool=tool.name, status="skipped", result=prior.result, record=prior
            )
        if prior.status == "started" and not tool.idempotent:
            why = f" ({prior.error})" if prior.error else ""
            error = EffectUncertainError(
                f"tool {tool.name!r}: an earlier run started this effect and never recorded its end{why}"
            )
            return Execution(call_id=call_id, tool=tool.name, status="uncertain", error=error, record=prior)
        return None

    def _resumed_call(self, tool: LedgerTool, call_id: str, why: str) -> Execution:
        error = EffectUncertainError(
            f"tool {tool.name!r}: call {call_id!r} was running when the earlier run stopped and its "
            f"result was not saved ({why}); a call id never runs twice"
        )
        return Execution(call_id=call_id, tool=tool.name, status="uncertain", error=error)

    async def _run(
        self, tool: LedgerTool, call: CallContext, args: Any, input: Any, streams: CommittableStreams | None
    ) -> Execution:
        call_id, key = call.call_id, call.idempotency_key
        if streams is not None:
            try:
                call = dataclasses.replace(call, committed=streams.commit(input))
            except Exception as exc:
                _discard(streams)
                if key is not None:
                    self._append(call_id, tool.name, key, "failed", input=input, error=_describe(exc))
                return Execution(call_id=call_id, tool=tool.name, status="failed", error=exc)
        ctx = contextvars.copy_context()
        ctx.run(_CURRENT.set, call)
        task: asyncio.Future[Any] = asyncio.get_running_loop().create_task(tool.invoke(args), context=ctx)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.done() and (current is None or current.cancelling() == 0):
                return self._finish(tool, call_id, key, task, input)  # the tool cancelled itself
            if tool.is_async:
                task.cancel()  # cooperative: the coroutine sees CancelledError
            await _settle(task)
            self._finish(tool, call_id, key, task, input)
            raise
        except Exception:  # the task holds the exception; _finish reports it
            pass
        return self._finish(tool, call_id, key, task, input)

    def _finish(
        self, tool: LedgerTool, call_id: str, key: str | None, task: asyncio.Future[Any], input: Any
    ) -> Execution:
        error = asyncio.CancelledError("the tool was cancelled") if task.cancelled() else task.exception()
        if error is not None:
            if key is not None:
                self._append(call_id, tool.name, key, "failed", input=input, error=_describe(error))
            return Execution(call_id=call_id, tool=tool.name, status="failed", error=error)
        result = task.result()
        record = None
        if key is not None:
            record = self._append(call_id, tool.name, key, "done", input=input, result=to_jsonable(result))
            self._done.append((tool, record))
        return Execution(call_id=call_id, tool=tool.name, status="done", result=result, record=record)

    def _append(self, call_id: str, tool: str, key: str, status: EffectStatus, **fields: Any) -> EffectRecord:
        if "input" in fields:
            fields["input"] = to_jsonable(fields["input"])
        record = EffectRecord(call_id, tool, key, status, time=self.clock(), run_id=self.run_id, **fields)
        self.journal.append(record)
        return record

    def close(self) -> None:
        """Refuse every new call and undo nothing (the run goes on elsewhere, from these effects)."""
        self._closed = True

    async def compensate_all(self, *, wait_timeout: float | None = None) -> list[EffectRecord]:
        """Undo this run's completed side effects, newest first; returns the records written.

        Waits (up to ``wait_timeout`` s) for calls still running to settle first, so their effects are
        undone too. Each ``compensate`` that raises is recorded ``compensation_failed`` and the others
        still run; a tool without ``compensate`` is recorded ``compensation_failed`` as well (its effect
        remains). Afterwards the ledger is closed. Calling it again undoes nothing twice.
        """
        self._closed = True
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=wait_timeout)
        written: list[EffectRecord] = []
        while self._done:
            tool, record = self._done.pop()
            written.append(await self._compensate_one(tool, record))
        return written

    async def _compensate_one(self, tool: LedgerTool, record: EffectRecord) -> EffectRecord:
        key, call_id = record.idempotency_key, record.call_id
        if not tool.can_compensate:
            return self._append(
                call_id,
                tool.name,
                key,
                "compensation_failed",
                input=record.input,
                error="the tool has no compensate function",
            )
        try:
            await tool.run_compensate(record)
        except Exception as exc:
            log.warning("compensation of %s (%s) failed: %s", call_id, tool.name, exc)
            return self._append(
                call_id, tool.name, key, "compensation_failed", input=record.input, error=_describe(exc)
            )
        return self._append(call_id, tool.name, key, "compensated", input=record.input)


def _discard(streams: CommittableStreams | None) -> None:
    if streams is not None:
        try:
            streams.discard()
        except Exception as exc:  # a sink that cannot clean up must not hide the call's outcome
            log.warning("discarding streamed fields failed: %s", exc)


async def _settle(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` is done, even through further cancellation of the waiter."""
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            continue


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__getattr__ = renamed(__name__, {"EffectUncertain": EffectUncertainError})
