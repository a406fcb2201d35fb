"""What the OpenAI Responses decoder and encoder share (see :mod:`.openai_responses`)."""

from __future__ import annotations

from typing import Any

from midstream.message import StopReason

__all__ = ["DIALECT", "INCOMPLETE_REASONS", "Payload", "opt_str"]

DIALECT = "openai-responses"

INCOMPLETE_REASONS: dict[str, StopReason] = {
    "max_output_tokens": "max_tokens",
    "content_filter": "content_filter",
}
"""``incomplete_details.reason`` -> normalized stop reason (anything else is ``other``)."""

Payload = dict[str, Any]


def opt_str(payload: Payload, key: str) -> str | None:
    """``payload[key]`` if it is a string, else ``None``."""
    value = payload.get(key)
    return value if isinstance(value, str) else None
