"""Shared helpers for wire tests: recorded streams, and feeding a decoder in every kind of split."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from midstream import wire
from midstream.errors import RemoteProtocolError
from midstream.events import Event

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


def decode_chunks(
    dialect: str, chunks: Iterable[bytes], options: dict[str, Any] | None = None
) -> list[Event]:
    """Feed ``chunks`` to a fresh decoder (made with ``options``), then close it; all events in order."""
    dec = wire.decoder(dialect, **(options or {}))
    events: list[Event] = []
    for chunk in chunks:
        events.extend(dec.feed(chunk))
    events.extend(dec.close())
    return events


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


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    """A random split of ``data`` (between 1 and ~64 cuts, sometimes very small pieces)."""
    if len(data) < 2:
        return [data]
    n = rng.randint(1, min(64, len(data) - 1))
    return split_at(data, rng.sample(range(1, len(data)), n))


def assert_split_invariant(
    dialect: str,
    data: bytes,
    *,
    random_runs: int = 200,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> list[Event]:
    """Decode ``data`` whole, one byte at a time and in ``random_runs`` random splits; all must agree.

    ``options`` go to :func:`midstream.wire.decoder`. Returns the events of the whole-input decode.
    """
    whole = decode_chunks(dialect, [data], options)
    bytewise = decode_chunks(dialect, [data[i : i + 1] for i in range(len(data))], options)
    assert bytewise == whole, "byte-at-a-time decode differs from whole decode"
    rng = random.Random(seed)
    for run in range(random_runs):
        chunks = random_splits(data, rng)
        got = decode_chunks(dialect, chunks, options)
        assert got == whole, f"random split #{run} ({len(chunks)} chunks) differs from whole decode"
    return whole
