"""Decode benchmark: every dialect, bytes -> events -> Message, against its official client and the floor.

Run ``python bench/decode.py`` (``--quick`` for a short run, ``--dialect NAME`` for one dialect,
``--stages`` for where midstream's time goes, ``--profile NAME`` for a cProfile of one dialect).

For each of the six dialects one long tool-using response (text deltas and tool-call argument fragments,
about 20,000 wire events) is written by midstream's own encoder with the provider's padding and framing,
and every contender reads the same bytes, cut two ways:

* ``KiB``: random 1-4 KiB chunks (what a fast reader of a busy connection gets);
* ``event``: one provider event per chunk (how providers really flush: each token its own write).

Contenders, each folding the stream into what its users get at the end:

* ``midstream``: ``wire.decoder(dialect)`` (framing, JSON, dialect mapping, timeline) + ``Accumulator``.
* the official client's own streaming reader over an ``httpx2.MockTransport`` (or botocore's, for
  Bedrock), with its accumulator where it has one: ``anthropic`` ``messages.stream()`` ->
  ``get_final_message()``; ``openai`` ``chat.completions.stream()`` -> ``get_final_completion()`` and
  ``responses.stream()`` -> ``get_final_response()``; ``google-genai`` ``generate_content_stream``
  (text and calls joined by hand: it has no accumulator); ``botocore.eventstream.EventStream`` with the
  ConverseStream shape (what ``boto3``'s ``converse_stream()`` iterates; deltas joined by hand);
  ``ollama`` ``Client.chat(stream=True)`` (joined by hand).
* the floors: a ``bytes.split`` loop on the frame delimiter with ``json.loads`` of each payload, and the
  same with ``msgspec.json.decode``; for Bedrock, botocore's ``EventStreamBuffer`` with each. No
  validation, no events, no Message: the least any reader must do.

Times are CPU time (``time.process_time``) per wire event, min and median over interleaved rounds (every
contender runs once per round, so machine noise hits them alike). The headline ratios are against the
official client (higher is better for midstream) and against the msgspec floor (lower is better).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import itertools
import json
import pstats
import random
import statistics
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from midstream import Accumulator, Message, Usage, wire
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    TextDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from midstream.wire._payload import parser as payload_parser

_WORDS = str.split(
    "the of and to in is you that it was for on are as with they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other "
    "about out many then them these so some would make like into time has look two more write go see number "
    "way could people than first water been call who its now find long down day did get come made may part"
)

Contender = Callable[[list[bytes]], Any]


@dataclass
class Size:
    pairs: int  # text block + tool call pairs
    deltas: int  # deltas per block
    rounds: int


FULL = Size(pairs=20, deltas=498, rounds=7)
QUICK = Size(pairs=4, deltas=250, rounds=3)


def build_events(provider: str, size: Size, rng: random.Random) -> list[Event]:
    """A long tool-using response: alternating text blocks and write_file calls."""
    events: list[Event] = [
        ResponseStart(
            provider=provider,
            model="model-bench",
            id="msg_bench",
            usage=Usage(input_tokens=1200, output_tokens=1, cache_read_tokens=0, cache_write_tokens=0),
        )
    ]
    index = 0
    for k in range(size.pairs):
        events.append(BlockStart(index=index, type="text", raw_type="text"))
        events.extend(TextDelta(index, " " + rng.choice(_WORDS)) for _ in range(size.deltas))
        events.append(BlockStop(index))
        index += 1
        body = " ".join(rng.choice(_WORDS) for _ in range(1200))
        raw = json.dumps({"path": f"notes/file_{k}.md", "content": body})
        cuts = sorted(rng.sample(range(1, len(raw)), size.deltas - 1))
        bounds = [0, *cuts, len(raw)]
        events.append(
            BlockStart(index=index, type="tool_call", id=f"toolu_{k}", name="write_file", raw_type="tool_use")
        )
        events.extend(ToolArgsDelta(index, raw[a:b]) for a, b in itertools.pairwise(bounds))
        events.append(BlockStop(index))
        index += 1
    events.append(
        UsageUpdate(Usage(input_tokens=1200, output_tokens=31000, cache_read_tokens=0, cache_write_tokens=0))
    )
    events.append(ResponseEnd(stop_reason="tool_use", raw_stop_reason="tool_use"))
    return events


# -- framing: where one provider event ends -------------------------------------------------------

DELIMITER = {
    "anthropic": b"\n\n",
    "openai-chat": b"\n\n",
    "openai-responses": b"\n\n",
    "gemini": b"\r\n\r\n",
    "ollama": b"\n",
}


def frames(dialect: str, body: bytes) -> list[bytes]:
    """The body cut after every provider event (the delimiter kept with its event)."""
    if dialect == "bedrock":
        out, pos = [], 0
        while pos < len(body):
            (length,) = struct.unpack_from(">I", body, pos)
            out.append(body[pos : pos + length])
            pos += length
        return out
    sep = DELIMITER[dialect]
    parts = body.split(sep)
    out = [part + sep for part in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def kib_chunks(body: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        size = rng.randint(1024, 4096)
        out.append(body[i : i + size])
        i += size
    return out


# -- midstream and the floors ---------------------------------------------------------------------


def midstream_reader(dialect: str) -> Contender:
    def run(chunks: list[bytes]) -> Message:
        dec, acc = wire.decoder(dialect), Accumulator()
        feed = acc.feed
        for chunk in chunks:
            for event in dec.feed(chunk):
                feed(event)
        for event in dec.close():
            feed(event)
        return acc.message

    return run


def split_floor(dialect: str, loads: Callable[[bytes], Any]) -> Contender:
    """``bytes.split`` on the frame delimiter and ``loads`` of each payload: the least a reader does."""
    sep = DELIMITER[dialect]
    ndjson = dialect == "ollama"

    def run(chunks: list[bytes]) -> int:
        buf, count = b"", 0
        for chunk in chunks:
            buf += chunk
            *done, buf = buf.split(sep)
            for frame in done:
                if ndjson:
                    loads(frame)
                else:
                    data = frame[frame.find(b"data: ") + 6 :]
                    if data != b"[DONE]":
                        loads(data)
                count += 1
        return count

    return run


def eventstream_floor(loads: Callable[[bytes], Any]) -> Contender:
    """botocore's eventstream buffer (prelude, headers, both CRCs) and ``loads`` of each payload."""
    from botocore.eventstream import EventStreamBuffer

    def run(chunks: list[bytes]) -> int:
        buffer, count = EventStreamBuffer(), 0
        for chunk in chunks:
            buffer.add_data(chunk)
            for message in buffer:
                loads(message.payload)
                count += 1
        return count

    return run


