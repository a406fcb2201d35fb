"""A run's state lives in one record, :class:`RunProgress`, apart from the machinery that drives it:
what it holds as a run goes, and that a checkpoint is made from it."""

from __future__ import annotations

import pytest

from agentsupport import client, fast
from midstream.agent import Agent, RunProgress, tool
from midstream.agent.events import IterationStart, RunEnd
from midstream.sim import ScenarioBook, SimURL

BOOK = ScenarioBook.model_validate(
    {
        "scenarios": [
            {
                "name": "weather",
                "match": {"last_user": "(?i)weather"},
                "turns": [
                    {"blocks": [{"tool_call": {"name": "get_weather", "input": {"city": "Paris"}}}]},
                    {"blocks": [{"text": "Paris is sunny."}]},
                ],
            }
        ]
    }
)


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


@pytest.mark.anyio
async def test_progress_follows_the_run_and_the_checkpoint_is_made_from_it(sim: SimURL) -> None:
    agent = Agent(client(sim), [get_weather], settings=fast(), max_tokens=321)
    run = agent.run("weather in Paris?")
    assert isinstance(run.progress, RunProgress)
    assert (run.progress.phase, run.progress.iteration, run.progress.max_tokens) == ("starting", 0, 321)
    seen: list[tuple[int, int]] = []
    async for event in run:
        if isinstance(event, IterationStart):
            seen.append((event.iteration, run.progress.iteration))
        if isinstance(event, RunEnd):
            break
    result = await run
    assert seen == [(1, 1), (2, 2)]  # the progress record moves with the events
    progress = run.progress
    assert result.terminal == "completed" and progress.last is not None
    assert progress.last.text == "Paris is sunny." and progress.retries == 0 and progress.fallbacks == []
    checkpoint = run.checkpoint()
    assert checkpoint.turns == tuple(progress.turns) and len(progress.turns) == 4
    assert checkpoint.iteration == progress.clean_iteration == 2
    assert checkpoint.metadata["max_tokens"] == 321


def test_a_fresh_record_starts_at_the_beginning() -> None:
    fresh = RunProgress(max_tokens=100)
    assert (fresh.phase, fresh.iteration, fresh.clean_iteration, fresh.turns) == ("starting", 0, 0, [])
    assert fresh.step_results == {} and fresh.last is None and fresh.context == ""
