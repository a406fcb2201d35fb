"""The WHATWG ``text/event-stream`` rules, one test each, plus split invariance and two references.

The spec examples are those of the HTML standard, section 9.2 (server-sent events).
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import random
import re
import sys
import types
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream.errors import LimitExceeded, LocalError
from midstream.wire.sse import SSEDecoder, SSEEvent, encode_sse
from wiresupport import RECORDED, random_splits, split_at


def _load_httpx_sse_decoders() -> Any:
    """httpx-sse's line-based decoders, loaded without its package ``__init__`` (which needs httpx)."""
    spec = importlib.util.find_spec("httpx_sse")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("httpx-sse is not installed", allow_module_level=True)
    package = types.ModuleType("_httpx_sse_reference")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault(package.__name__, package)
    return importlib.import_module(f"{package.__name__}._decoders")


_HTTPX_SSE = _load_httpx_sse_decoders()

# -- helpers ------------------------------------------------------------------------------------------


def decode(chunks: Iterable[bytes], **options: int) -> list[SSEEvent]:
    dec = SSEDecoder(**options)
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.close())
    return out


def decode_all_ways(data: bytes, *, runs: int = 20, seed: int = 0) -> list[SSEEvent]:
    """Whole, byte by byte and in random splits: all must agree. Returns the whole-input result."""
    whole = decode([data])
    assert decode([data[i : i + 1] for i in range(len(data))]) == whole
    rng = random.Random(seed)
    for _ in range(runs):
        assert decode(random_splits(data, rng)) == whole
    return whole


def datas(events: Sequence[SSEEvent]) -> list[str]:
    return [e.data for e in events]


# -- the standard's own examples --------------------------------------------------------------------


def test_spec_example_stock_ticker_multiline_data() -> None:
    events = decode_all_ways(b"data: YHOO\ndata: +2\ndata: 10\n\n")
    assert events == [SSEEvent(event="message", data="YHOO\n+2\n10")]


def test_spec_example_comment_ids_and_leading_space() -> None:
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    events = decode_all_ways(stream + b"\n")
    assert events == [
        SSEEvent(event="message", data="first event", id="1"),
        # ``id`` with no value resets the last event id to the empty string
        SSEEvent(event="message", data="second event", id=""),
        # only one leading space is removed
        SSEEvent(event="message", data=" third event", id=""),
    ]
    # Without its blank line the third event is never dispatched.
    assert datas(decode_all_ways(stream)) == ["first event", "second event"]


def test_spec_example_empty_data_lines() -> None:
    events = decode_all_ways(b"data\n\ndata\ndata\n\ndata:")
    assert datas(events) == ["", "\n"]


def test_spec_example_space_after_colon_is_optional() -> None:
    events = decode_all_ways(b"data:test\n\ndata: test\n\n")
    assert datas(events) == ["test", "test"]


def test_spec_example_event_types() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    events = decode_all_ways(stream)
    assert [(e.event, e.data) for e in events] == [
        ("add", "73857293"),
        ("remove", "2153"),
        ("add", "113411"),
    ]


# -- line endings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_every_line_ending_is_accepted(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    events = decode_all_ways(stream)
    assert events == [SSEEvent(event="e", data="a\nb"), SSEEvent(event="message", data="c")]


