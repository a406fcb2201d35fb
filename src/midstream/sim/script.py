"""Sans-IO heart of the simulator: a scripted response becomes a paced list of events.

A script is a list of blocks (text, thinking, tool calls). :func:`plan` turns it into the events a
provider would stream, token by token, with:

* the provider's tool-argument semantics (:data:`ArgsMode`): ``buffered`` (Anthropic's default: each
  top-level key/value of the input is released only once complete, so a value cut by ``max_tokens``
  never reaches the wire), ``eager`` (fragments as generated; may stop mid-value), ``whole`` (the call
  arrives in one piece, as Gemini and Ollama send it);
* ``max_tokens``: every token costs one; when the budget runs out the response stops there with stop
  reason ``max_tokens``. The cut block stops with ``complete=False`` (each encoder writes that the way
  its provider does: Anthropic sends no ``content_block_stop`` for a cut tool block), except text and
  thinking when ``cut_text_closes`` (Anthropic closes a text block cut by ``max_tokens`` normally). A
  ``whole`` call that does not fit is never started: such providers cannot show half a call;
* a latency model: time to first token, tokens per second and seeded jitter, scaled by a speed factor.

No clock, no sockets, no global randomness: the caller passes a seeded ``random.Random``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from midstream.message import StopReason, Terminal, Usage

__all__ = [
    "ArgsMode",
    "Latency",
    "Step",
    "TextPart",
    "ThinkingPart",
    "ToolPart",
    "count_tokens",
    "plan",
    "tokens",
]

ArgsMode = Literal["buffered", "eager", "whole"]

# Word-ish tokens: a run of word characters with its leading space, or one other character run.
_TOKEN = re.compile(r" ?\w+| ?[^\w\s]+|\s+")
# JSON text split the way models emit it: short runs of letters / digits, or of punctuation, each
# with the whitespace before it.
_JSON_TOKEN = re.compile(r"\s*\w{1,8}|\s*[^\w\s]{1,3}|\s+")


def tokens(text: str) -> list[str]:
    """``text`` split into word-sized tokens whose concatenation is ``text``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """A rough token count (what the simulator reports as usage)."""
    return len(tokens(text))


@dataclass(frozen=True, slots=True)
class TextPart:
    """Scripted answer text; ``phase`` is an OpenAI Responses message phase to send with it."""

    text: str
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkingPart:
    """Scripted reasoning, with the signature the provider would attach."""

    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolPart:
    """A scripted tool call. ``raw`` overrides the JSON text (to script invalid arguments)."""

    id: str
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    raw: str | None = None
    compact: bool = False  # OpenAI's models write ``{"a":1}``, Claude writes ``{"a": 1}``

    @property
    def text(self) -> str:
        """The argument JSON text as the model writes it."""
        if self.raw is not None:
            return self.raw
        separators = (",", ":") if self.compact else (", ", ": ")
        return json.dumps(self.input, ensure_ascii=False, separators=separators)


Part = TextPart | ThinkingPart | ToolPart


@dataclass(frozen=True, slots=True)
class Latency:
    """Time to first token, token rate and jitter (a fraction), all divided by ``speed``.

    ``speed=0`` means no waiting at all (tests).
    """

    ttft: float = 0.3
    tokens_per_second: float = 80.0
    jitter: float = 0.2
    speed: float = 1.0

    def first(self, rng: random.Random) -> float:
        """Delay before the first content event."""
        return self._scaled(self.ttft, rng)

    def per_token(self, rng: random.Random) -> float:
        """Delay before each later token."""
        return self._scaled(1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0, rng)

    def _scaled(self, base: float, rng: random.Random) -> float:
        if self.speed <= 0 or base <= 0:
            return 0.0
        spread = 1.0 + self.jitter * (2.0 * rng.random() - 1.0) if self.jitter else 1.0
        return max(0.0, base * spread / self.speed)


@dataclass(frozen=True, slots=True)
class Step:
    """One event to send after waiting ``delay`` seconds; ``tokens`` generated to produce it."""

    event: Event
    delay: float = 0.0
    tokens: int = 0


class _Budget:
    def __init__(self, max_tokens: int | None) -> None:
        self.left = max_tokens if max_tokens is not None else 1 << 62
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


@dataclass
class _Planner:
    latency: Latency
    rng: random.Random
    budget: _Budget
    steps: list[Step] = field(default_factory=list)
    first_content: bool = True
    cut: bool = False
    held: int = 0  # tokens generated but not yet released (a buffered member, a whole call)
    thinking: bool = False  # tokens taken now are reasoning
    thinking_tokens: int = 0
    running_usage: bool = False
    report_reasoning: bool = False

    def emit(self, event: Event, tokens: int = 0) -> None:
        """Append ``event``, due once its ``tokens`` are generated (a buffered member waits for all)."""
        delay = 0.0
        for _ in range(tokens):
            delay += self.latency.first(self.rng) if self.first_content else self.latency.per_token(self.rng)
            self.first_content = False
        if tokens and self.running_usage and not isinstance(event, UsageUpdate):
            # Providers that report running totals on every chunk (Gemini) see them grow token by token.
            self.steps.append(Step(UsageUpdate(self.usage()), delay))
            delay = 0.0
        self.steps.append(Step(event, delay, tokens))

    def usage(self) -> Usage:
        """The output counts so far."""
        reasoning = self.thinking_tokens if self.report_reasoning else None
        return Usage(output_tokens=self.budget.used, reasoning_tokens=reasoning)

    def take(self, count: int) -> bool:
        """Generate ``count`` tokens to be released together; False (budget spent) when they do not fit."""
        for _ in range(count):
            if not self.budget.take():
                self.cut = True
                return False
            self.held += 1
            self.thinking_tokens += self.thinking
        return True

    def release(self, event: Event) -> None:
        """Emit ``event`` carrying every held token."""
        tokens, self.held = self.held, 0
        self.emit(event, tokens)

    def stream_text(self, pieces: Iterator[str], make: Callable[[str], Event]) -> bool:
        """Emit one event per token; False when the budget ran out."""
        for piece in pieces:
            if not self.take(1):
                return False
            self.release(make(piece))
        return True


