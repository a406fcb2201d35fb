"""The Gemini encoder: normalized events -> a ``streamGenerateContent`` body (see :mod:`.gemini`)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from midstream.errors import LocalError
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
    UsageUpdate,
)
from midstream.message import Message, StopReason, TextBlock, ThinkingBlock, ToolCall, Usage
from midstream.wire._base import Encoder
from midstream.wire._gemini_parts import (
    PART_META,
    PROVIDER,
    SERVER_PARTS,
    Segment,
    Unstreamable,
    format_json_path,
    leaves,
    synthetic_call_id,
)
from midstream.wire.sse import encode_sse

__all__ = ["EncoderFraming", "ErrorShape", "GeminiEncoder", "whole_body", "wire_finish_reason"]

EncoderFraming = Literal["sse", "json-array"]
ErrorShape = Literal["raw", "data"]

# Normalized stop reason -> finishReason, for ends that carry no Gemini reason of their own.
_FINISH_FOR_STOP: dict[str, str] = {
    "end_turn": "STOP",
    "tool_use": "STOP",
    "stop_sequence": "STOP",
    "max_tokens": "MAX_TOKENS",
    "context_window_exceeded": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "refusal": "SAFETY",
}


def wire_finish_reason(stop: StopReason | None, raw: str | None = None) -> str:
    """The ``finishReason`` Gemini writes: the raw one when it is a Gemini name, else Gemini's name for
    ``stop`` (``STOP`` when there is none)."""
    if raw and _GEMINI_NAME.fullmatch(raw):
        return raw
    return _FINISH_FOR_STOP.get(stop or "end_turn", "OTHER")


_BLOCK_REASONS = frozenset({"SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"})
_STATUS_FOR_KIND: dict[str, tuple[int, str]] = {
    "overloaded": (503, "UNAVAILABLE"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "quota": (429, "RESOURCE_EXHAUSTED"),
    "server": (500, "INTERNAL"),
    "timeout": (504, "DEADLINE_EXCEEDED"),
    "invalid_request": (400, "INVALID_ARGUMENT"),
    "auth": (401, "UNAUTHENTICATED"),
    "permission": (403, "PERMISSION_DENIED"),
    "not_found": (404, "NOT_FOUND"),
}
_RESERVED_PARTS = frozenset({"text", "functionCall", *PART_META, *SERVER_PARTS})
_GEMINI_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass
class _Chunk:
    parts: list[dict[str, Any]] | None  # None: a chunk without candidates
    block: int | None = None  # the block whose content the parts are
    finish: str | None = None
    citations: list[Any] = field(default_factory=list)
    feedback: dict[str, Any] | None = None


@dataclass
class _EncBlock:
    start: BlockStart
    args: list[str] = field(default_factory=list)
    signature: list[str] | None = None
    citations: list[Any] = field(default_factory=list)


class GeminiEncoder(Encoder):
    """Events -> a Gemini ``streamGenerateContent`` body, as the Gemini API writes it.

    ``framing="sse"`` writes ``data: <json>\\r\\n\\r\\n`` in Gemini's JSON style (a space after each
    colon, none after commas); ``"json-array"`` the pretty-printed array of the non-SSE endpoint. Every
    text delta is one chunk carrying the usage known so far; chunks are written one event late so that
    the finishReason can join the last one when it holds answer text (else it comes on an empty text
    part, as Gemini does after a function call). Thinking signatures travel on the part after their
    block (see :mod:`midstream.wire.gemini`). ``partial_args=True`` streams tool arguments
    the Vertex way (``partialArgs`` by JSON path; string pieces sized with ``random.Random(seed)`` when
    ``realism``), except for arguments holding an empty object or array, which that form cannot
    express. A stream error is written as Gemini's raw pretty-printed object (``error_shape="raw"``) or
    as a ``data:`` event. ``realism`` escapes ``<`` and ``>`` as Gemini does and adds token details.

    Not expressible, so not written: redacted thinking and blocks no Gemini part can hold (both raise
    :class:`~midstream.errors.LocalError`), ``cache_write_tokens``, a tool call that did not complete,
    :class:`~midstream.events.Unknown` events, and whether a text or thinking block was complete: a
    ``MAX_TOKENS`` finish reads back as cutting the block the response ends in, any other end as
    closing it.
    """

    dialect = PROVIDER

    def __init__(
        self,
        *,
        framing: EncoderFraming = "sse",
        realism: bool = True,
        seed: int | None = 0,
        partial_args: bool = False,
        error_shape: ErrorShape = "raw",
    ) -> None:
        if framing not in get_args(EncoderFraming) or error_shape not in get_args(ErrorShape):
            raise LocalError("framing must be 'sse' or 'json-array', error_shape 'raw' or 'data'")
        self.framing, self.realism, self.partial_args, self.error_shape = (
            framing,
            realism,
            partial_args,
            error_shape,
        )
        self._rng = random.Random(seed)
        self._model: str | None = None
        self._id: str | None = None
        self._usage = Usage()
        self._pending: _Chunk | None = None  # written once the next chunk (or the end) is known
        self._written = 0
        self._content = False
        self._blocks: dict[int, _EncBlock] = {}
        self._carry: str | None = None  # a thinking signature waiting for the next part
        self._calls = 0
        self._failed = False
        self._handlers: dict[str, Callable[[Any], bytes]] = {
            "response_start": self._start,
            "block_start": self._block_start,
            "text_delta": self._text,
            "thinking_delta": self._thought,
            "signature_delta": self._signature,
            "citation_delta": self._citation,
            "tool_args_delta": self._args,
            "block_stop": self._block_stop,
            "usage_update": self._usage_update,
            "response_end": self._end,
            "stream_error": self._error,
            "unknown": lambda e: b"",
        }

    def encode(self, event: Event) -> bytes:
        """The bytes for one event; chunks are written one event late so the end can join the last."""
        self._starting(event)
        return self._handlers[event.kind](event)

    # -- events ----------------------------------------------------------------------------------

    def _start(self, event: ResponseStart) -> bytes:
        self._model, self._id = event.model, event.id
        self._usage = self._usage.merge(event.usage)
        return b""

    def _block_start(self, event: BlockStart) -> bytes:
        if event.type == "redacted_thinking":
            raise LocalError("Gemini has no redacted thinking to write")
        self._blocks[event.index] = _EncBlock(event)
        return b""

    def _text(self, event: TextDelta) -> bytes:
        return self._part({"text": event.text}, event.index) if event.text else b""

    def _thought(self, event: ThinkingDelta) -> bytes:
        return self._part({"text": event.text, "thought": True}, event.index) if event.text else b""

    def _signature(self, event: SignatureDelta) -> bytes:
        block = self._blocks[event.index]
        block.signature = [*(block.signature or []), event.signature]
        return b""

    def _citation(self, event: CitationDelta) -> bytes:
        if self._pending is not None and self._pending.block == event.index:
            self._pending.citations.append(event.citation)
        else:
            self._blocks[event.index].citations.append(event.citation)
        return b""

    def _args(self, event: ToolArgsDelta) -> bytes:
        self._blocks[event.index].args.append(event.fragment)
        return b""

    def _usage_update(self, event: UsageUpdate) -> bytes:
        self._usage = self._usage.merge(event.usage)
        return b""

    def _block_stop(self, event: BlockStop) -> bytes:
        block = self._blocks.pop(event.index)
        kind, start = block.start.type, block.start
        if kind == "thinking" and block.signature is not None:
            out = self._part({"text": ""}) if self._carry is not None else b""
            self._carry = "".join(block.signature)
            return out
        if kind == "text" and block.citations:
            return self._push(_Chunk([{"text": ""}], event.index, citations=block.citations))
        if kind == "tool_call":
            return self._call(block) if event.complete else b""
        if kind in ("server_tool", "unknown"):
            name = start.raw_type or ""
            if (
                ("".join(block.args) and name != "toolCall")  # a toolCall's args are in its part
                or name in _RESERVED_PARTS - SERVER_PARTS
                or ((kind == "server_tool") != (name in SERVER_PARTS))
            ):
                raise LocalError(f"a {kind} block {name!r} has no Gemini part to be written as")
            return self._part({name: start.data})
        return b""

    def _error(self, event: StreamError) -> bytes:
        out = self._finish_parts(None)
        self._failed = True
        raw = event.raw
        if not (isinstance(raw, dict) and isinstance(raw.get("error"), dict)):
            code, status = _STATUS_FOR_KIND.get(event.error_kind, (500, "UNKNOWN"))
            raw = {"error": {"code": event.status or code, "message": event.message, "status": status}}
        if self.framing == "json-array" or self.error_shape == "data":
            return out + self._frame(raw)
        return out + self._escape(json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()

    def _end(self, event: ResponseEnd) -> bytes:
        if self._failed:
            return self._close_array()
        if event.terminal in ("failed", "cancelled") or (
            event.stop_reason is None and event.terminal != "completed"
        ):
            return self._finish_parts(None)  # the body just stops: no finishReason, no "]"
        finish = wire_finish_reason(event.stop_reason, event.raw_stop_reason)
        blocked = event.stop_reason == "content_filter" and finish in _BLOCK_REASONS
        if blocked and not self._content and self._carry is None:  # nothing answered: a blocked prompt
            out = self._push(_Chunk(None, feedback={"blockReason": finish}))
            return out + self._flush() + self._close_array()
        return self._finish_parts(finish) + self._close_array()

    # -- chunks ----------------------------------------------------------------------------------

    def _part(self, part: dict[str, Any], block: int | None = None) -> bytes:
        if self._carry is not None:
            part["thoughtSignature"], self._carry = self._carry, None
        citations: list[Any] = []
        if block is not None and block in self._blocks:
            citations, self._blocks[block].citations = self._blocks[block].citations, []
        return self._push(_Chunk([part], block, citations=citations))

    def _push(self, chunk: _Chunk) -> bytes:
        out = self._flush()
        self._pending = chunk
        self._content = self._content or chunk.parts is not None
        return out

    def _flush(self) -> bytes:
        chunk, self._pending = self._pending, None
        return b"" if chunk is None else self._frame(self._object(chunk))

    def _finish_parts(self, finish: str | None) -> bytes:
        """Write what is still held; with ``finish``, the last chunk carries it."""
        out = b""
        if self._carry is not None or (finish is not None and not self._joinable()):
            out += self._part({"text": ""})
        if finish is not None:
            assert self._pending is not None
            self._pending.finish = finish
        elif (
            self._pending is None
            and self._written == 0
            and (self._model or self._id or self._usage != Usage())
        ):
            self._pending = _Chunk(None)  # nothing else to carry the model, id and usage
        return out + self._flush()

    def _joinable(self) -> bool:
        """Whether the finishReason can ride on the held chunk: only on one holding answer text."""
        pending = self._pending
        if pending is None or pending.parts is None or len(pending.parts) != 1:
            return False
        part = pending.parts[0]
        return "text" in part and "thought" not in part

    def _call(self, block: _EncBlock) -> bytes:
        start = block.start
        raw = "".join(block.args)
        try:
            args = json.loads(raw) if raw else None
        except ValueError as exc:
            raise LocalError(f"tool call {start.id!r} arguments are not JSON") from exc
        call: dict[str, Any] = {"name": start.name or ""}
        extra = {} if start.id == synthetic_call_id(self._id, self._calls) else {"id": start.id}
        self._calls += 1
        if self.partial_args and isinstance(args, dict):
            try:
                found = leaves(args, ())
            except Unstreamable:
                pass
            else:
                return self._partial_call({**call, **extra, "willContinue": True}, found)
        if args is not None:
            call["args"] = args
        return self._part({"functionCall": {**call, **extra}})

    def _partial_call(self, head: dict[str, Any], found: list[tuple[tuple[Segment, ...], Any]]) -> bytes:
        out = self._part({"functionCall": head})
        for path, value in found:
            for arg in self._partial_args(format_json_path(path), value):
                out += self._part({"functionCall": {"partialArgs": [arg], "willContinue": True}})
        return out + self._part({"functionCall": {}})

    def _partial_args(self, path: str, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, str):
            pieces = self._pieces(value)
            args = [{"jsonPath": path, "stringValue": p, "willContinue": True} for p in pieces]
            return [*args, {"jsonPath": path, "stringValue": ""}]
        if isinstance(value, bool):
            return [{"jsonPath": path, "boolValue": value}]
        if value is None:
            return [{"jsonPath": path, "nullValue": "NULL_VALUE"}]
        return [{"jsonPath": path, "numberValue": value}]

    def _pieces(self, text: str) -> list[str]:
        if not self.realism:
            return [text] if text else []
        pieces: list[str] = []
        at = 0
        while at < len(text):
            size = self._rng.randint(1, 24)
            pieces.append(text[at : at + size])
            at += size
        return pieces

    def _object(self, chunk: _Chunk) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        if chunk.parts is not None:
            candidate: dict[str, Any] = {"content": {"parts": chunk.parts, "role": "model"}}
            if chunk.citations:
                candidate["citationMetadata"] = {"citationSources": chunk.citations}
            if chunk.finish is not None:
                candidate["finishReason"] = chunk.finish
            obj["candidates"] = [candidate]
        if chunk.feedback is not None:
            obj["promptFeedback"] = chunk.feedback
        meta = self._usage_metadata()
        if meta:
            obj["usageMetadata"] = meta
        if self._model is not None:
            obj["modelVersion"] = self._model
        if self._id is not None:
            obj["responseId"] = self._id
        return obj

    def _usage_metadata(self) -> dict[str, Any]:
        usage = self._usage
        meta: dict[str, Any] = {}
        answer = None
        if usage.input_tokens is not None:
            meta["promptTokenCount"] = usage.input_tokens
        if usage.output_tokens is not None:
            answer = max(usage.output_tokens - (usage.reasoning_tokens or 0), 0)
            meta["candidatesTokenCount"] = answer
        if usage.input_tokens is not None or usage.output_tokens is not None:
            meta["totalTokenCount"] = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        if usage.cache_read_tokens is not None:
            meta["cachedContentTokenCount"] = usage.cache_read_tokens
        if self.realism and usage.input_tokens is not None:
            meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.input_tokens}]
        # Models that think report thoughtsTokenCount and, in the captures, no candidate details.
        if self.realism and answer is not None and usage.reasoning_tokens is None:
            meta["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer}]
        if usage.reasoning_tokens is not None:
            meta["thoughtsTokenCount"] = usage.reasoning_tokens
        return meta

    def _frame(self, obj: dict[str, Any]) -> bytes:
        self._written += 1
        if self.framing == "sse":
            text = json.dumps(obj, separators=(",", ": "), ensure_ascii=False)
            return encode_sse(self._escape(text), newline="\r\n")
        text = json.dumps(obj, indent=2, ensure_ascii=False)
        return ("[" if self._written == 1 else "\n,\r\n").encode() + self._escape(text).encode()

    def _close_array(self) -> bytes:
        if self.framing != "json-array":
            return b""
        return b"[]" if self._written == 0 else b"\n]"

    def _escape(self, text: str) -> str:
        if not self.realism:
            return text
        return text.replace("<", "\\u003c").replace(">", "\\u003e")


# -- the answer not streamed ---------------------------------------------------------------------------


def whole_body(message: Message, events: Sequence[Event] = (), **_: Any) -> dict[str, Any]:
    """``generateContent``'s answer: one ``GenerateContentResponse`` with the whole candidate."""
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, ThinkingBlock):
            parts.append({"text": block.thinking, "thought": True})
        elif isinstance(block, TextBlock):
            parts.append({"text": block.text})
        elif isinstance(block, ToolCall):
            given = block.input if block.input is not None else {}
            parts.append({"functionCall": {"name": block.name, "args": given}})
    usage = message.usage
    thoughts = usage.reasoning_tokens or 0
    metadata = {
        "promptTokenCount": usage.input_tokens or 0,
        "candidatesTokenCount": (usage.output_tokens or 0) - thoughts,  # Gemini counts thoughts apart
        "totalTokenCount": usage.total_tokens or 0,
    }
    if usage.reasoning_tokens is not None:
        metadata["thoughtsTokenCount"] = thoughts
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": wire_finish_reason(message.stop_reason, message.raw_stop_reason),
                "index": 0,
            }
        ],
        "usageMetadata": metadata,
        "modelVersion": message.model,
        "responseId": message.id,
    }
