"""The Anthropic Messages request (``POST /v1/messages``): written as the official SDK sends it, read,
checked as the API checks it, and its error bodies.

The body's key order follows the SDK (``max_tokens``, ``messages``, ``model``, ... ``stream``, ``system``,
``thinking``, ``tool_choice``, ``tools``). The SDK no longer takes ``temperature``, so it is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
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
from midstream.request import ChatRequest, ToolSpec, Turn
from midstream.wire._anthropic_encoder import ERROR_TYPES
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
    schema_problem,
    split_parts,
    stream_error_kind,
    stream_message,
    text_of,
    tool_input,
)

__all__ = ["ERROR_TYPES", "FINE_GRAINED_BETA", "REQUEST", "write"]

DIALECT = "anthropic"

FINE_GRAINED_BETA = "fine-grained-tool-streaming-2025-05-14"

_CHOICES = {"auto": "auto", "any": "required", "tool": "required", "none": "none"}


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently: fields of the wrong shape are ignored (``check`` refuses them)."""
    view = RequestView(model=str(body.get("model") or "sim-model"), stream=bool(body.get("stream", False)))
    beta = FINE_GRAINED_BETA in headers.get("anthropic-beta", "")
    view.max_tokens = body.get("max_tokens")
    view.thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    view.tools = [
        OfferedTool(t["name"], t.get("input_schema") or {}, bool(t.get("eager_input_streaming")) or beta)
        for t in body.get("tools") or []
        if isinstance(t, dict) and "name" in t and "input_schema" in t
    ]
    view.tool_choice = _choice(body.get("tool_choice"))
    view.output = _output(body)
    messages = list(body.get("messages") or [])
    if len(messages) > 1 and messages[-1].get("role") == "assistant":
        # A prefill: the answer continues this text; it is not a turn of its own.
        view.prefill = text_of(messages.pop().get("content"))
    for message in messages:
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if message.get("role") == "assistant":
            view.assistant_turns += 1
            view.called_tools += [
                b["name"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"
            ]
            continue
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        view.last_tool_result = text_of(results[-1].get("content")) if results else None
        view.last_user = text_of(texts) if texts else view.last_user
    view.conversation = body.get("messages")
    return view


def _choice(value: Any) -> ToolChoice:
    if not isinstance(value, dict):
        return ToolChoice()
    mode = _CHOICES.get(str(value.get("type")), "auto")
    name = value.get("name") if value.get("type") == "tool" else None
    return ToolChoice(mode, (name,) if isinstance(name, str) else ())  # type: ignore[arg-type]


def _output(body: dict[str, Any]) -> OutputFormat | None:
    """Structured output: ``output_config.format`` (GA) or the beta's ``output_format``."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return OutputFormat(schema if isinstance(schema, dict) else None)
    return None


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what the Messages API refuses (see the simulator's validation table)."""
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise RequestRejected(f"{name}: Field required")
    if not isinstance(body["model"], str):
        raise RequestRejected("model: Input should be a valid string")
    if not is_int(body["max_tokens"]):
        raise RequestRejected("max_tokens: Input should be a valid integer")
    if body["max_tokens"] < 1:
        raise RequestRejected("max_tokens: Input should be greater than or equal to 1")
    if not isinstance(body["messages"], list):
        raise RequestRejected("messages: Input should be a valid list")
    if not body["messages"]:
        raise RequestRejected("messages: at least one message is required")
    budget = (
        (body.get("thinking") or {}).get("budget_tokens") if isinstance(body.get("thinking"), dict) else None
    )
    if is_int(budget) and budget >= body["max_tokens"]:
        raise RequestRejected("`max_tokens` must be greater than `thinking.budget_tokens`")
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in _CHOICES):
        raise RequestRejected(
            "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        )
    check_names(view.tool_choice, view, lambda n: RequestRejected(f"tool_choice: tool {n!r} is not in tools"))
    check_schemas(view, _bad_schema)
    if view.output is not None and view.output.schema is not None:
        problem = schema_problem(view.output.schema)
        if problem is not None:
            raise RequestRejected(f"output_config.format.schema: {problem}")


def _bad_schema(index: int, name: str, problem: str) -> RequestRejected:
    return RequestRejected(
        f"tools.{index}.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12 "
        f"(https://json-schema.org/draft/2020-12): {problem}"
    )


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``{"type": "error", "error": {...}, "request_id": ...}``."""
    error = {"type": ERROR_TYPES.get(kind, "api_error"), "message": message}
    return {"type": "error", "error": error, "request_id": request_id}, {}


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """An ``event: error`` in the stream, with the request id newer streams carry."""
    message = stream_message(kind)
    error = {"details": None, "type": ERROR_TYPES.get(kind, "api_error"), "message": message}
    raw = {"type": "error", "error": error, "request_id": request_id}
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=None, raw=raw
    )


def not_found(method: str, path: str) -> str:
    """Anthropic's message for an unknown route."""
    return "Not Found"


# -- writing -----------------------------------------------------------------------------------------


def write(request: ChatRequest, *, stream: bool) -> JSON:
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


REQUEST = RequestDialect(
    write=write,
    headers_read=("anthropic-beta",),
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    not_found=not_found,
)
