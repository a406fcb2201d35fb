"""Workers on Redis: claim, resume from a checkpoint after kill -9, the effects journal reused after a
crash, the uncertain-effect policy, fencing of a superseded worker, and 429 when full."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetsupport import LONG_TEXT, executions, fleet_book, worker
from midstream.agent.checkpoint import Checkpoint
from midstream.agent.effects import EffectRecord
from midstream.client.request import Turn, UserText
from midstream.relay.entry import LogEntry
from midstream.relay.errors import LeaseLost, TooManyRuns
from midstream.relay.log import Lease
from midstream.relay.runner import AgentFactory, RunRequest
from midstream.relay.serve import running
from midstream.relay.stores import RedisLog
from midstream.relay.testing import RedisUnavailable, redis_server
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from midstream.worker import QueueExecutor, RedisDurability, RunQueue, Worker


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A redis-server of the test's own: queues and runs of other tests never meet its workers."""
    try:
        with redis_server() as url:
            yield url
    except RedisUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(fleet_book(), speed=1.0) as url:
        yield url


def factory(sim_url: str) -> AgentFactory:
    from fleetsupport import TOOLS

    return AgentFactory(
        provider="anthropic", model="sim-model", base_url=sim_url, api_key="sim-key", tools=TOOLS
    )


async def enqueue(url: str, prompt: str) -> str:
    log, queue = RedisLog(url), RunQueue(url)
    try:
        await queue.ensure_group()
        run = f"r_{os.urandom(6).hex()}"
        request = RunRequest(prompt=prompt, settings={"errors": {"backoff": {"scale": 0.001}}})
        await log.create(run, meta=request.start_data())
        await queue.enqueue(run, request)
        return run
    finally:
        await queue.aclose()
        await log.aclose()


async def entries(url: str, run: str, *, wait: float = 30.0) -> list[LogEntry]:
    """The run's whole log once it ended (``wait`` seconds at most)."""
    async with RedisLog(url, poll_interval=0.05) as log:
        got: list[LogEntry] = []
        async with asyncio.timeout(wait):
            async for item in log.read(run, follow=True):
                if isinstance(item, LogEntry):
                    got.append(item)
        return got


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def finish_elsewhere(redis_url: str, sim_url: str, run: str) -> tuple[list[LogEntry], Any]:
    """Start worker B, read the run's log to its end, stop B."""
    b = worker(redis_url, sim_url)
    try:
        return asyncio.run(entries(redis_url, run)), b
    finally:
        b.stop()


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, decode_responses=True)


def assert_one_log(log: list[LogEntry]) -> None:
    """Seqs 1..n without a gap or a repeat, one run_start first and one run_end last."""
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert [e.kind for e in log].count("run_end") == 1 and log[-1].kind == "run_end"
    assert [e.kind for e in log].count("run_start") == 1 and log[0].kind == "run_start"


def visible_text(log: list[LogEntry]) -> str:
    """The text a reader keeps: a ``resumed`` entry drops the partial response it names."""
    kept: dict[int, str] = {}
    for entry in log:
        if entry.kind == "text_delta":
            kept[entry.seq] = entry.data["text"]
        elif entry.kind == "resumed" and entry.data["discarded"]:
            first, last = entry.data["discarded"]
            kept = {seq: text for seq, text in kept.items() if not first <= seq <= last}
    return "".join(kept[s] for s in sorted(kept))


# -- claim -------------------------------------------------------------------------------------------


