"""The relay: a run's events leave the process, resumable by sequence number, replayable, stoppable.

Every run has one append-only log; every entry in it has one ``seq``, monotonic per run from 1.
Resume, replay after the run finished and every protocol adapter are pure functions of that log.

* :mod:`midstream.relay.entry` -- :class:`LogEntry`, the unit stored and served, and ``entry_data``;
* :mod:`midstream.relay.log` -- the :class:`EventLog` contract (lease-fenced appends, exact reads,
  ``resync``, replay, cancel); :mod:`midstream.relay.stores` -- :class:`MemoryLog`, :class:`SQLiteLog`
  (the embedded default), :class:`RedisLog` and :func:`open_log`;
* :mod:`midstream.relay.app` -- the HTTP API (:func:`create_app`); :mod:`midstream.relay.runner` -- who
  executes a run (:class:`LocalExecutor`, :class:`AgentFactory`, :class:`RunRequest`);
  :mod:`midstream.relay.coalesce` -- merging tiny deltas; :mod:`midstream.relay.serve` -- :func:`running`;
* :mod:`midstream.relay.adapters` -- the AI SDK UI Message Stream and AG-UI, translated from the log;
* :mod:`midstream.relay.errors` -- the exceptions.

Names are imported on first use, so ``midstream.relay.entry`` alone loads neither Starlette nor Redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midstream.relay.app import create_app
    from midstream.relay.coalesce import Coalescer, CoalesceSettings
    from midstream.relay.entry import LogEntry, entry_data
    from midstream.relay.errors import (
        DuplicateAppend,
        LeaseError,
        LeaseHeld,
        LeaseLost,
        RelayError,
        RunClosed,
        RunExists,
        RunNotFound,
        StoreError,
        TooManyRuns,
    )
    from midstream.relay.log import HEARTBEAT, EventLog, Lease, Resync, RunStatus
    from midstream.relay.runner import AgentFactory, Executor, LocalExecutor, RunRequest
    from midstream.relay.serve import running
    from midstream.relay.stores import MemoryLog, RedisLog, SQLiteLog, open_log

_EXPORTS: dict[str, str] = {
    "create_app": "midstream.relay.app",
    "CoalesceSettings": "midstream.relay.coalesce",
    "Coalescer": "midstream.relay.coalesce",
    "LogEntry": "midstream.relay.entry",
    "entry_data": "midstream.relay.entry",
    "DuplicateAppend": "midstream.relay.errors",
    "LeaseError": "midstream.relay.errors",
    "LeaseHeld": "midstream.relay.errors",
    "LeaseLost": "midstream.relay.errors",
    "RelayError": "midstream.relay.errors",
    "RunClosed": "midstream.relay.errors",
    "RunExists": "midstream.relay.errors",
    "RunNotFound": "midstream.relay.errors",
    "StoreError": "midstream.relay.errors",
    "TooManyRuns": "midstream.relay.errors",
    "HEARTBEAT": "midstream.relay.log",
    "EventLog": "midstream.relay.log",
    "Lease": "midstream.relay.log",
    "Resync": "midstream.relay.log",
    "RunStatus": "midstream.relay.log",
    "AgentFactory": "midstream.relay.runner",
    "Executor": "midstream.relay.runner",
    "LocalExecutor": "midstream.relay.runner",
    "RunRequest": "midstream.relay.runner",
    "running": "midstream.relay.serve",
    "MemoryLog": "midstream.relay.stores",
    "RedisLog": "midstream.relay.stores",
    "SQLiteLog": "midstream.relay.stores",
    "open_log": "midstream.relay.stores",
}

__all__ = [
    "HEARTBEAT",
    "AgentFactory",
    "CoalesceSettings",
    "Coalescer",
    "DuplicateAppend",
    "EventLog",
    "Executor",
    "Lease",
    "LeaseError",
    "LeaseHeld",
    "LeaseLost",
    "LocalExecutor",
    "LogEntry",
    "MemoryLog",
    "RedisLog",
    "RelayError",
    "Resync",
    "RunClosed",
    "RunExists",
    "RunNotFound",
    "RunRequest",
    "RunStatus",
    "SQLiteLog",
    "StoreError",
    "TooManyRuns",
    "create_app",
    "entry_data",
    "open_log",
    "running",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
