"""The Gemini dialect: recorded streams, the official SDK as oracle, round trips, hand-written edge cases."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from midstream import wire
from midstream.core.accumulate import accumulate
from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError, classify_error
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    StreamError,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
)
from midstream.message import (
    Message,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    UnknownBlock,
    Usage,
)
from midstream.wire.gemini import GeminiDecoder
from wiresupport import assert_split_invariant, decode_chunks, random_splits, recorded, sse_from_jsonl

VERTEX = "gemini_vertex_stream_function_call_partial_args.chunks.jsonl"


def decode(data: bytes, **options: Any) -> list[Event]:
    dec = wire.decoder("gemini", **options)
    return dec.feed(data) + dec.close()


def message_of(data: bytes) -> Message:
    return accumulate(assert_split_invariant("gemini", data, random_runs=50))


def sse(*payloads: Any) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\r\n\r\n" for p in payloads
    )


def chunk(*parts: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-test", "responseId": "r1", **extra}


# -- recorded streams ------------------------------------------------------------------------------


def test_recorded_sse_text() -> None:
    msg = message_of(recorded("gemini_sse_text.txt"))
    assert msg.provider == "gemini"
    assert msg.model == "gemini-2.0-flash-exp" and msg.id == "w1peaMz6INOvnvgPgYfPiQY"
    assert msg.blocks == (TextBlock(text="The capital of France is Paris.\n"),)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("end_turn", "STOP", "completed")
    # promptTokenCount goes 15, 15, 13 in this capture: the last running total wins.
    assert msg.usage == Usage(input_tokens=13, output_tokens=8)


def test_recorded_function_call_with_thought_signature() -> None:
    data = recorded("gemini_sse_function_call_thought_signature.txt")
    events = assert_split_invariant("gemini", data, random_runs=50)
    msg = accumulate(events)
    assert msg.model == "gemini-3-pro-preview" and msg.id == "QUVVadTSNJ6_qtsPvN7J8Q0"
    thinking, call = msg.blocks
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == ""
    assert thinking.signature is not None and len(thinking.signature) == 1408
    assert thinking.signature.startswith("EpwICpkIAXLI2nxlU6gsWZaZ") and thinking.signature.endswith("QuFyU=")
    assert call == ToolCall(id="call_QUVVadTSNJ6_qtsPvN7J8Q0_0", name="get_country", raw_input="{}", input={})
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("tool_use", "STOP", "completed")
    assert msg.usage == Usage(input_tokens=29, output_tokens=212, reasoning_tokens=202)
    # The empty text part of the finishing chunk opens no block.
    assert [e.type for e in events if isinstance(e, BlockStart)] == ["thinking", "tool_call"]


def test_recorded_vertex_partial_args() -> None:
    events = assert_split_invariant("gemini", sse_from_jsonl(VERTEX, newline="\r\n"), random_runs=50)
    msg = accumulate(events)
    assert msg.model == "gemini-3.1-pro-preview" and msg.id == "dqHOab6xGLzWodAPkPuViA4"
    sig, boston, sf = msg.blocks
    assert isinstance(sig, ThinkingBlock) and sig.signature is not None and len(sig.signature) == 1032
    assert sig.signature.startswith("CiMBjz1rX25KieIB4d4AwFn8") and sig.signature.endswith("Zy5VsZ0qQ=")
    assert boston == ToolCall(
        id="call_dqHOab6xGLzWodAPkPuViA4_0",
        name="getWeather",
        raw_input='{"location":"Boston"}',
        input={"location": "Boston"},
    )
    assert sf == ToolCall(
        id="call_dqHOab6xGLzWodAPkPuViA4_1",
        name="getWeather",
        raw_input='{"location":"San Francisco"}',
        input={"location": "San Francisco"},
    )
    fragments = [e.fragment for e in events if isinstance(e, ToolArgsDelta) and e.index == 1]
    assert fragments == ['{"location":"Boston', '"', "}"]
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("tool_use", "STOP", "completed")
    assert msg.usage == Usage(input_tokens=26, output_tokens=155, reasoning_tokens=132)


def test_recorded_json_array() -> None:
    data = recorded("gemini_jsonarray_text_capture.txt")
    msg = message_of(data)
    assert msg.model == "gemini-2.0-flash" and msg.id == "md2UaLXRCaKTmNAPrsSpgAo"
    assert msg.text == "AI learns patterns from data to make predictions or decisions.\n"
    assert (msg.stop_reason, msg.terminal) == ("end_turn", "completed")
    assert msg.usage == Usage(input_tokens=8, output_tokens=12)
    # The separator may also be ",\r\n"; explicit framing gives the same result.
    assert accumulate(decode(data.replace(b"\n,\n", b"\n,\r\n"))) == msg
    assert accumulate(decode(data, framing="json-array")) == msg


def test_explicit_sse_framing_and_reencoding_is_byte_exact() -> None:
    for name in ("gemini_sse_text.txt", "gemini_sse_function_call_thought_signature.txt"):
        data = recorded(name)
        events = decode(data, framing="sse")
        assert events == decode(data)
        # Only the gemini-3 capture's "index": 0 is not something the encoder writes.
        assert wire.encoder("gemini").encode_all(events) == data.replace(b',"index": 0', b"")
    array = recorded("gemini_jsonarray_text_capture.txt")
    again = wire.encoder("gemini", framing="json-array").encode_all(decode(array))
    assert again == array.replace(b"\n,\n", b"\n,\r\n")


# -- the official SDK as oracle --------------------------------------------------------------------


class SDK:
    """google-genai reading a canned body through an httpx2 MockTransport."""

    def __init__(self) -> None:
        self.body = b""
        transport = httpx2.MockTransport(
            lambda request: httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=self.body
            )
        )
        options = genai_types.HttpOptions(
            base_url="http://test", httpx_client=httpx2.Client(transport=transport)
        )
        self.client = genai.Client(api_key="test", http_options=options)

    def chunks(self, body: bytes) -> list[genai_types.GenerateContentResponse]:
        self.body = body
        return list(self.client.models.generate_content_stream(model="gemini-test", contents="hi"))


_sdk = SDK()


def sdk_view(chunks: list[genai_types.GenerateContentResponse]) -> dict[str, Any]:
    parts = [
        p
        for c in chunks
        for cand in (c.candidates or [])[:1]
        if cand.content
        for p in cand.content.parts or []
    ]
    last = chunks[-1]
    usage = last.usage_metadata
    finish: Any = last.candidates[0].finish_reason if last.candidates else None
    if last.prompt_feedback is not None:
        finish = last.prompt_feedback.block_reason
    return {
        "text": "".join(p.text for p in parts if p.text and not p.thought),
        "thinking": "".join(p.text for p in parts if p.text and p.thought),
        # Vertex continuation parts (partialArgs, the closing {}) have no name.
        "calls": [
            (p.function_call.name, p.function_call.args)
            for p in parts
            if p.function_call and p.function_call.name
        ],
        "signatures": [base64.b64encode(p.thought_signature).decode() for p in parts if p.thought_signature],
        "usage": (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count)
        if usage
        else None,
        "finish": finish.value if finish is not None else None,
    }


def message_view(msg: Message, streamed_args: bool = False) -> dict[str, Any]:
    u = msg.usage
    answer = None if u.output_tokens is None else u.output_tokens - (u.reasoning_tokens or 0)
    return {
        "text": msg.text,
        "thinking": msg.thinking,
        # The SDK does not assemble Vertex partialArgs: a streamed call shows up with no args.
        "calls": [(c.name, None if streamed_args else c.input) for c in msg.tool_calls],
        "signatures": [b.signature for b in msg.blocks if isinstance(b, ThinkingBlock) and b.signature],
        "usage": None if u == Usage() else (u.input_tokens, answer, u.reasoning_tokens),
        "finish": msg.raw_stop_reason,
    }


def test_sdk_agrees_on_recorded_sse() -> None:
    for name in ("gemini_sse_text.txt", "gemini_sse_function_call_thought_signature.txt"):
        data = recorded(name)
        assert sdk_view(_sdk.chunks(data)) == message_view(accumulate(decode(data)))


def test_sdk_agrees_on_recorded_vertex() -> None:
    data = sse_from_jsonl(VERTEX, newline="\r\n")
    view = sdk_view(_sdk.chunks(data))
    assert view == message_view(accumulate(decode(data)), streamed_args=True)
    assert view["calls"] == [("getWeather", None), ("getWeather", None)]


def test_sdk_agrees_on_recorded_json_array() -> None:
    data = recorded("gemini_jsonarray_text_capture.txt")
    # The SDK always asks for alt=sse: give it the same elements as SSE events.
    as_sse = sse(*[json.dumps(element) for element in json.loads(data)])
    assert sdk_view(_sdk.chunks(as_sse)) == message_view(accumulate(decode(data)))


def test_sdk_and_decoder_agree_on_a_raw_midstream_error() -> None:
    body = sse(chunk({"text": "Hel"}), chunk({"text": "lo"})) + (
        b'{\n  "error": {\n    "code": 503,\n    "message": "The model is overloaded.",\n'
        b'    "status": "UNAVAILABLE"\n  }\n}\n'
    )
    with pytest.raises(genai_errors.ServerError) as info:
        _sdk.chunks(body)
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    events = assert_split_invariant("gemini", body, random_runs=50)
    msg = accumulate(events)
    assert msg.blocks == (TextBlock(text="Hello", complete=False),)
    assert msg.terminal == "failed" and msg.stop_reason == "error"
    assert msg.error == StreamError(
        error_kind="overloaded",
        message="The model is overloaded.",
        retryable=True,
        status=503,
        raw={"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    )


# -- round trips -----------------------------------------------------------------------------------

FINISHES = {  # finishReason -> the stop reason midstream must report (STOP depends on tool calls)
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "OTHER": "other",
    "MALFORMED_FUNCTION_CALL": "other",
    "UNEXPECTED_TOOL_CALL": "other",
}
ERRORS = [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (400, "INVALID_ARGUMENT")]

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=10)
texts = st.text(min_size=1, max_size=24)
signatures = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
floats = st.floats(allow_nan=False, allow_infinity=False)
# Keys full of what JSON paths must quote or escape.
keys = st.text(alphabet=st.sampled_from("ab_0'\"\\[]. $é\n"), max_size=6) | st.text(max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | floats | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
arguments = st.dictionaries(keys, json_values, max_size=4)
citations = st.lists(
    st.fixed_dictionaries({"startIndex": st.integers(0, 99), "uri": st.just("https://example.com/a")}),
    max_size=2,
)
raw_blocks = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts, citations),
        st.tuples(st.just("thought"), texts),
        st.tuples(st.just("signed"), st.text(max_size=12), signatures),
        st.tuples(st.just("call"), names, st.booleans(), arguments),
        st.tuples(st.just("code"), st.fixed_dictionaries({"language": st.just("PYTHON"), "code": texts})),
        st.tuples(
            st.just("inline"),
            st.fixed_dictionaries({"mimeType": st.just("image/png"), "data": signatures}),
        ),
    ),
    max_size=6,
)


def canonical_blocks(raw: list[tuple[Any, ...]], message_id: str | None) -> list[Any]:
    """Blocks as the decoder reports them: what Gemini's parts cannot tell apart is merged."""
    blocks: list[Any] = []
    calls = 0
    for item in raw:
        kind, prev = item[0], blocks[-1] if blocks else None
        if kind == "text":
            if isinstance(prev, TextBlock):
                blocks[-1] = TextBlock(text=prev.text + item[1], citations=prev.citations + tuple(item[2]))
            else:
                blocks.append(TextBlock(text=item[1], citations=tuple(item[2])))
        elif kind in ("thought", "signed"):
            text, sig = item[1], item[2] if kind == "signed" else None
            if isinstance(prev, ThinkingBlock) and prev.signature is None:
                blocks[-1] = ThinkingBlock(prev.thinking + text, sig)
            elif text or sig is not None:
                blocks.append(ThinkingBlock(text, sig))
        elif kind == "call":
            call_id = f"call_{message_id or 'gemini'}_{calls}" if item[2] else f"fc-{calls}"
            raw_input = json.dumps(item[3], separators=(",", ":"), ensure_ascii=False)
            blocks.append(ToolCall(id=call_id, name=item[1], raw_input=raw_input, input=item[3]))
            calls += 1
        elif kind == "code":
            blocks.append(ServerToolBlock(raw_type="executableCode", id=None, name=None, content=item[1]))
        else:
            blocks.append(UnknownBlock(raw_type="inlineData", data=item[1]))
    return blocks


