"""Streaming splitters for newline-delimited JSON (Ollama) and JSON-array bodies (Gemini without SSE).

Both are sans-IO: ``feed(bytes) -> list[str]`` returns the complete JSON documents (as text) that the
new bytes finished, ``close()`` the rest. Parsing each document is the dialect's job.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal

from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError
from midstream.wire._lines import LineBuffer

__all__ = ["DEFAULT_MAX_DOCUMENT", "JSONArraySplitter", "NDJSONSplitter"]

DEFAULT_MAX_DOCUMENT = 32 * 1024 * 1024


class NDJSONSplitter:
    """Splits an NDJSON body into lines. Blank lines are skipped; CRLF is accepted.

    A line longer than ``max_line`` characters raises :class:`~midstream.errors.LimitExceeded`: its
    length as received (surrounding whitespace included), which is what a line still arriving is held
    to, so that where the bytes were cut does not decide.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_DOCUMENT) -> None:
        self.max_line = max_line
        self._buffer = LineBuffer(universal=False, bom=False)
        self._closed = False

    def feed(self, data: bytes, out: list[str] | None = None) -> list[str]:
        """The complete lines that ``data`` finished (appended to ``out`` when given).

        If a line breaks the bound, the lines before it are already in ``out`` when it raises.
        """
        if self._closed:
            raise LocalError("NDJSONSplitter.feed() called after close()")
        out = [] if out is None else out
        if self._buffer.idle and data.endswith(b"\n"):
            # Whole lines with nothing held to join them to (how servers flush): no line buffer.
            try:
                text = data.decode()
            except UnicodeDecodeError:
                pass  # the buffer's decoder replaces invalid bytes
            else:
                if text.find("\n") == len(text) - 1:  # one line, the usual chunk
                    if len(text) - 1 > self.max_line:
                        raise self._too_long()
                    line = text.strip()
                    if line:
                        out.append(line)
                    return out
                return self._split(text, out)  # nothing held, so nothing to check after
        self._split(self._buffer.feed(data), out)
        self._buffer.check(self.max_line, "NDJSON line")  # after the complete lines, which come first
        return out

    def close(self) -> list[str]:
        """End of input: the last line even without its newline."""
        if self._closed:
            return []
        out = self._split(self._buffer.feed(b"", final=True), [])
        self._buffer.check(self.max_line, "NDJSON line")
        self._closed = True
        last = self._buffer.rest().strip()
        if last:
            out.append(last)
        return out

    def _split(self, text: str, out: list[str]) -> list[str]:
        if text:
            lines = text.split("\n")
            lines.pop()  # the empty string after the last line end
            for raw in lines:
                if len(raw) > self.max_line:
                    raise self._too_long()
                line = raw.strip()
                if line:
                    out.append(line)
        return out

    def _too_long(self) -> LimitExceeded:
        return LimitExceeded(
            f"NDJSON line longer than {self.max_line} characters", limit="max_line", value=self.max_line
        )


# Where a JSONArraySplitter is between documents. "inside" means scanning one (see ``_scan_inside``).
_Place = Literal["start", "first", "next", "after", "inside", "done"]

# (place, character) -> next place, for the characters allowed between documents. The characters that
# open a document are not consumed: the scan of the document starts on them.
_BETWEEN: dict[tuple[_Place, str], _Place] = {
    ("start", "["): "first",
    ("start", "{"): "inside",  # a lone object (an error body) instead of an array
    ("first", "{"): "inside",
    ("first", "["): "inside",
    ("first", "]"): "done",
    ("next", "{"): "inside",
    ("next", "["): "inside",
    ("after", ","): "next",
    ("after", "]"): "done",
}
_OPENS_DOCUMENT = frozenset("{[")
_WHERE: dict[_Place, str] = {
    "start": "before the JSON array",
    "first": "after '['",
    "next": "after ','",
    "after": "after an array element",
    "done": "after the end of the JSON body",
}
_SPACE = re.compile(r"[ \t\r\n]*")
_STRUCTURAL = re.compile(r'[{}\[\]"]')
_STRING_SPECIAL = re.compile(r'["\\]')


