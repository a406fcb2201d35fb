"""midstream.testing, the helpers shipped for users: each one passes what it should and fails what it
should (a checker that cannot fail checks nothing)."""

from __future__ import annotations

import doctest
import random

import httpx2
import pytest

import midstream.testing
from midstream.client.timeouts import Deadlines, Timeouts
from midstream.errors import LocalError, RemoteProtocolError
from midstream.events import Event, TextDelta
from midstream.metrics import MetricsRecorder
from midstream.sim import ScenarioBook, SimURL
from midstream.testing import (
    FakeClock,
    assert_split_invariant,
    decode_chunks,
    random_splits,
    simulator_fixture,
    split_at,
)
from wiresupport import recorded

OWN_BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {"name": "hi", "match": {"last_user": "(?i)hello"}, "turns": [{"blocks": [{"text": "Hi!"}]}]}
        ]
    }
)

own_sim = simulator_fixture(OWN_BOOK, name="own_sim")


def test_the_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(midstream.testing)
    assert tried >= 6 and failures == 0


def test_split_invariance_holds_for_a_recorded_stream() -> None:
    events = assert_split_invariant("anthropic", recorded("anthropic_tool_use.txt"), random_runs=20)
    assert events[-1].kind == "response_end"
    assert events == decode_chunks("anthropic", [recorded("anthropic_tool_use.txt")])


class _ChunkCounter:
    """A decoder that is wrong on purpose: one text delta per chunk it is fed."""

    def __init__(self) -> None:
        self.pieces = 0

    def feed(self, data: bytes) -> list[Event]:
        self.pieces += 1
        return [TextDelta(0, str(self.pieces))]

    def close(self) -> list[Event]:
        return []


def test_a_decoder_that_depends_on_the_split_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="_ChunkCounter: byte-at-a-time decode differs"):
        assert_split_invariant(_ChunkCounter, b"abc")


class _MidSized:
    """Wrong only for some splits: it notices chunks that are neither one byte nor the whole input."""

    def __init__(self) -> None:
        self.sizes: set[int] = set()

    def feed(self, data: bytes) -> list[Event]:
        self.sizes.add(len(data))
        return []

    def close(self) -> list[Event]:
        return [TextDelta(0, "odd" if self.sizes - {1, 40} else "even")]


def test_a_random_split_that_differs_is_named_with_its_seed() -> None:
    assert decode_chunks(_MidSized, [b"x" * 40]) == decode_chunks(_MidSized, [b"x"] * 40)
    with pytest.raises(AssertionError, match=r"_MidSized: random split #0 \(\d+ chunks, seed 7\)"):
        assert_split_invariant(_MidSized, b"x" * 40, seed=7)


class _Shortcut:
    """Wrong only when a chunk longer than one of ``ends`` ends with it (after a line end, or after a
    blank line): where decoders take their shortcuts."""

    ends: tuple[bytes, ...] = ()

    def __init__(self) -> None:
        self.taken = False

    def feed(self, data: bytes) -> list[Event]:
        self.taken |= any(data.endswith(end) and len(data) > len(end) for end in self.ends)
        return []

    def close(self) -> list[Event]:
        return [TextDelta(0, "shortcut" if self.taken else "plain")]


class _AfterLine(_Shortcut):
    ends = (b"\n",)


class _AfterEvent(_Shortcut):
    ends = (b"\n\n", b"\r\n\r\n")


@pytest.mark.parametrize(("decoder", "what"), [(_AfterLine, "line"), (_AfterEvent, "event")])
def test_chunks_cut_after_line_ends_and_events_are_checked(decoder: type[_Shortcut], what: str) -> None:
    body = b"ab\n\ncd\r\n\r\nef"
    with pytest.raises(AssertionError, match=f"{decoder.__name__}: a decode cut after every {what} differs"):
        assert_split_invariant(decoder, body, random_runs=0)


def test_the_same_error_for_every_split_is_raised_as_is() -> None:
    with pytest.raises(RemoteProtocolError):
        assert_split_invariant("ollama", b'{"done": "yes"}\n', random_runs=5)


def test_splits_cover_the_input() -> None:
    rng = random.Random(3)
    for _ in range(50):
        data = bytes(range(rng.randint(0, 40)))
        chunks = random_splits(data, rng)
        assert b"".join(chunks) == data
        assert all(chunks) or data == b""
    assert split_at(b"abc", [0, 3, 9, 1]) == [b"a", b"bc"]


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(10.0)
    assert clock() == clock() == 10.0
    clock.advance(0.25)
    clock.sleep(-1)  # a negative sleep returns at once, like time.sleep(0)
    assert clock() == 10.25
    assert clock.time() == FakeClock.EPOCH + 10.25
    with pytest.raises(LocalError, match="does not go back"):
        clock.advance(-1)


def test_the_fake_clock_drives_the_sans_io_parts() -> None:
    clock = FakeClock()
    deadlines = Deadlines(Timeouts(connect=1, first_byte=2, idle=1, total=10), clock())
    clock.advance(1.5)
    assert deadlines.first_byte(clock()) == (0.5, "first_byte")
    clock.advance(9)
    assert deadlines.expired(clock(), started=True) == "total"
    recorder = MetricsRecorder(clock(), "anthropic")
    clock.advance(0.5)
    recorder.chunk(clock(), 10)
    clock.sleep(0.25)
    recorder.chunk(clock(), 10)
    metrics = recorder.snapshot(clock())
    assert (metrics.time_to_first_byte, metrics.gap_max, metrics.duration) == (0.5, 0.25, 0.75)


def test_the_simulator_fixture_serves_its_book(own_sim: SimURL) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
    answer = httpx2.post(f"{own_sim}/v1/messages", json=body, headers={"x-api-key": "k"}).json()
    assert answer["content"] == [{"type": "text", "text": "Hi!"}]
    assert own_sim.simulator.request_count == 1


def test_the_fake_clock_and_a_seeded_generator_make_retry_decisions_reproducible() -> None:
    from email.utils import formatdate

    from midstream.client._session import Session, status_problem
    from midstream.client.errors import ProviderError
    from midstream.client.providers import build_request
    from midstream.client.request import ChatRequest
    from midstream.core.retry import RetryPolicy

    clock = FakeClock()
    request = build_request("anthropic", ChatRequest.create("m", "hi"), api_key="k-123", base_url=None)

    def session(seed: int) -> Session:
        return Session(
            request,
            provider="anthropic",
            schemas={},
            timeouts=Timeouts(),
            policy=RetryPolicy(),
            secrets=(),
            now=clock(),
            wall_clock=clock.time,
            rng=random.Random(seed),
        )

    error = ProviderError("busy", status=529, kind="overloaded", retryable=True, provider="anthropic")
    backoff = status_problem(error, {})
    assert session(1).decide(backoff, clock()) == session(1).decide(backoff, clock())
    assert session(1).decide(backoff, clock()).delay != session(2).decide(backoff, clock()).delay
    # a retry-after date is read against the injected wall clock: 3 s from the fake now
    dated = status_problem(error, {"retry-after": formatdate(clock.time() + 3, usegmt=True)})
    assert session(1).decide(dated, clock()).delay == 3.0
