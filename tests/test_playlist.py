"""Golden-text tests of the pure playlist renderer, and proof that the rule checker
(`hls_rules.py`) catches each kind of breach it claims to."""

from __future__ import annotations

import itertools

import pytest
from hls_rules import check_media_playlist, media_violations, successive_violations

from golive.packager.playlist import (
    MasterPlaylist,
    MediaPlaylist,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    Variant,
    render_master_playlist,
    render_media_playlist,
)
from golive.packager.rendition import Rendition
from golive.packager.store import MemoryStore

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def segment(sequence: int, duration: float = 2.0, *, start: float | None = None,
            parts: tuple[PartEntry, ...] = (), discontinuity: bool = False,
            independent: bool = True) -> SegmentEntry:
    return SegmentEntry(sequence=sequence, uri=f"seg-{sequence}.m4s", duration=duration,
                        program_date_time=T0 + 2 * sequence if start is None else start,
                        init_uri="init-1.mp4", independent=independent,
                        discontinuity=discontinuity, parts=parts)


def parts_of(sequence: int, durations: list[float]) -> tuple[PartEntry, ...]:
    return tuple(PartEntry(f"part-{sequence}.{i}.m4s", d, i == 0)
                 for i, d in enumerate(durations))


def test_classic_live_playlist() -> None:
    text = render_media_playlist(MediaPlaylist(
        target_duration=2, media_sequence=10, discontinuity_sequence=0,
        segments=[segment(n) for n in range(10, 16)]))
    expected = "\n".join([
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:10",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init-1.mp4"',
        *[line for n in range(10, 16) for line in (
            f"#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:{20 + 2 * n}.000Z",
            "#EXTINF:2.000,", f"seg-{n}.m4s")],
    ]) + "\n"
    assert text == expected
    check_media_playlist(text, first_sequence=0, independent=True)


LL_EXPECTED = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXT-X-PART:DURATION=0.334,URI="part-0.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="part-0.1.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-0.2.m4s"
#EXT-X-PART:DURATION=0.334,URI="part-0.3.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-0.4.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-0.5.m4s"
#EXTINF:2.000,
seg-0.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXT-X-PART:DURATION=0.334,URI="part-1.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="part-1.1.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.2.m4s"
#EXT-X-PART:DURATION=0.334,URI="part-1.3.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.4.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.5.m4s"
#EXTINF:2.000,
seg-1.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z
#EXT-X-PART:DURATION=0.334,URI="part-2.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="part-2.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-2.2.m4s"
#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8",LAST-MSN=2,LAST-PART=1
#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=1
"""


def low_latency(ended: bool = False) -> MediaPlaylist:
    durations = [0.334, 0.333, 0.333, 0.334, 0.333, 0.333]
    return MediaPlaylist(
        target_duration=2, media_sequence=0, discontinuity_sequence=0,
        segments=[segment(0, parts=parts_of(0, durations)),
                  segment(1, parts=parts_of(1, durations))], ended=ended,
        part_target=0.334, open_parts=parts_of(2, [0.334, 0.333]),
        open_program_date_time=T0 + 4, open_init_uri="init-1.mp4",
        preload_hint="part-2.2.m4s",
        rendition_reports=(RenditionReport("../720p/index.m3u8", 2, 1),
                           RenditionReport("../audio/index.m3u8", 1, None)))


def test_low_latency_playlist_with_open_parts_hint_and_reports() -> None:
    text = render_media_playlist(low_latency())
    assert text == LL_EXPECTED
    check_media_playlist(text, independent=True)


def test_ended_playlist_lists_whole_segments_only() -> None:
    text = render_media_playlist(low_latency(ended=True))
    kept = [line for line in LL_EXPECTED.split("\n")[:27]
            if not line.startswith(("#EXT-X-PART", "#EXT-X-SERVER-CONTROL"))]
    assert text == "\n".join([*kept, "#EXT-X-ENDLIST"]) + "\n"
    assert "PART" not in text and "SERVER-CONTROL" not in text
    check_media_playlist(text)


def test_discontinuity_playlist() -> None:
    text = render_media_playlist(MediaPlaylist(
        target_duration=4, media_sequence=7, discontinuity_sequence=2,
        segments=[segment(7, 3.5, start=T0), segment(8, 1.25, start=T0 + 3.5),
                  segment(9, 4.0, start=T0 + 100.5, discontinuity=True, independent=False)]))
    assert text == """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXTINF:3.500,
seg-7.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.500Z
#EXTINF:1.250,
seg-8.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:00.500Z
#EXTINF:4.000,
seg-9.m4s
"""
    assert media_violations(text, independent=False) == []


def test_empty_playlist_claims_no_version_it_does_not_need() -> None:
    text = render_media_playlist(MediaPlaylist(2, 0, 0, segments=()))
    assert text == ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                    "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n")
    check_media_playlist(text)


def test_master_playlist() -> None:
    text = render_master_playlist(MasterPlaylist([
        Variant("audio/index.m3u8", 130_000, 128_000, ("mp4a.40.2",), name="audio"),
        Variant("source/index.m3u8", 4_812_345, 3_900_000, ("avc1.64001F", "mp4a.40.2"),
                resolution=(1280, 720), frame_rate=29.97, name="source"),
    ]))
    assert text == """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=4812345,AVERAGE-BANDWIDTH=3900000,CODECS="avc1.64001F,mp4a.40.2",\
