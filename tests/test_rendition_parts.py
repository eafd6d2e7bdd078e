"""Which segments list their LL-HLS parts (RFC 8216bis 6.2.2): a Rendition fed part by part
from the stream start, checked after every part against the rule, worked out here by hand:
a segment lists its parts exactly while its start lies at most three target durations before
the end of the playlist (the last listed part, the open segment's included)."""

from __future__ import annotations

import pytest
from hls_rules import check_media_playlist, check_successive, parse

from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore

TARGET = 2  # s
T0 = 1_700_000_000.0


def expected_parted(durations: list[int], open_ms: int) -> list[int]:
    """The complete segments (by index from the start) whose start is within 3 x TARGET of
    the end, from their own durations: independent of how Rendition keeps track."""
    to_end = open_ms
    parted = []
    for index in reversed(range(len(durations))):
        to_end += durations[index]
        if to_end <= 3000 * TARGET:
            parted.append(index)
    return sorted(parted)


def feed(segments: list[list[int]]) -> None:
    """Every segment's part durations (ms), listed one part at a time; after each part the
    segments listing parts are exactly the expected ones, the playlist keeps every rule, and
    the files of parts whose tags left stay downloadable three target durations more."""
    store = MemoryStore()
    rendition = Rendition("live", "source", store, target_duration=TARGET)
    rendition.part_target_ms = max(max(parts) for parts in segments)
    rendition.set_init(1, b"init")
    now, media_ms = T0, 0
    done: list[int] = []  # complete segments' durations
    dropped: dict[str, float] = {}  # part URI -> when its tag left the playlist
    previous = ""
    for parts in segments:
        for index, duration in enumerate(parts):
            now += duration / 1000
            media_ms += duration
            last = index == len(parts) - 1
            rendition.add_part(b"p", duration, index == 0, index == 0, last, media_ms, now=now)
            open_ms = 0 if last else sum(parts[:index + 1])
            if last:
                done.append(sum(parts))
            text = rendition.text()
            check_media_playlist(text, first_sequence=0, independent=True)
            if previous:
                check_successive(previous, text)
            previous = text
            playlist = parse(text)
            first = playlist.media_sequence or 0
            listed = [s.sequence for s in playlist.segments if s.parts]
            wanted = [n for n in expected_parted(done, open_ms) if n >= first]
            assert listed == wanted, (len(done), index, text)
            if playlist.open is not None:
                assert len(playlist.open.parts) == index + 1  # the open segment's all listed
            for segment in playlist.segments:
                if not segment.parts:
                    for n in range(len(segments[segment.sequence])):
                        dropped.setdefault(f"part-{segment.sequence}.{n}.m4s", now)
            for uri, when in dropped.items():
                if now - when <= 3 * TARGET:
                    assert store.get(rendition.prefix + uri) is not None, uri


def test_regular_segments_from_the_stream_start() -> None:
    """2 s segments of six 1/3 s parts: two complete segments plus the open one list parts,
    three right after a segment completes. Segment 0 used to keep its parts while segment 3
    grew, starting over 6 s before the end (what hls-parser rejects)."""
    feed([[334, 333, 333, 334, 333, 333]] * 12)


@pytest.mark.parametrize("part_ms", [300, 250, 333])
def test_segments_shorter_than_the_target(part_ms: int) -> None:
    """Segments under TARGETDURATION (here 1.5-2 s): more of them fit in three target
    durations, and the open segment's parts decide when the oldest must let go."""
    feed([[part_ms] * (5 + n % 2) for n in range(20)])


def test_short_and_uneven_segments() -> None:
    """Cuts of every length (jumps, reconnects, forced cuts), a single-part segment among
    them: whole segments only ever gain or lose parts."""
    lengths = [1, 6, 2, 6, 6, 3, 1, 1, 6, 4, 6, 6, 5, 6, 1, 6, 6, 6]
    feed([[334, 333, 333, 334, 333, 333][:n] for n in lengths])


def test_stream_start_keeps_only_what_is_near_the_end() -> None:
    """The case of the issue, by hand: segments 0-2 complete (6 s); the first part of
    segment 3 puts segment 0's start 6.334 s before the end, so its parts leave."""
    rendition = Rendition("live", "source", MemoryStore(), target_duration=TARGET)
    rendition.part_target_ms = 334
    rendition.set_init(1, b"init")
    parts = [334, 333, 333, 334, 333, 333]
    media = 0
    for _ in range(3):
        for index, duration in enumerate(parts):
            media += duration
            rendition.add_part(b"p", duration, index == 0, index == 0, index == 5, media,
                               now=T0 + media / 1000)
    assert [s.sequence for s in parse(rendition.text()).segments if s.parts] == [0, 1, 2]
    rendition.add_part(b"p", 334, True, True, False, media + 334, now=T0 + media / 1000 + 1)
    playlist = parse(rendition.text())
    assert [s.sequence for s in playlist.segments if s.parts] == [1, 2]
    assert rendition.store.get(rendition.prefix + "part-0.0.m4s") is not None  # still served
