"""The effects journal and ledger: at most once, skip on re-run, compensation newest first."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from midstream.agent.effects import (
    EffectLedger,
    EffectRecord,
    Journal,
    JsonlJournal,
    MemoryJournal,
    SqliteJournal,
    current_call,
    idempotency_key,
    open_journal,
)
from midstream.agent.tools import TempFileSink, Tool
from midstream.core.toolargs import ToolFieldDelta, ToolInputError
from midstream.errors import LocalError

JournalFactory = Callable[[Path], Journal]
KINDS: dict[str, JournalFactory] = {
    "jsonl": lambda d: JsonlJournal(d / "effects.jsonl"),
    "sqlite": lambda d: SqliteJournal(d / "effects.db"),
}


@pytest.fixture(params=sorted(KINDS))
def make_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalFactory]:
    opened: list[Journal] = []

    def make(directory: Path = tmp_path) -> Journal:
        journal = KINDS[request.param](directory)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


class World:
    """A fake outside world: what the tools did and undid, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.files: dict[str, str] = {}

    def tools(self) -> dict[str, Tool]:
        def undo_write(record: EffectRecord) -> None:
            self.log.append(f"undo write {record.input['path']}")
            del self.files[record.input["path"]]

        async def undo_send(record: EffectRecord) -> None:
            self.log.append(f"undo send {record.input['to']}")

        def write(path: str, text: str) -> dict[str, Any]:
            self.log.append(f"write {path}")
            self.files[path] = text
            return {"bytes": len(text)}

        async def send(to: str) -> str:
            self.log.append(f"send {to}")
            return f"sent to {to}"

        def read(path: str) -> str:
            self.log.append(f"read {path}")
            return self.files.get(path, "")

        def broken_undo(record: EffectRecord) -> None:
            raise RuntimeError("cannot undo a charge")

        def charge(amount: int) -> str:
            self.log.append(f"charge {amount}")
            return "charged"

        def notify(msg: str) -> None:
            self.log.append(f"notify {msg}")

        return {
            "write": Tool(write, side_effect=True, compensate=undo_write),
            "send": Tool(send, side_effect=True, compensate=undo_send),
            "read": Tool(read),
            "charge": Tool(charge, side_effect=True, compensate=broken_undo),
            "notify": Tool(notify, side_effect=True),
        }


def statuses(journal: Journal) -> list[tuple[str, str]]:
    return [(r.call_id, r.status) for r in journal.records()]


def test_journal_basics(make_journal: Callable[..., Journal]) -> None:
    journal = make_journal()
    assert journal.latest("k") is None and list(journal.records()) == []
    r1 = EffectRecord("c1", "write", "k", "started", input={"a": [1, "\u00e9"]}, time=1.5, run_id="r")
    r2 = EffectRecord(
        "c1", "write", "k", "done", input={"a": [1, "\u00e9"]}, result={"ok": True}, time=2.0, run_id="r"
    )
    r3 = EffectRecord("c2", "send", "k2", "failed", error="boom", time=3.0)
    for r in (r1, r2, r3):
        journal.append(r)
    assert list(journal.records()) == [r1, r2, r3]
    assert journal.latest("k") == r2
    assert journal.already_done("k") == r2
    assert journal.already_done("k2") is None
    journal.append(EffectRecord("c1", "write", "k", "compensated", time=4.0))
    assert journal.already_done("k") is None
    journal.append(EffectRecord("c3", "x", "k3", "compensation_failed", time=5.0))
    assert journal.already_done("k3") is not None  # the effect is still in place
    assert isinstance(journal, Journal)
    journal.close()
    reopened = make_journal()  # same file: the journal outlives the run
    assert [r.status for r in reopened.records()] == [
        "started",
        "done",
        "failed",
        "compensated",
        "compensation_failed",
    ]
    assert reopened.latest("k2") == r3


