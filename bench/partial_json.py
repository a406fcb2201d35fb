"""Streaming tool arguments: midstream's incremental parser against re-parsing per delta.

Two argument shapes, each at 1 KB, 10 KB, 100 KB and 1 MB, cut into deltas of 4, 16 and 64 bytes:

* ``file-write``: ``{"path", "content"}`` where content is a long code string full of escapes;
* ``test-plan``: a structured plan with thousands of small objects.

For every configuration it reports the total CPU time (``time.process_time``) to process every delta:

* midstream ``PartialJSON.feed`` (events on), alone, with a snapshot after every delta, and with a
  snapshot at 30 Hz (see ``STREAM_BYTES_PER_S``);
* jiter re-parsing the whole buffer after every delta with ``partial_mode=True`` (what the official
  Anthropic and OpenAI SDKs do) and with ``partial_mode="trailing-strings"`` (keeps the open string),
  per delta and at 30 Hz;
* partial-json-parser ``loads`` of the whole buffer per delta and at 30 Hz;
* ijson (yajl2 C backend), push parser, events only (no snapshot exists);
* one ``json.loads`` of the whole document: the floor.

Runs that would take longer than a cap are stopped and extrapolated, marked ``~``: every capped peer
re-reads what came before at each step, so its cost after k steps is fitted as ``a*k + b*k^2`` through
the measured half and whole, and evaluated at the real number of steps.

Run with ``make bench`` or ``python bench/partial_json.py`` (``--quick``: 1 KB to 100 KB only).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ijson  # type: ignore[import-untyped]
import jiter
import partial_json_parser  # type: ignore[import-untyped]

from midstream.core.partial_json import PartialJSON

SIZES = (1_000, 10_000, 100_000, 1_000_000)
DELTAS = (4, 16, 64)
STREAM_BYTES_PER_S = 8_000  # a fast model: ~2,000 tokens/s; 30 Hz -> one snapshot per ~267 bytes
SNAPSHOT_HZ = 30
CAP_S = 4.0  # per measurement, jiter and ijson
CAP_PJP_S = 8.0  # per measurement, partial-json-parser


# -- documents ---------------------------------------------------------------------------------------

_CODE_LINES = (
    "def handler_{i}(request, retries=3):",
    '    """Return the parsed body of request #{i}."""',
    '    path = "C:\\\\data\\\\in_{i}.json"  # Windows path, escaped',
    "    if request.headers.get('x-trace') == \"on\":",
    '        log.info(f"trace {{request.id!r}}\\t→ {i}")',
    "    pattern = re.compile(r'^\\d+\\s*$')",
    "    return {{'status': \"ok\", 'items': [1, 2, 3], 'note': \"naïve café\"}}",
    "",
)


def file_write(size: int) -> str:
    """A file-write call whose JSON text is ``size`` UTF-8 bytes (within a line)."""
    rng = random.Random(1)
    lines: list[str] = []
    budget = size - len('{"path": "src/service/handlers.py", "content": ""}')
    i = 0
    while budget > 0:
        indent = "    " * rng.randint(0, 2)
        line = indent + rng.choice(_CODE_LINES).format(i=i) + "\n"
        budget -= len(json.dumps(line, ensure_ascii=False).encode()) - 2
        lines.append(line)
        i += 1
    return json.dumps({"path": "src/service/handlers.py", "content": "".join(lines)}, ensure_ascii=False)


