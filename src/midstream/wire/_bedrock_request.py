"""The Bedrock Converse request: written as boto3 sends it, read, checked with AWS's validation
messages, and AWS's error bodies.

The body is what boto3's ``converse_stream`` sends (botocore keeps the caller's key order, so the order
here is the one the docs list: ``messages``, ``system``, ``inferenceConfig``, ``toolConfig``,
``additionalModelRequestFields``). Thinking is requested the way Claude models on Bedrock take it
(``additionalModelRequestFields.thinking``). Converse has no "none" tool choice: tools stay offered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.message import Block, Message, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolCall
from midstream.request import ChatRequest, ToolSpec, Turn
from midstream.wire.request import (
    JSON,
    OfferedTool,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    ToolChoice,
    check_names,
    check_schemas,
    is_int,
    replays_native,
    split_parts,
    stream_error_kind,
    stream_message,
    text_of,
    tool_input,
)

__all__ = ["REQUEST", "write"]

_EXCEPTIONS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently (the model comes from the URL, the caller's to set)."""
    view = RequestView(model="sim-model")
    view.max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking") or extra.get("reasoning_config") or {}
    view.thinking = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    config = body.get("toolConfig") or {}
    for tool in config.get("tools") or []:
        spec = tool.get("toolSpec") or {}
        if "name" in spec:
            schema = (spec.get("inputSchema") or {}).get("json") or {}
            view.tools.append(OfferedTool(spec["name"], schema))
    view.tool_choice = _choice(config.get("toolChoice"))
    view.output = _output(body.get("outputConfig"))
    for message in body.get("messages") or []:
        blocks = message.get("content") or []
        if message.get("role") == "assistant":
            view.assistant_turns += 1
            view.called_tools += [b["toolUse"].get("name", "") for b in blocks if "toolUse" in b]
            continue
        results = [b["toolResult"] for b in blocks if "toolResult" in b]
        texts = [b["text"] for b in blocks if "text" in b]
        view.last_tool_result = text_of(results[-1].get("content")) if results else None
        view.last_user = "".join(texts) if texts else view.last_user
    view.conversation = body.get("messages")
    return view


def _choice(value: Any) -> ToolChoice:
    if not isinstance(value, dict):
        return ToolChoice()
    if "any" in value:
        return ToolChoice("required")
    tool = value.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("name"), str):
        return ToolChoice("required", (tool["name"],))
    return ToolChoice()


