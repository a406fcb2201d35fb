"""The provider simulator: a local HTTP server speaking every provider's streaming protocol.

It is midstream's embedded default (no API key, no network): scripted responses chosen by rules on the
request (:mod:`midstream.sim.scenarios`), a latency model, faults on demand, and a request log at
``GET /_sim/requests``. Start it with ``midstream sim`` or, in tests and examples, with :func:`running`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from midstream.sim._guard import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, RateLimit, guarded
from midstream.sim.scenarios import FaultSpec, LatencySpec, Scenario, ScenarioBook, ScenarioError
from midstream.sim.server import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_REQUEST_BYTES, Simulator
from midstream.sim.serving import base_url, in_thread, listen
from midstream.sim.stream import RequestRecord

__all__ = [
    "FaultSpec",
    "LatencySpec",
    "RequestRecord",
    "Scenario",
    "ScenarioBook",
    "ScenarioError",
    "SimURL",
    "Simulator",
    "running",
]


_LOG_LIMIT = RateLimit()
for _name in ("uvicorn.error", "midstream.sim"):  # a flood of bad requests must not fill the disk
    logging.getLogger(_name).addFilter(_LOG_LIMIT)


class SimURL(str):
    """The base URL of a running simulator (a ``str``), with the :class:`Simulator` behind it."""

    simulator: Simulator

    def requests(self) -> list[dict[str, Any]]:
        """The request log, as ``GET /_sim/requests`` returns it."""
        return [r.as_dict() for r in self.simulator.records]


def _book(scenarios: ScenarioBook | str | Path | None) -> ScenarioBook | None:
    if scenarios is None or isinstance(scenarios, ScenarioBook):
        return scenarios
    return ScenarioBook.load(scenarios)


@contextmanager
def running(
    scenarios: ScenarioBook | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float = 1.0,
    seed: int = 0,
    realism: bool = True,
    startup_timeout: float = 10.0,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> Iterator[SimURL]:
    """Run the simulator in a background thread on a free loopback port; yield its base URL.

    ``scenarios`` is a :class:`ScenarioBook` or the path of a scenario file. ``speed`` divides every
    delay of the latency model (``0``: no waiting, for tests); ``seed`` makes ids, padding and jitter
    reproducible per request number (a request's ``x-midstream-seed`` header pins its own);
    ``realism=False`` turns off the providers' byte-level quirks; a request body larger than
    ``max_request_bytes`` (32 MiB) gets a 413 in the provider's error shape. The server keeps no headers and
    writes no access log, and its loggers (``uvicorn.*``) go to the host program's logging as
    configured there, at most 20 records per logger every 10 s. A connection that has not sent its
    request headers ``header_timeout`` seconds after it opened (or after its previous response) is
    closed, and so is an idle keep-alive connection after 5 s; a request whose body is still arriving
    ``body_timeout`` (30 s) after its headers gets a 408 in the provider's error shape and its connection
    is closed (a slow upload cannot hold the server); beyond ``max_connections`` connections or requests
    at once the server answers 503. It stops when the block exits.
    """
    sim = Simulator(
        _book(scenarios),
        speed=speed,
        seed=seed,
        realism=realism,
        max_request_bytes=max_request_bytes,
        body_timeout=body_timeout,
    )
    sock = listen(host, port)
    # log_config=None: the server's loggers propagate to the host program's logging, untouched.
    config = uvicorn.Config(
        sim.app,
        log_config=None,
        log_level="warning",
        lifespan="off",
        access_log=False,
        http=guarded(header_timeout),
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
    )
    url = SimURL(base_url(host, sock))
    url.simulator = sim
    with in_thread(config, sock, name="the simulator", startup_timeout=startup_timeout):
        yield url
