"""An incremental JSON parser: every character is examined once, whatever the splits.

Tool-call arguments stream as fragments that may end anywhere: inside a string, inside an escape
(``\\u00``), between the halves of a surrogate pair, inside a number or a literal. :class:`PartialJSON`
is fed those fragments and

* returns :data:`JsonEvent` values as they become known (container start / end, object keys, string
  start and string text deltas, completed values), each with its JSON path;
* keeps the value built so far, so :meth:`PartialJSON.snapshot` is cheap enough for a display loop and
  shows only what was really received (no invented literals, no number that may still grow);
* checks the grammar strictly (RFC 8259: no NaN / Infinity, no trailing commas, no comments, exactly one
  top-level value) and raises :class:`~midstream.errors.InvalidJSON` as soon as the input can never be
  valid, and :class:`~midstream.errors.IncompleteJSON` from :meth:`PartialJSON.finish` for a truncated
  document.

The work per :meth:`PartialJSON.feed` is proportional to the new text only: string contents are scanned
in bulk with a regular expression and decoded with the standard library's C string decoder; state that
spans fragments (a partial escape, a partial number or literal) is carried, never re-scanned from the
start of the document. Nesting is handled with an explicit stack, so no recursion limit is involved.
With events off, an object or array that arrives whole within the text at hand is read in one call of
the standard library's C scanner (the engine of :func:`json.loads`, made strict), and the parser reads
token by token only what is cut by the end of the text; with ``lazy=True`` :meth:`PartialJSON.feed`
only keeps the text, and it is parsed in one piece when a preview or the result is asked for (a display
taking previews at 30 Hz then parses a few hundred bytes per frame, mostly in C).

Completed values equal what :func:`json.loads` gives for the same text (``int`` vs ``float`` as it
decides, big integers exact, lone surrogate escapes kept as lone surrogates, a duplicated object key:
the last member wins, at the position of the first). ``unique_keys=True`` (what tool arguments use)
rejects a duplicated key as :class:`~midstream.errors.InvalidJSON` instead: with the last member
winning, a value already reported complete would change, and "a value once complete never changes".
"""

from __future__ import annotations

import json.decoder
import json.scanner
import re
from collections.abc import Callable
from typing import Any, NoReturn

from midstream.core._json_events import (
    ContainerEnd,
    ContainerStart,
    JsonEvent,
    JsonPath,
    Key,
    StringDelta,
    StringStart,
    ValueComplete,
)
from midstream.errors import IncompleteJSON, InvalidJSON, LimitExceeded, LocalError

# The standard library's C string decoder (the one json.loads uses): same escapes, same surrogate rules.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class _NotJSON(ValueError):
    """Raised inside the C value scanner for what strict JSON rejects; the parser then re-reads the
    value itself and reports the error with its position and reason."""


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotJSON("duplicate key")
    return obj


class _ScanContext:
    """The settings json.loads would use, but strict: no NaN / Infinity (and, for ``unique``, no
    duplicated key)."""

    def __init__(self, unique: bool) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = _unique_pairs if unique else None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _reject_constant
        self.memo: dict[str, str] = {}


# The standard library's C value scanner (json.loads's engine), used for an object or array that
# arrives whole within the text at hand: one C call instead of a Python step per token. Anything it
# does not accept (a value cut by the end of the text, or invalid JSON) is read by the parser itself.
_ValueScanner = Callable[[str, int], tuple[Any, int]]
_C_SCANNER = getattr(json.scanner, "c_make_scanner", None)  # None without the C accelerator
_SCANNERS: dict[bool, _ValueScanner | None] = {
    unique: None if _C_SCANNER is None else _C_SCANNER(_ScanContext(unique)) for unique in (False, True)
}
_SCAN_FAILED = (StopIteration, ValueError, RecursionError)
# A value cut by the end of the text costs the C scanner a read to that end for every open container
# around the cut: tried only this far from the root, so that cost stays a small multiple of the text.
_SCAN_DEPTH = 32


# Lazy mode: an object or array cut by the end of the text, up to this many characters and without
# escapes, is kept as text and read again whole when more arrives; a preview meanwhile closes a copy of
# it and reads that in C.
_CARRY_MAX = 512
# A string whose rest of the text is this short is decoded from a copy closed by a quote of our own.
_SHORT_REST = 1024
_JSON_WS = " \t\n\r"
# What is not a bracket (in text outside strings): removed, the brackets remain.
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_CLOSERS = str.maketrans("{[", "}]")
_TOKEN_CHARS = "0123456789+-.eEtrufalsn"


def _number_prefix(token: str) -> bool:
    """True if ``token`` is a number, or the start of one, that may still grow."""
    state = _N_START
    for c in token:
        nxt = _N_NEXT.get((state, _N_CLASS.get(c, "")))
        if nxt is None:
            return False
        state = nxt
    return bool(token)


def _literal_prefix(token: str) -> bool:
    """True if ``token`` is the start, not the whole, of ``true``, ``false`` or ``null``."""
    return bool(token) and any(w.startswith(token) and w != token for w in ("true", "false", "null"))


