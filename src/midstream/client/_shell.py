"""What the sync and async shells share around a :class:`~midstream.client._session.Session`.

:class:`ClientBase` holds a client's configuration and turns messages into a provider request and a
session; :class:`StreamBase` holds the state :class:`~midstream.client.stream.Stream` and
:class:`~midstream.client.stream.AsyncStream` have in common (events waiting to be read, the retry
decision, the deadline the watchdog reads, the socket a cancel shuts). The httpx2 glue both use is here
too: timeouts per attempt, what an exception means, sockets. :mod:`midstream.client.stream` adds the
blocking and the async I/O.
"""

from __future__ import annotations

import abc
import logging
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar

import httpx2

from midstream.client._session import (
    CLOCK,
    DEFAULT_MAX_RESPONSE_BYTES,
    Problem,
    Session,
    StreamEvent,
    WireRequest,
    status_problem,
    timeout_problem,
    transport_problem,
)
from midstream.client.errors import ProviderError, TimeoutName, redact
from midstream.client.request import ChatRequest
from midstream.client.timeouts import Timeouts
from midstream.core.retry import Decision, RetryPolicy
from midstream.errors import LocalError
from midstream.message import Message
from midstream.metrics import StreamMetrics, observers, stream_probe

logger = logging.getLogger("midstream.client")

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an HTTP error body worth reading

StreamT = TypeVar("StreamT")  # the stream a client's ``stream()`` returns
T = TypeVar("T")


# -- sockets -----------------------------------------------------------------------------------------


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


def _raw_body(response: httpx2.Response) -> bool:
    """True when the body can be read as httpx2's byte stream itself: its bytes are the content (no
    ``content-encoding``) and still unread (a custom transport may return a response already read)."""
    if response.is_stream_consumed:
        return False
    encoding = response.headers.get("content-encoding")
    return encoding is None or encoding.strip().lower() in ("", "identity")


def body_chunks(response: httpx2.Response) -> Iterator[bytes]:
    """The chunks of a streamed body as they arrive, decompressed if the server compressed them.

    Uncompressed, they are read from the response's byte stream itself: ``iter_bytes`` and ``iter_raw``
    each add a generator per chunk (and a pass-through decoder, a re-chunker), a tenth of the work the
    whole client does on a chunk. Closing the response closes the stream, as ``iter_raw`` would at the end.
    """
    stream = response.stream
    if isinstance(stream, httpx2.SyncByteStream) and _raw_body(response):
        response.is_stream_consumed = True  # as iter_raw marks it: a second read raises StreamConsumed
        return iter(stream)
    return response.iter_bytes()


def abody_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """:func:`body_chunks` for an async response."""
    stream = response.stream
    if isinstance(stream, httpx2.AsyncByteStream) and _raw_body(response):
        response.is_stream_consumed = True
        return aiter(stream)
    return aiter(response.aiter_bytes())


def socket_of(network_stream: Any) -> Any:
    """The socket under an httpcore network stream, if it has one."""
    try:
        return network_stream.get_extra_info("socket")
    except Exception:  # a custom transport's stream: no socket to abort
        return None


# -- building the request ----------------------------------------------------------------------------


def find_secrets(request: WireRequest, api_key: str | None) -> list[str]:
    """Every credential that could leak: the key, credential headers, AWS secrets."""
    found = [api_key] if api_key else []
    redacted = request.redacted_headers()
    found += [value for name, value in request.headers.items() if redacted.get(name) != value]
    found += getattr(request, "secrets", ())  # AWS credentials in any form, the default chain included
    for value in list(found):  # "Bearer sk-..." also hides the bare key
        found.extend(part for part in value.split() if len(part) >= 8)
    return found


class Secret(Generic[T]):
    """A credential (a key, AWS credentials in any form) that prints as ``***``."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'" if self.value is not None else "None"


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


DEFAULT_MAX_CONNECTIONS = 250
"""Connections one client's pool opens at most (streams beyond it wait for one, up to ``Timeouts.pool``).

Sized on measurement (``bench/concurrency.py``): against one local server, 1,000 and 4,000 concurrent
streams all completed with pools of 100 to 1,000, and 250 gave the lowest TTFT at both loads (a larger
pool makes the server share its time among more streams at once, so every first token comes later)."""
DEFAULT_MAX_KEEPALIVE = 100
"""Idle connections a client's pool keeps open for the next request."""


def pool_limits(max_connections: int | None, max_keepalive_connections: int | None) -> httpx2.Limits:
    """httpx2's limits for a client's pool; ``None`` keeps the default."""
    most = DEFAULT_MAX_CONNECTIONS if max_connections is None else max_connections
    keep = DEFAULT_MAX_KEEPALIVE if max_keepalive_connections is None else max_keepalive_connections
    if most < 1 or keep < 0:
        raise LocalError("max_connections must be at least 1 and max_keepalive_connections at least 0")
    return httpx2.Limits(max_connections=most, max_keepalive_connections=min(keep, most))


