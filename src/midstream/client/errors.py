"""The client's typed errors, and the redaction that keeps credentials out of them.

:class:`ProviderError`, :class:`TransportError` and :class:`StreamTimeout` end a call before any
content reached the caller (and only they may be retried); :class:`StreamInterrupted` and
:class:`StreamInterruptedByTimeout` end one after it, with the partial Message. Their place in the
whole tree is drawn in :mod:`midstream.errors`.

Every message and payload passes through :func:`redact` before it is stored: an API key never appears
in ``str()``, ``repr()`` or the payload of these errors, even when a provider echoes it back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from midstream.core.retry import Failure, worth_retrying
from midstream.errors import ErrorKind, RemoteError, classify_error, renamed
from midstream.message import Message

__all__ = [
    "ProviderError",
    "StreamInterrupted",
    "StreamInterruptedByTimeout",
    "StreamTimeout",
    "TimeoutName",
    "TransportError",
    "redact",
]

TimeoutName = Literal["pool", "connect", "first_byte", "idle", "total"]

REDACTED = "***"
_MIN_SECRET = 4  # shorter strings would redact ordinary words
_MAX_MESSAGE = 2000


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every occurrence of each secret replaced by ``***``.

    Strings are scrubbed; dicts, lists and tuples are copied with their keys and items scrubbed;
    anything else is returned as is.
    """
    ordered = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True)
    return _scrub(value, ordered) if ordered else value


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secrets) for v in value)
    return value


class ProviderError(RemoteError):
    """The provider refused or failed the request before any content reached the caller.

    ``status`` is the HTTP status (``None`` for an error event inside a 200 stream); ``kind`` and
    ``retryable`` are the normalized classification; ``payload`` is the provider's error body (parsed
    JSON where possible, else text), redacted; ``request_id`` the provider's request id header;
    ``retry_delay`` the wait in seconds the body asks for (Gemini's ``RetryInfo``), if any.
    ``partial`` is the (empty, ``failed``) Message of the attempt, when there was a stream.

    Example:

        >>> from midstream.sim import running
        >>> overloaded = {"x-midstream-fault": "http_status=529"}
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url, max_retries=0) as c:
        ...     try:
        ...         with c.stream("Hi", model="claude-sonnet-4-5", headers=overloaded) as stream:
        ...             stream.final()
        ...     except midstream.ProviderError as exc:     # refused before any content: safe to retry
        ...         print(exc.status, exc.kind, exc.retryable)
        529 overloaded True
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        kind: ErrorKind,
        retryable: bool,
        provider: str,
        payload: Any = None,
        request_id: str | None = None,
        partial: Message | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind: ErrorKind = kind
        self.retryable = retryable
        self.provider = provider
        self.payload = payload
        self.request_id = request_id
        self.partial = partial
        self.retry_delay = retry_delay

    def __repr__(self) -> str:
        return f"ProviderError({self.args[0]!r}, status={self.status}, kind={self.kind!r})"

    @classmethod
    def from_response(
        cls, provider: str, status: int, headers: Mapping[str, str], body: bytes, secrets: Iterable[str]
    ) -> ProviderError:
        """The error for an HTTP error response, its body parsed in any provider's error shape."""
        secrets = list(secrets)
        text = body.decode("utf-8", "replace")
        try:
            payload: Any = json.loads(text) if text.strip() else None
        except ValueError:
            payload = text[:_MAX_MESSAGE]
        error_type, detail = _error_fields(payload, headers)
        kind, _ = classify_error(error_type, status)
        # Whether a retry may help is the retry rules' call (status, x-should-retry), not the type's.
        retryable, _ = worth_retrying(Failure("status", status=status, headers=dict(headers)))
        message = f"{provider} answered HTTP {status}"
        if error_type:
            message += f" ({error_type})"
        if detail:
            message += f": {detail[:_MAX_MESSAGE]}"
        request_id = _request_id(headers)
        return cls(
            redact(message, secrets),
            status=status,
            kind=kind,
            retryable=retryable,
            provider=provider,
            payload=redact(payload, secrets),
            request_id=request_id,
            retry_delay=body_retry_delay(payload),
        )


