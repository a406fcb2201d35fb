"""Hooks: code that watches the agent and may allow, deny, ask about or rewrite what it does.

Events (exactly these): ``SessionStart``, ``UserPromptSubmit``, ``PreToolUse``, ``PermissionRequest``,
``PostToolUse``, ``PostToolUseFailure``, ``Stop``, ``StreamStart``, ``FirstToken``, ``StreamError``,
``Cancel``. A hook is a Python callable (sync or async) registered with :meth:`Hooks.on`, or a shell
command from the settings file (:meth:`Hooks.from_settings`). A hook's ``matcher`` is a regular
expression that must match the whole tool name, for the tool events (``PreToolUse``,
``PermissionRequest``, ``PostToolUse``, ``PostToolUseFailure``); it is ignored for the others, and
``None``, ``""`` or ``"*"`` match everything.

**Input.** Every hook receives a :class:`HookInput`; a shell hook gets its JSON on stdin::

    {
      "hook_event_name": "PreToolUse",    # one of the events above
      "session_id": "run-3f2a",           # the agent run
      "tool_name": "write_file",          # tool events, else null
      "tool_input": {"path": "a.txt"},    # tool events: the validated JSON input, else null
      "tool_call_id": "toolu_01",         # tool events, else null
      "prompt": "fix the bug",            # UserPromptSubmit (and SessionStart if known), else null
      ...                                 # event-specific fields, by convention:
                                          #   PostToolUse: "tool_response";
                                          #   PostToolUseFailure, StreamError: "error";
                                          #   Stop: "stop_reason"; Cancel: "reason";
                                          #   StreamStart: "provider", "model", "attempt";
                                          #   FirstToken: "ttft_ms"
    }

The environment also carries ``MIDSTREAM_HOOK_EVENT`` and ``MIDSTREAM_SESSION_ID``.

**Decision.** A Python hook returns ``None`` (no opinion), a :class:`HookResult`, or a dict; a shell
hook prints a JSON object on stdout (empty stdout: no opinion)::

    {"decision": "allow" | "deny" | "ask", "reason": "...",
     "updated_input": {...},                # PreToolUse / PermissionRequest: replaces the tool input
     "additional_context": "..."}           # SessionStart / UserPromptSubmit: added for the model

Exit code 0 is success; **exit code 2 blocks** (decision ``deny``) with stderr as the reason; any other
exit code is a hook failure. On ``SessionStart`` and ``UserPromptSubmit``, plain (non-JSON) stdout is
taken as additional context.

**Isolation.** Every hook has a timeout (``default_timeout`` unless given). A hook that raises, hangs
past its timeout, exits non-zero or answers nonsense never breaks the run: it becomes a
:class:`HookOutcome` with status ``error`` or ``timeout``, is logged (logger
``midstream.agent.hooks``) and counted in :attr:`Hooks.stats`, and its decision is ignored (hooks fail
open). Slow sync Python hooks run in daemon threads, so a hung one does not hold the process either.

**Combining.** The hooks of one event run in registration order (settings hooks in file order, after
those registered before :meth:`Hooks.add_settings`). :meth:`Hooks.run` returns a :class:`HookReport`:
any ``deny`` wins, then ``ask``, then ``allow``; each ``updated_input`` replaces the tool input in
order, and the next hook sees the updated input; every ``additional_context`` is collected.
:meth:`Hooks.authorize_tool` is the whole permission step: ``PreToolUse``, then on ``ask`` the
``PermissionRequest`` hooks, whose ``allow`` grants the call (anything else denies it).

Example::

    hooks = Hooks.from_settings(settings)

    @hooks.on("PreToolUse", matcher="delete_.*")
    def no_deletes(event: HookInput) -> HookResult:
        return HookResult("deny", reason="deleting is not allowed here")

    permission = await hooks.authorize_tool(tool_name="delete_file", tool_input={"path": "x"},
                                            tool_call_id="call_1")
    assert not permission.allowed

The built-in :class:`~midstream.agent.monitor.StreamingMonitor` (re-exported here) records per-tool
streaming metrics; ``monitor.install(hooks)`` adds its time-to-first-token hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from midstream.agent.monitor import StreamingMonitor, ToolMetrics
from midstream.config import HOOK_EVENTS, HookCommand, HookEventName, Settings
from midstream.errors import LocalError

__all__ = [
    "HOOK_EVENTS",
    "TOOL_EVENTS",
    "Decision",
    "HookEvent",
    "HookFunction",
    "HookInput",
    "HookOutcome",
    "HookReport",
    "HookResult",
    "Hooks",
    "StreamingMonitor",
    "ToolMetrics",
    "ToolPermission",
]

log = logging.getLogger("midstream.agent.hooks")

HookEvent = HookEventName
Decision = Literal["allow", "deny", "ask"]
OutcomeStatus = Literal["ok", "error", "timeout"]
TOOL_EVENTS: frozenset[HookEvent] = frozenset(
    {"PreToolUse", "PermissionRequest", "PostToolUse", "PostToolUseFailure"}
)
_INPUT_EVENTS: frozenset[HookEvent] = frozenset({"PreToolUse", "PermissionRequest"})  # may rewrite input
_TEXT_CONTEXT_EVENTS: frozenset[HookEvent] = frozenset({"SessionStart", "UserPromptSubmit"})
_DECISIONS: tuple[Decision, ...] = get_args(Decision)
_PRECEDENCE: tuple[Decision, ...] = ("deny", "ask", "allow")
OUTPUT_LIMIT = 1024 * 1024  # bytes kept of a shell hook's stdout / stderr (the rest is read and dropped)
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HookInput:
    """What a hook is told. ``data`` holds the event-specific fields (see the module docs)."""

    hook_event_name: HookEvent
    session_id: str = ""
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None
    tool_call_id: str | None = None
    prompt: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object: the common keys (null when absent), then ``data``'s keys."""
        out: dict[str, Any] = {
            "hook_event_name": self.hook_event_name,
            "session_id": self.session_id,
            "tool_name": self.tool_name,
            "tool_input": self.tool_input,
            "tool_call_id": self.tool_call_id,
            "prompt": self.prompt,
        }
        for key, value in self.data.items():
            out.setdefault(key, value)
        return out


