"""The fuzz targets: bytes in, an AssertionError when an invariant breaks, nothing else escapes.

Shared by ``make fuzz`` (``fuzz/run.py``: atheris where it installs, hypothesis otherwise) and by the
short run inside the test suite (``tests/test_fuzz.py``). Every target takes one ``bytes`` input:

* ``decode:<dialect>``: the dialect's decoder, fed whole and in small pieces: only midstream's own
  errors are raised; the events start with one ``ResponseStart`` and end with exactly one
  ``ResponseEnd``; a ``completed`` response has every block complete; the events fold into a Message
  that prints and serializes; both feedings end in the same terminal state;
* ``partial_json``: :class:`~midstream.core.partial_json.PartialJSON` agrees with ``json.loads`` on
  what is valid and on the value, fed whole and in two pieces;
* ``toolargs``: a tool call's arguments in three pieces: a field reported complete never changes, and
  a ready call's input is what a strict parse gives;
* ``journal``: the bytes as a JSON-lines effects journal: reading and checking it raise nothing but
  :class:`~midstream.agent.effects.JournalError`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from midstream import wire
from midstream.agent.effects import JournalError, JsonlJournal, check_journal
from midstream.agent.serialize import usage_to_dict
from midstream.core.accumulate import accumulate
from midstream.core.partial_json import PartialJSON
from midstream.core.toolargs import ToolArgs, ToolCallReady, ToolFieldComplete
from midstream.errors import JSONError, LimitExceeded, RemoteProtocolError
from midstream.events import BlockStop, Event, ResponseEnd, ResponseStart

__all__ = ["MAX_INPUT", "TARGETS", "seeds"]

MAX_INPUT = 8192
"""Longer inputs are cut: the invariants do not need size, and small inputs fuzz faster."""

RECORDED = Path(__file__).resolve().parent.parent.parent / "shared" / "recorded"
CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def _decode(dialect: str, chunks: list[bytes]) -> list[Event]:
    decoder = wire.decoder(dialect)
    events: list[Event] = []
    try:
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
    except RemoteProtocolError:
        pass  # close() below ends the response failed
    events.extend(decoder.close())
    return events


def _check_response(events: list[Event]) -> str:
    assert events and isinstance(events[0], ResponseStart), "the first event is not ResponseStart"
    ends = [e for e in events if isinstance(e, ResponseEnd)]
    assert len(ends) == 1 and events[-1] is ends[0], "not exactly one ResponseEnd, last"
    end = ends[0]
    if end.terminal == "completed":
        cut = [e.index for e in events if isinstance(e, BlockStop) and not e.complete]
        assert not cut, f"completed with incomplete blocks {cut}"
    message = accumulate(events)
    assert message.terminal == end.terminal
    if message.terminal == "completed":
        assert all(block.complete for block in message.blocks), "completed with an incomplete block"
    repr(message)
    json.dumps(usage_to_dict(message.usage))
    return end.terminal


def _decoder_target(dialect: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        data = data[:MAX_INPUT]
        whole = _check_response(_decode(dialect, [data]))
        small = _check_response(_decode(dialect, _pieces(data, 7)))
        # A cut inside a frame may turn "failed" (protocol) into "truncated" when the split decides
        # where the damage is seen; "completed" must not depend on the split.
        assert (whole == "completed") == (small == "completed"), f"{whole} whole, {small} in pieces"

    return target


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _parse(text: str, cut: int, unique_keys: bool = False) -> Any:
    parser = PartialJSON(events=False, unique_keys=unique_keys)
    parser.feed(text[:cut])
    parser.feed(text[cut:])
    return parser.finish()


def partial_json(data: bytes) -> None:
    text = data[:MAX_INPUT].decode("utf-8", "replace")
    try:
        expected: Any = _strict_loads(text)
        valid = True
    except (ValueError, RecursionError):
        valid = False
    for cut in (len(text), len(text) // 2):
        try:
            value = _parse(text, cut)
        except LimitExceeded:
            return  # a bound json.loads does not have (depth, digits)
        except JSONError:
            assert not valid, f"rejected a document json.loads accepts: {text[:80]!r}"
            continue
        assert valid, f"accepted a document json.loads rejects: {text[:80]!r}"
        assert json.dumps(value, sort_keys=True) == json.dumps(expected, sort_keys=True)
    for size in (len(text) // 3 + 1, 11):  # thirds, and short pieces that cut strings and escapes
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        reference = _previews(pieces)
        for options in _FAST_MODES:
            assert _previews(pieces, **options) == reference, f"{options} differs on {text[:80]!r}"


_FAST_MODES: tuple[dict[str, Any], ...] = ({"events": False}, {"events": False, "lazy": True})


def _previews(pieces: list[str], **options: Any) -> list[str]:
    """The preview after each piece, then the value (or the error, as type, position and reason):
    every mode of the parser must give the same list."""
    parser = PartialJSON(**options)
    seen: list[str] = []
    try:
        for piece in pieces:
            parser.feed(piece)
            seen.append(_shown(parser.snapshot()))
        seen.append(_shown(parser.finish()))
    except LimitExceeded as exc:
        seen.append(f"limit {exc.limit}")
    except JSONError as exc:
        seen.append(f"{type(exc).__name__} {exc.position} {exc.reason}")
    return seen


def _shown(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:  # nested deeper than repr goes: compared by the outcome only
        return "deep"


def toolargs(data: bytes) -> None:
    text = data[:MAX_INPUT].decode("utf-8", "replace")
    args = ToolArgs(0, id="t", name="f")
    seen: dict[tuple[Any, ...], str] = {}
    third = max(len(text) // 3, 1)
    for piece in (text[:third], text[third : 2 * third], text[2 * third :]):
        for event in args.feed(piece):
            if isinstance(event, ToolFieldComplete):
                value = json.dumps(event.value, sort_keys=True)
                assert seen.setdefault(event.path, value) == value, f"field {event.path} changed"
    (verdict,) = args.stop()
    if isinstance(verdict, ToolCallReady):
        strict = _strict_loads(text) if text.strip() else {}
        assert json.dumps(verdict.input, sort_keys=True) == json.dumps(strict, sort_keys=True)
        for path, value in seen.items():  # what was reported complete is what the call got
            node: Any = verdict.input
            for step in path:
                node = node[step]
            assert json.dumps(node, sort_keys=True) == value


def journal(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "effects.jsonl"
        path.write_bytes(data[:MAX_INPUT])
        with contextlib.suppress(JournalError):
            list(JsonlJournal(path).records())
        check_journal(path)


TARGETS: dict[str, Callable[[bytes], None]] = {
    **{f"decode:{d}": _decoder_target(d) for d in wire.DIALECTS},
    "partial_json": partial_json,
    "toolargs": toolargs,
    "journal": journal,
}


def seeds(target: str) -> list[bytes]:
    """The starting corpus of ``target``: its files under ``fuzz/corpus/<name>/`` and, for a decoder,
    the recorded streams of its provider in ``../shared/recorded`` (when present)."""
    name = target.replace(":", "-")
    out = [p.read_bytes() for p in sorted((CORPUS / name).glob("*")) if p.is_file() and p.name != "README.md"]
    if target.startswith("decode:") and RECORDED.is_dir():
        prefix = target.split(":")[1].replace("-", "_").split("_")[0]
        out += [p.read_bytes()[:MAX_INPUT] for p in sorted(RECORDED.glob(f"{prefix}_*"))]
    return out
