"""The Chat Completions encoder: normalized events -> a streamed chunk body (see :mod:`.openai_chat`)."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Sequence
from typing import Any, Literal

from midstream.errors import ErrorKind, LocalError
from midstream.events import (
    BlockStart,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from midstream.message import Message, StopReason, Usage
from midstream.wire._base import Encoder
from midstream.wire._openai_chat_common import DIALECT, FINISH_REASONS

__all__ = ["OpenAIChatEncoder", "whole_body", "wire_finish_reason"]

# Normalized stop reason -> what OpenAI writes for it (several have no value of their own).
_FINISH_FOR: dict[StopReason, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "refusal": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "context_window_exceeded": "length",
    "content_filter": "content_filter",
    "error": "error",
    "other": "stop",
}

# Error kind -> OpenAI error ``type``, for errors that do not carry the provider's own payload.
_ERROR_TYPE: dict[ErrorKind, str] = {
    "overloaded": "server_error",
    "server": "server_error",
    "rate_limited": "rate_limit_exceeded",
    "invalid_request": "invalid_request_error",
    "auth": "invalid_api_key",
    "permission": "permission_error",
    "not_found": "not_found",
    "quota": "insufficient_quota",
    "timeout": "timeout_error",
}

# Stop reasons after which OpenAI still sends ``[DONE]`` although the answer is truncated.
_TRUNCATING: frozenset[StopReason | None] = frozenset({"max_tokens", "context_window_exceeded"})

_OBFUSCATION_CHARS = string.ascii_letters + string.digits

_Slot = tuple[Literal["content", "refusal", "reasoning", "tool", "skip"], int]


class OpenAIChatEncoder(Encoder):
    """Events -> Chat Completions SSE bytes, as the API writes them.

    Chunks are ``data: {json}`` with the fields in the order of current captures (``id, object, created,
    model, service_tier, system_fingerprint, choices, usage, obfuscation``), compact JSON with raw UTF-8.
    The first delta is ``{"role":"assistant","content":"","refusal":null}``, or carries ``content: null``
    and the first tool call's start fragment when the answer begins with a tool call. A tool call's start
    fragment has its ``id``, ``type``, ``name`` and ``arguments: ""``; its arguments follow exactly as
    the ``ToolArgsDelta`` fragments give them. The end writes a ``delta: {}`` chunk with the finish
    reason, the ``choices: []`` usage chunk (``include_usage``; only counts that are known are written)
    and ``data: [DONE]``; a ``truncated`` response that did not run out of tokens ends without
    ``[DONE]``, as a cut connection would, and a ``cancelled`` one just stops.

    ``StreamError`` writes ``data: {"error": ...}`` (the provider's own payload when ``raw`` is an
    object) and nothing follows it. Thinking text goes in ``reasoning_field`` (``reasoning_content``
    by default, as DeepSeek and vLLM write it; OpenAI itself never streams reasoning). Chat Completions
    cannot carry thinking signatures, redacted thinking, server tool blocks or unknown blocks: with
    ``strict`` (the default) they raise :class:`~midstream.errors.LocalError`, otherwise they are left
    out. ``Unknown`` events are not written.

    ``realism`` adds the random ``obfuscation`` padding OpenAI sends, drawn from ``random.Random(seed)``;
    ``created`` is the chunks' timestamp (no clock is read).
    """

    dialect = DIALECT

    def __init__(
        self,
        *,
        realism: bool = True,
        seed: int | None = 0,
        created: int = 0,
        service_tier: str | None = "default",
        system_fingerprint: str | None = "fp_6f2a0c41e7",
        include_usage: bool = True,
        reasoning_field: str = "reasoning_content",
        strict: bool = True,
    ) -> None:
        self.realism = realism
        self.created = created
        self.service_tier = service_tier
        self.system_fingerprint = system_fingerprint
        self.include_usage = include_usage
        self.reasoning_field = reasoning_field
        self.strict = strict
        self._rng = random.Random(seed)
        self._handlers: dict[str, Callable[[Any], bytes]] = {
            "response_start": self._response_start,
            "block_start": self._block_start,
            "text_delta": self._text,
            "thinking_delta": self._text,
            "signature_delta": self._signature,
            "citation_delta": self._citation,
            "tool_args_delta": self._tool_args,
            "block_stop": lambda event: b"",
            "usage_update": self._usage_update,
            "stream_error": self._stream_error,
            "response_end": self._response_end,
            "unknown": lambda event: b"",
        }
        self._reset(None, None)
        self._started = False

    def encode(self, event: Event) -> bytes:
        """The bytes for one event (``b""`` for events OpenAI writes later or never)."""
        self._starting(event)
        if not self._started and event.kind != "response_start":
            raise LocalError(f"OpenAIChatEncoder got {event.kind} before response_start")
        if self._finished and event.kind != "response_start":
            return b""
        return self._handlers[event.kind](event)

    # -- events ----------------------------------------------------------------------------------

    def _reset(self, response_id: str | None, model: str | None) -> None:
        self._id, self._model = response_id, model
        self._role_pending = True
        self._slots: dict[int, _Slot] = {}
        self._tools = 0
        self._usage = Usage()
        self._finished = False

    def _response_start(self, event: ResponseStart) -> bytes:
        self._reset(event.id, event.model)
        self._started = True
        self._usage = event.usage
        return b""

    def _block_start(self, event: BlockStart) -> bytes:
        if event.type == "tool_call":
            position = self._tools
            self._tools += 1
            self._slots[event.index] = ("tool", position)
            start = {
                "index": position,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            if self._role_pending:
                self._role_pending = False
                delta = {"role": "assistant", "content": None, "tool_calls": [start], "refusal": None}
                return self._chunk(delta)
            return self._chunk({"tool_calls": [start]})
        if event.type == "text":
            self._slots[event.index] = ("refusal" if event.raw_type == "refusal" else "content", 0)
        elif event.type == "thinking":
            self._slots[event.index] = ("reasoning", 0)
        else:
            self._unrepresentable(f"a {event.type} block")
            self._slots[event.index] = ("skip", 0)
            return b""
        return self._role_chunk()

    def _text(self, event: TextDelta | ThinkingDelta) -> bytes:
        kind, _ = self._slots.get(event.index, ("skip", 0))
        if kind == "skip" or not event.text:
            return b""
        key = {"content": "content", "refusal": "refusal", "reasoning": self.reasoning_field}.get(kind)
        if key is None:
            raise LocalError(f"{event.kind} for block {event.index}, a tool call")
        return self._chunk({key: event.text})

    def _signature(self, event: SignatureDelta) -> bytes:
        self._unrepresentable("a thinking signature")
        return b""

    def _citation(self, event: CitationDelta) -> bytes:
        if self._slots.get(event.index, ("skip", 0))[0] == "skip":
            return b""
        return self._chunk({"annotations": [event.citation]})

    def _tool_args(self, event: ToolArgsDelta) -> bytes:
        kind, position = self._slots.get(event.index, ("skip", 0))
        if kind == "skip" or not event.fragment:
            return b""
        if kind != "tool":
            raise LocalError(f"tool_args_delta for block {event.index}, which is not a tool call")
        return self._chunk({"tool_calls": [{"index": position, "function": {"arguments": event.fragment}}]})

    def _usage_update(self, event: UsageUpdate) -> bytes:
        self._usage = self._usage.merge(event.usage)
        return b""

    def _stream_error(self, event: StreamError) -> bytes:
        self._finished = True
        error = event.raw
        if not isinstance(error, dict):
            error = {
                "message": event.message,
                "type": _ERROR_TYPE.get(event.error_kind, "server_error"),
                "param": None,
                "code": event.status,
            }
        return _data({"error": error})

    def _response_end(self, event: ResponseEnd) -> bytes:
        self._finished = True
        if event.terminal == "cancelled":
            return b""
        out = [self._role_chunk()]
        finish = wire_finish_reason(event.stop_reason, event.raw_stop_reason)
        if finish is not None:
            out.append(self._chunk({}, finish=finish))
        usage = self._usage.merge(event.usage)
        if self.include_usage and usage != Usage():
            out.append(self._usage_chunk(usage))
        cut_short = event.terminal == "truncated" and event.stop_reason not in _TRUNCATING
        if not cut_short:
            out.append(b"data: [DONE]\n\n")
        return b"".join(out)

    # -- writing ---------------------------------------------------------------------------------

    def _unrepresentable(self, what: str) -> None:
        if self.strict:
            raise LocalError(f"OpenAI Chat Completions cannot represent {what} (use strict=False to skip it)")

    def _role_chunk(self) -> bytes:
        if not self._role_pending:
            return b""
        self._role_pending = False
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def _head(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "service_tier": self.service_tier,
            "system_fingerprint": self.system_fingerprint,
        }

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None) -> bytes:
        body = self._head()
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        body["usage"] = None
        return self._write(body)

    def _usage_chunk(self, usage: Usage) -> bytes:
        body = self._head()
        body["choices"] = []
        body["usage"] = _usage_json(usage, self.realism)
        return self._write(body)

    def _write(self, body: dict[str, Any]) -> bytes:
        if self.realism:
            body["obfuscation"] = "".join(
                self._rng.choice(_OBFUSCATION_CHARS) for _ in range(self._rng.randint(0, 15))
            )
        return _data(body)


def _data(body: dict[str, Any]) -> bytes:
    # json.dumps escapes CR and LF inside strings, so the payload is always one SSE data line.
    return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def wire_finish_reason(stop: StopReason | None, raw: str | None = None) -> str | None:
    """The ``finish_reason`` OpenAI writes: the raw one when it means ``stop``, else OpenAI's name."""
    if stop is None:
        return raw
    if raw is not None and FINISH_REASONS.get(raw, "other") == stop:
        return raw
    return _FINISH_FOR[stop]


