"""Workers: runs executed by a fleet of processes on Redis, surviving the death of any of them.

``midstream serve --store redis://... --queue`` front-ends enqueue run requests on a Redis Stream
(:class:`RunQueue`, :class:`QueueExecutor`); ``midstream worker --store redis://...`` processes
(:class:`Worker`) consume it as a consumer group, each run owned by one worker under a lease it
renews. A run whose worker died is reclaimed (``XAUTOCLAIM``) and resumed from its last checkpoint
with its effects journal (:class:`RedisDurability`, :class:`RedisJournal`): a side effect that
completed is never executed again. The deployment page of the documentation has the whole story.
"""

from __future__ import annotations

from midstream.worker._durable import RedisDurability, RedisJournal
from midstream.worker._queue import Claim, QueueExecutor, RunQueue
from midstream.worker._worker import RESPONSE_KINDS, Worker

__all__ = [
    "RESPONSE_KINDS",
    "Claim",
    "QueueExecutor",
    "RedisDurability",
    "RedisJournal",
    "RunQueue",
    "Worker",
]
