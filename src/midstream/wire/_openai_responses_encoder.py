"""The Responses encoder: normalized events -> a Responses API SSE body (see :mod:`.openai_responses`)."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from midstream.errors import LocalError
from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import Message, Usage
from midstream.wire._base import Encoder
from midstream.wire._openai_responses_common import DIALECT, INCOMPLETE_REASONS, Payload, opt_str
from midstream.wire.canonical import events_from_message
from midstream.wire.sse import SSEDecoder, encode_sse

__all__ = ["OpenAIResponsesEncoder", "whole_body"]

_HEX = "0123456789abcdef"
_ALNUM = string.ascii_letters + string.digits
_REASONS_BACK: dict[str, str] = {stop: reason for reason, stop in INCOMPLETE_REASONS.items()}
# Error kinds written back as the OpenAI error type that classifies to the same kind.
_KIND_CODES: dict[str, str] = {
    "overloaded": "overloaded",
    "rate_limited": "rate_limit_exceeded",
    "server": "server_error",
    "invalid_request": "invalid_request_error",
    "auth": "invalid_api_key",
    "permission": "permission_denied",
    "not_found": "not_found",
    "quota": "insufficient_quota",
    "timeout": "timeout_error",
}


@dataclass
class _OutBlock:
    kind: str  # text | thinking | call | redacted | server
    item: _OutItem
    part: int
    texts: list[str] = field(default_factory=list)
    citations: list[Any] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts)


@dataclass
class _OutItem:
    kind: str  # message | reasoning | function_call | server
    output_index: int
    id: str
    blocks: list[_OutBlock] = field(default_factory=list)
    call_id: str = ""
    name: str | None = None
    data: Any = None
    encrypted: str | None = None
    open: int = 0
    sealed: bool = False  # no further block joins this item
    phase: str | None = None  # a message item's phase (commentary / final_answer)
    incomplete: bool = False
    done: bool = False

    def parts(self, kind: str) -> list[_OutBlock]:
        return [b for b in self.blocks if b.kind == kind]

    def render(self, final: bool) -> Payload:
        """The item as ``output_item.added`` (``final=False``) or ``.done`` / the response show it."""
        status = ("incomplete" if self.incomplete else "completed") if final else "in_progress"
        if self.kind == "message":
            content = [_text_part(b) for b in self.parts("text")] if final else []
            message: Payload = {
                "id": self.id,
                "type": "message",
                "status": status,
                "content": content,
                "role": "assistant",
            }
            if self.phase is not None:
                message["phase"] = self.phase
            return message
        if self.kind == "reasoning":
            item: Payload = {"id": self.id, "type": "reasoning"}
            if self.encrypted is not None:
                item["encrypted_content"] = self.encrypted
            summary = self.parts("thinking") if final else []
            item["summary"] = [{"type": "summary_text", "text": b.text} for b in summary]
            return item
        if self.kind == "function_call":
            arguments = "".join(b.text for b in self.blocks) if final else ""
            return {
                "id": self.id,
                "type": "function_call",
                "status": status,
                "arguments": arguments,
                "call_id": self.call_id,
                "name": self.name or "",
            }
        return self._server_item()

    def _server_item(self) -> Payload:
        if isinstance(self.data, dict) and isinstance(self.data.get("type"), str):
            return self.data
        # A server tool from another provider: wrap what the block holds in an item of its raw type.
        item: Payload = {"id": self.id, "type": self.name or "server_tool", "status": "completed"}
        arguments = "".join(b.text for b in self.blocks)
        if arguments:
            item["arguments"] = arguments
        if self.data is not None:
            item["content"] = self.data
        return item


def _text_part(block: _OutBlock) -> Payload:
    return {"type": "output_text", "annotations": list(block.citations), "logprobs": [], "text": block.text}


def _usage_object(usage: Usage) -> Payload | None:
    # Counts midstream does not know are left out rather than written as 0, so they decode as unknown.
    if usage == Usage():
        return None
    obj: Payload = {}
    if usage.input_tokens is not None:
        obj["input_tokens"] = usage.input_tokens
    details = {
        k: v
        for k, v in (
            ("cached_tokens", usage.cache_read_tokens),
            ("cache_write_tokens", usage.cache_write_tokens),
        )
        if v is not None
    }
    if details:
        obj["input_tokens_details"] = details
    if usage.output_tokens is not None:
        obj["output_tokens"] = usage.output_tokens
    if usage.reasoning_tokens is not None:
        obj["output_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.total_tokens is not None:
        obj["total_tokens"] = usage.total_tokens
    return obj


class OpenAIResponsesEncoder(Encoder):
    """Events -> Responses API SSE bytes, as OpenAI writes them (2025-09 key order).

    Writes ``response.created`` and ``response.in_progress``, then per output item
    ``output_item.added``, its part / delta / ``.done`` events and ``output_item.done`` with the full
    item, and finally ``response.completed`` (or ``response.incomplete`` / ``response.failed``) with the
    whole response object, ``output`` and ``usage`` included; ``sequence_number`` counts from 0.

    Blocks become items so that the decoder gives them back in order: consecutive text blocks share one
    ``message`` item (a content part each); consecutive thinking blocks share one ``reasoning`` item
    (a summary part each), and a redacted_thinking block right after them is that item's
    ``encrypted_content`` (alone, it is an item of its own); each tool call is a ``function_call`` item
    (``call_id`` = the block id); a server_tool block whose ``data`` is a Responses item is written as that
    item, anything else (and unknown blocks) as an item of its ``raw_type``. Thinking signatures have no
    place in this format and are dropped. A block stopped ``complete=False`` gets no ``.done`` events,
    and its item is listed ``incomplete`` in the final response. The stop reason is not written: the
    decoder derives it (``tool_use`` when a function call is present). A ``truncated`` end without a stop
    reason, or a ``cancelled`` one, writes no terminal event: the stream just stops. A response without
    an id gets a generated one.

    ``realism=True`` (the default) adds the ``obfuscation`` padding OpenAI puts on delta events and
    random ids, drawn from ``random.Random(seed)``; ``realism=False`` writes neither (ids are counters).
    """

    dialect = DIALECT

    def __init__(
        self,
        *,
        realism: bool = True,
        seed: int | None = 0,
        created_at: int = 1758034836,
        echo: Mapping[str, Any] | None = None,
    ) -> None:
        self.realism = realism
        self.created_at = created_at
        self.echo = dict(echo or {})
        self._rng = random.Random(seed)
        self._seq = 0
        self._counter = 0
        self._started = self._ended = self._failed = False
        self._response_id = ""
        self._model: str | None = None
        self._items: list[_OutItem] = []
        self._blocks: dict[int, _OutBlock] = {}
        self._usage = Usage()
        self._error: Payload | None = None
        self._handlers: dict[str, Callable[[Any], bytes]] = {
            "response_start": self._start,
            "block_start": self._block_start,
            "text_delta": self._text_delta,
            "thinking_delta": self._thinking_delta,
            "tool_args_delta": self._args_delta,
            "citation_delta": self._citation,
            "signature_delta": lambda event: b"",
            "block_stop": self._block_stop,
            "usage_update": self._usage_update,
            "stream_error": self._stream_error,
            "response_end": self._end,
            "unknown": self._unknown,
        }

    def encode(self, event: Event) -> bytes:
        """The bytes for one event (``b""`` for events written later or never; nothing after the end)."""
        self._starting(event)
        if self._ended:
            return b""
        out = b""
        if not self._started and event.kind != "response_start":
            out = self._start(ResponseStart(provider=DIALECT))
        return out + self._handlers[event.kind](event)

    # -- framing ---------------------------------------------------------------------------------

    def _emit(self, event_type: str, fields: Payload) -> bytes:
        payload = {"type": event_type, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_sse(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), event=event_type)

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        if not self.realism:
            return f"{prefix}_{self._counter}"
        if prefix == "call":
            return "call_" + "".join(self._rng.choice(_ALNUM) for _ in range(24))
        return f"{prefix}_" + "".join(self._rng.choice(_HEX) for _ in range(50))

    def _obfuscation(self, delta: str) -> Payload:
        # Captured deltas are padded to a multiple of 16 characters with random letters and digits.
        if not self.realism:
            return {}
        return {"obfuscation": "".join(self._rng.choice(_ALNUM) for _ in range(16 - len(delta) % 16))}

    def _response(self, status: str, **fields: Any) -> Payload:
        final = status != "in_progress"
        response: Payload = {
            "id": self._response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": fields.get("error"),
            "incomplete_details": fields.get("incomplete_details"),
            "instructions": None,
            "max_output_tokens": None,
            "max_tool_calls": None,
            "model": self._model,
            "output": [item.render(True) for item in self._items] if final else [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "prompt_cache_key": None,
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": None,
            "service_tier": "default",
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": _usage_object(self._usage) if final else None,
            "user": None,
            "metadata": {},
        }
        for key, value in self.echo.items():  # what the request set, as the API repeats it
            if key in response:
                default = response[key]
                merge = isinstance(default, dict) and isinstance(value, dict)
                response[key] = {**default, **value} if merge else value
        return response

    # -- items -----------------------------------------------------------------------------------

    def _item_done(self, item: _OutItem) -> bytes:
        if not item.sealed or item.open or item.incomplete or item.done or self._failed:
            return b""
        item.done = True
        return self._emit(
            "response.output_item.done", {"output_index": item.output_index, "item": item.render(True)}
        )

    def _new_item(self, kind: str, prefix: str, **fields: Any) -> tuple[_OutItem, bytes]:
        out = b""
        if self._items:
            last = self._items[-1]
            last.sealed = True
            out = self._item_done(last)
        item = _OutItem(kind, len(self._items), self._new_id(prefix), **fields)
        self._items.append(item)
        added = {"output_index": item.output_index, "item": item.render(False)}
        return item, out + self._emit("response.output_item.added", added)

    def _join(self, kind: str, prefix: str, phase: str | None = None) -> tuple[_OutItem, bytes]:
        last = self._items[-1] if self._items else None
        if last is not None and last.kind == kind and not last.sealed and last.phase == phase:
            return last, b""
        return self._new_item(kind, prefix, phase=phase)

    def _add_block(self, index: int, kind: str, item: _OutItem) -> _OutBlock:
        block = _OutBlock(kind, item, len(item.parts(kind)))
        item.blocks.append(block)
        item.open += 1
        self._blocks[index] = block
        return block

    def _block(self, index: int, *kinds: str) -> _OutBlock:
        block = self._blocks.get(index)
        if block is None or block.kind not in kinds:
            raise LocalError(f"no open {'/'.join(kinds)} block {index} to encode into")
        return block

    def _where(self, block: _OutBlock) -> Payload:
        return {"item_id": block.item.id, "output_index": block.item.output_index}

    # -- events ----------------------------------------------------------------------------------

    def _start(self, event: ResponseStart) -> bytes:
        self._started = True
        self._response_id = event.id or self._new_id("resp")
        self._model = event.model
        self._usage = self._usage.merge(event.usage)
        return self._emit("response.created", {"response": self._response("in_progress")}) + self._emit(
            "response.in_progress", {"response": self._response("in_progress")}
        )

    def _block_start(self, event: BlockStart) -> bytes:
        if event.type == "text":
            phase = event.data.get("phase") if isinstance(event.data, dict) else None
            item, out = self._join("message", "msg", phase if isinstance(phase, str) else None)
            block = self._add_block(event.index, "text", item)
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            fields = {**self._where(block), "content_index": block.part, "part": part}
            return out + self._emit("response.content_part.added", fields)
        if event.type == "thinking":
            item, out = self._join("reasoning", "rs")
            block = self._add_block(event.index, "thinking", item)
            part = {"type": "summary_text", "text": ""}
            fields = {**self._where(block), "summary_index": block.part, "part": part}
            return out + self._emit("response.reasoning_summary_part.added", fields)
        if event.type == "redacted_thinking":
            last = self._items[-1] if self._items else None
            if last is not None and last.kind == "reasoning" and not last.sealed:
                item, out = last, b""
                item.encrypted = str(event.data or "")
            else:
                item, out = self._new_item("reasoning", "rs", encrypted=str(event.data or ""))
            item.sealed = True
            self._add_block(event.index, "redacted", item)
            return out
        if event.type == "tool_call":
            call_id = event.id or self._new_id("call")
            item, out = self._new_item("function_call", "fc", call_id=call_id, name=event.name)
        else:
            item, out = self._new_item("server", "ws", name=event.raw_type, data=event.data)
        item.sealed = True
        self._add_block(event.index, "call" if event.type == "tool_call" else "server", item)
        return out

    def _text_delta(self, event: TextDelta) -> bytes:
        block = self._block(event.index, "text")
        block.texts.append(event.text)
        fields = {
            **self._where(block),
            "content_index": block.part,
            "delta": event.text,
            "logprobs": [],
            **self._obfuscation(event.text),
        }
        return self._emit("response.output_text.delta", fields)

    def _thinking_delta(self, event: ThinkingDelta) -> bytes:
        block = self._block(event.index, "thinking")
        block.texts.append(event.text)
        fields = {
            **self._where(block),
            "summary_index": block.part,
            "delta": event.text,
            **self._obfuscation(event.text),
        }
        return self._emit("response.reasoning_summary_text.delta", fields)

    def _args_delta(self, event: ToolArgsDelta) -> bytes:
        block = self._block(event.index, "call", "server")
        block.texts.append(event.fragment)
        if block.kind == "server":
            return b""
        fields = {**self._where(block), "delta": event.fragment, **self._obfuscation(event.fragment)}
        return self._emit("response.function_call_arguments.delta", fields)

    def _citation(self, event: CitationDelta) -> bytes:
        block = self._block(event.index, "text")
        block.citations.append(event.citation)
        fields = {
            **self._where(block),
            "content_index": block.part,
            "annotation_index": len(block.citations) - 1,
            "annotation": event.citation,
        }
        return self._emit("response.output_text.annotation.added", fields)

    def _block_stop(self, event: BlockStop) -> bytes:
        block = self._block(event.index, "text", "thinking", "call", "redacted", "server")
        del self._blocks[event.index]
        item = block.item
        item.open -= 1
        if not event.complete:
            item.incomplete = item.sealed = True
            return b""
        where, text = self._where(block), block.text
        out = b""
        if block.kind == "text":
            out = self._emit(
                "response.output_text.done",
                {**where, "content_index": block.part, "text": text, "logprobs": []},
            )
            out += self._emit(
                "response.content_part.done",
                {**where, "content_index": block.part, "part": _text_part(block)},
            )
        elif block.kind == "thinking":
            out = self._emit(
                "response.reasoning_summary_text.done", {**where, "summary_index": block.part, "text": text}
            )
            part = {"type": "summary_text", "text": text}
            out += self._emit(
                "response.reasoning_summary_part.done", {**where, "summary_index": block.part, "part": part}
            )
        elif block.kind == "call":
            out = self._emit("response.function_call_arguments.done", {**where, "arguments": text})
        return out + self._item_done(item)

    def _usage_update(self, event: UsageUpdate) -> bytes:
        self._usage = self._usage.merge(event.usage)
        return b""

    def _stream_error(self, event: StreamError) -> bytes:
        raw = event.raw if isinstance(event.raw, dict) else {}
        etype = opt_str(raw, "type")
        code = opt_str(raw, "code")
        if etype in (None, "error"):
            etype = code or _KIND_CODES.get(event.error_kind, event.error_kind)
        error = {"type": etype, "code": code or etype, "message": event.message, "param": raw.get("param")}
        self._error, self._failed = error, True
        return self._emit("error", {"error": error})

    def _end(self, event: ResponseEnd) -> bytes:
        self._usage = self._usage.merge(event.usage)
        out = b""
        for item in self._items:
            item.sealed = True
            out += self._item_done(item)
        self._ended = True
        if event.terminal == "failed" or self._failed:
            error = self._error or {"code": "server_error", "message": "The response failed."}
            failed = {"code": error.get("code"), "message": error.get("message")}
            return out + self._emit("response.failed", {"response": self._response("failed", error=failed)})
        stop = event.stop_reason
        if event.terminal == "completed" and stop not in _REASONS_BACK:
            return out + self._emit("response.completed", {"response": self._response("completed")})
        if stop is None or event.terminal == "cancelled":
            return out  # the connection ended without a terminal event
        reason = _REASONS_BACK.get(stop) or event.raw_stop_reason or stop
        response = self._response("incomplete", incomplete_details={"reason": reason})
        return out + self._emit("response.incomplete", {"response": response})

    def _unknown(self, event: Unknown) -> bytes:
        # Responses events midstream does not normalize (server tool progress, ...) are replayed.
        if not (isinstance(event.payload, dict) and event.raw_type.startswith("response.")):
            return b""
        fields = {k: v for k, v in event.payload.items() if k not in ("type", "sequence_number")}
        return self._emit(event.raw_type, fields)


# -- the answer not streamed ---------------------------------------------------------------------------


def whole_body(
    message: Message,
    events: Sequence[Event] = (),
    *,
    realism: bool = True,
    seed: int | None = 0,
    created_at: int = 1758034836,
    echo: Mapping[str, Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """The Responses API's answer when not streamed: the final ``response`` object its stream ends with,
    written by the encoder itself from ``events`` (the canonical events of ``message`` when none are
    given), so that streamed and non-streamed answers cannot drift apart."""
    encoder = OpenAIResponsesEncoder(realism=realism, seed=seed, created_at=created_at, echo=echo)
    data = encoder.encode_all(events or events_from_message(message))
    final: dict[str, Any] = {}
    for sse in SSEDecoder().feed(data):
        payload = json.loads(sse.data)
        if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
            final = payload["response"]
    return final