def test_plan(size: int) -> str:
    """A structured test plan of ``size`` UTF-8 bytes (within one test case)."""
    rng = random.Random(2)
    cases: list[dict[str, object]] = []
    env = {"browser": "chromium", "headless": True}
    head = {"plan": "checkout regression", "version": 3, "environment": env}
    length = len(json.dumps({**head, "cases": []}))
    while length < size:
        n = len(cases)
        case = {
            "id": f"TC-{n:05d}",
            "title": f"Pay by {rng.choice(['card', 'voucher', 'wallet'])} with {rng.randint(1, 9)} items",
            "priority": rng.randint(1, 4),
            "tags": rng.sample(["smoke", "payments", "ui", "api", "slow", "flaky"], 2),
            "steps": [
                {"action": rng.choice(["click", "fill", "expect"]), "target": f"#field-{rng.randint(1, 40)}"}
                for _ in range(rng.randint(1, 3))
            ],
            "automated": rng.random() < 0.7,
            "timeout_s": round(rng.uniform(0.5, 30), 2),
            "owner": None,
        }
        cases.append(case)
        length += len(json.dumps(case)) + 2
    return json.dumps({**head, "cases": cases})


SHAPES: dict[str, Callable[[int], str]] = {"file-write": file_write, "test-plan": test_plan}


def cut(doc: str, delta: int) -> list[str]:
    """``doc`` in pieces of ``delta`` UTF-8 bytes (a character is never split: LLM deltas are text)."""
    pieces: list[str] = []
    start = size = 0
    for i, ch in enumerate(doc):
        size += 1 if ch < "\x80" else len(ch.encode())
        if size >= delta:
            pieces.append(doc[start : i + 1])
            start, size = i + 1, 0
    if start < len(doc):
        pieces.append(doc[start:])
    return pieces


def snapshot_points(pieces: list[str]) -> set[int]:
    """Indices of the deltas after which a 30 Hz display would take a snapshot."""
    every = STREAM_BYTES_PER_S / SNAPSHOT_HZ
    points, seen, due = set(), 0, every
    for i, piece in enumerate(pieces):
        seen += len(piece.encode())
        if seen >= due:
            points.add(i)
            due += every
    points.add(len(pieces) - 1)
    return points


# -- timing ------------------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    extrapolated: bool = False

    def __str__(self) -> str:
        return ("~" if self.extrapolated else "") + _fmt(self.seconds)


def _fmt(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def best_of(run: Callable[[], None], budget: float = 0.3, repeats: int = 7) -> Timing:
    """The fastest of a few runs (fast runs are repeated until ``budget`` seconds are spent)."""
    best = math.inf
    spent = 0.0
    for _ in range(repeats):
        t0 = time.process_time()
        run()
        took = time.process_time() - t0
        best, spent = min(best, took), spent + took
        if spent > budget:
            break
    return Timing(best)


def capped(steps: int, step: Callable[[int], None], cap: float) -> Timing:
    """Run ``step(0..steps-1)``; past ``cap`` seconds stop and extrapolate with a power law."""
    marks: list[tuple[int, float]] = []
    t0 = time.process_time()
    for i in range(steps):
        step(i)
        if i % 32 == 31:
            elapsed = time.process_time() - t0
            marks.append((i + 1, elapsed))
            if elapsed > cap and i + 1 < steps:
                return _extrapolate(marks, steps)
    return Timing(time.process_time() - t0)


def _extrapolate(marks: list[tuple[int, float]], steps: int) -> Timing:
    """Fit cost(k) = a*k + b*k^2 (per-step overhead plus a re-scan of what came before) through the
    measured half and whole, then evaluate it at ``steps``."""
    k, total = marks[-1]
    h, half = min(marks, key=lambda m: abs(m[0] - k / 2))
    if h >= k:
        return Timing(total * (steps / k) ** 2, extrapolated=True)
    b = max((total / k - half / h) / (k - h), 0.0)
    a = max(total / k - b * k, 0.0)
    return Timing(a * steps + b * steps * steps, extrapolated=True)


# -- contenders --------------------------------------------------------------------------------------


def midstream_feed(pieces: list[str], snapshots: set[int] | None = None, every: bool = False) -> None:
    parser = PartialJSON()
    feed, snapshot = parser.feed, parser.snapshot
    if every:
        for piece in pieces:
            feed(piece)
            snapshot()
    elif snapshots:
        for i, piece in enumerate(pieces):
            feed(piece)
            if i in snapshots:
                snapshot()
    else:
        for piece in pieces:
            feed(piece)
    parser.finish()


def reparse(
    parse: Callable[[Any], object], chunks: list[Any], cap: float, points: set[int] | None = None
) -> Timing:
    """Append each delta to a buffer and re-parse the buffer (after every delta, or at ``points``)."""
    buffer = [chunks[0][:0]]

    def step(i: int) -> None:
        buffer[0] += chunks[i]
        if points is None or i in points:
            parse(buffer[0])

    return capped(len(chunks), step, cap)


def jiter_partial(data: bytes) -> object:
    return jiter.from_json(data, partial_mode=True)


def jiter_trailing(data: bytes) -> object:
    return jiter.from_json(data, partial_mode="trailing-strings")


def pjp(text: str) -> object:
    return partial_json_parser.loads(text)


def ijson_events(chunks: list[bytes], cap: float) -> Timing:
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events)

    def step(i: int) -> None:
        parser.send(chunks[i])
        events.clear()

    timing = capped(len(chunks), step, cap)
    if not timing.extrapolated:
        parser.close()
    return timing


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Row:
    shape: str
    size: int
    delta: int
    ms_feed: Timing
    ms_every: Timing
    ms_30hz: Timing
    jiter: Timing
    jiter_30hz: Timing
    jiter_tr: Timing
    jiter_tr_30hz: Timing
    pjp: Timing
    pjp_30hz: Timing
    ijson: Timing
    loads: Timing