def plan(
    parts: list[Part],
    *,
    provider: str,
    model: str,
    response_id: str | None,
    input_tokens: int,
    args_mode: Callable[[str], ArgsMode],
    max_tokens: int | None = None,
    latency: Latency | None = None,
    rng: random.Random | None = None,
    cut_text_closes: bool = False,
    report_reasoning: bool = False,
    running_usage: bool = False,
) -> list[Step]:
    """The paced events of one scripted response (see the module docstring).

    ``report_reasoning`` puts the thinking token count in the usage (as ``reasoning_tokens``, part of
    ``output_tokens``) for providers that report it; ``running_usage`` adds a ``UsageUpdate`` with the
    output so far before every token-carrying event. Tokens generated but never released (a buffered
    member cut by ``max_tokens``) are carried by the final ``UsageUpdate`` step, so the steps' tokens
    always add up to the output token count.
    """
    planner = _Planner(latency or Latency(speed=0), rng or random.Random(0), _Budget(max_tokens))
    planner.running_usage, planner.report_reasoning = running_usage, report_reasoning
    start_usage = Usage(input_tokens=input_tokens, output_tokens=0)
    planner.emit(ResponseStart(provider=provider, model=model, id=response_id, usage=start_usage))
    called_tool = False
    for index, part in enumerate(parts):
        if isinstance(part, ToolPart):
            mode = args_mode(part.name)
            done = _stream_call(planner, index, part, mode)
            called_tool = called_tool or done is not None
            if done is None:
                break  # a whole call that did not fit: never started
        else:
            done = _stream_prose(planner, index, part)
            done = done or cut_text_closes
        planner.emit(BlockStop(index, complete=done))
        if planner.cut:
            break
    stop: StopReason = "max_tokens" if planner.cut else ("tool_use" if called_tool else "end_turn")
    usage = Usage(input_tokens=input_tokens).merge(planner.usage())
    planner.running_usage = False
    planner.release(UsageUpdate(usage))
    terminal: Terminal = "truncated" if planner.cut else "completed"
    planner.emit(ResponseEnd(stop_reason=stop, usage=usage, terminal=terminal))
    return planner.steps


def _stream_prose(planner: _Planner, index: int, part: TextPart | ThinkingPart) -> bool:
    if isinstance(part, TextPart):
        data = None if part.phase is None else {"phase": part.phase}
        planner.emit(BlockStart(index=index, type="text", raw_type="text", data=data))
        return planner.stream_text(iter(tokens(part.text)), partial(TextDelta, index))
    planner.emit(BlockStart(index=index, type="thinking", raw_type="thinking"))
    planner.thinking = True
    done = planner.stream_text(iter(tokens(part.text)), partial(ThinkingDelta, index))
    planner.thinking = False
    if done and part.signature is not None:
        planner.emit(SignatureDelta(index, part.signature))
    return done


def _stream_call(planner: _Planner, index: int, part: ToolPart, mode: ArgsMode) -> bool | None:
    """Stream one tool call: True when whole, False when cut, None when it never started."""
    start = BlockStart(index=index, type="tool_call", id=part.id, name=part.name, raw_type="tool_use")
    if mode == "whole":
        if not planner.take(max(1, len(_JSON_TOKEN.findall(part.text)))):
            return None
        planner.emit(start)
        planner.release(ToolArgsDelta(index, part.text))
        return True
    planner.emit(start)
    if mode == "eager":
        return planner.stream_text(iter(_JSON_TOKEN.findall(part.text)), partial(ToolArgsDelta, index))
    return _stream_buffered(planner, index, part)


def _members(part: ToolPart) -> tuple[list[str], str]:
    """The input's top-level members as released units, and the closing text."""
    if part.raw is not None:
        return [part.raw], ""  # scripted raw text: released as one unit
    items = list(part.input.items())
    members = [
        ("{" if i == 0 else ", ")
        + json.dumps(k, ensure_ascii=False)
        + ": "
        + json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
        for i, (k, v) in enumerate(items)
    ]
    return members or ["{"], "}"


def _stream_buffered(planner: _Planner, index: int, part: ToolPart) -> bool:
    """Release each top-level member only once it is whole (Anthropic without eager streaming)."""
    members, closing = _members(part)
    planner.emit(ToolArgsDelta(index, ""))
    for member in members:
        if not planner.take(max(1, len(_JSON_TOKEN.findall(member)))):
            return False
        planner.release(ToolArgsDelta(index, member))
    if closing:
        planner.emit(ToolArgsDelta(index, closing))
    return True
