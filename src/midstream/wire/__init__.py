"""The wire layer: provider stream bytes <-> normalized events, sans-IO.

``decoder(dialect)`` gives a :class:`~midstream.wire._base.Decoder` with ``feed(bytes)`` and
``close()``; ``encoder(dialect)`` gives an :class:`~midstream.wire._base.Encoder` that writes the
provider's bytes back. ``request_dialect(dialect)`` gives the request side (a
:class:`~midstream.wire.request.RequestDialect`): how a request body is read, which ones the provider
refuses, and its error bodies. Dialect names: ``anthropic``, ``openai-chat``, ``openai-responses``,
``gemini``, ``bedrock``, ``ollama``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from midstream.errors import UnknownDialect
from midstream.wire._base import Decoder, DialectDecoder, Encoder
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
    "request_dialect",
]

# dialect name -> module defining ``DECODER`` (a DialectDecoder class), ``ENCODER`` (an Encoder class) and
# ``REQUEST`` (a RequestDialect)
_MODULES: dict[str, str] = {
    "anthropic": "midstream.wire.anthropic",
    "openai-chat": "midstream.wire.openai_chat",
    "openai-responses": "midstream.wire.openai_responses",
    "gemini": "midstream.wire.gemini",
    "bedrock": "midstream.wire.bedrock",
    "ollama": "midstream.wire.ollama",
}


def _module(dialect: str) -> Any:
    module = _MODULES.get(dialect)
    if module is None:
        raise UnknownDialect(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return importlib.import_module(module)


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


DIALECTS: tuple[str, ...] = tuple(_MODULES)
"""The dialect names ``decoder()`` and ``encoder()`` accept."""
