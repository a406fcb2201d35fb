"""Server-sent events, as the WHATWG HTML standard defines the ``text/event-stream`` format.

:class:`SSEDecoder` is sans-IO: feed it bytes as they arrive, in any split, and it returns the events
completed so far. It follows the standard's parsing rules:

* lines end in CRLF, LF or CR, also when a CR ends one chunk and its LF starts the next;
* one leading byte-order mark is stripped; UTF-8 split across chunks decodes right (invalid bytes become
  U+FFFD, as the standard says);
* ``:`` starts a comment; ``field: value`` drops one leading space; a line without a colon is a field
  with an empty value;
* several ``data`` lines are joined with LF; an event whose data is empty is not dispatched;
* ``id`` containing NUL is ignored; ``retry`` is used only when it is all ASCII digits;
* an unterminated event at EOF is discarded.

Lines and events are bounded (``max_line``, ``max_event``, in characters): input beyond a bound raises
:class:`~midstream.errors.LimitExceeded` instead of growing memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from midstream.errors import LimitExceeded, LocalError
from midstream.wire._lines import LineBuffer

__all__ = [
    "DEFAULT_MAX_EVENT",
    "DEFAULT_MAX_LINE",
    "SSEDecoder",
    "SSEEvent",
    "SSEFrame",
    "SSEFrameDecoder",
    "encode_sse",
]

DEFAULT_MAX_LINE = 16 * 1024 * 1024
DEFAULT_MAX_EVENT = 32 * 1024 * 1024

T = TypeVar("T")

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``"message"`` by default), data, last event id and retry."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class _SSEParser(Generic[T]):
    """The standard's parsing, whatever a dispatched event becomes (see the two subclasses)."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self._max_line = max_line
        self._max_event = max_event
        self._set_bounds()
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._buffer = LineBuffer(universal=True, bom=True)
        self._closed = False
        self._event_type = ""
        self._data: list[str] = []
        self._size = 0
        # Dispatched events are appended to ``out`` as ``(type, data)`` pairs rather than through
        # :meth:`_emit` (what :class:`SSEFrameDecoder` returns, without a call per event).
        self._pairs = False

    @property
    def max_line(self) -> int:
        """The longest line accepted, in characters."""
        return self._max_line

    @max_line.setter
    def max_line(self, value: int) -> None:
        self._max_line = value
        self._set_bounds()

    @property
    def max_event(self) -> int:
        """The largest event accepted (its data, lines joined), in characters."""
        return self._max_event

    @max_event.setter
    def max_event(self, value: int) -> None:
        self._max_event = value
        self._set_bounds()

    def _set_bounds(self) -> None:
        # The longest values an ordinary event may have within the bounds, read once per chunk
        # (longer ones go line by line, which raises).
        self._max_data = min(self._max_line - 6, self._max_event - 1)
        self._max_type = self._max_line - 7

    def feed(self, data: bytes, out: list[T] | None = None) -> list[T]:
        """Decode ``data``; return the events it completed (appended to ``out`` when given).

        When the input breaks a bound, the events completed before the offending line are already in
        ``out`` when :class:`~midstream.errors.LimitExceeded` is raised, whatever the split.
        """
        if self._closed:
            raise LocalError("SSEDecoder.feed() called after close()")
        out = [] if out is None else out
        buffer = self._buffer
        if buffer.idle and data.endswith(b"\n"):
            # The usual chunk (one or a few whole events, as providers flush them): whole lines, with
            # nothing held to join them to, and nothing left over: the line buffer is not needed.
            try:
                text = data.decode()
            except UnicodeDecodeError:
                pass  # the line buffer's decoder replaces invalid bytes, as the standard says
            else:
                if "\r" not in text:
                    self._events(text, out)
                    return out
        text = buffer.feed(data)
        if text:
            self._complete(text, out)
        buffer.check(self.max_line, "SSE line")  # after the complete lines: theirs come first
        return out

    def close(self) -> list[T]:
        """End of input. An unterminated line and an undispatched event are discarded.

        The standard only processes lines that end in a line break, so a final ``id: x`` without one
        does not change :attr:`last_event_id`, and an event whose blank line never came is dropped.
        """
        if self._closed:
            return []
        out: list[T] = []
        text = self._buffer.feed(b"", final=True)
        if text:
            self._complete(text, out)
        self._buffer.check(self.max_line, "SSE line")
        self._closed = True
        self._buffer.rest()
        self._data, self._event_type, self._size = [], "", 0
        return out

    def _complete(self, text: str, out: list[T]) -> None:
        """Complete lines, each with its line end."""
        if "\r" in text:
            lines = _LINE_END.split(text)
            lines.pop()  # the empty string after the last line end
            self._lines(lines, out)
        else:
            self._events(text, out)

    def _events(self, text: str, out: list[T]) -> None:
        """LF-only lines: each ordinary event (an optional ``event: `` line, one ``data: `` line, a blank
        line) read with two ``find`` calls, anything else line by line up to the end of its event."""
        emit = out.append if self._pairs else None
        find = text.find
        max_data, max_type = self._max_data, self._max_type
        pos, end = 0, len(text)
        while True:
            if not self._data and not self._event_type:  # between events
                while pos < end:
                    # (Slices compared, not startswith: cheaper than a method call on short text.)
                    line_end = find("\n", pos)  # the text ends with a line end: always found
                    if text[pos : pos + 7] == "event: ":
                        event_type = text[pos + 7 : line_end]
                        if len(event_type) > max_type:
                            break
                        head = line_end + 1
                        line_end = find("\n", head)  # -1 at the end of the text: no data line
                    else:
                        head, event_type = pos, ""
                    if (
                        text[head : head + 6] != "data: "
                        or text[line_end + 1 : line_end + 2] != "\n"
                        or line_end - head - 6 > max_data
                    ):
                        break
                    if emit is not None:
                        emit((event_type or "message", text[head + 6 : line_end]))  # type: ignore[arg-type]
                    else:
                        self._emit(event_type or "message", text[head + 6 : line_end], out)
                    pos = line_end + 2
            if pos >= end:
                return
            # Line by line to the end of this event (a blank line), or of the text.
            blank = pos if text[pos] == "\n" else find("\n\n", pos) + 1
            if blank == 0:  # no blank line ahead (find gave -1): the rest
                lines = text[pos:].split("\n")
                lines.pop()  # the empty string after the last line end
                self._lines(lines, out)
                return
            self._lines(text[pos:blank].split("\n"), out)
            pos = blank + 1

    def _lines(self, lines: list[str], out: list[T]) -> None:
        max_line = self.max_line
        for line in lines:
            # The three lines of every ordinary event, inlined: a method call per line is a third
            # of the cost of decoding. Everything else (and an over-long line) takes the full path.
            if not line:
                self._dispatch(out)
            elif line[:6] == "data: " and len(line) <= max_line:
                self._size += len(line) - 5
                if self._size > self.max_event:
                    raise LimitExceeded(
                        f"SSE event larger than {self.max_event} characters",
                        limit="max_event",
                        value=self.max_event,
                    )
                self._data.append(line[6:])
            elif line[:7] == "event: " and len(line) <= max_line:
                self._event_type = line[7:]
            else:
                self._line(line, out)

    def _line(self, line: str, out: list[T]) -> None:
        if not line:
            self._dispatch(out)
            return
        if len(line) > self.max_line:
            raise LimitExceeded(
                f"SSE line longer than {self.max_line} characters", limit="max_line", value=self.max_line
            )
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self.max_event:
                raise LimitExceeded(
                    f"SSE event larger than {self.max_event} characters",
                    limit="max_event",
                    value=self.max_event,
                )
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry = int(value)

    def _dispatch(self, out: list[T]) -> None:
        data, event_type = self._data, self._event_type
        self._data, self._event_type, self._size = [], "", 0
        if data:
            self._emit(event_type or "message", data[0] if len(data) == 1 else "\n".join(data), out)

    def _emit(self, event_type: str, data: str, out: list[T]) -> None:
        raise NotImplementedError