def _msgspec_loads() -> Callable[[bytes], Any] | None:
    if importlib.util.find_spec("msgspec") is None:
        return None
    import msgspec

    decode: Callable[[bytes], Any] = msgspec.json.Decoder().decode
    return decode


# -- the official clients -------------------------------------------------------------------------


def _mock_client(chunks: list[bytes], content_type: str) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=iter(chunks))

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def anthropic_sdk(chunks: list[bytes]) -> Any:
    import anthropic

    http = _mock_client(chunks, "text/event-stream")
    client = anthropic.Anthropic(api_key="bench", base_url="http://test", http_client=http)
    request: Any = {"role": "user", "content": "go"}
    with client.messages.stream(model="claude-bench", max_tokens=32000, messages=[request]) as stream:
        return stream.get_final_message()


def openai_chat_sdk(chunks: list[bytes]) -> Any:
    import openai

    http = _mock_client(chunks, "text/event-stream")
    client = openai.OpenAI(api_key="bench", base_url="http://test/v1", http_client=http)
    request: Any = {"role": "user", "content": "go"}
    with client.chat.completions.stream(model="gpt-bench", messages=[request]) as stream:
        return stream.get_final_completion()


def openai_responses_sdk(chunks: list[bytes]) -> Any:
    import openai

    http = _mock_client(chunks, "text/event-stream")
    client = openai.OpenAI(api_key="bench", base_url="http://test/v1", http_client=http)
    with client.responses.stream(model="gpt-bench", input="go") as stream:
        return stream.get_final_response()


def gemini_sdk(chunks: list[bytes]) -> Any:
    from google import genai
    from google.genai import types

    http = _mock_client(chunks, "text/event-stream")
    options = types.HttpOptions(base_url="http://test", httpx_client=http)
    client = genai.Client(api_key="bench", http_options=options)
    text: list[str] = []
    calls: list[Any] = []
    for response in client.models.generate_content_stream(model="gemini-bench", contents="go"):
        for candidate in response.candidates or []:
            for part in (candidate.content and candidate.content.parts) or []:
                if part.text:
                    text.append(part.text)
                if part.function_call:
                    calls.append(part.function_call.args)
    return "".join(text), calls


