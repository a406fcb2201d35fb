"""The Gemini ``generateContent`` request (Gemini API and Vertex AI): written as google-genai sends it,
read, checked, and Google's errors.

The body's shapes and key order are those of the SDK's own conversion, quirks included: function
declarations carry ``parameters_json_schema`` and the thinking config keeps its snake_case keys (Google's
JSON parser takes both spellings). Per-tool eager streaming has no Gemini API equivalent (argument
streaming exists on Vertex AI only), so ``eager`` is ignored. Replaying an assistant turn:
``[ThinkingBlock(signature=S), X]`` means ``S`` travels on the first part of ``X`` (or on an empty text
part when nothing follows), exactly where Gemini sent it; thought text goes back as ``thought: true``
parts. Call ids that midstream made up (Gemini sent none) are not sent back.

Google's JSON accepts every field in camelCase or snake_case; both are read. Errors are
``{"error": {"code", "message", "status", "details"?}}``; a rate limit says how long to wait in the body,
as a ``google.rpc.RetryInfo`` detail (``"retryDelay": "19s"``), which is where Google's clients look.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.message import Message, ServerToolBlock, TextBlock, ThinkingBlock, ToolCall, UnknownBlock
from midstream.request import ChatRequest, ToolSpec, Turn
from midstream.wire._gemini_parts import synthetic_call_id
from midstream.wire.request import (
    JSON,
    Answering,
    OfferedTool,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    ToolChoice,
    check_names,
    check_schemas,
    field_of,
    kind_status,
    lower_types,
    replays_native,
    result_name,
    schema_problem,
    split_parts,
    stream_error_kind,
    stream_message,
    text_of,
    tool_input,
    tool_names,
)

__all__ = ["REQUEST", "STATUS_NAMES", "retry_info", "write"]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""An HTTP status -> the ``google.rpc.Code`` name Google's error bodies carry with it."""