def _string_start(text: str, close: int) -> int:
    """Where the string whose closing quote is at ``close`` opens (-1 if nowhere)."""
    r = text.rfind('"', 0, close)
    while r > 0:
        b = r
        while b > 0 and text[b - 1] == "\\":
            b -= 1
        if (r - b) % 2 == 0:
            return r
        r = text.rfind('"', 0, r)
    return r


def _drop_comma(text: str) -> str | None:
    """``text`` (right-stripped) without the ',' before a member that is not shown; ``None`` if
    that leaves something that cannot be right ('[,' or ',,')."""
    if text.endswith(","):
        text = text[:-1].rstrip(_JSON_WS)
        return None if text[-1] in "{[,:" else text
    return text if text[-1] in "{[" else None


_Unknown = object()  # a carried value that could not be previewed this way


def _depth(value: Any) -> int:
    """Nesting depth of a parsed value (1 for a flat container), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


__all__ = [
    "ContainerEnd",
    "ContainerStart",
    "JsonEvent",
    "JsonPath",
    "Key",
    "PartialJSON",
    "StringDelta",
    "StringStart",
    "ValueComplete",
]


# -- lexical pieces ------------------------------------------------------------------------------------

# A run of valid string content: plain characters and whole escapes. It stops at the closing quote, at a
# control character, at an invalid or incomplete escape, or at the end of the text.
_STR_RUN = re.compile(r'(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
# An escape cut by the end of the text: it may still become valid.
_PARTIAL_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?\Z")
# A high-surrogate escape: held back at the end of a fragment, since a low one may follow and the pair
# decodes to one character.
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")
_WS = re.compile(r"[ \t\n\r]*")
# A whole string without escapes, read in one step; for a key, with the ':' that follows if it is there.
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_PLAIN_KEY = re.compile(r'"([^"\\\x00-\x1f]*)"([ \t\n\r]*:)?')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_WHITESPACE = frozenset(" \t\n\r")
_LITERALS: dict[str, tuple[str, Any]] = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}

# Number grammar as a table, used only when a number may continue in the next fragment.
_N_START, _N_MINUS, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_EXP_MARK, _N_EXP_SIGN, _N_EXP = range(9)
_N_ACCEPT = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})
_N_CLASS: dict[str, str] = {"0": "0", "-": "-", "+": "+", ".": ".", "e": "e", "E": "e"}
_N_CLASS.update(dict.fromkeys("123456789", "d"))
_N_NEXT: dict[tuple[int, str], int] = {
    (_N_START, "-"): _N_MINUS,
    (_N_START, "0"): _N_ZERO,
    (_N_START, "d"): _N_INT,
    (_N_MINUS, "0"): _N_ZERO,
    (_N_MINUS, "d"): _N_INT,
    (_N_ZERO, "."): _N_DOT,
    (_N_ZERO, "e"): _N_EXP_MARK,
    (_N_INT, "0"): _N_INT,
    (_N_INT, "d"): _N_INT,
    (_N_INT, "."): _N_DOT,
    (_N_INT, "e"): _N_EXP_MARK,
    (_N_DOT, "0"): _N_FRAC,
    (_N_DOT, "d"): _N_FRAC,
    (_N_FRAC, "0"): _N_FRAC,
    (_N_FRAC, "d"): _N_FRAC,
    (_N_FRAC, "e"): _N_EXP_MARK,
    (_N_EXP_MARK, "+"): _N_EXP_SIGN,
    (_N_EXP_MARK, "-"): _N_EXP_SIGN,
    (_N_EXP_MARK, "0"): _N_EXP,
    (_N_EXP_MARK, "d"): _N_EXP,
    (_N_EXP_SIGN, "0"): _N_EXP,
    (_N_EXP_SIGN, "d"): _N_EXP,
    (_N_EXP, "0"): _N_EXP,
    (_N_EXP, "d"): _N_EXP,
}

# -- parser modes ------------------------------------------------------------------------------------

# Between tokens: what the grammar expects next. Inside a token: which token is being read.
_VALUE, _VALUE_OR_CLOSE, _KEY_OR_CLOSE, _KEY, _COLON, _AFTER_OBJ, _AFTER_ARR, _END = range(8)
_STRING, _KEY_STRING, _NUMBER_TOKEN, _LITERAL = range(8, 12)

_EXPECTED: dict[int, str] = {
    _VALUE: "expected a value",
    _VALUE_OR_CLOSE: "expected a value or ']'",
    _KEY_OR_CLOSE: "expected a string key or '}'",
    _KEY: "expected a string key",
    _COLON: "expected ':'",
    _AFTER_OBJ: "expected ',' or '}'",
    _AFTER_ARR: "expected ',' or ']'",
    _END: "extra data after the top-level value",
    _STRING: "unterminated string",
    _KEY_STRING: "unterminated object key",
    _NUMBER_TOKEN: "unterminated number",
    _LITERAL: "unterminated literal",
}

# Character classes for the structural table.
_CLASS: dict[str, str] = {c: c for c in '{}[],:"'}
_CLASS.update(dict.fromkeys("-0123456789", "num"))
_CLASS.update(dict.fromkeys("tfn", "lit"))

_Action = Callable[["PartialJSON", str, int], int]


class _Frame:
    """One open container: the live object or list, its place in its parent (``step``), its path (kept
    only when events are on) and, for objects, the current member's key."""

    __slots__ = ("container", "is_obj", "key", "path", "step")

    def __init__(self, container: Any, is_obj: bool, step: str | int, path: JsonPath) -> None:
        self.container = container
        self.is_obj = is_obj
        self.step = step
        self.path = path
        self.key = ""