def test_jsonl_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    good = EffectRecord("c1", "t", "k1", "done", result=1, time=1.0)
    path.write_text(json.dumps(good.to_json()) + "\n" + '{"call_id": "c2", "tool": "t", "idempot')
    journal = JsonlJournal(path)
    assert list(journal.records()) == [good]  # the torn text names no key: no effect to mark
    assert journal.torn is not None and journal.torn.line == 2
    journal.append(EffectRecord("c3", "t", "k3", "done", time=2.0))
    journal.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["damaged"].startswith('{"call_id": "c2"')
    assert json.loads(lines[2])["call_id"] == "c3"
    again = JsonlJournal(path)
    assert [r.call_id for r in again.records()] == ["c1", "c3"]
    assert again.already_done("k3") is not None


def test_open_journal_by_suffix(tmp_path: Path) -> None:
    for name, kind in [("a.db", SqliteJournal), ("a.sqlite3", SqliteJournal), ("a.jsonl", JsonlJournal)]:
        journal = open_journal(tmp_path / name)
        assert isinstance(journal, kind)
        journal.close()


def test_idempotency_key_is_canonical() -> None:
    assert idempotency_key("t", {"a": 1, "b": {"x": 1, "y": 2}}) == idempotency_key(
        "t", {"b": {"y": 2, "x": 1}, "a": 1}
    )
    assert idempotency_key("t", {"a": 1}) != idempotency_key("t", {"a": 1.5})
    assert idempotency_key("t", {"a": "\u00e9"}) == idempotency_key("t", {"a": "\u00e9"})


@pytest.mark.anyio
async def test_execute_journals_and_rerun_skips(make_journal: Callable[..., Journal]) -> None:
    world = World()
    tools = world.tools()

    async def run(ledger: EffectLedger) -> list[Any]:
        out = []
        out.append(await ledger.execute(tools["write"], "call_1", {"path": "a.txt", "text": "hi"}))
        out.append(await ledger.execute(tools["read"], "call_2", {"path": "a.txt"}))
        out.append(await ledger.execute(tools["send"], "call_3", {"to": "bob"}))
        return out

    journal = make_journal()
    first = await run(EffectLedger(journal, run_id="run-1"))
    assert [e.status for e in first] == ["done", "done", "done"]
    assert [e.result for e in first] == [{"bytes": 2}, "hi", "sent to bob"]
    assert world.log == ["write a.txt", "read a.txt", "send bob"]
    assert statuses(journal) == [
        ("call_1", "started"),
        ("call_1", "done"),
        ("call_3", "started"),
        ("call_3", "done"),
    ]
    done = [r for r in journal.records() if r.status == "done"]
    assert done[0].idempotency_key == idempotency_key("write", {"path": "a.txt", "text": "hi"})
    assert done[0].run_id == "run-1" and done[0].input == {"path": "a.txt", "text": "hi"}

    world.log.clear()
    journal.close()
    again = make_journal()
    second = await run(EffectLedger(again, run_id="run-2"))
    assert [e.status for e in second] == ["skipped", "done", "skipped"]
    assert second[0].result == {"bytes": 2} and second[2].result == "sent to bob"
    assert second[0].record is not None and second[0].record.run_id == "run-1"
    assert world.log == ["read a.txt"]  # only the tool without side effects ran again
    assert len(list(again.records())) == 4  # nothing new written


@pytest.mark.anyio
async def test_identical_calls_in_one_run_are_two_effects(make_journal: Callable[..., Journal]) -> None:
    world = World()
    send = world.tools()["send"]
    journal = make_journal()

    async def run(ledger: EffectLedger, ids: list[str]) -> list[str]:
        return [(await ledger.execute(send, i, {"to": "ann"})).status for i in ids]

    assert (await run(EffectLedger(journal), ["a", "b"])) == ["done", "done"]
    keys = [r.idempotency_key for r in journal.records() if r.status == "done"]
    base = idempotency_key("send", {"to": "ann"})
    assert keys == [base, f"{base}#1"]
    # a re-run making the same calls skips both; a third identical call is new
    assert (await run(EffectLedger(journal), ["x", "y", "z"])) == ["skipped", "skipped", "done"]
    assert world.log == ["send ann", "send ann", "send ann"]


