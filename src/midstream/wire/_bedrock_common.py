"""What the Bedrock decoder and encoder share (see :mod:`.bedrock`)."""

from __future__ import annotations

from midstream.message import StopReason

__all__ = ["CONVERSE_USAGE", "INVOKE_USAGE", "METRICS_KEY", "PROVIDER", "STOP_REASONS"]

PROVIDER = "bedrock"

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "other",
    "malformed_tool_use": "other",
    "model_context_window_exceeded": "context_window_exceeded",
}
"""Converse ``stopReason`` -> normalized stop reason (anything else is ``other``)."""

# Bedrock's token counts, named (input, output, cache read, cache write), in Converse ``metadata`` and
# in an invoke stream's invocation metrics.
CONVERSE_USAGE = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
INVOKE_USAGE = (
    "inputTokenCount",
    "outputTokenCount",
    "cacheReadInputTokenCount",
    "cacheWriteInputTokenCount",
)
# The key under which the final event of an invoke stream carries Bedrock's invocation metrics.
METRICS_KEY = "amazon-bedrock-invocationMetrics"
