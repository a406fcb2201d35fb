"""Whether to retry a failed request, and after how long: a pure decision.

The client asks :func:`decide` after every failure. The answer depends only on its arguments (the
failure, how many retries were already made, whether content already reached the caller, the policy,
a wall-clock reading for ``retry-after`` dates and a random number for jitter), so every rule is
tested as a table, with a fake clock.

The rules, in order:

1. **Never after content.** Once the first content event (:func:`midstream.events.is_content`,
   re-exported here) has reached the caller, a retry would show it twice; recovery from there is the
   caller's explicit decision.
2. **A bounded number of retries** (``max_retries``, 2 by default).
3. **The server's word first:** ``x-should-retry: true`` / ``false`` overrides everything below.
4. **What is worth retrying:** HTTP 408, 409, 429, 5xx (529 included); connection failures; a
   dropped connection; connect and first-byte timeouts (idle too, as long as nothing was shown); a
   provider's mid-stream error that it marks retryable. Never: other 4xx, the total timeout,
   protocol errors (bytes that do not parse will not parse better next time).
5. **How long to wait:** ``retry-after-ms``, else ``retry-after`` (seconds, or an HTTP date), else
   the delay the error body gives (Google's ``RetryInfo``: Gemini says it there, not in a header),
   when the value is positive and at most ``max_server_delay``; otherwise exponential backoff
   ``initial_delay * 2**n`` capped at ``max_delay``, shortened by up to ``jitter`` (a fraction).
   As the official SDKs do, an out-of-range server delay falls back to the backoff.
6. **Within the deadline:** no retry whose wait would outlast the time left (``time_left``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

from midstream.events import is_content

__all__ = [
    "RETRY_STATUSES",
    "Decision",
    "Failure",
    "FailureKind",
    "RetryPolicy",
    "backoff",
    "decide",
    "is_content",
    "server_delay",
    "worth_retrying",
]

FailureKind = Literal["status", "connect", "transport", "timeout", "stream_error", "protocol"]
"""``status``: an HTTP error response; ``connect``: no connection was made; ``transport``: the
connection failed or dropped after it was made; ``timeout``: one of the client's timeouts fired
(``Failure.which`` says which); ``stream_error``: the provider reported an error inside the stream;
``protocol``: the response's bytes broke the protocol."""

RETRY_STATUSES: frozenset[int] = frozenset({408, 409, 429})
"""Statuses below 500 that are worth retrying (every status from 500 up is)."""

_RETRY_TIMEOUTS = frozenset({"connect", "first_byte", "idle"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries and how long between them (seconds).

    Example:

        >>> policy = midstream.RetryPolicy(max_retries=4, initial_delay=1.0)
        >>> client = midstream.Client("anthropic", retry=policy)
        >>> client.retry.max_retries
        4
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_server_delay: float = 60.0


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt.

    ``status`` and ``headers`` come from an HTTP error response, and ``delay`` from its body when the
    body says how long to wait (Google's ``RetryInfo``); ``which`` names the timeout that fired;
    ``retryable`` is the provider's own verdict on a mid-stream error (from
    :func:`~midstream.errors.classify_error`).
    """

    kind: FailureKind
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    which: str | None = None
    retryable: bool = False
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """``retry`` after ``delay`` seconds, or not; ``reason`` says which rule decided."""

    retry: bool
    delay: float = 0.0
    reason: str = ""


def decide(
    failure: Failure,
    *,
    retries: int,
    content_started: bool,
    policy: RetryPolicy,
    now: float,
    jitter: float,
    time_left: float | None = None,
) -> Decision:
    """Retry ``failure`` or give up (see the module docstring for the rules).

    ``retries`` is how many retries were already made; ``now`` is wall-clock time (seconds since the
    epoch, for ``retry-after`` dates); ``jitter`` is a number in ``[0, 1)`` from the caller's random
    source; ``time_left`` is how long until the caller's deadline (``None``: no deadline).
    """
    if content_started:
        return Decision(False, reason="content already reached the caller")
    if retries >= policy.max_retries:
        return Decision(False, reason=f"{retries} retries made, the limit is {policy.max_retries}")
    worth, reason = worth_retrying(failure)
    if not worth:
        return Decision(False, reason=reason)
    delay = server_delay(failure.headers, now=now, cap=policy.max_server_delay)
    if delay is None and failure.delay is not None and 0 < failure.delay <= policy.max_server_delay:
        delay = failure.delay  # the body's word, when no header says
    if delay is None:
        delay = backoff(retries, policy, jitter)
        reason += f"; backoff {delay:.3f} s"
    else:
        reason += f"; the server asked for {delay:.3f} s"
    if time_left is not None and delay >= time_left:
        return Decision(False, reason=f"waiting {delay:.3f} s would pass the deadline")
    return Decision(True, delay, reason)


def worth_retrying(failure: Failure) -> tuple[bool, str]:
    """Whether this kind of failure may succeed on a retry (rules 3 and 4), and why."""
    should = _header(failure.headers, "x-should-retry")
    if should is not None and should.strip().lower() in ("true", "false"):
        verdict = should.strip().lower() == "true"
        return verdict, f"x-should-retry: {should.strip().lower()}"
    kind = failure.kind
    if kind == "status":
        status = failure.status or 0
        return status in RETRY_STATUSES or status >= 500, f"HTTP {status}"
    if kind in ("connect", "transport"):
        return True, f"{kind} failure"
    if kind == "timeout":
        return failure.which in _RETRY_TIMEOUTS, f"{failure.which} timeout"
    if kind == "stream_error":
        return failure.retryable, "retryable stream error" if failure.retryable else "stream error"
    return False, f"{kind} error"


def server_delay(headers: Mapping[str, str], *, now: float, cap: float) -> float | None:
    """The wait the server asked for (``retry-after-ms``, then ``retry-after``), if in ``(0, cap]``."""
    value = _header(headers, "retry-after-ms")
    if value is not None:
        delay = _number(value)
        if delay is not None:
            delay /= 1000.0
            return delay if 0 < delay <= cap else None
    value = _header(headers, "retry-after")
    if value is None:
        return None
    delay = _number(value)
    if delay is None:
        delay = _http_date_delay(value, now)
    if delay is None or not 0 < delay <= cap:
        return None
    return delay


def backoff(retries: int, policy: RetryPolicy, jitter: float) -> float:
    """``initial_delay * 2**retries`` capped at ``max_delay``, shortened by ``jitter * policy.jitter``."""
    base = min(policy.initial_delay * (2.0**retries), policy.max_delay)
    return base * (1.0 - policy.jitter * min(max(jitter, 0.0), 1.0))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, found in headers.items():  # a plain dict may spell the name in any case
        if key.lower() == name:
            return found
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _http_date_delay(value: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; a date without a zone is not one
    return when.timestamp() - now
