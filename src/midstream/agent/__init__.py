"""The agent layer: tools, hooks, effects (journal, compensation) and checkpoints.

The pieces the agent loop is built from; each module documents its contract:

* :mod:`midstream.agent.tools` -- ``@tool``, :class:`Tool`, streamed fields and :class:`TempFileSink`;
* :mod:`midstream.agent.hooks` -- :class:`Hooks` (Python and shell hooks, decisions, isolation);
* :mod:`midstream.agent.monitor` -- :class:`StreamingMonitor` (per-tool streaming metrics);
* :mod:`midstream.agent.effects` -- journals, idempotency keys, :class:`EffectLedger`;
* :mod:`midstream.agent.checkpoint` / :mod:`midstream.agent.serialize` -- saving and resuming a run.
"""

from midstream.agent.hooks import Hooks
from midstream.agent.tools import Tool, tool

__all__ = ["Hooks", "Tool", "tool"]