def measure(shape: str, size: int, delta: int, doc: str) -> Row:
    pieces = cut(doc, delta)
    chunks = [p.encode() for p in pieces]
    points = snapshot_points(pieces)
    check = PartialJSON()
    for p in pieces:
        check.feed(p)
    assert check.finish() == json.loads(doc)
    return Row(
        shape,
        size,
        delta,
        ms_feed=best_of(lambda: midstream_feed(pieces)),
        ms_every=best_of(lambda: midstream_feed(pieces, every=True), repeats=3),
        ms_30hz=best_of(lambda: midstream_feed(pieces, snapshots=points)),
        jiter=reparse(jiter_partial, chunks, CAP_S),
        jiter_30hz=reparse(jiter_partial, chunks, CAP_S, points),
        jiter_tr=reparse(jiter_trailing, chunks, CAP_S),
        jiter_tr_30hz=reparse(jiter_trailing, chunks, CAP_S, points),
        pjp=reparse(pjp, pieces, CAP_PJP_S),
        pjp_30hz=reparse(pjp, pieces, CAP_PJP_S, points),
        ijson=ijson_events(chunks, CAP_S),
        loads=best_of(lambda: json.loads(doc)),
    )


def _ratio(other: Timing, ours: Timing) -> str:
    r = other.seconds / ours.seconds
    text = f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x"
    return ("~" if other.extrapolated else "") + text


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    out = [title, line, "-" * len(line)]
    out.extend("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(out)


def _label(row: Row, sizes: dict[tuple[str, int], int]) -> list[str]:
    actual = sizes[(row.shape, row.size)]
    size = f"{actual / 1000:,.0f} KB" if actual < 1_000_000 else f"{actual / 1e6:.2f} MB"
    return [row.shape, size, str(row.delta)]


def report(rows: list[Row], sizes: dict[tuple[str, int], int]) -> str:
    every = _table(
        "Process every delta (CPU seconds; ~ = extrapolated past the cap; ratio = peer / midstream feed)",
        [
            "shape",
            "size",
            "Δ B",
            "midstream",
            "jiter partial",
            "ratio",
            "jiter trailing",
            "ratio",
            "partial-json-parser",
            "ratio",
            "ijson (C)",
            "ratio",
            "json.loads x1",
        ],
        [
            [
                *_label(r, sizes),
                str(r.ms_feed),
                str(r.jiter),
                _ratio(r.jiter, r.ms_feed),
                str(r.jiter_tr),
                _ratio(r.jiter_tr, r.ms_feed),
                str(r.pjp),
                _ratio(r.pjp, r.ms_feed),
                str(r.ijson),
                _ratio(r.ijson, r.ms_feed),
                str(r.loads),
            ]
            for r in rows
        ],
    )
    display = _table(
        f"Display: a preview after every delta, and at {SNAPSHOT_HZ} Hz ({STREAM_BYTES_PER_S:,} B/s stream)",
        [
            "shape",
            "size",
            "Δ B",
            "midstream/Δ",
            "jiter/Δ",
            "ratio",
            "midstream 30Hz",
            "jiter 30Hz",
            "ratio",
            "jiter-trailing 30Hz",
            "ratio",
            "p-j-p 30Hz",
            "ratio",
        ],
        [
            [
                *_label(r, sizes),
                str(r.ms_every),
                str(r.jiter),
                _ratio(r.jiter, r.ms_every),
                str(r.ms_30hz),
                str(r.jiter_30hz),
                _ratio(r.jiter_30hz, r.ms_30hz),
                str(r.jiter_tr_30hz),
                _ratio(r.jiter_tr_30hz, r.ms_30hz),
                str(r.pjp_30hz),
                _ratio(r.pjp_30hz, r.ms_30hz),
            ]
            for r in rows
        ],
    )
    return every + "\n\n" + display + "\n\n" + targets(rows, sizes)


def targets(rows: list[Row], sizes: dict[tuple[str, int], int]) -> str:
    lines = ["Targets"]
    by = {(r.shape, r.size, r.delta): r for r in rows}
    for shape in SHAPES:
        r = by.get((shape, 1_000_000, 16))
        if r is not None:
            ratio = r.jiter.seconds / r.ms_feed.seconds
            ok = "ok" if ratio >= 100 else "MISSED"
            lines.append(f"  {shape} 1 MB / 16 B: {ratio:,.0f}x faster than jiter re-parse (>= 100x: {ok})")
    present = sorted({r.size for r in rows})
    small, large = present[0], present[-1]
    for shape in SHAPES:
        for delta in DELTAS:
            a, b = by.get((shape, small, delta)), by.get((shape, large, delta))
            if a is None or b is None or small == large:
                continue
            growth = math.log(b.ms_feed.seconds / a.ms_feed.seconds) / math.log(
                sizes[(shape, large)] / sizes[(shape, small)]
            )
            ok = "ok" if growth <= 1.1 else "MISSED"
            span = f"{small:,} to {large:,} B"
            lines.append(f"  {shape} Δ {delta} B: cost grows as size^{growth:.2f}, {span} (<= 1.1: {ok})")
    for r in rows:
        if r.shape == "file-write":
            ok = "ok" if r.ijson.seconds > r.ms_feed.seconds else "MISSED"
            lines.append(
                f"  file-write {r.size:,} B / {r.delta} B: ijson {r.ijson} vs midstream {r.ms_feed} ({ok})"
            )
    return "\n".join(lines)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--quick", action="store_true", help="1 KB to 100 KB only")
    args = options.parse_args()
    sizes = SIZES[:3] if args.quick else SIZES
    started = time.monotonic()
    rows: list[Row] = []
    actual: dict[tuple[str, int], int] = {}
    versions = f"jiter {getattr(jiter, '__version__', '?')}, ijson {ijson.__version__} ({ijson.backend})"
    print(f"python {sys.version.split()[0]}, {versions}, caps {CAP_S:.0f} s / {CAP_PJP_S:.0f} s", flush=True)
    for shape, make in SHAPES.items():
        for size in sizes:
            doc = make(size)
            actual[(shape, size)] = len(doc.encode())
            for delta in DELTAS:
                rows.append(measure(shape, size, delta, doc))
                print(f"  measured {shape} {size:,} B / {delta} B", file=sys.stderr, flush=True)
    print()
    print(report(rows, actual))
    print(f"\nwall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