def _number_value(lexeme: str) -> int | float:
    if "." in lexeme or "e" in lexeme or "E" in lexeme:
        return float(lexeme)
    try:
        return int(lexeme)
    except ValueError:  # Python's int() digit limit (sys.set_int_max_str_digits), as json.loads has
        raise LimitExceeded(
            f"integer of {len(lexeme)} digits exceeds the interpreter's conversion limit",
            limit="int_max_str_digits",
            value=len(lexeme),
        ) from None


def _decode(text: str, start: int, stop: int) -> str:
    """The decoded string content ``text[start:stop]`` (already checked by ``_STR_RUN``)."""
    if text.find("\\", start, stop) < 0:
        return text[start:stop]
    if stop < len(text) and text[stop] == '"':
        return _scanstring(text, start)[0]
    return _scanstring(text[start:stop] + '"', 0)[0]


def _holdback(text: str, start: int, stop: int) -> int:
    """Where a trailing high-surrogate escape of the run ``text[start:stop]`` begins (else ``stop``)."""
    k = stop - 6
    if k < start or _HIGH_SURROGATE.match(text, k) is None:
        return stop
    # The backslash at k opens an escape only if an even number of backslashes precede it in the run.
    b = k
    while b > start and text[b - 1] == "\\":
        b -= 1
    return k if (k - b) % 2 == 0 else stop


def _undecided(text: str, start: int) -> int:
    """Where the tail of the string content ``text[start:]`` that cannot be decoded yet begins: a cut
    escape (``\\``, ``\\u00``), or a high-surrogate escape a low one may follow (else ``len(text)``).
    Looks at the last few characters only; invalid content is left for the decoder to report."""
    n = len(text)
    r = text.rfind("\\", max(start, n - 6))
    if r < 0:
        return n
    b = r
    while b > start and text[b - 1] == "\\":
        b -= 1
    if (r - b) % 2:  # the last backslash is the second half of an escaped backslash
        return n
    if _PARTIAL_ESCAPE.match(text, r) is not None:
        return _holdback(text, start, r)
    return r if n - r == 6 and _HIGH_SURROGATE.match(text, r) is not None else n


