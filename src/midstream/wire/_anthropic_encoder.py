"""The Anthropic encoder: normalized events -> a Messages stream body (see :mod:`.anthropic`)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import Message, StopReason, TextBlock, ThinkingBlock, ToolCall, Usage
from midstream.wire._base import Encoder
from midstream.wire.canonical import events_from_message

__all__ = ["ERROR_TYPES", "AnthropicEncoder", "whole_body", "wire_stop_reason"]

_WIRE_STOP: dict[str, str] = {
    "context_window_exceeded": "model_context_window_exceeded",
    "content_filter": "refusal",
}


def wire_stop_reason(stop: StopReason | None, raw: str | None = None) -> str | None:
    """The ``stop_reason`` Anthropic writes: the raw one when known, else its name for ``stop``."""
    if raw is not None or stop is None:
        return raw
    return _WIRE_STOP.get(stop, stop)


ERROR_TYPES: dict[str, str] = {
    "overloaded": "overloaded_error",
    "rate_limited": "rate_limit_error",
    "server": "api_error",
    "invalid_request": "invalid_request_error",
    "request_too_large": "request_too_large",
    "auth": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "quota": "billing_error",
    "timeout": "timeout_error",
}
"""An error kind -> Anthropic's ``error.type`` for it, in HTTP error bodies and streamed errors alike."""
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_PAD_PROBABILITY = 0.75


def _wire_usage(usage: Usage, *, required: tuple[str, ...]) -> dict[str, Any]:
    """Anthropic's usage object: ``input_tokens`` without cache; unknown counts omitted unless required."""
    cache_write, cache_read = usage.cache_write_tokens, usage.cache_read_tokens
    raw_input = None
    if usage.input_tokens is not None:
        raw_input = usage.input_tokens - (cache_write or 0) - (cache_read or 0)
    fields = (
        ("input_tokens", raw_input),
        ("cache_creation_input_tokens", cache_write),
        ("cache_read_input_tokens", cache_read),
        ("output_tokens", usage.output_tokens),
    )
    out: dict[str, Any] = {key: (value or 0) for key, value in fields if value is not None or key in required}
    if usage.reasoning_tokens is not None:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