def bedrock_sdk(chunks: list[bytes]) -> Any:
    shape, parser = _bedrock_reader()
    from botocore.eventstream import EventStream

    class Raw:
        def stream(self) -> Iterator[bytes]:
            return iter(chunks)

        def close(self) -> None:
            pass

    text: dict[int, list[str]] = {}
    for event in EventStream(Raw(), shape, parser, "ConverseStream"):
        delta = event.get("contentBlockDelta")
        if delta is not None:
            piece = delta["delta"]
            text.setdefault(delta["contentBlockIndex"], []).append(
                piece["text"] if "text" in piece else piece["toolUse"]["input"]
            )
    return {index: "".join(pieces) for index, pieces in text.items()}


_BEDROCK: list[Any] = []


def _bedrock_reader() -> tuple[Any, Any]:
    if not _BEDROCK:
        import botocore.parsers
        import botocore.session

        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        shape = model.operation_model("ConverseStream").output_shape.members["stream"]
        _BEDROCK.extend([shape, botocore.parsers.EventStreamJSONParser()])
    return _BEDROCK[0], _BEDROCK[1]


def ollama_sdk(chunks: list[bytes]) -> Any:
    import httpx
    import ollama

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/x-ndjson"}, content=iter(chunks))

    client = ollama.Client(host="http://test", transport=httpx.MockTransport(handler))
    text: list[str] = []
    calls: list[Any] = []
    for part in client.chat(model="llama-bench", messages=[{"role": "user", "content": "go"}], stream=True):
        if part.message.content:
            text.append(part.message.content)
        calls.extend(call.function.arguments for call in part.message.tool_calls or ())
    return "".join(text), calls


