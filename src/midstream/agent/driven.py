"""What an agent run and a workflow run share: one task drives it, its events go to a queue that
``async for`` reads, and ``await`` gives its outcome.

A subclass sets ``_queue``, ``_exhausted``, ``_task`` and ``outcome`` in its ``__init__``, creates
``_task`` in :meth:`Driven.start`, puts its events on ``_queue``, sets ``outcome`` and then calls
:meth:`Driven._end_events` when it ends, and implements :meth:`Driven.cancel`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, Generic, Self, TypeVar, cast

from midstream.agent._calls import wait_through_cancel

__all__ = ["Driven"]

E = TypeVar("E")
R = TypeVar("R")
_DONE = object()


class Driven(Generic[E, R]):
    """The async iteration and the awaiting of a run driven by a task (see the module docstring)."""

    _queue: asyncio.Queue[E | object]
    _exhausted: bool
    _task: asyncio.Task[None] | None
    outcome: R | None
    _waiter_cancelled = "the task waiting for the run was cancelled"
    """The reason :meth:`result` cancels with when the task awaiting it is cancelled."""

    def start(self) -> Self:
        """Start on the running event loop (idempotent)."""
        raise NotImplementedError

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        """Stop (a no-op once ending)."""
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> E:
        self.start()
        if self._exhausted:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _DONE:
            self._exhausted = True
            raise StopAsyncIteration
        return cast(E, item)

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    async def result(self) -> R:
        """Wait for the end; cancelling the waiting task cancels the run (and waits for its cleanup)."""
        task = self.start()._task
        assert task is not None
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.cancel(self._waiter_cancelled)
            await wait_through_cancel(task)
            raise
        assert self.outcome is not None
        return self.outcome

    def _end_events(self) -> None:
        """No event follows: ``async for`` ends once the queue is read."""
        self._queue.put_nowait(_DONE)
