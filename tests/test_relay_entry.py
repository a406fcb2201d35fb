"""The log entry's JSON form covers every family of events a run produces."""

from __future__ import annotations

import doctest
import json

import midstream.relay.entry
from midstream.agent.events import ToolStarted
from midstream.core.toolargs import ToolCallInvalid, ToolFieldDelta
from midstream.events import BlockStart, ResponseEnd
from midstream.relay import LogEntry, entry_data


def test_doctests() -> None:
    assert doctest.testmod(midstream.relay.entry).failed == 0


def test_every_family_round_trips_through_json() -> None:
    events = [
        BlockStart(index=1, type="tool_call", id="t1", name="save"),
        ToolFieldDelta(index=1, path=("content",), text="Riv"),
        ToolCallInvalid(index=1, id="t1", name="save", reason="truncated", raw='{"content": "Riv'),
        ToolStarted(call_id="t1", name="save", input={"content": "Rivers"}),
        ResponseEnd(stop_reason="max_tokens", terminal="truncated"),
    ]
    for seq, event in enumerate(events, 1):
        kind, data = entry_data(event)
        assert kind == event.kind and "kind" not in data
        payload = LogEntry(run="r", seq=seq, kind=kind, data=data, agent="dev").payload()
        assert json.loads(json.dumps(payload)) == payload
        assert (payload["kind"], payload["seq"], payload["agent"]) == (event.kind, seq, "dev")
        assert "parent" not in payload
