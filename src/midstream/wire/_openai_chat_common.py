"""What the OpenAI Chat Completions decoder and encoder share (see :mod:`.openai_chat`)."""

from __future__ import annotations

from midstream.message import StopReason

__all__ = ["DIALECT", "FINISH_REASONS"]

DIALECT = "openai-chat"

FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
    "error": "error",
}
"""OpenAI ``finish_reason`` -> normalized stop reason (anything else is ``other``)."""
