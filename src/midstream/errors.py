"""The exception tree of midstream: every exception the package raises on purpose, in one drawing.

Every name says whose fault it was (remote: the peer's bytes, a provider's answer, a model's output;
local: the calling code, or a file or state it handed over) and, below that, what happened::

    MidstreamError                      errors              the base: catch it to catch them all
    ├── RemoteError                     errors              the other side sent something wrong
    │   ├── RemoteProtocolError         errors              framing, order or payload breaks the protocol
    │   │   ├── LimitExceeded           errors              larger or deeper than a configured bound
    │   │   ├── EventStreamFrameError   errors              a damaged AWS eventstream frame (CRC, header)
    │   │   └── TimelineError           errors              an event where the response state forbids it
    │   ├── JSONError                   errors              a JSON document that is not valid JSON
    │   │   ├── InvalidJSON             errors              a character never valid where it stands
    │   │   └── IncompleteJSON          errors              the document ended before its value did
    │   ├── ToolInputError              core.toolargs       tool input that fails the tool's JSON Schema
    │   ├── ChatRequestError            relay.adapters.aisdk  a ``useChat`` request body that is not one
    │   ├── RunAgentInputError          relay.adapters.agui   a body that is not an AG-UI ``RunAgentInput``
    │   ├── RequestRejected             wire.request        a request body the provider would refuse (400)
    │   ├── ProviderError               client.errors       the provider refused before any content
    │   ├── TransportError              client.errors       no connection, or it broke before content
    │   ├── StreamTimeout               client.errors       a client timeout fired; ``which`` names it
    │   │   └── StreamInterruptedByTimeout  client.errors   ... after content (also StreamInterrupted)
    │   ├── StreamInterrupted           client.errors       failed after content: ``partial``, ``cause``
    │   ├── HandoffFailed               workflow.events     the agent a handoff started did not complete
    │   └── StoreError                  relay.errors        the relay's store failed: unreachable, I/O
    └── LocalError                      errors              the calling code must change something
        ├── UnknownDialect              errors              a dialect name midstream does not know
        ├── UnknownProvider             wire.profiles       a provider name midstream does not know
        ├── MissingCredentials          client.providers    a provider that needs a key got none
        ├── SettingsError               config              a settings file that does not validate
        ├── ScenarioError               sim.scenarios       a bad scenario file or fault header
        ├── SerializeError              agent.serialize     data that does not describe its object
        ├── CheckpointError             agent.checkpoint    a checkpoint not made, read or understood
        ├── EffectUncertainError        agent.effects       an effect that may already have happened once
        ├── RelayError                  relay.errors        a run's log refused: its state forbids it
        │   ├── RunNotFound             relay.errors        no such run: never created, or expired
        │   ├── RunExists               relay.errors        a new run with an id that is taken
        │   ├── RunClosed               relay.errors        an append to a run that has ended
        │   ├── DuplicateAppend         relay.errors        a seq already written (a re-sent append)
        │   ├── TooManyRuns             relay.errors        the process or fleet is full (HTTP 429)
        │   └── LeaseError              relay.errors        the producer lease refused
        │       ├── LeaseHeld           relay.errors        another producer holds the run
        │       └── LeaseLost           relay.errors        a newer producer superseded this one
        ├── RedisUnavailable            relay.testing       no redis-server to start for a test
        ├── VersionConflict             workflow.blackboard  a blackboard write expected another version
        └── JournalError                agent._journal      a damaged effects journal (file and line)

The middle column is the module (under ``midstream.``) that defines the class; every class is also
importable from there, and the public ones from ``midstream``. ``JSONError``, ``ToolInputError``, the
three request-body errors and the ``LocalError`` classes that reject a value are also ``ValueError``.

Renamed, the old names work for one more release and warn (``DeprecationWarning``) when used:
``MidStreamError`` is :class:`StreamInterrupted` (it differed from ``MidstreamError`` by one capital),
``MidStreamTimeout`` is :class:`StreamInterruptedByTimeout`, ``EventStreamError`` is
:class:`EventStreamFrameError` (it read like the ``StreamError`` event) and ``EffectUncertain`` is
:class:`EffectUncertainError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = [
    "RETRYABLE_KINDS",
    "ErrorKind",
    "EventStreamFrameError",
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
    "renamed",
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
"""What went wrong, normalized across providers (the ``kind`` of every error and ``StreamError``)."""

RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {"overloaded", "rate_limited", "server", "timeout", "transport"}
)
"""The kinds of error a retry may help: capacity, rate limits, the provider's own faults, timeouts and
broken connections. Every other kind (a bad request, a key, a quota, a filter, a protocol error) fails the
same way again. The one rule the decoders, the client and the agent's recovery all follow."""


