"""Real run logs for the relay's tests: agents run against the simulator, every event converted with
``entry_data`` into the payload a reader of the log gets (JSON round-tripped), with the RunResult."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from agentsupport import Recorder, client, fast
from midstream.agent import Agent, Hooks, Run, RunResult, tool
from midstream.agent.effects import EffectRecord
from midstream.agent.hooks import HookInput, HookResult
from midstream.relay.entry import LogEntry, entry_data
from midstream.sim import ScenarioBook, SimURL

BOOK = ScenarioBook.model_validate(
    yaml.safe_load(
        r"""
scenarios:
  - name: greet
    match: {last_user: "(?i)hello"}
    turns:
      - blocks:
          - thinking: "A greeting deserves a greeting."
          - text: "Hello! How can I help with rivers, weather or articles today?"
  - name: weather
    match: {last_user: "(?i)weather"}
    turns:
      - blocks:
          - thinking: "Two cities, two calls."
          - text: "Checking both cities."
          - tool_call: {name: get_weather, input: {city: Paris}}
          - tool_call: {name: get_weather, input: {city: Tokyo}}
      - blocks: [{text: "Paris and Tokyo are sunny."}]
  - name: article
    match: {last_user: "(?i)article"}
    turns:
      - blocks:
          - text: "Saving it."
          - tool_call:
              name: save_article
              input:
                title: Rivers
                body: "Rivers carry water from the mountains to the sea,
                  shaping valleys and feeding deltas on the way."
      - blocks: [{text: "Saved the article."}]
  - name: broken
    match: {last_user: "(?i)broken"}
    turns:
      - blocks:
          - tool_call: {name: get_weather, raw: '{"city": "Paris",}'}
          - tool_call: {name: get_weather, input: {city: Tokyo}}
      - blocks: [{text: "One of them worked."}]
  - name: wrong-type
    match: {last_user: "(?i)wrong type"}
    turns:
      - blocks: [{tool_call: {name: get_weather, input: {city: 42}}}]
      - blocks: [{text: "That did not work."}]
  - name: unknown-tool
    match: {last_user: "(?i)rocket"}
    turns:
      - blocks: [{tool_call: {name: launch_rocket, input: {stage: 1}}}]
      - blocks: [{text: "There is no such tool."}]
  - name: booking
    match: {last_user: "(?i)book"}
    turns:
      - blocks:
          - text: "Booking the room while the slow job runs."
          - tool_call: {name: book_room, input: {room: "A-12"}}
          - tool_call: {name: slow_job, input: {n: 2}}
      - blocks: [{text: "Both done."}]
  - name: slow
    match: {last_user: "(?i)slow"}
    turns:
      - blocks:
          - text: "Starting the slow job."
          - tool_call: {name: slow_job, input: {n: 1}}
      - blocks: [{text: "Done."}]
  - name: essay
    match: {last_user: "(?i)essay"}
    turns:
      - blocks:
          - text: "Rivers begin as rain on high ground. They gather in streams, cut valleys, carry silt
              and slow down as they reach the plains. Near the sea they split into deltas, where the silt
              builds new land."
"""
    )
)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


@tool(eager=True)
def save_article(title: str, body: str) -> str:
    """Save an article (its input streams eagerly)."""
    return f"saved {title} ({len(body)} characters)"


@tool
async def slow_job(n: int) -> str:
    """Takes a while."""
    await asyncio.sleep(5)
    return f"job {n} done"


UNDONE: list[str] = []


def _unbook(record: EffectRecord) -> None:
    UNDONE.append(str(record.input["room"]))


@tool(side_effect=True, compensate=_unbook)
def book_room(room: str) -> str:
    """Book a room (undone by compensation after a cancel)."""
    return f"booked {room}"


def _no_weather() -> Hooks:
    hooks = Hooks()

    @hooks.on("PreToolUse", matcher="get_weather")
    def deny(event: HookInput) -> HookResult:
        return HookResult("deny", reason="no weather today")

    return hooks


@dataclass(frozen=True)
class RunLog:
    """One run: the payloads of its log, in seq order, and how it ended."""

    name: str
    payloads: list[dict[str, Any]]
    result: RunResult


@dataclass(frozen=True)
class Case:
    prompt: str
    provider: str = "anthropic"
    faults: dict[int, str] | None = None
    options: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    cancel_on: Callable[[Any], bool] | None = None
    hooks: Callable[[], Hooks] | None = None


CASES: dict[str, Case] = {
    "text": Case("hello there", options={"thinking_budget": 512}),  # below max_tokens, as Anthropic requires
    "parallel-tools": Case("weather in Paris and Tokyo", options={"thinking_budget": 512}),
    "invalid-json": Case("broken call"),
    "schema-invalid": Case("a wrong type"),
    "unknown-tool": Case("launch the rocket"),
    "max-tokens-retry": Case("save an article", options={"max_tokens": 30}),
    "max-tokens-truncated": Case(
        "save an article", options={"max_tokens": 30}, settings={"errors": {"max_retries": 0}}
    ),
    "stream-error-restart": Case(
        "weather in Paris and Tokyo",
        provider="openai-chat",
        faults={0: "error_after_events=12;error=overloaded"},
    ),
    "stream-error-prefill": Case("write an essay", faults={0: "error_after_events=12;error=overloaded"}),
    "denied": Case("weather in Paris and Tokyo", hooks=_no_weather),
    "compensated": Case(
        "book a room",
        cancel_on=lambda e: (
            getattr(e, "kind", "") == "tool_finished" and getattr(e, "name", "") == "book_room"
        ),
    ),
    "cancel-in-tool": Case("run the slow job", cancel_on=lambda e: getattr(e, "kind", "") == "tool_started"),
    "cancel-mid-text": Case("write an essay", cancel_on=lambda e: getattr(e, "kind", "") == "text_delta"),
    "failure": Case("write an essay", faults={0: "malformed_after_events=10"}),
}


async def _record(url: SimURL, name: str, case: Case) -> RunLog:
    transport = Recorder(case.faults) if case.faults else None
    agent = Agent(
        client(url, case.provider, transport=transport),
        [get_weather, save_article, slow_job, book_room],
        settings=fast(**(case.settings or {})),
        hooks=case.hooks() if case.hooks is not None else None,
        **(case.options or {}),
    )
    payloads: list[dict[str, Any]] = []
    holder: list[Run] = []

    def on_event(event: Any) -> None:
        kind, data = entry_data(event)
        entry = LogEntry(run=f"run-{name}", seq=len(payloads) + 1, kind=kind, data=data)
        payloads.append(json.loads(json.dumps(entry.payload())))
        if case.cancel_on is not None and case.cancel_on(event):
            holder[0].cancel("stopped by the user")

    run = agent.run(case.prompt, on_event=on_event)
    holder.append(run)
    result = await run.result()
    await agent.client.aclose()
    return RunLog(name, payloads, result)


def record_all(url: SimURL) -> dict[str, RunLog]:
    """Every case of :data:`CASES`, run once against the simulator at ``url``."""

    async def main() -> dict[str, RunLog]:
        return {name: await _record(url, name, case) for name, case in CASES.items()}

    return asyncio.run(main())
