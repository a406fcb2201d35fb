"""The blackboard: subscribers see partial updates, readers only complete versions, compare-and-set
holds over any interleaving of writers (hypothesis), in-process and on Redis across two processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream.errors import LocalError
from midstream.relay.testing import RedisUnavailable, redis_server
from midstream.workflow.blackboard import (
    Blackboard,
    BlackboardUpdate,
    MemoryBlackboard,
    PendingWrite,
    StreamedWrite,
    Subscription,
    VersionConflict,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except RedisUnavailable as exc:
        pytest.skip(str(exc))


WRITERS = 3
op = st.one_of(
    st.tuples(st.just("begin"), st.integers(0, WRITERS - 1)),
    st.tuples(st.just("feed"), st.integers(0, WRITERS - 1), st.text(min_size=1, max_size=5)),
    st.tuples(st.just("commit"), st.integers(0, WRITERS - 1), st.booleans()),
    st.tuples(st.just("discard"), st.integers(0, WRITERS - 1)),
    st.tuples(
        st.just("read"),
    ),
)


async def _play(
    board: Blackboard, ops: list[tuple[Any, ...]], sub: Subscription, settle: Any = None
) -> list[BlackboardUpdate]:
    """Run ``ops`` against ``board`` and a model of it; every read and every commit is checked, then
    what ``sub`` (subscribed to ``doc``) received."""
    version, value = 0, None  # the model: the last complete version
    open_writes: dict[int, tuple[PendingWrite, int, str]] = {}  # writer -> (write, version seen, text)
    fed: dict[str, str] = {}
    committed: dict[str, str] = {}
    for item in ops:
        kind, who = item[0], item[1] if len(item) > 1 else None
        if kind == "begin" and who not in open_writes:
            pending = board.begin("doc", writer=f"w{who}")
            open_writes[who] = (pending, version, "")
            fed[pending.write_id] = ""
        elif kind == "feed" and who in open_writes:
            pending, seen, text = open_writes[who]
            pending.feed(("text",), item[2])
            open_writes[who] = (pending, seen, text + item[2])
            fed[pending.write_id] += item[2]
        elif kind == "commit" and who in open_writes:
            pending, seen, text = open_writes.pop(who)
            expect = seen if item[2] else None
            if expect is not None and expect != version:
                with pytest.raises(VersionConflict) as conflict:
                    await pending.commit(text, expect=expect)
                assert conflict.value.found == version
                assert pending.state == "discarded"
            else:
                entry = await pending.commit(text, expect=expect)
                version, value = version + 1, text
                assert (entry.version, entry.value) == (version, value)
                committed[pending.write_id] = text
        elif kind == "discard" and who in open_writes:
            open_writes.pop(who)[0].discard()
        elif kind == "read":
            entry = await board.read("doc")  # never a partial value: the last commit, or nothing
            got = (0, None) if entry is None else (entry.version, entry.value)
            assert got == (version, value)
    for pending, _, _ in open_writes.values():
        pending.discard()
    if settle is not None:
        await settle(version)
    updates = sub.pending()
    sub.close()
    _check_updates(updates, fed, committed)
    return updates


def _check_updates(updates: list[BlackboardUpdate], fed: dict[str, str], committed: dict[str, str]) -> None:
    """What a subscriber saw: each write's partial text in order, then its one ending."""
    seen: dict[str, str] = {}
    ended: set[str] = set()
    versions = []
    for update in updates:
        assert update.write_id not in ended, "nothing follows a write's ending"
        if update.partial:
            assert update.path == ("text",)
            seen[update.write_id] = seen.get(update.write_id, "") + update.delta
        else:
            ended.add(update.write_id)
        if update.state == "complete":
            assert update.value == committed[update.write_id]
            versions.append(update.version)
    assert versions == list(range(1, len(committed) + 1))
    assert {w: t for w, t in seen.items()} == {w: t for w, t in fed.items() if t}
    assert {u.write_id for u in updates if u.state == "complete"} == set(committed)


@given(st.lists(op, max_size=40))
@settings(max_examples=150, deadline=None)
def test_memory_board_over_interleavings(ops: list[tuple[Any, ...]]) -> None:
    async def main() -> None:
        board = MemoryBlackboard()
        await _play(board, ops, board.subscribe(["doc"]))

    asyncio.run(main())


