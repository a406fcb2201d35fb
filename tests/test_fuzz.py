"""A short run of every fuzz target (``make fuzz`` runs them for longer; see ``fuzz/README.md``): random
bytes and mutations of the corpus, each checked against the target's invariants."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzsupport import TARGETS, seeds


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    """A corpus entry cut, with a few bytes flipped, inserted or dropped."""
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "drop", "cut"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "drop":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_short_run(name: str) -> None:
    corpus = seeds(name) or [b"{}"]
    target = TARGETS[name]

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=300), mutated(corpus)))
    def run(data: bytes) -> None:
        target(data)

    for seed in corpus:
        target(seed)
    run()
