"""Scenarios: what the simulator answers, chosen by rules on the request.

A scenario file (YAML or JSON) holds a list of scenarios::

    scenarios:
      - name: weather                      # also selectable with the header x-midstream-scenario
        match:                             # every rule given must hold (all optional)
          last_user: "(?i)weather"         # regex searched in the last user message
          tools: [get_weather]             # these tools are offered
          provider: [anthropic, openai-chat]
        latency: {ttft_ms: 300, tokens_per_second: 80, jitter: 0.2}
        faults: {error_after_events: 20, error: overloaded}
        turns:                             # turn n answers a conversation with n assistant turns
          - blocks:
              - thinking: "The user wants the weather."
              - text: "Let me check."
              - tool_call: {name: get_weather, input: {city: Paris}}
          - when_tool_result: "(?i)sunny"  # a turn can react to the tool results it is sent
            blocks: [{text: "It is sunny in Paris."}]
          - blocks: [{text: "I could not get the weather."}]

When no scenario matches, the simulator calls the first offered tool with arguments generated from its
schema (unless the request already carries tool results), or else answers in text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from midstream.config import validation_problems
from midstream.errors import LocalError
from midstream.sim.script import Latency, Part, TextPart, ThinkingPart, ToolPart
from midstream.wire.request import OfferedTool, OutputFormat, ToolChoice

__all__ = [
    "BlockSpec",
    "FaultSpec",
    "LatencySpec",
    "MatchSpec",
    "Problem",
    "Scenario",
    "ScenarioBook",
    "ScenarioError",
    "ToolOffer",
    "TurnSpec",
    "example_for_schema",
]


Problem = tuple[int | None, str, str]
"""One problem of a scenario file: its line (``None`` when unknown), key path and message."""


class ScenarioError(LocalError):
    """A scenario file or fault header that does not validate; the message says where.

    For a file, ``problems`` lists every :data:`Problem` and the message has one line per problem,
    ``FILE:LINE: key.path: message`` (the settings file's format), under a heading when there are
    several.
    """

    def __init__(self, message: str, *, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Problem] = problems or []

    @classmethod
    def in_file(cls, source: str, problems: list[Problem]) -> ScenarioError:
        """The error for ``problems`` found in the file ``source``."""
        lines = [
            f"{source}{f':{line}' if line else ''}: {f'{path}: ' if path else ''}{message}"
            for line, path, message in problems
        ]
        text = lines[0] if len(lines) == 1 else f"invalid scenario file {source}\n  " + "\n  ".join(lines)
        return cls(text, problems=problems)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str | None) -> str | None:
    """A pattern that compiles: a bad one is the file's error, not a crash on some later request."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression {value!r}: {exc}") from None
    return value


class ToolCallSpec(_Model):
    """A scripted tool call: ``input`` as an object, or ``raw`` JSON text (to script invalid input)."""

    name: str
    input: dict[str, Any] | None = None
    raw: str | None = None
    id: str | None = None


class BlockSpec(_Model):
    """Exactly one of ``text``, ``thinking`` (with optional ``signature``) or ``tool_call``.

    ``phase`` (with ``text``): the OpenAI Responses message phase, ``commentary`` or ``final_answer``,
    which the Responses endpoint sends on the message item (other providers have no such field).
    """

    text: str | None = None
    phase: Literal["commentary", "final_answer"] | None = None
    thinking: str | None = None
    signature: str | None = None
    tool_call: ToolCallSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> BlockSpec:
        given = [k for k in ("text", "thinking", "tool_call") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a block has exactly one of text, thinking, tool_call")
        return self


class TurnSpec(_Model):
    """One scripted answer. ``when_tool_result``: only when the last tool result matches this regex."""

    blocks: list[BlockSpec]
    when_tool_result: str | None = None

    _check_regex = field_validator("when_tool_result")(_regex)


class MatchSpec(_Model):
    """Rules on the request; every rule given must hold."""

    last_user: str | None = None
    tools: list[str] = Field(default_factory=list)
    provider: list[str] | None = None

    _check_regex = field_validator("last_user")(_regex)


class LatencySpec(_Model):
    """Time to first token (ms), tokens per second and jitter (fraction of each delay)."""

    ttft_ms: float = 300.0
    tokens_per_second: float = 80.0
    jitter: float = 0.2

    def latency(self, speed: float) -> Latency:
        """The script-level latency model at ``speed``."""
        return Latency(self.ttft_ms / 1000.0, self.tokens_per_second, self.jitter, speed)


_MAX_MS = 3_600_000  # an hour: longer waits are a typo, not a test
_MAX_COUNT = 1 << 40


class FaultSpec(_Model):
    """Faults to inject. HTTP faults apply to the first ``times`` requests of the scenario."""

    # Bounded: a value the server cannot act on is a 400 naming the key, never a dropped connection.
    http_status: int | None = Field(default=None, ge=400, le=599)  # an HTTP error status
    retry_after: str | None = Field(default=None, max_length=64)  # seconds or an HTTP date
    retry_after_ms: int | None = Field(default=None, ge=0, le=_MAX_MS)
    times: int = Field(default=1, ge=0, le=1_000_000)
    error_after_events: int | None = Field(default=None, ge=0, le=_MAX_COUNT)  # in the provider's shape
    error: Literal["overloaded", "rate_limited", "server"] = "overloaded"
    disconnect_after_bytes: int | None = Field(default=None, ge=0, le=_MAX_COUNT)
    stall_ms: int | None = Field(default=None, ge=0, le=_MAX_MS)
    stall_after_events: int = Field(default=1, ge=0, le=_MAX_COUNT)
    malformed_after_events: int | None = Field(default=None, ge=0, le=_MAX_COUNT)
    first_byte_delay_ms: int | None = Field(default=None, ge=0, le=_MAX_MS)
    error_form: Literal["raw", "data"] | None = None  # Gemini's mid-stream error: see the scenarios README

    def retry_delay(self) -> float | None:
        """The wait this fault asks clients for, in seconds (``retry_after_ms`` first), if any."""
        if self.retry_after_ms is not None:
            return self.retry_after_ms / 1000.0
        try:
            return float(self.retry_after) if self.retry_after is not None else None
        except ValueError:
            return None  # an HTTP date: said in the header only

    @classmethod
    def from_header(cls, value: str) -> FaultSpec:
        """Parse ``x-midstream-fault``: a JSON object, or ``key=value;key=value``."""
        value = value.strip()
        try:
            if value.startswith("{"):
                data = json.loads(value)
            else:
                data = dict(item.split("=", 1) for item in (p.strip() for p in value.split(";")) if item)
            return cls.model_validate(data)
        except (ValueError, ValidationError) as exc:
            raise ScenarioError(f"bad x-midstream-fault header {value!r}: {exc}") from exc


class Scenario(_Model):
    """A named, matchable script of turns, with optional latency and faults."""

    name: str
    match: MatchSpec = Field(default_factory=MatchSpec)
    turns: list[TurnSpec] = Field(min_length=1)
    latency: LatencySpec | None = None
    faults: FaultSpec | None = None


ToolOffer = OfferedTool
"""A tool the request offers: name, JSON schema, and whether it asked for eager streaming."""


class ScenarioBook(_Model):
    """All scenarios of a file, in order; the first match wins."""

    scenarios: list[Scenario] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> ScenarioBook:
        """Read a YAML (``.yaml``/``.yml``) or JSON scenario file, validated.

        Raises :class:`ScenarioError` with one line per problem: file, line, key path, message.
        """
        path = Path(path)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ScenarioError.in_file(source, [(None, "", f"cannot read the file: {reason}")]) from None
        data = _parse(text, path.suffix == ".json", source)
        try:
            return cls.model_validate({} if data is None else data)
        except ValidationError as exc:
            tree = _tree(text)
            problems = [(_line(tree, loc), key, msg) for loc, key, msg in validation_problems(exc)]
            raise ScenarioError.in_file(source, problems) from None

    def named(self, name: str) -> Scenario | None:
        """The scenario called ``name``."""
        return next((s for s in self.scenarios if s.name == name), None)

    def choose(self, provider: str, last_user: str, tools: list[ToolOffer]) -> Scenario | None:
        """The first scenario whose rules hold for this request, if any."""
        offered = {t.name for t in tools}
        for scenario in self.scenarios:
            rule = scenario.match
            if rule.provider is not None and provider not in rule.provider:
                continue
            if rule.last_user is not None and not re.search(rule.last_user, last_user):
                continue
            if not set(rule.tools) <= offered:
                continue
            return scenario
        return None


def pick_turn(scenario: Scenario, assistant_turns: int, last_tool_result: str | None) -> TurnSpec:
    """The turn answering a conversation that already has ``assistant_turns`` assistant turns.

    Turns with ``when_tool_result`` are candidates only when the last tool result matches; the rest
    are taken in order, the last one repeating.
    """
    if last_tool_result is not None:
        for turn in scenario.turns:
            if turn.when_tool_result is not None and re.search(turn.when_tool_result, last_tool_result):
                return turn
    plain = [t for t in scenario.turns if t.when_tool_result is None] or scenario.turns
    return plain[min(assistant_turns, len(plain) - 1)]


def parts_for(turn: TurnSpec, new_id: Any) -> list[Part]:
    """The script parts of a turn; ``new_id()`` names tool calls that the scenario left unnamed."""
    parts: list[Part] = []
    for block in turn.blocks:
        if block.text is not None:
            parts.append(TextPart(block.text, block.phase))
        elif block.thinking is not None:
            parts.append(ThinkingPart(block.thinking, block.signature))
        elif block.tool_call is not None:
            call = block.tool_call
            parts.append(ToolPart(call.id or new_id(), call.name, call.input or {}, call.raw))
    return parts


def default_parts(
    last_user: str,
    tools: list[OfferedTool],
    has_tool_result: bool,
    new_id: Any,
    *,
    choice: ToolChoice | None = None,
    output: OutputFormat | None = None,
    called: Sequence[str] = (),
) -> list[Part]:
    """What the simulator says when no scenario matches.

    With tools it may call (``choice``: all of them unless the request narrows it) and no tool result
    yet, it calls the first; when ``choice`` requires a call it calls the first allowed tool the
    conversation has not called yet (else the first allowed), with no text before it, even after a
    tool result. With ``output`` it answers JSON valid against the schema; else a text echo.
    """
    choice = choice or ToolChoice()
    allowed = (
        [] if choice.mode == "none" else [t for t in tools if not choice.names or t.name in choice.names]
    )
    if choice.mode == "required" and allowed:
        tool = next((t for t in allowed if t.name not in called), allowed[0])
        return [ToolPart(new_id(), tool.name, _arguments(tool))]
    if allowed and not has_tool_result:
        tool = allowed[0]
        return [TextPart(f"I'll use {tool.name} for that."), ToolPart(new_id(), tool.name, _arguments(tool))]
    if output is not None:
        return [TextPart(json.dumps(_json_answer(output), ensure_ascii=False))]
    if has_tool_result:
        return [TextPart("Thanks, I have the tool result. Here is the answer based on it.")]
    echo = " ".join(last_user.split()[:40])
    if not echo:
        return [TextPart("Hello from the midstream simulator.")]
    return [TextPart(f"This is the midstream simulator. You said: {echo}")]


def _arguments(tool: OfferedTool) -> dict[str, Any]:
    example = example_for_schema(tool.schema)
    # Tool input is always an object on the wire, whatever a schema says about its top level.
    return example if isinstance(example, dict) else {}


def _json_answer(output: OutputFormat) -> Any:
    if output.schema is None:
        return {"answer": "This is the midstream simulator."}
    return example_for_schema(output.schema)


def honour_choice(parts: list[Part], choice: ToolChoice, forced: Callable[[], list[Part]]) -> list[Part]:
    """A scripted turn as the model would answer under ``choice``.

    ``none``: its tool calls are dropped (a text answer stands in when nothing else is left).
    ``required``: only calls to allowed tools are kept, with no text before them (Anthropic prefills
    the answer to force the call; OpenAI sends no content), and ``forced()`` stands in when the turn
    has none.
    """
    if choice.mode == "none":
        kept: list[Part] = [p for p in parts if not isinstance(p, ToolPart)]
        if not any(isinstance(p, TextPart) for p in kept):
            kept.append(TextPart("I will answer without using a tool."))
        return kept
    if choice.mode == "required":
        calls: list[Part] = [
            p for p in parts if isinstance(p, ToolPart) and (not choice.names or p.name in choice.names)
        ]
        thinking: list[Part] = [p for p in parts if isinstance(p, ThinkingPart)]
        return thinking + (calls if calls else forced())
    return parts


def _parse(text: str, as_json: bool, source: str) -> Any:
    problem: Problem
    try:
        return json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        problem = (exc.lineno, "", f"invalid JSON at column {exc.colno}: {exc.msg}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = (line, "", f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
    raise ScenarioError.in_file(source, [problem])


def _tree(text: str) -> yaml.Node | None:
    """The YAML node tree (JSON is YAML too), for line numbers; ``None`` if it cannot be built."""
    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node ``loc`` reaches (an unknown key: the key itself)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child, line = value, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            continue  # a pydantic-internal part (a union member, a validator): stay where we are
        node = child
    return line


def example_for_schema(schema: dict[str, Any], name: str = "value", depth: int = 0, root: Any = None) -> Any:
    """A plausible value valid against a JSON schema (objects get every property).

    Follows local ``$ref`` s (``#/$defs/...``, as pydantic writes them), takes the first non-null branch of
    ``anyOf`` / ``oneOf``, merges ``allOf``, and keeps to ``minimum`` / ``maximum`` (also exclusive),
    ``multipleOf``, ``minLength`` / ``maxLength``, ``minItems`` / ``maxItems``, ``prefixItems`` and the
    common string ``format`` s. ``pattern`` is not honoured.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return None
    if isinstance(schema.get("$ref"), str):
        return example_for_schema(_resolve(root, schema["$ref"]), name, depth + 1, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict)]
        if options:
            useful = [o for o in options if o.get("type") != "null"] or options
            return example_for_schema(useful[0], name, depth + 1, root)
    if schema.get("allOf"):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(_resolve(root, part["$ref"]) if isinstance(part, dict) and "$ref" in part else part)
        return example_for_schema(merged, name, depth + 1, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    maker = _EXAMPLES.get(kind)
    return maker(schema, name, depth, root) if maker else None


def _resolve(root: Any, ref: str) -> Any:
    """The schema a local ``$ref`` points at (``{}``, anything goes, when it points nowhere)."""
    node = root
    for key in ref.removeprefix("#").strip("/").split("/") if ref.startswith("#") else ["\0"]:
        key = key.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _object_example(schema: dict[str, Any], name: str, depth: int, root: Any) -> Any:
    props = schema.get("properties") or {}
    return {k: example_for_schema(v, k, depth + 1, root) for k, v in props.items()}


def _array_example(schema: dict[str, Any], name: str, depth: int, root: Any) -> Any:
    prefix = [example_for_schema(s, name, depth + 1, root) for s in schema.get("prefixItems") or []]
    if prefix:
        return prefix
    count = max(1, int(schema.get("minItems", 1)))
    if "maxItems" in schema:
        count = min(count, int(schema["maxItems"]))
    return [example_for_schema(schema.get("items") or {}, name, depth + 1, root) for _ in range(count)]


def _number_example(schema: dict[str, Any], name: str, depth: int, root: Any) -> Any:
    integer = schema.get("type") == "integer" or "integer" in (schema.get("type") or [])
    step = 1 if integer else 0.5
    value: float = 1 if integer else 1.5
    if "minimum" in schema:
        value = schema["minimum"]
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        value = schema["exclusiveMinimum"] + step
    if "maximum" in schema and value > schema["maximum"]:
        value = schema["maximum"]
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        value = min(value, schema["exclusiveMaximum"] - step)
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return math.ceil(value) if integer else float(value)


_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
}


def _string_example(schema: dict[str, Any], name: str, depth: int, root: Any) -> Any:
    text = _FORMATS.get(str(schema.get("format")), f"example {name}")
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text.ljust(int(schema.get("minLength", 0)), "x")


_EXAMPLES: dict[str, Callable[[dict[str, Any], str, int, Any], Any]] = {
    "object": _object_example,
    "array": _array_example,
    "integer": _number_example,
    "number": _number_example,
    "string": _string_example,
    "boolean": lambda schema, name, depth, root: True,
    "null": lambda schema, name, depth, root: None,
}