class AnthropicEncoder(Encoder):
    """Normalized events -> the bytes the Anthropic Messages API streams.

    ``realism`` adds what the real API adds (padding, pings, empty first deltas); ``seed`` drives the
    padding through a private ``random.Random``. Output decodes back to the same Message
    (:meth:`encode_message`) whether realism is on or off.
    """

    dialect = "anthropic"

    def __init__(self, *, realism: bool = True, seed: int | None = 0) -> None:
        self.realism = realism
        self._rng = random.Random(seed)
        self._usage = Usage()
        self._pinged = False
        self._finished = False  # an error or message_stop was written: nothing may follow
        self._tool_blocks: set[int] = set()
        self._args_started: set[int] = set()
        self._writers: dict[str, Callable[[Any], bytes]] = {
            "response_start": self._response_start,
            "block_start": self._block_start,
            "text_delta": lambda e: self._delta(e.index, {"type": "text_delta", "text": e.text}),
            "thinking_delta": lambda e: self._delta(e.index, {"type": "thinking_delta", "thinking": e.text}),
            "signature_delta": self._signature,
            "citation_delta": lambda e: self._delta(
                e.index, {"type": "citations_delta", "citation": e.citation}
            ),
            "tool_args_delta": self._tool_args,
            "block_stop": self._block_stop,
            "usage_update": self._usage_update,
            "response_end": self._response_end,
            "stream_error": self._stream_error,
            "unknown": self._unknown,
        }

    def encode(self, event: Event) -> bytes:
        """The bytes for ``event`` (``b""`` for events the API folds into later frames)."""
        self._starting(event)
        if self._finished:
            return b""
        return self._writers[event.kind](event)

    def encode_message(self, message: Message) -> bytes:
        """``message`` as the API streams it: input and cache counts already in ``message_start``."""
        self.reset()
        events = self._message_events(message)
        return self.encode_all(events)

    def _message_events(self, message: Message) -> list[Event]:
        events = events_from_message(message)
        usage = message.usage
        if message.error is None and usage.output_tokens is not None:
            # message_start reports output so far (the first token); message_delta the total.
            usage = dataclasses.replace(usage, output_tokens=min(usage.output_tokens, 1))
        first = events[0]
        assert isinstance(first, ResponseStart)
        events[0] = dataclasses.replace(first, usage=usage)
        return events

    # -- frames ---------------------------------------------------------------------------------

    def _frame(self, event_type: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if self.realism and self._rng.random() < _PAD_PROBABILITY:
            data = data[:-1] + " " * self._rng.randint(1, 15) + "}"
        return f"event: {event_type}\ndata: {data}\n\n".encode()

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        body = {"type": "content_block_delta", "index": index, "delta": delta}
        return self._frame("content_block_delta", body)

    def _response_start(self, event: ResponseStart) -> bytes:
        self._usage = self._usage.merge(event.usage)
        message: dict[str, Any] = {
            "id": event.id,
            "type": "message",
            "role": "assistant",
            "model": event.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
            "usage": _wire_usage(event.usage, required=("input_tokens", "output_tokens")),
        }
        return self._frame("message_start", {"type": "message_start", "message": message})

    def _block_start(self, event: BlockStart) -> bytes:
        block = self._content_block(event)
        body = {"type": "content_block_start", "index": event.index, "content_block": block}
        out = self._frame("content_block_start", body)
        if self.realism and not self._pinged:
            self._pinged = True
            out += _PING
        return out

    def _content_block(self, event: BlockStart) -> dict[str, Any]:
        if event.type == "text":
            return {"type": "text", "text": ""}
        if event.type == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if event.type == "redacted_thinking":
            return {"type": "redacted_thinking", "data": event.data or ""}
        if isinstance(event.data, dict) and "type" in event.data:
            return event.data  # a server tool result or an unknown block, kept whole
        if event.type in ("tool_call", "server_tool"):
            kind = "tool_use" if event.type == "tool_call" else (event.raw_type or "server_tool_use")
            self._tool_blocks.add(event.index)
            return {"type": kind, "id": event.id, "name": event.name, "input": {}}
        return {"type": event.raw_type or "unknown", "data": event.data}

    def _signature(self, event: SignatureDelta) -> bytes:
        out = b""
        if self.realism:
            # The API closes the thinking text with an empty delta before the signature.
            out = self._delta(event.index, {"type": "thinking_delta", "thinking": ""})
        return out + self._delta(event.index, {"type": "signature_delta", "signature": event.signature})

    def _tool_args(self, event: ToolArgsDelta) -> bytes:
        out = b""
        if self.realism and event.index not in self._args_started and event.fragment:
            out = self._empty_args(event.index)
        self._args_started.add(event.index)
        return out + self._delta(event.index, {"type": "input_json_delta", "partial_json": event.fragment})

    def _empty_args(self, index: int) -> bytes:
        return self._delta(index, {"type": "input_json_delta", "partial_json": ""})

    def _block_stop(self, event: BlockStop) -> bytes:
        if not event.complete:
            return b""  # the API leaves a block cut off by max_tokens without its stop
        out = b""
        if self.realism and event.index in self._tool_blocks and event.index not in self._args_started:
            out = self._empty_args(event.index)  # a tool without arguments still gets one ""
        body = {"type": "content_block_stop", "index": event.index}
        return out + self._frame("content_block_stop", body)

    def _usage_update(self, event: UsageUpdate) -> bytes:
        self._usage = self._usage.merge(event.usage)
        return b""  # reported by message_delta

    def _response_end(self, event: ResponseEnd) -> bytes:
        if event.terminal == "failed":
            return self._stream_error(
                StreamError(error_kind="server", message="stream failed", retryable=True)
            )
        self._usage = self._usage.merge(event.usage)
        raw = wire_stop_reason(event.stop_reason, event.raw_stop_reason)
        delta = {"stop_reason": raw, "stop_sequence": None, "stop_details": event.stop_details}
        usage = _wire_usage(self._usage, required=("output_tokens",))
        out = self._frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        self._finished = True
        if event.terminal == "completed" or event.stop_reason in ("max_tokens", "context_window_exceeded"):
            out += self._frame("message_stop", {"type": "message_stop"})
        # Otherwise the stream was cut before message_stop (truncated, cancelled).
        return out

    def _stream_error(self, event: StreamError) -> bytes:
        self._finished = True  # the API closes the connection after an error event
        raw = event.raw
        if not (isinstance(raw, dict) and raw.get("type") == "error" and isinstance(raw.get("error"), dict)):
            error_type = ERROR_TYPES.get(event.error_kind, "api_error")
            raw = {"type": "error", "error": {"details": None, "type": error_type, "message": event.message}}
        return self._frame("error", raw)

    def _unknown(self, event: Unknown) -> bytes:
        payload = event.payload
        if event.index is not None:  # a delta of an unknown block (e.g. compaction_delta)
            return self._delta(event.index, payload) if isinstance(payload, dict) else b""
        if isinstance(payload, dict) and isinstance(payload.get("type"), str):
            return self._frame(payload["type"], payload)
        return b""  # nothing Anthropic could have sent


# -- the answer not streamed ---------------------------------------------------------------------------


def whole_body(message: Message, events: Sequence[Event] = (), **_: Any) -> dict[str, Any]:
    """The Messages API's answer when not streamed: ``message`` as one ``message`` object."""
    content: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ThinkingBlock):
            content.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature or ""}
            )
        elif isinstance(block, ToolCall):
            given = block.input if block.input is not None else {}
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": given})
    usage = message.usage
    return {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "model": message.model,
        "content": content,
        "stop_reason": wire_stop_reason(message.stop_reason, message.raw_stop_reason) or "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens or 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": usage.output_tokens or 0,
        },
    }
