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


def responses_body(events: list[Event], *, realism: bool = True, seed: int | None = 0) -> dict[str, Any]:
    """The Responses API's non-streaming body: the final ``response`` object its stream ends with."""
    return _whole("openai-responses", events, api=None, realism=realism, seed=seed)


def nonstream_body(
    dialect: str, events: list[Event], *, api: str | None = None, realism: bool = True, seed: int | None = 0
) -> bytes:
    """The JSON body ``dialect`` answers with when not streaming, for the same ``events``.

    ``api`` is the endpoint's variant (Ollama's ``chat`` or ``generate``).
    """
    body = _whole(dialect, events, api=api, realism=realism, seed=seed)
    return json.dumps(body, ensure_ascii=False).encode()


def _whole(
    dialect: str, events: list[Event], *, api: str | None, realism: bool, seed: int | None
) -> dict[str, Any]:
    acc = Accumulator(dialect)
    for event in events:
        acc.feed(event)
    return wire.nonstream_body(dialect, acc.message, events, api=api, realism=realism, seed=seed)


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
