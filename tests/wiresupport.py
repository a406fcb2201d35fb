"""Shared helpers for wire tests: recorded streams; feeding a decoder in every kind of split is
:mod:`midstream.testing`'s, re-exported here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from midstream import wire
from midstream.errors import RemoteProtocolError
from midstream.events import Event
from midstream.testing import assert_split_invariant, decode_chunks, random_splits, split_at

__all__ = [
    "CONFORMANCE",
    "RECORDED",
    "assert_split_invariant",
    "decode_chunks",
    "decode_until_error",
    "random_splits",
    "recorded",
    "split_at",
    "sse_from_jsonl",
]

ROOT = Path(__file__).resolve().parent.parent


def shared_data(root: Path = ROOT) -> Path:
    """``../shared`` beside the checkout, where the recorded streams and conformance data live.

    Without it every module that needs the data fails to collect with this one message (no traceback),
    which stops the run before any test: not a ``FileNotFoundError`` deep in a parametrization.
    """
    shared = root.parent / "shared"
    missing = [name for name in ("recorded", "conformance") if not (shared / name).is_dir()]
    if missing:
        pytest.fail(
            f"the tests read recorded provider streams and conformance data from {shared}/ "
            f"(../shared beside the checkout: shared/recorded and shared/conformance); "
            f"missing: {', '.join(f'{shared}/{name}' for name in missing)}",
            pytrace=False,
        )
    return shared


SHARED = shared_data()
RECORDED = SHARED / "recorded"
CONFORMANCE = SHARED / "conformance"


def recorded(name: str) -> bytes:
    """The bytes of one file in ``../shared/recorded``."""
    return (RECORDED / name).read_bytes()


def sse_from_jsonl(name: str, *, event_names: bool = False, newline: str = "\n") -> bytes:
    """Frame a ``.chunks.jsonl`` file (one SSE data payload per line) as an SSE body.

    With ``event_names`` each event also gets ``event: <payload["type"]>`` (OpenAI Responses style).
    """
    out: list[bytes] = []
    for line in recorded(name).decode().splitlines():
        if not line.strip():
            continue
        event = json.loads(line).get("type") if event_names else None
        out.append(wire.encode_sse(line, event=event, newline=newline))
    return b"".join(out)


def decode_until_error(dialect: str, chunks: Iterable[bytes]) -> list[Event]:
    """Like :func:`decode_chunks`, as a consumer does it when the bytes break the protocol.

    Feeds chunks until one raises :class:`~midstream.errors.RemoteProtocolError`, then closes the
    decoder (which ends the response ``failed`` unless it already ended): every event seen, in order.
    """
    dec = wire.decoder(dialect)
    events: list[Event] = []
    try:
        for chunk in chunks:
            events.extend(dec.feed(chunk))
    except RemoteProtocolError:
        pass
    events.extend(dec.close())
    return events
