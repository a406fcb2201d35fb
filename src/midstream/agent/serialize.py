"""Lossless JSON (de)serialization of conversations: Messages, their blocks, turns and requests.

``X_from_dict(X_to_dict(x)) == x`` for every :class:`~midstream.message.Message` (every block type,
usage, stop reason, terminal state, the :class:`~midstream.events.StreamError` that failed it),
:class:`~midstream.client.request.Turn` (user text, tool results, assistant messages) and
:class:`~midstream.client.request.ChatRequest` (tools included), provided the provider-supplied
payloads inside them (citations, server-tool input and content, unknown blocks' data) are JSON values,
which they are when they were decoded from a stream. The dicts contain only JSON types.

:func:`to_dict` / :func:`from_dict` dispatch on a ``"type"`` tag for any of these objects; loading
malformed data raises :class:`SerializeError` naming where.

Example::

    text = json.dumps(to_dict(message))
    assert from_dict(json.loads(text)) == message
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from midstream.client.request import ChatRequest, ToolResult, ToolSpec, Turn, UserText
from midstream.errors import LocalError
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
    Usage,
)

__all__ = [
    "SerializeError",
    "block_from_dict",
    "block_to_dict",
    "from_dict",
    "message_from_dict",
    "message_to_dict",
    "request_from_dict",
    "request_to_dict",
    "to_dict",
    "turn_from_dict",
    "turn_to_dict",
    "usage_from_dict",
    "usage_to_dict",
]


_T = TypeVar("_T")


class SerializeError(LocalError, ValueError):
    """Data that does not describe the object it should (wrong type tag, missing or wrong field)."""


def usage_to_dict(usage: Usage) -> dict[str, int]:
    """The counts that are known (``None`` ones are left out)."""
    return {k: v for k, v in asdict(usage).items() if v is not None}


def usage_from_dict(data: Mapping[str, Any]) -> Usage:
    """The :class:`Usage` of :func:`usage_to_dict`."""
    return _guard("usage", lambda: Usage(**data))


# -- blocks -------------------------------------------------------------------------------------------


def block_to_dict(block: Block) -> dict[str, Any]:
    """``{"kind": <block kind>, <its fields>}``; tuples become lists."""
    out: dict[str, Any] = {"kind": block.kind}
    for name, value in asdict(block).items():
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _text(d: Mapping[str, Any]) -> Block:
    return TextBlock(
        text=d["text"],
        citations=tuple(d.get("citations", ())),
        complete=d.get("complete", True),
        phase=d.get("phase"),
    )


def _thinking(d: Mapping[str, Any]) -> Block:
    return ThinkingBlock(d["thinking"], d.get("signature"), d.get("complete", True))


def _redacted(d: Mapping[str, Any]) -> Block:
    return RedactedThinkingBlock(d["data"], d.get("complete", True))


def _tool_call(d: Mapping[str, Any]) -> Block:
    complete, error = d.get("complete", True), d.get("error")
    return ToolCall(
        id=d["id"],
        name=d["name"],
        raw_input=d["raw_input"],
        input=d.get("input"),
        complete=complete,
        error=error,
    )


def _server_tool(d: Mapping[str, Any]) -> Block:
    return ServerToolBlock(
        raw_type=d["raw_type"],
        id=d.get("id"),
        name=d.get("name"),
        raw_input=d.get("raw_input", ""),
        input=d.get("input"),
        content=d.get("content"),
        complete=d.get("complete", True),
    )


def _unknown(d: Mapping[str, Any]) -> Block:
    return UnknownBlock(
        raw_type=d["raw_type"],
        data=d.get("data"),
        complete=d.get("complete", True),
        deltas=tuple(d.get("deltas", ())),
    )


_BLOCKS: dict[str, Callable[[Mapping[str, Any]], Block]] = {
    "text": _text,
    "thinking": _thinking,
    "redacted_thinking": _redacted,
    "tool_call": _tool_call,
    "server_tool": _server_tool,
    "unknown": _unknown,
}


def block_from_dict(data: Mapping[str, Any]) -> Block:
    """The block of :func:`block_to_dict`."""
    kind = _field(data, "kind", "block")
    make = _BLOCKS.get(kind)
    if make is None:
        raise SerializeError(f"block: unknown kind {kind!r}")
    return _guard(f"{kind} block", lambda: make(data))


# -- messages -----------------------------------------------------------------------------------------


def _error_to_dict(error: Any) -> Any:
    if error is None:
        return None
    if isinstance(error, StreamError):
        out = {
            "stream_error": {
                "error_kind": error.error_kind,
                "message": error.message,
                "retryable": error.retryable,
                "status": error.status,
                "raw": error.raw,
            }
        }
        if error.seq is not None:
            out["stream_error"]["seq"] = error.seq
        return out
    return {"value": error}


def _error_from_dict(data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise SerializeError(f"message error: expected an object, got {type(data).__name__}")
    if "stream_error" in data:
        e = data["stream_error"]
        return _guard(
            "stream error",
            lambda: StreamError(
                error_kind=e["error_kind"],
                message=e["message"],
                retryable=e.get("retryable", False),
                status=e.get("status"),
                raw=e.get("raw"),
                seq=e.get("seq"),
            ),
        )
    return data.get("value")


def message_to_dict(message: Message) -> dict[str, Any]:
    """``{"type": "message", ...}`` with every field of ``message``."""
    return {
        "type": "message",
        "provider": message.provider,
        "id": message.id,
        "model": message.model,
        "blocks": [block_to_dict(b) for b in message.blocks],
        "stop_reason": message.stop_reason,
        "raw_stop_reason": message.raw_stop_reason,
        "usage": usage_to_dict(message.usage),
        "terminal": message.terminal,
        "error": _error_to_dict(message.error),
    }


def message_from_dict(data: Mapping[str, Any]) -> Message:
    """The :class:`Message` of :func:`message_to_dict`."""
    _expect(data, "message")
    blocks = tuple(block_from_dict(b) for b in _list(data, "blocks", "message"))
    return _guard(
        "message",
        lambda: Message(
            provider=data["provider"],
            id=data.get("id"),
            model=data.get("model"),
            blocks=blocks,
            stop_reason=data.get("stop_reason"),
            raw_stop_reason=data.get("raw_stop_reason"),
            usage=usage_from_dict(data.get("usage", {})),
            terminal=data.get("terminal", "truncated"),
            error=_error_from_dict(data.get("error")),
        ),
    )


# -- turns and requests -------------------------------------------------------------------------------


def _part_to_dict(part: UserText | ToolResult) -> dict[str, Any]:
    if isinstance(part, UserText):
        return {"type": "user_text", "text": part.text}
    return {
        "type": "tool_result",
        "tool_call_id": part.tool_call_id,
        "content": part.content,
        "name": part.name,
        "is_error": part.is_error,
    }


def _part_from_dict(data: Mapping[str, Any]) -> UserText | ToolResult:
    kind = _field(data, "type", "turn part")
    if kind == "user_text":
        return _guard("user text", lambda: UserText(data["text"]))
    if kind == "tool_result":
        return _guard(
            "tool result",
            lambda: ToolResult(
                data["tool_call_id"], data["content"], data.get("name", ""), data.get("is_error", False)
            ),
        )
    raise SerializeError(f"turn part: unknown type {kind!r}")


def turn_to_dict(turn: Turn) -> dict[str, Any]:
    """``{"type": "turn", "role", "parts", "message"}``."""
    return {
        "type": "turn",
        "role": turn.role,
        "parts": [_part_to_dict(p) for p in turn.parts],
        "message": None if turn.message is None else message_to_dict(turn.message),
    }


def turn_from_dict(data: Mapping[str, Any]) -> Turn:
    """The :class:`Turn` of :func:`turn_to_dict`."""
    _expect(data, "turn")
    role = _field(data, "role", "turn")
    if role not in ("user", "assistant"):
        raise SerializeError(f"turn: role must be user or assistant, got {role!r}")
    parts = tuple(_part_from_dict(p) for p in _list(data, "parts", "turn"))
    message = data.get("message")
    return Turn(role, parts, None if message is None else message_from_dict(message))


def _tool_to_dict(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "input_schema": spec.input_schema,
        "description": spec.description,
        "eager": spec.eager,
    }


def _tool_from_dict(data: Mapping[str, Any]) -> ToolSpec:
    return _guard(
        "tool",
        lambda: ToolSpec(
            data["name"], dict(data["input_schema"]), data.get("description", ""), data.get("eager", False)
        ),
    )


def request_to_dict(request: ChatRequest, *, turns: bool = True) -> dict[str, Any]:
    """``{"type": "request", ...}``; ``turns=False`` leaves the conversation out (a template)."""
    out: dict[str, Any] = {
        "type": "request",
        "model": request.model,
        "system": request.system,
        "tools": [_tool_to_dict(t) for t in request.tools],
        "max_tokens": request.max_tokens,
        "thinking_budget": request.thinking_budget,
        "temperature": request.temperature,
        "tool_choice": request.tool_choice,
    }
    if turns:
        out["turns"] = [turn_to_dict(t) for t in request.turns]
    return out


def request_from_dict(data: Mapping[str, Any], *, turns: tuple[Turn, ...] | None = None) -> ChatRequest:
    """The :class:`ChatRequest` of :func:`request_to_dict`; ``turns`` supplies them for a template."""
    _expect(data, "request")
    if turns is None:
        turns = tuple(turn_from_dict(t) for t in _list(data, "turns", "request"))
    tools = tuple(_tool_from_dict(t) for t in _list(data, "tools", "request"))
    return _guard(
        "request",
        lambda: ChatRequest(
            model=data["model"],
            turns=turns,
            system=data.get("system"),
            tools=tools,
            max_tokens=data.get("max_tokens", 1024),
            thinking_budget=data.get("thinking_budget"),
            temperature=data.get("temperature"),
            tool_choice=data.get("tool_choice"),
        ),
    )


# -- any of them --------------------------------------------------------------------------------------

Serializable = Message | Turn | ChatRequest | UserText | ToolResult


def to_dict(obj: Serializable) -> dict[str, Any]:
    """A tagged dict for a Message, Turn, ChatRequest, UserText or ToolResult."""
    if isinstance(obj, Message):
        return message_to_dict(obj)
    if isinstance(obj, Turn):
        return turn_to_dict(obj)
    if isinstance(obj, ChatRequest):
        return request_to_dict(obj)
    if isinstance(obj, UserText | ToolResult):
        return _part_to_dict(obj)
    raise SerializeError(f"cannot serialize {type(obj).__name__}")


def from_dict(data: Mapping[str, Any]) -> Serializable:
    """The object of :func:`to_dict`, by its ``"type"`` tag."""
    kind = _field(data, "type", "object")
    if kind == "message":
        return message_from_dict(data)
    if kind == "turn":
        return turn_from_dict(data)
    if kind == "request":
        return request_from_dict(data)
    return _part_from_dict(data)


# -- helpers ------------------------------------------------------------------------------------------


def _guard(what: str, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except SerializeError:
        raise
    except KeyError as exc:
        raise SerializeError(f"{what}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise SerializeError(f"{what}: {exc}") from None


def _field(data: Any, name: str, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise SerializeError(f"{what}: expected an object, got {type(data).__name__}")
    if name not in data:
        raise SerializeError(f"{what}: missing field {name!r}")
    return data[name]


def _expect(data: Any, kind: str) -> None:
    found = _field(data, "type", kind)
    if found != kind:
        raise SerializeError(f"expected type {kind!r}, got {found!r}")


def _list(data: Mapping[str, Any], name: str, what: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list | tuple):
        raise SerializeError(f"{what}: {name} must be a list, got {type(value).__name__}")
    return list(value)
