"""Anthropic Messages API request bodies (``POST /v1/messages``), as the official SDK sends them.

Key order follows the SDK (``max_tokens``, ``messages``, ``model``, ... ``stream``, ``system``,
``thinking``, ``tool_choice``, ``tools``). The SDK no longer takes ``temperature``, so it is not sent.
"""

from __future__ import annotations

from typing import Any

from midstream.client._providers._common import JSON, replays_native, split_parts, tool_input
from midstream.client.request import ChatRequest, ToolSpec, Turn
from midstream.message import (
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
)

DIALECT = "anthropic"
API_VERSION = "2026-10-21"  # what anthropic 2.x sends as ``anthropic-version``


def body(request: ChatRequest, *, stream: bool) -> JSON:
    """The JSON body for ``request``."""
    out: JSON = {
        "max_tokens": request.max_tokens,
        "messages": [m for turn in request.turns if (m := _message(turn)) is not None],
        "model": request.model,
    }
    if stream:
        out["stream"] = True
    if request.system is not None:
        out["system"] = request.system
    if request.thinking_budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget}
    if request.tool_choice is not None:
        out["tool_choice"] = _tool_choice(request.tool_choice)
    if request.tools:
        out["tools"] = [_tool(spec) for spec in request.tools]
    return out


def _tool(spec: ToolSpec) -> JSON:
    tool: JSON = {"name": spec.name}
    if spec.description:
        tool["description"] = spec.description
    tool["input_schema"] = spec.input_schema
    if spec.eager:
        # Fine-grained streaming, per tool (the beta header it replaced is not needed).
        tool["eager_input_streaming"] = True
    return tool


def _tool_choice(choice: str) -> JSON:
    if choice in ("auto", "any", "none"):
        return {"type": choice}
    return {"type": "tool", "name": choice}


def _message(turn: Turn) -> JSON | None:
    if turn.message is not None:
        content = _assistant_content(turn.message)
        return {"role": "assistant", "content": content} if content else None
    results, texts = split_parts(turn.parts)
    if not results and len(texts) == 1:
        return {"role": "user", "content": texts[0].text}
    blocks: list[JSON] = []
    for result in results:  # tool results must come first in the user message
        block: JSON = {"type": "tool_result", "tool_use_id": result.tool_call_id, "content": result.content}
        if result.is_error:
            block["is_error"] = True
        blocks.append(block)
    blocks.extend({"type": "text", "text": t.text} for t in texts)
    return {"role": "user", "content": blocks}


def _assistant_content(message: Message) -> list[JSON]:
    native = replays_native(message, DIALECT)
    return [b for block in message.blocks if (b := _block(block, native)) is not None]


def _block(block: Block, native: bool) -> JSON | None:
    if isinstance(block, TextBlock):
        if not block.text:
            return None  # the API rejects empty text blocks
        text: JSON = {"type": "text", "text": block.text}
        if native and block.citations:
            text["citations"] = list(block.citations)
        return text
    if isinstance(block, ToolCall):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": tool_input(block)}
    if not native:
        return None
    if isinstance(block, ThinkingBlock):
        # The signature goes back byte for byte; thinking without one cannot be verified, so it is dropped.
        if block.signature is None:
            return None
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    if isinstance(block, ServerToolBlock):
        return _server_block(block)
    return _raw_block(block)


def _server_block(block: ServerToolBlock) -> JSON | None:
    if isinstance(block.content, dict) and block.content.get("type") == block.raw_type:
        return dict(block.content)  # results arrive whole: send them back as they came
    if block.id is None or block.name is None:
        return None
    value: Any = block.input if block.input is not None else {}
    return {"type": block.raw_type, "id": block.id, "name": block.name, "input": value}


def _raw_block(block: UnknownBlock) -> JSON | None:
    # A block we do not know goes back as the API sent it, its deltas folded in (a ``compaction``
    # block must come back with its summary, or the compacted context is lost).
    data = block.merged()
    return dict(data) if isinstance(data, dict) and isinstance(data.get("type"), str) else None