class MidstreamError(Exception):
    """Base class of every exception midstream raises on purpose.

    Example:

        >>> try:
        ...     midstream.PartialJSON().feed('{"done": tru}')
        ... except midstream.MidstreamError as exc:      # every error midstream raises on purpose
        ...     print(type(exc).__name__, "-", exc)
        InvalidJSON - ...
    """


class RemoteError(MidstreamError):
    """The other side (a provider, a server, a model's output) sent something wrong.

    Example:

        >>> from midstream import wire
        >>> try:
        ...     wire.decoder("anthropic").feed(b"event: message_start\\ndata: [DONE]\\n\\n")
        ... except midstream.RemoteError as exc:         # the other side's bytes were wrong, not your code
        ...     print(type(exc).__name__)
        RemoteProtocolError
    """


class RemoteProtocolError(RemoteError):
    """Bytes or events from the peer break the protocol (bad framing, bad order, bad payload).

    Example:

        >>> from midstream import wire
        >>> try:
        ...     wire.decoder("anthropic").feed(b"event: message_start\\ndata: [DONE]\\n\\n")
        ... except midstream.RemoteProtocolError as exc:
        ...     print(exc)
        malformed anthropic event: message_start data is not JSON: '[DONE]'
    """


class LimitExceeded(RemoteProtocolError):
    """Input exceeded a configured bound; ``limit`` names it and ``value`` is the bound.

    When a streaming client stopped a response at a bound (``max_response_bytes``), ``partial`` is the
    Message received until then, marked incomplete (``terminal="failed"``).

    Example:

        >>> try:
        ...     midstream.PartialJSON(max_depth=2).feed("[[[")
        ... except midstream.LimitExceeded as exc:
        ...     print(exc.limit, exc.value)
        max_depth 2
    """

    partial: Any = None

    def __init__(self, message: str, *, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class EventStreamFrameError(RemoteProtocolError):
    """A damaged AWS eventstream frame: CRC mismatch, bad header type, truncated frame.

    Example:

        >>> from midstream import wire
        >>> try:
        ...     wire.decoder("bedrock").feed(b"\\x00\\x00\\x00\\x10\\x00\\x00\\x00\\x00\\xde\\xad\\xbe\\xef")
        ... except midstream.EventStreamFrameError as exc:
        ...     print(str(exc)[:36])
        eventstream prelude CRC mismatch: fr
    """


class TimelineError(RemoteProtocolError):
    """An event arrived in a response state where it is not allowed (e.g. a delta before its block).

    Example:

        >>> try:
        ...     midstream.Timeline("anthropic").feed(midstream.TextDelta(0, "Hi"))   # no ResponseStart yet
        ... except midstream.TimelineError as exc:
        ...     print(exc.state, exc.event_kind)
        idle text_delta
    """

    def __init__(self, message: str, *, state: str, event_kind: str) -> None:
        super().__init__(message)
        self.state = state
        self.event_kind = event_kind


class JSONError(RemoteError, ValueError):
    """A JSON document that is not valid JSON. ``position`` is a character offset into the document.

    Example:

        >>> for text in ('{"a": tru}', '{"a": 1'):
        ...     parser = midstream.PartialJSON()
        ...     try:
        ...         _ = parser.feed(text)
        ...         parser.finish()
        ...     except midstream.JSONError as exc:            # invalid, or ended too soon
        ...         print(type(exc).__name__, exc.position)
        InvalidJSON 9
        IncompleteJSON 7
    """

    def __init__(self, message: str, *, position: int, reason: str) -> None:
        super().__init__(f"{message} at position {position}: {reason}")
        self.position = position
        self.reason = reason


class InvalidJSON(JSONError):
    """The document contains a character that cannot be valid at its position.

    Example:

        >>> try:
        ...     midstream.PartialJSON().feed('{"a": tru}')
        ... except midstream.InvalidJSON as exc:
        ...     print(exc.position, exc.reason)
        9 ...
    """


class IncompleteJSON(JSONError):
    """The document ended (``finish()``) before its top-level value was complete.

    Example:

        >>> parser = midstream.PartialJSON()
        >>> _ = parser.feed('{"a": 1')
        >>> try:
        ...     parser.finish()
        ... except midstream.IncompleteJSON as exc:
        ...     print(exc.position)
        7
    """


class LocalError(MidstreamError):
    """The calling code used midstream's API wrongly (feed after close, unknown name, ...).

    Example:

        >>> try:
        ...     midstream.ChatRequest.create("claude-sonnet-4-5", "Hi", max_tokens=0)
        ... except midstream.LocalError as exc:            # the calling code must change something
        ...     print(exc)
        max_tokens must be positive
    """


class UnknownDialect(LocalError, ValueError):
    """``midstream.wire.decoder()`` / ``encoder()`` was given a name it does not know.

    Example:

        >>> from midstream import wire
        >>> try:
        ...     wire.decoder("claude")
        ... except midstream.UnknownDialect as exc:
        ...     print(exc)
        unknown dialect 'claude'; known: anthropic, openai-chat, openai-responses, gemini, bedrock, ollama
    """


# Provider error type strings (Anthropic ``error.type``, OpenAI ``error.type`` / ``code``, Bedrock
# exception names, Gemini ``status``) mapped to one normalized kind; whether a retry may help follows
# from the kind (RETRYABLE_KINDS).
_ERROR_TYPES: dict[str, ErrorKind] = {
    "overloaded_error": "overloaded",
    "overloaded": "overloaded",
    "unavailable": "overloaded",
    "serviceunavailableexception": "overloaded",
    "rate_limit_error": "rate_limited",
    "rate_limit_exceeded": "rate_limited",
    "throttlingexception": "rate_limited",
    "resource_exhausted": "rate_limited",
    "api_error": "server",
    "server_error": "server",
    "internal": "server",
    "internalserverexception": "server",
    "modelstreamerrorexception": "server",
    "modeltimeoutexception": "timeout",
    "deadline_exceeded": "timeout",
    "timeout_error": "timeout",
    "invalid_request_error": "invalid_request",
    "invalid_argument": "invalid_request",
    "validationexception": "invalid_request",
    "failed_precondition": "invalid_request",
    "request_too_large": "invalid_request",
    "authentication_error": "auth",
    "unauthenticated": "auth",
    "invalid_api_key": "auth",
    "permission_error": "permission",
    "permission_denied": "permission",
    "accessdeniedexception": "permission",
    "not_found_error": "not_found",
    "not_found": "not_found",
    "insufficient_quota": "quota",
    "billing_error": "quota",
}


def classify_error(error_type: str | None, status: int | None = None) -> tuple[ErrorKind, bool]:
    """Map a provider's error type (or HTTP status) to ``(kind, retryable)``.

    The type string wins when midstream knows it; otherwise the HTTP status decides; otherwise the
    error is ``("unknown", False)``: an error we do not understand is not retried blindly. Whether a
    kind is worth retrying is one rule, :data:`RETRYABLE_KINDS`.

    >>> classify_error("overloaded_error"), classify_error(None, 400), classify_error("teapot")
    (('overloaded', True), ('invalid_request', False), ('unknown', False))
    """
    kind = _ERROR_TYPES.get(error_type.lower()) if error_type else None
    if kind is None:
        kind = "unknown" if status is None else _status_kind(status)
    return kind, kind in RETRYABLE_KINDS


def _status_kind(status: int) -> ErrorKind:
    """The kind an HTTP status means when the body names no error type midstream knows."""
    if status in (408, 504):
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server"
    if status == 401:
        return "auth"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status >= 400:
        return "invalid_request"
    return "unknown"


def renamed(module: str, names: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves each old name in ``names`` (old name -> the object it is now
    called), with a :class:`DeprecationWarning` naming the new one. At the end of a module::

        __getattr__ = renamed(__name__, {"OldName": NewName})
    """

    def __getattr__(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated: it is now called {new.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return new

    return __getattr__


__getattr__ = renamed(__name__, {"EventStreamError": EventStreamFrameError})
