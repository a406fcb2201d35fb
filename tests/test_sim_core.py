"""The simulator's sans-IO parts: the plan (pacing, tool-argument modes, max_tokens), scenarios,
request parsing and non-streaming bodies; plus every plan through every provider's wire and back."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.events import BlockStop, ResponseEnd, ToolArgsDelta, UsageUpdate
from midstream.sim import ScenarioBook, ScenarioError, running
from midstream.sim.nonstream import error_body, nonstream_body
from midstream.sim.requests import FINE_GRAINED_BETA, parse_request
from midstream.sim.scenarios import (
    FaultSpec,
    Scenario,
    ToolOffer,
    default_parts,
    example_for_schema,
    parts_for,
    pick_turn,
)
from midstream.sim.script import (
    ArgsMode,
    Latency,
    Part,
    TextPart,
    ThinkingPart,
    ToolPart,
    count_tokens,
    plan,
    tokens,
)
from midstream.wire.timeline import Timeline
from simsupport import EXAMPLES


def _plan(parts: list[Part], mode: ArgsMode = "eager", **kw: Any) -> list[Any]:
    return plan(
        parts,
        provider="anthropic",
        model="m",
        response_id="msg_1",
        input_tokens=7,
        args_mode=lambda name: mode,
        **kw,
    )


def _events(parts: list[Part], mode: ArgsMode = "eager", **kw: Any) -> list[Any]:
    return [step.event for step in _plan(parts, mode, **kw)]


ARTICLE = ToolPart("toolu_1", "save", {"title": "Partial safety", "body": "one two three four five six"})


# -- tokens ------------------------------------------------------------------------------------------


@given(st.text(max_size=200))
@settings(max_examples=100, deadline=None)
def test_tokens_concatenate_back_to_the_text(text: str) -> None:
    assert "".join(tokens(text)) == text


def test_tokens_are_word_sized() -> None:
    assert tokens("Hello, world! It's 42.") == ["Hello", ",", " world", "!", " It", "'", "s", " 42", "."]
    assert count_tokens("Hello, world!") == 4


# -- the plan ----------------------------------------------------------------------------------------


def test_plan_streams_one_token_per_event_and_counts_usage() -> None:
    steps = _plan([ThinkingPart("Let me think.", "sig"), TextPart("Hi there.")])
    message = accumulate(step.event for step in steps)
    assert message.thinking == "Let me think."
    assert message.blocks[0].signature == "sig"  # type: ignore[union-attr]
    assert message.text == "Hi there."
    assert message.stop_reason == "end_turn" and message.terminal == "completed"
    assert message.usage.input_tokens == 7
    assert message.usage.output_tokens == 4 + 3 == sum(step.tokens for step in steps)


def test_plan_passes_the_timeline() -> None:
    timeline = Timeline("anthropic")
    for event in _events([TextPart("a b"), ARTICLE, ToolPart("t2", "now")], max_tokens=None):
        timeline.feed(event)
    assert timeline.ended


def test_buffered_arguments_release_whole_members_only() -> None:
    events = _events([ARTICLE], "buffered")
    fragments = [e.fragment for e in events if isinstance(e, ToolArgsDelta)]
    assert fragments == ["", '{"title": "Partial safety"', ', "body": "one two three four five six"', "}"]
    assert accumulate(events).tool_calls[0].input == ARTICLE.input


def test_buffered_cut_by_max_tokens_never_shows_the_cut_value() -> None:
    # "Partial safety" member costs 7 tokens; the body member is cut.
    events = _events([ARTICLE], "buffered", max_tokens=10)
    fragments = "".join(e.fragment for e in events if isinstance(e, ToolArgsDelta))
    assert fragments == '{"title": "Partial safety"'
    call = accumulate(events).tool_calls[0]
    assert call.input is None and call.complete is False
    end = events[-1]
    assert isinstance(end, ResponseEnd) and end.stop_reason == "max_tokens" and end.terminal == "truncated"
    usage = [e for e in events if isinstance(e, UsageUpdate)][-1].usage
    assert usage.output_tokens == 10


def test_eager_cut_stops_mid_value_and_leaves_the_block_incomplete() -> None:
    events = _events([ARTICLE], "eager", max_tokens=12)
    raw = "".join(e.fragment for e in events if isinstance(e, ToolArgsDelta))
    assert raw == '{"title": "Partial safety", "body": "one'
    stops = [e for e in events if isinstance(e, BlockStop)]
    assert stops == [BlockStop(0, complete=False)]


def test_whole_call_that_does_not_fit_is_never_started() -> None:
    events = _events([TextPart("Saving."), ARTICLE], "whole", max_tokens=5)
    message = accumulate(events)
    assert message.tool_calls == [] and message.text == "Saving."
    assert message.stop_reason == "max_tokens"
    whole = _events([ARTICLE], "whole")
    assert [e.fragment for e in whole if isinstance(e, ToolArgsDelta)] == [ARTICLE.text]


def test_text_cut_by_max_tokens_closes_only_when_asked() -> None:
    cut = _events([TextPart("one two three four")], max_tokens=2)
    assert BlockStop(0, complete=False) in cut
    closed = _events([TextPart("one two three four")], max_tokens=2, cut_text_closes=True)
    assert BlockStop(0, complete=True) in closed
    assert accumulate(closed).text == "one two"


def test_reasoning_tokens_and_running_usage() -> None:
    steps = _plan([ThinkingPart("a b c"), TextPart("d e")], report_reasoning=True, running_usage=True)
    updates = [s.event.usage for s in steps if isinstance(s.event, UsageUpdate)]
    assert [u.output_tokens for u in updates] == [1, 2, 3, 4, 5, 5]
    assert updates[-1].reasoning_tokens == 3 and updates[-1].input_tokens == 7
    assert sum(s.tokens for s in steps) == 5


def test_raw_arguments_are_sent_as_scripted() -> None:
    bad = ToolPart("t", "search", raw='{"q": "x",}')
    call = accumulate(_events([bad])).tool_calls[0]
    assert call.raw_input == '{"q": "x",}' and call.input is None and call.error == "invalid_json"


def test_latency_model_is_seeded_scaled_and_jittered() -> None:
    latency = Latency(ttft=0.5, tokens_per_second=10, jitter=0.2, speed=2.0)
    steps = _plan([TextPart("a b c d")], latency=latency, rng=random.Random(1))
    delays = [s.delay for s in steps if s.tokens]
    assert 0.2 <= delays[0] <= 0.3  # 0.5 s / speed 2, +-20 %
    assert all(0.04 <= d <= 0.06 for d in delays[1:])  # 0.1 s / 2, +-20 %
    again = _plan([TextPart("a b c d")], latency=latency, rng=random.Random(1))
    assert [s.delay for s in again] == [s.delay for s in steps]
    instant = _plan([TextPart("a b c d")], latency=Latency(speed=0), rng=random.Random(1))
    assert all(s.delay == 0 for s in instant)


def test_a_buffered_member_arrives_once_all_its_tokens_are_generated() -> None:
    latency = Latency(ttft=0.5, tokens_per_second=10, jitter=0, speed=1)
    steps = _plan([ARTICLE], "buffered", latency=latency)
    member = next(s for s in steps if isinstance(s.event, ToolArgsDelta) and s.event.fragment.startswith("{"))
    assert member.tokens == 7 and member.delay == pytest.approx(0.5 + 6 * 0.1)


_PART = st.one_of(
    st.builds(TextPart, st.text(min_size=1, max_size=40)),
    st.builds(ThinkingPart, st.text(min_size=1, max_size=40), st.sampled_from([None, "c2ln"])),
    st.builds(
        ToolPart,
        st.sampled_from(["call_a", "call_b"]),
        st.sampled_from(["f", "g"]),
        st.dictionaries(
            st.text(min_size=1, max_size=5),
            st.one_of(st.integers(), st.text(max_size=12), st.booleans(), st.none()),
            max_size=4,
        ),
    ),
)


@given(
    parts=st.lists(_PART, max_size=5),
    mode=st.sampled_from(["buffered", "eager", "whole"]),
    max_tokens=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
)
@settings(max_examples=100, deadline=None)
def test_any_plan_is_a_well_formed_response(
    parts: list[Part], mode: ArgsMode, max_tokens: int | None
) -> None:
    parts = [
        p if not isinstance(p, ToolPart) else ToolPart(f"call_{i}", p.name, p.input)
        for i, p in enumerate(parts)
    ]
    steps = _plan(parts, mode, max_tokens=max_tokens)
    timeline = Timeline("anthropic")
    for step in steps:
        timeline.feed(step.event)
    assert timeline.ended
    message = accumulate(step.event for step in steps)
    used = sum(step.tokens for step in steps)
    assert message.usage.output_tokens == used
    if max_tokens is not None:
        assert used <= max_tokens
    if message.stop_reason != "max_tokens":
        assert len(message.blocks) == len(parts)
        for part, call in zip([p for p in parts if isinstance(p, ToolPart)], message.tool_calls, strict=True):
            assert call.input == part.input
    for call in message.tool_calls:
        if mode == "buffered" and call.input is None:
            # Only whole members were released: the text so far plus "}" parses.
            assert call.raw_input == "" or isinstance(json.loads(call.raw_input + "}"), dict)


# -- every plan through every provider's wire --------------------------------------------------------

_WHOLE_CALLS = ("gemini", "ollama")


@pytest.mark.parametrize("provider", wire.DIALECTS)
@given(
    parts=st.lists(_PART, min_size=1, max_size=4),
    max_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=40)),
    seed=st.integers(0, 1000),
)
@settings(max_examples=40, deadline=None)
def test_planned_events_survive_each_providers_wire(
    provider: str, parts: list[Part], max_tokens: int | None, seed: int
) -> None:
    parts = [
        _fit(provider, i, p)
        for i, p in enumerate(parts)
        if provider != "openai-chat" or not isinstance(p, ThinkingPart)
    ]
    steps = plan(
        parts,
        provider=provider,
        model="m",
        response_id="r1" if provider not in ("bedrock", "ollama") else None,
        input_tokens=3,
        args_mode=lambda name: "whole" if provider in _WHOLE_CALLS else "eager",
        max_tokens=max_tokens,
        report_reasoning=provider in ("openai-responses", "gemini"),
    )
    events = [step.event for step in steps]
    want = accumulate(events)
    data = wire.encoder(provider, seed=seed).encode_all(events)
    decoder = wire.decoder(provider)
    got = accumulate(decoder.feed(data) + decoder.close())
    assert got.text == want.text
    assert got.stop_reason == want.stop_reason and got.terminal == want.terminal
    assert got.usage.output_tokens == want.usage.output_tokens
    assert got.usage.input_tokens == want.usage.input_tokens
    calls = [(c.name, c.input) for c in want.tool_calls if c.complete]
    if provider == "openai-chat" and want.stop_reason == "max_tokens":
        # finish_reason "length" cannot tell which calls were whole: every call reads as cut.
        assert all(c.input is None for c in got.tool_calls)
    else:
        assert [(c.name, c.input) for c in got.tool_calls if c.complete] == calls
    if provider not in ("openai-chat", "ollama"):
        assert got.thinking == want.thinking


def _fit(provider: str, n: int, part: Part) -> Part:
    """Parts the way the server hands them to each provider (Gemini and Ollama calls are compact)."""
    if not isinstance(part, ToolPart):
        return part
    if provider == "gemini":
        from midstream.wire.gemini import synthetic_call_id

        return ToolPart(synthetic_call_id("r1", n), part.name, part.input, compact=True)
    return ToolPart(f"call_{n}", part.name, part.input, compact=provider == "ollama")


# -- scenarios ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_scenario_files_validate(name: str) -> None:
    book = ScenarioBook.load(EXAMPLES / name)
    assert book.scenarios and len({s.name for s in book.scenarios}) == len(book.scenarios)


def test_scenario_file_errors_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - name: x\n    turns: [{blocks: [{text: a, thinking: b}]}]\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml"):
        ScenarioBook.load(bad)
    as_json = tmp_path / "ok.json"
    as_json.write_text(json.dumps({"scenarios": [{"name": "j", "turns": [{"blocks": [{"text": "hi"}]}]}]}))
    assert ScenarioBook.load(as_json).named("j") is not None


@pytest.mark.parametrize(
    "scenario",
    [
        {"name": "x", "match": {"last_user": "(unclosed"}, "turns": [{"blocks": [{"text": "a"}]}]},
        {"name": "y", "turns": [{"when_tool_result": "[z-a]", "blocks": [{"text": "a"}]}]},
    ],
)
def test_a_bad_regex_is_a_scenario_file_error(tmp_path: Path, scenario: dict[str, Any]) -> None:
    path = tmp_path / "regex.json"
    path.write_text(json.dumps({"scenarios": [scenario]}))
    with pytest.raises(ScenarioError, match=r"regex\.json"):
        ScenarioBook.load(path)


def test_scenarios_are_chosen_by_rules() -> None:
    book = ScenarioBook.load(EXAMPLES / "weather.yaml")
    weather = ToolOffer(name="get_weather", schema={})
    assert book.choose("anthropic", "What's the WEATHER?", [weather]) is book.scenarios[0]
    assert book.choose("anthropic", "What's the weather?", []) is None  # the tool is not offered
    assert book.choose("anthropic", "hello", [weather]) is None
    only = ScenarioBook.model_validate(
        {
            "scenarios": [
                {"name": "o", "match": {"provider": ["ollama"]}, "turns": [{"blocks": [{"text": "x"}]}]}
            ]
        }
    )
    assert only.choose("anthropic", "", []) is None and only.choose("ollama", "", []) is not None


def test_turns_follow_the_conversation_and_react_to_tool_results() -> None:
    scenario = ScenarioBook.load(EXAMPLES / "weather.yaml").scenarios[0]
    first = pick_turn(scenario, 0, None)
    assert first.blocks[0].thinking is not None
    assert pick_turn(scenario, 1, "18 C, sunny").blocks[0].text == (
        "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."
    )
    assert pick_turn(scenario, 1, "Service unavailable").blocks[0].text == (
        "The weather service is unavailable right now."
    )
    assert pick_turn(scenario, 9, None) is pick_turn(scenario, 1, None)  # the last plain turn repeats
    ids = iter(["id1", "id2"])
    parts = parts_for(first, lambda: next(ids))
    assert [p.id for p in parts if isinstance(p, ToolPart)] == ["id1", "id2"]


def test_default_answers() -> None:
    tool = ToolOffer(
        name="book",
        schema={
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "nights": {"type": "integer", "minimum": 2},
                "kind": {"enum": ["hotel", "flat"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "pets": {"type": "boolean"},
                "price": {"type": ["null", "number"]},
            },
        },
    )
    parts = default_parts("book me a room", [tool], False, lambda: "call_1")
    assert isinstance(parts[1], ToolPart)
    assert parts[1].input == {
        "city": "example city",
        "nights": 2,
        "kind": "hotel",
        "tags": ["example tags"],
        "pets": True,
        "price": 1.5,
    }
    after = default_parts("book me a room", [tool], True, lambda: "x")
    assert after == [TextPart("Thanks, I have the tool result. Here is the answer based on it.")]
    echo = default_parts("  hello   there ", [], False, lambda: "x")
    assert echo == [TextPart("This is the midstream simulator. You said: hello there")]
    assert example_for_schema({"anyOf": [{"type": "integer"}, {"type": "string"}]}) == 1


def test_fault_header_forms() -> None:
    assert FaultSpec.from_header("http_status=529; retry_after_ms=20;times=2") == FaultSpec(
        http_status=529, retry_after_ms=20, times=2
    )
    assert FaultSpec.from_header('{"error_after_events": 3, "error": "server"}').error == "server"
    with pytest.raises(ScenarioError):
        FaultSpec.from_header("http_status=abc")
    with pytest.raises(ScenarioError):
        FaultSpec.from_header("no_such_fault=1")


# -- requests ----------------------------------------------------------------------------------------


def test_anthropic_request() -> None:
    tools = [
        {"name": "a", "input_schema": {"type": "object"}},
        {"name": "b", "input_schema": {}, "eager_input_streaming": True},
    ]
    body = {
        "model": "claude",
        "max_tokens": 50,
        "stream": True,
        "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 10},
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "18 C"}]}
                ],
            },
        ],
    }
    req = parse_request("anthropic", body, {})
    assert (req.model, req.max_tokens, req.stream, req.thinking) == ("claude", 50, True, True)
    assert [(t.name, t.eager) for t in req.tools] == [("a", False), ("b", True)]
    assert req.assistant_turns == 1 and req.last_user == "first" and req.last_tool_result == "18 C"
    beta = parse_request("anthropic", body, {"Anthropic-Beta": f"x,{FINE_GRAINED_BETA}"})
    assert all(t.eager for t in beta.tools)
    assert parse_request("anthropic", {"messages": []}, {}).stream is False


def test_openai_requests() -> None:
    chat = parse_request(
        "openai-chat",
        {
            "model": "gpt",
            "stream": True,
            "max_completion_tokens": 9,
            "stream_options": {"include_usage": True, "include_obfuscation": False},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "tool_calls": []},
                {"role": "tool", "content": "done"},
            ],
        },
        {},
    )
    assert (chat.max_tokens, chat.include_usage, chat.obfuscation) == (9, True, False)
    assert chat.tools[0].name == "f" and chat.last_tool_result == "done" and chat.assistant_turns == 1
    assert parse_request("openai-chat", {"stream": True}, {}).include_usage is False
    responses = parse_request(
        "openai-responses",
        {
            "model": "gpt",
            "max_output_tokens": 20,
            "reasoning": {"effort": "low", "summary": "auto"},
            "tools": [{"type": "function", "name": "f", "parameters": {}}, {"type": "web_search"}],
            "input": [
                {"role": "user", "content": "q"},
                {"type": "reasoning", "summary": []},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "42"},
            ],
        },
        {},
    )
    assert (responses.max_tokens, responses.thinking, responses.assistant_turns) == (20, True, 1)
    assert [t.name for t in responses.tools] == ["f"] and responses.last_tool_result == "42"
    assert parse_request("openai-responses", {"reasoning": {"effort": "low"}}, {}).thinking is False


def test_gemini_request_in_both_spellings() -> None:
    camel = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"t": 18}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
        "generationConfig": {"maxOutputTokens": 30, "thinkingConfig": {"includeThoughts": True}},
        "toolConfig": {"functionCallingConfig": {"streamFunctionCallArguments": True}},
    }
    snake = {
        "contents": camel["contents"],
        "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": {"type": "object"}}]}],
        "generationConfig": {"max_output_tokens": 30, "thinking_config": {"include_thoughts": True}},
        "tool_config": {"function_calling_config": {"stream_function_call_arguments": True}},
    }
    for body in (camel, snake):
        req = parse_request("gemini", body, {}, model="gemini-x")
        assert (req.model, req.max_tokens, req.thinking, req.partial_args) == ("gemini-x", 30, True, True)
        assert req.tools[0].schema == {"type": "object"} and req.assistant_turns == 1
        assert req.last_user == "weather?" and req.last_tool_result == '{"t": 18}'


def test_bedrock_and_ollama_requests() -> None:
    bedrock = parse_request(
        "bedrock",
        {
            "messages": [
                {"role": "user", "content": [{"text": "hi"}]},
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "t", "content": [{"json": {"a": 1}}]}}],
                },
            ],
            "inferenceConfig": {"maxTokens": 12},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]
            },
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        },
        {},
        model="anthropic.claude",
    )
    assert (bedrock.max_tokens, bedrock.thinking, bedrock.tools[0].name) == (12, True, "f")
    assert bedrock.last_tool_result == '{"a": 1}' and bedrock.stream is True
    ollama = parse_request(
        "ollama",
        {
            "model": "llama3",
            "think": True,
            "options": {"num_predict": 7},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "messages": [{"role": "user", "content": "hello"}],
        },
        {},
    )
    assert (ollama.max_tokens, ollama.thinking, ollama.stream, ollama.last_user) == (7, True, True, "hello")
    assert [t.name for t in ollama.tools] == ["f"]
    generate = parse_request("ollama", {"model": "llama3", "prompt": "tell me", "stream": False}, {})
    assert generate.last_user == "tell me" and generate.stream is False


# -- non-streaming bodies ----------------------------------------------------------------------------

_SCRIPT = [
    ThinkingPart("hmm", "c2ln"),
    TextPart("Hello <b>"),
    ToolPart("call_1", "f", {"a": 1}, compact=True),
]


def _nonstream(provider: str, **kw: Any) -> dict[str, Any]:
    steps = plan(
        list(_SCRIPT),
        provider=provider,
        model="m",
        response_id="r1",
        input_tokens=3,
        args_mode=lambda n: "eager",
        **kw,
    )
    body: dict[str, Any] = json.loads(nonstream_body(provider, [s.event for s in steps]))
    return body


def test_nonstream_bodies() -> None:
    anthropic = _nonstream("anthropic")
    assert [b["type"] for b in anthropic["content"]] == ["thinking", "text", "tool_use"]
    assert anthropic["content"][2]["input"] == {"a": 1} and anthropic["stop_reason"] == "tool_use"
    assert anthropic["usage"]["output_tokens"] == 1 + 4 + 5  # "hmm", "Hello <b>", {"a":1}
    chat = _nonstream("openai-chat")["choices"][0]
    assert chat["finish_reason"] == "tool_calls" and chat["message"]["tool_calls"][0]["function"][
        "arguments"
    ] == ('{"a":1}')
    responses = _nonstream("openai-responses", max_tokens=3)
    assert responses["status"] == "incomplete"
    assert responses["incomplete_details"] == {"reason": "max_output_tokens"}
    assert responses["output"][0]["type"] == "reasoning" and responses["usage"]["output_tokens"] == 3
    gemini = _nonstream("gemini")["candidates"][0]
    assert gemini["content"]["parts"][1] == {"text": "Hello <b>"} and gemini["finishReason"] == "STOP"
    bedrock = _nonstream("bedrock", max_tokens=4)
    assert bedrock["stopReason"] == "max_tokens" and bedrock["output"]["message"]["content"][1] == {
        "text": "Hello <b"
    }
    ollama = _nonstream("ollama")
    assert ollama["message"]["tool_calls"][0]["function"]["arguments"] == {"a": 1} and ollama["done"] is True


def test_error_bodies_in_each_providers_shape() -> None:
    body, headers = error_body("anthropic", 529, "overloaded", "Overloaded", "req_1")
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1",
    }
    assert json.loads(error_body("openai-chat", 429, "rate_limited", "slow down")[0])["error"]["code"] == (
        "rate_limit_exceeded"
    )
    assert json.loads(error_body("gemini", 503, "overloaded", "busy")[0])["error"]["status"] == "UNAVAILABLE"
    body, headers = error_body("bedrock", 429, "rate_limited", "slow")
    assert headers["x-amzn-errortype"].startswith("ThrottlingException:")
    assert json.loads(error_body("ollama", 500, "server", "boom")[0]) == {"error": "boom"}


# -- the command line --------------------------------------------------------------------------------


def test_cli_starts_the_simulator(tmp_path: Path) -> None:
    log = tmp_path / "out.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "midstream.cli",
                "sim",
                "--port",
                "0",
                "--speed",
                "0",
                "--scenarios",
                str(EXAMPLES / "weather.yaml"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        url = log.read_text().split("listening on ")[1].split()[0]
        assert httpx2.get(f"{url}/_sim/health").json() == {"ok": True, "requests": 0}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_running_yields_a_url_with_the_simulator() -> None:
    scenario = Scenario.model_validate({"name": "s", "turns": [{"blocks": [{"text": "hey"}]}]})
    with running(ScenarioBook(scenarios=[scenario]), speed=0) as url:
        assert url.startswith("http://127.0.0.1:")
        response = httpx2.post(f"{url}/api/chat", json={"model": "m", "stream": False, "messages": []})
        assert response.json()["message"]["content"] == "hey"
        assert url.requests()[0]["scenario"] == "s"
        assert httpx2.get(f"{url}/_sim/requests").json() == url.requests()
        httpx2.delete(f"{url}/_sim/requests")
        assert url.requests() == []