def test_mixed_line_endings_in_one_stream() -> None:
    events = decode_all_ways(b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r")
    assert datas(events) == ["a\nb\nc", "d"]


def test_cr_ending_one_chunk_and_lf_starting_the_next_is_one_line_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    # The LF pairs with the CR: no blank line, so nothing is dispatched yet.
    assert dec.feed(b"\ndata: b\r") == []
    assert dec.feed(b"\n\r") == [SSEEvent(event="message", data="a\nb")]
    assert dec.feed(b"\n") == []
    assert dec.close() == []


def test_cr_then_lf_separated_by_an_incomplete_utf8_chunk() -> None:
    # The middle chunk decodes to no text yet; the pending CR must still swallow the LF after it.
    dec = SSEDecoder()
    out = dec.feed(b"data: a\r") + dec.feed(b"\ndata: \xc3") + dec.feed(b"\xa9\r") + dec.feed(b"\n\r\n")
    assert out == [SSEEvent(event="message", data="a\n\u00e9")]


def test_cr_at_chunk_end_then_cr_is_a_blank_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\r") == [SSEEvent(event="message", data="a")]


def test_lf_after_a_cr_that_was_not_at_a_chunk_end_is_a_blank_line() -> None:
    # "\r" "\n" are one line end only when adjacent; "\r" + "x" + "\n" are two.
    assert datas(decode_all_ways(b"data: a\r\n\n")) == ["a"]
    assert datas(decode_all_ways(b"data: a\n\r\n")) == ["a"]


# -- byte-order mark --------------------------------------------------------------------------------


def test_one_leading_bom_is_stripped() -> None:
    assert datas(decode_all_ways(b"\xef\xbb\xbfdata: x\n\n")) == ["x"]


def test_only_one_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", which is ignored.
    assert decode_all_ways(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_is_stripped_only_at_the_very_start() -> None:
    assert datas(decode_all_ways(b"data: a\n\n\xef\xbb\xbfdata: b\n\ndata: c\n\n")) == ["a", "c"]
    assert datas(decode_all_ways(b"data: \xef\xbb\xbfv\n\n")) == ["\ufeffv"]


@pytest.mark.parametrize("cuts", [[1], [2], [1, 2], [3], [1, 2, 3]])
def test_bom_split_across_chunks_is_stripped(cuts: list[int]) -> None:
    data = b"\xef\xbb\xbfdata: x\n\n"
    assert datas(decode(split_at(data, cuts))) == ["x"]


def test_empty_first_chunk_does_not_use_up_the_bom_check() -> None:
    assert datas(decode([b"", b"\xef\xbb\xbfdata: x\n\n"])) == ["x"]


# -- fields -----------------------------------------------------------------------------------------


def test_comment_lines_are_ignored() -> None:
    events = decode_all_ways(b":\n: data: not data\n:comment\ndata: x\n: more\n\n")
    assert events == [SSEEvent(event="message", data="x")]


def test_comment_only_block_dispatches_nothing() -> None:
    assert decode_all_ways(b": keep-alive\n\n: ping\n\n") == []


def test_field_without_colon_has_an_empty_value() -> None:
    assert decode_all_ways(b"data\n\n") == [SSEEvent(event="message", data="")]
    # ``event`` without a value: the type stays empty, so the default applies
    assert decode_all_ways(b"event: x\nevent\ndata: d\n\n") == [SSEEvent(event="message", data="d")]


def test_only_one_leading_space_is_removed() -> None:
    assert datas(decode_all_ways(b"data:   three\n\n")) == ["  three"]
    assert datas(decode_all_ways(b"data:\tx\n\n")) == ["\tx"]
    assert datas(decode_all_ways(b"data:x \n\n")) == ["x "]
    assert decode_all_ways(b"event:  spaced\ndata: d\n\n")[0].event == " spaced"


def test_value_keeps_later_colons() -> None:
    assert datas(decode_all_ways(b'data: {"a": "b:c"}\n\n')) == ['{"a": "b:c"}']


def test_field_names_are_case_sensitive_and_unknown_fields_ignored() -> None:
    assert decode_all_ways(b"Data: x\nfoo: bar\ndata : y\n\n") == []


def test_multiline_data_is_joined_with_lf() -> None:
    assert datas(decode_all_ways(b"data: a\ndata:\ndata: b\ndata\n\n")) == ["a\n\nb\n"]


def test_empty_data_is_not_dispatched_and_resets_the_event_type() -> None:
    events = decode_all_ways(b"event: lonely\n\nid: 4\nretry: 5\n\ndata: x\n\n")
    assert events == [SSEEvent(event="message", data="x", id="4", retry=5)]


def test_event_type_defaults_to_message_and_resets_after_dispatch() -> None:
    events = decode_all_ways(b"data: a\n\nevent: custom\ndata: b\n\ndata: c\n\n")
    assert [e.event for e in events] == ["message", "custom", "message"]


def test_last_event_type_line_wins() -> None:
    assert decode_all_ways(b"event: a\nevent: b\ndata: x\n\n")[0].event == "b"


def test_id_with_nul_is_ignored() -> None:
    events = decode_all_ways(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_id_persists_to_later_events() -> None:
    events = decode_all_ways(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n")
    assert [e.id for e in events] == ["7", "7", "8"]


def test_id_without_any_id_field_is_none() -> None:
    assert decode_all_ways(b"data: a\n\n")[0].id is None


def test_empty_id_resets_to_empty_string() -> None:
    events = decode_all_ways(b"id: 7\ndata: a\n\nid:\ndata: b\n\ndata: c\n\n")
    assert [e.id for e in events] == ["7", "", ""]


def test_id_on_an_undispatched_event_still_counts() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 9\n\n") == []
    assert dec.last_event_id == "9"
    assert dec.feed(b"data: x\n\n") == [SSEEvent(event="message", data="x", id="9")]


def test_retry_is_used_only_when_all_ascii_digits() -> None:
    stream = b"retry: 1500\ndata: a\n\n"
    for bad in (b"1.5", b"-1", b"+2", b" 3", b"4 ", b"1e3", b"", b"\xd9\xa1\xd9\xa2", b"0x10"):
        stream += b"retry: " + bad + b"\ndata: b\n\n"
    stream += b"retry: 0\ndata: c\n\n"
    events = decode_all_ways(stream)
    assert [e.retry for e in events] == [1500] * 10 + [0]


def test_retry_persists_and_is_exposed_on_the_decoder() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"retry: 30\n\n") == []
    assert dec.retry == 30
    assert dec.feed(b"data: x\n\n")[0].retry == 30


# -- end of input -----------------------------------------------------------------------------------


def test_unterminated_final_event_is_discarded_at_close() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: done\n\ndata: half\ndata: more\n") == [SSEEvent(event="message", data="done")]
    assert dec.close() == []


def test_unterminated_final_line_is_discarded_at_close() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n\nid: late") == [SSEEvent(event="message", data="a")]
    assert dec.close() == []
    # A line without its line break is not a line: the id never took effect.
    assert dec.last_event_id is None


def test_final_cr_ends_the_last_line() -> None:
    assert datas(decode_all_ways(b"data: a\r\r")) == ["a"]


def test_feed_after_close_is_a_local_error() -> None:
    dec = SSEDecoder()
    dec.close()
    with pytest.raises(LocalError):
        dec.feed(b"data: x\n\n")
    assert dec.close() == []


def test_feeding_nothing_returns_nothing() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"") == []
    assert dec.close() == []


# -- UTF-8 ------------------------------------------------------------------------------------------

_UTF8_STREAM = "event: caf\u00e9\ndata: h\u00e9llo \u2713 \U0001f389 \u4e2d\u6587\n\n".encode()


@pytest.mark.parametrize("cut", range(1, len(_UTF8_STREAM)))
def test_utf8_split_at_every_point(cut: int) -> None:
    assert decode([_UTF8_STREAM[:cut], _UTF8_STREAM[cut:]]) == [
        SSEEvent(event="caf\u00e9", data="h\u00e9llo \u2713 \U0001f389 \u4e2d\u6587")
    ]


def test_utf8_one_byte_at_a_time() -> None:
    assert datas(decode_all_ways(_UTF8_STREAM)) == ["h\u00e9llo \u2713 \U0001f389 \u4e2d\u6587"]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"a\xffb", "a\ufffdb"),  # a byte that never starts UTF-8
        (b"\xc3(", "\ufffd("),  # a lead byte without its continuation
        (b"\xe2\x9c", "\ufffd"),  # a sequence cut short by the line end
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate
        (b"\xc0\xaf", "\ufffd\ufffd"),  # an overlong encoding
    ],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, text: str) -> None:
    assert datas(decode_all_ways(b"data: " + raw + b"\n\n")) == [text]