OFFICIAL: dict[str, tuple[str, str, Contender]] = {
    "anthropic": ("anthropic", "anthropic SDK messages.stream()", anthropic_sdk),
    "openai-chat": ("openai", "openai SDK chat.completions.stream()", openai_chat_sdk),
    "openai-responses": ("openai", "openai SDK responses.stream()", openai_responses_sdk),
    "gemini": ("google.genai", "google-genai generate_content_stream", gemini_sdk),
    "bedrock": ("botocore", "botocore EventStream (boto3)", bedrock_sdk),
    "ollama": ("ollama", "ollama Client.chat(stream=True)", ollama_sdk),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# -- one dialect ----------------------------------------------------------------------------------


@dataclass
class Stream:
    dialect: str
    body: bytes
    events: int  # wire events (frames)
    cuts: dict[str, list[bytes]]  # "KiB" / "event" -> chunks


def make_stream(dialect: str, size: Size) -> Stream:
    rng = random.Random(20)
    events = build_events(dialect, size, rng)
    body = wire.encoder(dialect, realism=True, seed=0).encode_all(events)
    per_event = frames(dialect, body)
    return Stream(dialect, body, len(per_event), {"KiB": kib_chunks(body, rng), "event": per_event})


def contenders(dialect: str) -> list[tuple[str, Contender]]:
    out: list[tuple[str, Contender]] = [("midstream (decoder + Accumulator)", midstream_reader(dialect))]
    module, name, run = OFFICIAL[dialect]
    if _installed(module) and (dialect != "ollama" or _installed("httpx")):
        out.append((name, run))
    msgspec_loads = _msgspec_loads()
    if dialect == "bedrock":
        out.append(("floor: botocore buffer + json.loads", eventstream_floor(json.loads)))
        if msgspec_loads is not None:
            out.append(("floor: botocore buffer + msgspec", eventstream_floor(msgspec_loads)))
    else:
        out.append(("floor: bytes.split + json.loads", split_floor(dialect, json.loads)))
        if msgspec_loads is not None:
            out.append(("floor: bytes.split + msgspec", split_floor(dialect, msgspec_loads)))
    return out


def race(runs: list[Contender], chunks: list[bytes], rounds: int) -> list[list[float]]:
    """CPU seconds of every contender in each of ``rounds`` interleaved rounds."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for i, run in enumerate(runs):
            start = time.process_time()
            run(chunks)
            times[i].append(time.process_time() - start)
    return times


def check(stream: Stream, runs: list[tuple[str, Contender]]) -> None:
    """Every contender read the whole stream: midstream completed, floors counted every event."""
    message = runs[0][1](stream.cuts["event"])
    assert message.terminal == "completed", (stream.dialect, message.terminal)
    assert len(message.tool_calls) == stream.body.count(b"write_file") or message.tool_calls
    for name, run in runs[2:]:
        count = run(stream.cuts["KiB"])
        assert count == stream.events, (stream.dialect, name, count, stream.events)


def bench_dialect(dialect: str, size: Size) -> list[str]:
    stream = make_stream(dialect, size)
    runs = contenders(dialect)
    check(stream, runs)
    lines = [
        f"== {dialect}: {len(stream.body):,} bytes, {stream.events:,} wire events",
        f"{'contender':<40} {'cut':>5} {'min us/ev':>10} {'median':>8} {'vs midstream':>13}",
    ]
    for cut, chunks in stream.cuts.items():
        times = race([run for _, run in runs], chunks, size.rounds)
        ours = min(times[0])
        for (name, _), spent in zip(runs, times, strict=True):
            best, median = min(spent), statistics.median(spent)
            lines.append(
                f"{name:<40} {cut:>5} {best * 1e6 / stream.events:>10.2f} "
                f"{median * 1e6 / stream.events:>8.2f} {best / ours:>12.2f}x"
            )
    return lines


# -- where the time goes --------------------------------------------------------------------------


def stages(dialect: str, size: Size) -> list[str]:
    """midstream's CPU per event, layer by layer: each stage includes the ones above it."""
    stream = make_stream(dialect, size)
    inner = type(wire.decoder(dialect)._inner)
    framer = _framer(dialect)

    def frame_only(chunks: list[bytes]) -> None:
        f = framer()
        for chunk in chunks:
            f.feed(chunk)

    parse = payload_parser()

    def frame_and_parse(chunks: list[bytes]) -> None:
        f = framer()
        for chunk in chunks:
            for frame in f.feed(chunk):
                data = frame[1] if type(frame) is tuple else getattr(frame, "payload", frame)
                if data != "[DONE]":
                    parse(data)

    def dialect_only(chunks: list[bytes]) -> None:
        d = inner()
        for chunk in chunks:
            d.feed(chunk)
        d.close()

    def with_timeline(chunks: list[bytes]) -> None:
        d = wire.decoder(dialect)
        for chunk in chunks:
            d.feed(chunk)
        d.close()

    runs: list[tuple[str, Contender]] = [
        ("framing", frame_only),
        ("+ JSON (msgspec per payload)", frame_and_parse),
        ("+ dialect mapping", dialect_only),
        ("+ timeline (wire.decoder)", with_timeline),
        ("+ Accumulator", midstream_reader(dialect)),
    ]
    lines = [f"== {dialect} ({stream.events:,} events), us/event, min of {size.rounds}"]
    for cut, chunks in stream.cuts.items():
        times = [min(t) * 1e6 / stream.events for t in race([r for _, r in runs], chunks, size.rounds)]
        total = times[-1]
        previous = 0.0
        for (name, _), spent in zip(runs, times, strict=True):
            lines.append(
                f"  {cut:>5} {name:<29} {spent:>6.2f}  (+{spent - previous:5.2f}, "
                f"{(spent - previous) / total:4.0%} of the whole)"
            )
            previous = spent
    return lines


def _framer(dialect: str) -> Callable[[], Any]:
    from midstream.wire.eventstream import EventStreamDecoder
    from midstream.wire.gemini import _SSEFramer
    from midstream.wire.ndjson import NDJSONSplitter
    from midstream.wire.sse import SSEFrameDecoder

    if dialect == "bedrock":
        return EventStreamDecoder
    if dialect == "ollama":
        return NDJSONSplitter
    if dialect == "gemini":
        return lambda: _SSEFramer(max_line=1 << 24, max_event=1 << 25, max_document=1 << 25)
    return SSEFrameDecoder


def profile(dialect: str, size: Size) -> None:
    stream = make_stream(dialect, size)
    run = midstream_reader(dialect)
    profiler = cProfile.Profile()
    with contextlib.redirect_stdout(sys.stderr):
        profiler.runcall(run, stream.cuts["KiB"])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short streams, 3 rounds")
    parser.add_argument("--dialect", action="append", choices=wire.DIALECTS, help="only these dialects")
    parser.add_argument("--stages", action="store_true", help="midstream's time per layer, no peers")
    parser.add_argument("--profile", choices=wire.DIALECTS, help="cProfile midstream on one dialect")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.profile:
        profile(args.profile, size)
        return 0
    print(f"CPU per wire event (time.process_time); load average {_load()}")
    for dialect in args.dialect or wire.DIALECTS:
        print("\n".join(stages(dialect, size) if args.stages else bench_dialect(dialect, size)), flush=True)
    return 0


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
