"""The canonical event sequence of a :class:`~midstream.message.Message`: what the encoders replay.

:func:`events_from_message` is the inverse of :func:`midstream.core.accumulate.accumulate`: one
delta per block, usage, the error if any and the ending, in the order the timeline accepts.
"""

from __future__ import annotations

from typing import Any

from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
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
    TextBlock,
    ThinkingBlock,
    ToolCall,
)

__all__ = ["events_from_message"]


def events_from_message(message: Message) -> list[Event]:
    """The canonical event sequence for ``message`` (one delta per block; what encoders replay).

    ``accumulate(events_from_message(m)) == m`` for every Message whose blocks are complete.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> message = midstream.accumulate(events)
        >>> midstream.accumulate(midstream.events_from_message(message)) == message
        True
    """
    events: list[Event] = [ResponseStart(provider=message.provider, model=message.model, id=message.id)]
    for index, block in enumerate(message.blocks):
        events.extend(_block_events(index, block))
    events.append(UsageUpdate(message.usage))
    if message.error is not None:
        events.append(message.error)
    events.append(
        ResponseEnd(
            stop_reason=message.stop_reason,
            raw_stop_reason=message.raw_stop_reason,
            usage=message.usage,
            terminal=message.terminal,
        )
    )
    return events


def _block_events(index: int, block: Block) -> list[Event]:
    out: list[Event] = []
    if isinstance(block, TextBlock):
        data = None if block.phase is None else {"phase": block.phase}
        out.append(BlockStart(index=index, type="text", raw_type="text", data=data))
        if block.text:
            out.append(TextDelta(index, block.text))
        out.extend(CitationDelta(index, c) for c in block.citations)
    elif isinstance(block, ThinkingBlock):
        out.append(BlockStart(index=index, type="thinking", raw_type="thinking"))
        if block.thinking:
            out.append(ThinkingDelta(index, block.thinking))
        if block.signature is not None:
            out.append(SignatureDelta(index, block.signature))
    elif isinstance(block, RedactedThinkingBlock):
        out.append(
            BlockStart(index=index, type="redacted_thinking", raw_type="redacted_thinking", data=block.data)
        )
    elif isinstance(block, ToolCall):
        out.append(
            BlockStart(index=index, type="tool_call", id=block.id, name=block.name, raw_type="tool_use")
        )
        if block.raw_input:
            out.append(ToolArgsDelta(index, block.raw_input))
    elif isinstance(block, ServerToolBlock):
        out.append(
            BlockStart(
                index=index,
                type="server_tool",
                id=block.id,
                name=block.name,
                raw_type=block.raw_type,
                data=block.content,
            )
        )
        if block.raw_input:
            out.append(ToolArgsDelta(index, block.raw_input))
    else:
        out.append(BlockStart(index=index, type="unknown", raw_type=block.raw_type, data=block.data))
        out.extend(_delta_event(index, delta) for delta in block.deltas)
    out.append(BlockStop(index, complete=block.complete))
    return out


def _delta_event(index: int, delta: Any) -> Unknown:
    raw_type = delta.get("type") if isinstance(delta, dict) else None
    return Unknown(raw_type=raw_type if isinstance(raw_type, str) else "delta", payload=delta, index=index)
