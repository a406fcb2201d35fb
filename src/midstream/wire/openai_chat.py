"""OpenAI Chat Completions streaming (``POST /v1/chat/completions`` with ``"stream": true``).

The body is server-sent events whose ``data`` is one ``chat.completion.chunk`` JSON object each, ending
with ``data: [DONE]``. :class:`OpenAIChatDecoder` turns it into raw normalized events;
:class:`OpenAIChatEncoder` (in :mod:`midstream.wire._openai_chat_encoder`) writes the same bytes back
from events.

How the decoder maps the wire (choices made where the format leaves room):

* The first chunk opens the response (``ResponseStart`` with its ``id`` and ``model``).
* Only choice ``index`` 0 is decoded. Other choices (``n > 1``) pass through whole as
  ``Unknown("choice", <choice>)`` so nothing is lost, but they do not become blocks.
* ``delta.content`` feeds one text block, opened on the first non-empty piece. ``delta.refusal`` feeds a
  *separate* text block whose ``raw_type`` is ``"refusal"`` (OpenAI keeps refusals apart from content;
  the finish reason is still ``stop``, so the stop reason stays ``end_turn``). ``delta.reasoning_content``
  or ``delta.reasoning`` (vLLM, DeepSeek, OpenRouter and other compatible servers) feed one thinking
  block. So do the ``reasoning.text`` / ``reasoning.summary`` items of ``delta.reasoning_details``
  (OpenRouter, Snowflake Cortex; their ``signature`` -> ``SignatureDelta``) when the delta carries no
  ``reasoning`` text (OpenRouter sends both, the same text twice); a ``reasoning.encrypted`` item opens a
  ``redacted_thinking`` block holding its ``data``. ``delta.annotations`` items become citations of
  the text block.
* ``delta.tool_calls`` fragments: the first fragment of a call opens a ``tool_call`` block with the
  next free block index; later fragments give ``ToolArgsDelta`` with exactly the ``arguments`` text. A
  fragment belongs to the call with the same ``id``; without an ``id``, to the call at the same
  ``index``; without either, to the last call opened. A *new* ``id`` under an ``index`` already used is
  a new call, and so is a different function name where the fragment has no ``id``. Fragments of
  several calls may interleave. The legacy ``delta.function_call`` is one more call (without an id).
* ``finish_reason`` closes every open block (``complete=False`` for ``length``, and for ``error``,
  which OpenRouter sends) and is remembered; ``[DONE]`` ends the response with it. ``error`` maps to the
  ``error`` stop reason (the response failed), the OpenAI values as documented, anything else to
  ``other``. Content arriving after ``finish_reason`` opens new blocks rather than being dropped.
* ``usage`` (the ``choices: []`` chunk of ``stream_options.include_usage``, or any chunk carrying it;
  older Groq puts it in ``x_groq.usage``) becomes a partial ``UsageUpdate``: ``input_tokens`` =
  ``prompt_tokens`` (cached tokens included, as OpenAI counts), ``cache_read_tokens`` =
  ``prompt_tokens_details.cached_tokens`` (or DeepSeek's ``prompt_cache_hit_tokens``, or
  ``cached_tokens`` at the top of ``usage`` as some compatible servers send it),
  ``cache_write_tokens`` = ``prompt_tokens_details.cache_write_tokens`` (a field the SDK knows),
  ``output_tokens`` = ``completion_tokens`` and ``reasoning_tokens`` =
  ``completion_tokens_details.reasoning_tokens``.
* ``[DONE]`` without any ``finish_reason`` before it, or the end of the body without ``[DONE]``, ends the
  response ``truncated`` (keeping whatever finish reason did arrive): OpenAI itself always sends one.
  Some compatible servers never do (Snowflake Cortex), so with ``finish_required=False`` (what the
  client uses for the ``openai-compatible`` provider) a clean ``[DONE]`` without one closes the open
  blocks as finished and ends ``completed`` with stop reason ``tool_use`` if a tool call streamed,
  else ``end_turn``, and no ``raw_stop_reason`` (the server gave none). A body cut before ``[DONE]``
  stays ``truncated`` either way.
* A payload with a truthy ``error`` (OpenAI's ``{"error": {...}}``, OpenRouter's error inside a normal
  chunk, a plain string from other servers) or sent as ``event: error`` becomes ``StreamError``,
  classified by the error's ``type`` or string ``code``, a numeric ``code`` counting as HTTP status. The
  response has then failed: a later ``[DONE]`` is expected and ignored, other payloads pass as
  ``Unknown``. Any delta in the failing chunk is decoded first; its ``finish_reason`` is not.
* Objects that are not chunks, unknown ``delta`` keys, non-null ``logprobs`` and ``moderation`` pass
  through as ``Unknown``. Payloads that are not JSON objects, or chunks of the wrong shape, raise
  :class:`~midstream.errors.RemoteProtocolError`. Empty (whitespace-only) payloads are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, get_args

from midstream.errors import ErrorKind, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import StopReason, Terminal, Usage
from midstream.wire._fast_events import text_delta, tool_args_delta
from midstream.wire._openai_chat_common import DIALECT, FINISH_REASONS
from midstream.wire._openai_chat_encoder import OpenAIChatEncoder, wire_finish_reason
from midstream.wire._openai_chat_encoder import whole_body as _whole_body
from midstream.wire._openai_chat_request import REQUEST as _REQUEST
from midstream.wire._payload import ParsesPayloads, loads
from midstream.wire.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE, SSEFrame, SSEFrameDecoder

__all__ = [
    "DECODER",
    "DIALECT",
    "ENCODER",
    "FINISH_REASONS",
    "OpenAIChatDecoder",
    "OpenAIChatEncoder",
    "wire_finish_reason",
]

# A block still open when one of these arrives was cut short, not finished.
_CUTTING_FINISH = frozenset({"length", "error"})

# Fields compatible servers stream reasoning text in, by preference.
_REASONING_FIELDS = ("reasoning_content", "reasoning")
# Delta keys with a meaning here; any other non-null key passes through as Unknown.
_OTHER_FIELDS = (
    "role",
    "content",
    "refusal",
    "annotations",
    "tool_calls",
    "function_call",
    "reasoning_details",
)
# ``reasoning_details`` items (OpenRouter, Snowflake Cortex) that carry readable reasoning, and where.
_DETAIL_TEXT = {"reasoning.text": "text", "reasoning.summary": "summary"}
_DELTA_KEYS = frozenset(_REASONING_FIELDS + _OTHER_FIELDS)

# The legacy ``function_call`` delta has no index; it gets this key in the call table.
_LEGACY_CALL = "function_call"

_State = Literal["idle", "streaming", "done", "failed"]
_Frame = Literal["done", "error", "chunk", "other"]

_FRAMES: tuple[_Frame, ...] = get_args(_Frame)

# (decoder state, kind of payload) -> handler name. Before the end each kind has its handler; after
# it, everything is late, except the ``[DONE]`` OpenAI often sends after an error payload.
_TRANSITIONS: dict[tuple[_State, _Frame], str] = {
    **{(state, frame): f"_{frame}" for state in ("idle", "streaming") for frame in _FRAMES},
    **{(state, frame): "_late" for state in ("done", "failed") for frame in _FRAMES},
    ("failed", "done"): "_ignore",
}


class _ToolCalls:
    """Which block each tool-call fragment belongs to (by id, by provider index, or the last call)."""

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.by_pos: dict[int | str, int] = {}
        self.ids: dict[int, str | None] = {}
        self.names: dict[int, str | None] = {}
        self.last: int | None = None

    def resolve(self, pos: int | str | None, call_id: str | None, name: str | None) -> int | None:
        """The block of an existing call, or None when the fragment starts a new call."""
        if call_id is not None:
            if call_id in self.by_id:
                return self.by_id[call_id]
            known = self.by_pos.get(pos) if pos is not None else None
            if known is not None and self.ids[known] is None:
                # The call's first fragment had no id; this one names it.
                self.by_id[call_id] = known
                return known
            return None
        block = self.by_pos.get(pos) if pos is not None else self.last
        if block is not None and name and self.names[block] and name != self.names[block]:
            return None
        return block

    def add(self, block: int, pos: int | str | None, call_id: str | None, name: str | None) -> None:
        if pos is not None:
            self.by_pos[pos] = block
        if call_id is not None:
            self.by_id[call_id] = block
        self.ids[block] = call_id
        self.names[block] = name
        self.last = block


class OpenAIChatDecoder(ParsesPayloads):
    """Chat Completions stream bytes -> raw normalized events (see the module docstring for the mapping).

    Sans-IO: ``feed(bytes)`` returns the events the bytes completed, ``close()`` those of the end of the
    body. ``max_line`` and ``max_event`` bound the SSE framing (:class:`~midstream.errors.LimitExceeded`).
    """

    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_event: int = DEFAULT_MAX_EVENT,
        finish_required: bool = True,
    ) -> None:
        self._sse = SSEFrameDecoder(max_line=max_line, max_event=max_event)
        self.finish_required = finish_required
        self._state: _State = "idle"
        self._finish: str | None = None
        self._next_index = 0
        self._open: dict[int, None] = {}  # open block indices, in opening order
        self._slots: dict[str, int] = {}  # "text" / "refusal" / "thinking" -> open block index
        self._calls = _ToolCalls()
        self._had_call = False

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        """Decode a piece of the body; return the events it completed (appended to ``out``).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        frames: list[SSEFrame] = []
        try:
            self._sse.feed(data, frames)
        finally:
            self._payloads(frames, out)  # if this raises too, its error wins: its frame came first
        return out

    def _payloads(self, frames: list[SSEFrame], out: list[Event]) -> None:
        parse, common = self._parse or self._parser(), self._common
        for event_type, data in frames:
            if self._state == "streaming" and event_type == "message":
                # The common chunk, parsed straight (JSON allows the whitespace ``strip`` would take).
                try:
                    obj = parse(data)
                except ValueError:
                    pass  # ``[DONE]``, an empty payload or not JSON: the general path says which
                else:
                    if type(obj) is dict:
                        if not common(obj, out):
                            self._payload(event_type, data, out, obj)
                        continue
            self._payload(event_type, data, out)

    def close(self) -> list[Event]:
        """End of the body. Without ``[DONE]`` the response ends ``truncated``."""
        out: list[Event] = []
        for event_type, data in self._sse.close():
            self._payload(event_type, data, out)
        if self._state == "streaming":
            self._end("truncated", out)
        return out

    # -- payloads --------------------------------------------------------------------------------

    def _payload(self, event_type: str, data: str, out: list[Event], obj: Any = None) -> None:
        """One payload (``obj``: already parsed, a dict the common-chunk read declined)."""
        frame: _Frame
        if obj is not None:
            frame = _frame_kind(obj, event_type)
        else:
            data = data.strip()
            if not data:
                return
            if data == "[DONE]":
                frame = "done"
            else:
                obj = _loads(data)
                if self._state == "streaming" and event_type == "message" and self._common(obj, out):
                    return
                frame = _frame_kind(obj, event_type)
        handler: Callable[[Any, list[Event]], None] = getattr(self, _TRANSITIONS[(self._state, frame)])
        handler(obj, out)

    def _start(self, obj: dict[str, Any] | None, out: list[Event]) -> None:
        if self._state != "idle":
            return
        obj = obj or {}
        out.append(ResponseStart(provider=DIALECT, model=_opt_str(obj, "model"), id=_opt_str(obj, "id")))
        self._state = "streaming"

    def _chunk(self, obj: dict[str, Any], out: list[Event]) -> None:
        self._start(obj, out)
        self._choices(obj, out, finish=True)
        if obj.get("moderation") is not None:
            out.append(Unknown(raw_type="moderation", payload=obj["moderation"]))
        usage = obj.get("usage")
        if usage is None and isinstance(obj.get("x_groq"), dict):
            usage = obj["x_groq"].get("usage")  # older Groq put it there
        if usage is not None:
            out.append(UsageUpdate(_usage(_expect(usage, dict, "usage"))))

    def _common(self, obj: dict[str, Any], out: list[Event]) -> bool:
        """The chunk nearly every token comes in, decoded here with the checks inlined: one choice at
        index 0 whose delta is only a ``content`` text, or only the ``arguments`` text of a call already
        open, with no finish reason, logprobs, usage or error. False (nothing done) for anything else,
        which the general path then decodes the same way (``tests/test_fast_paths.py``)."""
        choices = obj.get("choices")
        if type(choices) is not list or len(choices) != 1 or obj.get("error"):
            return False
        choice = choices[0]
        if (
            type(choice) is not dict
            or choice.get("index", 0) != 0
            or choice.get("finish_reason") is not None
            or choice.get("logprobs") is not None
            or obj.get("usage") is not None
            or obj.get("moderation") is not None
            or "x_groq" in obj
        ):
            return False
        delta = choice.get("delta")
        if type(delta) is not dict or len(delta) != 1:
            return False
        content = delta.get("content")
        if type(content) is str:
            if content:
                out.append(text_delta(self._slot("text", out), content))
            return True
        calls = delta.get("tool_calls")
        if type(calls) is not list or len(calls) != 1:
            return False
        fragment = calls[0]
        if type(fragment) is not dict or len(fragment) != 2 or type(fragment.get("index")) is not int:
            return False
        function = fragment.get("function")
        if type(function) is not dict or len(function) != 1:
            return False
        arguments = function.get("arguments")
        block = self._calls.by_pos.get(fragment["index"])
        if type(arguments) is not str or block is None:
            return False
        if arguments:
            out.append(tool_args_delta(block, arguments))
        return True

    def _choices(self, obj: dict[str, Any], out: list[Event], *, finish: bool) -> None:
        for choice in _listed(obj, "choices"):
            _expect(choice, dict, "a choice")
            if choice.get("index", 0) != 0:
                out.append(Unknown(raw_type="choice", payload=choice))
                continue
            self._delta(_expect(_or(choice.get("delta"), {}), dict, "delta"), out)
            if choice.get("logprobs") is not None:
                out.append(Unknown(raw_type="logprobs", payload=choice["logprobs"]))
            reason = choice.get("finish_reason")
            if finish and reason is not None:
                self._finish_with(reason, out)

    def _error(self, obj: dict[str, Any], out: list[Event]) -> None:
        if "choices" in obj:
            # OpenRouter: the error rides in an otherwise normal chunk.
            self._start(obj, out)
            self._choices(obj, out, finish=False)
        out.append(_stream_error(obj))
        self._state = "failed"

    def _done(self, obj: None, out: list[Event]) -> None:
        self._start(None, out)
        if self._finish is None and not self.finish_required:
            # A server that never sends a finish reason (Snowflake Cortex) ends cleanly with [DONE]:
            # its blocks are finished, and the stop reason is what the content shows.
            self._close_all(complete=True, out=out)
            stop: StopReason = "tool_use" if self._had_call else "end_turn"
            out.append(ResponseEnd(stop_reason=stop, raw_stop_reason=None))
            self._state = "done"
            return
        self._end("completed" if self._finish is not None else "truncated", out)

    def _end(self, terminal: Terminal, out: list[Event]) -> None:
        reason = self._finish
        stop = None if reason is None else FINISH_REASONS.get(reason, "other")
        out.append(ResponseEnd(stop_reason=stop, raw_stop_reason=reason, terminal=terminal))
        self._state = "done"

    def _other(self, obj: dict[str, Any], out: list[Event]) -> None:
        out.append(Unknown(raw_type=_raw_type(obj), payload=obj))

    def _late(self, obj: dict[str, Any] | None, out: list[Event]) -> None:
        out.append(Unknown(raw_type="[DONE]" if obj is None else _raw_type(obj), payload=obj))

    def _ignore(self, obj: Any, out: list[Event]) -> None:
        pass

    # -- deltas ----------------------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning = next(filter(None, (_opt_str(delta, key) for key in _REASONING_FIELDS)), None)
        if reasoning:
            out.append(ThinkingDelta(self._slot("thinking", out), reasoning))
        details = _listed(delta, "reasoning_details")
        if details:
            # OpenRouter sends the same text in ``reasoning`` too: read it from one place only.
            self._reasoning_details(details, out, text=not reasoning)
        content = _opt_str(delta, "content")
        if content:
            out.append(TextDelta(self._slot("text", out), content))
        refusal = _opt_str(delta, "refusal")
        if refusal:
            out.append(TextDelta(self._slot("refusal", out), refusal))
        if delta.get("annotations"):
            index = self._slot("text", out)
            out.extend(CitationDelta(index, c) for c in _expect(delta["annotations"], list, "annotations"))
        for fragment in _listed(delta, "tool_calls"):
            self._tool_fragment(_expect(fragment, dict, "a tool call fragment"), out)
        legacy = delta.get("function_call")
        if legacy is not None:
            self._tool_fragment({"index": _LEGACY_CALL, "function": legacy}, out)
        for key, value in delta.items():
            if key not in _DELTA_KEYS and value is not None:
                out.append(Unknown(raw_type=f"delta.{key}", payload=value))

    def _reasoning_details(self, details: list[Any], out: list[Event], *, text: bool) -> None:
        for item in details:
            _expect(item, dict, "a reasoning_details item")
            kind = item.get("type")
            field = _DETAIL_TEXT.get(kind) if isinstance(kind, str) else None
            if field is not None:
                piece = _opt_str(item, field)
                if piece and text:
                    out.append(ThinkingDelta(self._slot("thinking", out), piece))
                signature = _opt_str(item, "signature")
                if signature:
                    out.append(SignatureDelta(self._slot("thinking", out), signature))
            elif kind == "reasoning.encrypted":
                data = _opt_str(item, "data")
                if data:
                    index = self._open_block(out)
                    out.append(BlockStart(index=index, type="redacted_thinking", raw_type=kind, data=data))
            else:
                out.append(Unknown(raw_type=f"reasoning_details.{kind}", payload=item))

    def _slot(self, slot: str, out: list[Event]) -> int:
        index = self._slots.get(slot)
        if index is None:
            index = self._open_block(out)
            kind: BlockType = "thinking" if slot == "thinking" else "text"
            out.append(BlockStart(index=index, type=kind, raw_type=slot))
            self._slots[slot] = index
        return index

    def _tool_fragment(self, fragment: dict[str, Any], out: list[Event]) -> None:
        pos = fragment.get("index")
        if pos is not None and pos != _LEGACY_CALL:
            _expect(pos, int, "a tool call index")
        call_id = _opt_str(fragment, "id") or None
        function = _expect(_or(fragment.get("function"), {}), dict, "a tool call function")
        name = _opt_str(function, "name")
        block = self._calls.resolve(pos, call_id, name)
        if block is None:
            block = self._open_block(out)
            self._had_call = True
            raw_type = _opt_str(fragment, "type") or ("function_call" if pos == _LEGACY_CALL else "function")
            out.append(BlockStart(index=block, type="tool_call", id=call_id, name=name, raw_type=raw_type))
            self._calls.add(block, pos, call_id, name)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            # A few compatible servers send the arguments as an object, whole, instead of JSON text.
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        elif arguments is not None and not isinstance(arguments, str):
            raise RemoteProtocolError(f"openai-chat tool call arguments are not text: {arguments!r}")
        if arguments:
            out.append(ToolArgsDelta(block, arguments))

    def _open_block(self, out: list[Event]) -> int:
        index = self._next_index
        self._next_index += 1
        self._open[index] = None
        return index

    def _finish_with(self, reason: Any, out: list[Event]) -> None:
        self._finish = _expect(reason, str, "finish_reason")
        self._close_all(complete=reason not in _CUTTING_FINISH, out=out)

    def _close_all(self, *, complete: bool, out: list[Event]) -> None:
        out.extend(BlockStop(index, complete=complete) for index in self._open)
        self._open.clear()
        self._slots.clear()
        self._calls = _ToolCalls()


