"""32-bit RTMP timestamps unwrapped to 64 bits with serial-number arithmetic (RFC 1982)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.ingest.timestamps import TimestampUnwrapper

WRAP = 1 << 32


def unwrap_all(values: list[int]) -> list[int]:
    clock = TimestampUnwrapper()
    return [clock.unwrap(v) for v in values]


@pytest.mark.parametrize(("wire", "expected"), [
    ([0, 40, 80], [0, 40, 80]),
    ([1000, 990, 1000], [1000, 990, 1000]),  # B-frame style small step back
    ([0xFFFFFF00, 0xFFFFFFF0, 0x10, 0x100],
     [0xFFFFFF00, 0xFFFFFFF0, WRAP + 0x10, WRAP + 0x100]),
    ([0xFFFFFFFF, 0], [0xFFFFFFFF, WRAP]),
    ([0x10, 0xFFFFFFF0], [0x10, -0x10]),  # backwards across the wrap, not 4 billion ms on
    ([0xFFFFFFF0, 0x10, 0xFFFFFFF8, 0x20], [0xFFFFFFF0, WRAP + 0x10, 0xFFFFFFF8, WRAP + 0x20]),
    ([5, 5, 5], [5, 5, 5]),
    ([0, 0x7FFFFFFF], [0, 0x7FFFFFFF]),  # the largest forward step
])
def test_unwrap(wire: list[int], expected: list[int]) -> None:
    assert unwrap_all(wire) == expected


def test_several_wraps() -> None:
    wire = [(i * 0x40000000) % WRAP for i in range(13)]  # quarter-range steps
    assert unwrap_all(wire) == [i * 0x40000000 for i in range(13)]


def test_first_value_is_kept_as_is() -> None:
    assert unwrap_all([0xDEADBEEF]) == [0xDEADBEEF]


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, WRAP - 1),
       steps=st.lists(st.integers(-(2**31) + 1, 2**31 - 1), max_size=50))
def test_unwrap_recovers_any_walk_of_small_steps(start: int, steps: list[int]) -> None:
    true = [start]
    for step in steps:
        true.append(true[-1] + step)
    assert unwrap_all([t % WRAP for t in true]) == true
