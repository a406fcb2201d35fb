"""The exported names are pinned: adding or removing one is a deliberate change to this list."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

import pytest

import midstream
import midstream.wire

MIDSTREAM_ALL = [
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

WIRE_ALL = [
    "DIALECTS",
    "Decoder",
    "DialectDecoder",
    "Encoder",
    "SSEDecoder",
    "SSEEvent",
    "decoder",
    "encode_sse",
    "encoder",
    "nonstream_body",
    "request_dialect",
]

# Names that are data, not code: type aliases and constants. ``help()`` on them shows the docs of
# their type, so they are documented where they are defined (module docs, comments) instead.
DATA_NAMES = {
    "Block",
    "Event",
    "StopReason",
    "Terminal",
    "__version__",
    "DIALECTS",
    "JsonEvent",
    "JsonPath",
    "ToolEvent",
    "StreamEvent",
}

# Methods of a typing.Protocol that only declare a signature.
UNDOCUMENTED_METHODS = {("DialectDecoder", "feed"), ("DialectDecoder", "close")}

MODULES = [(midstream, MIDSTREAM_ALL), (midstream.wire, WIRE_ALL)]


def test_lists_are_sorted_and_unique() -> None:
    for _, names in MODULES:
        assert names == sorted(set(names))


@pytest.mark.parametrize(("module", "expected"), MODULES, ids=lambda m: getattr(m, "__name__", ""))
def test_all_is_pinned(module: ModuleType, expected: list[str]) -> None:
    assert sorted(module.__all__) == expected
    assert len(module.__all__) == len(set(module.__all__))


def _exports() -> list[tuple[str, str]]:
    return [(module.__name__, name) for module, names in MODULES for name in names]


@pytest.mark.parametrize(("module_name", "name"), _exports())
def test_every_name_is_importable(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    namespace: dict[str, Any] = {}
    exec(f"from {module_name} import {name}", namespace)  # the way users write it
    assert namespace[name] is getattr(module, name)


@pytest.mark.parametrize(("module_name", "name"), _exports())
def test_every_name_has_a_docstring(module_name: str, name: str) -> None:
    obj = getattr(importlib.import_module(module_name), name)
    if name in DATA_NAMES:
        assert not (inspect.isclass(obj) or inspect.isfunction(obj))
        return
    assert inspect.isclass(obj) or inspect.isfunction(obj), f"{name} is neither a class nor a function"
    own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert own and own.strip(), f"{module_name}.{name} has no docstring of its own"
    if inspect.isclass(obj):
        for attr, value in vars(obj).items():
            if attr.startswith("_") or (name, attr) in UNDOCUMENTED_METHODS:
                continue
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if inspect.isfunction(func) or isinstance(func, property):
                assert func.__doc__, f"{module_name}.{name}.{attr} has no docstring"


def test_version() -> None:
    assert midstream.__version__ == "0.1.0"


def test_package_has_a_docstring() -> None:
    assert midstream.__doc__
    assert midstream.wire.__doc__


def test_dialects_are_known_names() -> None:
    known = {"anthropic", "openai-chat", "openai-responses", "gemini", "bedrock", "ollama"}
    assert set(midstream.wire.DIALECTS) <= known
