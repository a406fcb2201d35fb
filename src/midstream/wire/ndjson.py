"""Streaming splitters for newline-delimited JSON (Ollama) and JSON-array bodies (Gemini without SSE).

Both are sans-IO: ``feed(bytes) -> list[str]`` returns the complete JSON documents (as text) that the
new bytes finished, ``close()`` the rest. Parsing each document is the dialect's job.
"""

from __future__ import annotations

import codecs

from midstream.errors import LimitExceeded, LocalError

__all__ = ["DEFAULT_MAX_DOCUMENT", "NDJSONSplitter"]

DEFAULT_MAX_DOCUMENT = 32 * 1024 * 1024


class NDJSONSplitter:
    """Splits an NDJSON body into lines. Blank lines are skipped; CRLF is accepted.

    A line longer than ``max_line`` characters raises :class:`~midstream.errors.LimitExceeded`.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_DOCUMENT) -> None:
        self.max_line = max_line
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""
        self._closed = False

    def feed(self, data: bytes) -> list[str]:
        """The complete lines that ``data`` finished."""
        if self._closed:
            raise LocalError("NDJSONSplitter.feed() called after close()")
        return self._split(self._utf8.decode(data))

    def close(self) -> list[str]:
        """End of input: the last line even without its newline."""
        if self._closed:
            return []
        out = self._split(self._utf8.decode(b"", final=True))
        self._closed = True
        last, self._tail = self._tail.strip(), ""
        if last:
            out.append(last)
        return out

    def _split(self, text: str) -> list[str]:
        if not text:
            return []
        lines = (self._tail + text).split("\n")
        self._tail = lines.pop()
        if len(self._tail) > self.max_line:
            raise LimitExceeded(
                f"NDJSON line longer than {self.max_line} characters", limit="max_line", value=self.max_line
            )
        out = []
        for line in lines:
            line = line.strip()
            if len(line) > self.max_line:
                raise LimitExceeded(
                    f"NDJSON line longer than {self.max_line} characters",
                    limit="max_line",
                    value=self.max_line,
                )
            if line:
                out.append(line)
        return out
