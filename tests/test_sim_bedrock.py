"""The simulator's Bedrock endpoints, read by boto3's ``bedrock-runtime`` client and by midstream: the
same request (pinned with ``x-midstream-seed``) must read the same both ways."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.exceptions
import httpx2
import pytest
from botocore.config import Config

from midstream.message import Message, ThinkingBlock
from midstream.sim import SimURL, running
from midstream.wire.eventstream import EventStreamDecoder
from simsupport import decode, example_book, fresh, our_blocks

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SECRET = "test-SECRET-access-key"
WEATHER = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
            }
        }
    ]
}


def _client(url: str, headers: dict[str, str] | None = None, attempts: int = 1) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key=SECRET,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )
    if headers:

        def add(request: Any, **_: Any) -> None:
            request.headers.update(headers)

        client.meta.events.register("before-send.bedrock-runtime.*", add)
    return client


def _sdk_read(response: dict[str, Any]) -> dict[str, Any]:
    """What a boto3 user collects from ``converse_stream``'s events."""
    blocks: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"blocks": blocks, "stop": None, "usage": None, "stops": []}
    for event in response["stream"]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool = start["start"]["toolUse"]
            blocks[start["contentBlockIndex"]] = {
                "kind": "tool",
                "id": tool["toolUseId"],
                "name": tool["name"],
                "input": "",
            }
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]
            block = blocks.setdefault(
                delta["contentBlockIndex"], {"kind": None, "text": "", "signature": None}
            )
            body = delta["delta"]
            if "text" in body:
                block.update(kind="text", text=block["text"] + body["text"])
            elif "reasoningContent" in body:
                reasoning = body["reasoningContent"]
                block["kind"] = "thinking"
                block["text"] += reasoning.get("text", "")
                block["signature"] = reasoning.get("signature", block["signature"])
            else:
                block["input"] += body["toolUse"]["input"]
        elif "contentBlockStop" in event:
            out["stops"].append(event["contentBlockStop"]["contentBlockIndex"])
        elif "messageStop" in event:
            out["stop"] = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            out["usage"] = event["metadata"]["usage"]
    return out


def _as_blocks(sdk: dict[str, Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for _, block in sorted(sdk["blocks"].items()):
        if block["kind"] == "tool":
            out.append(("tool_call", block["id"], block["name"], block["input"]))
        elif block["kind"] == "thinking":
            out.append(("thinking", block["text"], block["signature"]))
        else:
            out.append(("text", block["text"]))
    return out


def _raw(url: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    response = httpx2.post(f"{url}/model/{MODEL}/converse-stream", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    return response.content


def _decode(data: bytes) -> Message:
    return decode("bedrock", data)


def _both(url: str, body: dict[str, Any], seed: str, **headers: str) -> tuple[dict[str, Any], Message, bytes]:
    headers = {"x-midstream-seed": seed, **headers}
    sdk = _sdk_read(_client(url, headers).converse_stream(modelId=MODEL, **body))
    data = _raw(url, body, headers)
    return sdk, _decode(data), data


def _assert_same(sdk: dict[str, Any], ours: Message) -> None:
    assert our_blocks(ours, raw_input=True) == _as_blocks(sdk)
    assert ours.raw_stop_reason == sdk["stop"]
    usage = sdk["usage"]
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        usage["inputTokens"],
        usage["outputTokens"],
    )


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


@pytest.mark.parametrize("scenario", [s.name for s in example_book().scenarios])
def test_boto3_reads_every_scenario(sim: SimURL, scenario: str) -> None:
    body = {
        "messages": _user("hello"),
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    sdk, ours, _ = _both(sim, body, f"every-{scenario}", **{"x-midstream-scenario": scenario})
    _assert_same(sdk, ours)
    assert ours.terminal == "completed" and ours.blocks
    for call in ours.tool_calls:
        assert call.input == json.loads(call.raw_input)


def test_thinking_text_and_parallel_tool_calls(sim: SimURL) -> None:
    body = {
        "messages": _user("weather in Paris and Tokyo?"),
        "toolConfig": WEATHER,
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    sdk, ours, _ = _both(sim, body, "weather")
    _assert_same(sdk, ours)
    thinking = ours.blocks[0]
    assert isinstance(thinking, ThinkingBlock) and thinking.signature
    assert ours.text == "Let me check both cities."
    assert [(c.name, c.input) for c in ours.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert ours.tool_calls[0].id.startswith("tooluse_") and sdk["stop"] == "tool_use"
    assert sdk["stops"] == [0, 1, 2, 3]


def test_multi_turn_with_tool_results(sim: SimURL) -> None:
    messages = [
        *_user("weather in Paris?"),
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"sky": "sunny"}}]}}],
        },
    ]
    sdk, ours, _ = _both(sim, {"messages": messages, "toolConfig": WEATHER}, "turn2")
    _assert_same(sdk, ours)
    assert ours.text == "Paris is 18 °C and sunny; Tokyo is 22 °C with light rain."