# -- payload parsing -------------------------------------------------------------------------------


def _expect(value: Any, kind: type, what: str) -> Any:
    """``value`` if it is a ``kind``; a remote protocol error otherwise (bools are not integers)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RemoteProtocolError(f"openai-chat {what} is not {kind.__name__}: {value!r}")
    return value


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _listed(obj: dict[str, Any], key: str) -> list[Any]:
    """``obj[key]``, a list, or ``[]`` when absent or null."""
    value: list[Any] = _expect(_or(obj.get(key), []), list, key)
    return value


def _loads(data: str) -> dict[str, Any]:
    try:
        obj = loads(data)
    except ValueError as exc:
        raise RemoteProtocolError(f"openai-chat payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"openai-chat payload is not a JSON object: {data[:80]!r}")
    return obj


def _frame_kind(obj: dict[str, Any], event: str) -> _Frame:
    if obj.get("error") or event == "error":
        return "error"
    if "choices" in obj or obj.get("object") == "chat.completion.chunk":
        return "chunk"
    return "other"


def _raw_type(obj: dict[str, Any]) -> str:
    kind = obj.get("object")
    return kind if isinstance(kind, str) else "unknown"


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _expect(value, str, key)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(raw: dict[str, Any]) -> Usage:
    prompt = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = completion if isinstance(completion, dict) else {}
    cached = _count(prompt.get("cached_tokens"))
    for key in ("prompt_cache_hit_tokens", "cached_tokens"):  # DeepSeek; some compatible servers
        if cached is None:
            cached = _count(raw.get(key))
    return Usage(
        input_tokens=_count(raw.get("prompt_tokens")),
        output_tokens=_count(raw.get("completion_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=_count(prompt.get("cache_write_tokens")),
        reasoning_tokens=_count(completion.get("reasoning_tokens")),
    )


def _stream_error(obj: dict[str, Any]) -> StreamError:
    error: Any = obj.get("error") or obj
    if isinstance(error, dict):
        message, kind_hint, code = error.get("message"), error.get("type"), error.get("code")
    else:
        message, kind_hint, code = error, obj.get("error_type"), None
    status: int | None = None
    if isinstance(code, int) and not isinstance(code, bool):
        status = code
    elif isinstance(code, str) and code.isdigit():
        status = int(code)
    kind: ErrorKind = "unknown"
    retryable = False
    for hint in (kind_hint, code):
        if isinstance(hint, str) and hint:
            kind, retryable = classify_error(hint)
            if kind != "unknown":
                break
    if kind == "unknown":
        kind, retryable = classify_error(None, status)
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return StreamError(error_kind=kind, message=message, retryable=retryable, status=status, raw=error)


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = OpenAIChatDecoder
ENCODER = OpenAIChatEncoder
NONSTREAM = _whole_body
