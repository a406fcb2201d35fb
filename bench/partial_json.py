"""Streaming tool arguments: midstream's incremental parser against re-parsing the buffer.

Two argument shapes, each at 1 KB, 10 KB, 100 KB and 1 MB, cut into deltas of 4, 16 and 64 bytes:

* ``file-write``: ``{"path", "content"}`` where content is a long code string full of escapes;
* ``test-plan``: a structured plan with thousands of small objects.

Two display cadences, the same for every contender:

* per delta: a preview after every delta;
* 30 Hz: the deltas arrive at ``STREAM_BYTES_PER_S`` (8,000 B/s: a fast model's ~2,000 tokens/s at
  ~4 bytes a token), and a display repainting at 30 Hz takes a preview after the delta that completes
  each 1/30 s of stream time (every ~267 bytes), and after the last delta.

Every contender runs in the same loop (:func:`drive`): per delta one call that takes the delta, and at
the preview points one call that returns the preview. The contenders:

* midstream ``PartialJSON(events=False)`` with ``snapshot()`` (per delta), and
  ``PartialJSON(events=False, lazy=True)`` (at 30 Hz: the text is parsed when a preview is asked for);
* midstream with its field events on (``PartialJSON()``: every delta parsed on arrival, what
  ``ToolArgs`` does), alone and with a 30 Hz snapshot;
* jiter re-parsing the whole buffer with ``partial_mode=True`` (what the official Anthropic and OpenAI
  SDKs do) and with ``partial_mode="trailing-strings"`` (keeps the open string);
* partial-json-parser ``loads`` of the whole buffer;
* ijson (yajl2 C backend), push parser, events only (no preview exists), per delta;
* one ``json.loads`` of the whole document: the floor.

The re-parsers keep the deltas in a list and join it for each preview (the cheapest way to keep a
growing buffer; the SDKs' ``buffer += delta`` copies the whole buffer at every delta instead).

midstream's previews are honest: an open string shows the text received, a number that may still
grow or a literal not yet whole is absent. jiter's partial mode shows ``12`` while ``123`` arrives.

Time is CPU time (``time.process_time``), the best of up to 30 runs taken in interleaved rounds
(every contender once per round, so a slow spell of a shared machine hits them alike). Runs that
would take longer than a cap are stopped and extrapolated, marked ``~``: every capped peer re-reads
what came before at each preview, so its cost after k steps is fitted as ``a*k + b*k^2`` through the
measured half and whole, and evaluated at the real number of steps.

Run with ``make bench`` or ``python bench/partial_json.py`` (``--quick``: 1 KB to 100 KB only).
``--against REV`` measures the parser of git revision ``REV`` against the working tree's instead, in
the same process and the same interleaved rounds: what a change to the parser gained or lost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


def drive(
    pieces: list[Any],
    on_delta: Callable[[Any], object],
    preview: Callable[[], object],
    points: set[int] | range,
    cap: float,
) -> Timing:
    """The one loop every contender runs in: each delta to ``on_delta``, a ``preview()`` after the
    deltas in ``points``; past ``cap`` seconds stop and extrapolate (see the module's docstring)."""
    marks: list[tuple[int, float]] = []
    steps = len(pieces)
    clock = time.process_time
    t0 = clock()
    for i, piece in enumerate(pieces):
        on_delta(piece)
        if i in points:
            preview()
        if i & 31 == 31:
            elapsed = clock() - t0
            marks.append((i + 1, elapsed))
            if elapsed > cap and i + 1 < steps:
                return _extrapolate(marks, steps)
    return Timing(clock() - t0)


Run = Callable[[], Timing]


def interleaved(runs: dict[str, Run], budget: float = 0.3, rounds: int = 30) -> dict[str, Timing]:
    """The fastest run of each contender over interleaved rounds (each round runs every contender
    once, so a slow spell of a shared machine hits them alike), until each has spent ``budget``
    seconds or ``rounds`` rounds are done; a capped (extrapolated) contender runs once."""
    best: dict[str, Timing] = {}
    spent = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        todo = [
            name
            for name in runs
            if spent[name] < budget and not getattr(best.get(name), "extrapolated", False)
        ]
        if not todo:
            break
        for name in todo:
            timing = runs[name]()
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing
            spent[name] += timing.seconds
    return best


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


def midstream(
    pieces: list[str], points: set[int] | range, parser_class: Any = PartialJSON, **options: Any
) -> Run:
    def run() -> Timing:
        parser = parser_class(**options)
        timing = drive(pieces, parser.feed, parser.snapshot, points, math.inf)
        t0 = time.process_time()
        parser.finish()
        return Timing(timing.seconds + time.process_time() - t0)

    return run


def reparse(parse: Callable[[Any], object], chunks: list[Any], points: set[int] | range, cap: float) -> Run:
    """Keep the deltas; at each preview point parse all of them joined."""

    def run() -> Timing:
        kept: list[Any] = []
        join = chunks[0][:0].join
        return drive(chunks, kept.append, lambda: parse(join(kept)), points, cap)

    return run


def jiter_partial(data: bytes) -> object:
    return jiter.from_json(data, partial_mode=True)


def jiter_trailing(data: bytes) -> object:
    return jiter.from_json(data, partial_mode="trailing-strings")


def pjp(text: str) -> object:
    return partial_json_parser.loads(text)


def ijson_events(chunks: list[bytes], cap: float) -> Run:
    def run() -> Timing:
        events = ijson.sendable_list()
        parser = ijson.basic_parse_coro(events)

        def on_delta(chunk: bytes) -> None:
            parser.send(chunk)
            events.clear()

        timing = drive(chunks, on_delta, events.clear, range(0), cap)
        if not timing.extrapolated:
            parser.close()
        return timing

    return run


def loads_once(doc: str) -> Run:
    def run() -> Timing:
        t0 = time.process_time()
        json.loads(doc)
        return Timing(time.process_time() - t0)

    return run


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Row:
    shape: str
    size: int
    delta: int
    ms_every: Timing  # events off, a snapshot per delta
    ms_30hz: Timing  # events off, lazy, a snapshot at 30 Hz
    ms_events: Timing  # events on, no snapshot
    ms_events_30hz: Timing  # events on, a snapshot at 30 Hz
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
    every = range(len(pieces))
    check = PartialJSON(events=False, lazy=True)
    for p in pieces:
        check.feed(p)
    assert check.finish() == json.loads(doc)
    runs = {
        "ms_every": midstream(pieces, every, events=False),
        "ms_30hz": midstream(pieces, points, events=False, lazy=True),
        "ms_events": midstream(pieces, range(0)),
        "ms_events_30hz": midstream(pieces, points),
        "jiter": reparse(jiter_partial, chunks, every, CAP_S),
        "jiter_30hz": reparse(jiter_partial, chunks, points, CAP_S),
        "jiter_tr": reparse(jiter_trailing, chunks, every, CAP_S),
        "jiter_tr_30hz": reparse(jiter_trailing, chunks, points, CAP_S),
        "pjp": reparse(pjp, pieces, every, CAP_PJP_S),
        "pjp_30hz": reparse(pjp, pieces, points, CAP_PJP_S),
        "ijson": ijson_events(chunks, CAP_S),
        "loads": loads_once(doc),
    }
    return Row(shape, size, delta, **interleaved(runs))


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
        "A preview after every delta (CPU; ~ = extrapolated past the cap; ratio = peer / midstream)",
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
            "json.loads x1",
        ],
        [
            [
                *_label(r, sizes),
                str(r.ms_every),
                str(r.jiter),
                _ratio(r.jiter, r.ms_every),
                str(r.jiter_tr),
                _ratio(r.jiter_tr, r.ms_every),
                str(r.pjp),
                _ratio(r.pjp, r.ms_every),
                str(r.loads),
            ]
            for r in rows
        ],
    )
    display = _table(
        f"A preview at {SNAPSHOT_HZ} Hz ({STREAM_BYTES_PER_S:,} B/s stream; ratio = peer / midstream)",
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
        ],
        [
            [
                *_label(r, sizes),
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
    events = _table(
        "Field events (every delta parsed on arrival, as ToolArgs does): midstream events on, vs ijson",
        ["shape", "size", "Δ B", "events", "+ 30 Hz preview", "ijson (C)", "ratio"],
        [
            [
                *_label(r, sizes),
                str(r.ms_events),
                str(r.ms_events_30hz),
                str(r.ijson),
                _ratio(r.ijson, r.ms_events),
            ]
            for r in rows
        ],
    )
    return every + "\n\n" + display + "\n\n" + events + "\n\n" + targets(rows, sizes)


def targets(rows: list[Row], sizes: dict[tuple[str, int], int]) -> str:
    lines = ["Targets"]
    for mode, ours, theirs in (
        ("per delta", "ms_every", "jiter"),
        (f"at {SNAPSHOT_HZ} Hz", "ms_30hz", "jiter_30hz"),
    ):
        behind = [
            f"{r.shape} {_label(r, sizes)[1]} / {r.delta} B ({_ratio(getattr(r, theirs), getattr(r, ours))})"
            for r in rows
            if getattr(r, theirs).seconds <= getattr(r, ours).seconds
        ]
        verdict = "ok" if not behind else "MISSED: " + ", ".join(behind)
        lines.append(f"  ahead of jiter re-parse {mode} in every row: {verdict}")
    by = {(r.shape, r.size, r.delta): r for r in rows}
    present = sorted({r.size for r in rows})
    small, large = present[0], present[-1]
    for shape in SHAPES:
        for delta in DELTAS:
            a, b = by.get((shape, small, delta)), by.get((shape, large, delta))
            if a is None or b is None or small == large:
                continue
            growth = math.log(b.ms_events.seconds / a.ms_events.seconds) / math.log(
                sizes[(shape, large)] / sizes[(shape, small)]
            )
            ok = "ok" if growth <= 1.1 else "MISSED"
            span = f"{small:,} to {large:,} B"
            lines.append(
                f"  {shape} Δ {delta} B: events cost grows as size^{growth:.2f}, {span} (<= 1.1: {ok})"
            )
    return "\n".join(lines)


def parser_at(revision: str) -> Any:
    """The ``PartialJSON`` class of ``src/midstream/core/partial_json.py`` at git ``revision`` (its
    imports resolve to the working tree's package)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:src/midstream/core/partial_json.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "partial_json_then.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("partial_json_then", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.PartialJSON


def against(revision: str, sizes: tuple[int, ...]) -> None:
    """Print the CPU of the parser at ``revision`` and of the working tree's, side by side."""
    then = parser_at(revision)
    modes = (
        ("events, no preview", {}, "none"),
        ("per delta", {"events": False}, "every"),
        ("lazy, 30 Hz", {"events": False, "lazy": True}, "30 Hz"),
    )
    lines: list[list[str]] = []
    for shape, make in SHAPES.items():
        for size in sizes:
            doc = make(size)
            for delta in DELTAS:
                pieces = cut(doc, delta)
                previews = {"none": range(0), "every": range(len(pieces)), "30 Hz": snapshot_points(pieces)}
                for label, options, when in modes:
                    points = previews[when]
                    best = interleaved(
                        {
                            "then": midstream(pieces, points, then, **options),
                            "now": midstream(pieces, points, **options),
                        }
                    )
                    lines.append(
                        [
                            shape,
                            f"{size:,}",
                            str(delta),
                            label,
                            str(best["then"]),
                            str(best["now"]),
                            _ratio(best["then"], best["now"]),
                        ]
                    )
                print(f"  measured {shape} {size:,} B / {delta} B", file=sys.stderr, flush=True)
    header = ["shape", "size B", "Δ B", "mode", revision, "working tree", "ratio"]
    print(_table(f"PartialJSON at {revision} against the working tree (ratio = then / now)", header, lines))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--quick", action="store_true", help="1 KB to 100 KB only")
    options.add_argument(
        "--against", metavar="REV", help="the parser at git revision REV against the working tree's"
    )
    args = options.parse_args()
    sizes = SIZES[:3] if args.quick else SIZES
    if args.against:
        against(args.against, sizes)
        return
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