def test_max_tokens_cuts_tool_input(sim: SimURL) -> None:
    tools = {"tools": [{"toolSpec": {"name": "save_article", "inputSchema": {"json": {"type": "object"}}}}]}
    body = {"messages": _user("save the article"), "toolConfig": tools, "inferenceConfig": {"maxTokens": 20}}
    sdk, ours, _ = _both(sim, body, "cut")
    _assert_same(sdk, ours)
    assert sdk["stop"] == "max_tokens" and ours.terminal == "truncated"
    assert sdk["stops"] == [0]  # the cut tool block gets no contentBlockStop
    call = ours.tool_calls[0]
    assert call.raw_input == '{"title": "Partial safety", "content": "Streamin'  # 8 text + 12 tokens
    assert call.input is None and call.complete is False


def test_mid_stream_exception(sim: SimURL) -> None:
    headers = {"x-midstream-fault": "error_after_events=5;error=overloaded"}
    seen = ""
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        response = _client(sim, headers).converse_stream(modelId=MODEL, messages=_user("an essay"))
        for event in response["stream"]:
            seen += event.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
    assert caught.value.response["Error"] == {"Code": "serviceUnavailableException", "Message": "Overloaded"}
    ours = _decode(_raw(sim, {"messages": _user("an essay")}, headers))
    assert ours.terminal == "failed" and ours.error.error_kind == "overloaded"
    assert ours.text == seen == "Rivers begin as"


def test_http_errors(sim: SimURL) -> None:
    for status, code in [(429, "ThrottlingException"), (503, "ServiceUnavailableException")]:
        client = _client(sim, {"x-midstream-fault": f"http_status={status}"})
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.converse_stream(modelId=MODEL, messages=_user("hi"))
        error = caught.value.response
        assert error["Error"]["Code"] == code and error["ResponseMetadata"]["HTTPStatusCode"] == status
        assert error["Error"]["Message"] == f"simulated {status}"


def test_boto3_retries_throttling_on_its_own(sim: SimURL) -> None:
    fresh(sim)
    client = _client(sim, {"x-midstream-fault": "http_status=429;retry_after_ms=10;times=1"}, attempts=2)
    response = client.converse_stream(modelId=MODEL, messages=_user("markup"))
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert _sdk_read(response)["stop"] == "end_turn"
    assert [r["status"] for r in sim.requests()] == [429, 200]


def test_converse_non_streaming(sim: SimURL) -> None:
    client = _client(sim, {"x-midstream-seed": "whole"})
    whole = client.converse(modelId=MODEL, messages=_user("weather?"), toolConfig=WEATHER)
    content = whole["output"]["message"]["content"]
    assert content[0] == {"text": "Let me check both cities."}
    assert [c["toolUse"]["input"] for c in content[1:]] == [
        {"city": "Paris", "unit": "celsius"},
        {"city": "Tokyo", "unit": "celsius"},
    ]
    assert whole["stopReason"] == "tool_use" and whole["usage"]["outputTokens"] > 0


def _frames(data: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    decoder = EventStreamDecoder()
    return [(dict(m.headers), json.loads(m.payload)) for m in decoder.feed(data) + decoder.close()]


def test_realism_padding() -> None:
    body = {"messages": _user("markup")}
    with running(example_book(), speed=0) as real, running(example_book(), speed=0, realism=False) as plain:
        realistic = _frames(_raw(real, body, {}))
        bare = _frames(_raw(plain, body, {}))
    for headers, payload in realistic:
        assert list(headers) == [":event-type", ":content-type", ":message-type"]
        pad = payload["p"]
        assert pad and "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".startswith(pad)
        assert list(payload) == sorted(payload)
    assert all("p" not in payload for _, payload in bare)
    assert [h[":event-type"] for h, _ in realistic] == [h[":event-type"] for h, _ in bare]
    names = [h[":event-type"] for h, _ in bare]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
