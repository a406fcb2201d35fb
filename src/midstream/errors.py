"""The exception tree of midstream.

Every exception says whose fault it was::

    MidstreamError
    ├── RemoteError                 the peer sent something wrong (bytes off the wire, a model's JSON)
    │   ├── RemoteProtocolError     framing, order or payload that breaks the protocol
    │   │   ├── LimitExceeded       input larger or deeper than a configured bound (also a LocalError
    │   │   │                       of sorts: raise the bound if the input is legitimate)
    │   │   ├── EventStreamError    AWS eventstream frame damage: CRC mismatch, bad header, truncation
    │   │   └── TimelineError       an event arrived in a state where it is not allowed
    │   └── JSONError               a JSON document (tool arguments) that is not valid JSON
    │       ├── InvalidJSON         a character that can never be valid here (with position and reason)
    │       └── IncompleteJSON      the document ended before its value did
    └── LocalError                  misuse of midstream's own API
        └── UnknownDialect          a dialect name midstream does not know

Remote errors are raised on input from outside; local errors mean the calling code must change.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ErrorKind",
    "EventStreamError",
    "IncompleteJSON",
    "InvalidJSON",
    "JSONError",
    "LimitExceeded",
    "LocalError",
    "MidstreamError",
    "RemoteError",
    "RemoteProtocolError",
    "TimelineError",
    "UnknownDialect",
    "classify_error",
]

ErrorKind = Literal[
    "overloaded",
    "rate_limited",
    "server",
    "invalid_request",
    "auth",
    "permission",
    "not_found",
    "quota",
    "content_filter",
    "timeout",
    "transport",
    "protocol",
    "unknown",
]


class MidstreamError(Exception):
    """Base class of every exception midstream raises on purpose."""


class RemoteError(MidstreamError):
    """The other side (a provider, a server, a model's output) sent something wrong."""


class RemoteProtocolError(RemoteError):
    """Bytes or events from the peer break the protocol (bad framing, bad order, bad payload)."""


class LimitExceeded(RemoteProtocolError):
    """Input exceeded a configured bound; ``limit`` names it and ``value`` is the bound."""

    def __init__(self, message: str, *, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class EventStreamError(RemoteProtocolError):
    """A damaged AWS eventstream frame: CRC mismatch, bad header type, truncated frame."""


class TimelineError(RemoteProtocolError):
    """An event arrived in a response state where it is not allowed (e.g. a delta before its block)."""

    def __init__(self, message: str, *, state: str, event_kind: str) -> None:
        super().__init__(message)
        self.state = state
        self.event_kind = event_kind


class JSONError(RemoteError, ValueError):
    """A JSON document that is not valid JSON. ``position`` is a character offset into the document."""

    def __init__(self, message: str, *, position: int, reason: str) -> None:
        super().__init__(f"{message} at position {position}: {reason}")
        self.position = position
        self.reason = reason


class InvalidJSON(JSONError):
    """The document contains a character that cannot be valid at its position."""


class IncompleteJSON(JSONError):
    """The document ended (``finish()``) before its top-level value was complete."""


class LocalError(MidstreamError):
    """The calling code used midstream's API wrongly (feed after close, unknown name, ...)."""


class UnknownDialect(LocalError, ValueError):
    """``midstream.wire.decoder()`` / ``encoder()`` was given a name it does not know."""


# Provider error type strings (Anthropic ``error.type``, OpenAI ``error.type`` / ``code``, Bedrock
# exception names, Gemini ``status``) mapped to one normalized kind and whether a retry may help.
_ERROR_TYPES: dict[str, tuple[ErrorKind, bool]] = {
    "overloaded_error": ("overloaded", True),
    "overloaded": ("overloaded", True),
    "unavailable": ("overloaded", True),
    "serviceunavailableexception": ("overloaded", True),
    "rate_limit_error": ("rate_limited", True),
    "rate_limit_exceeded": ("rate_limited", True),
    "throttlingexception": ("rate_limited", True),
    "resource_exhausted": ("rate_limited", True),
    "api_error": ("server", True),
    "server_error": ("server", True),
    "internal": ("server", True),
    "internalserverexception": ("server", True),
    "modelstreamerrorexception": ("server", True),
    "modeltimeoutexception": ("timeout", True),
    "deadline_exceeded": ("timeout", True),
    "timeout_error": ("timeout", True),
    "invalid_request_error": ("invalid_request", False),
    "invalid_argument": ("invalid_request", False),
    "validationexception": ("invalid_request", False),
    "failed_precondition": ("invalid_request", False),
    "request_too_large": ("invalid_request", False),
    "authentication_error": ("auth", False),
    "unauthenticated": ("auth", False),
    "invalid_api_key": ("auth", False),
    "permission_error": ("permission", False),
    "permission_denied": ("permission", False),
    "accessdeniedexception": ("permission", False),
    "not_found_error": ("not_found", False),
    "not_found": ("not_found", False),
    "insufficient_quota": ("quota", False),
    "billing_error": ("quota", False),
}


def classify_error(error_type: str | None, status: int | None = None) -> tuple[ErrorKind, bool]:
    """Map a provider's error type (or HTTP status) to ``(kind, retryable)``.

    The type string wins when midstream knows it; otherwise the HTTP status decides; otherwise the
    error is ``("unknown", False)``: an error we do not understand is not retried blindly.
    """
    if error_type:
        known = _ERROR_TYPES.get(error_type.lower())
        if known is not None:
            return known
    if status is not None:
        if status in (408, 504):
            return "timeout", True
        if status == 429:
            return "rate_limited", True
        if status in (503, 529):
            return "overloaded", True
        if status >= 500:
            return "server", True
        if status in (401,):
            return "auth", False
        if status == 403:
            return "permission", False
        if status == 404:
            return "not_found", False
        if status >= 400:
            return "invalid_request", False
    return "unknown", False
