"""The Bedrock encoder: normalized events -> eventstream frames (see :mod:`.bedrock`)."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from typing import Any, Literal, get_args

from midstream.errors import LocalError
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
from midstream.message import Message, StopReason, TextBlock, ThinkingBlock, ToolCall, Usage
from midstream.wire._base import Encoder
from midstream.wire._bedrock_common import CONVERSE_USAGE, INVOKE_USAGE, METRICS_KEY, PROVIDER, STOP_REASONS
from midstream.wire.eventstream import encode_message

__all__ = ["BedrockEncoder", "whole_body", "wire_stop_reason"]

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

_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


EncoderApi = Literal["converse", "invoke"]
"""The two Bedrock streaming APIs an encoder writes."""


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

    def __init__(self, *, api: EncoderApi = "converse", realism: bool = True, seed: int | None = 0) -> None:
        if api not in get_args(EncoderApi):
            raise LocalError(f"unknown Bedrock api {api!r}: use {' or '.join(get_args(EncoderApi))}")
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
        self.reset()
        if self._anthropic is not None:
            return self._anthropic.encode_message(message)
        return super().encode_message(message)

    def encode(self, event: Event) -> bytes:
        """The frames for one event (``b""`` for events Bedrock writes later or never)."""
        self._starting(event)
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
            reason = wire_stop_reason(event.stop_reason, event.raw_stop_reason)
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
        names = dict(zip(("input", "output", "read", "write"), INVOKE_USAGE, strict=True))
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


def wire_stop_reason(stop: StopReason | None, raw: str | None = None) -> str | None:
    """The ``stopReason`` Bedrock writes: the raw one when it means ``stop``, else Bedrock's name."""
    if raw is not None and STOP_REASONS.get(raw, "other") == stop:
        return raw
    if stop is None:
        return raw
    return _WIRE_STOP.get(stop, raw or stop)


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
    names = dict(zip(("input", "output", "read", "write"), CONVERSE_USAGE, strict=True))
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
                payload[METRICS_KEY] = self._owner.invocation_metrics()
                data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            chunk = base64.b64encode(data.encode("utf-8")).decode("ascii")
            frames.append(self._owner.frame("chunk", {"bytes": chunk}))
        return b"".join(frames)


# -- the answer not streamed ---------------------------------------------------------------------------


def whole_body(message: Message, events: Sequence[Event] = (), **_: Any) -> dict[str, Any]:
    """Converse's answer (``POST /model/{id}/converse``): the whole output message, stop reason, usage."""
    content: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            content.append({"text": block.text})
        elif isinstance(block, ThinkingBlock):
            text = {"text": block.thinking, "signature": block.signature or ""}
            content.append({"reasoningContent": {"reasoningText": text}})
        elif isinstance(block, ToolCall):
            given = block.input if block.input is not None else {}
            content.append({"toolUse": {"toolUseId": block.id, "name": block.name, "input": given}})
    usage = message.usage
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": wire_stop_reason(message.stop_reason, message.raw_stop_reason) or "end_turn",
        "usage": {
            "inputTokens": usage.input_tokens or 0,
            "outputTokens": usage.output_tokens or 0,
            "totalTokens": usage.total_tokens or 0,
        },
        "metrics": {"latencyMs": 0},
    }
