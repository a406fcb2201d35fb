"""Ollama ``POST /api/chat`` request bodies, in the documented shape (and ollama-python's key order).

Tool calls go back with their arguments as an object, tool results as ``role: "tool"`` messages
naming the tool (``tool_name``), thinking as the assistant message's ``thinking`` text. A thinking
budget turns thinking on (``think: true``); Ollama takes no budget. ``tool_choice`` and per-tool eager
streaming have no Ollama equivalent (calls arrive whole).
"""

from __future__ import annotations

from midstream.client._providers._common import (
    JSON,
    replays_native,
    result_name,
    split_parts,
    tool_input,
    tool_names,
)
from midstream.client.request import ChatRequest, Turn
from midstream.message import Message, TextBlock, ThinkingBlock

DIALECT = "ollama"


def body(request: ChatRequest, *, stream: bool) -> JSON:
    """The JSON body for ``request``; ``stream`` is always written (Ollama streams by default)."""
    names = tool_names(request)
    messages: list[JSON] = []
    if request.system is not None:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        messages.extend(_messages(turn, names))
    out: JSON = {"model": request.model, "messages": messages}
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.input_schema,
                },
            }
            for spec in request.tools
        ]
    out["stream"] = stream
    if request.thinking_budget is not None:
        out["think"] = True
    options: JSON = {"num_predict": request.max_tokens}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    out["options"] = options
    return out


def _messages(turn: Turn, names: dict[str, str]) -> list[JSON]:
    if turn.message is not None:
        return _assistant(turn.message)
    results, texts = split_parts(turn.parts)
    out: list[JSON] = [
        {"role": "tool", "content": r.content, "tool_name": result_name(r, names)} for r in results
    ]
    out.extend({"role": "user", "content": t.text} for t in texts)
    return out


def _assistant(message: Message) -> list[JSON]:
    text = "".join(b.text for b in message.blocks if isinstance(b, TextBlock))
    thinking = "".join(b.thinking for b in message.blocks if isinstance(b, ThinkingBlock))
    calls = message.tool_calls
    if not (text or thinking or calls):
        return []
    out: JSON = {"role": "assistant", "content": text}
    if thinking and replays_native(message, DIALECT):
        out["thinking"] = thinking
    if calls:
        out["tool_calls"] = [{"function": {"name": c.name, "arguments": tool_input(c)}} for c in calls]
    return [out]
