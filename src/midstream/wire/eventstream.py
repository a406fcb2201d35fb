"""AWS eventstream (``application/vnd.amazon.eventstream``) binary framing: decoder and encoder.

Every message is one self-delimiting frame, all integers big-endian::

    u32 total_len | u32 headers_len | u32 prelude_crc      (CRC-32 of the first 8 bytes)
    headers (headers_len bytes) | payload | u32 message_crc  (CRC-32 of everything before it)

A header is ``u8 name_len, name (UTF-8), u8 type, value``; the ten value types are listed in
:data:`HEADER_TYPES`. :class:`EventStreamDecoder` is sans-IO: feed it bytes in any split and it returns
the messages completed so far, having checked both CRCs, every header and the size bounds. Anything
damaged raises :class:`~midstream.errors.EventStreamFrameError` (sizes beyond a bound raise
:class:`~midstream.errors.LimitExceeded`, decided from the prelude *before* the frame is buffered).

Decoded header values are Python values: ``bool`` (types 0 and 1), ``int`` (byte, short, integer,
long), ``bytes``, ``str``, a timezone-aware UTC :class:`~datetime.datetime` (timestamp, milliseconds
since the epoch) and :class:`uuid.UUID`. Integer widths are not kept; to write a header with a given
wire type use :class:`Header`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from midstream.errors import EventStreamFrameError, LimitExceeded, LocalError

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_PAYLOAD",
    "HEADER_TYPES",
    "EventStreamDecoder",
    "EventStreamMessage",
    "Header",
    "HeaderType",
    "HeaderValue",
    "encode_message",
]

DEFAULT_MAX_HEADERS = 128 * 1024
DEFAULT_MAX_PAYLOAD = 24 * 1024 * 1024

HeaderType = Literal["boolean", "byte", "short", "integer", "long", "binary", "string", "timestamp", "uuid"]
HeaderValue = bool | int | bytes | str | datetime | UUID

HEADER_TYPES: dict[int, str] = {
    0: "bool_true",
    1: "bool_false",
    2: "byte",
    3: "short",
    4: "integer",
    5: "long",
    6: "binary",
    7: "string",
    8: "timestamp",
    9: "uuid",
}
"""Wire type code -> name. Types 0 and 1 carry no value bytes: the type *is* the boolean."""

_PRELUDE = struct.Struct(">III")
_PRELUDE_LEN = 12
_MIN_FRAME = 16  # prelude + message CRC: a frame with no headers and an empty payload
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Fixed-width integer types (and the timestamp, an i64): wire code -> struct; packing checks the range.
_INTS: dict[int, struct.Struct] = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
    8: struct.Struct(">q"),
}
_INT_CODES: dict[str, int] = {"byte": 2, "short": 3, "integer": 4, "long": 5}
_MAX_VARLEN = 0xFFFF  # bytes and string values carry a u16 length


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One decoded frame: its headers (in wire order) and raw payload bytes."""

    headers: dict[str, HeaderValue]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Header:
    """A header value with its wire type, for :func:`encode_message`.

    Plain ``bool``, ``bytes``, ``str``, ``datetime`` and ``UUID`` values need no wrapper; integers do,
    because the wire has four widths (``Header.integer(5)``). Use the class methods to build one.
    """

    type: HeaderType
    value: HeaderValue

    @classmethod
    def boolean(cls, value: bool) -> Header:
        """A boolean (wire type 0 for true, 1 for false)."""
        return cls("boolean", value)

    @classmethod
    def byte(cls, value: int) -> Header:
        """A signed 8-bit integer (wire type 2)."""
        return cls("byte", value)

    @classmethod
    def short(cls, value: int) -> Header:
        """A signed 16-bit integer (wire type 3)."""
        return cls("short", value)

    @classmethod
    def integer(cls, value: int) -> Header:
        """A signed 32-bit integer (wire type 4)."""
        return cls("integer", value)

    @classmethod
    def long(cls, value: int) -> Header:
        """A signed 64-bit integer (wire type 5)."""
        return cls("long", value)

    @classmethod
    def binary(cls, value: bytes) -> Header:
        """Raw bytes, at most 65535 (wire type 6)."""
        return cls("binary", value)

    @classmethod
    def string(cls, value: str) -> Header:
        """A UTF-8 string, at most 65535 bytes encoded (wire type 7)."""
        return cls("string", value)

    @classmethod
    def timestamp(cls, value: datetime | int) -> Header:
        """A timestamp (wire type 8): an aware ``datetime``, or milliseconds since the epoch."""
        return cls("timestamp", value)

    @classmethod
    def uuid(cls, value: UUID) -> Header:
        """A UUID (wire type 9, 16 bytes)."""
        return cls("uuid", value)