_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def body_retry_delay(payload: Any) -> float | None:
    """The wait an error body asks for: a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (a Duration,
    ``"19s"`` or ``"0.5s"``), where Gemini and Vertex AI say it; ``None`` when the body says nothing.

    >>> body_retry_delay({"error": {"code": 429, "details": [
    ...     {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "19s"}]}})
    19.0
    """
    if isinstance(payload, list) and payload:  # the JSON-array framing wraps the error
        payload = payload[0]
    inner = payload.get("error") if isinstance(payload, dict) else None
    details = inner.get("details") if isinstance(inner, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    seconds = float(delay[:-1])
                except ValueError:
                    return None
                return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _error_fields(payload: Any, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(error type, message) from Anthropic, OpenAI, Gemini, Bedrock and Ollama error bodies."""
    error_type = headers.get("x-amzn-errortype") or None  # Bedrock: "ThrottlingException:http://..."
    if error_type:
        error_type = error_type.split(":", 1)[0]
    if isinstance(payload, list) and payload:  # Gemini's JSON-array framing wraps the error
        payload = payload[0]
    if not isinstance(payload, dict):
        return error_type, payload if isinstance(payload, str) and payload else None
    inner = payload.get("error", payload)
    if isinstance(inner, str):  # Ollama: {"error": "..."}
        return error_type, inner
    if not isinstance(inner, dict):
        return error_type, None
    if error_type is None:
        error_type = _best_type(inner)
    message = inner.get("message") or inner.get("Message")
    return error_type, message if isinstance(message, str) else None


def _best_type(error: dict[str, Any]) -> str | None:
    """The error's type string: the first that :func:`classify_error` knows, else the first given
    (OpenAI's 429 says ``type: requests`` but ``code: rate_limit_exceeded``)."""
    found = [
        value.rsplit("#", 1)[-1]
        for value in (error.get(key) for key in ("type", "code", "status", "__type"))
        if isinstance(value, str) and value
    ]
    for value in found:
        if classify_error(value)[0] != "unknown":
            return value
    return found[0] if found else None


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in ("request-id", "x-request-id", "x-amzn-requestid"):
        value = headers.get(name)
        if value:
            return value
    return None


class TransportError(RemoteError):
    """The connection could not be made, or it broke before any content reached the caller.

    Example:

        >>> import socket
        >>> closed = socket.socket()
        >>> closed.bind(("127.0.0.1", 0))                  # bound, not listening: connections are refused
        >>> url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        >>> with midstream.Client("anthropic", base_url=url, max_retries=0) as client:
        ...     try:
        ...         client.stream("Hi", model="claude-sonnet-4-5").final()
        ...     except midstream.TransportError as exc:
        ...         print(type(exc).__name__, exc.provider)
        TransportError anthropic
        >>> closed.close()
    """

    def __init__(self, message: str, *, provider: str, partial: Message | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.partial = partial


class StreamTimeout(RemoteError):
    """One of the client's timeouts fired. ``which`` is ``pool`` (waiting for a free connection of
    the client's own pool: every one was busy with other streams), ``connect`` (making the
    connection), ``first_byte`` (waiting for the response to begin), ``idle`` (silence between two
    chunks) or ``total`` (the whole call, retries included); ``seconds`` is its configured value.

    Example:

        >>> from midstream.sim import running
        >>> slow = {"x-midstream-fault": "first_byte_delay_ms=2000"}
        >>> timeouts = midstream.Timeouts(first_byte=0.2)
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url, max_retries=0) as c:
        ...     try:
        ...         c.stream("Hi", model="m", headers=slow, timeouts=timeouts).final()
        ...     except midstream.StreamTimeout as exc:
        ...         print(exc.which, exc.seconds)
        first_byte 0.2
    """

    def __init__(
        self, which: TimeoutName, seconds: float | None, *, provider: str, partial: Message | None = None
    ) -> None:
        if which == "pool":
            text = (
                f"pool timeout ({seconds} s): no free connection to {provider}, every connection of the "
                "client's pool was busy with other streams; allow more with Client(max_connections=...) "
                "(settings: [client] max_connections) or wait longer with Timeouts(pool=...)"
            )
        else:
            text = f"{which} timeout ({seconds} s) while streaming from {provider}"
        # Explicit base call: in StreamInterruptedByTimeout the next class in line is StreamInterrupted.
        RemoteError.__init__(self, text)
        self.which: TimeoutName = which
        self.seconds = seconds
        self.provider = provider
        self.partial: Message | None = partial


class StreamInterrupted(RemoteError):
    """The stream failed after content had reached the caller, so it was not retried.

    ``partial`` is the Message so far: its ``terminal`` is ``failed`` and its content is incomplete;
    never use it as a complete answer. ``cause`` is the typed error behind the failure
    (:class:`ProviderError` for a provider's error event, :class:`TransportError`,
    :class:`~midstream.errors.RemoteProtocolError`).

    Example:

        >>> from midstream.sim import running
        >>> broken = {"x-midstream-fault": "error_after_events=6;error=overloaded"}
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
        ...     try:
        ...         with client.stream("Tell me about rivers", model="m", headers=broken) as stream:
        ...             for event in stream:
        ...                 pass
        ...     except midstream.StreamInterrupted as exc:  # content had arrived: not retried
        ...         print(exc.kind, exc.partial.terminal, bool(exc.partial.text))
        overloaded failed True
    """

    def __init__(self, message: str, *, partial: Message, cause: BaseException | None = None) -> None:
        RemoteError.__init__(self, message)
        self.partial: Message = partial
        self.cause = cause

    @property
    def kind(self) -> ErrorKind:
        """The normalized kind of the failure (``transport``, ``timeout``, ``overloaded``, ...)."""
        error = self.partial.error
        kind: ErrorKind = getattr(error, "error_kind", "unknown")
        return kind


# ``partial`` is ``Message | None`` on a StreamTimeout and a ``Message`` here, which satisfies both.
class StreamInterruptedByTimeout(StreamTimeout, StreamInterrupted):  # type: ignore[misc]
    """A timeout that fired after content had arrived: ``which`` names it, ``partial`` holds the rest.

    Example:

        >>> from midstream.sim import running
        >>> stall = {"x-midstream-fault": "stall_ms=3000;stall_after_events=6"}
        >>> with running(speed=0) as url, midstream.Client("anthropic", base_url=url) as client:
        ...     try:
        ...         idle = midstream.Timeouts(idle=0.2)
        ...         with client.stream("Hi", model="m", headers=stall, timeouts=idle) as s:
        ...             for event in s:
        ...                 pass
        ...     except midstream.StreamInterruptedByTimeout as exc:
        ...         print(exc.which, exc.partial.terminal)
        idle failed
    """

    def __init__(self, which: TimeoutName, seconds: float | None, *, provider: str, partial: Message) -> None:
        StreamTimeout.__init__(self, which, seconds, provider=provider, partial=partial)
        self.cause = None


__getattr__ = renamed(
    __name__, {"MidStreamError": StreamInterrupted, "MidStreamTimeout": StreamInterruptedByTimeout}
)
