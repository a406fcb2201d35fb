"""Recovery, against the simulator: a tool input cut by max_tokens is never executed and asked for again
with a larger budget (the tool then runs exactly once); a prefix that parses never runs; eager input
that keeps failing falls back to buffered; a mid-stream failure is re-requested explicitly, continuing
the text by prefill on Anthropic; plus the pure decision table and the simulator's prefill support."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from agentsupport import Recorder, check_one_ending, client, fast, index, of, run, run_agent
from midstream.agent import (
    Agent,
    FallbackNotice,
    HookNotice,
    Hooks,
    RetryNotice,
    ToolInvalidInput,
    ToolReady,
    ToolStarted,
    tool,
)
from midstream.agent._recovery import can_prefill, judge, merge_prefill, retryable
from midstream.client.errors import (
    ProviderError,
    StreamInterrupted,
    StreamInterruptedByTimeout,
    TransportError,
)
from midstream.client.timeouts import Timeouts
from midstream.config import ErrorSettings
from midstream.core.toolargs import ToolCallInvalid, ToolFieldComplete, ToolFieldStart
from midstream.errors import RemoteProtocolError
from midstream.events import ResponseStart, StreamError, TextDelta
from midstream.message import Message, TextBlock, ToolCall
from midstream.sim import ScenarioBook, SimURL, running
from midstream.sim.requests import parse_request

CONTENT = " ".join(f"word{n}" for n in range(20))
ARTICLE = {"title": "Partial safety", "content": CONTENT}
STORY = "Partial safety means never mistaking a prefix for the whole, however plausible it looks."
BOOK = ScenarioBook.model_validate(
    yaml.safe_load(
        f"""
scenarios:
  - name: article
    match: {{last_user: "(?i)article"}}
    turns:
      - blocks:
          - text: "Saving it."
          - tool_call: {{name: save_article, input: {json.dumps(ARTICLE)}}}
      - blocks: [{{text: "Saved."}}]
  - name: search
    match: {{last_user: "(?i)search"}}
    turns:
      - blocks: [{{tool_call: {{name: search, input: {{query: x, limit: 5}}}}}}]
      - blocks: [{{text: "Found five."}}]
  - name: broken
    match: {{last_user: "(?i)broken"}}
    turns:
      - blocks: [{{tool_call: {{name: search, raw: '{{"query": "x", "limit": 5,}}'}}}}]
      - blocks: [{{tool_call: {{name: search, input: {{query: x, limit: 5}}}}}}]
      - blocks: [{{text: "Found five."}}]
  - name: story
    match: {{last_user: "(?i)story"}}
    turns: [{{blocks: [{{text: "{STORY}"}}]}}]
  - name: weather
    match: {{last_user: "(?i)weather"}}
    turns:
      - blocks:
          - tool_call: {{name: save_article, input: {{title: Paris, content: sunny}}}}
          - tool_call: {{name: save_article, input: {{title: Tokyo, content: rainy}}}}
      - blocks: [{{text: "Both saved."}}]
