"""Buffered vs eager tool-argument streaming in the example workflows, next to the notes' claims.

Run ``python bench/workflow.py`` (the standard flow twice per configuration and the quick flow) or
``--quick`` (once each, faster). The provider simulator runs in this process and answers with the
example workflows' scenarios (``examples/workflows/``): 80 tokens per second and 400 ms to the first
token, a realistic pace for a large model, with documents of the notes' sizes (architecture 12 KB, code
14-15 KB, test plan 9 KB, manifests 11 KB, the orchestrator's state 3.5-6 KB). To keep the run short the
simulator runs ``--speed`` times faster (4, or 16 with ``--quick``) and every time printed is scaled back
to the scenario's pace; overheads that do not scale (HTTP, parsing) are therefore overstated, never
hidden.

Three configurations of the same workflow, in one process, alternating:

* ``buffered, at end``: no fine-grained streaming (each argument arrives whole, at the end of its
  block) and receivers start when the sender's response has completed, like any tool;
* ``buffered, at validation``: receivers start as soon as the handoff call is complete and valid;
* ``eager, at validation``: midstream's default for these agents (the notes' ``enable_for_agents``).

Per agent that hands a parameter on: its size; when its first byte reached the consumer and when its
last byte did (ms after the call's block started: the metrics file's ``first_byte_ms`` and
``complete_ms``); the metrics file's ``improvement`` (``1 - first / last``) next to the notes' claimed
reduction. Per workflow: the wall time of each configuration and the difference, next to the notes'
"15-25 s faster per standard workflow" and "2-3 s faster per handoff" for the quick flow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from midstream.client.stream import Client
from midstream.sim import ScenarioBook, running
from midstream.workflow import HandoffStart, WorkflowEvent
from midstream.workflow.spec import load_workflow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"
CLAIMS = {  # the notes' "Agent-Specific Performance" table
    "architect": "70-75%",
    "developer": "65-70%",
    "qa": "60-65%",
    "devops": "65-70%",
    "orchestrator": "40-50%",
}
CONFIGS = [
    ("buffered, at end", False, "executed"),
    ("buffered, at validation", False, "validated"),
    ("eager, at validation", True, "validated"),
]


def run_once(name: str, prompt: str, url: str, eager: bool, start: str, speed: float) -> dict[str, Any]:
    spec = load_workflow(EXAMPLES / f"{name}.toml")
    settings = spec.load_settings()
    settings = settings.model_copy(
        update={
            "streaming": settings.streaming.model_copy(update={"enabled": eager}),
            "metrics": settings.metrics.model_copy(update={"file": None, "errors_log": None}),
        }
    )
    starts: dict[str, float] = {}

    def watch(item: WorkflowEvent) -> None:
        if isinstance(item.event, HandoffStart):
            starts.setdefault(item.event.receiver, item.at * speed)

    with Client("anthropic", "sim-key", url, model=spec.model) as client:
        flow = spec.build(client, settings=settings, start_handoffs=start)
        result = flow.run_sync(prompt, on_event=watch)
    if result.terminal != "completed":
        raise SystemExit(f"{name} ended {result.terminal}: {result.reason}")
    calls: dict[str, dict[str, float]] = {}
    for p in result.params:  # each handed-on parameter: first and last byte at the consumer
        if p.first_byte_ms is None or p.complete_ms is None:
            continue
        calls[p.agent] = {
            "bytes": float(p.bytes),
            "first": p.first_byte_ms * speed,
            "last": p.complete_ms * speed,
        }
    return {"seconds": result.seconds * speed, "starts": starts, "params": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per configuration, 16x faster")
    parser.add_argument(
        "--speed", type=float, default=None, help="simulator speed factor (default 4; 16 quick)"
    )
    options = parser.parse_args()
    speed = options.speed or (16.0 if options.quick else 4.0)
    repeats = 1 if options.quick else 2
    print(
        f"simulator at 80 tokens/s, first token 400 ms, run {speed:g}x faster; times scaled back", flush=True
    )
    flows = (("standard", "Build the checkout platform"), ("quick", "Implement the handlers"))
    for name, prompt in flows:
        with running(ScenarioBook.load(EXAMPLES / f"{name}.yaml"), speed=speed) as url:
            report(name, prompt, url, speed, repeats)


def report(name: str, prompt: str, url: str, speed: float, repeats: int) -> None:
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in CONFIGS}
    for _ in range(repeats):
        for label, eager, start in CONFIGS:
            results[label].append(run_once(name, prompt, url, eager, start, speed))
    print(f"\n== {name} flow ({repeats} run(s) per configuration)\n")
    eager_runs = results["eager, at validation"]
    columns = (
        ("param", 9),
        ("last byte", 11),
        ("1st byte eager", 16),
        ("improvement", 13),
        ("notes claim", 13),
    )
    print(f"{'agent':<13}" + "".join(f"{title:>{width}}" for title, width in columns))
    for agent in sorted(eager_runs[0]["params"]):
        size = eager_runs[0]["params"][agent]["bytes"]
        last = statistics.mean(r["params"][agent]["last"] for r in eager_runs)
        first = statistics.mean(r["params"][agent]["first"] for r in eager_runs)
        improvement = statistics.mean(
            1 - r["params"][agent]["first"] / r["params"][agent]["last"] for r in eager_runs
        )
        print(
            f"{agent:<13}{size / 1024:>7.1f}KB{last / 1000:>10.1f}s{first:>14.0f}ms"
            f"{improvement:>12.1%}{CLAIMS.get(agent, '-'):>13}"
        )
    reductions = [
        1 - r["params"][a]["first"] / r["params"][a]["last"] for r in eager_runs for a in r["params"]
    ]
    print(f"{'all':<13}{'':>9}{'':>11}{'':>16}{statistics.mean(reductions):>12.1%}{'67%':>13}")
    print("\nwhen each receiver started (s after the workflow began) and the whole workflow:")
    labels = [label for label, _, _ in CONFIGS]
    print(f"{'':<13}" + "".join(f"{label:>26}" for label in labels))
    receivers = sorted(results[labels[0]][0]["starts"], key=lambda a: results[labels[0]][0]["starts"][a])
    for agent in receivers:
        cells = [statistics.mean(r["starts"][agent] for r in results[label]) for label in labels]
        print(f"{agent:<13}" + "".join(f"{c:>25.1f}s" for c in cells))
    totals = [statistics.mean(r["seconds"] for r in results[label]) for label in labels]
    print(f"{'workflow':<13}" + "".join(f"{t:>25.1f}s" for t in totals))
    saved_eager = totals[1] - totals[2]
    saved_start = totals[0] - totals[1]
    claim = "15-25 s" if name == "standard" else "2-3 s per handoff"
    print(
        f"\neager vs buffered (both start at validation): {saved_eager:+.1f} s for the whole workflow "
        f"({saved_eager / totals[1]:+.1%}); notes' claim: {claim} faster"
    )
    print(f"starting receivers at validation instead of at the end of the response: {saved_start:+.1f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
