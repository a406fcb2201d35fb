"""The sans-IO core of a streamed call.

:class:`Session` follows one call across its attempts: the wire decoder, the tool tracker, the
accumulator, the events held back until the first content event (so a retry stays invisible), and the
metrics. It takes clock readings and bytes and returns events, or raises a :class:`Problem` that says
how the attempt failed (for :func:`midstream.core.retry.decide`), how that reads as a ``StreamError``
event, and which typed error the caller gets. :mod:`midstream.client._shell` and
:mod:`midstream.client.stream` wrap it in I/O.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from midstream import wire
from midstream.client.errors import (
    ProviderError,
    StreamInterrupted,
    StreamInterruptedByTimeout,
    StreamTimeout,
    TimeoutName,
    TransportError,
    redact,
)
from midstream.client.providers import decoder_options
from midstream.client.timeouts import Deadlines, Timeouts
from midstream.core.accumulate import Accumulator
from midstream.core.retry import Decision, Failure, RetryPolicy, decide
from midstream.core.toolargs import ToolEvent, ToolTracker
from midstream.errors import LimitExceeded, RemoteProtocolError
from midstream.events import Event, StreamError, TextDelta, ThinkingDelta, is_content
from midstream.message import Message
from midstream.metrics import MetricsRecorder

StreamEvent = Event | ToolEvent
"""What a stream yields: a normalized event, or a tool event derived from one.

Example:

    >>> from midstream.sim import running
    >>> tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {}}}}]
    >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
    ...     with client.stream("Weather?", model="claude-sonnet-4-5", tools=tools) as stream:
    ...         kinds = [event.kind for event in stream]
    >>> "tool_args_delta" in kinds, "tool_call_ready" in kinds
    (True, True)
"""

CLOCK = time.monotonic


class WireRequest(Protocol):
    """A provider request ready to send (what ``build_request`` returns)."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def dialect(self) -> str: ...
    def redacted_headers(self) -> dict[str, str]: ...


# -- problems: every way an attempt can fail, as a retry input and a typed error --------------------


class Problem(Exception):
    """One attempt failed: how (for :func:`decide`), how it reads as an event, and the error to raise."""

    def __init__(self, failure: Failure, event: StreamError, error: BaseException) -> None:
        super().__init__(str(error))
        self.failure = failure
        self.event = event
        self.error = error

    def raise_for(self, message: Message, committed: bool) -> BaseException:
        """The exception for the caller, given the Message at the end and whether content was shown."""
        error = self.error
        if isinstance(error, LimitExceeded):
            error.partial = message  # a bound the client enforced: raised as itself, content or not
            return error
        if committed and isinstance(error, StreamTimeout):
            return StreamInterruptedByTimeout(
                error.which, error.seconds, provider=error.provider, partial=message
            )
        if committed:
            text = f"{message.provider} stream failed after content arrived: {error}"
            return StreamInterrupted(text, partial=message, cause=error)
        if hasattr(error, "partial"):
            error.partial = message
        return error


def timeout_problem(which: TimeoutName, timeouts: Timeouts, provider: str) -> Problem:
    """The timeout ``which`` fired (retried unless it is ``total``)."""
    error = StreamTimeout(which, timeouts.seconds(which), provider=provider)
    event = StreamError(error_kind="timeout", message=str(error), retryable=which not in ("total", "pool"))
    return Problem(Failure("timeout", which=which), event, error)


def transport_problem(exc: BaseException, provider: str, secrets: Sequence[str], connect: bool) -> Problem:
    """The connection could not be made (``connect``) or broke; ``exc`` is httpx2's error."""
    what = "could not connect to" if connect else "lost the connection to"
    text = redact(f"{what} {provider}: {type(exc).__name__}: {exc}", secrets)
    event = StreamError(error_kind="transport", message=text, retryable=True)
    failure = Failure("connect" if connect else "transport")
    return Problem(failure, event, TransportError(text, provider=provider))


