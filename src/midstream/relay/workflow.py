"""A workflow's events in one run log: every agent's events tagged with ``agent`` and ``parent``.

:func:`record_workflow` runs a :class:`~midstream.workflow.WorkflowRun` and appends each of its
events to the log as entries of one run (by default the workflow run's id), so the relay serves a
whole workflow like any run: resumable SSE, ``?agent=`` to follow one agent, the web page's lanes from
the entries' ``agent`` / ``parent``. Each entry's data carries ``agent_run``, the id of the agent run
that produced it. Blackboard writes are entries too (``blackboard``, partial ones included), as are
handoffs (``handoff_start``, ``handoff_end``, ``handoff_dropped``) and alerts (``alert``).

An agent run's own ending is written as ``agent_end`` (its data is a ``run_end``'s), so that the log
keeps exactly one ``run_end``: the workflow's, last, after ``workflow_end``.

Example::

    log = SQLiteLog("relay.db")
    result = await record_workflow(log, flow.run("Build the checkout platform"))
    # GET /v1/runs/{result_run}/events?agent=developer follows the developer's lane
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from midstream.agent.events import RunEnd
from midstream.relay.entry import entry_data
from midstream.relay.log import EventLog
from midstream.workflow import WorkflowEvent, WorkflowResult, WorkflowRun
from midstream.workflow.events import flow_event_dict

__all__ = ["record_workflow", "workflow_entry"]


def workflow_entry(item: WorkflowEvent) -> tuple[str, dict[str, Any]]:
    """``(kind, data)`` of one workflow event for the log (an agent's ``run_end`` as ``agent_end``)."""
    own = flow_event_dict(item.event)
    if own is not None:
        kind = str(own.pop("kind"))
        data = own
    else:
        kind, data = entry_data(item.event)
        if isinstance(item.event, RunEnd):
            kind = "agent_end"
    if item.run:
        data["agent_run"] = item.run
    return kind, data


async def record_workflow(
    log: EventLog, run: WorkflowRun, *, run_id: str | None = None, owner: str = "workflow"
) -> WorkflowResult:
    """Run ``run`` to its end, writing every event to ``log`` as the run ``run_id`` (default: the
    workflow run's id), then ``run_end`` with the workflow's terminal state. A cancel requested
    through the log (``POST /v1/runs/{id}/cancel``, any process) cancels the workflow."""
    name = run_id or run.id
    await log.create(name, meta={"workflow": run.flow.name, "agents": list(run.flow.specs)})
    lease = await log.acquire(name, owner)
    watch = asyncio.ensure_future(log.cancelled(name))
    watch.add_done_callback(lambda task: None if task.cancelled() else run.cancel(task.result()))
    try:
        async for item in run:
            kind, data = workflow_entry(item)
            await log.append(lease, kind, data, agent=item.agent or None, parent=item.parent)
        result = await run.result()
        await log.append(lease, "run_end", {"terminal": result.terminal, "reason": result.reason})
        await log.close(lease, result.terminal)
        return result
    finally:
        watch.cancel()
        with contextlib.suppress(BaseException):
            await watch
