"""The guided tour behind ``midstream demo``: the simulator in-process, the client, the live view.

Four titled steps, each a real streamed request over loopback HTTP to the embedded simulator speaking
Anthropic's Messages API: text with its time to first token; a ``save_article`` call with a ~500-word
argument, streamed buffered and then eager, compared side by side; the same call cut by
``max_tokens``, shown incomplete and not executed; a cancel mid-stream, with the simulator's request
log confirming that generation stopped. A metrics table closes the tour. About 20 seconds at speed 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from midstream.cli.view import LiveDisplay, LiveView
from midstream.client.stream import Client, Stream
from midstream.core.toolargs import ToolCallInvalid, ToolCallReady, ToolFieldComplete, ToolFieldDelta
from midstream.events import TextDelta
from midstream.message import Message
from midstream.metrics import StreamMetrics
from midstream.sim import SimURL, running
from midstream.sim.scenarios import ScenarioBook

__all__ = ["ARTICLE", "run_tour", "tour_book"]

MODEL = "claude-sonnet-4-5"

ARTICLE = """\
Streaming is what makes a language model feel fast. The first words appear a fraction of a second \
after the question, and the rest follows at reading speed. But every frame a client holds while a \
response streams is incomplete, and an agent that acts on what it holds has to know exactly how \
incomplete it is. Text that stops mid-sentence is merely unfinished. A tool call that stops \
mid-argument is a different matter: run it, and the program does something nobody asked for.

Tool arguments arrive as fragments of JSON. A fragment can end inside a string, inside an escape \
sequence, between the two halves of a surrogate pair, or in the middle of a number that is still \
growing. A prefix can even parse: the object with a query and no limit yet is valid JSON, and it is \
still not the call the model is writing. A careful client therefore keeps two things apart. A \
preview shows what has arrived so far, field by field, and says which fields are complete. A \
verdict comes once, when the block closes, after the arguments have been parsed strictly and checked \
against the tool's schema. Only the verdict may drive a side effect.

Responses also end in more ways than one. The model may finish; it may run out of output tokens in \
the middle of a value; the provider may report an overloaded server after half the answer; the \
connection may simply drop. Each of these must end the stream in one honest state, completed, \
truncated, failed or cancelled, and anything but completed must be marked partial so that nobody \
stores it as an answer. A tool call cut by the token budget is never executed, however plausible \
its half-written input looks.

Cancellation deserves the same care. When a user presses stop, closing the view is not enough: the \
connection must close, so that the server notices and stops generating tokens nobody will read, and \
so that no pending tool starts. A client that measures the gap between the cancel and the \
disconnect, and the tokens generated after it, can show that stopping really stops.

Finally, every provider says all of this differently. Anthropic buffers a tool's arguments by \
default and releases each field only once it is whole, unless eager streaming is requested; OpenAI \
sends fragments; Gemini sends whole calls. One typed stream of events over all of them lets the \
rest of the program stay simple: it reads text as it arrives, watches tool fields fill in, and acts \
only on inputs that arrived complete and valid. That is partial safety, and it is what makes \
streaming something an agent can rely on rather than merely something that looks fast.

None of this needs a network to be tested. A simulator that speaks each provider's protocol, with \
realistic pacing, token budgets and injected faults, lets every one of these endings be produced on \
demand, byte for byte, and checked by a test that runs in a second on any laptop.\
"""

_ANSWER = """\
**Partial safety** means never mistaking a partial value for a complete one:

- text is shown as it streams, but marked *partial* until the response ends;
- a tool runs only once its input is **whole and valid**;
- a stream cut short ends `truncated`, `failed` or `cancelled`, never `completed`.
"""

_ESSAY = (
    "Rivers begin as springs and snowmelt high in the hills, gather tributaries as they descend, "
    "carve valleys through rock over thousands of years, and finally slow down across wide plains "
    "before they meet the sea in a delta of sand and silt. Along the way they feed forests, farms and "
    "cities, move more sediment than any wind, and change course whenever a flood finds an easier path."
)

_SAVE_ARTICLE = {
    "name": "save_article",
    "description": "Save an article to the knowledge base.",
    "input_schema": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "content": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "content"],
    },
}


