"""A seeded fault campaign: a few hundred agent runs against one simulator, each request drawing a fault
(a dropped connection, a mid-stream error, a stall past the idle timeout, bytes that do not parse), runs
starting with small output budgets (tool input cut by max_tokens), scripted invalid JSON, every
provider, eager and buffered argument streaming, and cancels at random points. Over all of it:

* 0 executions on incomplete input (every executed input is one the script wrote whole);
* 0 duplicate executions, per call id and per idempotency key;
* exactly one terminal state per run (one ``RunEnd``, its last event, agreeing with the result);
* every side effect that fired in a cancelled run is compensated, newest first; none in other runs.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from agentsupport import Recorder, fast
from midstream.agent import (
    Agent,
    CancelNotice,
    RetryNotice,
    RunEnd,
    ToolCompensated,
    ToolFinished,
    ToolReady,
    ToolStarted,
    tool,
)
from midstream.agent.effects import EffectRecord, MemoryJournal, current_call
from midstream.client.stream import AsyncClient
from midstream.client.timeouts import Timeouts
from midstream.core.retry import RetryPolicy
from midstream.sim import ScenarioBook, SimURL, running

SEED = int(os.environ.get("MIDSTREAM_CAMPAIGN_SEED", "20261121"))  # another seed explores more
RUNS = 300
BATCH = 12
PROVIDERS = [
    "anthropic",
    "anthropic",
    "anthropic",
    "openai-chat",
    "openai-responses",
    "gemini",
    "bedrock",
    "ollama",
]
BODY_A = " ".join(f"alpha{n}" for n in range(24))
BODY_B = "beta one two three"
SAVE_A = {"title": "A", "body": BODY_A}
SAVE_B = {"title": "B", "body": BODY_B}
LOOKUP = {"key": "k1"}
WHOLE_INPUTS = [SAVE_A, SAVE_B, LOOKUP]
FINAL = "Both notes are saved and the lookup is done."
BOOK = ScenarioBook.model_validate(
    yaml.safe_load(
        f"""
scenarios:
  - name: mixed
    match: {{last_user: "(?i)mixed"}}
    turns:
      - blocks:
          - text: "Saving the first note and looking something up."
          - tool_call: {{name: save, input: {{title: A, body: "{BODY_A}"}}}}
          - tool_call: {{name: lookup, input: {{key: k1}}}}
      - blocks:
          - text: "Now the second note."
          - tool_call: {{name: save, input: {{title: B, body: "{BODY_B}"}}}}
      - blocks: [{{text: "{FINAL}"}}]
  - name: broken
    match: {{last_user: "(?i)broken"}}
    turns:
      - blocks: [{{tool_call: {{name: save, raw: '{{"title": "A", "body": "alpha0",,}}'}}}}]
      - blocks:
          - tool_call: {{name: save, input: {{title: A, body: "{BODY_A}"}}}}
          - tool_call: {{name: lookup, input: {{key: k1}}}}
      - blocks: [{{tool_call: {{name: save, input: {{title: B, body: "{BODY_B}"}}}}}}]
      - blocks: [{{text: "{FINAL}"}}]
