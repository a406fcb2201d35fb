"""What a workflow run yields: each agent's events, tagged, and the workflow's own events.

Every item of a :class:`~midstream.workflow.flow.WorkflowRun` is a :class:`WorkflowEvent`: the
``agent`` that produced it, its ``run`` id, the ``parent`` run that started that run (``None`` for the
entry agent), the time since the workflow started, and the ``event`` itself: any event an agent run
yields (:mod:`midstream.agent.events`, stream and tool events), or one of these:

* :class:`HandoffStart` -- a receiving agent started (``when``: ``validated``, the moment the handoff
  call's input was complete and valid; or ``executed``, when the sender's response had completed);
* :class:`HandoffEnd` -- it ended; its answer went back to the sender as the tool result;
* :class:`HandoffDropped` -- a receiver started early was stopped (and compensated): the response
  that carried its handoff was not kept (retried, truncated, failed or cancelled);
* :class:`~midstream.workflow.blackboard.BlackboardUpdate` -- a blackboard write by this agent,
  ``partial`` while it streams;
* :class:`~midstream.workflow.metrics.Alert` -- a metric past its threshold, at the end;
* :class:`AdaptiveChange` -- the adaptive policy changed an agent for its later runs, at the end;
* :class:`WorkflowEnd` -- the last event, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from midstream.errors import RemoteError
from midstream.message import Terminal

__all__ = [
    "START_HANDOFFS",
    "AdaptiveChange",
    "HandoffDropped",
    "HandoffEnd",
    "HandoffFailed",
    "HandoffStart",
    "StartHandoffs",
    "WorkflowEnd",
    "WorkflowEvent",
    "flow_event_dict",
]


class HandoffFailed(RemoteError):
    """The receiver of a handoff did not complete: the sender gets this as an error tool result."""


StartHandoffs = Literal["validated", "executed"]
"""When a handoff's receiver starts: once the handoff call's input is complete and valid (``validated``),
or only after the sender's response is kept and the call ran (``executed``)."""

START_HANDOFFS: tuple[StartHandoffs, ...] = get_args(StartHandoffs)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffStart:
    """``sender`` handed work to ``receiver``, whose run ``run`` starts now."""

    kind: ClassVar[Literal["handoff_start"]] = "handoff_start"
    call_id: str
    sender: str
    receiver: str
    run: str
    when: Literal[StartHandoffs, "pipeline"]
    bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffEnd:
    """The receiver's run ended; ``terminal`` and ``reason`` are its ending."""

    kind: ClassVar[Literal["handoff_end"]] = "handoff_end"
    call_id: str
    receiver: str
    run: str
    terminal: Terminal
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffDropped:
    """A receiver started at validation was stopped: the sender's response was not kept."""

    kind: ClassVar[Literal["handoff_dropped"]] = "handoff_dropped"
    call_id: str
    receiver: str
    run: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveChange:
    """The adaptive policy changed ``agent`` for its later runs: ``max_tokens`` (``old`` -> ``new``), or
    ``buffered`` (``tool`` no longer streams eagerly)."""

    kind: ClassVar[Literal["adaptive"]] = "adaptive"
    agent: str
    what: Literal["max_tokens", "buffered"]
    old: int | None = None
    new: int | None = None
    tool: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowEnd:
    """The workflow's one ending: the entry agent's (or the pipeline's last stage's) ending."""

    kind: ClassVar[Literal["workflow_end"]] = "workflow_end"
    terminal: Terminal
    reason: str | None = None
    text: str = ""
    runs: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowEvent:
    """One event of one agent of a workflow (see the module docstring)."""

    agent: str
    run: str
    parent: str | None
    event: Any
    at: float = 0.0

    @property
    def kind(self) -> str:
        """The wrapped event's ``kind``."""
        return str(getattr(self.event, "kind", type(self.event).__name__))


def flow_event_dict(event: Any) -> dict[str, Any] | None:
    """The JSON form of a workflow's own event (``None`` for an agent's event)."""
    if isinstance(event, HandoffStart | HandoffEnd | HandoffDropped | WorkflowEnd | AdaptiveChange):
        return {"kind": event.kind, **{name: getattr(event, name) for name in event.__dataclass_fields__}}
    as_dict = getattr(event, "as_dict", None)
    if getattr(event, "kind", None) in ("blackboard", "alert") and callable(as_dict):
        return {"kind": event.kind, **as_dict()}
    return None
