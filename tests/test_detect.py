"""Telling the dialect of a recorded body from its bytes: every real capture, every encoder, and junk."""

from __future__ import annotations

import random

import pytest

from midstream import wire
from midstream.message import Message, TextBlock, ToolCall, Usage
from midstream.wire.detect import SNIFF_BYTES, detect
from wiresupport import RECORDED

PREFIXES = {
    "anthropic": "anthropic",
    "openai_chat": "openai-chat",
    "openai_responses": "openai-responses",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "ollama": "ollama",
}
CAPTURES = sorted(
    p.name for p in RECORDED.iterdir() if p.suffix in (".txt", ".bin", ".ndjson") and p.name != "SOURCES.md"
)


def expected(name: str) -> str:
    return next(dialect for prefix, dialect in PREFIXES.items() if name.startswith(prefix))


def test_there_are_captures_of_every_dialect() -> None:
    assert {expected(name) for name in CAPTURES} == set(wire.DIALECTS)


@pytest.mark.parametrize("name", CAPTURES)
def test_every_recorded_capture_is_recognised(name: str) -> None:
    found = detect((RECORDED / name).read_bytes())
    assert found is not None and found.dialect == expected(name), found
    assert found.evidence


@pytest.mark.parametrize("name", CAPTURES)
def test_the_first_kilobyte_is_enough(name: str) -> None:
    found = detect((RECORDED / name).read_bytes()[:1024])
    assert found is not None and found.dialect == expected(name)


MESSAGE = Message(
    provider="x",
    model="m",
    id="msg_1",
    blocks=(
        TextBlock(text="Hello there"),
        ToolCall(id="call_1", name="f", raw_input='{"a": 1}', input={"a": 1}),
    ),
    stop_reason="tool_use",
    usage=Usage(input_tokens=3, output_tokens=4),
    terminal="completed",
)


@pytest.mark.parametrize("dialect", wire.DIALECTS)
def test_what_each_encoder_writes_is_recognised(dialect: str) -> None:
    data = wire.encoder(dialect).encode_message(MESSAGE)
    found = detect(data)
    assert found is not None and found.dialect == dialect


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"hello world\n",
        b"<html><body>502 Bad Gateway</body></html>",
        b": just a comment\n\n",
        b"data: not json\n\n",
        b'data: {"hello": "world"}\n\n',
        b'{"error": "model not found"}\n',
        b"[1, 2, 3]",
        b"\x00\x00\x00\x10\x00\x00\x00\x00\xde\xad\xbe\xef",  # a prelude whose CRC is wrong
    ],
)
def test_nothing_recognisable_is_none(junk: bytes) -> None:
    assert detect(junk) is None


def test_random_bytes_are_not_a_dialect() -> None:
    rng = random.Random(7)
    for _ in range(200):
        assert detect(rng.randbytes(rng.randint(0, 300))) is None


def test_only_the_head_is_read() -> None:
    data = b"x" * SNIFF_BYTES + (RECORDED / "anthropic_text_basic.txt").read_bytes()
    assert detect(data) is None