_MODES = {"AUTO": "auto", "ANY": "required", "VALIDATED": "auto", "NONE": "none"}
_JSON_TYPES = ("application/json",)


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently (the model comes from the URL, the caller's to set)."""
    view = RequestView(model="sim-model")
    config = field_of(body, "generationConfig") or {}
    view.max_tokens = field_of(config, "maxOutputTokens")
    view.thinking = bool(field_of(field_of(config, "thinkingConfig"), "includeThoughts"))
    view.output = _output(config)
    calling = field_of(field_of(body, "toolConfig"), "functionCallingConfig")
    view.partial_args = bool(field_of(calling, "streamFunctionCallArguments"))
    view.tool_choice = _choice(calling)
    for tool in body.get("tools") or []:
        for fn in field_of(tool, "functionDeclarations") or []:
            schema = field_of(fn, "parametersJsonSchema") or fn.get("parameters") or {}
            view.tools.append(OfferedTool(fn["name"], lower_types(schema)))
    for content in body.get("contents") or []:
        parts = content.get("parts") or []
        if content.get("role") == "model":
            view.assistant_turns += 1
            calls = [field_of(p, "functionCall") for p in parts if field_of(p, "functionCall")]
            view.called_tools += [c["name"] for c in calls if isinstance(c.get("name"), str)]
            continue
        results = [field_of(p, "functionResponse") for p in parts if field_of(p, "functionResponse")]
        texts = [p.get("text", "") for p in parts if "text" in p]
        view.last_tool_result = text_of(results[-1].get("response")) if results else None
        view.last_user = "".join(texts) if texts else view.last_user
    view.conversation = body.get("contents")
    return view


def _choice(calling: Any) -> ToolChoice:
    mode = _MODES.get(str(field_of(calling, "mode") or "AUTO").upper(), "auto")
    names = field_of(calling, "allowedFunctionNames") or []
    return ToolChoice(mode, tuple(n for n in names if isinstance(n, str)))  # type: ignore[arg-type]


def _output(config: Any) -> OutputFormat | None:
    if field_of(config, "responseMimeType") not in _JSON_TYPES:
        return None
    schema = field_of(config, "responseJsonSchema") or field_of(config, "responseSchema")
    return OutputFormat(lower_types(schema) if isinstance(schema, dict) else None)


def _invalid(path: str, message: str) -> RequestRejected:
    return RequestRejected(f"* GenerateContentRequest.{path}: {message}\n")


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what ``generateContent`` refuses (see the simulator's validation table)."""
    contents = body.get("contents")
    if not contents:
        raise _invalid("contents", "contents is not specified")
    if not isinstance(contents, list):
        raise RequestRejected(
            'Invalid JSON payload received. Unknown name "contents": '
            "Proto field is not repeating, cannot start list."
        )
    config = field_of(body, "generationConfig") or {}
    limit = field_of(config, "maxOutputTokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise RequestRejected(
            f"Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), {limit!r}"
        )
    has_schema = field_of(config, "responseSchema") or field_of(config, "responseJsonSchema")
    mime = field_of(config, "responseMimeType")
    if has_schema and mime not in (*_JSON_TYPES, "text/x.enum"):
        raise _invalid(
            "generation_config.response_mime_type",
            "response_mime_type must be one of ['application/json', 'text/x.enum'] "
            "when response_schema is set.",
        )
    calling = field_of(field_of(body, "toolConfig"), "functionCallingConfig")
    mode = str(field_of(calling, "mode") or "AUTO").upper()
    if field_of(calling, "allowedFunctionNames") and mode not in ("ANY", "VALIDATED"):
        raise _invalid(
            "tool_config.function_calling_config.allowed_function_names",
            "allowed_function_names should only be set when the mode is ANY.",
        )
    check_names(
        view.tool_choice,
        view,
        lambda n: _invalid(
            "tool_config.function_calling_config", f"function {n!r} is not declared in tools."
        ),
    )
    check_schemas(
        view, lambda i, name, problem: _invalid(f"tools[0].function_declarations[{i}].parameters", problem)
    )
    if view.output is not None and view.output.schema is not None:
        problem = schema_problem(view.output.schema)
        if problem is not None:
            raise _invalid("generation_config.response_schema", problem)


def retry_info(delay: float) -> dict[str, Any]:
    """A ``google.rpc.RetryInfo`` detail: how long to wait, as Google writes a Duration (``"19s"``)."""
    seconds = f"{delay:.3f}".rstrip("0").rstrip(".")
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}


def _error(code: int, message: str, retry_delay: float | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": STATUS_NAMES.get(code, "INTERNAL")}
    if retry_delay is not None:
        error["details"] = [retry_info(retry_delay)]
    return {"error": error}


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``{"error": {"code", "message", "status"}}``, with a RetryInfo detail when a delay is given."""
    return _error(status, message, retry_delay), {}


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """The error object Gemini ends a failed stream with (the encoder picks its framing)."""
    status = kind_status(kind)
    message = stream_message(kind)
    raw = _error(status, message, retry_delay)
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=status, raw=raw
    )


def not_found(method: str, path: str) -> str:
    """Google's message for an unknown route."""
    return f"Method not found: {method} {path}"


def encoder_options(view: RequestView, answering: Answering) -> dict[str, Any]:
    """The framing (``alt=sse`` or a JSON array), Vertex's partial arguments, the error form asked for."""
    framing = answering.api or "sse"
    return {
        "framing": framing,
        "partial_args": view.partial_args,
        "error_shape": answering.error_form or "raw",
    }


# -- writing -----------------------------------------------------------------------------------------


DIALECT = "gemini"


def write(request: ChatRequest, *, stream: bool = True) -> JSON:
    """The JSON body for ``request`` (streamed or not is said by the URL, not here)."""
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


def path_model(model: str) -> str:
    """The model as Gemini's paths carry it: ``models/`` dropped, the rest as given (google-genai's way)."""
    return model.removeprefix("models/")


REQUEST = RequestDialect(
    write=write,
    path_model=path_model,
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    not_found=not_found,
    encoder_options=encoder_options,
)