def test_incomplete_utf8_at_eof_does_not_crash() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\n\ndata: \xe2\x9c") == [SSEEvent(event="message", data="x")]
    assert dec.close() == []


# -- limits -----------------------------------------------------------------------------------------


def test_line_of_exactly_max_line_is_accepted() -> None:
    assert datas(decode([b"data: " + b"x" * 94 + b"\n\n"], max_line=100)) == ["x" * 94]


def test_line_over_max_line_raises() -> None:
    with pytest.raises(LimitExceeded) as info:
        decode([b"data: " + b"x" * 95 + b"\n\n"], max_line=100)
    assert info.value.limit == "max_line"
    assert info.value.value == 100


def test_unterminated_line_over_max_line_raises_without_a_line_end() -> None:
    dec = SSEDecoder(max_line=100)
    with pytest.raises(LimitExceeded):
        dec.feed(b"x" * 101)


def test_max_line_one_byte_at_a_time_raises_at_the_first_byte_past_the_bound() -> None:
    dec = SSEDecoder(max_line=1000)
    for _ in range(1000):
        assert dec.feed(b"y") == []
    # The buffer holds exactly the bound now; one more character of the same line is refused.
    with pytest.raises(LimitExceeded):
        dec.feed(b"y")


def test_max_line_counts_characters_not_bytes() -> None:
    line = ("data: " + "\u00e9" * 94).encode()  # 100 characters, 194 bytes
    assert datas(decode([line[i : i + 1] for i in range(len(line))] + [b"\n\n"], max_line=100)) == [
        "\u00e9" * 94
    ]


