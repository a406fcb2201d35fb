"""The request side of a dialect, as data: how a provider's request body is written, what it asks for,
and how the provider refuses one.

Each dialect module has a ``REQUEST`` (a :class:`RequestDialect`) built from its private
``_<dialect>_request`` module (reach it with :func:`midstream.wire.request_dialect`). It writes a
:class:`~midstream.request.ChatRequest` as the provider's request body, exactly as the official SDK
does (the client sends it); it reads a request body into a :class:`RequestView` (the conversation's
last user text and tool result, the tools offered, ``tool_choice``, the structured output asked for, the
output budget, ...), checks the body the way the provider validates it (raising :class:`RequestRejected`
with the provider's own message), and writes the provider's error bodies, mid-stream errors included.
The simulator answers every provider through these; nothing here does I/O.

>>> from midstream.wire import request_dialect
>>> view = request_dialect("openai-chat").read(
...     {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "none"}, {}
... )
>>> (view.last_user, view.tool_choice.mode)
('hi', 'none')
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from midstream.errors import ErrorKind, LocalError, RemoteError
from midstream.events import StreamError
from midstream.message import Message, ToolCall
from midstream.request import ChatRequest, ToolResult, UserText

__all__ = [
    "JSON",
    "Answering",
    "BodyWriter",
    "ChoiceMode",
    "OfferedTool",
    "OutputFormat",
    "RequestDialect",
    "RequestRejected",
    "RequestView",
    "ToolChoice",
    "compact_json",
    "field_of",
    "lower_types",
    "spaced_json",
    "text_of",
]

JSON = dict[str, Any]
"""A JSON object, as the body writers build it."""

ChoiceMode = Literal["auto", "required", "none"]
"""``auto``: the model may call a tool; ``required``: it must call one (of ``names`` when given);
``none``: it must not call any."""


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A request's ``tool_choice`` in every dialect's terms: a mode and the tools it allows (all if empty)."""

    mode: ChoiceMode = "auto"
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """Structured output asked for: JSON valid against ``schema`` (``None``: any JSON object)."""

    schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """A tool the request offers: its name, JSON schema and whether it asked for eager streaming."""

    name: str
    schema: dict[str, Any] = field(default_factory=dict)
    eager: bool = False


@dataclass(kw_only=True)
class RequestView:
    """A provider request, normalized: what an answer to it depends on."""

    model: str
    stream: bool = True
    last_user: str = ""
    last_tool_result: str | None = None
    assistant_turns: int = 0
    called_tools: list[str] = field(default_factory=list)
    tools: list[OfferedTool] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    output: OutputFormat | None = None
    max_tokens: int | None = None
    thinking: bool = False
    partial_args: bool = False  # Gemini on Vertex: streamFunctionCallArguments
    include_usage: bool = True  # OpenAI Chat: stream_options.include_usage
    obfuscation: bool = True  # OpenAI: stream_options.include_obfuscation
    prefill: str = ""  # Anthropic: a trailing assistant message the answer continues
    previous_response_id: str | None = None  # OpenAI Responses: the conversation so far, stored
    store: bool = False  # OpenAI Responses: keep this response for a later previous_response_id
    echo: dict[str, Any] = field(default_factory=dict)  # what the request set that its answer repeats
    conversation: Any = None  # what :func:`text_of` counts as the input
    input_tokens: int = 0  # the input's size, as the simulator counts tokens


class RequestRejected(RemoteError, ValueError):
    """A request body the provider refuses: ``status``, its message, and the parameter at fault.

    ``code`` is the provider's machine-readable code where it has one (OpenAI's ``param`` / ``code``).
    """

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code


@dataclass(frozen=True, slots=True)
class Answering:
    """How an answer is being written, besides the request: the endpoint (Ollama's ``chat`` or
    ``generate``, Gemini's ``sse`` or ``json-array`` framing), the mid-stream error form a fault asks
    for, and the time it is written at."""

    api: str | None
    error_form: str | None
    now: datetime


ErrorBody = Callable[[int, str, str, str, float | None], tuple[dict[str, Any], dict[str, str]]]
"""``(status, kind, message, request_id, retry_delay) -> (body, extra headers)``: an HTTP error in the
provider's shape; ``retry_delay`` (seconds) is said in the body by providers that say it there."""


BodyWriter = Callable[..., JSON]
"""``(request, *, stream, **options) -> body``: a :class:`~midstream.request.ChatRequest` as the provider's
JSON request body (``stream`` asks for a streamed answer; ``options`` are the provider profile's
:attr:`~midstream.wire.profiles.ProviderProfile.body_options`)."""


