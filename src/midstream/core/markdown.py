"""Heal half-streamed markdown so that it renders sanely while it is still being written.

A model writes markdown a few characters at a time. Rendered as it stands, a prefix flickers: an open
code fence swallows the rest of the screen as plain text, ``**bold`` shows its asterisks until the
closing pair arrives, a table is a paragraph of pipes until its delimiter row is written, and a lone
``-`` under a line briefly turns that line into a heading. :func:`heal` returns the text with those
loose ends tied for display:

* an open code fence is closed (a half-written closing fence is dropped first);
* in the paragraph being written, open code spans, ``*`` / ``**`` / ``_`` / ``__`` emphasis and
  ``~~`` strikethrough are closed in the right order, and a delimiter run at the very end that closes
  nothing (the first half of a marker still arriving) is dropped; so is an opener with nothing after
  it yet; a link whose URL is still arriving gets its closing parenthesis;
* a table being written gets its header row closed and a delimiter row, and the row in progress is
  closed (an empty one is dropped);
* a last line that is only the start of a list marker, heading or rule (``-``, ``=``, ``#``) is
  dropped, so it cannot turn the line above into a heading.

Only display is at stake, and ``heal`` keeps to it: it drops trailing fragments (markup still
arriving, and trailing space or a lone backslash that would stop a closer from closing) and appends
closers (a table row's closing pipe at the end of its line); the one thing it writes out whole is a
table's delimiter row while that row is being typed. Every word received is kept, in place. Healing
is idempotent (``heal(heal(t)) == heal(t)``) and pure. Use it on text that is still streaming; once
a block is complete, render the text as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["heal"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BLANK = re.compile(r"^\s*$")
# A line that starts a new block: a list item, a block quote or an ATX heading.
_BLOCK_START = re.compile(r"^ {0,3}(?:[-*+][ \t]|\d{1,9}[.)][ \t]|>|#{1,6}(?:[ \t]|$))")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
# The start of a list item, heading or rule with nothing after it yet.
_STUB = re.compile(r"^ {0,3}(?:[-=+*_]{1,2}|#{1,6}|\d{1,9}[.)]?)[ \t]*$")
_DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")
_PARTIAL_DELIMITER = re.compile(r"^\s*\|?[\s:|-]*$")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def heal(text: str) -> str:
    """``text`` with its unfinished markdown closed for display (see the module docstring)."""
    while True:  # each cut may uncover another unfinished fragment
        trimmed = _trim(text)
        if trimmed == text:
            return _close(text)
        text = trimmed


# -- where the end of the text stands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fence:
    char: str
    length: int
    line: int  # where it opened


@dataclass(frozen=True, slots=True)
class _Context:
    """What the end of the text is inside of."""

    lines: list[str]
    fence: _Fence | None
    region: int  # first line of the open block (paragraph, list item, table)
    table: bool
    inline: int | None  # offset where the inline text being written starts; None: no such text


def _context(text: str) -> _Context:
    lines = text.split("\n")
    fence, start = _scan_blocks(lines)
    if fence is not None:
        return _Context(lines, fence, start, False, None)
    region = lines[start:]
    last_start = len(text) - len(lines[-1])
    if _is_table(region):
        last_row = len(region) - 1
        open_row = lines[-1] != "" and last_row != 1 and not _row_complete(lines[-1])
        cell = last_start + lines[-1].rfind("|") + 1 if open_row else None
        return _Context(lines, None, start, True, cell)
    first = start + _inline_start(region)
    offset = sum(len(line) + 1 for line in lines[:first])
    return _Context(lines, None, start, False, min(offset, len(text)))


def _scan_blocks(lines: list[str]) -> tuple[_Fence | None, int]:
    """The fence still open at the end (if any), and the first line of the last open block."""
    fence: _Fence | None = None
    start = 0
    for i, line in enumerate(lines):
        if fence is not None:
            if _closes(line, fence):
                fence, start = None, i + 1
            continue
        match = _FENCE.match(line)
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = _Fence(match.group(1)[0], len(match.group(1)), i)
        elif _BLANK.match(line) and i < len(lines) - 1:
            start = i + 1
    return fence, min(start, len(lines) - 1)


def _closes(line: str, fence: _Fence) -> bool:
    stripped = line.strip()
    run = len(stripped) - len(stripped.lstrip(fence.char))
    return run >= fence.length and run == len(stripped) and len(line) - len(line.lstrip(" ")) <= 3


def _inline_start(region: list[str]) -> int:
    """Index in ``region`` where the inline content being written starts (emphasis cannot cross it)."""
    for i in range(len(region) - 1, -1, -1):
        if _BLOCK_START.match(region[i]):
            return i + 1 if _HEADING.match(region[i]) and i < len(region) - 1 else i
    return 0


# -- the two steps: trim what is still arriving, then close what is open ------------------------------


def _trim(text: str) -> str:
    """``text`` without one trailing fragment that is still arriving (or unchanged if there is none)."""
    ctx = _context(text)
    last = ctx.lines[-1]
    last_start = len(text) - len(last)
    if ctx.fence is not None:
        # A closing fence still being typed ("``" of "```") would show up as a line of code.
        stripped = last.strip()
        typing = stripped and set(stripped) == {ctx.fence.char} and len(last) - len(last.lstrip()) <= 3
        return text[:last_start] if typing and ctx.fence.line < len(ctx.lines) - 1 else text
    if ctx.table:
        is_delimiter_line = len(ctx.lines) - 1 == ctx.region + 1
        if last and not is_delimiter_line and not last.strip().strip("|").strip():
            return text[:last_start]  # a row with no content yet
    elif last and _STUB.match(last):
        return text[:last_start]
    if ctx.inline is None:
        return text
    cut = _inline_cut(text[ctx.inline :])
    return text if cut is None else text[: ctx.inline + cut]


def _close(text: str) -> str:
    ctx = _context(text)
    if ctx.fence is not None:
        closer = ctx.fence.char * ctx.fence.length
        return f"{text}{closer}" if text.endswith("\n") else f"{text}\n{closer}"
    if ctx.table:
        return _close_table(text, ctx)
    return text if ctx.inline is None else text + _inline_closers(text[ctx.inline :])


# -- tables ------------------------------------------------------------------------------------------


def _is_row(line: str) -> bool:
    return line.lstrip().startswith("|")


def _is_table(region: list[str]) -> bool:
    if not region or not _is_row(region[0]):
        return False
    if len(region) == 1 or (len(region) == 2 and region[1] == ""):
        return True  # a header row being written, or written and waiting for its delimiter row
    second = region[1]
    if len(region) == 2:  # the delimiter row being written
        return bool(second.strip()) and bool(_PARTIAL_DELIMITER.match(second))
    return _is_delimiter(second, region[0])


def _cells(row: str) -> list[str]:
    """The cells of a table row: split on pipes that are not escaped, outer pipes removed."""
    body = row.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return re.split(r"(?<!\\)\|", body)


def _is_delimiter(line: str, header: str) -> bool:
    cells = _cells(line)
    return len(cells) == len(_cells(_closed_row(header))) and all(_DELIMITER_CELL.match(c) for c in cells)


def _row_complete(line: str) -> bool:
    stripped = line.rstrip()
    return len(stripped) > 1 and stripped.endswith("|") and not stripped.endswith("\\|")


def _closed_row(line: str) -> str:
    if _row_complete(line):
        return line
    cell = line[line.rfind("|") + 1 :]
    return f"{line.rstrip()}{_inline_closers(cell)} |"


def _close_table(text: str, ctx: _Context) -> str:
    head = ctx.lines[: ctx.region]
    region = ctx.lines[ctx.region :]
    if not region[0].strip():
        return text
    header = _closed_row(region[0])
    width = len(_cells(header))
    if len(region) == 1 or (len(region) == 2 and region[1] == ""):
        rows = [header, "|" + " --- |" * width]
    elif len(region) == 2:
        delimiter = region[1]
        if not (_row_complete(delimiter) and _is_delimiter(delimiter, header)):
            typed = [c.strip() for c in _cells(delimiter) if _DELIMITER_CELL.match(c)][:width]
            delimiter = "| " + " | ".join(typed + ["---"] * (width - len(typed))) + " |"
        rows = [header, delimiter]
    else:
        last = region[-1]
        rows = [header, *region[1:-1], _closed_row(last) if last else last]
    return "\n".join([*head, *rows])


# -- inline ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    char: str
    length: int
    pos: int


def _flanking(prev: str, nxt: str) -> tuple[bool, bool, bool, bool]:
    """Left- and right-flanking (CommonMark) of a delimiter run between ``prev`` and ``nxt``, and
    whether each neighbour is punctuation."""
    prev_space, next_space = prev == "" or prev.isspace(), nxt == "" or nxt.isspace()
    prev_punct, next_punct = prev in _PUNCTUATION and prev != "", nxt in _PUNCTUATION and nxt != ""
    left = not next_space and (not next_punct or prev_space or prev_punct)
    right = not prev_space and (not prev_punct or next_space or next_punct)
    return left, right, prev_punct, next_punct


def _can_open_close(char: str, prev: str, nxt: str) -> tuple[bool, bool]:
    left, right, prev_punct, next_punct = _flanking(prev, nxt)
    if char == "_":  # no intraword emphasis with underscores (snake_case stays literal)
        return left and (not right or prev_punct), right and (not left or next_punct)
    return left, right


class _InlineScan:
    """One pass over the inline text being written; remembers what is still open at its end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack: list[_Open] = []
        self.code: _Open | None = None
        self.link_url = False  # inside the "(...)" of a link whose ")" has not come
        self.dangling: int | None = None  # start of a trailing marker that closed nothing
        self._run()

    def _run(self) -> None:
        text, i = self.text, 0
        while i < len(text):
            c = text[i]
            if self.code is not None:
                i = self._in_code(i)
            elif c == "\\":
                if i + 1 == len(text):
                    self.dangling = i  # an escape still arriving: it would swallow a closer
                i += 2 if i + 1 < len(text) and text[i + 1] in _PUNCTUATION else 1
            elif c == "`":
                i = self._backticks(i)
            elif c in "*_~":
                i = self._delimiters(i)
            else:
                if text.startswith("](", i):
                    self.link_url, i = True, i + 1
                elif c == ")":
                    self.link_url = False
                i += 1

    def _run_end(self, i: int) -> int:
        end = i
        while end < len(self.text) and self.text[end] == self.text[i]:
            end += 1
        return end

    def _in_code(self, i: int) -> int:
        assert self.code is not None
        if self.text[i] != "`":
            return i + 1
        end = self._run_end(i)
        if end - i == self.code.length:
            self.code = None
        return end

    def _backticks(self, i: int) -> int:
        end = self._run_end(i)
        self.code = _Open("`", end - i, i)
        return end

    def _delimiters(self, i: int) -> int:
        text, char = self.text, self.text[i]
        end = self._run_end(i)
        length = end - i
        if char == "~" and length != 2:
            if length == 1 and end == len(text):
                self.dangling = i  # the first half of "~~"
            return end
        prev = text[i - 1] if i > 0 else ""
        nxt = text[end] if end < len(text) else ""
        can_open, can_close = _can_open_close(char, prev, nxt)
        if can_close:
            length = self._close(char, length)
        if length and can_open:
            self.stack.append(_Open(char, min(length, 3), end - length))
        elif length and end == len(text):
            self.dangling = end - length
        return end

    def _close(self, char: str, length: int) -> int:
        """Match a closing run against the innermost opener of its kind; return what is left of it."""
        while length:
            j = next((k for k in range(len(self.stack) - 1, -1, -1) if self.stack[k].char == char), None)
            if j is None:
                return length
            del self.stack[j + 1 :]  # openers inside an emphasis being closed stay literal
            opener = self.stack[j]
            used = min(length, opener.length)
            opener.length -= used
            length -= used
            if opener.length == 0:
                self.stack.pop()
        return 0


def _inline_cut(text: str) -> int | None:
    """Where to cut ``text``: a marker still arriving, an opener with nothing after it yet, or trailing
    space (or a lone backslash) that would keep a closer from closing. None if nothing needs cutting."""
    scan = _InlineScan(text)
    if scan.dangling is not None:
        return scan.dangling
    opener = scan.code or (scan.stack[-1] if scan.stack else None)
    if opener is None:
        return None
    if not text[opener.pos + opener.length :].strip():
        return opener.pos
    stripped = text.rstrip()
    if stripped.endswith("\\") and (len(stripped) - len(stripped.rstrip("\\"))) % 2:
        stripped = stripped[:-1]
    return len(stripped) if len(stripped) < len(text) else None


def _inline_closers(text: str) -> str:
    """What closes the code span, link and emphasis open at the end of ``text``."""
    scan = _InlineScan(text)
    closers = ""
    if scan.code is not None:
        closers = (" " if text.endswith("`") else "") + "`" * scan.code.length
    if scan.link_url:
        closers += ")"
    return closers + "".join(opener.char * opener.length for opener in reversed(scan.stack))
