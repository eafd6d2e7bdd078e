"""The allocator settings for media buffers apply on glibc and may be applied again."""

from __future__ import annotations

import platform

from golive.allocator import tune_allocator


def test_tuning_applies_on_glibc_and_repeats_harmlessly() -> None:
    expected = platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is expected
    assert tune_allocator() is expected
    assert bytes(64 << 20)[:1] == b"\0"  # large buffers still allocate (from the heap)