def _no_rejection(error: RequestRejected, request_id: str) -> dict[str, Any] | None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDialect:
    """The request side of one dialect (see the module docstring).

    ``write`` writes a :class:`~midstream.request.ChatRequest` as the provider's body (:data:`BodyWriter`);
    ``path_model`` is a model name as the provider's URL paths carry it (quoted by default).
    ``headers_read`` are the request headers ``read`` looks at (lower case): a server hands it those only.
    ``read`` is lenient (a field of the wrong shape is ignored); ``check`` raises
    :class:`RequestRejected` for what the provider refuses. ``error_body`` writes an HTTP error;
    ``rejection`` writes a :class:`RequestRejected` when the provider's body carries more than
    ``error_body`` can say (OpenAI's ``param`` and ``code``). ``stream_error`` is the mid-stream error of
    a kind (``overloaded``, ``rate_limited``, ``server``) as the dialect's encoder writes it;
    ``not_found`` is the body of a 404 for an unknown route. ``encoder_options`` are the dialect encoder's
    options an answer to the request needs (``realism: False`` where the request turns the provider's
    byte-level habits off, as OpenAI's ``include_obfuscation: false`` does).
    """

    write: BodyWriter
    read: Callable[[dict[str, Any], Mapping[str, str]], RequestView]
    check: Callable[[dict[str, Any], RequestView], None]
    error_body: ErrorBody
    stream_error: Callable[[str, str, float | None], StreamError]
    not_found: Callable[[str, str], str] = lambda method, path: f"Not Found: {method} {path}"
    rejection: Callable[[RequestRejected, str], dict[str, Any] | None] = _no_rejection
    encoder_options: Callable[[RequestView, Answering], dict[str, Any]] = lambda view, answering: {}
    path_model: Callable[[str], str] = lambda model: quote(model, safe="")
    headers_read: tuple[str, ...] = ()


# -- helpers the dialects share ---------------------------------------------------------------------

_STATUS_OF_KIND: dict[str, int] = {"overloaded": 503, "rate_limited": 429, "server": 500}


def kind_status(kind: str) -> int:
    """The HTTP-like status a provider's error object carries for an error ``kind``."""
    return _STATUS_OF_KIND.get(kind, 500)


_STREAM_MESSAGES = {"overloaded": "Overloaded", "rate_limited": "Rate limit exceeded"}


def stream_message(kind: str) -> str:
    """The message of a simulated mid-stream error of ``kind``, where the provider has no fixed one."""
    return _STREAM_MESSAGES.get(kind, "Internal server error")


def stream_error_kind(kind: str) -> ErrorKind:
    """The normalized kind of a simulated mid-stream error."""
    known: dict[str, ErrorKind] = {"overloaded": "overloaded", "rate_limited": "rate_limited"}
    return known.get(kind, "server")


def text_of(content: Any) -> str:
    """Plain text of a message content in any provider's shape (string, parts, blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("text", "output", "content", "result", "parts"):
            if key in content:
                return text_of(content[key])
        return json.dumps(content.get("json", content), ensure_ascii=False, sort_keys=True)
    if isinstance(content, list):
        return "".join(text_of(part) for part in content)
    return str(content)


_CAPITAL = re.compile(r"(?<!^)(?=[A-Z])")


def field_of(obj: Any, name: str) -> Any:
    """``obj[name]`` by its camelCase name or its snake_case twin (Google's JSON accepts both)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_CAPITAL.sub("_", name).lower())


def lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema as JSON Schema: types in lower case (``STRING`` is ``string``), keys
    in camelCase (Google accepts ``min_items`` for ``minItems``), ``nullable: true`` as a ``null`` type."""
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = _camel(key)
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in ("properties", "$defs", "definitions"):  # names of the user's, kept as they are
            out[key] = {k: lower_types(v) for k, v in value.items()} if isinstance(value, dict) else value
        else:
            out[key] = lower_types(value)
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest) if rest and head else key


def is_int(value: Any) -> bool:
    """A JSON integer (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_names(choice: ToolChoice, view: RequestView, reject: Callable[[str], RequestRejected]) -> None:
    """Every tool ``choice`` names is offered, or ``reject(name)`` is raised."""
    offered = {t.name for t in view.tools}
    for name in choice.names:
        if name not in offered:
            raise reject(name)


def chat_messages(messages: Any, view: RequestView) -> None:
    """Fold OpenAI-Chat-style ``messages`` (also Ollama's) into ``view``."""
    view.last_tool_result = None
    for message in messages if isinstance(messages, list) else []:
        role = message.get("role")
        if role == "assistant":
            view.assistant_turns += 1
            view.last_tool_result = None
            for call in message.get("tool_calls") or []:
                name = (call.get("function") or {}).get("name") if isinstance(call, dict) else None
                if isinstance(name, str):
                    view.called_tools.append(name)
        elif role == "tool":
            view.last_tool_result = text_of(message.get("content"))
        elif role == "user":
            view.last_user, view.last_tool_result = text_of(message.get("content")), None


def function_tools(tools: Any) -> list[OfferedTool]:
    """Function tools in OpenAI's shapes: ``{"type": "function", "function": {...}}`` or flat."""
    offers = []
    for tool in tools if isinstance(tools, list) else []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            schema = fn.get("parameters")
            offers.append(OfferedTool(fn["name"], schema if isinstance(schema, dict) else {}))
    return offers


_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED_SUBSCHEMAS = ("properties", "$defs", "definitions", "patternProperties")
_NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")


def schema_problem(schema: Any, path: str = "") -> str | None:
    """Why ``schema`` is not a JSON Schema (``None``: it is one, as far as its shape goes).

    Checks what every provider refuses: subschemas that are not objects (or booleans), unknown ``type``
    names, bounds that are not numbers, lengths that are not counts, ``required`` that is not a list of
    names. Keywords it does not know are left alone, as the providers leave them.
    """
    here = path or "schema"
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{here} must be an object or a boolean, not {type(schema).__name__}"
    kinds = schema.get("type", [])
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind not in _TYPES:
            return f"{here}.type: {kind!r} is not a JSON Schema type"
    for key in _NUMBERS:
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], int | float)):
            return f"{here}.{key} must be a number"
    for key in _COUNTS:
        if key in schema and not (is_int(schema[key]) and schema[key] >= 0):
            return f"{here}.{key} must be a non-negative integer"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        return f"{here}.required must be a list of property names"
    return _subschema_problem(schema, here)


