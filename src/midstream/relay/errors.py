"""The relay's exceptions (drawn with the rest in :mod:`midstream.errors`)::

    LocalError
    └── RelayError          the event log refused: the run's state forbids the operation
        ├── RunNotFound     no such run in the store (never created, or expired)
        ├── RunExists       create() for an id that is taken
        ├── RunClosed       append / acquire on a run that already ended
        ├── DuplicateAppend this seq is already in the log (a re-sent append): nothing was written
        ├── TooManyRuns     the process or the fleet runs as many runs as it may (HTTP 429)
        └── LeaseError      the producer lease fences appends
            ├── LeaseHeld   another producer holds an unexpired lease on the run
            └── LeaseLost   a newer lease superseded this one: this producer must stop
    RemoteError
    └── StoreError          the store itself failed (connection refused, I/O)

Readers and HTTP handlers turn :class:`RunNotFound` into 404 (or 204 for event-stream clients).
"""

from __future__ import annotations

from midstream.errors import LocalError, RemoteError

__all__ = [
    "DuplicateAppend",
    "LeaseError",
    "LeaseHeld",
    "LeaseLost",
    "RelayError",
    "RunClosed",
    "RunExists",
    "RunNotFound",
    "StoreError",
    "TooManyRuns",
]


class RelayError(LocalError):
    """The event log refused an operation: the run's state forbids it."""


class RunNotFound(RelayError, LookupError):
    """The run is not in the store: it never existed, or its replay TTL expired."""

    def __init__(self, run: str) -> None:
        super().__init__(f"no run {run!r} (unknown, or expired)")
        self.run = run


class RunExists(RelayError):
    """A run with this id already exists."""

    def __init__(self, run: str) -> None:
        super().__init__(f"run {run!r} already exists")
        self.run = run


class RunClosed(RelayError):
    """The run has ended (``close`` was called); nothing more can be appended."""

    def __init__(self, run: str) -> None:
        super().__init__(f"run {run!r} has ended; its log is closed")
        self.run = run


class DuplicateAppend(RelayError):
    """An entry with this seq is already in the log; the append wrote nothing (safe to treat as done
    when it is a retry of an append whose reply was lost)."""

    def __init__(self, run: str, seq: int) -> None:
        super().__init__(f"run {run!r} already has seq {seq}")
        self.run, self.seq = run, seq


class TooManyRuns(RelayError):
    """No run can start now: ``scope`` (``process`` or ``fleet``) runs ``limit`` runs already. The
    HTTP API answers 429 with ``Retry-After: retry_after``; nothing was started."""

    def __init__(self, limit: int, scope: str = "process", retry_after: float = 1.0) -> None:
        super().__init__(f"the {scope} runs {limit} runs, its limit: try again in {retry_after:g} s")
        self.limit, self.scope, self.retry_after = limit, scope, retry_after


class LeaseError(RelayError):
    """The producer lease refused the operation."""


class LeaseHeld(LeaseError):
    """Another producer holds the run's lease and it has not expired."""

    def __init__(self, run: str, owner: str) -> None:
        super().__init__(f"run {run!r} is being produced by {owner!r}")
        self.run, self.owner = run, owner


class LeaseLost(LeaseError):
    """A newer lease (a higher generation) superseded this one: a producer that gets this must stop."""

    def __init__(self, run: str, generation: int) -> None:
        super().__init__(f"the lease of generation {generation} on run {run!r} was superseded")
        self.run, self.generation = run, generation


class StoreError(RemoteError):
    """The store failed: cannot connect, or an I/O error."""
