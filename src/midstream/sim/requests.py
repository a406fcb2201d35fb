"""Each provider's request body, read into one :class:`SimRequest` the simulator can act on.

The reading lives with each dialect (:func:`midstream.wire.request_dialect`): the conversation's last
user text and last tool result, how many assistant turns it has and which tools it called, the tools
offered (with their schemas and eager-streaming flags) and ``tool_choice``, the structured output asked
for, the output budget, whether to stream, and whether thinking was asked for. Anything else is ignored,
as a lenient server would; what the provider refuses is refused by the dialect's ``check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midstream import wire
from midstream.sim.script import count_tokens
from midstream.wire.anthropic import FINE_GRAINED_BETA
from midstream.wire.request import RequestView, text_of

__all__ = ["FINE_GRAINED_BETA", "SimRequest", "parse_request"]

SimRequest = RequestView
"""A provider request, normalized (the wire layer's :class:`~midstream.wire.request.RequestView`)."""


def parse_request(
    provider: str, body: dict[str, Any], headers: Mapping[str, str], *, model: str | None = None
) -> SimRequest:
    """Read ``body`` (a ``provider`` request) into a SimRequest. ``model`` overrides the body's."""
    req = wire.request_dialect(provider).read(body, {k.lower(): v for k, v in headers.items()})
    if model:
        req.model = model
    req.input_tokens = max(1, count_tokens(text_of(req.conversation)))
    return req
