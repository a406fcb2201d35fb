"""The one JSON payload policy every dialect parses provider payloads with.

Every payload a decoder reads (an SSE ``data`` field, an NDJSON line, an eventstream frame's JSON, a
streamed JSON array element) goes through :func:`loads`. The policy is RFC 8259 JSON, read exactly as
:func:`json.loads` reads it, with one difference: ``NaN``, ``Infinity`` and ``-Infinity``, which Python's
``json`` accepts as an extension and no provider sends, are not JSON and raise :class:`ValueError` like
any other malformed payload (so every dialect reports them as a protocol error, as :mod:`partial JSON
<midstream.core.partial_json>` does for tool arguments). What the grammar allows is kept as ``json``
keeps it: integers of any size stay exact ``int``, a number past the float range (``1e400``) is
``inf``, escaped lone surrogates (``"\\ud800"``) stay in the string, duplicate keys keep the last value.
A payload nested deeper than the interpreter's recursion limit raises :class:`RecursionError`.

``msgspec`` (imported with the first payload) parses it when it is installed (about 5x faster than
``json`` on a typical event); whatever it rejects (malformed input, but also ``1e400`` and escaped lone
surrogates, which it refuses and ``json`` accepts) is parsed again by ``json`` with the policy above, so
the result does not depend on whether ``msgspec`` is there: the tests run both paths on the same inputs.
(The depth at which the two give up differs by a few levels around 1,000; both raise
:class:`RecursionError` there.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["ParsesPayloads", "fast_path", "loads", "loads_json", "parser"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def loads_json(text: str | bytes) -> Any:
    """The policy with the standard library alone (what :func:`loads` falls back to)."""
    if isinstance(text, bytes):
        return json.loads(text, parse_constant=_reject_constant)
    return _decode(text)


def _first_fast(text: str | bytes) -> Any:
    """Import msgspec on the first payload (importing the wire layer stays cheap), then parse with it."""
    global _fast
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency; the policy holds without it
        _fast = loads_json
    else:
        _fast = msgspec.json.Decoder().decode
    return _fast(text)


_fast: Callable[[str | bytes], Any] = _first_fast


def loads(text: str | bytes) -> Any:
    """Parse one payload under the policy above; :class:`ValueError` if it is not JSON."""
    try:
        return _fast(text)
    except ValueError:  # msgspec's DecodeError, or UnicodeEncodeError for a str holding a lone surrogate
        return loads_json(text)


def parser() -> Callable[[str | bytes], Any]:
    """The fast parser itself (msgspec's, imported now if it was not yet; else :func:`loads_json`).

    For a decoder's per-event loop, which saves a call per payload: it must send whatever this
    rejects with :class:`ValueError` to :func:`loads`, which then applies the policy in full. (A
    :class:`RecursionError` is the same from both.)
    """
    loads("0")
    return _fast


class ParsesPayloads:
    """A decoder's access to :func:`parser`: ``self._parse or self._parser()`` in its per-chunk code.

    The parser is fetched on first use, not when the decoder is made: making one imports nothing.
    """

    _parse: Callable[[str | bytes], Any] | None = None

    def _parser(self) -> Callable[[str | bytes], Any]:
        self._parse = parse = parser()
        return parse


def fast_path() -> bool:
    """Whether :func:`loads` parses with ``msgspec`` (the result is the same either way)."""
    loads("0")
    return _fast is not loads_json
