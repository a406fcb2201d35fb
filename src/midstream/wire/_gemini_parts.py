"""Pieces of the Gemini dialect shared by its decoder and encoder.

Part kinds, the ids given to tool calls Gemini sends without one, and Vertex's streamed tool arguments:
``partialArgs`` name each leaf of the arguments by an RFC 9535 JSON path (``$.a``, ``$.a.b``,
``$.a[0].c``, ``$['odd key']``). :class:`ArgsWriter` turns them into JSON text as they arrive;
:func:`leaves` is the inverse the encoder uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from midstream.errors import RemoteProtocolError

__all__ = [
    "PART_META",
    "PROVIDER",
    "SERVER_PARTS",
    "ArgsWriter",
    "Segment",
    "Unstreamable",
    "format_json_path",
    "leaves",
    "parse_json_path",
    "synthetic_call_id",
]

PROVIDER = "gemini"
# Parts the provider runs itself: code execution, and the built-in tools of Gemini 3 (toolCall /
# toolResponse, e.g. Google Search), which must be sent back with their thought signatures.
SERVER_PARTS = frozenset({"executableCode", "codeExecutionResult", "toolCall", "toolResponse"})
# Part fields that qualify a part's value rather than being one.
PART_META = frozenset({"thought", "thoughtSignature", "partMetadata", "videoMetadata", "mediaResolution"})


def synthetic_call_id(response_id: str | None, n: int) -> str:
    """The id given to the ``n``-th tool call (from 0) of a response when Gemini sends none."""
    return f"call_{response_id or PROVIDER}_{n}"


Segment = str | int
_SEGMENT = re.compile(
    r"""\.([^\W\d][\w]*)|\[(0|[1-9][0-9]*)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]"""
)
_QUOTED_ESCAPE = re.compile(r"""\\'|\\.|\"""")
_SHORTHAND = re.compile(r"[^\W\d]\w*")


def _unquote(body: str) -> str:
    # Both quote styles become one JSON string literal, which json.loads then unescapes.
    literal = _QUOTED_ESCAPE.sub(lambda m: {"\\'": "'", '"': '\\"'}.get(m.group(), m.group()), body)
    try:
        result: str = json.loads(f'"{literal}"')
    except ValueError as exc:
        raise RemoteProtocolError(f"bad escape in a JSON path name {body!r}") from exc
    return result


