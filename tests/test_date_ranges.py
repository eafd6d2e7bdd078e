"""EXT-X-DATERANGE (gifts, pins, questions, markers on the program's timeline): golden text
of the pure renderer, where each range is placed and when it leaves the live window, user
text that must not break a playlist, the rule checker's DATERANGE rules, and the rendition
and rendition-set plumbing (versions, no wake-ups, late rungs, bounds)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hls_rules import (
    check_media_playlist,
    media_violations,
    parse,
    successive_violations,
)
from test_playlist import LL_EXPECTED, T0, low_latency, segment

from golive.packager.config import HlsConfig
from golive.packager.playlist import (
    DateRange,
    MediaPlaylist,
    date_range_in_window,
    render_media_playlist,
)
from golive.packager.recording import Recorder, seal_recording
from golive.packager.rendition import Rendition
from golive.packager.renditions import MAX_DATE_RANGES, RenditionSet
from golive.packager.store import MemoryStore
from golive.packager.timeline import TimelineConfig

QUESTION = DateRange("golive-q-1", "io.golive.question", T0 - 3, 4.5,
                     (("X-GOLIVE-USER", "Bo"), ("X-GOLIVE-TEXT", "what camera?")))
GIFT = DateRange("golive-g-1", "io.golive.gift", T0 + 0.5, 5.0,
                 (("X-GOLIVE-USER", "Ada"), ("X-GOLIVE-TEXT", "rose x3"),
                  ("X-GOLIVE-COINS", 30)))
MARKER = DateRange("golive-k-1", "io.golive.marker", T0 + 3.25, None,
                   (("X-GOLIVE-LABEL", "intro, done"), ("X-GOLIVE-RATE", 1.5)))
PIN = DateRange("golive-p-1", "io.golive.pin", T0 + 4.5, 0.0, (("X-GOLIVE-USER", "Cy"),))
GONE = DateRange("golive-k-0", "io.golive.marker", T0 - 10, 5.0)  # ended before the window

LL_WITH_RANGES = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-DATERANGE:ID="golive-q-1",CLASS="io.golive.question",\
START-DATE="2023-11-14T22:13:17.000Z",DURATION=4.500,X-GOLIVE-USER="Bo",\
X-GOLIVE-TEXT="what camera?"
#EXT-X-DATERANGE:ID="golive-g-1",CLASS="io.golive.gift",\
START-DATE="2023-11-14T22:13:20.500Z",DURATION=5.000,X-GOLIVE-USER="Ada",\
X-GOLIVE-TEXT="rose x3",X-GOLIVE-COINS=30
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
#EXT-X-DATERANGE:ID="golive-k-1",CLASS="io.golive.marker",\
START-DATE="2023-11-14T22:13:23.250Z",X-GOLIVE-LABEL="intro, done",X-GOLIVE-RATE=1.500
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXT-X-PART:DURATION=0.334,URI="part-1.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="part-1.1.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.2.m4s"
#EXT-X-PART:DURATION=0.334,URI="part-1.3.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.4.m4s"
#EXT-X-PART:DURATION=0.333,URI="part-1.5.m4s"
#EXTINF:2.000,
seg-1.m4s
#EXT-X-DATERANGE:ID="golive-p-1",CLASS="io.golive.pin",\
START-DATE="2023-11-14T22:13:24.500Z",DURATION=0.000,X-GOLIVE-USER="Cy"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z
#EXT-X-PART:DURATION=0.334,URI="part-2.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="part-2.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-2.2.m4s"
#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8",LAST-MSN=2,LAST-PART=1
#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=1
"""


def with_ranges(*date_ranges: DateRange, ended: bool = False) -> MediaPlaylist:
    return replace(low_latency(ended), date_ranges=date_ranges)


def date_range_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#EXT-X-DATERANGE:")]


def listed_ids(text: str) -> list[str | None]:
    return [tag.text("ID") for tag in parse(text).date_ranges]


def test_low_latency_playlist_with_date_ranges() -> None:
    """Each range before the segment its START-DATE falls in (the open one for a date past
    the last complete segment); one whose last date is older than the window is not listed,
    one that began before the window but lasts into it is. The order given does not count."""
    text = render_media_playlist(with_ranges(PIN, GIFT, GONE, MARKER, QUESTION))
    assert text == LL_WITH_RANGES
    check_media_playlist(text, independent=True)
    # Without ranges the text is what it always was.
    assert render_media_playlist(with_ranges()) == LL_EXPECTED


