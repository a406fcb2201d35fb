"""A worker: takes runs from the queue, executes them under a renewed lease, resumes orphaned ones.

Each run a worker takes is executed by a :class:`~midstream.relay.runner.LocalExecutor` with a
:class:`~midstream.worker.RedisDurability`: its effects journal and its checkpoints live in Redis,
fenced by the run's lease. A worker that dies (kill -9) stops renewing both its leases and its queue
entries; after ``lease_ttl`` another worker reclaims the entry (``XAUTOCLAIM``), takes the run's
lease (a new generation: the dead worker's late appends are refused) and resumes the run:

1. the run's latest checkpoint and the entries logged after it are read;
2. if ``run_end`` is among them the run had finished, and the log is only closed;
3. otherwise a ``resumed`` entry is appended: ``previous`` and ``worker`` (the owners),
   ``checkpoint_seq`` (the last entry the checkpoint covers), ``iteration``, and ``discarded``: the
   seqs of the partial response that was streaming when the worker died (readers drop it, as after
   a mid-stream retry with ``mode: restart``; the response is asked for again);
4. the agent resumes from the checkpoint: calls whose results it holds are not run again; a call
   the journal shows done reuses the recorded result; one it shows started follows the tool's policy
   (``idempotent``: run again with the same idempotency key; otherwise reported uncertain, never
   silently repeated).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from midstream.agent.loop import Agent
from midstream.relay.entry import LogEntry
from midstream.relay.errors import LeaseHeld, RelayError, RunClosed, RunNotFound, StoreError
from midstream.relay.log import Lease
from midstream.relay.runner import LocalExecutor, RunRequest
from midstream.relay.stores import RedisLog
from midstream.worker._durable import RedisDurability
from midstream.worker._queue import Claim, RunQueue

__all__ = ["RESPONSE_KINDS", "Worker"]

log = logging.getLogger("midstream.worker")

RESPONSE_KINDS = frozenset(
    {
        "response_start",
        "block_start",
        "text_delta",
        "thinking_delta",
        "signature_delta",
        "citation_delta",
        "tool_args_delta",
        "block_stop",
        "usage_update",
        "response_end",
        "stream_error",
        "tool_field_start",
        "tool_field_delta",
        "tool_field_complete",
        "tool_call_ready",
        "tool_call_invalid",
        "tool_ready",
        "tool_invalid_input",
    }
)
"""Kinds of entries that belong to a response: after the checkpoint, they are a discarded partial."""


class Worker:
    """Executes runs from the queue on the Redis of ``log``; see the module docstring.

    ``factory`` builds each run's agent (:class:`~midstream.relay.runner.AgentFactory`).
    ``concurrency`` bounds the runs executing here; ``lease_ttl`` is how long a silent worker keeps
    its runs (leases and queue entries are renewed every third of it). ``owner`` names the worker
    in leases and in ``resumed`` entries (default: host, pid and a random suffix).

    Example::

        async with RedisLog("redis://127.0.0.1:6379/0") as log:
            worker = Worker(log, AgentFactory(provider="anthropic", model="claude-sonnet-4-5"))
            await worker.run()             # until worker.stop() or the task is cancelled
    """

    def __init__(
        self,
        log: RedisLog,
        factory: Callable[[RunRequest], Agent],
        *,
        owner: str | None = None,
        concurrency: int = 16,
        lease_ttl: float = 10.0,
        queue: RunQueue | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        self.log = log
        self.owner = owner or f"worker:{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency, self.lease_ttl = concurrency, lease_ttl
        self.queue = queue or RunQueue(log.url, prefix=log.prefix)
        self.durability = RedisDurability(log)
        self.executor = LocalExecutor(
            log, factory, owner=self.owner, lease_ttl=lease_ttl, durability=self.durability
        )
        self._held: dict[str, Claim] = {}  # run -> the queue entry this worker holds for it
        self._tasks: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Future[None]] = set()
        self._stopping = asyncio.Event()
        self.started = 0
        self.resumed = 0

    def stop(self) -> None:
        """Take no more runs; :meth:`run` returns once the runs executing here ended."""
        self._stopping.set()

    async def run(self, *, grace: float = 30.0, handoff: bool = False) -> list[str]:
        """Take and execute runs until :meth:`stop`; then wait up to ``grace`` seconds for the runs
        executing here. Those still running are cancelled (their logs end ``cancelled``), or, with
        ``handoff``, left as they are and returned: the caller then ends the process at once
        (``os._exit``), and other workers resume them after ``lease_ttl``, as after a crash."""
        await self.queue.ensure_group()
        keeper = asyncio.get_running_loop().create_task(self._keep_fresh())
        try:
            next_reclaim = 0.0
            loop = asyncio.get_running_loop()
            while not self._stopping.is_set():
                free = self.concurrency - len(self._held)
                if free <= 0:
                    await self._wait(0.1)
                    continue
                claims: list[Claim] = []
                try:
                    if loop.time() >= next_reclaim:
                        next_reclaim = loop.time() + self.lease_ttl / 3
                        claims = await self.queue.reclaim(self.owner, free, min_idle=self.lease_ttl)
                    if not claims:
                        claims = await self.queue.read(self.owner, free, block=0.5)
                except StoreError as exc:
                    log.warning("%s: cannot read the queue: %s", self.owner, exc)
                    await self._wait(1.0)
                    continue
                for claim in claims:
                    await self._take(claim)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=grace)
            if handoff:
                return sorted(self.executor.running)
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
            if not handoff:
                await self.executor.aclose(grace=5.0)
        return []

    async def aclose(self) -> None:
        """Close the queue and checkpoint connections (the log is the caller's)."""
        await self.queue.aclose()
        await self.durability.aclose()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _keep_fresh(self) -> None:
        """The queue side of the lease: entries of runs alive here do not go idle."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            with contextlib.suppress(StoreError):
                await self.queue.touch(self.owner, [c.id for c in self._held.values()])

    async def _take(self, claim: Claim) -> None:
        """Execute or resume the run of ``claim`` (or let it go, see the module docstring)."""
        if claim.run in self._held:  # its entry went idle while the run executes here (a stalled loop)
            self._held[claim.run] = claim
            return
        try:
            status = await self.log.status(claim.run)
            if status is None or status.ended:
                await self.queue.finish(claim)
                return
            request = RunRequest.model_validate_json(claim.request)
            lease = await self.log.acquire(claim.run, self.owner, ttl=self.lease_ttl)
        except LeaseHeld:
            return  # its worker is alive after all: the entry is reclaimed again if it goes silent
        except (RunClosed, RunNotFound):
            await self.queue.finish(claim)
            return
        except StoreError as exc:
            log.warning("%s: cannot take run %s: %s", self.owner, claim.run, exc)
            return
        except ValueError as exc:  # a request no front-end would have enqueued
            log.error("%s: run %s has an invalid request: %s", self.owner, claim.run, exc)
            return
        self._held[claim.run] = claim
        if status.last_seq == 0:  # nothing was logged yet: nothing to resume
            self.started += 1
            task = self.executor.execute(lease, request)
        else:
            try:
                resumed = await self._resume(lease, request, status.owner)
            except (RelayError, StoreError) as exc:
                log.warning("%s: cannot resume run %s: %s", self.owner, claim.run, exc)
                resumed = None
            if resumed is None:
                await self._release(claim)
                return
            task = resumed
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._spawn(self._release(claim)))

    def _spawn(self, work: Any) -> None:
        helper = asyncio.ensure_future(work)
        self._helpers.add(helper)
        helper.add_done_callback(self._helpers.discard)

    async def _resume(
        self, lease: Lease, request: RunRequest, previous: str | None
    ) -> asyncio.Task[None] | None:
        """Pick up a run another worker left; None when it had in fact finished (now closed)."""
        checkpoint, covered = await self.durability.load(lease.run)
        entries = [e async for e in self.log.read(lease.run, covered) if isinstance(e, LogEntry)]
        end = next((e for e in entries if e.kind == "run_end"), None)
        if end is not None:
            await self.log.close(lease, str(end.data.get("terminal") or "failed"))
            return None
        discarded = [e.seq for e in entries if e.kind in RESPONSE_KINDS]
        data: dict[str, Any] = {
            "previous": previous,
            "worker": self.owner,
            "checkpoint_seq": covered,
            "iteration": checkpoint.iteration if checkpoint is not None else 0,
            "discarded": [discarded[0], discarded[-1]] if discarded else None,
            "reason": "the run's execution stopped (its worker died, or lost the store) and went on here",
        }
        await self.log.append(lease, "resumed", data, agent=request.agent)
        self.resumed += 1
        log.info("%s: resuming run %s from seq %d (was %s)", self.owner, lease.run, covered, previous)
        return self.executor.execute(lease, request, checkpoint=checkpoint, started=True)

    async def _release(self, claim: Claim) -> None:
        """The run stopped here: leave the queue entry to whoever now owns the run, unless it ended."""
        self._held.pop(claim.run, None)
        try:
            status = await self.log.status(claim.run)
            if status is None or status.ended:
                await self.queue.finish(claim)
        except StoreError as exc:
            log.warning("%s: cannot release run %s: %s", self.owner, claim.run, exc)
