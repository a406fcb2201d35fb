"""The simulator's Ollama endpoints (``/api/chat``, ``/api/generate``), read with httpx2 as Ollama's own
clients read them (NDJSON lines) and by midstream."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2

from midstream.message import Message
from midstream.sim import SimURL, running
from simsupport import decode, example_book

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _post(url: str, path: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    response = httpx2.post(f"{url}{path}", json=body, headers=headers)
    assert response.status_code == 200
    return response


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def _decode(data: bytes) -> Message:
    return decode("ollama", data)


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "llama3.2", "messages": [{"role": "user", "content": content}], **extra}


def _read(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """What an Ollama client collects from the chat lines."""
    out: dict[str, Any] = {"content": "", "thinking": "", "calls": [], "done": None}
    for line in lines:
        message = line.get("message", {})
        out["content"] += message.get("content", "")
        out["thinking"] += message.get("thinking", "")
        out["calls"] += [
            (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])
        ]
        if line["done"]:
            out["done"] = line
    return out


def test_chat_text_is_ndjson_with_go_escaping(sim: SimURL) -> None:
    response = _post(sim, "/api/chat", _chat("markup"))
    assert response.headers["content-type"] == "application/x-ndjson"
    data = response.content
    assert data.endswith(b"\n") and b"\\u003c" in data and b"\\u0026" in data and b"<" not in data
    lines = _lines(data)
    assert list(lines[0]) == ["model", "created_at", "message", "done"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", lines[0]["created_at"])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 23 and final["total_duration"] > final["eval_duration"] > 0
    ours = _decode(data)
    assert ours.text == _read(lines)["content"] == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."
    assert ours.stop_reason == "end_turn" and ours.usage.output_tokens == 23


def test_thinking_and_whole_tool_calls(sim: SimURL) -> None:
    data = _post(sim, "/api/chat", _chat("weather in Paris?", tools=TOOLS, think=True)).content
    seen = _read(_lines(data))
    ours = _decode(data)
    assert (
        seen["thinking"]
        == ours.thinking
        == ("The user asks about the weather in two cities; I can call the tool twice.")
    )
    assert seen["content"] == ours.text == "Let me check both cities."
    assert (
        seen["calls"]
        == [(c.name, c.input) for c in ours.tool_calls]
        == [
            ("get_weather", {"city": "Paris", "unit": "celsius"}),
            ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
        ]
    )
    call_lines = [line for line in _lines(data) if "tool_calls" in line.get("message", {})]
    assert len(call_lines) == 2  # each call whole, in its own done:false line
    assert re.fullmatch(r"call_\w{8}", call_lines[0]["message"]["tool_calls"][0]["id"])
    assert ours.stop_reason == "tool_use" and seen["done"]["done_reason"] == "stop"


def test_tool_results_and_num_predict(sim: SimURL) -> None:
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {}}}],
        },
        {"role": "tool", "content": "18 C, sunny"},
    ]
    data = _post(sim, "/api/chat", {"model": "llama3.2", "messages": messages, "tools": TOOLS}).content
    assert _decode(data).text == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."
    cut = _post(sim, "/api/chat", _chat("an essay", options={"num_predict": 5})).content
    final = _lines(cut)[-1]
    assert final["done_reason"] == "length" and final["eval_count"] == 5
    ours = _decode(cut)
    assert ours.text == "Rivers begin as springs and" and ours.stop_reason == "max_tokens"
    assert ours.terminal == "truncated"


def test_a_call_cut_by_num_predict_is_never_sent(sim: SimURL) -> None:
    article = [{"type": "function", "function": {"name": "save_article", "parameters": {"type": "object"}}}]
    body = _chat("save the article", tools=article, options={"num_predict": 20})
    data = _post(sim, "/api/chat", body).content
    ours = _decode(data)
    assert ours.tool_calls == [] and ours.text == "I'll save the article now."
    assert ours.stop_reason == "max_tokens"


def test_generate_endpoint(sim: SimURL) -> None:
    data = _post(sim, "/api/generate", {"model": "llama3.2", "prompt": "markup"}).content
    lines = _lines(data)
    assert list(lines[0]) == ["model", "created_at", "response", "done"]
    assert "".join(line["response"] for line in lines) == _decode(data).text
    assert _decode(data).text.startswith("Use <b>bold</b>")
    whole = _post(sim, "/api/generate", {"model": "llama3.2", "prompt": "markup", "stream": False}).json()
    assert whole["response"] == _decode(data).text and whole["done"] is True and "message" not in whole


def test_non_streaming_chat(sim: SimURL) -> None:
    body = _chat("weather in Paris?", tools=TOOLS, stream=False)
    whole = _post(sim, "/api/chat", body, **{"x-midstream-seed": "w"}).json()
    streamed = _decode(_post(sim, "/api/chat", {**body, "stream": True}, **{"x-midstream-seed": "w"}).content)
    assert whole["message"]["content"] == streamed.text
    assert [(c["id"], c["function"]["arguments"]) for c in whole["message"]["tool_calls"]] == [
        (c.id, c.input) for c in streamed.tool_calls
    ]
    assert whole["eval_count"] == streamed.usage.output_tokens


def test_mid_stream_error_line(sim: SimURL) -> None:
    data = _post(sim, "/api/chat", _chat("an essay"), **{"x-midstream-fault": "error_after_events=4"}).content
    assert _lines(data)[-1] == {"error": "Overloaded"}
    ours = _decode(data)
    assert ours.terminal == "failed" and ours.text == "Rivers begin"


def test_http_error_body(sim: SimURL) -> None:
    response = httpx2.post(
        f"{sim}/api/chat", json=_chat("hi"), headers={"x-midstream-fault": "http_status=500;times=1"}
    )
    assert response.status_code == 500 and response.json() == {"error": "simulated 500"}


def test_realism_off() -> None:
    with running(example_book(), speed=0, realism=False) as url:
        data = _post(url, "/api/chat", _chat("markup")).content
    final = _lines(data)[-1]
    assert "total_duration" not in final and final["eval_count"] == 23
    assert _decode(data).text == "Use <b>bold</b> & <i>italics</i> — café, naïve, 東京."