class ClientBase(abc.ABC, Generic[StreamT]):
    """What the sync and async clients share: configuration, building the request, :meth:`stream`."""

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
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_response_bytes is not None and (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes <= 0
        ):
            raise LocalError(
                f"max_response_bytes must be a positive integer or None, not {max_response_bytes!r}"
            )
        self.max_response_bytes = max_response_bytes
        self.provider = provider
        self.base_url = base_url
        self.model = model
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self.headers = dict(headers or {})
        self.region = region
        self._api_key = Secret(api_key)  # None: the builder reads the environment
        self._aws = Secret(aws_credentials)

    def __repr__(self) -> str:
        base = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(provider={self.provider!r}{base})"

    def stream(
        self,
        messages: Any,
        *,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        **options: Any,
    ) -> StreamT:
        """Start streaming a response to ``messages`` (a prompt, a list of turns, or a ChatRequest).

        ``options`` are :meth:`ChatRequest.create`'s: ``system``, ``tools``, ``max_tokens``,
        ``thinking_budget``, ``temperature``, ``tool_choice``, ``eager``. The request is sent when the
        ``with`` (``async with``) block is entered, or at the first iteration.
        """
        request, chat = self._prepare(messages, model, headers, options)
        return self.stream_request(request, chat=chat, timeouts=timeouts)

    @abc.abstractmethod
    def stream_request(
        self, request: WireRequest, *, chat: ChatRequest | None = None, timeouts: Timeouts | None = None
    ) -> StreamT:
        """Stream an already built provider request; ``chat`` supplies the tools' schemas."""

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
            aws_credentials=self._aws.value,
        )
        return request, chat

    def _session(self, request: WireRequest, chat: ChatRequest | None, timeouts: Timeouts | None) -> Session:
        schemas = {t.name: t.input_schema for t in chat.tools} if chat is not None else {}
        session = Session(
            request,
            provider=self.provider,
            schemas=schemas,
            timeouts=timeouts or self.timeouts,
            policy=self.retry,
            secrets=find_secrets(request, self._api_key.value),
            now=CLOCK(),
            max_response_bytes=self.max_response_bytes,
        )
        if observers():  # telemetry: one test per stream when nobody observes
            model = chat.model if chat is not None else self.model
            session.metrics.probe = stream_probe(session, model, chat)
        return session


# -- httpx2 glue -------------------------------------------------------------------------------------


def http_timeout(session: Session, now: float) -> tuple[httpx2.Timeout, TimeoutName, TimeoutName]:
    """httpx2 timeouts for connecting and for the response headers, and which of ours each stands for."""
    connect, connect_which = session.deadlines.connect(now)
    first, first_which = session.deadlines.first_byte(now)
    pool, _ = session.deadlines.pool(now)
    return httpx2.Timeout(connect=connect, read=first, write=first, pool=pool), connect_which, first_which


def body_backstop(timeouts: Timeouts) -> float | None:
    """The socket timeout during the body: only a backstop, the deadlines are enforced precisely."""
    values = [v for v in (timeouts.first_byte, timeouts.idle) if v is not None]
    return max(values) + 1.0 if values else None


def classify(
    exc: BaseException, session: Session, connect_which: TimeoutName, first_which: TimeoutName
) -> Problem:
    """The problem behind an exception raised while sending a request and reading its headers."""
    provider, secrets, timeouts = session.provider, session.secrets, session.timeouts
    if isinstance(exc, httpx2.PoolTimeout):  # queued behind other streams: not a connect failure
        _, which = session.deadlines.pool(CLOCK())
        return timeout_problem(which, timeouts, provider)
    if isinstance(exc, httpx2.ConnectTimeout):
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
    probe = session.metrics.probe
    if probe is not None:
        probe.retry(decision.reason, decision.delay)


# -- what both streams share -------------------------------------------------------------------------


StreamPhase = Literal["connecting", "reading", "waiting", "ended"]
"""Where a stream is: sending a request (``connecting``, until a success status), reading its body
(``reading``), sleeping before a retry (``waiting``), or over (``ended``; its closing events may still
be waiting to be read)."""

_MOVES: dict[StreamPhase, frozenset[StreamPhase]] = {
    "connecting": frozenset({"reading", "waiting", "ended"}),
    "reading": frozenset({"waiting", "ended"}),
    "waiting": frozenset({"connecting", "ended"}),
    "ended": frozenset(),
}


