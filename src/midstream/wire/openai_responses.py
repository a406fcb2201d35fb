"""OpenAI Responses API streaming (``POST /v1/responses`` with ``"stream": true``).

The body is server-sent events ``event: <type>`` / ``data: <json>``, one typed object each, with no
``[DONE]`` (one is ignored if a compatible server sends it). :class:`OpenAIResponsesDecoder` turns it
into raw normalized events; :class:`OpenAIResponsesEncoder` (in
:mod:`midstream.wire._openai_responses_encoder`) writes the same bytes back from events.

How the decoder maps the wire (choices made where the format leaves room):

* ``response.created`` opens the response (``ResponseStart`` with the response ``id`` and ``model``);
  ``response.in_progress`` and ``response.queued`` add nothing. A stream that skips ``created`` gets a
  bare ``ResponseStart`` before its first event; a second ``created`` passes as ``Unknown``.
* Blocks come from output items (``output_index``) and get block indices in the order they open:

  - ``message`` items: one **text** block per content part (``content_index``), opened by
    ``content_part.added``; ``output_text.delta`` gives ``TextDelta``. ``refusal`` parts are text
    blocks too (``raw_type="refusal"``): the Message keeps the words, and the stop reason stays
    ``end_turn`` because the response itself completed. ``output_text.annotation.added`` gives
    ``CitationDelta`` (the raw annotation).
  - ``reasoning`` items: one **thinking** block per summary part (``reasoning_summary_part.added``,
    ``reasoning_summary_text.delta``) and per ``reasoning_text`` content part (open-weight models).
    The item's ``encrypted_content`` is opaque reasoning the caller must send back verbatim: at
    ``output_item.done`` (the value there is the final one; the ``added`` one differs) it becomes a
    **redacted_thinking** block (``data`` = the string) after the item's summary blocks. A reasoning
    item with neither summary, content nor encrypted content still leaves one empty thinking block,
    so the Message records that the model reasoned there.
  - ``function_call`` items: a **tool_call** block opened at ``output_item.added`` with ``id`` =
    ``call_id`` (what the tool result must reference, not the ``fc_`` item id), ``name`` and
    ``raw_type="function_call"``; ``function_call_arguments.delta`` gives ``ToolArgsDelta`` with the
    exact text.
  - Any other item type (``web_search_call``, ``file_search_call``, ``code_interpreter_call``,
    ``mcp_call``, ``mcp_list_tools``, ``custom_tool_call``, ...) is a **server_tool** block opened at
    ``output_item.added`` (so blocks keep the output order): ``raw_type`` = the item type, ``id`` /
    ``name`` from the item, ``data`` = the item as announced. At ``output_item.done`` the finished item
    follows as ``Unknown("response.output_item.done", item, index=<block>)``, which the Accumulator
    makes the block's ``content``. Their progress events (``response.web_search_call.searching``, ...)
    pass as ``Unknown``.
  - A message item's ``phase`` (``commentary`` / ``final_answer``) goes into its text blocks'
    ``BlockStart.data`` as ``{"phase": ...}`` (``TextBlock.phase``): OpenAI asks for it back.

  The ``.done`` events (``output_text.done``, ``content_part.done``, ``reasoning_summary_text.done``,
  ``function_call_arguments.done``, ``output_item.done``) close a block once; when a block saw no
  delta, the full text they carry becomes its one delta. An item done with ``status: "incomplete"``
  closes its blocks ``complete=False``.
* ``response.completed`` first finishes every item of ``response.output`` that no ``output_item.done``
  finished (OpenAI may announce an item and never finish it), and any item never announced, as if
  its ``output_item.done`` had come, in output order, as the SDK does. Then it gives a
  ``UsageUpdate`` from ``response.usage`` (``input_tokens`` counts cached tokens, as OpenAI
  reports; ``cache_read_tokens`` = ``input_tokens_details.cached_tokens``,
  ``cache_write_tokens`` = ``input_tokens_details.cache_write_tokens``, ``reasoning_tokens`` =
  ``output_tokens_details.reasoning_tokens``) and ``ResponseEnd``: ``tool_use`` when the output holds a
  function call, else ``end_turn``; ``raw_stop_reason`` is ``response.status``.
* ``response.incomplete`` ends ``truncated`` whatever the reason (the output stopped early):
  ``max_output_tokens`` -> ``max_tokens``, ``content_filter`` -> ``content_filter``, anything else ->
  ``other``; ``raw_stop_reason`` is the reason and ``stop_details`` the ``incomplete_details``.
* ``error`` events, in the SDK's shape ``{code, message, param}`` and in the captured shape
  ``{error: {type, code, message, param}}``, and ``response.failed`` (``response.error``) give
  ``StreamError`` classified by the error ``type`` or ``code``; ``raw`` is the error object. The
  response has then failed: the timeline absorbs the closing ``response.failed``.
* ``sequence_number`` is kept as ``seq`` on every event it produces (2025-03 streams have none).
* Unknown event types pass as ``Unknown``. Payloads that are not JSON objects, or events of the wrong
  shape, raise :class:`~midstream.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from midstream.errors import ErrorKind, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import StopReason, Usage
from midstream.wire._fast_events import text_delta, tool_args_delta
from midstream.wire._openai_responses_common import DIALECT, INCOMPLETE_REASONS, Payload, opt_str
from midstream.wire._openai_responses_encoder import OpenAIResponsesEncoder
from midstream.wire._openai_responses_encoder import whole_body as _whole_body
from midstream.wire._openai_responses_request import REQUEST as _REQUEST
from midstream.wire._openai_responses_request import unknown_previous as unknown_previous
from midstream.wire._payload import ParsesPayloads, loads
from midstream.wire.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE, SSEFrame, SSEFrameDecoder

__all__ = [
    "DECODER",
    "DIALECT",
    "ENCODER",
    "INCOMPLETE_REASONS",
    "OpenAIResponsesDecoder",
    "OpenAIResponsesEncoder",
]

_Key = tuple[int, str, int]  # (output_index, part family, part index)
_KNOWN_ITEMS = frozenset({"message", "reasoning", "function_call"})
_OPENING = frozenset({"response.created", "response.in_progress", "response.queued", "error"})
_PART_KINDS: dict[str, BlockType] = {"output_text": "text", "refusal": "text", "reasoning_text": "thinking"}


@dataclass(frozen=True)
class _Part:
    """Where a part event's block lives and what it holds."""

    family: str  # "content" (content_index) or "summary" (summary_index)
    btype: BlockType
    raw_type: str
    text: str = ""  # the field with the full text, on .done events ("part" = part["text"])

    def key(self, payload: Payload) -> _Key:
        index_field = "summary_index" if self.family == "summary" else "content_index"
        return _int(payload, "output_index"), self.family, _int(payload, index_field)


