"""midstream: partial-safe LLM streaming.

Decode any provider's stream into one typed event stream (:mod:`midstream.wire`), fold it into an
honest :class:`Message` (:func:`accumulate`), and never mistake a partial value for a complete one.
"""

from midstream.core.accumulate import Accumulator, accumulate, events_from_message
from midstream.core.timeline import Timeline
from midstream.errors import (
    EventStreamError,
    IncompleteJSON,
    InvalidJSON,
    JSONError,
    LimitExceeded,
    LocalError,
    MidstreamError,
    RemoteError,
    RemoteProtocolError,
    TimelineError,
    UnknownDialect,
)
from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import (
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    StopReason,
    Terminal,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Accumulator",
    "Block",
    "BlockStart",
    "BlockStop",
    "CitationDelta",
    "Event",
    "EventStreamError",
    "IncompleteJSON",
    "InvalidJSON",
    "JSONError",
    "LimitExceeded",
    "LocalError",
    "Message",
    "MidstreamError",
    "RedactedThinkingBlock",
    "RemoteError",
    "RemoteProtocolError",
    "ResponseEnd",
    "ResponseStart",
    "ServerToolBlock",
    "SignatureDelta",
    "StopReason",
    "StreamError",
    "Terminal",
    "TextBlock",
    "TextDelta",
    "ThinkingBlock",
    "ThinkingDelta",
    "Timeline",
    "TimelineError",
    "ToolArgsDelta",
    "ToolCall",
    "Unknown",
    "UnknownBlock",
    "UnknownDialect",
    "Usage",
    "UsageUpdate",
    "__version__",
    "accumulate",
    "events_from_message",
]
