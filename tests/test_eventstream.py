"""AWS eventstream framing: the SDK test vectors, every header type, botocore as a reference, damage.

The vectors are those of aws-sdk-js-v3 (``packages/eventstream-marshaller/src/TestVectors.fixture.ts``);
botocore's ``EventStreamBuffer`` is an independent parser that must agree with ours frame for frame.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from midstream.errors import EventStreamFrameError, LimitExceeded, LocalError, RemoteProtocolError
from midstream.wire.eventstream import (
    EventStreamDecoder,
    EventStreamMessage,
    Header,
    HeaderValue,
    encode_message,
)
from wiresupport import RECORDED, random_splits

# frame counts, as botocore also reports them
BINS = {
    "bedrock_converse_stream_redacted_thinking.bin": 18,
    "bedrock_converse_stream_thinking.bin": 25,
    "bedrock_converse_stream_tool_use.bin": 26,
}

# -- building and reading frames -----------------------------------------------------------------------


def decode(chunks: Iterable[bytes], **options: int) -> list[EventStreamMessage]:
    dec = EventStreamDecoder(**options)
    out: list[EventStreamMessage] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.close())
    return out


def botocore_frames(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return [(dict(m.headers), m.payload) for m in buf]


def as_botocore(headers: dict[str, HeaderValue]) -> dict[str, object]:
    """Our header values the way botocore reports them (timestamps in ms, UUIDs as 16 bytes)."""
    out: dict[str, object] = {}
    for name, value in headers.items():
        if isinstance(value, datetime):
            out[name] = (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        elif isinstance(value, UUID):
            out[name] = value.bytes
        else:
            out[name] = value
    return out


def raw_frame(headers: bytes, payload: bytes = b"", *, total: int | None = None) -> bytes:
    """A frame with valid CRCs around arbitrary header bytes (to test header parsing on its own)."""
    length = 16 + len(headers) + len(payload) if total is None else total
    prelude = struct.pack(">II", length, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def prelude_only(total: int, headers_len: int) -> bytes:
    prelude = struct.pack(">II", total, headers_len)
    return prelude + struct.pack(">I", zlib.crc32(prelude))


ALL_TYPES: dict[str, HeaderValue | Header] = {
    "true": True,
    "false": False,
    "byte": Header.byte(-7),
    "short": Header.short(-32768),
    "integer": Header.integer(2_147_483_647),
    "long": Header.long(-(2**63)),
    "binary": b"\x00\xffbin",
    "string": "héllo ✓",
    "timestamp": datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
}


# -- the AWS SDK test vectors -------------------------------------------------------------------------

EMPTY = bytes.fromhex("00000010 00000000 05c248eb 7d98c8ff")
INT32_HEADER = bytes.fromhex(
    "0000002b 0000000e 348bec7b 08 6576656e742d6964 04 0000a00c7b27666f6f273a27626172277d d3890285"
)
PAYLOAD_NO_HEADERS = bytes.fromhex("0000001d 00000000 fd528c5a 7b27666f6f273a27626172277d c3653936")
ONE_STR_HEADER = bytes.fromhex(
    "0000003d 00000020 07fd8396 0c 636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e"
    "7b27666f6f273a27626172277d 8d9c08b1"
)
FOO_BAR = b"{'foo':'bar'}"


def _corrupt(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1 :]


@pytest.mark.parametrize(
    ("encoded", "headers", "payload"),
    [
        (EMPTY, {}, b""),
        (INT32_HEADER, {"event-id": Header.integer(0x0000A00C)}, FOO_BAR),
        (PAYLOAD_NO_HEADERS, {}, FOO_BAR),
        (ONE_STR_HEADER, {"content-type": "application/json"}, FOO_BAR),
    ],
    ids=["empty_message", "int32_header", "payload_no_headers", "payload_one_str_header"],
)
def test_sdk_vectors_decode_and_encode(
    encoded: bytes, headers: dict[str, Header | str], payload: bytes
) -> None:
    (message,) = decode([encoded])
    plain = {k: v.value if isinstance(v, Header) else v for k, v in headers.items()}
    assert message == EventStreamMessage(plain, payload)
    assert encode_message(headers, payload) == encoded


@pytest.mark.parametrize(
    "encoded",
    [
        _corrupt(ONE_STR_HEADER, 20, 43),  # corrupted_headers: '-' of content-type became '+'
        _corrupt(ONE_STR_HEADER, 6, 1),  # corrupted_header_len
        _corrupt(PAYLOAD_NO_HEADERS, 0, 1),  # corrupted_length
        _corrupt(PAYLOAD_NO_HEADERS, 24, 141),  # corrupted_payload
    ],
    ids=["corrupted_headers", "corrupted_header_len", "corrupted_length", "corrupted_payload"],
)
def test_sdk_failure_vectors(encoded: bytes) -> None:
    with pytest.raises(EventStreamFrameError, match="CRC mismatch"):
        decode([encoded])


def test_empty_message_vector_is_what_zlib_says() -> None:
    assert zlib.crc32(EMPTY[:8]) == 0x05C248EB
    assert zlib.crc32(EMPTY[:12]) == 0x7D98C8FF


# -- header types ------------------------------------------------------------------------------------


def test_every_header_type_round_trips_and_botocore_agrees() -> None:
    frame = encode_message(ALL_TYPES, b"payload")
    (message,) = decode([frame])
    assert message.payload == b"payload"
    assert list(message.headers) == list(ALL_TYPES)
    assert message.headers == {
        "true": True,
        "false": False,
        "byte": -7,
        "short": -32768,
        "integer": 2_147_483_647,
        "long": -(2**63),
        "binary": b"\x00\xffbin",
        "string": "héllo ✓",
        "timestamp": datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC),
        "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    }
    ((boto_headers, boto_payload),) = botocore_frames(frame)
    assert boto_payload == b"payload"
    assert boto_headers == as_botocore(message.headers)
    assert boto_headers["timestamp"] == 1709210096789


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, b"\x00"),
        (False, b"\x01"),
        (Header.byte(-2), b"\x02\xfe"),
        (Header.short(258), b"\x03\x01\x02"),
        (Header.integer(-1), b"\x04\xff\xff\xff\xff"),
        (Header.long(1), b"\x05" + b"\x00" * 7 + b"\x01"),
        (b"ab", b"\x06\x00\x02ab"),
        ("é", b"\x07\x00\x02\xc3\xa9"),
        (Header.timestamp(1000), b"\x08" + b"\x00" * 6 + b"\x03\xe8"),
        (UUID(int=1), b"\x09" + b"\x00" * 15 + b"\x01"),
    ],
)
def test_header_wire_bytes(value: HeaderValue | Header, wire: bytes) -> None:
    frame = encode_message({"h": value})
    assert frame[12:-4] == b"\x01h" + wire
    assert frame == raw_frame(b"\x01h" + wire)


def test_timestamp_header_decodes_to_aware_utc_datetime() -> None:
    (message,) = decode([raw_frame(b"\x01t\x08" + struct.pack(">q", -1))])
    assert message.headers["t"] == datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def test_timestamp_outside_datetime_range_is_an_error() -> None:
    with pytest.raises(EventStreamFrameError, match="timestamp"):
        decode([raw_frame(b"\x01t\x08" + struct.pack(">q", 2**62))])


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"n": 5}, "wrap integers"),
        ({"n": Header.byte(128)}, "does not fit"),
        ({"n": Header.short(-32769)}, "does not fit"),
        ({"n": Header.integer(2**31)}, "does not fit"),
        ({"n": Header.long(2**63)}, "does not fit"),
        ({"n": Header.string(b"x")}, "not a string"),  # type: ignore[arg-type]
        ({"n": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"n": "x" * 65536}, "exceeds 65535"),
        ({"": "x"}, "1 to 255"),
        ({"n" * 256: "x"}, "1 to 255"),
        ({"n": 1.5}, "cannot write"),
    ],
)
def test_encoder_refuses_what_it_cannot_write(headers: dict[str, HeaderValue | Header], match: str) -> None:
    with pytest.raises(LocalError, match=match):
        encode_message(headers)


def test_encoder_refuses_oversize_frames() -> None:
    with pytest.raises(LocalError, match="payload"):
        encode_message({}, b"x" * 11, max_payload=10)
    with pytest.raises(LocalError, match="headers"):
        encode_message({"h": "x" * 20}, max_headers=10)


# -- botocore on the recorded captures ---------------------------------------------------------------


@pytest.mark.parametrize("name", BINS)
def test_recorded_captures_agree_with_botocore(name: str) -> None:
    data = (RECORDED / name).read_bytes()
    ours = decode([data])
    assert len(ours) == BINS[name]
    assert [(m.headers, m.payload) for m in ours] == botocore_frames(data)
    # Bedrock writes only string headers, in this order.
    assert all(list(m.headers) == [":event-type", ":content-type", ":message-type"] for m in ours)
    # Re-encoding every frame reproduces the capture byte for byte.
    assert b"".join(encode_message(m.headers, m.payload) for m in ours) == data


def test_recorded_capture_frame_count_and_first_frame() -> None:
    messages = decode([(RECORDED / "bedrock_converse_stream_tool_use.bin").read_bytes()])
    assert len(messages) == 26
    assert messages[0].headers[":event-type"] == "messageStart"
    assert messages[0].payload == b'{"p":"abcdefghijklmnopqrs","role":"assistant"}'
    assert messages[-1].headers[":event-type"] == "metadata"


# -- splits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BINS)
def test_recorded_captures_any_split(name: str) -> None:
    data = (RECORDED / name).read_bytes()
    whole = decode([data])
    assert decode([data[i : i + 1] for i in range(len(data))]) == whole
    rng = random.Random(7)
    for _ in range(50):
        assert decode(random_splits(data, rng)) == whole


_values = st.one_of(
    st.booleans(),
    st.integers(-128, 127).map(Header.byte),
    st.integers(-(2**15), 2**15 - 1).map(Header.short),
    st.integers(-(2**31), 2**31 - 1).map(Header.integer),
    st.integers(-(2**63), 2**63 - 1).map(Header.long),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.integers(-(2**40), 2**40).map(Header.timestamp),
    st.uuids(),
)
_messages = st.lists(
    st.tuples(
        st.dictionaries(st.text(min_size=1, max_size=12), _values, max_size=6), st.binary(max_size=200)
    ),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(messages=_messages, cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=30))
def test_generated_frames_split_anywhere_and_botocore_agrees(
    messages: list[tuple[dict[str, HeaderValue | Header], bytes]], cuts: list[int]
) -> None:
    messages = [(h, p) for h, p in messages if all(len(k.encode()) <= 255 for k in h)]
    data = b"".join(encode_message(h, p) for h, p in messages)
    points = sorted({c for c in cuts if c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    got = decode(chunks)
    assert got == decode([data])
    assert [(as_botocore(m.headers), m.payload) for m in got] == botocore_frames(data)
    assert [m.payload for m in got] == [p for _, p in messages]


# -- damage ------------------------------------------------------------------------------------------

SAMPLE = encode_message({":event-type": "x", "n": Header.integer(3)}, b'{"a":1}')


@pytest.mark.parametrize("position", range(len(SAMPLE)))
def test_any_flipped_byte_is_caught(position: int) -> None:
    damaged = _corrupt(SAMPLE, position, SAMPLE[position] ^ 0x41)
    # The prelude (lengths and its CRC) is checked by the prelude CRC; the rest by the message CRC.
    where = "prelude CRC" if position < 12 else "message CRC"
    with pytest.raises(EventStreamFrameError, match=where):
        decode([damaged])
    with pytest.raises(EventStreamFrameError, match=where):
        decode([damaged[i : i + 1] for i in range(len(damaged))])


def test_damage_in_a_later_frame_after_good_ones() -> None:
    good = encode_message({"a": "1"}, b"one")
    bad = _corrupt(good, len(good) - 1, good[-1] ^ 1)
    dec = EventStreamDecoder()
    assert dec.feed(good) == [EventStreamMessage({"a": "1"}, b"one")]
    with pytest.raises(EventStreamFrameError):
        dec.feed(bad)
    with pytest.raises(EventStreamFrameError):  # the decoder stays failed: the stream cannot resync
        dec.feed(good)


def test_frame_shorter_than_minimum() -> None:
    with pytest.raises(EventStreamFrameError, match="below the minimum"):
        decode([prelude_only(15, 0) + b"\x00" * 3])


def test_headers_longer_than_frame() -> None:
    with pytest.raises(EventStreamFrameError, match="exceeds frame length"):
        decode([prelude_only(20, 5)])


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        (b"\x01h\x0a", "unknown value type 10"),
        (b"\x01h\xff", "unknown value type 255"),
        (b"\x01h\x07\x00\x01a\x01h\x07\x00\x01b", "appears twice"),
        (b"\x01h\x07\x00\x05ab", "runs past"),
        (b"\x01h\x04\x00\x00", "runs past"),
        (b"\x05h", "runs past"),
        (b"\x01h", "no type byte"),
        (b"\x01h\x07\x00\x02\xc3\x28", "not valid UTF-8"),
        (b"\x02\xff\xfe\x00", "not valid UTF-8"),
    ],
)
def test_bad_headers_inside_valid_crcs(headers: bytes, match: str) -> None:
    frame = raw_frame(headers, b"{}")
    with pytest.raises(EventStreamFrameError, match=match):
        decode([frame])


def test_botocore_also_rejects_duplicate_headers() -> None:
    frame = raw_frame(b"\x01h\x07\x00\x01a\x01h\x07\x00\x01b")
    with pytest.raises(Exception, match="Duplicate header"):
        botocore_frames(frame)


# -- size limits, decided from the prelude -----------------------------------------------------------


def test_oversize_payload_is_refused_from_the_prelude_alone() -> None:
    dec = EventStreamDecoder()
    total = 16 + 24 * 1024 * 1024 + 1
    with pytest.raises(LimitExceeded, match="payload") as info:
        dec.feed(prelude_only(total, 0))  # nothing but the 12-byte prelude was fed
    assert info.value.limit == "max_payload"
    assert isinstance(info.value, RemoteProtocolError)


def test_oversize_headers_are_refused_from_the_prelude_alone() -> None:
    dec = EventStreamDecoder()
    with pytest.raises(LimitExceeded, match="headers") as info:
        dec.feed(prelude_only(16 + 128 * 1024 + 1, 128 * 1024 + 1))
    assert info.value.limit == "max_headers"


def test_limits_are_inclusive_and_configurable() -> None:
    frame = encode_message({"h": "x" * 7}, b"p" * 10)  # headers: 1 + 1 + 1 + 2 + 7 = 12 bytes
    assert decode([frame], max_headers=12, max_payload=10)[0].payload == b"p" * 10
    with pytest.raises(LimitExceeded):
        decode([frame], max_headers=11)
    with pytest.raises(LimitExceeded):
        decode([frame], max_payload=9)


def test_exact_default_limits_are_accepted_by_the_prelude_check() -> None:
    dec = EventStreamDecoder()
    assert dec.feed(prelude_only(16 + 128 * 1024 + 24 * 1024 * 1024, 128 * 1024)) == []
    with pytest.raises(EventStreamFrameError, match="truncated"):
        dec.close()


# -- truncation and API misuse -----------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 11, 12, 20, len(SAMPLE) - 1])
def test_truncated_frame_at_close(keep: int) -> None:
    dec = EventStreamDecoder()
    assert dec.feed(SAMPLE[:keep]) == []
    with pytest.raises(EventStreamFrameError, match="truncated"):
        dec.close()


def test_clean_close_and_feed_after_close() -> None:
    dec = EventStreamDecoder()
    assert len(dec.feed(SAMPLE + SAMPLE)) == 2
    assert dec.close() == []
    assert dec.close() == []
    with pytest.raises(LocalError):
        dec.feed(b"")


def test_large_frame_in_small_chunks() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    frame = encode_message({"k": "v"}, payload)
    dec = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    for i in range(0, len(frame), 997):
        out.extend(dec.feed(frame[i : i + 997]))
    assert [m.payload for m in out] == [payload]
    assert dec.close() == []