def tour_book() -> ScenarioBook:
    """The scenarios the tour's requests are answered from."""
    article_input = {"title": "Partial safety", "content": ARTICLE, "tags": ["streaming", "agents"]}
    return ScenarioBook.model_validate(
        {
            "scenarios": [
                {
                    "name": "tour-article",
                    "match": {"tools": ["save_article"]},
                    "latency": {"ttft_ms": 350, "tokens_per_second": 160, "jitter": 0.2},
                    "turns": [
                        {
                            "blocks": [
                                {"text": "I'll save the article now."},
                                {"tool_call": {"name": "save_article", "input": article_input}},
                            ]
                        }
                    ],
                },
                {
                    "name": "tour-essay",
                    "match": {"last_user": "(?i)rivers"},
                    "latency": {"ttft_ms": 300, "tokens_per_second": 40, "jitter": 0.2},
                    "turns": [{"blocks": [{"text": _ESSAY}]}],
                },
                {
                    "name": "tour-text",
                    "latency": {"ttft_ms": 450, "tokens_per_second": 45, "jitter": 0.2},
                    "turns": [{"blocks": [{"text": _ANSWER}]}],
                },
            ]
        }
    )


@dataclass
class _Run:
    """What one streamed request of the tour showed."""

    label: str
    view: LiveView
    message: Message
    metrics: StreamMetrics
    first_field_byte: dict[str, float] = field(default_factory=dict)
    field_complete: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None
    verdicts: list[ToolCallReady | ToolCallInvalid] = field(default_factory=list)
    cancelled_at_ms: float | None = None  # on the simulator's clock for this request


def _observe(run: _Run, event: Any, now: float) -> None:
    if isinstance(event, ToolFieldDelta) and len(event.path) == 1:
        run.first_field_byte.setdefault(str(event.path[0]), now)
    elif isinstance(event, ToolFieldComplete) and len(event.path) == 1:
        run.first_field_byte.setdefault(str(event.path[0]), now)
        run.field_complete.setdefault(str(event.path[0]), now)
    elif isinstance(event, ToolCallReady | ToolCallInvalid):
        run.verdicts.append(event)
        if isinstance(event, ToolCallReady):
            run.ready_at = now


def _stream(
    console: Console,
    client: Client,
    label: str,
    prompt: str,
    *,
    url: SimURL | None = None,
    cancel_after_tokens: int | None = None,
    **options: Any,
) -> _Run:
    """One request through the live view, timing each tool field; optionally cancelled midway."""
    view = LiveView()
    start = time.monotonic()
    with client.stream(prompt, model=MODEL, **options) as stream:
        run = _Run(label, view, stream.message, stream.metrics)
        tokens = 0
        with LiveDisplay(view, console=console) as display:
            for event in stream:
                display.feed(event)
                _observe(run, event, time.monotonic() - start)
                tokens += isinstance(event, TextDelta)
                if cancel_after_tokens is not None and tokens == cancel_after_tokens and not stream.done:
                    run.cancelled_at_ms = _cancel(stream, url)
            view.metrics = stream.metrics
        run.message, run.metrics = stream.message, stream.metrics
    return run


def _cancel(stream: Stream, url: SimURL | None) -> float | None:
    """Cancel ``stream``; the moment, in ms on the simulator's clock for this request."""
    record = url.simulator.records[-1] if url is not None and url.simulator.records else None
    at = record.elapsed_ms() if record is not None else None
    stream.cancel()
    return at


def _execute(console: Console, run: _Run) -> None:
    """Run each tool call the way an agent would: only on a ready verdict."""
    for verdict in run.verdicts:
        if isinstance(verdict, ToolCallReady):
            words = len(str(verdict.input.get("content", "")).split())
            console.print(
                f"[green]→ {verdict.name} ran[/]: saved “{escape(str(verdict.input.get('title')))}” "
                f"({words} words)."
            )
        else:
            why = {"truncated": "its input was cut short"}.get(verdict.reason, verdict.reason)
            console.print(f"[red]→ {verdict.name} was not executed[/]: {why}.")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _step(console: Console, number: int, title: str, note: str) -> None:
    console.print()
    console.rule(f"[bold]{number} · {title}[/]", align="left")
    console.print(note, style="dim", highlight=False)


def _text_step(console: Console, client: Client) -> _Run:
    _step(
        console,
        1,
        "Text streaming, and the time to first token",
        "The answer streams as markdown, healed while half-written (no stray ** or `).",
    )
    run = _stream(console, client, "text", "What is partial safety?")
    console.print(f"Time to first token: [bold]{_ms(run.metrics.ttft)}[/]")
    return run