def _usage_json(usage: Usage, realism: bool) -> dict[str, Any]:
    """The ``usage`` object: only known counts (so they decode back as written), plus the zero
    audio and prediction counts OpenAI always includes when ``realism`` is on."""
    out = _known(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )
    prompt = _known(cached_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens)
    completion = _known(reasoning_tokens=usage.reasoning_tokens)
    if realism:
        prompt["audio_tokens"] = 0
        completion.update(audio_tokens=0, accepted_prediction_tokens=0, rejected_prediction_tokens=0)
    if prompt:
        out["prompt_tokens_details"] = prompt
    if completion:
        out["completion_tokens_details"] = completion
    return out


def _known(**counts: int | None) -> dict[str, Any]:
    return {key: value for key, value in counts.items() if value is not None}


# -- the answer not streamed ---------------------------------------------------------------------------


def whole_body(
    message: Message, events: Sequence[Event] = (), *, created: int = 0, **_: Any
) -> dict[str, Any]:
    """Chat Completions' answer when not streamed: one ``chat.completion`` object, ``created`` at that
    Unix time (the encoder's option)."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_input}}
        for c in message.tool_calls
    ]
    body: dict[str, Any] = {"role": "assistant", "content": message.text or None, "refusal": None}
    if calls:
        body["tool_calls"] = calls
    usage = message.usage
    return {
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [
            {
                "index": 0,
                "message": body,
                "logprobs": None,
                "finish_reason": wire_finish_reason(message.stop_reason, message.raw_stop_reason) or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens or 0,
            "completion_tokens": usage.output_tokens or 0,
            "total_tokens": usage.total_tokens or 0,
        },
    }