def test_ended_playlist_lists_a_range_past_its_last_segment_at_the_end() -> None:
    """A range dated after every listed segment (nothing open) goes last, where the segment
    it falls in would follow; one in the hole a discontinuity left goes before the next."""
    segments = [segment(7, 3.5, start=T0), segment(8, 1.25, start=T0 + 3.5),
                segment(9, 4.0, start=T0 + 100.5, discontinuity=True)]
    hole = DateRange("golive-k-2", "io.golive.marker", T0 + 50, None)
    late = DateRange("golive-k-3", "io.golive.marker", T0 + 104.5, 2.0)
    text = render_media_playlist(MediaPlaylist(
        target_duration=4, media_sequence=7, discontinuity_sequence=0, segments=segments,
        ended=True, playlist_type="VOD", date_ranges=(late, hole)))
    assert text == """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXTINF:3.500,
seg-7.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.500Z
#EXTINF:1.250,
seg-8.m4s
#EXT-X-DATERANGE:ID="golive-k-2",CLASS="io.golive.marker",START-DATE="2023-11-14T22:14:10.000Z"
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:00.500Z
#EXTINF:4.000,
seg-9.m4s
#EXT-X-DATERANGE:ID="golive-k-3",CLASS="io.golive.marker",\
START-DATE="2023-11-14T22:15:04.500Z",DURATION=2.000
#EXT-X-ENDLIST
"""
    check_media_playlist(text)


def test_no_date_range_without_a_program_date_time() -> None:
    """bis 4.4.5.1: a playlist with a DATERANGE must have a PROGRAM-DATE-TIME; before any
    media there is none, so none is listed (they are listed once media comes)."""
    text = render_media_playlist(MediaPlaylist(2, 0, 0, segments=(), date_ranges=(GIFT,)))
    assert date_range_lines(text) == []
    check_media_playlist(text)


def test_an_open_segment_alone_starts_the_window() -> None:
    playlist = replace(low_latency(), segments=(), media_sequence=2,
                       date_ranges=(GIFT, PIN))  # GIFT ends at T0 + 5.5, after T0 + 4
    assert listed_ids(render_media_playlist(playlist)) == ["golive-g-1", "golive-p-1"]
    assert not date_range_lines(render_media_playlist(replace(
        playlist, date_ranges=(QUESTION,))))  # ended at T0 + 1.5


def test_the_window_rule() -> None:
    """Kept while its last date (START-DATE + DURATION; START-DATE when unknown) is not older
    than the first listed segment (bis 6.2.1)."""
    assert date_range_in_window(GIFT, T0 + 5.5)
    assert not date_range_in_window(GIFT, T0 + 5.501)
    assert date_range_in_window(MARKER, T0 + 3.25)
    assert not date_range_in_window(MARKER, T0 + 3.26)
    assert date_range_in_window(PIN, T0 - 100)  # dated after the window's start: kept


# -- user text --------------------------------------------------------------------------------

HOSTILE = [
    ('"', "'"),
    ('Ada","X-GOLIVE-COINS=100000', "Ada','X-GOLIVE-COINS=100000"),
    ('Ada",X-GOLIVE-COINS=100000,X-A="', "Ada',X-GOLIVE-COINS=100000,X-A='"),
    ("two\r\nlines", "two  lines"),
    ("end\n#EXT-X-ENDLIST\n", "end #EXT-X-ENDLIST "),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("Zoë 🌹 ударник 中文 مرحبا", "Zoë 🌹 ударник 中文 مرحبا"),
    ("para\u2028sep\u2029nel\x85nul\x00esc\x1bdel\x7f", "para sep nel nul esc del "),
    ("lone \ud800 surrogate", "lone \ufffd surrogate"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "shown"), HOSTILE, ids=[repr(h[0])[:24] for h in HOSTILE])
