"""One way to listen and serve for the simulator, the relay and ``midstream serve``."""

from __future__ import annotations

import doctest
import socket

import pytest

import midstream.sim.serving
from midstream.errors import LocalError
from midstream.relay.serve import running as relay_running
from midstream.sim import running as sim_running


def test_doctests() -> None:
    assert doctest.testmod(midstream.sim.serving).failed == 0


def test_a_busy_port_is_one_line_for_the_relay_and_the_simulator() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for running in (sim_running, relay_running):
            with pytest.raises(LocalError) as caught, running(port=port):
                pass
            assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_both_serve_and_stop() -> None:
    with sim_running(speed=0) as sim, relay_running("memory") as relay:
        for url in (sim, relay):
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=5):
                pass
    for url in (sim, relay):
        host, port = url.removeprefix("http://").split(":")
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=1).close()
