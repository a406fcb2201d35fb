"""Test helpers for code built on midstream: a dialect's split invariance, a fake clock, the simulator.

What midstream's own tests use, shipped for those who write a dialect, a client shell or an agent of
their own (as ``trio.testing`` ships trio's):

* :func:`assert_split_invariant` feeds a whole stream body to a decoder at once, one byte at a time,
  cut after every line end, cut after every blank line (where an event ends, the way providers flush)
  and in many random splits, and fails unless every run yields the same events. That any split of
  the input gives the same events is the property every sans-IO decoder must have.
* :class:`FakeClock` is a clock that moves only when told, for everything in midstream that takes its
  readings as an argument (:class:`~midstream.metrics.MetricsRecorder`,
  :class:`~midstream.client.timeouts.Deadlines`, the client's retry session).
* :func:`simulator_fixture` makes a pytest fixture that runs the provider simulator
  (:func:`midstream.sim.running`) for a test module, so that a client or an agent can be tested
  against every provider's real wire format with no key and no network.

Example, in a test module::

    from midstream.testing import assert_split_invariant, simulator_fixture

    sim = simulator_fixture()  # the fixture is named "sim"

    def test_my_client(sim):
        ...  # talk to the simulator at the URL ``sim``

    def test_split(body: bytes):
        events = assert_split_invariant("anthropic", body)

pytest and the simulator are imported only by :func:`simulator_fixture`: the rest needs neither.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midstream import wire
from midstream.errors import LocalError
from midstream.events import Event

if TYPE_CHECKING:
    from midstream.sim import ScenarioBook, SimURL

__all__ = [
    "Dialect",
    "FakeClock",
    "assert_split_invariant",
    "decode_chunks",
    "random_splits",
    "simulator_fixture",
    "split_at",
]


Dialect = str | Callable[[], "wire.DialectDecoder"]
"""A dialect name (see :data:`midstream.wire.DIALECTS`), or a function that makes a fresh decoder: any
object with ``feed(bytes) -> list[Event]`` and ``close() -> list[Event]``, such as one of your own."""


def decode_chunks(dialect: Dialect, chunks: Iterable[bytes], **options: Any) -> list[Event]:
    """Feed ``chunks`` to a fresh decoder for ``dialect`` (``options`` are the limits of a named
    dialect's decoder), then close it: all events in order.

    >>> body = b'{"model":"m","message":{"content":"hi"},"done":true}\\n'
    >>> [e.kind for e in decode_chunks("ollama", [body[:9], body[9:]])]
    ['response_start', 'block_start', 'text_delta', 'block_stop', 'response_end']
    """
    decoder = wire.decoder(dialect, **options) if isinstance(dialect, str) else dialect()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (offsets outside ``1 .. len(data) - 1`` are ignored).

    >>> split_at(b"abcdef", [2, 4])
    [b'ab', b'cd', b'ef']
    """
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    """A random split of ``data``: between 1 and 64 cuts, so some pieces are a byte or two long.

    >>> b"".join(random_splits(b"event: ping\\n\\n", random.Random(1))) == b"event: ping\\n\\n"
    True
    """
    if len(data) < 2:
        return [data]
    n = rng.randint(1, min(64, len(data) - 1))
    return split_at(data, rng.sample(range(1, len(data)), n))


def assert_split_invariant(
    dialect: Dialect, data: bytes, *, random_runs: int = 200, seed: int = 0, **options: Any
) -> list[Event]:
    """Decode ``data`` whole, one byte at a time, cut after every line end and after every blank line,
    and in ``random_runs`` random splits (reproducible from ``seed``); raise :class:`AssertionError`
    naming the first run that differs. ``options`` are the decoder's limits. Returns the events of the
    whole-input decode.

    A decoder that raises on the input must raise the same way for every split; that is checked too.

    >>> body = b'{"model":"m","message":{"content":"hi"},"done":true}\\n'
    >>> assert_split_invariant("ollama", body, random_runs=20)[-1].terminal
    'completed'
    """
    whole = _outcome(dialect, [data], options)
    bytewise = _outcome(dialect, [data[i : i + 1] for i in range(len(data))], options)
    if bytewise != whole:
        raise AssertionError(f"{_name(dialect)}: byte-at-a-time decode differs from the whole")
    # Providers flush whole lines and whole events: decoders read such chunks their own fast way.
    for what, ends in (("line", _LINE_ENDS), ("event", _EVENT_ENDS)):
        if _outcome(dialect, split_at(data, [m.end() for m in ends.finditer(data)]), options) != whole:
            raise AssertionError(f"{_name(dialect)}: a decode cut after every {what} differs from the whole")
    rng = random.Random(seed)
    for run in range(random_runs):
        chunks = random_splits(data, rng)
        if _outcome(dialect, chunks, options) != whole:
            where = f"random split #{run} ({len(chunks)} chunks, seed {seed})"
            raise AssertionError(f"{_name(dialect)}: {where} differs from the whole")
    if isinstance(whole, _SameError):
        raise whole.exc
    return whole


_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_EVENT_ENDS = re.compile(rb"(?:\r\n|\r|\n){2}")


def _outcome(dialect: Dialect, chunks: list[bytes], options: dict[str, Any]) -> list[Event] | _SameError:
    try:
        return decode_chunks(dialect, chunks, **options)
    except LocalError:
        raise
    except Exception as exc:  # compared by type and message: the same error for every split
        return _SameError(exc)


def _name(dialect: Dialect) -> str:
    return dialect if isinstance(dialect, str) else getattr(dialect, "__name__", repr(dialect))


class _SameError:
    """A decoder's exception, equal to another of the same type and message."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.key = (type(exc), str(exc))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameError) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


class FakeClock:
    """A clock that moves only when told. Calling it reads it (seconds, like ``time.monotonic``);
    :meth:`advance` and :meth:`sleep` move it; :meth:`time` is a wall clock (like ``time.time``) that
    moves with it.

    >>> clock = FakeClock()
    >>> clock()
    0.0
    >>> clock.advance(1.5)
    >>> clock(), clock.time() - FakeClock.EPOCH
    (1.5, 1.5)
    """

    EPOCH = 1_700_000_000.0
    """The wall-clock reading at monotonic ``0.0`` (a fixed moment in November 2023)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"

    def time(self) -> float:
        """The wall-clock reading: :attr:`EPOCH` plus the monotonic reading."""
        return self.EPOCH + self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never back: a monotonic clock does not go back)."""
        if seconds < 0:
            raise LocalError(f"a clock does not go back: advance({seconds!r})")
        self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Like ``time.sleep``, but only moves the clock: inject it where code sleeps."""
        self.advance(max(0.0, seconds))


def simulator_fixture(
    book: ScenarioBook | str | Path | None = None,
    *,
    speed: float = 0.0,
    seed: int = 0,
    realism: bool = True,
    scope: str = "module",
    name: str = "sim",
) -> Callable[..., Iterator[SimURL]]:
    """A pytest fixture named ``name`` that runs the simulator for the ``scope`` (a module by default)
    and gives its base URL (a :class:`~midstream.sim.SimURL`, whose ``simulator`` holds the request log).

    ``book`` is a :class:`~midstream.sim.ScenarioBook`, the path of a scenario file, or ``None`` for the
    simulator's default answers; ``speed=0`` (the default) skips every delay of the latency model,
    ``speed=1`` plays it in real time. Assign the result to a module attribute (or a ``conftest.py``
    one) for pytest to find it::

        paced = simulator_fixture("scenarios.yaml", speed=1.0, name="paced")
    """
    import pytest

    from midstream.sim import running

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload, untyped-decorator, unused-ignore]
    def fixture() -> Iterator[SimURL]:
        with running(book, speed=speed, seed=seed, realism=realism) as url:
            yield url

    made: Callable[..., Iterator[SimURL]] = fixture
    return made