usages = st.builds(
    lambda i, o, r, c: Usage(input_tokens=i, output_tokens=o, reasoning_tokens=r, cache_read_tokens=c),
    st.none() | st.integers(0, 10**6),
    st.none() | st.integers(100, 10**6),
    st.none() | st.integers(0, 100),
    st.none() | st.integers(0, 10**6),
).filter(lambda u: u.output_tokens is not None or u.reasoning_tokens is None)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    message_id = draw(st.none() | names)
    blocks = canonical_blocks(draw(raw_blocks), message_id)
    ending = draw(st.sampled_from(["completed", "max_tokens", "failed", "eof"]))
    fields: dict[str, Any] = {"stop_reason": None, "raw_stop_reason": None, "error": None}
    if ending == "completed":
        raw = draw(st.sampled_from(["STOP", *FINISHES]))
        stop = FINISHES.get(raw) or (
            "tool_use" if any(isinstance(b, ToolCall) for b in blocks) else "end_turn"
        )
        fields.update(stop_reason=stop, raw_stop_reason=raw, terminal="completed")
    elif ending == "max_tokens":
        fields.update(stop_reason="max_tokens", raw_stop_reason="MAX_TOKENS", terminal="truncated")
    else:
        fields["terminal"] = "failed" if ending == "failed" else "truncated"
    if ending != "completed":
        last = blocks[-1] if blocks else None
        # Gemini never closes a text block by itself: it ends when the response does, and a response
        # cut short (MAX_TOKENS, an error, EOF) cuts it. A signature closes its thinking block.
        if isinstance(last, TextBlock) or (isinstance(last, ThinkingBlock) and last.signature is None):
            blocks[-1] = dataclasses.replace(last, complete=False)
    if ending == "failed":
        code, status = draw(st.sampled_from(ERRORS))
        kind, retryable = classify_error(status, code)
        message = draw(texts)
        raw_error = {"error": {"code": code, "message": message, "status": status}}
        error = StreamError(error_kind=kind, message=message, retryable=retryable, status=code, raw=raw_error)
        fields.update(stop_reason="error", error=error)
    return Message(
        provider="gemini",
        id=message_id,
        model=draw(st.none() | names),
        blocks=tuple(blocks),
        usage=draw(usages),
        **fields,
    )