@dataclass(frozen=True, slots=True)
class HookResult:
    """A hook's answer. Every field is optional; ``None`` means no opinion."""

    decision: Decision | None = None
    reason: str | None = None
    updated_input: dict[str, Any] | None = None
    additional_context: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> HookResult:
        """Read the decision object (unknown keys are ignored); raises ``ValueError`` on bad values."""
        decision = data.get("decision")
        if decision is not None and decision not in _DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(_DECISIONS)}, got {decision!r}")
        for key, kind in (("reason", str), ("updated_input", dict), ("additional_context", str)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise ValueError(f"{key} must be a {kind.__name__}, got {type(data[key]).__name__}")
        return cls(decision, data.get("reason"), data.get("updated_input"), data.get("additional_context"))


@dataclass(frozen=True, slots=True, kw_only=True)
class HookOutcome:
    """What one hook did: ``status`` ``ok`` (its answer counts), ``error`` or ``timeout`` (ignored).

    ``duration`` is in seconds; ``reason`` is the hook's reason, or what went wrong.
    """

    event: HookEvent
    hook: str
    status: OutcomeStatus
    decision: Decision | None = None
    reason: str | None = None
    duration: float = 0.0
    updated_input: dict[str, Any] | None = None
    additional_context: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HookReport:
    """All hooks of one event, combined: any deny wins, then ask, then allow (``None``: no opinion).

    ``tool_input`` is the input after every ``updated_input`` (``input_modified`` says if any did).
    """

    event: HookEvent
    outcomes: tuple[HookOutcome, ...] = ()
    decision: Decision | None = None
    reason: str | None = None
    tool_input: dict[str, Any] | None = None
    input_modified: bool = False
    additional_context: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        """True if some hook denied (or a shell hook exited with 2)."""
        return self.decision == "deny"

    @property
    def failures(self) -> tuple[HookOutcome, ...]:
        """The hooks that raised, failed or timed out."""
        return tuple(o for o in self.outcomes if o.status != "ok")

    @property
    def context(self) -> str:
        """The additional context of every hook, as one text (empty if none)."""
        return "\n\n".join(self.additional_context)


@dataclass(frozen=True, slots=True)
class ToolPermission:
    """The verdict of :meth:`Hooks.authorize_tool`: run the call with ``tool_input``, or not."""

    allowed: bool
    tool_input: dict[str, Any]
    reason: str | None = None
    asked: bool = False
    reports: tuple[HookReport, ...] = ()

    @property
    def outcomes(self) -> tuple[HookOutcome, ...]:
        """Every hook outcome of the step, in order."""
        return tuple(o for report in self.reports for o in report.outcomes)


HookFunction = Callable[[HookInput], "HookResult | Mapping[str, Any] | Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True)
class _Hook:
    event: HookEvent
    name: str
    matcher: re.Pattern[str] | None
    timeout: float
    fn: HookFunction | None = None
    command: str | None = None

    def matches(self, event: HookInput) -> bool:
        if self.matcher is None or event.hook_event_name not in TOOL_EVENTS:
            return True
        return self.matcher.fullmatch(event.tool_name or "") is not None


class Hooks:
    """The hook registry of an agent; see the module docs for the whole contract.

    ``session_id`` fills :attr:`HookInput.session_id` when :meth:`run` builds the input.

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> from midstream.sim import running
        >>> from midstream.agent.hooks import HookResult
        >>> hooks = midstream.Hooks()
        >>> @hooks.on("PreToolUse", matcher="get_.*")
        ... def only_paris(event):
        ...     if event.tool_input["city"] != "Paris":
        ...         return HookResult("deny", reason="Paris only")
        >>> with running(speed=0) as url:
        ...     client = midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5")
        ...     result = midstream.Agent(client, tools=[get_weather], hooks=hooks).run_sync("Weather?")
        >>> result.terminal, hooks.stats["ok"] >= 1
        ('completed', True)
    """

    def __init__(self, *, default_timeout: float = DEFAULT_TIMEOUT, session_id: str = "") -> None:
        if default_timeout <= 0:
            raise LocalError("a hook timeout must be positive")
        self.default_timeout = default_timeout
        self.session_id = session_id
        self._hooks: list[_Hook] = []
        self.stats: Counter[str] = Counter()
        """Outcomes counted by status: ``ok``, ``error``, ``timeout``."""

    @classmethod
    def from_settings(
        cls, settings: Settings | Mapping[HookEvent, list[HookCommand]], **kwargs: Any
    ) -> Hooks:
        """A registry with the shell hooks of ``settings`` (a :class:`Settings` or its ``hooks``)."""
        hooks = cls(**kwargs)
        hooks.add_settings(settings)
        return hooks

    def add_settings(self, settings: Settings | Mapping[HookEvent, list[HookCommand]]) -> None:
        """Register the shell hooks of ``settings``, in file order."""
        table = settings.hooks if isinstance(settings, Settings) else settings
        for event, commands in table.items():
            for cmd in commands:
                self.add_command(event, cmd.command, matcher=cmd.matcher, timeout=cmd.timeout)

    def on(
        self,
        event: HookEvent,
        *,
        matcher: str | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> Callable[[HookFunction], HookFunction]:
        """Decorator: register a Python hook (sync or async) for ``event``; returns it unchanged."""

        def register(fn: HookFunction) -> HookFunction:
            self.add(event, fn, matcher=matcher, timeout=timeout, name=name)
            return fn

        return register

    def add(
        self,
        event: HookEvent,
        fn: HookFunction,
        *,
        matcher: str | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        """Register a Python hook for ``event`` (see :meth:`on`)."""
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        self._hooks.append(_Hook(event, label, *self._common(event, matcher, timeout), fn=fn))

    def add_command(
        self, event: HookEvent, command: str, *, matcher: str | None = None, timeout: float | None = None
    ) -> None:
        """Register a shell hook for ``event``: ``command`` runs through the shell."""
        if not command.strip():
            raise LocalError("a hook command cannot be empty")
        label = f"command: {command if len(command) <= 60 else command[:57] + '...'}"
        self._hooks.append(_Hook(event, label, *self._common(event, matcher, timeout), command=command))

    def _common(
        self, event: str, matcher: str | None, timeout: float | None
    ) -> tuple[re.Pattern[str] | None, float]:
        if event not in HOOK_EVENTS:
            raise LocalError(f"unknown hook event {event!r}; the events are: {', '.join(HOOK_EVENTS)}")
        timeout = self.default_timeout if timeout is None else timeout
        if timeout <= 0:
            raise LocalError("a hook timeout must be positive")
        try:
            pattern = None if matcher in (None, "", "*") else re.compile(matcher or "")
        except re.error as exc:
            raise LocalError(f"hook matcher {matcher!r} is not a valid regular expression: {exc}") from None
        return pattern, timeout

    def registered(self, event: HookEvent | None = None) -> list[str]:
        """The names of the hooks registered (for ``event``, or all), in running order."""
        return [h.name for h in self._hooks if event is None or h.event == event]

    def __len__(self) -> int:
        return len(self._hooks)

    async def run(self, event: HookEvent | HookInput, /, **fields: Any) -> HookReport:
        """Run every matching hook of an event, in order, and combine their answers.

        Pass a :class:`HookInput`, or the event name and its fields as keywords (``tool_name``,
        ``tool_input``, ``tool_call_id``, ``prompt``, ``session_id``; any other keyword goes to
        ``data``). Never raises because of a hook; only cancellation of the caller propagates.
        """
        payload = event if isinstance(event, HookInput) else self._input(event, fields)
        name = payload.hook_event_name
        outcomes: list[HookOutcome] = []
        current = payload
        for hook in [h for h in self._hooks if h.event == name]:
            if not hook.matches(current):
                continue
            outcome = await self._run_one(hook, current)
            outcomes.append(outcome)
            if outcome.updated_input is not None and name in _INPUT_EVENTS:
                current = dataclasses.replace(current, tool_input=outcome.updated_input)
        return _combine(name, outcomes, payload.tool_input, current.tool_input)

    def _input(self, event: HookEvent, fields: dict[str, Any]) -> HookInput:
        if event not in HOOK_EVENTS:
            raise LocalError(f"unknown hook event {event!r}")
        known = {f.name for f in dataclasses.fields(HookInput)} - {"hook_event_name", "data"}
        common = {k: v for k, v in fields.items() if k in known}
        data = {k: v for k, v in fields.items() if k not in known}
        common.setdefault("session_id", self.session_id)
        return HookInput(hook_event_name=event, **common, data=data)

    async def authorize_tool(
        self, *, tool_name: str, tool_input: dict[str, Any], tool_call_id: str | None = None, **data: Any
    ) -> ToolPermission:
        """The permission step before a tool call runs: ``PreToolUse`` hooks; on ``ask``,
        ``PermissionRequest`` hooks (which see the ask's ``reason`` in ``data["reason"]``), whose
        ``allow`` grants the call. ``tool_input`` of the result is the input to run (hooks may have
        rewritten it: validate it again before running)."""
        common = {"tool_name": tool_name, "tool_call_id": tool_call_id, **data}
        pre = await self.run("PreToolUse", tool_input=tool_input, **common)
        current = pre.tool_input if pre.tool_input is not None else tool_input
        if pre.decision == "deny":
            return ToolPermission(False, current, pre.reason or "denied by a PreToolUse hook", reports=(pre,))
        if pre.decision != "ask":
            return ToolPermission(True, current, pre.reason, reports=(pre,))
        asked = await self.run("PermissionRequest", tool_input=current, reason=pre.reason, **common)
        final = asked.tool_input if asked.tool_input is not None else current
        if asked.decision == "allow":
            return ToolPermission(True, final, asked.reason, asked=True, reports=(pre, asked))
        why = asked.reason or pre.reason or "permission was not granted"
        return ToolPermission(False, final, why, asked=True, reports=(pre, asked))

    async def _run_one(self, hook: _Hook, event: HookInput) -> HookOutcome:
        started = time.monotonic()
        try:
            if hook.command is not None:
                outcome = await self._run_command(hook, event)
            else:
                assert hook.fn is not None
                result = await asyncio.wait_for(_call_python(hook.fn, event), hook.timeout)
                outcome = _outcome(hook, "ok", _as_result(result))
        except TimeoutError:
            why = f"no answer within {hook.timeout} s"
            outcome = HookOutcome(event=hook.event, hook=hook.name, status="timeout", reason=why)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            outcome = HookOutcome(
                event=hook.event, hook=hook.name, status="error", reason="the hook was cancelled"
            )
        except Exception as exc:
            outcome = HookOutcome(
                event=hook.event, hook=hook.name, status="error", reason=f"{type(exc).__name__}: {exc}"
            )
        outcome = dataclasses.replace(outcome, duration=time.monotonic() - started)
        self.stats[outcome.status] += 1
        if outcome.status != "ok":
            log.warning("hook %s on %s: %s (%s)", hook.name, hook.event, outcome.status, outcome.reason)
        return outcome

    async def _run_command(self, hook: _Hook, event: HookInput) -> HookOutcome:
        assert hook.command is not None
        env = {**os.environ, "MIDSTREAM_HOOK_EVENT": event.hook_event_name}
        env["MIDSTREAM_SESSION_ID"] = event.session_id
        proc = await asyncio.create_subprocess_shell(
            hook.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=os.name == "posix",  # so a timeout can kill the whole process group
        )
        payload = json.dumps(event.to_json(), ensure_ascii=False, default=str).encode("utf-8")
        try:
            out, err = await asyncio.wait_for(_exchange(proc, payload), hook.timeout)
        except BaseException:
            await _kill(proc)
            raise
        return _command_outcome(hook, event, proc.returncode, out, err)


def _outcome(hook: _Hook, status: OutcomeStatus, result: HookResult) -> HookOutcome:
    return HookOutcome(
        event=hook.event,
        hook=hook.name,
        status=status,
        decision=result.decision,
        reason=result.reason,
        updated_input=result.updated_input,
        additional_context=result.additional_context,
    )


def _as_result(value: Any) -> HookResult:
    if value is None:
        return HookResult()
    if isinstance(value, HookResult):
        return value
    if isinstance(value, Mapping):
        return HookResult.from_mapping(value)
    raise TypeError(f"a hook must return None, a HookResult or a dict, not {type(value).__name__}")


def _command_outcome(hook: _Hook, event: HookInput, code: int | None, out: bytes, err: bytes) -> HookOutcome:
    stderr = err.decode("utf-8", "replace").strip()
    if code == 2:
        return HookOutcome(
            event=hook.event,
            hook=hook.name,
            status="ok",
            decision="deny",
            reason=stderr or "blocked by a hook (exit code 2)",
        )
    if code != 0:
        return HookOutcome(
            event=hook.event,
            hook=hook.name,
            status="error",
            reason=f"exit code {code}: {stderr}".rstrip(": "),
        )
    text = out.decode("utf-8", "replace").strip()
    if not text:
        return HookOutcome(event=hook.event, hook=hook.name, status="ok")
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return _outcome(hook, "ok", HookResult.from_mapping(data))
    except ValueError as exc:
        if event.hook_event_name in _TEXT_CONTEXT_EVENTS:
            return HookOutcome(event=hook.event, hook=hook.name, status="ok", additional_context=text)
        return HookOutcome(
            event=hook.event, hook=hook.name, status="error", reason=f"stdout is not a JSON decision: {exc}"
        )


def _combine(
    event: HookEvent,
    outcomes: list[HookOutcome],
    original: dict[str, Any] | None,
    final: dict[str, Any] | None,
) -> HookReport:
    counted = [o for o in outcomes if o.status == "ok"]
    decision = next((d for d in _PRECEDENCE if any(o.decision == d for o in counted)), None)
    reasons = [o.reason for o in counted if o.decision == decision and o.reason]
    return HookReport(
        event=event,
        outcomes=tuple(outcomes),
        decision=decision,
        reason="; ".join(reasons) or None,
        tool_input=final,
        input_modified=final is not original,
        additional_context=tuple(o.additional_context for o in counted if o.additional_context),
    )


async def _call_python(fn: HookFunction, event: HookInput) -> Any:
    is_async = inspect.iscoroutinefunction(fn) or (
        not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)
    )
    if is_async:
        result: Any = fn(event)
    else:
        result = await _in_daemon_thread(fn, event)
    while inspect.isawaitable(result):
        result = await result
    return result


def _in_daemon_thread(fn: Callable[[HookInput], Any], event: HookInput) -> asyncio.Future[Any]:
    """Run ``fn(event)`` in a daemon thread: a hook that never returns must not keep the process alive
    (the default executor's threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            value = context.run(fn, event)
        except BaseException as exc:
            report: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            report = (future.set_result, value)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(deliver, *report)

    threading.Thread(target=target, name=f"midstream-hook-{event.hook_event_name}", daemon=True).start()
    return future


async def _exchange(proc: asyncio.subprocess.Process, payload: bytes) -> tuple[bytes, bytes]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def feed(stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read its input
            stdin.write(payload)
            await stdin.drain()
            stdin.close()

    _, out, err = await asyncio.gather(feed(proc.stdin), _read_capped(proc.stdout), _read_capped(proc.stderr))
    await proc.wait()
    return out, err


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < OUTPUT_LIMIT:
            kept += chunk[: OUTPUT_LIMIT - len(kept)]
    return bytes(kept)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    # The group even when the shell itself has exited: a child it left in the background may be what
    # holds the pipes open (its group lives on, so the id cannot have been reused).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        elif proc.returncode is None:  # pragma: no cover - no process groups
            proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.communicate(), 5.0)  # its pipes too: then its transport closes
