"""The per-response state machine.

A dialect decoder turns provider frames into events; the :class:`Timeline` checks their order against a
transition table and normalizes the ending, so that everything downstream can rely on one shape:

* exactly one ``ResponseStart`` first and exactly one ``ResponseEnd`` last: an ``Unknown`` event that
  arrives before the start is held and passed on right after it, and one that arrives after the end is
  absorbed (the response is over; nothing after its terminal event can change it);
* every ``BlockStart`` is matched by one ``BlockStop``; blocks still open when the response ends (or the
  input stops) are closed with ``complete=False``, never as complete, and such a response is never
  ``completed``: a provider's terminal event that leaves a block open ends it ``truncated`` (the
  content was cut short; the provider reported no error, so not ``failed``). ``completed`` therefore
  implies that every block of the response completed;
* ``UsageUpdate`` and ``ResponseEnd`` carry cumulative usage; counts and block indices beyond
  :data:`MAX_COUNT` are protocol errors;
* the terminal state is ``completed``, ``truncated`` (max tokens, or the input ended before the
  provider's terminal event), ``failed`` (a provider error) or ``cancelled`` (:meth:`Timeline.cancel`).

An event that is not allowed in the current state raises :class:`~midstream.errors.TimelineError`, a
remote protocol error: the provider's bytes were out of order. The table is data; :meth:`Timeline.feed`
is one lookup and one call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal, NoReturn, get_args

from midstream.errors import TimelineError
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
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
from midstream.message import StopReason, Terminal, Usage

__all__ = ["MAX_COUNT", "MAX_HELD", "STATES", "TRANSITIONS", "State", "Timeline"]

State = Literal["idle", "streaming", "ended", "failed"]
STATES: tuple[State, ...] = get_args(State)

# (state, event kind) -> action. A pair that is missing is a protocol error.
TRANSITIONS: dict[tuple[State, str], str] = {
    ("idle", "response_start"): "start",
    ("idle", "stream_error"): "fail",
    # Providers may send keep-alives before their first real frame; they wait for the start.
    ("idle", "unknown"): "hold",
    ("streaming", "block_start"): "open_block",
    ("streaming", "text_delta"): "delta",
    ("streaming", "thinking_delta"): "delta",
    ("streaming", "signature_delta"): "delta",
    ("streaming", "citation_delta"): "delta",
    ("streaming", "tool_args_delta"): "delta",
    ("streaming", "block_stop"): "close_block",
    ("streaming", "usage_update"): "usage",
    ("streaming", "unknown"): "pass",
    ("streaming", "response_end"): "end",
    ("streaming", "stream_error"): "fail",
    ("ended", "unknown"): "absorb",
    # After a failure the provider may still send its own closing frames (OpenAI's ``[DONE]``,
    # Responses' ``response.failed``): the response already ended, so they are absorbed.
    ("failed", "unknown"): "absorb",
    ("failed", "usage_update"): "absorb",
    ("failed", "response_end"): "absorb",
    ("failed", "stream_error"): "absorb",
}

# Which block types accept which delta kinds.
_DELTA_TARGETS: dict[str, tuple[BlockType, ...]] = {
    "text_delta": ("text",),
    "citation_delta": ("text",),
    "thinking_delta": ("thinking",),
    "signature_delta": ("thinking",),
    "tool_args_delta": ("tool_call", "server_tool"),
}

MAX_HELD = 1024
"""How many ``Unknown`` events may wait for ``ResponseStart`` before the stream counts as broken."""

MAX_COUNT = 2**53
"""The largest token count or block index accepted (the largest integer every JSON reader keeps
exactly); a larger one is a protocol error, not a number to carry into reprs and checkpoints."""


def _counts(usage: Usage) -> Iterable[int]:
    fields = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    return (n for n in (*fields, usage.reasoning_tokens) if n is not None)


_TRUNCATING: frozenset[StopReason] = frozenset({"max_tokens", "context_window_exceeded"})


def terminal_for(stop_reason: StopReason | None, proposed: Terminal = "completed") -> Terminal:
    """The terminal state of a response that ended normally with ``stop_reason``.

    A dialect may propose a worse state (``truncated``, ``failed``); a stop reason that means the output
    was cut short turns ``completed`` into ``truncated``.
    """
    if proposed != "completed":
        return proposed
    if stop_reason in _TRUNCATING:
        return "truncated"
    if stop_reason == "error":
        return "failed"
    return "completed"


class Timeline:
    """Validates and normalizes the events of one response. Sans-IO: events in, events out.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta
        >>> timeline = midstream.Timeline("anthropic")
        >>> _ = timeline.feed_all(
        ...     [ResponseStart(provider="anthropic"), BlockStart(index=0, type="text"), TextDelta(0, "Hi")]
        ... )
        >>> closing = timeline.close()                       # EOF before the provider's end event
        >>> [event.kind for event in closing], closing[-1].terminal
        (['block_stop', 'response_end'], 'truncated')
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.state: State = "idle"
        self.usage = Usage()
        self._open: dict[int, BlockType] = {}
        # The open blocks again, as the indices each delta class may target: the table's verdict for
        # a delta while streaming, in one lookup (blocks are open only while streaming).
        text: set[int] = set()
        thinking: set[int] = set()
        tools: set[int] = set()
        self._targets: dict[type, set[int]] = {
            TextDelta: text,
            CitationDelta: text,
            ThinkingDelta: thinking,
            SignatureDelta: thinking,
            ToolArgsDelta: tools,
        }
        self._by_type: dict[BlockType, set[int]] = {
            "text": text,
            "thinking": thinking,
            "tool_call": tools,
            "server_tool": tools,
        }
        self._seen: set[int] = set()
        self._held: list[Event] = []
        self._actions: dict[str, Callable[[Event], list[Event]]] = {
            "start": self._start,
            "open_block": self._open_block,
            "delta": self._delta,
            "close_block": self._close_block,
            "usage": self._usage,
            "end": self._end,
            "fail": self._fail,
            "hold": self._hold,
            "pass": lambda event: [event],
            "absorb": lambda event: [],
        }

    @property
    def open_blocks(self) -> dict[int, BlockType]:
        """Blocks started and not yet stopped, by index."""
        return dict(self._open)

    @property
    def ended(self) -> bool:
        """True once the terminal ``ResponseEnd`` has been emitted."""
        return self.state in ("ended", "failed")

    def feed(self, event: Event) -> list[Event]:
        """Check one event against the table; return the events to pass on (possibly more, or none)."""
        action = TRANSITIONS.get((self.state, event.kind))
        if action is None:
            raise TimelineError(
                f"{event.kind} is not allowed while the response is {self.state}",
                state=self.state,
                event_kind=event.kind,
            )
        index = getattr(event, "index", None)
        if index is not None and not -MAX_COUNT <= index <= MAX_COUNT:
            self._out_of_range(event, "block index")
        usage = getattr(event, "usage", None)
        if usage is not None and not all(-MAX_COUNT <= n <= MAX_COUNT for n in _counts(usage)):
            self._out_of_range(event, "usage count")
        return self._actions[action](event)

    def _out_of_range(self, event: Event, what: str) -> NoReturn:
        # The value itself is not shown: it may be thousands of digits long.
        raise TimelineError(
            f"{event.kind}: a {what} out of range (more than {MAX_COUNT})",
            state=self.state,
            event_kind=event.kind,
        )

    def feed_all(self, events: Iterable[Event], out: list[Event] | None = None) -> list[Event]:
        """:meth:`feed` each event in turn and concatenate the results (appended to ``out`` when given).

        When an event is refused, ``out`` already holds what the events before it gave.
        """
        out = [] if out is None else out
        targets = self._targets
        for event in events:
            # The hot path, one per streamed token: a delta for an open block of its type passes as
            # it is (the table's verdict for every delta kind while streaming), with no call and no
            # list. Its index was range-checked when the block opened. (A subclass of a delta takes
            # the general path, to the same verdict.)
            indices = targets.get(type(event))
            if indices and event.index in indices:  # type: ignore[union-attr,operator]
                out.append(event)
                continue
            out.extend(self.feed(event))
        return out

    def close(self) -> list[Event]:
        """The input ended. Without the provider's terminal event the response is ``truncated``."""
        if self.ended:
            return []
        out = self._ensure_started()
        out.extend(self._close_open())
        out.append(self._finish(ResponseEnd(terminal="truncated"), "ended"))
        return out

    def cancel(self) -> list[Event]:
        """The consumer cancelled: close open blocks as incomplete and end ``cancelled``."""
        if self.ended:
            return []
        out = self._ensure_started()
        out.extend(self._close_open())
        out.append(self._finish(ResponseEnd(terminal="cancelled"), "ended"))
        return out

    def fail(self, error: StreamError) -> list[Event]:
        """End the response ``failed`` with ``error`` (used for transport and protocol failures)."""
        if self.ended:
            return []
        return self._fail(error)

    # -- actions ---------------------------------------------------------------------------------

    def _start(self, event: Event) -> list[Event]:
        assert isinstance(event, ResponseStart)
        self.state = "streaming"
        self.usage = self.usage.merge(event.usage)
        held, self._held = self._held, []
        return [event, *held]

    def _hold(self, event: Event) -> list[Event]:
        if len(self._held) >= MAX_HELD:
            raise TimelineError(
                f"more than {MAX_HELD} unknown events before response_start",
                state=self.state,
                event_kind=event.kind,
            )
        self._held.append(event)
        return []

    def _open_block(self, event: Event) -> list[Event]:
        assert isinstance(event, BlockStart)
        if event.index in self._seen:
            raise TimelineError(f"block {event.index} started twice", state=self.state, event_kind=event.kind)
        self._seen.add(event.index)
        self._open[event.index] = event.type
        accepting = self._by_type.get(event.type)
        if accepting is not None:
            accepting.add(event.index)
        return [event]

    def _delta(self, event: Event) -> list[Event]:
        index: int = event.index  # type: ignore[union-attr,assignment]
        block_type = self._open.get(index)
        if block_type is None:
            raise TimelineError(
                f"{event.kind} for block {index}, which is not open",
                state=self.state,
                event_kind=event.kind,
            )
        if block_type not in _DELTA_TARGETS[event.kind]:
            raise TimelineError(
                f"{event.kind} for block {index}, a {block_type} block",
                state=self.state,
                event_kind=event.kind,
            )
        return [event]

    def _close_block(self, event: Event) -> list[Event]:
        assert isinstance(event, BlockStop)
        block_type = self._open.pop(event.index, None)
        if block_type is None:
            raise TimelineError(
                f"block_stop for block {event.index}, which is not open",
                state=self.state,
                event_kind=event.kind,
            )
        accepting = self._by_type.get(block_type)
        if accepting is not None:
            accepting.discard(event.index)
        return [event]

    def _usage(self, event: Event) -> list[Event]:
        assert isinstance(event, UsageUpdate)
        self.usage = self.usage.merge(event.usage)
        return [UsageUpdate(self.usage, seq=event.seq)]

    def _end(self, event: Event) -> list[Event]:
        assert isinstance(event, ResponseEnd)
        if self._open and event.terminal == "completed":
            # The provider ended the response with a block still open: that block is cut short, so
            # the response cannot be complete. ``completed`` implies every block complete.
            event = dataclasses.replace(event, terminal="truncated")
        return [*self._close_open(), self._finish(event, "ended")]

    def _fail(self, event: Event) -> list[Event]:
        assert isinstance(event, StreamError)
        out = self._ensure_started()
        out.extend(self._close_open())
        out.append(event)
        end = ResponseEnd(stop_reason="error", terminal="failed", seq=event.seq)
        out.append(self._finish(end, "failed"))
        return out

    # -- helpers ---------------------------------------------------------------------------------

    def _ensure_started(self) -> list[Event]:
        """A ``ResponseStart`` (and the events held for it) when the provider never sent one."""
        if self.state != "idle":
            return []
        self.state = "streaming"
        held, self._held = self._held, []
        return [ResponseStart(provider=self.provider), *held]

    def _close_open(self) -> list[Event]:
        stops: list[Event] = [BlockStop(index, complete=False) for index in self._open]
        self._open.clear()
        for accepting in self._by_type.values():
            accepting.clear()
        return stops

    def _finish(self, end: ResponseEnd, state: State) -> ResponseEnd:
        self.usage = self.usage.merge(end.usage)
        self.state = state
        return dataclasses.replace(
            end, usage=self.usage, terminal=terminal_for(end.stop_reason, end.terminal)
        )
