"""Multi-agent workflows: named agents handing work to each other through streamed tool arguments.

* :mod:`midstream.workflow.metrics` -- the streaming metrics file (``streaming-metrics.json``), its
  alerts and the ``streaming-errors`` log.
"""

from midstream.workflow.metrics import Alert, ErrorLog, MetricsFile, StreamingTally

__all__ = ["Alert", "ErrorLog", "MetricsFile", "StreamingTally"]