encoder_options = st.fixed_dictionaries(
    {
        "framing": st.sampled_from(["sse", "json-array"]),
        "realism": st.booleans(),
        "partial_args": st.booleans(),
        "error_shape": st.sampled_from(["raw", "data"]),
        "seed": st.integers(0, 100),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages(), options=encoder_options, split_seed=st.integers(0, 10**6))
@example(  # only a signature to carry: not to be mistaken for a blocked prompt
    msg=Message(
        provider="gemini",
        blocks=(ThinkingBlock("", "AA=="),),
        stop_reason="content_filter",
        raw_stop_reason="SAFETY",
        terminal="completed",
    ),
    options={"framing": "sse", "realism": False, "partial_args": False, "error_shape": "raw", "seed": 0},
    split_seed=0,
)
def test_round_trip(msg: Message, options: dict[str, Any], split_seed: int) -> None:
    body = wire.encoder("gemini", **options).encode_message(msg)
    events = decode_chunks("gemini", [body])
    assert accumulate(events) == msg
    assert decode_chunks("gemini", random_splits(body, random.Random(split_seed))) == events


def _streams_by_path(raw: str) -> bool:
    value = json.loads(raw) if raw else None

    def has_empty_inside(node: Any, top: bool) -> bool:
        if isinstance(node, dict | list):
            if not node and not top:
                return True
            items = node.values() if isinstance(node, dict) else node
            return any(has_empty_inside(item, False) for item in items)
        return False

    return isinstance(value, dict) and not has_empty_inside(value, True)


@settings(max_examples=60, deadline=None)
@given(msg=messages().filter(lambda m: m.terminal != "failed"), partial=st.booleans())
@example(
    msg=Message(
        provider="gemini",
        id="r",
        model="m",
        blocks=(ToolCall(id="c", name="f", raw_input='{"[]":"x"}', input={"[]": "x"}),),
        stop_reason="tool_use",
        raw_stop_reason="STOP",
        terminal="completed",
    ),
    partial=True,
)
def test_sdk_reads_what_the_encoder_writes(msg: Message, partial: bool) -> None:
    body = wire.encoder("gemini", partial_args=partial).encode_message(msg)
    chunks = _sdk.chunks(body)
    if not chunks:
        assert body == b""
        return
    view = sdk_view(chunks)
    expected = message_view(msg)
    if partial:
        # Vertex partialArgs address leaves by JSON path, so an object with an empty container
        # inside cannot be streamed that way: such calls (and non-objects) are sent whole.
        streamed = [c.name for c in msg.tool_calls if _streams_by_path(c.raw_input)]
        assert [name for name, args in view["calls"] if args is None] == streamed
        view["calls"] = expected["calls"] = []
    if msg.terminal != "completed" and msg.stop_reason is None:
        expected["finish"] = None
    assert view == expected


def test_encoder_output_shape() -> None:
    msg = Message(
        provider="gemini",
        id="r1",
        model="gemini-test",
        blocks=(ThinkingBlock("plan", "c2ln"), TextBlock(text="a<b>")),
        stop_reason="end_turn",
        raw_stop_reason="STOP",
        usage=Usage(input_tokens=5, output_tokens=9, reasoning_tokens=4),
        terminal="completed",
    )
    assert wire.encoder("gemini").encode_message(msg) == (
        b'data: {"candidates": [{"content": {"parts": [{"text": "plan","thought": true}],"role": "model"}}],'
        b'"modelVersion": "gemini-test","responseId": "r1"}\r\n\r\n'
        # The finishReason joins the last answer chunk; the usage known by then rides along.
        b'data: {"candidates": [{"content": {"parts": [{"text": "a\\u003cb\\u003e",'
        b'"thoughtSignature": "c2ln"}],"role": "model"},"finishReason": "STOP"}],"usageMetadata": '
        b'{"promptTokenCount": 5,"candidatesTokenCount": 5,"totalTokenCount": 14,"promptTokensDetails": '
        b'[{"modality": "TEXT","tokenCount": 5}],"thoughtsTokenCount": 4},"modelVersion": "gemini-test",'
        b'"responseId": "r1"}\r\n\r\n'
    )
    array = wire.encoder("gemini", framing="json-array", realism=False).encode_message(msg)
    assert array.startswith(b'[{\n  "candidates": [\n    {\n      "content": {\n        "parts": [\n')
    assert b'"text": "a<b>"' in array and b"\n}\n,\r\n{\n" in array and array.endswith(b"\n}\n]")


def test_encoder_partial_args_shape() -> None:
    call = ToolCall(
        id="call_r1_0", name="f", raw_input='{"a":{"b c":[true,null,1.5]},"s":"xyz","it\'s \\\\":0}', input={}
    )
    msg = Message(
        provider="gemini",
        id="r1",
        model=None,
        blocks=(call,),
        stop_reason="tool_use",
        raw_stop_reason="STOP",
        terminal="completed",
    )
    body = wire.encoder("gemini", partial_args=True, realism=False).encode_message(msg)
    events = [json.loads(line[6:]) for line in body.split(b"\r\n\r\n")[:-1]]
    parts = [part for e in events for part in e["candidates"][0]["content"]["parts"]]
    assert [p.get("functionCall") for p in parts] == [
        {"name": "f", "willContinue": True},
        {"partialArgs": [{"jsonPath": "$.a['b c'][0]", "boolValue": True}], "willContinue": True},
        {"partialArgs": [{"jsonPath": "$.a['b c'][1]", "nullValue": "NULL_VALUE"}], "willContinue": True},
        {"partialArgs": [{"jsonPath": "$.a['b c'][2]", "numberValue": 1.5}], "willContinue": True},
        {
            "partialArgs": [{"jsonPath": "$.s", "stringValue": "xyz", "willContinue": True}],
            "willContinue": True,
        },
        {"partialArgs": [{"jsonPath": "$.s", "stringValue": ""}], "willContinue": True},
        {"partialArgs": [{"jsonPath": "$['it\\'s \\\\']", "numberValue": 0}], "willContinue": True},
        {},
        None,  # the finishing chunk's empty text part
    ]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert accumulate(decode(body)).tool_calls[0].raw_input == call.raw_input


def test_encoder_refuses_what_gemini_cannot_carry() -> None:
    with pytest.raises(LocalError):
        wire.encoder("gemini").encode(BlockStart(index=0, type="redacted_thinking", data="x"))
    with pytest.raises(LocalError):
        wire.encoder("gemini").encode_all(
            [BlockStart(index=0, type="unknown", raw_type="text", data="x"), BlockStop(0)]
        )
    with pytest.raises(LocalError):
        wire.encoder("gemini", framing="ndjson")


# -- hand-written streams --------------------------------------------------------------------------


def test_data_error_event() -> None:
    error = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    events = assert_split_invariant("gemini", sse(chunk({"text": "x"}), error))
    msg = accumulate(events)
    assert msg.terminal == "failed" and msg.text == "x"
    assert msg.error == StreamError(
        error_kind="rate_limited",
        message="Resource has been exhausted",
        retryable=True,
        status=429,
        raw=error,
    )


def test_raw_error_body_alone_and_unknown_status() -> None:
    body = (
        b'{\n  "error": {\n    "code": 400,\n    "message": "API key not valid.",\n'
        b'    "status": "INVALID_ARGUMENT"\n  }\n}\n'
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.terminal == "failed" and msg.blocks == ()
    assert msg.error is not None and (msg.error.error_kind, msg.error.retryable) == ("invalid_request", False)
    # No known status: the code decides, as an HTTP status.
    msg = accumulate(decode(sse({"error": {"code": 504, "message": "slow"}})))
    assert msg.error is not None and (msg.error.error_kind, msg.error.status) == ("timeout", 504)


def test_error_element_in_json_array() -> None:
    body = (
        b'[{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\n,\r\n'
        b'{"error": {"code": 500, "status": "INTERNAL"}}\n]'
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.terminal == "failed" and msg.error is not None and msg.error.error_kind == "server"
    assert msg.error.message == "INTERNAL"


def test_chunks_after_an_error_are_not_content() -> None:
    body = sse({"error": {"code": 503}}, chunk({"text": "late"}))
    dialect = GeminiDecoder()
    assert dialect.feed(body)[-1] == Unknown(raw_type="chunk_after_error", payload=chunk({"text": "late"}))
    msg = accumulate(decode(body))
    assert msg.terminal == "failed" and msg.blocks == ()


def test_max_tokens() -> None:
    body = sse(
        chunk({"text": "Once upon"}, usageMetadata={"promptTokenCount": 4, "totalTokenCount": 4}),
        chunk(
            {"text": " a time"},
            finish="MAX_TOKENS",
            usageMetadata={"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10},
        ),
    )
    events = assert_split_invariant("gemini", body)
    msg = accumulate(events)
    # The token limit cut the answer: never reported as a finished block.
    assert msg.blocks == (TextBlock(text="Once upon a time", complete=False),)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("max_tokens", "MAX_TOKENS", "truncated")
    assert msg.usage == Usage(input_tokens=4, output_tokens=6)


def test_max_tokens_closes_open_blocks_incomplete_at_the_finish() -> None:
    # The BlockStops come with the finishReason chunk itself, before any later usage chunk.
    thought = chunk({"text": "Let me think", "thought": True}, finish="MAX_TOKENS")
    events = decode(sse(thought, {"usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 5}}))
    assert events[1:4] == [
        BlockStart(index=0, type="thinking", raw_type="thought"),
        ThinkingDelta(0, "Let me think"),
        BlockStop(0, complete=False),
    ]
    assert BlockStop(0, complete=True) not in events
    assert accumulate(events).blocks == (ThinkingBlock("Let me think", complete=False),)
    # A Vertex call still streaming its arguments is cut too; a whole call before it is not.
    body = sse(
        chunk({"functionCall": {"name": "done_first", "args": {"a": 1}}}, PARTIAL_CHUNKS[0]),
        chunk(PARTIAL_CHUNKS[1], finish="MAX_TOKENS"),
    )
    events = assert_split_invariant("gemini", body)
    assert BlockStop(1, complete=False) in events and BlockStop(0, complete=True) in events
    whole, cut = accumulate(events).tool_calls
    assert (whole.name, whole.complete, whole.input) == ("done_first", True, {"a": 1})
    assert (cut.name, cut.complete, cut.input) == ("cook", False, None)
    assert cut.raw_input == '{"recipe":{"name":"Pan'
    # Any other finish closes the open block complete.
    stopped = accumulate(decode(sse(chunk({"text": "All done."}, finish="STOP"))))
    assert stopped.blocks == (TextBlock(text="All done."),)


def test_safety_finish_and_unknown_candidate_fields() -> None:
    ratings = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]
    last = chunk(finish="SAFETY")
    last["candidates"][0]["safetyRatings"] = ratings
    events = assert_split_invariant("gemini", sse(chunk({"text": "I"}), last))
    assert Unknown(raw_type="safetyRatings", payload=ratings) in events
    msg = accumulate(events)
    assert msg.blocks == (TextBlock(text="I"),)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == ("content_filter", "SAFETY", "completed")


def test_finish_message_goes_to_stop_details() -> None:
    body = sse(
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}]},
                    "finishReason": "MALFORMED_FUNCTION_CALL",
                    "finishMessage": "Malformed function call: x",
                }
            ]
        }
    )
    end = decode(body)[-1]
    assert isinstance(end, ResponseEnd)
    assert (end.stop_reason, end.raw_stop_reason) == ("other", "MALFORMED_FUNCTION_CALL")
    assert end.stop_details == {"finishMessage": "Malformed function call: x"}