def test_max_line_applies_to_comments() -> None:
    with pytest.raises(LimitExceeded):
        decode([b":" + b"c" * 200 + b"\n"], max_line=100)


def test_many_short_lines_are_not_limited_by_max_line() -> None:
    stream = b"".join(b": tick\n" for _ in range(500)) + b"data: ok\n\n"
    assert datas(decode([stream], max_line=10)) == ["ok"]


def test_event_over_max_event_raises() -> None:
    with pytest.raises(LimitExceeded) as info:
        decode([b"data: 0123456789\n" * 10 + b"\n"], max_event=100)
    assert info.value.limit == "max_event"
    assert info.value.value == 100


def test_max_event_one_byte_at_a_time() -> None:
    stream = b"data: 0123456789\n" * 10 + b"\n"
    dec = SSEDecoder(max_event=100)
    with pytest.raises(LimitExceeded):
        for i in range(len(stream)):
            dec.feed(stream[i : i + 1])
    # It failed while the tenth line arrived, not at the final dispatch.
    assert i < len(stream) - 1


def test_max_event_is_per_event() -> None:
    stream = (b"data: 0123456789\n" * 5 + b"\n") * 10
    assert len(decode([stream], max_event=100)) == 10


# -- encode_sse -------------------------------------------------------------------------------------


