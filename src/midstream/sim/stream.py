"""Streaming a planned response over HTTP: pacing, faults, and noticing the client leave.

:func:`chunks` turns planned :class:`~midstream.sim.script.Step` s into the provider's bytes with the
dialect's encoder, sleeping each step's delay and injecting the faults of a
:class:`~midstream.sim.scenarios.FaultSpec` (a mid-stream error in the provider's own shape, a stall, a
malformed frame, an abrupt disconnect after N bytes). :class:`SimStream` is the ASGI response that
sends them: it watches for the client's disconnect while it streams and stops generating the moment
the client goes away, so the request log can show that nothing was generated after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from midstream import wire
from midstream.events import ResponseEnd, StreamError, UsageUpdate
from midstream.sim.scenarios import FaultSpec
from midstream.sim.script import Step
from midstream.wire import Encoder
from midstream.wire.profiles import profile

__all__ = ["RequestRecord", "SimStream", "chunks", "stream_error"]


@dataclass
class RequestRecord:
    """What the simulator saw of one request; ``GET /_sim/requests`` lists these.

    ``received_ms`` counts from the simulator's start; the other times count from the request's arrival.
    ``tokens_after_disconnect`` is what was generated after the client went away (it stays 0: generation
    stops then). A request ends either ``completed`` (its whole body was written) or ``disconnected`` (the
    client left first), never both: :meth:`finish` and :meth:`leave` are the only places that set them.
    Nothing from the request's headers (API keys included) is kept.
    """

    id: int
    provider: str
    path: str
    model: str
    scenario: str | None
    stream: bool
    received_ms: float = 0.0
    status: int = 200
    fault: str | None = None
    stop_reason: str | None = None
    tokens_generated: int = 0
    tokens_after_disconnect: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    first_byte_ms: float | None = None
    finished_ms: float | None = None
    disconnected: bool = False
    disconnected_ms: float | None = None
    completed: bool = False
    _t0: float = 0.0

    @property
    def arrived(self) -> float:
        """The ``time.monotonic()`` reading when the request arrived (to time it from the same process)."""
        return self._t0

    def elapsed_ms(self) -> float:
        """Milliseconds since the request arrived."""
        return round((time.monotonic() - self._t0) * 1000.0, 3)

    def finish(self) -> bool:
        """Record that the whole response was written, unless the client left first; True if recorded."""
        if self.disconnected:
            return False
        self.completed, self.finished_ms = True, self.elapsed_ms()
        return True

    def leave(self) -> None:
        """Record that the client went away, unless the whole response had been written by then."""
        if not self.completed and not self.disconnected:
            self.disconnected, self.disconnected_ms = True, self.elapsed_ms()

    def as_dict(self) -> dict[str, Any]:
        """The public JSON form."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class AbruptDisconnect(Exception):
    """Raised inside a response to make the server drop the connection mid-body."""


class _QuietAbrupt(logging.Filter):
    """Keep the server's error log free of the disconnects the simulator causes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _contains_abrupt(exc)


def _contains_abrupt(exc: BaseException | None) -> bool:
    if isinstance(exc, AbruptDisconnect):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains_abrupt(e) for e in exc.exceptions)
    return False


logging.getLogger("uvicorn.error").addFilter(_QuietAbrupt())


def stream_error(provider: str, kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    """The mid-stream error ``kind`` (overloaded, rate_limited, server) in ``provider``'s own shape."""
    return wire.request_dialect(profile(provider).dialect).stream_error(kind, request_id, retry_delay)


