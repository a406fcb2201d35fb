"""One request model for every provider: what is asked, as :mod:`midstream.message` is what is answered.

A :class:`ChatRequest` says what to ask, independent of who is asked: the conversation (user text,
earlier assistant :class:`~midstream.message.Message` objects, tool results), a system prompt, tools,
the output budget and thinking. Each wire dialect writes it as its provider's request body
(:attr:`midstream.wire.request.RequestDialect.write`), and :mod:`midstream.client.providers` adds the
URL, headers and credentials. These are plain data: pydantic is imported only by the constructors that
describe a pydantic model or a typed function (:meth:`ToolSpec.from_model`, :meth:`ToolSpec.from_function`).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from midstream.errors import LocalError
from midstream.message import Message

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "TOOL_KINDS",
    "ChatRequest",
    "ToolResult",
    "ToolSpec",
    "Turn",
    "UserText",
    "as_turns",
    "coerce_tools",
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its name, description, JSON schema, and whether to stream eagerly.

    ``eager=True`` asks for fine-grained (unbuffered, possibly invalid) argument streaming where the
    provider supports it (Anthropic's ``eager_input_streaming``).

    Example:

        >>> def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.\"\"\"
        ...     return "sunny"
        >>> spec = midstream.ToolSpec.from_function(get_weather)
        >>> spec.name, spec.description, spec.input_schema["required"]
        ('get_weather', 'Weather in a city.', ['city'])
    """

    name: str
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    description: str = ""
    eager: bool = False

    @classmethod
    def from_model(cls, model: type[BaseModel], *, name: str | None = None, eager: bool = False) -> ToolSpec:
        """A tool whose input is a pydantic model (its JSON schema and docstring)."""
        schema = model.model_json_schema()
        schema.pop("title", None)
        description = inspect.getdoc(model) or ""
        return cls(name or model.__name__, schema, description, eager)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, eager: bool = False) -> ToolSpec:
        """A tool from a typed function: parameters become the schema, the docstring the description."""
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise LocalError(f"tool {fn.__name__}: *args / **kwargs cannot be described as a schema")
            annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, default)
        from pydantic import create_model

        # One model for all parameters, so shared definitions land in one top-level "$defs".
        model = create_model(f"{fn.__name__}_arguments", **fields)
        generated = model.model_json_schema()
        properties = generated.get("properties", {})
        for prop in properties.values():
            prop.pop("title", None)
            if "default" in prop:
                prop["default"] = prop.pop("default")  # after the type, as hand-written schemas have it
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if generated.get("required"):
            schema["required"] = generated["required"]
        if "$defs" in generated:
            schema["$defs"] = generated["$defs"]
        return cls(fn.__name__, schema, inspect.getdoc(fn) or "", eager)

    @classmethod
    def coerce(cls, tool: Any) -> ToolSpec:
        """The spec of anything :data:`TOOL_KINDS` lists; a ``TypeError`` naming anything else.

        Example::

            ToolSpec.coerce({"name": "weather", "input_schema": {"type": "object"}}).name  # "weather"
        """
        if isinstance(tool, ToolSpec):
            return tool
        spec = getattr(tool, "spec", None)
        if isinstance(spec, ToolSpec):  # a midstream.Tool (the agent layer's), or anything shaped like it
            return spec
        if isinstance(tool, dict):
            return cls._from_dict(tool)
        if _is_model_class(tool):
            return cls.from_model(tool)
        if inspect.isroutine(tool):
            return cls.from_function(tool)
        if callable(tool) and not isinstance(tool, type):
            raise TypeError(
                f"cannot make a tool of a {type(tool).__name__} instance: it has no function name to "
                f"call it by; wrap it: midstream.tool(name=...)(obj.__call__). Accepted: {TOOL_KINDS}"
            )
        raise TypeError(f"cannot make a tool of {_describe(tool)}; accepted: {TOOL_KINDS}")

    @classmethod
    def _from_dict(cls, tool: dict[str, Any]) -> ToolSpec:
        """Anthropic's ``{name, input_schema}``, Gemini's ``{name, parameters}`` or OpenAI's
        ``{"type": "function", "function": {name, parameters}}``."""
        body = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise LocalError(f"a tool dict needs a name: {sorted(tool)!r} has none")
        schema = body.get("input_schema") or body.get("parameters") or {"type": "object", "properties": {}}
        eager = bool(body.get("eager", body.get("eager_input_streaming", False)))
        return cls(body["name"], schema, body.get("description", ""), eager)


def _is_model_class(value: Any) -> TypeGuard[type[BaseModel]]:
    """A pydantic model class (when pydantic was never imported, nothing can be one)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, type) and issubclass(value, pydantic.BaseModel)


TOOL_KINDS = (
    "a midstream.Tool, a typed function, a pydantic model class, or a JSON-schema dict "
    "({name, description, input_schema}, or OpenAI's {type: function, function: {...}})"
)
"""What every ``tools=`` argument accepts, in a list that may mix them."""


def _describe(value: Any) -> str:
    """``a str ('save')``: the type first, then a short repr (never a long one)."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"a {type(value).__name__} ({shown})"


