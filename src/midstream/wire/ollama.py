"""Ollama's streaming responses: newline-delimited JSON from ``/api/chat`` and ``/api/generate``.

Each line is one Go ``json.Marshal`` of a response struct. The two endpoints differ only in where the
text is, and the decoder tells them apart per line::

    /api/chat      {"model":..,"created_at":..,"message":{"role":"assistant","content":..,"thinking":..,
                    "tool_calls":[..]},"done":false}
    /api/generate  {"model":..,"created_at":..,"response":..,"thinking":..,"done":false}

The last line has ``"done":true``, ``done_reason`` and the metrics (token counts and durations in
nanoseconds). A mid-stream failure is the line ``{"error":"..."}``, after which the server hangs up.

Decoding (:class:`OllamaDecoder`):

* the first line gives ``ResponseStart(model=..., id=None)``; Ollama has no response id;
* ``thinking`` text goes to a thinking block, ``content`` / ``response`` text to a text block. One of
  them is open at a time: when the other kind starts, the open block closes (complete) and a new block
  opens, so thinking that resumes after text is a new block;
* tool calls arrive whole: each one closes the open text or thinking block, then becomes a ``tool_call``
  block with its ``id`` (or ``call_<n>``, ``n`` counting the response's tool calls from 0, when the
  server sends none), one ``ToolArgsDelta`` with the compact JSON of its ``arguments`` object and a
  ``BlockStop``. Null or missing arguments send no fragment (a tool without parameters: input ``{}``);
  a string is passed through as the JSON text it claims to be;
* ``done: true``: the open block closes, complete unless ``done_reason`` is ``length`` (the token
  limit cut it: ``complete=False``); ``prompt_eval_count`` / ``eval_count`` become
  ``input_tokens`` / ``output_tokens`` (thinking tokens are part of ``eval_count``; Ollama reports no
  cache counts); the durations, when present, pass as ``Unknown("ollama.metrics", {...})`` with the
  provider's fields and nanosecond values verbatim; then ``ResponseEnd``. ``done_reason`` ``stop`` (or
  none, as older servers send) is ``end_turn``, or ``tool_use`` when the response made tool calls;
  ``length`` is ``max_tokens``; ``load`` / ``unload`` (empty requests that only load a model) are
  ``end_turn``; anything else is ``other``. The raw reason is kept;
* ``{"error": ...}`` becomes a ``StreamError`` (status ``None``: the HTTP status was already 200),
  classified by its text, see :func:`classify_message`;
* any line after the ``done`` line, a line that is not a JSON object, and fields of the wrong type
  raise :class:`~midstream.errors.RemoteProtocolError`; a JSON object with none of the known fields
  passes through as ``Unknown("ollama.chunk", obj)``.

Encoding (:class:`OllamaEncoder`) writes what Ollama writes: Go field order, compact JSON, ``<``, ``>``,
``&``, U+2028 and U+2029 escaped as Go's HTML-safe encoder does, one chunk per text or thinking delta,
one ``done:false`` chunk per tool call, the ``done`` chunk with the usage and durations. What Ollama
cannot carry is skipped: thinking signatures, citations, redacted thinking, server tools and unknown
blocks, and tool calls that did not complete (writing them whole would turn a partial call into a
complete one). A tool call whose input is not a JSON object raises :class:`~midstream.errors.LocalError`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from midstream.errors import ErrorKind, LocalError, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
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
from midstream.message import Message, StopReason, Usage
from midstream.wire._base import Encoder
from midstream.wire._fast_events import text_delta
from midstream.wire._ollama_request import REQUEST as _REQUEST
from midstream.wire._payload import ParsesPayloads, loads
from midstream.wire.ndjson import DEFAULT_MAX_DOCUMENT, NDJSONSplitter

__all__ = [
    "DECODER",
    "DEFAULT_CREATED_AT",
    "ENCODER",
    "METRIC_FIELDS",
    "NONSTREAM",
    "OllamaDecoder",
    "OllamaEncoder",
    "classify_message",
    "go_json",
    "stop_reason_for",
    "wire_done_reason",
]

PROVIDER = "ollama"

METRIC_FIELDS: tuple[str, ...] = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
"""The duration fields (nanoseconds) of the final chunk, as carried by ``Unknown("ollama.metrics")``."""

# Every field a response chunk may carry; a JSON object with none of them is not a chunk we know.
_CHUNK_FIELDS = frozenset({"model", "created_at", "message", "response", "thinking", "tool_calls", "done"})

_DONE_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "load": "end_turn",
    "unload": "end_turn",
    "length": "max_tokens",
}


def stop_reason_for(done_reason: str | None, made_tool_calls: bool) -> StopReason:
    """The normalized stop reason of a ``done`` chunk (see the module docstring for the table)."""
    if done_reason is None or done_reason == "stop":
        return "tool_use" if made_tool_calls else "end_turn"
    return _DONE_REASONS.get(done_reason, "other")


# Ollama's mid-stream errors are bare messages; these phrases (from its server and runner errors)
# decide the kind, spelled as the provider error types ``classify_error`` knows.
_ERROR_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("rate limit", "too many requests"), "rate_limit_exceeded"),
    (("overloaded", "busy", "maximum pending requests", "try again"), "overloaded"),
    (("timed out", "timeout", "deadline exceeded"), "timeout_error"),
    (("not found",), "not_found"),
    (("unauthorized", "authentication", "api key"), "authentication_error"),
    (("forbidden", "permission"), "permission_error"),
)


def classify_message(message: str) -> tuple[ErrorKind, bool]:
    """``(kind, retryable)`` for an Ollama error message.

    Ollama sends no error type, so the text decides: "busy" / "overloaded" / "maximum pending requests"
    are ``overloaded`` (retryable), rate limits, timeouts, "not found", auth and permission phrases map
    to their kinds; anything else (typically the runner failing mid-generation, "an error was
    encountered while running the model") is a ``server`` error, retryable like any 5xx.
    """
    lowered = message.lower()
    for phrases, error_type in _ERROR_PHRASES:
        if any(phrase in lowered for phrase in phrases):
            return classify_error(error_type)
    return classify_error("server_error")


_ABSENT: Any = object()  # a field the line does not have (msgspec's UNSET once it is imported)
_READER: list[Callable[[str], Any]] = []


def _never(line: str) -> Any:
    raise ValueError("no typed reader without msgspec")


def _common_line_reader() -> Callable[[str], Any]:
    """msgspec's decoder of the fields the common line is checked on, made with the first text line.

    ``message`` must be an object; ``done``, ``error`` and the message's ``content``, ``thinking`` and
    ``tool_calls`` are whatever JSON value they hold, or ``_ABSENT``. Every other field is skipped, not
    built; where msgspec accepts a line this way, the payload policy reads the same values (what it
    refuses, the general path parses under the policy). Without msgspec no line is read this way.
    """
    global _ABSENT
    if not _READER:
        try:
            import msgspec
        except ImportError:  # pragma: no cover - msgspec is a dependency
            _READER.append(_never)
        else:
            absent = msgspec.UNSET
            fields = [(name, Any, absent) for name in ("content", "thinking", "tool_calls")]
            message = msgspec.defstruct("CommonMessage", fields)
            line = msgspec.defstruct(
                "CommonLine", [("message", message), ("done", Any, absent), ("error", Any, absent)]
            )
            _ABSENT = msgspec.UNSET
            _READER.append(msgspec.json.Decoder(line).decode)
    return _READER[0]


def _load_line(line: str) -> dict[str, Any]:
    try:
        value = loads(line)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"ollama stream line is not valid JSON: {line[:80]!r}") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"ollama stream line is not a JSON object: {line[:80]!r}")
    return value


def _optional(obj: dict[str, Any], key: str, kind: type) -> Any:
    """``obj[key]`` if it is a ``kind`` (JSON ``true`` is not an int here), ``None`` if null or missing."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RemoteProtocolError(f"ollama chunk field {key!r} has the wrong type: {value!r}")
    return value


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- decoding ------------------------------------------------------------------------------------------

_Phase = Literal["idle", "streaming", "done"]

OllamaApi = Literal["chat", "generate"]
"""The two streaming endpoints an encoder writes: ``/api/chat`` and ``/api/generate``."""


class OllamaDecoder(ParsesPayloads):
    """Ollama NDJSON bytes -> raw normalized events (see the module docstring for the mapping).

    Sans-IO and split-independent: any split of the body yields the same events. Lines longer than
    ``max_line`` characters raise :class:`~midstream.errors.LimitExceeded`.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_DOCUMENT) -> None:
        self._lines = NDJSONSplitter(max_line=max_line)
        self._phase: _Phase = "idle"
        self._next_index = 0
        self._open: tuple[int, BlockType] | None = None
        self._tool_calls = 0
        self._typed: Callable[[str], Any] | None = None  # see _common_line_reader

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        """The events of the lines that ``data`` completed (appended to ``out`` when given).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        lines: list[str] = []
        try:
            self._lines.feed(data, lines)
        finally:
            # If this raises too, its error wins: its line came first.
            common = self._common
            for line in lines:
                if common(line, out):
                    continue
                try:
                    obj = (self._parse or self._parser())(line)
                except (ValueError, RecursionError):
                    obj = None
                if type(obj) is not dict:
                    obj = _load_line(line)  # the policy in full, and its errors
                out.extend(self._line(obj))
        return out

    def close(self) -> list[Event]:
        """End of body: the events of a last line without its newline (the timeline handles EOF).

        A last line that does not parse was cut mid-line by a dropped connection: it is ignored, and
        the response ends ``truncated`` like any other stream cut short, not ``failed``.
        """
        out: list[Event] = []
        for line in self._lines.close():
            try:
                obj = _load_line(line)
            except RemoteProtocolError:
                continue
            out.extend(self._line(obj))
        return out

    def _common(self, line: str, out: list[Event]) -> bool:
        """The line nearly every token comes in, while a text block is open: ``done: false`` and a chat
        message holding only more text, read by msgspec straight into a ``Struct`` of those fields
        (the others skipped, no dict built) with the checks inlined. False (nothing done) for anything
        else, which :meth:`_line` then decodes the same way (``tests/test_fast_paths.py``)."""
        open_block = self._open
        if open_block is None or open_block[1] != "text" or self._phase != "streaming":
            return False
        typed = self._typed or self._typed_reader()
        try:
            chunk = typed(line)
        except (ValueError, RecursionError):  # another shape, or not JSON: the general path says which
            return False
        message = chunk.message
        content = message.content
        if (
            chunk.done is not False
            or chunk.error is not _ABSENT
            or type(content) is not str
            or (message.thinking is not None and message.thinking is not _ABSENT)
            or (message.tool_calls is not None and message.tool_calls is not _ABSENT)
        ):
            return False
        if content:
            out.append(text_delta(open_block[0], content))
        return True

    def _typed_reader(self) -> Callable[[str], Any]:
        self._typed = typed = _common_line_reader()
        return typed

    def _line(self, obj: dict[str, Any]) -> list[Event]:
        if self._phase == "done":
            raise RemoteProtocolError("ollama stream continues after its done chunk")
        if "error" in obj:
            return [self._error(obj)]
        if not _CHUNK_FIELDS.intersection(obj):
            return [Unknown(raw_type="ollama.chunk", payload=obj)]
        out: list[Event] = []
        if self._phase == "idle":
            self._phase = "streaming"
            out.append(ResponseStart(provider=PROVIDER, model=_optional(obj, "model", str) or None))
        text_type, thinking, text, tool_calls = _parts(obj)
        out.extend(self._text("thinking", "thinking", thinking))
        out.extend(self._text("text", text_type, text))
        for call in tool_calls or ():
            out.extend(self._tool_call(call))
        if _optional(obj, "done", bool):
            out.extend(self._done(obj))
        return out

    def _error(self, obj: dict[str, Any]) -> StreamError:
        error = obj["error"]
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message: str = error["message"]
        else:
            message = error if isinstance(error, str) else _compact(error)
        kind, retryable = classify_message(message)
        return StreamError(error_kind=kind, message=message, retryable=retryable, status=None, raw=obj)

    def _allocate(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    def _close_open(self, complete: bool = True) -> list[Event]:
        if self._open is None:
            return []
        index, self._open = self._open[0], None
        return [BlockStop(index, complete=complete)]

    def _text(self, block_type: BlockType, raw_type: str, text: str | None) -> list[Event]:
        if not text:
            return []
        out: list[Event] = []
        if self._open is None or self._open[1] != block_type:
            out.extend(self._close_open())
            index = self._allocate()
            self._open = (index, block_type)
            out.append(BlockStart(index=index, type=block_type, raw_type=raw_type))
        index = self._open[0]
        out.append(ThinkingDelta(index, text) if block_type == "thinking" else TextDelta(index, text))
        return out

    def _tool_call(self, call: Any) -> list[Event]:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise RemoteProtocolError(f"ollama tool call without a function object: {call!r}")
        function: dict[str, Any] = call["function"]
        name = _optional(function, "name", str) or ""
        call_id = _optional(call, "id", str) or f"call_{self._tool_calls}"
        self._tool_calls += 1
        out = self._close_open()
        index = self._allocate()
        out.append(BlockStart(index=index, type="tool_call", id=call_id, name=name, raw_type="function"))
        arguments = function.get("arguments")
        if arguments is not None:
            # Ollama sends an object; a string is already JSON text (as some compatible servers send).
            fragment = arguments if isinstance(arguments, str) else _compact(arguments)
            if fragment:
                out.append(ToolArgsDelta(index, fragment))
        out.append(BlockStop(index, complete=True))
        return out

    def _done(self, obj: dict[str, Any]) -> list[Event]:
        self._phase = "done"
        done_reason = _optional(obj, "done_reason", str)
        stop = stop_reason_for(done_reason, self._tool_calls > 0)
        out = self._close_open(complete=stop != "max_tokens")
        usage = Usage(
            input_tokens=_optional(obj, "prompt_eval_count", int),
            output_tokens=_optional(obj, "eval_count", int),
        )
        if usage != Usage():
            out.append(UsageUpdate(usage))
        metrics = {name: obj[name] for name in METRIC_FIELDS if obj.get(name) is not None}
        if metrics:
            out.append(Unknown(raw_type="ollama.metrics", payload=metrics))
        out.append(ResponseEnd(stop_reason=stop, raw_stop_reason=done_reason))
        return out


def _parts(obj: dict[str, Any]) -> tuple[str, str | None, str | None, list[Any] | None]:
    """``(text raw type, thinking, text, tool calls)`` of a chat or a generate chunk."""
    message = _optional(obj, "message", dict)
    source, text_key = (message, "content") if message is not None else (obj, "response")
    return (
        text_key,
        _optional(source, "thinking", str),
        _optional(source, text_key, str),
        _optional(source, "tool_calls", list),
    )


# -- encoding ------------------------------------------------------------------------------------------

DEFAULT_CREATED_AT = datetime(2025, 1, 1, tzinfo=UTC)
"""The base time of an encoder's ``created_at`` stamps unless another is injected."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Go's encoding/json escapes these even inside strings (HTML safety, JavaScript line terminators).
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_SURROGATE = re.compile("[\ud800-\udfff]")

# Which done_reason a normalized stop reason is written as, when the raw one does not fit.
_DONE_REASON_FOR: dict[StopReason, str] = {"max_tokens": "length", "context_window_exceeded": "length"}


def wire_done_reason(stop: StopReason | None, raw: str | None = None, made_tool_calls: bool = False) -> str:
    """The ``done_reason`` Ollama writes: the raw one when it means ``stop``, else ``length`` or ``stop``."""
    if raw and stop is not None and stop_reason_for(raw, made_tool_calls) == stop:
        return raw
    return _DONE_REASON_FOR.get(stop or "end_turn", "stop")


# Timing model of a realistic stream (nanoseconds): a warm model load, the prompt evaluation before
# the first token, then one decoding step per chunk.
_LOAD_NS = (15_000_000, 90_000_000)
_PROMPT_NS = (20_000_000, 250_000_000)
_STEP_NS = (6_000_000, 35_000_000)
_FIXED_STEP_NS = 10_000_000


def go_json(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, non-ASCII kept, ``<>&`` escaped.

    Key order is the dict's. Lone surrogates (which Go strings cannot hold) are written as ``\\uXXXX``
    escapes so that the text stays valid UTF-8 and decodes back to the same string. Numbers are written
    as Python writes them (Go would write ``5.0`` as ``5`` and round integers beyond 2**53).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.translate(_GO_ESCAPES)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _rfc3339nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC instant: trailing zeros of the fraction dropped."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        stamp += "." + f"{fraction:09d}".rstrip("0")
    return stamp + "Z"


def _epoch_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _tool_arguments(raw: str) -> dict[str, Any]:
    if raw.strip() == "":
        return {}
    try:
        value = loads(raw)
    except (ValueError, RecursionError) as exc:
        raise LocalError(f"an Ollama tool call needs JSON object arguments, got {raw[:80]!r}") from exc
    if not isinstance(value, dict):
        raise LocalError(f"an Ollama tool call needs JSON object arguments, got {raw[:80]!r}")
    return value


@dataclass
class _Response:
    """What the encoder tracks within one response."""

    model: str = ""
    clock: int = 0  # created_at of the latest chunk, ns since the epoch
    first: int | None = None  # created_at of the first chunk
    load: int = 0
    prompt: int = 0
    usage: Usage = field(default_factory=Usage)
    metrics: dict[str, int] | None = None
    blocks: dict[int, BlockType] = field(default_factory=dict)
    tool_parts: dict[int, list[str]] = field(default_factory=dict)
    tool_heads: dict[int, BlockStart] = field(default_factory=dict)
    tool_calls: int = 0
    ended: bool = False


class OllamaEncoder(Encoder):
    """Events -> Ollama NDJSON bytes, as ``/api/chat`` (``api="chat"``) or ``/api/generate`` writes them.

    ``created_at`` stamps start from the injected ``created_at`` base time (no clock is read). With
    ``realism`` the stamps follow a seeded timing model (``random.Random(seed)``: load, prompt
    evaluation, then one decoding step per chunk) and the done chunk carries matching durations;
    without it the stamps advance 10 ms per chunk and durations are written only when the events carry
    them (``Unknown("ollama.metrics")``, which always wins). A response that ends ``truncated`` without
    a stop reason, or ``cancelled``, is written without its done chunk (the body just stops); a
    ``StreamError`` is written as ``{"error": message}`` and ends the body (a ``failed`` end without
    one gets Ollama's generic runner message). A stop reason is written as its raw ``done_reason``
    when that decodes back to it, else as Ollama's nearest one (``length`` for max tokens and context
    window, ``stop`` for the rest). Every Go ``created_at`` is UTC, fraction trimmed (RFC3339Nano).
    A new ``ResponseStart`` begins a new response, written as a new encoder would write it.

    ``decoder("ollama")`` of the output accumulates back to the original Message when the Message is
    one Ollama can say: provider ``ollama``, no id, a non-empty model or none; text and thinking blocks
    non-empty and never next to a block of their own kind; tool calls complete, with non-empty ids and
    ``raw_input`` the compact JSON of their ``input``; usage of ``input_tokens`` / ``output_tokens``
    only (positive: Go omits zeros); ``raw_stop_reason`` set and consistent with ``stop_reason``; a
    text or thinking block incomplete exactly when it is the last block of a response cut short
    (``max_tokens``, an error, or the end of the body), since that is how Ollama's wire reads back.
    """

    dialect = PROVIDER

    def __init__(
        self,
        *,
        api: OllamaApi = "chat",
        realism: bool = True,
        seed: int | None = 0,
        created_at: datetime = DEFAULT_CREATED_AT,
    ) -> None:
        if api not in get_args(OllamaApi):
            raise LocalError(f"OllamaEncoder api must be 'chat' or 'generate', not {api!r}")
        self.api = api
        self.realism = realism
        self._rng = random.Random(seed)
        self._base = _epoch_ns(created_at)
        self._r = _Response(clock=self._base)

    def encode(self, event: Event) -> bytes:
        """The NDJSON line(s) for one event; ``b""`` for events Ollama writes nothing for."""
        self._starting(event)
        if isinstance(event, ResponseStart):
            return self._start(event)
        if self._r.ended:
            return b""
        if isinstance(event, BlockStart):
            self._r.blocks[event.index] = event.type
            if event.type == "tool_call":
                self._r.tool_heads[event.index], self._r.tool_parts[event.index] = event, []
        elif isinstance(event, TextDelta | ThinkingDelta):
            return self._delta(event)
        elif isinstance(event, ToolArgsDelta) and event.index in self._r.tool_parts:
            self._r.tool_parts[event.index].append(event.fragment)
        elif isinstance(event, BlockStop) and event.index in self._r.tool_heads:
            return self._tool_call(event)
        elif isinstance(event, UsageUpdate):
            self._r.usage = self._r.usage.merge(event.usage)
        elif isinstance(event, Unknown) and event.raw_type == "ollama.metrics":
            self._r.metrics = _metrics(event.payload)
        elif isinstance(event, StreamError):
            self._r.ended = True
            return (go_json({"error": event.message}) + "\n").encode()
        elif isinstance(event, ResponseEnd):
            return self._end(event)
        return b""

    # -- events ----------------------------------------------------------------------------------

    def _start(self, event: ResponseStart) -> bytes:
        r = self._r = _Response(model=event.model or "", clock=self._base, usage=event.usage)
        if self.realism:
            r.load, r.prompt = self._rng.randint(*_LOAD_NS), self._rng.randint(*_PROMPT_NS)
            r.clock += r.load + r.prompt
        return b""

    def _delta(self, event: TextDelta | ThinkingDelta) -> bytes:
        if not event.text or self._r.blocks.get(event.index) not in ("text", "thinking"):
            return b""
        if isinstance(event, ThinkingDelta):
            return self._line(self._chunk(content="", thinking=event.text))
        return self._line(self._chunk(content=event.text))

    def _tool_call(self, stop: BlockStop) -> bytes:
        head = self._r.tool_heads.pop(stop.index)
        raw = "".join(self._r.tool_parts.pop(stop.index))
        if not stop.complete:
            return b""  # written whole it would read as complete: Ollama cannot say "partial"
        call: dict[str, Any] = {"id": head.id} if head.id else {}
        arguments = _tool_arguments(raw)
        call["function"] = {"index": self._r.tool_calls, "name": head.name or "", "arguments": arguments}
        self._r.tool_calls += 1
        return self._line(self._chunk(content="", tool_calls=[call]))

    def _end(self, event: ResponseEnd) -> bytes:
        self._r.ended = True
        if event.terminal == "cancelled" or (event.terminal == "truncated" and event.stop_reason is None):
            return b""
        if event.terminal == "failed":
            return (go_json({"error": "an error was encountered while running the model"}) + "\n").encode()
        usage = self._r.usage.merge(event.usage)
        return self._line(self._chunk(content="", final=(self._done_reason(event), usage)))

    # -- chunks ----------------------------------------------------------------------------------

    def _tick(self) -> str:
        step = self._rng.randint(*_STEP_NS) if self.realism else _FIXED_STEP_NS
        self._r.clock += step
        if self._r.first is None:
            self._r.first = self._r.clock - step
        return _rfc3339nano(self._r.clock)

    def _chunk(
        self,
        *,
        content: str,
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        final: tuple[str, Usage] | None = None,
    ) -> dict[str, Any]:
        """One chunk in Go's field order; ``final`` is the done chunk's ``(done_reason, usage)``."""
        chunk: dict[str, Any] = {"model": self._r.model, "created_at": self._tick()}
        if self.api == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            chunk["message"] = message
        else:
            chunk["response"] = content
            if thinking:
                chunk["thinking"] = thinking
        chunk["done"] = final is not None
        if final is not None:
            chunk["done_reason"] = final[0]
            chunk.update(self._metrics(final[1]))
        if self.api == "generate" and tool_calls:
            chunk["tool_calls"] = tool_calls  # GenerateResponse declares it after the metrics
        return chunk

    def _line(self, chunk: dict[str, Any]) -> bytes:
        return (go_json(chunk) + "\n").encode("utf-8")

    def _done_reason(self, event: ResponseEnd) -> str:
        return wire_done_reason(event.stop_reason, event.raw_stop_reason, self._r.tool_calls > 0)

    def _metrics(self, usage: Usage) -> dict[str, int]:
        """The metric fields in Go's struct order; zero and unknown values are omitted (omitempty)."""
        durations = self._r.metrics if self._r.metrics is not None else self._model_durations()
        fields = {
            "total_duration": durations.get("total_duration"),
            "load_duration": durations.get("load_duration"),
            "prompt_eval_count": usage.input_tokens,
            "prompt_eval_duration": durations.get("prompt_eval_duration"),
            "eval_count": usage.output_tokens,
            "eval_duration": durations.get("eval_duration"),
        }
        return {name: value for name, value in fields.items() if value}

    def _model_durations(self) -> dict[str, int]:
        r = self._r
        if not self.realism:
            return {}
        first = r.first if r.first is not None else r.clock
        return {
            "total_duration": r.clock - self._base + self._rng.randint(100_000, 2_000_000),
            "load_duration": r.load,
            "prompt_eval_duration": r.prompt,
            "eval_duration": r.clock - first,
        }


def _metrics(payload: Any) -> dict[str, int]:
    if not isinstance(payload, dict):
        return {}
    return {
        name: value
        for name in METRIC_FIELDS
        if isinstance(value := payload.get(name), int) and not isinstance(value, bool)
    }


def whole_body(
    message: Message,
    events: Sequence[Event] = (),
    *,
    api: str | None = None,
    created_at: datetime = DEFAULT_CREATED_AT,
    **_: Any,
) -> dict[str, Any]:
    """Ollama's answer when not streamed (``stream: false``): one done object, of ``/api/chat``
    (``api="chat"``, the default) or ``/api/generate``, stamped ``created_at`` as the streamed lines are."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.thinking:
        body["thinking"] = message.thinking
    calls = [
        {"id": c.id, "function": {"index": n, "name": c.name, "arguments": c.input}}
        for n, c in enumerate(message.tool_calls)
        if c.input is not None  # Ollama sends calls whole or not at all
    ]
    if calls:
        body["tool_calls"] = calls
    usage = message.usage
    head: dict[str, Any] = {"model": message.model or "", "created_at": _rfc3339nano(_epoch_ns(created_at))}
    if api == "generate":
        head["response"] = body["content"]
        if message.thinking:
            head["thinking"] = message.thinking
    else:
        head["message"] = body
    return {
        **head,
        "done": True,
        "done_reason": wire_done_reason(
            message.stop_reason, message.raw_stop_reason, bool(message.tool_calls)
        ),
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": usage.input_tokens or 0,
        "prompt_eval_duration": 0,
        "eval_count": usage.output_tokens or 0,
        "eval_duration": 0,
    }


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = OllamaDecoder
ENCODER = OllamaEncoder
NONSTREAM = whole_body
