"""The Message model: what a whole (or partial) response amounts to.

A :class:`Message` is the pure fold of a response's events (see :func:`midstream.accumulate`). It is
the same whether the response was streamed or not, and it never pretends: a response that did not end
``completed`` says so in :attr:`Message.terminal`, and a tool call whose input did not arrive whole and
valid has ``input=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

__all__ = [
    "STOP_REASONS",
    "TERMINALS",
    "Block",
    "Message",
    "RedactedThinkingBlock",
    "ServerToolBlock",
    "StopReason",
    "Terminal",
    "TextBlock",
    "ThinkingBlock",
    "ToolCall",
    "UnknownBlock",
    "Usage",
]

Terminal = Literal["completed", "truncated", "failed", "cancelled"]
"""How a stream ended: exactly one of these per stream; anything but ``completed`` is partial.

Example:

    >>> import typing
    >>> typing.get_args(midstream.Terminal)
    ('completed', 'truncated', 'failed', 'cancelled')
"""
TERMINALS: tuple[Terminal, ...] = get_args(Terminal)

StopReason = Literal[
    "end_turn",  # the model finished its answer
    "tool_use",  # the model wants tool results
    "max_tokens",  # the output budget ran out (the response is truncated)
    "stop_sequence",  # a caller-supplied stop sequence matched
    "pause_turn",  # a server-side tool loop paused; continue by re-sending
    "refusal",  # the model declined
    "content_filter",  # provider-side safety / recitation / guardrail filtering
    "context_window_exceeded",  # the prompt plus output no longer fit
    "error",  # the provider ended the response because of an error
    "other",  # a reason midstream does not map; see ``raw_stop_reason``
]
"""Why a response stopped, normalized across providers (the raw reason is kept beside it).

Example:

    >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
    >>> events = [
    ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
    ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
    ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
    ...                 usage=Usage(input_tokens=5, output_tokens=2)),
    ... ]
    >>> midstream.accumulate(events).stop_reason
    'end_turn'
    >>> import typing
    >>> "max_tokens" in typing.get_args(midstream.StopReason)
    True
"""
STOP_REASONS: tuple[StopReason, ...] = get_args(StopReason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts, normalized across providers. ``None`` means "not reported".

    ``input_tokens`` counts *every* prompt token, cached ones included (OpenAI and Gemini count this way;
    Anthropic and Bedrock report cache reads and writes separately and are summed here).
    ``output_tokens`` includes ``reasoning_tokens`` where a provider reports both.

    Example:

        >>> usage = midstream.Usage(input_tokens=5, output_tokens=2)
        >>> usage.input_tokens + usage.output_tokens
        7
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Input plus output, when both are known."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    def merge(self, update: Usage) -> Usage:
        """Counts from ``update`` replace ours where it reports them (counts are cumulative)."""
        return Usage(
            input_tokens=_pick(update.input_tokens, self.input_tokens),
            output_tokens=_pick(update.output_tokens, self.output_tokens),
            cache_read_tokens=_pick(update.cache_read_tokens, self.cache_read_tokens),
            cache_write_tokens=_pick(update.cache_write_tokens, self.cache_write_tokens),
            reasoning_tokens=_pick(update.reasoning_tokens, self.reasoning_tokens),
        )


def _pick(new: int | None, old: int | None) -> int | None:
    return old if new is None else new


@dataclass(frozen=True, slots=True, kw_only=True)
class TextBlock:
    """Answer text, with any citations the provider attached (raw provider dicts).

    ``phase`` is the OpenAI Responses message phase (``"commentary"`` for text between tool calls,
    ``"final_answer"``) where the provider sent one; it must be sent back with the message.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> (block,) = midstream.accumulate(events).blocks
        >>> block.kind, block.text, block.complete
        ('text', 'Hello', True)
    """

    kind: ClassVar[Literal["text"]] = "text"
    text: str
    citations: tuple[Any, ...] = ()
    complete: bool = True
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """Reasoning text. ``signature`` is kept byte-exact: providers require it back verbatim.

    Example:

        >>> block = midstream.ThinkingBlock("Two cities: two calls.", signature="sig==")
        >>> block.kind, block.thinking
        ('thinking', 'Two cities: two calls.')
    """

    kind: ClassVar[Literal["thinking"]] = "thinking"
    thinking: str
    signature: str | None = None
    complete: bool = True


@dataclass(frozen=True, slots=True)
class RedactedThinkingBlock:
    """Encrypted reasoning the provider does not show; ``data`` is kept byte-exact for replay.

    Example:

        >>> block = midstream.RedactedThinkingBlock("EmwKAhgBEgy3va3pzix/LafPsn4a...")
        >>> block.kind
        'redacted_thinking'
    """

    kind: ClassVar[Literal["redacted_thinking"]] = "redacted_thinking"
    data: str
    complete: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A call of one of *your* tools.

    ``raw_input`` is exactly the JSON text received. ``input`` is the parsed object only when the block
    closed normally and the text parsed strictly to a JSON object; otherwise it is ``None`` and
    ``error`` says why (``"truncated"`` or ``"invalid_json"``). Never execute a call whose ``input`` is
    ``None``.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ToolArgsDelta, BlockStop, ResponseEnd
        >>> message = midstream.accumulate([
        ...     ResponseStart(provider="anthropic"),
        ...     BlockStart(index=0, type="tool_call", id="toolu_1", name="get_weather"),
        ...     ToolArgsDelta(0, '{"city": "Pa'), ToolArgsDelta(0, 'ris"}'), BlockStop(0),
        ...     ResponseEnd(stop_reason="tool_use", terminal="completed"),
        ... ])
        >>> call = message.tool_calls[0]
        >>> call.name, call.input, call.error
        ('get_weather', {'city': 'Paris'}, None)
    """

    kind: ClassVar[Literal["tool_call"]] = "tool_call"
    id: str
    name: str
    raw_input: str
    input: dict[str, Any] | None
    complete: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerToolBlock:
    """A tool the provider runs itself (web search, code execution, tool search) or its result.

    ``raw_type`` is the provider's block type (``server_tool_use``, ``web_search_tool_result``, ...).
    Calls stream their input like tool calls (``raw_input`` / ``input``); results arrive whole in
    ``content``.

    Example:

        >>> block = midstream.ServerToolBlock(raw_type="server_tool_use", id="srvtoolu_1", name="web_search")
        >>> block.kind, block.name
        ('server_tool', 'web_search')
    """

    kind: ClassVar[Literal["server_tool"]] = "server_tool"
    raw_type: str
    id: str | None
    name: str | None
    raw_input: str = ""
    input: Any = None
    content: Any = None
    complete: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownBlock:
    """A block type midstream does not know, kept whole so nothing is lost.

    ``data`` is the block as it started (the provider's object); ``deltas`` are the provider's delta
    objects that streamed into it, in order. Anthropic's ``compaction`` block, for instance, starts with
    ``{"type": "compaction", "content": None}`` and its summary arrives in ``compaction_delta`` objects;
    :meth:`merged` is the block to send back on the next turn.

    Example:

        >>> block = midstream.UnknownBlock(raw_type="sparkle", data={"type": "sparkle"})
        >>> block.kind, block.raw_type
        ('unknown', 'sparkle')
    """

    kind: ClassVar[Literal["unknown"]] = "unknown"
    raw_type: str
    data: Any = None
    complete: bool = True
    deltas: tuple[Any, ...] = ()

    def merged(self) -> Any:
        """``data`` with each delta's fields (other than ``type``) written over it, in order.

        This is how the providers' own SDKs fold such deltas (Anthropic's ``compaction_delta`` carries
        the block's ``content``); without deltas it is ``data`` itself.

        >>> UnknownBlock(raw_type="compaction", data={"type": "compaction", "content": None},
        ...              deltas=({"type": "compaction_delta", "content": "Summary."},)).merged()
        {'type': 'compaction', 'content': 'Summary.'}
        """
        if not self.deltas or not isinstance(self.data, dict):
            return self.data
        out = dict(self.data)
        for delta in self.deltas:
            if isinstance(delta, dict):
                out.update((k, v) for k, v in delta.items() if k != "type")
        return out


