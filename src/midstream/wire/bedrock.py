"""The Amazon Bedrock dialect: ConverseStream and InvokeModelWithResponseStream over AWS eventstream.

Both endpoints answer with ``application/vnd.amazon.eventstream`` frames (:mod:`.eventstream`). Each
event frame names its type in the ``:event-type`` header and carries a JSON payload padded with a
random ``"p"`` key, which is ignored.

**ConverseStream** (``messageStart``, ``contentBlockStart/Delta/Stop``, ``messageStop``, ``metadata``):
text and reasoning blocks get no ``contentBlockStart``, so a block opens at its first delta with the
type that delta implies. Redacted reasoning (``redactedContent``, base64) and server tool results
(``toolResult``) cannot be streamed as deltas of our blocks, so they are held until their
``contentBlockStop`` (or until anything else arrives) and then open with their whole content:
``RedactedThinkingBlock.data`` is the base64 text as sent (fragments are joined by their bytes), and a
result's ``ServerToolBlock.content`` is the start's ``toolResult`` object plus a ``content`` list of
every delta item. ``metadata`` (usage) follows ``messageStop`` in real streams but precedes it in some
hand-made ones, so the ``ResponseEnd`` is held until ``metadata`` or EOF: a stream that sent
``messageStop`` ends normally either way. Usage is normalized: ``input_tokens`` is ``inputTokens`` plus
the cache read and write counts.

**InvokeModelWithResponseStream**: ``chunk`` frames whose base64 ``bytes`` are the model's native
events; for Anthropic models these are the Messages events, mapped by the Anthropic dialect's own
mapper. The final ``message_stop`` may add ``amazon-bedrock-invocationMetrics``, whose token counts
become usage. ``api="auto"`` picks the endpoint from the first event frame.

Exceptions (``:message-type: exception``, ``:exception-type`` header, ``{"message"}`` payload) and errors
(``:message-type: error``, ``:error-code`` / ``:error-message`` headers) become a ``StreamError`` whose
``raw`` is the payload with the AWS-style ``"__type"`` key naming the exception.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from midstream.errors import EventStreamError, LocalError, RemoteProtocolError, classify_error
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
from midstream.message import Message, StopReason, Usage
from midstream.wire._base import Encoder
from midstream.wire.eventstream import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_PAYLOAD,
    EventStreamDecoder,
    EventStreamMessage,
    encode_message,
)

__all__ = ["DECODER", "ENCODER", "STOP_REASONS", "BedrockDecoder", "BedrockEncoder"]

PROVIDER = "bedrock"
Api = Literal["auto", "converse", "invoke"]

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "other",
    "malformed_tool_use": "other",
    "model_context_window_exceeded": "context_window_exceeded",
}
"""Converse ``stopReason`` -> normalized stop reason (anything else is ``other``)."""

# normalized -> the Converse value written for it when the raw reason does not map back
_WIRE_STOP: dict[str, str] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "content_filter": "content_filtered",
    "context_window_exceeded": "model_context_window_exceeded",
}

# normalized error kind -> the exception the encoder writes when the error does not name one
_EXCEPTIONS: dict[str, str] = {
    "rate_limited": "throttlingException",
    "overloaded": "serviceUnavailableException",
    "invalid_request": "validationException",
    "timeout": "modelTimeoutException",
}

_METRICS_KEY = "amazon-bedrock-invocationMetrics"
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# -- payload parsing -------------------------------------------------------------------------------


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RemoteProtocolError(f"bedrock {what} payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"bedrock {what} payload is not a JSON object")
    return value


def _loose_payload(raw: bytes) -> Any:
    """A payload we do not interpret: its JSON if it is JSON, else its text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _str_header(message: EventStreamMessage, name: str) -> str | None:
    value = message.headers.get(name)
    if value is not None and not isinstance(value, str):
        raise RemoteProtocolError(f"bedrock header {name} is not a string")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"bedrock {what} is not an object")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RemoteProtocolError(f"bedrock {what} is not a string")
    return value


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("contentBlockIndex")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise RemoteProtocolError(f"bedrock contentBlockIndex {index!r} is not a block index")
    return index