def test_prompt_blocked() -> None:
    feedback = {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []}
    body = sse({"promptFeedback": feedback, "usageMetadata": {"promptTokenCount": 7}, "responseId": "r9"})
    events = assert_split_invariant("gemini", body)
    end = events[-1]
    assert isinstance(end, ResponseEnd) and end.stop_details == {"promptFeedback": feedback}
    msg = accumulate(events)
    assert (msg.stop_reason, msg.raw_stop_reason, msg.terminal) == (
        "content_filter",
        "PROHIBITED_CONTENT",
        "completed",
    )
    assert msg.blocks == () and msg.usage == Usage(input_tokens=7) and msg.id == "r9"


def test_thoughts_then_signed_answer_then_trailing_signature() -> None:
    body = sse(
        chunk({"text": "**Plan**\n", "thought": True}),
        chunk({"text": "look it up", "thought": True}),
        chunk({"text": "Paris", "thoughtSignature": "U0lHMQ=="}),
        chunk({"text": "."}),
        chunk({"text": "Also", "thought": True}),
        chunk({"text": "", "thoughtSignature": "U0lHMg=="}, finish="STOP"),
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.blocks == (
        ThinkingBlock("**Plan**\nlook it up", "U0lHMQ=="),
        TextBlock(text="Paris."),
        ThinkingBlock("Also", "U0lHMg=="),
    )
    assert msg.thinking == "**Plan**\nlook it upAlso" and msg.text == "Paris."


def test_signature_inside_an_answer_splits_it() -> None:
    body = sse(chunk({"text": "Hello"}), chunk({"text": " world", "thoughtSignature": "U0lH"}, finish="STOP"))
    msg = accumulate(decode(body))
    assert msg.blocks == (TextBlock(text="Hello"), ThinkingBlock("", "U0lH"), TextBlock(text=" world"))
    assert wire.encoder("gemini").encode_message(msg) is not None
    assert accumulate(decode(wire.encoder("gemini").encode_message(msg))) == msg


def test_whole_function_calls_with_and_without_ids() -> None:
    body = sse(
        chunk(
            {"functionCall": {"name": "a", "args": {"q": "é", "n": [1, 2.5]}}},
            {"functionCall": {"id": "fc_7", "name": "b"}},
        ),
        chunk({"text": ""}, finish="STOP"),
    )
    events = assert_split_invariant("gemini", body)
    assert [e for e in events if isinstance(e, ToolArgsDelta)] == [ToolArgsDelta(0, '{"q":"é","n":[1,2.5]}')]
    msg = accumulate(events)
    assert msg.tool_calls == [
        ToolCall(
            id="call_r1_0", name="a", raw_input='{"q":"é","n":[1,2.5]}', input={"q": "é", "n": [1, 2.5]}
        ),
        ToolCall(id="fc_7", name="b", raw_input="", input={}),
    ]
    assert msg.stop_reason == "tool_use"


PARTIAL_CHUNKS: list[dict[str, Any]] = [
    {"functionCall": {"name": "cook", "willContinue": True}},
    {
        "functionCall": {
            "partialArgs": [{"jsonPath": "$.recipe.name", "stringValue": "Pan", "willContinue": True}],
            "willContinue": True,
        }
    },
    {
        "functionCall": {
            "partialArgs": [
                {"jsonPath": "$.recipe.name", "stringValue": 'cakes "x"\n', "willContinue": True},
                {"jsonPath": "$.recipe.name", "stringValue": ""},
            ],
            "willContinue": True,
        }
    },
    {
        "functionCall": {
            "partialArgs": [
                {"jsonPath": "$.recipe.ingredients[0].name", "stringValue": "flour"},
                {"jsonPath": "$.recipe.ingredients[0].amount", "numberValue": 200},
            ],
            "willContinue": True,
        }
    },
    {
        "functionCall": {
            "partialArgs": [
                {"jsonPath": "$.recipe.ingredients[1].name", "stringValue": "egg", "willContinue": True}
            ],
            "willContinue": True,
        }
    },
    {
        "functionCall": {
            "partialArgs": [
                {"jsonPath": "$.recipe.ingredients[1].amount", "numberValue": 2.5},
                {"jsonPath": "$.recipe.vegan", "boolValue": False},
                {"jsonPath": "$.notes", "nullValue": "NULL_VALUE"},
                {"jsonPath": "$['odd \\'key\\'']", "stringValue": "ü"},
                {"jsonPath": "$.tags[0]", "stringValue": "a"},
                {"jsonPath": "$.tags[1]", "numberValue": -1},
            ],
            "willContinue": True,
        }
    },
    {"functionCall": {}},
]
PARTIAL_RAW = (
    '{"recipe":{"name":"Pancakes \\"x\\"\\n","ingredients":[{"name":"flour","amount":200},'
    '{"name":"egg","amount":2.5}],"vegan":false},"notes":null,"odd \'key\'":"ü","tags":["a",-1]}'
)


def test_partial_args_nested_paths_and_numbers() -> None:
    body = sse(*[chunk(part) for part in PARTIAL_CHUNKS], chunk({"text": ""}, finish="STOP"))
    events = assert_split_invariant("gemini", body)
    fragments = [e.fragment for e in events if isinstance(e, ToolArgsDelta)]
    assert fragments == [
        '{"recipe":{"name":"Pan',
        'cakes \\"x\\"\\n"',
        # A container closes only when a later path leaves it (or the call ends).
        ',"ingredients":[{"name":"flour","amount":200',
        '},{"name":"egg',
        '","amount":2.5}],"vegan":false},"notes":null,"odd \'key\'":"ü","tags":["a",-1',
        "]}",
    ]
    (call,) = accumulate(events).tool_calls
    assert call.raw_input == PARTIAL_RAW
    assert call.input == {
        "recipe": {
            "name": 'Pancakes "x"\n',
            "ingredients": [{"name": "flour", "amount": 200}, {"name": "egg", "amount": 2.5}],
            "vegan": False,
        },
        "notes": None,
        "odd 'key'": "ü",
        "tags": ["a", -1],
    }


def test_partial_args_cut_by_eof_are_incomplete() -> None:
    body = sse(*[chunk(part) for part in PARTIAL_CHUNKS[:3]])
    msg = accumulate(assert_split_invariant("gemini", body))
    (call,) = msg.tool_calls
    assert (call.complete, call.input, call.error) == (False, None, "truncated")
    assert call.raw_input == '{"recipe":{"name":"Pancakes \\"x\\"\\n"'
    assert msg.terminal == "truncated" and msg.stop_reason is None


def test_new_named_call_abandons_an_unfinished_one() -> None:
    body = sse(chunk(PARTIAL_CHUNKS[0], PARTIAL_CHUNKS[1], {"functionCall": {"name": "other", "args": {}}}))
    calls = accumulate(decode(body)).tool_calls
    assert [(c.name, c.complete, c.raw_input) for c in calls] == [
        ("cook", False, '{"recipe":{"name":"Pan'),
        ("other", True, "{}"),
    ]


@pytest.mark.parametrize(
    "args",
    [
        [{"jsonPath": "$.a", "numberValue": 1}, {"jsonPath": "$.a", "numberValue": 2}],  # key revisited
        [{"jsonPath": "$.a[1]", "numberValue": 1}],  # index skipped
        [
            {"jsonPath": "$.a[0]", "numberValue": 1},
            {"jsonPath": "$.a.b", "numberValue": 1},
        ],  # array vs object
        [{"jsonPath": "$", "numberValue": 1}],
        [{"jsonPath": "$..a", "numberValue": 1}],
        [{"jsonPath": "a", "numberValue": 1}],
        [{"jsonPath": "$.a"}],  # no value
        [{"jsonPath": "$.a", "numberValue": "1"}],
        [{"jsonPath": "$.a", "boolValue": 1}],
        [{"jsonPath": "$.a", "stringValue": 5}],
        ["$.a"],
    ],
)
def test_partial_args_that_break_the_protocol(args: list[Any]) -> None:
    body = sse(chunk({"functionCall": {"name": "f", "partialArgs": args, "willContinue": True}}))
    with pytest.raises(RemoteProtocolError):
        decode(body)


def test_server_and_unknown_parts_become_blocks() -> None:
    code = {"language": "PYTHON", "code": "print(1)"}
    result = {"outcome": "OUTCOME_OK", "output": "1\n"}
    image = {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    body = sse(
        chunk({"executableCode": code}, {"codeExecutionResult": result}, {"inlineData": image}, finish="STOP")
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.blocks == (
        ServerToolBlock(raw_type="executableCode", id=None, name=None, content=code),
        ServerToolBlock(raw_type="codeExecutionResult", id=None, name=None, content=result),
        UnknownBlock(raw_type="inlineData", data=image),
    )


def test_citations_other_candidates_and_unknown_fields() -> None:
    source = {"startIndex": 0, "endIndex": 4, "uri": "https://example.com"}
    first = chunk({"text": "Paris"}, finish="STOP", createTime="2026-01-01T00:00:00Z", modelStatus={"x": 1})
    first["candidates"][0]["citationMetadata"] = {"citationSources": [source]}
    other = {"index": 1, "content": {"parts": [{"text": "Lyon"}]}}
    first["candidates"].append(other)
    events = assert_split_invariant("gemini", sse(first))
    assert (
        Unknown(raw_type="candidate", payload=other) in events
        and Unknown(raw_type="modelStatus", payload={"x": 1}) in events
    )
    msg = accumulate(events)
    assert msg.blocks == (TextBlock(text="Paris", citations=(source,)),)


def test_usage_mapping_and_usage_after_the_finish() -> None:
    body = sse(
        chunk({"text": "a"}, finish="STOP"),
        {
            "usageMetadata": {
                "promptTokenCount": 100,
                "cachedContentTokenCount": 60,
                "toolUsePromptTokenCount": 5,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 7,
                "totalTokenCount": 115,
            }
        },
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.usage == Usage(input_tokens=105, output_tokens=10, cache_read_tokens=60, reasoning_tokens=7)
    assert msg.terminal == "completed"


def test_eof_without_finish_is_truncated() -> None:
    msg = accumulate(assert_split_invariant("gemini", sse(chunk({"text": "half"}))))
    assert msg.blocks == (TextBlock(text="half", complete=False),)
    assert msg.terminal == "truncated" and msg.stop_reason is None
    # An event cut before its blank line is dropped, as SSE says.
    cut = (
        sse(chunk({"text": "a"}))
        + b'data: {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}'
    )
    msg = accumulate(decode(cut))
    assert msg.text == "a" and msg.terminal == "truncated"


def test_empty_and_whitespace_bodies() -> None:
    for body in (b"", b"  \r\n", b"\xef\xbb\xbf", b"\xef\xbb"):
        msg = accumulate(assert_split_invariant("gemini", body))
        assert msg.terminal == "truncated" and msg.blocks == ()


def test_sse_variants_bom_cr_and_multiline_data() -> None:
    payload = json.dumps(chunk({"text": "ok"}, finish="STOP"), indent=1)
    body = (
        b"\xef\xbb\xbf\r\n: comment\revent: x\r"
        + b"".join(b"data:" + line.encode() + b"\r" for line in payload.split("\n"))
        + b"\r"
    )
    msg = accumulate(assert_split_invariant("gemini", body))
    assert msg.text == "ok" and msg.terminal == "completed"
    # CRLF multi-line data: a CR ending one chunk and its LF starting the next make one line end.
    crlf = body.replace(b"\r", b"\r\n")
    assert accumulate(assert_split_invariant("gemini", crlf)) == msg


@pytest.mark.parametrize(
    "body",
    [
        b"data: {not json}\r\n\r\n",
        b"data: [1, 2]\r\n\r\n",
        b'data: {"candidates": {"a": 1}}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": "text"}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"text": 5}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"finishReason": 3}]}\r\n\r\n',
        b'data: {"usageMetadata": {"promptTokenCount": "7"}}\r\n\r\n',
        b'data: {"usageMetadata": {"promptTokenCount": NaN}}\r\n\r\n',
        b'[{"a": 1} {"b": 2}]',
        b'{\n  "error": {\n    "code": 503\n  }\n} trailing\n',
    ],
)
def test_malformed_streams_raise_then_close_fails(body: bytes) -> None:
    dec = wire.decoder("gemini")
    with pytest.raises(RemoteProtocolError):
        dec.feed(body)
    end = dec.close()[-1]
    assert isinstance(end, ResponseEnd) and end.terminal == "failed"


def test_content_after_finish_is_a_protocol_error() -> None:
    body = sse(chunk({"text": "a"}, finish="STOP"), chunk({"text": "more"}))
    with pytest.raises(RemoteProtocolError):
        decode(body)
    # An empty text part after the finish carries nothing and is accepted.
    assert accumulate(decode(sse(chunk({"text": "a"}, finish="STOP"), chunk({"text": ""})))).text == "a"


def test_limits() -> None:
    big = sse(chunk({"text": "x" * 500}))
    with pytest.raises(LimitExceeded):
        decode(big, max_line=200)
    with pytest.raises(LimitExceeded):
        decode(big, max_event=200)
    with pytest.raises(LimitExceeded):
        decode(big, max_document=200)
    array = b"[" + json.dumps(chunk({"text": "x" * 500})).encode() + b"]"
    with pytest.raises(LimitExceeded):
        decode(array, max_document=200)
    raw = b"data: {}\r\n\r\n{\n" + b'  "error": "' + b"x" * 500 + b'"\n}\n'
    with pytest.raises(LimitExceeded):
        decode(raw, max_document=200)


def test_options_are_checked() -> None:
    with pytest.raises(LocalError):
        GeminiDecoder(framing="ndjson")  # type: ignore[arg-type]
    dec = wire.decoder("gemini")
    dec.close()
    with pytest.raises(LocalError):
        dec.feed(b"data: {}\r\n\r\n")


def test_block_indices_are_distinct_and_stops_match() -> None:
    body = sse(
        *[chunk(part) for part in PARTIAL_CHUNKS], chunk({"text": "done"}, {"text": "!", "thought": True})
    )
    events = decode(body)
    starts = [e.index for e in events if isinstance(e, BlockStart)]
    stops = [e.index for e in events if isinstance(e, BlockStop)]
    assert len(set(starts)) == len(starts) and sorted(starts) == sorted(stops)


def test_long_sse_line_in_many_chunks_is_linear() -> None:
    # An inline image part arrives as one long data line over many reads. A hang guard (not a speed
    # assertion): linear work takes a fraction of a second, the quadratic line joining took minutes.
    import signal

    data = base64.b64encode(b"\x89PNG" + b"\x00" * (6 << 20)).decode()
    body = sse(chunk({"inlineData": {"mimeType": "image/png", "data": data}}, finish="STOP"))

    def on_alarm(signum: int, frame: object) -> None:
        raise AssertionError("decoding a long SSE line is quadratic in its length")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    try:
        dec = wire.decoder("gemini")
        events = [e for i in range(0, len(body), 1024) for e in dec.feed(body[i : i + 1024])]
        events += dec.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    message = accumulate(events)
    assert message.terminal == "completed"
    assert len(body) > 8 << 20
    assert any(getattr(b, "data", None) is not None for b in message.blocks)
    # The same body in one piece gives the same events.
    assert decode(body) == events


def test_sse_line_bound_counts_pieces() -> None:
    dec = wire.decoder("gemini", max_line=10)
    assert dec.feed(b"data: 1234") == []
    with pytest.raises(LimitExceeded):
        dec.feed(b"5")


# Chunks that end with a line end, arriving when the line buffer holds nothing, skip it, and ordinary
# events (``data: <payload>`` CRLF CRLF) are read with ``find``: generated events with every line end,
# bad bytes and a raw error object among them, cut after each event or a few at a time, must frame as
# a byte-at-a-time read does (which seldom takes either shortcut), bounds included.
_GEMINI_EVENTS = st.sampled_from(
    [
        b'data: {"a": 1}\r\n\r\n',
        b'data: {"a": "\xc3\xa9"}\r\n\r\n',
        b'data: {"a": "\xff"}\r\n\r\n',
        b'data: {"a":\n 2}\r\n\r\n',
        b'data: {"a": 3}\n\n',
        b'data: {"a": 4}\r\r',
        b'data: {"a": 5}\r\n\n',
        b'data: {"a": 6}\r\n\r\ndata: {"a": 7}\r\n\r\n',
        b'data: {"a": 8}\r\ndata: {"b": 9}\r\n\r\n',
        b'data:{"a": 10}\r\n\r\n',
        b": keep-alive\r\n\r\n",
        b"\r\n",
        b'{\n  "error": {"code": 503}\n}\n',
        b'data: {"c":\r\n',  # an event left open: the next event's data joins it
        b'{"error":\n',  # a raw object left open
        b'data: {"' + b"x" * 40 + b'": 0}\r\n\r\n',
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_GEMINI_EVENTS, min_size=1, max_size=10),
    group=st.integers(1, 3),
    limits=st.sampled_from([{}, {"max_line": 30}, {"max_event": 24}]),
)
def test_sse_chunks_cut_between_events_frame_as_a_byte_at_a_time_read(
    events: list[bytes], group: int, limits: dict[str, int]
) -> None:
    from midstream.wire.gemini import _SSEFramer

    def frame(chunks: list[bytes]) -> tuple[list[str], str]:
        options = {"max_line": 1000, "max_event": 1000, "max_document": 1000, **limits}
        framer, out = _SSEFramer(**options), []
        try:
            for piece in chunks:
                framer.feed(piece, out)
            out.extend(framer.close())
        except (LimitExceeded, RemoteProtocolError) as exc:
            return out, repr(exc)
        return out, ""

    body = b"".join(events)
    chunks = [b"".join(events[i : i + group]) for i in range(0, len(events), group)]
    assert frame(chunks) == frame([body[i : i + 1] for i in range(len(body))])
    assert frame([b'data: {"first": 0}\r\n\r\n', *chunks]) == frame([b'data: {"first": 0}\r\n\r\n' + body])
