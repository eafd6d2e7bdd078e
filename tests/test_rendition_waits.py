"""What blocking playlist reload and preload-hinted part requests wait for (RFC 8216bis 6.2.5.2),
against a Rendition fed by hand."""

from __future__ import annotations

import asyncio

from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore


def rendition_with(segments: list[int], open_parts: int) -> Rendition:
    """Complete segments with the given part counts, then an open one with `open_parts`."""
    rendition = Rendition("s", "source", MemoryStore(), target_duration=2)
    rendition.set_init(1, b"init")
    rendition.part_target_ms = 500
    now = 1000.0
    for parts in segments:
        for index in range(parts):
            rendition.add_part(b"x", 500, index == 0, index == 0, index == parts - 1, 0, now)
            now += 0.5
    for index in range(open_parts):
        rendition.add_part(b"x", 500, index == 0, index == 0, False, 0, now)
        now += 0.5
    return rendition


def test_has_follows_the_part_numbering_rules() -> None:
    rendition = rendition_with([4, 4], open_parts=2)  # segments 0, 1 complete; 2 has 2 parts
    assert (rendition.last_msn, rendition.last_part) == (2, 1)
    assert rendition.has(1, None) and not rendition.has(2, None)  # msn alone: complete only
    assert rendition.has(2, 0) and rendition.has(2, 1) and not rendition.has(2, 2)
    assert rendition.has(1, 3)
    assert rendition.has(1, 4)  # one past the last part of 1 = part 0 of 2, which exists
    assert not rendition.has(3, 0)


def test_past_the_last_part_of_a_complete_segment_waits_for_the_next() -> None:
    rendition = rendition_with([4], open_parts=0)  # segment 0 complete, nothing open
    assert rendition.has(0, 3) and not rendition.has(0, 4)
    rendition.add_part(b"x", 500, True, True, False, 0, 2000.0)
    assert rendition.has(0, 4) and rendition.has(1, 0)


def test_only_the_hinted_part_may_be_waited_for() -> None:
    rendition = rendition_with([4], open_parts=2)
    assert rendition.part_listed_or_hinted(1, 2)  # the preload hint
    assert not rendition.part_listed_or_hinted(1, 3)
    # The next part may also open the next segment, if segment 1 ends at a keyframe.
    assert rendition.part_listed_or_hinted(2, 0)
    assert not rendition.part_listed_or_hinted(2, 1)
    assert not rendition.part_listed_or_hinted(3, 0)
    assert 'PRELOAD-HINT:TYPE=PART,URI="part-1.2.m4s"' in rendition.text()
    closed = rendition_with([4], open_parts=0)
    assert closed.part_listed_or_hinted(1, 0)
    assert 'PRELOAD-HINT:TYPE=PART,URI="part-1.0.m4s"' in closed.text()


async def test_waiters_wake_when_the_part_is_listed_not_before() -> None:
    rendition = rendition_with([4], open_parts=1)
    waiter = asyncio.create_task(rendition.wait_for(1, 2, timeout=5))
    await asyncio.sleep(0.01)
    rendition.add_part(b"x", 500, False, False, False, 0, 2000.0)  # part 1.1: not enough
    await asyncio.sleep(0.01)
    assert not waiter.done()
    rendition.add_part(b"x", 500, False, False, False, 0, 2000.5)  # part 1.2
    assert await asyncio.wait_for(waiter, 1) is True


async def test_a_wait_ends_with_the_broadcast_or_the_timeout() -> None:
    rendition = rendition_with([4], open_parts=1)
    assert await rendition.wait_for(5, None, timeout=0.05) is False
    waiter = asyncio.create_task(rendition.wait_for(3, None, timeout=5))
    await asyncio.sleep(0.01)
    rendition.end(2000.0)
    assert await asyncio.wait_for(waiter, 1) is False
    assert rendition.text().rstrip().endswith("#EXT-X-ENDLIST")
