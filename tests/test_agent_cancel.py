"""Cancellation, against the simulator: the stream closes (the simulator sees the disconnect and
generates nothing after it), no pending tool starts, running tools are cancelled cooperatively (a sync
one is waited for), completed side effects are compensated newest first, the journal shows it, and a
re-run with the same journal does not repeat them. Also: cancel before the start, from another thread,
by cancelling the awaiting task, during a backoff wait or a hook, and Ctrl-C in ``run_sync``."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentsupport import check_one_ending, client, collect, fast, index, of, run, run_agent
from midstream.agent import (
    Agent,
    CancelNotice,
    HookNotice,
    Hooks,
    RetryNotice,
    ToolCompensated,
    ToolFailed,
    ToolFinished,
    ToolReady,
    ToolStarted,
    tool,
)
from midstream.agent.effects import EffectRecord, JsonlJournal
from midstream.agent.hooks import HookInput
from midstream.client.stream import Client
from midstream.events import ResponseEnd, TextDelta
from midstream.sim import ScenarioBook, SimURL

LONG = " ".join(f"word{n}" for n in range(400))
PACE = {"ttft_ms": 5, "tokens_per_second": 400, "jitter": 0.0}


def save(title: str, name: str = "save") -> dict[str, Any]:
    return {"tool_call": {"name": name, "input": {"title": title}}}


BOOK = ScenarioBook.model_validate(
    yaml.safe_load(
        yaml.safe_dump(
            {
                "scenarios": [
                    {
                        "name": "multi",
                        "match": {"last_user": "(?i)multi"},
                        "latency": PACE,
                        "turns": [
                            {"blocks": [{"text": "Saving two."}, save("A"), save("B")]},
                            {"blocks": [{"text": LONG}, save("C"), save("D"), save("E")]},
                            {"blocks": [{"text": "All five saved."}]},
                        ],
                    },
                    {
                        "name": "four",
                        "match": {"last_user": "(?i)four"},
                        "turns": [
                            {"blocks": [save("A"), save("B"), save("C", "save_sync"), save("D")]},
                            {"blocks": [{"text": "Four saved."}]},
                        ],
                    },
                    {"name": "long", "match": {"last_user": "(?i)long"}, "latency": PACE,
                     "turns": [{"blocks": [{"text": LONG}]}]},
                    {"name": "cut", "match": {"last_user": "(?i)cut"},
                     "turns": [{"blocks": [save(LONG)]}]},
                ]
            }
        )
    )
)  # fmt: skip


class World:
    """Side-effecting tools and a log of what they did and undid."""

    def __init__(self, delays: dict[str, float] | None = None, fail_undo: bool = False) -> None:
        self.delays = delays or {}
        self.fail_undo = fail_undo
        self.log: list[str] = []
        self.done: Counter[str] = Counter()

    def undo(self, record: EffectRecord) -> None:
        if self.fail_undo:
            raise OSError("cannot undo")
        self.log.append(f"undo {record.input['title']}")

    def tools(self) -> list[Any]:
        @tool(side_effect=True, compensate=self.undo)
        async def save(title: str) -> str:
            """Save something (async)."""
            try:
                await asyncio.sleep(self.delays.get(title, 0))
            except asyncio.CancelledError:
                self.log.append(f"cancelled {title}")
                raise
            self.log.append(f"save {title}")
            self.done[title] += 1
            return f"saved {title}"

        @tool(side_effect=True, compensate=self.undo)
        def save_sync(title: str) -> str:
            """Save something (sync: its thread cannot be interrupted)."""
            time.sleep(self.delays.get(title, 0))
            self.log.append(f"save {title}")
            self.done[title] += 1
            return f"saved {title}"

        return [save, save_sync]


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


def wait_for_disconnect(url: SimURL, number: int) -> Any:
    record = next(r for r in url.simulator.records if r.id == number)
    deadline = time.monotonic() + 5.0  # generous for a loaded machine; it returns as soon as it shows
    while not record.disconnected and time.monotonic() < deadline:
        time.sleep(0.005)
    generated = record.tokens_generated
    time.sleep(0.05)
    assert record.disconnected and not record.completed
    # Generation stopped at the disconnect.
    assert record.tokens_after_disconnect == 0 and record.tokens_generated == generated
    return record


def journal_statuses(path: Path) -> dict[str, list[str]]:
    with JsonlJournal(path) as journal:
        out: dict[str, list[str]] = {}
        for record in journal.records():
            out.setdefault(record.input["title"], []).append(record.status)
        return out


def test_cancel_during_a_multi_tool_run(paced: SimURL, sim: SimURL, tmp_path: Path) -> None:
    world = World()
    journal = tmp_path / "effects.jsonl"
    first_request = paced.simulator.request_count + 1

    async def body() -> tuple[list[Any], Any]:
        agent = Agent(client(paced), world.tools(), settings=fast(), journal=JsonlJournal(journal))
        run_ = agent.run("multi save")
        deltas = 0

        @run_.on_event
        def cancel_mid_answer(event: Any) -> None:
            nonlocal deltas
            deltas += isinstance(event, TextDelta)
            if deltas == 40:  # well inside the second response's long text
                run_.cancel("the user pressed stop")

        return await collect(run_)

    events, result = run(body())
    assert result.terminal == "cancelled" and result.reason == "the user pressed stop"
    record = wait_for_disconnect(paced, first_request + 1)  # the simulator saw the client go
    assert record.tokens_generated < 400
    (notice,) = of(events, CancelNotice)
    assert notice.phase == "streaming" and notice.reason == "the user pressed stop"
    # No pending tool starts: C, D and E never even became ready.
    assert [e.input["title"] for e in of(events, ToolStarted)] == ["A", "B"]
    assert not [e for e in of(events, ToolReady) if e.input["title"] in "CDE"]
    finished = [e.call_id for e in of(events, ToolFinished)]
    compensated = of(events, ToolCompensated)
    assert [c.call_id for c in compensated] == finished[::-1]  # newest first
    assert all(c.status == "compensated" for c in compensated)
    saved_order = [entry.split()[1] for entry in world.log[:2]]
    assert world.log[-2:] == [f"undo {title}" for title in reversed(saved_order)]
    stream_end = [e for e in events if isinstance(e, ResponseEnd)][-1]
    assert stream_end.terminal == "cancelled"
    assert index(events, lambda e: e is stream_end) < index(events, lambda e: e is notice)
    assert check_one_ending(events).terminal == "cancelled"
    assert journal_statuses(journal) == {t: ["started", "done", "compensated"] for t in "AB"}
    assert set(result.executed) == set(finished) and len(result.compensations) == 2

    async def rerun() -> tuple[list[Any], Any]:  # same journal, same calls: A and B are not repeated
        agent = Agent(client(sim), world.tools(), settings=fast(), journal=JsonlJournal(journal))
        return await run_agent(agent, "multi save")

    events, result = run(rerun())
    assert result.terminal == "completed" and result.text == "All five saved."
    assert [e.status for e in of(events, ToolFinished)][:2] == ["skipped", "skipped"]
    assert [e.input["title"] for e in of(events, ToolStarted)] == ["C", "D", "E"]
    assert world.done == {"A": 1, "B": 1, "C": 1, "D": 1, "E": 1}
    assert journal_statuses(journal) == {
        **{t: ["started", "done", "compensated"] for t in "AB"},
        **{t: ["started", "done"] for t in "CDE"},
    }


def test_cancel_during_the_tools(sim: SimURL, tmp_path: Path) -> None:
    world = World(delays={"B": 5.0, "C": 0.3})
    settings = fast(tools={"max_concurrency": 3})

    async def body() -> tuple[list[Any], Any]:
        agent = Agent(client(sim), world.tools(), settings=settings, journal=tmp_path / "effects.db")
        run_ = agent.run("four saves")

        @run_.on_event
        def cancel_after_a(event: Any) -> None:
            if isinstance(event, ToolFinished):
                run_.cancel()

        return await collect(run_)

    events, result = run(body())
    ids = {e.input["title"]: e.call_id for e in of(events, ToolReady)}
    (notice,) = of(events, CancelNotice)
    assert notice.phase == "tools" and notice.not_started == (ids["D"],)  # D never starts
    assert [e.input["title"] for e in of(events, ToolStarted)] == ["A", "B", "C"]
    failed = {e.call_id: e for e in of(events, ToolFailed)}
    assert failed[ids["B"]].reason == "cancelled" and failed[ids["B"]].started  # cooperatively
    assert "cancelled B" in world.log and world.done == {"A": 1, "C": 1}  # the sync C was waited for
    assert [c.call_id for c in of(events, ToolCompensated)] == [ids["C"], ids["A"]]  # newest first
    assert world.log[-2:] == ["undo C", "undo A"] and result.terminal == "cancelled"


def test_cancel_before_the_start_sends_nothing(sim: SimURL) -> None:
    world = World()
    before = sim.simulator.request_count

    async def body() -> tuple[list[Any], Any]:
        run_ = Agent(client(sim), world.tools(), settings=fast()).run("multi")
        run_.cancel("never mind")
        return await collect(run_)

    events, result = run(body())
    assert result.terminal == "cancelled" and sim.simulator.request_count == before
    assert [type(e).__name__ for e in events] == ["CancelNotice", "RunEnd"]
    assert events[0].phase == "starting"


def test_cancel_from_another_thread_closes_the_stream(paced: SimURL) -> None:
    async def body() -> tuple[list[Any], Any]:
        run_ = Agent(client(paced), [], settings=fast()).run("long answer")
        run_.start()
        threading.Timer(0.15, run_.cancel, args=("from a thread",)).start()
        return await collect(run_)

    number = paced.simulator.request_count + 1
    _, result = run(body())
    assert result.terminal == "cancelled" and result.reason == "from a thread"
    wait_for_disconnect(paced, number)
    assert result.message is not None and LONG.startswith(result.message.text) and result.text == ""


def test_cancelling_the_awaiting_task_cancels_the_run(paced: SimURL) -> None:
    async def body() -> Any:
        run_ = Agent(client(paced), [], settings=fast()).run("long answer")
        waiter = asyncio.ensure_future(run_.result())
        await asyncio.sleep(0.15)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return run_

    number = paced.simulator.request_count + 1
    run_ = run(body())
    assert run_.outcome is not None and run_.outcome.terminal == "cancelled"
    wait_for_disconnect(paced, number)


def test_a_failed_compensation_is_recorded_and_the_cancel_hook_runs_last(sim: SimURL) -> None:
    world = World(delays={"B": 5.0}, fail_undo=True)
    hooks, seen = Hooks(), []
    hooks.add("Cancel", lambda e: seen.append(e.to_json()))

    async def body() -> tuple[list[Any], Any]:
        agent = Agent(client(sim), world.tools(), settings=fast(), hooks=hooks)
        run_ = agent.run("four saves")
        run_.on_event(lambda e: run_.cancel("stop") if isinstance(e, ToolFinished) else None)
        return await collect(run_)

    events, result = run(body())
    statuses = [c.status for c in of(events, ToolCompensated)]
    assert statuses and set(statuses) == {"compensation_failed"}
    assert all(c.error == "OSError: cannot undo" for c in of(events, ToolCompensated))
    last_compensation = max(i for i, e in enumerate(events) if isinstance(e, ToolCompensated))
    cancel_hook = index(events, lambda e: isinstance(e, HookNotice) and e.event == "Cancel")
    assert last_compensation < cancel_hook and result.terminal == "cancelled"
    assert seen[0]["reason"] == "stop" and sorted(seen[0]["compensated"]) == sorted(
        c.call_id for c in of(events, ToolCompensated)
    )


def test_cancel_during_a_backoff_wait(sim: SimURL) -> None:
    world = World()
    settings = fast(errors={"backoff": {"initial": 10.0, "scale": 1.0}})

    async def body() -> tuple[list[Any], Any]:
        run_ = Agent(client(sim), world.tools(), settings=settings, max_tokens=20).run("cut")
        run_.on_event(lambda e: run_.cancel() if isinstance(e, RetryNotice) else None)
        return await collect(run_)

    started = time.monotonic()
    events, result = run(body())
    assert time.monotonic() - started < 8 and result.terminal == "cancelled"  # the 10 s wait was cut
    assert of(events, RetryNotice)[0].delay == 10.0 and of(events, CancelNotice)[0].phase == "waiting"
    assert not world.done


def test_cancel_during_a_slow_hook(sim: SimURL) -> None:
    world = World()
    hooks = Hooks(default_timeout=30.0)

    async def slow(event: HookInput) -> None:
        await asyncio.sleep(20)

    hooks.add("PreToolUse", slow)

    async def body() -> tuple[list[Any], Any]:
        run_ = Agent(client(sim), world.tools(), settings=fast(), hooks=hooks).run("four saves")
        asyncio.get_running_loop().call_later(0.2, run_.cancel)
        return await collect(run_)

    started = time.monotonic()
    events, result = run(body())
    assert time.monotonic() - started < 15 and not world.done and not of(events, ToolStarted)  # hook: 20 s
    assert len(of(events, CancelNotice)[0].not_started) == 4 and result.terminal == "cancelled"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_in_run_sync_cancels_and_compensates(paced: SimURL) -> None:
    world = World()
    main = threading.main_thread().ident
    assert main is not None
    number = paced.simulator.request_count + 2
    seen: list[Any] = []

    def interrupt_in_the_second_answer(event: Any) -> None:
        seen.append(event)
        if isinstance(event, TextDelta) and sum(isinstance(e, TextDelta) for e in seen) == 30:
            signal.pthread_kill(main, signal.SIGINT)

    with Client("anthropic", "sim-key", paced, model="sim-model") as sync_client:
        agent = Agent(sync_client, world.tools(), settings=fast())
        result = agent.run_sync("multi save", on_event=interrupt_in_the_second_answer)
    assert result.terminal == "cancelled" and world.done == {"A": 1, "B": 1}
    assert sorted(world.log[-2:]) == ["undo A", "undo B"] and len(result.compensations) == 2
    wait_for_disconnect(paced, number)
