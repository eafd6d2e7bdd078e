"""A transcoded rendition that lost segments (its worker shed load or restarted) lists them
as EXT-X-GAP, so its segment numbers keep matching the other renditions'."""

from __future__ import annotations

from hls_rules import check_media_playlist, parse

from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore


def rendition_with_gap() -> Rendition:
    rendition = Rendition("show", "240p", MemoryStore(), target_duration=2, low_latency=False)
    rendition.set_init(1, b"init")
    now = 1_000.0
    for sequence in range(3):
        rendition.add_part(b"x" * 1000, 2000, True, True, True, 2000 * (sequence + 1),
                           now=now + 2 * sequence)
    # Segments 3 and 4 never came out of the transcoder; 5 did.
    rendition.add_part(b"y" * 500, 1000, True, True, False, 7000, now=now + 6)  # cut short
    rendition.add_gap(4, 2000, now + 8, now=now + 8)
    rendition.next_sequence = 5
    rendition.add_part(b"z" * 1000, 2000, True, True, True, 12_000, now=now + 10)
    return rendition


def test_gap_segments_keep_numbers_and_render_as_gaps() -> None:
    rendition = rendition_with_gap()
    assert [(s.sequence, s.gap) for s in rendition.segments] == [
        (0, False), (1, False), (2, False), (3, False), (4, True), (5, False)]
    text = rendition.text()
    check_media_playlist(text, first_sequence=0, independent=True)
    lines = text.splitlines()
    gap = lines.index("#EXT-X-GAP")
    # Segment 3 was cut short: the hole before the gap comes after a discontinuity.
    assert lines[gap - 3:gap - 1] == ["seg-3.m4s", "#EXT-X-DISCONTINUITY"]
    assert lines[gap + 1] == "#EXTINF:2.000," and lines[gap + 2] == "seg-4.m4s"
    assert [s.gap for s in parse(text).segments] == [False] * 4 + [True, False]


def test_gaps_do_not_count_in_the_measured_bandwidth() -> None:
    rendition = rendition_with_gap()
    _, average = rendition.bandwidth()
    media = [s for s in rendition.segments if not s.gap]
    expected = sum(s.size for s in media) * 8000 / sum(s.duration_ms for s in media)
    assert abs(average - expected) <= 1