def _count(source: dict[str, Any], key: str) -> int | None:
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RemoteProtocolError(f"bedrock usage {key} is not an integer")
    return value


def _usage(source: dict[str, Any], names: tuple[str, str, str, str], fallback: Usage) -> Usage:
    """Normalized usage from Bedrock counts named ``(input, output, cache read, cache write)``.

    Cache counts the frame does not carry are taken from ``fallback`` (what is known so far).
    """
    given = [_count(source, name) for name in names]
    read = given[2] if given[2] is not None else fallback.cache_read_tokens
    write = given[3] if given[3] is not None else fallback.cache_write_tokens
    total_in = None if given[0] is None else given[0] + (read or 0) + (write or 0)
    return Usage(
        input_tokens=total_in, output_tokens=given[1], cache_read_tokens=given[2], cache_write_tokens=given[3]
    )


_CONVERSE_USAGE = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
_INVOKE_USAGE = (
    "inputTokenCount",
    "outputTokenCount",
    "cacheReadInputTokenCount",
    "cacheWriteInputTokenCount",
)


def _stream_error(message: EventStreamMessage, message_type: str) -> StreamError:
    if message_type == "error":
        code = _str_header(message, ":error-code") or "unknown"
        text = _str_header(message, ":error-message") or code
        kind, retryable = classify_error(code)
        return StreamError(kind, text, retryable=retryable, raw={":error-code": code, ":error-message": text})
    name = _str_header(message, ":exception-type") or "unknown"
    body = _loose_payload(message.payload)
    raw = {"__type": name, **body} if isinstance(body, dict) else {"__type": name, "message": body}
    said = raw.get("message", raw.get("Message"))
    kind, retryable = classify_error(name)
    return StreamError(kind, name if said is None else str(said), retryable=retryable, raw=raw)


# -- ConverseStream --------------------------------------------------------------------------------


@dataclass
class _Held:
    """A block whose content must arrive whole before it can open (redacted reasoning, tool result)."""

    index: int
    type: BlockType
    raw_type: str
    start: dict[str, Any] = field(default_factory=dict)
    parts: list[Any] = field(default_factory=list)

    def block_start(self) -> BlockStart:
        if self.type == "redacted_thinking":
            return BlockStart(self.index, self.type, raw_type=self.raw_type, data=self._redacted())
        data = {**self.start, "content": list(self.parts)}
        return BlockStart(
            self.index, self.type, id=self.start.get("toolUseId"), raw_type=self.raw_type, data=data
        )

    def _redacted(self) -> str:
        if len(self.parts) == 1:
            return str(self.parts[0])  # byte-exact: the text exactly as sent
        try:
            joined = b"".join(base64.b64decode(part, validate=True) for part in self.parts)
        except (binascii.Error, TypeError) as exc:
            raise RemoteProtocolError(f"bedrock redactedContent is not base64: {exc}") from None
        return base64.b64encode(joined).decode("ascii")


