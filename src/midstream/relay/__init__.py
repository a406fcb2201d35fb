"""The relay: a run's events leave the process, resumable by sequence number, replayable, stoppable.

Every run has one append-only log; every entry in it has one ``seq``, monotonic per run from 1.
Resume, replay after the run finished and every protocol adapter are pure functions of that log.
:class:`~midstream.relay.entry.LogEntry` is the unit stored and served.
"""

from midstream.relay.entry import LogEntry, entry_data

__all__ = ["LogEntry", "entry_data"]
