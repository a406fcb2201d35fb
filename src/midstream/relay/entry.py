"""One entry of a run's event log, and the JSON form of every event a run produces.

A run produces three families of events: the normalized stream events (:mod:`midstream.events`),
the tool-argument events (:mod:`midstream.core.toolargs`) and the agent's lifecycle events
(:mod:`midstream.agent.events`). The log stores each as a :class:`LogEntry` whose ``data`` is the
event's JSON form, so a reader in another process (or a browser) needs no Python types::

    >>> from midstream.events import TextDelta
    >>> kind, data = entry_data(TextDelta(index=0, text="Hi"))
    >>> kind, data
    ('text_delta', {'index': 0, 'text': 'Hi'})
    >>> entry = LogEntry(run="r1", seq=3, kind=kind, data=data)
    >>> entry.payload()
    {'kind': 'text_delta', 'index': 0, 'text': 'Hi', 'run': 'r1', 'seq': 3}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from midstream.agent.events import AgentEvent, agent_event_dict
from midstream.core.toolargs import ToolEvent
from midstream.events import Event, to_dict

__all__ = ["LogEntry", "entry_data"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """One event in a run's log.

    ``seq`` is monotonic per run from 1 and identifies the entry for resume (the SSE ``id:``).
    ``kind`` is the event's ``kind`` (``text_delta``, ``tool_field_delta``, ``tool_ready``,
    ``run_end``, ...). ``data`` is the event's JSON form without ``kind``, ``run`` or ``seq``.
    ``agent`` and ``parent`` name the agent that produced the event and the run that started it,
    when the run is part of a workflow. ``at`` is the wall-clock time of the append (Unix seconds).
    """

    run: str
    seq: int
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    agent: str | None = None
    parent: str | None = None
    at: float = 0.0

    def payload(self) -> dict[str, Any]:
        """The JSON object sent to readers: ``kind``, the data, ``run``, ``seq``, and ``agent`` /
        ``parent`` when set."""
        out: dict[str, Any] = {"kind": self.kind, **self.data, "run": self.run, "seq": self.seq}
        if self.agent is not None:
            out["agent"] = self.agent
        if self.parent is not None:
            out["parent"] = self.parent
        return out


def entry_data(event: Event | ToolEvent | AgentEvent) -> tuple[str, dict[str, Any]]:
    """``(kind, data)`` for any event a run produces: JSON-ready, ``kind`` not repeated in ``data``.

    Exceptions carried by tool events become their text, JSON paths become lists; a tool event's
    ``validated`` value is left out when it is the input itself.
    """
    if isinstance(event, ToolEvent):
        data: dict[str, Any] = {}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if f.name == "validated" and (value is None or value is getattr(event, "input", None)):
                continue
            if isinstance(value, BaseException):
                value = str(value)
            elif isinstance(value, tuple):  # a JSON path
                value = list(value)
            data[f.name] = value
        return event.kind, data
    data = to_dict(event) if isinstance(event, Event) else agent_event_dict(event)
    data.pop("kind", None)
    return event.kind, data