def test_user_text_cannot_break_the_playlist(text: str, shown: str) -> None:
    hostile = DateRange("golive-g-2", "io.golive.gift", T0 + 0.5, 5.0,
                        (("X-GOLIVE-USER", text), ("X-GOLIVE-COINS", 10)))
    playlist = with_ranges(hostile)
    rendered = render_media_playlist(playlist)
    rendered.encode("utf-8")  # a lone surrogate would make it unwritable
    # One line more than without it, and every other line as it was.
    without = render_media_playlist(with_ranges()).split("\n")
    lines = rendered.split("\n")
    assert len(lines) == len(without) + 1 and len(rendered.splitlines()) == len(lines) - 1
    (line,) = date_range_lines(rendered)
    assert [x for x in lines if x != line] == without
    # Exactly the attributes given, the value as near to the text as HLS allows.
    (tag,) = parse(rendered).date_ranges
    assert list(tag.attributes) == ["ID", "CLASS", "START-DATE", "DURATION", "X-GOLIVE-USER",
                                    "X-GOLIVE-COINS"]
    assert tag.text("X-GOLIVE-USER") == shown and tag.attributes["X-GOLIVE-COINS"] == "10"
    check_media_playlist(rendered, independent=True)


@pytest.mark.parametrize("bad", [
    {"id": ""}, {"id": 'a"b'}, {"id": "a\nb"}, {"class_name": ""},
    {"start_date": float("nan")}, {"duration": -1.0}, {"duration": float("inf")},
    {"attributes": (("GOLIVE-USER", "Ada"),)},  # without the X- prefix
    {"attributes": (("X-golive-user", "Ada"),)},
    {"attributes": (("X-GOLIVE USER", "Ada"),)},
    {"attributes": (("X-", "Ada"),)},
    {"attributes": (("X-A", True),)},
    {"attributes": (("X-A", float("nan")),)},
    {"attributes": (("X-A", None),)},
    {"attributes": (("X-A", 1), ("X-A", 2))},
])
def test_what_has_no_hls_form_is_refused_when_made(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": "golive-g-3", "class_name": "io.golive.gift",
                                 "start_date": T0, "duration": 5.0, "attributes": ()}
    fields.update(bad)
    with pytest.raises(ValueError, match="DateRange"):
        DateRange(**fields)  # type: ignore[arg-type]


def test_numbers_render_in_decimal_positional_notation() -> None:
    tiny = DateRange("golive-k-4", "io.golive.marker", T0 + 0.5, 0.00001,
                     (("X-A", 1e-5), ("X-B", -2.5), ("X-C", 10**12)))
    (line,) = date_range_lines(render_media_playlist(with_ranges(tiny)))
    assert line.endswith(",DURATION=0.000,X-A=0.000,X-B=-2.500,X-C=1000000000000")


# -- the checker's DATERANGE rules -------------------------------------------------------------

GIFT_LINE = date_range_lines(LL_WITH_RANGES)[1]


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


DATERANGE_BREACHES = [
    ("listed twice", lambda t: _edit(t, GIFT_LINE, GIFT_LINE + "\n" + GIFT_LINE)),
    ("not ISO 8601", lambda t: _edit(t, '"2023-11-14T22:13:20.500Z"', '"yesterday"')),
    ("no time zone", lambda t: _edit(t, '"2023-11-14T22:13:20.500Z"', '"2023-11-14T22:13:20.500"')),
    ("START-DATE must be a quoted-string",
     lambda t: _edit(t, 'START-DATE="2023-11-14T22:13:20.500Z"',
                     "START-DATE=2023-11-14T22:13:20.500Z")),
    ("CLASS must be a quoted-string",
     lambda t: _edit(t, 'CLASS="io.golive.gift"', "CLASS=io.golive.gift")),
    ("client attribute", lambda t: _edit(t, "X-GOLIVE-COINS", "x-golive-coins")),
    ("client attribute", lambda t: _edit(t, "X-GOLIVE-COINS", "GOLIVE-COINS")),
    ("not a quoted-string, hexadecimal", lambda t: _edit(t, "COINS=30", "COINS=thirty")),
    ("cannot read", lambda t: _edit(t, 'X-GOLIVE-USER="Ada"', 'X-GOLIVE-USER="A"da"')),
    ("no START-DATE", lambda t: _edit(t, ',START-DATE="2023-11-14T22:13:20.500Z"', "")),
    ("no ID", lambda t: _edit(t, 'ID="golive-g-1",', "")),
    ("DURATION", lambda t: _edit(t, "DURATION=5.000", "DURATION=-5")),
    ("no EXT-X-PROGRAM-DATE-TIME",
     lambda t: "\n".join(x for x in t.split("\n") if "PROGRAM-DATE-TIME" not in x)),
]