def coerce_tools(tools: Any) -> tuple[ToolSpec, ...]:
    """Specs for a ``tools=`` argument: a list (or any iterable) of :data:`TOOL_KINDS`.

    A single tool given without the list is a ``TypeError`` that says so, not a confusing failure on
    whatever iterating over it yields.

    Example::

        coerce_tools([{"name": "a"}, {"name": "b"}])  # two ToolSpec
    """
    if isinstance(tools, dict | str | bytes | type) or callable(tools) or isinstance(tools, ToolSpec):
        raise TypeError(f"tools= takes a list of tools, not {_describe(tools)}: write tools=[...]")
    try:
        items = list(tools)
    except TypeError:
        raise TypeError(f"tools= takes a list of tools, not {_describe(tools)}") from None
    return tuple(ToolSpec.coerce(t) for t in items)


@dataclass(frozen=True, slots=True)
class UserText:
    """Text from the user."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of running a tool call, sent back to the model. ``is_error`` marks a failure.

    Example:

        >>> result = midstream.ToolResult("toolu_1", "18 °C and sunny", name="get_weather")
        >>> request = midstream.ChatRequest.create("m", ["Weather in Paris?", result])
        >>> [type(part).__name__ for part in request.turns[0].parts]
        ['UserText', 'ToolResult']
    """

    tool_call_id: str
    content: str
    name: str = ""  # Gemini and some OpenAI-compatible servers match results by tool name
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One conversation turn: the user's text and tool results, or an assistant Message."""

    role: Literal["user", "assistant"]
    parts: tuple[UserText | ToolResult, ...] = ()
    message: Message | None = None  # for assistant turns


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask a model, provider-neutral. Build one with :meth:`create`.

    Example:

        >>> request = midstream.ChatRequest.create("claude-sonnet-4-5", "Hello", max_tokens=200)
        >>> request.model, request.max_tokens, request.turns[0].role
        ('claude-sonnet-4-5', 200, 'user')
    """

    model: str
    turns: tuple[Turn, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    thinking_budget: int | None = None  # None: no extended thinking
    temperature: float | None = None
    tool_choice: Literal["auto", "any", "none"] | str | None = None  # a tool name forces that tool

    @classmethod
    def create(
        cls,
        model: str,
        messages: str | Sequence[Any],
        *,
        system: str | None = None,
        tools: Sequence[Any] = (),
        max_tokens: int = 1024,
        thinking_budget: int | None = None,
        temperature: float | None = None,
        tool_choice: str | None = None,
        eager: bool | None = None,
    ) -> ChatRequest:
        """Normalize friendly inputs: ``messages`` may be a prompt string or a list of turns.

        ``eager`` (when given) overrides every tool's own setting.
        """
        specs = coerce_tools(tools)
        if eager is not None:
            specs = tuple(ToolSpec(s.name, s.input_schema, s.description, eager) for s in specs)
        if max_tokens <= 0:
            raise LocalError("max_tokens must be positive")
        return cls(
            model=model,
            turns=as_turns(messages),
            system=system,
            tools=specs,
            max_tokens=max_tokens,
            thinking_budget=thinking_budget,
            temperature=temperature,
            tool_choice=tool_choice,
        )


def as_turns(messages: str | Sequence[Any]) -> tuple[Turn, ...]:
    """Turns from a prompt string, or a list of: strings (user text), ``{"role": "user", "content"}``
    dicts (content a string or a list of ``{"type": "text", "text"}`` parts),
    assistant :class:`Message` objects, :class:`ToolResult` objects and :class:`Turn` objects.

    Consecutive user items (text and tool results) merge into one user turn.
    """
    if isinstance(messages, str):
        return (Turn("user", (UserText(messages),)),)
    turns: list[Turn] = []
    pending: list[UserText | ToolResult] = []

    def flush() -> None:
        if pending:
            turns.append(Turn("user", tuple(pending)))
            pending.clear()

    for item in messages:
        if isinstance(item, Turn):
            flush()
            turns.append(item)
        elif isinstance(item, str):
            pending.append(UserText(item))
        elif isinstance(item, ToolResult):
            pending.append(item)
        elif isinstance(item, Message):
            flush()
            turns.append(Turn("assistant", message=item))
        elif isinstance(item, dict) and item.get("role") == "user":
            pending.extend(_user_texts(item.get("content")))
        else:
            raise LocalError(
                f"cannot use {item!r} as a message: give a str, a Message, a ToolResult, a Turn "
                "or a {'role': 'user', 'content': ...} dict"
            )
    flush()
    if not turns:
        raise LocalError("a request needs at least one message")
    return tuple(turns)


def _user_texts(content: Any) -> list[UserText]:
    """A user dict's ``content``: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return [UserText(content)]
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return [UserText(p["text"]) for p in content]
    # Only the type is named: sending a repr of the value to the model would be silent garbage.
    raise LocalError(
        f"a user message's content must be a str or a list of text parts, not {type(content).__name__}"
    )