RESOLUTION=1280x720,FRAME-RATE=29.970,NAME="source"
source/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,CODECS="mp4a.40.2",NAME="audio"
audio/index.m3u8
"""
    dependent = render_master_playlist(MasterPlaylist([], independent_segments=False))
    assert dependent == "#EXTM3U\n#EXT-X-VERSION:6\n"


# -- the checker catches what it claims to --------------------------------------------------

def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


BREACHES = [
    ("EXT-X-VERSION", lambda t: _edit(t, "VERSION:6", "VERSION:7")),
    ("EXT-X-VERSION", lambda t: _edit(t, "VERSION:6", "VERSION:3")),
    ("EXTINF", lambda t: _edit(t, "#EXTINF:2.000,\nseg-0", "#EXTINF:2.500,\nseg-0")),
    ("EXT-X-PART", lambda t: _edit(t, '0.333,URI="part-1.1', '0.335,URI="part-1.1')),
    ("85%", lambda t: _edit(t, '0.333,URI="part-2.1', '0.200,URI="part-2.1')),
    ("EXT-X-PART", lambda t: t.replace('#EXT-X-PART:DURATION=0.334,URI="part-0.0.m4s",'
                                       "INDEPENDENT=YES\n", "")),
    ("PART-HOLD-BACK", lambda t: _edit(t, "PART-HOLD-BACK=1.002", "PART-HOLD-BACK=0.600")),
    ("HOLD-BACK", lambda t: _edit(t, "HOLD-BACK=6.000", "HOLD-BACK=5.000")),
    ("MEDIA-SEQUENCE", lambda t: _edit(t, "#EXT-X-MEDIA-SEQUENCE:0\n", "")),
    ("DISCONTINUITY-SEQUENCE", lambda t: _edit(t, "#EXT-X-DISCONTINUITY-SEQUENCE:0\n", "")),
    ("PROGRAM-DATE-TIME", lambda t: _edit(t, "22:13:22.000Z", "22:13:22.500Z")),
    ("EXT-X-MAP", lambda t: _edit(t, '#EXT-X-MAP:URI="init-1.mp4"\n', "")),
    ("PRELOAD-HINT", lambda t: _edit(t, 'URI="part-2.2.m4s"', 'URI="part-2.1.m4s"')),
    ("PRELOAD-HINT", lambda t: t + "#EXT-X-ENDLIST\n"),
    ("PLAYLIST-TYPE", lambda t: _edit(t, "#EXT-X-PART-INF",
                                      "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-PART-INF")),
    ("INDEPENDENT-SEGMENTS", lambda t: _edit(t, 'part-2.0.m4s",INDEPENDENT=YES', 'part-2.0.m4s"')),
    ("order", lambda t: _edit(t, "#EXT-X-MEDIA-SEQUENCE:0\n", "") + "#EXT-X-MEDIA-SEQUENCE:0\n"),
    ("SERVER-CONTROL", lambda t: _edit(t, "CAN-BLOCK-RELOAD=YES,", "")),
]


@pytest.mark.parametrize(("rule", "breach"), BREACHES, ids=[b[0] for b in BREACHES])
def test_checker_names_the_broken_rule(rule, breach) -> None:
    broken = breach(LL_EXPECTED)
    found = media_violations(broken)
    assert found, "the checker missed it"
    assert any(rule in message for message in found), found


def test_checker_judges_reloads() -> None:
    base = LL_EXPECTED
    assert successive_violations(base, base) == []
    changed_target = _edit(base, "TARGETDURATION:2", "TARGETDURATION:3")
    assert any("TARGETDURATION" in m for m in successive_violations(base, changed_target))
    went_back = _edit(base, "MEDIA-SEQUENCE:0", "MEDIA-SEQUENCE:1")
    assert any("MEDIA-SEQUENCE" in m for m in successive_violations(went_back, base))
    rewritten = _edit(base, "DURATION=0.333,URI=\"part-1.1", "DURATION=0.300,URI=\"part-1.1")
    assert any("parts changed" in m for m in successive_violations(base, rewritten))


def test_checker_counts_removed_discontinuities() -> None:
    def window(first: int, ds: int) -> str:
        return render_media_playlist(MediaPlaylist(
            target_duration=2, media_sequence=first, discontinuity_sequence=ds,
            segments=[segment(n, discontinuity=n == 3) for n in range(first, first + 7)]))
    assert successive_violations(window(2, 0), window(3, 0)) == []
    assert successive_violations(window(3, 0), window(4, 1)) == []
    assert any("DISCONTINUITY-SEQUENCE" in m
               for m in successive_violations(window(3, 0), window(4, 0)))


def test_rendition_keeps_three_target_durations_of_short_segments() -> None:
    """Segments cut short (jumps, reconnects) used to leave six of them, 3 s, in a playlist
    whose TARGETDURATION is 2: the window must not fall under 6 s."""
    rendition = Rendition("live", "source", MemoryStore(), target_duration=2)
    rendition.part_target_ms = 334
    rendition.set_init(1, b"init")
    texts = []
    for n in range(40):
        rendition.mark_discontinuity()
        rendition.add_part(b"x", 300, True, True, True, 300 * (n + 1), now=T0 + n)
        texts.append(rendition.text())
        check_media_playlist(texts[-1], first_sequence=0)
    assert rendition.media_sequence > 0
    assert sum(s.duration_ms for s in rendition.segments) >= 6000
    for old, new in itertools.pairwise(texts):
        assert successive_violations(old, new) == []
