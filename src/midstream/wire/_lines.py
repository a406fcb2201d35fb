"""The line buffer under every line-based framer (SSE, Gemini's SSE, NDJSON): bytes in, complete lines out."""

from __future__ import annotations

import codecs

from midstream.errors import LimitExceeded

__all__ = ["LineBuffer"]


class LineBuffer:
    """Bytes -> the text of the lines they completed, for a framer to split and read.

    * UTF-8 is decoded incrementally: a character split across chunks decodes whole, invalid bytes
      become U+FFFD (what the SSE standard says, and what the NDJSON framer does too);
    * ``universal``: CR, LF and CRLF all end a line (SSE), also a CRLF whose LF starts the next chunk;
      otherwise only LF does (NDJSON, whose lines are stripped by their reader);
    * ``bom``: one byte-order mark at the very start is dropped;
    * the unterminated last line is kept in pieces, so that a line trickling in a byte at a time costs
      linear, not quadratic, time, and :meth:`check` bounds it.

    >>> lines = LineBuffer(universal=True, bom=True)
    >>> lines.feed(b"\\xef\\xbb\\xbfdata: a\\r"), lines.feed(b"\\ndata: b"), lines.rest()
    ('data: a\\r', '', 'data: b')
    """

    __slots__ = ("_bom", "_clean", "_skip_lf", "_tail", "_tail_len", "_universal", "_utf8", "idle")

    def __init__(self, *, universal: bool, bom: bool) -> None:
        self._universal = universal
        self._bom = bom  # a byte-order mark may still come
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._clean = True  # the incremental decoder holds no partial character
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next one is its pair
        self._tail: list[str] = []
        self._tail_len = 0
        # Nothing held: no partial line or character, and no BOM or CR-LF pair still to look for. A
        # framer may then read a chunk of whole lines (ending in LF) without this buffer: this buffer
        # would return it as it is (an attribute, not a property: framers read it once per chunk).
        self.idle = not bom

    def feed(self, data: bytes, final: bool = False) -> str:
        """The text of the complete lines ``data`` finished, each with its line end (``""`` if none).

        ``final``: the input ends here (a partial character left becomes U+FFFD); the unterminated last
        line stays for :meth:`rest`.
        """
        text = self._feed(data, final)
        self.idle = not self._tail and self._clean and not self._bom and not self._skip_lf
        return text

    def _feed(self, data: bytes, final: bool) -> str:
        if self._clean and not final:
            try:
                text = data.decode()  # the usual chunk: whole characters only, no decoder state
            except UnicodeDecodeError:
                text = self._decode(data, final)
        else:
            text = self._decode(data, final)
        if self._bom and text:
            self._bom = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return ""
        end = max(text.rfind("\n"), text.rfind("\r")) if self._universal else text.rfind("\n")
        if end < 0:
            self._tail.append(text)
            self._tail_len += len(text)
            return ""
        self._skip_lf = self._universal and text[-1] == "\r"
        complete = text[: end + 1]
        if self._tail:
            complete = "".join(self._tail) + complete
        rest = text[end + 1 :]
        self._tail, self._tail_len = ([rest], len(rest)) if rest else ([], 0)
        return complete

    def check(self, max_line: int, what: str) -> None:
        """Raise :class:`~midstream.errors.LimitExceeded` if the unterminated line is over ``max_line``.

        Called after the complete lines were read, so that their events come first whatever the split.
        """
        if self._tail_len > max_line:
            raise LimitExceeded(f"{what} longer than {max_line} characters", limit="max_line", value=max_line)

    def rest(self) -> str:
        """The unterminated last line (emptied)."""
        tail = "".join(self._tail)
        self._tail, self._tail_len = [], 0
        self.idle = self._clean and not self._bom and not self._skip_lf
        return tail

    def _decode(self, data: bytes, final: bool) -> str:
        text = self._utf8.decode(data, final)
        self._clean = not self._utf8.getstate()[0]
        return text
