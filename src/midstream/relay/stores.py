"""Open an :class:`~midstream.relay.log.EventLog` from a URL, as ``midstream serve --store`` does.

=============================  ===========================================================
``sqlite`` (the default)       a file under the user's state directory (see ``default_path``)
``sqlite:///abs/path.db``      that file (``sqlite://rel/path.db`` is relative)
``memory``                     this process only
``redis://host:port/db``       Redis Streams (also ``rediss://`` and ``unix://``)
=============================  ===========================================================
"""

from __future__ import annotations

from midstream.errors import LocalError
from midstream.relay._memory import MemoryLog
from midstream.relay._redis import RedisLog
from midstream.relay._sqlite import SQLiteLog, default_path
from midstream.relay.log import DEFAULT_REPLAY_TTL, EventLog

__all__ = ["MemoryLog", "RedisLog", "SQLiteLog", "default_path", "open_log"]


def open_log(url: str | None = None, *, replay_ttl: float = DEFAULT_REPLAY_TTL) -> EventLog:
    """The store named by ``url`` (see the module docstring); raises ``LocalError`` for an unknown one.

    >>> open_log("memory").name
    'memory'
    """
    if url is None or url in ("sqlite", "sqlite://"):
        return SQLiteLog(default_path(), replay_ttl=replay_ttl)
    if url in ("memory", "memory://"):
        return MemoryLog(replay_ttl=replay_ttl)
    if url.startswith("sqlite://"):
        return SQLiteLog(url[len("sqlite://") :], replay_ttl=replay_ttl)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLog(url, replay_ttl=replay_ttl)
    raise LocalError(f"unknown store {url!r}: use memory, sqlite, sqlite:///path or redis://host:port/db")
