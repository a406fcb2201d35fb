"""The OpenAI Responses request: written as the official SDK sends it, read, checked as the API checks
it; errors written as Chat's are.

Key order follows the official SDK. Reasoning is not replayed: a reasoning item needs the ``rs_`` id that
the event stream does not keep. A thinking budget becomes a reasoning effort, with ``summary: auto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.message import Message, TextBlock, ToolCall
from midstream.request import ChatRequest, Turn
from midstream.wire._openai_chat_request import (
    SERVER_MESSAGE,
    below_minimum,
    check_tool_choice,
    choice_of,
    error_body,
    function_spec,
    missing,
    not_found,
    rejection,
    tool_choice,
    wrong_type,
)
from midstream.wire.request import (
    JSON,
    Answering,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    effort,
    function_tools,
    is_int,
    split_parts,
    stream_error_kind,
    text_of,
    tool_arguments,
)

__all__ = ["MIN_OUTPUT_TOKENS", "REQUEST", "unknown_previous", "write"]

MIN_OUTPUT_TOKENS = 16
"""The smallest ``max_output_tokens`` the Responses API accepts (clients such as LiteLLM clamp to it)."""


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently: fields of the wrong shape are ignored (``check`` refuses them)."""
    view = RequestView(model=str(body.get("model") or "sim-model"), stream=bool(body.get("stream", False)))
    view.max_tokens = body.get("max_output_tokens")
    # Reasoning is streamed only as summaries, and only when a summary is asked for.
    view.thinking = bool((body.get("reasoning") or {}).get("summary"))
    view.obfuscation = (body.get("stream_options") or {}).get("include_obfuscation", True) is not False
    tools = body.get("tools") or []
    view.tools = function_tools([t for t in tools if isinstance(t, dict) and t.get("type") == "function"])
    view.tool_choice = choice_of(body.get("tool_choice"))
    view.output = _output((body.get("text") or {}).get("format"))
    previous = body.get("previous_response_id")
    view.previous_response_id = previous if isinstance(previous, str) else None
    view.store = body.get("store", True) is not False
    view.echo = {key: body[key] for key in ECHOED if body.get(key) is not None}
    items = body.get("input")
    view.conversation = items
    if isinstance(items, str):
        view.last_user = items
        return view
    in_assistant_turn = False
    for item in items if isinstance(items, list) else []:
        kind, role = item.get("type", "message"), item.get("role")
        speaking = kind in ("function_call", "reasoning") or role == "assistant"
        if speaking and not in_assistant_turn:
            view.assistant_turns += 1  # consecutive assistant items are one turn
        in_assistant_turn = speaking
        if kind == "function_call" and isinstance(item.get("name"), str):
            view.called_tools.append(item["name"])
        if kind == "function_call_output":
            view.last_tool_result = text_of(item.get("output"))
        elif role == "user":
            view.last_user, view.last_tool_result = text_of(item.get("content")), None
    return view


def _output(fmt: Any) -> OutputFormat | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return OutputFormat(None)
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return OutputFormat(schema if isinstance(schema, dict) else None)
    return None


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what the Responses API refuses (see the simulator's validation table)."""
    if "model" not in body:
        raise missing("model")
    value = body.get("max_output_tokens")
    if value is not None and not is_int(value):
        raise wrong_type("max_output_tokens", "an integer", value)
    if value is not None and value < MIN_OUTPUT_TOKENS:
        raise below_minimum("max_output_tokens", MIN_OUTPUT_TOKENS, value)
    items = body.get("input")
    if items is not None and not isinstance(items, str | list):
        raise wrong_type("input", "one of a string or an array", items)
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise wrong_type("previous_response_id", "a string", previous)
    check_tool_choice(body, view, flat=True)
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if "name" not in fmt:
            raise missing("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise missing("text.format.schema")


def unknown_previous(response_id: str) -> RequestRejected:
    """OpenAI's 400 for a ``previous_response_id`` it does not have (never stored, or forgotten)."""
    message = f"Previous response with id '{response_id}' not found."
    return RequestRejected(message, param="previous_response_id", code="previous_response_not_found")


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """``event: error`` with OpenAI's error fields (``response.failed`` follows, from the encoder)."""
    # OpenAI has no "overloaded" error type: an overloaded server says server_error.
    name = "rate_limit_exceeded" if kind == "rate_limited" else "server_error"
    message = "Rate limit exceeded" if kind == "rate_limited" else SERVER_MESSAGE
    raw = {"type": name, "code": name, "message": message, "param": None}
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=None, raw=raw
    )


ECHOED = (
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
)
"""The request parameters the response object repeats (as given, or the API's default when absent)."""


def encoder_options(view: RequestView, answering: Answering) -> dict[str, Any]:
    """The creation time of the response, and the request parameters it repeats."""
    return {"created_at": int(answering.now.timestamp()), "echo": view.echo}


# -- writing -----------------------------------------------------------------------------------------


def write(request: ChatRequest, *, stream: bool) -> JSON:
    """The Responses API body for ``request``."""
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
        out["tool_choice"] = tool_choice(request.tool_choice, nested=False)
    if request.tools:
        out["tools"] = [
            {"type": "function", **function_spec(spec), "strict": False} for spec in request.tools
        ]
    return out


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
