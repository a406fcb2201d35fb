"""What an agent run says about itself: tool lifecycle, hooks, retries, fallbacks, cancel, the end.

An agent :class:`~midstream.agent.loop.Run` yields every event of every response it streams (the
normalized events of :mod:`midstream.events` and the tool events of :mod:`midstream.core.toolargs`),
interleaved with the lifecycle events defined here. Like the stream events they are frozen, slotted
dataclasses with a ``kind`` class attribute.

The lifecycle of one tool call::

    ToolReady -> [ToolDenied | ToolInvalidInput]            never started
              -> ToolStarted -> ToolFinished | ToolFailed    ran (or was found done by an earlier run)
                             -> ... ToolCompensated          undone after a cancel
    ToolInvalidInput                                         truncated / invalid JSON: never executed

``ToolReady`` means the call's block closed, its input parsed strictly and passed the tool's own schema;
a call still waits for its whole response to complete before it starts (a response that ends truncated,
failed or cancelled drives no tool at all). ``ToolStarted`` is emitted at the moment the tool function
is entered, so counting them counts real executions. Every run ends with exactly one :class:`RunEnd`,
always its last event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from midstream.agent.effects import EffectRecord
from midstream.agent.hooks import HookOutcome
from midstream.client.stream import StreamEvent
from midstream.core.toolargs import InvalidReason
from midstream.message import Message, Terminal

__all__ = [
    "AgentEvent",
    "CancelNotice",
    "FallbackNotice",
    "HookNotice",
    "InvalidInputReason",
    "IterationStart",
    "RetryMode",
    "RetryNotice",
    "RetryReason",
    "RunEnd",
    "RunEvent",
    "RunPhase",
    "ToolCompensated",
    "ToolDenied",
    "ToolFailed",
    "ToolFinished",
    "ToolInvalidInput",
    "ToolReady",
    "ToolStarted",
    "agent_event_dict",
]

InvalidInputReason = Literal[InvalidReason, "unknown_tool"]
"""Why a tool call's input was refused: the tool-argument reasons, or a tool the agent does not have."""
RetryReason = Literal["max_tokens", "stream_error", "ended_early"]
FailReason = Literal["error", "timeout", "cancelled", "uncertain", "duplicate"]
RetryMode = Literal["restart", "prefill"]
"""How a retry asks again: a new request from scratch, or continuing the kept text as a prefill."""
CompensationStatus = Literal["compensated", "compensation_failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IterationStart:
    """A model round trip begins (``iteration`` counts from 1; retries stay in the same iteration)."""

    kind: ClassVar[Literal["iteration_start"]] = "iteration_start"
    iteration: int
    max_tokens: int
    tools: tuple[str, ...] = ()
    eager: tuple[str, ...] = ()  # the tools streamed eagerly in this iteration's requests


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolReady:
    """A call's input arrived whole and valid (strict JSON, the stream's schema check and the tool's)."""

    kind: ClassVar[Literal["tool_ready"]] = "tool_ready"
    call_id: str
    name: str
    input: dict[str, Any]
    index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolInvalidInput:
    """A call that will never run: its input was truncated, not JSON, failed a schema, or named an
    unknown tool. ``wrapped`` is what stands for it in the conversation (``{"INVALID_JSON": raw}``)."""

    kind: ClassVar[Literal["tool_invalid_input"]] = "tool_invalid_input"
    call_id: str
    name: str
    reason: InvalidInputReason
    raw: str
    error: str = ""
    wrapped: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolDenied:
    """A hook (``PreToolUse`` / ``PermissionRequest``) refused the call; it never started."""

    kind: ClassVar[Literal["tool_denied"]] = "tool_denied"
    call_id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolStarted:
    """The tool function was entered for this call (emitted from inside the execution, so it happens
    at most once per call id, and never for a call an earlier run already did)."""

    kind: ClassVar[Literal["tool_started"]] = "tool_started"
    call_id: str
    name: str
    input: dict[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolFinished:
    """The call has a result: ``status`` ``done`` (it ran now) or ``skipped`` (the journal says an
    earlier run did it; ``result`` is the recorded one). ``content`` is what goes back to the model."""

    kind: ClassVar[Literal["tool_finished"]] = "tool_finished"
    call_id: str
    name: str
    status: Literal["done", "skipped"]
    result: Any = None
    content: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolFailed:
    """The call did not produce a result: the tool raised (``error``), ran past its timeout, was
    cancelled, or the ledger refused to run it (``uncertain``: an earlier run may have done it;
    ``duplicate``: this call id already ran)."""

    kind: ClassVar[Literal["tool_failed"]] = "tool_failed"
    call_id: str
    name: str
    reason: FailReason
    error: str = ""
    started: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCompensated:
    """After a cancel, a completed side effect was undone (``compensated``) or could not be
    (``compensation_failed``: the tool raised or has no ``compensate``)."""

    kind: ClassVar[Literal["tool_compensated"]] = "tool_compensated"
    call_id: str
    name: str
    status: CompensationStatus
    idempotency_key: str
    error: str | None = None

    @classmethod
    def from_record(cls, record: EffectRecord) -> ToolCompensated:
        """The event for a journal record written by compensation."""
        status: CompensationStatus = (
            "compensated" if record.status == "compensated" else "compensation_failed"
        )
        return cls(
            call_id=record.call_id,
            name=record.tool,
            status=status,
            idempotency_key=record.idempotency_key,
            error=record.error,
        )


@dataclass(frozen=True, slots=True)
class HookNotice:
    """One hook ran: its :class:`~midstream.agent.hooks.HookOutcome` (``ok``, ``error``, ``timeout``)."""

    kind: ClassVar[Literal["hook"]] = "hook"
    outcome: HookOutcome
    call_id: str | None = None

    @property
    def event(self) -> str:
        """The hook event (``PreToolUse``, ``Stop``, ...)."""
        return self.outcome.event

    @property
    def status(self) -> str:
        """``ok``, ``error`` or ``timeout``."""
        return self.outcome.status


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryNotice:
    """The response is asked for again, explicitly (what was shown of the failed one stays shown).

    ``reason``: ``max_tokens`` (a tool input was cut: ``max_tokens`` is the larger budget of the new
    request), ``stream_error`` (an overloaded / 5xx / dropped / stalled stream after content) or
    ``ended_early`` (the body ended without the provider's terminal event). ``mode``: ``prefill`` (the
    partial answer is sent back as the start of the assistant turn and the model continues it: its
    first ``kept`` characters stand) or ``restart`` (the partial answer is discarded).
    """

    kind: ClassVar[Literal["retry"]] = "retry"
    iteration: int
    attempt: int
    reason: RetryReason
    delay: float
    max_tokens: int
    mode: RetryMode = "restart"
    kept: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FallbackNotice:
    """``tool`` produced invalid input under eager streaming ``invalid`` times: from the next request on
    it streams buffered (the provider validates its arguments before sending them)."""

    kind: ClassVar[Literal["fallback"]] = "fallback"
    tool: str
    invalid: int
    iteration: int


RunPhase = Literal["starting", "hooks", "streaming", "waiting", "tools", "ending"]
"""Where a run is: ``starting``, running ``hooks``, ``streaming`` a response, ``waiting`` out a retry's
backoff, running ``tools``, or ``ending``."""


@dataclass(frozen=True, slots=True)
class CancelNotice:
    """The run was cancelled while ``phase`` (``starting``, ``streaming``, ``tools``, ``waiting``,
    ``hooks``); ``not_started`` lists the call ids that were pending and will never start."""

    kind: ClassVar[Literal["cancel"]] = "cancel"
    reason: str
    phase: RunPhase
    not_started: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnd:
    """The run's one ending, always its last event.

    ``terminal``: ``completed`` (a final answer), ``truncated`` (max_tokens with no retry left,
    ``max_iterations`` reached, a stream that ended early), ``failed`` (an error recovery could not
    fix) or ``cancelled``. ``message`` is the last assistant response (partial unless completed).
    """

    kind: ClassVar[Literal["run_end"]] = "run_end"
    terminal: Terminal
    reason: str | None = None
    iterations: int = 0
    message: Message | None = None
    error: str | None = None


AgentEvent = (
    IterationStart
    | ToolReady
    | ToolInvalidInput
    | ToolDenied
    | ToolStarted
    | ToolFinished
    | ToolFailed
    | ToolCompensated
    | HookNotice
    | RetryNotice
    | FallbackNotice
    | CancelNotice
    | RunEnd
)


RunEvent = StreamEvent | AgentEvent
"""What a run yields: the events of each response stream, and the lifecycle events between them."""


def agent_event_dict(event: AgentEvent) -> dict[str, Any]:
    """A JSON-ready dict: ``{"kind": ..., <fields>}`` (the message of a RunEnd as its text and terminal,
    a hook outcome flattened)."""
    out: dict[str, Any] = {"kind": event.kind}
    for name in type(event).__dataclass_fields__:
        value = getattr(event, name)
        if isinstance(value, Message):
            value = {"text": value.text, "terminal": value.terminal, "stop_reason": value.stop_reason}
        elif isinstance(value, HookOutcome):
            value = {
                "event": value.event,
                "hook": value.hook,
                "status": value.status,
                "decision": value.decision,
                "reason": value.reason,
                "duration": round(value.duration, 6),
            }
        out[name] = value
    return out