Block = TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolCall | ServerToolBlock | UnknownBlock
"""A content block of a :class:`Message`: one of the block classes above, told apart by ``kind``.

Example:

    >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
    >>> events = [
    ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
    ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
    ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
    ...                 usage=Usage(input_tokens=5, output_tokens=2)),
    ... ]
    >>> [block.kind for block in midstream.accumulate(events).blocks]
    ['text']
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One assistant response, folded from its events.

    ``terminal`` is exactly one of ``completed``, ``truncated``, ``failed``, ``cancelled``. Anything but
    ``completed`` means the content is partial and must not be persisted or used as a complete answer.

    Example:

        >>> from midstream import ResponseStart, BlockStart, TextDelta, BlockStop, ResponseEnd, Usage
        >>> events = [
        ...     ResponseStart(provider="anthropic", model="claude-sonnet-4-5", id="msg_1"),
        ...     BlockStart(index=0, type="text"), TextDelta(0, "Hel"), TextDelta(0, "lo"), BlockStop(0),
        ...     ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn", terminal="completed",
        ...                 usage=Usage(input_tokens=5, output_tokens=2)),
        ... ]
        >>> message = midstream.accumulate(events)
        >>> message.text, message.terminal, message.stop_reason, message.usage.output_tokens
        ('Hello', 'completed', 'end_turn', 2)
    """

    provider: str
    id: str | None = None
    model: str | None = None
    blocks: tuple[Block, ...] = ()
    stop_reason: StopReason | None = None
    raw_stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    terminal: Terminal = "truncated"
    error: Any = None  # the StreamError that failed the response, if any

    @property
    def text(self) -> str:
        """All answer text, concatenated in block order."""
        return "".join(b.text for b in self.blocks if isinstance(b, TextBlock))

    @property
    def thinking(self) -> str:
        """All visible reasoning text, concatenated in block order."""
        return "".join(b.thinking for b in self.blocks if isinstance(b, ThinkingBlock))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The calls of the caller's tools, in order (server tools are in :attr:`blocks`)."""
        return [b for b in self.blocks if isinstance(b, ToolCall)]

    @property
    def partial(self) -> bool:
        """True unless the response ended ``completed``."""
        return self.terminal != "completed"
