"""What the test modules share: the simulator fixtures, the anyio backend and the ``slow`` marker.

``sim`` runs the simulator with no delays and ``paced`` with its latency model in real time, each once
per test module, serving the scenarios of the ``book`` fixture: the example scenarios, unless the
module overrides ``book`` with its own (a module-level fixture of that name wins over this one)::

    @pytest.fixture(scope="module")
    def book() -> ScenarioBook:
        return BOOK

``fresh_sims`` clears both simulators' request logs (and with them the fault counters of their
scenarios) before a test; a module that counts requests uses it for every test with
``pytestmark = pytest.mark.usefixtures("fresh_sims")``.

``ctrl_c`` gives SIGINT Python's own handler for one test, as an interactive shell does: a test
started from a shell whose background jobs ignore SIGINT would otherwise never see Ctrl-C.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from midstream.sim import ScenarioBook, SimURL, running
from simsupport import example_book, fresh


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    """The scenarios ``sim`` and ``paced`` serve: the example scenarios unless a module overrides it."""
    return example_book()


@pytest.fixture(scope="module")
def sim(book: ScenarioBook) -> Iterator[SimURL]:
    """The simulator at speed 0 (no delays), serving ``book``, for the whole test module."""
    with running(book, speed=0) as url:
        yield url


@pytest.fixture(scope="module")
def paced(book: ScenarioBook) -> Iterator[SimURL]:
    """The simulator at speed 1 (its latency model in real time), serving ``book``."""
    with running(book, speed=1.0) as url:
        yield url


@pytest.fixture
def fresh_sims(sim: SimURL, paced: SimURL) -> None:
    """Both simulators with an empty request log and fresh fault counters."""
    for url in (sim, paced):
        fresh(url)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt (and asyncio installs its handler) during the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio, the loop the agent and the async client are
    tested on."""
    return "asyncio"
