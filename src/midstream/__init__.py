"""midstream: partial-safe LLM streaming.

Decode any provider's stream into one typed event stream (:mod:`midstream.wire`), fold it into an
honest :class:`Message` (:func:`accumulate`), and never mistake a partial value for a complete one.

Each public name is imported from its module on first use (PEP 562), so ``import midstream.wire`` or
``import midstream.events`` loads only the sans-IO layers, not the HTTP client or pydantic. The
names renamed in 0.1 (``MidStreamError``, ``MidStreamTimeout``, ``EventStreamError``) still resolve,
with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midstream.agent import (
        Agent,
        Hooks,
        Run,
        RunResult,
        Tool,
        tool,
    )
    from midstream.client.errors import (
        ProviderError,
        StreamInterrupted,
        StreamInterruptedByTimeout,
        StreamTimeout,
        TransportError,
    )
    from midstream.client.providers import MissingCredentials
    from midstream.client.stream import (
        AsyncClient,
        AsyncStream,
        Client,
        Stream,
        StreamEvent,
    )
    from midstream.client.timeouts import Timeouts
    from midstream.core.accumulate import (
        Accumulator,
        accumulate,
    )
    from midstream.core.partial_json import (
        ContainerEnd,
        ContainerStart,
        JsonEvent,
        JsonPath,
        Key,
        PartialJSON,
        StringDelta,
        StringStart,
        ValueComplete,
    )
    from midstream.core.retry import RetryPolicy
    from midstream.core.toolargs import (
        ToolArgs,
        ToolCallInvalid,
        ToolCallReady,
        ToolEvent,
        ToolFieldComplete,
        ToolFieldDelta,
        ToolFieldStart,
        ToolInputError,
        ToolTracker,
        with_tool_events,
    )
    from midstream.errors import (
        EventStreamFrameError,
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
    from midstream.metrics import StreamMetrics
    from midstream.request import (
        ChatRequest,
        ToolResult,
        ToolSpec,
    )
    from midstream.wire.canonical import events_from_message
    from midstream.wire.timeline import Timeline
    from midstream.workflow import Workflow

__version__ = "0.1.0"

# exported name -> the module that defines it; the TYPE_CHECKING imports above say the same for type
# checkers, and a test checks that the two agree.
_EXPORTS: dict[str, str] = {
    "Agent": "midstream.agent",
    "Hooks": "midstream.agent",
    "Run": "midstream.agent",
    "RunResult": "midstream.agent",
    "Tool": "midstream.agent",
    "tool": "midstream.agent",
    "Workflow": "midstream.workflow",
    "StreamInterrupted": "midstream.client.errors",
    "StreamInterruptedByTimeout": "midstream.client.errors",
    "ProviderError": "midstream.client.errors",
    "StreamTimeout": "midstream.client.errors",
    "TransportError": "midstream.client.errors",
    "MissingCredentials": "midstream.client.providers",
    "ChatRequest": "midstream.request",
    "ToolResult": "midstream.request",
    "ToolSpec": "midstream.request",
    "AsyncClient": "midstream.client.stream",
    "AsyncStream": "midstream.client.stream",
    "Client": "midstream.client.stream",
    "Stream": "midstream.client.stream",
    "StreamEvent": "midstream.client.stream",
    "Timeouts": "midstream.client.timeouts",
    "Accumulator": "midstream.core.accumulate",
    "accumulate": "midstream.core.accumulate",
    "ContainerEnd": "midstream.core.partial_json",
    "ContainerStart": "midstream.core.partial_json",
    "JsonEvent": "midstream.core.partial_json",
    "JsonPath": "midstream.core.partial_json",
    "Key": "midstream.core.partial_json",
    "PartialJSON": "midstream.core.partial_json",
    "StringDelta": "midstream.core.partial_json",
    "StringStart": "midstream.core.partial_json",
    "ValueComplete": "midstream.core.partial_json",
    "RetryPolicy": "midstream.core.retry",
    "ToolArgs": "midstream.core.toolargs",
    "ToolCallInvalid": "midstream.core.toolargs",
    "ToolCallReady": "midstream.core.toolargs",
    "ToolEvent": "midstream.core.toolargs",
    "ToolFieldComplete": "midstream.core.toolargs",
    "ToolFieldDelta": "midstream.core.toolargs",
    "ToolFieldStart": "midstream.core.toolargs",
    "ToolInputError": "midstream.core.toolargs",
    "ToolTracker": "midstream.core.toolargs",
    "with_tool_events": "midstream.core.toolargs",
    "EventStreamFrameError": "midstream.errors",
    "IncompleteJSON": "midstream.errors",
    "InvalidJSON": "midstream.errors",
    "JSONError": "midstream.errors",
    "LimitExceeded": "midstream.errors",
    "LocalError": "midstream.errors",
    "MidstreamError": "midstream.errors",
    "RemoteError": "midstream.errors",
    "RemoteProtocolError": "midstream.errors",
    "TimelineError": "midstream.errors",
    "UnknownDialect": "midstream.errors",
    "BlockStart": "midstream.events",
    "BlockStop": "midstream.events",
    "CitationDelta": "midstream.events",
    "Event": "midstream.events",
    "ResponseEnd": "midstream.events",
    "ResponseStart": "midstream.events",
    "SignatureDelta": "midstream.events",
    "StreamError": "midstream.events",
    "TextDelta": "midstream.events",
    "ThinkingDelta": "midstream.events",
    "ToolArgsDelta": "midstream.events",
    "Unknown": "midstream.events",
    "UsageUpdate": "midstream.events",
    "Block": "midstream.message",
    "Message": "midstream.message",
    "RedactedThinkingBlock": "midstream.message",
    "ServerToolBlock": "midstream.message",
    "StopReason": "midstream.message",
    "Terminal": "midstream.message",
    "TextBlock": "midstream.message",
    "ThinkingBlock": "midstream.message",
    "ToolCall": "midstream.message",
    "UnknownBlock": "midstream.message",
    "Usage": "midstream.message",
    "StreamMetrics": "midstream.metrics",
    "events_from_message": "midstream.wire.canonical",
    "Timeline": "midstream.wire.timeline",
}

__all__ = [
    "Accumulator",
    "Agent",
    "AsyncClient",
    "AsyncStream",
    "Block",
    "BlockStart",
    "BlockStop",
    "ChatRequest",
    "CitationDelta",
    "Client",
    "ContainerEnd",
    "ContainerStart",
    "Event",
    "EventStreamFrameError",
    "Hooks",
    "IncompleteJSON",
    "InvalidJSON",
    "JSONError",
    "JsonEvent",
    "JsonPath",
    "Key",
    "LimitExceeded",
    "LocalError",
    "Message",
    "MidstreamError",
    "MissingCredentials",
    "PartialJSON",
    "ProviderError",
    "RedactedThinkingBlock",
    "RemoteError",
    "RemoteProtocolError",
    "ResponseEnd",
    "ResponseStart",
    "RetryPolicy",
    "Run",
    "RunResult",
    "ServerToolBlock",
    "SignatureDelta",
    "StopReason",
    "Stream",
    "StreamError",
    "StreamEvent",
    "StreamInterrupted",
    "StreamInterruptedByTimeout",
    "StreamMetrics",
    "StreamTimeout",
    "StringDelta",
    "StringStart",
    "Terminal",
    "TextBlock",
    "TextDelta",
    "ThinkingBlock",
    "ThinkingDelta",
    "Timeline",
    "TimelineError",
    "Timeouts",
    "Tool",
    "ToolArgs",
    "ToolArgsDelta",
    "ToolCall",
    "ToolCallInvalid",
    "ToolCallReady",
    "ToolEvent",
    "ToolFieldComplete",
    "ToolFieldDelta",
    "ToolFieldStart",
    "ToolInputError",
    "ToolResult",
    "ToolSpec",
    "ToolTracker",
    "TransportError",
    "Unknown",
    "UnknownBlock",
    "UnknownDialect",
    "Usage",
    "UsageUpdate",
    "ValueComplete",
    "Workflow",
    "__version__",
    "accumulate",
    "events_from_message",
    "tool",
    "with_tool_events",
]


# old name -> (module, new name): served for one more release, with a DeprecationWarning
_RENAMED: dict[str, tuple[str, str]] = {
    "EventStreamError": ("midstream.errors", "EventStreamFrameError"),
    "MidStreamError": ("midstream.client.errors", "StreamInterrupted"),
    "MidStreamTimeout": ("midstream.client.errors", "StreamInterruptedByTimeout"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _RENAMED:
            where, new = _RENAMED[name]
            warnings.warn(f"midstream.{name} is deprecated: it is now called {new}", DeprecationWarning, 2)
            return getattr(importlib.import_module(where), new)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
