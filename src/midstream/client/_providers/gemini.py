"""Gemini API request bodies (``models/{model}:streamGenerateContent``), as google-genai sends them.

The shapes and key order are those of the SDK's own conversion, quirks included: function
declarations carry ``parameters_json_schema`` and the thinking config keeps its snake_case keys (Google's
JSON parser takes both spellings). Per-tool eager streaming has no Gemini API equivalent (argument
streaming exists on Vertex AI only), so ``eager`` is ignored here.

Replaying an assistant turn: ``[ThinkingBlock(signature=S), X]`` means ``S`` travels on the first part
of ``X`` (or on an empty text part when nothing follows), exactly where Gemini sent it; thought text goes
back as ``thought: true`` parts. Call ids that midstream made up (Gemini sent none) are not sent back.
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
from midstream.client.request import ChatRequest, ToolSpec, Turn
from midstream.message import (
    Message,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
)
from midstream.wire.gemini import synthetic_call_id

DIALECT = "gemini"
API_VERSION = "v1"  # google-genai's default for the Gemini API


def body(request: ChatRequest) -> JSON:
    """The JSON body for ``request``."""
    names, made_up = tool_names(request), _made_up_ids(request)
    contents = [_content(turn, names, made_up) for turn in request.turns]
    out: JSON = {"contents": [c for c in contents if c is not None]}
    if request.system is not None:
        out["systemInstruction"] = {"parts": [{"text": request.system}], "role": "user"}
    if request.tools:
        out["tools"] = [{"functionDeclarations": [_declaration(spec) for spec in request.tools]}]
    if request.tool_choice is not None:
        out["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    config: JSON = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    config["maxOutputTokens"] = request.max_tokens
    if request.thinking_budget is not None:
        config["thinkingConfig"] = {"include_thoughts": True, "thinking_budget": request.thinking_budget}
    out["generationConfig"] = config
    return out


def _declaration(spec: ToolSpec) -> JSON:
    declaration: JSON = {}
    if spec.description:
        declaration["description"] = spec.description
    declaration["name"] = spec.name
    declaration["parameters_json_schema"] = spec.input_schema
    return declaration


def _calling_config(choice: str) -> JSON:
    if choice in ("auto", "any", "none"):
        return {"mode": choice.upper()}
    return {"allowedFunctionNames": [choice], "mode": "ANY"}


def _made_up_ids(request: ChatRequest) -> set[str]:
    """Ids that midstream gave Gemini calls that had none: the API never saw them."""
    return {
        call.id
        for turn in request.turns
        if turn.message is not None
        for n, call in enumerate(turn.message.tool_calls)
        if call.id == synthetic_call_id(turn.message.id, n)
    }


def _content(turn: Turn, names: dict[str, str], made_up: set[str]) -> JSON | None:
    if turn.message is not None:
        parts = _model_parts(turn.message)
        return {"parts": parts, "role": "model"} if parts else None
    results, texts = split_parts(turn.parts)
    out: list[JSON] = []
    for result in results:
        response: JSON = {}
        if result.tool_call_id not in made_up:
            response["id"] = result.tool_call_id
        response["name"] = result_name(result, names)
        # Gemini reads "output" as the function's result and "error" as its failure.
        response["response"] = {"error" if result.is_error else "output": result.content}
        out.append({"functionResponse": response})
    out.extend({"text": t.text} for t in texts)
    return {"parts": out, "role": "user"}


def _model_parts(message: Message) -> list[JSON]:
    native = replays_native(message, DIALECT)
    parts: list[JSON] = []
    signature: str | None = None
    calls = 0
    for block in message.blocks:
        part: JSON | None = None
        if isinstance(block, ThinkingBlock):
            if native and block.thinking:
                parts.append({"text": block.thinking, "thought": True})
            if native and block.signature is not None:
                signature = block.signature
            continue
        if isinstance(block, TextBlock):
            part = {"text": block.text} if block.text or signature is not None else None
        elif isinstance(block, ToolCall):
            part = {"functionCall": _call(block, message.id, calls)}
            calls += 1
        elif native and isinstance(block, ServerToolBlock | UnknownBlock):
            part = {block.raw_type: block.content if isinstance(block, ServerToolBlock) else block.data}
        if part is not None:
            if signature is not None:
                part["thoughtSignature"] = signature
                signature = None
            parts.append(part)
    if signature is not None:
        parts.append({"text": "", "thoughtSignature": signature})
    return parts


def _call(call: ToolCall, response_id: str | None, n: int) -> JSON:
    out: JSON = {"args": tool_input(call)}
    if call.id != synthetic_call_id(response_id, n):
        out["id"] = call.id
    out["name"] = call.name
    return out
