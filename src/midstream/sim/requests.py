"""Each provider's request body, read into one :class:`SimRequest` the simulator can act on.

The reading lives with each dialect (:func:`midstream.wire.request_dialect`): the conversation's last
user text and last tool result, how many assistant turns it has and which tools it called, the tools
offered (with their schemas and eager-streaming flags) and ``tool_choice``, the structured output asked
for, the output budget, whether to stream, and whether thinking was asked for. Anything else is ignored,
as a lenient server would; what the provider refuses is refused by the dialect's ``check``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from midstream import wire
from midstream.sim.script import count_tokens
from midstream.wire.anthropic import FINE_GRAINED_BETA
from midstream.wire.profiles import profile
from midstream.wire.request import RequestView, text_of

__all__ = ["FINE_GRAINED_BETA", "SimRequest", "load_body", "parse_request"]

SimRequest = RequestView
"""A provider request, normalized (the wire layer's :class:`~midstream.wire.request.RequestView`)."""


def parse_request(
    provider: str, body: dict[str, Any], headers: Mapping[str, str], *, model: str | None = None
) -> SimRequest:
    """Read ``body`` (a ``provider`` request) into a SimRequest. ``model`` overrides the body's."""
    dialect = wire.request_dialect(profile(provider).dialect)
    req = dialect.read(body, {k.lower(): v for k, v in headers.items()})
    if model:
        req.model = model
    req.input_tokens = max(1, count_tokens(text_of(req.conversation)))
    return req


def load_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; ``ValueError`` for anything a provider would not parse (not an
    object, ``NaN`` or ``Infinity``, a number out of range, a lone surrogate)."""
    body = json.loads(raw or b"{}", parse_constant=_no_constant, parse_float=_finite)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    _valid_unicode(body)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _valid_unicode(body: dict[str, Any]) -> None:
    """Providers reject a lone surrogate (``"\\ud800"`` in JSON): it is not Unicode, and no answer
    could quote it back in UTF-8."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        code = f"\\u{ord(bad[0]):04x}" if bad else "?"
        raise ValueError(f"the request holds a lone surrogate ({code}), which is not valid Unicode") from None