class _Converse:
    """ConverseStream event payloads -> raw normalized events."""

    def __init__(self) -> None:
        self._started = False
        self._open: set[int] = set()  # blocks started (stopped ones stay: an index opens once)
        self._held: _Held | None = None
        self._end: ResponseEnd | None = None  # messageStop seen, waiting for metadata
        self._metadata = False
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Event]]] = {
            "messageStart": self._message_start,
            "contentBlockStart": self._block_start,
            "contentBlockDelta": self._block_delta,
            "contentBlockStop": self._block_stop,
            "messageStop": self._message_stop,
            "metadata": self._on_metadata,
        }

    def on_event(self, event_type: str, raw: bytes) -> list[Event]:
        handler = self._handlers.get(event_type)
        if handler is None:
            return [*self._release(), Unknown(event_type, _loose_payload(raw))]
        payload = _json_object(raw, event_type)
        out = self._release(payload.get("contentBlockIndex") if event_type.startswith("content") else None)
        if not self._started and event_type != "messageStart":
            out.append(self._start())
        out.extend(handler(payload))
        return out

    def on_other(self) -> list[Event]:
        """A frame that is not a Converse event (an exception, an unknown type) arrives."""
        return self._release()

    def close(self) -> list[Event]:
        out = self._release()
        if self._end is not None:
            out.append(self._end)
            self._end = None
        return out

    def _start(self) -> ResponseStart:
        self._started = True
        return ResponseStart(provider=PROVIDER)

    def _release(self, keep: object = None) -> list[Event]:
        """Open a held block unless the frame at hand (``keep`` is its index) still belongs to it."""
        held = self._held
        if held is None or held.index == keep:
            return []
        self._held = None
        return [held.block_start()]

    def _open_at(self, index: int, block_type: BlockType, raw_type: str) -> list[Event]:
        if index in self._open:
            return []
        self._open.add(index)
        return [BlockStart(index, block_type, raw_type=raw_type)]

    def _hold(self, index: int, block_type: BlockType, raw_type: str) -> _Held:
        held = self._held  # if set, it is this block's: any other frame released it
        if held is None:
            if index in self._open:
                raise RemoteProtocolError(f"bedrock block {index} changes type to {raw_type}")
            self._open.add(index)
            held = self._held = _Held(index, block_type, raw_type)
        elif held.raw_type != raw_type:
            raise RemoteProtocolError(f"bedrock block {index} mixes {held.raw_type} and {raw_type}")
        return held

    def _message_start(self, payload: dict[str, Any]) -> list[Event]:
        if self._started:
            raise RemoteProtocolError("bedrock messageStart arrived twice")
        return [self._start()]

    def _block_start(self, payload: dict[str, Any]) -> list[Event]:
        index, start = _index(payload), _object(payload.get("start"), "contentBlockStart.start")
        if "toolUse" in start:
            tool = _object(start["toolUse"], "start.toolUse")
            tool_id, name = _text(tool.get("toolUseId"), "toolUseId"), _text(tool.get("name"), "tool name")
            server = tool.get("type") == "server_tool_use"
            self._open.add(index)
            block_type: BlockType = "server_tool" if server else "tool_call"
            raw_type = "server_tool_use" if server else "toolUse"
            return [BlockStart(index, block_type, id=tool_id, name=name, raw_type=raw_type)]
        if "toolResult" in start:
            result = _object(start["toolResult"], "start.toolResult")
            self._hold(index, "server_tool", "toolResult").start = dict(result)
            return []
        self._open.add(index)
        return [BlockStart(index, "unknown", raw_type=next(iter(start), "unknown"), data=start)]

    def _block_delta(self, payload: dict[str, Any]) -> list[Event]:
        index, delta = _index(payload), _object(payload.get("delta"), "contentBlockDelta.delta")
        out: list[Event] = []
        for key, value in delta.items():
            out.extend(self._delta_part(index, key, value, payload))
        return out

    def _delta_part(self, index: int, key: str, value: Any, payload: dict[str, Any]) -> list[Event]:
        if key == "text":
            out = self._open_at(index, "text", "text")
            return [*out, TextDelta(index, value)] if _text(value, "text delta") else out
        if key == "reasoningContent":
            return self._reasoning(index, _object(value, "reasoningContent delta"))
        if key == "toolUse":
            fragment = _text(_object(value, "toolUse delta").get("input"), "toolUse.input")
            return [ToolArgsDelta(index, fragment)] if fragment else []
        if key == "citation":
            return [*self._open_at(index, "text", "text"), CitationDelta(index, value)]
        if key == "toolResult":
            if self._held is None or self._held.index != index or self._held.raw_type != "toolResult":
                raise RemoteProtocolError(f"bedrock toolResult delta for block {index}, which has no start")
            if not isinstance(value, list):
                raise RemoteProtocolError("bedrock toolResult delta is not a list")
            self._held.parts.extend(value)
            return []
        return [Unknown(f"contentBlockDelta.{key}", payload)]

    def _reasoning(self, index: int, value: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if "redactedContent" in value:
            redacted = _text(value["redactedContent"], "redactedContent")
            self._hold(index, "redacted_thinking", "redactedContent").parts.append(redacted)
        if "text" in value:
            out.extend(self._open_at(index, "thinking", "reasoningContent"))
            if _text(value["text"], "reasoning text"):
                out.append(ThinkingDelta(index, value["text"]))
        if "signature" in value:
            out.extend(self._open_at(index, "thinking", "reasoningContent"))
            out.append(SignatureDelta(index, _text(value["signature"], "signature")))
        return out

    def _block_stop(self, payload: dict[str, Any]) -> list[Event]:
        index = _index(payload)
        held = self._held
        if held is not None and held.index == index:
            self._held = None
            return [held.block_start(), BlockStop(index)]
        if index not in self._open:
            # A block that sent nothing: there is no content, and no type, to open it with.
            return [Unknown("contentBlockStop", payload)]
        return [BlockStop(index)]

    def _message_stop(self, payload: dict[str, Any]) -> list[Event]:
        if self._end is not None:
            raise RemoteProtocolError("bedrock messageStop arrived twice")
        raw = payload.get("stopReason")
        if raw is not None and not isinstance(raw, str):
            raise RemoteProtocolError("bedrock stopReason is not a string")
        reason = None if raw is None else STOP_REASONS.get(raw, "other")
        end = ResponseEnd(stop_reason=reason, raw_stop_reason=raw)
        if self._metadata:
            return [end]
        self._end = end
        return []

    def _on_metadata(self, payload: dict[str, Any]) -> list[Event]:
        self._metadata = True
        out: list[Event] = []
        usage = payload.get("usage")
        if isinstance(usage, dict):
            out.append(UsageUpdate(_usage(usage, _CONVERSE_USAGE, Usage())))
        elif usage is not None:
            raise RemoteProtocolError("bedrock metadata usage is not an object")
        if self._end is not None:
            out.append(self._end)
            self._end = None
        return out


# -- InvokeModelWithResponseStream -----------------------------------------------------------------


class _Invoke:
    """``chunk`` frames -> the Anthropic dialect's mapper, plus Bedrock's invocation metrics."""

    def __init__(self) -> None:
        # Imported here: the invoke path is optional, and the Anthropic dialect is its own module.
        from midstream.wire.anthropic import AnthropicEventMapper

        self._mapper = AnthropicEventMapper(provider=PROVIDER)
        self._usage = Usage()
        self._ended = False

    def on_chunk(self, raw: bytes) -> list[Event]:
        chunk = _json_object(raw, "chunk")
        encoded = chunk.get("bytes")
        if not isinstance(encoded, str):
            raise RemoteProtocolError("bedrock chunk without its bytes")
        try:
            inner = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise RemoteProtocolError(f"bedrock chunk bytes are not base64: {exc}") from None
        event = _json_object(inner, "chunk bytes")
        metrics = event.pop(_METRICS_KEY, None)
        out = self._track(self._mapper.on_event(event))
        if isinstance(metrics, dict):
            self._add_metrics(out, _usage(metrics, _INVOKE_USAGE, self._usage))
        return out

    def close(self) -> list[Event]:
        return self._track(self._mapper.close())

    def _track(self, events: list[Event]) -> list[Event]:
        for event in events:
            if isinstance(event, ResponseStart | UsageUpdate | ResponseEnd):
                self._usage = self._usage.merge(event.usage)
            self._ended = self._ended or isinstance(event, ResponseEnd | StreamError)
        return events

    def _add_metrics(self, out: list[Event], usage: Usage) -> None:
        for i, event in enumerate(out):
            if isinstance(event, ResponseEnd):
                out.insert(i, UsageUpdate(usage))
                out[i + 1] = replace(event, usage=event.usage.merge(usage))
                return
        if not self._ended:
            out.append(UsageUpdate(usage))


class BedrockDecoder:
    """Bedrock response body (eventstream bytes) -> raw normalized events.

    ``api`` is ``"converse"`` (ConverseStream), ``"invoke"`` (InvokeModelWithResponseStream) or
    ``"auto"`` (decided by the first event frame: ``chunk`` means invoke). ``max_headers`` and
    ``max_payload`` bound each frame (see :class:`~midstream.wire.eventstream.EventStreamDecoder`).
    """

    def __init__(
        self,
        *,
        api: Api = "auto",
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        if api not in ("auto", "converse", "invoke"):
            raise LocalError(f"unknown Bedrock api {api!r}: use auto, converse or invoke")
        self.api: Api = api
        self._frames = EventStreamDecoder(max_headers=max_headers, max_payload=max_payload)
        self._converse = _Converse()
        self._invoke: _Invoke | None = None

    def feed(self, data: bytes) -> list[Event]:
        """Decode a chunk of the body; return the events its complete frames produce."""
        out: list[Event] = []
        for message in self._frames.feed(data):
            out.extend(self._message(message))
        return out

    def close(self) -> list[Event]:
        """End of the body: a held ``ResponseEnd`` is released.

        Bytes of an unfinished frame at EOF mean the connection was cut mid-frame: the frame is
        dropped and the response ends ``truncated`` (the timeline), like any stream cut short.
        """
        with contextlib.suppress(EventStreamError):
            self._frames.close()
        if self._invoke is not None:
            return self._invoke.close()
        return self._converse.close()

    def _message(self, message: EventStreamMessage) -> list[Event]:
        message_type = _str_header(message, ":message-type") or "event"
        if message_type in ("exception", "error"):
            return [*self._converse.on_other(), _stream_error(message, message_type)]
        if message_type != "event":
            return [
                *self._converse.on_other(),
                Unknown(f":message-type:{message_type}", dict(message.headers)),
            ]
        event_type = _str_header(message, ":event-type")
        if event_type is None:
            raise RemoteProtocolError("bedrock event frame without an :event-type header")
        if self.api == "auto":
            self.api = "invoke" if event_type == "chunk" else "converse"
        if self.api == "converse":
            return self._converse.on_event(event_type, message.payload)
        if event_type != "chunk":
            return [Unknown(event_type, _loose_payload(message.payload))]
        if self._invoke is None:
            self._invoke = _Invoke()
        return self._invoke.on_chunk(message.payload)


# -- encoding --------------------------------------------------------------------------------------


class BedrockEncoder(Encoder):
    """Events -> Bedrock eventstream bytes, frame for frame like the service writes them.

    Event frames carry the headers ``:event-type``, ``:content-type: application/json`` and
    ``:message-type: event``; payloads are compact JSON with sorted keys and, with ``realism``, the
    random ``"p"`` padding (drawn from a private ``random.Random(seed)``). ``messageStop`` and then
    ``metadata`` end a Converse stream; a ``StreamError`` becomes an exception frame. With
    ``api="invoke"`` the Anthropic dialect's encoder writes the events and each becomes a ``chunk``.

    ``Unknown`` events that came from a Converse frame (as the decoder passes them on) are written
    back as that frame. Converse cannot say everything a Message can: server tools other than
    ``toolResult`` blocks are written as ``server_tool_use`` calls, unknown blocks are skipped, and
    reasoning token counts are not sent.
    """

    dialect = PROVIDER

    def __init__(
        self, *, api: Literal["converse", "invoke"] = "converse", realism: bool = True, seed: int | None = 0
    ) -> None:
        if api not in ("converse", "invoke"):
            raise LocalError(f"unknown Bedrock api {api!r}: use converse or invoke")
        self.api = api
        self.realism = realism
        self._rng = random.Random(seed)
        self._usage = Usage()
        self._wire: dict[int, int] = {}  # event block index -> Bedrock contentBlockIndex
        self._starts: dict[int, BlockStart] = {}
        self._sent: set[int] = set()  # text / reasoning blocks whose first delta went out
        self._anthropic: _InvokeWriter | None = _InvokeWriter(self) if api == "invoke" else None

    def encode_message(self, message: Message) -> bytes:
        """The frames of a stream that decodes back to ``message`` (for either api)."""
        if self._anthropic is not None:
            return self._anthropic.encode_message(message)
        return super().encode_message(message)

    def encode(self, event: Event) -> bytes:
        """The frames for one event (``b""`` for events Bedrock writes later or never)."""
        if isinstance(event, UsageUpdate | ResponseEnd):
            self._usage = self._usage.merge(event.usage)
        if isinstance(event, StreamError):
            return self._exception(event)
        if self._anthropic is not None:
            return self._anthropic.encode(event)
        return self._converse(event)

    # -- Converse ----------------------------------------------------------------------------------

    def _converse(self, event: Event) -> bytes:
        if isinstance(event, ResponseStart):
            return self.frame("messageStart", {"role": "assistant"})
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            return self._block_stop(event)
        if isinstance(event, ResponseEnd):
            return self._response_end(event)
        if isinstance(event, Unknown):
            return self._unknown(event)
        delta = _delta_body(event)
        if delta is None or delta[0] not in self._wire:
            return b""
        self._sent.add(delta[0])
        return self._delta(*delta)

    def _block_start(self, event: BlockStart) -> bytes:
        if event.type == "unknown":
            return b""
        self._wire[event.index] = len(self._wire)
        self._starts[event.index] = event
        if event.type == "redacted_thinking":
            content = "" if event.data is None else str(event.data)
            return self._delta(event.index, {"reasoningContent": {"redactedContent": content}})
        if event.type == "server_tool" and event.raw_type == "toolResult" and isinstance(event.data, dict):
            start = {k: v for k, v in event.data.items() if k != "content"}
            out = self._start(event.index, {"toolResult": start})
            items = event.data.get("content")
            return out + self._delta(event.index, {"toolResult": items}) if items else out
        if event.type in ("tool_call", "server_tool"):
            tool = {"name": event.name or "", "toolUseId": event.id or ""}
            if event.type == "server_tool":
                tool["type"] = "server_tool_use"
            return self._start(event.index, {"toolUse": tool})
        return b""  # text and reasoning blocks open with their first delta

    def _block_stop(self, event: BlockStop) -> bytes:
        start = self._starts.get(event.index)
        if start is None:
            return b""
        out = b""
        if start.type in ("text", "thinking") and event.index not in self._sent:
            # An empty block still needs one delta: that is what opens it on the wire.
            empty = {"text": ""} if start.type == "text" else {"reasoningContent": {"text": ""}}
            out = self._delta(event.index, empty)
        if not event.complete:
            return out  # the stream was cut inside this block: no contentBlockStop
        return out + self.frame("contentBlockStop", {"contentBlockIndex": self._wire[event.index]})

    def _response_end(self, event: ResponseEnd) -> bytes:
        if event.terminal in ("failed", "cancelled"):
            return b""
        out = b""
        cut = event.terminal == "truncated" and event.stop_reason is None and event.raw_stop_reason is None
        if not cut:
            reason = _wire_stop_reason(event)
            out = self.frame("messageStop", {} if reason is None else {"stopReason": reason})
        elif self._usage == Usage():
            return b""
        metadata = {"metrics": {"latencyMs": self._latency()}, "usage": _converse_usage(self._usage)}
        return out + self.frame("metadata", metadata)

    def _unknown(self, event: Unknown) -> bytes:
        # A frame the decoder passed through (``futureEvent``, ``contentBlockDelta.image``) goes back
        # out as the same event type with the same payload; anything else had no frame of its own.
        if event.raw_type.startswith(":") or not isinstance(event.payload, dict):
            return b""
        body = {k: v for k, v in event.payload.items() if k != "p"}
        return self.frame(event.raw_type.split(".")[0], body)

    def _start(self, index: int, start: dict[str, Any]) -> bytes:
        return self.frame("contentBlockStart", {"contentBlockIndex": self._wire[index], "start": start})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self.frame("contentBlockDelta", {"contentBlockIndex": self._wire[index], "delta": delta})

    # -- frames ------------------------------------------------------------------------------------

    def frame(self, event_type: str, body: dict[str, Any]) -> bytes:
        """One event frame of type ``event_type`` with ``body`` as its JSON payload (padded if realistic)."""
        if self.realism:
            body = {**body, "p": _PAD[: self._rng.randint(1, len(_PAD))]}
        payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
        return encode_message(headers, payload.encode("utf-8"))

    def _exception(self, error: StreamError) -> bytes:
        raw = error.raw if isinstance(error.raw, dict) else {}
        if ":error-code" in raw:
            headers = {
                ":error-code": str(raw[":error-code"]),
                ":error-message": error.message,
                ":message-type": "error",
            }
            return encode_message(headers, b"")
        name = str(raw.get("__type") or _EXCEPTIONS.get(error.error_kind, "internalServerException"))
        body = (
            {k: v for k, v in raw.items() if k != "__type"} if "__type" in raw else {"message": error.message}
        )
        headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
        return encode_message(headers, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())

    def _latency(self) -> int:
        return self._rng.randint(200, 9000) if self.realism else 0

    def invocation_metrics(self) -> dict[str, int]:
        """The ``amazon-bedrock-invocationMetrics`` of an invoke stream, from the usage seen so far."""
        usage = self._usage
        metrics = {"invocationLatency": self._latency(), "firstByteLatency": self._latency()}
        names = dict(zip(("input", "output", "read", "write"), _INVOKE_USAGE, strict=True))
        metrics.update(_usage_counts(usage, names))
        return metrics


def _delta_body(event: Event) -> tuple[int, dict[str, Any]] | None:
    """The block index and Converse ``delta`` object of a delta event (``None`` for other events)."""
    if isinstance(event, TextDelta):
        return event.index, {"text": event.text}
    if isinstance(event, ThinkingDelta):
        return event.index, {"reasoningContent": {"text": event.text}}
    if isinstance(event, SignatureDelta):
        return event.index, {"reasoningContent": {"signature": event.signature}}
    if isinstance(event, ToolArgsDelta):
        return event.index, {"toolUse": {"input": event.fragment}}
    if isinstance(event, CitationDelta):
        return event.index, {"citation": event.citation}
    return None


def _wire_stop_reason(event: ResponseEnd) -> str | None:
    raw = event.raw_stop_reason
    if raw is not None and STOP_REASONS.get(raw, "other") == event.stop_reason:
        return raw
    if event.stop_reason is None:
        return raw
    return _WIRE_STOP.get(event.stop_reason, raw or event.stop_reason)


def _usage_counts(usage: Usage, names: dict[str, str]) -> dict[str, int]:
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    counts: dict[str, int | None] = {
        names["input"]: None
        if usage.input_tokens is None
        else max(0, usage.input_tokens - (read or 0) - (write or 0)),
        names["output"]: usage.output_tokens,
        names["read"]: read,
        names["write"]: write,
    }
    return {k: v for k, v in counts.items() if v is not None}


def _converse_usage(usage: Usage) -> dict[str, int]:
    names = dict(zip(("input", "output", "read", "write"), _CONVERSE_USAGE, strict=True))
    counts = _usage_counts(usage, names)
    if usage.total_tokens is not None:
        counts["totalTokens"] = usage.total_tokens
    return counts


class _InvokeWriter:
    """Events -> ``chunk`` frames wrapping the event objects the Anthropic dialect's encoder writes."""

    def __init__(self, owner: BedrockEncoder) -> None:
        from midstream.wire.anthropic import ENCODER as AnthropicEncoder
        from midstream.wire.sse import SSEDecoder

        self._owner = owner
        self._inner: Encoder = AnthropicEncoder(realism=owner.realism, seed=owner._rng.randrange(2**32))
        self._sse = SSEDecoder()

    def encode(self, event: Event) -> bytes:
        return self._chunks(self._inner.encode(event))

    def encode_message(self, message: Message) -> bytes:
        # The Anthropic encoder decides how a whole message's usage is reported (message_start and
        # message_delta); an error is written as Bedrock's exception frame, which ends the stream.
        self._owner._usage = message.usage
        out = self._chunks(self._inner.encode_message(message))
        return out + self._owner._exception(message.error) if message.error is not None else out

    def _chunks(self, sse_bytes: bytes) -> bytes:
        frames: list[bytes] = []
        for sse in self._sse.feed(sse_bytes):
            data = sse.data
            payload = json.loads(data)
            kind = payload.get("type")
            if kind in ("ping", "error"):
                # Bedrock does not pass keep-alives on, and reports errors as exception frames.
                continue
            if kind == "message_stop":
                payload[_METRICS_KEY] = self._owner.invocation_metrics()
                data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            chunk = base64.b64encode(data.encode("utf-8")).decode("ascii")
            frames.append(self._owner.frame("chunk", {"bytes": chunk}))
        return b"".join(frames)


DECODER = BedrockDecoder
ENCODER = BedrockEncoder
