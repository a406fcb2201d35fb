"""The agent layer: the loop, tools, hooks, effects (journal, compensation) and checkpoints.

Each module documents its contract:

* :mod:`midstream.agent.loop` -- :class:`Agent`, :class:`Run` and :class:`RunResult`: stream, run the
  tools a response completed, send the results back; recovery, cancellation, checkpoints;
* :mod:`midstream.agent.events` -- the lifecycle events a run yields between the stream events;
* :mod:`midstream.agent.tools` -- ``@tool``, :class:`Tool`, streamed fields and :class:`TempFileSink`;
* :mod:`midstream.agent.hooks` -- :class:`Hooks` (Python and shell hooks, decisions, isolation);
* :mod:`midstream.agent.monitor` -- :class:`StreamingMonitor` (per-tool streaming metrics);
* :mod:`midstream.agent.effects` -- journals, idempotency keys, :class:`EffectLedger`;
* :mod:`midstream.agent.checkpoint` / :mod:`midstream.agent.serialize` -- saving and resuming a run.
"""

from midstream.agent.events import (
    AgentEvent,
    CancelNotice,
    FallbackNotice,
    HookNotice,
    IterationStart,
    RetryNotice,
    RunEnd,
    ToolCompensated,
    ToolDenied,
    ToolFailed,
    ToolFinished,
    ToolInvalidInput,
    ToolReady,
    ToolStarted,
)
from midstream.agent.hooks import Hooks
from midstream.agent.loop import Agent, Run, RunProgress, RunResult
from midstream.agent.tools import Tool, tool

__all__ = [
    "Agent",
    "AgentEvent",
    "CancelNotice",
    "FallbackNotice",
    "HookNotice",
    "Hooks",
    "IterationStart",
    "RetryNotice",
    "Run",
    "RunEnd",
    "RunProgress",
    "RunResult",
    "Tool",
    "ToolCompensated",
    "ToolDenied",
    "ToolFailed",
    "ToolFinished",
    "ToolInvalidInput",
    "ToolReady",
    "ToolStarted",
    "tool",
]
