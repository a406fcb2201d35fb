"""The Ollama ``/api/chat`` and ``/api/generate`` request: written in the documented shape (and
ollama-python's key order), read, checked, and Ollama's ``{"error": ...}``.

Tool calls go back with their arguments as an object, tool results as ``role: "tool"`` messages naming
the tool (``tool_name``), thinking as the assistant message's ``thinking`` text. A thinking budget turns
thinking on (``think: true``); Ollama takes no budget, nor ``tool_choice`` or per-tool eager streaming
(calls arrive whole).

Ollama has no ``tool_choice``: the model decides. ``format`` is ``"json"`` (any JSON) or a JSON schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.message import Message, TextBlock, ThinkingBlock
from midstream.request import ChatRequest, Turn
from midstream.wire.request import (
    JSON,
    Answering,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    chat_messages,
    function_tools,
    replays_native,
    result_name,
    split_parts,
    stream_error_kind,
    stream_message,
    tool_input,
    tool_names,
)

__all__ = ["REQUEST", "write"]


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    """The request body, leniently: fields of the wrong shape are ignored (``check`` refuses them)."""
    # Ollama streams unless told not to.
    view = RequestView(
        model=str(body.get("model") or "sim-model"), stream=body.get("stream", True) is not False
    )
    view.max_tokens = (body.get("options") or {}).get("num_predict")
    view.thinking = bool(body.get("think"))
    view.tools = function_tools(body.get("tools"))
    fmt = body.get("format")
    if fmt == "json" or isinstance(fmt, dict):
        view.output = OutputFormat(fmt if isinstance(fmt, dict) else None)
    if "prompt" in body:  # /api/generate
        view.last_user = str(body.get("prompt") or "")
    chat_messages(body.get("messages"), view)
    view.conversation = body.get("messages") or body.get("prompt")
    return view


def check(body: dict[str, Any], view: RequestView) -> None:
    """Refuse what Ollama refuses (see the simulator's validation table)."""
    if not body.get("model"):
        raise RequestRejected("model is required")
    fmt = body.get("format")
    if fmt is not None and fmt != "" and fmt != "json" and not isinstance(fmt, dict):
        raise RequestRejected(f'invalid format: {fmt!r}; expected "json" or a valid JSON Schema')
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise RequestRejected(
            "json: cannot unmarshal into Go struct field ChatRequest.messages of type []api.Message"
        )


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``{"error": message}``."""
    return {"error": message}, {}


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """The ``{"error": ...}`` line that ends a failed stream."""
    message = stream_message(kind)
    return StreamError(
        error_kind=stream_error_kind(kind), message=message, retryable=True, status=None, raw=None
    )


def not_found(method: str, path: str) -> str:
    """Ollama's body for an unknown route is plain ``404 page not found``; its clients read ``error``."""
    return "404 page not found"


def encoder_options(view: RequestView, answering: Answering) -> dict[str, Any]:
    """The endpoint (``/api/chat`` or ``/api/generate``) and the time the lines carry."""
    return {"api": answering.api or "chat", "created_at": answering.now}


# -- writing -----------------------------------------------------------------------------------------


DIALECT = "ollama"


def write(request: ChatRequest, *, stream: bool) -> JSON:
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


REQUEST = RequestDialect(
    write=write,
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    not_found=not_found,
    encoder_options=encoder_options,
)