def _output(config: Any) -> OutputFormat | None:
    """``outputConfig.textFormat``: a JSON schema, sent as a JSON string."""
    fmt = config.get("textFormat") if isinstance(config, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = (fmt.get("structure") or {}).get("jsonSchema") if isinstance(fmt.get("structure"), dict) else None
    text = spec.get("schema") if isinstance(spec, dict) else None
    try:
        schema = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        schema = None
    return OutputFormat(schema if isinstance(schema, dict) else None)


def _constraint(value: Any, where: str, constraint: str) -> RequestRejected:
    """AWS's validation message for one failed constraint."""
    return RequestRejected(
        f"1 validation error detected: Value '{value}' at '{where}' "
        f"failed to satisfy constraint: {constraint}"
    )


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what Converse refuses (see the simulator's validation table)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected("The messages field is required and must contain at least one message.")
    if messages[0].get("role") != "user" if isinstance(messages[0], dict) else True:
        raise RequestRejected(
            "A conversation must start with a user message. "
            "Try again with a conversation that starts with a user message."
        )
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    if limit is not None and (not is_int(limit) or limit < 1):
        raise _constraint(
            limit, "inferenceConfig.maxTokens", "Member must have value greater than or equal to 1"
        )
    config = body.get("toolConfig")
    if isinstance(config, dict) and "toolChoice" in config and not config.get("tools"):
        raise _constraint("[]", "toolConfig.tools", "Member must have length greater than or equal to 1")
    check_names(
        view.tool_choice,
        view,
        lambda n: RequestRejected(f"The tool {n} in toolChoice is not defined in toolConfig.tools."),
    )
    fmt = (
        (body.get("outputConfig") or {}).get("textFormat")
        if isinstance(body.get("outputConfig"), dict)
        else None
    )
    if isinstance(fmt, dict) and view.output is not None and view.output.schema is None:
        raise RequestRejected("The provided JSON schema in outputConfig.textFormat is not valid JSON.")
    check_schemas(
        view,
        lambda i, name, problem: RequestRejected(
            f"The value at toolConfig.tools.{i}.toolSpec.inputSchema.json is invalid: {problem}"
        ),
    )


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``{"message": ...}``, the exception's name in ``x-amzn-errortype``."""
    name = _EXCEPTIONS.get(status, "InternalServerException")
    if kind == "not_found":
        name = "UnknownOperationException"
    return {"message": message}, {
        "x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    }


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """An exception frame (the encoder names it after the kind: ``throttlingException``, ...)."""
    message = stream_message(kind)
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=None, raw=None
    )


def not_found(method: str, path: str) -> str:
    """AWS's message for an unknown route."""
    return "Unknown operation"


# -- writing -----------------------------------------------------------------------------------------


DIALECT = "bedrock"


def write(request: ChatRequest, *, stream: bool = True) -> JSON:
    """The JSON body for ``request`` (the model id and whether to stream go in the URL, not here)."""
    out: JSON = {"messages": [m for turn in request.turns if (m := _message(turn)) is not None]}
    if request.system is not None:
        out["system"] = [{"text": request.system}]
    inference: JSON = {"maxTokens": request.max_tokens}
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    out["inferenceConfig"] = inference
    if request.tools:
        tool_config: JSON = {"tools": [_tool(spec) for spec in request.tools]}
        choice = _tool_choice(request.tool_choice)
        if choice is not None:
            tool_config["toolChoice"] = choice
        out["toolConfig"] = tool_config
    if request.thinking_budget is not None:
        thinking = {"type": "enabled", "budget_tokens": request.thinking_budget}
        out["additionalModelRequestFields"] = {"thinking": thinking}
    return out


def _tool(spec: ToolSpec) -> JSON:
    tool: JSON = {"name": spec.name}
    if spec.description:  # Bedrock rejects an empty description
        tool["description"] = spec.description
    tool["inputSchema"] = {"json": spec.input_schema}
    return {"toolSpec": tool}


def _tool_choice(choice: str | None) -> JSON | None:
    if choice is None or choice == "none":
        return None
    if choice in ("auto", "any"):
        return {choice: {}}
    return {"tool": {"name": choice}}


def _message(turn: Turn) -> JSON | None:
    if turn.message is not None:
        content = _assistant_content(turn.message)
        return {"role": "assistant", "content": content} if content else None
    results, texts = split_parts(turn.parts)
    blocks: list[JSON] = []
    for result in results:
        tool_result: JSON = {"toolUseId": result.tool_call_id, "content": [{"text": result.content}]}
        if result.is_error:
            tool_result["status"] = "error"
        blocks.append({"toolResult": tool_result})
    blocks.extend({"text": t.text} for t in texts)
    return {"role": "user", "content": blocks}


def _assistant_content(message: Message) -> list[JSON]:
    native = replays_native(message, DIALECT)
    return [b for block in message.blocks if (b := _block(block, native)) is not None]


def _block(block: Block, native: bool) -> JSON | None:
    if isinstance(block, TextBlock):
        return {"text": block.text} if block.text else None  # blank text is a validation error
    if isinstance(block, ToolCall):
        return {"toolUse": {"toolUseId": block.id, "name": block.name, "input": tool_input(block)}}
    if native and isinstance(block, ThinkingBlock) and block.signature is not None:
        reasoning = {"text": block.thinking, "signature": block.signature}
        return {"reasoningContent": {"reasoningText": reasoning}}
    if native and isinstance(block, RedactedThinkingBlock):
        return {"reasoningContent": {"redactedContent": block.data}}  # already base64, as received
    return None


REQUEST = RequestDialect(
    write=write, read=read, check=check, error_body=error_body, stream_error=stream_error, not_found=not_found
)
