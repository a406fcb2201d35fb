"""The Ollama ``/api/chat`` and ``/api/generate`` request: read, checked, and Ollama's ``{"error": ...}``.

Ollama has no ``tool_choice``: the model decides. ``format`` is ``"json"`` (any JSON) or a JSON schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream.events import StreamError
from midstream.wire.request import (
    Answering,
    OutputFormat,
    RequestDialect,
    RequestRejected,
    RequestView,
    chat_messages,
    function_tools,
    stream_error_kind,
    stream_message,
)

__all__ = ["REQUEST"]


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


REQUEST = RequestDialect(
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    not_found=not_found,
    encoder_options=encoder_options,
)