class EventStreamDecoder:
    """Incremental eventstream decoder: ``feed(bytes) -> list[EventStreamMessage]``, ``close()``.

    Any split of the input yields the same messages. A damaged frame raises
    :class:`~midstream.errors.EventStreamFrameError` and the decoder stays failed (the stream cannot be
    resynchronized); bytes left over at :meth:`close` are a truncated frame and raise too.
    """

    def __init__(
        self, *, max_headers: int = DEFAULT_MAX_HEADERS, max_payload: int = DEFAULT_MAX_PAYLOAD
    ) -> None:
        self.max_headers = max_headers
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0  # start of the first unconsumed frame in ``_buf``
        self._need = 0  # total length of that frame once its prelude was checked, else 0
        self._headers_len = 0
        self._error: EventStreamFrameError | None = None
        self._closed = False

    def feed(self, data: bytes, out: list[EventStreamMessage] | None = None) -> list[EventStreamMessage]:
        """Decode ``data``; return the messages it completed (appended to ``out`` when given).

        A damaged frame raises after the frames before it are in ``out``, whatever the split.
        """
        if self._closed:
            raise LocalError("EventStreamDecoder.feed() called after close()")
        if self._error is not None:
            raise self._error
        self._buf += data
        out = [] if out is None else out
        try:
            while self._step(out):
                pass
        except EventStreamFrameError as exc:
            self._error = exc
            raise
        finally:
            if self._pos:
                # Consumed frames are dropped once per feed, so a long stream costs linear time.
                del self._buf[: self._pos]
                self._pos = 0
        return out

    def close(self) -> list[EventStreamMessage]:
        """End of input. Left-over bytes are a truncated frame: :class:`EventStreamFrameError`."""
        if self._closed:
            return []
        self._closed = True
        if self._error is None and len(self._buf) > self._pos:
            have = len(self._buf) - self._pos
            want = f"of {self._need} " if self._need else ""
            self._error = EventStreamFrameError(
                f"eventstream truncated: {have} bytes {want}of a frame at EOF"
            )
        self._buf = bytearray()
        if self._error is not None:
            raise self._error
        return []

    def _step(self, out: list[EventStreamMessage]) -> bool:
        available = len(self._buf) - self._pos
        if not self._need:
            if available < _PRELUDE_LEN:
                return False
            self._check_prelude()
        if available < self._need:
            return False
        out.append(self._frame())
        self._pos += self._need
        self._need = 0
        return True

    def _check_prelude(self) -> None:
        total, headers_len, crc = _PRELUDE.unpack_from(self._buf, self._pos)
        with memoryview(self._buf) as view:
            actual = zlib.crc32(view[self._pos : self._pos + 8])
        if actual != crc:
            raise EventStreamFrameError(
                f"eventstream prelude CRC mismatch: frame says {crc:#010x}, bytes give {actual:#010x}"
            )
        if total < _MIN_FRAME:
            raise EventStreamFrameError(
                f"eventstream frame length {total} is below the minimum of {_MIN_FRAME}"
            )
        if headers_len > total - _MIN_FRAME:
            raise EventStreamFrameError(
                f"eventstream headers length {headers_len} exceeds frame length {total}"
            )
        if headers_len > self.max_headers:
            raise LimitExceeded(
                f"eventstream headers of {headers_len} bytes exceed the limit of {self.max_headers}",
                limit="max_headers",
                value=self.max_headers,
            )
        payload_len = total - headers_len - _MIN_FRAME
        if payload_len > self.max_payload:
            raise LimitExceeded(
                f"eventstream payload of {payload_len} bytes exceeds the limit of {self.max_payload}",
                limit="max_payload",
                value=self.max_payload,
            )
        self._need, self._headers_len = total, headers_len

    def _frame(self) -> EventStreamMessage:
        start, end = self._pos, self._pos + self._need
        (crc,) = _U32.unpack_from(self._buf, end - 4)
        with memoryview(self._buf) as view:
            actual = zlib.crc32(view[start : end - 4])
            headers_start = start + _PRELUDE_LEN
            payload_start = headers_start + self._headers_len
            if actual != crc:
                raise EventStreamFrameError(
                    f"eventstream message CRC mismatch: frame says {crc:#010x}, bytes give {actual:#010x}"
                )
            headers = _parse_headers(bytes(view[headers_start:payload_start]))
            payload = bytes(view[payload_start : end - 4])
        return EventStreamMessage(headers, payload)


