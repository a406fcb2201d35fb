"""The settings file: ``midstream.toml`` or ``midstream.json``, validated, with errors that say where.

A settings file is optional: every key has a default, and :func:`load_settings` with no file returns
:class:`Settings()`. Unknown keys are errors (a typo must not be silently ignored), and every error names
the file and the key path, e.g. ``midstream.toml: errors.backoff.initial: Input should be greater than
0 (got -1)``.

The sections (TOML shown; the JSON file has the same shape)::

    [streaming]
    enabled = true                    # false: no eager argument streaming at all (responses still stream)
    enable_for_agents = ["coder"]     # agents that get fine-grained (eager) tool streaming; absent: all

    [streaming.eager]                 # fine-grained argument streaming ("eager = true" sets the default)
    default = false
    tools = { write_file = true }     # per-tool override

    [errors]
    invalid_json_wrapper = "INVALID_JSON"   # bad tool input is echoed back as {"INVALID_JSON": raw}
    retry_on_incomplete = true        # re-request when a tool input was cut by max_tokens
    retry_on_stream_error = true      # re-request after a retryable mid-stream error (overloaded, 5xx)
    max_retries = 2
    max_tokens_growth = 2.0           # each retry of a truncated response multiplies max_tokens by this
    max_tokens_cap = 64000            # ... up to this (absent: no cap)
    eager_fallback_after = 1          # invalid eager inputs of one tool before it falls back to buffered

    [errors.backoff]                  # delay before retry n (n = 0, 1, ...): min(initial * factor**n, max)
    initial = 2.0                     # seconds
    factor = 2.0
    max = 30.0
    scale = 1.0                       # multiplies every delay (tests use e.g. 0.001)

    [[hooks.PreToolUse]]              # event name -> list of shell hooks
    matcher = "write_.*|delete_.*"    # regex, full match on the tool name (tool events only)
    command = "./hooks/check.sh"
    timeout = 10.0

    [metrics]                         # thresholds above which the streaming monitor warns
    ttft_ms_warn = 2000
    file = "streaming-metrics.json"   # a workflow's metrics file, updated atomically per run (absent: none)
    errors_log = "streaming-errors.jsonl"   # unusable tool input, one JSON object per line (absent: none)
    large_param_bytes = 2048          # an argument at least this large counts as "large"
    adaptive = false                  # the adaptive policy (see midstream.workflow); off by default

    [metrics.alerts]                  # alert above these (a workflow's metrics; absent: never)
    latency_ms = 5000
    incomplete_json_rate = 0.05
    fallback_rate = 0.10

The multi-agent notes' shape is accepted too, and folded into the keys above (giving a key both ways
with different values is an error)::

    {"streaming": {"fine_grained_tool_streaming": {
        "enabled": true,                                  # streaming.eager.default
        "beta_header": "fine-grained-tool-streaming-2025-05-14",   # informational: each provider's
                                                          # client sends what that provider needs
        "error_handling": {"invalid_json_wrapper": "INVALID_JSON", "retry_on_incomplete": true,
                           "max_retries": 2, "backoff_delays": [2, 4]},        # errors.*
        "performance": {"enable_for_agents": ["architect", "developer"],   # streaming.enable_for_agents
                        "buffer_timeout_ms": 100}}}}                       # streaming.buffer_timeout_ms

    [tools]
    max_concurrency = 4               # tool calls of one response run concurrently, at most this many
    timeout = 60.0                    # per tool call, seconds (absent: none)

    [agent]
    name = "coder"                    # matched against streaming.enable_for_agents
    max_iterations = 10               # model round trips before the loop stops

    [client]                          # Client(provider, **settings.client.options())
    max_connections = 250             # connections of one client's pool; more streams wait for one
    max_keepalive_connections = 100   # idle connections kept for the next request
    pool_timeout = 600.0              # seconds a stream may wait for a free connection
    connect_timeout = 10.0            # also first_byte_timeout, idle_timeout, total_timeout
    max_response_bytes = 268435456    # one response body (256 MiB, the default); 0: no limit

Example::

    from midstream.config import load_settings

    settings = load_settings("midstream.toml")
    settings.errors.backoff.delay(1)                    # 4.0 seconds (times scale)
    settings.streaming.eager_for("write_file", agent="coder")
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from midstream.errors import LocalError

__all__ = [
    "HOOK_EVENTS",
    "SETTINGS_FILENAMES",
    "AgentSettings",
    "AlertSettings",
    "BackoffSettings",
    "ClientSettings",
    "EagerSettings",
    "ErrorSettings",
    "FineGrainedSettings",
    "HookCommand",
    "HookEventName",
    "MetricsSettings",
    "Settings",
    "SettingsError",
    "StreamingSettings",
    "ToolSettings",
    "find_settings",
    "load_settings",
]

HookEventName = Literal[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "StreamStart",
    "FirstToken",
    "StreamError",
    "Cancel",
]
HOOK_EVENTS: tuple[HookEventName, ...] = get_args(HookEventName)

SETTINGS_FILENAMES = ("midstream.toml", "midstream.json")
"""The names :func:`find_settings` looks for, in this order."""


class SettingsError(LocalError, ValueError):
    """A settings file that cannot be read or does not validate.

    ``source`` is the file (or ``"<settings>"``); ``problems`` lists ``(key path, message)`` pairs, the
    key path dotted with list indices in brackets (``hooks.PreToolUse[0].timeout``).
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems]
        super().__init__("invalid settings\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EagerSettings(_Section):
    """Fine-grained (eager) tool-argument streaming: a default and per-tool overrides.

    ``policy = "size"`` (the default) is the notes' guidance for a tool with no explicit setting whose
    typical argument size is known: eager from ``large_bytes`` up, buffered below ``small_bytes``
    (between the two: ``default``). ``policy = "fixed"`` ignores sizes.
    """

    default: bool = False
    tools: dict[str, bool] = Field(default_factory=dict)
    policy: Literal["size", "fixed"] = "size"
    large_bytes: int = Field(default=5120, ge=0)
    small_bytes: int = Field(default=1024, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> EagerSettings:
        if self.small_bytes > self.large_bytes:
            raise ValueError(f"small_bytes ({self.small_bytes}) is above large_bytes ({self.large_bytes})")
        return self


class FineGrainedErrors(_Section):
    """The notes' ``error_handling``: folded into ``[errors]``."""

    invalid_json_wrapper: str | None = Field(default=None, min_length=1)
    retry_on_incomplete: bool | None = None
    max_retries: int | None = Field(default=None, ge=0)
    backoff_delays: list[float] | None = Field(default=None, min_length=1)

    @field_validator("backoff_delays")
    @classmethod
    def _non_negative(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(d < 0 for d in value):
            raise ValueError("delays cannot be negative")
        return value


class FineGrainedPerformance(_Section):
    """The notes' ``performance``: folded into ``[streaming]``."""

    enable_for_agents: list[str] | None = None
    buffer_timeout_ms: float | None = Field(default=None, ge=0)


class FineGrainedSettings(_Section):
    """``streaming.fine_grained_tool_streaming``, the multi-agent notes' shape of these settings."""

    enabled: bool | None = None
    beta_header: str | None = None
    error_handling: FineGrainedErrors = Field(default_factory=FineGrainedErrors)
    performance: FineGrainedPerformance = Field(default_factory=FineGrainedPerformance)


class StreamingSettings(_Section):
    """Which tools stream their arguments eagerly for which agents (``enabled = false``: none; the
    responses themselves always stream)."""

    enabled: bool = True
    eager: EagerSettings = Field(default_factory=EagerSettings)
    enable_for_agents: list[str] | None = None
    buffer_timeout_ms: float = Field(default=0.0, ge=0)
    """How long streamed text may be held to be passed on in one piece (a workflow's blackboard
    updates); 0 passes each fragment on as it arrives. The complete value is never delayed."""
    fine_grained_tool_streaming: FineGrainedSettings | None = None
    """The notes' shape; folded into the other keys when the settings are validated."""

    @field_validator("eager", mode="before")
    @classmethod
    def _eager_shorthand(cls, value: Any) -> Any:
        return {"default": value} if isinstance(value, bool) else value

    def eager_for(
        self,
        tool: str,
        *,
        agent: str | None = None,
        tool_default: bool | None = None,
        typical_bytes: int | None = None,
    ) -> bool:
        """Whether ``tool`` streams eagerly for ``agent``.

        False when streaming is off, or when ``enable_for_agents`` is set and does not name ``agent``
        (``"*"`` names every agent). Otherwise the per-tool setting, else ``tool_default`` (the tool's
        own ``eager`` option), else the size policy when ``typical_bytes`` is known (see
        :class:`EagerSettings`), else the default.
        """
        if not self.enabled:
            return False
        allowed = self.enable_for_agents
        if allowed is not None and "*" not in allowed and agent not in allowed:
            return False
        if tool in self.eager.tools:
            return self.eager.tools[tool]
        if tool_default is not None:
            return tool_default
        if typical_bytes is not None and self.eager.policy == "size":
            if typical_bytes >= self.eager.large_bytes:
                return True
            if typical_bytes < self.eager.small_bytes:
                return False
        return self.eager.default


class BackoffSettings(_Section):
    """Exponential backoff: retry ``n`` (from 0) waits ``min(initial * factor**n, max) * scale`` s."""

    initial: float = Field(default=2.0, ge=0)
    factor: float = Field(default=2.0, ge=1)
    max: float = Field(default=30.0, ge=0)
    scale: float = Field(default=1.0, ge=0)
    delays: list[float] | None = Field(default=None, min_length=1)
    """Explicit delays (the notes' ``[2, 4]``): retry ``n`` waits ``delays[n]`` (the last one
    repeating) times ``scale``, instead of the exponential formula."""

    @field_validator("delays")
    @classmethod
    def _non_negative(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(d < 0 for d in value):
            raise ValueError("delays cannot be negative")
        return value

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        if attempt < 0:
            raise LocalError("a retry attempt number cannot be negative")
        if self.delays is not None:
            return self.delays[min(attempt, len(self.delays) - 1)] * self.scale
        base = self.initial * self.factor ** min(attempt, 64)  # the cap keeps huge attempts finite
        return min(base, self.max) * self.scale


class ErrorSettings(_Section):
    """How the agent recovers: invalid input echo, retries, backoff and the eager fallback."""

    invalid_json_wrapper: str = Field(default="INVALID_JSON", min_length=1)
    retry_on_incomplete: bool = True
    retry_on_stream_error: bool = True
    max_retries: int = Field(default=2, ge=0)
    max_tokens_growth: float = Field(default=2.0, ge=1)
    max_tokens_cap: int | None = Field(default=None, gt=0)
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    eager_fallback_after: int = Field(default=1, ge=1)

    def wrap_invalid(self, raw: str) -> dict[str, str]:
        """The object standing for tool input that did not parse: ``{invalid_json_wrapper: raw}``."""
        return {self.invalid_json_wrapper: raw}

    def next_max_tokens(self, current: int) -> int:
        """The output budget for a retry of a response that ``current`` tokens did not fit.

        Always larger than ``current`` unless ``max_tokens_cap`` stops it (then the cap).
        """
        grown = max(current + 1, int(current * self.max_tokens_growth))
        return grown if self.max_tokens_cap is None else min(grown, max(self.max_tokens_cap, current))


class HookCommand(_Section):
    """A shell hook: ``command`` runs with the hook's JSON on stdin (see :mod:`midstream.agent.hooks`)."""

    command: str = Field(min_length=1)
    matcher: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("matcher")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class AlertSettings(_Section):
    """Alert thresholds of a workflow's streaming metrics (the notes' defaults; ``null``: never).

    ``latency_ms`` applies to each agent's average consumer latency, the rates to the whole file;
    rates are judged once ``min_calls`` tool calls were seen.
    """

    latency_ms: float | None = Field(default=5000.0, gt=0)
    incomplete_json_rate: float | None = Field(default=0.05, ge=0, le=1)
    fallback_rate: float | None = Field(default=0.10, ge=0, le=1)
    min_calls: int = Field(default=1, ge=1)


class MetricsSettings(_Section):
    """Thresholds above which the streaming monitor records a warning (absent: never), and where a
    workflow writes its metrics file and its log of unusable tool input."""

    enabled: bool = True
    ttft_ms_warn: float | None = Field(default=None, gt=0)
    idle_ms_warn: float | None = Field(default=None, gt=0)
    tool_ready_ms_warn: float | None = Field(default=None, gt=0)
    tool_args_bytes_warn: int | None = Field(default=None, gt=0)
    invalid_json_warn: int | None = Field(default=None, gt=0)
    file: str | None = None
    errors_log: str | None = None
    large_param_bytes: int = Field(default=2048, ge=0)
    adaptive: bool = False
    alerts: AlertSettings = Field(default_factory=AlertSettings)


class ToolSettings(_Section):
    """How tool calls run."""

    max_concurrency: int = Field(default=4, ge=1)
    timeout: float | None = Field(default=None, gt=0)


class AgentSettings(_Section):
    """The agent loop."""

    name: str | None = None
    max_iterations: int = Field(default=10, ge=1)


class ClientSettings(_Section):
    """The streaming client's connection pool and timeouts (absent keys: the client's defaults)."""

    max_connections: int | None = Field(default=None, ge=1)
    max_keepalive_connections: int | None = Field(default=None, ge=0)
    pool_timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    first_byte_timeout: float | None = Field(default=None, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    total_timeout: float | None = Field(default=None, gt=0)
    max_response_bytes: int | None = Field(default=None, ge=0)  # 0: no limit

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``Client`` / ``AsyncClient``: the limits and ``timeouts`` set here."""
        from midstream.client.timeouts import Timeouts

        options: dict[str, Any] = {
            "max_connections": self.max_connections,
            "max_keepalive_connections": self.max_keepalive_connections,
        }
        if self.max_response_bytes is not None:
            options["max_response_bytes"] = self.max_response_bytes or None
        names = ("pool", "connect", "first_byte", "idle", "total")
        given = {name: getattr(self, f"{name}_timeout") for name in names}
        changed = {name: value for name, value in given.items() if value is not None}
        if changed:
            options["timeouts"] = Timeouts(**changed)
        return options


class Settings(_Section):
    """All settings; every section and key has a default. Immutable: use ``model_copy(update=...)``."""

    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    errors: ErrorSettings = Field(default_factory=ErrorSettings)
    hooks: dict[HookEventName, list[HookCommand]] = Field(default_factory=dict)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("settings must be a table / object")
        return _fold_fine_grained(value)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<settings>") -> Settings:
        """Validate already-parsed settings; raises :class:`SettingsError` naming every bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(source, _problems(exc)) from None


_FOLDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("enabled",), ("streaming", "eager", "default")),
    (("error_handling", "invalid_json_wrapper"), ("errors", "invalid_json_wrapper")),
    (("error_handling", "retry_on_incomplete"), ("errors", "retry_on_incomplete")),
    (("error_handling", "max_retries"), ("errors", "max_retries")),
    (("error_handling", "backoff_delays"), ("errors", "backoff", "delays")),
    (("performance", "enable_for_agents"), ("streaming", "enable_for_agents")),
    (("performance", "buffer_timeout_ms"), ("streaming", "buffer_timeout_ms")),
)


def _fold_fine_grained(value: Mapping[str, Any]) -> Any:
    """Copy the notes' ``streaming.fine_grained_tool_streaming`` keys onto their canonical places (a
    key given both ways with different values is an error naming both)."""
    streaming = value.get("streaming")
    notes = streaming.get("fine_grained_tool_streaming") if isinstance(streaming, Mapping) else None
    if not isinstance(notes, Mapping):
        return value  # absent, or not a table: validation says so at its own path
    out: dict[str, Any] = _thaw(value)
    for source, target in _FOLDS:
        found: Any = notes
        for part in source:
            found = found.get(part) if isinstance(found, Mapping) else None
        if found is None:
            continue
        node = out
        for part in target[:-1]:
            if not isinstance(node.get(part, {}), dict):
                break
            node = node.setdefault(part, {})
        else:
            there = node.get(target[-1])
            if there is not None and there != found:
                given = "streaming.fine_grained_tool_streaming." + ".".join(source)
                raise ValueError(f"{given} ({found!r}) contradicts {'.'.join(target)} ({there!r})")
            node[target[-1]] = found
    return out


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(path, msg) for _, path, msg in validation_problems(exc)]


def validation_problems(exc: ValidationError) -> list[tuple[tuple[int | str, ...], str, str]]:
    """``(location, key path, message)`` per problem of a pydantic error, worded for a person.

    The key path is dotted, with list indices in brackets (``hooks.PreToolUse[0].timeout``); an unknown
    key says so, and a bad value is quoted. No pydantic type codes, no links.
    """
    out = []
    for err in exc.errors(include_url=False):
        path = _key_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["loc"][-1:] == ("[key]",) and err["loc"][:1] == ("hooks",):
            msg = f"unknown hook event {err['input']!r} (known: {', '.join(HOOK_EVENTS)})"
        elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        out.append((tuple(err["loc"]), path, msg))
    return out


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" not in part and not part.startswith(("function-", "literal[")):
            text += f".{part}" if text else part
    return text


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate a settings file (``.toml`` or ``.json``; other names are sniffed).

    ``path=None`` looks for ``midstream.toml`` / ``midstream.json`` in the current directory (see
    :func:`find_settings`) and returns the defaults when there is none. Raises :class:`SettingsError`
    for a missing or unreadable file, a syntax error (with its line) or any invalid key.
    """
    if path is None:
        found = find_settings()
        return Settings() if found is None else load_settings(found)
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(source, [("", f"cannot read the file: {exc}")]) from None
    return Settings.from_mapping(_parse(text, path.suffix.lower(), source), source=source)


def _parse(text: str, suffix: str, source: str) -> Any:
    as_json = suffix == ".json" or (suffix != ".toml" and text.lstrip().startswith("{"))
    try:
        return json.loads(text) if as_json else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise SettingsError(source, [("", f"invalid JSON at {where}: {exc.msg}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(source, [("", f"invalid TOML: {exc}")]) from None


def find_settings(directory: str | Path | None = None) -> Path | None:
    """The first of ``midstream.toml``, ``midstream.json`` in ``directory`` (default: the current one)."""
    base = Path.cwd() if directory is None else Path(directory)
    for name in SETTINGS_FILENAMES:
        candidate = base / name
        if candidate.is_file():
            return candidate
    return None
