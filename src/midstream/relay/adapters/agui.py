"""AG-UI events from a run's log, and the ``RunAgentInput`` a client POSTs.

:class:`AGUIEvents` turns the payloads of one run's log into AG-UI events (camelCase JSON, as the
``@ag-ui/client`` parser and verifier expect): ``RUN_STARTED`` first; per model round trip
``STEP_STARTED`` ... ``STEP_FINISHED``; answer text as ``TEXT_MESSAGE_START/CONTENT/END`` (one assistant
message per response, which also carries the response's tool calls); reasoning as ``REASONING_*``; tool
input as ``TOOL_CALL_START`` / ``TOOL_CALL_ARGS``; and exactly one ending: ``RUN_FINISHED`` (with
``result: {"terminal", "reason"}``) or ``RUN_ERROR`` for a failed run.

Partial-safety on AG-UI, which has no "input invalid" event:

* ``TOOL_CALL_END`` ("the arguments are complete") is sent only when the input arrived whole and
  valid; a call whose input was truncated or invalid gets a ``CUSTOM`` ``midstream.tool_invalid``
  event, then ``TOOL_CALL_END`` and a ``TOOL_CALL_RESULT`` carrying the error, so no call stays open
  and no client mistakes it for a call to execute;
* tool results come from the agent (``TOOL_CALL_RESULT``, role ``tool``); a call that never ran gets a
  result that says why;
* a discarded, retried response is removed with a ``MESSAGES_SNAPSHOT`` (the conversation as it
  stands) after a ``CUSTOM`` ``midstream.retry``;
* cancel is a ``CUSTOM`` ``midstream.cancelled`` event followed by a plain ``RUN_FINISHED`` (AG-UI
  clients before 1.0 know no cancelled outcome);
* field previews, tool starts, compensations, fallbacks and stream errors are ``CUSTOM`` events named
  ``midstream.<kind>``.

The relay serves ``POST`` of a ``RunAgentInput`` like this::

    from midstream.relay.adapters import agui

    run_input = agui.parse_run_agent_input(await request.json())   # RunAgentInputError: answer 400
    # ... start the run with run_input.prompt, then stream its log:
    body = agui.sse_stream(log.read(run, after=0, follow=True), run_input)
    return StreamingResponse(body, headers=agui.HEADERS)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from midstream.errors import RemoteError
from midstream.relay.adapters._replay import Chunk, Entry, areplay, parse_cursor, replay, sse_body, sse_event
from midstream.relay.log import Heartbeat, Resync

__all__ = [
    "HEADERS",
    "AGUIEvents",
    "RunAgentInput",
    "RunAgentInputError",
    "areplay",
    "parse_cursor",
    "parse_run_agent_input",
    "replay",
    "sse_event",
    "sse_stream",
]

HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
}
"""The headers of an AG-UI SSE response."""


class RunAgentInputError(RemoteError, ValueError):
    """A body that is not an AG-UI ``RunAgentInput`` (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class RunAgentInput:
    """An AG-UI ``RunAgentInput``, read: the ids, the messages as sent, and what an agent needs.

    ``prompt`` is the text of the last user message, ``history`` the conversation before it as
    ``(role, text)`` pairs.
    """

    thread_id: str
    run_id: str
    messages: tuple[Mapping[str, Any], ...]
    prompt: str
    history: tuple[tuple[str, str], ...] = ()
    parent_run_id: str | None = None
    state: Any = None
    tools: tuple[Mapping[str, Any], ...] = ()
    context: tuple[Mapping[str, Any], ...] = ()
    forwarded_props: Any = None


def _content_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    else:
        raise RunAgentInputError(
            f"message {message.get('id')!r}: content must be a string or a list of parts"
        )
    calls = message.get("toolCalls")
    if isinstance(calls, list) and calls:
        text = "\n".join([text, *(json.dumps(c, ensure_ascii=False, sort_keys=True) for c in calls)]).strip()
    return text


def _listing(body: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    value = body.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise RunAgentInputError(f"{key!r} must be a list of objects")
    return tuple(value)


def parse_run_agent_input(body: Any) -> RunAgentInput:
    """Read a ``RunAgentInput`` (the parsed JSON body) or raise :class:`RunAgentInputError`.

    >>> parse_run_agent_input({"threadId": "t1", "runId": "r1", "messages": [
    ...     {"id": "m1", "role": "user", "content": "Weather in Paris?"}]}).prompt
    'Weather in Paris?'
    """
    if not isinstance(body, Mapping):
        raise RunAgentInputError("the body must be a JSON object")
    for key in ("threadId", "runId"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise RunAgentInputError(f"{key!r} is required and must be a non-empty string")
    messages = _listing(body, "messages")
    roles = ("developer", "system", "assistant", "user", "tool", "activity", "reasoning")
    for message in messages:
        if not isinstance(message.get("id"), str) or message.get("role") not in roles:
            raise RunAgentInputError("every message needs an 'id' and a known 'role'")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise RunAgentInputError("there is no user message to answer")
    prompt = _content_text(messages[last_user])
    if not prompt.strip():
        raise RunAgentInputError("the last user message has no text")
    history = tuple(
        (str(m["role"]), _content_text(m))
        for m in messages[:last_user]
        if m["role"] in ("user", "assistant", "system", "developer", "tool")
    )
    parent = body.get("parentRunId")
    return RunAgentInput(
        str(body["threadId"]),
        str(body["runId"]),
        messages,
        prompt,
        history,
        None if parent is None else str(parent),
        body.get("state"),
        _listing(body, "tools"),
        _listing(body, "context"),
        body.get("forwardedProps"),
    )


async def sse_stream(
    payloads: AsyncIterable[Entry | Resync | Heartbeat],
    run_input: RunAgentInput | None = None,
    *,
    after: str | int | None = None,
    skip: int = 0,
) -> AsyncIterator[bytes]:
    """The body of an AG-UI SSE response for one run's log (what ``EventLog.read`` yields): one
    ``data:`` event per AG-UI event (with its ``id:``), ``: ping`` per heartbeat; a trimmed start ends
    the run with ``RUN_ERROR``. AG-UI clients do not resume; ``after`` / ``skip`` serve readers that do."""
    async for frame in sse_body(AGUIEvents(run_input), payloads, after=after, skip=skip):
        yield frame


@dataclass(slots=True)
class _Open:
    """What is open in the current response and step."""

    text: dict[int, str] = field(default_factory=dict)  # block index -> message id (text blocks)
    reasoning: dict[int, str] = field(default_factory=dict)
    calls: dict[int, str] = field(default_factory=dict)  # block index -> call id (this response)
    names: dict[str, str] = field(default_factory=dict)  # call id -> tool name
    ended: set[str] = field(default_factory=set)  # call ids whose TOOL_CALL_END was sent
    pending: set[str] = field(default_factory=set)  # ended, valid, no result yet


class AGUIEvents:
    """A translator of one run's log into AG-UI events (see the module docstring).

    ``run_input`` gives the thread and run ids to echo and the client's messages (kept in a
    ``MESSAGES_SNAPSHOT``); without it both ids are the log's run id.

    >>> t = AGUIEvents()
    >>> [e["type"] for e in t.feed({"kind": "iteration_start", "iteration": 1, "run": "r1", "seq": 1})]
    ['RUN_STARTED', 'STEP_STARTED']
    """

    def __init__(self, run_input: RunAgentInput | None = None) -> None:
        self.run_input = run_input
        self.finished = False
        self._thread_id = run_input.thread_id if run_input else None
        self._run_id = run_input.run_id if run_input else None
        self._started = False
        self._agent = False
        self._step: str | None = None
        self._open = _Open()
        self._response = "asst"  # the assistant message id of the current response
        # What the client's message list holds, to send a snapshot after a discarded attempt.
        self._messages: list[dict[str, Any]] = [dict(m) for m in run_input.messages] if run_input else []
        self._attempt_from = len(self._messages)
        self._usage: dict[tuple[str, str], dict[str, int]] = {}
        self._model = ("", "")
        self._cancel_notice: dict[str, Any] = {}
        self._continues = False
        self._handlers: dict[str, Callable[[Mapping[str, Any], int], list[Chunk]]] = {
            "iteration_start": self._iteration_start,
            "response_start": self._response_start,
            "block_start": self._block_start,
            "text_delta": self._text_delta,
            "thinking_delta": self._thinking_delta,
            "tool_args_delta": self._tool_args_delta,
            "block_stop": self._block_stop,
            "response_end": self._response_end,
            "tool_field_start": self._custom,
            "tool_field_delta": self._custom,
            "tool_field_complete": self._custom,
            "tool_call_ready": self._call_ready,
            "tool_call_invalid": self._call_invalid,
            "tool_ready": self._tool_ready,
            "tool_invalid_input": self._tool_invalid,
            "tool_denied": self._tool_denied,
            "tool_started": self._custom,
            "tool_finished": self._tool_finished,
            "tool_failed": self._tool_failed,
            "tool_compensated": self._custom,
            "fallback": self._custom,
            "stream_error": self._custom,
            "retry": self._retry,
            "resumed": self._resumed,
            "cancel": self._cancel,
            "run_end": self._run_end,
        }

    # -- the translator protocol ---------------------------------------------------------------------

    def feed(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """The AG-UI events for one log payload."""
        if self.finished:
            return []
        out: list[Chunk] = []
        if not self._started:
            out.append(self._run_started(payload))
        handler = self._handlers.get(str(payload.get("kind")))
        if handler is not None:
            out.extend(handler(payload, int(payload.get("seq", 0))))
        return out

    def close(self) -> list[Chunk]:
        """End a stream whose log stopped without ``run_end``: everything open is closed and the run
        finishes (``result.terminal`` ``unknown``)."""
        if self.finished:
            return []
        out = [] if self._started else [self._run_started({})]
        out += self._close_all("the log ended before this call ran")
        self.finished = True
        return [*out, self._finished({"terminal": "unknown", "reason": "the log ended before the run did"})]

    def lost(self, earliest: int, run: str = "run") -> list[Chunk]:
        """End a stream whose log lost its start (entries before ``earliest`` were trimmed):
        ``RUN_ERROR`` (code ``trimmed``), never a silent gap."""
        if self.finished:
            return []
        self.finished = True
        out = [] if self._started else [self._run_started({"run": run})]
        text = f"the run's log no longer holds its start (it begins at seq {earliest}): the run is lost"
        return [*out, {"type": "RUN_ERROR", "message": text, "code": "trimmed"}]

    # -- shared pieces---------------------------------------------------------------------------------

    def _run_started(self, payload: Mapping[str, Any]) -> Chunk:
        self._started = True
        run = str(payload.get("run") or "run")
        self._thread_id = self._thread_id or run
        self._run_id = self._run_id or run
        event: Chunk = {"type": "RUN_STARTED", "threadId": self._thread_id, "runId": self._run_id}
        if self.run_input is not None and self.run_input.parent_run_id:
            event["parentRunId"] = self.run_input.parent_run_id
        return event

    def _finished(self, result: dict[str, Any]) -> Chunk:
        event: Chunk = {
            "type": "RUN_FINISHED",
            "threadId": self._thread_id,
            "runId": self._run_id,
            "result": result,
        }
        usage = self._usage_list()
        if usage:
            event["usage"] = usage
        return event

    def _usage_list(self) -> list[dict[str, Any]]:
        out = []
        for (provider, model), counts in self._usage.items():
            entry: dict[str, Any] = {k: v for k, v in (("provider", provider), ("model", model)) if v}
            entry.update(counts)
            if "inputTokens" in counts and "outputTokens" in counts:
                entry["totalTokens"] = counts["inputTokens"] + counts["outputTokens"]
            out.append(entry)
        return out

    def _message(self, message_id: str, role: str) -> dict[str, Any]:
        for message in self._messages:
            if message.get("id") == message_id:
                return message
        made: dict[str, Any] = {"id": message_id, "role": role}
        self._messages.append(made)
        return made

    def _open_step(self, name: str) -> list[Chunk]:
        if self._step is not None:
            return []
        self._step = name
        return [{"type": "STEP_STARTED", "stepName": name}]

    def _close_step(self) -> list[Chunk]:
        if self._step is None:
            return []
        name, self._step = self._step, None
        return [{"type": "STEP_FINISHED", "stepName": name}]

    def _end_blocks(self) -> list[Chunk]:
        out: list[Chunk] = [{"type": "TEXT_MESSAGE_END", "messageId": m} for m in self._open.text.values()]
        for rid in self._open.reasoning.values():
            out += [
                {"type": "REASONING_MESSAGE_END", "messageId": rid},
                {"type": "REASONING_END", "messageId": rid},
            ]
        self._open.text.clear()
        self._open.reasoning.clear()
        return out

    def _close_all(self, why: str) -> list[Chunk]:
        out = self._end_blocks()
        for call_id in list(self._open.names):
            if call_id not in self._open.ended:
                out += self._end_call(call_id, valid=False)
                out.append(self._result(call_id, f"not run: {why}"))
            elif call_id in self._open.pending:
                out.append(self._result(call_id, f"not run: {why}"))
        return out + self._close_step()

    def _end_call(self, call_id: str, *, valid: bool) -> list[Chunk]:
        if call_id not in self._open.names or call_id in self._open.ended:
            return []
        self._open.ended.add(call_id)
        if valid:
            self._open.pending.add(call_id)
        return [{"type": "TOOL_CALL_END", "toolCallId": call_id}]

    def _result(self, call_id: str, content: str) -> Chunk:
        self._open.pending.discard(call_id)
        message_id = f"result-{call_id}"
        self._messages.append({"id": message_id, "role": "tool", "toolCallId": call_id, "content": content})
        return {
            "type": "TOOL_CALL_RESULT",
            "messageId": message_id,
            "toolCallId": call_id,
            "content": content,
            "role": "tool",
        }

    # -- steps and responses -------------------------------------------------------------------------

    def _iteration_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        self._agent = True
        out = self._close_all("the next model call started before this call ran")
        self._open = _Open()
        self._attempt_from = len(self._messages)
        return out + self._open_step(f"iteration-{p.get('iteration', seq)}")

    def _response_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        if not self._continues:  # a prefilled retry continues the same assistant message
            self._response = f"asst-{seq}"
        self._continues = False
        self._model = (str(p.get("provider") or ""), str(p.get("model") or ""))
        self._open.calls.clear()
        return self._open_step("response")

    def _block_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        index, kind = int(p["index"]), p.get("type")
        if kind == "text":
            self._open.text[index] = self._response
            message = self._message(self._response, "assistant")
            message.setdefault("content", "")
            return [{"type": "TEXT_MESSAGE_START", "messageId": self._response, "role": "assistant"}]
        if kind in ("thinking", "redacted_thinking"):
            rid = f"reasoning-{seq}"
            self._open.reasoning[index] = rid
            self._messages.append({"id": rid, "role": "reasoning", "content": ""})
            return [
                {"type": "REASONING_START", "messageId": rid},
                {"type": "REASONING_MESSAGE_START", "messageId": rid, "role": "reasoning"},
            ]
        if kind == "tool_call":
            call_id, name = str(p.get("id") or f"call-{index}"), str(p.get("name") or "")
            self._open.calls[index] = call_id
            self._open.names[call_id] = name
            message = self._message(self._response, "assistant")
            message.setdefault("toolCalls", []).append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            )
            return [
                {
                    "type": "TOOL_CALL_START",
                    "toolCallId": call_id,
                    "toolCallName": name,
                    "parentMessageId": self._response,
                }
            ]
        return []

    def _text_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        message_id = self._open.text.get(int(p["index"]))
        if message_id is None:
            return []
        message = self._message(message_id, "assistant")
        message["content"] = str(message.get("content") or "") + str(p["text"])
        return [{"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": str(p["text"])}]

    def _thinking_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        rid = self._open.reasoning.get(int(p["index"]))
        if rid is None:
            return []
        message = self._message(rid, "reasoning")
        message["content"] = str(message.get("content") or "") + str(p["text"])
        return [{"type": "REASONING_MESSAGE_CONTENT", "messageId": rid, "delta": str(p["text"])}]

    def _tool_args_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call_id = self._open.calls.get(int(p["index"]))
        if call_id is None or call_id in self._open.ended:
            return []
        for call in self._message(self._response, "assistant").get("toolCalls", []):
            if call["id"] == call_id:
                call["function"]["arguments"] += str(p["fragment"])
        return [{"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": str(p["fragment"])}]

    def _block_stop(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        index = int(p["index"])
        if index in self._open.text:
            return [{"type": "TEXT_MESSAGE_END", "messageId": self._open.text.pop(index)}]
        if index in self._open.reasoning:
            rid = self._open.reasoning.pop(index)
            return [
                {"type": "REASONING_MESSAGE_END", "messageId": rid},
                {"type": "REASONING_END", "messageId": rid},
            ]
        return []  # a call ends with its verdict

    def _response_end(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        usage = p.get("usage") or {}
        counts = self._usage.setdefault(self._model, {})
        for ours, theirs in (
            ("input_tokens", "inputTokens"),
            ("output_tokens", "outputTokens"),
            ("reasoning_tokens", "reasoningTokens"),
            ("cache_read_tokens", "cachedInputTokens"),
            ("cache_write_tokens", "cacheWriteInputTokens"),
        ):
            if isinstance(usage.get(ours), int):
                counts[theirs] = counts.get(theirs, 0) + int(usage[ours])
        return self._end_blocks()

    # -- tool calls ----------------------------------------------------------------------------------

    def _custom(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        value = {k: v for k, v in p.items() if k not in ("kind", "run", "raw")}
        index = p.get("index")
        if str(p["kind"]).startswith("tool_field_") and isinstance(index, int):
            value["toolCallId"] = self._open.calls.get(index)
        return [{"type": "CUSTOM", "name": f"midstream.{p['kind']}", "value": value}]

    def _invalid(self, call_id: str, p: Mapping[str, Any]) -> list[Chunk]:
        if call_id not in self._open.names or call_id in self._open.ended:
            return []
        error = str(p.get("error") or "")
        reason = str(p.get("reason"))
        value = {"toolCallId": call_id, "reason": reason, "error": error, "raw": p.get("raw", "")}
        out: list[Chunk] = [{"type": "CUSTOM", "name": "midstream.tool_invalid", "value": value}]
        out += self._end_call(call_id, valid=False)
        text = f"invalid input ({reason}): {error}" if error else f"invalid input ({reason})"
        return [*out, self._result(call_id, text)]

    def _call_ready(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call_id = self._open.calls.get(int(p["index"]))
        if self._agent or call_id is None:  # the agent's tool_ready follows, with the tool's schema
            return []
        return self._end_call(call_id, valid=True)

    def _call_invalid(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call_id = self._open.calls.get(int(p["index"]))
        if self._agent or call_id is None:
            return []
        return self._invalid(call_id, p)

    def _tool_ready(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        return self._end_call(str(p["call_id"]), valid=True)

    def _tool_invalid(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        return self._invalid(str(p["call_id"]), p)

    def _answer(self, p: Mapping[str, Any], content: str) -> list[Chunk]:
        call_id = str(p["call_id"])
        if call_id not in self._open.pending:
            return []
        return [self._result(call_id, content)]

    def _tool_denied(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        return self._answer(p, f"denied: {p.get('reason', '')}")

    def _tool_finished(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        content = p.get("content")
        if not content:
            result = p.get("result")
            content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        return self._answer(p, str(content))

    def _tool_failed(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        error = p.get("error")
        return self._answer(p, f"failed ({p['reason']}): {error}" if error else f"failed ({p['reason']})")

    # -- recovery and the end ------------------------------------------------------------------------

    def _retry(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        out = self._custom(p, seq)
        if p.get("mode") == "prefill":  # what was shown stands and is continued
            self._continues = True
            return out
        out = self._end_blocks() + out
        for call_id in list(self._open.names):
            if call_id not in self._open.ended:
                out += self._end_call(call_id, valid=False)
        del self._messages[self._attempt_from :]
        step, self._open = self._step, _Open()
        self._step = step
        return [*out, {"type": "MESSAGES_SNAPSHOT", "messages": [dict(m) for m in self._messages]}]

    def _resumed(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        """Another worker resumed the run: a partial response it names as discarded goes, as after
        a retry that restarts (a ``CUSTOM`` event and a ``MESSAGES_SNAPSHOT`` without it)."""
        if p.get("discarded"):
            return self._retry({**p, "mode": "restart"}, seq)
        return self._custom(p, seq)

    def _cancel(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        self._cancel_notice = {"phase": p.get("phase"), "notStarted": list(p.get("not_started") or ())}
        return []

    def _run_end(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        terminal = str(p.get("terminal"))
        out = self._close_all(
            {"cancelled": "the run was cancelled", "failed": "the run failed"}.get(terminal, "the run ended")
        )
        self.finished = True
        if terminal == "failed":
            error = str(p.get("error") or p.get("reason") or "the run failed")
            return [*out, {"type": "RUN_ERROR", "message": error, "code": "failed"}]
        result = {"terminal": terminal, "reason": p.get("reason")}
        if terminal == "cancelled":
            value = {"reason": p.get("reason"), **self._cancel_notice}
            out.append({"type": "CUSTOM", "name": "midstream.cancelled", "value": value})
        return [*out, self._finished(result)]
