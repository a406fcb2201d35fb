"""Which provider wrote a recorded response body: :func:`detect` reads the bytes, nothing else.

The evidence, strongest first:

- an AWS eventstream prelude whose CRC-32 checks out: ``bedrock``;
- server-sent events: their ``event:`` names (``message_start``, ``content_block_delta``:
  ``anthropic``; ``response.*``: ``openai-responses``), else their JSON payloads (``"type":
  "message_start"``; ``"object": "chat.completion.chunk"`` or ``choices``: ``openai-chat``;
  ``candidates`` or ``usageMetadata``: ``gemini``);
- one JSON object per line with Ollama's fields (``created_at`` and ``done``, with ``message`` or
  ``response``): ``ollama``;
- a JSON array of Gemini responses (``[{"candidates": ...``): ``gemini``.

Only the first :data:`SNIFF_BYTES` are read. Bytes with none of these marks give ``None``: a caller
should say so, not guess.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from midstream.wire.sse import SSEDecoder

__all__ = ["SNIFF_BYTES", "Detected", "detect"]

SNIFF_BYTES = 256 * 1024
"""How much of the input :func:`detect` looks at."""

_ANTHROPIC_TYPES = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta"}
)


@dataclass(frozen=True, slots=True)
class Detected:
    """A dialect name and the evidence it was chosen on (a short phrase, for a person to read)."""

    dialect: str
    evidence: str


def detect(data: bytes) -> Detected | None:
    """The dialect of a recorded streaming response body, or ``None`` when nothing is recognisable.

    Example::

        detect(b'event: message_start\\ndata: {"type": "message_start"}\\n\\n')
        # Detected(dialect='anthropic', evidence='SSE event names (message_start)')
    """
    head = data[:SNIFF_BYTES]
    return _eventstream(head) or _sse(head) or _ndjson(head) or _json_array(head)


def _eventstream(head: bytes) -> Detected | None:
    if len(head) < 16:
        return None
    total, headers_len, crc = struct.unpack_from(">III", head)
    if zlib.crc32(head[:8]) != crc or total < 16 or headers_len > total:
        return None
    return Detected("bedrock", "an AWS eventstream prelude with a valid CRC")


def _sse(head: bytes) -> Detected | None:
    decoder = SSEDecoder()
    try:
        events = decoder.feed(head + b"\n\n")  # dispatch an event the sniffed head cut short
    except Exception:  # a bound exceeded or undecodable text: not a stream we can name
        return None
    names = [e.event for e in events if e.event != "message"]
    for name in names:
        if name in _ANTHROPIC_TYPES:
            return Detected("anthropic", f"SSE event names ({name})")
        if name.startswith("response."):
            return Detected("openai-responses", f"SSE event names ({name})")
    for event in events:
        found = _payload_dialect(_json(event.data)) or _cut_payload_dialect(event.data)
        if found is not None:
            return Detected(found[0], f"SSE payloads ({found[1]})")
    return None


# Marks in the text of a JSON payload the sniffed head cut short (so it cannot be parsed).
_CUT_MARKS = (
    ('"candidates"', "gemini"),
    ('"chat.completion.chunk"', "openai-chat"),
    ('"type":"response.', "openai-responses"),
    ('"type": "response.', "openai-responses"),
    ('"type":"message_start"', "anthropic"),
)


def _cut_payload_dialect(data: str) -> tuple[str, str] | None:
    if not data.startswith("{"):
        return None
    return next(((dialect, mark) for mark, dialect in _CUT_MARKS if mark in data), None)


def _payload_dialect(payload: Any) -> tuple[str, str] | None:
    if not isinstance(payload, dict):
        return None
    kind = payload.get("type")
    if isinstance(kind, str) and kind in _ANTHROPIC_TYPES:
        return "anthropic", f'"type": "{kind}"'
    if isinstance(kind, str) and kind.startswith("response."):
        return "openai-responses", f'"type": "{kind}"'
    if payload.get("object") == "chat.completion.chunk" or "choices" in payload:
        return "openai-chat", "chat.completion.chunk"
    if "candidates" in payload or "usageMetadata" in payload:
        return "gemini", "candidates"
    return None


def _ndjson(head: bytes) -> Detected | None:
    for line in head.splitlines()[:8]:
        payload = _json(line)
        if not isinstance(payload, dict):
            continue
        if "created_at" in payload and "done" in payload and ("message" in payload or "response" in payload):
            return Detected("ollama", "NDJSON lines with Ollama's created_at and done")
    return None


def _json_array(head: bytes) -> Detected | None:
    text = head.lstrip()
    if not text.startswith(b"["):
        return None
    window = text[:4096]
    if b'"candidates"' in window or b'"usageMetadata"' in window:
        return Detected("gemini", "a JSON array of Gemini responses")
    return None


def _json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