def protocol_problem(exc: RemoteProtocolError, secrets: Sequence[str]) -> Problem:
    """The response's bytes broke the protocol (never retried)."""
    text = redact(str(exc), secrets)
    error = exc if text == str(exc) else RemoteProtocolError(text)  # the bad bytes may quote a key
    return Problem(Failure("protocol"), StreamError(error_kind="protocol", message=text), error)


DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""The default bound on one response body (decoded bytes), past which the client stops reading."""


def limit_problem(limit: int) -> Problem:
    """The response grew past ``max_response_bytes`` (never retried: it would grow again)."""
    text = (
        f"response body larger than max_response_bytes={limit} bytes; the connection was closed. Raise "
        "the limit with Client(..., max_response_bytes=N) (None: no limit), or the settings key "
        "client.max_response_bytes (0: no limit)"
    )
    error = LimitExceeded(text, limit="max_response_bytes", value=limit)
    return Problem(Failure("protocol"), StreamError(error_kind="protocol", message=text), error)


def event_problem(event: StreamError, provider: str, secrets: Sequence[str]) -> Problem:
    """A provider's error event (or the decoder's protocol verdict) inside the stream."""
    message = redact(event.message, secrets)
    if event.error_kind == "protocol":
        return Problem(Failure("protocol"), event, RemoteProtocolError(message))
    error = ProviderError(
        f"{provider} stream error ({event.error_kind}): {message}",
        status=event.status,
        kind=event.error_kind,
        retryable=event.retryable,
        provider=provider,
        payload=redact(event.raw, secrets),
    )
    return Problem(Failure("stream_error", retryable=event.retryable), event, error)


def status_problem(error: ProviderError, headers: Mapping[str, str]) -> Problem:
    """An HTTP error response (its headers may say when, or whether, to retry)."""
    event = StreamError(
        error_kind=error.kind,
        message=str(error),
        retryable=error.retryable,
        status=error.status,
        raw=error.payload,
    )
    failure = Failure("status", status=error.status, headers=dict(headers), delay=error.retry_delay)
    return Problem(failure, event, error)


# -- the sans-IO core --------------------------------------------------------------------------------


class Settlement(NamedTuple):
    """The outcome of :meth:`Session.settle`: a retry ``decision``, or the response's closing
    ``events`` and (when it failed) the ``error`` to raise after them."""

    decision: Decision | None
    events: list[StreamEvent]
    error: BaseException | None


class Session:
    """One call across its attempts: decoder, tool tracker, accumulator, held events, metrics.

    Sans-IO: the shells pass clock readings and bytes in and get events (or a :class:`Problem`) out.
    The two other inputs of a retry decision are injected: ``wall_clock`` (``time.time``; it dates a
    server's ``retry-after``) and ``rng`` (the backoff's jitter; a fresh generator by default).
    """

    def __init__(
        self,
        request: WireRequest,
        *,
        provider: str,
        schemas: Mapping[str, Any],
        timeouts: Timeouts,
        policy: RetryPolicy,
        secrets: Sequence[str],
        now: float,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.request = request
        self.provider = provider
        self.schemas = schemas
        self.timeouts = timeouts
        self.policy = policy
        self.secrets = secrets
        self.max_response_bytes = max_response_bytes
        self.deadlines = Deadlines(timeouts, now)
        self.metrics = MetricsRecorder(now, provider)
        self.started = False  # a body chunk arrived in this attempt
        # Injected, so that a test drives the retry decisions with a fake clock and a seeded generator:
        # the wall clock dates a server's retry-after, the generator jitters the backoff.
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self.attempts = 0  # requests sent so far (the first and its retries)
        self._new_attempt()

    def _new_attempt(self) -> None:
        self.decoder = wire.decoder(self.request.dialect, **decoder_options(self.provider))
        self.tracker = ToolTracker(self.schemas)
        self.acc = Accumulator(self.provider)
        self.held: list[StreamEvent] = []
        self.committed = False
        self.started = False
        self.received = 0  # body bytes of this attempt, for max_response_bytes

    @property
    def ended(self) -> bool:
        """True once the response's terminal event has been decoded."""
        return self.decoder.timeline.ended

    @property
    def finished(self) -> bool:
        """True once the response ended without failing (what follows cannot change it)."""
        return self.decoder.timeline.state == "ended"

    def attempt(self, now: float) -> None:
        """A request is about to be sent: the first, or a retry replacing a failed attempt."""
        retry = self.attempts > 0
        if retry:
            self._new_attempt()
        self.attempts += 1
        self.metrics.attempt(now, retry=retry)
        self.deadlines.attempt(now)

    def feed(self, now: float, chunk: bytes) -> list[StreamEvent]:
        """A body chunk: the events to release (none while held). Raises :class:`Problem`.

        The list returned may be the decoder's own (when no tool event was derived): read it, keep it,
        but do not change it.
        """
        self.started = True
        size = len(chunk)
        self.metrics.chunk(now, size)
        received = self.received + size
        limit = self.max_response_bytes
        if limit is not None and received > limit:
            return self._feed_past(limit, now, chunk)
        self.received = received
        decoder = self.decoder
        try:
            events = decoder.feed(chunk)
        except RemoteProtocolError as exc:
            raise self._broken(now, exc) from exc
        if not events:
            return []
        if self.committed and decoder.timeline.state == "streaming":
            # The usual chunk, _take without its branches: content was already released (so nothing
            # is held: a problem that holds events ends the attempt), the response goes on (no end to
            # record, no error to scrub or raise).
            self.acc.feed_all(events)
            self.metrics.events_seen(now, events)
            for event in events:
                cls = type(event)
                if cls is not TextDelta and cls is not ThinkingDelta:
                    return self._track(events)
            return events  # type: ignore[return-value]  # (a list is invariant)
        return self._take(now, events)

    def _feed_past(self, limit: int, now: float, chunk: bytes) -> list[StreamEvent]:
        """The chunk that crosses ``max_response_bytes``: what fits is decoded, then the limit's problem.

        Exactly the bytes up to the bound are decoded, whatever the chunking: the outcome of a response
        cut by the limit does not depend on how the network split it.
        """
        chunk = chunk[: limit - self.received]
        self.received += len(chunk)
        try:
            events = self.decoder.feed(chunk) if chunk else []
        except RemoteProtocolError as exc:
            raise self._broken(now, exc) from exc
        self._hold(now, events)
        raise limit_problem(limit)

    def _broken(self, now: float, exc: RemoteProtocolError) -> Problem:
        """The bytes broke the protocol. The good frames before the bad bytes count as if they had come
        in a chunk of their own: they may commit the response, or even finish it."""
        self._hold(now, self.decoder.take_owed())
        return protocol_problem(exc, self.secrets)

    def _hold(self, now: float, events: list[Event]) -> None:
        """Take ``events`` in, keeping them in ``held`` for the closing flush (a problem follows)."""
        released = self._take(now, events)
        if released:
            self.held.extend(released)  # empty: _take just released what it held

    def wind_up(self, now: float) -> list[StreamEvent]:
        """Trouble after the response finished changes nothing: release what is still held."""
        return self._flush(now, [])

    def eof(self, now: float) -> list[StreamEvent]:
        """The body ended cleanly: the closing events (``truncated`` without the provider's end)."""
        return self._take(now, self.decoder.close())

    def _take(self, now: float, events: list[Event]) -> list[StreamEvent]:
        """Fold a chunk's events in; release them (with the held ones) once the response commits.

        Each event is followed by the tool events it causes. Text never touches a tool call, so a
        chunk of text deltas, the usual case, is released as the decoder's list itself, not copied.
        """
        timeline = self.decoder.timeline
        if timeline.state == "failed":  # a StreamError went by: it may echo a key
            events = [self._scrub(event) for event in events]
        self.acc.feed_all(events)
        out: list[StreamEvent] = events  # type: ignore[assignment]  # (a list is invariant)
        for event in events:
            cls = type(event)
            if cls is not TextDelta and cls is not ThinkingDelta:
                out = self._track(events)
                break
        committed = self.committed
        if not committed:
            committed = self.committed = any(map(is_content, events))
        self.metrics.events_seen(now, events)
        if timeline.state == "failed":
            self.held.extend(out)  # released by the closing flush, before the failure's events
            error = self.acc.message.error
            assert isinstance(error, StreamError)
            raise event_problem(error, self.provider, self.secrets)
        ended = timeline.state == "ended"  # (not failed: that raised)
        if committed or ended:
            self.committed = True
            held = self.held
            if held:
                held.extend(out)
                out, self.held = held, []
            if ended:
                self.metrics.end(now, self.acc.terminal)
            return out
        self.held.extend(out)
        return []

    def _track(self, events: list[Event]) -> list[StreamEvent]:
        """``events``, each followed by the tool events it causes (the list itself if there are none)."""
        out: list[StreamEvent] = events  # type: ignore[assignment]
        tracker = self.tracker
        for i, event in enumerate(events):
            cls = type(event)
            if cls is not TextDelta and cls is not ThinkingDelta and (derived := tracker.feed(event)):
                out = [*events[: i + 1], *derived]  # from here on, a list of our own
                for later in events[i + 1 :]:
                    out.append(later)
                    cls = type(later)
                    if cls is not TextDelta and cls is not ThinkingDelta:
                        out.extend(tracker.feed(later))
                break
        return out

    def _scrub(self, event: Event) -> Event:
        if not isinstance(event, StreamError):
            return event
        message, raw = redact(event.message, self.secrets), redact(event.raw, self.secrets)
        return dataclasses.replace(event, message=message, raw=raw)

    def settle(self, problem: Problem, now: float, *, cancelling: bool = False) -> Settlement:
        """What a problem in the current attempt leads to: a retry, or the end of the response.

        After the provider's terminal event nothing changes the outcome: the held events are released
        and the response ends as it was. Otherwise the retry policy decides (never while
        ``cancelling``); giving up ends the response ``failed`` with the exception to raise.
        """
        if self.finished:
            return Settlement(None, self.wind_up(now), None)
        if not cancelling:
            decision = self.decide(problem, now)
            if decision.retry:
                return Settlement(decision, [], None)
        events, error = self.give_up(now, problem)
        return Settlement(None, events, error)

    def decide(self, problem: Problem, now: float) -> Decision:
        """Retry or not (see :mod:`midstream.core.retry`)."""
        return decide(
            problem.failure,
            retries=self.metrics.retries,
            content_started=self.committed,
            policy=self.policy,
            now=self._wall_clock(),
            jitter=self._rng.random(),
            time_left=self.deadlines.time_left(now),
        )

    def give_up(self, now: float, problem: Problem) -> tuple[list[StreamEvent], BaseException]:
        """End the response ``failed``: the events still to release, and the exception to raise."""
        closing = [] if self.ended else self.decoder.fail(problem.event)
        out = self._flush(now, closing)
        message = self.acc.message
        self.metrics.end(now, message.terminal)
        return out, problem.raise_for(message, self.committed)

    def cancel(self, now: float) -> list[StreamEvent]:
        """End the response ``cancelled`` (a no-op once it ended)."""
        out = self._flush(now, [] if self.ended else self.decoder.cancel())
        self.metrics.end(now, self.acc.terminal)
        return out

    def _flush(self, now: float, events: list[Event]) -> list[StreamEvent]:
        out = self.held
        for event in events:
            self.acc.feed(event)
            out.append(event)
            out.extend(self.tracker.feed(event))
        self.metrics.events_seen(now, events)
        self.held = []
        return out
