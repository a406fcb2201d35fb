"""Every fast path of the decode loop against the general path it short-cuts: same output, same errors.

The decoders take shortcuts for the common case (SSE frames as pairs, deltas passed by the timeline
without a table lookup, the Accumulator's exact-type checks, each dialect's common chunk shape); each
must be invisible. Whole input, byte by byte and random splits are the conformance suites' job; here
the two paths meet on generated input, good and bad.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import Accumulator, Timeline
from midstream.errors import LimitExceeded, RemoteProtocolError
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import Usage
from midstream.wire.sse import SSEDecoder, SSEFrameDecoder
from wiresupport import random_splits

# -- SSE frames as pairs --------------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "data: x",
        "data:y",
        "data",
        "data: ",
        "event: e",
        "event:",
        "id: 1",
        "retry: 5",
        ": comment",
        "",
        "",
        "other: z",
        "data: é",
        "\ufeffdata: bom",
    ]
)
_EOLS = st.sampled_from(["\n", "\r\n", "\r"])


def _run(decoder: Any, chunks: list[bytes]) -> tuple[list[tuple[str, str]], str | None, int | None, str]:
    out: list[Any] = []
    error = ""
    try:
        for chunk in chunks:
            decoder.feed(chunk, out)
        out.extend(decoder.close())
    except LimitExceeded as exc:
        error = str(exc)
    pairs = [item if isinstance(item, tuple) else (item.event, item.data) for item in out]
    return pairs, decoder.last_event_id, decoder.retry, error


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(_LINES, _EOLS), max_size=30), seed=st.integers(0, 2**16))
def test_frame_decoder_gives_the_events_of_the_decoder(lines: list[tuple[str, str]], seed: int) -> None:
    body = "".join(line + eol for line, eol in lines).encode()
    chunks = random_splits(body, random.Random(seed))
    for limits in ({}, {"max_line": 6, "max_event": 8}):
        assert _run(SSEFrameDecoder(**limits), chunks) == _run(SSEDecoder(**limits), chunks)


# -- the timeline's delta shortcut ----------------------------------------------------------------

_BLOCK_TYPES: list[BlockType] = ["text", "thinking", "tool_call", "server_tool", "unknown"]


def _event(draw: Any) -> Event:
    index = draw(st.integers(0, 3))
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return BlockStart(index, draw(st.sampled_from(_BLOCK_TYPES)))
    if choice == 1:
        return BlockStop(index)
    if choice == 2:
        return ResponseStart("p")
    if choice == 3:
        return UsageUpdate(Usage(output_tokens=index))
    if choice == 4:
        return ResponseEnd("end_turn", "end_turn")
    if choice == 5:
        return Unknown("x", None, index=index)
    if choice == 6:
        return ThinkingDelta(index, "t")
    if choice == 7:
        return SignatureDelta(index, "s")
    if choice == 8:
        return ToolArgsDelta(index, "{")
    return TextDelta(index, "a")


@st.composite
def _events(draw: Any) -> list[Event]:
    start: list[Event] = [ResponseStart("p")] if draw(st.booleans()) else []
    return start + [_event(draw) for _ in range(draw(st.integers(0, 40)))]


def _one_by_one(events: list[Event]) -> tuple[list[Event], str]:
    timeline, out = Timeline("p"), []
    try:
        for event in events:
            out.extend(timeline.feed(event))
    except RemoteProtocolError as exc:
        return out, str(exc)
    return out + timeline.close(), ""


def _batched(events: list[Event]) -> tuple[list[Event], str]:
    timeline, out = Timeline("p"), []
    try:
        timeline.feed_all(events, out)
    except RemoteProtocolError as exc:
        return out, str(exc)
    return out + timeline.close(), ""


@settings(max_examples=500, deadline=None)
@given(events=_events())
def test_feed_all_is_feed_one_by_one(events: list[Event]) -> None:
    assert _batched(events) == _one_by_one(events)


@pytest.mark.parametrize("kind", [TextDelta, ThinkingDelta, ToolArgsDelta])
def test_a_delta_for_a_block_of_another_type_is_still_refused(kind: Any) -> None:
    timeline = Timeline("p")
    with pytest.raises(RemoteProtocolError, match="block 0"):
        timeline.feed_all([ResponseStart("p"), BlockStart(0, "unknown"), kind(0, "x")])


# -- the Accumulator's exact-type checks ----------------------------------------------------------


class _MyText(TextDelta):
    """A subclass takes the general path, and folds the same."""


def test_accumulator_folds_subclassed_deltas_like_their_base() -> None:
    plain, sub = Accumulator(), Accumulator()
    head: list[Event] = [ResponseStart("p"), BlockStart(0, "text")]
    for event in [*head, TextDelta(0, "a"), TextDelta(0, "b"), BlockStop(0)]:
        plain.feed(event)
    for event in [*head, _MyText(0, "a"), TextDelta(0, "b"), BlockStop(0)]:
        sub.feed(event)
    assert sub.message == plain.message
