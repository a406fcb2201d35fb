"""The normalized event vocabulary: what every provider's stream is decoded into.

Events are frozen, slotted dataclasses with a ``kind`` class attribute, cheap to create on the hot
path. A well-formed response (what :func:`midstream.wire.decoder` guarantees) is::

    ResponseStart
    ( BlockStart  (TextDelta | ThinkingDelta | SignatureDelta | CitationDelta | ToolArgsDelta)*  BlockStop
    | UsageUpdate | Unknown )*
    [StreamError]
    ResponseEnd

Blocks may interleave (each has its own ``index``); every block that starts also stops, with
``complete=False`` when the response ended before the provider closed it. Exactly one ``ResponseEnd``
ends every response and carries its terminal state.

``seq`` is the provider's own sequence number where it sends one (OpenAI Responses), kept for resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from midstream.errors import ErrorKind
from midstream.message import StopReason, Terminal, Usage

__all__ = [
    "BlockStart",
    "BlockStop",
    "BlockType",
    "CitationDelta",
    "Event",
    "ResponseEnd",
    "ResponseStart",
    "SignatureDelta",
    "StreamError",
    "TextDelta",
    "ThinkingDelta",
    "ToolArgsDelta",
    "Unknown",
    "UsageUpdate",
    "is_content",
    "to_dict",
]

BlockType = Literal["text", "thinking", "redacted_thinking", "tool_call", "server_tool", "unknown"]


@dataclass(frozen=True, slots=True)
class _Base:
    seq: int | None = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseStart(_Base):
    """First event of every response.

    Example:

        >>> start = midstream.ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1")
        >>> start.kind, start.provider, start.model
        ('response_start', 'anthropic', 'claude-sonnet-4-5')
    """

    kind: ClassVar[Literal["response_start"]] = "response_start"
    provider: str
    model: str | None = None
    id: str | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStart(_Base):
    """A content block opens at ``index``.

    ``raw_type`` is the provider's own block type. ``data`` holds content that arrives whole with the
    start (redacted thinking's ``data``, a server tool result, an unknown block's payload, a text
    block's ``{"phase": ...}`` where OpenAI Responses sends one).

    Example:

        >>> start = midstream.BlockStart(index=1, type="tool_call", id="toolu_1", name="get_weather")
        >>> start.kind, start.type, start.name
        ('block_start', 'tool_call', 'get_weather')
    """

    kind: ClassVar[Literal["block_start"]] = "block_start"
    index: int
    type: BlockType
    id: str | None = None
    name: str | None = None
    raw_type: str | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class TextDelta(_Base):
    """More answer text for the text block at ``index``.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> "".join(e.text for e in events if isinstance(e, midstream.TextDelta))
        'Hello'
    """

    kind: ClassVar[Literal["text_delta"]] = "text_delta"
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta(_Base):
    """More reasoning text for the thinking block at ``index``.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ThinkingDelta, SignatureDelta, BlockStop
        >>> message = midstream.accumulate([
        ...     ResponseStart(provider="anthropic"), BlockStart(index=0, type="thinking"),
        ...     ThinkingDelta(0, "Two cities: "),
        ...     ThinkingDelta(0, "two calls."), SignatureDelta(0, "sig=="), BlockStop(0),
        ... ])
        >>> message.blocks[0].thinking, message.blocks[0].signature
        ('Two cities: two calls.', 'sig==')
    """

    kind: ClassVar[Literal["thinking_delta"]] = "thinking_delta"
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class SignatureDelta(_Base):
    """The (byte-exact) signature of the thinking block at ``index``; appended if sent in parts.

    Example:

        >>> delta = midstream.SignatureDelta(0, "EqQBCgIYAhIM...")
        >>> delta.kind, delta.index
        ('signature_delta', 0)
    """

    kind: ClassVar[Literal["signature_delta"]] = "signature_delta"
    index: int
    signature: str


@dataclass(frozen=True, slots=True)
class CitationDelta(_Base):
    """A citation (the provider's raw object) attached to the text block at ``index``.

    Example:

        >>> citation = {"type": "web_search_result_location", "url": "https://example.com"}
        >>> midstream.CitationDelta(0, citation).citation["url"]
        'https://example.com'
    """

    kind: ClassVar[Literal["citation_delta"]] = "citation_delta"
    index: int
    citation: Any


@dataclass(frozen=True, slots=True)
class ToolArgsDelta(_Base):
    """A raw JSON fragment of a tool call's input: exactly the text the provider sent.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ToolArgsDelta, BlockStop, ResponseEnd
        >>> message = midstream.accumulate([
        ...     ResponseStart(provider="anthropic"),
        ...     BlockStart(index=0, type="tool_call", id="toolu_1", name="get_weather"),
        ...     ToolArgsDelta(0, '{"city": "Pa'), ToolArgsDelta(0, 'ris"}'), BlockStop(0),
        ...     ResponseEnd(stop_reason="tool_use", terminal="completed"),
        ... ])
        >>> message.tool_calls[0].raw_input, message.tool_calls[0].input
        ('{"city": "Paris"}', {'city': 'Paris'})
    """

    kind: ClassVar[Literal["tool_args_delta"]] = "tool_args_delta"
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class BlockStop(_Base):
    """The block at ``index`` ends. ``complete=False``: the response ended before the block did.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ToolArgsDelta, BlockStop, ResponseEnd
        >>> message = midstream.accumulate([
        ...     ResponseStart(provider="anthropic"),
        ...     BlockStart(index=0, type="tool_call", id="toolu_1", name="save"),
        ...     ToolArgsDelta(0, '{"title": "Riv'), BlockStop(0, complete=False),
        ...     ResponseEnd(stop_reason="max_tokens", terminal="truncated"),
        ... ])
        >>> call = message.tool_calls[0]
        >>> call.input is None, call.error
        (True, 'truncated')
    """

    kind: ClassVar[Literal["block_stop"]] = "block_stop"
    index: int
    complete: bool = True


@dataclass(frozen=True, slots=True)
class UsageUpdate(_Base):
    """Token usage so far (cumulative once it leaves the timeline).

    Example:

        >>> update = midstream.UsageUpdate(midstream.Usage(input_tokens=12, output_tokens=40))
        >>> update.kind, update.usage.output_tokens
        ('usage_update', 40)
    """

    kind: ClassVar[Literal["usage_update"]] = "usage_update"
    usage: Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseEnd(_Base):
    """The one terminal event of a response: why it stopped, final usage and its terminal state.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> end = events[-1]
        >>> end.terminal, end.stop_reason, end.usage.output_tokens
        ('completed', 'end_turn', 2)
    """

    kind: ClassVar[Literal["response_end"]] = "response_end"
    stop_reason: StopReason | None = None
    raw_stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    terminal: Terminal = "completed"
    stop_details: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError(_Base):
    """An error reported by the provider (or the transport) during the response.

    ``retryable`` says whether re-requesting may help; ``raw`` is the provider's error payload.

    Example:

        >>> error = midstream.StreamError(error_kind="overloaded", message="Overloaded", retryable=True)
        >>> error.kind, error.error_kind, error.retryable
        ('stream_error', 'overloaded', True)
    """

    kind: ClassVar[Literal["stream_error"]] = "stream_error"
    error_kind: ErrorKind
    message: str
    retryable: bool = False
    status: int | None = None
    raw: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown(_Base):
    """A provider event midstream does not know, passed through instead of crashing.

    ``index`` is set when the event is a delta of the block at ``index`` that the vocabulary has no
    event for (an unknown block's deltas, such as Anthropic's ``compaction_delta``); ``payload`` is then
    the provider's delta object, and the Accumulator keeps it, in order, in that block's
    :attr:`~midstream.message.UnknownBlock.deltas`.

    Example:

        >>> sparkle = {"type": "content_block_sparkle"}
        >>> event = midstream.Unknown(raw_type="content_block_sparkle", payload=sparkle)
        >>> event.kind, event.raw_type
        ('unknown', 'content_block_sparkle')
    """

    kind: ClassVar[Literal["unknown"]] = "unknown"
    raw_type: str
    payload: Any = None
    index: int | None = None


Event = (
    ResponseStart
    | BlockStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | CitationDelta
    | ToolArgsDelta
    | BlockStop
    | UsageUpdate
    | ResponseEnd
    | StreamError
    | Unknown
)
"""Any normalized event: what :func:`midstream.wire.decoder` gives, told apart by ``kind``.

Example:

    >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
    >>> events = [
    ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
    ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
    ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
    ...                 usage=Usage(input_tokens=5, output_tokens=2)),
    ... ]
    >>> [event.kind for event in events]
    ['response_start', 'block_start', 'text_delta', 'text_delta', 'block_stop', 'response_end']
"""


def to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict for ``event``: ``{"kind": ..., <its fields>}``; usage becomes a dict.

    ``seq`` is included only when the provider sent one, an ``Unknown`` event's ``index`` only when it
    belongs to a block.
    """
    out: dict[str, Any] = {"kind": event.kind}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if value is None and (f.name == "seq" or (f.name == "index" and event.kind == "unknown")):
            continue
        if isinstance(value, Usage):
            value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        out[f.name] = value
    return out


def is_content(event: Event) -> bool:
    """True for the events that show the caller part of the answer.

    Text, reasoning, tool-argument text, signatures and citations count when they carry something; so
    does the start of a tool call (its name is the model's first word on it) and a block that arrives
    with its content (redacted thinking, server-tool results). Starts of empty text blocks, usage,
    keep-alives and the response start do not: a retry before the first content event is invisible.
    """
    if isinstance(event, TextDelta | ThinkingDelta):
        return bool(event.text)
    if isinstance(event, ToolArgsDelta):
        return bool(event.fragment)
    if isinstance(event, SignatureDelta | CitationDelta):
        return True
    if isinstance(event, BlockStart):
        return event.type in ("tool_call", "server_tool", "redacted_thinking") or event.data is not None
    return False