def test_encode_sse_exact_bytes() -> None:
    assert encode_sse('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_sse("x", event="e", id="1", retry=5) == b"event: e\nid: 1\nretry: 5\ndata: x\n\n"
    assert encode_sse("a\nb", newline="\r\n") == b"data: a\r\ndata: b\r\n\r\n"
    assert encode_sse(comment="hi") == b": hi\n\n"


def test_encode_sse_rejects_line_breaks_in_event_and_id_and_bad_newline() -> None:
    for kwargs in ({"event": "a\nb"}, {"event": "a\rb"}, {"id": "1\n2"}, {"newline": "\n\n"}):
        with pytest.raises(LocalError):
            encode_sse("x", **kwargs)  # type: ignore[arg-type]


def test_encode_sse_comment_with_line_breaks_cannot_inject_fields() -> None:
    for comment in ("a\ndata: evil", "a\rdata: evil", "a\r\nevent: evil"):
        assert decode_all_ways(encode_sse("x", comment=comment)) == [SSEEvent(event="message", data="x")]


def test_encode_sse_data_with_cr_becomes_lf() -> None:
    assert datas(decode_all_ways(encode_sse("a\rb\r\nc\nd"))) == ["a\nb\nc\nd"]


_FIELD = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=12)
_DATA = st.text(st.characters(codec="utf-8"), max_size=40)
_NEWLINE = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _encoded_events(draw: st.DrawFn) -> tuple[str, str | None, str | None, int | None, str, str | None]:
    return (
        draw(_DATA),
        draw(st.none() | _FIELD),
        draw(st.none() | _FIELD),
        draw(st.none() | st.integers(0, 10**12)),
        draw(_NEWLINE),
        draw(st.none() | _DATA),
    )


@settings(max_examples=100, deadline=None)
@given(events=st.lists(_encoded_events(), max_size=6), seed=st.integers(0, 2**32))
def test_encode_sse_round_trips_through_the_decoder(
    events: list[tuple[str, str | None, str | None, int | None, str, str | None]], seed: int
) -> None:
    stream = b"".join(
        encode_sse(data, event=event, id=id_, retry=retry, newline=nl, comment=comment)
        for data, event, id_, retry, nl, comment in events
    )
    expected: list[SSEEvent] = []
    last_id: str | None = None
    last_retry: int | None = None
    for data, event, id_, retry, _, _ in events:
        last_id = id_ if id_ is not None else last_id
        last_retry = retry if retry is not None else last_retry
        # The promise: data comes back with every CR / CRLF turned into LF; event defaults to message.
        text = re.sub(r"\r\n|\r", "\n", data)
        expected.append(SSEEvent(event=event or "message", data=text, id=last_id, retry=last_retry))
    assert decode_all_ways(stream, runs=5, seed=seed) == expected


# -- generated raw streams: split invariance and an independent model -------------------------------

_LINE_VALUE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=10)
_NAME = st.sampled_from(["data", "event", "id", "retry", "", "dat", "foo", "Data", "\ufeff"])


@st.composite
def _raw_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field", "bare", "comment", "blank", "retry"]))
    if kind == "field":
        return draw(_NAME) + ":" + draw(st.sampled_from(["", " ", "  "])) + draw(_LINE_VALUE)
    if kind == "bare":
        return draw(_NAME)
    if kind == "comment":
        return ":" + draw(_LINE_VALUE)
    if kind == "retry":
        return (
            "retry:"
            + draw(st.sampled_from(["", " "]))
            + draw(st.from_regex(r"[0-9+\- a]{0,4}", fullmatch=True))
        )
    return ""


@st.composite
def _raw_stream(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_raw_line(), max_size=25))
    text = "".join(line + draw(_NEWLINE) for line in lines)
    text += draw(st.sampled_from(["", "data: tail", "\r"]))
    bom = draw(st.sampled_from(["", "\ufeff", "\ufeff\ufeff"]))
    return (bom + text).encode()


