"""The OpenAI Chat Completions request: written as the official SDK sends it (also for OpenAI-compatible
servers), read, checked as the API checks it, and OpenAI's error bodies.

Key order follows the official SDK (``model``, ``stream``, then the rest as its ``create`` lists them).
Reasoning is not replayed: Chat Completions has no place for it. A thinking budget becomes a reasoning
effort (``low`` under 2048 tokens, ``medium`` under 16384, else ``high``).

The error shape, ``{"error": {"message", "type", "param", "code"}}``, is shared with the Responses API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.message import Message, TextBlock
from midstream.request import ChatRequest, ToolSpec, Turn
from midstream.wire.request import (
    JSON,
    Answering,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    ToolChoice,
    chat_messages,
    check_names,
    check_schemas,
    effort,
    function_tools,
    is_int,
    schema_problem,
    split_parts,
    stream_error_kind,
    text_of,
    tool_arguments,
)

__all__ = [
    "REQUEST",
    "below_minimum",
    "choice_of",
    "error_body",
    "function_spec",
    "missing",
    "rejection",
    "stream_error",
    "tool_choice",
    "write",
]

SERVER_MESSAGE = (
    "The server had an error while processing your request. Sorry about that! You can retry your request."
)
"""What OpenAI says for any failure on its side."""


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently: fields of the wrong shape are ignored (``check`` refuses them)."""
    view = RequestView(model=str(body.get("model") or "sim-model"), stream=bool(body.get("stream", False)))
    view.max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    view.tools = function_tools(body.get("tools"))
    view.tool_choice = choice_of(body.get("tool_choice"))
    view.output = _output(body.get("response_format"))
    options = body.get("stream_options") or {}
    view.include_usage = bool(options.get("include_usage"))
    view.obfuscation = options.get("include_obfuscation", True) is not False
    chat_messages(body.get("messages"), view)
    view.conversation = body.get("messages")
    return view


def choice_of(value: Any) -> ToolChoice:
    """``tool_choice`` in Chat's and Responses' shapes: a mode string, a named function, allowed tools."""
    if value in ("auto", "required", "none"):
        return ToolChoice(value)
    if not isinstance(value, dict):
        return ToolChoice()
    if value.get("type") == "allowed_tools":
        # Chat nests the list (``allowed_tools: {mode, tools}``); Responses does not.
        nested = value.get("allowed_tools")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else value
        mode = "required" if inner.get("mode") == "required" else "auto"
        names = tuple(_name(t) for t in inner.get("tools") or [] if _name(t))
        return ToolChoice(mode, names)  # type: ignore[arg-type]
    name = _name(value)
    return ToolChoice("required", (name,)) if name else ToolChoice()


def _name(tool: Any) -> str:
    if not isinstance(tool, dict):
        return ""
    nested = tool.get("function")
    fn: dict[str, Any] = nested if isinstance(nested, dict) else tool
    name = fn.get("name")
    return name if isinstance(name, str) else ""


def _output(fmt: Any) -> OutputFormat | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return OutputFormat(None)
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return OutputFormat(schema if isinstance(schema, dict) else None)
    return None


def missing(name: str) -> RequestRejected:
    """OpenAI's error for a required parameter that is absent."""
    return RequestRejected(
        f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
    )


def below_minimum(name: str, minimum: int, got: Any) -> RequestRejected:
    """OpenAI's error for an integer below its minimum."""
    message = (
        f"Invalid '{name}': integer below minimum value. "
        f"Expected a value >= {minimum}, but got {got} instead."
    )
    return RequestRejected(message, param=name, code="integer_below_min_value")


