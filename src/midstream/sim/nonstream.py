"""Non-streaming response bodies: the JSON each provider returns for ``stream: false``, and its errors.

The simulator plans the same events either way and folds them into a Message; the dialect's own writer
(:func:`midstream.wire.nonstream_body`) writes that Message in the provider's non-streaming shape, so a
client sees the same content streamed or not.
"""

from __future__ import annotations

import json
from typing import Any

from midstream import wire
from midstream.core.accumulate import Accumulator
from midstream.events import Event
from midstream.wire.profiles import profile

__all__ = ["error_body", "nonstream_body", "responses_body"]


def responses_body(events: list[Event], **options: Any) -> dict[str, Any]:
    """The Responses API's non-streaming body: the final ``response`` object its stream ends with."""
    return _whole("openai-responses", events, api=None, **options)


def nonstream_body(dialect: str, events: list[Event], *, api: str | None = None, **options: Any) -> bytes:
    """The JSON body ``dialect`` answers with when not streaming, for the same ``events``.

    ``api`` is the endpoint's variant (Ollama's ``chat`` or ``generate``); ``options`` are the
    encoder's, as for the streamed answer (:func:`midstream.wire.nonstream_body`).
    """
    return json.dumps(_whole(dialect, events, api=api, **options), ensure_ascii=False).encode()


def _whole(dialect: str, events: list[Event], *, api: str | None, **options: Any) -> dict[str, Any]:
    acc = Accumulator(dialect)
    for event in events:
        acc.feed(event)
    return wire.nonstream_body(dialect, acc.message, events, api=api, **options)


def error_body(
    provider: str,
    status: int,
    kind: str,
    message: str,
    request_id: str = "",
    *,
    retry_delay: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """An HTTP error body (and extra headers) the way ``provider`` writes one.

    ``kind`` is ``overloaded``, ``rate_limited``, ``server``, ``invalid_request``, ``not_found`` or
    ``request_too_large`` (a 413: Anthropic's own error type; an invalid request elsewhere). ``retry_delay``
    (seconds) goes into the body where the provider says it there (Gemini's ``RetryInfo``).
    """
    dialect = wire.request_dialect(profile(provider).dialect)
    body, headers = dialect.error_body(status, kind, message, request_id, retry_delay)
    return json.dumps(body, ensure_ascii=False).encode(), headers
