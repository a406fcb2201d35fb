"""The wire layer: provider stream bytes <-> normalized events, sans-IO.

``decoder(dialect)`` gives a :class:`~midstream.wire._base.Decoder` with ``feed(bytes)`` and
``close()``; ``encoder(dialect)`` gives an :class:`~midstream.wire._base.Encoder` that writes the
provider's bytes back. ``request_dialect(dialect)`` gives the request side (a
:class:`~midstream.wire.request.RequestDialect`): how a request body is read, which ones the provider
refuses, and its error bodies; ``nonstream_body(dialect, message)`` is its answer when not streamed.
Dialect names (those of the provider profiles, :mod:`midstream.wire.profiles`): ``anthropic``,
``openai-chat``, ``openai-responses``, ``gemini``, ``bedrock``, ``ollama``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from midstream.errors import UnknownDialect
from midstream.events import Event
from midstream.message import Message
from midstream.wire._base import Decoder, DialectDecoder, Encoder
from midstream.wire.profiles import PROFILES, dialect_module
from midstream.wire.sse import SSEDecoder, SSEEvent, encode_sse

if TYPE_CHECKING:  # the request side loads with a dialect's module, not with the decoders
    from midstream.wire.request import RequestDialect

__all__ = [
    "DIALECTS",
    "Decoder",
    "DialectDecoder",
    "Encoder",
    "SSEDecoder",
    "SSEEvent",
    "decoder",
    "encode_sse",
    "encoder",
    "nonstream_body",
    "request_dialect",
]

# A dialect is the dialect of a provider profile; its module (``dialect_module``) defines ``DECODER`` (a
# DialectDecoder class), ``ENCODER`` (an Encoder class), ``NONSTREAM`` (the non-streamed body writer) and
# ``REQUEST`` (a RequestDialect).


def _module(dialect: str) -> Any:
    if not any(p.dialect == dialect for p in PROFILES.values()):
        known = dict.fromkeys(p.dialect for p in PROFILES.values())
        raise UnknownDialect(f"unknown dialect {dialect!r}; known: {', '.join(known)}")
    return importlib.import_module(dialect_module(dialect))


def decoder(dialect: str, **options: Any) -> Decoder:
    """A decoder for ``dialect``'s streaming response body (options are the dialect's limits)."""
    return Decoder(_module(dialect).DECODER(**options), provider=dialect)


def encoder(dialect: str, **options: Any) -> Encoder:
    """An encoder writing ``dialect``'s streaming response body (options are the dialect's realism knobs)."""
    enc: Encoder = _module(dialect).ENCODER(**options)
    return enc


def request_dialect(dialect: str) -> RequestDialect:
    """The request side of ``dialect``: read a body, check it as the provider does, write its errors."""
    found: RequestDialect = _module(dialect).REQUEST
    return found


def nonstream_body(
    dialect: str,
    message: Message,
    events: Sequence[Event] = (),
    *,
    api: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The JSON body ``dialect`` answers with when not streaming: ``message``, the answer, whole.

    ``events`` are those ``message`` was folded from (the Responses API's body is the last object of its
    own stream, written from them); ``api`` is the endpoint's variant (Ollama's ``chat`` or
    ``generate``); ``options`` are the encoder's (``realism`` and ``seed`` for random ids, the creation
    time, what the request asked that the answer repeats); a dialect ignores those it has no use for.
    """
    body: dict[str, Any] = _module(dialect).NONSTREAM(message, events, api=api, **options)
    return body


DIALECTS: tuple[str, ...] = tuple(dict.fromkeys(p.dialect for p in PROFILES.values()))
"""The dialect names ``decoder()`` and ``encoder()`` accept (midstream's own; a registered provider's
dialect is accepted too)."""