async def test_a_reader_never_sees_a_streaming_value_that_a_subscriber_sees() -> None:
    board = MemoryBlackboard()
    await board.write("plan", "v1", writer="pm")
    sub = board.subscribe()
    pending = board.begin("plan", writer="architect")
    for piece in ("# Arch", "itecture\n", "services: 12"):
        pending.feed(("value",), piece)
        update = sub.pending()[-1]
        assert (update.partial, update.version, update.delta) == (True, 2, piece)
        entry = await board.read("plan")
        assert entry is not None and (entry.version, entry.value) == (1, "v1")
    await pending.commit("# Architecture\nservices: 12", expect=1)
    done = sub.pending()[-1]
    assert (done.state, done.version, done.value) == ("complete", 2, "# Architecture\nservices: 12")
    assert (await board.read("plan")).value == "# Architecture\nservices: 12"  # type: ignore[union-attr]
    with pytest.raises(VersionConflict, match="version 2, not 1"):
        await board.write("plan", "stale", expect=1)
    with pytest.raises(LocalError, match="after the write was committed"):
        pending.feed(("value",), "more")
    assert await board.keys() == ["plan"]


async def test_a_slow_subscriber_loses_partial_updates_first() -> None:
    board = MemoryBlackboard(max_pending=3)
    sub = board.subscribe()
    pending = board.begin("k")
    for piece in "abcde":
        pending.feed(("v",), piece)
    await pending.commit("abcde")
    states = [(u.state, u.delta) for u in sub.pending()]
    assert states == [("partial", "d"), ("partial", "e"), ("complete", "")]
    assert sub.dropped == 3


def test_held_text_goes_out_in_fewer_pieces_and_whole_at_the_end() -> None:
    board = MemoryBlackboard()
    sub = board.subscribe()
    now = [0.0]
    out = StreamedWrite(board.begin("k"), ("value",), hold_ms=100, clock=lambda: now[0])
    for step, piece in enumerate("abcdefg"):
        now[0] = step * 0.04  # 40 ms apart: held 100 ms at most
        out.write(piece)
    out.flush()
    assert [u.delta for u in sub.pending()] == ["abcd", "efg"]


async def test_redis_board_keeps_the_contract(redis_url: str) -> None:
    from midstream.relay.blackboard import RedisBlackboard

    board = RedisBlackboard(redis_url, board="contract")
    try:
        ops: list[tuple[Any, ...]] = [
            ("begin", 0),
            ("feed", 0, "ab"),
            ("begin", 1),
            ("feed", 1, "xy"),
            ("read",),
            ("commit", 0, True),
            ("read",),
            ("feed", 1, "z"),
            ("commit", 1, True),  # stale: a conflict
            ("begin", 2),
            ("feed", 2, "q"),
            ("commit", 2, False),
            ("read",),
        ]

        sub = board.subscribe(["doc"])
        await asyncio.sleep(0.05)
        received: list[BlackboardUpdate] = []

        async def settle(version: int) -> None:
            async with asyncio.timeout(10):  # the listener delivers asynchronously
                while not any(u.state == "complete" and u.version == version for u in received):
                    received.extend(sub.pending())
                    await asyncio.sleep(0.01)
            for update in received:
                sub.put(update)  # handed back, in order, for _play's check

        await _play(board, ops, sub, settle)
    finally:
        await board.aclose()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from midstream.relay.blackboard import RedisBlackboard

    async def main():
        board = RedisBlackboard(sys.argv[1], board="shared")
        pending = board.begin("architecture", writer="architect")
        for piece in ("# Services", "\\n- orders", "\\n- billing"):
            pending.feed(("value",), piece)
            await asyncio.sleep(0.05)
        await pending.commit("# Services\\n- orders\\n- billing", expect=0)
        await board.aclose()

    asyncio.run(main())
    """
)


async def test_two_processes_share_one_board(redis_url: str) -> None:
    from midstream.relay.blackboard import RedisBlackboard

    board = RedisBlackboard(redis_url, board="shared")
    sub = board.subscribe(["architecture"])
    await asyncio.sleep(0.05)
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, redis_url)
    updates: list[BlackboardUpdate] = []
    try:
        async with asyncio.timeout(20):
            async for update in sub:
                updates.append(update)
                if update.partial:  # another process streams it: a reader here still has nothing
                    assert await board.read("architecture") is None
                else:
                    break
        assert await writer.wait() == 0
    finally:
        if writer.returncode is None:
            writer.kill()
        await board.aclose()
    assert "".join(u.delta for u in updates if u.partial) == "# Services\n- orders\n- billing"
    assert (updates[-1].state, updates[-1].version, updates[-1].writer) == ("complete", 1, "architect")
    reader = RedisBlackboard(redis_url, board="shared")
    try:
        entry = await reader.read("architecture")
        assert entry is not None and (entry.version, entry.writer) == (1, "architect")
        with pytest.raises(VersionConflict):
            await reader.write("architecture", "mine", expect=0)
    finally:
        await reader.aclose()
