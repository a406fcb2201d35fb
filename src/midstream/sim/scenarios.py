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
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from midstream.config import validation_problems
from midstream.errors import LocalError
from midstream.sim.script import Latency, Part, TextPart, ThinkingPart, ToolPart

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


class ToolOffer(_Model):
    """A tool the request offers: name, JSON schema, and whether it asked for eager streaming."""

    name: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    eager: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


def default_parts(last_user: str, tools: list[ToolOffer], has_tool_result: bool, new_id: Any) -> list[Part]:
    """What the simulator says when no scenario matches."""
    if tools and not has_tool_result:
        tool = tools[0]
        example = example_for_schema(tool.schema_)
        # Tool input is always an object on the wire, whatever a schema says about its top level.
        arguments = example if isinstance(example, dict) else {}
        return [TextPart(f"I'll use {tool.name} for that."), ToolPart(new_id(), tool.name, arguments)]
    if has_tool_result:
        return [TextPart("Thanks, I have the tool result. Here is the answer based on it.")]
    echo = " ".join(last_user.split()[:40])
    if not echo:
        return [TextPart("Hello from the midstream simulator.")]
    return [TextPart(f"This is the midstream simulator. You said: {echo}")]


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


def example_for_schema(schema: dict[str, Any], name: str = "value", depth: int = 0) -> Any:
    """A plausible value for a JSON schema (objects get every property)."""
    if depth > 6:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for_schema(schema[key][0], name, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example_for_schema(v, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [example_for_schema(schema.get("items", {}), name, depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"example {name}"