"""
    )
)


@dataclass
class Ledger:
    """Every execution of every run, as the tool functions themselves saw it."""

    executions: list[tuple[str, str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    compensated: list[tuple[str, str]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    def tools(self, run_id: str, eager: bool) -> list[Any]:
        def undo(record: EffectRecord) -> None:
            self.compensated.append((run_id, record.call_id))

        @tool(side_effect=True, compensate=undo, eager=eager)
        async def save(title: str, body: str) -> str:
            """Save a note."""
            self._executed(run_id, "save", {"title": title, "body": body})
            await asyncio.sleep(0)  # a cancel may land while it runs
            return f"saved {title}"

        @tool
        def lookup(key: str) -> str:
            """Look a key up."""
            self._executed(run_id, "lookup", {"key": key})
            return f"{key} = 42"

        return [save, lookup]

    def _executed(self, run_id: str, name: str, input: dict[str, Any]) -> None:
        call = current_call()
        assert call is not None
        self.executions.append((run_id, call.call_id, name, call.idempotency_key, input))


def fault_for(rng: random.Random, ledger: Ledger) -> str | None:
    roll = rng.random()
    if roll < 0.55:
        return None
    if roll < 0.70:
        ledger.faults["disconnect"] += 1
        return f"disconnect_after_bytes={rng.randint(40, 2500)}"
    if roll < 0.85:
        ledger.faults["mid-stream error"] += 1
        kind = rng.choice(["overloaded", "server", "rate_limited"])
        return f"error_after_events={rng.randint(1, 30)};error={kind}"
    if roll < 0.95:
        ledger.faults["stall"] += 1
        return f"stall_ms=120;stall_after_events={rng.randint(1, 25)}"
    ledger.faults["malformed"] += 1
    return f"malformed_after_events={rng.randint(1, 30)}"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with running(BOOK, speed=0, seed=SEED) as url:
        yield url


@dataclass
class Outcome:
    run_id: str
    cancelled_at: int | None
    events: list[Any]
    result: Any


async def one_run(url: str, n: int, ledger: Ledger) -> Outcome:
    rng = random.Random(f"{SEED}:{n}")
    provider = rng.choice(PROVIDERS)
    eager = rng.random() < 0.5
    max_tokens = rng.choice([1024, 1024, 1024, rng.randint(8, 60)])
    if max_tokens < 1024:
        ledger.faults["small max_tokens"] += 1
    # Whole-call providers (Gemini, Ollama) send structured arguments: they cannot send invalid JSON.
    scripted_json = provider in ("anthropic", "openai-chat", "openai-responses", "bedrock")
    prompt = "broken input" if scripted_json and rng.random() < 0.3 else "mixed work"
    if prompt == "broken input":
        ledger.faults["invalid JSON"] += 1
    transport = Recorder(lambda i, body: fault_for(rng, ledger))
    # Cancel at a random event, or right as a tool starts or finishes (a tool running, effects done).
    cancel_on: Any = rng.choice([Any, Any, ToolStarted, ToolFinished])
    cancel_at = (
        (rng.randint(5, 260) if cancel_on is Any else rng.randint(1, 3)) if rng.random() < 0.3 else None
    )
    run_id = f"run-{n}"
    settings = fast(errors={"max_retries": 3})
    async with AsyncClient(
        provider, "sim-key", url, model="sim-model", transport=transport,
        timeouts=Timeouts(idle=0.04), retry=RetryPolicy(initial_delay=0.001, max_delay=0.002),
    ) as client:  # fmt: skip
        agent = Agent(client, ledger.tools(run_id, eager), settings=settings, journal=MemoryJournal(),
                      max_tokens=max_tokens)  # fmt: skip
        run = agent.run(prompt, session_id=run_id)
        events: list[Any] = []
        seen = 0

        def watch(event: Any) -> None:
            nonlocal seen
            events.append(event)
            seen += cancel_on is Any or isinstance(event, cancel_on)
            if seen == cancel_at:
                run.cancel("campaign cancel")

        run.on_event(watch)
        result = await run
    if cancel_at is not None:
        ledger.faults["cancel"] += 1
    ledger.faults["requests"] += len(transport.bodies)
    return Outcome(run_id, cancel_at, events, result)


@pytest.mark.slow
def test_fault_campaign(sim: SimURL) -> None:
    ledger = Ledger()

    async def campaign() -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, RUNS, BATCH):
            batch = range(start, min(start + BATCH, RUNS))
            outcomes += await asyncio.gather(*(one_run(sim, n, ledger) for n in batch))
        return outcomes

    outcomes = asyncio.run(campaign())
    assert len(outcomes) == RUNS

    # 0 executions on incomplete input: every input executed is one the script wrote whole.
    incomplete = [e for e in ledger.executions if e[4] not in WHOLE_INPUTS]
    assert incomplete == []
    # 0 duplicate executions, per call id and per (run, idempotency key).
    per_call = Counter(e[1] for e in ledger.executions)
    assert [cid for cid, n in per_call.items() if n > 1] == []
    per_key = Counter((e[0], e[3]) for e in ledger.executions if e[3] is not None)
    assert [key for key, n in per_key.items() if n > 1] == []

    terminals: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    for outcome in outcomes:
        events, result = outcome.events, outcome.result
        # Exactly one terminal state per run.
        ends = [e for e in events if isinstance(e, RunEnd)]
        assert len(ends) == 1 and events[-1] is ends[0] and ends[0].terminal == result.terminal
        terminals[result.terminal] += 1
        retries.update(e.reason for e in events if isinstance(e, RetryNotice))
        phases.update(e.phase for e in events if isinstance(e, CancelNotice))
        # Events are honest: each execution has its ToolStarted, after its ToolReady.
        mine = [e for e in ledger.executions if e[0] == outcome.run_id]
        started = [e.call_id for e in events if isinstance(e, ToolStarted)]
        ready = {e.call_id for e in events if isinstance(e, ToolReady)}
        assert sorted(started) == sorted(e[1] for e in mine) and set(started) <= ready
        # Compensation: every side effect that completed in a cancelled run is undone, newest first.
        done = [
            e.call_id
            for e in events
            if isinstance(e, ToolFinished) and e.status == "done" and e.name == "save"
        ]
        undone = [e.call_id for e in events if isinstance(e, ToolCompensated)]
        if result.terminal == "cancelled":
            assert undone == done[::-1]
            assert [c for r, c in ledger.compensated if r == outcome.run_id] == undone
        else:
            assert undone == []
        if result.terminal == "completed":
            assert result.text == FINAL and sorted(e[4]["title"] for e in mine if e[2] == "save") == [
                "A",
                "B",
            ]

    assert terminals["completed"] > RUNS // 3 and terminals["cancelled"] > 0 and terminals["failed"] > 0
    assert retries["stream_error"] > 0 and retries["max_tokens"] > 0
    summary = {
        "runs": RUNS,
        "terminals": dict(terminals),
        "faults": dict(ledger.faults),
        "retries": dict(retries),
        "cancelled while": dict(phases),
        "executions": len(ledger.executions),
        "compensations": len(ledger.compensated),
    }
    print(f"\ncampaign: {summary}")
