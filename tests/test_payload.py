"""The one JSON payload policy: msgspec's fast path and the json fallback agree; every dialect obeys it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream import Usage, wire
from midstream.errors import RemoteProtocolError
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, TextDelta, UsageUpdate
from midstream.wire import _payload
from midstream.wire._payload import loads, loads_json
from midstream.wire.eventstream import EventStreamDecoder, encode_message
from wiresupport import assert_split_invariant

# What the policy must settle the same way whichever parser reads it.
EDGE_CASES = [
    '{"a":1}',
    ' {"a":1}\n',
    '{"a":1}x',
    "",
    " ",
    "\ufeff{}",
    "[1]",
    '"s"',
    '{"a":',
    "NaN",
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": -Infinity}',
    "[1e400, -1e400, 1e-400]",
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\ud83d\\ude00"',
    "\ud800",
    '"\ud800"',
    "123456789012345678901234567890123",
    "-0",
    "-0.0",
    "2.5e-324",
    '{"a":1,"a":2}',
    '{"\\u0000":1}',
    '"\x01"',
    '"a\tb"',
    '{"a":1,}',
    "01",
    "1.",
    "+1",
    "\x0c{}",
    "\xa0{}",
    "[" * 50 + "]" * 50,
]


def _outcome(parse: Any, text: str | bytes) -> str:
    try:
        return repr(parse(text))
    except ValueError:
        return "ValueError"


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def test_the_fast_path_is_there() -> None:
    # msgspec is a dependency: without it every test below compares the fallback with itself.
    assert _payload.fast_path()


@pytest.mark.parametrize("text", EDGE_CASES)
def test_fast_path_and_fallback_agree(text: str) -> None:
    assert _outcome(loads, text) == _outcome(loads_json, text)
    data = _as_bytes(text)
    assert _outcome(loads, data) == _outcome(loads_json, data)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_the_policy_is_json_loads_without_constants(text: str) -> None:
    try:
        expected = repr(json.loads(text, parse_constant=_no_constant))
    except ValueError:
        expected = "ValueError"
    assert _outcome(loads, text) == expected


def _no_constant(name: str) -> Any:
    raise ValueError(name)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a": [1, NaN]}', '{"a": -Infinity}'])
def test_nan_and_infinity_are_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text)
    with pytest.raises(ValueError):
        loads(_as_bytes(text))


def test_what_the_grammar_allows_is_kept_as_json_keeps_it() -> None:
    assert loads("[1e400, -1e400]") == [math.inf, -math.inf]
    assert loads('"\\ud800"') == "\ud800"
    big = 2**200 + 1
    assert loads(str(big)) == big and type(loads(str(big))) is int
    assert loads("\xef\xbb\xbf{}".encode("latin-1")) == {}  # bytes: json detects the UTF-8 signature


def test_nesting_past_the_recursion_limit_raises_recursion_error() -> None:
    for parse in (loads, loads_json):
        with pytest.raises(RecursionError):
            parse("[" * 100_000 + "]" * 100_000)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    value=_values,
    ascii_only=st.booleans(),
    before=st.sampled_from(["", " ", "\t", "\n", "\ufeff"]),
    after=st.sampled_from(["", " ", "\r\n", "}", "x", ","]),
)
def test_fast_path_and_fallback_agree_generated(
    value: Any, ascii_only: bool, before: str, after: str
) -> None:
    # ensure_ascii writes lone surrogates as escapes; without it they are raw characters in the text.
    text = before + json.dumps(value, ensure_ascii=ascii_only) + after
    assert _outcome(loads, text) == _outcome(loads_json, text)
    assert _outcome(loads, _as_bytes(text)) == _outcome(loads_json, _as_bytes(text))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('{}[]":,0123456789.eE+-tfnrulasN \\u\ud800'), max_size=30))
def test_fast_path_and_fallback_agree_on_garbage(text: str) -> None:
    assert _outcome(loads, text) == _outcome(loads_json, text)


# -- every dialect ---------------------------------------------------------------------------------


def _stream(dialect: str) -> bytes:
    events: list[Event] = [
        ResponseStart(
            provider=dialect, model="model-x", id="resp_1", usage=Usage(input_tokens=3, output_tokens=1)
        ),
        BlockStart(index=0, type="text", raw_type="text"),
        TextDelta(0, "hi"),
        TextDelta(0, " there"),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=3, output_tokens=2)),
        ResponseEnd(stop_reason="end_turn", raw_stop_reason="end_turn"),
    ]
    return wire.encoder(dialect).encode_all(events)


def _with_field(dialect: str, body: bytes, value: str) -> bytes:
    """``body`` with ``"extra": <value>`` added to its first JSON payload (a field every dialect ignores
    or passes through)."""
    field = b'{"extra":' + value.encode() + b","
    if dialect == "bedrock":
        frames = EventStreamDecoder().feed(body)
        first = encode_message(frames[0].headers, frames[0].payload.replace(b"{", field, 1))
        return first + body[len(encode_message(frames[0].headers, frames[0].payload)) :]
    if dialect == "ollama":
        return body.replace(b"{", field, 1)
    return body.replace(b"data: {", b"data: " + field, 1)


@pytest.mark.parametrize("dialect", wire.DIALECTS)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_every_dialect_rejects_nan_and_infinity(dialect: str, constant: str) -> None:
    body = _with_field(dialect, _stream(dialect), constant)
    with pytest.raises(RemoteProtocolError):
        assert_split_invariant(dialect, body, random_runs=20)


@pytest.mark.parametrize("dialect", wire.DIALECTS)
@pytest.mark.parametrize("value", ["1", "1e400", '"\\ud800"', str(2**70)])
def test_every_dialect_accepts_what_the_grammar_allows(dialect: str, value: str) -> None:
    # The control of the test above: the same field with a JSON value decodes to the same text.
    plain = assert_split_invariant(dialect, _stream(dialect), random_runs=5)
    events = assert_split_invariant(dialect, _with_field(dialect, _stream(dialect), value), random_runs=20)
    assert events[-1].kind == "response_end" and events[-1].terminal == "completed"  # type: ignore[union-attr]
    assert [e for e in events if e.kind == "text_delta"] == [e for e in plain if e.kind == "text_delta"]