def wrong_type(name: str, expected: str, got: Any) -> RequestRejected:
    """OpenAI's error for a parameter of the wrong JSON type."""
    kinds = {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string", list: "an array"}
    shown = kinds.get(type(got), "an object")
    message = f"Invalid type for '{name}': expected {expected}, but got {shown} instead."
    return RequestRejected(message, param=name, code="invalid_type")


def check_tool_choice(body: dict[str, Any], view: RequestView, *, flat: bool) -> None:
    """``tool_choice`` needs ``tools``, and names only offered tools (Chat and Responses alike)."""
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str) and choice not in ("auto", "required", "none"):
        message = f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'."
        raise RequestRejected(message, param="tool_choice", code="invalid_value")
    if not body.get("tools") and choice != "none":
        message = "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
        raise RequestRejected(message, param="tool_choice")

    def unknown(name: str) -> RequestRejected:
        where = "tool_choice.name" if flat else "tool_choice.function.name"
        message = (
            f"Invalid value for '{where}': no function named '{name}' was specified in the 'tools' parameter."
        )
        return RequestRejected(message, param=where, code="invalid_value")

    check_names(view.tool_choice, view, unknown)
    prefix = "tools[{}].parameters" if flat else "tools[{}].function.parameters"

    def bad_schema(index: int, name: str, problem: str) -> RequestRejected:
        message = f"Invalid schema for function '{name}': {problem}."
        return RequestRejected(message, param=prefix.format(index), code="invalid_function_parameters")

    check_schemas(view, bad_schema)
    if view.output is not None and view.output.schema is not None:
        problem = schema_problem(view.output.schema)
        if problem is not None:
            where = "text.format.schema" if flat else "response_format.json_schema.schema"
            message = f"Invalid schema for response_format: {problem}."
            raise RequestRejected(message, param=where, code="invalid_json_schema")


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what Chat Completions refuses (see the simulator's validation table)."""
    if "model" not in body:
        raise RequestRejected("you must provide a model parameter")
    if "messages" not in body:
        raise missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array", messages)
    if not messages:
        message = (
            "Invalid 'messages': empty array. "
            "Expected an array with minimum length 1, but got an empty array instead."
        )
        raise RequestRejected(message, param="messages", code="empty_array")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and not is_int(value):
            raise wrong_type(name, "an integer", value)
        if value is not None and value < 1:
            raise below_minimum(name, 1, value)
    check_tool_choice(body, view, flat=False)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or "name" not in spec:
            raise missing("response_format.json_schema.name")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object" and "json" not in text_of(messages).lower():
        message = (
            "'messages' must contain the word 'json' in some form, "
            "to use 'response_format' of type 'json_object'."
        )
        raise RequestRejected(message, param="messages")


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    if kind == "rate_limited":
        error_type, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        error_type, code = "server_error", None
    elif status == 404:
        error_type, code = "invalid_request_error", "unknown_url" if kind == "not_found" else None
    else:
        error_type, code = "invalid_request_error", None
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}, {}


def rejection(error: RequestRejected, request_id: str) -> dict[str, Any]:
    """A refused request, with the parameter at fault and OpenAI's code."""
    return {
        "error": {
            "message": error.message,
            "type": "invalid_request_error",
            "param": error.param,
            "code": error.code,
        }
    }


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """``data: {"error": {...}}`` in the stream."""
    message = "Rate limit exceeded" if kind == "rate_limited" else SERVER_MESSAGE
    error_type = "rate_limit_exceeded" if kind == "rate_limited" else "server_error"
    raw = {"message": message, "type": error_type, "param": None, "code": None}
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=None, raw=raw
    )


def not_found(method: str, path: str) -> str:
    """OpenAI's message for an unknown route."""
    return f"Invalid URL ({method} {path})"


def encoder_options(view: RequestView, answering: Answering) -> dict[str, Any]:
    """The usage chunk as ``stream_options`` asks, the creation time; no padding when it is turned off."""
    options: dict[str, Any] = {"include_usage": view.include_usage, "created": int(answering.now.timestamp())}
    if not view.obfuscation:
        options["realism"] = False
    return options


# -- writing -----------------------------------------------------------------------------------------


def write(request: ChatRequest, *, stream: bool, compatible: bool = False) -> JSON:
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
        out["tool_choice"] = tool_choice(request.tool_choice, nested=True)
    if request.tools:
        out["tools"] = [{"type": "function", "function": function_spec(spec)} for spec in request.tools]
    return out


def function_spec(spec: ToolSpec) -> JSON:
    """A tool as OpenAI's ``function`` object (Chat nests it, Responses spreads it)."""
    fn: JSON = {"name": spec.name}
    if spec.description:
        fn["description"] = spec.description
    fn["parameters"] = spec.input_schema
    return fn


def tool_choice(choice: str, *, nested: bool) -> str | JSON:
    """``tool_choice`` as OpenAI takes it: a mode, or one function forced (Chat nests its name under
    ``function``, Responses does not)."""
    if choice in ("auto", "none"):
        return choice
    if choice == "any":
        return "required"
    named: JSON = {"function": {"name": choice}} if nested else {"name": choice}
    return {"type": "function", **named}


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


REQUEST = RequestDialect(
    write=write,
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    not_found=not_found,
    rejection=rejection,
    encoder_options=encoder_options,
)