@pytest.mark.anyio
async def test_a_call_id_never_executes_twice() -> None:
    world = World()
    tools = world.tools()

    async def main() -> list[str]:
        ledger = EffectLedger()
        first = await ledger.execute(tools["write"], "call_1", {"path": "a", "text": "1"})
        second = await ledger.execute(tools["write"], "call_1", {"path": "b", "text": "2"})
        third = await ledger.execute(tools["read"], "call_1", {"path": "a"})
        assert ledger.has_run("call_1") and not ledger.has_run("call_2")
        return [first.status, second.status, third.status]

    assert (await main()) == ["done", "duplicate", "duplicate"]
    assert world.log == ["write a"]


@pytest.mark.anyio
async def test_resumed_run_does_not_repeat_call_ids() -> None:
    world = World()
    tools = world.tools()

    async def main() -> tuple[str, str, frozenset[str]]:
        ledger = EffectLedger(already_run=["call_1"])
        first = await ledger.execute(tools["read"], "call_1", {"path": "a"})
        second = await ledger.execute(tools["read"], "call_2", {"path": "a"})
        return first.status, second.status, ledger.run_call_ids

    assert (await main()) == ("uncertain", "done", frozenset({"call_1", "call_2"}))
    assert world.log == ["read a"]


@pytest.mark.anyio
async def test_invalid_input_raises_before_anything_is_recorded() -> None:
    world = World()
    journal = MemoryJournal()

    async def main() -> None:
        ledger = EffectLedger(journal)
        with pytest.raises(ToolInputError):
            await ledger.execute(world.tools()["write"], "c", {"path": 1})
        assert not ledger.has_run("c")

    await main()
    assert list(journal.records()) == [] and world.log == []


@pytest.mark.anyio
async def test_failure_is_recorded_and_a_rerun_tries_again() -> None:
    calls: list[int] = []

    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            raise ValueError("first time fails")
        return n

    t = Tool(flaky, side_effect=True)
    journal = MemoryJournal()
    first = await EffectLedger(journal).execute(t, "c1", {"n": 3})
    assert first.status == "failed" and not first.ok
    assert isinstance(first.error, ValueError)
    assert statuses(journal) == [("c1", "started"), ("c1", "failed")]
    assert list(journal.records())[-1].error == "ValueError: first time fails"
    second = await EffectLedger(journal).execute(t, "c2", {"n": 3})
    assert second.status == "done" and second.result == 3 and second.ok
    assert calls == [3, 3]


@pytest.mark.anyio
async def test_started_without_end_is_uncertain_unless_idempotent() -> None:
    ran: list[str] = []
    risky = Tool(lambda x: ran.append("risky"), name="risky", side_effect=True)
    safe = Tool(lambda x: ran.append("safe"), name="safe", side_effect=True, idempotent=True)
    journal = MemoryJournal()
    for t in (risky, safe):  # an earlier run crashed mid-call
        journal.append(EffectRecord("old", t.name, t.idempotency_key({"x": 1}), "started", input={"x": 1}))

    async def main() -> list[str]:
        ledger = EffectLedger(journal)
        a = await ledger.execute(risky, "c1", {"x": 1})
        b = await ledger.execute(safe, "c2", {"x": 1})
        assert a.error is not None and "never recorded its end" in str(a.error)
        return [a.status, b.status]

    assert (await main()) == ["uncertain", "done"]
    assert ran == ["safe"]


