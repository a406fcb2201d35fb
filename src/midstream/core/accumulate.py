"""A pure fold of events into a :class:`~midstream.message.Message`, and its inverse.

:class:`Accumulator` takes events one at a time (its :attr:`~Accumulator.message` is a snapshot at any
point); :func:`accumulate` folds a whole sequence. Its inverse, :func:`events_from_message`, turns a
Message back into the canonical event sequence the encoders replay; it lives in
:mod:`midstream.wire.canonical` (the wire layer needs it) and is re-exported here.

The fold is the same for a streamed and a non-streamed response: it only sees events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from midstream.core.toolargs import ToolArgs, ToolCallInvalid, ToolCallReady
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
from midstream.message import (
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
)
from midstream.wire.canonical import events_from_message

__all__ = ["Accumulator", "accumulate", "events_from_message", "parse_tool_input"]


# Tool input is parsed by the same parser as the live tool events (midstream.core.toolargs), in one
# pass once the block has stopped: before that the input is None whatever the text says, so parsing
# earlier would be work without a use. These bounds are generous: they only stop hostile input.
TOOL_INPUT_MAX_DEPTH = 1000
TOOL_INPUT_MAX_BYTES = 64 * 1024 * 1024


def parse_tool_input(raw: str, complete: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Strictly parse a tool call's whole input text: ``(object, None)`` or ``(None, reason)``.

    ``reason`` is ``"truncated"`` (the block did not close normally, or its text stops mid-value, as
    when ``max_tokens`` cut a buffered input) or ``"invalid_json"`` (not JSON, not an object, or beyond
    the size bounds). An empty input from a block that closed normally is ``{}`` (a tool without
    arguments).
    """
    if not complete:
        return None, "truncated"
    args = ToolArgs(0, max_depth=TOOL_INPUT_MAX_DEPTH, max_bytes=TOOL_INPUT_MAX_BYTES, events=False)
    args.feed(raw)
    result = args.stop(True)[0]
    if isinstance(result, ToolCallReady):
        return result.input, None
    assert isinstance(result, ToolCallInvalid)
    return None, "truncated" if result.reason == "truncated" else "invalid_json"


@dataclass
class _Builder:
    start: BlockStart
    parts: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    citations: list[Any] = field(default_factory=list)
    stopped: bool = False
    complete: bool = False
    _input: tuple[dict[str, Any] | None, str | None] | None = None

    def tool_input(self) -> tuple[dict[str, Any] | None, str | None]:
        """The parsed input once the block has stopped (parsed once, then kept)."""
        if not self.stopped:
            return None, "truncated"
        if self._input is None:
            self._input = parse_tool_input("".join(self.parts), self.complete)
        return self._input

    def build(self) -> Block:
        start, text = self.start, "".join(self.parts)
        done = self.stopped and self.complete
        if start.type == "text":
            return TextBlock(text, tuple(self.citations), complete=done)
        if start.type == "thinking":
            sig = "".join(self.signature) if self.signature else None
            return ThinkingBlock(text, sig, complete=done)
        if start.type == "redacted_thinking":
            return RedactedThinkingBlock(str(start.data or "") + text, complete=done)
        if start.type == "tool_call":
            value, error = self.tool_input()
            return ToolCall(
                id=start.id or "",
                name=start.name or "",
                raw_input=text,
                input=value,
                complete=done,
                error=error,
            )
        if start.type == "server_tool":
            value = self.tool_input()[0] if text and done else None
            return ServerToolBlock(
                raw_type=start.raw_type or "server_tool",
                id=start.id,
                name=start.name,
                raw_input=text,
                input=value,
                content=start.data,
                complete=done,
            )
        return UnknownBlock(raw_type=start.raw_type or "unknown", data=start.data, complete=done)


class Accumulator:
    """Folds events into a Message. Feed it every event of one response, in order.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart("anthropic", "claude-sonnet-4-5", "msg_1"),
        ...     BlockStart(0, "text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd("end_turn", "end_turn", Usage(5, 2), "completed"),
        ... ]
        >>> acc = midstream.Accumulator()
        >>> for event in events[:3]:
        ...     acc.feed(event)
        >>> acc.message.text, acc.message.terminal
        ('Hel', 'truncated')
    """

    def __init__(self, provider: str = "unknown") -> None:
        self._provider = provider
        self._id: str | None = None
        self._model: str | None = None
        self._blocks: dict[int, _Builder] = {}
        self._end: ResponseEnd | None = None
        self._error: StreamError | None = None
        self._usage: Any = None

    def feed(self, event: Event) -> None:
        """Fold one event in."""
        if isinstance(event, ResponseStart):
            self._provider, self._id, self._model = event.provider, event.id, event.model
            self._usage = event.usage
        elif isinstance(event, BlockStart):
            self._blocks[event.index] = _Builder(event)
        elif isinstance(event, TextDelta | ThinkingDelta):
            self._blocks[event.index].parts.append(event.text)
        elif isinstance(event, ToolArgsDelta):
            self._blocks[event.index].parts.append(event.fragment)
        elif isinstance(event, SignatureDelta):
            self._blocks[event.index].signature.append(event.signature)
        elif isinstance(event, CitationDelta):
            self._blocks[event.index].citations.append(event.citation)
        elif isinstance(event, BlockStop):
            builder = self._blocks[event.index]
            builder.stopped, builder.complete = True, event.complete
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, ResponseEnd):
            self._end = event
            self._usage = event.usage
        elif isinstance(event, StreamError):
            self._error = event

    @property
    def message(self) -> Message:
        """The Message so far. Before ``ResponseEnd`` it is marked ``truncated`` (partial)."""
        end = self._end
        kwargs: dict[str, Any] = {}
        if self._usage is not None:
            kwargs["usage"] = self._usage
        return Message(
            provider=self._provider,
            id=self._id,
            model=self._model,
            blocks=tuple(b.build() for b in self._blocks.values()),
            stop_reason=end.stop_reason if end else None,
            raw_stop_reason=end.raw_stop_reason if end else None,
            terminal=end.terminal if end else "truncated",
            error=self._error,
            **kwargs,
        )


def accumulate(events: Iterable[Event]) -> Message:
    """Fold a response's events into its Message.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart("anthropic", "claude-sonnet-4-5", "msg_1"),
        ...     BlockStart(0, "text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd("end_turn", "end_turn", Usage(5, 2), "completed"),
        ... ]
        >>> midstream.accumulate(events).text
        'Hello'
    """
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    return acc.message
