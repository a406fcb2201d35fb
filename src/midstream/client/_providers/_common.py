"""What every request builder shares: JSON encodings, replay rules for earlier assistant turns, and
the lookups tool results need."""

from __future__ import annotations

import json
from typing import Any

from midstream.client.request import ChatRequest, ToolResult, UserText
from midstream.errors import LocalError
from midstream.message import Message, ToolCall

JSON = dict[str, Any]


def compact_json(obj: Any) -> bytes:
    """JSON as the Stainless SDKs (anthropic, openai) and httpx write it: no spaces, raw UTF-8.

    Raises :class:`~midstream.errors.LocalError` for what JSON cannot carry (NaN, a set, ...).
    """
    return _dumps(obj, ensure_ascii=False, separators=(",", ":"))


def spaced_json(obj: Any) -> bytes:
    """JSON as ``json.dumps`` writes it by default (google-genai, botocore): ASCII, ``", "``, ``": "``.

    Raises :class:`~midstream.errors.LocalError` for what JSON cannot carry.
    """
    return _dumps(obj)


def _dumps(obj: Any, **options: Any) -> bytes:
    try:
        return json.dumps(obj, allow_nan=False, **options).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # The caller's values (a tool schema, a temperature) are at fault; json's message names no value.
        raise LocalError(f"the request cannot be sent as JSON: {exc}") from exc


def replays_native(message: Message, dialect: str) -> bool:
    """Whether ``message`` came from ``dialect``, so its provider-specific blocks may be sent back.

    Thinking signatures, redacted reasoning and server-tool blocks are only meaningful to the provider
    that produced them; a Message from another provider contributes its text and tool calls only.
    """
    return message.provider == dialect


def tool_input(call: ToolCall) -> JSON:
    """The arguments object of ``call`` to echo back: the parsed input, or, for a call whose input was
    truncated or invalid, ``{"INVALID_JSON": raw}`` so the provider still gets a JSON object."""
    return call.input if call.input is not None else {"INVALID_JSON": call.raw_input}


def tool_arguments(call: ToolCall) -> str:
    """The arguments string to echo back where a provider wants text: exactly the text received when
    it parsed, otherwise the ``INVALID_JSON`` wrapping (as compact JSON)."""
    if call.input is None:
        return compact_json(tool_input(call)).decode()
    return call.raw_input or "{}"


def tool_names(request: ChatRequest) -> dict[str, str]:
    """Tool call id -> tool name, over every assistant turn (results that name no tool use these)."""
    names: dict[str, str] = {}
    for turn in request.turns:
        if turn.message is not None:
            names.update((call.id, call.name) for call in turn.message.tool_calls)
    return names


def result_name(result: ToolResult, names: dict[str, str]) -> str:
    """The tool name a result answers: its own, or the name of the call it references."""
    return result.name or names.get(result.tool_call_id, "")


def split_parts(parts: tuple[UserText | ToolResult, ...]) -> tuple[list[ToolResult], list[UserText]]:
    """A user turn's tool results and texts, each in order (providers want results first)."""
    results = [p for p in parts if isinstance(p, ToolResult)]
    texts = [p for p in parts if isinstance(p, UserText)]
    return results, texts


def effort(budget: int) -> str:
    """A thinking budget in tokens as an OpenAI reasoning effort (OpenAI takes no token budget)."""
    if budget < 2048:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"