@pytest.mark.anyio
async def test_compensation_in_reverse_order_and_failures_recorded(
    make_journal: Callable[..., Journal],
) -> None:
    world = World()
    tools = world.tools()
    journal = make_journal()

    async def main() -> list[EffectRecord]:
        ledger = EffectLedger(journal, run_id="r")
        await ledger.execute(tools["write"], "c1", {"path": "a", "text": "1"})
        await ledger.execute(tools["charge"], "c2", {"amount": 5})
        await ledger.execute(tools["read"], "c3", {"path": "a"})
        await ledger.execute(tools["send"], "c4", {"to": "bob"})
        await ledger.execute(tools["notify"], "c5", {"msg": "hi"})
        await ledger.execute(tools["write"], "c6", {"path": "b", "text": "2"})
        assert [r.call_id for r in ledger.executed] == ["c1", "c2", "c4", "c5", "c6"]
        written = await ledger.compensate_all()
        assert ledger.closed
        with pytest.raises(LocalError, match="no tool call may start"):
            await ledger.execute(tools["read"], "c7", {"path": "a"})
        assert await ledger.compensate_all() == []  # nothing is undone twice
        return written

    written = await main()
    assert [(r.call_id, r.status) for r in written] == [
        ("c6", "compensated"),
        ("c5", "compensation_failed"),
        ("c4", "compensated"),
        ("c2", "compensation_failed"),
        ("c1", "compensated"),
    ]
    assert written[1].error == "the tool has no compensate function"
    assert written[3].error == "RuntimeError: cannot undo a charge"
    assert world.log[-3:] == ["undo write b", "undo send bob", "undo write a"]
    assert world.files == {}
    tail = statuses(journal)[-5:]
    assert tail == [(r.call_id, r.status) for r in written]


@pytest.mark.anyio
async def test_rerun_after_compensation(make_journal: Callable[..., Journal]) -> None:
    world = World()
    write = world.tools()["write"]
    notify = world.tools()["notify"]
    journal = make_journal()

    async def first() -> None:
        ledger = EffectLedger(journal)
        await ledger.execute(write, "c1", {"path": "a", "text": "1"})
        await ledger.execute(notify, "c2", {"msg": "m"})
        await ledger.compensate_all()

    async def rerun(skip_compensated: bool) -> list[str]:
        ledger = EffectLedger(journal, skip_compensated=skip_compensated)
        return [
            (await ledger.execute(write, "d1", {"path": "a", "text": "1"})).status,
            (await ledger.execute(notify, "d2", {"msg": "m"})).status,
        ]

    await first()
    # notify could not be undone (compensation_failed: still in place), so it is never repeated;
    # with skip_compensated the undone write is not repeated either
    assert (await rerun(skip_compensated=True)) == ["skipped", "skipped"]
    assert (await rerun(skip_compensated=False)) == ["done", "skipped"]
    assert world.log == ["write a", "notify m", "undo write a", "write a"]


@pytest.mark.anyio
async def test_current_call_inside_a_tool() -> None:
    seen: list[Any] = []

    def sync_tool(x: int) -> None:
        seen.append(current_call())

    async def async_tool(x: int) -> None:
        seen.append(current_call())

    async def main() -> None:
        ledger = EffectLedger(run_id="r1")
        await ledger.execute(Tool(sync_tool, side_effect=True), "s1", {"x": 1})
        await ledger.execute(Tool(async_tool), "a1", {"x": 1})

    await main()
    assert current_call() is None
    assert seen[0].call_id == "s1" and seen[0].tool == "sync_tool" and seen[0].run_id == "r1"
    assert seen[0].idempotency_key == idempotency_key("sync_tool", {"x": 1})
    assert seen[1].call_id == "a1" and seen[1].idempotency_key is None  # no side effect, no key


@pytest.mark.anyio
async def test_cancel_waits_for_a_sync_tool_and_compensates_it() -> None:
    started, release = threading.Event(), threading.Event()
    undone: list[str] = []

    def slow_write(path: str) -> str:
        started.set()
        release.wait(5)
        return f"wrote {path}"

    t = Tool(slow_write, side_effect=True, compensate=lambda r: undone.append(r.input["path"]))
    journal = MemoryJournal()

    async def main() -> None:
        ledger = EffectLedger(journal)
        task = asyncio.create_task(ledger.execute(t, "c1", {"path": "p"}))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done()  # the thread cannot be stopped: the ledger waits for its end
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [r.status for r in journal.records()] == ["started", "done"]
        await ledger.compensate_all()

    await main()
    assert undone == ["p"]
    assert [r.status for r in journal.records()] == ["started", "done", "compensated"]


