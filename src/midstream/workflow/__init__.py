"""Multi-agent workflows: named agents handing work to each other through streamed tool arguments.

* :mod:`midstream.workflow.flow` -- :class:`Workflow`, :class:`AgentSpec`, :class:`WorkflowRun` and
  :class:`WorkflowResult`: handoffs that start their receiver at validation, pipelines, cancel cascade;
* :mod:`midstream.workflow.events` -- :class:`WorkflowEvent` (every event tagged with agent, run and
  parent) and the handoff events;
* :mod:`midstream.workflow.blackboard` -- the blackboard: versioned keys, partial updates for
  subscribers, complete versions for readers, compare-and-set;
* :mod:`midstream.workflow.metrics` -- the streaming metrics file (``streaming-metrics.json``), its
  alerts and the ``streaming-errors`` log.
"""

from midstream.workflow.blackboard import (
    Blackboard,
    BlackboardUpdate,
    Entry,
    MemoryBlackboard,
    PendingWrite,
    Subscription,
    VersionConflict,
)
from midstream.workflow.events import (
    AdaptiveChange,
    HandoffDropped,
    HandoffEnd,
    HandoffStart,
    WorkflowEnd,
    WorkflowEvent,
)
from midstream.workflow.flow import (
    HANDOFF,
    AgentRunSummary,
    AgentSpec,
    HandoffFailed,
    Workflow,
    WorkflowResult,
    WorkflowRun,
)
from midstream.workflow.metrics import Alert, ErrorLog, MetricsFile, StreamingTally

__all__ = [
    "HANDOFF",
    "AdaptiveChange",
    "AgentRunSummary",
    "AgentSpec",
    "Alert",
    "Blackboard",
    "BlackboardUpdate",
    "Entry",
    "ErrorLog",
    "HandoffDropped",
    "HandoffEnd",
    "HandoffFailed",
    "HandoffStart",
    "MemoryBlackboard",
    "MetricsFile",
    "PendingWrite",
    "StreamingTally",
    "Subscription",
    "VersionConflict",
    "Workflow",
    "WorkflowEnd",
    "WorkflowEvent",
    "WorkflowResult",
    "WorkflowRun",
]