"""
    )
)


class Calls:
    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []

    def tools(self, *, eager: bool = False) -> list[Any]:
        @tool(side_effect=True)
        def save_article(title: str, content: str) -> str:
            """Save an article."""
            self.inputs.append({"title": title, "content": content})
            return f"saved {title}"

        @tool(eager=eager)
        def search(query: str, limit: int = 10) -> str:
            """Search."""
            self.inputs.append({"query": query, "limit": limit})
            return f"{limit} hits for {query}"

        return [save_article, search]


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return BOOK


def make(url: str, calls: Calls, transport: Any = None, provider: str = "anthropic", **options: Any) -> Agent:
    options.setdefault("settings", fast())
    eager = options.pop("eager", False)
    return Agent(client(url, provider, transport=transport), calls.tools(eager=eager), **options)


# -- max_tokens ----------------------------------------------------------------------------------------------


def test_a_tool_input_cut_by_max_tokens_is_retried_and_runs_exactly_once(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder()
    events, result = run(run_agent(make(sim, calls, recorder, max_tokens=12), "save the article"))
    assert result.terminal == "completed" and result.text == "Saved."
    assert calls.inputs == [ARTICLE]  # exactly once, and with the whole input
    assert [b["max_tokens"] for b in recorder.bodies] == [12, 24, 48, 48]
    cut = of(events, ToolCallInvalid)
    assert [c.reason for c in cut] == ["truncated", "truncated"]
    assert [c.raw for c in cut] == ['{"title": "Partial safety"'] * 2  # never the cut value itself
    assert [(i.reason, i.wrapped) for i in of(events, ToolInvalidInput)] == [
        ("truncated", {"INVALID_JSON": '{"title": "Partial safety"'})
    ] * 2
    retries = of(events, RetryNotice)
    assert [(r.reason, r.attempt, r.max_tokens, r.mode) for r in retries] == [
        ("max_tokens", 1, 24, "restart"),
        ("max_tokens", 2, 48, "restart"),
    ]
    assert [r.delay for r in retries] == [pytest.approx(0.002), pytest.approx(0.004)]  # 2 s, 4 s, scaled
    (started,) = of(events, ToolStarted)
    assert started.input == ARTICLE and index(events, lambda e: e is started) > index(
        events, lambda e: isinstance(e, ToolReady)
    )
    assert result.retries == 2 and result.iterations == 2
    # The truncated attempts never reach the conversation: the model sees one clean assistant turn.
    assert len(recorder.bodies[-1]["messages"]) == 3


def test_when_the_retries_run_out_the_run_ends_truncated_and_nothing_ran(sim: SimURL) -> None:
    calls = Calls()
    settings = fast(errors={"max_retries": 1})
    events, result = run(run_agent(make(sim, calls, max_tokens=12, settings=settings), "save the article"))
    assert result.terminal == "truncated" and not calls.inputs and not of(events, ToolStarted)
    assert "after 1 retries" in (result.reason or "") and result.retries == 1
    assert result.message is not None and result.message.partial and result.text == ""
    assert check_one_ending(events).terminal == "truncated"


def test_growth_and_cap(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder()
    settings = fast(errors={"max_tokens_growth": 3.0, "max_tokens_cap": 30, "max_retries": 5})
    _, result = run(run_agent(make(sim, calls, recorder, max_tokens=12, settings=settings), "article"))
    assert [b["max_tokens"] for b in recorder.bodies] == [12, 30]  # 36 capped to 30, then the cap stops it
    assert result.terminal == "truncated" and "at the cap (30)" in (result.reason or "") and not calls.inputs


def test_retry_on_incomplete_can_be_turned_off(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder()
    settings = fast(errors={"retry_on_incomplete": False})
    _, result = run(run_agent(make(sim, calls, recorder, max_tokens=12, settings=settings), "article"))
    assert len(recorder.bodies) == 1 and result.terminal == "truncated" and not calls.inputs


# -- partial input that parses -------------------------------------------------------------------------------


def test_a_prefix_that_parses_never_triggers_execution(sim: SimURL) -> None:
    calls = Calls()
    events, result = run(run_agent(make(sim, calls, eager=True), "search for x"))
    query_done = index(events, lambda e: isinstance(e, ToolFieldComplete) and e.path == ("query",))
    limit_seen = index(events, lambda e: isinstance(e, ToolFieldStart) and e.path == ("limit",))
    started = index(events, lambda e: isinstance(e, ToolStarted))
    assert query_done < limit_seen < index(events, lambda e: isinstance(e, ToolReady)) < started
    assert Agent(client(sim), Calls().tools())  # the prefix {"query": "x"} alone would validate:
    assert Calls().tools()[1].validate({"query": "x"}) == {"query": "x", "limit": 10}
    assert calls.inputs == [{"query": "x", "limit": 5}] and result.text == "Found five."


def test_a_stream_cut_right_after_a_parsing_prefix_runs_nothing_then_retries(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder({0: "error_after_events=8;error=overloaded"})
    events, result = run(run_agent(make(sim, calls, recorder, eager=True), "search for x"))
    (cut,) = of(events, ToolCallInvalid)
    assert cut.reason == "truncated" and cut.raw == '{"query": "x",'
    assert Calls().tools()[1].validate(json.loads(cut.raw[:-1] + "}"))  # it would have validated
    (retry,) = of(events, RetryNotice)
    assert retry.reason == "stream_error" and retry.mode == "restart" and "overloaded" in (retry.error or "")
    assert calls.inputs == [{"query": "x", "limit": 5}] and len(of(events, ToolStarted)) == 1
    assert index(events, lambda e: isinstance(e, ToolStarted)) > index(events, lambda e: e is retry)
    assert result.terminal == "completed" and len(recorder.bodies) == 3


# -- eager fallback ------------------------------------------------------------------------------------------


def test_eager_input_that_does_not_parse_falls_back_to_buffered(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder()
    agent = make(sim, calls, recorder, eager=True)
    events, result = run(run_agent(agent, "broken input"))
    (invalid,) = of(events, ToolInvalidInput)
    assert invalid.reason == "invalid_json" and invalid.wrapped == {
        "INVALID_JSON": '{"query": "x", "limit": 5,}'
    }
    (fallback,) = of(events, FallbackNotice)
    assert (fallback.tool, fallback.invalid, fallback.iteration) == ("search", 1, 1)
    eager = [{t["name"]: t.get("eager_input_streaming", False) for t in b["tools"]} for b in recorder.bodies]
    assert eager == [{"save_article": False, "search": True}] + [{"save_article": False, "search": False}] * 2
    assert calls.inputs == [{"query": "x", "limit": 5}] and result.text == "Found five."
    assert result.fallbacks == ("search",) and agent.buffered == {"search"}
    assert agent.monitor.tools["search"].fallbacks == 1 and agent.monitor.tools["search"].invalid_json == 1


def test_the_fallback_threshold_is_a_setting(sim: SimURL) -> None:
    calls = Calls()

    async def twice() -> None:  # one event loop: an async client's connections belong to one loop
        agent = make(sim, calls, eager=True, settings=fast(errors={"eager_fallback_after": 2}))
        events, _ = await run_agent(agent, "broken input")
        assert not of(events, FallbackNotice) and agent.invalid_eager["search"] == 1
        events, _ = await run_agent(agent, "broken input")
        assert len(of(events, FallbackNotice)) == 1 and agent.buffered == {"search"}

    run(twice())


# -- failures after content ----------------------------------------------------------------------------------


def test_a_mid_stream_error_is_continued_by_prefill_on_anthropic(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder({0: "error_after_events=6;error=overloaded"})
    hooks, seen = Hooks(), []
    hooks.add("StreamError", lambda e: seen.append(e.to_json()))
    events, result = run(run_agent(make(sim, calls, recorder, hooks=hooks), "tell a story"))
    assert result.terminal == "completed" and result.text == STORY
    (retry,) = of(events, RetryNotice)
    assert retry.reason == "stream_error" and retry.mode == "prefill" and retry.attempt == 1
    prefix = STORY[: retry.kept]
    assert recorder.bodies[1]["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": prefix}],
    }
    assert prefix == "Partial safety means never"  # the text shown before the error, kept
    shown = "".join(e.text for e in of(events, TextDelta))
    assert shown == STORY  # the partial text, then only its continuation: nothing said twice
    assert len(of(events, ResponseStart)) == 2 and len(of(events, StreamError)) == 1
    assert seen[0]["hook_event_name"] == "StreamError" and "overloaded" in seen[0]["error"]
    assert [n.event for n in of(events, HookNotice)] == ["StreamError"]
    assert result.turns[-1].message is not None and result.turns[-1].message.text == STORY


@pytest.mark.parametrize("provider", ["openai-chat", "gemini", "bedrock", "ollama", "openai-responses"])
def test_elsewhere_a_mid_stream_error_restarts_the_answer(sim: SimURL, provider: str) -> None:
    calls, recorder = Calls(), Recorder({0: "error_after_events=6;error=server"})
    events, result = run(run_agent(make(sim, calls, recorder, provider=provider), "tell a story"))
    (retry,) = of(events, RetryNotice)
    assert retry.mode == "restart" and retry.kept == 0 and result.text == STORY
    assert len(recorder.bodies) == 2 and recorder.bodies[0] == recorder.bodies[1]


def test_a_ready_call_in_a_failed_response_does_not_run_until_the_retry(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder({0: "disconnect_after_bytes=1250"})
    events, result = run(run_agent(make(sim, calls, recorder), "weather"))
    first_ready = index(events, lambda e: isinstance(e, ToolReady))
    retry = index(events, lambda e: isinstance(e, RetryNotice))
    assert first_ready < retry  # a call was complete and valid when the connection dropped...
    assert min(i for i, e in enumerate(events) if isinstance(e, ToolStarted)) > retry  # ...and waited
    assert sorted(i["title"] for i in calls.inputs) == ["Paris", "Tokyo"]
    assert of(events, RetryNotice)[0].reason == "stream_error" and result.text == "Both saved."
    assert "lost the connection" in (of(events, RetryNotice)[0].error or "")


def test_a_stall_past_the_idle_timeout_is_re_requested(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder({0: "stall_ms=400;stall_after_events=5"})
    agent = make(sim, calls, recorder, timeouts=Timeouts(idle=0.05))
    events, result = run(run_agent(agent, "tell a story"))
    (retry,) = of(events, RetryNotice)
    assert "idle timeout" in (retry.error or "") and retry.mode == "prefill" and result.text == STORY


def test_bytes_that_do_not_parse_end_the_run_failed(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder({0: "malformed_after_events=6"})
    events, result = run(run_agent(make(sim, calls, recorder), "tell a story"))
    assert result.terminal == "failed" and len(recorder.bodies) == 1 and not of(events, RetryNotice)
    assert isinstance(result.error, StreamInterrupted) and isinstance(result.error.cause, RemoteProtocolError)
    assert check_one_ending(events).error is not None


def test_stream_errors_are_retried_up_to_max_retries(sim: SimURL) -> None:
    calls, recorder = Calls(), Recorder(lambda n, body: "error_after_events=6")
    events, result = run(run_agent(make(sim, calls, recorder), "tell a story"))
    assert result.terminal == "failed" and len(recorder.bodies) == 3 and result.retries == 2
    assert [r.attempt for r in of(events, RetryNotice)] == [1, 2]
    settings = fast(errors={"retry_on_stream_error": False})
    calls, recorder = Calls(), Recorder(lambda n, body: "error_after_events=6")
    _, result = run(run_agent(make(sim, calls, recorder, settings=settings), "tell a story"))
    assert result.terminal == "failed" and len(recorder.bodies) == 1


# -- the decision table --------------------------------------------------------------------------------------


def message(*blocks: Any, terminal: Any = "completed", stop: Any = "end_turn") -> Message:
    return Message(provider="anthropic", blocks=tuple(blocks), terminal=terminal, stop_reason=stop)


CUT_CALL = ToolCall(id="t1", name="save", raw_input='{"a": ', input=None, complete=False, error="truncated")
PARTIAL = message(TextBlock(text="Hello wor", complete=False), terminal="failed", stop=None)
CUT = message(CUT_CALL, terminal="truncated", stop="max_tokens")
LONG_TEXT = message(TextBlock(text="long"), terminal="truncated", stop="max_tokens")
EARLY_EOF = message(TextBlock(text="cut"), terminal="truncated", stop=None)


def mid(cause: BaseException, partial: Message = PARTIAL) -> StreamInterrupted:
    return StreamInterrupted("failed after content", partial=partial, cause=cause)


OVERLOADED = ProviderError("overloaded", status=None, kind="overloaded", retryable=True, provider="anthropic")
IDLE = StreamInterruptedByTimeout("idle", 1.0, provider="x", partial=PARTIAL)
TOTAL = StreamInterruptedByTimeout("total", 9.0, provider="x", partial=PARTIAL)
REFUSED = ProviderError("bad", status=None, kind="invalid_request", retryable=False, provider="anthropic")


@pytest.mark.parametrize(
    ("msg", "error", "retries", "expected"),
    [
        (message(TextBlock(text="hi")), None, 0, ("accept", None, None, 100)),
        (CUT, None, 0, ("retry", "max_tokens", None, 200)),
        (CUT, None, 2, ("end", None, "truncated", 0)),
        (LONG_TEXT, None, 0, ("end", None, "truncated", 0)),
        (EARLY_EOF, None, 0, ("retry", "ended_early", None, 100)),
        (EARLY_EOF, None, 2, ("end", None, "truncated", 0)),
        (PARTIAL, mid(OVERLOADED), 0, ("retry", "stream_error", None, 100)),
        (PARTIAL, mid(OVERLOADED), 2, ("end", None, "failed", 0)),
        (PARTIAL, mid(REFUSED), 0, ("end", None, "failed", 0)),
        (PARTIAL, mid(TransportError("dropped", provider="x")), 0, ("retry", "stream_error", None, 100)),
        (PARTIAL, mid(RemoteProtocolError("garbage")), 0, ("end", None, "failed", 0)),
        (PARTIAL, IDLE, 0, ("retry", "stream_error", None, 100)),
        (PARTIAL, TOTAL, 0, ("end", None, "failed", 0)),
        (PARTIAL, OVERLOADED, 0, ("end", None, "failed", 0)),  # before content: the client retried already
        (message(terminal="cancelled", stop=None), None, 0, ("end", None, "cancelled", 0)),
    ],
)  # fmt: skip
def test_judge(msg: Message, error: BaseException | None, retries: int, expected: tuple[Any, ...]) -> None:
    verdict = judge(
        msg, error, settings=ErrorSettings(), retries=retries, max_tokens=100, provider="anthropic"
    )
    action, reason, terminal, budget = expected
    assert (verdict.action, verdict.reason, verdict.terminal) == (action, reason, terminal)
    if action == "retry":
        assert verdict.max_tokens == budget


def test_prefill_rules() -> None:
    verdict = judge(
        PARTIAL, mid(OVERLOADED), settings=ErrorSettings(), retries=0, max_tokens=9, provider="anthropic"
    )
    assert (verdict.mode, verdict.prefix) == ("prefill", "Hello wor")
    trailing = message(TextBlock(text="Hello world "), terminal="failed", stop=None)
    verdict = judge(trailing, mid(OVERLOADED, trailing), settings=ErrorSettings(), retries=0, max_tokens=9,
                    provider="anthropic")  # fmt: skip
    assert verdict.prefix == "Hello world"  # a prefill may not end in whitespace
    assert judge(PARTIAL, mid(OVERLOADED), settings=ErrorSettings(), retries=0, max_tokens=9,
                 provider="openai-chat").mode == "restart"  # fmt: skip
    with_call = message(TextBlock(text="Let me"), CUT_CALL, terminal="failed", stop=None)
    assert not can_prefill("anthropic", with_call) and not can_prefill(
        "anthropic", message(TextBlock(text="  "))
    )
    continued = message(TextBlock(text="ld, again"), stop="end_turn")
    assert merge_prefill("Hello wor", continued).text == "Hello world, again"
    assert merge_prefill("", continued) is continued
    assert merge_prefill("Hi", message(CUT_CALL)).blocks[0] == TextBlock(text="Hi")
    assert retryable(mid(OVERLOADED)) and not retryable(OVERLOADED)


def test_the_simulator_continues_a_prefilled_answer() -> None:
    body = {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "tell a story"},
        {"role": "assistant", "content": [{"type": "text", "text": "Partial safety"}]},
    ]}  # fmt: skip
    req = parse_request("anthropic", body, {})
    assert (req.prefill, req.assistant_turns, req.last_user) == ("Partial safety", 0, "tell a story")
    two_turns = {"model": "m", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]}  # fmt: skip
    assert parse_request("anthropic", two_turns, {}).prefill == ""
    with running(BOOK, speed=0) as url:
        import httpx2

        answer = httpx2.post(f"{url}/v1/messages", json={**body, "max_tokens": 100, "stream": True})
    texts = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]
    said = "".join(d["delta"]["text"] for d in texts if d.get("delta", {}).get("type") == "text_delta")
    assert said == STORY[len("Partial safety") :]