def parse_json_path(path: object) -> tuple[Segment, ...]:
    """``$.a['b c'][0]`` -> ``("a", "b c", 0)``: the singular RFC 9535 paths Vertex streams."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise RemoteProtocolError(f"not a JSON path: {path!r}")
    segments: list[Segment] = []
    pos = 1
    while pos < len(path):
        found = _SEGMENT.match(path, pos)
        if found is None:
            raise RemoteProtocolError(f"unsupported JSON path {path!r} at {pos}")
        name, index, single, double = found.groups()
        if index is not None:
            segments.append(int(index))
        elif name is not None:
            segments.append(name)
        else:
            segments.append(_unquote(single if single is not None else double))
        pos = found.end()
    if not segments:
        raise RemoteProtocolError("a partial argument must name a member of the arguments, not $")
    return tuple(segments)


def format_json_path(segments: tuple[Segment, ...]) -> str:
    """The inverse of :func:`parse_json_path` (dot shorthand where the name allows it)."""
    out = ["$"]
    for seg in segments:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _SHORTHAND.fullmatch(seg):
            out.append(f".{seg}")
        else:
            escaped = json.dumps(seg, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


@dataclass
class _Container:
    segment: Segment | None  # its name (or index) in the parent; None for the arguments object
    is_object: bool
    members: int = 0
    keys: set[str] = field(default_factory=set)


class ArgsWriter:
    """Vertex ``partialArgs`` -> JSON text, fragment by fragment.

    Each partial argument names a leaf by JSON path and carries a scalar (strings may come in pieces,
    ``willContinue`` saying more of the same string follows). The writer keeps the chain of open
    containers; a new path closes the containers it leaves and opens the ones it enters, so the
    concatenated output is compact JSON (``json.dumps(args, separators=(",", ":"),
    ensure_ascii=False)`` for arguments sent depth first). Paths must move forward: revisiting a key or
    skipping an array index is a protocol error, never silently merged.
    """

    def __init__(self) -> None:
        self._stack: list[_Container] = []
        self._string: tuple[Segment, ...] | None = None  # path of the string still open

    @property
    def written(self) -> bool:
        """True once anything has been written."""
        return bool(self._stack)

    def write(self, arg: Any) -> str:
        """The JSON text that one partial argument adds."""
        if not isinstance(arg, dict):
            raise RemoteProtocolError("a partial argument must be an object")
        path = parse_json_path(arg.get("jsonPath"))
        more = arg.get("willContinue") is True
        out = ""
        if self._string is not None:
            if path == self._string and "stringValue" in arg:
                return self._string_piece(arg["stringValue"], more)
            out, self._string = '"', None
        out += self._enter(path)
        if "stringValue" in arg:
            self._string = path
            return out + '"' + self._string_piece(arg["stringValue"], more)
        return out + _scalar(arg)

    def finish(self) -> str:
        """Close everything still open; ``{}`` when no argument came."""
        if not self._stack:
            return "{}"
        out = '"' if self._string is not None else ""
        self._string = None
        while self._stack:
            out += "}" if self._stack.pop().is_object else "]"
        return out

    def _string_piece(self, piece: Any, more: bool) -> str:
        if not isinstance(piece, str):
            raise RemoteProtocolError("stringValue must be a string")
        text = json.dumps(piece, ensure_ascii=False)[1:-1]
        if not more:
            self._string = None
            text += '"'
        return text

    def _enter(self, path: tuple[Segment, ...]) -> str:
        out = ""
        if not self._stack:
            self._stack.append(_Container(None, True))
            out = "{"
        parents, leaf = path[:-1], path[-1]
        depth = 0  # how many of ``parents`` are already open
        while depth < len(parents) and depth + 1 < len(self._stack):
            if self._stack[depth + 1].segment != parents[depth] or type(parents[depth]) is not type(
                self._stack[depth + 1].segment
            ):
                break
            depth += 1
        while len(self._stack) > depth + 1:
            out += "}" if self._stack.pop().is_object else "]"
        for at in range(depth, len(parents)):
            out += self._member(parents[at])
            is_object = isinstance(path[at + 1], str)
            self._stack.append(_Container(parents[at], is_object))
            out += "{" if is_object else "["
        return out + self._member(leaf)

    def _member(self, segment: Segment) -> str:
        container = self._stack[-1]
        if container.is_object != isinstance(segment, str):
            raise RemoteProtocolError(f"JSON path member {segment!r} does not fit its container")
        if isinstance(segment, str):
            if segment in container.keys:
                raise RemoteProtocolError(f"partial arguments revisit the key {segment!r}")
            container.keys.add(segment)
        elif segment != container.members:
            raise RemoteProtocolError(f"partial arguments jump to index {segment} of an array")
        comma = "," if container.members else ""
        container.members += 1
        return comma + (json.dumps(segment, ensure_ascii=False) + ":" if isinstance(segment, str) else "")


def _scalar(arg: dict[str, Any]) -> str:
    if "numberValue" in arg:
        number = arg["numberValue"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise RemoteProtocolError("numberValue must be a number")
        return json.dumps(number)
    if "boolValue" in arg:
        if not isinstance(arg["boolValue"], bool):
            raise RemoteProtocolError("boolValue must be a boolean")
        return "true" if arg["boolValue"] else "false"
    if "nullValue" in arg:
        return "null"
    raise RemoteProtocolError("a partial argument without a value")


class Unstreamable(Exception):
    """Arguments that partialArgs cannot express (an empty object or array below the top)."""


def leaves(value: Any, path: tuple[Segment, ...]) -> list[tuple[tuple[Segment, ...], Any]]:
    if isinstance(value, dict | list):
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        if not items and path:
            raise Unstreamable
        return [leaf for key, item in items for leaf in leaves(item, (*path, key))]
    return [(path, value)]
