"""The Vercel AI SDK UI Message Stream (v1) from a run's log, and ``useChat``'s request body.

:class:`UIMessageStream` turns the payloads of one run's log into the chunks of **one assistant
message**: ``start``, then per model round trip ``start-step`` ... ``finish-step``, and one ending
(``finish``, ``error`` + ``finish``, or ``abort``). The mapping keeps midstream's partial-safety:

* ``tool-input-available`` only for a call whose input arrived whole and valid (the agent's
  ``tool_ready``; ``tool_call_ready`` for a log without an agent), never on a prefix that parses;
* ``tool-input-error`` for input that was truncated, not JSON, failed the schema or named an unknown
  tool, with the raw text as ``input``;
* ``tool-output-available`` / ``tool-output-error`` / ``tool-output-denied`` from the agent's tool
  results; a call that never ran gets a ``tool-output-error`` saying why, so no part spins forever;
* a retried response that is discarded (``retry`` with mode ``restart``) is a ``reset-step`` (AI SDK 7;
  for ``version=6`` clients, which reject that chunk, a ``data-midstream-retry`` part marks the
  discarded parts instead);
* field previews are transient ``data-midstream-field`` parts (``onData`` only, never stored):
  ``{"id": "<toolCallId>:<path>", "data": {"toolCallId", "path", "event", "text" | "value"}}``.

Every id is derived from the log (the message id from the run, part ids from seqs, tool call ids from
the provider), so the same log always yields the same chunks: a ``GET /api/chat/{chatId}/stream``
resume replays the current message from its ``start`` through a fresh translator. How the relay
serves it::

    from midstream.relay.adapters import aisdk

    # POST /api/chat and GET /api/chat/{chatId}/stream (the resume: the current run's log from seq 1)
    body = aisdk.sse_stream(log.read(run, after=0, follow=True))   # LogEntry (or payload) in, bytes out
    return StreamingResponse(body, headers=aisdk.HEADERS)          # x-vercel-ai-ui-message-stream: v1

``after`` (an SSE id, for readers that keep them) and ``skip`` (a chunk count: the workflow transport's
``startIndex``) resume a reader that already has part of the message.

:func:`parse_chat_request` reads ``useChat``'s ``POST /api/chat`` body (``id``, ``messages`` with
``parts``, ``trigger``) into the prompt and the conversation before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from midstream.errors import RemoteError
from midstream.relay.adapters._replay import Chunk, Entry, areplay, parse_cursor, replay, sse_body, sse_event
from midstream.relay.log import Heartbeat, Resync

__all__ = [
    "HEADERS",
    "SSE_DONE",
    "UI_MESSAGE_STREAM_HEADER",
    "ChatRequestBody",
    "ChatRequestError",
    "UIMessageStream",
    "areplay",
    "parse_chat_request",
    "parse_cursor",
    "replay",
    "sse_event",
    "sse_stream",
]

UI_MESSAGE_STREAM_HEADER = "x-vercel-ai-ui-message-stream"
"""The response header that marks a UI Message Stream; its value is ``v1``."""

HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    UI_MESSAGE_STREAM_HEADER: "v1",
    "x-accel-buffering": "no",
}
"""The headers of a UI Message Stream response (as the AI SDK's own server sends them)."""

SSE_DONE = b"data: [DONE]\n\n"
"""The last frame of every UI Message Stream."""

_FINISH_REASONS: Mapping[str, str] = {"completed": "stop", "truncated": "length", "failed": "error"}

CallState = Literal["streaming", "available", "error", "done"]


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    state: CallState = "streaming"


@dataclass(slots=True)
class _Step:
    """What the current step opened: parts by block index, calls by id, in order."""

    parts: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (kind, part id)
    calls: dict[str, _Call] = field(default_factory=dict)
    by_index: dict[int, str] = field(default_factory=dict)  # block index -> call id (this response)


class UIMessageStream:
    """A translator of one run's log into the chunks of one UI message (see the module docstring).

    ``message_id`` defaults to ``msg-<run>``; ``version`` is the AI SDK major version of the client
    (7: ``reset-step`` exists; 5 and 6: it does not). Feed payloads in seq order; :attr:`finished`
    turns true with the last chunk (after which nothing is produced).

    >>> t = UIMessageStream()
    >>> t.feed({"kind": "iteration_start", "iteration": 1, "max_tokens": 64, "run": "r1", "seq": 1})
    [{'type': 'start', 'messageId': 'msg-r1'}, {'type': 'start-step'}]
    >>> t.feed({"kind": "block_start", "index": 0, "type": "text", "run": "r1", "seq": 2})
    [{'type': 'text-start', 'id': 'text-2'}]
    >>> t.feed({"kind": "text_delta", "index": 0, "text": "Hi", "run": "r1", "seq": 3})
    [{'type': 'text-delta', 'id': 'text-2', 'delta': 'Hi'}]
    """

    def __init__(self, *, message_id: str | None = None, version: int = 7) -> None:
        if version not in (5, 6, 7):
            raise ValueError(f"AI SDK version {version} is not supported: 5, 6 or 7")
        self.message_id = message_id
        self.version = version
        self.finished = False
        self._started = False
        self._agent = False
        self._step: _Step | None = None
        self._usage: dict[str, int] = {}
        self._last_terminal: str | None = None
        self._handlers: dict[str, Callable[[Mapping[str, Any], int], list[Chunk]]] = {
            "iteration_start": self._iteration_start,
            "response_start": self._response_start,
            "block_start": self._block_start,
            "text_delta": self._text_delta,
            "thinking_delta": self._thinking_delta,
            "tool_args_delta": self._tool_args_delta,
            "block_stop": self._block_stop,
            "response_end": self._response_end,
            "tool_field_start": self._field,
            "tool_field_delta": self._field,
            "tool_field_complete": self._field,
            "tool_call_ready": self._call_ready,
            "tool_call_invalid": self._call_invalid,
            "tool_ready": self._tool_ready,
            "tool_invalid_input": self._tool_invalid,
            "tool_denied": self._tool_denied,
            "tool_started": self._tool_started,
            "tool_finished": self._tool_finished,
            "tool_failed": self._tool_failed,
            "tool_compensated": self._tool_compensated,
            "retry": self._retry,
            "resumed": self._resumed,
            "fallback": self._notice,
            "stream_error": self._notice,
            "cancel": self._cancel,
            "run_end": self._run_end,
        }

    # -- the translator protocol ---------------------------------------------------------------------

    def feed(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """The chunks for one log payload (``kind`` + fields + ``run`` + ``seq``)."""
        if self.finished:
            return []
        handler = self._handlers.get(str(payload.get("kind")))
        out: list[Chunk] = []
        if not self._started:
            self._started = True
            if self.message_id is None:
                self.message_id = f"msg-{payload.get('run', 'run')}"
            out.append({"type": "start", "messageId": self.message_id})
        if handler is not None:
            out.extend(handler(payload, int(payload.get("seq", 0))))
        return out

    def close(self) -> list[Chunk]:
        """End a message whose log stopped without ``run_end``: open parts are closed, then ``abort``
        (an agent's run did not end). A log of one plain response (no agent) finishes with that
        response's terminal state once it ended."""
        if self.finished:
            return []
        out: list[Chunk] = []
        if not self._started:
            self._started = True
            out.append({"type": "start", "messageId": self.message_id or "msg"})
        terminal = self._last_terminal
        out += self._close_step("the stream ended before this call completed")
        self.finished = True
        if self._agent or terminal is None or terminal == "cancelled":
            return [*out, {"type": "abort", "reason": "the log ended before the run did"}]
        return out + self._ending(terminal, None)

    def lost(self, earliest: int, run: str = "run") -> list[Chunk]:
        """End a message whose log lost its start (entries before ``earliest`` were trimmed): it
        cannot be rebuilt, so the client gets an ``error`` and an ``abort``, not a silent gap."""
        if self.finished:
            return []
        out = [] if self._started else self.feed({"kind": "lost", "run": run, "seq": earliest})
        self.finished = True
        text = f"the run's log no longer holds its start (it begins at seq {earliest}): the message is lost"
        return [*out, {"type": "error", "errorText": text}, {"type": "abort", "reason": "log trimmed"}]

    # -- steps and responses -------------------------------------------------------------------------

    def _open_step(self) -> list[Chunk]:
        if self._step is not None:
            return []
        self._step = _Step()
        return [{"type": "start-step"}]

    def _close_step(self, why: str) -> list[Chunk]:
        step = self._step
        if step is None:
            return []
        out = self._end_parts(step)
        for call in step.calls.values():
            if call.state == "streaming":
                out.append(self._input_error(call, "", why))
            elif call.state == "available":
                call.state = "error"
                out.append({"type": "tool-output-error", "toolCallId": call.call_id, "errorText": why})
        self._step = None
        return [*out, {"type": "finish-step"}]

    @staticmethod
    def _end_parts(step: _Step) -> list[Chunk]:
        out: list[Chunk] = []
        for kind, part_id in step.parts.values():
            if kind in ("text", "reasoning"):
                out.append({"type": f"{kind}-end", "id": part_id})
        step.parts.clear()
        return out

    def _iteration_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        self._agent = True
        out = self._close_step("the next model call started before this call ran")
        return out + self._open_step()

    def _response_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        out = self._open_step()
        assert self._step is not None
        self._step.by_index.clear()
        return out

    def _block_start(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        out = self._open_step()
        step = self._step
        assert step is not None
        index, kind = int(p["index"]), p.get("type")
        if kind == "text":
            step.parts[index] = ("text", f"text-{seq}")
            return [*out, {"type": "text-start", "id": f"text-{seq}"}]
        if kind in ("thinking", "redacted_thinking"):
            step.parts[index] = ("reasoning", f"reasoning-{seq}")
            return [*out, {"type": "reasoning-start", "id": f"reasoning-{seq}"}]
        if kind == "tool_call":
            call_id = str(p.get("id") or f"call-{index}")
            call = _Call(call_id, str(p.get("name") or ""))
            step.calls[call_id] = call
            step.by_index[index] = call_id
            step.parts[index] = ("tool", call_id)
            return [*out, {"type": "tool-input-start", "toolCallId": call_id, "toolName": call.name}]
        return out

    def _part(self, p: Mapping[str, Any], kind: str) -> str | None:
        if self._step is None:
            return None
        found = self._step.parts.get(int(p["index"]))
        return found[1] if found is not None and found[0] == kind else None

    def _text_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        part = self._part(p, "text")
        return [] if part is None else [{"type": "text-delta", "id": part, "delta": str(p["text"])}]

    def _thinking_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        part = self._part(p, "reasoning")
        return [] if part is None else [{"type": "reasoning-delta", "id": part, "delta": str(p["text"])}]

    def _tool_args_delta(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call = self._call_at(int(p["index"]))
        if call is None or call.state != "streaming":
            return []
        return [
            {"type": "tool-input-delta", "toolCallId": call.call_id, "inputTextDelta": str(p["fragment"])}
        ]

    def _block_stop(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        if self._step is None:
            return []
        found = self._step.parts.pop(int(p["index"]), None)
        if found is None or found[0] == "tool":  # a call ends with its verdict, not its block
            return []
        return [{"type": f"{found[0]}-end", "id": found[1]}]

    def _response_end(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        self._last_terminal = str(p.get("terminal", "completed"))
        for key, value in dict(p.get("usage") or {}).items():
            if isinstance(value, int):
                self._usage[key] = self._usage.get(key, 0) + value
        if self._step is None:
            return []
        return self._end_parts(self._step)

    # -- tool calls ----------------------------------------------------------------------------------

    def _call_at(self, index: int) -> _Call | None:
        if self._step is None:
            return None
        call_id = self._step.by_index.get(index)
        return None if call_id is None else self._step.calls.get(call_id)

    def _call(self, call_id: str) -> _Call | None:
        return None if self._step is None else self._step.calls.get(call_id)

    def _field(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call = self._call_at(int(p["index"]))
        if call is None:
            return []
        path = list(p.get("path") or [])
        data: dict[str, Any] = {
            "toolCallId": call.call_id,
            "path": path,
            "event": str(p["kind"]).removeprefix("tool_field_"),
        }
        if "text" in p:
            data["text"] = p["text"]
        if "value" in p:
            data["value"] = p["value"]
        where = "/".join(str(x) for x in path)
        return [
            {"type": "data-midstream-field", "id": f"{call.call_id}:{where}", "data": data, "transient": True}
        ]

    def _available(self, call_id: str, name: str, value: Any) -> list[Chunk]:
        call = self._call(call_id)
        if call is None or call.state != "streaming":
            return []
        call.state = "available"
        return [{"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": value}]

    def _input_error(self, call: _Call, raw: str, error: str) -> Chunk:
        call.state = "error"
        return {
            "type": "tool-input-error",
            "toolCallId": call.call_id,
            "toolName": call.name,
            "input": raw,
            "errorText": error,
        }

    def _invalid(self, call_id: str, name: str, raw: str, reason: str, error: str) -> list[Chunk]:
        call = self._call(call_id)
        if call is None:  # a verdict for a call this message never showed: show it as failed
            if self._step is None:
                return []
            call = self._step.calls[call_id] = _Call(call_id, name)
        if call.state not in ("streaming", "available"):
            return []
        text = f"{reason}: {error}" if error else reason
        return [self._input_error(call, raw, text)]

    def _call_ready(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        if self._agent:  # the agent's own verdict (tool_ready) follows, with the tool's schema
            return []
        call = self._call_at(int(p["index"]))
        return [] if call is None else self._available(call.call_id, call.name, p.get("input"))

    def _call_invalid(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        if self._agent:  # tool_invalid_input follows
            return []
        call = self._call_at(int(p["index"]))
        if call is None:
            return []
        return self._invalid(
            call.call_id, call.name, str(p.get("raw", "")), str(p["reason"]), str(p.get("error") or "")
        )

    def _tool_ready(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        return self._available(str(p["call_id"]), str(p["name"]), p.get("input"))

    def _tool_invalid(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        return self._invalid(
            str(p["call_id"]),
            str(p["name"]),
            str(p.get("raw", "")),
            str(p["reason"]),
            str(p.get("error") or ""),
        )

    def _resolved(self, call_id: str) -> _Call | None:
        call = self._call(call_id)
        if call is None or call.state != "available":
            return None
        call.state = "done"
        return call

    def _tool_denied(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call = self._resolved(str(p["call_id"]))
        return [] if call is None else [{"type": "tool-output-denied", "toolCallId": call.call_id}]

    def _tool_started(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        data = {"toolCallId": p["call_id"], "name": p["name"], "idempotencyKey": p.get("idempotency_key")}
        return [{"type": "data-midstream-tool-started", "data": data, "transient": True}]

    def _tool_finished(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call = self._resolved(str(p["call_id"]))
        if call is None:
            return []
        result = p.get("result")
        output = result if result is not None else p.get("content", "")
        return [{"type": "tool-output-available", "toolCallId": call.call_id, "output": output}]

    def _tool_failed(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        call = self._resolved(str(p["call_id"]))
        if call is None:
            return []
        text = f"{p['reason']}: {p['error']}" if p.get("error") else str(p["reason"])
        return [{"type": "tool-output-error", "toolCallId": call.call_id, "errorText": text}]

    def _tool_compensated(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        data = {
            "toolCallId": p["call_id"],
            "name": p["name"],
            "status": p["status"],
            "idempotencyKey": p.get("idempotency_key"),
            "error": p.get("error"),
        }
        return [{"type": "data-midstream-compensated", "id": f"compensated-{p['call_id']}", "data": data}]

    # -- recovery, cancel, the end -------------------------------------------------------------------

    def _retry(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        data = {
            k: p.get(k) for k in ("iteration", "attempt", "reason", "mode", "kept", "max_tokens", "error")
        }
        if p.get("mode") == "prefill" or self._step is None:  # what was shown stands and is continued
            return [{"type": "data-midstream-retry", "data": data, "transient": True}]
        step = self._step
        out = self._end_parts(step)
        if self.version >= 7:
            self._step = _Step()
            return [
                *out,
                {"type": "reset-step"},
                {"type": "data-midstream-retry", "data": data, "transient": True},
            ]
        for call in step.calls.values():  # v5/v6: no reset-step; the discarded calls end, marked
            if call.state == "streaming":
                out.append(self._input_error(call, "", "discarded: the response is asked for again"))
            elif call.state == "available":
                call.state = "error"
                text = "discarded: the response is asked for again"
                out.append({"type": "tool-output-error", "toolCallId": call.call_id, "errorText": text})
        self._step = _Step()
        return [*out, {"type": "data-midstream-retry", "id": f"retry-{seq}", "data": data}]

    def _resumed(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        """Another worker resumed the run: a partial response it names as discarded goes, as after
        a retry that restarts; the notice itself is a transient data part."""
        out = self._retry({**p, "mode": "restart"}, seq)[:-1] if p.get("discarded") else []
        return [*out, *self._notice(p, seq)]

    def _notice(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        data = {k: v for k, v in p.items() if k not in ("kind", "run", "seq", "raw")}
        name = str(p["kind"]).replace("_", "-")
        return [{"type": f"data-midstream-{name}", "data": data, "transient": True}]

    def _cancel(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        out: list[Chunk] = []
        for call_id in p.get("not_started") or ():
            call = self._resolved(str(call_id))
            if call is not None:
                text = "cancelled before it started"
                out.append({"type": "tool-output-error", "toolCallId": call.call_id, "errorText": text})
        data = {"reason": p.get("reason"), "phase": p.get("phase")}
        return [*out, {"type": "data-midstream-cancel", "data": data, "transient": True}]

    def _run_end(self, p: Mapping[str, Any], seq: int) -> list[Chunk]:
        terminal = str(p.get("terminal"))
        why = {
            "cancelled": "the run was cancelled before this call ran",
            "failed": "the run failed before this call ran",
        }.get(terminal, "the run ended before this call ran")
        out = self._close_step(why)
        self.finished = True
        if terminal == "cancelled":
            return [*out, {"type": "abort", "reason": str(p.get("reason") or "cancelled")}]
        error = p.get("error") or p.get("reason")
        return out + self._ending(terminal, None if error is None else str(error))

    def _ending(self, terminal: str, error: str | None) -> list[Chunk]:
        out: list[Chunk] = []
        if terminal == "failed":
            out.append({"type": "error", "errorText": error or "the run failed"})
        metadata: dict[str, Any] = {"terminal": terminal}
        if self._usage:
            metadata["usage"] = dict(self._usage)
        reason = _FINISH_REASONS.get(terminal, "other")
        return [*out, {"type": "finish", "finishReason": reason, "messageMetadata": metadata}]


async def sse_stream(
    payloads: AsyncIterable[Entry | Resync | Heartbeat],
    *,
    after: str | int | None = None,
    skip: int = 0,
    version: int = 7,
    message_id: str | None = None,
) -> AsyncIterator[bytes]:
    """The body of a UI Message Stream response for one run's log (what ``EventLog.read`` yields): one
    SSE event per chunk (with its ``id:``), ``: ping`` per heartbeat, then ``data: [DONE]`` once the
    message finished (a trimmed start ends it with an ``error``). A source that ends before the run did
    (the log expired, the reader's read was cut) ends the body without ``[DONE]``, as a dropped
    connection would, so the client may resume."""
    translator = UIMessageStream(message_id=message_id, version=version)
    async for frame in sse_body(translator, payloads, after=after, skip=skip):
        yield frame
    if translator.finished:
        yield SSE_DONE


# -- useChat's request body -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatRequestBody:
    """``useChat``'s ``POST /api/chat`` body, read.

    ``chat_id`` is the chat (``id``), ``trigger`` is ``submit-message`` or ``regenerate-message``,
    ``message_id`` the message to regenerate, ``messages`` the UI messages as sent (``parts`` kept),
    ``prompt`` the text of the last user message and ``history`` the conversation before it as
    ``(role, text)`` pairs (tool parts as their input / output JSON). ``extra`` keeps the body's other
    keys (``useChat({body})``).
    """

    chat_id: str
    prompt: str
    messages: tuple[Mapping[str, Any], ...]
    history: tuple[tuple[str, str], ...] = ()
    trigger: str = "submit-message"
    message_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ChatRequestError(RemoteError, ValueError):
    """A ``POST /api/chat`` body that is not what ``useChat`` sends (the message says what is wrong)."""


def _text_of(message: Mapping[str, Any]) -> str:
    pieces: list[str] = []
    parts = message.get("parts")
    if not isinstance(parts, list):
        raise ChatRequestError(f"message {message.get('id')!r} has no parts list")
    for part in parts:
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise ChatRequestError(f"message {message.get('id')!r} has a part without a type")
        kind = part["type"]
        if kind == "text":
            pieces.append(str(part.get("text", "")))
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            name = part.get("toolName") or kind.removeprefix("tool-")
            call = {"tool": name, "input": part.get("input")}
            if part.get("state") == "output-available":
                call["output"] = part.get("output")
            elif part.get("state") == "output-error":
                call["error"] = part.get("errorText")
            pieces.append(json.dumps(call, ensure_ascii=False, sort_keys=True))
    return "\n".join(p for p in pieces if p)


def parse_chat_request(body: Any) -> ChatRequestBody:
    """Read ``useChat``'s body (the parsed JSON) or raise :class:`ChatRequestError`.

    >>> body = {"id": "c1", "trigger": "submit-message", "messages": [
    ...     {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]}]}
    >>> parse_chat_request(body).prompt
    'Weather in Paris?'
    """
    if not isinstance(body, Mapping):
        raise ChatRequestError("the body must be a JSON object")
    chat_id, messages = body.get("id"), body.get("messages")
    if not isinstance(chat_id, str) or not chat_id:
        raise ChatRequestError("the body has no chat id ('id')")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("the body has no messages")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant", "system"):
            raise ChatRequestError("every message needs a role: user, assistant or system")
    trigger = str(body.get("trigger") or "submit-message")
    if trigger not in ("submit-message", "regenerate-message"):
        raise ChatRequestError(f"unknown trigger {trigger!r}")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ChatRequestError("there is no user message to answer")
    prompt = _text_of(messages[last_user])
    if not prompt.strip():
        raise ChatRequestError("the last user message has no text")
    history = tuple((str(m["role"]), _text_of(m)) for m in messages[:last_user])
    known = {"id", "messages", "trigger", "messageId"}
    message_id = body.get("messageId")
    return ChatRequestBody(
        chat_id,
        prompt,
        tuple(messages),
        history,
        trigger,
        None if message_id is None else str(message_id),
        {k: v for k, v in body.items() if k not in known},
    )