_TEXT = _Part("content", "text", "output_text")
_REFUSAL = _Part("content", "text", "refusal")
_SUMMARY = _Part("summary", "thinking", "summary_text")
_REASONING = _Part("content", "thinking", "reasoning_text")

# event type -> the part it opens (``.added``), feeds (``.delta``) or closes (``.done``).
_PART_ADDED: dict[str, _Part] = {"response.reasoning_summary_part.added": _SUMMARY}
_PART_DELTAS: dict[str, _Part] = {
    "response.output_text.delta": _TEXT,
    "response.refusal.delta": _REFUSAL,
    "response.reasoning_summary_text.delta": _SUMMARY,
    "response.reasoning_text.delta": _REASONING,
}
_PART_DONES: dict[str, _Part] = {
    "response.output_text.done": dataclasses.replace(_TEXT, text="text"),
    "response.refusal.done": dataclasses.replace(_REFUSAL, text="refusal"),
    "response.reasoning_summary_text.done": dataclasses.replace(_SUMMARY, text="text"),
    "response.reasoning_summary_part.done": dataclasses.replace(_SUMMARY, text="part"),
    "response.reasoning_text.done": dataclasses.replace(_REASONING, text="text"),
}


def _shape(payload: Payload, key: str, expected: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{DIALECT} event {payload.get('type')!r}: {key!r} must be {expected}")


def _dict(payload: Payload, key: str) -> Payload:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise _shape(payload, key, "an object")
    return value


def _int(payload: Payload, key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _shape(payload, key, "an integer")
    return value


def _str(payload: Payload, key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise _shape(payload, key, "a string")
    return value


def _opt_int(payload: Any, key: str) -> int | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details, out_details = raw.get("input_tokens_details"), raw.get("output_tokens_details")
    return Usage(
        input_tokens=_opt_int(raw, "input_tokens"),
        output_tokens=_opt_int(raw, "output_tokens"),
        cache_read_tokens=_opt_int(details, "cached_tokens"),
        cache_write_tokens=_opt_int(details, "cache_write_tokens"),
        reasoning_tokens=_opt_int(out_details, "reasoning_tokens"),
    )


def _classify(error: Payload) -> tuple[ErrorKind, bool]:
    # The SDK shape's ``type`` is the event type "error"; the captured shape's is the error's own.
    for name in (error.get("type"), error.get("code")):
        if isinstance(name, str) and name != "error":
            kind, retryable = classify_error(name)
            if kind != "unknown":
                return kind, retryable
    return "unknown", False


def _error_event(error: Payload, fallback: str, seq: int | None) -> StreamError:
    kind, retryable = _classify(error)
    message = opt_str(error, "message") or fallback
    return StreamError(error_kind=kind, message=message, retryable=retryable, raw=error, seq=seq)


def _delta(btype: BlockType, index: int, text: str, seq: int | None) -> Event:
    if btype == "text":
        return TextDelta(index, text, seq=seq)
    if btype == "thinking":
        return ThinkingDelta(index, text, seq=seq)
    return ToolArgsDelta(index, text, seq=seq)


@dataclass
class _Block:
    index: int
    type: BlockType
    deltas: bool = False
    citations: bool = False
    stopped: bool = False


@dataclass
class _Item:
    type: str | None
    item: Payload
    done: bool = False
    blocks: int = 0


_Handler = Callable[[Payload, int | None], list[Event]]


class OpenAIResponsesDecoder(ParsesPayloads):
    """Responses API SSE bytes -> raw normalized events (see the module docstring for the mapping).

    ``max_line`` / ``max_event`` bound the SSE framing (:class:`~midstream.errors.LimitExceeded`).
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self._sse = SSEFrameDecoder(max_line=max_line, max_event=max_event)
        self._started = False
        self._ended = False  # the provider's terminal event arrived
        self._failed = False  # an error event arrived: the timeline has ended the response
        self._items: dict[int, _Item] = {}
        self._blocks: dict[_Key, _Block] = {}
        self._next_index = 0
        self._tool_calls = False
        self._handlers: dict[str, _Handler] = {
            "response.created": self._on_created,
            "response.in_progress": self._on_progress,
            "response.queued": self._on_progress,
            "response.output_item.added": self._on_item_added,
            "response.output_item.done": self._on_item_done,
            "response.content_part.added": self._on_part_added,
            "response.content_part.done": self._on_part_done,
            "response.output_text.annotation.added": self._on_annotation,
            "response.function_call_arguments.delta": self._on_args_delta,
            "response.function_call_arguments.done": self._on_args_done,
            "response.completed": self._on_completed,
            "response.incomplete": self._on_incomplete,
            "response.failed": self._on_failed,
            "error": self._on_error,
        }
        self._handlers.update(dict.fromkeys(_PART_ADDED, self._on_added))
        self._handlers.update(dict.fromkeys(_PART_DELTAS, self._on_delta))
        self._handlers.update(dict.fromkeys(_PART_DONES, self._on_done))

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        """Decode a chunk of the body; return the events it completed (appended to ``out``).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        frames: list[SSEFrame] = []
        try:
            self._sse.feed(data, frames)
        finally:
            self._frames(frames, out)  # if this raises too, its error wins: its frame came first
        return out

    def close(self) -> list[Event]:
        """End of the body. Items still pending are open blocks the timeline closes as incomplete."""
        return self._frames(self._sse.close(), [])

    # -- framing ---------------------------------------------------------------------------------

    def _frames(self, frames: list[SSEFrame], out: list[Event]) -> list[Event]:
        parse, common = self._parse or self._parser(), self._common
        for event_type, data in frames:
            if self._started:
                # The common delta, parsed straight and offered to the inlined read first.
                try:
                    payload = parse(data)
                except ValueError:
                    pass  # ``[DONE]`` or what only the full policy (or nothing) reads: the general path
                else:
                    if type(payload) is dict:
                        delta = common(payload)
                        if delta is None:
                            out.extend(self._frame(event_type, data, payload))
                        else:
                            out.append(delta)
                        continue
            out.extend(self._frame(event_type, data))
        return out

    def _frame(self, event_type: str, data: str, payload: Payload | None = None) -> list[Event]:
        """One frame (``payload``: already parsed, an object the common read declined)."""
        if payload is None:
            if data[:1] != "{" and data.strip() == "[DONE]":
                return []
            try:
                payload = loads(data)
            except ValueError as exc:
                raise RemoteProtocolError(f"{DIALECT} event {event_type!r} is not JSON: {exc}") from exc
            if not isinstance(payload, dict):
                raise RemoteProtocolError(f"{DIALECT} event {event_type!r} is not a JSON object")
            if self._started:
                delta = self._common(payload)
                if delta is not None:
                    return [delta]
        kind = opt_str(payload, "type") or event_type
        seq = _opt_int(payload, "sequence_number")
        handler = self._handlers.get(kind)
        if handler is None:
            return [Unknown(raw_type=kind, payload=payload, seq=seq)]
        out: list[Event] = []
        if not self._started and kind not in _OPENING:
            out.append(self._start({}, None))
        out.extend(handler(payload, seq))
        return out

    def _common(self, payload: Payload) -> Event | None:
        """The events nearly every token comes in, with the checks inlined: an ``output_text.delta`` or
        a ``function_call_arguments.delta`` for a block already open. None for anything else, which the
        handlers then decode the same way (``tests/test_fast_paths.py``)."""
        kind = payload.get("type")
        seq = payload.get("sequence_number")
        text = payload.get("delta")
        output_index = payload.get("output_index")
        if (
            type(text) is not str
            or type(output_index) is not int
            or (seq is not None and type(seq) is not int)
        ):
            return None
        if kind == "response.output_text.delta":
            content_index = payload.get("content_index")
            if type(content_index) is not int:
                return None
            block = self._blocks.get((output_index, "content", content_index))
            if block is None:
                return None
            block.deltas = True
            return text_delta(block.index, text, seq)
        if kind == "response.function_call_arguments.delta":
            block = self._blocks.get((output_index, "call", 0))
            if block is None:
                return None
            self._tool_calls = True
            block.deltas = True
            return tool_args_delta(block.index, text, seq)
        return None

    # -- blocks ----------------------------------------------------------------------------------

    def _item(self, output_index: int, item_type: str | None = None) -> _Item:
        state = self._items.get(output_index)
        if state is None:
            state = self._items[output_index] = _Item(item_type, {})
        return state

    def _open(
        self,
        key: _Key,
        btype: BlockType,
        seq: int | None,
        raw_type: str | None,
        *,
        id: str | None = None,
        name: str | None = None,
        data: Any = None,
    ) -> tuple[_Block, list[Event]]:
        block = self._blocks.get(key)
        if block is not None:
            return block, []
        if btype == "text" and data is None:
            data = self._phase(key[0])
        block = self._blocks[key] = _Block(self._next_index, btype)
        self._next_index += 1
        self._item(key[0]).blocks += 1
        start = BlockStart(
            index=block.index, type=btype, id=id, name=name, raw_type=raw_type, data=data, seq=seq
        )
        return block, [start]

    def _phase(self, output_index: int) -> Payload | None:
        """``{"phase": ...}`` for a text block of a message item that has one (kept for the next turn)."""
        state = self._items.get(output_index)
        phase = state.item.get("phase") if state is not None else None
        return {"phase": phase} if isinstance(phase, str) else None

    def _append(self, key: _Key, btype: BlockType, raw_type: str, text: str, seq: int | None) -> list[Event]:
        block, out = self._open(key, btype, seq, raw_type)
        block.deltas = True
        out.append(_delta(btype, block.index, text, seq))
        return out

    def _close(self, block: _Block, text: Any, seq: int | None, complete: bool = True) -> list[Event]:
        if block.stopped:
            return []
        out: list[Event] = []
        # A block that streamed no delta gets the full text of its .done event as its one delta.
        if not block.deltas and isinstance(text, str) and text:
            out.append(_delta(block.type, block.index, text, seq))
            block.deltas = True
        block.stopped = True
        out.append(BlockStop(block.index, complete=complete, seq=seq))
        return out

    def _close_part(
        self, output_index: int, part_index: int, part: Any, seq: int | None, complete: bool = True
    ) -> list[Event]:
        part = part if isinstance(part, dict) else {}
        raw_type = opt_str(part, "type") or "unknown"
        btype = _PART_KINDS.get(raw_type, "unknown")
        data = part if btype == "unknown" else None
        block, out = self._open((output_index, "content", part_index), btype, seq, raw_type, data=data)
        annotations = part.get("annotations")
        if btype == "text" and not block.citations and not block.stopped and isinstance(annotations, list):
            out.extend(CitationDelta(block.index, a, seq=seq) for a in annotations)
            block.citations = True
        text = part.get("text") if raw_type != "refusal" else part.get("refusal")
        return out + self._close(block, text, seq, complete)

    def _open_call(
        self, output_index: int, seq: int | None, item: Payload | None = None
    ) -> tuple[_Block, list[Event]]:
        self._tool_calls = True
        info = item if item is not None else self._item(output_index, "function_call").item
        return self._open(
            (output_index, "call", 0),
            "tool_call",
            seq,
            "function_call",
            id=opt_str(info, "call_id"),
            name=opt_str(info, "name"),
        )

    # -- response lifecycle ----------------------------------------------------------------------

    def _start(self, response: Payload, seq: int | None) -> ResponseStart:
        self._started = True
        return ResponseStart(
            provider=DIALECT, model=opt_str(response, "model"), id=opt_str(response, "id"), seq=seq
        )

    def _on_created(self, payload: Payload, seq: int | None) -> list[Event]:
        if self._started:
            return [Unknown(raw_type=_str(payload, "type"), payload=payload, seq=seq)]
        return [self._start(_dict(payload, "response"), seq)]

    def _on_progress(self, payload: Payload, seq: int | None) -> list[Event]:
        return [] if self._started else [self._start(_dict(payload, "response"), seq)]

    def _end_usage(self, response: Payload, seq: int | None) -> list[Event]:
        self._ended = True
        out: list[Event] = []
        usage = _usage(response.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage, seq=seq))
        return out

    def _on_completed(self, payload: Payload, seq: int | None) -> list[Event]:
        response = _dict(payload, "response")
        output = response.get("output")
        calls = isinstance(output, list) and any(
            isinstance(item, dict) and item.get("type") == "function_call" for item in output
        )
        stop: StopReason = "tool_use" if calls or self._tool_calls else "end_turn"
        raw = opt_str(response, "status") or "completed"
        backfilled = self._backfill(response, seq)
        return [
            *backfilled,
            *self._end_usage(response, seq),
            ResponseEnd(stop_reason=stop, raw_stop_reason=raw, seq=seq),
        ]

    def _on_incomplete(self, payload: Payload, seq: int | None) -> list[Event]:
        response = _dict(payload, "response")
        details = response.get("incomplete_details")
        reason = opt_str(details, "reason") if isinstance(details, dict) else None
        stop = INCOMPLETE_REASONS.get(reason or "", "other")
        end = ResponseEnd(
            stop_reason=stop, raw_stop_reason=reason, terminal="truncated", stop_details=details, seq=seq
        )
        return [*self._end_usage(response, seq), end]

    def _on_failed(self, payload: Payload, seq: int | None) -> list[Event]:
        response = _dict(payload, "response")
        out: list[Event] = []
        self._ended = True
        error = response.get("error")
        error = error if isinstance(error, dict) else {}
        out.append(_error_event(error, "the response failed", seq))
        out.append(
            ResponseEnd(stop_reason="error", raw_stop_reason=opt_str(response, "status") or "failed", seq=seq)
        )
        return out

    def _on_error(self, payload: Payload, seq: int | None) -> list[Event]:
        # The timeline ends the response here (and starts it first if it had not started).
        self._started = self._failed = True
        nested = payload.get("error")
        return [_error_event(nested if isinstance(nested, dict) else payload, "stream error", seq)]

    # -- output items ----------------------------------------------------------------------------

    def _on_item_added(self, payload: Payload, seq: int | None) -> list[Event]:
        output_index, item = _int(payload, "output_index"), _dict(payload, "item")
        state = self._item(output_index)
        state.type, state.item = _str(item, "type"), item
        if state.type == "function_call":
            return self._open_call(output_index, seq, item)[1]
        if state.type not in _KNOWN_ITEMS:
            # Opened now, in output order; the finished item replaces it at output_item.done.
            return self._server_block(output_index, item, seq)[1]
        return []

    def _on_item_done(self, payload: Payload, seq: int | None) -> list[Event]:
        output_index, item = _int(payload, "output_index"), _dict(payload, "item")
        item_type = _str(item, "type")
        state = self._item(output_index)
        state.type, state.item, state.done = item_type, item, True
        complete = item.get("status") != "incomplete"
        if item_type == "function_call":
            block, out = self._open_call(output_index, seq, item)
            return out + self._close(block, item.get("arguments"), seq, complete)
        if item_type == "message":
            return self._close_parts(output_index, item.get("content"), seq, complete)
        if item_type == "reasoning":
            return self._reasoning_done(output_index, item, seq, complete)
        block, out = self._server_block(output_index, item, seq)
        if not out and not block.stopped:
            # Opened at output_item.added with the item as announced: the finished item replaces it.
            out.append(
                Unknown(raw_type="response.output_item.done", payload=item, index=block.index, seq=seq)
            )
        return out + self._close(block, None, seq, complete)

    def _server_block(self, output_index: int, item: Payload, seq: int | None) -> tuple[_Block, list[Event]]:
        return self._open(
            (output_index, "server", 0),
            "server_tool",
            seq,
            opt_str(item, "type"),
            id=opt_str(item, "id"),
            name=opt_str(item, "name"),
            data=item,
        )

    def _backfill(self, response: Payload, seq: int | None) -> list[Event]:
        """Items ``response.completed`` lists that no ``output_item.done`` finished (or never announced).

        OpenAI sometimes announces an item (``mcp_list_tools``) and never sends its ``done``: the
        completed response's ``output`` is then the only full copy, and the SDK takes it from there.
        """
        output = response.get("output")
        out: list[Event] = []
        for output_index, item in enumerate(output if isinstance(output, list) else []):
            state = self._items.get(output_index)
            if (
                isinstance(item, dict)
                and isinstance(item.get("type"), str)
                and (state is None or not state.done)
            ):
                out.extend(self._on_item_done({"output_index": output_index, "item": item}, seq))
        return out

    def _close_parts(self, output_index: int, parts: Any, seq: int | None, complete: bool) -> list[Event]:
        out: list[Event] = []
        for part_index, part in enumerate(parts if isinstance(parts, list) else []):
            out.extend(self._close_part(output_index, part_index, part, seq, complete))
        return out

    def _reasoning_done(
        self, output_index: int, item: Payload, seq: int | None, complete: bool
    ) -> list[Event]:
        out: list[Event] = []
        summary = item.get("summary")
        for index, part in enumerate(summary if isinstance(summary, list) else []):
            block, opened = self._open((output_index, "summary", index), "thinking", seq, "summary_text")
            text = part.get("text") if isinstance(part, dict) else None
            out.extend(opened + self._close(block, text, seq, complete))
        out.extend(self._close_parts(output_index, item.get("content"), seq, complete))
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            key: _Key = (output_index, "encrypted", 0)
            block, opened = self._open(key, "redacted_thinking", seq, "reasoning", data=encrypted)
            out.extend(opened + self._close(block, None, seq, complete))
        if self._items[output_index].blocks == 0:
            block, opened = self._open((output_index, "summary", 0), "thinking", seq, "reasoning")
            out.extend(opened + self._close(block, None, seq, complete))
        return out

    # -- content ---------------------------------------------------------------------------------

    def _on_part_added(self, payload: Payload, seq: int | None) -> list[Event]:
        output_index, part_index = _int(payload, "output_index"), _int(payload, "content_index")
        part = _dict(payload, "part")
        raw_type = opt_str(part, "type") or "unknown"
        btype = _PART_KINDS.get(raw_type, "unknown")
        data = part if btype == "unknown" else None
        return self._open((output_index, "content", part_index), btype, seq, raw_type, data=data)[1]

    def _on_part_done(self, payload: Payload, seq: int | None) -> list[Event]:
        output_index, part_index = _int(payload, "output_index"), _int(payload, "content_index")
        return self._close_part(output_index, part_index, _dict(payload, "part"), seq)

    def _on_annotation(self, payload: Payload, seq: int | None) -> list[Event]:
        block, out = self._open(_TEXT.key(payload), "text", seq, "output_text")
        block.citations = True
        out.append(CitationDelta(block.index, payload.get("annotation"), seq=seq))
        return out

    def _on_added(self, payload: Payload, seq: int | None) -> list[Event]:
        part = _PART_ADDED[_str(payload, "type")]
        return self._open(part.key(payload), part.btype, seq, part.raw_type)[1]

    def _on_delta(self, payload: Payload, seq: int | None) -> list[Event]:
        part = _PART_DELTAS[_str(payload, "type")]
        return self._append(part.key(payload), part.btype, part.raw_type, _str(payload, "delta"), seq)

    def _on_done(self, payload: Payload, seq: int | None) -> list[Event]:
        part = _PART_DONES[_str(payload, "type")]
        text = payload.get(part.text)
        if isinstance(text, dict):  # reasoning_summary_part.done carries {part: {type, text}}
            text = text.get("text")
        block, out = self._open(part.key(payload), part.btype, seq, part.raw_type)
        return out + self._close(block, text, seq)

    def _on_args_delta(self, payload: Payload, seq: int | None) -> list[Event]:
        output_index = _int(payload, "output_index")
        block, out = self._open_call(output_index, seq)
        block.deltas = True
        out.append(ToolArgsDelta(block.index, _str(payload, "delta"), seq=seq))
        return out

    def _on_args_done(self, payload: Payload, seq: int | None) -> list[Event]:
        block, out = self._open_call(_int(payload, "output_index"), seq)
        return out + self._close(block, payload.get("arguments"), seq)


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = OpenAIResponsesDecoder
ENCODER = OpenAIResponsesEncoder
NONSTREAM = _whole_body
