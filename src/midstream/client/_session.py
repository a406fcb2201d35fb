"""The sans-IO core of a streamed call, and what the sync and async streams share.

:class:`Session` follows one call across its attempts: the wire decoder, the tool tracker, the
accumulator, the events held back until the first content event (so a retry stays invisible), and the
metrics. It takes clock readings and bytes and returns events, or raises a :class:`Problem` that says
how the attempt failed (for :func:`midstream.core.retry.decide`), how that reads as a ``StreamError``
event, and which typed error the caller gets. :mod:`midstream.client.stream` wraps it in I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx2

from midstream import wire
from midstream.client.errors import (
    MidStreamError,
    MidStreamTimeout,
    ProviderError,
    StreamTimeout,
    TimeoutName,
    TransportError,
    redact,
)
from midstream.client.request import ChatRequest
from midstream.client.timeouts import Deadlines, Timeouts
from midstream.core.accumulate import Accumulator
from midstream.core.retry import Decision, Failure, RetryPolicy, decide, is_content
from midstream.core.toolargs import ToolEvent, ToolTracker
from midstream.errors import LocalError, RemoteProtocolError
from midstream.events import Event, StreamError
from midstream.message import Message
from midstream.metrics import MetricsRecorder, StreamMetrics

StreamEvent = Event | ToolEvent
"""What a stream yields: a normalized event, or a tool event derived from one."""

logger = logging.getLogger("midstream.client")

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an HTTP error body worth reading
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
        if committed and isinstance(error, StreamTimeout):
            return MidStreamTimeout(error.which, error.seconds, provider=error.provider, partial=message)
        if committed:
            text = f"{message.provider} stream failed after content arrived: {error}"
            return MidStreamError(text, partial=message, cause=error)
        if hasattr(error, "partial"):
            error.partial = message
        return error


def timeout_problem(which: TimeoutName, timeouts: Timeouts, provider: str) -> Problem:
    """The timeout ``which`` fired (retried unless it is ``total``)."""
    error = StreamTimeout(which, timeouts.seconds(which), provider=provider)
    event = StreamError("timeout", str(error), retryable=which != "total")
    return Problem(Failure("timeout", which=which), event, error)


def transport_problem(exc: BaseException, provider: str, secrets: Sequence[str], connect: bool) -> Problem:
    """The connection could not be made (``connect``) or broke; ``exc`` is httpx2's error."""
    what = "could not connect to" if connect else "lost the connection to"
    text = redact(f"{what} {provider}: {type(exc).__name__}: {exc}", secrets)
    event = StreamError("transport", text, retryable=True)
    failure = Failure("connect" if connect else "transport")
    return Problem(failure, event, TransportError(text, provider=provider))


def protocol_problem(exc: RemoteProtocolError, secrets: Sequence[str]) -> Problem:
    """The response's bytes broke the protocol (never retried)."""
    text = redact(str(exc), secrets)
    error = exc if text == str(exc) else RemoteProtocolError(text)  # the bad bytes may quote a key
    return Problem(Failure("protocol"), StreamError("protocol", text), error)


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
    event = StreamError(error.kind, str(error), error.retryable, status=error.status, raw=error.payload)
    return Problem(Failure("status", status=error.status, headers=dict(headers)), event, error)


def abort_socket(sock: Any) -> None:
    """Shut a socket down from any thread: a blocked read returns at once and the peer sees FIN."""
    if sock is None:
        return
    try:
        if isinstance(sock, socket.socket):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket's: it would unwrap TLS
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError):
        pass  # already closed


def socket_of(network_stream: Any) -> Any:
    """The socket under an httpcore network stream, if it has one."""
    try:
        return network_stream.get_extra_info("socket")
    except Exception:  # a custom transport's stream: no socket to abort
        return None


# -- the sans-IO core shared by both streams ---------------------------------------------------------