class StreamBase:
    """State and read-only views common to :class:`Stream` and :class:`AsyncStream`.

    The stream's state is one :data:`StreamPhase`, moved only by :meth:`_enter` along ``_MOVES``; the
    retry bookkeeping (attempts, the decision, the closing events) is the sans-IO
    :class:`~midstream.client._session.Session`'s. Two flags are signals from outside the reading
    code and are only read by it: ``_cancel`` (``cancel()``, from any thread or task) and
    ``_expired`` (the watchdog saw a deadline pass and shut the socket).
    """

    def __init__(self, session: Session) -> None:
        self._s = session
        self._pending: deque[StreamEvent] = deque()
        self._phase: StreamPhase = "connecting"
        self._error: BaseException | None = None
        self._cancel = False
        self._expired: TimeoutName | None = None  # the timeout the watchdog saw fire
        self._sock: Any = None
        self._headers: httpx2.Headers | None = None
        self.deadline = math.inf  # read by the watchdog
        # The deadline after each chunk is ``now + idle``, never past the total one: kept here as plain
        # floats (``math.inf``: none) so that the per-chunk arithmetic is two operations.
        idle = session.timeouts.idle
        self._idle = math.inf if idle is None else idle
        self._total_at = math.inf if session.deadlines.total_at is None else session.deadlines.total_at

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._s.provider} {self._phase} terminal={self._s.metrics.terminal}>"

    def _enter(self, phase: StreamPhase) -> None:
        """The one place the phase moves; a move not in ``_MOVES`` is a bug, said loudly."""
        if phase not in _MOVES[self._phase]:
            raise RuntimeError(f"a stream cannot go from {self._phase} to {phase}")
        self._phase = phase

    @property
    def phase(self) -> StreamPhase:
        """``connecting``, ``reading``, ``waiting`` (before a retry) or ``ended``."""
        return self._phase

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
        return self._phase == "ended"

    @property
    def response_headers(self) -> Mapping[str, str]:
        """The headers of the response being read (empty before it arrives)."""
        return self._headers if self._headers is not None else {}

    def _settle(self, problem: Problem) -> Decision | None:
        """The retry decision, or (when giving up) the closing events and the error queued."""
        decision, events, error = self._s.settle(problem, CLOCK(), cancelling=self._cancel)
        if decision is not None:
            log_retry(self._s, decision)
            return decision
        self._pending.extend(events)
        self._error = error
        self._enter("ended")
        return None

    def _queue_cancel(self) -> None:
        if self._phase != "ended":
            self._pending.extend(self._s.cancel(CLOCK()))
            self._enter("ended")

    def _queue_eof(self) -> Decision | None:
        try:
            events = self._s.eof(CLOCK())
        except Problem as problem:
            return self._settle(problem)
        self._pending.extend(events)
        self._enter("ended")
        return None

    def _queue_chunk(self, chunk: bytes) -> Decision | None:
        """A body chunk arrived: the next deadline, then its events queued (the per-chunk path: one
        clock reading, no phase move; the sync stream has it inlined). A problem in it settles the
        attempt."""
        now = CLOCK()
        at = now + self._idle  # Deadlines.idle_deadline, inlined
        self.deadline = at if at < self._total_at else self._total_at
        try:
            events = self._s.feed(now, chunk)
        except Problem as problem:
            return self._settle(problem)
        if events:
            self._pending.extend(events)
        return None

    def expire(self) -> None:
        """Called by the watchdog when a deadline passed: shut the connection; the read reports it."""
        if self._expired is None:
            self._expired = self._s.deadlines.expired(CLOCK(), self._s.started)
        abort_socket(self._sock)

    def _timed_out(self) -> Problem:
        which = self._expired or self._s.deadlines.expired(CLOCK(), self._s.started)
        return timeout_problem(which, self._s.timeouts, self._s.provider)

    def _read_problem(self, exc: httpx2.RequestError) -> Problem:
        """A body read failed: the socket timed out, or the connection broke."""
        if isinstance(exc, httpx2.TimeoutException):
            return self._timed_out()
        return transport_problem(exc, self._s.provider, self._s.secrets, connect=False)

    def _next_request(
        self, http: httpx2.Client | httpx2.AsyncClient, trace: Any
    ) -> tuple[httpx2.Request, TimeoutName, TimeoutName]:
        s, now = self._s, CLOCK()
        s.attempt(now)
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

    def _error_body_deadline(self, response: httpx2.Response) -> float:
        """An error status arrived: its body must come within the first-byte (or total) deadline, so a
        server trickling it cannot hold the call (each read alone would get the whole timeout)."""
        sock = socket_of(response.extensions.get("network_stream"))
        if sock is not None:
            self._sock = sock
        at, _ = self._s.deadlines.read_deadline(CLOCK(), started=False)
        self.deadline = math.inf if at is None else at
        return self.deadline

    def _error_response(self, response: httpx2.Response, body: bytes) -> Problem:
        s = self._s
        status, headers = response.status_code, response.headers
        error = ProviderError.from_response(s.provider, status, headers, body, s.secrets)
        return status_problem(error, headers)

    def _take_socket(self, name: str, info: Mapping[str, Any]) -> None:
        if name.endswith(".send_request_headers.started"):
            # A connection was acquired (after any wait in the pool): first_byte counts from here.
            self._s.deadlines.attempt(CLOCK())
            return
        # A fresh connection's socket is known before any response: a cancel can shut it right away.
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = socket_of(info.get("return_value"))
            if sock is not None:
                self._sock = sock
                if self._cancel:
                    abort_socket(sock)

    def _raise_or_stop(self, stop: type[Exception]) -> Exception:
        return self._error if isinstance(self._error, Exception) else stop()
