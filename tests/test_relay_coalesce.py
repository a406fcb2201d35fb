"""Coalescing keeps every text, the order of blocks and of every other event, and its time bounds."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import midstream.relay.coalesce
from midstream.relay.coalesce import Coalescer, CoalesceSettings, Item

_DELTA = st.one_of(
    st.builds(lambda i, t: ("text_delta", {"index": i, "text": t}), st.integers(0, 2), st.text(max_size=5)),
    st.builds(
        lambda i, t: ("thinking_delta", {"index": i, "text": t}), st.integers(0, 2), st.text(max_size=5)
    ),
    st.builds(
        lambda i, t: ("tool_args_delta", {"index": i, "fragment": t}), st.integers(0, 2), st.text(max_size=5)
    ),
    st.builds(
        lambda i, p, t: ("tool_field_delta", {"index": i, "path": [p], "text": t}),
        st.integers(0, 2),
        st.sampled_from(["a", "b"]),
        st.text(max_size=5),
    ),
)
_OTHER = st.builds(lambda i: ("block_stop", {"index": i}), st.integers(0, 2)) | st.just(("usage_update", {}))
_STREAM = st.lists(st.tuples(st.one_of(_DELTA, _OTHER), st.floats(0, 0.03)), max_size=60)


def _feed(items: list[tuple[Item, float]], c: Coalescer) -> list[tuple[Item, float]]:
    """Push with the given gaps, calling ``due`` whenever a deadline passes, as the executor does."""
    out: list[tuple[Item, float]] = []
    now = 0.0
    for (kind, data), gap in items:
        deadline = c.deadline
        if deadline is not None and now + gap >= deadline:
            out += [(x, deadline) for x in c.due(deadline)]
        now += gap
        out += [(x, now) for x in c.push(kind, data, now=now)]
    out += [(x, now) for x in c.flush()]
    return out


def _texts(items: list[Item]) -> dict[tuple[Any, ...], str]:
    joined: dict[tuple[Any, ...], str] = {}
    for kind, data in items:
        field = {"tool_args_delta": "fragment"}.get(kind, "text")
        if field in data:
            key = (kind, data["index"], tuple(data.get("path", ())))
            joined[key] = joined.get(key, "") + data[field]
    return joined


def _others(items: list[Item]) -> list[Item]:
    return [i for i in items if i[0] in ("block_stop", "usage_update")]


def _blocks(items: list[Item]) -> list[int]:
    order: list[int] = []
    for kind, data in items:
        if kind != "usage_update" and (not order or order[-1] != data["index"]):
            order.append(data["index"])
    return order


def test_doctests() -> None:
    assert doctest.testmod(midstream.relay.coalesce).failed == 0


@settings(max_examples=300, deadline=None)
@given(_STREAM, st.sampled_from([0.0, 5.0, 20.0, 1000.0]), st.integers(1, 12))
def test_coalescing_loses_nothing_and_keeps_the_order(stream: Any, window: float, cap: int) -> None:
    c = Coalescer(CoalesceSettings(buffer_timeout_ms=window, max_bytes=cap))
    out = _feed(stream, c)
    items = [item for item, _ in out]
    given_items = [item for item, _ in stream]
    assert _texts(items) == _texts(given_items)
    assert _others(items) == _others(given_items)
    assert _blocks(items) == _blocks(given_items)
    assert len(items) <= len(given_items)
    if window == 0:
        assert items == given_items  # off: everything passes as it came
    assert c.deadline is None


def test_a_held_delta_is_written_by_its_deadline_or_its_size() -> None:
    c = Coalescer(CoalesceSettings(buffer_timeout_ms=50, max_bytes=8))
    assert c.push("text_delta", {"index": 0, "text": "ab"}, now=1.0) == []
    assert c.deadline == pytest.approx(1.05)
    assert c.due(1.04) == []
    assert c.due(1.05) == [("text_delta", {"index": 0, "text": "ab"})]
    assert c.push("text_delta", {"index": 0, "text": "abcd"}, now=2.0) == []
    assert c.push("text_delta", {"index": 0, "text": "efgh"}, now=2.01) == [
        ("text_delta", {"index": 0, "text": "abcdefgh"})
    ]
    assert c.deadline is None


def test_settings_are_checked() -> None:
    assert CoalesceSettings.coerce(None) == CoalesceSettings()
    assert CoalesceSettings.coerce({"buffer_timeout_ms": 0}).buffer_timeout_ms == 0
    for bad in ({"buffer_timeout_ms": -1}, {"max_bytes": 0}, {"window": 3}):
        with pytest.raises((ValueError, TypeError)):
            CoalesceSettings.coerce(bad)
