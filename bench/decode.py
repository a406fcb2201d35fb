"""Decode benchmark: an Anthropic stream, bytes -> events -> Message, against the usual peers.

Run ``python bench/decode.py``. The stream (~20,000 SSE events: text deltas and tool-argument
fragments, padded like the real API) is written by midstream's own encoder and cut into 1-4 KiB chunks.
Each contender reads the same chunks; the best of a few runs counts (``time.perf_counter``).

* ``midstream``: ``wire.decoder("anthropic")`` (SSE, JSON, dialect mapping, timeline) + ``Accumulator``.
* ``httpx-sse``: its line and event decoders + ``json.loads`` per event (no folding into a message).
  ``httpx_sse`` imports ``httpx`` at package import, and only ``httpx2`` is installed, so its decoder
  module is loaded without the package ``__init__``.
* ``httpx2 EventSource``: httpx2's own SSE reader over a ``MockTransport`` response + ``json.loads``
  (no folding into a message).
* ``anthropic SDK``: ``client.messages.stream()`` over ``httpx2.MockTransport``, then
  ``get_final_message()`` (SSE, JSON, pydantic models, snapshot accumulation).
"""

from __future__ import annotations

import codecs
import importlib
import itertools
import json
import random
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
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

BLOCK_PAIRS = 20  # text block + tool call, each with DELTAS deltas
DELTAS = 498
RUNS = 7  # rounds; every contender runs once per round, so machine noise hits them alike
_WORDS = (
    "the of and to in is you that it was for on are as with they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other "
    "about out many then them these so some would make like into time has look two more write go see number "
    "way could people than first water been call who its now find long down day did get come made may part"
)
WORDS = _WORDS.split()


def build_events(rng: random.Random) -> list[Event]:
    """A long tool-using response: alternating text blocks and write_file calls."""
    events: list[Event] = [
        ResponseStart(
            provider="anthropic",
            model="claude-x",
            id="msg_bench",
            usage=Usage(input_tokens=1200, output_tokens=1, cache_read_tokens=0, cache_write_tokens=0),
        )
    ]
    index = 0
    for k in range(BLOCK_PAIRS):
        events.append(BlockStart(index=index, type="text", raw_type="text"))
        events.extend(TextDelta(index, " " + rng.choice(WORDS)) for _ in range(DELTAS))
        events.append(BlockStop(index))
        index += 1
        body = " ".join(rng.choice(WORDS) for _ in range(1200))
        raw = json.dumps({"path": f"notes/file_{k}.md", "content": body})
        cuts = sorted(rng.sample(range(1, len(raw)), DELTAS - 1))
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