@pytest.mark.anyio
async def test_cancel_reaches_an_async_tool_cooperatively() -> None:
    seen: list[str] = []

    async def waiter(x: int) -> None:
        seen.append("start")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    t = Tool(waiter, side_effect=True, compensate=lambda r: seen.append("undo"))
    journal = MemoryJournal()

    async def main() -> None:
        ledger = EffectLedger(journal)
        task = asyncio.create_task(ledger.execute(t, "c1", {"x": 1}))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await ledger.compensate_all() == []  # it did not complete: nothing to undo

    await main()
    assert seen == ["start", "cancelled"]
    assert [r.status for r in journal.records()] == ["started", "failed"]
    assert list(journal.records())[-1].error == "CancelledError: the tool was cancelled"


@pytest.mark.anyio
async def test_compensate_all_waits_for_running_calls() -> None:
    undone: list[str] = []

    async def slow(x: int) -> int:
        await asyncio.sleep(0.02)
        return x

    t = Tool(slow, side_effect=True, compensate=lambda r: undone.append(r.call_id))

    async def main() -> None:
        ledger = EffectLedger()
        running = [asyncio.create_task(ledger.execute(t, f"c{i}", {"x": i})) for i in range(3)]
        await asyncio.sleep(0)
        written = await ledger.compensate_all()
        assert {r.call_id for r in written} == {"c0", "c1", "c2"}
        await asyncio.gather(*running)

    await main()
    assert sorted(undone) == ["c0", "c1", "c2"]


@pytest.mark.anyio
async def test_concurrent_executions_are_each_recorded_once() -> None:
    count = 0

    async def bump(n: int) -> int:
        nonlocal count
        await asyncio.sleep(0.001 * (n % 3))
        count += 1
        return n

    t = Tool(bump, side_effect=True)
    journal = MemoryJournal()

    async def main() -> list[str]:
        ledger = EffectLedger(journal)
        calls = [ledger.execute(t, f"c{i % 20}", {"n": i}) for i in range(40)]  # every id twice
        return [e.status for e in await asyncio.gather(*calls)]

    results = await main()
    assert results.count("done") == 20 and results.count("duplicate") == 20
    assert count == 20
    done = [r for r in journal.records() if r.status == "done"]
    assert len(done) == 20 and len({r.call_id for r in done}) == 20


@pytest.mark.anyio
async def test_streams_are_committed_inside_the_call_or_discarded(tmp_path: Path) -> None:
    def write_file(path: str, content: str) -> Any:
        call = current_call()
        assert call is not None
        return str(call.committed["content"])

    t = Tool(
        write_file,
        side_effect=True,
        streams=("content",),
        sink=TempFileSink.factory(lambda i: tmp_path / i["path"], directory=tmp_path / "tmp"),
    )
    journal = MemoryJournal()

    def streamed(call_id: str) -> Any:
        streams = t.open_streams(call_id)
        assert streams is not None
        streams.feed(ToolFieldDelta(0, ("content",), "body"))
        return streams

    async def main() -> list[Any]:
        first = await EffectLedger(journal).execute(
            t, "c1", {"path": "f.txt", "content": "body"}, streams=streamed("c1")
        )
        again = await EffectLedger(journal).execute(
            t, "c2", {"path": "f.txt", "content": "body"}, streams=streamed("c2")
        )
        return [first, again]

    first, again = await main()
    assert first.status == "done" and first.result == str(tmp_path / "f.txt")
    assert (tmp_path / "f.txt").read_text() == "body"
    assert again.status == "skipped"
    assert list((tmp_path / "tmp").iterdir()) == []  # the skipped call's temporary file is gone


@pytest.mark.anyio
async def test_results_are_journaled_as_json() -> None:
    class Out(BaseModel):
        n: int

    t = Tool(lambda x: Out(n=x), name="model_out", side_effect=True)
    t2 = Tool(lambda x: {1, 2}, name="set_out", side_effect=True)
    journal = MemoryJournal()

    async def main() -> None:
        ledger = EffectLedger(journal)
        execution = await ledger.execute(t, "c1", {"x": 4})
        assert execution.result == Out(n=4)  # the caller gets the real object
        await ledger.execute(t2, "c2", {"x": 1})

    await main()
    done = [r for r in journal.records() if r.status == "done"]
    assert done[0].result == {"n": 4}
    assert done[1].result == "{1, 2}"