class JSONArraySplitter:
    """Splits a streamed JSON array body (``[{...}\\n,\\r\\n{...}]``) into its top-level elements.

    ``feed(bytes)`` returns the text of every element the new bytes completed, in order, for any split
    of the input. Elements must be objects or arrays (what streaming APIs send); their inside is only
    scanned for nesting and strings, not validated: parsing each element is the caller's job. A body
    that is a single JSON object instead of an array (an error body such as ``{"error": {...}}``) is
    returned as one element.

    Garbage between elements, a body that does not start with ``[`` or ``{`` and anything but
    whitespace after the end raise :class:`~midstream.errors.RemoteProtocolError`; an element longer
    than ``max_document`` characters raises :class:`~midstream.errors.LimitExceeded`. A body cut short
    is not an error here: :meth:`close` returns nothing for the unfinished element and
    :attr:`finished` stays ``False``.
    """

    def __init__(self, *, max_document: int = DEFAULT_MAX_DOCUMENT) -> None:
        self.max_document = max_document
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._place: _Place = "start"
        self._lone = False  # the body is one object, not an array
        self._buf = ""  # text not yet consumed; while inside an element, it starts with the element
        self._pos = 0  # how far into ``_buf`` the scan got
        # The scanned part of an element still open, moved out of ``_buf`` in pieces so that a long
        # element arriving in many chunks costs linear, not quadratic, time.
        self._done: list[str] = []
        self._done_len = 0
        self._depth = 0
        self._in_string = False
        self._bom_checked = False
        self._closed = False

    @property
    def finished(self) -> bool:
        """True once the closing ``]`` (or the end of a lone object) has been seen."""
        return self._place == "done"

    def feed(self, data: bytes, out: list[str] | None = None) -> list[str]:
        """The elements that ``data`` completed (appended to ``out`` when given).

        If the body breaks the format, the elements before the bad byte are already in ``out`` when
        it raises, whatever the split.
        """
        if self._closed:
            raise LocalError("JSONArraySplitter.feed() called after close()")
        return self.feed_text(self._utf8.decode(data), out)

    def feed_text(self, text: str, out: list[str] | None = None) -> list[str]:
        """Like :meth:`feed` for already decoded text (do not mix the two on one splitter)."""
        if self._closed:
            raise LocalError("JSONArraySplitter.feed_text() called after close()")
        out = [] if out is None else out
        if not self._bom_checked and text:
            self._bom_checked = True
            if text[0] == "\ufeff":
                text = text[1:]
        if not text:
            return out
        self._buf = self._buf + text if self._buf else text
        self._scan(out)
        return out

    def close(self) -> list[str]:
        """End of input: any element the last bytes completed. An unfinished element is dropped."""
        if self._closed:
            return []
        out = self.feed_text(self._utf8.decode(b"", final=True))
        self._closed = True
        self._buf, self._pos = "", 0
        self._done, self._done_len = [], 0
        return out

    def _scan(self, out: list[str]) -> None:
        buf, pos = self._buf, self._pos
        while True:
            if self._place == "inside":
                end, pos = self._scan_inside(buf, pos)
                if end < 0:
                    self._check_size(self._done_len + len(buf))
                    if pos:  # only the text from ``pos`` on is scanned again
                        self._done.append(buf[:pos])
                        self._done_len += pos
                    self._buf, self._pos = buf[pos:], 0
                    return
                self._check_size(self._done_len + end)
                out.append("".join(self._done) + buf[:end] if self._done else buf[:end])
                self._done, self._done_len = [], 0
                self._place = "done" if self._lone else "after"
                buf, pos = buf[end:], 0
                continue
            pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= len(buf):
                self._buf, self._pos = "", 0
                return
            char = buf[pos]
            place = _BETWEEN.get((self._place, char))
            if place is None:
                raise RemoteProtocolError(f"unexpected {char!r} {_WHERE[self._place]} in a JSON array body")
            if place == "inside":
                self._lone = self._place == "start"
                self._depth, self._in_string = 0, False
                buf, pos = buf[pos:], 0
            else:
                pos += 1
            self._place = place

    def _scan_inside(self, buf: str, pos: int) -> tuple[int, int]:
        """Scan an element from ``pos``: ``(end, _)`` once it is complete, else ``(-1, resume_at)``."""
        while True:
            if self._in_string:
                found = _STRING_SPECIAL.search(buf, pos)
                if found is None:
                    return -1, len(buf)
                at = found.start()
                if buf[at] == "\\":
                    if at + 1 >= len(buf):
                        return -1, at  # resume on the backslash once the escaped character arrives
                    pos = at + 2
                    continue
                self._in_string, pos = False, at + 1
                continue
            found = _STRUCTURAL.search(buf, pos)
            if found is None:
                return -1, len(buf)
            char, pos = found.group(), found.end()
            if char == '"':
                self._in_string = True
            elif char in _OPENS_DOCUMENT:
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    return pos, pos

    def _check_size(self, size: int) -> None:
        if size > self.max_document:
            raise LimitExceeded(
                f"JSON array element longer than {self.max_document} characters",
                limit="max_document",
                value=self.max_document,
            )
