"""The request model, where the client has always exported it: see :mod:`midstream.request`.

The types are plain data defined in the vocabulary layer, so that the wire dialects can write request
bodies without the client; these are the same objects.
"""

from __future__ import annotations

from midstream.request import (
    TOOL_KINDS,
    ChatRequest,
    ToolResult,
    ToolSpec,
    Turn,
    UserText,
    as_turns,
    coerce_tools,
)

__all__ = [
    "TOOL_KINDS",
    "ChatRequest",
    "ToolResult",
    "ToolSpec",
    "Turn",
    "UserText",
    "as_turns",
    "coerce_tools",
]