@pytest.mark.parametrize(("rule", "breach"), DATERANGE_BREACHES,
                         ids=[b[0] for b in DATERANGE_BREACHES])
def test_checker_names_the_broken_date_range_rule(rule, breach) -> None:
    assert media_violations(LL_WITH_RANGES, independent=True) == []
    found = media_violations(breach(LL_WITH_RANGES))
    assert any(rule in message for message in found), found


def test_checker_judges_date_ranges_across_reloads() -> None:
    base = LL_WITH_RANGES
    assert successive_violations(base, base) == []
    removed = _edit(base, GIFT_LINE + "\n", "")
    assert any("removed while" in m for m in successive_violations(base, removed))
    changed = _edit(base, "COINS=30", "COINS=31")
    assert any("changed or lost" in m for m in successive_violations(base, changed))
    # Once the segments its dates fall in are gone, a range may go.
    slid = render_media_playlist(replace(
        low_latency(), segments=low_latency().segments[1:], media_sequence=1,
        date_ranges=(QUESTION, GIFT, MARKER, PIN)))
    assert "golive-q-1" not in slid and "golive-g-1" in slid
    # (A window this short breaks other rules, not the date ranges'.)
    assert [m for m in successive_violations(base, slid) if "DATERANGE" in m] == []


# -- a rendition's playlist over time ----------------------------------------------------------

PARTS_MS = (334, 333, 333, 334, 333, 333)  # 2 s segments of six parts


def live_rendition() -> Rendition:
    rendition = Rendition("show", "source", MemoryStore(), target_duration=2)
    rendition.part_target_ms = 334
    rendition.set_init(1, b"init")
    return rendition


