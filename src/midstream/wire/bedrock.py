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

The encoder (:class:`BedrockEncoder`, in :mod:`midstream.wire._bedrock_encoder`) writes both back.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from midstream.errors import EventStreamFrameError, LocalError, RemoteProtocolError, classify_error
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
from midstream.message import Usage
from midstream.wire._bedrock_common import CONVERSE_USAGE, INVOKE_USAGE, METRICS_KEY, PROVIDER, STOP_REASONS
from midstream.wire._bedrock_encoder import BedrockEncoder, wire_stop_reason
from midstream.wire._bedrock_encoder import whole_body as _whole_body
from midstream.wire._bedrock_request import REQUEST as _REQUEST
from midstream.wire._payload import loads
from midstream.wire.eventstream import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_PAYLOAD,
    EventStreamDecoder,
    EventStreamMessage,
)

__all__ = ["DECODER", "ENCODER", "STOP_REASONS", "BedrockDecoder", "BedrockEncoder", "wire_stop_reason"]

Api = Literal["auto", "converse", "invoke"]


# -- payload parsing -------------------------------------------------------------------------------


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = loads(raw)
    except ValueError as exc:
        raise RemoteProtocolError(f"bedrock {what} payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"bedrock {what} payload is not a JSON object")
    return value


def _loose_payload(raw: bytes) -> Any:
    """A payload we do not interpret: its JSON if it is JSON, else its text."""
    try:
        return loads(raw)
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


def _stream_error(message: EventStreamMessage, message_type: str) -> StreamError:
    if message_type == "error":
        code = _str_header(message, ":error-code") or "unknown"
        text = _str_header(message, ":error-message") or code
        kind, retryable = classify_error(code)
        return StreamError(
            error_kind=kind,
            message=text,
            retryable=retryable,
            raw={":error-code": code, ":error-message": text},
        )
    name = _str_header(message, ":exception-type") or "unknown"
    body = _loose_payload(message.payload)
    raw = {"__type": name, **body} if isinstance(body, dict) else {"__type": name, "message": body}
    said = raw.get("message", raw.get("Message"))
    kind, retryable = classify_error(name)
    return StreamError(
        error_kind=kind, message=name if said is None else str(said), retryable=retryable, raw=raw
    )


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
            return BlockStart(index=self.index, type=self.type, raw_type=self.raw_type, data=self._redacted())
        data = {**self.start, "content": list(self.parts)}
        return BlockStart(
            index=self.index,
            type=self.type,
            id=self.start.get("toolUseId"),
            raw_type=self.raw_type,
            data=data,
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
            return [*self._release(), Unknown(raw_type=event_type, payload=_loose_payload(raw))]
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
        return [BlockStart(index=index, type=block_type, raw_type=raw_type)]

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
            return [BlockStart(index=index, type=block_type, id=tool_id, name=name, raw_type=raw_type)]
        if "toolResult" in start:
            result = _object(start["toolResult"], "start.toolResult")
            self._hold(index, "server_tool", "toolResult").start = dict(result)
            return []
        self._open.add(index)
        return [BlockStart(index=index, type="unknown", raw_type=next(iter(start), "unknown"), data=start)]

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
        return [Unknown(raw_type=f"contentBlockDelta.{key}", payload=payload)]

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
            return [Unknown(raw_type="contentBlockStop", payload=payload)]
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
            out.append(UsageUpdate(_usage(usage, CONVERSE_USAGE, Usage())))
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
        metrics = event.pop(METRICS_KEY, None)
        out = self._track(self._mapper.on_event(event))
        if isinstance(metrics, dict):
            self._add_metrics(out, _usage(metrics, INVOKE_USAGE, self._usage))
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
        if api not in get_args(Api):
            raise LocalError(f"unknown Bedrock api {api!r}: use {', '.join(get_args(Api))}")
        self.api: Api = api
        self._frames = EventStreamDecoder(max_headers=max_headers, max_payload=max_payload)
        self._converse = _Converse()
        self._invoke: _Invoke | None = None

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        """Decode a chunk of the body; return the events its complete frames produce (in ``out``).

        Frames before bad bytes are decoded first (see :class:`~midstream.wire._base.DialectDecoder`).
        """
        out = [] if out is None else out
        frames: list[EventStreamMessage] = []
        try:
            self._frames.feed(data, frames)
        finally:
            self._messages(frames, out)  # if this raises too, its error wins: its frame came first
        return out

    def _messages(self, frames: list[EventStreamMessage], out: list[Event]) -> None:
        for message in frames:
            out.extend(self._message(message))

    def close(self) -> list[Event]:
        """End of the body: a held ``ResponseEnd`` is released.

        Bytes of an unfinished frame at EOF mean the connection was cut mid-frame: the frame is
        dropped and the response ends ``truncated`` (the timeline), like any stream cut short.
        """
        with contextlib.suppress(EventStreamFrameError):
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
                Unknown(raw_type=f":message-type:{message_type}", payload=dict(message.headers)),
            ]
        event_type = _str_header(message, ":event-type")
        if event_type is None:
            raise RemoteProtocolError("bedrock event frame without an :event-type header")
        if self.api == "auto":
            self.api = "invoke" if event_type == "chunk" else "converse"
        if self.api == "converse":
            return self._converse.on_event(event_type, message.payload)
        if event_type != "chunk":
            return [Unknown(raw_type=event_type, payload=_loose_payload(message.payload))]
        if self._invoke is None:
            self._invoke = _Invoke()
        return self._invoke.on_chunk(message.payload)


REQUEST = _REQUEST
"""The request side: read, checked and refused as the provider does (:mod:`midstream.wire.request`)."""
DECODER = BedrockDecoder
ENCODER = BedrockEncoder
NONSTREAM = _whole_body
