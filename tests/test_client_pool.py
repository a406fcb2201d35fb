"""The client's connection pool: a stream queued for a free connection is not a connect failure; it waits
up to its own ``pool`` timeout, which names itself and says how to raise the limit."""

from __future__ import annotations

import asyncio

import pytest

from midstream.client.errors import StreamTimeout
from midstream.client.stream import AsyncClient, Client
from midstream.client.timeouts import Timeouts
from midstream.config import Settings
from midstream.sim import ScenarioBook, SimURL
from simsupport import simulator

SLOW = {"name": "slow", "match": {"last_user": "(?i)slow"}, "turns": [{"blocks": [{"text": "slow answer"}]}]}
sim = simulator(ScenarioBook.model_validate({"scenarios": [SLOW]}))
STALL = {"x-midstream-fault": "stall_ms=1500;stall_after_events=1"}


def test_a_stream_waiting_for_the_pool_times_out_as_pool_not_connect(sim: SimURL) -> None:
    timeouts = Timeouts(pool=0.3, connect=10)
    with Client("anthropic", api_key="k", base_url=sim, model="m", max_connections=1, timeouts=timeouts) as c:
        holding = c.stream("slow", headers=STALL)
        with holding:
            next(iter(holding))  # the only connection is busy with this stream
            queued = c.stream("slow")
            with pytest.raises(StreamTimeout) as caught, queued:
                list(queued)
    assert caught.value.which == "pool" and caught.value.seconds == 0.3
    assert "max_connections" in str(caught.value) and "Timeouts(pool=" in str(caught.value)
    assert queued.metrics.retries == 0  # waiting again in the same queue would not help


@pytest.mark.anyio
async def test_queued_streams_wait_their_turn_and_all_succeed(sim: SimURL) -> None:
    async def main() -> list[str]:
        async with AsyncClient("anthropic", api_key="k", base_url=sim, model="m", max_connections=2) as c:

            async def one() -> str:
                async with c.stream("slow", headers={"x-midstream-fault": "stall_ms=200"}) as stream:
                    async for _ in stream:
                        pass
                return stream.message.terminal

            return list(await asyncio.gather(*(one() for _ in range(6))))

    assert (await main()) == ["completed"] * 6


@pytest.mark.anyio
async def test_limits_are_configurable_and_come_from_settings() -> None:
    client = Client("anthropic", api_key="k", max_connections=7, max_keepalive_connections=3)
    assert (client.limits.max_connections, client.limits.max_keepalive_connections) == (7, 3)
    assert client.to_async().limits.max_connections == 7
    client.close()
    settings = Settings.model_validate({"client": {"max_connections": 50, "pool_timeout": 30}})
    options = settings.client.options()
    configured = AsyncClient("anthropic", api_key="k", **options)
    assert configured.limits.max_connections == 50 and configured.timeouts.pool == 30
    await configured.aclose()


@pytest.mark.anyio
async def test_first_byte_counts_from_when_a_connection_was_free(sim: SimURL) -> None:
    # The queued stream waits about 1.5 s for the only connection, longer than its first_byte timeout:
    # that wait is the pool's, so the stream still gets its whole answer.
    timeouts = Timeouts(first_byte=1.0, pool=30)

    async def main() -> tuple[str, str]:
        async with AsyncClient("anthropic", api_key="k", base_url=sim, model="m", max_connections=1) as c:
            started = asyncio.Event()

            async def holder() -> str:
                async with c.stream("slow", headers=STALL) as stream:
                    async for _ in stream:
                        started.set()
                return stream.message.terminal

            async def queued() -> str:
                await started.wait()
                async with c.stream("slow", timeouts=timeouts) as stream:
                    async for _ in stream:
                        pass
                return stream.message.terminal

            first, second = await asyncio.gather(holder(), queued())
            return first, second

    assert (await main()) == ("completed", "completed")
