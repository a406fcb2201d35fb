"""What the agent does with a response that did not complete: a pure decision, tested as a table.

:func:`judge` looks at one attempt (the Message it produced and the error that ended it, if any), the
recovery settings and how many retries this iteration already made, and answers:

* ``accept`` -- the response completed: use it;
* ``retry`` -- ask again, explicitly: with a larger ``max_tokens`` when a tool input was cut by the
  output budget (the cut call is never executed), or after a retryable failure that came after content
  reached the caller (overloaded, 5xx, a dropped or stalled connection), continuing the partial text by
  prefilling it where the provider supports that (Anthropic), otherwise restarting the answer;
* ``end`` -- stop the run with this terminal state (``truncated``, ``failed``, ``cancelled``).

Errors raised before any content are not retried here: the client already retried those invisibly.
Providers that send whole calls (Gemini, Ollama) never start a call that does not fit the budget: such
a response ends truncated with no cut call to show for it, so it ends the run ``truncated`` instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from midstream.agent.events import RetryMode, RetryReason
from midstream.client.errors import ProviderError, StreamInterrupted, StreamTimeout, TransportError
from midstream.config import ErrorSettings
from midstream.errors import RETRYABLE_KINDS, RemoteProtocolError
from midstream.message import Message, Terminal, TextBlock, ToolCall
from midstream.wire.profiles import PROFILES

__all__ = [
    "PREFILL_PROVIDERS",
    "Verdict",
    "can_prefill",
    "describe",
    "echo",
    "judge",
    "merge_prefill",
    "retryable",
]

PREFILL_PROVIDERS = frozenset(p.name for p in PROFILES.values() if p.continues_prefill)
"""midstream's providers that continue a trailing assistant turn (a prefill) instead of answering it
anew: a view of the profiles' :attr:`~midstream.wire.profiles.ProviderProfile.continues_prefill`."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one attempt (see the module docstring).

    For ``retry``: ``reason``, the ``max_tokens`` of the next request, ``mode`` and the ``prefix`` to
    prefill (empty when restarting). For ``end``: the run's ``terminal`` state. ``why`` explains.
    """

    action: Literal["accept", "retry", "end"]
    why: str = ""
    reason: RetryReason | None = None
    terminal: Terminal | None = None
    max_tokens: int = 0
    mode: RetryMode = "restart"
    prefix: str = ""


def describe(error: BaseException) -> str:
    """``Type: message`` (the type alone when the message is empty)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def retryable(error: BaseException) -> bool:
    """Whether a failure after content may go away on a new request.

    Overloaded / 5xx / rate-limit errors the provider marks retryable, dropped connections and the
    connect, first-byte and idle timeouts are; the total timeout, protocol errors (bytes that did not
    parse will not parse better) and anything raised before content (already retried) are not.
    """
    if not isinstance(error, StreamInterrupted):
        return False
    if isinstance(error, StreamTimeout):
        return error.which != "total"
    cause = error.cause
    if isinstance(cause, ProviderError):
        return cause.retryable
    if isinstance(cause, TransportError):
        return True
    if isinstance(cause, RemoteProtocolError):
        return False
    return error.kind in RETRYABLE_KINDS


def can_prefill(provider: str, message: Message) -> bool:
    """True when the partial ``message`` can be continued by prefilling: the provider supports it and
    the response so far is answer text only (a tool call or reasoning must be restarted)."""
    found = PROFILES.get(provider)
    return (
        found is not None
        and found.continues_prefill
        and bool(message.blocks)
        and all(isinstance(block, TextBlock) for block in message.blocks)
        and bool(message.text.strip())
    )


def merge_prefill(prefix: str, message: Message) -> Message:
    """The whole answer of a continued response: ``prefix`` (what the model already said) joined to the
    first text block of its continuation ``message`` (or put before its blocks)."""
    if not prefix:
        return message
    blocks = list(message.blocks)
    if blocks and isinstance(blocks[0], TextBlock):
        blocks[0] = dataclasses.replace(blocks[0], text=prefix + blocks[0].text)
    else:
        blocks.insert(0, TextBlock(text=prefix))
    return dataclasses.replace(message, blocks=tuple(blocks))


def _cut_tool(message: Message) -> bool:
    return any(call.error == "truncated" for call in message.tool_calls)


def judge(
    message: Message,
    error: BaseException | None,
    *,
    settings: ErrorSettings,
    retries: int,
    max_tokens: int,
    provider: str,
    prefix: str = "",
) -> Verdict:
    """Decide what to do with one attempt of an iteration.

    ``message`` is the attempt's response (for a continued one: the continuation alone), ``error`` what
    ended it (``None``: it ended by itself), ``retries`` how many retries this iteration made already,
    ``max_tokens`` the budget of the attempt and ``prefix`` the text prefilled into it.
    """
    left = retries < settings.max_retries
    if error is not None:
        if not (retryable(error) and settings.retry_on_stream_error and left):
            return Verdict("end", describe(error), terminal="failed")
        prefill = can_prefill(provider, message) or (bool(prefix) and _text_only(message))
        kept = (prefix + message.text).rstrip() if prefill else ""
        # A prefill may not end in whitespace (Anthropic rejects it); the model writes its own.
        return Verdict(
            "retry",
            describe(error),
            "stream_error",
            max_tokens=max_tokens,
            mode="prefill" if prefill else "restart",
            prefix=kept,
        )
    if message.terminal == "completed":
        return Verdict("accept")
    if message.terminal == "cancelled":
        return Verdict("end", "the response was cancelled", terminal="cancelled")
    if message.terminal == "failed":
        return Verdict("end", "the response failed", terminal="failed")
    if message.stop_reason == "max_tokens":
        return _max_tokens(message, settings, left, max_tokens)
    if settings.retry_on_stream_error and left:
        why = "the stream ended without the provider's closing event"
        return Verdict("retry", why, "ended_early", max_tokens=max_tokens)
    return Verdict("end", "the stream ended without the provider's closing event", terminal="truncated")


def _text_only(message: Message) -> bool:
    return all(isinstance(block, TextBlock) for block in message.blocks)


def _max_tokens(message: Message, settings: ErrorSettings, left: bool, max_tokens: int) -> Verdict:
    if not _cut_tool(message):
        return Verdict("end", f"the answer reached max_tokens ({max_tokens})", terminal="truncated")
    if not settings.retry_on_incomplete:
        return Verdict(
            "end", "a tool input was cut by max_tokens (retry_on_incomplete is off)", terminal="truncated"
        )
    if not left:
        why = f"a tool input was cut by max_tokens ({max_tokens}) after {settings.max_retries} retries"
        return Verdict("end", why, terminal="truncated")
    grown = settings.next_max_tokens(max_tokens)
    if grown <= max_tokens:
        return Verdict(
            "end", f"a tool input was cut by max_tokens at the cap ({max_tokens})", terminal="truncated"
        )
    why = f"a tool input was cut by max_tokens ({max_tokens}); asking again with {grown}"
    return Verdict("retry", why, "max_tokens", max_tokens=grown)


def echo(message: Message, errors: ErrorSettings) -> Message:
    """The response as the conversation keeps it: each unusable tool input (``input`` is ``None``:
    truncated or not JSON) recorded as ``{"INVALID_JSON": raw}`` (``errors.invalid_json_wrapper``)."""
    blocks = tuple(
        dataclasses.replace(b, input=errors.wrap_invalid(b.raw_input))
        if isinstance(b, ToolCall) and b.input is None
        else b
        for b in message.blocks
    )
    return dataclasses.replace(message, blocks=blocks)