def chunked(body: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        size = rng.randint(1024, 4096)
        out.append(body[i : i + size])
        i += size
    return out


# -- contenders -----------------------------------------------------------------------------------


def run_midstream(chunks: list[bytes]) -> Message:
    dec, acc = wire.decoder("anthropic"), Accumulator()
    feed = acc.feed
    for chunk in chunks:
        for event in dec.feed(chunk):
            feed(event)
    for event in dec.close():
        feed(event)
    return acc.message


def _httpx_sse_decoders() -> Any:
    """``httpx_sse._decoders`` without running ``httpx_sse/__init__`` (which needs ``httpx``)."""
    try:
        return importlib.import_module("httpx_sse._decoders")
    except ImportError:
        spec = importlib.util.find_spec("httpx_sse")
        if spec is None or not spec.submodule_search_locations:
            raise
        sys.modules.pop("httpx_sse", None)
        package = types.ModuleType("httpx_sse")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["httpx_sse"] = package
        return importlib.import_module("httpx_sse._decoders")


def run_httpx_sse(chunks: list[bytes]) -> int:
    mod = _httpx_sse_decoders()
    lines, events = mod.SSELineDecoder(), mod.SSEDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    count = 0
    for chunk in chunks:
        for line in lines.decode(utf8.decode(chunk)):
            sse = events.decode(line)
            if sse is not None:
                json.loads(sse.data)
                count += 1
    for line in lines.flush():
        sse = events.decode(line)
        if sse is not None:
            json.loads(sse.data)
            count += 1
    return count


def _mock_client(chunks: list[bytes]) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def run_httpx2_sse(chunks: list[bytes]) -> int:
    count = 0
    with _mock_client(chunks) as client, client.sse("http://test/v1/messages", method="POST") as source:
        for sse in source:
            json.loads(sse.data)
            count += 1
    return count


def run_sdk(chunks: list[bytes]) -> Any:
    client = anthropic.Anthropic(api_key="bench", base_url="http://test", http_client=_mock_client(chunks))
    request: Any = {"role": "user", "content": "go"}
    with client.messages.stream(model="claude-bench", max_tokens=32000, messages=[request]) as stream:
        return stream.get_final_message()


# -- measuring ------------------------------------------------------------------------------------


def race(contenders: list[Callable[[list[bytes]], Any]], chunks: list[bytes]) -> list[tuple[float, Any]]:
    """Best time and last result of each contender over ``RUNS`` interleaved rounds."""
    best = [float("inf")] * len(contenders)
    results: list[Any] = [None] * len(contenders)
    for _ in range(RUNS):
        for i, fn in enumerate(contenders):
            start = time.perf_counter()
            results[i] = fn(chunks)
            best[i] = min(best[i], time.perf_counter() - start)
    return list(zip(best, results, strict=True))


def _check(message: Message, sdk_message: Any, sse_counts: Iterator[int], n_events: int) -> None:
    """All contenders read the same stream: same event count, same text and tool inputs."""
    assert message.terminal == "completed" and len(message.tool_calls) == BLOCK_PAIRS
    assert all(count == n_events for count in sse_counts)
    sdk_text = "".join(b.text for b in sdk_message.content if b.type == "text")
    assert message.text == sdk_text
    assert [c.input for c in message.tool_calls] == [
        b.input for b in sdk_message.content if b.type == "tool_use"
    ]


def main() -> int:
    rng = random.Random(20)
    events = build_events(rng)
    body = wire.encoder("anthropic", realism=True, seed=0).encode_all(events)
    chunks = chunked(body, rng)
    n_events = body.count(b"\n\n")
    print(f"stream: {len(body):,} bytes, {n_events:,} SSE events, {len(chunks)} chunks of 1-4 KiB")

    (t_mid, message), (t_hs, n_hs), (t_h2, n_h2), (t_sdk, sdk_message) = race(
        [run_midstream, run_httpx_sse, run_httpx2_sse, run_sdk], chunks
    )
    _check(message, sdk_message, iter((n_hs, n_h2)), n_events)
    rows = [
        ("midstream (decoder + Accumulator)", t_mid, "bytes -> events -> Message"),
        ("httpx-sse decoders + json.loads", t_hs, "SSE + JSON only, no Message"),
        ("httpx2 EventSource + json.loads", t_h2, "SSE + JSON only, no Message"),
        ("anthropic SDK messages.stream()", t_sdk, "get_final_message()"),
    ]

    print(f"{'contender':<36} {'total ms':>9} {'us/event':>9} {'vs midstream':>13}  scope")
    for name, seconds, scope in rows:
        per_event = seconds * 1e6 / n_events
        print(f"{name:<36} {seconds * 1e3:>9.1f} {per_event:>9.2f} {seconds / t_mid:>12.2f}x  {scope}")
    per_event = t_mid * 1e6 / n_events
    print(
        f"targets: midstream <= 6 us/event: {'met' if per_event <= 6 else 'MISSED'} ({per_event:.2f}); "
        f"SDK / midstream >= 9x: {'met' if t_sdk / t_mid >= 9 else 'MISSED'} ({t_sdk / t_mid:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