def _parse_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos, end = 0, len(data)
    while pos < end:
        name_len = data[pos]
        pos += 1
        name = _utf8(_take(data, pos, name_len), "header name")
        pos += name_len
        if pos >= end:
            raise EventStreamFrameError(f"eventstream header {name!r} has no type byte")
        code = data[pos]
        pos += 1
        reader = _READERS.get(code)
        if reader is None:
            raise EventStreamFrameError(f"eventstream header {name!r} has unknown value type {code}")
        value, pos = reader(data, pos)
        if name in headers:
            raise EventStreamFrameError(f"eventstream header {name!r} appears twice")
        headers[name] = value
    return headers


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise EventStreamFrameError("eventstream header runs past the end of the headers section")
    return data[pos : pos + size]


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventStreamFrameError(f"eventstream {what} is not valid UTF-8: {exc}") from None


def _read_int(code: int) -> Callable[[bytes, int], tuple[HeaderValue, int]]:
    fmt = _INTS[code]

    def read(data: bytes, pos: int) -> tuple[HeaderValue, int]:
        (value,) = fmt.unpack(_take(data, pos, fmt.size))
        return value, pos + fmt.size

    return read


def _read_varlen(data: bytes, pos: int) -> tuple[bytes, int]:
    (size,) = _U16.unpack(_take(data, pos, 2))
    return _take(data, pos + 2, size), pos + 2 + size


def _read_bytes(data: bytes, pos: int) -> tuple[HeaderValue, int]:
    return _read_varlen(data, pos)


def _read_string(data: bytes, pos: int) -> tuple[HeaderValue, int]:
    raw, pos = _read_varlen(data, pos)
    return _utf8(raw, "string header value"), pos


def _read_timestamp(data: bytes, pos: int) -> tuple[HeaderValue, int]:
    (millis,) = _INTS[8].unpack(_take(data, pos, 8))
    try:
        return _EPOCH + timedelta(milliseconds=millis), pos + 8
    except OverflowError:
        raise EventStreamFrameError(
            f"eventstream timestamp {millis} ms is outside the datetime range"
        ) from None


def _read_uuid(data: bytes, pos: int) -> tuple[HeaderValue, int]:
    return UUID(bytes=_take(data, pos, 16)), pos + 16


_READERS: dict[int, Callable[[bytes, int], tuple[HeaderValue, int]]] = {
    0: lambda data, pos: (True, pos),
    1: lambda data, pos: (False, pos),
    2: _read_int(2),
    3: _read_int(3),
    4: _read_int(4),
    5: _read_int(5),
    6: _read_bytes,
    7: _read_string,
    8: _read_timestamp,
    9: _read_uuid,
}


# -- encoding --------------------------------------------------------------------------------------