def add_parts(rendition: Rendition, count: int) -> None:
    """`count` more parts; the first segment starts at T0, each lasts 2 s."""
    for _ in range(count):
        index = sum(len(s.parts) for s in rendition.segments) + (
            len(rendition.open.parts) if rendition.open else 0)
        end_ms = sum(PARTS_MS[:index % 6 + 1]) + 2000 * (index // 6)
        rendition.add_part(b"x", PARTS_MS[index % 6], index % 6 == 0, index % 6 == 0,
                           index % 6 == 5, end_ms, now=T0 + end_ms / 1000)


def test_a_range_leaves_with_the_segment_its_last_date_falls_in() -> None:
    rendition = live_rendition()
    add_parts(rendition, 1)
    moment = DateRange("golive-k-5", "io.golive.marker", T0 + 1.0, None)  # in segment 0
    span = DateRange("golive-g-5", "io.golive.gift", T0 + 0.5, 9.0)  # ends in segment 4
    rendition.set_date_ranges((moment, span))
    texts = [rendition.text()]
    while rendition.media_sequence < 6:
        add_parts(rendition, 1)
        texts.append(rendition.text())
        check_media_playlist(texts[-1], first_sequence=0, independent=True)
        assert successive_violations(texts[-2], texts[-1]) == []
        ids = listed_ids(texts[-1])
        first = rendition.media_sequence
        assert ids == [i for i, kept in (("golive-g-5", first <= 4), ("golive-k-5", first == 0))
                       if kept], (first, ids)
    assert "golive-g-5" not in texts[-1]


async def test_new_date_ranges_bump_the_version_but_wake_no_waiter() -> None:
    rendition = live_rendition()
    add_parts(rendition, 8)
    text, version = rendition.text(), rendition.version
    waiter = asyncio.create_task(rendition.wait_for(rendition.last_msn,
                                                    rendition.last_part + 1, 5))
    changed = asyncio.create_task(rendition.wait_changed(5))
    await asyncio.sleep(0)
    rendition.set_date_ranges((PIN,))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done() and not changed.done()
    assert rendition.version == version + 1
    assert rendition.text() != text and date_range_lines(rendition.text())
    add_parts(rendition, 1)  # media wakes them
    assert await waiter and await changed


def test_listed_until_is_the_end_of_the_newest_part() -> None:
    rendition = live_rendition()
    assert rendition.listed_until is None and rendition.window_start is None
    add_parts(rendition, 2)
    assert rendition.listed_until == pytest.approx(T0 + 0.667)
    add_parts(rendition, 4)  # segment 0 complete, nothing open
    assert rendition.open is None and rendition.listed_until == pytest.approx(T0 + 2.0)
    add_parts(rendition, 1)
    assert rendition.listed_until == pytest.approx(T0 + 2.334)
    assert rendition.window_start == T0


# -- the rendition set: every rendition, late rungs, bounds ------------------------------------

TIMELINE = TimelineConfig(segment_target_ms=2000, part_target_ms=333)


def test_every_rendition_lists_them_and_a_late_rung_only_those_in_its_window() -> None:
    renditions = RenditionSet("show", HlsConfig(mpegts=True), MemoryStore(), TIMELINE)
    source = renditions.source
    source.part_target_ms = 334
    source.set_init(1, b"init")
    add_parts(source, 1)
    early = DateRange("golive-k-6", "io.golive.marker", T0 + 0.2, None)
    assert renditions.add_date_range(early)
    assert renditions.ts is not None and renditions.ts.date_ranges == (early,)
    add_parts(source, 6 * 14)  # segment 0 left the window long ago
    assert source.media_sequence > 0 and "golive-k-6" not in source.text()
    recent = DateRange("golive-p-6", "io.golive.pin", source.listed_until or 0, None)
    assert renditions.add_date_range(recent)
    assert renditions.date_ranges == (recent,)  # the early one is forgotten
    rung = renditions.add_rung("180p", 180)
    assert rung.date_ranges == (recent,)
    rung.part_target_ms = 334
    rung.set_init(1, b"init")
    twin = source.segments[-1]
    rung.add_part(b"y", 334, True, True, False, 1, now=T0 + 100,
                  program_date_time=twin.program_date_time)
    for rendition in (source, rung):
        (line,) = date_range_lines(rendition.text())
        assert 'ID="golive-p-6"' in line
        check_media_playlist(rendition.text())
    assert not renditions.add_date_range(recent)  # an ID is never listed twice


def test_at_most_max_date_ranges_are_listed() -> None:
    renditions = RenditionSet("show", HlsConfig(), MemoryStore(), TIMELINE)
    source = renditions.source
    source.set_init(1, b"init")
    add_parts(source, 3)
    for n in range(MAX_DATE_RANGES):
        assert renditions.add_date_range(DateRange(f"golive-g-{n}", "io.golive.gift", T0, 1.0))
    version = source.version
    assert not renditions.add_date_range(DateRange("golive-g-x", "io.golive.gift", T0, 1.0))
    assert source.version == version and len(renditions.date_ranges) == MAX_DATE_RANGES


# -- recordings ----------------------------------------------------------------------------------

def test_a_recording_keeps_every_date_range_of_its_span() -> None:
    """Listed from the next playlist written (per segment, never per event), all of them in
    the VOD playlist, also those a live window would have dropped long ago; and a crashed
    recording's sealed playlist keeps them as they were."""
    store = MemoryStore()
    recorder = Recorder(store, "show/20250101T120000Z/", target_duration=2)
    recorder.set_init(1, b"init")
    recorder.add_segment(0, b"seg", 2000, True, False, T0)
    first = DateRange("golive-k-7", "io.golive.marker", T0 + 1.0, None)
    recorder.add_date_range(first)
    assert "golive-k-7" not in (store.get(recorder.playlist_key) or b"").decode()
    for n in range(1, 20):
        recorder.add_segment(n, b"seg", 2000, True, False, T0 + 2 * n)
    gift = replace(GIFT, start_date=T0 + 38.5)  # in the last segment
    recorder.add_date_range(gift)
    growing = (store.get(recorder.playlist_key) or b"").decode()
    assert listed_ids(growing) == ["golive-k-7"]
    # (The checker reads an EVENT playlist without ENDLIST as a live one, which it is not.)
    assert [m for m in media_violations(growing) if "DATERANGE" in m] == []
    recorder.add_segment(20, b"seg", 2000, True, False, T0 + 40)
    assert seal_recording(store, recorder.prefix)
    sealed = (store.get(recorder.playlist_key) or b"").decode()
    assert listed_ids(sealed) == ["golive-k-7", "golive-g-1"]
    check_media_playlist(sealed)
    # The final playlist of one that ends normally says the same.
    recorder.end()
    assert (store.get(recorder.playlist_key) or b"").decode() == sealed
    recorder.add_date_range(replace(gift, id="golive-g-8"))  # too late: a VOD never changes
    assert len(recorder.date_ranges) == 2