def test_workers_of_one_group_each_run_is_claimed_once(
    redis_url: str, sim: SimURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIDSTREAM_FLEET_REDIS", redis_url)

    async def main() -> tuple[list[str], list[list[LogEntry]], list[Worker]]:
        logs = [RedisLog(redis_url), RedisLog(redis_url)]
        workers = [Worker(log, factory(sim), concurrency=2, lease_ttl=2.0) for log in logs]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        runs = [await enqueue(redis_url, f"book it, number {i}") for i in range(6)]
        got = [await entries(redis_url, run) for run in runs]
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        for w, log in zip(workers, logs, strict=True):
            await w.aclose()
            await log.aclose()
        return runs, got, workers

    runs, logs, workers = asyncio.run(main())
    assert sum(w.started for w in workers) == 6 and sum(w.resumed for w in workers) == 0
    for run, log in zip(runs, logs, strict=True):
        assert_one_log(log)
        assert log[-1].data["terminal"] == "completed"
        assert [x["tool"] for x in executions(redis_url, run)] == ["book_slot"]
    r = redis_client(redis_url)
    assert r.xlen("ms:{queue}:runs") == 0 and r.zcard("ms:{queue}:active") == 0  # every entry acked


# -- resume after kill -9 ----------------------------------------------------------------------------


def test_a_killed_worker_s_run_resumes_from_its_checkpoint_and_the_partial_is_discarded(
    redis_url: str, sim: SimURL
) -> None:
    a = worker(redis_url, sim)
    run = asyncio.run(enqueue(redis_url, "a long answer, please"))
    r = redis_client(redis_url)
    wait_for(lambda: r.xlen(f"ms:{{{run}}}:log") >= 12)  # the answer is streaming
    a.kill()
    log, b = finish_elsewhere(redis_url, sim, run)
    assert_one_log(log)
    resumed = [e for e in log if e.kind == "resumed"]
    assert (
        len(resumed) == 1 and resumed[0].data["previous"] == a.owner and resumed[0].data["worker"] == b.owner
    )
    first, last = resumed[0].data["discarded"]
    partial = [e for e in log if e.kind == "text_delta" and e.seq < resumed[0].seq]
    assert partial and first <= partial[0].seq and partial[-1].seq <= last < resumed[0].seq
    assert log[-1].data["terminal"] == "completed"
    assert visible_text(log) == LONG_TEXT  # no gap, nothing twice, for a reader that drops the partial
    assert ai_sdk_text(log) == LONG_TEXT  # useChat drops it too: the adapter resets the step


def ai_sdk_text(log: list[LogEntry]) -> str:
    """The text an AI SDK 7 client keeps from the log's UI Message Stream (``reset-step`` drops the
    text of the step so far)."""
    from midstream.relay.adapters import UIMessageStream

    translator, steps, text = UIMessageStream(), [], ""
    for entry in log:
        for chunk in translator.feed(entry.payload()):
            if chunk["type"] == "text-delta":
                text += chunk["delta"]
            elif chunk["type"] == "reset-step":
                text = ""
            elif chunk["type"] == "finish-step":
                steps.append(text)
                text = ""
    return "".join(steps) + text


def _held_runs(redis_url: str, sim: SimURL, *work: tuple[str, str]) -> tuple[list[str], Any]:
    """Start runs (prompt, tool) on worker A, hold each inside its tool, kill -9 A; the runs and A."""
    r = redis_client(redis_url)
    r.set("fleet:hold", "1")
    r.delete(*(f"fleet:entered:{tool}" for _, tool in work))
    a = worker(redis_url, sim)
    runs = [asyncio.run(enqueue(redis_url, prompt)) for prompt, _ in work]
    for run, (_, tool) in zip(runs, work, strict=True):
        wait_for(lambda run=run, tool=tool: r.get(f"fleet:entered:{tool}") == run)
    a.kill()
    r.delete("fleet:hold")
    return runs, a


def _journal(redis_url: str, run: str) -> list[EffectRecord]:
    async def main() -> list[EffectRecord]:
        async with RedisLog(redis_url) as log:
            assert isinstance(log, RedisLog)
            durable = RedisDurability(log)
            try:
                return list(durable.journal(Lease(run, "reader", 0)).records())
            finally:
                await durable.aclose()

    return asyncio.run(main())


def test_an_effect_in_flight_at_the_crash_is_uncertain_unless_the_tool_is_idempotent(
    redis_url: str, sim: SimURL
) -> None:
    (booked, charged), _ = _held_runs(
        redis_url, sim, ("book a slot", "book_slot"), ("charge the card", "charge_card")
    )
    b = worker(redis_url, sim)
    try:
        book_log = asyncio.run(entries(redis_url, booked))
        charge_log = asyncio.run(entries(redis_url, charged))
    finally:
        b.stop()
    for log in (book_log, charge_log):
        assert_one_log(log)
        assert [e.kind for e in log].count("resumed") == 1
    # not idempotent: it may have happened, so it is not run again; the model is told
    assert len(executions(redis_url, booked)) == 1
    failed = [e for e in book_log if e.kind == "tool_failed"]
    assert len(failed) == 1 and failed[0].data["reason"] == "uncertain"
    assert [r.status for r in _journal(redis_url, booked)] == ["started"]
    # idempotent: it runs again, with the same idempotency key (the service deduplicates). The call id
    # is the same too unless the crash came before the response's checkpoint was saved: then the
    # response is asked for again, and the same input meets the same key.
    runs = executions(redis_url, charged)
    assert len(runs) == 2 and runs[0]["key"] == runs[1]["key"] and runs[0]["key"]
    finished = [e for e in charge_log if e.kind == "tool_finished"]
    assert len(finished) == 1 and finished[0].data["status"] == "done"
    assert charge_log[-1].data["terminal"] == "completed"


def test_an_effect_the_journal_shows_done_is_reused_after_a_crash(redis_url: str, sim: SimURL) -> None:
    (run,), a = _held_runs(redis_url, sim, ("book a slot", "book_slot"))
    # The state a crash right after journaling "done" leaves (before the checkpoint got the result):
    # the dead worker's lease generation is still the current one, so its journal write lands.
    [started] = _journal(redis_url, run)
    generation = int(redis_client(redis_url).hget(f"ms:{{{run}}}:meta", "generation"))

    async def journal_done() -> None:
        async with RedisLog(redis_url) as log:
            assert isinstance(log, RedisLog)
            durable = RedisDurability(log)
            done = EffectRecord(
                started.call_id, "book_slot", started.idempotency_key, "done", result="booked morning"
            )
            durable.journal(Lease(run, a.owner, generation)).append(done)
            await durable.aclose()

    asyncio.run(journal_done())
    log, _ = finish_elsewhere(redis_url, sim, run)
    assert_one_log(log)
    assert len(executions(redis_url, run)) == 1  # never executed again
    finished = [e for e in log if e.kind == "tool_finished"]
    assert len(finished) == 1 and finished[0].data["status"] == "skipped"
    assert finished[0].data["result"] == "booked morning"
    assert log[-1].data["terminal"] == "completed"


# -- fencing -----------------------------------------------------------------------------------------


def test_a_superseded_worker_can_neither_append_nor_checkpoint_nor_journal(redis_url: str) -> None:
    async def main() -> None:
        async with RedisLog(redis_url) as log:
            assert isinstance(log, RedisLog)
            durable = RedisDurability(log)
            await log.create("r1")
            old = await log.acquire("r1", "worker-a", ttl=0.2)
            await log.append(old, "run_start", {"prompt": "hi"})
            await asyncio.sleep(0.3)  # worker-a went silent: its lease expired
            new = await log.acquire("r1", "worker-b", ttl=5)
            checkpoint = Checkpoint(turns=(Turn("user", (UserText("hi"),)),))
            record = EffectRecord("c1", "book_slot", "k1", "started")
            with pytest.raises(LeaseLost):
                await log.append(old, "text_delta", {"index": 0, "text": "late"})
            with pytest.raises(LeaseLost):
                await durable.save(old, checkpoint)
            with pytest.raises(LeaseLost):
                durable.journal(old).append(record)
            assert await log.append(new, "resumed", {"previous": "worker-a"}) == 2
            await durable.save(new, checkpoint)
            durable.journal(new).append(record)
            assert (await durable.load("r1"))[1] == 2
            assert [r.status for r in durable.journal(new).records()] == ["started"]
            await durable.aclose()

    asyncio.run(main())


def test_a_frozen_worker_that_wakes_up_after_the_takeover_writes_nothing(redis_url: str, sim: SimURL) -> None:
    a = worker(redis_url, sim)
    run = asyncio.run(enqueue(redis_url, "a long answer, please"))
    r = redis_client(redis_url)
    wait_for(lambda: r.xlen(f"ms:{{{run}}}:log") >= 12)
    os.kill(a.proc.pid, signal.SIGSTOP)  # frozen, not dead: it will wake up believing it owns the run
    b = worker(redis_url, sim)
    try:
        wait_for(lambda: r.hget(f"ms:{{{run}}}:meta", "owner") == b.owner)
        os.kill(a.proc.pid, signal.SIGCONT)
        log = asyncio.run(entries(redis_url, run))
        time.sleep(0.5)  # room for A's late appends, had they been accepted
        assert [e.seq for e in asyncio.run(entries(redis_url, run))] == [e.seq for e in log]
    finally:
        b.stop()
        a.stop()
    assert_one_log(log)
    assert visible_text(log) == LONG_TEXT


# -- 429 ---------------------------------------------------------------------------------------------


def test_a_full_process_answers_429_with_retry_after(sim: SimURL) -> None:
    with running("memory", factory=factory(sim), max_runs=1) as url:
        first = httpx2.post(f"{url}/v1/runs", json={"prompt": "a long answer, please"}, timeout=10)
        second = httpx2.post(f"{url}/v1/runs", json={"prompt": "a long answer, please"}, timeout=10)
        assert first.status_code == 201
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        error = second.json()["error"]
        assert error["type"] == "too_many_runs" and error["scope"] == "process" and error["limit"] == 1
        assert len(httpx2.get(f"{url}/v1/runs", timeout=10).json()["runs"]) == 1  # the refused one is gone


def test_a_full_fleet_answers_429_and_frees_a_slot_when_a_run_ends(
    redis_url: str, sim: SimURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIDSTREAM_FLEET_REDIS", redis_url)

    def front(log: Any) -> QueueExecutor:
        return QueueExecutor(RunQueue(redis_url), max_active=1)

    with running(redis_url, executor=front) as url:
        first = httpx2.post(f"{url}/v1/runs", json={"prompt": "book it"}, timeout=10)
        second = httpx2.post(f"{url}/v1/runs", json={"prompt": "book it"}, timeout=10)
        assert first.status_code == 201
        assert second.status_code == 429 and second.json()["error"]["scope"] == "fleet"
        b = worker(redis_url, sim)
        try:
            log = asyncio.run(entries(redis_url, first.json()["id"]))
            assert log[-1].data["terminal"] == "completed"
            third = wait_for(
                lambda: (
                    response
                    if (
                        response := httpx2.post(f"{url}/v1/runs", json={"prompt": "book it"}, timeout=10)
                    ).status_code
                    == 201
                    else None
                )
            )
            assert asyncio.run(entries(redis_url, third.json()["id"]))[-1].data["terminal"] == "completed"
        finally:
            b.stop()


def test_a_worker_serves_the_metrics_of_the_runs_it_executes(
    redis_url: str, sim: SimURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue front-end executes nothing, so its /metrics cannot show the runs: each worker's does."""
    monkeypatch.setenv("MIDSTREAM_FLEET_REDIS", redis_url)

    def front(log: Any) -> QueueExecutor:
        return QueueExecutor(RunQueue(redis_url))

    b = worker(redis_url, sim, "--metrics-port", "0")
    try:
        metrics_url = b.line.split("metrics at ", 1)[1].split()[0]
        assert metrics_url.startswith("http://127.0.0.1:")
        with running(redis_url, executor=front) as url:
            made = httpx2.post(f"{url}/v1/runs", json={"prompt": "book it"}, timeout=10)
            assert asyncio.run(entries(redis_url, made.json()["id"]))[-1].data["terminal"] == "completed"
            front_end = httpx2.get(f"{url}/metrics", timeout=10).text
        scraped = {f.name: f.samples for f in text_string_to_metric_families(httpx2.get(metrics_url).text)}
    finally:
        b.stop()
    runs = scraped["gen_ai_invoke_agent_duration_seconds"]
    assert [s.value for s in runs if s.name.endswith("_count")] == [1]
    streams = [s for s in scraped["midstream_streams"] if s.name == "midstream_streams_total"]
    assert sum(s.value for s in streams if s.labels.get("midstream_terminal") == "completed") >= 1
    assert "gen_ai_invoke_agent_duration_seconds_count" not in front_end  # it ran nothing itself


def test_the_queue_refuses_beyond_its_limit_without_enqueuing(redis_url: str) -> None:
    async def main() -> tuple[int, int]:
        queue = RunQueue(redis_url)
        await queue.ensure_group()
        request = RunRequest(prompt="hi")
        await queue.enqueue("r1", request, limit=1)
        with pytest.raises(TooManyRuns) as refused:
            await queue.enqueue("r2", request, limit=1)
        assert refused.value.scope == "fleet"
        active = await queue.active()
        await queue.aclose()
        return active, redis_client(redis_url).xlen(queue.stream)

    assert asyncio.run(main()) == (1, 1)


def test_a_resumed_ledger_keeps_each_call_s_key_and_numbers_new_identical_calls_on() -> None:
    from midstream.agent.effects import EffectLedger, MemoryJournal
    from midstream.agent.tools import Tool

    booked: list[str] = []
    book_slot = Tool(lambda slot: booked.append(slot), name="book_slot", side_effect=True)
    journal = MemoryJournal()

    async def main() -> tuple[list[str], list[str]]:
        first = EffectLedger(journal)
        done = await first.execute(book_slot, "c1", {"slot": "x"})  # iteration 1 booked x
        # iteration 2 books x again, deliberately: the crash comes while it runs (journal: started)
        second_key = first.key_for(book_slot, {"slot": "x"})
        journal.append(EffectRecord("c2", "book_slot", second_key, "started", input={"slot": "x"}))
        keys = {**first.keys, "c2": second_key}
        resumed = EffectLedger(journal, already_run=["c1", "c2"], keys=keys)
        again = await resumed.execute(book_slot, "c2", {"slot": "x"})
        third = await resumed.execute(book_slot, "c3", {"slot": "x"})  # a third, new, identical call
        return [done.status, again.status, third.status], [keys["c1"], keys["c2"], resumed.keys["c3"]]

    statuses, keys = asyncio.run(main())
    # c2's effect is uncertain (it is not idempotent): not skipped as if it were c1's, not re-run
    assert statuses == ["done", "uncertain", "done"]
    assert keys[1] == f"{keys[0]}#1" and keys[2] == f"{keys[0]}#2"
    assert booked == ["x", "x"]


def test_the_worker_and_queue_options_need_a_redis_store() -> None:
    from typer.testing import CliRunner

    from midstream.cli import app

    runner = CliRunner()
    refused = runner.invoke(app, ["worker", "--store", "sqlite:///x.db"])
    assert refused.exit_code == 2 and "redis://" in refused.output
    refused = runner.invoke(app, ["serve", "--store", "memory", "--queue"])
    assert refused.exit_code == 2 and "--queue needs a shared store" in refused.output
    shown = runner.invoke(app, ["worker", "--help"])
    assert shown.exit_code == 0 and "--lease-ttl" in shown.output and "resumed" in shown.output


def test_a_stopped_worker_hands_the_runs_it_could_not_finish_to_the_others(
    redis_url: str, sim: SimURL
) -> None:
    r = redis_client(redis_url)
    r.set("fleet:hold", "1")
    a = worker(redis_url, sim, "--grace", "0.5")
    run = asyncio.run(enqueue(redis_url, "book a slot"))
    wait_for(lambda: r.get("fleet:entered:book_slot") == run)
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=30) == 0  # its run still executing after --grace: left, not cancelled
    r.delete("fleet:hold")
    log, _ = finish_elsewhere(redis_url, sim, run)
    a.stop()
    assert_one_log(log)
    kinds = [e.kind for e in log]
    assert "cancel" not in kinds and kinds.count("resumed") == 1
    assert next(e for e in log if e.kind == "resumed").data["previous"] == a.owner
    assert log[-1].data["terminal"] == "completed" and len(executions(redis_url, run)) == 1


def test_a_superseded_producer_stops_without_undoing_the_effects_the_new_one_goes_on_from(
    sim: SimURL,
) -> None:
    from midstream.agent.tools import Tool
    from midstream.relay.runner import LocalExecutor
    from midstream.relay.stores import MemoryLog

    booked: list[str] = []
    undone: list[str] = []
    tools = [
        Tool(lambda topic: f"{topic}: free", name="lookup"),
        Tool(lambda slot: booked.append(slot), name="book_slot", side_effect=True, compensate=undone.append),
    ]
    make = AgentFactory(provider="anthropic", model="sim-model", base_url=sim, api_key="sim-key", tools=tools)

    async def main() -> list[str]:
        log = MemoryLog()
        executor = LocalExecutor(log, make)
        await log.create("r1")
        await executor.start("r1", RunRequest(prompt="run the errand", max_tokens=4000))
        async with asyncio.timeout(20):
            async for item in log.read("r1", follow=True):
                if (
                    isinstance(item, LogEntry)
                    and item.kind == "tool_finished"
                    and item.data["name"] == "book_slot"
                ):
                    break
        await log.acquire("r1", executor.owner)  # a takeover: a new generation fences the old lease
        await executor.wait("r1")
        return [e.kind async for e in log.read("r1") if isinstance(e, LogEntry)]

    kinds = asyncio.run(main())
    assert booked == ["evening"] and undone == []  # the effect stays: the run goes on from it
    assert "run_end" not in kinds and "tool_compensated" not in kinds


def test_a_run_streaming_while_redis_restarts_with_aof_is_resumed_and_completes(
    sim: SimURL, tmp_path: Any
) -> None:
    import shutil
    import subprocess

    from midstream.relay.testing import free_port

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    url = f"redis://127.0.0.1:{port}/0"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_for(lambda: _pings(url))
        return proc

    server = start()
    a = worker(url, sim)
    try:
        run = asyncio.run(enqueue(url, "a long answer, please"))
        wait_for(lambda: redis_client(url).xlen(f"ms:{{{run}}}:log") >= 12)
        server.kill()  # Redis itself dies mid-run; the worker keeps running
        server.wait()
        time.sleep(1.0)
        server = start()
        log = asyncio.run(entries(url, run, wait=60))
    finally:
        a.stop()
        server.kill()
        server.wait()
    assert_one_log(log)
    assert [e.kind for e in log].count("resumed") == 1 and log[-1].data["terminal"] == "completed"
    assert visible_text(log) == LONG_TEXT


def _pings(url: str) -> bool:
    try:
        return bool(redis_client(url).ping())
    except Exception:
        return False