def _article_step(console: Console, client: Client) -> list[_Run]:
    _step(
        console,
        2,
        "A 500-word tool argument: buffered, then eager",
        "Anthropic buffers tool arguments by default and releases each field only once it is whole; "
        "with eager_input_streaming the fields type out as they are generated.",
    )
    runs = []
    for label, eager in (("buffered", False), ("eager", True)):
        console.print(f"[bold]{label}[/]")
        run = _stream(
            console, client, label, "Save the article.", tools=[_SAVE_ARTICLE], eager=eager, max_tokens=2000
        )
        _execute(console, run)
        runs.append(run)
    table = Table(title="Seconds from the request", title_justify="left")
    table.add_column("")
    for run in runs:
        table.add_column(run.label, justify="right")
    rows = [
        ("first argument byte", [r.metrics.time_to_first_tool_byte for r in runs]),
        ("first byte of content", [r.first_field_byte.get("content") for r in runs]),
        ("content complete", [r.field_complete.get("content") for r in runs]),
        ("call ready to run", [r.ready_at for r in runs]),
    ]
    for name, values in rows:
        table.add_row(name, *(_seconds(v) for v in values))
    console.print(table)
    return runs


def _cut_step(console: Console, client: Client) -> _Run:
    _step(
        console,
        3,
        "A tool input cut by max_tokens",
        "The same call, eager, with max_tokens=150: the content stops mid-string. The view marks it "
        "incomplete and the call is not executed.",
    )
    run = _stream(
        console, client, "cut", "Save the article.", tools=[_SAVE_ARTICLE], eager=True, max_tokens=150
    )
    _execute(console, run)
    return run


def _cancel_step(console: Console, client: Client, url: SimURL) -> _Run:
    _step(
        console,
        4,
        "Cancel mid-stream",
        "After 25 tokens the client cancels: the connection closes, and the simulator stops generating.",
    )
    run = _stream(console, client, "cancelled", "Tell me about rivers.", url=url, cancel_after_tokens=25)
    record = _wait_disconnect(url)
    if record is None or not record.disconnected:
        console.print("The response finished before the cancel (the simulator ran too fast to cancel it).")
        return run
    gap = None if run.cancelled_at_ms is None else record.disconnected_ms - run.cancelled_at_ms
    console.print(
        f"Simulator: client disconnected [bold]{'-' if gap is None else f'{gap:.1f} ms'}[/] after cancel(); "
        f"[bold]{record.tokens_generated}[/] tokens generated, "
        f"[bold]{record.tokens_after_disconnect}[/] after the disconnect.",
        highlight=False,
    )
    return run


def _wait_disconnect(url: SimURL, timeout: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        record = url.simulator.records[-1] if url.simulator.records else None
        if record is None or record.disconnected or record.completed or time.monotonic() > deadline:
            return record
        time.sleep(0.005)


def _metrics_table(runs: list[_Run]) -> Table:
    table = Table(title="Metrics (stream.metrics)", title_justify="left")
    names = ("step", "TTFT", "1st tool byte", "gap p50", "gap p95", "total", "bytes", "events", "terminal")
    for name in names:
        table.add_column(name, justify="left" if name in ("step", "terminal") else "right")
    for run in runs:
        m = run.metrics
        table.add_row(
            run.label,
            _ms(m.ttft),
            _ms(m.time_to_first_tool_byte),
            _ms(m.gap_p50),
            _ms(m.gap_p95),
            _seconds(m.duration),
            f"{m.bytes:,}",
            str(m.events),
            str(m.terminal),
        )
    return table


def run_tour(console: Console, *, speed: float = 1.0) -> list[_Run]:
    """Run the whole tour on ``console``; ``speed`` divides every simulated delay."""
    console.print(
        "[bold cyan]midstream demo[/]: a simulated Anthropic endpoint runs inside this process "
        "(no key, no network); every step is a real streamed HTTP request through midstream.Client.",
        highlight=False,
    )
    with running(tour_book(), speed=speed) as url, Client("anthropic", "sim-key", url) as client:
        runs = [_text_step(console, client)]
        runs += _article_step(console, client)
        runs.append(_cut_step(console, client))
        runs.append(_cancel_step(console, client, url))
    console.print()
    console.print(_metrics_table(runs))
    console.print(
        "Every step ended in exactly one honest terminal state; only complete, valid tool input ran.",
        style="bold",
    )
    return runs
