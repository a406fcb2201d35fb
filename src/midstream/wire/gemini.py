"""Gemini ``streamGenerateContent``: the Gemini API and Vertex AI stream, both directions.

The body is either SSE (``?alt=sse``: ``data: <json>`` lines framed with CRLF) or, without ``alt``, a
streamed JSON array of the same objects; :class:`GeminiDecoder` tells them apart by the first byte.
Every element is a ``GenerateContentResponse`` chunk; the first candidate's parts become blocks:

* ``text`` parts are answer text, ``thought: true`` text parts reasoning; consecutive parts of one kind
  continue the same block, a change of kind closes it and opens the next. Empty text parts (Gemini
  sends one with the ``finishReason``) open nothing.
* **Thought signatures.** Gemini puts ``thoughtSignature`` on the part that *follows* the reasoning
  (the first answer part, or a ``functionCall`` part), not on a thought part, and wants it back on that
  same part. midstream keeps it as the signature of a thinking block placed right before that part: the
  open thinking block gets it (and ends), or, when no thinking block is open (thoughts not requested),
  a thinking block with empty text is made to carry it. So ``[ThinkingBlock(thinking, signature=S),
  X]`` means "S travels on the first part of X" (or on an empty text part when nothing follows), and the
  encoder writes it back exactly there. A signature on a part inside an answer splits the answer in two
  text blocks around the signature's thinking block.
* ``functionCall`` parts are tool calls. A whole call (the Gemini API) becomes one ``BlockStart``, one
  ``ToolArgsDelta`` with the compact JSON of ``args`` and a ``BlockStop``. Vertex streams arguments
  (``functionCall{name, willContinue}``, then ``partialArgs`` by JSON path, then an empty
  ``functionCall{}``): :class:`~midstream.wire._gemini_parts.ArgsWriter` turns them into JSON text as
  they arrive; a call still streaming when another named call starts ends incomplete. Gemini sends no
  call id; the id is then ``call_<responseId>_<n>`` (``n`` counts calls from 0), the same for any split.
* ``executableCode`` / ``codeExecutionResult`` parts, and the ``toolCall`` / ``toolResponse`` parts of
  Gemini 3's built-in tools (``id`` and ``toolType`` as the block's id and name; a call's ``args`` also
  as its input), are server tool blocks, other parts unknown blocks, both carrying the part's value
  whole (a signature on such a part travels as described above); unknown top-level and candidate fields become
  :class:`~midstream.events.Unknown` events, as do candidates other than the first.
* ``usageMetadata`` (running totals on every chunk) becomes a partial ``UsageUpdate`` when it differs
  from the last one (a repeated total is not reported again).
* The ``finishReason`` chunk closes the open text or thinking block (``complete=False`` for
  ``MAX_TOKENS``: the answer was cut there) and a call whose arguments are still streaming (always
  ``complete=False``: nothing may follow the finish). Gemini has no end event: usage may still follow
  in a later chunk, so the ``ResponseEnd`` is held until :meth:`GeminiDecoder.close`.
  Content after the ``finishReason`` is a protocol error. No ``finishReason`` by EOF: ``truncated``.
  ``promptFeedback.blockReason`` (a blocked prompt) ends the response ``content_filter`` the same way.
* Errors, ``data: {"error": ...}`` or a raw pretty-printed ``{"error": ...}`` object between SSE events
  (or as the whole body), become a :class:`~midstream.events.StreamError`.

The encoder (:class:`GeminiEncoder`, in :mod:`midstream.wire._gemini_encoder`) writes all of this back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
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
from midstream.message import StopReason, Usage
from midstream.wire._fast_events import text_delta
from midstream.wire._gemini_encoder import GeminiEncoder, wire_finish_reason
from midstream.wire._gemini_encoder import whole_body as _whole_body
from midstream.wire._gemini_parts import PART_META, PROVIDER, SERVER_PARTS, ArgsWriter, synthetic_call_id
from midstream.wire._gemini_request import REQUEST as _REQUEST
from midstream.wire._lines import LineBuffer
from midstream.wire._payload import ParsesPayloads, loads
from midstream.wire.ndjson import DEFAULT_MAX_DOCUMENT, JSONArraySplitter
from midstream.wire.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE

__all__ = [
    "DECODER",
    "ENCODER",
    "FINISH_REASONS",
    "GeminiDecoder",
    "GeminiEncoder",
    "synthetic_call_id",
    "wire_finish_reason",
]

Framing = Literal["auto", "sse", "json-array"]

# finishReason -> normalized stop reason; STOP becomes ``tool_use`` when the response called tools,
# and anything not listed (MALFORMED_FUNCTION_CALL, OTHER, new values) is ``other``.
FINISH_REASONS: dict[str, StopReason] = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}

_CHUNK_FIELDS = frozenset({"candidates", "usageMetadata", "modelVersion", "responseId", "createTime"})
_CANDIDATE_FIELDS = frozenset({"content", "finishReason", "finishMessage", "index", "citationMetadata"})
_PLAIN_CANDIDATE = frozenset({"content", "index"})  # a candidate with nothing but content (and index 0)


def _stop_reason(raw: str, called_tools: bool) -> StopReason:
    if raw == "STOP" and called_tools:
        return "tool_use"
    if raw.startswith("IMAGE_"):
        return "content_filter"
    return FINISH_REASONS.get(raw, "other")


def _load(text: str) -> dict[str, Any]:
    try:
        value = loads(text)
    except ValueError as exc:
        raise RemoteProtocolError(f"invalid JSON in a Gemini stream: {exc}") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"a Gemini chunk must be a JSON object, not {type(value).__name__}")
    return value


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- framing -------------------------------------------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class _SSEFramer:
    """``alt=sse`` bodies -> JSON payload texts, also picking up raw JSON objects between events.

    SSE rules apply (CR, LF or CRLF line ends, ``data`` lines joined by LF, a blank line dispatches,
    other fields and comments ignored, an event without its blank line at EOF is dropped). A line
    starting with ``{``, which SSE would ignore as an unknown field, is Gemini's raw mid-stream error
    object instead: it ends any pending event and is read, line after line, until its braces balance.
    """

    def __init__(self, *, max_line: int, max_event: int, max_document: int) -> None:
        self.max_line, self.max_event, self.max_document = max_line, max_event, max_document
        self._buffer = LineBuffer(universal=True, bom=True)
        self._data: list[str] = []
        self._size = 0
        self._raw: JSONArraySplitter | None = None

    def feed(self, data: bytes, out: list[str] | None = None, *, final: bool = False) -> list[str]:
        out = [] if out is None else out
        buffer = self._buffer
        if buffer.idle and data.endswith(b"\n"):
            # Whole lines with nothing held to join them to (how Gemini flushes): no line buffer.
            try:
                text = data.decode()
            except UnicodeDecodeError:  # the buffer's decoder replaces invalid bytes
                text = buffer.feed(data, final)
        else:
            text = buffer.feed(data, final)
        if text:
            pos = self._events(text, out) if self._raw is None and not self._data else 0
            if pos < len(text):
                lines = _LINE_END.split(text[pos:] if pos else text)
                lines.pop()  # the empty string after the last line end
                for line in lines:
                    self._line(line, out)
        buffer.check(self.max_line, "SSE line")  # after the complete lines, which come first
        return out

    def _events(self, text: str, out: list[str]) -> int:
        """Between events: read each ordinary one (``data: <payload>`` CRLF CRLF, no other line end in
        it) with two ``find`` calls; return where the first other line starts."""
        find, starts = text.find, text.startswith
        # The longest payload the bounds allow (a longer one goes line by line, which raises).
        max_data = min(self.max_line - 6, self.max_event - 1)
        pos = 0
        while starts("data: ", pos):
            cr = find("\r", pos)
            if cr < 0 or find("\n", pos) != cr + 1 or not starts("\r\n", cr + 2) or cr - pos - 6 > max_data:
                break
            out.append(text[pos + 6 : cr])
            pos = cr + 4
        return pos

    def close(self) -> list[str]:
        out = self.feed(b"", final=True)
        tail = self._buffer.rest()
        if tail:
            self._line(tail, out)
        return out  # a raw object still open at EOF was cut short: dropped like an unfinished event

    def _line(self, line: str, out: list[str]) -> None:
        if len(line) > self.max_line:
            raise _limit("SSE line", "max_line", self.max_line)
        if self._raw is None and line.lstrip(" \t").startswith("{"):
            self._dispatch(out)
            self._raw = JSONArraySplitter(max_document=self.max_document)
        if self._raw is not None:
            self._raw_line(self._raw, line, out)
            return
        if not line:
            self._dispatch(out)
            return
        name, colon, value = line.partition(":")
        if name != "data":
            return  # comments, event names, ids: Gemini sends none and they carry nothing here
        value = value.removeprefix(" ") if colon else ""
        self._size += len(value) + 1
        if self._size > self.max_event:
            raise _limit("SSE event", "max_event", self.max_event)
        self._data.append(value)

    def _dispatch(self, out: list[str]) -> None:
        if self._data:
            out.append("\n".join(self._data))
            self._data, self._size = [], 0

    def _raw_line(self, raw: JSONArraySplitter, line: str, out: list[str]) -> None:
        done = raw.feed_text(line + "\n")
        if raw.finished:
            out.extend(done)
            self._raw = None


def _limit(what: str, limit: str, value: int) -> LimitExceeded:
    return LimitExceeded(f"{what} longer than {value} characters", limit=limit, value=value)


# -- decoding ------------------------------------------------------------------------------------


@dataclass
class _Open:
    index: int
    kind: Literal["text", "thinking"]


@dataclass
class _Call:
    index: int
    writer: ArgsWriter


def _count(meta: dict[str, Any], key: str) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RemoteProtocolError(f"usageMetadata.{key} must be an integer")
    return value


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        raise RemoteProtocolError("usageMetadata must be an object")
    prompt, tool = _count(meta, "promptTokenCount"), _count(meta, "toolUsePromptTokenCount")
    answer, thoughts = _count(meta, "candidatesTokenCount"), _count(meta, "thoughtsTokenCount")
    usage = Usage(
        # Gemini's prompt count already includes cached tokens; tool-use prompts are billed as input.
        input_tokens=None if prompt is None and tool is None else (prompt or 0) + (tool or 0),
        output_tokens=None if answer is None and thoughts is None else (answer or 0) + (thoughts or 0),
        cache_read_tokens=_count(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )
    return None if usage == Usage() else usage


def _stream_error(payload: dict[str, Any]) -> StreamError:
    error = payload.get("error")
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    status = error.get("status") if isinstance(error.get("status"), str) else None
    kind, retryable = classify_error(status, code)
    message = error.get("message")
    if not isinstance(message, str):
        message = status or "Gemini stream error"
    return StreamError(error_kind=kind, message=message, retryable=retryable, status=code, raw=payload)


_JSON_TYPES: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise RemoteProtocolError(f"{what} must be {_JSON_TYPES[kind]}, not {type(value).__name__}")
    return value


_NOTHING = object()


class _Response(ParsesPayloads):
    """One response's state: parsed Gemini chunks -> raw normalized events."""

    def __init__(self) -> None:
        self._started = False
        self._response_id: str | None = None
        self._next_index = 0
        self._open: _Open | None = None  # the text or thinking block parts are appended to
        self._call: _Call | None = None  # a call whose arguments are still streaming
        self._calls = 0
        self._end: ResponseEnd | None = None  # held until EOF (see the module docstring)
        self._failed = False
        # The last usageMetadata seen: Gemini repeats the running totals on every chunk, and a total
        # that did not change is not reported (or recomputed) again.
        self._usage_seen: Any = _NOTHING

    def payload(self, text: str, out: list[Event] | None = None) -> list[Event]:
        """The events of one chunk's JSON text (appended to ``out`` when given)."""
        out = [] if out is None else out
        try:
            chunk = (self._parse or self._parser())(text)
        except ValueError:
            chunk = None
        if type(chunk) is not dict:
            chunk = _load(text)  # the policy in full, and its errors
        if self._failed:
            out.append(Unknown(raw_type="chunk_after_error", payload=chunk))
        elif "error" in chunk:
            self._failed = True
            out.append(_stream_error(chunk))
        elif not self._common_chunk(chunk, out):
            out.extend(self._chunk(chunk))
        return out

    def _common_chunk(self, chunk: dict[str, Any], out: list[Event]) -> bool:
        """The chunk nearly every token comes in, read with the checks inlined: one candidate (index 0,
        only ``content``) with one part that :meth:`_common` reads, and the chunk's usual fields. False
        (nothing done) for anything else, which :meth:`_chunk` then decodes the same way."""
        candidates = chunk.get("candidates")
        if not self._started or type(candidates) is not list or len(candidates) != 1:
            return False
        candidate = candidates[0]
        if (
            type(candidate) is not dict
            or not _CHUNK_FIELDS.issuperset(chunk)
            or not _PLAIN_CANDIDATE.issuperset(candidate)
            or candidate.get("index", 0) != 0
        ):
            return False
        content = candidate.get("content")
        parts = content.get("parts") if type(content) is dict else None
        if type(parts) is not list or len(parts) != 1:
            return False
        # A bad usage total fails the chunk before any of its events is out, as in the general path.
        meta = chunk.get("usageMetadata", _NOTHING)
        changed = meta is not _NOTHING and meta != self._usage_seen
        usage = _usage(meta) if changed else None
        if not self._common(parts[0], out):
            return False
        if changed:
            self._usage_seen = meta
            if usage is not None:
                out.append(UsageUpdate(usage))
        return True

    def close(self) -> list[Event]:
        return [self._end] if self._end is not None and not self._failed else []

    def _chunk(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            rid, model = chunk.get("responseId"), chunk.get("modelVersion")
            self._response_id = rid if isinstance(rid, str) else None
            out.append(
                ResponseStart(
                    provider=PROVIDER, model=model if isinstance(model, str) else None, id=self._response_id
                )
            )
        if not _CHUNK_FIELDS.issuperset(chunk):
            out.extend(
                Unknown(raw_type=k, payload=v)
                for k, v in chunk.items()
                if k not in _CHUNK_FIELDS and k != "promptFeedback"
            )
        for candidate in _expect(chunk.get("candidates", []), list, "candidates"):
            _expect(candidate, dict, "a candidate")
            if candidate.get("index", 0) == 0:
                out.extend(self._candidate(candidate))
            else:
                out.append(Unknown(raw_type="candidate", payload=candidate))
        if "promptFeedback" in chunk:
            out.extend(self._feedback(_expect(chunk["promptFeedback"], dict, "promptFeedback")))
        self._usage_update(chunk, out)
        return out

    def _usage_update(self, chunk: dict[str, Any], out: list[Event]) -> None:
        meta = chunk.get("usageMetadata", _NOTHING)
        if meta is not _NOTHING and meta != self._usage_seen:
            usage = _usage(meta)
            self._usage_seen = meta
            if usage is not None:
                out.append(UsageUpdate(usage))

    def _candidate(self, candidate: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        content = _expect(candidate.get("content", {}), dict, "content")
        for part in _expect(content.get("parts", []), list, "content.parts"):
            if not self._common(part, out):
                out.extend(self._part(_expect(part, dict, "a part")))
        if not _CANDIDATE_FIELDS.issuperset(candidate):
            out.extend(
                Unknown(raw_type=k, payload=v) for k, v in candidate.items() if k not in _CANDIDATE_FIELDS
            )
        if "citationMetadata" in candidate:
            out.extend(self._citations(_expect(candidate["citationMetadata"], dict, "citationMetadata")))
        if "finishReason" in candidate:
            raw = _expect(candidate["finishReason"], str, "finishReason")
            message = candidate.get("finishMessage")
            stop = _stop_reason(raw, self._calls > 0)
            out.extend(self._close_at_finish(cut=stop == "max_tokens"))
            self._end = ResponseEnd(
                stop_reason=stop,
                raw_stop_reason=raw,
                stop_details={"finishMessage": message} if message is not None else None,
            )
        return out

    def _common(self, part: Any, out: list[Event]) -> bool:
        """The part nearly every token comes in, with the checks inlined: only more text for the open
        answer block. False (nothing done) for anything else, which :meth:`_part` then decodes the
        same way (``tests/test_fast_paths.py``)."""
        text = part.get("text") if type(part) is dict and len(part) == 1 else None
        open_block = self._open
        if type(text) is not str or open_block is None or open_block.kind != "text" or self._end is not None:
            return False
        if text:
            out.append(text_delta(open_block.index, text))
        return True

    def _close_at_finish(self, cut: bool) -> list[Event]:
        """Close what the finish leaves open; a ``cut`` (token limit) leaves the text block incomplete."""
        out = self._close_text(complete=not cut)
        if self._call is not None:
            # Its end (the empty functionCall) can no longer come: the arguments stay partial.
            out.append(BlockStop(self._call.index, complete=False))
            self._call = None
        return out

    def _feedback(self, feedback: dict[str, Any]) -> list[Event]:
        reason = feedback.get("blockReason")
        if reason is None:
            return [Unknown(raw_type="promptFeedback", payload=feedback)]
        self._end = ResponseEnd(
            stop_reason="content_filter",
            raw_stop_reason=_expect(reason, str, "blockReason"),
            stop_details={"promptFeedback": feedback},
        )
        return self._close_text()

    def _citations(self, metadata: dict[str, Any]) -> list[Event]:
        # The Gemini API names the list citationSources, Vertex citations.
        sources = metadata.get("citationSources", metadata.get("citations"))
        if self._open is None or self._open.kind != "text" or not isinstance(sources, list):
            return [Unknown(raw_type="citationMetadata", payload=metadata)]
        return [CitationDelta(self._open.index, source) for source in sources]

    def _part(self, part: dict[str, Any]) -> list[Event]:
        if self._end is not None and (part.get("text") != "" or "thoughtSignature" in part):
            raise RemoteProtocolError("Gemini sent content after the finishReason")
        out: list[Event] = []
        if "thoughtSignature" in part:
            out.extend(self._signature(_expect(part["thoughtSignature"], str, "thoughtSignature")))
        if "functionCall" in part:
            out.extend(self._function_call(_expect(part["functionCall"], dict, "functionCall")))
        elif "text" in part:
            out.extend(self._text(_expect(part["text"], str, "text"), part.get("thought") is True))
        else:
            key = next((k for k in part if k not in PART_META), None)
            if key is not None:
                out.extend(self._whole(key, part[key]))
        return out

    def _new_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1

    def _close_text(self, complete: bool = True) -> list[Event]:
        if self._open is None:
            return []
        index, self._open = self._open.index, None
        return [BlockStop(index, complete=complete)]

    def _signature(self, signature: str) -> list[Event]:
        if self._open is not None and self._open.kind == "thinking":
            index, self._open = self._open.index, None
            return [SignatureDelta(index, signature), BlockStop(index)]
        out = self._close_text()
        index = self._new_index()
        out += [
            BlockStart(index=index, type="thinking", raw_type="thoughtSignature"),
            SignatureDelta(index, signature),
            BlockStop(index),
        ]
        return out

    def _text(self, text: str, thought: bool) -> list[Event]:
        if not text:
            return []
        kind: Literal["text", "thinking"] = "thinking" if thought else "text"
        out: list[Event] = []
        if self._open is None or self._open.kind != kind:
            out.extend(self._close_text())
            self._open = _Open(self._new_index(), kind)
            out.append(
                BlockStart(index=self._open.index, type=kind, raw_type="thought" if thought else "text")
            )
        index = self._open.index
        out.append(ThinkingDelta(index, text) if thought else TextDelta(index, text))
        return out

    def _function_call(self, call: dict[str, Any]) -> list[Event]:
        if self._call is not None and "name" not in call:
            return self._continue_call(call)
        out = self._close_text()
        if self._call is not None:
            # A new named call while the last one never got its end: that one is incomplete.
            out.append(BlockStop(self._call.index, complete=False))
            self._call = None
        name = call.get("name")
        if not isinstance(name, str):
            raise RemoteProtocolError("a functionCall without a name outside a streamed call")
        call_id = call.get("id")
        if not isinstance(call_id, str):
            call_id = synthetic_call_id(self._response_id, self._calls)
        index = self._new_index()
        self._calls += 1
        out.append(BlockStart(index=index, type="tool_call", id=call_id, name=name, raw_type="functionCall"))
        if call.get("willContinue") is True or "partialArgs" in call:
            self._call = _Call(index, ArgsWriter())
            return out + self._continue_call(call)
        if call.get("args") is not None:
            out.append(ToolArgsDelta(index, _compact(_expect(call["args"], dict, "functionCall.args"))))
        out.append(BlockStop(index))
        return out

    def _continue_call(self, call: dict[str, Any]) -> list[Event]:
        assert self._call is not None
        index, writer = self._call.index, self._call.writer
        partial = _expect(call.get("partialArgs", []), list, "partialArgs")
        text = "".join(writer.write(arg) for arg in partial)
        if call.get("willContinue") is True:
            return [ToolArgsDelta(index, text)] if text else []
        self._call = None
        if not writer.written and isinstance(call.get("args"), dict):
            text = _compact(call["args"])
        else:
            text += writer.finish()
        return [ToolArgsDelta(index, text), BlockStop(index)]

    def _whole(self, key: str, value: Any) -> list[Event]:
        out = self._close_text()
        index = self._new_index()
        if key in ("toolCall", "toolResponse") and isinstance(value, dict):
            return [*out, *self._builtin_tool(index, key, value)]
        kind: Literal["server_tool", "unknown"] = "server_tool" if key in SERVER_PARTS else "unknown"
        return [*out, BlockStart(index=index, type=kind, raw_type=key, data=value), BlockStop(index)]

    def _builtin_tool(self, index: int, key: str, value: dict[str, Any]) -> list[Event]:
        """A Gemini 3 built-in tool's call or response: a server tool block named by its ``toolType``.

        A call's ``args`` also stream as its input (``{}`` without any), as other providers' server tool
        calls do; the part itself stays whole in ``data`` to be sent back.
        """
        call_id, tool_type = value.get("id"), value.get("toolType")
        start = BlockStart(
            index=index,
            type="server_tool",
            id=call_id if isinstance(call_id, str) else None,
            name=tool_type if isinstance(tool_type, str) else None,
            raw_type=key,
            data=value,
        )
        if key == "toolResponse":
            return [start, BlockStop(index)]
        args = _expect(value.get("args") or {}, dict, "toolCall.args")
        return [start, ToolArgsDelta(index, _compact(args)), BlockStop(index)]


def _detect(head: bytes) -> Framing | None:
    """The framing a body starting with ``head`` uses, or None while only whitespace has arrived."""
    if _BOM.startswith(head):
        return None
    body = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    if not body:
        return None
    return "json-array" if body[:1] in (b"[", b"{") else "sse"


class GeminiDecoder:
    """Gemini stream bytes -> raw normalized events (wrap with :func:`midstream.wire.decoder`).

    ``framing="auto"`` decides from the first non-whitespace byte: ``[`` (a JSON array) or ``{`` (a
    lone JSON object: an error body) mean JSON, anything else SSE. Limits are in characters:
    ``max_line`` / ``max_event`` for SSE, ``max_document`` for one JSON chunk.
    """

    def __init__(
        self,
        *,
        framing: Framing = "auto",
        max_document: int = DEFAULT_MAX_DOCUMENT,
        max_line: int = DEFAULT_MAX_LINE,
        max_event: int = DEFAULT_MAX_EVENT,
    ) -> None:
        if framing not in get_args(Framing):
            raise LocalError(f"unknown Gemini framing {framing!r}")
        self.framing = framing
        self.max_document, self.max_line, self.max_event = max_document, max_line, max_event
        self._framer: _SSEFramer | JSONArraySplitter | None = None
        self._head = b""
        self._response = _Response()
        if framing != "auto":
            self._framer = self._make(framing)

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        """Decode a chunk of the body (events appended to ``out`` when given).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        if self._framer is None:
            self._head += data
            framing = _detect(self._head)
            if framing is None:
                # Only a byte-order mark (whole or in part) or whitespace so far: keep the mark, whole,
                # so the framer strips it with the first real byte; whitespace can go.
                self._head = self._head if _BOM.startswith(self._head) else b""
                return out
            self._framer, data, self._head = self._make(framing), self._head, b""
        texts: list[str] = []
        try:
            self._framer.feed(data, texts)
        finally:
            self._events(texts, out)  # if this raises too, its error wins: its frame came first
        return out

    def close(self) -> list[Event]:
        """End of the body: what it completes, then the held ``ResponseEnd`` if a finish was seen."""
        texts = self._framer.close() if self._framer is not None else []
        return self._events(texts, []) + self._response.close()

    def _make(self, framing: Framing) -> _SSEFramer | JSONArraySplitter:
        if framing == "sse":
            return _SSEFramer(
                max_line=self.max_line, max_event=self.max_event, max_document=self.max_document
            )
        return JSONArraySplitter(max_document=self.max_document)

    def _events(self, texts: list[str], out: list[Event]) -> list[Event]:
        payload = self._response.payload
        for text in texts:
            if len(text) > self.max_document:
                raise _limit("Gemini chunk", "max_document", self.max_document)
            payload(text, out)
        return out


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = GeminiDecoder
ENCODER = GeminiEncoder
NONSTREAM = _whole_body
