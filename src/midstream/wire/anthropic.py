"""The Anthropic Messages stream (``POST /v1/messages`` with ``"stream": true``), both ways.

Decoding has two layers:

* :class:`AnthropicEventMapper` maps one Anthropic event *object* (already parsed JSON) to normalized
  events. It owns no framing, so every transport that carries Anthropic events reuses it: the SSE
  decoder below, and Bedrock's InvokeModelWithResponseStream (whose frames carry the same objects,
  base64-encoded). Its whole interface::

      class AnthropicEventMapper:
          def __init__(self, provider: str = "anthropic") -> None
          def on_event(self, payload: dict[str, Any]) -> list[Event]   # one event object
          def close(self) -> list[Event]                               # end of input

  The output is *raw* (not yet checked by the :class:`~midstream.wire.timeline.Timeline`); wrap the
  transport decoder in :class:`~midstream.wire._base.Decoder` as usual. Wrong shapes raise
  :class:`~midstream.errors.RemoteProtocolError` (a few surface as ``KeyError`` / ``TypeError``, which
  ``Decoder`` turns into one). Keys it does not know, such as Bedrock's
  ``amazon-bedrock-invocationMetrics``, are ignored.
* :class:`AnthropicDecoder` (``DECODER``) frames ``text/event-stream`` bytes with
  :class:`~midstream.wire.sse.SSEDecoder`, parses each ``data`` as JSON (under the payload policy of
  :mod:`midstream.wire._payload`) and hands the object to the mapper.

What the mapping guarantees:

* ``message_start`` -> ``ResponseStart``, usage normalized (``input_tokens`` = input + cache writes +
  cache reads); ``message_delta`` -> ``UsageUpdate`` (cumulative), its ``stop_reason`` and
  ``stop_details`` held for ``message_stop`` -> ``ResponseEnd``.
* Provider block indices are kept. ``text``, ``thinking`` (``signature_delta`` -> ``SignatureDelta``),
  ``redacted_thinking`` (``data`` in the ``BlockStart``), ``tool_use`` (``tool_call``) and
  ``server_tool_use`` / ``mcp_tool_use`` (``server_tool``) map to their block types; every
  ``input_json_delta`` becomes a ``ToolArgsDelta`` with exactly its ``partial_json`` (the empty first
  one too). ``*_tool_result`` blocks arrive whole: ``server_tool`` with the block dict as ``data`` and
  its ``tool_use_id`` as ``id``.
  Other block types (``compaction``, ...) -> ``unknown`` blocks holding the block dict, and every delta
  aimed at one -> ``Unknown`` with that block's ``index`` and the delta object as payload, which the
  Accumulator keeps in the block (so a compaction summary, sent in ``compaction_delta``, is not lost);
  other deltas of unknown types and unknown event types -> ``Unknown``; ``ping`` -> nothing.
  A server tool call that closes with no input text has input ``{}``, as a ``tool_use`` does.
* ``usage.output_tokens_details.thinking_tokens`` -> ``Usage.reasoning_tokens``.
* ``error`` events (with or without ``request_id``, even a non-JSON body) -> ``StreamError`` classified
  by :func:`~midstream.errors.classify_error`.
* A block cut off without ``content_block_stop`` is closed ``complete=False`` by the timeline. Input that
  ends after ``message_delta`` but before ``message_stop`` ends ``truncated``, keeping the stop reason.
* At EOF the SSE layer's last event is still used when its terminating blank line is missing but its
  JSON is whole (stored fixtures routinely drop the final newline); a cut-off JSON there is dropped and
  the response ends ``truncated``.

:class:`AnthropicEncoder` (``ENCODER``, in :mod:`midstream.wire._anthropic_encoder`) writes the stream
the API writes: ``event: <type>`` and compact JSON ``data`` in the API's key order, usage back in
Anthropic's convention (``input_tokens`` without cache), a mid-stream error as an ``error`` event after
which nothing more is written. With ``realism`` (default) it pads data lines with 1-15 spaces before the
final ``}``, sends a ``ping`` after the first ``content_block_start``, an empty ``input_json_delta``
first in every tool block and an empty ``thinking_delta`` before a signature, as the real API does.
``input_tokens`` and ``output_tokens``, which the API always reports, are written as 0 when unknown, so a
Message round-trips exactly when both are known (as in every Anthropic response); a ``cancelled`` one
comes back ``truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from midstream.errors import RemoteProtocolError, classify_error
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
from midstream.message import StopReason, Usage
from midstream.wire._anthropic_encoder import AnthropicEncoder, wire_stop_reason
from midstream.wire._anthropic_encoder import whole_body as _whole_body
from midstream.wire._anthropic_request import FINE_GRAINED_BETA as FINE_GRAINED_BETA
from midstream.wire._anthropic_request import REQUEST as _REQUEST
from midstream.wire._fast_events import text_delta, tool_args_delta
from midstream.wire._payload import ParsesPayloads
from midstream.wire._payload import loads as _loads
from midstream.wire.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE, SSEFrame, SSEFrameDecoder

__all__ = [
    "DECODER",
    "ENCODER",
    "AnthropicDecoder",
    "AnthropicEncoder",
    "AnthropicEventMapper",
    "wire_stop_reason",
]

_SAME_STOP: tuple[StopReason, ...] = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
)
_STOP_REASONS: dict[str, StopReason] = {
    **{reason: reason for reason in _SAME_STOP},
    "model_context_window_exceeded": "context_window_exceeded",
}
# Block types whose input streams as ``input_json_delta`` but that the provider runs itself.
_SERVER_CALLS = frozenset({"server_tool_use", "mcp_tool_use"})

_Out = list[Event]


def _bad(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed anthropic event: {what}")


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("index")
    if type(index) is not int:
        raise _bad(f"{payload.get('type')} without an integer index")
    return index


def _text(value: Any, what: str) -> str:
    if type(value) is not str:
        raise _bad(f"{what} is not a string")
    return value


def _optional_text(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise _bad(f"usage {what} is not an integer")
    return value


class AnthropicEventMapper:
    """Anthropic event objects -> raw normalized events. Sans-IO, no framing; see the module docstring."""

    def __init__(self, provider: str = "anthropic") -> None:
        self.provider = provider
        self._handlers: dict[str, Callable[[dict[str, Any], _Out], None]] = {
            "content_block_delta": self._block_delta,
            "content_block_start": self._block_start,
            "content_block_stop": self._block_stop,
            "message_start": self._message_start,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "ping": self._ping,
            "error": self._error,
        }
        # The stop reason of ``message_delta``, held for ``message_stop``.
        self._stop: tuple[StopReason | None, str | None, Any] | None = None
        self._done = False
        # Raw Anthropic counts: a later usage frame may report only some of them.
        self._raw_input: int | None = None
        self._cache_write: int | None = None
        self._cache_read: int | None = None
        self._unknown_blocks: set[int] = set()
        # A tool block whose start carried a non-empty ``input`` and no fragment streamed yet.
        self._start_input: dict[int, str] = {}

    def on_event(self, payload: dict[str, Any]) -> list[Event]:
        """Map one event object (the JSON of one SSE ``data``); returns the events it produces."""
        if type(payload) is not dict:
            raise _bad("an event is not a JSON object")
        out: _Out = []
        self._map(payload.get("type"), payload, out)
        return out

    def close(self) -> list[Event]:
        """End of input. After ``message_delta`` without ``message_stop``: end ``truncated``."""
        if self._done or self._stop is None:
            return []
        self._done = True
        reason, raw, details = self._stop
        return [
            ResponseEnd(stop_reason=reason, raw_stop_reason=raw, stop_details=details, terminal="truncated")
        ]

    # -- dispatch -------------------------------------------------------------------------------

    def _map(self, event_type: Any, payload: dict[str, Any], out: _Out) -> None:
        handler = self._handlers.get(event_type) if type(event_type) is str else None
        if handler is None:
            out.append(Unknown(raw_type=str(event_type), payload=payload))
        else:
            handler(payload, out)

    def _block_delta(self, payload: dict[str, Any], out: _Out) -> None:
        # The hot path: one call per streamed token or fragment (so checks are inlined).
        index = payload.get("index")
        if type(index) is not int:
            raise _bad("content_block_delta without an integer index")
        delta = payload["delta"]
        kind = delta["type"]
        if self._unknown_blocks and index in self._unknown_blocks:
            # A delta of a block type we do not know (e.g. ``compaction_delta``): kept in that block.
            out.append(Unknown(raw_type=str(kind), payload=delta, index=index))
        elif kind == "text_delta":
            out.append(TextDelta(index, _text(delta["text"], "text_delta.text")))
        elif kind == "input_json_delta":
            fragment = _text(delta["partial_json"], "input_json_delta.partial_json")
            if self._start_input and fragment:
                self._start_input.pop(index, None)
            out.append(tool_args_delta(index, fragment))
        elif kind == "thinking_delta":
            out.append(ThinkingDelta(index, _text(delta["thinking"], "thinking_delta.thinking")))
        elif kind == "signature_delta":
            out.append(SignatureDelta(index, _text(delta["signature"], "signature_delta.signature")))
        elif kind == "citations_delta":
            out.append(CitationDelta(index, delta["citation"]))
        else:
            out.append(Unknown(raw_type=str(kind), payload=payload))

    def _block_start(self, payload: dict[str, Any], out: _Out) -> None:
        index = _index(payload)
        block = payload["content_block"]
        if type(block) is not dict:
            raise _bad("content_block is not an object")
        kind = block.get("type")
        if kind == "text":
            self._text_start(index, block, out)
        elif kind == "thinking":
            self._thinking_start(index, block, out)
        elif kind == "redacted_thinking":
            data = _text(block["data"], "redacted_thinking.data")
            out.append(BlockStart(index=index, type="redacted_thinking", raw_type=kind, data=data))
        elif kind == "tool_use" or kind in _SERVER_CALLS:
            self._call_start(index, kind, block, out)
        elif type(kind) is str and kind.endswith("_tool_result"):
            tool_use_id = _optional_text(block.get("tool_use_id"), "tool_use_id")
            out.append(BlockStart(index=index, type="server_tool", id=tool_use_id, raw_type=kind, data=block))
        else:
            self._unknown_blocks.add(index)
            out.append(BlockStart(index=index, type="unknown", raw_type=str(kind), data=block))

    def _text_start(self, index: int, block: dict[str, Any], out: _Out) -> None:
        out.append(BlockStart(index=index, type="text", raw_type="text"))
        text = _text(block.get("text", ""), "text.text")
        if text:
            out.append(TextDelta(index, text))
        citations = block.get("citations")
        if citations:
            if type(citations) is not list:
                raise _bad("text.citations is not a list")
            out.extend(CitationDelta(index, citation) for citation in citations)

    def _thinking_start(self, index: int, block: dict[str, Any], out: _Out) -> None:
        out.append(BlockStart(index=index, type="thinking", raw_type="thinking"))
        thinking = _text(block.get("thinking", ""), "thinking.thinking")
        if thinking:
            out.append(ThinkingDelta(index, thinking))
        signature = _text(block.get("signature", ""), "thinking.signature")
        if signature:
            out.append(SignatureDelta(index, signature))

    def _call_start(self, index: int, kind: str, block: dict[str, Any], out: _Out) -> None:
        block_type: BlockType = "tool_call" if kind == "tool_use" else "server_tool"
        call_id = _text(block["id"], f"{kind}.id")
        name = _text(block["name"], f"{kind}.name")
        out.append(BlockStart(index=index, type=block_type, id=call_id, name=name, raw_type=kind))
        start_input = block.get("input")
        if start_input:
            # Normally ``{}`` with the input streamed after; a whole input here stands in for the
            # stream if no fragment follows (emitted at the block's stop).
            self._start_input[index] = json.dumps(start_input, ensure_ascii=False, separators=(",", ":"))

    def _block_stop(self, payload: dict[str, Any], out: _Out) -> None:
        index = _index(payload)
        if self._start_input:
            pending = self._start_input.pop(index, None)
            if pending is not None:
                out.append(ToolArgsDelta(index, pending))
        out.append(BlockStop(index))

    def _message_start(self, payload: dict[str, Any], out: _Out) -> None:
        message = payload["message"]
        if type(message) is not dict:
            raise _bad("message_start.message is not an object")
        out.append(
            ResponseStart(
                provider=self.provider,
                model=_optional_text(message.get("model"), "message.model"),
                id=_optional_text(message.get("id"), "message.id"),
                usage=self._usage(message.get("usage")),
            )
        )

    def _message_delta(self, payload: dict[str, Any], out: _Out) -> None:
        delta = payload.get("delta") or {}
        if type(delta) is not dict:
            raise _bad("message_delta.delta is not an object")
        raw = _optional_text(delta.get("stop_reason"), "stop_reason")
        reason: StopReason | None = None if raw is None else _STOP_REASONS.get(raw, "other")
        self._stop = (reason, raw, delta.get("stop_details"))
        usage = payload.get("usage")
        if usage is not None:
            out.append(UsageUpdate(self._usage(usage)))

    def _message_stop(self, payload: dict[str, Any], out: _Out) -> None:
        reason, raw, details = self._stop or (None, None, None)
        self._done = True
        out.append(ResponseEnd(stop_reason=reason, raw_stop_reason=raw, stop_details=details))

    def _ping(self, payload: dict[str, Any], out: _Out) -> None:
        pass  # keep-alive: nothing to report

    def _error(self, payload: dict[str, Any], out: _Out) -> None:
        error = payload.get("error")
        error = error if type(error) is dict else {}
        error_type = error.get("type") if type(error.get("type")) is str else None
        message = error.get("message")
        kind, retryable = classify_error(error_type)
        text = message if type(message) is str else (error_type or "provider error")
        self._done = True
        out.append(StreamError(error_kind=kind, message=text, retryable=retryable, raw=payload))

    def _usage(self, raw: Any) -> Usage:
        """A partial Usage from one Anthropic usage object (only the counts it reports)."""
        if raw is None:
            return Usage()
        if type(raw) is not dict:
            raise _bad("usage is not an object")
        reported = False
        for key, attr in _RAW_COUNTS:
            if key in raw and raw[key] is not None:
                setattr(self, attr, _count(raw[key], key))
                reported = True
        total = None
        if reported and self._raw_input is not None:
            total = self._raw_input + (self._cache_write or 0) + (self._cache_read or 0)
        details = raw.get("output_tokens_details")
        if details is not None and type(details) is not dict:
            raise _bad("usage.output_tokens_details is not an object")
        return Usage(
            input_tokens=total,
            output_tokens=_count(raw.get("output_tokens"), "output_tokens"),
            cache_read_tokens=_count(raw.get("cache_read_input_tokens"), "cache_read_input_tokens"),
            cache_write_tokens=_count(raw.get("cache_creation_input_tokens"), "cache_creation_input_tokens"),
            # Thinking tokens are part of ``output_tokens``, as ``Usage.reasoning_tokens`` promises.
            reasoning_tokens=_count((details or {}).get("thinking_tokens"), "thinking_tokens"),
        )


_RAW_COUNTS = (
    ("input_tokens", "_raw_input"),
    ("cache_creation_input_tokens", "_cache_write"),
    ("cache_read_input_tokens", "_cache_read"),
)


class AnthropicDecoder(ParsesPayloads):
    """``text/event-stream`` bytes of an Anthropic Messages stream -> raw normalized events.

    ``max_line`` / ``max_event`` bound the SSE layer (:class:`~midstream.errors.LimitExceeded`).
    A ``data`` payload that is not a JSON object raises :class:`~midstream.errors.RemoteProtocolError`
    (except a non-JSON ``error`` event, which still becomes a ``StreamError``).
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self._sse = SSEFrameDecoder(max_line=max_line, max_event=max_event)
        self._mapper = AnthropicEventMapper("anthropic")

    def feed(self, data: bytes, out: _Out | None = None) -> list[Event]:
        """Decode a chunk of the body; return the events it completed (appended to ``out``).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        frames: list[SSEFrame] = []
        try:
            self._sse.feed(data, frames)
        finally:
            # If this raises too, its error wins: its frame came first.
            mapper, parse = self._mapper, self._parse or self._parser()
            for event_type, text in frames:
                try:
                    payload = parse(text)
                except ValueError:
                    payload = self._refused(event_type, text, out)
                    if payload is None:
                        continue
                except RecursionError:
                    raise _bad("data nested too deeply") from None
                if type(payload) is not dict:
                    raise _bad(f"{event_type} data is not a JSON object")
                kind = payload.get("type", event_type)
                if kind == "content_block_delta":
                    # The hot path, one per streamed token: a text delta of a known block, inlined.
                    delta = payload.get("delta")
                    index = payload.get("index")
                    if (
                        type(delta) is dict
                        and type(index) is int
                        and delta.get("type") == "text_delta"
                        and type(token := delta.get("text")) is str
                        and not mapper._unknown_blocks
                    ):
                        out.append(text_delta(index, token))
                    else:
                        mapper._block_delta(payload, out)
                else:
                    mapper._map(kind, payload, out)
        return out

    def _refused(self, event_type: str, data: str, out: _Out) -> Any:
        """A payload the fast parser refused: the policy in full, or None if it is not JSON at all."""
        try:
            return _loads(data)
        except ValueError:
            self._not_json(event_type, data, out)
            return None
        except RecursionError:
            raise _bad("data nested too deeply") from None

    def close(self) -> list[Event]:
        """End of the body (see the module docstring for the last, unterminated event)."""
        out: _Out = []
        for event_type, data in self._sse.feed(b"\n\n"):
            try:
                payload = _loads(data)
            except (ValueError, RecursionError):
                continue  # cut off mid-payload: the response is truncated, which the timeline says
            if type(payload) is dict:
                self._mapper._map(payload.get("type", event_type), payload, out)
        self._sse.close()
        out.extend(self._mapper.close())
        return out

    def _not_json(self, event_type: str, data: str, out: _Out) -> None:
        if event_type != "error":
            raise _bad(f"{event_type} data is not JSON: {data[:80]!r}")
        # Proxies and gateways send plain-text errors; the SDK reports those too.
        kind, retryable = classify_error(None)
        out.append(StreamError(error_kind=kind, message=data, retryable=retryable, raw=data))


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = AnthropicDecoder
ENCODER = AnthropicEncoder
NONSTREAM = _whole_body
