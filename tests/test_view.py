"""The live view: healed markdown, tool panels that type out and tick fields, honest endings."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from midstream.cli.view import LiveDisplay, LiveView, play
from midstream.core.toolargs import ToolCallInvalid, ToolInputError
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from midstream.message import Usage
from midstream.metrics import StreamMetrics
from wiresupport import decode_chunks, recorded


def render(view: LiveView, width: int = 90) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(view)
    return out.getvalue()


def feed(view: LiveView, events: list[Event]) -> None:
    for event in events:
        view.feed(event)


START = ResponseStart(provider="anthropic", model="claude-test", id="msg_1")
ARGS = ['{"title": "Rivers"', ', "content": "Rivers begin', " as springs", '", "tags": ["wa', 'ter"]}']


def tool_call(fragments: list[str]) -> list[Event]:
    return [
        BlockStart(index=0, type="tool_call", id="toolu_1", name="save_article"),
        *(ToolArgsDelta(0, f) for f in fragments),
    ]


def test_fields_type_out_and_are_ticked_one_by_one() -> None:
    view = LiveView()
    feed(view, [START, *tool_call(ARGS[:2])])
    screen = render(view)
    assert "save_article" in screen and "toolu_1" in screen
    assert "✓ title" in screen and "Rivers" in screen  # title complete
    assert "… content" in screen and "Rivers begin▌" in screen  # content still typing, cursor at its end
    assert "streaming…" in screen

    feed(view, tool_call(ARGS)[3:4])  # " as springs"
    assert "Rivers begin as springs▌" in render(view)

    feed(view, tool_call(ARGS)[4:5])  # content closed, tags opened
    screen = render(view)
    assert "✓ content" in screen and "Rivers begin as springs" in screen
    assert '… tags    ["wa' in screen  # an array previews from the parser's snapshot

    feed(view, [*tool_call(ARGS)[5:], BlockStop(0, complete=True)])
    screen = render(view)
    assert '✓ tags    ["water"]' in screen
    assert "✓ complete, valid input: ready to run" in screen
    assert "not executed" not in screen


def test_a_call_cut_by_max_tokens_is_not_executed() -> None:
    events = decode_chunks("anthropic", [recorded("anthropic_max_tokens_tool_input_cut.txt")])
    view = LiveView()
    feed(view, events)
    screen = render(view, width=100)
    assert "make_file" in screen
    assert "✓ filename      taxes.txt" in screen
    assert "✗ lines_of_text" in screen  # the cut field is not ticked
    assert "✗ not executed: input truncated" in screen
    assert "truncated (partial output)  stop=max_tokens  in=450 out=124" in screen
    verdict = view.calls[1]
    assert isinstance(verdict, ToolCallInvalid) and verdict.reason == "truncated"


def test_a_verdict_fed_in_replaces_the_views_own() -> None:
    view = LiveView()
    feed(view, [START, *tool_call(ARGS), BlockStop(0, complete=True)])
    assert "ready to run" in render(view)
    view.feed(
        ToolCallInvalid(
            index=0,
            id="toolu_1",
            name="save_article",
            raw="".join(ARGS),
            reason="schema",
            error=ToolInputError("missing required field 'author'"),
        )
    )
    screen = render(view)
    assert "✗ not executed: input fails the tool's schema: missing required field 'author'" in screen


def test_markdown_is_healed_only_while_the_text_streams() -> None:
    view = LiveView()
    feed(
        view,
        [START, BlockStart(index=0, type="text"), TextDelta(0, "Use **bold"), TextDelta(0, " and `code")],
    )
    screen = render(view)
    assert "Use bold and code" in screen
    assert "*" not in screen and "`" not in screen
    view.feed(BlockStop(0, complete=True))
    # Complete text is rendered as received: its unbalanced markers are literal.
    assert "**bold and `code" in render(view)


def test_thinking_text_and_a_completed_ending() -> None:
    view = LiveView()
    end = ResponseEnd(
        stop_reason="end_turn",
        raw_stop_reason="end_turn",
        usage=Usage(input_tokens=12, output_tokens=34),
        terminal="completed",
    )
    feed(
        view,
        [
            START,
            BlockStart(index=0, type="thinking"),
            ThinkingDelta(0, "Think first."),
            BlockStop(0, complete=True),
            BlockStart(index=1, type="text"),
            TextDelta(1, "# Answer\n\nDone."),
            BlockStop(1, complete=True),
            UsageUpdate(Usage(output_tokens=34)),
            end,
        ],
    )
    screen = render(view)
    order = [screen.index(part) for part in ("anthropic · claude-test · msg_1", "Think first.", "Done.")]
    assert order == sorted(order)
    assert "completed  stop=end_turn  in=12 out=34" in screen
    assert "partial" not in screen
    assert view.terminal == "completed"


def test_interrupt_marks_the_output_partial_and_open_calls_not_executed() -> None:
    view = LiveView()
    feed(
        view,
        [START, BlockStart(index=1, type="text"), TextDelta(1, "Saving"), BlockStop(1), *tool_call(ARGS[:2])],
    )
    view.interrupt()
    screen = render(view)
    assert view.terminal == "cancelled"
    assert "cancelled (partial output)" in screen
    assert "✗ not executed: response cancelled" in screen
    assert "✗ content" in screen


def test_metrics_line() -> None:
    view = LiveView()
    view.metrics = StreamMetrics(
        provider="anthropic", ttft=0.212, duration=1.5, bytes=900, chunks=9, events=20, terminal="completed"
    )
    assert "TTFT 212 ms" in render(view, width=200)


def test_long_output_is_cropped_to_its_newest_lines_while_live() -> None:
    view = LiveView(max_height=8)
    lines = "\n\n".join(f"Paragraph number {i}." for i in range(30))
    feed(view, [START, BlockStart(index=0, type="text"), TextDelta(0, lines)])
    screen = render(view).splitlines()
    assert len(screen) <= 8
    assert screen[0].startswith("anthropic · claude-test")  # the header stays
    assert "more lines above" in screen[1]
    assert "Paragraph number 29." in "\n".join(screen)
    assert screen[-1].startswith("streaming…")


def test_display_on_a_pipe_prints_the_final_view_once() -> None:
    out = io.StringIO()
    console = Console(file=out, width=90, color_system=None)
    view = play(
        [
            START,
            BlockStart(index=0, type="text"),
            TextDelta(0, "Hello"),
            BlockStop(0),
            ResponseEnd(stop_reason="end_turn", terminal="completed"),
        ],
        console=console,
    )
    text = out.getvalue()
    assert text.count("Hello") == 1 and "completed" in text
    assert view.max_height is None


def test_display_on_a_terminal_redraws_and_survives_ctrl_c() -> None:
    out = io.StringIO()
    console = Console(file=out, width=90, height=20, force_terminal=True, color_system=None)
    view = LiveView()
    with pytest.raises(KeyboardInterrupt), LiveDisplay(view, console=console, fps=0) as display:
        for event in [START, BlockStart(index=0, type="text"), TextDelta(0, "Half an ans")]:
            display.feed(event)
        assert view.max_height == 19
        raise KeyboardInterrupt
    text = out.getvalue()
    assert text.count("Half an ans") >= 2  # redrawn live, then printed whole
    assert "cancelled (partial output)" in text
    assert "\x1b[?25h" in text  # the cursor is shown again
    assert view.max_height is None


def test_invalid_json_shows_the_raw_text() -> None:
    view = LiveView()
    feed(view, [START, *tool_call(['{"query": "rivers", "limit": 5,}']), BlockStop(0, complete=True)])
    screen = render(view)
    assert '✗ raw {"query": "rivers", "limit": 5,}' in screen
    assert "✗ not executed: invalid JSON" in screen


@pytest.mark.parametrize(
    ("raw", "normalized", "shown"),
    [
        ("STOP", "end_turn", "stop=end_turn (STOP)"),  # Gemini's raw reason, in parentheses
        ("length", "max_tokens", "stop=max_tokens (length)"),
        ("end_turn", "end_turn", "stop=end_turn  "),  # the same: shown once
        (None, "tool_use", "stop=tool_use  "),
    ],
)
def test_the_status_line_shows_the_normalized_stop_reason(
    raw: str | None, normalized: str, shown: str
) -> None:
    view = LiveView()
    end = ResponseEnd(
        stop_reason=normalized,
        raw_stop_reason=raw,
        usage=Usage(input_tokens=3, output_tokens=4),
        terminal="completed",
    )  # type: ignore[arg-type]
    feed(view, [START, BlockStart(index=0, type="text"), TextDelta(0, "hi"), BlockStop(0), end])
    screen = render(view)
    assert shown in screen


# -- the cost of following a stream is linear in its size (work counted, not timed) -------------------


def big_call(content: list[str]) -> list[Event]:
    end = ResponseEnd(stop_reason="tool_use", terminal="completed")
    return [START, *tool_call(content), BlockStop(0, complete=True), end]


def string_field(size: int) -> list[str]:
    return ['{"content": "', *(["x" * 500] * (size // 500)), '"}']


def nested_list(size: int) -> list[str]:
    items = [f'{{"n": {i}, "tag": "t{i}"}}, ' for i in range(size // 24)]
    return ['{"items": [', *items, "0]}"]


def text_answer(size: int) -> list[Event]:
    deltas = [TextDelta(0, "word " * 100) for _ in range(size // 500)]
    return [
        START,
        BlockStart(index=0, type="text"),
        *deltas,
        BlockStop(0),
        ResponseEnd(stop_reason="end_turn", terminal="completed"),
    ]


def follow(events: list[Event], every: int = 16) -> tuple[LiveView, int, str]:
    """Feed the events, drawing the view every ``every`` events as a display would; the final print."""
    view = LiveView(max_height=30)
    for n, event in enumerate(events):
        view.feed(event)
        if n % every == 0:
            render(view)
    view.max_height = None
    final = render(view, width=120)
    return view, view.work, final


@pytest.mark.parametrize(
    "make",
    [lambda n: big_call(string_field(n)), lambda n: big_call(nested_list(n)), text_answer],
    ids=["2 MB string field", "nested list", "text answer"],
)
def test_following_a_stream_costs_work_linear_in_its_size(make: Any) -> None:
    small, large = 128 * 1024, 512 * 1024
    _, work_small, _ = follow(make(small))
    view, work_large, final = follow(make(large))
    assert work_large < 5 * work_small  # 4x the stream, about 4x the work: no quadratic term
    assert work_large < 12 * large
    assert view.terminal == "completed"
    assert "ready to run" in final or "word" in final


def test_a_huge_field_shows_a_bounded_tail_and_its_size() -> None:
    view = LiveView(max_height=40)
    for event in [START, *tool_call(string_field(2 * 1024 * 1024)[:-1])]:
        view.feed(event)
    screen = render(view)
    assert "xxx▌ (2,097,000 chars" in screen  # the tail, the cursor and the size so far
    assert len(screen) < 10_000  # a tail, not two megabytes
