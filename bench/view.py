"""Following a huge tool-call field live: midstream's LiveView vs re-parsing a snapshot per delta.

Run ``python bench/view.py`` (1, 4 and 16 MB) or ``--quick`` (1 and 4 MB). A tool call streams one
string field (``{"content": "..."}``) and, separately, a nested list (``{"items": [{...}, ...]}``) in
1 KiB fragments, as a provider sends them. Contenders, on the same fragments:

* ``midstream LiveView``: ``LiveView.feed()`` for every event, and a repaint (the view rendered to an
  in-memory console, 100 columns, 40 lines) every 16 events, the way ``LiveDisplay`` throttles to a
  frame rate; then the final print of the whole response;
* ``jiter partial, per delta``: what the anthropic SDK does for ``input_json`` events: the arguments
  so far re-parsed with ``jiter.from_json(..., partial_mode=True)`` after every fragment (parsing
  only, no rendering);
* ``partial-json-parser, per delta``: ``partial_json_parser.loads`` of the arguments so far after every
  fragment (when installed).

A snapshot per delta costs time quadratic in the field's size; the view's work is linear. Peers are
skipped at sizes where one run would exceed a minute (reported as such). Time is ``perf_counter``,
best of 2 runs.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

from rich.console import Console

from midstream.cli.view import LiveView
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, ToolArgsDelta

MB = 1024 * 1024
FRAGMENT = 1024


def fragments(kind: str, size: int) -> list[str]:
    if kind == "string field":
        body = "lorem ipsum " * (size // 12)
        text = '{"content": "' + body + '"}'
    else:
        items = ", ".join(f'{{"n": {i}, "tag": "item {i}"}}' for i in range(size // 26))
        text = '{"items": [' + items + "]}"
    return [text[i : i + FRAGMENT] for i in range(0, len(text), FRAGMENT)]


def events_of(pieces: list[str]) -> list[Event]:
    return [
        ResponseStart(provider="anthropic", model="m", id="msg_1"),
        BlockStart(index=0, type="tool_call", id="toolu_1", name="save"),
        *(ToolArgsDelta(0, piece) for piece in pieces),
        BlockStop(0),
        ResponseEnd(stop_reason="tool_use", terminal="completed"),
    ]


def midstream_view(pieces: list[str]) -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    view = LiveView(max_height=40)
    for n, event in enumerate(events_of(pieces)):
        view.feed(event)
        if n % 16 == 0:
            console.print(view)
    view.max_height = None
    console.print(view)


def jiter_per_delta(pieces: list[str]) -> None:
    import jiter

    so_far = ""
    for piece in pieces:
        so_far += piece
        jiter.from_json(so_far.encode(), partial_mode=True)


def pjp_per_delta(pieces: list[str]) -> None:
    import partial_json_parser

    so_far = ""
    for piece in pieces:
        so_far += piece
        partial_json_parser.loads(so_far)


def best(run: Callable[[list[str]], None], pieces: list[str]) -> float:
    times = []
    for _ in range(2):
        start = time.perf_counter()
        run(pieces)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 and 4 MB only")
    options = parser.parse_args()
    sizes = [1, 4] if options.quick else [1, 4, 16]
    contenders: list[tuple[str, Callable[[list[str]], None]]] = [
        ("midstream LiveView", midstream_view),
        ("jiter partial, per delta", jiter_per_delta),
    ]
    try:
        import partial_json_parser  # noqa: F401

        contenders.append(("partial-json-parser, per delta", pjp_per_delta))
    except ImportError:
        pass
    print("| field | size | " + " | ".join(name for name, _ in contenders) + " |")
    print("|---|---:|" + "---:|" * len(contenders))
    for kind in ("string field", "nested list"):
        last: dict[str, float] = {}
        for size in sizes:
            pieces = fragments(kind, size * MB)
            cells = []
            for name, run in contenders:
                previous = last.get(name)
                # Quadratic peers: 4x the size is about 16x the time; skip what would pass a minute.
                if previous is not None and name != contenders[0][0] and previous * 16 > 60:
                    cells.append("skipped (> 60 s)")
                    last[name] = previous * 16
                    continue
                seconds = best(run, pieces)
                last[name] = seconds
                cells.append(f"{seconds:.2f} s")
            print(f"| {kind} | {size} MB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