def _reference(data: bytes) -> list[SSEEvent]:
    """The standard's algorithm, written out plainly on the whole text: the model to agree with."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the piece after the last line end is not a line
    out: list[SSEEvent] = []
    buffer, event_type, last_id, retry = "", "", None, None
    for line in lines:
        if line == "":
            if buffer:
                out.append(SSEEvent(event_type or "message", buffer[:-1], last_id, retry))
            buffer, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            buffer += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\x00" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return out


@settings(max_examples=150, deadline=None)
@given(stream=_raw_stream(), seed=st.integers(0, 2**32))
def test_generated_streams_agree_whole_bytewise_split_and_with_the_model(stream: bytes, seed: int) -> None:
    assert decode_all_ways(stream, runs=5, seed=seed) == _reference(stream)


# -- httpx-sse as a second, independent decoder --------------------------------------------------------


def _reference_httpx(text_chunks: Iterable[str]) -> list[tuple[str, str, str, int | None]]:
    lines_dec, dec = _HTTPX_SSE.SSELineDecoder(), _HTTPX_SSE.SSEDecoder()
    lines: list[str] = []
    for chunk in text_chunks:
        lines.extend(lines_dec.decode(chunk))
    lines.extend(lines_dec.flush())
    out = []
    for line in lines:
        sse = dec.decode(line)
        if sse is not None:
            out.append((sse.event or "message", sse.data, sse.id, sse.retry))
    return out


def _ours_like_httpx(events: list[SSEEvent]) -> list[tuple[str, str, str, int | None]]:
    # httpx-sse reports a missing id as "" and keeps retry only on the event that set it.
    return [(e.event, e.data, e.id or "", e.retry) for e in events]


@st.composite
def _well_formed_stream(draw: st.DrawFn) -> tuple[str, list[int | None]]:
    """Events that all carry data, no BOM, retry only as plain digits; returns the text and retries."""
    parts: list[str] = []
    retries: list[int | None] = []
    for _ in range(draw(st.integers(0, 6))):
        lines = [f"data:{draw(st.sampled_from(['', ' ']))}{draw(_LINE_VALUE)}"]
        for _ in range(draw(st.integers(0, 3))):
            lines.append(draw(st.sampled_from(["data: ", "event: ", "id: ", ": "])) + draw(_FIELD))
        retry = draw(st.none() | st.integers(0, 99999))
        if retry is not None:
            lines.append(f"retry: {retry}")
        draw(st.randoms()).shuffle(lines)
        nl = draw(_NEWLINE)
        parts.append(nl.join(lines) + nl + nl)
        retries.append(retry)
    return "".join(parts), retries


@settings(max_examples=100, deadline=None)
@given(case=_well_formed_stream(), seed=st.integers(0, 2**32))
def test_agrees_with_httpx_sse_on_well_formed_streams(case: tuple[str, list[int | None]], seed: int) -> None:
    text, retries = case
    data = text.encode()
    ours = decode_all_ways(data, runs=3, seed=seed)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), min(8, len(text) - 1))) if len(text) > 1 else []
    theirs = _reference_httpx([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    # Our retry persists (it is the reconnection time); compare it only where the event set it.
    assert [(e, d, i) for e, d, i, _ in _ours_like_httpx(ours)] == [(e, d, i) for e, d, i, _ in theirs]
    assert [r for *_, r in theirs] == retries
    assert all(r is None or ev.retry == r for ev, r in zip(ours, retries, strict=True))


_RECORDED_SSE = sorted(
    p.name for p in RECORDED.glob("*.txt") if p.name.startswith(("anthropic_", "openai_", "gemini_sse_"))
)


def test_recorded_sse_files_are_present() -> None:
    assert len(_RECORDED_SSE) >= 12


@pytest.mark.parametrize("name", _RECORDED_SSE)
def test_recorded_streams_agree_with_httpx_sse(name: str) -> None:
    data = (RECORDED / name).read_bytes()
    ours = decode_all_ways(data, runs=10)
    assert ours, "a recorded stream has events"
    theirs = _reference_httpx([data.decode()])
    assert _ours_like_httpx(ours) == theirs


# -- chunks cut between events: the read that skips the line buffer ---------------------------------
#
# A chunk that ends with a blank line, arriving when nothing is buffered, is read without the line
# buffer (what nearly every provider flush is). Streams of such events, ordinary and not, good bytes and
# bad, cut after every event or after random groups of them, must decode as the standard's model says,
# and hit a bound exactly where a byte-by-byte read (which never takes that path) hits it.

_EVENT_LINES = st.sampled_from(
    [
        "event: content_block_delta",
        "event: ",
        "event:x",
        "event: " + "e" * 12,
        "data: {}",
        "data: ",
        "data:v",
        "data: " + "d" * 12,
        "data: é€😀",
        ": keep-alive",
        "id: 7",
        "retry: 20",
        "data",
    ]
)


@st.composite
def _event_chunks(draw: st.DrawFn) -> list[bytes]:
    events: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["ordinary", "ordinary", "typed", "lines", "bad"]))
        if kind == "ordinary":
            text = "data: " + draw(_LINE_VALUE) + "\n\n"
        elif kind == "typed":
            text = "event: " + draw(_LINE_VALUE) + "\ndata: " + draw(_LINE_VALUE) + "\n\n"
        elif kind == "lines":
            lines = draw(st.lists(_EVENT_LINES, min_size=1, max_size=4))
            text = "".join(line + draw(_NEWLINE) for line in lines) + "\n"
        else:
            text = draw(
                st.sampled_from(
                    ["data: \r\n\n", "\ufeffdata: b\n\n", "\rdata: c\n\n", "data: x\n\n\n", "data: d\r", "\n"]
                )
            )
        raw = text.encode()
        if draw(st.booleans()) and kind == "ordinary":
            raw = raw[:6] + draw(st.sampled_from([b"\xff", b"\xe2\x82", b"\xc3("])) + raw[6:]
        events.append(raw)
    cut = draw(st.sampled_from(["each", "groups", "inside"]))
    if cut == "each":
        return events
    if cut == "inside":
        # Every event boundary, and a few cuts inside events (a partial line, a split character, a
        # CR whose LF comes next): the next chunk ending between events finds the buffer busy.
        stream = b"".join(events)
        bounds = {len(b"".join(events[:i])) for i in range(1, len(events))}
        bounds |= set(draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=4)))
        rng = draw(st.randoms(use_true_random=False))  # and after some line ends, inside an event
        bounds |= {i + 1 for i, byte in enumerate(stream) if byte == 10 and rng.random() < 0.3}
        cuts = [0, *sorted(b for b in bounds if 0 < b < len(stream)), len(stream)]
        return [stream[a:b] for a, b in itertools.pairwise(cuts)]
    chunks, i = [], 0
    while i < len(events):
        n = draw(st.integers(1, 3))
        chunks.append(b"".join(events[i : i + n]))
        i += n
    return chunks


@settings(max_examples=300, deadline=None)
@given(chunks=_event_chunks())
def test_chunks_cut_between_events_decode_as_the_model_says(chunks: list[bytes]) -> None:
    stream = b"".join(chunks)
    assert decode(chunks) == _reference(stream)
    assert decode([b"data: first\n\n", *chunks]) == _reference(b"data: first\n\n" + stream)


@settings(max_examples=200, deadline=None)
@given(chunks=_event_chunks(), max_line=st.integers(4, 24), max_event=st.integers(1, 24))
def test_chunks_cut_between_events_hit_the_bounds_where_a_byte_at_a_time_read_does(
    chunks: list[bytes], max_line: int, max_event: int
) -> None:
    def run(pieces: list[bytes]) -> tuple[list[SSEEvent], str]:
        dec, out = SSEDecoder(max_line=max_line, max_event=max_event), []
        try:
            for piece in pieces:
                dec.feed(piece, out)
            out.extend(dec.close())
        except LimitExceeded as exc:
            return out, str(exc)
        return out, ""

    stream = b"".join(chunks)
    assert run(chunks) == run([stream[i : i + 1] for i in range(len(stream))])


@pytest.mark.parametrize("bound", ["max_line", "max_event"])
def test_a_bound_changed_after_construction_applies_to_ordinary_events(bound: str) -> None:
    dec = SSEDecoder()
    assert datas(dec.feed(b"data: 0123456789\n\n")) == ["0123456789"]
    setattr(dec, bound, 8)
    assert getattr(dec, bound) == 8
    with pytest.raises(LimitExceeded):
        dec.feed(b"data: 0123456789\n\n")
