"""A stream's one typed phase: the moves it makes on a plain answer, on a retry, and on a cancel during
the wait before a retry; and the table of moves itself (no phase is missing, ``ended`` is final)."""

from __future__ import annotations

import threading
import time
from typing import get_args

import httpx2
import pytest

from midstream.client._shell import _MOVES, StreamPhase
from midstream.client.errors import ProviderError
from midstream.client.stream import Client, Stream
from midstream.core.retry import RetryPolicy
from midstream.sim import SimURL
from simsupport import fault

KEY = "sk-test-phase-0123456789"
pytestmark = pytest.mark.usefixtures("fresh_sims")


class Recording(httpx2.HTTPTransport):
    """Notes the stream's phase each time a request goes out, and faults the first one."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec, self.left = spec, 1
        self.stream: Stream | None = None
        self.phases: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        assert self.stream is not None
        self.phases.append(self.stream.phase)
        if self.left:
            self.left -= 1
            request.headers["x-midstream-fault"] = self.spec
        return super().handle_request(request)


def test_the_table_names_every_phase_and_ended_is_final() -> None:
    assert set(_MOVES) == set(get_args(StreamPhase))
    assert all(target in _MOVES for targets in _MOVES.values() for target in targets)
    assert _MOVES["ended"] == frozenset()
    assert "reading" not in _MOVES["waiting"]  # a retry always sends a new request first


def test_a_plain_answer_goes_connecting_reading_ended(sim: SimURL) -> None:
    with Client("anthropic", api_key=KEY, base_url=sim, model="m") as client:
        stream = client.stream("Hello")
        assert (stream.phase, stream.done) == ("connecting", False)
        with stream:
            assert stream.phase == "reading"
            stream.final()
            assert (stream.phase, stream.done) == ("ended", True)
        assert "ended" in repr(stream)


def test_a_retry_connects_again_before_reading(sim: SimURL) -> None:
    transport = Recording("http_status=429;retry_after_ms=10")
    with Client("anthropic", api_key=KEY, base_url=sim, model="m", transport=transport) as client:
        stream = client.stream("Hello")
        transport.stream = stream
        with stream:
            assert stream.phase == "reading"
            message = stream.final()
    assert transport.phases == ["connecting", "connecting"]
    assert message.terminal == "completed" and stream.metrics.retries == 1
    assert [r.status for r in sim.simulator.records] == [429, 200]


def test_a_cancel_while_waiting_to_retry_ends_the_stream_and_sends_nothing(sim: SimURL) -> None:
    retry = RetryPolicy(max_retries=2, max_server_delay=60.0)
    with Client("anthropic", api_key=KEY, base_url=sim, model="m", retry=retry) as client:
        stream = client.stream("Hello", headers=fault("http_status=429;retry_after_ms=30000;times=1"))
        seen: list[str] = []

        def cancel_once_waiting() -> None:
            give_up = time.monotonic() + 20
            while stream.phase != "waiting" and time.monotonic() < give_up:
                time.sleep(0.005)
            seen.append(stream.phase)
            stream.cancel()

        canceller = threading.Thread(target=cancel_once_waiting)
        canceller.start()
        with stream:
            events = list(stream)
        canceller.join()
    assert seen == ["waiting"]
    assert stream.phase == "ended" and stream.message.terminal == "cancelled"
    assert [e.kind for e in events] == ["response_start", "response_end"]  # a whole, cancelled response
    assert [r.status for r in sim.simulator.records] == [429]  # the retry was never sent


@pytest.mark.parametrize("provider", ["openai-chat", "gemini"])
def test_a_failed_stream_ends_once(sim: SimURL, provider: str) -> None:
    transport = Recording("http_status=400")
    client = Client(provider, api_key=KEY, base_url=sim, model="m", transport=transport)
    with client:
        stream = client.stream("Hello")
        transport.stream = stream
        with pytest.raises(ProviderError) as info:
            stream.__enter__()
        assert info.value.status == 400
        assert stream.phase == "ended"
        stream.close()  # closing an ended stream moves nothing
        assert stream.phase == "ended" and transport.phases == ["connecting"]