class PartialJSON:
    """Incremental, strict JSON parser for one document fed as text fragments.

    ``max_depth`` bounds nesting and ``max_bytes`` bounds the document's size in UTF-8 bytes (``None``:
    unbounded); exceeding either raises :class:`~midstream.errors.LimitExceeded` (``limit`` is
    ``"max_depth"`` or ``"max_bytes"``). With ``events=False`` :meth:`feed` returns no events (the parse,
    snapshot and final value are the same, only cheaper). ``lazy=True`` (events off only) defers the
    parse to the next :meth:`snapshot`, :meth:`is_complete`, :attr:`done` or :meth:`finish`, which then
    raise the errors :meth:`feed` would have raised: for a preview taken now and then, not per delta.

    Cost: each character is examined once. With events on, each value's event also carries its path, a
    tuple as long as the value's depth, so a document's cost is its length times its typical depth
    (bounded by ``max_depth``); with events off it is its length alone.

    After :class:`~midstream.errors.InvalidJSON` or :class:`~midstream.errors.LimitExceeded` the parser
    stays failed: every later call raises the same error.

    Example:

        >>> parser = midstream.PartialJSON()
        >>> _ = parser.feed('{"city": "Par')
        >>> parser.snapshot()
        {'city': 'Par'}
        >>> parser.is_complete(("city",))
        False
        >>> _ = parser.feed('is", "days": 3}')
        >>> parser.finish()
        {'city': 'Paris', 'days': 3}
    """

    def __init__(
        self,
        *,
        max_depth: int | None = 1000,
        max_bytes: int | None = 32 * 1024 * 1024,
        events: bool = True,
        unique_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        if lazy and events:
            raise ValueError("PartialJSON(lazy=True) needs events=False: feed() returns no events then")
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.unique_keys = unique_keys
        self._events = events
        # Objects and arrays that arrive whole go through the C scanner; events need every token.
        self._scan = None if events else _SCANNERS[unique_keys]
        self._pending: list[str] | None = [] if lazy else None  # lazy: text not parsed yet
        self._descending = False  # lazy: a carried container is being read token by token
        self._sink = self._pending  # where feed() puts text: lazy, and not failed or finished
        self._mode = _VALUE
        self._stack: list[_Frame] = []
        self._root: Any = None
        self._out: list[JsonEvent] = []
        self._error: Exception | None = None
        self._finished = False
        self._size = 0  # UTF-8 bytes fed
        self._pos = 0  # characters fed
        self._base = 0  # document position of text[0] in the current feed
        self._carry = ""  # text of an unfinished escape, re-read at the next feed
        self._chunks: list[str] = []  # decoded pieces of the open string (or key)
        self._spath: JsonPath = ()  # path of the open string value
        self._num_state = _N_START
        self._lit_word = ""
        self._lit_value: Any = None
        self._lit_got = 0
        self._version = 0
        self._snap_version = -1
        self._snap: Any = None

    # -- public API --------------------------------------------------------------------------------

    def feed(self, text: str) -> list[JsonEvent]:
        """Parse more of the document; the events it completes, in document order.

        Raises :class:`~midstream.errors.InvalidJSON` at the first character that can never be valid
        (with its document position and the reason) and :class:`~midstream.errors.LimitExceeded` when a
        bound is crossed (before any of ``text`` is parsed, for ``max_bytes``).

        With ``lazy=True`` it only keeps ``text``: the parse, and so these errors, happen at the next
        :meth:`snapshot`, :meth:`is_complete`, :attr:`done` or :meth:`finish`.
        """
        sink = self._sink
        if sink is not None:
            sink.append(text)
            return []
        if self._mode == _STRING and self._error is None and text:  # more of an open string value
            piece = self._more_text(text)
            if piece is not None:
                return [StringDelta(self._spath, piece)] if piece and self._events else []
        return self._feed(text)

    def _feed(self, text: str) -> list[JsonEvent]:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise LocalError("PartialJSON.feed() called after finish()")
        if not text:
            return []
        self._count(text)
        carry, self._carry = self._carry, ""
        self._base = self._pos - len(carry)
        self._pos += len(text)
        self._version += 1
        out: list[JsonEvent] = []
        self._out = out
        try:
            self._run(carry + text if carry else text)
        except (InvalidJSON, LimitExceeded) as exc:
            self._error = exc
            self._sink = None
            raise
        return out

    def finish(self) -> Any:
        """The document ended: its value, parsed strictly.

        Raises :class:`~midstream.errors.IncompleteJSON` when the document stopped before its top-level
        value was complete (a valid prefix), or the error that already failed a :meth:`feed`. Calling it
        again returns the same value; :meth:`feed` is not allowed afterwards. (A top-level number is only
        known complete here, so it gets no :class:`ValueComplete` event: this return value is its end.)
        """
        if self._pending is not None:
            self._parse_pending(settle=True)
        if self._error is not None:
            raise self._error
        if self._finished:
            return self._root
        if self._mode == _NUMBER_TOKEN and self._num_state in _N_ACCEPT:  # the end ends the number
            self._out = []
            self._complete(_number_value("".join(self._chunks)))
        if self._mode != _END:
            reason = "empty document" if self._pos == 0 and self._mode == _VALUE else _EXPECTED[self._mode]
            self._error = IncompleteJSON("JSON document ended early", position=self._pos, reason=reason)
            self._sink = None
            raise self._error
        self._finished = True
        self._sink = None
        self._version += 1
        return self._root

    @property
    def done(self) -> bool:
        """True once the top-level value is complete (a top-level number: once something followed it)."""
        if self._pending is not None:
            self._parse_pending(settle=True)
        return self._mode == _END

    def snapshot(self) -> Any:
        """The value so far, with only what was really received.

        Complete values are as :meth:`finish` will give them. Open objects and arrays hold their
        complete members plus the open one; an open string holds the text received so far; a number,
        ``true``, ``false`` or ``null`` that is not complete yet is absent (for an object member: the
        key is absent too). Before any value has started, or while the top-level value is an unfinished
        number or literal, the snapshot is ``None`` (use :meth:`is_complete` to tell it from ``null``).

        A snapshot never changes afterwards (later feeds do not alter it), and it shares the complete
        sub-values with the parser and with other snapshots: do not mutate it. Its cost is the size of
        the open containers' own member lists plus the open string's length, not the document size.

        With ``lazy=True`` the text fed since the last call is parsed here, so this raises the parse
        errors :meth:`feed` would have raised.
        """
        if self._pending is not None:
            self._parse_pending()
        if self._snap_version != self._version:
            self._snap = self._build_snapshot()
            self._snap_version = self._version
        return self._snap

    def is_complete(self, path: JsonPath = ()) -> bool:
        """True if the value at ``path`` has been received completely (it will not change)."""
        if self._pending is not None:
            self._parse_pending(settle=True)
        if self._mode != _END:
            open_path = self._open_path()
            if open_path is None or open_path[: len(path)] == tuple(path):
                return False
        node = self._root
        for step in path:
            if isinstance(node, dict):
                if not isinstance(step, str) or step not in node:
                    return False
            elif not (isinstance(node, list) and type(step) is int and 0 <= step < len(node)):
                return False
            node = node[step]
        return True

    def _parse_pending(self, settle: bool = False) -> None:
        """Lazy mode: parse what :meth:`feed` kept, in one piece (a failed parser stays failed);
        ``settle``: and read a carried container token by token, so the state is exact."""
        if self._error is not None:
            raise self._error
        pending = self._pending
        if pending:
            text = pending[0] if len(pending) == 1 else "".join(pending)
            pending.clear()
            if self._mode != _STRING or self._more_text(text) is None:
                self._feed(text)
        if settle and self._carry and self._mode <= _VALUE_OR_CLOSE:
            self._descend()

    def _more_text(self, text: str) -> str | None:
        """Inside a string value, ``text`` with no quote is all content of the string (the common case
        of a long string field): decode it in one C call, keep a cut escape for the next text, and
        return the decoded piece. ``None`` (parse it as usual) if it has a quote (the string may close
        in it: the token reader decodes it once) or is invalid (the token reader says where)."""
        if '"' in text:
            return None
        carry = self._carry
        whole = carry + text if carry else text
        n = len(whole)
        # The find spares the call in the common case (5-10% of a small-delta stream, measured).
        k = n if whole.find("\\", n - 6) < 0 else _undecided(whole, 0)
        try:
            value = _scanstring(whole[:k] + '"' if k < n else whole + '"', 0)[0]  # ends at our quote
        except ValueError:  # invalid content
            return None
        self._count(text)
        self._pos += len(text)
        self._version += 1
        if value:
            self._chunks.append(value)
        self._carry = whole[k:]
        return value

    def _descend(self) -> None:
        """Read the carried container token by token (it was not a clean prefix, or the exact state
        is needed): raises its error, if it has one."""
        text, self._carry = self._carry, ""
        self._base = self._pos - len(text)
        self._descending = True
        try:
            self._run(text)
        except (InvalidJSON, LimitExceeded) as exc:
            self._error = exc
            self._sink = None
            raise
        finally:
            self._descending = False

    # -- the scanner -------------------------------------------------------------------------------

    def _run(self, text: str) -> None:
        i, n = 0, len(text)
        table, classes, tokens = _TABLE, _CLASS, _TOKEN_READERS
        while i < n:
            mode = self._mode
            if mode >= _STRING:
                i = tokens[mode](self, text, i)
                continue
            c = text[i]
            if c in _WHITESPACE:
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                continue
            action = table.get((mode, classes.get(c, "")))
            if action is None:
                self._unexpected(c, i)
            if type(action) is int:  # punctuation: only the expectation changes
                self._mode = action
                i += 1
            else:
                i = action(self, text, i)  # type: ignore[operator]

    def _count(self, text: str) -> None:
        size = self._size + (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")))
        if self.max_bytes is not None and size > self.max_bytes:
            self._error = LimitExceeded(
                f"JSON document larger than {self.max_bytes} bytes", limit="max_bytes", value=self.max_bytes
            )
            self._sink = None
            raise self._error
        self._size = size

    def _unexpected(self, c: str, i: int) -> NoReturn:
        mode, stack = self._mode, self._stack
        reason = _EXPECTED[mode]
        if (mode == _KEY and c == "}") or (mode == _VALUE and c == "]" and stack and not stack[-1].is_obj):
            reason = "trailing comma"
        elif c in "NI":
            reason = "NaN and Infinity are not JSON"
        raise InvalidJSON(f"unexpected {c!r}", position=self._base + i, reason=reason)

    def _value_path(self) -> JsonPath:
        """Path of the value starting now (the current member or next array element); events only."""
        if not self._stack:
            return ()
        f = self._stack[-1]
        return (*f.path, f.key) if f.is_obj else (*f.path, len(f.container))

    def _open_path(self) -> JsonPath | None:
        """Path of the innermost value being received (``None`` before anything started)."""
        stack = self._stack
        path: list[str | int] = [f.step for f in stack[1:]]
        if self._mode in (_STRING, _NUMBER_TOKEN, _LITERAL):
            if stack:
                f = stack[-1]
                path.append(f.key if f.is_obj else len(f.container))
            return tuple(path)
        return tuple(path) if stack else None

    def _complete(self, value: Any) -> None:
        """A scalar value is complete: attach it to its parent and move on."""
        stack = self._stack
        if self._events:
            path = self._spath if self._mode == _STRING else self._value_path()
            self._out.append(ValueComplete(path, value))
        if not stack:
            self._root, self._mode = value, _END
            return
        f = stack[-1]
        if f.is_obj:
            f.container[f.key] = value
            self._mode = _AFTER_OBJ
        else:
            f.container.append(value)
            self._mode = _AFTER_ARR

    # -- structure ---------------------------------------------------------------------------------

    def _push(self, container: Any, is_obj: bool, i: int) -> int:
        stack = self._stack
        if self.max_depth is not None and len(stack) >= self.max_depth:
            raise LimitExceeded(
                f"JSON nesting deeper than {self.max_depth}", limit="max_depth", value=self.max_depth
            )
        # A path costs its depth to build: it is built only for the events.
        path = self._value_path() if self._events else ()
        step: str | int = ""
        if stack:
            parent = stack[-1]
            if parent.is_obj:
                step = parent.key
                parent.container[step] = container
            else:
                step = len(parent.container)
                parent.container.append(container)
        else:
            self._root = container
        stack.append(_Frame(container, is_obj, step, path))
        self._mode = _KEY_OR_CLOSE if is_obj else _VALUE_OR_CLOSE
        if self._events:
            self._out.append(ContainerStart(path, "object" if is_obj else "array"))
        return i + 1

    def _open_object(self, text: str, i: int) -> int:
        return self._open_container(text, i, True)

    def _open_array(self, text: str, i: int) -> int:
        return self._open_container(text, i, False)

    def _open_container(self, text: str, i: int, is_obj: bool) -> int:
        """``{`` or ``[`` at ``i``: read a whole container in C, carry a cut one, else open it here."""
        if self._scan is not None and len(self._stack) < _SCAN_DEPTH:
            j = self._scan_whole(text, i)
            if j > i:
                return j
            if self._carries(text, i):
                self._carry = text[i:]
                return len(text)
        return self._push({} if is_obj else [], is_obj, i)

    def _carries(self, text: str, i: int) -> bool:
        """Lazy mode: keep the container cut at ``i`` as text (see ``_CARRY_MAX``)? Not with escapes
        in it: the preview's regular expressions are slow on them, the string reader is not."""
        return (
            self._pending is not None
            and not self._descending
            and len(text) - i <= _CARRY_MAX
            and text.find("\\", i) < 0
        )

    def _scan_whole(self, text: str, i: int) -> int:
        """The object or array at ``i`` read by the C scanner if it is whole and valid in ``text``:
        where it ends (else ``i``, and the parser reads it token by token)."""
        try:
            value, j = self._scan(text, i)  # type: ignore[misc]
        except _SCAN_FAILED:
            return i
        if self.max_depth is not None:
            room = self.max_depth - len(self._stack)
            # Brackets counted include those inside strings: a bound, checked exactly when it is not enough.
            if text.count("[", i, j) + text.count("{", i, j) > room and _depth(value) > room:
                return i
        self._complete(value)
        return j

    def _close(self, text: str, i: int) -> int:
        stack = self._stack
        f = stack.pop()
        if self._events:
            self._out.append(ContainerEnd(f.path, f.container))
        if stack:
            self._mode = _AFTER_OBJ if stack[-1].is_obj else _AFTER_ARR
        else:
            self._mode = _END
        return i + 1

    # -- strings -----------------------------------------------------------------------------------

    def _open_string(self, text: str, i: int) -> int:
        if not self._events:
            m = _PLAIN_STRING.match(text, i)
            if m is not None:
                self._complete(m.group(1))
                return m.end()
        self._mode = _STRING
        self._chunks = []
        if self._events:
            self._spath = self._value_path()
            self._out.append(StringStart(self._spath))
        return self._string(text, i + 1)

    def _open_key(self, text: str, i: int) -> int:
        m = _PLAIN_KEY.match(text, i)
        if m is not None:
            self._mode = _KEY_STRING
            self._set_key(m.group(1), self._base + m.end(1))
            if m.group(2) is not None:
                self._mode = _VALUE
            return m.end()
        self._mode = _KEY_STRING
        self._chunks = []
        return self._string(text, i + 1)

    def _string(self, text: str, i: int) -> int:
        """Read string content from ``i``: a bulk run, then whatever stopped it."""
        n = len(text)
        # First the C decoder: the string closes in the text, or the rest is all valid content.
        rest = n - i
        if rest <= _SHORT_REST:  # the rest closed by a quote of our own: one call tells which
            k = n if text.find("\\", n - 6) < 0 else _undecided(text, i)  # a cut escape: kept for later
            try:
                value, end = _scanstring(text[i:k] + '"', 0)
            except ValueError:  # an error: read it step by step, which tells where
                end = -1
            if 0 < end <= k - i:  # its own closing quote is at i + end - 1
                if end > 1:
                    self._piece(value)
                self._end_string(self._base + i + end - 1)
                return i + end
            if end > k - i:
                if value:
                    self._piece(value)
                self._carry = text[k:]
                return n
        elif text.find('"', i) >= 0:
            try:
                value, end = _scanstring(text, i)
            except ValueError:  # not closed in the text (an escaped quote), or an error
                end = -1
            if end > 0:
                if end - 1 > i:
                    self._piece(value)
                self._end_string(self._base + end - 1)
                return end
        j = _STR_RUN.match(text, i).end()  # type: ignore[union-attr]
        if j < n and text[j] == '"':
            if j > i:
                self._piece(_decode(text, i, j))
            self._end_string(self._base + j)
            return j + 1
        if j < n and _PARTIAL_ESCAPE.match(text, j) is None:
            reason = "invalid escape" if text[j] == "\\" else "control character in string"
            raise InvalidJSON(f"unexpected {text[j]!r} in string", position=self._base + j, reason=reason)
        # The text ends inside the string (possibly inside an escape): keep the undecidable tail.
        k = _holdback(text, i, j)
        if k > i:
            self._piece(_decode(text, i, k))
        self._carry = text[k:]
        return n

    def _piece(self, piece: str) -> None:
        self._chunks.append(piece)
        if self._events and self._mode == _STRING:
            self._out.append(StringDelta(self._spath, piece))

    def _end_string(self, position: int) -> None:
        chunks = self._chunks
        value = "".join(chunks) if chunks else ""
        self._chunks = []
        if self._mode == _STRING:
            self._complete(value)
            return
        self._set_key(value, position)

    def _set_key(self, value: str, position: int) -> None:
        """An object key is complete (``position``: its closing quote's)."""
        f = self._stack[-1]
        if self.unique_keys and value in f.container:
            # With the last member winning, a value reported complete would change later.
            raise InvalidJSON(
                f"duplicate key {value[:80]!r}", position=position, reason="duplicate object key"
            )
        f.key = value
        self._mode = _COLON
        if self._events:
            self._out.append(Key((*f.path, value), value))

    def _open_text(self) -> str:
        """The open string's text so far, joined once and cached as a single chunk."""
        chunks = self._chunks
        if len(chunks) > 1:
            chunks[:] = ["".join(chunks)]
        return chunks[0] if chunks else ""

    # -- numbers and literals ----------------------------------------------------------------------

    def _number(self, text: str, i: int) -> int:
        m = _NUMBER.match(text, i)
        if m is not None:
            j = m.end()
            if j < len(text) and text[j] not in _NUMBER_CHARS:
                self._complete(_number_value(m.group()))
                return j
        # The number may continue in the next fragment, or is malformed: read it with the table.
        self._mode = _NUMBER_TOKEN
        self._num_state = _N_START
        self._chunks = []
        return self._number_more(text, i)

    def _number_more(self, text: str, i: int) -> int:
        state, j, n = self._num_state, i, len(text)
        while j < n:
            nxt = _N_NEXT.get((state, _N_CLASS.get(text[j], "")))
            if nxt is None:
                break
            state = nxt
            j += 1
        if j > i:
            self._chunks.append(text[i:j])
        if j == n:
            self._num_state = state
            return n
        if state not in _N_ACCEPT:
            raise InvalidJSON(
                f"unexpected {text[j]!r} in number", position=self._base + j, reason="expected a digit"
            )
        lexeme = "".join(self._chunks)
        self._chunks = []
        self._complete(_number_value(lexeme))
        return j

    def _literal(self, text: str, i: int) -> int:
        word, value = _LITERALS[text[i]]
        if text.startswith(word, i):
            self._complete(value)
            return i + len(word)
        self._mode, self._lit_word, self._lit_value, self._lit_got = _LITERAL, word, value, 0
        return self._literal_more(text, i)

    def _literal_more(self, text: str, i: int) -> int:
        word, got, n = self._lit_word, self._lit_got, len(text)
        while got < len(word) and i < n:
            if text[i] != word[got]:
                raise InvalidJSON(
                    f"unexpected {text[i]!r}", position=self._base + i, reason=f"expected {word!r}"
                )
            got += 1
            i += 1
        self._lit_got = got
        if got == len(word):
            self._complete(self._lit_value)
        return i

    # -- snapshots ---------------------------------------------------------------------------------

    def _build_snapshot(self) -> Any:
        stack, mode = self._stack, self._mode
        tip: Any = _Unknown  # the open string, or a carried container's preview
        if mode == _STRING:
            tip = self._open_text()
        elif self._carry and mode <= _VALUE_OR_CLOSE:
            tip = self._preview_carried(self._carry)
            if tip is _Unknown:
                self._descend()
                return self._build_snapshot()
        if not stack:
            return self._root if tip is _Unknown else tip
        f = stack[-1]
        copy: Any = dict(f.container) if f.is_obj else list(f.container)
        if tip is not _Unknown:
            if f.is_obj:
                copy[f.key] = tip
            else:
                copy.append(tip)
        for parent in reversed(stack[:-1]):
            outer: Any = dict(parent.container) if parent.is_obj else list(parent.container)
            if parent.is_obj:
                outer[parent.key] = copy
            else:
                outer[-1] = copy
            copy = outer
        return copy

    def _preview_carried(self, text: str) -> Any:
        """The preview of a carried object or array: the text cut where the last thing shown ends,
        closed, and read by the C scanner; ``_Unknown`` if the text is anything but a clean prefix
        (it is then read token by token, which tells what is wrong)."""
        n = len(text)
        if text.find("\\") >= 0:  # not carried (see _carries)
            return _Unknown
        # No escapes: every quote opens or closes a string; k is where an unclosed one opens.
        k = text.rfind('"') if text.count('"') % 2 else n
        skeleton = _NOT_BRACKETS.sub("", "".join(text[:k].split('"')[0::2]))
        while "{}" in skeleton or "[]" in skeleton:
            skeleton = skeleton.replace("{}", "").replace("[]", "")
        if not skeleton or "}" in skeleton or "]" in skeleton:
            return _Unknown
        top = skeleton[-1]
        body: str | None
        if k < n:  # it ends inside a string
            before = text[:k].rstrip(_JSON_WS)
            prev = before[-1]
            j = _STR_RUN.match(text, k + 1).end()  # type: ignore[union-attr]
            if j < n and _PARTIAL_ESCAPE.match(text, j) is None:
                return _Unknown
            if (prev == ":" and top == "{") or (prev in "[," and top == "["):  # a value: shown so far
                body = text[: _holdback(text, k + 1, j)] + '"'
            elif prev in "{," and top == "{":  # a key: its member is not shown
                body = _drop_comma(before)
            else:
                return _Unknown
        else:
            body = text.rstrip(_JSON_WS)
            last = body[-1]
            if last == ",":
                body = _drop_comma(body)
            elif last == ":":
                body = self._drop_key(body[:-1].rstrip(_JSON_WS), top)
            elif last == '"':
                r = _string_start(body, len(body) - 1)
                before = body[:r].rstrip(_JSON_WS) if r > 0 else ""
                if before and before[-1] in "{," and top == "{":  # a key without its ':' yet
                    body = self._drop_key(body, top)
            elif last not in "{[}]":  # a number or a literal
                spaced = len(body) < n
                t = len(body.rstrip(_TOKEN_CHARS))
                token = body[t:]
                if token in ("true", "false", "null") or (spaced and _NUMBER.fullmatch(token)):
                    pass  # whole: shown
                elif not spaced and (_number_prefix(token) or _literal_prefix(token)):
                    rest = body[:t].rstrip(_JSON_WS)
                    if rest[-1] == ":":
                        body = self._drop_key(rest[:-1].rstrip(_JSON_WS), top)
                    elif top == "[" and rest[-1] in "[,":
                        body = _drop_comma(rest)
                    else:
                        return _Unknown
                else:
                    return _Unknown
        if body is None:
            return _Unknown
        closed = body + skeleton[::-1].translate(_CLOSERS)
        try:
            value, end = self._scan(closed, 0)  # type: ignore[misc]
        except _SCAN_FAILED:
            return _Unknown
        if end != len(closed):
            return _Unknown
        if self.max_depth is not None:
            room = self.max_depth - len(self._stack)
            if closed.count("[") + closed.count("{") > room and _depth(value) > room:
                return _Unknown
        return value

    def _drop_key(self, text: str, top: str) -> str | None:
        """``text`` (right-stripped, ending with a whole key) without that key and its ','."""
        if top != "{" or not text.endswith('"') or self.unique_keys:  # a duplicate is an error: read it
            return None
        r = _string_start(text, len(text) - 1)
        if r <= 0 or _STR_RUN.match(text, r + 1).end() != len(text) - 1:  # type: ignore[union-attr]
            return None
        before = text[:r].rstrip(_JSON_WS)
        return _drop_comma(before) if before[-1] in "{," else None


# (mode, character class) -> the next mode, or the action that reads a token or changes the nesting.
# A missing pair is invalid JSON.
_VALUE_STARTS: dict[str, _Action] = {
    "{": PartialJSON._open_object,
    "[": PartialJSON._open_array,
    '"': PartialJSON._open_string,
    "num": PartialJSON._number,
    "lit": PartialJSON._literal,
}
_TABLE: dict[tuple[int, str], _Action | int] = {
    **{(_VALUE, cls): action for cls, action in _VALUE_STARTS.items()},
    **{(_VALUE_OR_CLOSE, cls): action for cls, action in _VALUE_STARTS.items()},
    (_VALUE_OR_CLOSE, "]"): PartialJSON._close,
    (_KEY_OR_CLOSE, '"'): PartialJSON._open_key,
    (_KEY_OR_CLOSE, "}"): PartialJSON._close,
    (_KEY, '"'): PartialJSON._open_key,
    (_COLON, ":"): _VALUE,
    (_AFTER_OBJ, ","): _KEY,
    (_AFTER_OBJ, "}"): PartialJSON._close,
    (_AFTER_ARR, ","): _VALUE,
    (_AFTER_ARR, "]"): PartialJSON._close,
}
# Readers of a token that continues from the previous fragment.
_TOKEN_READERS: dict[int, _Action] = {
    _STRING: PartialJSON._string,
    _KEY_STRING: PartialJSON._string,
    _NUMBER_TOKEN: PartialJSON._number_more,
    _LITERAL: PartialJSON._literal_more,
}
