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
    Unknown,
    UsageUpdate,
)
from midstream.message import (
    Block,
    Message,
    RedactedThinkingBlock,
    ServerToolBlock,
    Terminal,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
)
from midstream.wire.canonical import events_from_message

__all__ = ["Accumulator", "accumulate", "events_from_message", "parse_tool_input"]


# Tool input is parsed by the same parser, with the same bounds (``DEFAULT_MAX_DEPTH`` and
# ``DEFAULT_MAX_BYTES`` of midstream.core.toolargs), as the live tool events, in one pass once the block
# has stopped: before that the input is None whatever the text says, so parsing earlier would be work
# without a use. One set of bounds means one verdict, whichever path a caller reads a call from.


def parse_tool_input(raw: str, complete: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Strictly parse a tool call's whole input text: ``(object, None)`` or ``(None, reason)``.

    ``reason`` is ``"truncated"`` (the block did not close normally, or its text stops mid-value, as
    when ``max_tokens`` cut a buffered input) or ``"invalid_json"`` (not JSON, not an object, or beyond
    the size bounds of :class:`~midstream.core.toolargs.ToolArgs`, the same as the live
    ``ToolCallReady`` / ``ToolCallInvalid`` events). An empty input from a block that closed normally is
    ``{}`` (a tool without arguments).
    """
    if not complete:
        return None, "truncated"
    args = ToolArgs(0, events=False)
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
    deltas: list[Any] = field(default_factory=list)
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
            return TextBlock(
                text=text, citations=tuple(self.citations), complete=done, phase=_phase(start.data)
            )
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
            # A server tool *call* (no content in its start) follows the rule of tool calls: closed
            # normally with no input text, its input is ``{}``; a result carries no input.
            call = start.data is None
            value = self.tool_input()[0] if done and (text or call) else None
            return ServerToolBlock(
                raw_type=start.raw_type or "server_tool",
                id=start.id,
                name=start.name,
                raw_input=text,
                input=value,
                # A provider that re-sends the whole object when it finishes (OpenAI Responses' items)
                # does so as an Unknown event for the block: the newest is the content.
                content=self.deltas[-1] if self.deltas else start.data,
                complete=done,
            )
        return UnknownBlock(
            raw_type=start.raw_type or "unknown", data=start.data, complete=done, deltas=tuple(self.deltas)
        )


class Accumulator:
    """Folds events into a Message. Feed it every event of one response, in order.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
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
        cls = type(event)
        # The streamed deltas first, by exact type: one check per token instead of a walk down the chain.
        if cls is TextDelta or cls is ThinkingDelta:
            self._blocks[event.index].parts.append(event.text)  # type: ignore[union-attr,index]
        elif cls is ToolArgsDelta:
            self._blocks[event.index].parts.append(event.fragment)  # type: ignore[union-attr,index]
        else:
            self._feed_other(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        """Fold events in, in order: :meth:`feed` for each, in one call (a network chunk's events)."""
        blocks = self._blocks  # the same dict throughout: a BlockStart adds to it
        for event in events:
            cls = type(event)
            if cls is TextDelta or cls is ThinkingDelta:
                blocks[event.index].parts.append(event.text)  # type: ignore[union-attr,index]
            elif cls is ToolArgsDelta:
                blocks[event.index].parts.append(event.fragment)  # type: ignore[union-attr,index]
            else:
                self._feed_other(event)

    def _feed_other(self, event: Event) -> None:
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
        elif isinstance(event, Unknown) and event.index is not None:
            owner = self._blocks.get(event.index)
            if owner is not None:  # a delta for a block with no event of its own: kept, in order
                owner.deltas.append(event.payload)

    @property
    def terminal(self) -> Terminal:
        """The Message's ``terminal`` so far, without building the Message (``truncated`` until the end)."""
        return self._end.terminal if self._end else "truncated"

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
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> midstream.accumulate(events).text
        'Hello'
    """
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    return acc.message


def _phase(data: Any) -> str | None:
    """A text block's phase travels in its ``BlockStart.data`` (``{"phase": ...}``)."""
    phase = data.get("phase") if isinstance(data, dict) else None
    return phase if isinstance(phase, str) else None
