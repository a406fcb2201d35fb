"""The retry decision, rule by rule, as tables with a fake clock (no sleeping, no real time)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from midstream.core.retry import (
    Decision,
    Failure,
    RetryPolicy,
    backoff,
    decide,
    is_content,
    server_delay,
)
from midstream.events import (
    BlockStart,
    BlockStop,
    CitationDelta,
    ResponseEnd,
    ResponseStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Unknown,
    UsageUpdate,
)
from midstream.message import Usage

NOW = 1_700_000_000.0  # the fake wall clock: 2023-11-14T22:13:20Z
POLICY = RetryPolicy()  # 2 retries, 0.5 s doubling to 8 s, jitter 25 %, server delays up to 60 s


def http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, UTC), usegmt=True)


def status(code: int, **headers: str) -> Failure:
    return Failure("status", status=code, headers={k.replace("_", "-"): v for k, v in headers.items()})


def run(
    failure: Failure, *, retries: int = 0, content: bool = False, jitter: float = 0.0, **kw: Any
) -> Decision:
    return decide(
        failure, retries=retries, content_started=content, policy=kw.pop("policy", POLICY), now=NOW,
        jitter=jitter, **kw,
    )  # fmt: skip


# -- what is worth retrying ------------------------------------------------------------------------

WORTH = [
    (status(408), True),
    (status(409), True),
    (status(429), True),
    (status(500), True),
    (status(502), True),
    (status(503), True),
    (status(504), True),
    (status(529), True),
    (status(400), False),
    (status(401), False),
    (status(403), False),
    (status(404), False),
    (status(413), False),
    (status(422), False),
    (Failure("connect"), True),
    (Failure("transport"), True),
    (Failure("timeout", which="connect"), True),
    (Failure("timeout", which="first_byte"), True),
    (Failure("timeout", which="idle"), True),
    (Failure("timeout", which="total"), False),
    (Failure("stream_error", retryable=True), True),
    (Failure("stream_error", retryable=False), False),
    (Failure("protocol"), False),
]


@pytest.mark.parametrize(("failure", "expected"), WORTH)
def test_what_is_worth_retrying(failure: Failure, expected: bool) -> None:
    assert run(failure).retry is expected


# x-should-retry is the server's own verdict and beats the status rules, both ways.
SHOULD_RETRY = [
    (status(400, x_should_retry="true"), True),
    (status(500, x_should_retry="false"), False),
    (status(529, x_should_retry="False"), False),
    (status(409, x_should_retry=" TRUE "), True),
    (status(400, x_should_retry="maybe"), False),  # not a verdict: the status decides
    (status(503, x_should_retry="maybe"), True),
    (Failure("status", status=429, headers={"X-Should-Retry": "false"}), False),  # any header case
]


@pytest.mark.parametrize(("failure", "expected"), SHOULD_RETRY)
def test_x_should_retry_overrides_the_status(failure: Failure, expected: bool) -> None:
    decision = run(failure)
    assert decision.retry is expected
    if "maybe" not in str(failure.headers):
        assert "x-should-retry" in decision.reason


# -- never after content, never past the limit or the deadline -------------------------------------


@pytest.mark.parametrize(
    "failure", [status(529), Failure("transport"), Failure("stream_error", retryable=True)]
)
def test_no_retry_once_content_reached_the_caller(failure: Failure) -> None:
    decision = run(failure, content=True)
    assert decision == Decision(False, 0.0, "content already reached the caller")


@pytest.mark.parametrize(
    ("retries", "max_retries", "expected"),
    [(0, 2, True), (1, 2, True), (2, 2, False), (3, 2, False), (0, 0, False), (4, 5, True), (5, 5, False)],
)
def test_the_number_of_retries_is_bounded(retries: int, max_retries: int, expected: bool) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    decision = run(status(503), retries=retries, policy=policy)
    assert decision.retry is expected
    if not expected:
        assert decision.reason == f"{retries} retries made, the limit is {max_retries}"


@pytest.mark.parametrize(
    ("headers", "time_left", "expected"),
    [
        ({}, None, True),
        ({}, 0.6, True),  # backoff 0.5 s fits
        ({}, 0.5, False),  # ... exactly at the deadline does not
        ({}, 0.1, False),
        ({"retry-after": "3"}, 10.0, True),
        ({"retry-after": "3"}, 2.9, False),
        ({"retry-after-ms": "200"}, 0.25, True),
    ],
)
def test_no_retry_whose_wait_passes_the_deadline(
    headers: dict[str, str], time_left: float | None, expected: bool
) -> None:
    decision = run(Failure("status", status=429, headers=headers), time_left=time_left)
    assert decision.retry is expected
    if not expected:
        assert "deadline" in decision.reason


# -- how long to wait ------------------------------------------------------------------------------

SERVER_DELAYS: list[tuple[dict[str, str], float | None]] = [
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "1500.5"}, 1.5005),
    ({"retry-after-ms": "100", "retry-after": "30"}, 0.1),  # the ms header wins
    ({"retry-after-ms": "junk", "retry-after": "2"}, 2.0),  # an unreadable ms header is skipped
    ({"retry-after-ms": "0"}, None),  # not positive: backoff
    ({"retry-after-ms": "-5"}, None),
    ({"retry-after-ms": "60000"}, 60.0),  # exactly the cap
    ({"retry-after-ms": "60001"}, None),  # beyond the cap: backoff, as the SDKs do
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.75"}, 0.75),
    ({"retry-after": " 12 "}, 12.0),
    ({"retry-after": "61"}, None),
    ({"retry-after": "0"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": http_date(5)}, 5.0),
    ({"retry-after": http_date(60)}, 60.0),
    ({"retry-after": http_date(90)}, None),  # too far ahead
    ({"retry-after": http_date(-10)}, None),  # already past
    ({"retry-after": "Tue, 14 Nov 2023 22:13:30"}, None),  # no zone: not an HTTP date
    ({"retry-after": "next tuesday"}, None),
    ({"Retry-After": "4"}, 4.0),  # any header case
    ({}, None),
]


@pytest.mark.parametrize(("headers", "expected"), SERVER_DELAYS)
def test_server_delay(headers: dict[str, str], expected: float | None) -> None:
    delay = server_delay(headers, now=NOW, cap=60.0)
    if expected is None:
        assert delay is None
    else:
        assert delay == pytest.approx(expected)


def test_a_server_delay_is_used_as_is() -> None:
    decision = run(status(429, retry_after_ms="1234"), jitter=0.9)
    assert decision.retry and decision.delay == pytest.approx(1.234)  # no jitter on the server's word
    assert "the server asked for 1.234 s" in decision.reason
    decision = run(status(503, retry_after=http_date(3)))
    assert decision.delay == pytest.approx(3.0)


def test_a_delay_in_the_error_body_is_used_when_no_header_gives_one() -> None:
    """Gemini says how long to wait in the body (``RetryInfo``), not in a header."""
    body_says = dataclasses.replace(status(429), delay=7.5)
    decision = run(body_says, jitter=0.9)
    assert decision.retry and decision.delay == pytest.approx(7.5)
    assert "the server asked for 7.500 s" in decision.reason
    both = dataclasses.replace(status(429, retry_after="2"), delay=7.5)
    assert run(both).delay == pytest.approx(2.0)  # a header wins
    too_long = dataclasses.replace(status(429), delay=3600.0)
    assert run(too_long).delay == pytest.approx(0.5)  # out of range: the backoff, as for headers


@pytest.mark.parametrize(
    ("retries", "jitter", "expected"),
    [
        (0, 0.0, 0.5),
        (1, 0.0, 1.0),
        (2, 0.0, 2.0),
        (3, 0.0, 4.0),
        (4, 0.0, 8.0),
        (5, 0.0, 8.0),  # capped
        (10, 0.0, 8.0),
        (0, 0.5, 0.5 * (1 - 0.25 * 0.5)),
        (1, 0.999, 1.0 * (1 - 0.25 * 0.999)),
        (6, 1.0, 8.0 * 0.75),  # jitter only ever shortens, by at most a quarter
        (0, -3.0, 0.5),  # out-of-range jitter is clamped
        (0, 7.0, 0.375),
    ],
)
def test_backoff(retries: int, jitter: float, expected: float) -> None:
    assert backoff(retries, POLICY, jitter) == pytest.approx(expected)


def test_backoff_is_used_without_a_usable_server_delay() -> None:
    policy = RetryPolicy(max_retries=10)
    delays = [run(status(500), retries=n, policy=policy).delay for n in range(6)]
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 8.0])
    decision = run(status(500, retry_after="3600"), retries=1)  # an hour: out of range, so backoff
    assert decision.retry and decision.delay == pytest.approx(1.0)
    assert "backoff 1.000 s" in decision.reason


def test_policy_knobs() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.03, jitter=0.0, max_server_delay=1.0)
    assert [backoff(n, policy, 0.9) for n in range(4)] == pytest.approx([0.01, 0.02, 0.03, 0.03])
    assert run(status(429, retry_after="2"), policy=policy).delay == pytest.approx(0.01)
    assert run(status(429, retry_after="0.5"), policy=policy).delay == pytest.approx(0.5)


# -- the content boundary --------------------------------------------------------------------------

CONTENT = [
    (ResponseStart(provider="anthropic"), False),
    (BlockStart(index=0, type="text"), False),
    (BlockStart(index=0, type="thinking"), False),
    (TextDelta(0, ""), False),
    (TextDelta(0, "Hi"), True),
    (ThinkingDelta(0, ""), False),
    (ThinkingDelta(0, "Hmm"), True),
    (SignatureDelta(0, "c2ln"), True),
    (CitationDelta(0, {"url": "https://example.com"}), True),
    (BlockStart(index=1, type="tool_call", id="toolu_1", name="search"), True),
    (BlockStart(index=1, type="server_tool", id="srvtoolu_1", name="web_search"), True),
    (BlockStart(index=1, type="redacted_thinking", data="opaque"), True),
    (BlockStart(index=1, type="unknown", raw_type="image", data={"x": 1}), True),
    (BlockStart(index=1, type="unknown", raw_type="mystery"), False),
    (ToolArgsDelta(1, ""), False),  # Anthropic's opening empty fragment
    (ToolArgsDelta(1, '{"q'), True),
    (BlockStop(0), False),
    (UsageUpdate(Usage(input_tokens=3)), False),
    (Unknown(raw_type="ping"), False),
    (StreamError(error_kind="overloaded", message="Overloaded", retryable=True), False),
    (ResponseEnd(stop_reason="end_turn"), False),
]


@pytest.mark.parametrize(("event", "expected"), CONTENT)
def test_is_content(event: Any, expected: bool) -> None:
    assert is_content(event) is expected
