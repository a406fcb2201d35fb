"""Non-streaming response bodies: the JSON each provider returns for ``stream: false``.

The simulator plans the same events either way and folds them into a Message; these functions write
that Message in the provider's non-streaming shape, so a client sees the same content streamed or not.
The Responses API's body is the final ``response`` object of its own stream, taken from the encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from midstream import wire
from midstream.core.accumulate import Accumulator
from midstream.events import Event
from midstream.message import Message, TextBlock, ThinkingBlock, ToolCall
from midstream.wire.anthropic import wire_stop_reason
from midstream.wire.bedrock import wire_stop_reason as bedrock_stop_reason
from midstream.wire.gemini import wire_finish_reason as gemini_finish_reason
from midstream.wire.ollama import wire_done_reason
from midstream.wire.openai_chat import wire_finish_reason
from midstream.wire.sse import SSEDecoder

__all__ = ["error_body", "nonstream_body", "responses_body"]

# Stop reasons are written by the same functions the streaming encoders use, so a response reads the
# same streamed or not.


def _input(call: ToolCall) -> dict[str, Any]:
    return call.input if call.input is not None else {}


def _anthropic(message: Message) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ThinkingBlock):
            content.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature or ""}
            )
        elif isinstance(block, ToolCall):
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": _input(block)})
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


def _openai_chat(message: Message) -> dict[str, Any]:
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
        "created": 0,
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


def responses_body(events: list[Event], *, realism: bool = True, seed: int | None = 0) -> dict[str, Any]:
    """The Responses API's non-streaming body: the final ``response`` object its stream ends with.

    Written by the Responses encoder itself, so streamed and non-streamed answers cannot drift apart.
    """
    data = wire.encoder("openai-responses", realism=realism, seed=seed).encode_all(events)
    final: dict[str, Any] = {}
    for sse in SSEDecoder().feed(data):
        payload = json.loads(sse.data)
        if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
            final = payload["response"]
    return final


def _gemini(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, ThinkingBlock):
            parts.append({"text": block.thinking, "thought": True})
        elif isinstance(block, TextBlock):
            parts.append({"text": block.text})
        elif isinstance(block, ToolCall):
            parts.append({"functionCall": {"name": block.name, "args": _input(block)}})
    usage = message.usage
    thoughts = usage.reasoning_tokens or 0
    metadata = {
        "promptTokenCount": usage.input_tokens or 0,
        "candidatesTokenCount": (usage.output_tokens or 0) - thoughts,  # Gemini counts thoughts apart
        "totalTokenCount": usage.total_tokens or 0,
    }
    if usage.reasoning_tokens is not None:
        metadata["thoughtsTokenCount"] = thoughts
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": gemini_finish_reason(message.stop_reason, message.raw_stop_reason),
                "index": 0,
            }
        ],
        "usageMetadata": metadata,
        "modelVersion": message.model,
        "responseId": message.id,
    }


def _bedrock(message: Message) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            content.append({"text": block.text})
        elif isinstance(block, ThinkingBlock):
            text = {"text": block.thinking, "signature": block.signature or ""}
            content.append({"reasoningContent": {"reasoningText": text}})
        elif isinstance(block, ToolCall):
            content.append({"toolUse": {"toolUseId": block.id, "name": block.name, "input": _input(block)}})
    usage = message.usage
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": bedrock_stop_reason(message.stop_reason, message.raw_stop_reason) or "end_turn",
        "usage": {
            "inputTokens": usage.input_tokens or 0,
            "outputTokens": usage.output_tokens or 0,
            "totalTokens": usage.total_tokens or 0,
        },
        "metrics": {"latencyMs": 0},
    }


def _ollama(message: Message, api: str = "chat") -> dict[str, Any]:
    body: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.thinking:
        body["thinking"] = message.thinking
    calls = [
        {"id": c.id, "function": {"index": n, "name": c.name, "arguments": _input(c)}}
        for n, c in enumerate(message.tool_calls)
        if c.input is not None  # Ollama sends calls whole or not at all
    ]
    if calls:
        body["tool_calls"] = calls
    usage = message.usage
    head: dict[str, Any] = {"model": message.model or "", "created_at": _now()}
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


_WRITERS: dict[str, Callable[[Message], dict[str, Any]]] = {
    "anthropic": _anthropic,
    "openai-chat": _openai_chat,
    "gemini": _gemini,
    "bedrock": _bedrock,
    "ollama": _ollama,
}


def nonstream_body(
    provider: str, events: list[Event], *, api: str | None = None, realism: bool = True, seed: int | None = 0
) -> bytes:
    """The JSON body ``provider`` answers with when not streaming, for the same ``events``.

    ``api`` is Ollama's endpoint (``chat`` or ``generate``).
    """
    if provider == "openai-responses":
        body = responses_body(events, realism=realism, seed=seed)
    else:
        acc = Accumulator(provider)
        for event in events:
            acc.feed(event)
        message = acc.message
        body = _ollama(message, api or "chat") if provider == "ollama" else _WRITERS[provider](message)
    return json.dumps(body, ensure_ascii=False).encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_body(
    provider: str,
    status: int,
    kind: str,
    message: str,
    request_id: str = "",
    *,
    retry_delay: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """An HTTP error body (and extra headers) the way ``provider`` writes one.

    ``kind`` is ``overloaded``, ``rate_limited``, ``server``, ``invalid_request``, ``not_found`` or
    ``request_too_large`` (a 413: Anthropic's own error type; an invalid request elsewhere). ``retry_delay``
    (seconds) goes into the body where the provider says it there (Gemini's ``RetryInfo``).
    """
    body, headers = wire.request_dialect(provider).error_body(status, kind, message, request_id, retry_delay)
    return json.dumps(body, ensure_ascii=False).encode(), headers
