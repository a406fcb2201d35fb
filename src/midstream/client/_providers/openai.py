"""OpenAI request bodies: Chat Completions (also for OpenAI-compatible servers) and Responses.

Key order follows the official SDK (``model``, ``stream``, then the rest as its ``create`` lists them).
Reasoning is not replayed: Chat Completions has no place for it, and a Responses reasoning item needs
the ``rs_`` id that the event stream does not keep. A thinking budget becomes a reasoning effort
(``low`` under 2048 tokens, ``medium`` under 16384, else ``high``).
"""

from __future__ import annotations

from midstream.client._providers._common import JSON, effort, split_parts, tool_arguments
from midstream.client.request import ChatRequest, ToolSpec, Turn
from midstream.message import Message, TextBlock, ToolCall


def chat_body(request: ChatRequest, *, stream: bool, compatible: bool = False) -> JSON:
    """Chat Completions body. ``compatible`` targets other servers (vLLM, llama.cpp, LM Studio): the
    widely understood ``max_tokens`` instead of ``max_completion_tokens``, and no ``reasoning_effort``."""
    out: JSON = {"model": request.model}
    if stream:
        out["stream"] = True
    messages: list[JSON] = []
    if request.system is not None:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        messages.extend(_chat_messages(turn))
    out["messages"] = messages
    out["max_tokens" if compatible else "max_completion_tokens"] = request.max_tokens
    if request.thinking_budget is not None and not compatible:
        out["reasoning_effort"] = effort(request.thinking_budget)
    if stream:
        out["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.tool_choice is not None:
        out["tool_choice"] = _chat_tool_choice(request.tool_choice)
    if request.tools:
        out["tools"] = [{"type": "function", "function": _function(spec)} for spec in request.tools]
    return out


def responses_body(request: ChatRequest, *, stream: bool) -> JSON:
    """Responses API body."""
    out: JSON = {"model": request.model}
    if stream:
        out["stream"] = True
    items: list[JSON] = []
    for turn in request.turns:
        items.extend(_response_items(turn))
    out["input"] = items
    if request.system is not None:
        out["instructions"] = request.system
    out["max_output_tokens"] = request.max_tokens
    if request.thinking_budget is not None:
        # ``summary`` is what makes the reasoning visible in the stream at all.
        out["reasoning"] = {"effort": effort(request.thinking_budget), "summary": "auto"}
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.tool_choice is not None:
        out["tool_choice"] = _responses_tool_choice(request.tool_choice)
    if request.tools:
        out["tools"] = [{"type": "function", **_function(spec), "strict": False} for spec in request.tools]
    return out


def _function(spec: ToolSpec) -> JSON:
    fn: JSON = {"name": spec.name}
    if spec.description:
        fn["description"] = spec.description
    fn["parameters"] = spec.input_schema
    return fn


def _chat_tool_choice(choice: str) -> str | JSON:
    if choice in ("auto", "none"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


def _responses_tool_choice(choice: str) -> str | JSON:
    if choice in ("auto", "none"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "name": choice}


def _chat_messages(turn: Turn) -> list[JSON]:
    if turn.message is not None:
        return _chat_assistant(turn.message)
    results, texts = split_parts(turn.parts)
    out: list[JSON] = [
        {"role": "tool", "tool_call_id": r.tool_call_id, "content": r.content} for r in results
    ]
    if len(texts) == 1:
        out.append({"role": "user", "content": texts[0].text})
    elif texts:
        out.append({"role": "user", "content": [{"type": "text", "text": t.text} for t in texts]})
    return out


def _chat_assistant(message: Message) -> list[JSON]:
    text = "".join(b.text for b in message.blocks if isinstance(b, TextBlock))
    calls = message.tool_calls
    if not text and not calls:
        return []
    out: JSON = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": tool_arguments(c)}}
            for c in calls
        ]
    return [out]


def _response_items(turn: Turn) -> list[JSON]:
    if turn.message is not None:
        return _response_assistant(turn.message)
    results, texts = split_parts(turn.parts)
    out: list[JSON] = [
        {"type": "function_call_output", "call_id": r.tool_call_id, "output": r.content} for r in results
    ]
    out.extend({"role": "user", "content": t.text} for t in texts)
    return out


def _response_assistant(message: Message) -> list[JSON]:
    out: list[JSON] = []
    text: list[str] = []  # consecutive text blocks of one phase make one assistant message
    phase: str | None = None

    def flush() -> None:
        if "".join(text):
            item: JSON = {"role": "assistant", "content": "".join(text)}
            if phase is not None:
                item["phase"] = phase  # OpenAI asks for it back on every assistant message
            out.append(item)
        text.clear()

    for block in message.blocks:
        if isinstance(block, TextBlock):
            if block.phase != phase:
                flush()
                phase = block.phase
            text.append(block.text)
        elif isinstance(block, ToolCall):
            flush()
            out.append(_function_call(block))
    flush()
    return out


def _function_call(call: ToolCall) -> JSON:
    return {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": tool_arguments(call)}