async def chunks(
    provider: str,
    encoder: Encoder,
    record: RequestRecord,
    steps: list[Step],
    fault: FaultSpec,
    request_id: str,
) -> AsyncIterator[bytes]:
    """The paced body of one streamed response, with ``fault`` injected.

    Fault positions count the events a client would see: ``after N events`` acts before the next one.
    Running-usage bookkeeping steps (Gemini's) do not count.
    """
    shown = 0
    # Sleep until a running deadline rather than for each delay: the overshoot of every sleep would
    # otherwise add up over hundreds of small steps and slow fine-grained streams down unfairly.
    due = time.monotonic()
    for step in steps:
        if step.delay:
            due += step.delay
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if record.disconnected:
            # The disconnect can land in the same loop tick as the end of a sleep, before the
            # cancellation reaches this generator: generate nothing more for a client that is gone.
            return
        if not isinstance(step.event, UsageUpdate):
            shown += 1
            injected = await _inject(provider, encoder, record, fault, shown, request_id)
            if injected is not None:
                yield injected
                return
            if fault.stall_ms and shown == fault.stall_after_events + 1:
                due = time.monotonic()  # a stall shifts the schedule; it is not made up for
        data = encoder.encode(step.event)
        record.tokens_generated += step.tokens
        if record.disconnected:
            record.tokens_after_disconnect += step.tokens
        if fault.disconnect_after_bytes is not None:
            room = fault.disconnect_after_bytes - record.bytes_sent
            if len(data) >= room:
                record.fault = f"disconnect after {fault.disconnect_after_bytes} bytes"
                if room > 0:
                    yield data[:room]
                raise AbruptDisconnect
        if data:
            yield data


async def _inject(
    provider: str, encoder: Encoder, record: RequestRecord, fault: FaultSpec, shown: int, request_id: str
) -> bytes | None:
    """Before the ``shown``-th event: stall, or the bytes that end the body (an error, a bad frame)."""
    if fault.stall_ms and shown == fault.stall_after_events + 1:
        record.fault = f"stall {fault.stall_ms} ms"
        await asyncio.sleep(fault.stall_ms / 1000.0)
    if fault.error_after_events is not None and shown > fault.error_after_events:
        record.fault = f"mid-stream {fault.error}"
        error = encoder.encode(stream_error(provider, fault.error, request_id, fault.retry_delay()))
        # Then what the provider writes after an error, if anything (Responses' response.failed).
        return error + encoder.encode(ResponseEnd(terminal="failed"))
    if fault.malformed_after_events is not None and shown > fault.malformed_after_events:
        record.fault = "malformed frame"
        return profile(provider).malformed
    return None


class SimStream(Response):
    """A streaming response that notices the client going away at once and stops generating.

    ``first_byte_delay`` (seconds) holds back the status line and headers too: a slow first byte.
    """

    def __init__(
        self,
        record: RequestRecord,
        body: AsyncIterator[bytes],
        media_type: str,
        headers: dict[str, str],
        first_byte_delay: float = 0.0,
    ) -> None:
        # Like Starlette's StreamingResponse, this does not take a body up front.
        self.record = record
        self.body_iterator = body
        self.content_type = media_type
        self.status_code = 200
        self.background = None
        self.extra_headers = headers
        self.first_byte_delay = first_byte_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self.record
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        record.leave()
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            try:
                await self._stream(send)
            finally:
                group.cancel_scope.cancel()

    async def _stream(self, send: Send) -> None:
        record = self.record
        if self.first_byte_delay:
            await asyncio.sleep(self.first_byte_delay)
        headers = [(b"content-type", self.content_type.encode()), (b"cache-control", b"no-cache")]
        headers += [(k.encode(), v.encode()) for k, v in self.extra_headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in self.body_iterator:
            if record.first_byte_ms is None:
                record.first_byte_ms = record.elapsed_ms()
            record.bytes_sent += len(chunk)
            record.chunks_sent += 1
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        # Recorded before the body's last (empty) chunk, so a client that has read the whole body
        # always finds the request completed in the log. A body that stopped because the client left
        # (the disconnect landed in the same loop tick as a step, before the cancel reached it) is not
        # a whole response: it is neither recorded completed nor ended as one.
        if not record.finish():
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
