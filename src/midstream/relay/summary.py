"""A run's figures and timeline, computed from its log: what the web page's run view shows.

:func:`summarize` folds a run's entries (in seq order) into a JSON-ready dict; ``GET
/v1/runs/{id}/summary`` serves it. Every figure comes from the log itself (each entry's ``at``), so
any relay process on a shared store computes the same answer::

    >>> from midstream.relay.entry import LogEntry
    >>> log = [LogEntry(run="r", seq=1, kind="run_start", data={"prompt": "Hi"}, at=10.0),
    ...        LogEntry(run="r", seq=2, kind="response_start", data={}, at=10.1),
    ...        LogEntry(run="r", seq=3, kind="text_delta", data={"index": 0, "text": "Hello"}, at=10.4),
    ...        LogEntry(run="r", seq=4, kind="run_end", data={"terminal": "completed"}, at=11.0)]
    >>> s = summarize(log)
    >>> s["terminal"], s["ttft_s"], s["duration_s"], [t["kind"] for t in s["timeline"]]
    ('completed', 0.4, 1.0, ['run_start', 'response_start', 'first text', 'run_end'])

* ``ttft_s``: from ``run_start`` to the first streamed content (text, thinking or tool argument);
* ``duration_s``: from ``run_start`` to ``run_end`` (or to the last entry while the run goes on);
* ``tokens``: input and output tokens, summed over the run's responses (each response's last usage;
  a workflow's agents are told apart by their entries' ``agent_run``);
* ``tools``: one row per tool call: its name, id, the time from its block's start to its first
  argument byte (``first_arg_s``) and its last state (``streaming``, ``invalid``, ``validated``,
  ``running``, ``done``, ``failed``, ``compensated``, ...);
* ``retries`` and ``fallbacks``: how many ``retry`` and ``fallback`` entries the run has;
* ``timeline``: the run's entries without the deltas (the first delta of each block is kept as
  ``first text`` / ``first thinking`` / ``first argument``), each with ``t`` in seconds from the
  start; at most :data:`TIMELINE_LIMIT` rows (``timeline_cut`` says how many were left out).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from midstream.relay.entry import LogEntry

__all__ = ["TIMELINE_LIMIT", "summarize"]

TIMELINE_LIMIT = 500
_DELTAS = {
    "text_delta": "first text",
    "thinking_delta": "first thinking",
    "tool_args_delta": "first argument",
}
_QUIET = {"tool_field_delta", "tool_field_start", "tool_field_complete", "usage_update"}
_TOOL_STATES = {
    "tool_call_ready": "input complete",
    "tool_call_invalid": "invalid",
    "tool_invalid_input": "invalid",
    "tool_ready": "validated",
    "tool_denied": "denied",
    "tool_started": "running",
    "tool_failed": "failed",
}


class _Fold:
    def __init__(self) -> None:
        self.start: float | None = None
        self.last = 0.0
        self.out: dict[str, Any] = {
            "prompt": None,
            "terminal": None,
            "reason": None,
            "ttft_s": None,
            "duration_s": None,
            "tokens": {"input": 0, "output": 0},
            "responses": 0,
            "iterations": 0,
            "retries": 0,
            "fallbacks": 0,
            "tools": [],
            "timeline": [],
            "timeline_cut": 0,
        }
        # A workflow's agents share the log: responses, usage and block indices are per lane (agent run).
        self.responses: dict[str, int] = {}
        self.usage: dict[str, dict[str, int]] = {}
        self.seen_delta: set[tuple[str, int, int]] = set()
        self.blocks: dict[tuple[str, int, int], tuple[float, dict[str, Any]]] = {}
        self.calls: dict[str, dict[str, Any]] = {}

    def t(self, entry: LogEntry) -> float:
        return round(entry.at - (self.start if self.start is not None else entry.at), 3)

    def mark(self, entry: LogEntry, kind: str, **detail: Any) -> None:
        timeline = self.out["timeline"]
        if len(timeline) >= TIMELINE_LIMIT:
            self.out["timeline_cut"] += 1
            return
        row = {"seq": entry.seq, "kind": kind, "t": self.t(entry)}
        row.update({k: v for k, v in detail.items() if v is not None})
        if entry.agent is not None:
            row["agent"] = entry.agent
        timeline.append(row)

    @staticmethod
    def lane(entry: LogEntry) -> str:
        return str(entry.data.get("agent_run") or entry.agent or "")

    def block_key(self, entry: LogEntry) -> tuple[str, int, int]:
        lane = self.lane(entry)
        return lane, self.responses.get(lane, 0), int(entry.data.get("index", 0))

    def feed(self, entry: LogEntry) -> None:
        data, kind, out = entry.data, entry.kind, self.out
        if self.start is None:
            self.start = entry.at
        self.last = entry.at
        if kind in _DELTAS:
            key = self.block_key(entry)
            if out["ttft_s"] is None:
                out["ttft_s"] = self.t(entry)
            block = self.blocks.get(key)
            if kind == "tool_args_delta" and block is not None and block[1]["first_arg_s"] is None:
                block[1]["first_arg_s"] = round(entry.at - block[0], 3)
            if key not in self.seen_delta:
                self.seen_delta.add(key)
                self.mark(entry, _DELTAS[kind], index=key[2])
            return
        if kind in _QUIET:
            if kind == "usage_update":
                self.usage[self.lane(entry)] = dict(data.get("usage") or {})
            return
        self._event(entry, kind, data)

    def _event(self, entry: LogEntry, kind: str, data: Any) -> None:
        out = self.out
        detail: dict[str, Any] = {}
        if kind == "run_start":
            out["prompt"] = data.get("prompt")
        elif kind == "response_start":
            lane = self.lane(entry)
            self._close_response(lane)
            self.responses[lane] = self.responses.get(lane, 0) + 1
            out["responses"] += 1
            self.usage[lane] = dict(data.get("usage") or {})
        elif kind == "response_end":
            lane = self.lane(entry)
            self.usage[lane] = dict(data.get("usage") or self.usage.get(lane) or {})
            detail["terminal"] = data.get("terminal")
        elif kind == "iteration_start":
            out["iterations"] = max(out["iterations"], int(data.get("iteration", 0)))
        elif kind == "retry":
            out["retries"] += 1
            detail["reason"] = data.get("reason")
        elif kind == "fallback":
            out["fallbacks"] += 1
            detail["tool"] = data.get("tool")
        elif kind == "block_start" and data.get("type") == "tool_call":
            call = {"id": data.get("id"), "name": data.get("name"), "first_arg_s": None}
            call["state"] = "streaming"
            self.blocks[self.block_key(entry)] = (entry.at, call)
            out["tools"].append(call)
            if call["id"]:
                self.calls[str(call["id"])] = call
            detail["name"] = data.get("name")
        elif kind in _TOOL_STATES or kind in ("tool_finished", "tool_compensated"):
            call_id = data.get("call_id", data.get("id"))
            known = self.calls.get(str(call_id))
            state = _TOOL_STATES.get(kind) or str(data.get("status"))
            if kind == "tool_finished":
                state = "done"
            if known is not None:
                known["state"] = state
            detail.update(name=data.get("name"), reason=data.get("reason"))
        elif kind == "run_end":
            out["terminal"], out["reason"] = data.get("terminal"), data.get("reason")
            detail["terminal"] = data.get("terminal")
        self.mark(entry, kind, **detail)

    def _close_response(self, lane: str) -> None:
        usage = self.usage.pop(lane, {})
        tokens = self.out["tokens"]
        tokens["input"] += int(usage.get("input_tokens") or 0)
        tokens["output"] += int(usage.get("output_tokens") or 0)

    def result(self) -> dict[str, Any]:
        for lane in list(self.usage):
            self._close_response(lane)
        if self.start is not None:
            self.out["duration_s"] = round(self.last - self.start, 3)
        return self.out


def summarize(entries: Iterable[LogEntry]) -> dict[str, Any]:
    """The figures and timeline of a run from its entries in seq order (see the module docstring)."""
    fold = _Fold()
    for entry in entries:
        fold.feed(entry)
    return fold.result()
