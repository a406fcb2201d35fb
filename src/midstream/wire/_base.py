"""What every dialect module provides, and the decoder that wraps a dialect with the timeline."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, Protocol, Self

from midstream.errors import LocalError, RemoteProtocolError
from midstream.events import Event, StreamError
from midstream.message import Message
from midstream.wire.canonical import events_from_message
from midstream.wire.timeline import Timeline

__all__ = ["Decoder", "DialectDecoder", "Encoder"]

# A dialect decoder that trips over a payload shape it did not expect raises one of these from deep
# inside; the wrapper turns them into a remote protocol error naming the dialect. ``json.loads`` raises
# RecursionError on a payload nested too deeply for the C scanner.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError)


class DialectDecoder(Protocol):
    """Provider bytes -> raw normalized events (before the timeline checks their order).

    ``feed`` appends to ``out`` (when given) as it goes, so that when it raises on a bad frame,
    ``out`` already holds the events of every good frame before it: what a consumer sees must not
    depend on how the bytes were split into chunks, error cases included. Each dialect frames the
    chunk into a list and decodes that list in a ``finally``, so the frames completed before bad bytes
    are decoded before the framing error propagates (if decoding raises too, that error wins: its
    frame came first).
    """

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]: ...

    def close(self) -> list[Event]: ...


class Decoder:
    """A provider stream decoder: ``feed(bytes) -> list[Event]`` and ``close() -> list[Event]``.

    The output is a well-formed response (see :mod:`midstream.events`) for any split of the input.
    Bytes that break the protocol raise :class:`~midstream.errors.RemoteProtocolError`; after that,
    :meth:`close` (or :meth:`fail`, :meth:`cancel`) ends the response ``failed`` (with a ``protocol``
    StreamError) so a consumer can still close out honestly: it first returns the events of every good
    frame that came before the bad bytes in the chunk that raised (see :meth:`take_owed`), so the events seen
    (what ``feed`` returned, then what ``close`` returns) are the same for any split of the input,
    error cases included. A response that had already ended before the bad bytes keeps its terminal
    state: nothing after a terminal event changes it.
    """

    def __init__(self, dialect: DialectDecoder, provider: str) -> None:
        self.dialect = provider
        self._inner = dialect
        self.timeline = Timeline(provider)
        self._error: RemoteProtocolError | None = None
        # Events the timeline accepted from the call that raised: not returned then, owed to the consumer.
        self._owed: list[Event] = []
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        """Decode a chunk of the response body."""
        if self._closed:
            raise LocalError("Decoder.feed() called after close()")
        if self._error is not None:
            raise self._error
        raw: list[Event] = []
        error: RemoteProtocolError | None = None
        try:
            self._inner.feed(data, raw)
        except RemoteProtocolError as exc:
            error = exc
        except _SHAPE_ERRORS as exc:
            error = self._malformed(exc)
            error.__cause__ = exc
        timeline = self.timeline
        if error is None:
            # The usual chunk: only deltas for blocks already open of their type, which the timeline
            # passes as they are (its feed_all shortcut, checked here for the whole chunk at once).
            targets = timeline._targets
            for event in raw:
                indices = targets.get(type(event))
                if not indices or event.index not in indices:  # type: ignore[union-attr,operator]
                    break
            else:
                return raw
        out: list[Event] = []
        try:
            timeline.feed_all(raw, out)
        except RemoteProtocolError as exc:
            error = exc  # earlier in the stream than the dialect's own error
        if error is not None:
            self._error, self._owed = error, out
            raise error
        return out

    def take_owed(self) -> list[Event]:
        """After ``feed`` raised: the events of the good frames before the bad bytes in that chunk.

        They are returned once (here, or else first thing by :meth:`close`, :meth:`fail` or
        :meth:`cancel`).
        """
        return self._pay_owed()

    def close(self) -> list[Event]:
        """End of the body: the events that completes, ending with the one ``ResponseEnd``."""
        if self._closed:
            return []
        self._closed = True
        if self._error is None:
            out: list[Event] = []
            try:
                self.timeline.feed_all(self._inner.close(), out)
                return out + self.timeline.close()
            except RemoteProtocolError as exc:
                self._error, self._owed = exc, out
            except _SHAPE_ERRORS as exc:
                self._error, self._owed = self._malformed(exc), out
        return self._pay_owed() + self.timeline.fail(
            StreamError(error_kind="protocol", message=str(self._error), retryable=False, raw=None)
        )

    def cancel(self) -> list[Event]:
        """The consumer stopped reading: close open blocks as incomplete and end ``cancelled``."""
        self._closed = True
        return self._pay_owed() + self.timeline.cancel()

    def fail(self, error: StreamError) -> list[Event]:
        """The transport failed (e.g. the connection dropped with an error): end ``failed``."""
        self._closed = True
        return self._pay_owed() + self.timeline.fail(error)

    def _malformed(self, exc: Exception) -> RemoteProtocolError:
        return RemoteProtocolError(f"malformed {self.dialect} stream: {exc!r}")

    def _pay_owed(self) -> list[Event]:
        owed, self._owed = self._owed, []
        return owed


class Encoder(abc.ABC):
    """Events -> a provider's wire bytes. The inverse of the dialect's decoder.

    :meth:`encode` is incremental (one event in, the bytes it produces out, possibly none); the
    simulator streams with it. :meth:`encode_message` writes a whole Message.

    One encoder writes one stream at a time: a ``ResponseStart`` after a response began, and every
    :meth:`encode_message`, start over from a clean state, as a new encoder with the same options would
    (:meth:`reset`), so a reused encoder never writes ids, indices or sequence numbers of the last one.
    """

    dialect: str = ""
    _options: tuple[tuple[Any, ...], dict[str, Any]]
    _begun: bool

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls)
        self._options, self._begun = (args, dict(kwargs)), False
        return self

    def reset(self) -> None:
        """Forget the stream written so far: the next event starts a new one, written exactly as a
        new encoder with the same options (and seed) would write it."""
        args, kwargs = self._options
        type(self).__init__(self, *args, **kwargs)  # every encoder's __init__ sets all of its state
        self._begun = False

    def _starting(self, event: Event) -> None:
        """Each encoder's :meth:`encode` calls this first: a second ``ResponseStart`` resets."""
        if event.kind == "response_start":
            if self._begun:
                self.reset()
            self._begun = True

    @abc.abstractmethod
    def encode(self, event: Event) -> bytes:
        """The bytes for one event (``b""`` when the provider writes it later or never)."""

    def encode_all(self, events: Iterable[Event]) -> bytes:
        """The bytes of a whole event sequence."""
        return b"".join(self.encode(event) for event in events)

    def encode_message(self, message: Message) -> bytes:
        """The bytes of a stream that decodes back to ``message`` (from a clean state)."""
        self.reset()
        return self.encode_all(events_from_message(message))