def encode_message(
    headers: Mapping[str, HeaderValue | Header],
    payload: bytes = b"",
    *,
    max_headers: int = DEFAULT_MAX_HEADERS,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> bytes:
    """One eventstream frame with ``headers`` (in mapping order) and ``payload``, both CRCs set.

    Values are written by their Python type (``bool``, ``bytes``, ``str``, ``datetime``, ``UUID``) or
    as a :class:`Header` for an explicit wire type; a bare ``int`` is ambiguous and refused. Values out
    of their type's range, and frames beyond the bounds a decoder accepts, raise
    :class:`~midstream.errors.LocalError`.
    """
    block = b"".join(_header_bytes(name, value) for name, value in headers.items())
    if len(block) > max_headers:
        raise LocalError(f"eventstream headers of {len(block)} bytes exceed the limit of {max_headers}")
    if len(payload) > max_payload:
        raise LocalError(f"eventstream payload of {len(payload)} bytes exceeds the limit of {max_payload}")
    total = _MIN_FRAME + len(block) + len(payload)
    prelude = _U32.pack(total) + _U32.pack(len(block))
    head = prelude + _U32.pack(zlib.crc32(prelude))
    crc = zlib.crc32(payload, zlib.crc32(block, zlib.crc32(head)))
    return b"".join((head, block, payload, _U32.pack(crc)))


def _header_bytes(name: str, value: HeaderValue | Header) -> bytes:
    raw_name = name.encode("utf-8")
    if not 0 < len(raw_name) <= 255:
        raise LocalError(f"eventstream header name must be 1 to 255 bytes of UTF-8, got {len(raw_name)}")
    header = value if isinstance(value, Header) else _implicit(name, value)
    return bytes((len(raw_name),)) + raw_name + _value_bytes(name, header)


def _implicit(name: str, value: HeaderValue) -> Header:
    # bool is tested first: it is an int subclass, and an int alone does not say its width.
    if isinstance(value, bool):
        return Header("boolean", value)
    if isinstance(value, int):
        raise LocalError(f"eventstream header {name!r}: wrap integers in Header.byte/short/integer/long")
    if isinstance(value, bytes):
        return Header("binary", value)
    if isinstance(value, str):
        return Header("string", value)
    if isinstance(value, datetime):
        return Header("timestamp", value)
    if isinstance(value, UUID):
        return Header("uuid", value)
    raise LocalError(f"eventstream header {name!r}: cannot write a {type(value).__name__}")


def _value_bytes(name: str, header: Header) -> bytes:
    kind, value = header.type, header.value
    if kind == "boolean" and isinstance(value, bool):
        return b"\x00" if value else b"\x01"
    if kind in _INT_CODES and isinstance(value, int) and not isinstance(value, bool):
        code = _INT_CODES[kind]
        return bytes((code,)) + _pack_int(name, _INTS[code], value)
    if kind == "binary" and isinstance(value, bytes):
        return b"\x06" + _varlen(name, value)
    if kind == "string" and isinstance(value, str):
        return b"\x07" + _varlen(name, value.encode("utf-8"))
    if kind == "timestamp" and isinstance(value, datetime | int) and not isinstance(value, bool):
        return b"\x08" + _pack_int(name, _INTS[8], _millis(name, value))
    if kind == "uuid" and isinstance(value, UUID):
        return b"\x09" + value.bytes
    raise LocalError(f"eventstream header {name!r}: a {type(value).__name__} is not a {kind} value")


def _pack_int(name: str, fmt: struct.Struct, value: int) -> bytes:
    try:
        return fmt.pack(value)
    except struct.error:
        raise LocalError(f"eventstream header {name!r}: {value} does not fit its integer type") from None


def _varlen(name: str, raw: bytes) -> bytes:
    if len(raw) > _MAX_VARLEN:
        raise LocalError(f"eventstream header {name!r}: value of {len(raw)} bytes exceeds {_MAX_VARLEN}")
    return _U16.pack(len(raw)) + raw


def _millis(name: str, value: datetime | int) -> int:
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise LocalError(f"eventstream header {name!r}: a timestamp must be timezone-aware")
    # Integer arithmetic on the timedelta: a float would lose milliseconds on far dates.
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
