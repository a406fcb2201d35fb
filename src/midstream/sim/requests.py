"""Each provider's request body, read into one :class:`SimRequest` the simulator can act on.

Only what the simulator needs is read: the conversation's last user text and last tool result, how
many assistant turns it has, the tools offered (with their schemas and eager-streaming flags), the
output budget, whether to stream, and whether thinking was asked for. Anything else is ignored, as a
lenient server would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midstream.sim.scenarios import ToolOffer
from midstream.sim.script import count_tokens

__all__ = ["FINE_GRAINED_BETA", "SimRequest", "parse_request"]

FINE_GRAINED_BETA = "fine-grained-tool-streaming-2025-05-14"


@dataclass
class SimRequest:
    """A provider request, normalized."""

    provider: str
    model: str
    last_user: str = ""
    last_tool_result: str | None = None
    assistant_turns: int = 0
    tools: list[ToolOffer] = field(default_factory=list)
    max_tokens: int | None = None
    stream: bool = True
    thinking: bool = False
    partial_args: bool = False  # Gemini on Vertex: streamFunctionCallArguments
    input_tokens: int = 0
    include_usage: bool = True  # OpenAI Chat: stream_options.include_usage
    obfuscation: bool = True  # OpenAI: stream_options.include_obfuscation
    prefill: str = ""  # Anthropic: a trailing assistant message the answer continues


def _text_of(content: Any) -> str:
    """Plain text of a message content in any provider's shape (string, parts, blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("text", "output", "content", "result", "parts"):
            if key in content:
                return _text_of(content[key])
        return json.dumps(content.get("json", content), ensure_ascii=False, sort_keys=True)
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    return str(content)


