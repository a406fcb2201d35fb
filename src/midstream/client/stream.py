"""The streaming client: one request, every provider, honest endings.

``Client(provider, ...).stream(messages, ...)`` builds the provider's request (see
:mod:`midstream.client.providers`), sends it with httpx2 and returns a :class:`Stream`, a context
manager that yields the normalized events of :mod:`midstream.events`, each followed by the tool events
it causes (:mod:`midstream.core.toolargs`: field previews, then one verdict per call). It guarantees:

* **Retries are invisible or absent.** Events are held back until the first content event
  (:func:`midstream.events.is_content`); a failure before it is retried as
  :func:`midstream.core.retry.decide` says, and the caller never sees the failed attempt. After it,
  nothing is retried: the failure surfaces as :class:`~midstream.client.errors.StreamInterrupted` carrying
  the partial Message.
* **Exactly one ending.** The events end with one ``ResponseEnd`` whose ``terminal`` is
  ``completed``, ``truncated``, ``failed`` or ``cancelled``; a failure is raised after its events.
  :meth:`Stream.final` returns the Message, and a partial one is never marked complete.
* **Cancel means the connection closes.** Leaving the ``with`` block early, :meth:`Stream.cancel`
  (from any thread), Ctrl-C, or cancelling the task of an :class:`AsyncStream` shuts the connection at
  once, so the server sees the client go and stops generating.
* **Bounded waits.** :class:`~midstream.client.timeouts.Timeouts` (connect, first byte, idle, total)
  each raise :class:`~midstream.client.errors.StreamTimeout` naming the one that fired.
* **Credentials stay secret.** Keys never appear in reprs, logs or error messages.

:class:`AsyncClient` and :class:`AsyncStream` are the same on anyio (asyncio or trio).
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import anyio
import httpx2

from midstream.client._session import (
    CLOCK,
    DEFAULT_MAX_RESPONSE_BYTES,
    Problem,
    Session,
    StreamEvent,
    WireRequest,
)
from midstream.client._shell import (
    ERROR_BODY_LIMIT,
    ClientBase,
    StreamBase,
    abody_chunks,
    abort_socket,
    body_chunks,
    classify,
    pool_limits,
)
from midstream.client.request import ChatRequest
from midstream.client.timeouts import WATCHDOG, Timeouts
from midstream.core.retry import Decision
from midstream.events import TextDelta
from midstream.message import Message

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AsyncClient",
    "AsyncStream",
    "Client",
    "Stream",
    "StreamEvent",
    "WireRequest",
]


# -- sync ---------------------------------------------------------------------------------------------


class Stream(StreamBase):
    """One streamed response. Use it as a context manager and iterate it (see the module docstring).

    ``for event in stream`` yields :data:`StreamEvent` s; :attr:`text_stream` only the text;
    :meth:`final` the Message. A failure is raised after its events (``ResponseEnd(terminal="failed")``)
    have been yielded; a cancelled stream simply ends.

    Example:

        >>> from midstream.sim import running
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
        ...     with client.stream("Hello", model="claude-sonnet-4-5") as stream:
        ...         kinds = [event.kind for event in stream]
        ...         message = stream.final()
        >>> kinds[0], kinds[-1], message.terminal, stream.metrics.terminal
        ('response_start', 'response_end', 'completed', 'completed')
    """

    def __init__(self, session: Session, http: httpx2.Client) -> None:
        super().__init__(session)
        self._http = http
        self._response: httpx2.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._reading = False
        self._owner = threading.get_ident()
        self._wake = threading.Event()

    def __enter__(self) -> Stream:
        try:
            while self._phase == "connecting":
                self._step()
        except BaseException:
            self.close()
            raise
        if self._phase == "ended" and self._error is not None:
            raise self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        pending = self._pending
        while not pending:
            if self._phase == "reading" and not self._cancel:
                self._read()
            elif self._phase == "ended":
                raise self._raise_or_stop(StopIteration)
            else:
                self._step()
        return pending.popleft()

    @property
    def text_stream(self) -> Iterator[str]:
        """Only the answer text, as it arrives (same iteration: events read here are consumed)."""
        for event in self:
            if isinstance(event, TextDelta):
                yield event.text

    def final(self) -> Message:
        """Read to the end and return the Message (``completed``, ``truncated`` or ``cancelled``).

        A failed stream raises its error instead (:class:`StreamInterrupted` carries the partial Message).
        """
        for _ in self:
            pass
        return self.message

    def cancel(self) -> None:
        """Stop now: the connection is shut at once (from any thread); the stream ends ``cancelled``.

        From another thread, a read blocked on the network returns at once and the reading thread
        ends the stream; a retry's wait is cut short too.
        """
        self._cancel = True
        self._wake.set()
        abort_socket(self._sock)
        if threading.get_ident() == self._owner and not self._reading:
            self._finish_cancel()

    def close(self) -> None:
        """Release the connection; a stream that has not ended is cancelled first.

        Called from a thread other than the reading one, it only cancels: the reader releases.
        """
        if self._phase != "ended":
            self.cancel()
        if threading.get_ident() == self._owner:
            self._finish_cancel()

    # -- the state machine: each step opens a request or reads one chunk --------------------------

    def _step(self) -> None:
        if self._cancel:
            self._finish_cancel()
        elif self._phase == "connecting":
            self._open()
        else:
            self._read()

    def _open(self) -> None:
        request, connect_which, first_which = self._next_request(self._http, self._take_socket)
        try:
            response = self._http.send(request, stream=True)
        except Exception as exc:
            if self._cancel:
                self._finish_cancel()
                return
            self._after(self._settle(classify(exc, self._s, connect_which, first_which)))
            return
        except BaseException:
            self._finish_cancel()
            raise
        self._response = response
        if response.status_code >= 300:
            self._after(self._settle(self._status_problem(response)))
            return
        self._body_started(response)
        self._chunks = body_chunks(response)
        self._enter("reading")
        WATCHDOG.watch(self)

    def _status_problem(self, response: httpx2.Response) -> Problem:
        body = b""
        if self._error_body_deadline(response) != math.inf:
            WATCHDOG.watch(self)  # it shuts the socket at the deadline; _release stops the watch
        try:
            for part in response.iter_bytes():
                body += part
                if len(body) >= ERROR_BODY_LIMIT:
                    break
        except httpx2.HTTPError:
            pass  # the status says enough
        return self._error_response(response, body)

    def _read(self) -> None:
        """Read one chunk and queue its events; the end of the body or a failure settles the attempt."""
        chunks = self._chunks
        assert chunks is not None
        self._reading = True
        try:
            chunk = next(chunks)
        except StopIteration:
            self._reading = False
            if not self._aborted():
                self._after(self._queue_eof())
            return
        except httpx2.RequestError as exc:  # the connection failed, or the body did not decompress
            self._reading = False
            if not self._aborted():
                self._after(self._settle(self._read_problem(exc)))
            return
        except BaseException:
            self._reading = False
            self._finish_cancel()
            raise
        self._reading = False
        if self._cancel or self._expired is not None:
            self._aborted()
            return
        # StreamBase._queue_chunk, inlined on the sync stream's hottest path.
        now = CLOCK()
        at = now + self._idle
        self.deadline = at = at if at < self._total_at else self._total_at
        try:
            events = self._s.feed(now, chunk)
        except Problem as problem:
            self._after(self._settle(problem))
            return
        if events:
            self._pending.extend(events)
        if at < WATCHDOG.next_wake:
            WATCHDOG.poke()

    def _aborted(self) -> bool:
        """A cancel or the watchdog shut the connection under the read: end the stream accordingly."""
        if self._cancel:
            self._finish_cancel()
        elif self._expired is not None:
            self._after(self._settle(self._timed_out()))
        else:
            return False
        return True

    def _after(self, decision: Decision | None) -> None:
        """Release the attempt if it is over; wait before a retry (a cancel interrupts the wait)."""
        if decision is None and self._phase != "ended":
            return
        self._release()
        if decision is not None:
            self._enter("waiting")
            if self._wake.wait(decision.delay):
                self._finish_cancel()
            else:
                self._enter("connecting")

    def _finish_cancel(self) -> None:
        self._release()
        self._queue_cancel()

    def _release(self) -> None:
        WATCHDOG.unwatch(self)
        self.deadline = math.inf
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        self._sock = None
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        if response is not None:
            response.close()


class Client(ClientBase[Stream]):
    """A streaming client for one provider (see the module docstring for what it guarantees).

    ``provider`` is one of ``anthropic``, ``openai-chat``, ``openai-responses``, ``gemini``,
    ``bedrock``, ``ollama``, ``openai-compatible``. ``api_key`` defaults to the provider's usual
    environment variable (:data:`midstream.client.providers.ENV_KEYS`); ``base_url`` to its API.
    Keyword options: ``model`` (the default for :meth:`stream`), ``timeouts``
    (:class:`~midstream.client.timeouts.Timeouts`), ``max_retries`` (2) or a whole ``retry``
    (:class:`~midstream.core.retry.RetryPolicy`), ``headers`` added to every request,
    ``max_response_bytes`` (256 MiB; ``None``: no limit: past it the client stops reading, closes the
    connection and raises :class:`~midstream.errors.LimitExceeded` with the partial Message), and for
    Bedrock ``region`` and ``aws_credentials``. ``http_client`` (an ``httpx2.Client``) or
    ``transport`` replace the default connection pool; a pool made here is closed by :meth:`close`.

    The pool opens at most ``max_connections`` connections (default
    :data:`~midstream.client._shell.DEFAULT_MAX_CONNECTIONS`, 250, sized on measurement) and keeps
    ``max_keepalive_connections`` idle ones (100); a stream beyond the limit waits for a free
    connection up to ``Timeouts.pool`` and then fails with a ``pool`` :class:`StreamTimeout` that
    says how to raise the limit. Each stream holds its connection until it ends.

    Example:

        >>> from midstream.sim import running
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
        ...     with client.stream("Hello", model="claude-sonnet-4-5") as stream:
        ...         message = stream.final()
        >>> message.terminal, message.text
        ('completed', 'This is the midstream simulator. You said: Hello')
    """

    def __init__(
        self,
        provider: str,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        http_client: httpx2.Client | None = None,
        transport: httpx2.BaseTransport | None = None,
        max_connections: int | None = None,
        max_keepalive_connections: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key, base_url, **options)
        self._owns_http = http_client is None
        self.limits = pool_limits(max_connections, max_keepalive_connections)
        self._http = http_client or httpx2.Client(
            transport=transport, timeout=None, follow_redirects=False, limits=self.limits
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (only one this client made)."""
        if self._owns_http:
            self._http.close()

    def to_async(
        self,
        *,
        http_client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> AsyncClient:
        """An :class:`AsyncClient` for the same provider, with this client's key, base URL, model,
        timeouts, retry policy, headers (copied), pool limits, ``max_response_bytes`` and Bedrock
        ``region`` / ``aws_credentials``.

        The connection pool is not shared (a sync pool cannot serve async code): the new client makes
        its own, closed by :meth:`AsyncClient.aclose`, unless ``http_client`` or ``transport`` is given.
        Closing this client does not close the new one.
        """
        return AsyncClient(
            self.provider,
            self._api_key.value,
            self.base_url,
            http_client=http_client,
            transport=transport,
            model=self.model,
            timeouts=self.timeouts,
            retry=self.retry,
            headers=self.headers,
            region=self.region,
            aws_credentials=self._aws.value,
            max_connections=self.limits.max_connections,
            max_keepalive_connections=self.limits.max_keepalive_connections,
            max_response_bytes=self.max_response_bytes,
        )

    def stream_request(
        self, request: WireRequest, *, chat: ChatRequest | None = None, timeouts: Timeouts | None = None
    ) -> Stream:
        """Stream an already built provider request; ``chat`` supplies the tools' schemas."""
        return Stream(self._session(request, chat, timeouts), self._http)


# -- async --------------------------------------------------------------------------------------------


class AsyncStream(StreamBase):
    """The async twin of :class:`Stream` (``async with``, ``async for``, ``await final()``).

    Cancelling the task that reads it closes the connection; :meth:`cancel` must be called from the
    event loop's thread.

    Example:

        >>> import asyncio
        >>> from midstream.sim import running
        >>> async def texts(url):
        ...     async with midstream.AsyncClient("anthropic", base_url=url, model="claude-4") as client:
        ...         async with client.stream("Hi") as stream:
        ...             return "".join([e.text async for e in stream if isinstance(e, midstream.TextDelta)])
        >>> with running(speed=0) as url:
        ...     asyncio.run(texts(url))
        'This is the midstream simulator. You said: Hi'
    """

    def __init__(self, session: Session, http: httpx2.AsyncClient) -> None:
        super().__init__(session)
        self._http = http
        self._response: httpx2.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._scope: anyio.CancelScope | None = None
        self._watched = False  # the watchdog keeps this attempt's deadlines (it has a socket to shut)

    async def __aenter__(self) -> AsyncStream:
        try:
            while self._phase == "connecting":
                await self._step()
        except BaseException:
            await self._shielded_cancel()
            raise
        if self._phase == "ended" and self._error is not None:
            raise self._error
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        pending = self._pending
        while not pending:
            if self._phase == "reading" and not self._cancel:
                await self._read()
            elif self._phase == "ended":
                raise self._raise_or_stop(StopAsyncIteration)
            else:
                await self._step()
        return pending.popleft()

    @property
    async def text_stream(self) -> AsyncIterator[str]:
        """Only the answer text, as it arrives."""
        async for event in self:
            if isinstance(event, TextDelta):
                yield event.text

    async def final(self) -> Message:
        """Read to the end and return the Message; a failed stream raises its error instead."""
        async for _ in self:
            pass
        return self.message

    def cancel(self) -> None:
        """Stop now: the connection is shut at once; the stream ends ``cancelled``."""
        self._cancel = True
        abort_socket(self._sock)
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Release the connection; a stream that has not ended is cancelled first."""
        if self._phase != "ended":
            self.cancel()
        await self._shielded_cancel()

    # -- the state machine ------------------------------------------------------------------------

    async def _step(self) -> None:
        if self._cancel:
            await self._shielded_cancel()
        elif self._phase == "connecting":
            await self._open()
        else:
            await self._read()

    async def _open(self) -> None:
        request, connect_which, first_which = self._next_request(self._http, self._trace)
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                response = await self._http.send(request, stream=True)
        except Exception as exc:
            self._scope = None
            if self._cancel:
                await self._shielded_cancel()
                return
            await self._after(self._settle(classify(exc, self._s, connect_which, first_which)))
            return
        except BaseException:
            self._scope = None
            await self._shielded_cancel()
            raise
        self._scope = None
        if scope.cancelled_caught:
            await self._shielded_cancel()
            return
        self._response = response
        if response.status_code >= 300:
            await self._after(self._settle(await self._status_problem(response)))
            return
        self._body_started(response)
        self._chunks = abody_chunks(response)
        self._enter("reading")
        if self._sock is not None and response.http_version == "HTTP/1.1":
            # The deadlines are kept as the sync stream's are: the watchdog shuts the socket when one
            # passes, and the read reports which. A cancel scope on every read would cost more than
            # the rest of the client's work on the chunk. (Without a socket of its own, as behind a
            # custom transport or on a multiplexed HTTP/2 connection, each read is bounded instead.)
            self._watched = True
            WATCHDOG.watch(self)

    async def _trace(self, name: str, info: Mapping[str, Any]) -> None:
        self._take_socket(name, info)

    async def _status_problem(self, response: httpx2.Response) -> Problem:
        body = b""
        at = self._error_body_deadline(response)
        with anyio.CancelScope() as scope:
            if at != math.inf:
                scope.deadline = anyio.current_time() + (at - CLOCK())
            try:
                async for part in response.aiter_bytes():
                    body += part
                    if len(body) >= ERROR_BODY_LIMIT:
                        break
            except httpx2.HTTPError:
                pass  # the status says enough
        return self._error_response(response, body)

    async def _read(self) -> None:
        """Read one chunk and queue its events; the end of the body or a failure settles the attempt."""
        if not self._watched:
            await self._read_bounded()
            return
        chunks = self._chunks
        assert chunks is not None
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            if not await self._aborted():
                await self._after(self._queue_eof())
            return
        except httpx2.RequestError as exc:  # the connection failed, or the body did not decompress
            if not await self._aborted():
                await self._after(self._settle(self._read_problem(exc)))
            return
        except BaseException:
            await self._shielded_cancel()
            raise
        if self._cancel or self._expired is not None:
            await self._aborted()
            return
        decision = self._queue_chunk(chunk)
        if decision is not None or self._phase == "ended":
            await self._after(decision)
        elif self.deadline < WATCHDOG.next_wake:
            WATCHDOG.poke()

    async def _aborted(self) -> bool:
        """A cancel or the watchdog shut the connection under the read: end the stream accordingly."""
        if self._cancel:
            await self._shielded_cancel()
        elif self._expired is not None:
            await self._after(self._settle(self._timed_out()))
        else:
            return False
        return True

    async def _read_bounded(self) -> None:
        """:meth:`_read` when the watchdog cannot shut the connection: a cancel scope bounds the read."""
        assert self._chunks is not None
        s = self._s
        now = CLOCK()
        at = self.deadline
        chunk: bytes | None = None
        failure: httpx2.RequestError | None = None
        try:
            with anyio.CancelScope() as scope:
                if at != math.inf:
                    scope.deadline = anyio.current_time() + (at - now)
                self._scope = scope
                chunk = await anext(self._chunks)
        except StopAsyncIteration:
            pass
        except httpx2.RequestError as exc:
            failure = exc
        except BaseException:
            self._scope = None
            await self._shielded_cancel()
            raise
        self._scope = None
        if self._cancel:
            await self._shielded_cancel()
        elif scope.cancelled_caught or isinstance(failure, httpx2.TimeoutException):
            self._expired = s.deadlines.expired(CLOCK(), s.started)
            await self._after(self._settle(self._timed_out()))
        elif failure is not None:
            await self._after(self._settle(self._read_problem(failure)))
        elif chunk is None:
            await self._after(self._queue_eof())
        else:
            await self._after(self._queue_chunk(chunk))

    async def _after(self, decision: Decision | None) -> None:
        if decision is None and self._phase != "ended":
            return
        await self._release()
        if decision is not None:
            self._enter("waiting")
            with anyio.CancelScope() as scope:
                self._scope = scope
                await anyio.sleep(decision.delay)
            self._scope = None
            if self._cancel:
                self._queue_cancel()
            else:
                self._enter("connecting")

    async def _shielded_cancel(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._release()
        self._queue_cancel()

    async def _release(self) -> None:
        if self._watched:
            self._watched = False
            WATCHDOG.unwatch(self)
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        self._sock = None
        self.deadline = math.inf
        with anyio.CancelScope(shield=True):
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            if response is not None:
                await response.aclose()


class AsyncClient(ClientBase[AsyncStream]):
    """The async twin of :class:`Client` (an ``httpx2.AsyncClient`` underneath), with the same
    options, ``max_connections`` and ``max_keepalive_connections`` included.

    Example:

        >>> import asyncio
        >>> from midstream.sim import running
        >>> async def ask(url):
        ...     async with midstream.AsyncClient("anthropic", base_url=url, model="claude-4") as client:
        ...         async with client.stream("Hello") as stream:
        ...             return await stream.final()       # awaited: the async stream's final()
        >>> with running(speed=0) as url:
        ...     message = asyncio.run(ask(url))
        >>> message.terminal
        'completed'
    """

    def __init__(
        self,
        provider: str,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        http_client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_connections: int | None = None,
        max_keepalive_connections: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key, base_url, **options)
        self._owns_http = http_client is None
        self.limits = pool_limits(max_connections, max_keepalive_connections)
        self._http = http_client or httpx2.AsyncClient(
            transport=transport, timeout=None, follow_redirects=False, limits=self.limits
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only one this client made)."""
        if self._owns_http:
            await self._http.aclose()

    def stream_request(
        self, request: WireRequest, *, chat: ChatRequest | None = None, timeouts: Timeouts | None = None
    ) -> AsyncStream:
        """Stream an already built provider request; ``chat`` supplies the tools' schemas."""
        return AsyncStream(self._session(request, chat, timeouts), self._http)