class SSEDecoder(_SSEParser[SSEEvent]):
    """Incremental ``text/event-stream`` decoder: ``feed(bytes) -> list[SSEEvent]``, ``close()``.

    >>> SSEDecoder().feed(b"event: ping\\ndata: {}\\n\\n")
    [SSEEvent(event='ping', data='{}', id=None, retry=None)]
    """

    def _emit(self, event_type: str, data: str, out: list[SSEEvent]) -> None:
        out.append(SSEEvent(event_type, data, self.last_event_id, self.retry))


SSEFrame = tuple[str, str]
"""``(event type, data)`` of one dispatched event, what :class:`SSEFrameDecoder` returns."""


class SSEFrameDecoder(_SSEParser[SSEFrame]):
    """An :class:`SSEDecoder` returning ``(event type, data)`` pairs instead of :class:`SSEEvent` objects.

    The dialect decoders read nothing else of an event; a tuple costs a tenth of a frozen dataclass,
    once per provider event. ``last_event_id`` and ``retry`` are still tracked.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, max_event: int = DEFAULT_MAX_EVENT) -> None:
        super().__init__(max_line=max_line, max_event=max_event)
        self._pairs = True

    def _emit(self, event_type: str, data: str, out: list[SSEFrame]) -> None:
        out.append((event_type, data))


def encode_sse(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
    newline: str = "\n",
) -> bytes:
    """One event in ``text/event-stream`` form, ending with a blank line.

    Multi-line ``data`` becomes several ``data:`` lines (the decoder joins them back with LF).
    ``newline`` may be ``"\\r\\n"`` for servers that frame that way (Gemini).
    """
    if newline not in ("\n", "\r\n", "\r"):
        raise LocalError("newline must be LF, CRLF or CR")
    parts: list[str] = []
    if comment is not None:
        # Split on every line break the decoder knows, or a CR inside a comment would start a field.
        parts.extend(f":{line}" if line.startswith(" ") else f": {line}" for line in _LINE_END.split(comment))
    if event is not None:
        _check_field("event", event)
        parts.append(f"event: {event}")
    if id is not None:
        _check_field("id", id)
        parts.append(f"id: {id}")
    if retry is not None:
        parts.append(f"retry: {int(retry)}")
    if data is not None:
        parts.extend(f"data: {line}" for line in _LINE_END.split(data))
    return (newline.join(parts) + newline + newline).encode()


def _check_field(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise LocalError(f"an SSE {name} cannot contain a line break")