class Session:
    """One call across its attempts: decoder, tool tracker, accumulator, held events, metrics.

    Sans-IO: the shells pass clock readings and bytes in and get events (or a :class:`Problem`) out.
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
    ) -> None:
        self.request = request
        self.provider = provider
        self.schemas = schemas
        self.timeouts = timeouts
        self.policy = policy
        self.secrets = secrets
        self.deadlines = Deadlines(timeouts, now)
        self.metrics = MetricsRecorder(now, provider)
        self.started = False  # a body chunk arrived in this attempt
        self._rng = random.Random()  # retry jitter only
        self._new_attempt()

    def _new_attempt(self) -> None:
        self.decoder = wire.decoder(self.request.dialect)
        self.tracker = ToolTracker(self.schemas)
        self.acc = Accumulator(self.provider)
        self.held: list[StreamEvent] = []
        self.committed = False
        self.started = False

    @property
    def ended(self) -> bool:
        """True once the response's terminal event has been decoded."""
        return self.decoder.timeline.ended

    @property
    def finished(self) -> bool:
        """True once the response ended without failing (what follows cannot change it)."""
        return self.decoder.timeline.state == "ended"

    def attempt(self, now: float, *, retry: bool) -> None:
        """A request is about to be sent (``retry``: it replaces a failed attempt)."""
        if retry:
            self._new_attempt()
        self.metrics.attempt(now, retry=retry)
        self.deadlines.attempt(now)

    def feed(self, now: float, chunk: bytes) -> list[StreamEvent]:
        """A body chunk: the events to release (none while held). Raises :class:`Problem`."""
        self.started = True
        self.metrics.chunk(now, len(chunk))
        try:
            events = self.decoder.feed(chunk)
        except RemoteProtocolError as exc:
            raise protocol_problem(exc, self.secrets) from exc
        return self._take(now, events) if events else []

    def eof(self, now: float) -> list[StreamEvent]:
        """The body ended cleanly: the closing events (``truncated`` without the provider's end)."""
        return self._take(now, self.decoder.close())

    def _take(self, now: float, events: list[Event]) -> list[StreamEvent]:
        if self.decoder.timeline.state == "failed":  # a StreamError went by: it may echo a key
            events = [self._scrub(event) for event in events]
        out, acc, tracker = self.held, self.acc, self.tracker
        committed = self.committed
        for event in events:
            acc.feed(event)
            out.append(event)
            derived = tracker.feed(event)
            if derived:
                out.extend(derived)
            if not committed and is_content(event):
                committed = True
        self.committed = committed
        self.metrics.events_seen(now, events)
        timeline = self.decoder.timeline
        if timeline.state == "failed":
            error = acc.message.error
            assert isinstance(error, StreamError)
            raise event_problem(error, self.provider, self.secrets)
        if committed or timeline.ended:
            self.committed = True
            self.held = []
            if timeline.ended:
                self.metrics.end(now, acc.message.terminal)
            return out
        return []

    def _scrub(self, event: Event) -> Event:
        if not isinstance(event, StreamError):
            return event
        message, raw = redact(event.message, self.secrets), redact(event.raw, self.secrets)
        return dataclasses.replace(event, message=message, raw=raw)

    def decide(self, problem: Problem, now: float) -> Decision:
        """Retry or not (see :mod:`midstream.core.retry`)."""
        return decide(
            problem.failure,
            retries=self.metrics.retries,
            content_started=self.committed,
            policy=self.policy,
            now=time.time(),
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
        self.metrics.end(now, self.acc.message.terminal)
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


def find_secrets(request: WireRequest, api_key: str | None, aws_credentials: Any) -> list[str]:
    """Every credential that could leak: the key, credential headers, AWS secrets."""
    found = [api_key] if api_key else []
    redacted = request.redacted_headers()
    found += [value for name, value in request.headers.items() if redacted.get(name) != value]
    for attr in ("secret_key", "token", "access_key"):
        value = getattr(aws_credentials, attr, None)
        if isinstance(value, str):
            found.append(value)
    for value in list(found):  # "Bearer sk-..." also hides the bare key
        found.extend(part for part in value.split() if len(part) >= 8)
    return found


class Secret:
    """A credential that prints as ``***``."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'" if self.value else "None"


def build(
    provider: str,
    request: ChatRequest,
    *,
    api_key: str | None,
    base_url: str | None,
    extra_headers: Mapping[str, str] | None,
    region: str | None,
    aws_credentials: Any,
) -> WireRequest:
    """:func:`midstream.client.providers.build_request` for a streamed response."""
    # Imported here: the request builders are the heavier half of the client and only needed now.
    from midstream.client.providers import build_request

    built: WireRequest = build_request(
        provider,
        request,
        api_key=api_key,
        base_url=base_url,
        stream=True,
        extra_headers=extra_headers,
        region=region,
        aws_credentials=aws_credentials,
    )
    return built


class ClientBase:
    """What the sync and async clients share: configuration and building the request."""

    def __init__(
        self,
        provider: str,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeouts: Timeouts | None = None,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        region: str | None = None,
        aws_credentials: Any = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url
        self.model = model
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self.headers = dict(headers or {})
        self.region = region
        self._api_key = Secret(api_key)  # None: the builder reads the environment
        self._aws = aws_credentials

    def __repr__(self) -> str:
        base = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(provider={self.provider!r}{base})"

    def _prepare(
        self, messages: Any, model: str | None, headers: Mapping[str, str] | None, options: dict[str, Any]
    ) -> tuple[WireRequest, ChatRequest]:
        if isinstance(messages, ChatRequest):
            chat = messages
        else:
            model = model or self.model
            if not model:
                raise LocalError(f"no model given: pass model= to stream() or to {type(self).__name__}()")
            chat = ChatRequest.create(model, messages, **options)
        request = build(
            self.provider,
            chat,
            api_key=self._api_key.value,
            base_url=self.base_url,
            extra_headers={**self.headers, **(headers or {})},
            region=self.region,
            aws_credentials=self._aws,
        )
        return request, chat

    def _session(self, request: WireRequest, chat: ChatRequest | None, timeouts: Timeouts | None) -> Session:
        schemas = {t.name: t.input_schema for t in chat.tools} if chat is not None else {}
        return Session(
            request,
            provider=self.provider,
            schemas=schemas,
            timeouts=timeouts or self.timeouts,
            policy=self.retry,
            secrets=find_secrets(request, self._api_key.value, self._aws),
            now=CLOCK(),
        )


def http_timeout(session: Session, now: float) -> tuple[httpx2.Timeout, TimeoutName, TimeoutName]:
    """httpx2 timeouts for connecting and for the response headers, and which of ours each stands for."""
    connect, connect_which = session.deadlines.connect(now)
    first, first_which = session.deadlines.first_byte(now)
    return httpx2.Timeout(connect=connect, read=first, write=first, pool=connect), connect_which, first_which


def body_backstop(timeouts: Timeouts) -> float | None:
    """The socket timeout during the body: only a backstop, the deadlines are enforced precisely."""
    values = [v for v in (timeouts.first_byte, timeouts.idle) if v is not None]
    return max(values) + 1.0 if values else None


def classify(
    exc: BaseException, session: Session, connect_which: TimeoutName, first_which: TimeoutName
) -> Problem:
    """The problem behind an exception raised while sending a request and reading its headers."""
    provider, secrets, timeouts = session.provider, session.secrets, session.timeouts
    if isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return timeout_problem(connect_which, timeouts, provider)
    if isinstance(exc, httpx2.TimeoutException):
        return timeout_problem(first_which, timeouts, provider)
    if isinstance(exc, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError | httpx2.InvalidURL):
        raise LocalError(redact(f"cannot send the request: {exc}", secrets)) from None
    if isinstance(exc, httpx2.ConnectError):
        return transport_problem(exc, provider, secrets, connect=True)
    if isinstance(exc, httpx2.TransportError):
        return transport_problem(exc, provider, secrets, connect=False)
    raise exc


def log_retry(session: Session, decision: Decision) -> None:
    """One INFO line per retry: which, how long and why (never a header or a body)."""
    logger.info(
        "retrying the %s request (retry %d of %d) in %.3f s: %s",
        session.provider,
        session.metrics.retries + 1,
        session.policy.max_retries,
        decision.delay,
        decision.reason,
    )


# -- what both streams share -------------------------------------------------------------------------


class StreamBase:
    """State and read-only views common to :class:`Stream` and :class:`AsyncStream`."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._pending: deque[StreamEvent] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._cancel = False
        self._expired: TimeoutName | None = None  # the timeout the watchdog saw fire
        self._sock: Any = None
        self._attempts = 0
        self._headers: httpx2.Headers | None = None
        self.deadline = math.inf  # read by the watchdog

    def __repr__(self) -> str:
        state = "done" if self._done else "streaming"
        return f"<{type(self).__name__} {self._s.provider} {state} terminal={self._s.metrics.terminal}>"

    @property
    def metrics(self) -> StreamMetrics:
        """TTFT, time to first tool byte, chunk gaps, bytes, events, retries, terminal (so far)."""
        return self._s.metrics.snapshot(CLOCK())

    @property
    def message(self) -> Message:
        """The Message so far; partial (not ``completed``) until the stream completes."""
        return self._s.acc.message

    @property
    def request(self) -> WireRequest:
        """The provider request that was sent."""
        return self._s.request

    @property
    def done(self) -> bool:
        """True once the stream has ended (its closing events may still be waiting to be read)."""
        return self._done

    @property
    def response_headers(self) -> Mapping[str, str]:
        """The headers of the response being read (empty before it arrives)."""
        return self._headers if self._headers is not None else {}

    def _settle(self, problem: Problem) -> Decision | None:
        """The retry decision, or (when giving up) the closing events and the error queued."""
        s, now = self._s, CLOCK()
        if s.finished:  # trouble after the provider's terminal event changes nothing
            self._done = True
            return None
        if not self._cancel:
            decision = s.decide(problem, now)
            if decision.retry:
                log_retry(s, decision)
                return decision
        events, error = s.give_up(now, problem)
        self._pending.extend(events)
        self._error, self._done = error, True
        return None

    def _queue_cancel(self) -> None:
        if not self._done:
            self._pending.extend(self._s.cancel(CLOCK()))
            self._done = True

    def _queue_eof(self) -> Decision | None:
        try:
            events = self._s.eof(CLOCK())
        except Problem as problem:
            return self._settle(problem)
        self._pending.extend(events)
        self._done = True
        return None

    def _queue_chunk(self, chunk: bytes) -> Decision | None:
        s = self._s
        now = CLOCK()
        self.deadline = s.deadlines.idle_deadline(now)
        try:
            events = s.feed(now, chunk)
        except Problem as problem:
            return self._settle(problem)
        if events:
            self._pending.extend(events)
        return None

    def _timed_out(self) -> Problem:
        which = self._expired or self._s.deadlines.expired(CLOCK(), self._s.started)
        return timeout_problem(which, self._s.timeouts, self._s.provider)

    def _next_request(
        self, http: httpx2.Client | httpx2.AsyncClient, trace: Any
    ) -> tuple[httpx2.Request, TimeoutName, TimeoutName]:
        s, now = self._s, CLOCK()
        s.attempt(now, retry=self._attempts > 0)
        self._attempts += 1
        self._expired = None
        timeout, connect_which, first_which = http_timeout(s, now)
        req = s.request
        built = http.build_request(
            req.method,
            req.url,
            headers=req.headers,
            content=req.body,
            timeout=timeout,
            extensions={"trace": trace},
        )
        return built, connect_which, first_which

    def _body_started(self, response: httpx2.Response) -> None:
        """Headers arrived with a success status: switch to the body's deadlines."""
        s = self._s
        self._headers = response.headers
        timeout = response.request.extensions.get("timeout")
        if isinstance(timeout, dict):
            timeout["read"] = body_backstop(s.timeouts)
        sock = socket_of(response.extensions.get("network_stream"))
        if sock is not None:
            self._sock = sock
        at, _ = s.deadlines.read_deadline(CLOCK(), started=False)
        self.deadline = math.inf if at is None else at

    def _error_response(self, response: httpx2.Response, body: bytes) -> Problem:
        s = self._s
        status, headers = response.status_code, response.headers
        error = ProviderError.from_response(s.provider, status, headers, body, s.secrets)
        return status_problem(error, headers)

    def _take_socket(self, name: str, info: Mapping[str, Any]) -> None:
        # A fresh connection's socket is known before any response: a cancel can shut it right away.
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = socket_of(info.get("return_value"))
            if sock is not None:
                self._sock = sock
                if self._cancel:
                    abort_socket(sock)

    def _raise_or_stop(self, stop: type[Exception]) -> Exception:
        return self._error if isinstance(self._error, Exception) else stop()