def _subschema_problem(schema: dict[str, Any], here: str) -> str | None:
    found: list[tuple[str, Any]] = []
    for key in _SUBSCHEMA:
        if key in schema and not isinstance(schema[key], list):
            found.append((f"{here}.{key}", schema[key]))
    for key in _SUBSCHEMAS:
        if key in schema:
            if not isinstance(schema[key], list):
                return f"{here}.{key} must be a list of schemas"
            found += [(f"{here}.{key}[{i}]", sub) for i, sub in enumerate(schema[key])]
    for key in _NAMED_SUBSCHEMAS:
        if key in schema:
            if not isinstance(schema[key], dict):
                return f"{here}.{key} must be an object of schemas"
            found += [(f"{here}.{key}.{name}", sub) for name, sub in schema[key].items()]
    for where, sub in found:
        problem = schema_problem(sub, where)
        if problem is not None:
            return problem
    return None


def check_schemas(view: RequestView, reject: Callable[[int, str, str], RequestRejected]) -> None:
    """Every offered tool's schema is a JSON Schema, or ``reject(index, name, problem)`` is raised."""
    for index, tool in enumerate(view.tools):
        problem = schema_problem(tool.schema)
        if problem is not None:
            raise reject(index, tool.name, problem)


# -- writing request bodies ---------------------------------------------------------------------------


def compact_json(obj: Any) -> bytes:
    """JSON as the Stainless SDKs (anthropic, openai) and httpx write it: no spaces, raw UTF-8.

    Raises :class:`~midstream.errors.LocalError` for what JSON cannot carry (NaN, a set, ...).
    """
    return _dumps(obj, ensure_ascii=False, separators=(",", ":"))


def spaced_json(obj: Any) -> bytes:
    """JSON as ``json.dumps`` writes it by default (google-genai, botocore): ASCII, ``", "``, ``": "``.

    Raises :class:`~midstream.errors.LocalError` for what JSON cannot carry.
    """
    return _dumps(obj)


def _dumps(obj: Any, **options: Any) -> bytes:
    try:
        return json.dumps(obj, allow_nan=False, **options).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # The caller's values (a tool schema, a temperature) are at fault; json's message names no value.
        raise LocalError(f"the request cannot be sent as JSON: {exc}") from exc


def replays_native(message: Message, dialect: str) -> bool:
    """Whether ``message`` came from ``dialect``, so its provider-specific blocks may be sent back.

    Thinking signatures, redacted reasoning and server-tool blocks are only meaningful to the provider
    that produced them; a Message from another provider contributes its text and tool calls only.
    """
    return message.provider == dialect


def tool_input(call: ToolCall) -> JSON:
    """The arguments object of ``call`` to echo back: the parsed input, or, for a call whose input was
    truncated or invalid, ``{"INVALID_JSON": raw}`` so the provider still gets a JSON object."""
    return call.input if call.input is not None else {"INVALID_JSON": call.raw_input}


def tool_arguments(call: ToolCall) -> str:
    """The arguments string to echo back where a provider wants text: exactly the text received when
    it parsed, otherwise the ``INVALID_JSON`` wrapping (as compact JSON)."""
    if call.input is None:
        return compact_json(tool_input(call)).decode()
    return call.raw_input or "{}"


def tool_names(request: ChatRequest) -> dict[str, str]:
    """Tool call id -> tool name, over every assistant turn (results that name no tool use these)."""
    names: dict[str, str] = {}
    for turn in request.turns:
        if turn.message is not None:
            names.update((call.id, call.name) for call in turn.message.tool_calls)
    return names


def result_name(result: ToolResult, names: dict[str, str]) -> str:
    """The tool name a result answers: its own, or the name of the call it references."""
    return result.name or names.get(result.tool_call_id, "")


def split_parts(parts: tuple[UserText | ToolResult, ...]) -> tuple[list[ToolResult], list[UserText]]:
    """A user turn's tool results and texts, each in order (providers want results first)."""
    results = [p for p in parts if isinstance(p, ToolResult)]
    texts = [p for p in parts if isinstance(p, UserText)]
    return results, texts


def effort(budget: int) -> str:
    """A thinking budget in tokens as an OpenAI reasoning effort (OpenAI takes no token budget)."""
    if budget < 2048:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"
