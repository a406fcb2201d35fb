"""The response timeline: its transition table, its endings, and a stateful model check."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from midstream import accumulate
from midstream.errors import TimelineError
from midstream.events import (
    BlockStart,
    BlockStop,
    BlockType,
    CitationDelta,
    Event,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import STOP_REASONS, TERMINALS, StopReason, Terminal, Usage
from midstream.wire.timeline import MAX_HELD, Timeline, terminal_for

P = "prov"
START = ResponseStart(provider=P, model="m", id="r1")
ERROR = StreamError(
    error_kind="overloaded", message="Overloaded", retryable=True, raw={"type": "overloaded_error"}
)

# -- putting a timeline into each state ---------------------------------------------------------------


def in_state(state: str) -> Timeline:
    tl = Timeline(P)
    if state != "idle":
        tl.feed(START)
    if state == "ended":
        tl.feed(ResponseEnd(stop_reason="end_turn"))
    elif state == "failed":
        tl.feed(ERROR)
    assert tl.state == state
    return tl


# One sample event of every kind; deltas target block 0 (opened as the right type where needed).
SAMPLES: dict[str, Event] = {
    "response_start": START,
    "block_start": BlockStart(index=5, type="text"),
    "text_delta": TextDelta(0, "hi"),
    "thinking_delta": ThinkingDelta(0, "hm"),
    "signature_delta": SignatureDelta(0, "sig"),
    "citation_delta": CitationDelta(0, {"url": "u"}),
    "tool_args_delta": ToolArgsDelta(0, '{"a"'),
    "block_stop": BlockStop(0),
    "usage_update": UsageUpdate(Usage(output_tokens=3)),
    "response_end": ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn"),
    "stream_error": ERROR,
    "unknown": Unknown(raw_type="ping", payload={"type": "ping"}),
}
BLOCK_FOR: dict[str, BlockType] = {
    "text_delta": "text",
    "citation_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "thinking",
    "tool_args_delta": "tool_call",
    "block_stop": "text",
}
STATES = ("idle", "streaming", "ended", "failed")

# The whole table, written out: (state, event kind) -> what comes out. Every other pair is rejected.
ACCEPTED: dict[tuple[str, str], Callable[[Event], tuple[list[Event], str]]] = {
    ("idle", "response_start"): lambda e: ([e], "streaming"),
    ("idle", "stream_error"): lambda e: (
        [ResponseStart(provider=P), e, ResponseEnd(stop_reason="error", terminal="failed")],
        "failed",
    ),
    ("idle", "unknown"): lambda e: ([], "idle"),  # held until the start
    ("streaming", "block_start"): lambda e: ([e], "streaming"),
    ("streaming", "text_delta"): lambda e: ([e], "streaming"),
    ("streaming", "thinking_delta"): lambda e: ([e], "streaming"),
    ("streaming", "signature_delta"): lambda e: ([e], "streaming"),
    ("streaming", "citation_delta"): lambda e: ([e], "streaming"),
    ("streaming", "tool_args_delta"): lambda e: ([e], "streaming"),
    ("streaming", "block_stop"): lambda e: ([e], "streaming"),
    ("streaming", "usage_update"): lambda e: ([e], "streaming"),
    ("streaming", "unknown"): lambda e: ([e], "streaming"),
    ("streaming", "response_end"): lambda e: ([e], "ended"),
    ("streaming", "stream_error"): lambda e: (
        [e, ResponseEnd(stop_reason="error", terminal="failed")],
        "failed",
    ),
    ("ended", "unknown"): lambda e: ([], "ended"),
    ("failed", "unknown"): lambda e: ([], "failed"),
    ("failed", "usage_update"): lambda e: ([], "failed"),
    ("failed", "response_end"): lambda e: ([], "failed"),
    ("failed", "stream_error"): lambda e: ([], "failed"),
}
ALL_PAIRS = [(s, k) for s in STATES for k in SAMPLES]
REJECTED = [pair for pair in ALL_PAIRS if pair not in ACCEPTED]


def test_the_table_has_every_kind_and_state() -> None:
    assert len(ALL_PAIRS) == 48
    assert len(REJECTED) == 29


@pytest.mark.parametrize(("state", "kind"), sorted(ACCEPTED))
def test_accepted_transition(state: str, kind: str) -> None:
    tl = in_state(state)
    if state == "streaming" and kind in BLOCK_FOR:
        tl.feed(BlockStart(index=0, type=BLOCK_FOR[kind]))
    event = SAMPLES[kind]
    expected, next_state = ACCEPTED[state, kind](event)
    assert tl.feed(event) == expected
    assert tl.state == next_state


@pytest.mark.parametrize(("state", "kind"), REJECTED)
def test_rejected_transition(state: str, kind: str) -> None:
    tl = in_state(state)
    with pytest.raises(TimelineError) as info:
        tl.feed(SAMPLES[kind])
    assert info.value.state == state
    assert info.value.event_kind == kind
    assert tl.state == state


# -- rejected events inside accepted pairs ------------------------------------------------------------

DELTA_MAKERS: dict[str, Callable[[int], Event]] = {
    "text_delta": lambda i: TextDelta(i, "t"),
    "citation_delta": lambda i: CitationDelta(i, {}),
    "thinking_delta": lambda i: ThinkingDelta(i, "t"),
    "signature_delta": lambda i: SignatureDelta(i, "s"),
    "tool_args_delta": lambda i: ToolArgsDelta(i, "{"),
}
DELTA_KINDS = {kind: make(1) for kind, make in DELTA_MAKERS.items()}
ALLOWED_DELTAS: set[tuple[str, BlockType]] = {
    ("text_delta", "text"),
    ("citation_delta", "text"),
    ("thinking_delta", "thinking"),
    ("signature_delta", "thinking"),
    ("tool_args_delta", "tool_call"),
    ("tool_args_delta", "server_tool"),
}
BLOCK_TYPES: tuple[BlockType, ...] = (
    "text",
    "thinking",
    "redacted_thinking",
    "tool_call",
    "server_tool",
    "unknown",
)


@pytest.mark.parametrize("block_type", BLOCK_TYPES)
@pytest.mark.parametrize("kind", sorted(DELTA_KINDS))
def test_delta_accepted_only_by_its_block_type(kind: str, block_type: BlockType) -> None:
    tl = in_state("streaming")
    tl.feed(BlockStart(index=1, type=block_type))
    delta = DELTA_KINDS[kind]
    if (kind, block_type) in ALLOWED_DELTAS:
        assert tl.feed(delta) == [delta]
    else:
        with pytest.raises(TimelineError) as info:
            tl.feed(delta)
        assert (info.value.state, info.value.event_kind) == ("streaming", kind)
        assert tl.open_blocks == {1: block_type}


@pytest.mark.parametrize("kind", sorted(DELTA_KINDS))
def test_delta_for_a_block_never_opened_is_rejected(kind: str) -> None:
    tl = in_state("streaming")
    tl.feed(BlockStart(index=0, type="text"))
    with pytest.raises(TimelineError) as info:
        tl.feed(DELTA_KINDS[kind])  # index 1
    assert info.value.event_kind == kind


def test_delta_after_its_block_stopped_is_rejected() -> None:
    tl = in_state("streaming")
    tl.feed_all([BlockStart(index=0, type="text"), TextDelta(0, "a"), BlockStop(0)])
    with pytest.raises(TimelineError):
        tl.feed(TextDelta(0, "b"))


def test_block_stop_for_a_block_not_open_is_rejected() -> None:
    tl = in_state("streaming")
    with pytest.raises(TimelineError) as info:
        tl.feed(BlockStop(3))
    assert (info.value.state, info.value.event_kind) == ("streaming", "block_stop")
    tl.feed_all([BlockStart(index=3, type="text"), BlockStop(3)])
    with pytest.raises(TimelineError):
        tl.feed(BlockStop(3))


def test_block_index_cannot_be_reused_even_after_stop() -> None:
    tl = in_state("streaming")
    tl.feed(BlockStart(index=0, type="text"))
    with pytest.raises(TimelineError):
        tl.feed(BlockStart(index=0, type="tool_call"))
    tl.feed(BlockStop(0))
    with pytest.raises(TimelineError) as info:
        tl.feed(BlockStart(index=0, type="text"))
    assert (info.value.state, info.value.event_kind) == ("streaming", "block_start")


def test_blocks_may_interleave() -> None:
    tl = in_state("streaming")
    events: list[Event] = [
        BlockStart(index=0, type="tool_call", id="a", name="f"),
        BlockStart(index=1, type="tool_call", id="b", name="g"),
        ToolArgsDelta(1, "{}"),
        ToolArgsDelta(0, "{}"),
        BlockStop(1),
        BlockStop(0),
    ]
    assert tl.feed_all(events) == events
    assert tl.open_blocks == {}


def test_open_blocks_is_a_copy() -> None:
    tl = in_state("streaming")
    tl.feed(BlockStart(index=2, type="thinking"))
    tl.open_blocks.clear()
    assert tl.open_blocks == {2: "thinking"}


# -- unknown events around the response -------------------------------------------------------------


def test_unknown_before_the_start_is_passed_on_right_after_it() -> None:
    tl = Timeline(P)
    ping, other = Unknown(raw_type="ping", payload={"type": "ping"}), Unknown(raw_type="x", seq=4)
    assert tl.feed(ping) == []
    assert tl.feed(other) == []
    out = tl.feed(START)
    assert out == [START, ping, other]
    assert out[2].seq == 4


def test_unknown_held_before_a_synthesized_start_follows_it() -> None:
    tl = Timeline(P)
    tl.feed(Unknown(raw_type="ping"))
    assert tl.close() == [
        ResponseStart(provider=P),
        Unknown(raw_type="ping"),
        ResponseEnd(terminal="truncated"),
    ]
    tl = Timeline(P)
    tl.feed(Unknown(raw_type="ping"))
    assert tl.feed(ERROR) == [
        ResponseStart(provider=P),
        Unknown(raw_type="ping"),
        ERROR,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]


def test_too_many_unknown_events_before_the_start_is_an_error() -> None:
    tl = Timeline(P)
    for _ in range(MAX_HELD):
        tl.feed(Unknown(raw_type="ping"))
    with pytest.raises(TimelineError) as info:
        tl.feed(Unknown(raw_type="ping"))
    assert (info.value.state, info.value.event_kind) == ("idle", "unknown")


def test_unknown_after_the_end_is_absorbed() -> None:
    tl = in_state("ended")
    assert tl.feed(Unknown(raw_type="late")) == []
    assert tl.close() == []


# -- endings ----------------------------------------------------------------------------------------


def test_eof_while_idle_gives_a_truncated_empty_response() -> None:
    tl = Timeline(P)
    assert tl.close() == [ResponseStart(provider=P), ResponseEnd(terminal="truncated")]
    assert tl.ended
    assert tl.close() == []


def test_eof_closes_open_blocks_incomplete_then_ends_truncated() -> None:
    tl = in_state("streaming")
    tl.feed_all(
        [
            BlockStart(index=0, type="text"),
            BlockStart(index=1, type="tool_call", id="t", name="f"),
            BlockStop(0),
        ]
    )
    tl.feed(BlockStart(index=2, type="thinking"))
    out = tl.close()
    assert out == [
        BlockStop(1, complete=False),
        BlockStop(2, complete=False),
        ResponseEnd(terminal="truncated"),
    ]
    assert [e.kind for e in out].count("response_end") == 1
    assert tl.close() == []
    assert tl.cancel() == []


def test_eof_after_the_end_adds_nothing() -> None:
    assert in_state("ended").close() == []
    assert in_state("failed").close() == []


def test_feed_after_close_is_rejected() -> None:
    tl = in_state("streaming")
    tl.close()
    with pytest.raises(TimelineError) as info:
        tl.feed(BlockStart(index=0, type="text"))
    assert info.value.state == "ended"


def test_response_end_closes_open_blocks_as_incomplete() -> None:
    tl = in_state("streaming")
    tl.feed_all([BlockStart(index=0, type="tool_call", id="t", name="f"), ToolArgsDelta(0, '{"q":"a"}')])
    out = tl.feed(ResponseEnd(stop_reason="max_tokens", raw_stop_reason="max_tokens"))
    assert out == [
        BlockStop(0, complete=False),
        ResponseEnd(stop_reason="max_tokens", raw_stop_reason="max_tokens", terminal="truncated"),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "proposed", "terminal"),
    [
        ("end_turn", "completed", "completed"),
        ("tool_use", "completed", "completed"),
        ("stop_sequence", "completed", "completed"),
        ("pause_turn", "completed", "completed"),
        ("refusal", "completed", "completed"),
        ("content_filter", "completed", "completed"),
        ("other", "completed", "completed"),
        (None, "completed", "completed"),
        ("max_tokens", "completed", "truncated"),
        ("context_window_exceeded", "completed", "truncated"),
        ("error", "completed", "failed"),
        ("end_turn", "truncated", "truncated"),
        ("end_turn", "failed", "failed"),
        ("max_tokens", "cancelled", "cancelled"),
    ],
)
def test_terminal_state_from_stop_reason(
    stop_reason: StopReason | None, proposed: str, terminal: str
) -> None:
    assert terminal_for(stop_reason, proposed) == terminal  # type: ignore[arg-type]
    tl = in_state("streaming")
    [end] = tl.feed(ResponseEnd(stop_reason=stop_reason, terminal=proposed))  # type: ignore[arg-type]
    assert isinstance(end, ResponseEnd)
    assert end.terminal == terminal
    assert end.stop_reason == stop_reason


def test_max_tokens_ends_truncated() -> None:
    tl = in_state("streaming")
    tl.feed_all([BlockStart(index=0, type="text"), TextDelta(0, "cut sh"), BlockStop(0)])
    [end] = tl.feed(
        ResponseEnd(stop_reason="max_tokens", raw_stop_reason="max_tokens", usage=Usage(output_tokens=16))
    )
    assert end == ResponseEnd(
        stop_reason="max_tokens",
        raw_stop_reason="max_tokens",
        usage=Usage(output_tokens=16),
        terminal="truncated",
    )


def test_stream_error_closes_blocks_and_fails_then_absorbs_provider_closing_events() -> None:
    tl = in_state("streaming")
    tl.feed_all(
        [
            BlockStart(index=0, type="text"),
            TextDelta(0, "par"),
            BlockStart(index=1, type="tool_call", id="t", name="f"),
        ]
    )
    error = dataclasses.replace(ERROR, seq=9)
    out = tl.feed(error)
    assert out == [
        BlockStop(0, complete=False),
        BlockStop(1, complete=False),
        error,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]
    assert out[-1].seq == 9
    assert tl.state == "failed"
    assert tl.ended
    # The provider's own closing frames after the error change nothing.
    for late in (
        UsageUpdate(Usage(output_tokens=5)),
        ResponseEnd(stop_reason="end_turn"),
        StreamError(error_kind="server", message="again"),
        Unknown(raw_type="done"),
    ):
        assert tl.feed(late) == []
    assert tl.close() == []
    assert tl.cancel() == []
    # But a new block or delta after the failure is a protocol error.
    with pytest.raises(TimelineError) as info:
        tl.feed(TextDelta(0, "x"))
    assert info.value.state == "failed"


def test_fail_method_ends_failed_once() -> None:
    tl = in_state("streaming")
    tl.feed(BlockStart(index=0, type="text"))
    error = StreamError(error_kind="transport", message="connection reset", retryable=True)
    assert tl.fail(error) == [
        BlockStop(0, complete=False),
        error,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]
    assert tl.fail(error) == []
    assert in_state("ended").fail(error) == []


def test_fail_while_idle_synthesizes_the_start() -> None:
    tl = Timeline(P)
    error = StreamError(error_kind="transport", message="refused")
    assert tl.fail(error) == [
        ResponseStart(provider=P),
        error,
        ResponseEnd(stop_reason="error", terminal="failed"),
    ]


def test_cancel_closes_open_blocks_and_ends_cancelled() -> None:
    tl = in_state("streaming")
    tl.feed_all([BlockStart(index=0, type="text"), BlockStart(index=1, type="tool_call", id="t", name="f")])
    tl.feed(UsageUpdate(Usage(input_tokens=4)))
    out = tl.cancel()
    assert out == [
        BlockStop(0, complete=False),
        BlockStop(1, complete=False),
        ResponseEnd(usage=Usage(input_tokens=4), terminal="cancelled"),
    ]
    assert tl.cancel() == []
    assert tl.close() == []


def test_cancel_while_idle() -> None:
    assert Timeline(P).cancel() == [ResponseStart(provider=P), ResponseEnd(terminal="cancelled")]


def test_cancel_after_the_end_adds_nothing() -> None:
    assert in_state("ended").cancel() == []


# -- usage ------------------------------------------------------------------------------------------


def test_usage_updates_are_merged_into_cumulative_usage() -> None:
    tl = Timeline(P)
    tl.feed(ResponseStart(provider=P, usage=Usage(input_tokens=100, cache_read_tokens=40, output_tokens=1)))
    assert tl.feed(UsageUpdate(Usage(output_tokens=5), seq=3)) == [
        UsageUpdate(Usage(input_tokens=100, output_tokens=5, cache_read_tokens=40))
    ]
    [update] = tl.feed(UsageUpdate(Usage(output_tokens=9, reasoning_tokens=4)))
    assert update == UsageUpdate(
        Usage(input_tokens=100, output_tokens=9, cache_read_tokens=40, reasoning_tokens=4)
    )
    [end] = tl.feed(ResponseEnd(stop_reason="end_turn", usage=Usage(output_tokens=12, cache_write_tokens=7)))
    assert isinstance(end, ResponseEnd)
    assert end.usage == Usage(
        input_tokens=100, output_tokens=12, cache_read_tokens=40, cache_write_tokens=7, reasoning_tokens=4
    )
    assert tl.usage == end.usage


def test_usage_update_keeps_its_seq() -> None:
    tl = in_state("streaming")
    [update] = tl.feed(UsageUpdate(Usage(output_tokens=1), seq=42))
    assert update.seq == 42


def test_response_end_without_usage_carries_the_usage_so_far() -> None:
    tl = in_state("streaming")
    tl.feed(UsageUpdate(Usage(input_tokens=3, output_tokens=2)))
    [end] = tl.feed(ResponseEnd(stop_reason="end_turn"))
    assert isinstance(end, ResponseEnd)
    assert end.usage == Usage(input_tokens=3, output_tokens=2)


def test_eof_and_failure_carry_the_usage_so_far() -> None:
    tl = in_state("streaming")
    tl.feed(UsageUpdate(Usage(input_tokens=3)))
    assert tl.close()[-1] == ResponseEnd(usage=Usage(input_tokens=3), terminal="truncated")
    tl = in_state("streaming")
    tl.feed(UsageUpdate(Usage(output_tokens=8)))
    assert tl.feed(ERROR)[-1] == ResponseEnd(
        stop_reason="error", usage=Usage(output_tokens=8), terminal="failed"
    )


# -- a stateful model check --------------------------------------------------------------------------

INDICES = st.integers(0, 3)
USAGES = st.builds(
    Usage,
    input_tokens=st.none() | st.integers(0, 1000),
    output_tokens=st.none() | st.integers(0, 1000),
    cache_read_tokens=st.none() | st.integers(0, 100),
)
EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(ResponseStart, provider=st.just(P), usage=USAGES),
    st.builds(BlockStart, index=INDICES, type=st.sampled_from(BLOCK_TYPES)),
    st.builds(TextDelta, INDICES, st.just("t")),
    st.builds(ThinkingDelta, INDICES, st.just("h")),
    st.builds(SignatureDelta, INDICES, st.just("s")),
    st.builds(CitationDelta, INDICES, st.just({})),
    st.builds(ToolArgsDelta, INDICES, st.just("{")),
    st.builds(BlockStop, INDICES, st.booleans()),
    st.builds(UsageUpdate, USAGES),
    st.builds(
        ResponseEnd,
        stop_reason=st.none() | st.sampled_from(STOP_REASONS),
        usage=USAGES,
        terminal=st.sampled_from(TERMINALS),
    ),
    st.builds(
        StreamError, error_kind=st.sampled_from(["overloaded", "server", "protocol"]), message=st.just("boom")
    ),
    st.builds(Unknown, raw_type=st.sampled_from(["ping", "x"])),
)


def check_prefix(out: list[Event]) -> None:
    """The grammar of a response, checked independently of the timeline: ``out`` is a valid prefix."""
    open_: dict[int, BlockType] = {}
    seen: set[int] = set()
    cumulative = Usage()
    for i, event in enumerate(out):
        assert (i == 0) == isinstance(event, ResponseStart), f"ResponseStart must be first and only: {out}"
        if isinstance(event, BlockStart):
            assert event.index not in seen
            seen.add(event.index)
            open_[event.index] = event.type
        elif isinstance(event, BlockStop):
            assert open_.pop(event.index, None) is not None
        elif isinstance(event, TextDelta | ThinkingDelta | SignatureDelta | CitationDelta | ToolArgsDelta):
            assert (event.kind, open_.get(event.index)) in ALLOWED_DELTAS
        elif isinstance(event, UsageUpdate):
            # cumulative: a count once known never disappears
            for f in dataclasses.fields(Usage):
                assert getattr(cumulative, f.name) is None or getattr(event.usage, f.name) is not None
            cumulative = event.usage
        elif isinstance(event, StreamError):
            assert not open_, "blocks are closed before the error"
            assert i + 2 == len(out) or i + 1 == len(out)
        elif isinstance(event, ResponseEnd):
            assert i == len(out) - 1, "ResponseEnd is last"
            assert not open_, "no block stays open past the end"
            assert event.terminal in TERMINALS
            if i > 0 and isinstance(out[i - 1], StreamError):
                assert event.terminal == "failed"


def check_complete(out: list[Event]) -> None:
    check_prefix(out)
    assert out and isinstance(out[-1], ResponseEnd)
    assert sum(isinstance(e, ResponseEnd) for e in out) == 1
    message = accumulate(out)
    assert message.terminal == out[-1].terminal
    errors = [e for e in out if isinstance(e, StreamError)]
    assert len(errors) <= 1
    if errors:
        assert message.terminal == "failed"
        assert message.error == errors[0]
    if message.terminal != "completed":
        assert message.partial


class TimelineMachine(RuleBasedStateMachine):
    """Drives a Timeline with arbitrary events and predicts, from a small model, what it must accept."""

    def __init__(self) -> None:
        super().__init__()
        self.tl = Timeline(P)
        self.out: list[Event] = []
        self.done = False
        self.steps = 0
        # the model
        self.state = "idle"
        self.open: dict[int, BlockType] = {}
        self.seen: set[int] = set()

    def _model_accepts(self, event: Event) -> bool:
        if (self.state, event.kind) not in ACCEPTED:
            return False
        if isinstance(event, BlockStart):
            return event.index not in self.seen
        if isinstance(event, BlockStop):
            return event.index in self.open
        if isinstance(event, TextDelta | ThinkingDelta | SignatureDelta | CitationDelta | ToolArgsDelta):
            return (event.kind, self.open.get(event.index)) in ALLOWED_DELTAS
        return True

    def _model_apply(self, event: Event) -> None:
        self.state = ACCEPTED[self.state, event.kind](event)[1]
        if isinstance(event, BlockStart):
            self.seen.add(event.index)
            self.open[event.index] = event.type
        elif isinstance(event, BlockStop):
            del self.open[event.index]
        if self.state in ("ended", "failed"):
            self.open.clear()

    def _feed(self, event: Event) -> None:
        self.steps += 1
        expected = self._model_accepts(event)
        before = (self.tl.state, self.tl.open_blocks, self.tl.usage)
        try:
            produced = self.tl.feed(event)
        except TimelineError as exc:
            assert not expected, f"rejected {event!r} in {before[0]}"
            assert (exc.state, exc.event_kind) == (before[0], event.kind)
            assert (self.tl.state, self.tl.open_blocks, self.tl.usage) == before, (
                "a rejection changes nothing"
            )
            return
        assert expected, f"accepted {event!r} in {before[0]}"
        self._model_apply(event)
        self.out.extend(produced)
        assert self.tl.state == self.state

    @rule(event=EVENTS)
    def feed_anything(self, event: Event) -> None:
        self._feed(event)

    # Plausible events, so that runs get deep into a response and not only rejected at its door.
    @precondition(lambda self: self.state == "idle")
    @rule(usage=USAGES)
    def feed_start(self, usage: Usage) -> None:
        self._feed(ResponseStart(provider=P, usage=usage))

    @precondition(lambda self: self.state == "streaming")
    @rule(index=INDICES, block_type=st.sampled_from(BLOCK_TYPES))
    def feed_block_start(self, index: int, block_type: BlockType) -> None:
        self._feed(BlockStart(index=index, type=block_type))

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def feed_fitting_delta(self, data: st.DataObject) -> None:
        index = data.draw(st.sampled_from(sorted(self.open)))
        fitting = [k for k, t in ALLOWED_DELTAS if t == self.open[index]] or ["text_delta"]
        kind = data.draw(st.sampled_from(sorted(fitting)))
        self._feed(DELTA_MAKERS[kind](index))

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), complete=st.booleans())
    def feed_block_stop(self, data: st.DataObject, complete: bool) -> None:
        self._feed(BlockStop(data.draw(st.sampled_from(sorted(self.open))), complete))

    @precondition(lambda self: self.steps >= 15)
    @rule(
        stop_reason=st.none() | st.sampled_from(STOP_REASONS),
        terminal=st.sampled_from(TERMINALS),
        usage=USAGES,
    )
    def feed_end(self, stop_reason: StopReason | None, terminal: Terminal, usage: Usage) -> None:
        self._feed(ResponseEnd(stop_reason=stop_reason, usage=usage, terminal=terminal))

    @precondition(lambda self: self.steps >= 15)
    @rule()
    def cancel(self) -> None:
        was_ended = self.tl.ended
        produced = self.tl.cancel()
        if was_ended:
            assert produced == []
        else:
            last = produced[-1]
            assert isinstance(last, ResponseEnd)
            assert last.terminal == "cancelled"
            self.state = "ended"
        self.out.extend(produced)
        self.open.clear()

    @precondition(lambda self: self.steps >= 15)
    @rule()
    def close(self) -> None:
        was_ended = self.tl.ended
        produced = self.tl.close()
        if was_ended:
            assert produced == []
        else:
            last = produced[-1]
            assert isinstance(last, ResponseEnd)
            assert last.terminal == "truncated"
            self.state = "ended"
        self.out.extend(produced)
        self.done = True
        self.open.clear()
        assert self.tl.close() == []

    @invariant()
    def well_formed_prefix(self) -> None:
        check_prefix(self.out)
        assert self.tl.open_blocks == self.open
        assert self.tl.ended == (self.state in ("ended", "failed"))
        if self.tl.ended:
            # Once ended (by the provider, an error, cancel or EOF) the output is one complete response,
            # whatever is fed after.
            check_complete(self.out)

    def teardown(self) -> None:
        if not self.done:
            self.out.extend(self.tl.close())
            check_complete(self.out)


TestTimelineMachine = TimelineMachine.TestCase
TestTimelineMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