def _anthropic(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    beta = FINE_GRAINED_BETA in headers.get("anthropic-beta", "")
    req.max_tokens = body.get("max_tokens")
    req.thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    req.tools = [
        ToolOffer(
            name=t["name"],
            schema=t.get("input_schema") or {},
            eager=bool(t.get("eager_input_streaming")) or beta,
        )
        for t in body.get("tools") or []
        if "name" in t and "input_schema" in t
    ]
    messages = list(body.get("messages") or [])
    if len(messages) > 1 and messages[-1].get("role") == "assistant":
        # A prefill: the answer continues this text; it is not a turn of its own.
        req.prefill = _text_of(messages.pop().get("content"))
    for message in messages:
        if message.get("role") == "assistant":
            req.assistant_turns += 1
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        req.last_tool_result = _text_of(results[-1].get("content")) if results else None
        req.last_user = _text_of(texts) if texts else req.last_user


def _openai_chat(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    req.max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    req.tools = _function_tools(body.get("tools"))
    options = body.get("stream_options") or {}
    req.include_usage = bool(options.get("include_usage"))
    req.obfuscation = options.get("include_obfuscation", True) is not False
    _chat_messages(body.get("messages"), req)


def _chat_messages(messages: Any, req: SimRequest) -> None:
    req.last_tool_result = None
    for message in messages or []:
        role = message.get("role")
        if role == "assistant":
            req.assistant_turns += 1
            req.last_tool_result = None
        elif role == "tool":
            req.last_tool_result = _text_of(message.get("content"))
        elif role == "user":
            req.last_user, req.last_tool_result = _text_of(message.get("content")), None


def _function_tools(tools: Any) -> list[ToolOffer]:
    offers = []
    for tool in tools or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and "name" in fn:
            offers.append(ToolOffer(name=fn["name"], schema=fn.get("parameters") or {}))
    return offers


def _openai_responses(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    req.max_tokens = body.get("max_output_tokens")
    # Reasoning is streamed only as summaries, and only when a summary is asked for.
    req.thinking = bool((body.get("reasoning") or {}).get("summary"))
    req.obfuscation = (body.get("stream_options") or {}).get("include_obfuscation", True) is not False
    req.tools = _function_tools([t for t in body.get("tools") or [] if t.get("type") == "function"])
    items = body.get("input")
    if isinstance(items, str):
        req.last_user = items
        return
    in_assistant_turn = False
    for item in items or []:
        kind, role = item.get("type", "message"), item.get("role")
        speaking = kind in ("function_call", "reasoning") or role == "assistant"
        if speaking and not in_assistant_turn:
            req.assistant_turns += 1  # consecutive assistant items are one turn
        in_assistant_turn = speaking
        if kind == "function_call_output":
            req.last_tool_result = _text_of(item.get("output"))
        elif role == "user":
            req.last_user, req.last_tool_result = _text_of(item.get("content")), None


_CAPITAL = re.compile(r"(?<!^)(?=[A-Z])")


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` by its camelCase name or its snake_case twin (Google's JSON accepts both)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_CAPITAL.sub("_", name).lower())


def _gemini(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    config = _field(body, "generationConfig") or {}
    req.max_tokens = _field(config, "maxOutputTokens")
    req.thinking = bool(_field(_field(config, "thinkingConfig"), "includeThoughts"))
    calling = _field(_field(body, "toolConfig"), "functionCallingConfig")
    req.partial_args = bool(_field(calling, "streamFunctionCallArguments"))
    for tool in body.get("tools") or []:
        for fn in _field(tool, "functionDeclarations") or []:
            schema = _field(fn, "parametersJsonSchema") or fn.get("parameters") or {}
            req.tools.append(ToolOffer(name=fn["name"], schema=_lower_types(schema)))
    for content in body.get("contents") or []:
        parts = content.get("parts") or []
        if content.get("role") == "model":
            req.assistant_turns += 1
            continue
        results = [_field(p, "functionResponse") for p in parts if _field(p, "functionResponse")]
        texts = [p.get("text", "") for p in parts if "text" in p]
        req.last_tool_result = _text_of(results[-1].get("response")) if results else None
        req.last_user = "".join(texts) if texts else req.last_user


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schemas spell types in capitals (``STRING``); JSON Schema does not."""
    if isinstance(schema, dict):
        return {
            k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _bedrock(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    req.max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking") or extra.get("reasoning_config") or {}
    req.thinking = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    tools = ((body.get("toolConfig") or {}).get("tools")) or []
    for tool in tools:
        spec = tool.get("toolSpec") or {}
        if "name" in spec:
            schema = (spec.get("inputSchema") or {}).get("json") or {}
            req.tools.append(ToolOffer(name=spec["name"], schema=schema))
    for message in body.get("messages") or []:
        if message.get("role") == "assistant":
            req.assistant_turns += 1
            continue
        blocks = message.get("content") or []
        results = [b["toolResult"] for b in blocks if "toolResult" in b]
        texts = [b["text"] for b in blocks if "text" in b]
        req.last_tool_result = _text_of(results[-1].get("content")) if results else None
        req.last_user = "".join(texts) if texts else req.last_user


def _ollama(body: dict[str, Any], headers: dict[str, str], req: SimRequest) -> None:
    req.max_tokens = (body.get("options") or {}).get("num_predict")
    req.thinking = bool(body.get("think"))
    req.tools = _function_tools(body.get("tools"))
    if "prompt" in body:  # /api/generate
        req.last_user = str(body.get("prompt") or "")
    _chat_messages(body.get("messages"), req)


_PARSERS: dict[str, Callable[[dict[str, Any], dict[str, str], SimRequest], None]] = {
    "anthropic": _anthropic,
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
    "gemini": _gemini,
    "bedrock": _bedrock,
    "ollama": _ollama,
}


def parse_request(
    provider: str, body: dict[str, Any], headers: dict[str, str], *, model: str | None = None
) -> SimRequest:
    """Read ``body`` (a ``provider`` request) into a SimRequest. ``model`` overrides the body's."""
    stream_default = provider in ("ollama", "gemini", "bedrock")
    req = SimRequest(
        provider=provider,
        model=model or str(body.get("model") or "sim-model"),
        stream=bool(body.get("stream", stream_default)),
    )
    _PARSERS[provider](body, {k.lower(): v for k, v in headers.items()}, req)
    conversation = body.get("messages") or body.get("contents") or body.get("input") or body.get("prompt")
    req.input_tokens = max(1, count_tokens(_text_of(conversation)))
    return req
